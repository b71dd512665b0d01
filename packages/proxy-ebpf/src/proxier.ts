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
  type StaleConntrack,
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
import { EbpfMapState, type FrontendConflict, type MapDiff, type MapOp } from "./maps/state.js";
import {
  GONE_BACKENDS_MAP,
  goneUdpBackends,
  listNetnsHandles,
  netnsTargets,
  renderGoneBackendsBatch,
  runDestroyIterator,
  UDP_DESTROY_ITER,
} from "./sock-destroy.js";

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
  /**
   * Destroy connected UDP sockets whose backend left its service (default true; needs
   * Linux >= 6.5). Without it such a socket keeps its backend until it reconnects.
   */
  readonly socketTermination?: boolean;
  /** The compiled socket-termination iterator (default: `dist/bpf/sock_destroy.o` of this package). */
  readonly socketDestroyObjectPath?: string;
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
  return shippedObject("sock_lb.o");
}

/** The socket-termination object shipped with the package (`dist/bpf/sock_destroy.o`), found as {@link defaultObjectPath}. */
export function defaultSocketDestroyObjectPath(): string {
  return shippedObject("sock_destroy.o");
}

function shippedObject(name: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, "bpf", name), join(here, "..", "dist", "bpf", name)];
  return candidates.find((p) => existsSync(p)) ?? (candidates[0] as string);
}

/** The kernel keeps 15 characters of a map name. */
const GONE_BACKENDS_KERNEL_NAME = GONE_BACKENDS_MAP.slice(0, 15);

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
 * - **Socket termination:** after a sync in which UDP endpoints left their service
 *   (`changes.staleConntrack`), connected UDP sockets whose peer is one of them are destroyed
 *   in every network namespace of the node (the owner gets `ECONNABORTED` and reconnects),
 *   as kube-proxy deletes their conntrack entries. Failures are logged and counted, never
 *   fail the sync.
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
  private readonly destroyFailures: Counter;
  private readonly socketsDestroyed: Counter;
  /** The pinned iterator and map of socket termination, once loaded. */
  private destroy: { readonly iterPin: string; readonly mapPin: string } | undefined;

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
    this.destroyFailures = new Counter({
      name: "worknode_proxy_ebpf_socket_destroy_failures_total",
      help: "Total number of failures to load or run socket termination (destroying connected UDP sockets of removed endpoints)",
      registers,
    });
    this.socketsDestroyed = new Counter({
      name: "worknode_proxy_ebpf_sockets_destroyed_total",
      help: "Total number of connected UDP sockets destroyed because their endpoint left the service",
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
    return this.batchOf(EbpfMapState.empty().apply(this.planPorts(input.snapshot), true), true);
  }

  /**
   * What a full sync would write now: the difference between the maps pinned on the node
   * (none yet: empty maps) and the whole snapshot, without writing it (`worknode proxy plan --diff`).
   */
  async diff(input: Pick<SyncInput, "snapshot">): Promise<EbpfAppliedBatch> {
    const state = this.mapsPinned() ? await this.readKernelState() : EbpfMapState.empty();
    return this.batchOf(state.apply(this.planPorts(input.snapshot), true), true);
  }

  /** The batch that writes `diff`. */
  private batchOf(diff: MapDiff, full: boolean): EbpfAppliedBatch {
    return { full, ops: diff.ops, script: renderBatch(diff.ops, this.mapsDir), conflicts: diff.conflicts };
  }

  /** Whether every map of this layout is pinned (by an earlier run). */
  private mapsPinned(): boolean {
    return ALL_MAPS.every((m) => existsSync(join(this.mapsDir, m)));
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
    this.last = this.batchOf(diff, full);
    const { script } = this.last;
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
    await this.terminateSockets(input.changes.staleConntrack);
    let endpoints = 0;
    for (const list of input.snapshot.endpoints.values()) endpoints += list.length;
    return { servicePorts: input.snapshot.services.size, endpoints, written: diff.ops.length };
  }

  /**
   * Destroys the connected UDP sockets of the node whose peer is an endpoint of `stale`:
   * writes the endpoints into `wn_gone_backends`, reads the iterator in every network
   * namespace, then empties the map again. Never throws.
   */
  private async terminateSockets(stale: readonly StaleConntrack[]): Promise<void> {
    const gone = goneUdpBackends(stale);
    if (gone.length === 0 || this.destroy === undefined) return;
    const { iterPin, mapPin } = this.destroy;
    const fail = (message: string, extra: Record<string, unknown> = {}) => {
      this.destroyFailures.inc();
      this.logger.warn({ ...extra, error: message }, "socket termination failed");
    };
    let written = gone;
    try {
      const failure = await runBatch(this.runner, renderGoneBackendsBatch(gone, mapPin, "update"));
      if (failure !== undefined) {
        // The lines before the failing one went in: those are the ones to take out again.
        written = failure.index >= 0 ? gone.slice(0, failure.index) : [];
        fail(`writing ${GONE_BACKENDS_MAP}: ${failure.message}`);
      } else {
        const targets = netnsTargets(await listNetnsHandles());
        const result = await runDestroyIterator(this.runner, iterPin, targets);
        this.socketsDestroyed.inc(result.destroyed);
        for (const error of result.errors) fail(error);
        this.logger.info(
          { endpoints: gone.length, namespaces: result.namespaces, destroyed: result.destroyed },
          "destroyed connected UDP sockets of removed endpoints",
        );
      }
    } catch (error) {
      fail(String(error));
    }
    if (written.length === 0) return;
    const failure = await runBatch(this.runner, renderGoneBackendsBatch(written, mapPin, "delete"));
    if (failure !== undefined) {
      // Leftovers would destroy sockets of those endpoints at the next run: forget the map.
      fail(
        `clearing ${GONE_BACKENDS_MAP}: ${failure.message}; socket termination is off until the next load`,
      );
      this.destroy = undefined;
    }
  }

  /**
   * Pins the socket-termination iterator in `dir` (`bpftool iter pin` loads the object with
   * a fresh `wn_gone_backends` map) and pins that map beside it. On failure (an old kernel,
   * a missing object) it logs, counts and leaves socket termination off.
   */
  private async loadSocketDestroy(dir: string): Promise<void> {
    this.destroy = undefined;
    if (this.options.socketTermination === false) return;
    const objectPath = this.options.socketDestroyObjectPath ?? defaultSocketDestroyObjectPath();
    const iterPin = join(dir, UDP_DESTROY_ITER);
    const mapPin = join(dir, GONE_BACKENDS_MAP);
    try {
      await bpftool(this.runner, ["iter", "pin", objectPath, iterPin]);
      const link = JSON.parse(await bpftool(this.runner, ["-j", "link", "show", "pinned", iterPin])) as {
        prog_id: number;
      };
      const prog = JSON.parse(
        await bpftool(this.runner, ["-j", "prog", "show", "id", String(link.prog_id)]),
      ) as { map_ids?: number[] };
      let mapId: number | undefined;
      for (const id of prog.map_ids ?? []) {
        const map = JSON.parse(await bpftool(this.runner, ["-j", "map", "show", "id", String(id)])) as {
          name?: string;
        };
        if (map.name === GONE_BACKENDS_KERNEL_NAME) mapId = id;
      }
      if (mapId === undefined) throw new Error(`the iterator program has no ${GONE_BACKENDS_MAP} map`);
      await bpftool(this.runner, ["map", "pin", "id", String(mapId), mapPin]);
      this.destroy = { iterPin, mapPin };
    } catch (error) {
      this.destroyFailures.inc();
      this.logger.warn(
        { error: String(error), object: objectPath },
        "socket termination unavailable: connected UDP sockets keep removed endpoints until they reconnect",
      );
      await rm(iterPin, { force: true });
      await rm(mapPin, { force: true });
    }
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
    const reuse = this.mapsPinned();
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
    await this.loadSocketDestroy(progsDir);
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
   * maps (`--cleanup`), the socket-termination iterator and its map with them (pinned in the
   * programs' directory, attached to nothing else: the last reference goes with the pin);
   * idempotent, and it works from a fresh process.
   */
  async cleanup(): Promise<void> {
    const cgroup = await this.cgroupPath();
    await this.detachWorknodePrograms(cgroup, await attachedPrograms(this.runner, cgroup), new Set());
    await rm(this.pinPath, { recursive: true, force: true });
    this.loaded = false;
    this.state = undefined;
    this.destroy = undefined;
  }

  /** Closes the health-check listeners this proxier created. */
  async close(): Promise<void> {
    await this.support.close();
  }
}
