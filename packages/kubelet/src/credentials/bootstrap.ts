/**
 * TLS bootstrap (kubelet's `--bootstrap-kubeconfig`): when the `--kubeconfig` file is
 * missing or its client certificate is expired or unreadable, obtain a node client
 * certificate with the bootstrap credentials, store it in `<rootDir>/pki`
 * (`kubelet-client-current.pem`) and write the kubeconfig pointing at it.
 *
 * @module
 */
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { type Clock, describeError, KubeApiClient, type Logger, silentLogger } from "@worknode/core";
import { CertificateStore } from "./cert-store.js";
import { requestNodeClientCertificate } from "./csr-client.js";
import {
  clientCertificateProblem,
  clusterOf,
  loadKubeconfig,
  renderKubeletKubeconfig,
  writeFileAtomic,
} from "./kubeconfig.js";

/** Options of {@link bootstrapClientCertificate}. */
export interface TlsBootstrapOptions {
  /** `--kubeconfig`: where the kubelet's kubeconfig is (and is written). */
  readonly kubeconfigPath: string;
  /** `--bootstrap-kubeconfig`: credentials allowed to create CSRs. */
  readonly bootstrapKubeconfigPath: string;
  /** `--root-dir`: the certificate store is `<rootDir>/pki`. */
  readonly rootDir: string;
  /** The node name. */
  readonly nodeName: string;
  /** How often to look at the CSR; default 1 s. */
  readonly pollIntervalMs?: number;
  /** How long to wait for approval; default 15 min. */
  readonly timeoutMs?: number;
  /** Cancels the wait. */
  readonly signal?: AbortSignal;
  /** Clock; default the real clock. */
  readonly clock?: Clock;
  /** Logger; default silent. */
  readonly logger?: Logger;
}

/** What {@link bootstrapClientCertificate} did. */
export interface TlsBootstrapResult {
  /** `existing` (the kubeconfig was usable), `stored` (a valid stored certificate was reused) or `requested`. */
  readonly outcome: "existing" | "stored" | "requested";
  /** The kubeconfig path. */
  readonly kubeconfigPath: string;
  /** The certificate file now in use (the current symlink), unless `existing`. */
  readonly certificatePath?: string;
}

/**
 * Makes sure `--kubeconfig` holds usable credentials, bootstrapping them when needed.
 *
 * @throws ConfigError when the bootstrap kubeconfig is missing or invalid
 * @throws CertificateRequestError when the CSR is denied or fails
 */
export async function bootstrapClientCertificate(options: TlsBootstrapOptions): Promise<TlsBootstrapResult> {
  const logger = options.logger ?? silentLogger();
  const { kubeconfigPath } = options;
  const problem = await loadKubeconfig(kubeconfigPath).then(
    (kc) => clientCertificateProblem(kc, options.clock?.now()),
    (err: unknown) => describeError(err),
  );
  if (problem === undefined) return { outcome: "existing", kubeconfigPath };
  logger.info(
    { kubeconfig: kubeconfigPath, reason: problem },
    "kubeconfig not usable; bootstrapping client credentials",
  );

  const bootstrap = await loadKubeconfig(options.bootstrapKubeconfigPath);
  const cluster = await clusterOf(bootstrap);
  const store = new CertificateStore(options.rootDir);
  const writeKubeconfig = async () => {
    await mkdir(dirname(kubeconfigPath), { recursive: true });
    await writeFileAtomic(
      kubeconfigPath,
      renderKubeletKubeconfig({ ...cluster, clientCertPath: store.currentPath }),
    );
  };

  const now = options.clock?.now() ?? Date.now();
  const stored = await store.current();
  if (stored && now >= stored.validity.notBefore && now < stored.validity.notAfter) {
    await writeKubeconfig();
    logger.info({ certificate: stored.path }, "reusing the stored client certificate");
    return { outcome: "stored", kubeconfigPath, certificatePath: store.currentPath };
  }

  const issued = await requestNodeClientCertificate({
    api: new KubeApiClient(bootstrap, { userAgent: "worknode-kubelet/bootstrap" }),
    nodeName: options.nodeName,
    pollIntervalMs: options.pollIntervalMs,
    timeoutMs: options.timeoutMs,
    signal: options.signal,
    clock: options.clock,
    logger,
  });
  const file = await store.update(issued.certPem, issued.keyPem, now);
  await writeKubeconfig();
  logger.info({ certificate: file, kubeconfig: kubeconfigPath }, "bootstrapped client certificate");
  return { outcome: "requested", kubeconfigPath, certificatePath: store.currentPath };
}
