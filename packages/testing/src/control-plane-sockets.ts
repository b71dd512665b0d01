/**
 * Which addresses processes listen on, read from `/proc` (Linux): lets the
 * harness and its tests prove that nothing binds outside loopback and that
 * nothing is left listening after a stop.
 *
 * @module
 */
import { readdir, readFile, readlink } from "node:fs/promises";

/** A listening TCP socket or bound UDP socket. */
export interface ListeningSocket {
  /** `tcp` or `udp`. */
  readonly protocol: "tcp" | "udp";
  /** Local address in text form (`127.0.0.1`, `::`, `::1`). */
  readonly address: string;
  /** Local port. */
  readonly port: number;
  /** Socket inode. */
  readonly inode: number;
}

/** A listening socket with the process holding it. */
export interface OwnedListeningSocket extends ListeningSocket {
  /** Process id holding the socket. */
  readonly pid: number;
}

const TCP_LISTEN = "0A";
const UDP_UNCONNECTED = "07";

/**
 * Parses a `/proc/net/{tcp,tcp6,udp,udp6}` table, keeping listening TCP
 * sockets (state LISTEN) or unconnected UDP sockets.
 */
export function parseProcNetTable(text: string, protocol: "tcp" | "udp"): ListeningSocket[] {
  const wanted = protocol === "tcp" ? TCP_LISTEN : UDP_UNCONNECTED;
  const sockets: ListeningSocket[] = [];
  for (const line of text.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    const local = fields[1];
    const state = fields[3];
    const inode = fields[9];
    if (!local || state !== wanted || inode === undefined) continue;
    const [hexAddr, hexPort] = local.split(":");
    if (!hexAddr || !hexPort) continue;
    sockets.push({
      protocol,
      address: decodeProcAddress(hexAddr),
      port: Number.parseInt(hexPort, 16),
      inode: Number(inode),
    });
  }
  return sockets;
}

/** Decodes a `/proc/net` hex address (32-bit words in little-endian byte order). */
export function decodeProcAddress(hex: string): string {
  const bytes: number[] = [];
  for (let word = 0; word < hex.length / 8; word++) {
    const w = hex.slice(word * 8, word * 8 + 8);
    for (let i = 3; i >= 0; i--) bytes.push(Number.parseInt(w.slice(i * 2, i * 2 + 2), 16));
  }
  if (bytes.length === 4) return bytes.join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  // IPv4-mapped (::ffff:a.b.c.d) in dotted form, the rest compressed.
  if (groups.slice(0, 5).every((g) => g === "0") && groups[5] === "ffff") {
    return `::ffff:${bytes.slice(12).join(".")}`;
  }
  return compressIpv6(groups);
}

function compressIpv6(groups: string[]): string {
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(":");
  return `${groups.slice(0, bestStart).join(":")}::${groups.slice(bestStart + bestLen).join(":")}`;
}

/** Whether `address` is a loopback address (127.0.0.0/8, ::1, or IPv4-mapped loopback). */
export function isLoopbackAddress(address: string): boolean {
  return address === "::1" || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(address);
}

/** Every listening socket of this network namespace (TCP LISTEN and unconnected UDP). */
export async function listListeningSockets(): Promise<ListeningSocket[]> {
  const tables: [string, "tcp" | "udp"][] = [
    ["/proc/net/tcp", "tcp"],
    ["/proc/net/tcp6", "tcp"],
    ["/proc/net/udp", "udp"],
    ["/proc/net/udp6", "udp"],
  ];
  const out: ListeningSocket[] = [];
  for (const [path, protocol] of tables) {
    const text = await readFile(path, "utf8").catch(() => "");
    out.push(...parseProcNetTable(text, protocol));
  }
  return out;
}

/** Socket inodes held open by `pid`; empty when the process is gone. */
async function socketInodes(pid: number): Promise<Set<number>> {
  const inodes = new Set<number>();
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  for (const fd of fds) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(Number(m[1]));
  }
  return inodes;
}

/** The listening sockets held by the given processes (Linux `/proc`). */
export async function listeningSocketsOf(pids: readonly number[]): Promise<OwnedListeningSocket[]> {
  const all = await listListeningSockets();
  const out: OwnedListeningSocket[] = [];
  for (const pid of pids) {
    const inodes = await socketInodes(pid);
    for (const socket of all) if (inodes.has(socket.inode)) out.push({ ...socket, pid });
  }
  return out;
}
