/**
 * The host side of `worknode proxy`'s backends (iptables, nftables and ebpf): which IP
 * families work on this node, the proxier of the selected mode, `--cleanup` of
 * everything any implemented mode writes, reading the node's current rules, and
 * letting the kernel canonicalise a planned payload (for `plan --diff`). Everything
 * goes through a {@link CommandRunner}, so tests can swap it and the system tests can
 * run it inside a network namespace (the ebpf mode's file-system checks too, with
 * `stat -f`; only the removal of its pin directory, by the ebpf proxier, is done here).
 *
 * @module
 */
import { dirname } from "node:path";
import {
  type CommandRunner,
  createCommandRunner,
  describeError,
  type IPFamily,
  type Logger,
  type Proxier,
  type Registry,
  type ServiceHealthServer,
  UnavailableError,
} from "@worknode/core";
import {
  BPF_FS_MAGIC,
  CGROUP2_SUPER_MAGIC,
  cgroup2Root,
  DEFAULT_PIN_PATH,
  EbpfProxier,
  EbpfUnavailableError,
} from "@worknode/proxy-ebpf";
import { binariesFor, IptablesProxier } from "@worknode/proxy-iptables";
import { NFTABLES_TABLE, NftablesProxier, nftFamily } from "@worknode/proxy-nftables";
import type { ProxyMode } from "./proxy-config.js";

/** A proxier as the CLI drives it: the core contract plus its metrics registry. */
export type CliProxier = Proxier & { readonly metrics?: Registry };

/** What the CLI hands a backend to build its proxier (kube-proxy's settings, resolved). */
export interface CliProxierOptions {
  readonly nodeName: string;
  /** The node's addresses, primary ones first. */
  readonly nodeIPs: readonly string[];
  /** The IP families to program (those {@link ProxyBackend.detectFamilies} found). */
  readonly families: readonly IPFamily[];
  readonly clusterCIDRs: readonly string[];
  readonly masqueradeAll: boolean;
  /** Node addresses (CIDRs, keywords expanded) that accept node-port traffic. */
  readonly nodePortAddresses: readonly string[];
  readonly masqueradeBit: number;
  /** iptables and ebpf modes: node ports also answer on 127.0.0.1. */
  readonly localhostNodePorts: boolean;
  readonly logger: Logger;
  /**
   * The health-check node port server the proxier updates after every sync (owned by the
   * caller); unset: none.
   */
  readonly serviceHealth?: ServiceHealthServer;
}

/** What `worknode proxy` and `worknode node` need from the machine; replaceable in tests. */
export interface ProxyBackend {
  /** The proxy mode this backend programs (undefined: iptables, for backends made before modes existed). */
  readonly mode?: ProxyMode;
  /** The IP families this mode can program here (kube-proxy's `Present()` check). */
  detectFamilies(): Promise<IPFamily[]>;
  /** Creates the mode's proxier. */
  createProxier(options: CliProxierOptions): CliProxier;
  /**
   * Removes every rule, chain and table any implemented mode ever wrote, whatever mode
   * this backend programs (as kube-proxy's `--cleanup`); returns the families cleaned.
   */
  cleanup(logger: Logger): Promise<IPFamily[]>;
  /**
   * Removes what the other implemented modes wrote (kube-proxy does this when it starts,
   * so that a node switched between modes is not programmed twice). Optional.
   * @throws UnavailableError naming what could not be removed
   */
  cleanupOtherModes?(logger: Logger): Promise<void>;
}

const FAMILIES: readonly IPFamily[] = ["IPv4", "IPv6"];

/**
 * Where the ebpf mode attaches and pins: for its backend, and for removing its leftovers
 * from any mode (`--cleanup`, the other modes' start).
 */
export interface EbpfBackendOptions {
  /** cgroup v2 directory the programs are attached to; undefined: the cgroup v2 root. */
  readonly cgroupPath?: string;
  /** bpffs directory of the pinned programs and maps (default `/sys/fs/bpf/worknode`). */
  readonly pinPath?: string;
  /** Finds the root of the cgroup v2 hierarchy (default: from `/proc/self/mountinfo`). */
  readonly cgroup2Root?: () => Promise<string>;
  /**
   * Detaches the worknode programs from `cgroupPath` and removes `pinPath` (default: a fresh
   * {@link EbpfProxier}'s `cleanup`). Called only when `pinPath` is a directory on bpffs.
   */
  readonly removePinned?: (target: EbpfCleanupTarget) => Promise<void>;
}

/** What {@link EbpfBackendOptions.removePinned} removes. */
export interface EbpfCleanupTarget {
  readonly runner: CommandRunner;
  readonly cgroupPath: string;
  readonly pinPath: string;
}

/** Options of {@link createProxyBackend} besides the runner. */
export interface ProxyBackendOptions {
  /** The ebpf mode's paths (its backend's, and where every mode looks for its leftovers). */
  readonly ebpf?: EbpfBackendOptions;
}

/**
 * Whether iptables of `family` works: `iptables -w 5 -t nat -n -L POSTROUTING` succeeds
 * (what kube-proxy checks before using a family). Lists only; creates nothing.
 */
export async function iptablesFamilyPresent(runner: CommandRunner, family: IPFamily): Promise<boolean> {
  const { iptables } = binariesFor(family);
  const out = await runner.exec(iptables, ["-w", "5", "-t", "nat", "-n", "-L", "POSTROUTING"]);
  return out.code === 0;
}

/**
 * Whether nftables of `family` works: `nft list tables ip|ip6` succeeds (the nft binary
 * runs and the kernel answers for that family). Lists only; creates nothing.
 */
export async function nftablesFamilyPresent(runner: CommandRunner, family: IPFamily): Promise<boolean> {
  const out = await runner.exec("nft", ["list", "tables", nftFamily(family)]);
  return out.code === 0;
}

/**
 * The file-system type of `path` (`stat -f -c %t`, through `runner`); undefined when stat
 * fails (the path does not exist) or prints no number.
 */
export async function fileSystemType(runner: CommandRunner, path: string): Promise<number | undefined> {
  const out = await runner.exec("stat", ["-f", "-c", "%t", path]);
  if (out.code !== 0) return undefined;
  const text = out.stdout.trim();
  return /^[0-9a-f]+$/i.test(text) ? Number.parseInt(text, 16) : undefined;
}

/**
 * Checks that the ebpf mode can run here: `bpftool` runs, the parent of the pin path is a
 * bpffs mount and the cgroup path (default: the cgroup v2 root) is a cgroup v2 directory.
 * Creates nothing.
 * @returns the cgroup path
 * @throws EbpfUnavailableError saying what is missing and how to provide it
 */
export async function checkEbpfAvailable(runner: CommandRunner, o: EbpfBackendOptions = {}): Promise<string> {
  const bpffs = dirname(o.pinPath ?? DEFAULT_PIN_PATH);
  const type = await fileSystemType(runner, bpffs);
  if (type !== BPF_FS_MAGIC) {
    throw new EbpfUnavailableError(
      `proxy mode ebpf: ${bpffs} ${type === undefined ? "is not there" : "is not a bpffs mount"}; mount bpffs: mount -t bpf bpf ${bpffs}`,
    );
  }
  const cgroup = o.cgroupPath ?? (await (o.cgroup2Root ?? cgroup2Root)());
  const cgroupType = await fileSystemType(runner, cgroup);
  if (cgroupType !== CGROUP2_SUPER_MAGIC) {
    throw new EbpfUnavailableError(
      `proxy mode ebpf: ${cgroupType === undefined ? `cgroup ${cgroup} is not there` : `${cgroup} is not a cgroup v2 directory`} (--ebpf-cgroup-path)`,
    );
  }
  const version = await runner.exec("bpftool", ["version"]);
  if (version.code !== 0) {
    const why = (version.stderr.trim().split("\n")[0] ?? "") || `exit ${version.code}`;
    throw new EbpfUnavailableError(
      `proxy mode ebpf: bpftool does not run (${why}); install bpftool (and run as root)`,
    );
  }
  return cgroup;
}

/**
 * Removes everything every implemented mode ever wrote, as kube-proxy's `--cleanup`:
 * the iptables mode's chains and rules (iptables and ip6tables), the nftables mode's
 * tables (`ip kube-proxy`, `ip6 kube-proxy`) and the ebpf mode's programs (detached from
 * the cgroup) and pins. Idempotent: what is absent, or a family this host cannot program,
 * is skipped.
 * @param ebpf where the ebpf mode attached and pinned (defaults: cgroup v2 root, `/sys/fs/bpf/worknode`)
 * @returns the families in which anything could be cleaned
 * @throws UnavailableError naming what could not be removed
 */
export async function cleanupAllModes(
  runner: CommandRunner,
  logger: Logger,
  ebpf: EbpfBackendOptions = {},
): Promise<IPFamily[]> {
  const failures: string[] = [];
  const cleaned = new Set<IPFamily>([
    ...(await cleanupIptablesMode(runner, logger, failures)),
    ...(await cleanupNftablesMode(runner, logger, failures)),
    ...(await cleanupEbpfMode(runner, logger, failures, ebpf)),
  ]);
  if (failures.length > 0) {
    throw new UnavailableError("proxy cleanup", `cleanup incomplete: ${failures.join("; ")}`);
  }
  return FAMILIES.filter((f) => cleaned.has(f));
}

/** Removes the iptables mode's chains and rules in each family where iptables works; failures go to `failures`. */
async function cleanupIptablesMode(
  runner: CommandRunner,
  logger: Logger,
  failures: string[],
): Promise<IPFamily[]> {
  const cleaned: IPFamily[] = [];
  for (const family of FAMILIES) {
    if (!(await iptablesFamilyPresent(runner, family))) {
      logger.info({ family }, "iptables of this family not usable here; nothing to clean up");
      continue;
    }
    const proxier = new IptablesProxier({ nodeName: "cleanup", families: [family], runner });
    try {
      await proxier.cleanup();
      cleaned.push(family);
      logger.info({ family }, "iptables rules removed");
    } catch (err) {
      const detail = err instanceof Error ? err.message.split("\n").slice(1).join("; ") : "";
      failures.push(`iptables ${family}: ${detail || describeError(err)}`);
    }
  }
  return cleaned;
}

/** Deletes the nftables mode's tables in each family where nft works (absent tables are fine); failures go to `failures`. */
async function cleanupNftablesMode(
  runner: CommandRunner,
  logger: Logger,
  failures: string[],
): Promise<IPFamily[]> {
  const cleaned: IPFamily[] = [];
  for (const family of FAMILIES) {
    if (!(await nftablesFamilyPresent(runner, family))) {
      logger.info({ family }, "nftables of this family not usable here; nothing to clean up");
      continue;
    }
    const table = `${nftFamily(family)} ${NFTABLES_TABLE}`;
    // `add` first, so that deleting an absent table is not an error.
    const out = await runner.exec("nft", ["-f", "-"], `add table ${table}\ndelete table ${table}\n`);
    if (out.code !== 0) failures.push(`nftables ${family}: ${out.stderr.trim() || `exit ${out.code}`}`);
    else {
      cleaned.push(family);
      logger.info({ family, table }, "nftables table removed (or was absent)");
    }
  }
  return cleaned;
}

/**
 * Detaches the ebpf mode's programs and removes its pin directory when that directory is
 * on bpffs (no bpffs or no pin directory: nothing to clean up); failures go to `failures`.
 * The programs serve both families: both are reported cleaned.
 */
async function cleanupEbpfMode(
  runner: CommandRunner,
  logger: Logger,
  failures: string[],
  o: EbpfBackendOptions,
): Promise<IPFamily[]> {
  const pinPath = o.pinPath ?? DEFAULT_PIN_PATH;
  // A pin directory is on bpffs; anything else at that path is not the ebpf mode's.
  if ((await fileSystemType(runner, pinPath)) !== BPF_FS_MAGIC) {
    logger.info({ pinPath }, "no ebpf mode pin directory on bpffs; nothing to clean up");
    return [];
  }
  try {
    const cgroupPath = o.cgroupPath ?? (await (o.cgroup2Root ?? cgroup2Root)());
    await (o.removePinned ?? removePinnedWithProxier)({ runner, cgroupPath, pinPath });
    logger.info({ cgroupPath, pinPath }, "ebpf programs detached and pins removed");
    return [...FAMILIES];
  } catch (err) {
    failures.push(`ebpf ${pinPath}: ${describeError(err)}`);
    return [];
  }
}

/** The default {@link EbpfBackendOptions.removePinned}: a fresh EbpfProxier's cleanup. */
async function removePinnedWithProxier(t: EbpfCleanupTarget): Promise<void> {
  const proxier = new EbpfProxier({
    nodeName: "cleanup",
    runner: t.runner,
    cgroupPath: t.cgroupPath,
    pinPath: t.pinPath,
  });
  try {
    await proxier.cleanup();
  } finally {
    await proxier.close();
  }
}

/**
 * Runs the other modes' cleanups at start, each in turn (a failure does not stop the
 * next); throws an UnavailableError naming what failed.
 */
async function cleanupModes(
  what: string,
  cleaners: readonly ((failures: string[]) => Promise<IPFamily[]>)[],
): Promise<void> {
  const failures: string[] = [];
  for (const clean of cleaners) await clean(failures);
  if (failures.length > 0) throw new UnavailableError(what, failures.join("; "));
}

/**
 * The iptables backend: real iptables through `runner` (default: spawn on this host).
 * @param ebpf where to look for the ebpf mode's leftovers
 */
export function createIptablesBackend(
  runner: CommandRunner = createCommandRunner(),
  ebpf: EbpfBackendOptions = {},
): ProxyBackend {
  return {
    mode: "iptables",
    async detectFamilies() {
      const out: IPFamily[] = [];
      for (const f of FAMILIES) if (await iptablesFamilyPresent(runner, f)) out.push(f);
      return out;
    },
    createProxier(options) {
      return new IptablesProxier({
        ...options,
        runner,
        ...(options.serviceHealth !== undefined ? { healthCheck: options.serviceHealth } : {}),
      });
    },
    cleanup: (logger) => cleanupAllModes(runner, logger, ebpf),
    cleanupOtherModes: (logger) =>
      cleanupModes("nftables and ebpf mode leftovers", [
        (f) => cleanupNftablesMode(runner, logger, f),
        (f) => cleanupEbpfMode(runner, logger, f, ebpf),
      ]),
  };
}

/**
 * The nftables backend: kube-proxy's nftables mode (tables `ip kube-proxy` /
 * `ip6 kube-proxy`, one `nft -f -` per family and sync) through `runner`.
 * @param ebpf where to look for the ebpf mode's leftovers
 */
export function createNftablesBackend(
  runner: CommandRunner = createCommandRunner(),
  ebpf: EbpfBackendOptions = {},
): ProxyBackend {
  return {
    mode: "nftables",
    async detectFamilies() {
      const out: IPFamily[] = [];
      for (const f of FAMILIES) if (await nftablesFamilyPresent(runner, f)) out.push(f);
      return out;
    },
    createProxier(options) {
      // localhostNodePorts is iptables-only: kube-proxy's nftables mode never serves 127.0.0.1.
      return new NftablesProxier({
        nodeName: options.nodeName,
        nodeIPs: [...options.nodeIPs],
        families: [...options.families],
        clusterCIDRs: [...options.clusterCIDRs],
        masqueradeAll: options.masqueradeAll,
        nodePortAddresses: [...options.nodePortAddresses],
        masqueradeBit: options.masqueradeBit,
        logger: options.logger,
        runner,
        ...(options.serviceHealth !== undefined ? { healthCheck: options.serviceHealth } : {}),
      });
    },
    cleanup: (logger) => cleanupAllModes(runner, logger, ebpf),
    cleanupOtherModes: (logger) =>
      cleanupModes("iptables and ebpf mode leftovers", [
        (f) => cleanupIptablesMode(runner, logger, f),
        (f) => cleanupEbpfMode(runner, logger, f, ebpf),
      ]),
  };
}

/**
 * The ebpf backend: socket load balancing in cgroup hooks ({@link EbpfProxier}), for both
 * IP families (the hooks do not depend on iptables or nft), where bpffs and cgroup v2 are
 * there ({@link checkEbpfAvailable}). `bpftool` runs through `runner`, which must see the
 * host's /sys/fs/bpf (not `ip netns exec`, which remounts /sys).
 */
export function createEbpfBackend(
  runner: CommandRunner = createCommandRunner(),
  ebpf: EbpfBackendOptions = {},
): ProxyBackend {
  return {
    mode: "ebpf",
    async detectFamilies() {
      await checkEbpfAvailable(runner, ebpf);
      return [...FAMILIES];
    },
    createProxier(options) {
      // No NAT: cluster CIDRs, masquerade-all and the masquerade bit do not apply.
      return new EbpfProxier({
        nodeName: options.nodeName,
        nodeIPs: [...options.nodeIPs],
        families: [...options.families],
        nodePortAddresses: [...options.nodePortAddresses],
        localhostNodePorts: options.localhostNodePorts,
        logger: options.logger,
        runner,
        ...(options.serviceHealth !== undefined ? { healthCheck: options.serviceHealth } : {}),
        ...(ebpf.cgroupPath !== undefined ? { cgroupPath: ebpf.cgroupPath } : {}),
        ...(ebpf.pinPath !== undefined ? { pinPath: ebpf.pinPath } : {}),
      });
    },
    cleanup: (logger) => cleanupAllModes(runner, logger, ebpf),
    async cleanupOtherModes(logger) {
      // Serving one cgroup only, the ebpf mode runs beside whatever serves the rest of the
      // node (and the traffic from other hosts): it replaces the other modes only when it
      // serves the whole node.
      const root = await (ebpf.cgroup2Root ?? cgroup2Root)();
      if (ebpf.cgroupPath !== undefined && !sameDirectory(ebpf.cgroupPath, root)) {
        logger.info(
          { cgroupPath: ebpf.cgroupPath },
          "ebpf mode serves one cgroup only: the other modes' rules are left alone",
        );
        return;
      }
      await cleanupModes("iptables and nftables mode leftovers", [
        (f) => cleanupIptablesMode(runner, logger, f),
        (f) => cleanupNftablesMode(runner, logger, f),
      ]);
    },
  };
}

function sameDirectory(a: string, b: string): boolean {
  const trim = (p: string) => (p.length > 1 ? p.replace(/\/+$/, "") : p);
  return trim(a) === trim(b);
}

/** The backend of `mode` on this host (through `runner`). */
export function createProxyBackend(
  mode: ProxyMode,
  runner: CommandRunner = createCommandRunner(),
  options: ProxyBackendOptions = {},
): ProxyBackend {
  const ebpf = options.ebpf ?? {};
  switch (mode) {
    case "nftables":
      return createNftablesBackend(runner, ebpf);
    case "ebpf":
      return createEbpfBackend(runner, ebpf);
    default:
      return createIptablesBackend(runner, ebpf);
  }
}

/** What `worknode proxy` reports when no family of the backend's mode works. */
export function noUsableFamilyError(mode: ProxyMode | undefined): UnavailableError {
  if (mode === "ebpf") {
    return new UnavailableError("bpftool", "no usable eBPF socket load balancing on this node");
  }
  if (mode === "nftables") {
    return new UnavailableError(
      "nft",
      "no usable nftables: `nft list tables ip` and `nft list tables ip6` both failed (is nft installed, and do we run as root?)",
    );
  }
  return new UnavailableError(
    "iptables",
    "no usable iptables: `iptables -t nat -L POSTROUTING` and `ip6tables -t nat -L POSTROUTING` both failed (is iptables installed, and do we run as root?)",
  );
}

/** The tables `worknode proxy plan --diff` compares. */
export const DIFF_TABLES = ["filter", "nat", "mangle"] as const;
/** A table `worknode proxy plan --diff` compares. */
export type DiffTable = (typeof DIFF_TABLES)[number];

/**
 * `iptables-save -t <table>` of `family` for each of {@link DIFF_TABLES}, concatenated.
 * @throws UnavailableError when iptables-save fails (not root, no iptables)
 */
export async function saveTables(runner: CommandRunner, family: IPFamily): Promise<string> {
  const { save } = binariesFor(family);
  let text = "";
  for (const table of DIFF_TABLES) {
    const out = await runner.exec(save, ["-t", table]);
    if (out.code !== 0) {
      const why = (out.stderr.trim().split("\n")[0] ?? "") || `exit ${out.code}`;
      throw new UnavailableError(
        save,
        `${save} -t ${table} failed: ${why} (reading the node's rules needs root)`,
      );
    }
    text += out.stdout;
  }
  return text;
}

/**
 * Applies `payload` with `iptables-restore --noflush` in a fresh, empty network
 * namespace (`unshare --net`, gone when the command exits) and returns that
 * namespace's `iptables-save` of {@link DIFF_TABLES}: the rules exactly as the kernel
 * stores and prints them, comparable line by line with the node's own save.
 * @throws UnavailableError when unshare or the restore fails
 */
export async function canonicalizeInScratchNetns(
  runner: CommandRunner,
  family: IPFamily,
  payload: string,
): Promise<string> {
  const { restore, save } = binariesFor(family);
  // A fixed script; the program names are positional parameters and the payload is stdin.
  const script = '"$0" -w 5 --noflush && "$1" -t filter && "$1" -t nat && "$1" -t mangle';
  const out = await runner.exec("unshare", ["--net", "--", "sh", "-c", script, restore, save], payload);
  if (out.code !== 0) {
    const why = (out.stderr.trim().split("\n")[0] ?? "") || `exit ${out.code}`;
    throw new UnavailableError(
      "unshare",
      `cannot canonicalise the planned ${family} rules in a scratch network namespace: ${why}`,
    );
  }
  return out.stdout;
}

/** Whether an nft error says the table (or another object) does not exist. */
function isNftNotFound(stderr: string): boolean {
  return /No such file or directory/i.test(stderr);
}

/**
 * `nft -s list table <ip|ip6> <table>` on the node: the nftables mode's table as nft
 * prints it, without counter values; empty text when the table does not exist.
 * @throws UnavailableError when nft fails otherwise (not root, no nft)
 */
export async function listNftTable(
  runner: CommandRunner,
  family: IPFamily,
  table: string = NFTABLES_TABLE,
): Promise<string> {
  const out = await runner.exec("nft", ["-s", "list", "table", nftFamily(family), table]);
  if (out.code === 0) return out.stdout;
  if (isNftNotFound(out.stderr)) return "";
  const why = (out.stderr.trim().split("\n")[0] ?? "") || `exit ${out.code}`;
  throw new UnavailableError(
    "nft",
    `nft list table ${nftFamily(family)} ${table} failed: ${why} (reading the node's rules needs root)`,
  );
}

/**
 * Applies an nft transaction (`nft -f -`) in a fresh, empty network namespace
 * (`unshare --net`, gone when the command exits) and returns that namespace's
 * `nft -s list table` of the table: the planned rules exactly as nft prints them,
 * comparable with {@link listNftTable}'s output.
 * @throws UnavailableError when unshare or nft fails
 */
export async function canonicalizeNftInScratchNetns(
  runner: CommandRunner,
  family: IPFamily,
  payload: string,
  table: string = NFTABLES_TABLE,
): Promise<string> {
  // A fixed script; family and table are positional parameters and the payload is stdin.
  const script = 'nft -f - && nft -s list table "$0" "$1"';
  const out = await runner.exec(
    "unshare",
    ["--net", "--", "sh", "-c", script, nftFamily(family), table],
    payload,
  );
  if (out.code !== 0) {
    const why = (out.stderr.trim().split("\n")[0] ?? "") || `exit ${out.code}`;
    throw new UnavailableError(
      "unshare",
      `cannot canonicalise the planned ${family} nftables rules in a scratch network namespace: ${why}`,
    );
  }
  return out.stdout;
}
