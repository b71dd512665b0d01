/**
 * The kubelet's Node lifecycle in one component: register the Node (retrying until it
 * works), then keep its Lease renewed and its status posted. `stop()` stops all three
 * and leaves the Node in place, as the kubelet does on SIGTERM; the node lifecycle
 * controller then marks it `Unknown` once the lease and status go stale.
 *
 * @module
 */
import {
  AbortedError,
  type Clock,
  describeError,
  type KubeApiClient,
  type Logger,
  type Node,
  realClock,
  silentLogger,
} from "@worknode/core";
import { DEFAULT_KUBELET_ROOT_DIR } from "../runtime/kubelet.js";
import type { NodeHealth, RuntimeHealth } from "./conditions.js";
import { NodeLeaseController } from "./lease-controller.js";
import { type MachineInfo, readMachineInfo } from "./machine-info.js";
import { buildNode, buildNodeStatus, type NodeBuildOptions, type NodeStatus } from "./node-builder.js";
import { NodeRegistrar } from "./registrar.js";
import type { ReservationOptions, ResourceList } from "./resources.js";
import type { NodeRuntime } from "./runtime.js";
import { NodeStatusUpdater } from "./status-updater.js";
import type { Taint } from "./taints.js";

/** A pressure signal: true while the node is under that pressure. */
export type PressureSignal = () => boolean | Promise<boolean>;

/** Options of a {@link NodeController}. */
export interface NodeControllerOptions extends ReservationOptions {
  /** API client authenticated as the node (`system:node:<name>`). */
  readonly api: KubeApiClient;
  /** The node name. */
  readonly nodeName: string;
  /** The container runtime (see `criNodeRuntime`). */
  readonly runtime: NodeRuntime;
  /** `--node-ip`: the node's addresses. */
  readonly nodeIPs: readonly string[];
  /** `--hostname-override` value for the hostname label and address; default the node name. */
  readonly hostname?: string;
  /** `--node-labels`. */
  readonly labels?: Readonly<Record<string, string>>;
  /** `--register-with-taints` (applied when the Node is created). */
  readonly taints?: readonly Taint[];
  /** Capacity entries that replace the measured ones. */
  readonly capacity?: Readonly<ResourceList>;
  /** `--max-pods`; default 110. */
  readonly maxPods?: number;
  /** `--port`; default 10250. */
  readonly kubeletPort?: number;
  /** `--root-dir`, whose filesystem is the node's ephemeral storage; default `/var/lib/worknode/kubelet`. */
  readonly rootDir?: string;
  /** Reads the machine; default {@link readMachineInfo} of `rootDir`. */
  readonly machineInfo?: () => Promise<MachineInfo>;
  /** PLEG health: an error message while unhealthy, `undefined` when healthy (default always healthy). */
  readonly plegHealth?: () => string | undefined;
  /** Pressure signals; default never under pressure. */
  readonly pressure?: {
    readonly memory?: PressureSignal;
    readonly disk?: PressureSignal;
    readonly pid?: PressureSignal;
  };
  /** `--node-lease-duration-seconds`; default 40. */
  readonly leaseDurationSeconds?: number;
  /** `nodeStatusUpdateFrequency`; default 10 s. */
  readonly statusUpdateFrequencyMs?: number;
  /** `nodeStatusReportFrequency`; default 5 min. */
  readonly statusReportFrequencyMs?: number;
  /** Clock; default the real clock. */
  readonly clock?: Clock;
  /** Logger; default silent. */
  readonly logger?: Logger;
}

/** Registers the node and keeps its lease and status up to date; see the module notes. */
export class NodeController {
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly registrar: NodeRegistrar;
  private readonly leases: NodeLeaseController;
  private readonly statusUpdater: NodeStatusUpdater;
  private node: Node | undefined;
  private controller: AbortController | undefined;
  private running: Promise<void> | undefined;
  private registeredWaiters: Array<{ resolve: (node: Node) => void; reject: (err: Error) => void }> = [];

  constructor(private readonly options: NodeControllerOptions) {
    this.clock = options.clock ?? realClock;
    this.logger = options.logger ?? silentLogger();
    this.registrar = new NodeRegistrar({
      api: options.api,
      desiredNode: async () => buildNode(await this.buildOptions()),
      clock: this.clock,
      logger: this.logger,
    });
    this.leases = new NodeLeaseController({
      api: options.api,
      nodeName: options.nodeName,
      owner: () => {
        const uid = this.node?.metadata?.uid;
        return uid ? { name: options.nodeName, uid } : undefined;
      },
      leaseDurationSeconds: options.leaseDurationSeconds,
      clock: this.clock,
      logger: this.logger,
    });
    this.statusUpdater = new NodeStatusUpdater({
      api: options.api,
      nodeName: options.nodeName,
      health: () => this.health(),
      status: async () => buildNodeStatus(await this.buildOptions()),
      updateFrequencyMs: options.statusUpdateFrequencyMs,
      reportFrequencyMs: options.statusReportFrequencyMs,
      clock: this.clock,
      logger: this.logger,
    });
  }

  /** The Node as registered, once it is. */
  get registeredNode(): Node | undefined {
    return this.node;
  }

  /** The status as last posted. */
  get status(): NodeStatus | undefined {
    return this.statusUpdater.status;
  }

  /**
   * Resolves with the registered Node once registration succeeded.
   *
   * @throws AbortedError when the controller is stopped before that
   */
  registered(): Promise<Node> {
    if (this.node) return Promise.resolve(this.node);
    return new Promise((resolve, reject) => this.registeredWaiters.push({ resolve, reject }));
  }

  /** Starts registration, then the lease and status loops, in the background; idempotent. */
  start(): void {
    if (this.running) return;
    const controller = new AbortController();
    this.controller = controller;
    this.running = this.run(controller.signal);
  }

  /** Asks for an immediate status update (for example after the runtime's health changed). */
  requestStatusUpdate(): void {
    this.statusUpdater.requestUpdate();
  }

  /** Stops every loop; the Node and its Lease stay in the API server. */
  async stop(): Promise<void> {
    this.controller?.abort(new AbortedError("node controller stopped"));
    await this.running;
    await Promise.all([this.leases.stop(), this.statusUpdater.stop()]);
    this.running = undefined;
    this.controller = undefined;
  }

  private async run(signal: AbortSignal): Promise<void> {
    let node: Node;
    try {
      node = await this.registrar.register(signal);
    } catch (err) {
      if (!signal.aborted) this.logger.error({ error: describeError(err) }, "node registration failed");
      const stopped = new AbortedError("node controller stopped before the node was registered", {
        cause: err,
      });
      for (const w of this.registeredWaiters.splice(0)) w.reject(stopped);
      return;
    }
    this.node = node;
    for (const w of this.registeredWaiters.splice(0)) w.resolve(node);
    if (signal.aborted) return;
    this.leases.start();
    this.statusUpdater.start(node);
  }

  private async buildOptions(): Promise<NodeBuildOptions> {
    const o = this.options;
    const [machine, runtime] = await Promise.all([
      o.machineInfo ? o.machineInfo() : readMachineInfo(o.rootDir ?? DEFAULT_KUBELET_ROOT_DIR),
      o.runtime.version().catch((err: unknown) => {
        this.logger.warn({ error: describeError(err) }, "container runtime version unavailable");
        return { runtimeName: "unknown", runtimeVersion: "unknown" };
      }),
    ]);
    return {
      nodeName: o.nodeName,
      hostname: o.hostname,
      nodeIPs: o.nodeIPs,
      labels: o.labels,
      taints: o.taints,
      machine,
      runtime,
      kubeletPort: o.kubeletPort,
      maxPods: o.maxPods,
      capacity: o.capacity,
      systemReserved: o.systemReserved,
      kubeReserved: o.kubeReserved,
      evictionHard: o.evictionHard,
    };
  }

  private async health(): Promise<NodeHealth> {
    const o = this.options;
    const runtime: RuntimeHealth = await o.runtime.status().then(
      (conditions) => ({ ok: true as const, conditions }),
      (err: unknown) => ({ ok: false as const, error: describeError(err) }),
    );
    const signal = async (s: PressureSignal | undefined) => (s ? await s() : false);
    const [memoryPressure, diskPressure, pidPressure] = await Promise.all([
      signal(o.pressure?.memory),
      signal(o.pressure?.disk),
      signal(o.pressure?.pid),
    ]);
    return { runtime, plegError: o.plegHealth?.(), memoryPressure, diskPressure, pidPressure };
  }
}
