/**
 * A throw-away cgroup v2 directory for system tests: made under the root of the cgroup v2
 * hierarchy, a process moved in (its children, spawned later, are born in it), moved back to
 * the parent, and the directory removed. Used by tests of cgroup-attached BPF programs, which
 * apply to the processes of one cgroup only.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, rmdir, statfs, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ConfigError, WorknodeError } from "@worknode/core";
import { sleep } from "./exec.js";

/** `CGROUP2_SUPER_MAGIC`: the `f_type` of a cgroup v2 mount. */
const CGROUP2_SUPER_MAGIC = 0x63677270;
const NAME = /^[a-z][a-z0-9-]{1,39}$/;

/** A cgroup v2 directory made by {@link createTestCgroup}. */
export interface TestCgroup {
  /** The directory (`<cgroup2 root>/<name>`). */
  readonly path: string;
  /** Its parent directory (the cgroup v2 root), where processes go back to. */
  readonly parent: string;
  /** Moves a process (default: this one) into the cgroup. */
  enter(pid?: number): Promise<void>;
  /** Moves a process (default: this one) back to the parent cgroup. */
  leave(pid?: number): Promise<void>;
  /** The processes in the cgroup now. */
  pids(): Promise<number[]>;
  /**
   * Moves every process still in the cgroup to the parent and removes the directory
   * (retrying while exiting processes leave it). Idempotent.
   *
   * @throws WorknodeError when the directory cannot be removed
   */
  remove(): Promise<void>;
}

/**
 * The mount point of the cgroup v2 hierarchy, from `/proc/self/mountinfo` (`/sys/fs/cgroup`
 * on a unified system, `/sys/fs/cgroup/unified` on a hybrid one).
 *
 * @throws WorknodeError when no cgroup v2 hierarchy is mounted
 */
export async function cgroup2Mount(): Promise<string> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const mounts: string[] = [];
  for (const line of text.split("\n")) {
    const [left, right] = line.split(" - ");
    if (left === undefined || right?.split(" ")[0] !== "cgroup2") continue;
    const point = left.split(" ")[4];
    if (point !== undefined) mounts.push(point.replace(/\\040/g, " "));
  }
  const found = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"].find((p) => mounts.includes(p)) ?? mounts[0];
  if (found === undefined) throw new WorknodeError("CGROUP", "no cgroup v2 hierarchy is mounted");
  return found;
}

async function procsOf(dir: string): Promise<number[]> {
  const text = await readFile(join(dir, "cgroup.procs"), "utf8");
  return text
    .split("\n")
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

async function movePid(dir: string, pid: number): Promise<void> {
  try {
    await writeFile(join(dir, "cgroup.procs"), String(pid));
  } catch (e) {
    // A process that exited meanwhile cannot be moved, and need not be.
    if ((e as NodeJS.ErrnoException).code === "ESRCH") return;
    throw new WorknodeError("CGROUP", `cannot move ${pid} into ${dir}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** Empties `dir` into its parent and removes it; nothing when it is not there. */
async function removeCgroupDir(dir: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    if (!existsSync(dir)) return;
    for (const pid of await procsOf(dir).catch(() => [])) await movePid(dirname(dir), pid);
    try {
      await rmdir(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return;
      if (code !== "EBUSY" || Date.now() > deadline)
        throw new WorknodeError("CGROUP", `cannot remove cgroup ${dir}: ${(e as Error).message}`, {
          cause: e,
        });
    }
    await sleep(50);
  }
}

/**
 * Makes the cgroup v2 directory `<root>/<name>` (a leftover of a crashed run with that name is
 * emptied and removed first).
 *
 * @param name lowercase letters, digits and dashes, starting with a letter (2-40 characters)
 * @param root the cgroup v2 root (default: {@link cgroup2Mount})
 * @throws ConfigError for a bad name or a root that is not a cgroup v2 mount
 * @throws WorknodeError when the directory cannot be made
 */
export async function createTestCgroup(name: string, root?: string): Promise<TestCgroup> {
  if (!NAME.test(name)) throw new ConfigError(`bad cgroup name ${JSON.stringify(name)}`);
  const parent = root ?? (await cgroup2Mount());
  if ((await statfs(parent)).type !== CGROUP2_SUPER_MAGIC)
    throw new ConfigError(`${parent} is not a cgroup v2 mount`);
  const path = join(parent, name);
  await removeCgroupDir(path);
  await mkdir(path);
  return {
    path,
    parent,
    enter: (pid = process.pid) => movePid(path, pid),
    leave: (pid = process.pid) => movePid(parent, pid),
    pids: () => procsOf(path),
    remove: () => removeCgroupDir(path),
  };
}
