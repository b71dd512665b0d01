/**
 * The API-server half of `worknode kubelet` (with `--kubeconfig`): credentials
 * (TLS bootstrap, rotation), the Node (registration, lease, status), pods from
 * the API with their status, deletion and mirror pods, the objects pods
 * reference, events, and authentication / authorization of the kubelet API.
 * Each piece comes from `@worknode/kubelet`; this module only assembles them.
 *
 * @module
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { KubeApiClient, type Logger, type ObjectSource, type Pod } from "@worknode/core";
import type { CriClient } from "@worknode/cri";
import {
  ApiEventRecorder,
  ApiPodObjectProvider,
  ApiPodSync,
  bootstrapClientCertificate,
  buildKubeletAuth,
  CertificateRotator,
  CertificateStore,
  criNodeRuntime,
  type KubeletAuth,
  loadKubeconfig,
  NodeController,
  type PodStatus,
} from "@worknode/kubelet";
import { VERSION } from "../version.js";
import type { KubeletClusterConfig, KubeletCommandConfig } from "./kubelet-config.js";

/** The cluster pieces of a running kubelet, before the `Kubelet` itself exists. */
export interface KubeletClusterSide {
  /** The API client, authenticated as `system:node:<name>`. */
  readonly api: KubeApiClient;
  /** Registers the Node and keeps its lease and status. */
  readonly node: NodeController;
  /** Pods from the API, status manager, mirror pods. */
  readonly pods: ApiPodSync;
  /** ConfigMaps, Secrets, tokens and Services for pods. */
  readonly objects: ApiPodObjectProvider;
  /** Pod lifecycle events. */
  readonly recorder: ApiEventRecorder;
  /** Authentication and authorization of the kubelet API. */
  readonly auth: KubeletAuth;
  /** The kubelet options that connect it to the API (`sources`: the static ones and the API's, `onStatus`, `onPodTerminated`). */
  kubeletOptions(): {
    readonly sources: readonly ObjectSource<Pod>[];
    readonly onStatus: (pod: Pod, status: PodStatus) => void;
    readonly onPodTerminated: (pod: Pod, finalStatus: PodStatus) => void;
  };
  /** Starts registration, certificate rotation and the pod informer (resolves after its first list). */
  start(health: () => string | undefined): Promise<void>;
  /** Stops everything; the Node, its pods and their containers stay (as kubelet on SIGTERM). */
  stop(): Promise<void>;
}

/**
 * Obtains credentials (TLS bootstrap when `--kubeconfig` is missing or expired
 * and `--bootstrap-kubeconfig` is given) and builds the cluster pieces.
 * @throws ConfigError for an unusable kubeconfig
 * @throws CertificateRequestError when the bootstrap CSR is denied
 */
export async function connectKubeletToCluster(
  config: KubeletCommandConfig & { readonly cluster: KubeletClusterConfig },
  deps: {
    readonly client: CriClient;
    readonly nodeIPs: readonly string[];
    /** Static pod sources: their pods get mirror pods. */
    readonly staticPods: readonly ObjectSource<Pod>[];
    readonly logger: Logger;
    readonly signal?: AbortSignal;
  },
): Promise<KubeletClusterSide> {
  const { cluster, nodeName, rootDir } = config;
  const { logger } = deps;
  if (cluster.bootstrapKubeconfig) {
    const result = await bootstrapClientCertificate({
      kubeconfigPath: cluster.kubeconfig,
      bootstrapKubeconfigPath: cluster.bootstrapKubeconfig,
      rootDir,
      nodeName,
      logger: logger.child({ component: "tls-bootstrap" }),
      ...(deps.signal ? { signal: deps.signal } : {}),
    });
    logger.info({ outcome: result.outcome, kubeconfig: result.kubeconfigPath }, "client credentials ready");
  }
  const kubeConfig: KubeConfig = await loadKubeconfig(cluster.kubeconfig);
  const api = new KubeApiClient(kubeConfig, { userAgent: `worknode-kubelet/${VERSION}` });
  const node = new NodeController({
    api,
    nodeName,
    runtime: criNodeRuntime(deps.client),
    nodeIPs: deps.nodeIPs,
    labels: cluster.nodeLabels,
    taints: cluster.registerWithTaints,
    maxPods: config.maxPods,
    ...(config.server ? { kubeletPort: config.server.port } : {}),
    rootDir,
    statusUpdateFrequencyMs: cluster.nodeStatusUpdateFrequencyMs,
    statusReportFrequencyMs: cluster.nodeStatusReportFrequencyMs,
    plegHealth: () => health?.(),
    logger: logger.child({ component: "node" }),
  });
  let health: (() => string | undefined) | undefined;
  const pods = new ApiPodSync({
    kubeConfig,
    api,
    nodeName,
    nodeUid: () => node.registeredNode?.metadata?.uid,
    staticPods: deps.staticPods,
    logger: logger.child({ component: "api-pods" }),
  });
  const objects = new ApiPodObjectProvider({ client: api });
  const recorder = new ApiEventRecorder({ client: api, host: nodeName, logger });
  const auth = await buildKubeletAuth({
    nodeName,
    authentication: {
      ...(cluster.auth.clientCAFile ? { x509: { clientCAFile: cluster.auth.clientCAFile } } : {}),
      webhook: { enabled: cluster.auth.tokenWebhook },
      anonymous: { enabled: cluster.auth.anonymous },
    },
    authorization: { mode: cluster.auth.authorizationMode },
    apiClient: api,
    logger: logger.child({ component: "kubelet-auth" }),
  });
  const rotator = cluster.rotateCertificates
    ? new CertificateRotator({
        api,
        nodeName,
        store: new CertificateStore(rootDir),
        logger: logger.child({ component: "certificate-rotation" }),
      })
    : undefined;
  return {
    api,
    node,
    pods,
    objects,
    recorder,
    auth,
    kubeletOptions: () => pods.kubeletOptions(deps.staticPods),
    async start(h) {
      health = h;
      if (cluster.registerNode) node.start();
      rotator?.start();
      await pods.start();
    },
    async stop() {
      await pods.stop();
      await rotator?.stop();
      await node.stop();
    },
  };
}
