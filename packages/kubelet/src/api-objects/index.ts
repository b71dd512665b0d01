/**
 * API objects pods reference: the {@link PodObjectProvider} contract, its
 * API-backed and standalone implementations, the service-account token manager,
 * service environment variables and the registry credential keyring.
 *
 * @module
 */
export * from "./api-provider.js";
export * from "./credential-keyring.js";
export * from "./provider.js";
export * from "./service-env.js";
export * from "./token-manager.js";
