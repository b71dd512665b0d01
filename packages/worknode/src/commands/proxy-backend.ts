/**
 * The host side of `worknode proxy`'s backends: which iptables families work on this
 * node, `--cleanup` of everything the implemented modes write, reading the node's
 * current rules, and letting the kernel canonicalise a planned payload (for
 * `plan --diff`). Everything goes through a {@link CommandRunner}, so tests can swap
 * it and the system test can run it inside a network namespace.
 *
 * @module
 */
import {
  describeError,
  type IPFamily,
  type Logger,
  type Proxier,
  type Registry,
  UnavailableError,
} from "@worknode/core";
import {
  binariesFor,
  type CommandRunner,
  createCommandRunner,
  IptablesProxier,
  type IptablesProxierOptions,
} from "@worknode/proxy-iptables";

/** A proxier as the CLI drives it: the core contract plus its metrics registry. */
export type CliProxier = Proxier & { readonly metrics?: Registry };

/** What `worknode proxy` needs from the machine; replaceable in tests. */
export interface ProxyBackend {
  /** The IP families whose iptables work here (kube-proxy's `Present()` check). */
  detectFamilies(): Promise<IPFamily[]>;
  /** Creates the iptables proxier. */
  createProxier(options: IptablesProxierOptions): CliProxier;
  /** Removes every rule and chain of every implemented mode; returns the families cleaned. */
  cleanup(logger: Logger): Promise<IPFamily[]>;
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

/** The default backend: real iptables through `runner` (default: spawn on this host). */
export function createIptablesBackend(runner: CommandRunner = createCommandRunner()): ProxyBackend {
  return {
    async detectFamilies() {
      const out: IPFamily[] = [];
      for (const f of FAMILIES) if (await iptablesFamilyPresent(runner, f)) out.push(f);
      return out;
    },
    createProxier(options) {
      return new IptablesProxier({ ...options, runner });
    },
    async cleanup(logger) {
      const cleaned: IPFamily[] = [];
      const failures: string[] = [];
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
          failures.push(`${family}: ${detail || describeError(err)}`);
        }
      }
      if (failures.length > 0) {
        throw new UnavailableError("iptables", `cleanup incomplete: ${failures.join("; ")}`);
      }
      return cleaned;
    },
  };
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
