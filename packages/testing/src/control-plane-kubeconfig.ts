/**
 * Self-contained kubeconfig files (certificates embedded as base64 data),
 * rendered as JSON, which kubectl, client-go and client-node all read.
 *
 * @module
 */

/** Credentials of a kubeconfig user: a client certificate or a bearer token. */
export type KubeconfigCredentials =
  | { readonly clientCertificatePem: string; readonly clientKeyPem: string }
  | { readonly token: string };

/** Input of {@link renderKubeconfig}. */
export interface KubeconfigSpec {
  /** API server URL (`https://127.0.0.1:6443`). */
  readonly server: string;
  /** PEM of the CA that signed the serving certificate. */
  readonly caPem: string;
  /** User name inside the file (not the identity the server sees). */
  readonly userName: string;
  /** Cluster and context name; default `worknode-test`. */
  readonly clusterName?: string;
  /** How the user authenticates. */
  readonly credentials: KubeconfigCredentials;
}

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

/** Renders a kubeconfig with one cluster, one user and one (current) context. */
export function renderKubeconfig(spec: KubeconfigSpec): string {
  const cluster = spec.clusterName ?? "worknode-test";
  const user =
    "token" in spec.credentials
      ? { token: spec.credentials.token }
      : {
          "client-certificate-data": b64(spec.credentials.clientCertificatePem),
          "client-key-data": b64(spec.credentials.clientKeyPem),
        };
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      { name: cluster, cluster: { server: spec.server, "certificate-authority-data": b64(spec.caPem) } },
    ],
    users: [{ name: spec.userName, user }],
    contexts: [{ name: cluster, context: { cluster, user: spec.userName } }],
    "current-context": cluster,
    preferences: {},
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}
