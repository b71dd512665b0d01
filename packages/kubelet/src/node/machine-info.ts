/**
 * What the kubelet reports about the machine (cadvisor's `MachineInfo` and the node's
 * system info): identifiers, kernel and OS image, CPU, memory and root-filesystem size.
 * {@link readMachineInfo} does the I/O; everything else is pure.
 *
 * @module
 */
import { readFile, statfs } from "node:fs/promises";
import { arch, cpus, hostname, platform, release, totalmem } from "node:os";

/** The machine as the kubelet sees it. */
export interface MachineInfo {
  /** `/etc/machine-id` (empty when unreadable). */
  readonly machineID: string;
  /** `/sys/class/dmi/id/product_uuid` (empty when unreadable, as for unprivileged reads). */
  readonly systemUUID: string;
  /** `/proc/sys/kernel/random/boot_id` (empty when unreadable). */
  readonly bootID: string;
  /** Kernel release (`uname -r`). */
  readonly kernelVersion: string;
  /** `PRETTY_NAME` from `/etc/os-release`, such as `Debian GNU/Linux 12 (bookworm)`. */
  readonly osImage: string;
  /** Operating system in Go naming (`linux`). */
  readonly operatingSystem: string;
  /** Architecture in Go naming (`amd64`, `arm64`). */
  readonly architecture: string;
  /** The host name, lower-cased. */
  readonly hostname: string;
  /** Number of logical CPUs. */
  readonly cpuCount: number;
  /** Physical memory in bytes. */
  readonly memoryBytes: number;
  /** Size in bytes of the filesystem holding the kubelet's root directory (0 when unknown). */
  readonly rootFsBytes: number;
}

/** Maps Node.js's `process.arch` to Go's `GOARCH` (`x64` → `amd64`, `ia32` → `386`). */
export function goArch(nodeArch: string): string {
  switch (nodeArch) {
    case "x64":
      return "amd64";
    case "ia32":
      return "386";
    case "ppc64":
      return "ppc64le";
    case "loong64":
      return "loong64";
    default:
      return nodeArch;
  }
}

/** Maps Node.js's `process.platform` to Go's `GOOS` (`win32` → `windows`). */
export function goOs(nodePlatform: string): string {
  return nodePlatform === "win32" ? "windows" : nodePlatform;
}

/**
 * Parses `/etc/os-release` (shell-style `KEY=value` lines, values optionally quoted)
 * into a map.
 */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (!m?.[1]) continue;
    let value = (m[2] ?? "").trim();
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.endsWith(quote) && value.length >= 2) {
      value = value.slice(1, -1);
      if (quote === '"') value = value.replace(/\\(["\\$`])/g, "$1");
    }
    out[m[1]] = value;
  }
  return out;
}

/** The OS image name the kubelet reports: `PRETTY_NAME`, else `NAME VERSION`, else `Linux`. */
export function osImageFromOsRelease(fields: Readonly<Record<string, string>>): string {
  if (fields.PRETTY_NAME) return fields.PRETTY_NAME;
  const nameVersion = [fields.NAME, fields.VERSION].filter(Boolean).join(" ");
  return nameVersion || "Linux";
}

/** Paths {@link readMachineInfo} reads; overridable for tests. */
export interface MachineInfoPaths {
  /** Default `/etc/machine-id`. */
  readonly machineId?: string;
  /** Default `/sys/class/dmi/id/product_uuid`. */
  readonly productUuid?: string;
  /** Default `/proc/sys/kernel/random/boot_id`. */
  readonly bootId?: string;
  /** Default `/etc/os-release`. */
  readonly osRelease?: string;
}

async function readTrimmed(path: string): Promise<string> {
  try {
    return (await readFile(path, "utf8")).trim();
  } catch {
    return "";
  }
}

/**
 * Reads the machine's identifiers, OS, CPU, memory and the size of the filesystem of
 * `rootDir` (kubelet's root directory). Unreadable identifiers are reported empty,
 * as the kubelet does.
 */
export async function readMachineInfo(rootDir: string, paths: MachineInfoPaths = {}): Promise<MachineInfo> {
  const [machineID, systemUUID, bootID, osRelease, rootFsBytes] = await Promise.all([
    readTrimmed(paths.machineId ?? "/etc/machine-id"),
    readTrimmed(paths.productUuid ?? "/sys/class/dmi/id/product_uuid"),
    readTrimmed(paths.bootId ?? "/proc/sys/kernel/random/boot_id"),
    readTrimmed(paths.osRelease ?? "/etc/os-release"),
    statfs(rootDir).then(
      (s) => s.blocks * s.bsize,
      () => 0,
    ),
  ]);
  return {
    machineID,
    systemUUID,
    bootID,
    kernelVersion: release(),
    osImage: osImageFromOsRelease(parseOsRelease(osRelease)),
    operatingSystem: goOs(platform()),
    architecture: goArch(arch()),
    hostname: hostname().toLowerCase(),
    cpuCount: cpus().length,
    memoryBytes: totalmem(),
    rootFsBytes,
  };
}
