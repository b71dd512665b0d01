/**
 * `worknode proxy` without root: flag and config handling through the real CLI
 * dispatcher (errors are raised before anything touches the machine), `plan`
 * output, and the running proxy in API and standalone mode against a recording
 * backend (no iptables is run); in API mode also the node's own Node object, whose
 * labels (the zone) reach the backend.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  type EndpointSlice,
  Gauge,
  type IPFamily,
  KUBE_RESOURCES,
  type Proxier,
  Registry,
  type Service,
  type SyncInput,
  type SyncStats,
  sameLabels,
  UnavailableError,
} from "@worknode/core";
import type { IptablesProxierOptions } from "@worknode/proxy-iptables";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeApiServer, waitFor } from "../../core/test/helpers/fake-apiserver.js";
import { createProxyCommand, type ProxyCommandDeps } from "../src/commands/proxy.js";
import type { ProxyReadyInfo } from "../src/commands/proxy-run.js";
import type { Command } from "../src/main.js";
import { runCli } from "../src/main.js";
import { captureIO as capture, webServicesYaml } from "./helpers/proxy-setup.js";
import { recordingBackend as recordingBackendOf } from "./helpers/recording-backend.js";

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[]): Promise<Run> {
  const { io, out } = capture(AbortSignal.abort());
  const status = await runCli(argv, io);
  return { status, ...out };
}

function expectOneLineError(r: Run, status: number, pattern: RegExp): void {
  expect(r.status).toBe(status);
  expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

/** A proxier that records what it is asked to program. */
class RecordingProxier implements Proxier {
  readonly mode = "iptables";
  readonly metrics = new Registry();
  readonly syncs: SyncInput[] = [];
  /** Each label change, with how many syncs had run when it came. */
  readonly labels: { labels: Readonly<Record<string, string>> | undefined; syncsBefore: number }[] = [];
  private nodeLabels: Readonly<Record<string, string>> | undefined;
  cleanups = 0;

  constructor(readonly options: IptablesProxierOptions) {
    new Gauge({ name: "recording_proxier_syncs", help: "syncs seen", registers: [this.metrics] }).set(0);
  }

  async sync(input: SyncInput): Promise<SyncStats> {
    this.syncs.push(input);
    return { servicePorts: input.snapshot.services.size, endpoints: 0 };
  }

  async cleanup(): Promise<void> {
    this.cleanups++;
  }

  /** As the iptables proxier's: records and reports a change of the node's labels. */
  setNodeLabels(labels: Readonly<Record<string, string>> | undefined): boolean {
    if ((labels === undefined) === (this.nodeLabels === undefined) && sameLabels(labels, this.nodeLabels))
      return false;
    this.nodeLabels = labels;
    this.labels.push({ labels, syncsBefore: this.syncs.length });
    return true;
  }

  /** The zone label the proxier holds now. */
  get zone(): string | undefined {
    return this.nodeLabels?.[ZONE_LABEL];
  }

  /** Endpoint addresses of a service port in the latest sync. */
  endpoints(key: string): string[] {
    const last = this.syncs.at(-1);
    return (last?.snapshot.endpoints.get(key) ?? []).map((e) => `${e.ip}:${e.port}`);
  }
}

function recordingBackend(families: IPFamily[] = ["IPv4"]) {
  return recordingBackendOf((options) => new RecordingProxier(options), families);
}

const SERVICES_YAML = `${webServicesYaml()}---
apiVersion: v1
kind: Service
metadata: {name: broken, namespace: default}
spec:
  clusterIP: 172.30.0.13
  ports: [{name: http, port: 99999}]
`;

let dir: string;
const file = (name: string) => path.join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "worknode-proxy-"));
  await writeFile(file("services.yaml"), SERVICES_YAML);
  await writeFile(
    file("bad-config.yaml"),
    "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\niptables:\n  minSyncPerod: 1s\n",
  );
  await writeFile(file("not-yaml.yaml"), "apiVersion: [\n");
  await writeFile(file("kubeconfig-garbage"), "this: [is not a kubeconfig\n");
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("worknode proxy: usage and configuration errors (one line, right status)", () => {
  it("is listed by worknode --help and prints kube-proxy's flags", async () => {
    expect((await run(["--help"])).stdout).toMatch(/^\s+proxy\s+Run the service proxy/m);
    const help = await run(["proxy", "--help"]);
    expect(help.status).toBe(0);
    for (const flag of [
      "--proxy-mode",
      "--kubeconfig",
      "--services-file",
      "--hostname-override",
      "--cluster-cidr",
      "--masquerade-all",
      "--nodeport-addresses",
      "--iptables-min-sync-period",
      "--iptables-sync-period",
      "--iptables-masquerade-bit",
      "--iptables-localhost-nodeports",
      "--healthz-bind-address",
      "--metrics-bind-address",
      "--config",
      "--cleanup",
      "--log-level",
    ]) {
      expect(help.stdout).toContain(flag);
    }
    expect(help.stdout).toContain('(default "0.0.0.0:10256")');
    expect(help.stdout).toContain("plan");
    const plan = await run(["proxy", "plan", "--help"]);
    expect(plan.status).toBe(0);
    expect(plan.stdout).toContain("--diff");
  });

  it("rejects an unknown flag", async () => {
    expectOneLineError(await run(["proxy", "--proxy-mod", "iptables"]), 2, /unknown flag --proxy-mod/);
  });

  it("rejects an unknown proxy mode as a usage error", async () => {
    expectOneLineError(
      await run(["proxy", "--services-file", file("services.yaml"), "--proxy-mode", "magic"]),
      2,
      /--proxy-mode: unknown proxy mode "magic" \(known: iptables, userspace, nftables, ipvs, ebpf\)/,
    );
  });

  it("says kube-proxy's other modes are not implemented yet", async () => {
    for (const mode of ["ipvs", "userspace"]) {
      expectOneLineError(
        await run(["proxy", "--services-file", file("services.yaml"), "--proxy-mode", mode]),
        1,
        new RegExp(`proxy mode "${mode}" is not implemented yet \\(implemented: iptables, nftables, ebpf\\)`),
      );
    }
  });

  it("needs exactly one of --kubeconfig and --services-file", async () => {
    expectOneLineError(
      await run(["proxy"]),
      2,
      /nothing to proxy: give --kubeconfig \(API mode\) or --services-file/,
    );
    expectOneLineError(
      await run(["proxy", "--kubeconfig", file("kc"), "--services-file", file("services.yaml")]),
      2,
      /give either --kubeconfig \(API mode\) or --services-file \(standalone\), not both/,
    );
  });

  it("names the misspelt field of a malformed config file", async () => {
    expectOneLineError(
      await run(["proxy", "--config", file("bad-config.yaml"), "--services-file", file("services.yaml")]),
      1,
      /--config .*bad-config\.yaml: unknown field "iptables\.minSyncPerod" \(did you mean "minSyncPeriod"\?\)/,
    );
    expectOneLineError(
      await run(["proxy", "--config", file("not-yaml.yaml"), "--services-file", file("services.yaml")]),
      1,
      /--config .*not-yaml\.yaml: YAML syntax error at line \d/,
    );
  });

  it("reports missing files", async () => {
    expectOneLineError(
      await run(["proxy", "--services-file", file("nope.yaml")]),
      1,
      /--services-file: .*nope\.yaml does not exist/,
    );
    expectOneLineError(
      await run(["proxy", "--config", file("nope.yaml"), "--services-file", file("services.yaml")]),
      1,
      /--config: .*nope\.yaml does not exist/,
    );
    expectOneLineError(
      await run(["proxy", "--kubeconfig", file("nope")]),
      1,
      /--kubeconfig: .*nope does not exist/,
    );
    expectOneLineError(
      await run(["proxy", "--kubeconfig", file("kubeconfig-garbage")]),
      1,
      /--kubeconfig: cannot load .*kubeconfig-garbage/,
    );
  });

  it("rejects malformed values", async () => {
    const svc = ["proxy", "--services-file", file("services.yaml")];
    expectOneLineError(
      await run([...svc, "--iptables-sync-period", "30"]),
      2,
      /--iptables-sync-period: "30" is not a duration/,
    );
    expectOneLineError(
      await run([...svc, "--iptables-masquerade-bit", "33"]),
      2,
      /--iptables-masquerade-bit: 33 is not in 0-31/,
    );
    expectOneLineError(
      await run([...svc, "--cluster-cidr", "10.0.0.0"]),
      2,
      /--cluster-cidr: "10\.0\.0\.0" is not a CIDR/,
    );
    expectOneLineError(
      await run([...svc, "--healthz-bind-address", "everywhere"]),
      2,
      /--healthz-bind-address: "everywhere"/,
    );
    expectOneLineError(await run([...svc, "--log-level", "loud"]), 2, /--log-level: "loud" is not one of/);
    expectOneLineError(
      await run([...svc, "--masquerade-all=maybe"]),
      2,
      /--masquerade-all: "maybe" is not a boolean/,
    );
    expectOneLineError(
      await run([...svc, "--iptables-localhost-nodeports=no"]),
      2,
      /--iptables-localhost-nodeports: "no" is not a boolean/,
    );
    expectOneLineError(await run([...svc, "extra"]), 2, /unexpected argument "extra"/);
  });
});

describe("worknode proxy plan", () => {
  it("prints the restore payload, REJECT for a service without endpoints, and an error line per invalid object", async () => {
    const r = await run([
      "proxy",
      "plan",
      "--services-file",
      file("services.yaml"),
      "--hostname-override",
      "node-1",
      "--cluster-cidr",
      "10.244.0.0/16",
    ]);
    expect(r.status).toBe(1); // the file has an invalid Service
    expect(r.stderr.trimEnd().split("\n")).toEqual([
      expect.stringMatching(
        /^worknode proxy plan: error: invalid Service default\/broken \(.*services\.yaml:\d+, document 4\): spec\.ports\[0\]\.port must be an integer in 1-65535$/,
      ),
    ]);
    const out = r.stdout;
    expect(out).toMatch(
      /^# worknode proxy plan: mode iptables, node node-1, IPv4: 2 service ports, 1 endpoints/,
    );
    expect(out).toContain("*filter\n");
    expect(out).toContain("*nat\n");
    expect(out).toContain(
      '-A KUBE-SERVICES -m comment --comment "default/lonely:http has no endpoints" -m tcp -p tcp -d 172.30.0.12 --dport 80 -j REJECT',
    );
    const svcChain =
      /-A KUBE-SERVICES -m comment --comment "default\/web:http cluster IP" -m tcp -p tcp -d 172\.30\.0\.10 --dport 80 -j (KUBE-SVC-[A-Z2-7]{16})/.exec(
        out,
      )?.[1];
    expect(svcChain).toBeDefined();
    expect(out).toContain(`:${svcChain} - [0:0]`);
    expect(out).toMatch(new RegExp(`-A ${svcChain} .* ! -s 10\\.244\\.0\\.0/16 -j KUBE-MARK-MASQ`));
    expect(out).toMatch(
      /-A KUBE-SEP-[A-Z2-7]{16} -m comment --comment default\/web:http -m tcp -p tcp -j DNAT --to-destination 10\.244\.0\.11:8080/,
    );
    expect(out).not.toContain("broken");
    expect(out).not.toContain("ip6tables");
  });

  it("exits 0 for a clean file and plans IPv6 services with ip6tables", async () => {
    await writeFile(
      file("v6.yaml"),
      `apiVersion: v1
kind: Service
metadata: {name: six}
spec:
  clusterIP: fd00:30::10
  clusterIPs: [fd00:30::10]
  ipFamilies: [IPv6]
  ports: [{port: 53, protocol: UDP}]
`,
    );
    const r = await run(["proxy", "plan", "--services-file", file("v6.yaml"), "--masquerade-all"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("IPv6: 1 service ports");
    expect(r.stdout).toContain("# input of: ip6tables-restore --noflush");
    expect(r.stdout).toContain(
      '-A KUBE-SERVICES -m comment --comment "default/six has no endpoints" -m udp -p udp -d fd00:30::10 --dport 53 -j REJECT',
    );
  });

  it("--iptables-localhost-nodeports=false plans no localhost node ports and no KUBE-FIREWALL", async () => {
    await writeFile(
      file("nodeport.yaml"),
      "apiVersion: v1\nkind: Service\nmetadata: {name: np}\nspec:\n  type: NodePort\n  clusterIP: 172.30.0.5\n  ports: [{port: 80, nodePort: 30080}]\n",
    );
    const argv = ["proxy", "plan", "--services-file", file("nodeport.yaml"), "--hostname-override", "n"];
    const on = await run(argv);
    expect(on.status).toBe(0);
    expect(on.stdout).toContain(":KUBE-FIREWALL - [0:0]");
    expect(on.stdout).toContain(
      '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections"',
    );
    expect(on.stdout).toMatch(/--dst-type LOCAL -j KUBE-NODEPORTS/);
    const off = await run([...argv, "--iptables-localhost-nodeports=false"]);
    expect(off.status).toBe(0);
    expect(off.stdout).toContain("--dport 30080");
    expect(off.stdout).not.toContain("KUBE-FIREWALL");
    expect(off.stdout).toMatch(/--dst-type LOCAL ! -d 127\.0\.0\.0\/8 -j KUBE-NODEPORTS/);
  });

  it("needs --services-file and an implemented mode", async () => {
    expectOneLineError(
      await run(["proxy", "plan"]),
      2,
      /worknode proxy: error: plan: --services-file is required/,
    );
    expectOneLineError(
      await run(["proxy", "plan", "--services-file", file("services.yaml"), "--proxy-mode", "ipvs"]),
      1,
      /proxy mode "ipvs" is not implemented yet/,
    );
    expectOneLineError(
      await run(["proxy", "plan", "--services-file", file("nope.yaml")]),
      1,
      /does not exist/,
    );
  });
});

// -----------------------------------------------------------------------------------------
// The running proxy, against a recording backend

interface Started {
  done: Promise<number>;
  stop: () => void;
  ready: Promise<ProxyReadyInfo>;
  out: { stdout: string; stderr: string };
}

function start(cmd: (deps: Partial<ProxyCommandDeps>) => Command, argv: string[]): Started {
  const controller = new AbortController();
  const { io, out } = capture(controller.signal);
  let resolveReady!: (i: ProxyReadyInfo) => void;
  const ready = new Promise<ProxyReadyInfo>((r) => {
    resolveReady = r;
  });
  const done = cmd({ onReady: resolveReady }).run(argv, io);
  return {
    done,
    stop: () => controller.abort(),
    ready: Promise.race([ready, done.then(() => never())]),
    out,
  };
}

function never(): never {
  throw new Error("the command ended before it was ready");
}

async function get(address: { host: string; port: number }, urlPath: string) {
  const res = await fetch(`http://${address.host}:${address.port}${urlPath}`);
  return { status: res.status, body: await res.text() };
}

function kubeconfigYaml(server: string): string {
  return `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "${server}"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`;
}

const WEB_KEY = "default/web:http/TCP";
const ZONE_LABEL = "topology.kubernetes.io/zone";

describe("worknode proxy in API mode (fake API server, recording backend)", () => {
  let api: FakeApiServer;

  beforeAll(async () => {
    api = await FakeApiServer.start({
      resources: [
        { group: "", version: "v1", plural: "services", kind: "Service", namespaced: true },
        {
          group: "discovery.k8s.io",
          version: "v1",
          plural: "endpointslices",
          kind: "EndpointSlice",
          namespaced: true,
        },
        KUBE_RESOURCES.nodes,
      ],
    });
    await writeFile(file("kubeconfig"), kubeconfigYaml(api.url));
  });

  afterAll(async () => {
    await api.close();
  });

  it("programs what the API server holds, follows changes, serves healthz and metrics, and leaves rules on exit", async () => {
    api.add<Service>("services", {
      metadata: { name: "web" },
      spec: {
        clusterIP: "172.30.0.10",
        clusterIPs: ["172.30.0.10"],
        ports: [{ name: "http", port: 80, targetPort: 8080 }],
      },
    });
    api.add<Service>("services", {
      metadata: {
        name: "other-proxy",
        labels: { "service.kubernetes.io/service-proxy-name": "someone-else" },
      },
      spec: { clusterIP: "172.30.0.20", clusterIPs: ["172.30.0.20"], ports: [{ name: "http", port: 80 }] },
    });
    const slice: EndpointSlice = {
      metadata: { name: "web-1", labels: { "kubernetes.io/service-name": "web" } },
      addressType: "IPv4",
      ports: [{ name: "http", port: 8080, protocol: "TCP" }],
      endpoints: [{ addresses: ["10.244.0.11"], conditions: { ready: true } }],
    };
    api.add<EndpointSlice>("endpointslices", slice);

    const { backend, state } = recordingBackend();
    const p = start(
      (d) => createProxyCommand({ ...d, backend, nodeIPs: () => ["192.168.1.10"], hostname: () => "Node-1" }),
      [
        "--kubeconfig",
        file("kubeconfig"),
        "--healthz-bind-address",
        "127.0.0.1:0",
        "--metrics-bind-address",
        "127.0.0.1:0",
        "--iptables-min-sync-period",
        "0s",
        "--cluster-cidr",
        "10.244.0.0/16",
        "--log-level",
        "warn",
      ],
    );
    const ready = await p.ready;
    const proxier = state.proxiers[0]!;
    expect(proxier.options).toMatchObject({
      nodeName: "node-1",
      nodeIPs: ["192.168.1.10"],
      families: ["IPv4"],
      clusterCIDRs: ["10.244.0.0/16"],
      masqueradeBit: 14,
      masqueradeAll: false,
      localhostNodePorts: true,
    });
    await waitFor(
      () => proxier.endpoints(WEB_KEY).includes("10.244.0.11:8080"),
      "first sync with the endpoint",
    );
    expect(proxier.syncs[0]!.full).toBe(true);
    // kube-proxy's label selector: the other proxy's Service is never listed.
    expect(
      api.requests.some((r) =>
        r.query.get("labelSelector")?.includes("!service.kubernetes.io/service-proxy-name"),
      ),
    ).toBe(true);
    expect([...proxier.syncs.at(-1)!.snapshot.services.keys()]).toEqual([WEB_KEY]);

    api.modify<EndpointSlice>("endpointslices", {
      ...slice,
      endpoints: [{ addresses: ["10.244.0.12"], conditions: { ready: true } }],
    });
    await waitFor(
      () => proxier.endpoints(WEB_KEY).join() === "10.244.0.12:8080",
      "sync after the slice changed",
    );

    const healthz = await get(ready.healthz!, "/healthz");
    expect(healthz.status).toBe(200);
    expect(Object.keys(JSON.parse(healthz.body))).toEqual(["lastUpdated", "currentTime", "nodeEligible"]);
    expect((await get(ready.healthz!, "/livez")).status).toBe(200);
    const metrics = await get(ready.metrics!, "/metrics");
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^kubeproxy_sync_proxy_rules_last_timestamp_seconds \d/m);
    expect(metrics.body).toContain("recording_proxier_syncs");
    expect(metrics.body).toMatch(/^worknode_informer_events_total\{.*type="MODIFIED".*\} 1/m);
    expect(metrics.body).toContain("worknode_service_tracker_events_total");
    expect(metrics.body).toMatch(/^kubeproxy_proxy_healthz_total\{code="200"\} 1/m);

    // No Node named node-1 on this server: no labels, and the proxy runs all the same.
    expect(proxier.labels).toEqual([]);

    p.stop();
    expect(await p.done).toBe(0);
    expect(proxier.cleanups).toBe(0);
    expect(state.cleanups).toBe(0);
    await expect(fetch(`http://127.0.0.1:${ready.healthz!.port}/healthz`)).rejects.toThrow();
  });

  const API_FLAGS = ["--healthz-bind-address=", "--metrics-bind-address=", "--iptables-min-sync-period=0s"];

  it("hands this node's labels (its zone) to the backend before the first sync, and syncs again on a relabel", async () => {
    api.add("nodes", { metadata: { name: "zoned-node", labels: { [ZONE_LABEL]: "zone-a" } } });
    api.add("nodes", { metadata: { name: "another-node", labels: { [ZONE_LABEL]: "zone-x" } } });
    const { backend, state } = recordingBackend();
    const p = start(
      // No --hostname-override: the node is named after the host, lowercased, as kube-proxy does.
      (d) =>
        createProxyCommand({ ...d, backend, nodeIPs: () => ["192.168.1.11"], hostname: () => "Zoned-Node" }),
      ["--kubeconfig", file("kubeconfig"), ...API_FLAGS, "--log-level=warn"],
    );
    await p.ready;
    const proxier = state.proxiers[0]!;
    expect(proxier.labels).toEqual([{ labels: { [ZONE_LABEL]: "zone-a" }, syncsBefore: 0 }]);
    expect(
      api.requests.some(
        (r) => r.path === "/api/v1/nodes" && r.query.get("fieldSelector") === "metadata.name=zoned-node",
      ),
    ).toBe(true);
    await waitFor(() => proxier.syncs.length > 0, "the first sync");
    const before = proxier.syncs.length;

    api.modify("nodes", { metadata: { name: "zoned-node", labels: { [ZONE_LABEL]: "zone-b" } } });
    await waitFor(() => proxier.zone === "zone-b", "the new zone");
    await waitFor(() => proxier.syncs.length > before, "a sync after the relabel");
    // Another Node's labels are none of this proxy's business.
    api.modify("nodes", { metadata: { name: "another-node", labels: { [ZONE_LABEL]: "zone-y" } } });
    api.modify("nodes", { metadata: { name: "zoned-node", labels: { [ZONE_LABEL]: "zone-c" } } });
    await waitFor(() => proxier.zone === "zone-c", "the third zone");
    expect(proxier.labels.map((l) => l.labels?.[ZONE_LABEL])).toEqual(["zone-a", "zone-b", "zone-c"]);

    p.stop();
    expect(await p.done).toBe(0);
  });

  it("keeps running while its Node does not exist, picks it up once registered, and notices its deletion", async () => {
    const { backend, state } = recordingBackend();
    const p = start(
      (d) => createProxyCommand({ ...d, backend, nodeIPs: () => ["192.168.1.12"] }),
      [
        "--kubeconfig",
        file("kubeconfig"),
        "--hostname-override",
        "Late-Node",
        ...API_FLAGS,
        "--log-level=info",
      ],
    );
    await p.ready;
    const proxier = state.proxiers[0]!;
    expect(p.out.stderr).toMatch(
      /"node":"late-node".*Node object does not exist \(yet\); proxying without node labels/,
    );
    await waitFor(() => proxier.endpoints(WEB_KEY).length > 0, "the first sync, without node labels");
    expect(proxier.labels).toEqual([]);
    const before = proxier.syncs.length;

    api.add("nodes", { metadata: { name: "late-node", labels: { [ZONE_LABEL]: "zone-late" } } });
    await waitFor(() => proxier.zone === "zone-late", "the registered Node's zone");
    await waitFor(() => proxier.syncs.length > before, "a sync with the zone");

    api.remove("nodes", "late-node");
    await waitFor(
      () => proxier.labels.length === 2 && proxier.labels[1]!.labels === undefined,
      "the deletion",
    );
    await waitFor(() => p.out.stderr.includes("Node object is gone"), "the warning");

    p.stop();
    expect(await p.done).toBe(0);
  });

  it("fails with one line naming the server when the API server cannot be reached", async () => {
    await writeFile(file("kubeconfig-dead"), kubeconfigYaml("http://127.0.0.1:1"));
    const { backend } = recordingBackend();
    const cmd = createProxyCommand({ backend, apiSyncTimeoutMs: 1_500 });
    const { io, out } = capture(new AbortController().signal);
    const started = Date.now();
    const err = await cmd
      .run(
        [
          "--kubeconfig",
          file("kubeconfig-dead"),
          "--healthz-bind-address=",
          "--metrics-bind-address=",
          "--log-level",
          "error",
        ],
        io,
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(UnavailableError);
    const message = (err as Error).message;
    expect(message).not.toContain("\n");
    expect(message).toMatch(
      /^cannot list from the API server at http:\/\/127\.0\.0\.1:1: .*not synced after 1500 ms; last error: .*ECONNREFUSED/,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(out.stderr).toBe(""); // the informers' retries stay quiet; the error says it all
  });
});

describe("worknode proxy in standalone mode (recording backend)", () => {
  it("follows edits of the services file", async () => {
    await writeFile(file("live.yaml"), SERVICES_YAML);
    const { backend, state } = recordingBackend();
    const p = start(
      (d) => createProxyCommand({ ...d, backend, nodeIPs: () => ["192.168.1.10"] }),
      [
        "--services-file",
        file("live.yaml"),
        "--hostname-override",
        "node-1",
        "--healthz-bind-address=",
        "--metrics-bind-address=",
        "--iptables-min-sync-period=0s",
        "--log-level=error",
      ],
    );
    const ready = await p.ready;
    expect(ready.healthz).toBeUndefined();
    const proxier = state.proxiers[0]!;
    await waitFor(() => proxier.endpoints(WEB_KEY).join() === "10.244.0.11:8080", "first sync");
    // The invalid Service is left out, the valid ones are served.
    expect([...proxier.syncs.at(-1)!.snapshot.services.keys()].sort()).toEqual([
      "default/lonely:http/TCP",
      WEB_KEY,
    ]);
    await writeFile(file("live.yaml"), SERVICES_YAML.replace("10.244.0.11", "10.244.0.12"));
    await waitFor(
      () => proxier.endpoints(WEB_KEY).join() === "10.244.0.12:8080",
      "sync after the edit",
      10_000,
    );
    p.stop();
    expect(await p.done).toBe(0);
    expect(proxier.cleanups).toBe(0);
  });

  it("passes --iptables-localhost-nodeports (default true) to the proxier", async () => {
    for (const [flags, expected] of [
      [[], true],
      [["--iptables-localhost-nodeports=false"], false],
      [["--iptables-localhost-nodeports"], true],
    ] as const) {
      const { backend, state } = recordingBackend();
      const p = start(
        (d) => createProxyCommand({ ...d, backend, nodeIPs: () => ["192.168.1.10"] }),
        [
          "--services-file",
          file("services.yaml"),
          "--healthz-bind-address=",
          "--metrics-bind-address=",
          "--log-level=error",
          ...flags,
        ],
      );
      await p.ready;
      expect(state.proxiers[0]!.options.localhostNodePorts).toBe(expected);
      p.stop();
      expect(await p.done).toBe(0);
    }
  });

  it("--cleanup asks the backend to remove its rules and exits 0 without a source", async () => {
    const { backend, state } = recordingBackend();
    const { io } = capture(new AbortController().signal);
    expect(await createProxyCommand({ backend }).run(["--cleanup", "--log-level", "error"], io)).toBe(0);
    expect(state.cleanups).toBe(1);
    expect(state.proxiers).toHaveLength(0);
  });
});
