/**
 * Socket termination: the socket-LB counterpart of kube-proxy's UDP conntrack cleanup. A
 * connected UDP socket got its backend once, at `connect()`; when that backend leaves the
 * service, the backends are written into `wn_gone_backends` and the `iter/udp` program of
 * `bpf/sock_destroy.c` is read once in every network namespace of the node (it walks only
 * the namespace of the reader), destroying the sockets connected to them.
 *
 * The pure parts (which backends, the batch lines, one entry per namespace) are separate
 * from the runs on the node.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { readdir, readlink, stat } from "node:fs/promises";
import type { CommandRunner, StaleConntrack } from "@worknode/core";
import { checkPinPath } from "./maps/batch.js";
import { type BackendAddress, encodeBackendValue, MapLayoutError, toHexWords } from "./maps/layout.js";

/** Pinned name of the map of backends whose connected UDP sockets are destroyed. */
export const GONE_BACKENDS_MAP = "wn_gone_backends";
/** Pinned name of the `iter/udp` link that destroys them. */
export const UDP_DESTROY_ITER = "iter-udp-destroy";

/**
 * Parses an endpoint address as core writes it (`ip:port`, IPv6 as `[ip]:port`).
 * @throws MapLayoutError when it is neither form
 */
export function parseEndpointAddress(address: string): BackendAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(address);
  if (m === null) throw new MapLayoutError(`not an ip:port endpoint address: ${JSON.stringify(address)}`);
  return { ip: (m[1] ?? m[2]) as string, port: Number(m[3]) };
}

/**
 * The backends whose connected UDP sockets must be destroyed after a sync: the `endpoint`
 * of every UDP entry of `stale` (SCTP has no socket iterator; entries without an endpoint
 * name a frontend, which no connected socket has as its peer), once each, in order.
 * Entries whose endpoint cannot be parsed are skipped.
 */
export function goneUdpBackends(stale: readonly StaleConntrack[]): BackendAddress[] {
  const out: BackendAddress[] = [];
  const seen = new Set<string>();
  for (const entry of stale) {
    if (entry.protocol !== "UDP" || entry.endpoint === undefined) continue;
    let backend: BackendAddress;
    let key: string;
    try {
      backend = parseEndpointAddress(entry.endpoint);
      key = toHexWords(encodeBackendValue(backend));
    } catch {
      continue;
    }
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(backend);
  }
  return out;
}

/**
 * `bpftool batch` lines that put (`update`) or remove (`delete`) `backends` in the
 * `wn_gone_backends` map pinned at `mapPin` (key `wn_backend_value`, value one byte 1).
 * @returns one line per backend, joined with newlines and ending in one ("" for none)
 */
export function renderGoneBackendsBatch(
  backends: readonly BackendAddress[],
  mapPin: string,
  op: "update" | "delete",
): string {
  const pin = checkPinPath(mapPin);
  const lines = backends.map((b) => {
    const key = toHexWords(encodeBackendValue(b));
    return op === "update"
      ? `map update pinned ${pin} key hex ${key} value hex 01`
      : `map delete pinned ${pin} key hex ${key}`;
  });
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

/** A file that names a network namespace (`/proc/<pid>/ns/net`, `/run/netns/<name>`) and its identity. */
export interface NetnsHandle {
  /** What `nsenter --net=` is given. */
  readonly path: string;
  /** The namespace's identity (the `net:[inode]` link text). */
  readonly id: string;
}

/** One network namespace: the files that enter it, the first one preferred. */
export interface NetnsTarget {
  readonly id: string;
  readonly paths: readonly string[];
}

/**
 * Groups `handles` by namespace, keeping the order of first appearance: one target per
 * namespace, its first handle preferred, the others as fallbacks (a process may exit between
 * listing and entering).
 */
export function netnsTargets(handles: readonly NetnsHandle[]): NetnsTarget[] {
  const byId = new Map<string, string[]>();
  for (const h of handles) {
    const paths = byId.get(h.id);
    if (paths === undefined) byId.set(h.id, [h.path]);
    else if (!paths.includes(h.path)) paths.push(h.path);
  }
  return [...byId].map(([id, paths]) => ({ id, paths }));
}

/**
 * The network namespaces of the node: one handle per process (`/proc/<pid>/ns/net`) and
 * per named namespace (`/run/netns/*`, which may have no process). Processes that exit
 * while being listed are left out.
 */
export async function listNetnsHandles(proc = "/proc", runNetns = "/run/netns"): Promise<NetnsHandle[]> {
  const out: NetnsHandle[] = [];
  for (const entry of await readdir(proc)) {
    if (!/^\d+$/.test(entry)) continue;
    const path = `${proc}/${entry}/ns/net`;
    try {
      out.push({ path, id: await readlink(path) });
    } catch {
      // The process exited, or is a kernel thread without a readable namespace.
    }
  }
  let named: string[] = [];
  try {
    named = await readdir(runNetns);
  } catch {
    // No named namespaces.
  }
  for (const name of named) {
    const path = `${runNetns}/${name}`;
    try {
      const s = await stat(path);
      // A bind mount of an nsfs file: its inode is the namespace's (a plain file is not one).
      if (s.dev !== (await stat(runNetns)).dev) out.push({ path, id: `net:[${s.ino}]` });
    } catch {
      // Removed meanwhile.
    }
  }
  return out;
}

/** The outcome of one run of the destroy iterator over the node's namespaces. */
export interface SocketDestroyResult {
  /** Namespaces the iterator ran in. */
  readonly namespaces: number;
  /** Sockets destroyed. */
  readonly destroyed: number;
  /** What went wrong (a namespace that could not be entered, a socket the kernel refused to destroy). */
  readonly errors: readonly string[];
}

/**
 * Counts the sockets the iterator destroyed from its output (`destroyed <result>` lines;
 * a non-zero result is the kernel refusing one).
 */
export function parseIteratorOutput(text: string): { destroyed: number; refused: number[] } {
  let destroyed = 0;
  const refused: number[] = [];
  for (const line of text.split("\n")) {
    const m = /^destroyed (-?\d+)$/.exec(line.trim());
    if (m === null) continue;
    const code = Number(m[1]);
    if (code === 0) destroyed++;
    else refused.push(code);
  }
  return { destroyed, refused };
}

/**
 * Reads the pinned iterator `iterPin` once in each namespace of `targets`
 * (`nsenter --net=<path> cat <iterPin>`; not `ip netns exec`, which remounts /sys and so
 * would hide the pin). A handle that vanished (its process exited) falls back to the next
 * handle of the namespace; a namespace without any left is skipped. Never throws.
 */
export async function runDestroyIterator(
  runner: CommandRunner,
  iterPin: string,
  targets: readonly NetnsTarget[],
): Promise<SocketDestroyResult> {
  let namespaces = 0;
  let destroyed = 0;
  const errors: string[] = [];
  for (const target of targets) {
    for (const path of target.paths) {
      const out = await runner.exec("nsenter", [`--net=${path}`, "cat", iterPin]);
      if (out.code !== 0) {
        if (!existsSync(path)) continue; // the process exited: try another one of the namespace
        errors.push(`${target.id} (${path}): ${out.stderr.trim() || `exit ${out.code}`}`);
        break;
      }
      namespaces++;
      const parsed = parseIteratorOutput(out.stdout);
      destroyed += parsed.destroyed;
      for (const code of parsed.refused) errors.push(`${target.id}: bpf_sock_destroy returned ${code}`);
      break;
    }
  }
  return { namespaces, destroyed, errors };
}
