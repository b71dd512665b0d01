/**
 * {@link EbpfProxier}: the eBPF backend. Service traffic is balanced at the socket: cgroup
 * hooks rewrite `connect()` and `sendmsg()` to a service address into the address of one
 * endpoint before any packet exists, and rewrite replies (`recvmsg()`, `getpeername()`)
 * back, so no NAT, no conntrack entry and no per-packet rule is involved. A sync is a few
 * BPF map updates, written by one `bpftool batch`.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { mkdir, readdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type CommandRunner,
  Counter,
  createCommandRunner,
  Gauge,
  type IPFamily,
  type Logger,
  type Proxier,
  type ProxierNodeOptions,
  ProxierSupport,
  ProxySyncError,
  Registry,
  type ServiceHealthServer,
  type ServiceSnapshot,
  type SyncInput,
  type SyncStats,
} from "@worknode/core";
import {
  attachedPrograms,
  bpftool,
  cgroup2Root,
  pinnedProgramId,
  readBackends,
  readFrontends,
  requireBpffs,
  requireCgroup2,
  runBatch,
} from "./bpf-tool.js";
import { renderBatch } from "./maps/batch.js";
import {
  ALL_MAPS,
  BACKENDS_MAP,
  frontendId,
  MAP_LAYOUT_VERSION,
  PROGRAMS,
  SERVICES_MAP,
} from "./maps/layout.js";
import { type PlanOptions, type PortPlan, planServicePorts } from "./maps/plan.js";
import { EbpfMapState, type FrontendConflict, type MapOp } from "./maps/state.js";

/** Default bpffs directory of the pinned programs and maps. */
export const DEFAULT_PIN_PATH = "/sys/fs/bpf/worknode";

/** Options of an {@link EbpfProxier}: the node and kube-proxy's common settings, and where the programs go. */
export interface EbpfProxierOptions extends ProxierNodeOptions {
  /**
   * The cgroup v2 directory whose sockets are balanced, with every cgroup below it
   * (default: the root of the cgroup v2 hierarchy, that is every process of the node).
   */
  readonly cgroupPath?: string;
  /** bpffs directory for the pinned programs and maps (default {@link DEFAULT_PIN_PATH}). */
  readonly pinPath?: string;
  /** The compiled programs (default: `dist/bpf/sock_lb.o` of this package). */
  readonly objectPath?: string;
  /** Node ports also answer on 127.0.0.1 (default true, as kube-proxy's iptables mode). */
  readonly localhostNodePorts?: boolean;
}

/** What the last sync wrote. */
export interface EbpfAppliedBatch {
  readonly full: boolean;
  /** The operations, in the order they were written. */
  readonly ops: readonly MapOp[];
  /** The exact `bpftool batch` script. */
  readonly script: string;
  /** Frontends two service ports asked for; the first keeps it. */
  readonly conflicts: readonly FrontendConflict[];
}

/**
 * The object file shipped with the package: `dist/bpf/sock_lb.o` next to the built module,
 * or, when running from source, in the package's `dist`.
 */
export function defaultObjectPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, "bpf", "sock_lb.o"), join(here, "..", "dist", "bpf", "sock_lb.o")];
  return candidates.find((p) => existsSync(p)) ?? (candidates[0] as string);
}

/**
 * The eBPF service-proxy backend (socket load balancing in cgroup hooks).
 *
 * - **Serves** the sockets of every process in `cgroupPath` and below (the node and its
 *   pods, with the default root cgroup): cluster IPs, external IPs, load-balancer IPs,
 *   and node ports on the node's IPs, over TCP, UDP and SCTP, IPv4 and IPv6.
 * - **Does not serve** traffic that arrives from other hosts (node ports and
 *   load-balancer IPs reached from outside): that needs a tc or XDP program.
 * - **First sync** loads and pins the programs and maps (reusing maps a previous run left,
 *   so connections keep working across restarts) and attaches the programs to the cgroup
 *   (alongside other programs: `BPF_F_ALLOW_MULTI`), then detaches any older worknode
 *   programs there.
 * - **Full sync** reads the maps back from the kernel and writes the difference to the
 *   whole snapshot, deleting whatever is not in it. **Partial sync** writes the
 *   difference for the changed service ports only, from what it last wrote.
 * - The writes are ordered so that no socket ever sees a half-written service (see
 *   {@link EbpfMapState}); a failed batch throws {@link ProxySyncError} naming the failing
 *   line, and the next sync is full.
 */
export class EbpfProxier implements Proxier {
  /** `--proxy-mode` name. */
  readonly mode = "ebpf";
  /** Backend metrics. */
  readonly metrics: Registry;
  private readonly support: ProxierSupport;
  /** bpftool does not care about network namespaces, and `ip netns exec` would hide /sys/fs/bpf. */
  private readonly runner: CommandRunner;
  private readonly pinPath: string;
  private readonly mapsDir: string;
  private loaded = false;
  private state: EbpfMapState | undefined;
  private last: EbpfAppliedBatch | undefined;
  private readonly syncFailures: Counter;
  private readonly frontendsGauge: Gauge;
  private readonly backendsGauge: Gauge;

  constructor(private readonly options: EbpfProxierOptions) {
    // Socket load balancing has no NAT and so no conntrack entries to clean up.
    this.support = new ProxierSupport({ ...options, conntrack: false });
    this.runner = options.runner ?? createCommandRunner();
    this.pinPath = options.pinPath ?? DEFAULT_PIN_PATH;
    this.mapsDir = join(this.pinPath, `maps-v${MAP_LAYOUT_VERSION}`);
    this.metrics = new Registry();
    const registers = [this.metrics];
    this.syncFailures = new Counter({
      name: "worknode_proxy_ebpf_sync_failures_total",
      help: "Total number of eBPF map sync failures",
      registers,
    });
    this.frontendsGauge = new Gauge({
      name: "worknode_proxy_ebpf_frontends",
      help: "Frontends (service address, port, protocol) in the service map after the last successful sync",
      registers,
    });
    this.backendsGauge = new Gauge({
      name: "worknode_proxy_ebpf_backend_slots",
      help: "Backend slots in the backend map after the last successful sync",
      registers,
    });
  }

  /** The families this proxier programs. */
  get families(): readonly IPFamily[] {
    return this.support.families;
  }

  /** The health-check node port server, when {@link ProxierNodeOptions.healthCheck} is set. */
  get serviceHealth(): ServiceHealthServer | undefined {
    return this.support.serviceHealth;
  }

  /** The node labels the maps are planned with. */
  get currentNodeLabels(): Readonly<Record<string, string>> | undefined {
    return this.support.nodeLabels;
  }

  /** The directory of the pinned maps. */
  get mapsPath(): string {
    return this.mapsDir;
  }

  /** What the last sync wrote (whether or not it succeeded). */
  lastApplied(): EbpfAppliedBatch | undefined {
    return this.last;
  }

  private get logger(): Logger {
    return this.support.logger;
  }

  /**
   * The labels of this node's Node object changed (its zone drives topology hints): the
   * next sync is full. Equal labels change nothing.
   * @returns whether the labels changed
   */
  setNodeLabels(labels: Readonly<Record<string, string>> | undefined): boolean {
    if (!this.support.setNodeLabels(labels)) return false;
    this.state = undefined;
    return true;
  }

  private planOptions(): PlanOptions {
    const o = this.options;
    return {
      families: this.support.families,
      ...(o.nodePortAddresses !== undefined ? { nodePortAddresses: o.nodePortAddresses } : {}),
      ...(o.localhostNodePorts !== undefined ? { localhostNodePorts: o.localhostNodePorts } : {}),
    };
  }

  /**
   * Plans the given service ports (every one when `keys` is undefined) of `snapshot`;
   * a key without a service port plans its deletion.
   */
  planPorts(snapshot: ServiceSnapshot, keys?: Iterable<string>): Map<string, PortPlan | undefined> {
    return planServicePorts(snapshot, this.support.node(), this.planOptions(), keys);
  }

  /** What a full sync would write onto empty maps, without touching the node (`worknode proxy plan`). */
  plan(input: Pick<SyncInput, "snapshot">): EbpfAppliedBatch {
    const diff = EbpfMapState.empty().apply(this.planPorts(input.snapshot), true);
    return {
      full: true,
      ops: diff.ops,
      script: renderBatch(diff.ops, this.mapsDir),
      conflicts: diff.conflicts,
    };
  }

  /**
   * What a full sync would write now: the difference between the maps pinned on the node
   * (none yet: empty maps) and the whole snapshot, without writing it (`worknode proxy plan --diff`).
   */
  async diff(input: Pick<SyncInput, "snapshot">): Promise<EbpfAppliedBatch> {
    const pinned = ALL_MAPS.every((m) => existsSync(join(this.mapsDir, m)));
    const state = pinned ? await this.readKernelState() : EbpfMapState.empty();
    const diff = state.apply(this.planPorts(input.snapshot), true);
    return {
      full: true,
      ops: diff.ops,
      script: renderBatch(diff.ops, this.mapsDir),
      conflicts: diff.conflicts,
    };
  }

  /** Programs the maps; see the class documentation. */
  async sync(input: SyncInput): Promise<SyncStats> {
    if (!this.loaded) await this.load();
    const full = input.full || this.state === undefined;
    const state = full ? await this.readKernelState() : (this.state as EbpfMapState);
    // The state describes the kernel only once the batch has gone through.
    this.state = undefined;
    const keys = full
      ? undefined
      : new Set([...input.changes.changedServicePorts, ...input.changes.deletedServicePorts]);
    const diff = state.apply(this.planPorts(input.snapshot, keys), full);
    const script = renderBatch(diff.ops, this.mapsDir);
    this.last = { full, ops: diff.ops, script, conflicts: diff.conflicts };
    for (const c of diff.conflicts)
      this.logger.warn(
        { frontend: c.frontend, owner: c.owner, refused: c.refused },
        "two service ports use one frontend; the first keeps it",
      );
    if (script !== "") {
      const failure = await runBatch(this.runner, script);
      if (failure !== undefined) {
        this.syncFailures.inc();
        const lines = script.trimEnd().split("\n");
        const failingLine =
          failure.index >= 0 && failure.index < lines.length ? lines[failure.index] : undefined;
        throw new ProxySyncError(
          this.mode,
          `bpftool batch failed${failure.index >= 0 ? ` at line ${failure.index + 1}` : ""}: ${failure.message}`,
          failingLine !== undefined ? { failingLine } : {},
        );
      }
    }
    this.state = state;
    this.frontendsGauge.set(state.frontendCount);
    this.backendsGauge.set(state.backendSlotCount);
    await this.support.afterSync(input);
    let endpoints = 0;
    for (const list of input.snapshot.endpoints.values()) endpoints += list.length;
    return { servicePorts: input.snapshot.services.size, endpoints, written: diff.ops.length };
  }

  private async readKernelState(): Promise<EbpfMapState> {
    const [frontends, backends] = await Promise.all([
      readFrontends(this.runner, join(this.mapsDir, SERVICES_MAP)),
      readBackends(this.runner, join(this.mapsDir, BACKENDS_MAP)),
    ]);
    return EbpfMapState.fromKernel({ frontends, backends }, frontendId);
  }

  private async cgroupPath(): Promise<string> {
    const path = this.options.cgroupPath ?? (await cgroup2Root());
    await requireCgroup2(path);
    return path;
  }

  /**
   * Loads the programs (reusing pinned maps of the same layout), attaches them to the
   * cgroup, then detaches older worknode programs and removes their pins.
   */
  private async load(): Promise<void> {
    await requireBpffs(dirname(this.pinPath));
    const cgroup = await this.cgroupPath();
    await mkdir(this.pinPath, { recursive: true });
    const reuse = ALL_MAPS.every((m) => existsSync(join(this.mapsDir, m)));
    const progsDir = join(this.pinPath, `progs-${Date.now()}-${process.pid}`);
    const objectPath = this.options.objectPath ?? defaultObjectPath();
    const mapArgs = reuse
      ? ALL_MAPS.flatMap((m) => ["map", "name", m, "pinned", join(this.mapsDir, m)])
      : ["pinmaps", this.mapsDir];
    await bpftool(this.runner, ["prog", "loadall", objectPath, progsDir, ...mapArgs]);
    const before = await attachedPrograms(this.runner, cgroup);
    const ours = new Set<number>();
    for (const p of PROGRAMS) {
      const pin = join(progsDir, p.name);
      ours.add(await pinnedProgramId(this.runner, pin));
      await bpftool(this.runner, ["cgroup", "attach", cgroup, p.attachType, "pinned", pin, "multi"]);
    }
    await this.detachWorknodePrograms(cgroup, before, ours);
    for (const entry of await readdir(this.pinPath)) {
      const path = join(this.pinPath, entry);
      if (path !== progsDir && path !== this.mapsDir) await rm(path, { recursive: true, force: true });
    }
    this.loaded = true;
    this.state = undefined;
    this.logger.info(
      { cgroup, pinPath: this.pinPath, reusedMaps: reuse },
      "eBPF socket load balancer attached",
    );
  }

  private async detachWorknodePrograms(
    cgroup: string,
    attached: readonly { id: number; attachType: string; name: string }[],
    keep: ReadonlySet<number>,
  ): Promise<void> {
    const names = new Map(PROGRAMS.map((p) => [p.name, p.attachType]));
    for (const p of attached) {
      const attachType = names.get(p.name);
      if (attachType === undefined || keep.has(p.id)) continue;
      await bpftool(this.runner, ["cgroup", "detach", cgroup, attachType, "id", String(p.id)]);
    }
  }

  /**
   * Detaches every worknode program from the cgroup and removes the pinned programs and
   * maps (`--cleanup`); idempotent, and it works from a fresh process.
   */
  async cleanup(): Promise<void> {
    const cgroup = await this.cgroupPath();
    await this.detachWorknodePrograms(cgroup, await attachedPrograms(this.runner, cgroup), new Set());
    await rm(this.pinPath, { recursive: true, force: true });
    this.loaded = false;
    this.state = undefined;
  }

  /** Closes the health-check listeners this proxier created. */
  async close(): Promise<void> {
    await this.support.close();
  }
}
