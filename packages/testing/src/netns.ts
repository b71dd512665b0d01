/**
 * Network namespaces for system tests: namespaces, veth pairs and bridges
 * with unique `wn-` names, small TCP/UDP servers and clients running inside
 * them, and a registry of everything created so {@link destroyAll} removes it
 * all even after a failed test. Nothing is added to the host's own
 * interfaces.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { ConfigError, WorknodeError } from "@worknode/core";
import {
  type CommandResult,
  isProcessAlive,
  type RunCommandOptions,
  runCommand,
  terminateProcesses,
} from "./exec.js";

/** A network namespace created by {@link createNetns}. */
export interface Netns {
  /** Namespace name (`wn-<prefix>-<random>`), as `ip netns list` shows it. */
  readonly name: string;
  /** Runs `ip netns exec <name> <command> <args…>` and collects its output. */
  exec(command: string, args: readonly string[], opts?: RunCommandOptions): Promise<CommandResult>;
  /** Starts a long-running program inside the namespace; it is killed by {@link Netns.destroy}. */
  spawn(command: string, args: readonly string[]): ChildProcess;
  /** Kills every process inside the namespace and deletes it. Idempotent. */
  destroy(): Promise<void>;
}

/** A veth pair created by {@link createVethPair}. */
export interface VethPair {
  /** Interface name on side A. */
  readonly nameA: string;
  /** Interface name on side B. */
  readonly nameB: string;
  /** Namespace of side A. */
  readonly nsA: string;
  /** Namespace of side B. */
  readonly nsB: string;
  /** Deletes the pair (no-op when a namespace already went). */
  destroy(): Promise<void>;
}

/** A bridge created by {@link createBridge}. */
export interface NetnsBridge {
  /** Bridge name. */
  readonly name: string;
  /** Namespace it lives in. */
  readonly ns: string;
  /** Enslaves an interface of the same namespace to the bridge and sets it up. */
  addPort(ifName: string): Promise<void>;
  /** Deletes the bridge. */
  destroy(): Promise<void>;
}

interface Tracked {
  readonly what: string;
  destroy(): Promise<void>;
}

const tracked: Tracked[] = [];

function track(t: Tracked): () => void {
  tracked.push(t);
  return () => {
    const i = tracked.indexOf(t);
    if (i >= 0) tracked.splice(i, 1);
  };
}

function suffix(bytes = 3): string {
  return randomBytes(bytes).toString("hex");
}

const NS_NAME = /^wn-[a-z0-9-]{1,40}$/;
const IF_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

function nsName(ns: Netns | string): string {
  const name = typeof ns === "string" ? ns : ns.name;
  if (!NS_NAME.test(name)) throw new ConfigError(`not a namespace of this kit: ${JSON.stringify(name)}`);
  return name;
}

async function ip(args: readonly string[], opts?: RunCommandOptions): Promise<CommandResult> {
  return runCommand("ip", args, opts);
}

/** Names of the network namespaces that currently exist (`ip netns list`). */
export async function listNetns(): Promise<string[]> {
  const r = await ip(["netns", "list"]);
  return r.stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n !== "");
}

/**
 * `exec` and `spawn` inside namespace `name` (through `ip netns exec`); spawned children
 * are kept in `children` until they exit, so their owner can kill them on teardown.
 */
export function netnsRunners(
  name: string,
  children: Set<ChildProcess>,
): Pick<Netns, "name" | "exec" | "spawn"> {
  return {
    name,
    exec: (command, args, opts) => runCommand("ip", ["netns", "exec", name, command, ...args], opts),
    spawn(command, args) {
      const child = spawn("ip", ["netns", "exec", name, command, ...args], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      children.add(child);
      child.once("exit", () => children.delete(child));
      child.on("error", () => children.delete(child));
      return child;
    },
  };
}

/**
 * Creates a network namespace `wn-<prefix>-<random>` with `lo` up.
 *
 * @param prefix a short lowercase tag (1-12 characters) naming the namespace's role
 */
export async function createNetns(prefix = "ns"): Promise<Netns> {
  if (!/^[a-z0-9]{1,12}$/.test(prefix))
    throw new ConfigError(`netns prefix must be 1-12 lowercase letters/digits`);
  const name = `wn-${prefix}-${suffix()}`;
  await ip(["netns", "add", name]);
  const children = new Set<ChildProcess>();
  let destroyed: Promise<void> | undefined;
  const ns: Netns = {
    ...netnsRunners(name, children),
    destroy() {
      destroyed ??= (async () => {
        untrack();
        for (const c of children) c.kill("SIGKILL");
        if (!(await listNetns()).includes(name)) return;
        const pids = (await ip(["netns", "pids", name], { allowFailure: true })).stdout
          .split("\n")
          .map(Number)
          .filter((n) => Number.isInteger(n) && n > 0);
        if (pids.length > 0) await terminateProcesses(pids, 1_000);
        await ip(["netns", "del", name]);
      })();
      return destroyed;
    },
  };
  const untrack = track({ what: `netns ${name}`, destroy: () => ns.destroy() });
  try {
    await ip(["-n", name, "link", "set", "lo", "up"]);
  } catch (e) {
    await ns.destroy().catch(() => {});
    throw e;
  }
  return ns;
}

/** Options of {@link createVethPair}. */
export interface VethOptions {
  /** Address with prefix for side A, such as `10.0.0.1/24` or `fd00::1/64`. */
  readonly addressA?: string | readonly string[];
  /** Address with prefix for side B. */
  readonly addressB?: string | readonly string[];
  /** Interface name of side A; default `wn-<random>a`. */
  readonly nameA?: string;
  /** Interface name of side B; default `wn-<random>b`. */
  readonly nameB?: string;
}

function asList(v: string | readonly string[] | undefined): readonly string[] {
  return v === undefined ? [] : typeof v === "string" ? [v] : v;
}

/** Adds an address (IPv6 without duplicate address detection, so it is usable at once). */
async function addAddress(ns: string, ifName: string, address: string): Promise<void> {
  if (!/^[0-9a-fA-F.:]+\/\d{1,3}$/.test(address)) throw new ConfigError(`not an address/prefix: ${address}`);
  await ip(["-n", ns, "addr", "add", address, "dev", ifName, ...(address.includes(":") ? ["nodad"] : [])]);
}

/**
 * Creates a veth pair between two namespaces (directly inside them: nothing appears on the host),
 * assigns the addresses and sets both ends up.
 */
export async function createVethPair(
  a: Netns | string,
  b: Netns | string,
  opts: VethOptions = {},
): Promise<VethPair> {
  const nsA = nsName(a);
  const nsB = nsName(b);
  const base = suffix();
  const nameA = opts.nameA ?? `wn-${base}a`;
  const nameB = opts.nameB ?? `wn-${base}b`;
  for (const n of [nameA, nameB]) if (!IF_NAME.test(n)) throw new ConfigError(`bad interface name ${n}`);
  await ip(["-n", nsA, "link", "add", nameA, "type", "veth", "peer", "name", nameB, "netns", nsB]);
  let destroyed: Promise<void> | undefined;
  const pair: VethPair = {
    nameA,
    nameB,
    nsA,
    nsB,
    destroy() {
      destroyed ??= (async () => {
        untrack();
        if (!(await listNetns()).includes(nsA)) return;
        await ip(["-n", nsA, "link", "del", nameA], { allowFailure: true });
      })();
      return destroyed;
    },
  };
  const untrack = track({ what: `veth ${nameA}/${nameB}`, destroy: () => pair.destroy() });
  try {
    for (const addr of asList(opts.addressA)) await addAddress(nsA, nameA, addr);
    for (const addr of asList(opts.addressB)) await addAddress(nsB, nameB, addr);
    await ip(["-n", nsA, "link", "set", nameA, "up"]);
    await ip(["-n", nsB, "link", "set", nameB, "up"]);
  } catch (e) {
    await pair.destroy().catch(() => {});
    throw e;
  }
  return pair;
}

/** Options of {@link createBridge}. */
export interface BridgeOptions {
  /** Bridge name; default `wn-br<random>`. */
  readonly name?: string;
  /** Addresses (with prefix) to put on the bridge. */
  readonly addresses?: readonly string[];
}

/** Creates a bridge inside a namespace and sets it up. */
export async function createBridge(ns: Netns | string, opts: BridgeOptions = {}): Promise<NetnsBridge> {
  const nsn = nsName(ns);
  const name = opts.name ?? `wn-br${suffix()}`;
  if (!IF_NAME.test(name)) throw new ConfigError(`bad bridge name ${name}`);
  await ip(["-n", nsn, "link", "add", name, "type", "bridge"]);
  let destroyed: Promise<void> | undefined;
  const bridge: NetnsBridge = {
    name,
    ns: nsn,
    async addPort(ifName) {
      if (!IF_NAME.test(ifName)) throw new ConfigError(`bad interface name ${ifName}`);
      await ip(["-n", nsn, "link", "set", ifName, "master", name]);
      await ip(["-n", nsn, "link", "set", ifName, "up"]);
    },
    destroy() {
      destroyed ??= (async () => {
        untrack();
        if (!(await listNetns()).includes(nsn)) return;
        await ip(["-n", nsn, "link", "del", name], { allowFailure: true });
      })();
      return destroyed;
    },
  };
  const untrack = track({ what: `bridge ${name}`, destroy: () => bridge.destroy() });
  try {
    for (const addr of opts.addresses ?? []) await addAddress(nsn, name, addr);
    await ip(["-n", nsn, "link", "set", name, "up"]);
  } catch (e) {
    await bridge.destroy().catch(() => {});
    throw e;
  }
  return bridge;
}

/** What {@link destroyAll} would remove, newest first (for diagnostics). */
export function trackedNetworkResources(): string[] {
  return tracked.map((t) => t.what).reverse();
}

/**
 * Destroys every namespace, veth pair, bridge and server created through this module and not yet
 * destroyed, newest first. Call it in `afterAll`/`afterEach`.
 *
 * @throws WorknodeError listing what could not be removed (after trying everything)
 */
export async function destroyAll(): Promise<void> {
  const errors: string[] = [];
  while (tracked.length > 0) {
    const t = tracked[tracked.length - 1]!;
    try {
      await t.destroy();
    } catch (e) {
      errors.push(`${t.what}: ${(e as Error).message}`);
    } finally {
      const i = tracked.indexOf(t);
      if (i >= 0) tracked.splice(i, 1);
    }
  }
  if (errors.length > 0) throw new WorknodeError("TEARDOWN", `could not remove:\n${errors.join("\n")}`);
}

// ---------------------------------------------------------------------------------------------
// Servers and clients inside namespaces (plain Node.js scripts run with `ip netns exec`).

/** Transport of {@link startNetnsServer} and {@link connectFromNetns}. */
export type NetnsProtocol = "tcp" | "udp";

/** Options of {@link startNetnsServer}. */
export interface NetnsServerOptions {
  /** `tcp` or `udp`. */
  readonly protocol: NetnsProtocol;
  /** Port; 0 picks a free one. */
  readonly port: number;
  /** The name the server answers with. */
  readonly reply: string;
  /** Address to bind; default `::` (all IPv4 and IPv6 addresses of the namespace). */
  readonly host?: string;
  /** Append the client's address (` <ip>:<port>`) to each reply: shows source NAT. */
  readonly echoPeer?: boolean;
}

/** A server running inside a namespace. */
export interface NetnsServer {
  /** The namespace it runs in. */
  readonly ns: string;
  /** Transport. */
  readonly protocol: NetnsProtocol;
  /** Port it listens on. */
  readonly port: number;
  /** Process id (of `ip netns exec`, which execs node). */
  readonly pid: number;
  /** Stops it. Idempotent. */
  stop(): Promise<void>;
}

/**
 * TCP: on each connection write the reply line and close. UDP: answer each datagram with the reply.
 * Prints `READY <port>` once listening. Configuration comes as JSON in argv[1].
 */
const SERVER_SCRIPT = `
const cfg = JSON.parse(process.argv[1]);
const text = (addr, port) => cfg.reply + (cfg.echoPeer ? " " + String(addr).replace(/^::ffff:/, "") + ":" + port : "");
if (cfg.protocol === "tcp") {
  const srv = require("node:net").createServer((s) => {
    s.on("error", () => {});
    s.end(text(s.remoteAddress, s.remotePort) + "\\n");
  });
  srv.listen({ port: cfg.port, host: cfg.host }, () => process.stdout.write("READY " + srv.address().port + "\\n"));
} else {
  const sock = require("node:dgram").createSocket({ type: cfg.host.includes(":") ? "udp6" : "udp4" });
  sock.on("message", (m, r) => sock.send(text(r.address, r.port), r.port, r.address));
  sock.on("error", (e) => { console.error(e.message); process.exit(1); });
  sock.bind(cfg.port, cfg.host, () => process.stdout.write("READY " + sock.address().port + "\\n"));
}
`;

/**
 * Starts a small TCP or UDP server inside a namespace that answers with a given name.
 *
 * @throws WorknodeError when it does not come up within 10 s (the message has its stderr)
 */
export async function startNetnsServer(ns: Netns | string, opts: NetnsServerOptions): Promise<NetnsServer> {
  const name = nsName(ns);
  const cfg = {
    protocol: opts.protocol,
    port: opts.port,
    host: opts.host ?? "::",
    reply: opts.reply,
    echoPeer: !!opts.echoPeer,
  };
  const child = spawn(
    "ip",
    ["netns", "exec", name, process.execPath, "-e", SERVER_SCRIPT, JSON.stringify(cfg)],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      untrack();
      if (child.pid !== undefined && (await isProcessAlive(child.pid)))
        await terminateProcesses([child.pid], 2_000);
    })();
    return stopped;
  };
  const untrack = track({ what: `${opts.protocol} server in ${name}`, destroy: stop });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error("no READY within 10 s")), 10_000);
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /READY (\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      child.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`exited with code ${code}`));
      });
    });
    return { ns: name, protocol: opts.protocol, port, pid: child.pid!, stop };
  } catch (e) {
    await stop();
    throw new WorknodeError(
      "SERVER_START",
      `${opts.protocol} server in ${name} did not start: ${(e as Error).message}${stderr ? `\n${stderr.trim()}` : ""}`,
      { cause: e },
    );
  }
}

/** Options of {@link connectFromNetns}. */
export interface NetnsConnectOptions {
  /** `tcp` or `udp`. */
  readonly protocol: NetnsProtocol;
  /** Destination address. */
  readonly host: string;
  /** Destination port. */
  readonly port: number;
  /** Give up after this many ms (result `ETIMEDOUT`); default 2 000. */
  readonly timeoutMs?: number;
  /** UDP datagram payload; default `ping`. */
  readonly payload?: string;
}

/** Result of {@link connectFromNetns}: the reply, or the error code (`ECONNREFUSED`, `ETIMEDOUT` …). */
export type NetnsConnectResult =
  | { readonly ok: true; readonly reply: string }
  | { readonly ok: false; readonly error: string };

/**
 * TCP: connect, read until the server closes. UDP: connected socket, send one datagram, wait for
 * one answer (ICMP errors surface as ECONNREFUSED). Prints one JSON result line.
 */
const CLIENT_SCRIPT = `
const cfg = JSON.parse(process.argv[1]);
const done = (r) => { process.stdout.write(JSON.stringify(r) + "\\n"); process.exit(0); };
setTimeout(() => done({ ok: false, error: "ETIMEDOUT" }), cfg.timeoutMs);
if (cfg.protocol === "tcp") {
  const s = require("node:net").connect({ host: cfg.host, port: cfg.port });
  let data = "";
  s.on("data", (d) => { data += d; });
  s.on("end", () => done({ ok: true, reply: data.trim() }));
  s.on("error", (e) => done({ ok: false, error: e.code || e.message }));
} else {
  const sock = require("node:dgram").createSocket(cfg.host.includes(":") ? "udp6" : "udp4");
  sock.on("message", (m) => done({ ok: true, reply: m.toString().trim() }));
  sock.on("error", (e) => done({ ok: false, error: e.code || e.message }));
  sock.connect(cfg.port, cfg.host, () => sock.send(cfg.payload));
}
`;

/**
 * Connects from inside a namespace to `host:port` and returns the server's reply or the error.
 * Never throws for network errors (they are the result); throws only when the client cannot run.
 */
export async function connectFromNetns(
  ns: Netns | string,
  opts: NetnsConnectOptions,
): Promise<NetnsConnectResult> {
  const name = nsName(ns);
  const timeoutMs = opts.timeoutMs ?? 2_000;
  const cfg = {
    protocol: opts.protocol,
    host: opts.host,
    port: opts.port,
    timeoutMs,
    payload: opts.payload ?? "ping",
  };
  const r = await runCommand(
    "ip",
    ["netns", "exec", name, process.execPath, "-e", CLIENT_SCRIPT, JSON.stringify(cfg)],
    {
      timeoutMs: timeoutMs + 10_000,
    },
  );
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  try {
    const parsed = JSON.parse(line) as NetnsConnectResult;
    return parsed;
  } catch {
    throw new WorknodeError("CLIENT", `client in ${name} printed no result: ${r.stdout}${r.stderr}`);
  }
}
