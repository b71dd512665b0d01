/**
 * The kernel side of the eBPF backend, through `bpftool` (spawned with argument arrays,
 * batches on standard input) and the file system: loading and pinning the programs and
 * maps, attaching them to a cgroup, reading the maps back, and removing it all.
 *
 * @module
 */
import { readFile, statfs } from "node:fs/promises";
import { type CommandOutput, type CommandRunner, WorknodeError } from "@worknode/core";
import {
  type BackendAddress,
  decodeBackendKey,
  decodeBackendValue,
  decodeServiceKey,
  decodeServiceValue,
  type Frontend,
  type FrontendValue,
} from "./maps/layout.js";

/** `BPF_FS_MAGIC`: the file-system type (`statfs` `f_type`) of a bpffs mount. */
export const BPF_FS_MAGIC = 0xcafe4a11;
/** `CGROUP2_SUPER_MAGIC`: the file-system type of a cgroup v2 mount. */
export const CGROUP2_SUPER_MAGIC = 0x63677270;

/** A `bpftool` command failed. */
export class BpftoolError extends WorknodeError {
  constructor(
    readonly args: readonly string[],
    readonly output: CommandOutput,
  ) {
    super(
      "EBPF_BPFTOOL",
      `bpftool ${args.join(" ")} failed (exit ${output.code}): ${output.stderr.trim() || output.stdout.trim().slice(0, 400)}`,
    );
  }
}

/** The node cannot run the eBPF backend (no bpffs, no cgroup v2, …). */
export class EbpfUnavailableError extends WorknodeError {
  constructor(message: string) {
    super("EBPF_UNAVAILABLE", message);
  }
}

/** Runs `bpftool` and returns its standard output; throws {@link BpftoolError} on failure. */
export async function bpftool(
  runner: CommandRunner,
  args: readonly string[],
  stdin?: string,
): Promise<string> {
  const out = await runner.exec("bpftool", args, stdin);
  if (out.code !== 0) throw new BpftoolError(args, out);
  return out.stdout;
}

/** Throws {@link EbpfUnavailableError} unless `dir` is on a bpffs mount. */
export async function requireBpffs(dir: string): Promise<void> {
  let type: number;
  try {
    type = (await statfs(dir)).type;
  } catch (error) {
    throw new EbpfUnavailableError(
      `${dir} is not there (${String(error)}); mount bpffs: mount -t bpf bpf ${dir}`,
    );
  }
  if (type !== BPF_FS_MAGIC)
    throw new EbpfUnavailableError(`${dir} is not a bpffs mount: mount -t bpf bpf ${dir}`);
}

/** Throws {@link EbpfUnavailableError} unless `dir` is a cgroup v2 directory. */
export async function requireCgroup2(dir: string): Promise<void> {
  let type: number;
  try {
    type = (await statfs(dir)).type;
  } catch (error) {
    throw new EbpfUnavailableError(`cgroup ${dir} is not there (${String(error)})`);
  }
  if (type !== CGROUP2_SUPER_MAGIC) throw new EbpfUnavailableError(`${dir} is not a cgroup v2 directory`);
}

/**
 * The mount point of the cgroup v2 hierarchy, from `/proc/self/mountinfo`: `/sys/fs/cgroup`
 * on a unified system, `/sys/fs/cgroup/unified` on a hybrid one.
 */
export async function cgroup2Root(mountinfo = "/proc/self/mountinfo"): Promise<string> {
  const text = await readFile(mountinfo, "utf8");
  const mounts: string[] = [];
  for (const line of text.split("\n")) {
    const [left, right] = line.split(" - ");
    if (left === undefined || right === undefined) continue;
    if (right.split(" ")[0] !== "cgroup2") continue;
    const point = left.split(" ")[4];
    if (point !== undefined) mounts.push(point.replace(/\\040/g, " "));
  }
  const preferred = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"].find((p) => mounts.includes(p));
  const found = preferred ?? mounts[0];
  if (found === undefined) throw new EbpfUnavailableError("no cgroup v2 hierarchy is mounted");
  return found;
}

/** One program attached to a cgroup, from `bpftool cgroup show`. */
export interface AttachedProgram {
  readonly id: number;
  readonly attachType: string;
  readonly name: string;
}

/** The programs attached to `cgroup` itself (not inherited ones). */
export async function attachedPrograms(runner: CommandRunner, cgroup: string): Promise<AttachedProgram[]> {
  const text = await bpftool(runner, ["-j", "cgroup", "show", cgroup]);
  if (text.trim() === "") return [];
  const list = JSON.parse(text) as { id: number; attach_type: string; name?: string }[];
  return list.map((p) => ({ id: p.id, attachType: p.attach_type, name: p.name ?? "" }));
}

/** The kernel id of a pinned program. */
export async function pinnedProgramId(runner: CommandRunner, pin: string): Promise<number> {
  const info = JSON.parse(await bpftool(runner, ["-j", "prog", "show", "pinned", pin])) as { id: number };
  return info.id;
}

/** `bpftool cgroup show`'s attach type names (`cgroup_inet4_connect`) → `cgroup attach` names (`connect4`). */
export function attachTypeArgument(showName: string): string {
  const m = /^cgroup_(?:inet|udp)([46])_(connect|sendmsg|recvmsg|getpeername)$/.exec(showName);
  if (m !== null) return `${m[2]}${m[1]}`;
  return showName.replace(/^cgroup_/, "");
}

function bytesOf(hexWords: readonly string[]): Uint8Array {
  return Uint8Array.from(hexWords, (h) => Number.parseInt(h, 16));
}

interface DumpEntry {
  readonly key: readonly string[];
  readonly value: readonly string[];
}

async function dumpMap(runner: CommandRunner, pin: string): Promise<DumpEntry[]> {
  const text = await bpftool(runner, ["-j", "map", "dump", "pinned", pin]);
  if (text.trim() === "") return [];
  return JSON.parse(text) as DumpEntry[];
}

/** Reads the frontend map back. */
export async function readFrontends(
  runner: CommandRunner,
  pin: string,
): Promise<{ frontend: Frontend; value: FrontendValue }[]> {
  return (await dumpMap(runner, pin)).map((e) => ({
    frontend: decodeServiceKey(bytesOf(e.key)),
    value: decodeServiceValue(bytesOf(e.value)),
  }));
}

/** Reads the backend-slot map back. */
export async function readBackends(
  runner: CommandRunner,
  pin: string,
): Promise<{ id: number; slot: number; backend: BackendAddress }[]> {
  return (await dumpMap(runner, pin)).map((e) => ({
    ...decodeBackendKey(bytesOf(e.key)),
    backend: decodeBackendValue(bytesOf(e.value)),
  }));
}

/**
 * Runs a `bpftool -j batch file -` script. On failure, the error names the failing line
 * (bpftool stops there: the lines before it were applied).
 *
 * @returns the failing line's index and bpftool's message, or undefined on success
 */
export async function runBatch(
  runner: CommandRunner,
  script: string,
): Promise<{ readonly index: number; readonly message: string } | undefined> {
  const out = await runner.exec("bpftool", ["-j", "batch", "file", "-"], script);
  if (out.code === 0) return undefined;
  let index = -1;
  let message = out.stderr.trim();
  try {
    const results = JSON.parse(out.stdout) as { output?: { error?: string } | null }[];
    index = results.length - 1;
    const err = results[index]?.output?.error;
    if (err !== undefined) message = err;
  } catch {
    // No JSON: bpftool did not start, or failed before the first command.
  }
  return { index, message: message || `bpftool exited with ${out.code}` };
}
