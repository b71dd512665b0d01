/**
 * The host side of `worknode proxy`'s backends (iptables and nftables): which IP
 * families work on this node, the proxier of the selected mode, `--cleanup` of
 * everything any implemented mode writes, reading the node's current rules, and
 * letting the kernel canonicalise a planned payload (for `plan --diff`). Everything
 * goes through a {@link CommandRunner}, so tests can swap it and the system tests can
 * run it inside a network namespace.
 *
 * @module
 */
import {
  type CommandRunner,
  createCommandRunner,
  describeError,
  type IPFamily,
  type Logger,
  type Proxier,
  type Registry,
  UnavailableError,
} from "@worknode/core";
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
  /** iptables mode only: node ports also answer on 127.0.0.1. */
  readonly localhostNodePorts: boolean;
  readonly logger: Logger;
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
 * Removes everything every implemented mode ever wrote, as kube-proxy's `--cleanup`:
 * the iptables mode's chains and rules (iptables and ip6tables) and the nftables mode's
 * tables (`ip kube-proxy`, `ip6 kube-proxy`). Idempotent: what is absent, or a family
 * this host cannot program, is skipped.
 * @returns the families in which anything could be cleaned
 * @throws UnavailableError naming what could not be removed
 */
export async function cleanupAllModes(runner: CommandRunner, logger: Logger): Promise<IPFamily[]> {
  const failures: string[] = [];
  const cleaned = new Set<IPFamily>([
    ...(await cleanupIptablesMode(runner, logger, failures)),
    ...(await cleanupNftablesMode(runner, logger, failures)),
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

/** Runs one mode's cleanup at start; throws an UnavailableError naming what failed. */
async function cleanupMode(what: string, clean: (failures: string[]) => Promise<IPFamily[]>): Promise<void> {
  const failures: string[] = [];
  await clean(failures);
  if (failures.length > 0) throw new UnavailableError(what, failures.join("; "));
}

/** The iptables backend: real iptables through `runner` (default: spawn on this host). */
export function createIptablesBackend(runner: CommandRunner = createCommandRunner()): ProxyBackend {
  return {
    mode: "iptables",
    async detectFamilies() {
      const out: IPFamily[] = [];
      for (const f of FAMILIES) if (await iptablesFamilyPresent(runner, f)) out.push(f);
      return out;
    },
    createProxier(options) {
      return new IptablesProxier({ ...options, runner });
    },
    cleanup: (logger) => cleanupAllModes(runner, logger),
    cleanupOtherModes: (logger) =>
      cleanupMode("nftables mode leftovers", (f) => cleanupNftablesMode(runner, logger, f)),
  };
}

/**
 * The nftables backend: kube-proxy's nftables mode (tables `ip kube-proxy` /
 * `ip6 kube-proxy`, one `nft -f -` per family and sync) through `runner`.
 */
export function createNftablesBackend(runner: CommandRunner = createCommandRunner()): ProxyBackend {
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
      });
    },
    cleanup: (logger) => cleanupAllModes(runner, logger),
    cleanupOtherModes: (logger) =>
      cleanupMode("iptables mode leftovers", (f) => cleanupIptablesMode(runner, logger, f)),
  };
}

/** The backend of `mode` on this host (through `runner`). */
export function createProxyBackend(
  mode: ProxyMode,
  runner: CommandRunner = createCommandRunner(),
): ProxyBackend {
  return mode === "nftables" ? createNftablesBackend(runner) : createIptablesBackend(runner);
}

/** What `worknode proxy` reports when no family of the backend's mode works. */
export function noUsableFamilyError(mode: ProxyMode | undefined): UnavailableError {
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
