/**
 * The Node object the kubelet registers and keeps reporting, built purely from the
 * machine info, the runtime's version and the kubelet's flags.
 *
 * @module
 */
import type { Node } from "@worknode/core";
import { DEFAULT_MAX_PODS } from "../admission.js";
import { DEFAULT_KUBELET_PORT } from "../server/kubelet-server.js";
import {
  KUBELET_VERSION,
  LABEL_ARCH,
  LABEL_ARCH_BETA,
  LABEL_HOSTNAME,
  LABEL_OS,
  LABEL_OS_BETA,
} from "./constants.js";
import { validateNodeLabels } from "./labels.js";
import type { MachineInfo } from "./machine-info.js";
import { computeAllocatable, type ReservationOptions, type ResourceList } from "./resources.js";
import type { Taint } from "./taints.js";

/** The node's status in wire form. */
export type NodeStatus = NonNullable<Node["status"]>;
/** One node address in wire form. */
export type NodeAddress = NonNullable<NodeStatus["addresses"]>[number];
/** The node's system info in wire form. */
export type NodeSystemInfo = NonNullable<NodeStatus["nodeInfo"]>;

/** The container runtime's identity, from the CRI `Version` RPC. */
export interface RuntimeVersionInfo {
  /** `runtimeName`, such as `containerd`. */
  readonly runtimeName: string;
  /** `runtimeVersion`, such as `v1.6.20`. */
  readonly runtimeVersion: string;
}

/** Annotation the kubelet sets when volumes are attached by the attach/detach controller. */
export const ANNOTATION_CONTROLLER_MANAGED_ATTACH_DETACH =
  "volumes.kubernetes.io/controller-managed-attach-detach";

/** Inputs of {@link buildNode}. */
export interface NodeBuildOptions extends ReservationOptions {
  /** The node name (`--hostname-override` or the host name). */
  readonly nodeName: string;
  /** Value of the `kubernetes.io/hostname` label and the `Hostname` address; default the node name. */
  readonly hostname?: string;
  /** `--node-ip`: the node's addresses, reported as `InternalIP` in this order. */
  readonly nodeIPs: readonly string[];
  /** `--node-labels`. */
  readonly labels?: Readonly<Record<string, string>>;
  /** `--register-with-taints`. */
  readonly taints?: readonly Taint[];
  /** The machine. */
  readonly machine: MachineInfo;
  /** The container runtime's name and version. */
  readonly runtime: RuntimeVersionInfo;
  /** `--port`: the kubelet API port; default 10250. */
  readonly kubeletPort?: number;
  /** `--max-pods`; default 110. */
  readonly maxPods?: number;
  /** Capacity entries that replace (or add to) the measured ones. */
  readonly capacity?: Readonly<ResourceList>;
  /** `spec.providerID`, when running on a cloud. */
  readonly providerID?: string;
}

/** The labels the kubelet puts on its Node: its default labels plus the user's. */
export function nodeLabels(
  options: Pick<NodeBuildOptions, "nodeName" | "hostname" | "labels" | "machine">,
): Record<string, string> {
  return {
    ...options.labels,
    [LABEL_HOSTNAME]: options.hostname ?? options.nodeName,
    [LABEL_OS]: options.machine.operatingSystem,
    [LABEL_ARCH]: options.machine.architecture,
    [LABEL_OS_BETA]: options.machine.operatingSystem,
    [LABEL_ARCH_BETA]: options.machine.architecture,
  };
}

/** The node's addresses: one `InternalIP` per node IP, then `Hostname`. */
export function nodeAddresses(nodeIPs: readonly string[], hostname: string): NodeAddress[] {
  const seen = new Set<string>();
  const out: NodeAddress[] = [];
  for (const ip of nodeIPs) {
    if (seen.has(ip)) continue;
    seen.add(ip);
    out.push({ type: "InternalIP", address: ip });
  }
  out.push({ type: "Hostname", address: hostname });
  return out;
}

/** The node's capacity: CPUs, memory, pods and the root filesystem, then the overrides. */
export function nodeCapacity(
  machine: MachineInfo,
  options: Pick<NodeBuildOptions, "maxPods" | "capacity"> = {},
): ResourceList {
  const memory = BigInt(machine.memoryBytes);
  const storage = BigInt(machine.rootFsBytes);
  const bytes = (v: bigint) => (v !== 0n && v % 1024n === 0n ? `${v / 1024n}Ki` : v.toString());
  return {
    cpu: String(machine.cpuCount),
    "ephemeral-storage": bytes(storage),
    memory: bytes(memory),
    pods: String(options.maxPods ?? DEFAULT_MAX_PODS),
    ...options.capacity,
  };
}

/** `containerRuntimeVersion` as the kubelet reports it: `<runtimeName>://<runtimeVersion>`. */
export function containerRuntimeVersion(runtime: RuntimeVersionInfo): string {
  return `${runtime.runtimeName}://${runtime.runtimeVersion}`;
}

/** The node's system info. */
export function nodeSystemInfo(machine: MachineInfo, runtime: RuntimeVersionInfo): NodeSystemInfo {
  return {
    machineID: machine.machineID,
    systemUUID: machine.systemUUID,
    bootID: machine.bootID,
    kernelVersion: machine.kernelVersion,
    osImage: machine.osImage,
    containerRuntimeVersion: containerRuntimeVersion(runtime),
    kubeletVersion: KUBELET_VERSION,
    kubeProxyVersion: "",
    operatingSystem: machine.operatingSystem,
    architecture: machine.architecture,
  };
}

/**
 * The status fields the kubelet owns besides conditions: addresses, capacity,
 * allocatable, node info and the kubelet endpoint.
 *
 * @throws ConfigError for an invalid reservation or capacity quantity
 */
export function buildNodeStatus(options: NodeBuildOptions): NodeStatus {
  const capacity = nodeCapacity(options.machine, options);
  return {
    addresses: nodeAddresses(options.nodeIPs, options.hostname ?? options.nodeName),
    capacity,
    allocatable: computeAllocatable(capacity, options),
    nodeInfo: nodeSystemInfo(options.machine, options.runtime),
    daemonEndpoints: { kubeletEndpoint: { Port: options.kubeletPort ?? DEFAULT_KUBELET_PORT } },
  };
}

/**
 * Builds the Node the kubelet registers: labels, annotations, taints and the status
 * of {@link buildNodeStatus} (conditions are the status updater's).
 *
 * @throws NodeLabelError for labels a kubelet may not set
 * @throws ConfigError for an invalid reservation or capacity quantity
 */
export function buildNode(options: NodeBuildOptions): Node {
  validateNodeLabels(options.labels ?? {});
  const taints = options.taints ?? [];
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: options.nodeName,
      labels: nodeLabels(options),
      annotations: { [ANNOTATION_CONTROLLER_MANAGED_ATTACH_DETACH]: "true" },
    },
    spec: {
      ...(taints.length > 0 ? { taints: taints.map((t) => ({ ...t })) } : {}),
      ...(options.providerID ? { providerID: options.providerID } : {}),
    },
    status: buildNodeStatus(options),
  };
}
