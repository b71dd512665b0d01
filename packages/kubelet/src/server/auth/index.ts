/**
 * Authentication and authorization of the kubelet API.
 *
 * @module
 */
export * from "./authenticator.js";
export * from "./authorizer.js";
export * from "./kubelet-auth.js";
export * from "./request-attributes.js";
export * from "./token-review.js";
export * from "./ttl-cache.js";
export * from "./user-info.js";
