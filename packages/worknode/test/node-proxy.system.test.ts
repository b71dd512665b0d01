/**
 * `worknode node` as a real process: the kubelet runs two labelled static pods on the
 * lab's containerd (CNI bridge wnprx0, pods in 10.91.0.0/16), and the proxy beside it
 * programs a selector Service of the services file — endpoints generated from those
 * pods — on a ClusterIP in a test-only range (10.250.0.0/24).
 *
 * The CNI bridge lives in the host network namespace, so the rules do too: the test
 * refuses to start when the host already has KUBE-* chains (they would be removed at
 * the end), the services file holds only the test's own Services (10.250.0.0/24, no
 * node ports), localhost node ports are off (route_localnet is left alone), and
 * afterAll always runs the proxier's cleanup for both families, even on failure.
 *
 *   host ── 10.250.0.10:80 ──iptables DNAT──▶ wnprx0 ─┬─ web-a (httpd :8080, "hello from web-a")
 *                                                     └─ web-b (httpd :8080, "hello from web-b")
 *
 * Each pod serves a hostPath directory the test writes: `index.html` names the pod and
 * the readiness probe reads `/ready`, so deleting that file on the host makes the pod
 * unready.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, unlink, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { IptablesProxier } from "@worknode/proxy-iptables";
import { type ContainerdLab, startContainerdLab } from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";

const run = promisify(execFile);

const ROOT = path.resolve(import.meta.dirname, "../../..");
const CLI = path.join(ROOT, "packages/worknode/src/cli.ts");
const TSX = pathToFileURL(path.join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;
const NODE_ARGS = ["--conditions=@worknode/source", "--import", TSX, CLI];

const LAB_CONTAINERD = {
  labDir: "/tmp/wnprx-lab",
  bridgeName: "wnprx0",
  podSubnet: "10.91.0.0/16",
  streamPort: 10058,
};
const NODE_NAME = "wnprx-node";
const CLUSTER_IP = "10.250.0.10";
const EMPTY_IP = "10.250.0.11";
const PODS = ["web-a", "web-b"] as const;

let lab: ContainerdLab;
let dir: string;
let manifestDir: string;
let servicesFile: string;
let agent: ChildProcess | undefined;
let logs = "";
let routeLocalnetBefore = "";

function podManifest(name: string, image: string, wwwDir: string): unknown {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default", labels: { app: "wnprx-web", pod: name } },
    spec: {
      containers: [
        {
          name: "httpd",
          image,
          imagePullPolicy: "IfNotPresent",
          command: ["httpd", "-f", "-p", "8080", "-h", "/srv"],
          ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }],
          readinessProbe: {
            httpGet: { path: "/ready", port: 8080 },
            periodSeconds: 1,
            failureThreshold: 1,
          },
          volumeMounts: [{ name: "www", mountPath: "/srv" }],
        },
      ],
      volumes: [{ name: "www", hostPath: { path: wwwDir, type: "Directory" } }],
    },
  };
}

const SERVICES = `apiVersion: v1
kind: Service
metadata: {name: wnprx-web, namespace: default}
spec:
  clusterIP: ${CLUSTER_IP}
  selector: {app: wnprx-web}
  ports: [{name: http, port: 80, targetPort: http, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: wnprx-nothing, namespace: default}
spec:
  clusterIP: ${EMPTY_IP}
  selector: {app: wnprx-no-such-pod}
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
`;

/** One HTTP GET on a fresh connection: the body, or `error:<code>`. */
function httpGet(host: string, port = 80, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: "/", agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => {
        body += d.toString();
      });
      res.on("end", () => resolve(body.trim()));
    });
    req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
    req.on("error", (e: NodeJS.ErrnoException) => resolve(`error:${e.code ?? e.message}`));
    req.end();
  });
}

/** The bodies of `n` requests to the ClusterIP, each on its own connection. */
async function spread(n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(await httpGet(CLUSTER_IP));
  return out;
}

/** The agent's log lines that are not the kubelet's (the proxy's), for failure messages. */
function proxyLogs(): string {
  return logs
    .split("\n")
    .filter((l) => !l.includes('"component":"kubelet"'))
    .slice(-40)
    .join("\n");
}

async function eventually(what: string, fn: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (agent?.exitCode !== null && agent?.exitCode !== undefined) {
      throw new Error(
        `worknode node exited (${agent.exitCode}) while waiting for ${what}:\n${logs.slice(-4000)}`,
      );
    }
    if (await fn()) return;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${proxyLogs()}`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function save(cmd: "iptables-save" | "ip6tables-save"): Promise<string> {
  return (await run(cmd, [])).stdout;
}

/** The DNAT destinations of the ClusterIP's endpoint chains in the host's nat table. */
async function dnatDestinations(): Promise<string[]> {
  const nat = (await run("iptables-save", ["-t", "nat"])).stdout;
  const out: string[] = [];
  for (const line of nat.split("\n")) {
    const m = /--comment "?default\/wnprx-web:http"? .*--to-destination (\S+)/.exec(line);
    if (m?.[1]) out.push(m[1]);
  }
  return out.sort();
}

async function cleanupHostRules(): Promise<void> {
  const errors: string[] = [];
  for (const family of ["IPv4", "IPv6"] as const) {
    await new IptablesProxier({ nodeName: NODE_NAME, families: [family] })
      .cleanup()
      .catch((e: unknown) => errors.push(String(e)));
  }
  if (errors.length > 0) throw new Error(errors.join("\n"));
}

beforeAll(async () => {
  // The proxy's cleanup removes every KUBE-* chain of the host: never run over someone else's.
  for (const cmd of ["iptables-save", "ip6tables-save"] as const) {
    const existing = (await save(cmd)).split("\n").filter((l) => /^:KUBE-/.test(l));
    if (existing.length > 0) {
      throw new Error(
        `the host already has kube-proxy chains (${cmd}: ${existing.join(" ")}); refusing to run`,
      );
    }
  }
  routeLocalnetBefore = (await run("sysctl", ["-n", "net.ipv4.conf.all.route_localnet"])).stdout.trim();
  lab = await startContainerdLab({ log: (l) => console.error(`[lab] ${l}`), containerd: LAB_CONTAINERD });
  dir = await mkdtemp(path.join(tmpdir(), "wnprx-"));
  manifestDir = path.join(dir, "manifests");
  await mkdir(manifestDir);
  for (const name of PODS) {
    const www = path.join(dir, "www", name);
    await mkdir(www, { recursive: true });
    await writeFile(path.join(www, "index.html"), `hello from ${name}\n`);
    await writeFile(path.join(www, "ready"), "ok\n");
    await writeFile(
      path.join(manifestDir, `${name}.yaml`),
      stringify(podManifest(name, lab.busyboxImage, www)),
    );
  }
  servicesFile = path.join(dir, "services.yaml");
  await writeFile(servicesFile, SERVICES);
}, 1_800_000);

afterAll(async () => {
  try {
    const a = agent;
    if (a && a.exitCode === null && a.signalCode === null) {
      const exited = new Promise((r) => a.once("exit", r));
      a.kill("SIGTERM");
      await exited;
    }
  } finally {
    try {
      await cleanupHostRules();
      if (routeLocalnetBefore !== "") {
        await run("sysctl", ["-w", `net.ipv4.conf.all.route_localnet=${routeLocalnetBefore}`]);
      }
    } finally {
      await lab?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  }
}, 300_000);

describe("worknode node: the proxy beside the kubelet (host network namespace, lab containerd)", () => {
  it("serves the selector Service on its ClusterIP from both static pods", async () => {
    agent = spawn(process.execPath, [
      ...NODE_ARGS,
      "node",
      "--pod-manifest-path",
      manifestDir,
      "--services-file",
      servicesFile,
      "--container-runtime-endpoint",
      lab.endpoint,
      "--hostname-override",
      NODE_NAME,
      "--root-dir",
      path.join(dir, "root"),
      "--healthz-port",
      "0",
      "--port",
      "0",
      "--file-check-frequency",
      "2s",
      "--cluster-cidr",
      LAB_CONTAINERD.podSubnet,
      "--iptables-localhost-nodeports=false",
      "--iptables-min-sync-period",
      "0s",
      "--proxy-healthz-bind-address",
      "127.0.0.1:0",
      "--metrics-bind-address",
      "127.0.0.1:0",
      "--log-level",
      "debug",
    ]);
    agent.stdout?.on("data", (d: Buffer) => {
      logs += d.toString();
    });
    agent.stderr?.on("data", (d: Buffer) => {
      logs += d.toString();
    });

    await eventually("both pods behind the ClusterIP", async () => (await dnatDestinations()).length === 2);
    const seen = await spread(30);
    expect(new Set(seen)).toEqual(new Set(["hello from web-a", "hello from web-b"]));
    // A selector Service whose selector matches no pod: a placeholder slice, no endpoints, REJECT.
    expect(await httpGet(EMPTY_IP)).toBe("error:ECONNREFUSED");
    const nat = await save("iptables-save");
    expect(nat).toContain('-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES');
    const clusterIPRule = nat
      .split("\n")
      .find((l) => l.startsWith("-A KUBE-SERVICES ") && l.includes("default/wnprx-web:http cluster IP"));
    expect(clusterIPRule).toMatch(/-d 10\.250\.0\.10\/32 .*--dport 80 -j KUBE-SVC-[A-Z2-7]{16}$/);
    // Endpoints point at the pods' CNI addresses and their named target port.
    for (const d of await dnatDestinations()) expect(d).toMatch(/^10\.91\.\d+\.\d+:8080$/);
  });

  it("drops a pod that turns unready from the endpoints, and takes it back when ready again", async () => {
    const before = await dnatDestinations();
    await unlink(path.join(dir, "www", "web-a", "ready"));
    await eventually(
      "web-a out of the endpoints",
      async () => (await dnatDestinations()).length === 1,
      60_000,
    );
    expect(before).toContain((await dnatDestinations())[0]);
    expect(new Set(await spread(15))).toEqual(new Set(["hello from web-b"]));

    await writeFile(path.join(dir, "www", "web-a", "ready"), "ok\n");
    await eventually(
      "web-a back in the endpoints",
      async () => (await dnatDestinations()).length === 2,
      60_000,
    );
    expect(new Set(await spread(30))).toEqual(new Set(["hello from web-a", "hello from web-b"]));
  });

  it("leaves the rules in place on exit (as kube-proxy), and --cleanup removes them all", async () => {
    const a = agent!;
    expect(a.exitCode, `worknode node exited early:\n${proxyLogs()}`).toBeNull();
    const exited = new Promise<number | null>((r) => a.once("exit", (c) => r(c)));
    a.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(await dnatDestinations()).toHaveLength(2);
    expect(await httpGet(CLUSTER_IP)).toMatch(/^hello from web-[ab]$/);

    const r = await run(process.execPath, [...NODE_ARGS, "node", "--cleanup"]);
    expect(r.stdout).toMatch(/removed the proxy rules/);
    for (const cmd of ["iptables-save", "ip6tables-save"] as const) {
      const after = await save(cmd);
      expect(after.split("\n").filter((l) => l.includes("KUBE-"))).toEqual([]);
    }
    // Nothing steers the ClusterIP to the pods any more (what answers instead, if anything, is the host's route).
    expect(await httpGet(CLUSTER_IP, 80, 1_000)).not.toMatch(/hello from/);
  });
});
