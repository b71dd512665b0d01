/**
 * Loading the kubelet's kubeconfig (client certificates, tokens, exec plugins through
 * `@kubernetes/client-node`'s `KubeConfig`) with clear errors, checking whether its
 * client certificate is still usable, and writing the kubeconfig TLS bootstrap produces.
 *
 * @module
 */
import { readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { dumpYaml, KubeConfig } from "@kubernetes/client-node";
import { ConfigError, describeError } from "@worknode/core";
import { certificateValidity } from "./csr.js";

/**
 * Loads a kubeconfig file and checks that its current context names a cluster with a
 * server and a user.
 *
 * @throws ConfigError naming the file when it is missing, unparsable or incomplete
 */
export async function loadKubeconfig(path: string): Promise<KubeConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError(`kubeconfig ${path}: cannot read: ${describeError(err)}`, { cause: err });
  }
  const kc = new KubeConfig();
  try {
    kc.loadFromString(text);
    // relative certificate / key paths are relative to the file's directory
    kc.makePathsAbsolute(dirname(path));
  } catch (err) {
    throw new ConfigError(`kubeconfig ${path}: invalid: ${describeError(err)}`, { cause: err });
  }
  const contextName = kc.getCurrentContext();
  if (!contextName || !kc.getContextObject(contextName)) {
    throw new ConfigError(
      `kubeconfig ${path}: no current context (current-context: ${JSON.stringify(contextName)})`,
    );
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ConfigError(`kubeconfig ${path}: context ${contextName} names no known cluster`);
  if (!cluster.server) throw new ConfigError(`kubeconfig ${path}: cluster ${cluster.name} has no server`);
  if (!kc.getCurrentUser())
    throw new ConfigError(`kubeconfig ${path}: context ${contextName} names no known user`);
  return kc;
}

/**
 * Why the kubeconfig's client certificate cannot be used (`undefined` when it can, or
 * when the user authenticates otherwise: token, exec plugin).
 */
export async function clientCertificateProblem(
  kc: KubeConfig,
  nowMs = Date.now(),
): Promise<string | undefined> {
  const user = kc.getCurrentUser();
  if (!user) return "no current user";
  let pem: string | undefined;
  try {
    if (user.certData) pem = Buffer.from(user.certData, "base64").toString("utf8");
    else if (user.certFile) pem = await readFile(user.certFile, "utf8");
  } catch (err) {
    return `client certificate unreadable: ${describeError(err)}`;
  }
  if (pem === undefined) return undefined;
  try {
    const v = certificateValidity(pem);
    if (nowMs >= v.notAfter) return `client certificate expired at ${new Date(v.notAfter).toISOString()}`;
    if (nowMs < v.notBefore)
      return `client certificate not valid before ${new Date(v.notBefore).toISOString()}`;
  } catch (err) {
    return `client certificate unreadable: ${describeError(err)}`;
  }
  return undefined;
}

/** What a kubelet kubeconfig written by TLS bootstrap points at. */
export interface KubeletKubeconfigSpec {
  /** API server URL. */
  readonly server: string;
  /** The cluster CA, PEM (embedded), when not skipping verification. */
  readonly caPem?: string;
  /** `insecure-skip-tls-verify`. */
  readonly insecureSkipTlsVerify?: boolean;
  /** TLS server name override. */
  readonly tlsServerName?: string;
  /** Path of the client certificate + key file (`kubelet-client-current.pem`). */
  readonly clientCertPath: string;
}

/** Renders the kubeconfig the kubelet writes after bootstrap (`default-cluster` / `default-auth`). */
export function renderKubeletKubeconfig(spec: KubeletKubeconfigSpec): string {
  return dumpYaml({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: "default-cluster",
        cluster: {
          server: spec.server,
          ...(spec.caPem ? { "certificate-authority-data": Buffer.from(spec.caPem).toString("base64") } : {}),
          ...(spec.insecureSkipTlsVerify ? { "insecure-skip-tls-verify": true } : {}),
          ...(spec.tlsServerName ? { "tls-server-name": spec.tlsServerName } : {}),
        },
      },
    ],
    contexts: [
      {
        name: "default-context",
        context: { cluster: "default-cluster", namespace: "default", user: "default-auth" },
      },
    ],
    "current-context": "default-context",
    users: [
      {
        name: "default-auth",
        user: { "client-certificate": spec.clientCertPath, "client-key": spec.clientCertPath },
      },
    ],
  });
}

/** The cluster part of a loaded kubeconfig as a {@link KubeletKubeconfigSpec} (CA read when a file). */
export async function clusterOf(kc: KubeConfig): Promise<Omit<KubeletKubeconfigSpec, "clientCertPath">> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ConfigError("kubeconfig has no current cluster");
  let caPem: string | undefined;
  if (cluster.caData) caPem = Buffer.from(cluster.caData, "base64").toString("utf8");
  else if (cluster.caFile) {
    try {
      caPem = await readFile(cluster.caFile, "utf8");
    } catch (err) {
      throw new ConfigError(`cluster ${cluster.name}: cannot read CA ${cluster.caFile}`, { cause: err });
    }
  }
  return {
    server: cluster.server,
    ...(caPem ? { caPem } : {}),
    ...(cluster.skipTLSVerify ? { insecureSkipTlsVerify: true } : {}),
    ...(cluster.tlsServerName ? { tlsServerName: cluster.tlsServerName } : {}),
  };
}

/** Writes a file atomically (temporary file renamed over it) with mode 0600. */
export async function writeFileAtomic(path: string, content: string): Promise<void> {
  const tmp = join(dirname(path), `.${Date.now()}.${process.pid}.tmp`);
  await writeFile(tmp, content, { mode: 0o600 });
  await rename(tmp, path);
}
