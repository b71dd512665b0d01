/**
 * Installing the Debian packages a harness needs, once, loudly.
 *
 * @module
 */
import { WorknodeError } from "@worknode/core";
import { CommandFailedError, runCommand } from "./exec.js";

/** Debian packages the containerd lab needs (Debian 12 names). */
export const CONTAINERD_LAB_PACKAGES: readonly string[] = [
  "containerd",
  "runc",
  "containernetworking-plugins",
  "docker-registry",
  "umoci",
  "skopeo",
  "busybox-static",
  "iptables",
  "nftables",
  "conntrack",
  "iproute2",
  "gcc",
  "libc6-dev",
  "curl",
];

/** Debian packages the network-namespace helpers need. */
export const NETNS_PACKAGES: readonly string[] = ["iproute2", "iptables", "nftables", "conntrack"];

/** Some Debian packages could not be installed. */
export class AptInstallError extends WorknodeError {
  /** The packages that are still missing. */
  readonly packages: readonly string[];

  constructor(packages: readonly string[], message: string, options?: { cause?: unknown }) {
    super("APT_INSTALL", `cannot install Debian packages ${packages.join(", ")}: ${message}`, options);
    this.packages = packages;
  }
}

const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$/;

/**
 * Parses `dpkg-query -W -f '${binary:Package}\t${Status}\n'` output and returns the requested
 * packages that are not fully installed (missing, config-files only, half-installed …).
 */
export function missingPackagesFromDpkgQuery(output: string, requested: readonly string[]): string[] {
  const installed = new Set<string>();
  for (const line of output.split("\n")) {
    const [name, status] = line.split("\t");
    if (!name || !status) continue;
    if (status.trim().endsWith("install ok installed")) {
      installed.add(name);
      installed.add(name.replace(/:[a-z0-9-]+$/, ""));
    }
  }
  return requested.filter((p) => !installed.has(p));
}

let aptUpdated: Promise<void> | undefined;

/** Options of {@link ensureAptPackages}. */
export interface EnsureAptPackagesOptions {
  /** Called with one line per step (what is installed), e.g. `console.error`. */
  readonly log?: (line: string) => void;
  /** Timeout of `apt-get install`, ms; default 15 minutes. */
  readonly timeoutMs?: number;
}

/** Returns the requested Debian packages that are not installed (`dpkg-query`). */
export async function findMissingAptPackages(names: readonly string[]): Promise<string[]> {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query format
  const format = "-f=${binary:Package}\\t${Status}\\n";
  const res = await runCommand("dpkg-query", ["-W", format, ...names], {
    allowFailure: true, // exit 1 when some package is unknown to dpkg
  }).catch((e: unknown) => {
    throw new AptInstallError(names, "dpkg-query is not available (is this a Debian system?)", { cause: e });
  });
  return missingPackagesFromDpkgQuery(res.stdout, names);
}

/**
 * Makes sure the Debian packages `names` are installed: checks with `dpkg-query`, and installs
 * the missing ones with `apt-get install -y --no-install-recommends` (running `apt-get update`
 * once per process first), non-interactively. Needs root when something is missing.
 *
 * @returns the packages that were installed (empty when all were present)
 * @throws AptInstallError naming the packages when they cannot be installed
 */
export async function ensureAptPackages(
  names: readonly string[],
  options: EnsureAptPackagesOptions = {},
): Promise<string[]> {
  const bad = names.filter((n) => !PACKAGE_NAME.test(n));
  if (bad.length > 0) throw new AptInstallError(bad, "not valid Debian package names");
  const missing = await findMissingAptPackages(names);
  if (missing.length === 0) return [];
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    throw new AptInstallError(missing, "they are missing and installing them needs root");
  }
  const env = { DEBIAN_FRONTEND: "noninteractive", APT_LISTCHANGES_FRONTEND: "none" };
  const timeoutMs = options.timeoutMs ?? 15 * 60_000;
  try {
    aptUpdated ??= (async () => {
      options.log?.("apt-get update");
      await runCommand("apt-get", ["update"], { env, timeoutMs });
    })().catch((e: unknown) => {
      aptUpdated = undefined;
      throw e;
    });
    await aptUpdated;
    options.log?.(`apt-get install ${missing.join(" ")}`);
    await runCommand(
      "apt-get",
      ["install", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold", ...missing],
      { env, timeoutMs },
    );
  } catch (e) {
    const detail = e instanceof CommandFailedError ? e.message : String(e);
    throw new AptInstallError(missing, detail, { cause: e });
  }
  const still = await findMissingAptPackages(missing);
  if (still.length > 0)
    throw new AptInstallError(still, "apt-get succeeded but dpkg still lists them as missing");
  return missing;
}
