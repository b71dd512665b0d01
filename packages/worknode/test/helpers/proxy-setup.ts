/**
 * Setup the `worknode proxy` / `worknode node` proxy tests share: the CLI run from its
 * sources, services files in YAML, waiting for traffic, and a spawned proxy's output.
 */
import type { ChildProcess } from "node:child_process";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { CliIO } from "../../src/main.js";

const ROOT = path.resolve(import.meta.dirname, "../../../..");
const CLI = path.join(ROOT, "packages/worknode/src/cli.ts");
const TSX = pathToFileURL(path.join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;

/** Node arguments that run the worknode CLI from its TypeScript sources: `node ...CLI_NODE_ARGS <args>`. */
export const CLI_NODE_ARGS: readonly string[] = ["--conditions=@worknode/source", "--import", TSX, CLI];

/** A ClusterIP Service `<name>` in `default` with port `http` 80 → 8080, as a YAML document. */
export function serviceYaml(name: string, clusterIP: string): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec:
  clusterIP: ${clusterIP}
  ports: [{name: http, port: 80, targetPort: 8080}]
`;
}

/** The services file the proxy CLI tests share. */
export interface WebServicesOptions {
  /** Cluster IP of Service `web`; default 172.30.0.10. */
  readonly clusterIP?: string;
  /** The one ready endpoint of `web` (on node `node-1`); default 10.244.0.11. */
  readonly endpointIP?: string;
  /** Name of the Service without endpoints; default `lonely`. */
  readonly emptyName?: string;
  /** Its cluster IP; default 172.30.0.12. */
  readonly emptyIP?: string;
}

/**
 * Service `web` with EndpointSlice `web-1` (one ready endpoint on `node-1`, port `http` 8080)
 * and a Service without endpoints, as a multi-document YAML services file.
 */
export function webServicesYaml(opts: WebServicesOptions = {}): string {
  return `${serviceYaml("web", opts.clusterIP ?? "172.30.0.10")}---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [${opts.endpointIP ?? "10.244.0.11"}]
  conditions: {ready: true}
  nodeName: node-1
---
${serviceYaml(opts.emptyName ?? "lonely", opts.emptyIP ?? "172.30.0.12")}`;
}

/** Polls `fn` until it returns true; throws after `timeoutMs`. */
export async function eventually(
  what: string,
  fn: () => Promise<boolean>,
  timeoutMs = 30_000,
  intervalMs = 200,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A spawned process's stdout and stderr so far, and its exit code. */
export interface CollectedOutput {
  /** Everything it wrote so far, stdout and stderr interleaved. */
  readonly text: string;
  /** Resolves with its exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>;
}

/** Collects a spawned process's output and exit code. */
export function collectOutput(child: ChildProcess): CollectedOutput {
  let text = "";
  const add = (d: Buffer) => {
    text += d.toString();
  };
  child.stdout?.on("data", add);
  child.stderr?.on("data", add);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    get text() {
      return text;
    },
    exited,
  };
}

/** A `worknode proxy` process started by {@link spawnCliProxy}. */
export interface CliProxy {
  readonly child: ChildProcess;
  /** Its output so far and its exit code. */
  readonly out: CollectedOutput;
  /** Waits until `ready()` holds; fails at once, with the output, when the proxy exits first. */
  waitServing(what: string, ready: () => Promise<boolean>): Promise<void>;
}

/** Where {@link spawnCliProxy} binds the proxy's servers. */
export interface CliProxyAddresses {
  /** `--healthz-bind-address`; default 127.0.0.1:10256. */
  readonly healthz?: string;
  /** `--metrics-bind-address`; default 127.0.0.1:10249. */
  readonly metrics?: string;
}

/**
 * Starts `worknode proxy <flags…>` through `spawn` (e.g. inside a node namespace) with syncs
 * as soon as anything changes, /healthz on 127.0.0.1:10256 and /metrics on 127.0.0.1:10249
 * (or the addresses given, for a proxy on the host, where those ports may be taken).
 */
export function spawnCliProxy(
  spawn: (command: string, args: string[]) => ChildProcess,
  flags: readonly string[],
  addresses: CliProxyAddresses = {},
): CliProxy {
  const child = spawn(process.execPath, [
    ...CLI_NODE_ARGS,
    "proxy",
    ...flags,
    "--iptables-min-sync-period",
    "0s",
    "--healthz-bind-address",
    addresses.healthz ?? "127.0.0.1:10256",
    "--metrics-bind-address",
    addresses.metrics ?? "127.0.0.1:10249",
  ]);
  const out = collectOutput(child);
  return {
    child,
    out,
    waitServing: (what, ready) =>
      eventually(what, async () => {
        if (child.exitCode !== null)
          throw new Error(`worknode proxy exited (${child.exitCode}):\n${out.text}`);
        return ready();
      }),
  };
}

/** A {@link CliIO} that collects what the CLI writes; its signal is already aborted unless one is given. */
export function captureIO(signal: AbortSignal = AbortSignal.abort()): {
  io: CliIO;
  out: { stdout: string; stderr: string };
} {
  const out = { stdout: "", stderr: "" };
  return {
    out,
    io: {
      stdout: (t) => {
        out.stdout += t;
      },
      stderr: (t) => {
        out.stderr += t;
      },
      signal,
    },
  };
}
