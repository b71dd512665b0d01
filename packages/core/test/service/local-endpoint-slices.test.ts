import { describe, expect, it } from "vitest";
import type { EndpointSlice, Pod, Service } from "../../src/kube/objects.js";
import {
  buildLocalEndpointSlices,
  LOCAL_ENDPOINT_SLICE_CONTROLLER_NAME,
  LocalEndpointSliceController,
  localEndpointSliceName,
  parseEndpointSlice,
} from "../../src/service/index.js";
import { findTargetPort, serviceAddressTypes } from "../../src/service/pod-endpoints.js";
import { SnapshotObjectSource } from "../../src/sources/snapshot-source.js";
import { InvalidObjectError } from "../../src/util/errors.js";

const NODE = "node-a";

function service(name: string, spec: Service["spec"], ns = "default"): Service {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: ns },
    spec: { clusterIP: "10.96.0.10", ports: [{ name: "http", port: 80, targetPort: 8080 }], ...spec },
  };
}

interface PodOpts {
  ns?: string;
  labels?: Record<string, string>;
  ips?: string[];
  ready?: boolean;
  phase?: string;
  deleting?: boolean;
  nodeName?: string;
  ports?: { name: string; containerPort: number; protocol?: string }[];
}

function pod(name: string, o: PodOpts = {}): Pod {
  const ips = o.ips ?? ["10.244.0.5"];
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: o.ns ?? "default",
      uid: `uid-${name}`,
      labels: o.labels ?? { app: "web" },
      ...(o.deleting ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}),
    },
    spec: {
      nodeName: o.nodeName ?? NODE,
      containers: [{ name: "c", image: "img", ports: o.ports ?? [] }],
    },
    status: {
      phase: o.phase ?? "Running",
      ...(ips[0] ? { podIP: ips[0] } : {}),
      podIPs: ips.map((ip) => ({ ip })),
      conditions: [{ type: "Ready", status: o.ready === false ? "False" : "True" }],
    },
  };
}

function fileSlice(name: string, svc: string, ip: string): EndpointSlice {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name, namespace: "default", labels: { "kubernetes.io/service-name": svc } },
    addressType: "IPv4",
    endpoints: [{ addresses: [ip] }],
    ports: [{ name: "http", port: 9000, protocol: "TCP" }],
  };
}

const web = service("web", { selector: { app: "web" } });

describe("buildLocalEndpointSlices", () => {
  it("selects the pods whose labels match the selector, in the same namespace, on this node", () => {
    const slices = buildLocalEndpointSlices(
      [web],
      [],
      [
        pod("a", { ips: ["10.244.0.5"] }),
        pod("b", { ips: ["10.244.0.6"], labels: { app: "web", tier: "front" } }),
        pod("other-app", { ips: ["10.244.0.7"], labels: { app: "db" } }),
        pod("no-labels", { ips: ["10.244.0.8"], labels: {} }),
        pod("other-ns", { ips: ["10.244.0.9"], ns: "kube-system" }),
        pod("other-node", { ips: ["10.244.0.10"], nodeName: "node-b" }),
        pod("no-ip", { ips: [] }),
        pod("done", { ips: ["10.244.0.11"], phase: "Succeeded" }),
        pod("failed", { ips: ["10.244.0.12"], phase: "Failed" }),
      ],
      NODE,
    );
    expect(slices).toHaveLength(1);
    const s = slices[0]!;
    expect(s.metadata?.name).toBe("web-local-ipv4");
    expect(s.metadata?.namespace).toBe("default");
    expect(s.metadata?.labels).toEqual({
      "kubernetes.io/service-name": "web",
      "endpointslice.kubernetes.io/managed-by": LOCAL_ENDPOINT_SLICE_CONTROLLER_NAME,
    });
    expect(s.addressType).toBe("IPv4");
    expect(s.ports).toEqual([{ name: "http", port: 8080, protocol: "TCP" }]);
    expect(s.endpoints).toEqual([
      {
        addresses: ["10.244.0.5"],
        conditions: { ready: true, serving: true, terminating: false },
        nodeName: NODE,
        targetRef: { kind: "Pod", namespace: "default", name: "a", uid: "uid-a" },
      },
      {
        addresses: ["10.244.0.6"],
        conditions: { ready: true, serving: true, terminating: false },
        nodeName: NODE,
        targetRef: { kind: "Pod", namespace: "default", name: "b", uid: "uid-b" },
      },
    ]);
    // What the proxy reads from it.
    const parsed = parseEndpointSlice(s, { nodeName: NODE });
    expect(parsed.error).toBeUndefined();
    expect(parsed.slice?.endpoints.map((e) => [e.ip, e.ready, e.isLocal])).toEqual([
      ["10.244.0.5", true, true],
      ["10.244.0.6", true, true],
    ]);
  });

  it("a pod that is not ready is listed with ready and serving false", () => {
    const [s] = buildLocalEndpointSlices([web], [], [pod("a", { ready: false })], NODE);
    expect(s?.endpoints[0]?.conditions).toEqual({ ready: false, serving: false, terminating: false });
  });

  it("publishNotReadyAddresses makes every endpoint ready", () => {
    const svc = service("web", { selector: { app: "web" }, publishNotReadyAddresses: true });
    const [s] = buildLocalEndpointSlices([svc], [], [pod("a", { ready: false })], NODE);
    expect(s?.endpoints[0]?.conditions).toEqual({ ready: true, serving: false, terminating: false });
  });

  it("a terminating pod is serving (while Ready) and terminating, never ready", () => {
    const [s] = buildLocalEndpointSlices(
      [web],
      [],
      [pod("a", { deleting: true }), pod("b", { ips: ["10.244.0.6"], deleting: true, ready: false })],
      NODE,
    );
    expect(s?.endpoints.map((e) => e.conditions)).toEqual([
      { ready: false, serving: true, terminating: true },
      { ready: false, serving: false, terminating: true },
    ]);
  });

  it("resolves a named targetPort per pod from its container ports with the same protocol", () => {
    const svc = service("web", {
      selector: { app: "web" },
      ports: [
        { name: "http", port: 80, targetPort: "web" },
        { name: "dns", port: 53, protocol: "UDP", targetPort: "dns" },
      ],
    });
    const slices = buildLocalEndpointSlices(
      [svc],
      [],
      [
        pod("a", {
          ips: ["10.244.0.5"],
          ports: [
            { name: "web", containerPort: 8080 },
            { name: "dns", containerPort: 5353, protocol: "UDP" },
          ],
        }),
        pod("b", {
          ips: ["10.244.0.6"],
          ports: [
            { name: "web", containerPort: 8080 },
            { name: "dns", containerPort: 5353, protocol: "UDP" },
          ],
        }),
        // Another port number for the same name: a slice of its own.
        pod("c", { ips: ["10.244.0.7"], ports: [{ name: "web", containerPort: 9090 }] }),
      ],
      NODE,
    );
    const byPorts = new Map(slices.map((s) => [JSON.stringify(s.ports), s]));
    expect(slices).toHaveLength(2);
    const ab = byPorts.get(
      JSON.stringify([
        { name: "http", port: 8080, protocol: "TCP" },
        { name: "dns", port: 5353, protocol: "UDP" },
      ]),
    );
    expect(ab?.endpoints.map((e) => e.addresses[0])).toEqual(["10.244.0.5", "10.244.0.6"]);
    const c = byPorts.get(JSON.stringify([{ name: "http", port: 9090, protocol: "TCP" }]));
    expect(c?.endpoints.map((e) => e.addresses[0])).toEqual(["10.244.0.7"]);
    // One keeps the base name, the other gets a suffix; both belong to the service.
    const names = slices.map((s) => s.metadata?.name ?? "").sort();
    expect(names[0]).toBe("web-local-ipv4");
    expect(names[1]).toMatch(/^web-local-ipv4-[0-9a-f]{10}$/);
    for (const s of slices) expect(s.metadata?.labels?.["kubernetes.io/service-name"]).toBe("web");
  });

  it("findTargetPort: number as is, unset means the service port, protocol must match, sidecars count", () => {
    const p = pod("a", { ports: [{ name: "dns", containerPort: 5353, protocol: "UDP" }] });
    p.spec!.initContainers = [
      { name: "side", restartPolicy: "Always", ports: [{ name: "metrics", containerPort: 9100 }] },
      { name: "init", ports: [{ name: "setup", containerPort: 7000 }] },
    ];
    expect(findTargetPort(p, { port: 80, targetPort: 8080 })).toBe(8080);
    expect(findTargetPort(p, { port: 80 })).toBe(80);
    expect(findTargetPort(p, { port: 53, targetPort: "dns" })).toBeUndefined();
    expect(findTargetPort(p, { port: 53, protocol: "UDP", targetPort: "dns" })).toBe(5353);
    expect(findTargetPort(p, { port: 91, targetPort: "metrics" })).toBe(9100);
    expect(findTargetPort(p, { port: 70, targetPort: "setup" })).toBeUndefined();
  });

  it("a service port whose named target port the pod lacks is left out of that pod's slice", () => {
    const svc = service("web", {
      selector: { app: "web" },
      ports: [
        { name: "http", port: 80, targetPort: 8080 },
        { name: "admin", port: 81, targetPort: "admin" },
      ],
    });
    const [s] = buildLocalEndpointSlices([svc], [], [pod("a")], NODE);
    expect(s?.ports).toEqual([{ name: "http", port: 8080, protocol: "TCP" }]);
  });

  it("a service with a file-given slice is left alone", () => {
    const slices = buildLocalEndpointSlices(
      [web],
      [fileSlice("web-manual", "web", "10.1.0.1")],
      [pod("a")],
      NODE,
    );
    expect(slices).toEqual([]);
  });

  it("a service without selector, with an empty selector, or of type ExternalName gets nothing", () => {
    const slices = buildLocalEndpointSlices(
      [
        service("plain", {}),
        service("empty", { selector: {} }),
        service("ext", { type: "ExternalName", externalName: "example.org", selector: { app: "web" } }),
      ],
      [],
      [pod("a")],
      NODE,
    );
    expect(slices).toEqual([]);
  });

  it("a service whose selector matches no pod gets one empty placeholder slice", () => {
    const slices = buildLocalEndpointSlices(
      [service("db", { selector: { app: "db" } })],
      [],
      [pod("a")],
      NODE,
    );
    expect(slices).toHaveLength(1);
    expect(slices[0]?.metadata?.name).toBe("db-local-ipv4");
    expect(slices[0]?.endpoints).toEqual([]);
    expect(parseEndpointSlice(slices[0]!, { nodeName: NODE }).error).toBeUndefined();
  });

  it("dual-stack pods give one slice per family of a dual-stack service", () => {
    const svc = service("web", {
      selector: { app: "web" },
      ipFamilies: ["IPv4", "IPv6"],
      clusterIPs: ["10.96.0.10", "fd00::10"],
    });
    const pods = [
      pod("a", { ips: ["10.244.0.5", "fd00:10:244::5"] }),
      pod("v4only", { ips: ["10.244.0.6"] }),
      pod("v6only", { ips: ["FD00:10:244:0::7"] }),
    ];
    const slices = buildLocalEndpointSlices([svc], [], pods, NODE);
    expect(
      slices.map((s) => [s.metadata?.name, s.addressType, s.endpoints.map((e) => e.addresses[0])]),
    ).toEqual([
      ["web-local-ipv4", "IPv4", ["10.244.0.5", "10.244.0.6"]],
      ["web-local-ipv6", "IPv6", ["fd00:10:244::5", "fd00:10:244::7"]],
    ]);
    // A single-stack IPv4 service takes only the IPv4 addresses.
    const v4 = buildLocalEndpointSlices([web], [], pods, NODE);
    expect(v4.map((s) => s.addressType)).toEqual(["IPv4"]);
    expect(v4[0]?.endpoints.map((e) => e.addresses[0])).toEqual(["10.244.0.5", "10.244.0.6"]);
  });

  it("serviceAddressTypes: ipFamilies, else the ClusterIP's family, else both", () => {
    expect(serviceAddressTypes(service("a", { ipFamilies: ["IPv6"] }))).toEqual(["IPv6"]);
    expect(serviceAddressTypes(service("a", { clusterIP: "fd00::1" }))).toEqual(["IPv6"]);
    expect(serviceAddressTypes(service("a", { clusterIP: "10.0.0.1" }))).toEqual(["IPv4"]);
    expect(serviceAddressTypes(service("a", { clusterIP: "None" }))).toEqual(["IPv4", "IPv6"]);
  });

  it("copies the service's labels, marks headless services, sets owner and hostname", () => {
    const svc: Service = {
      metadata: { name: "db", namespace: "default", uid: "svc-uid", labels: { team: "x" } },
      spec: { clusterIP: "None", selector: { app: "db" }, ipFamilies: ["IPv4"], ports: [{ port: 5432 }] },
    };
    const p = pod("db-0", { labels: { app: "db" } });
    p.spec!.hostname = "db-0";
    p.spec!.subdomain = "db";
    const [s] = buildLocalEndpointSlices([svc], [], [p], NODE, { zone: "z1" });
    expect(s?.metadata?.labels).toEqual({
      team: "x",
      "kubernetes.io/service-name": "db",
      "endpointslice.kubernetes.io/managed-by": LOCAL_ENDPOINT_SLICE_CONTROLLER_NAME,
      "service.kubernetes.io/headless": "",
    });
    expect(s?.metadata?.ownerReferences).toEqual([
      {
        apiVersion: "v1",
        kind: "Service",
        name: "db",
        uid: "svc-uid",
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    expect(s?.endpoints[0]?.hostname).toBe("db-0");
    expect(s?.endpoints[0]?.zone).toBe("z1");
    expect(s?.ports).toEqual([{ name: "", port: 5432, protocol: "TCP" }]);
  });

  it("never shadows a file slice with the same name", () => {
    const taken = fileSlice(localEndpointSliceName("web", "IPv4"), "other", "10.1.0.1");
    expect(buildLocalEndpointSlices([web], [taken], [pod("a")], NODE)).toEqual([]);
  });
});

type Event = [string, string];

function harness(nodeName = NODE) {
  const services = new SnapshotObjectSource<Service>({ kind: "Service" });
  const slices = new SnapshotObjectSource<EndpointSlice>({ kind: "EndpointSlice" });
  const pods = new SnapshotObjectSource<Pod>({ kind: "Pod" });
  const controller = new LocalEndpointSliceController({ services, endpointSlices: slices, pods, nodeName });
  const events: Event[] = [];
  let synced = 0;
  const invalid: InvalidObjectError[] = [];
  controller.endpointSlices.addHandler({
    onAdd: (s) => events.push(["add", s.metadata?.name ?? ""]),
    onUpdate: (_o, s) => events.push(["update", s.metadata?.name ?? ""]),
    onDelete: (s) => events.push(["delete", s.metadata?.name ?? ""]),
    onSynced: () => synced++,
    onInvalid: (e) => invalid.push(e),
  });
  controller.start();
  return {
    services,
    slices,
    pods,
    controller,
    events,
    invalid,
    synced: () => synced,
    take(): Event[] {
      return events.splice(0);
    },
    slice(name: string): EndpointSlice | undefined {
      return controller.endpointSlices.get(`default/${name}`);
    },
  };
}

describe("LocalEndpointSliceController", () => {
  it("syncs only once all three inputs synced, then emits the generated slices", () => {
    const h = harness();
    h.services.replace([web]);
    h.slices.replace([]);
    expect(h.synced()).toBe(0);
    expect(h.controller.endpointSlices.hasSynced()).toBe(false);
    expect(h.controller.endpointSlices.list()).toEqual([]);
    h.pods.replace([pod("a")]);
    expect(h.synced()).toBe(1);
    expect(h.controller.endpointSlices.hasSynced()).toBe(true);
    expect(h.take()).toEqual([["add", "web-local-ipv4"]]);
    expect(h.slice("web-local-ipv4")?.endpoints.map((e) => e.addresses[0])).toEqual(["10.244.0.5"]);
  });

  it("picks up inputs that were already synced before start", () => {
    const services = new SnapshotObjectSource<Service>({ kind: "Service" });
    const slices = new SnapshotObjectSource<EndpointSlice>({ kind: "EndpointSlice" });
    const pods = new SnapshotObjectSource<Pod>({ kind: "Pod" });
    services.replace([web]);
    slices.replace([fileSlice("api-1", "api", "10.1.0.1")]);
    pods.replace([pod("a")]);
    const c = new LocalEndpointSliceController({ services, endpointSlices: slices, pods, nodeName: NODE });
    c.start();
    expect(c.endpointSlices.hasSynced()).toBe(true);
    expect(
      c.endpointSlices
        .list()
        .map((s) => s.metadata?.name)
        .sort(),
    ).toEqual(["api-1", "web-local-ipv4"]);
  });

  it("readiness change flips conditions.ready with exactly one update", () => {
    const h = harness();
    h.services.replace([web]);
    h.slices.replace([]);
    h.pods.replace([pod("a", { ready: false })]);
    h.take();
    expect(h.slice("web-local-ipv4")?.endpoints[0]?.conditions?.ready).toBe(false);
    h.pods.replace([pod("a", { ready: true })]);
    expect(h.take()).toEqual([["update", "web-local-ipv4"]]);
    expect(h.slice("web-local-ipv4")?.endpoints[0]?.conditions).toEqual({
      ready: true,
      serving: true,
      terminating: false,
    });
    // The same state again changes nothing.
    h.pods.replace([pod("a", { ready: true })]);
    expect(h.take()).toEqual([]);
  });

  it("pod deletion removes the endpoint; the last one leaves an empty slice", () => {
    const h = harness();
    h.services.replace([web]);
    h.slices.replace([]);
    h.pods.replace([pod("a"), pod("b", { ips: ["10.244.0.6"] })]);
    h.take();
    h.pods.replace([pod("b", { ips: ["10.244.0.6"] })]);
    expect(h.take()).toEqual([["update", "web-local-ipv4"]]);
    expect(h.slice("web-local-ipv4")?.endpoints.map((e) => e.addresses[0])).toEqual(["10.244.0.6"]);
    h.pods.replace([]);
    expect(h.take()).toEqual([["update", "web-local-ipv4"]]);
    expect(h.slice("web-local-ipv4")?.endpoints).toEqual([]);
  });

  it("terminating pod turns serving-terminating", () => {
    const h = harness();
    h.services.replace([web]);
    h.slices.replace([]);
    h.pods.replace([pod("a")]);
    h.take();
    h.pods.replace([pod("a", { deleting: true })]);
    expect(h.take()).toEqual([["update", "web-local-ipv4"]]);
    expect(h.slice("web-local-ipv4")?.endpoints[0]?.conditions).toEqual({
      ready: false,
      serving: true,
      terminating: true,
    });
  });

  it("file-given slices win and pass through; removing them hands the service to the controller", () => {
    const h = harness();
    const manual = fileSlice("web-manual", "web", "10.1.0.1");
    h.services.replace([web]);
    h.slices.replace([manual]);
    h.pods.replace([pod("a")]);
    expect(h.take()).toEqual([["add", "web-manual"]]);
    expect(h.slice("web-manual")).toBe(manual);
    // A changed file slice is passed on as an update.
    h.slices.replace([fileSlice("web-manual", "web", "10.1.0.2")]);
    expect(h.take()).toEqual([["update", "web-manual"]]);
    h.slices.replace([]);
    expect(h.take()).toEqual([
      ["delete", "web-manual"],
      ["add", "web-local-ipv4"],
    ]);
    // And a file slice appearing again takes the service back.
    h.slices.replace([manual]);
    expect(h.take()).toEqual([
      ["delete", "web-local-ipv4"],
      ["add", "web-manual"],
    ]);
  });

  it("service changes: selector removed deletes the slice, a new service adds one", () => {
    const h = harness();
    h.services.replace([web]);
    h.slices.replace([]);
    h.pods.replace([pod("a"), pod("d", { ips: ["10.244.0.9"], labels: { app: "db" } })]);
    h.take();
    const db = service("db", { selector: { app: "db" }, ports: [{ port: 5432 }] });
    h.services.replace([service("web", {}), db]);
    expect(h.take()).toEqual([
      ["delete", "web-local-ipv4"],
      ["add", "db-local-ipv4"],
    ]);
    expect(h.slice("db-local-ipv4")?.endpoints.map((e) => e.addresses[0])).toEqual(["10.244.0.9"]);
    // Relabelling a pod moves it between services.
    h.services.replace([web, db]);
    h.take();
    h.pods.replace([
      pod("a", { labels: { app: "db" } }),
      pod("d", { ips: ["10.244.0.9"], labels: { app: "db" } }),
    ]);
    expect(h.take()).toEqual([
      ["update", "db-local-ipv4"],
      ["update", "web-local-ipv4"],
    ]);
    expect(h.slice("db-local-ipv4")?.endpoints.map((e) => e.addresses[0])).toEqual([
      "10.244.0.5",
      "10.244.0.9",
    ]);
    expect(h.slice("web-local-ipv4")?.endpoints).toEqual([]);
  });

  it("passes on invalid-object reports of the file slices", () => {
    const h = harness();
    const err = new InvalidObjectError({ kind: "EndpointSlice", namespace: "default", name: "bad" }, ["no"]);
    h.slices.reportInvalid(err);
    expect(h.invalid).toEqual([err]);
  });

  it("stop detaches from the inputs", () => {
    const h = harness();
    h.services.replace([web]);
    h.slices.replace([]);
    h.pods.replace([pod("a")]);
    h.take();
    h.controller.stop();
    h.pods.replace([]);
    expect(h.take()).toEqual([]);
    expect(h.slice("web-local-ipv4")?.endpoints).toHaveLength(1);
  });

  it("an output handler that changes an input is handled after the current pass", () => {
    const h = harness();
    h.services.replace([web]);
    h.slices.replace([]);
    let once = false;
    h.controller.endpointSlices.addHandler({
      onAdd: () => {
        if (once) return;
        once = true;
        h.pods.replace([pod("a"), pod("b", { ips: ["10.244.0.6"] })]);
      },
    });
    h.pods.replace([pod("a")]);
    expect(h.take()).toEqual([
      ["add", "web-local-ipv4"],
      ["update", "web-local-ipv4"],
    ]);
    expect(h.slice("web-local-ipv4")?.endpoints).toHaveLength(2);
  });
});
