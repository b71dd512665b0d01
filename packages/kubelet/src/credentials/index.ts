/**
 * The kubelet's client credentials: kubeconfig loading, TLS bootstrap through a
 * CertificateSigningRequest, the `<rootDir>/pki` certificate store and rotation.
 *
 * @module
 */
export * from "./bootstrap.js";
export * from "./cert-store.js";
export * from "./csr.js";
export * from "./csr-client.js";
export * from "./kubeconfig.js";
export * from "./rotation.js";
export * from "./rotator.js";
