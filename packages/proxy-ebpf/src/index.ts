/**
 * `@worknode/proxy-ebpf`: the eBPF service-proxy backend. Cgroup socket hooks balance
 * service traffic at `connect()` / `sendmsg()`, from BPF maps that {@link EbpfProxier}
 * keeps in step with the service snapshot.
 *
 * @packageDocumentation
 */
export {
  type AttachedProgram,
  attachTypeArgument,
  BPF_FS_MAGIC,
  BpftoolError,
  CGROUP2_SUPER_MAGIC,
  cgroup2Root,
  EbpfUnavailableError,
} from "./bpf-tool.js";
export { checkPinPath, renderBatch, UnsafePinPathError } from "./maps/batch.js";
export {
  type BackendAddress,
  backendsSignature,
  decodeBackendKey,
  decodeBackendValue,
  decodeServiceKey,
  decodeServiceValue,
  encodeBackendKey,
  encodeBackendValue,
  encodeServiceKey,
  encodeServiceValue,
  type Frontend,
  type FrontendValue,
  frontendId,
  MAP_LAYOUT_VERSION,
  MapLayoutError,
  PROGRAMS,
} from "./maps/layout.js";
export {
  type BackendGroup,
  nodePortFrontendIPs,
  type PlannedFrontend,
  type PlanOptions,
  type PortPlan,
  planPort,
  planServicePorts,
} from "./maps/plan.js";
export {
  EbpfMapState,
  type FrontendConflict,
  GroupIdsExhaustedError,
  type KernelMaps,
  type MapDiff,
  type MapOp,
} from "./maps/state.js";
export {
  DEFAULT_PIN_PATH,
  defaultObjectPath,
  defaultSocketDestroyObjectPath,
  type EbpfAppliedBatch,
  EbpfProxier,
  type EbpfProxierOptions,
} from "./proxier.js";
export {
  GONE_BACKENDS_MAP,
  goneUdpBackends,
  listNetnsHandles,
  type NetnsHandle,
  type NetnsTarget,
  netnsTargets,
  parseEndpointAddress,
  parseIteratorOutput,
  renderGoneBackendsBatch,
  runDestroyIterator,
  type SocketDestroyResult,
  UDP_DESTROY_ITER,
} from "./sock-destroy.js";
