/**
 * `worknode proxy plan`: what the backend of the selected mode (iptables, nftables
 * or ebpf) would write for a services file, without applying anything; with
 * `--diff`, how that differs from the rules (or, in ebpf mode, the pinned maps) on
 * the node now.
 *
 * @module
 */
import { readFile, stat } from "node:fs/promises";
import {
  type ChangeSet,
  type CommandRunner,
  ConfigError,
  type InvalidObjectError,
  type IPFamily,
  ipFamilyOf,
  readServicesFile,
  ServiceChangeTracker,
  type ServiceSnapshot,
} from "@worknode/core";
import { EbpfProxier } from "@worknode/proxy-ebpf";
import { IptablesProxier } from "@worknode/proxy-iptables";
import { NFTABLES_TABLE, NftablesProxier, nftFamily } from "@worknode/proxy-nftables";
import { CliUsageError, parseFlags, renderHelp } from "../flags.js";
import type { CliIO } from "../main.js";
import {
  canonicalizeInScratchNetns,
  canonicalizeNftInScratchNetns,
  listNftTable,
  saveTables,
} from "./proxy-backend.js";
import {
  PLAN_FLAGS,
  type ProxySettings,
  parseKubeProxyConfiguration,
  preprocessArgs,
  type ResolvedProxySettings,
  resolveProxySettings,
  withoutDefaults,
} from "./proxy-config.js";
import {
  diffOwnedRules,
  formatChainDiffs,
  ownedRules,
  parseIptablesSave,
  withBaseRules,
} from "./proxy-diff.js";
import { describeConflict, formatEbpfDiff } from "./proxy-ebpf-diff.js";
import { diffNftTables, formatNftDiffs, parseNftTable } from "./proxy-nft-diff.js";
import { expandNodePortAddresses } from "./proxy-node-ips.js";

const COMMAND = "worknode proxy plan";
const USAGE =
  "worknode proxy plan --services-file FILE [--proxy-mode iptables|nftables|ebpf] [--diff] [flags]";
const SUMMARY =
  "Print the rules the proxy would write for a services file (iptables-restore payloads or the nft transaction, per family; the bpftool batch of the ebpf maps), without applying them";

/** What `plan` needs from the machine; replaceable in tests. */
export interface PlanDeps {
  /** The node's addresses (primary first), for node ports. */
  readonly nodeIPs: (primaryIP: string | undefined) => string[];
  /** The node name when `--hostname-override` is not given. */
  readonly hostname: () => string;
  /** Runs iptables-save / nft list and the scratch-namespace restore (ebpf: `bpftool map dump`) for `--diff`. */
  readonly runner: CommandRunner;
}

/** Reads a file a flag names, with one-line errors naming the flag. */
export async function readFlagFile(flag: string, path: string): Promise<string> {
  const s = await stat(path).catch(() => undefined);
  if (!s) throw new ConfigError(`--${flag}: ${path} does not exist`);
  if (!s.isFile()) throw new ConfigError(`--${flag}: ${path} is not a file`);
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError(
      `--${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
}

/** The IP families a snapshot has cluster IPs in (IPv4 when it has none). */
export function familiesOf(snapshot: ServiceSnapshot): IPFamily[] {
  const found = new Set<IPFamily>();
  for (const sp of snapshot.services.values()) {
    for (const ip of sp.clusterIPs) {
      const f = ipFamilyOf(ip);
      if (f) found.add(f);
    }
  }
  const out = (["IPv4", "IPv6"] as const).filter((f) => found.has(f));
  return out.length > 0 ? out : ["IPv4"];
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ");
}

/**
 * Runs `worknode proxy plan`. Exit status: 0 when every object of the file was planned,
 * 1 when some were invalid (they are printed on standard error, one line each, and the
 * valid ones planned), 2 for usage errors.
 */
export async function runPlan(argv: readonly string[], io: CliIO, deps: PlanDeps): Promise<number> {
  const pre = preprocessArgs(argv, [], ["masquerade-all", "diff", "iptables-localhost-nodeports"]);
  const { flags, positionals, help } = parseFlags(COMMAND, withoutDefaults(PLAN_FLAGS), pre.argv);
  if (help) {
    io.stdout(renderHelp(USAGE, SUMMARY, PLAN_FLAGS));
    return 0;
  }
  if (positionals.length > 0) throw new CliUsageError(`plan: unexpected argument "${positionals[0]}"`);
  const servicesPath = flags["services-file"];
  if (servicesPath === undefined) throw new CliUsageError("plan: --services-file is required");

  const configPath = flags.config;
  const file =
    configPath !== undefined
      ? parseKubeProxyConfiguration(await readFlagFile("config", configPath), configPath).settings
      : undefined;
  const masqueradeAll = pre.booleans.get("masquerade-all") ?? flags["masquerade-all"];
  const localhostNodePorts =
    pre.booleans.get("iptables-localhost-nodeports") ?? flags["iptables-localhost-nodeports"];
  const explicit: ProxySettings = {
    ...(flags["proxy-mode"] !== undefined ? { mode: flags["proxy-mode"] } : {}),
    ...(flags["hostname-override"] !== undefined ? { hostnameOverride: flags["hostname-override"] } : {}),
    ...(flags["bind-address"] !== undefined ? { bindAddress: flags["bind-address"] } : {}),
    ...(flags["cluster-cidr"] !== undefined ? { clusterCIDR: flags["cluster-cidr"] } : {}),
    ...(masqueradeAll !== undefined ? { masqueradeAll } : {}),
    ...(flags["nodeport-addresses"] !== undefined
      ? { nodePortAddresses: flags["nodeport-addresses"].split(",") }
      : {}),
    ...(flags["iptables-masquerade-bit"] !== undefined
      ? { masqueradeBit: flags["iptables-masquerade-bit"] }
      : {}),
    ...(localhostNodePorts !== undefined ? { localhostNodePorts } : {}),
    ...(flags["ebpf-pin-path"] !== undefined ? { ebpf: { pinPath: flags["ebpf-pin-path"] } } : {}),
  };
  // Servers and sync periods do not shape rules: leave them out of what the file can break here.
  const settings = resolveProxySettings(
    explicit,
    file && { ...file, healthzBindAddress: undefined, metricsBindAddress: undefined },
    configPath,
  );
  const diff = pre.booleans.get("diff") ?? flags.diff ?? false;
  if (settings.unusedFlags !== undefined) {
    io.stderr(
      `${COMMAND}: warning: ${settings.unusedFlags.join(", ")} do not apply to proxy mode ${settings.mode}; ignored\n`,
    );
  }

  await readFlagFile("services-file", servicesPath);
  const content = await readServicesFile(servicesPath);
  const invalid: InvalidObjectError[] = [...content.invalid];
  const nodeName = settings.hostnameOverride ?? deps.hostname().toLowerCase();
  const tracker = new ServiceChangeTracker({ nodeName, onInvalid: (err) => invalid.push(err) });
  for (const svc of content.services) tracker.serviceHandler.onAdd?.(svc);
  for (const slice of content.endpointSlices) tracker.endpointSliceHandler.onAdd?.(slice);
  const { snapshot, changes } = tracker.commit();
  for (const err of invalid) io.stderr(`${COMMAND}: error: ${oneLine(err.message)}\n`);

  const nodeIPs = deps.nodeIPs(settings.primaryIP);
  if (settings.mode === "ebpf") {
    await planEbpf({ io, runner: deps.runner, settings, nodeName, nodeIPs, snapshot, diff });
    return invalid.length > 0 ? 1 : 0;
  }
  const families = familiesOf(snapshot);
  if (settings.mode === "nftables") {
    await planNftables({
      io,
      runner: deps.runner,
      settings,
      nodeName,
      nodeIPs,
      families,
      snapshot,
      changes,
      diff,
    });
    return invalid.length > 0 ? 1 : 0;
  }
  const proxier = new IptablesProxier({
    nodeName,
    nodeIPs,
    families,
    clusterCIDRs: settings.clusterCIDRs,
    masqueradeAll: settings.masqueradeAll,
    nodePortAddresses: expandNodePortAddresses(settings.nodePortAddresses, nodeIPs),
    masqueradeBit: settings.masqueradeBit,
    localhostNodePorts: settings.localhostNodePorts,
    runner: deps.runner,
  });

  for (const family of families) {
    const render = proxier.plan({ snapshot, changes }, family);
    const payload = render.filter + render.nat;
    if (!diff) {
      io.stdout(
        [
          `# worknode proxy plan: mode ${settings.mode}, node ${nodeName}, ${family}: ${render.stats.servicePorts} service ports, ${render.stats.endpoints} endpoints, ${render.stats.natRules} nat + ${render.stats.filterRules} filter rules`,
          `# input of: ${family === "IPv6" ? "ip6tables-restore" : "iptables-restore"} --noflush (a full sync also creates the KUBE-PROXY-CANARY chains and the jump rules from the built-in chains, and deletes stale KUBE-SVC/SEP/... chains)`,
          "",
        ].join("\n") + payload,
      );
      continue;
    }
    const current = ownedRules(parseIptablesSave(await saveTables(deps.runner, family)));
    const planned = ownedRules(
      parseIptablesSave(await canonicalizeInScratchNetns(deps.runner, family, withBaseRules(payload))),
    );
    io.stdout(formatChainDiffs(diffOwnedRules(current, planned), family));
  }
  return invalid.length > 0 ? 1 : 0;
}

/** `plan` in nftables mode: the nft transaction of a full sync per family, or its diff. */
async function planNftables(o: {
  readonly io: CliIO;
  readonly runner: CommandRunner;
  readonly settings: ResolvedProxySettings;
  readonly nodeName: string;
  readonly nodeIPs: readonly string[];
  readonly families: readonly IPFamily[];
  readonly snapshot: ServiceSnapshot;
  readonly changes: ChangeSet;
  readonly diff: boolean;
}): Promise<void> {
  const { settings, io } = o;
  // plan() renders only; the runner is there for --diff's reads, never for nft -f.
  const proxier = new NftablesProxier({
    nodeName: o.nodeName,
    nodeIPs: [...o.nodeIPs],
    families: [...o.families],
    clusterCIDRs: [...settings.clusterCIDRs],
    masqueradeAll: settings.masqueradeAll,
    nodePortAddresses: expandNodePortAddresses(settings.nodePortAddresses, o.nodeIPs),
    masqueradeBit: settings.masqueradeBit,
    runner: o.runner,
  });
  try {
    for (const family of o.families) {
      const render = proxier.plan({ snapshot: o.snapshot, changes: o.changes }, family);
      const table = `${nftFamily(family)} ${NFTABLES_TABLE}`;
      if (!o.diff) {
        io.stdout(
          [
            `# worknode proxy plan: mode nftables, node ${o.nodeName}, ${family}: table ${table}, ${render.stats.servicePorts} service ports, ${render.stats.endpoints} endpoints, ${render.stats.rulesWritten} rules, ${render.stats.elementsWritten} set and map elements`,
            "# input of: nft -f - (one transaction; a full sync also deletes stale service chains and sets)",
            "",
          ].join("\n") + render.payload,
        );
        continue;
      }
      const current = parseNftTable(await listNftTable(o.runner, family));
      const planned = parseNftTable(await canonicalizeNftInScratchNetns(o.runner, family, render.payload));
      io.stdout(formatNftDiffs(diffNftTables(current, planned, table), family, `nft list table ${table}`));
    }
  } finally {
    await proxier.close();
  }
}

/**
 * `plan` in ebpf mode: the `bpftool batch` script a full sync would write onto empty maps
 * (both families, as the ebpf backend programs), or with `--diff` the map operations a
 * full sync would write onto the maps pinned on the node now (none pinned: empty maps).
 */
async function planEbpf(o: {
  readonly io: CliIO;
  readonly runner: CommandRunner;
  readonly settings: ResolvedProxySettings;
  readonly nodeName: string;
  readonly nodeIPs: readonly string[];
  readonly snapshot: ServiceSnapshot;
  readonly diff: boolean;
}): Promise<void> {
  const { settings, io, snapshot } = o;
  // plan() and diff() load nothing and write nothing; the runner reads the pinned maps for --diff.
  const proxier = new EbpfProxier({
    nodeName: o.nodeName,
    nodeIPs: [...o.nodeIPs],
    families: ["IPv4", "IPv6"],
    nodePortAddresses: expandNodePortAddresses(settings.nodePortAddresses, o.nodeIPs),
    localhostNodePorts: settings.localhostNodePorts,
    runner: o.runner,
    ...(settings.ebpf !== undefined ? { pinPath: settings.ebpf.pinPath } : {}),
  });
  try {
    const batch = o.diff ? await proxier.diff({ snapshot }) : proxier.plan({ snapshot });
    for (const c of batch.conflicts) io.stderr(`${COMMAND}: warning: ${describeConflict(c)}\n`);
    if (o.diff) {
      io.stdout(formatEbpfDiff(batch.ops, proxier.mapsPath));
      return;
    }
    let endpoints = 0;
    for (const list of snapshot.endpoints.values()) endpoints += list.length;
    const frontends = batch.ops.filter((op) => op.op === "putFrontend").length;
    const slots = batch.ops.filter((op) => op.op === "putBackend").length;
    io.stdout(
      [
        `# worknode proxy plan: mode ebpf, node ${o.nodeName}, IPv4 and IPv6: ${snapshot.services.size} service ports, ${endpoints} endpoints, ${frontends} frontends, ${slots} backend slots`,
        `# input of: bpftool batch file - (maps pinned in ${proxier.mapsPath}; a full sync also deletes the entries the maps hold and the plan does not)`,
        "",
      ].join("\n") + batch.script,
    );
  } finally {
    await proxier.close();
  }
}
