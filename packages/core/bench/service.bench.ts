import { bench, describe } from "vitest";
import {
  buildServicePorts,
  categorizeEndpoints,
  type Endpoint,
  PersistentMap,
  ServiceChangeTracker,
} from "../src/service/index.js";
import { makeCluster, makeEndpointSlice, makeService } from "../test/fixtures/services.js";

const SERVICES = 10_000;
const ENDPOINTS = 10;

function loadedTracker(cluster: ReturnType<typeof makeCluster>): ServiceChangeTracker {
  const t = new ServiceChangeTracker({ nodeName: "node-1" });
  for (const s of cluster.services) t.serviceHandler.onAdd!(s);
  for (const s of cluster.slices) t.endpointSliceHandler.onAdd!(s);
  return t;
}

describe("ServiceChangeTracker, 10k services x 10 endpoints", () => {
  const cluster = makeCluster(SERVICES, ENDPOINTS, { zoneHints: true });

  bench(
    "initial full: 10k service + 10k slice events, then commit",
    () => {
      const t = loadedTracker(cluster);
      const { snapshot } = t.commit();
      if (snapshot.endpoints.size !== SERVICES) throw new Error("wrong snapshot");
    },
    { time: 3000, iterations: 3, warmupIterations: 1 },
  );

  // One tracker with everything committed; each iteration changes one service's slice and commits.
  const t = loadedTracker(cluster);
  t.commit();
  let n = 0;
  const variants = [
    (i: number) => makeEndpointSlice(i, ENDPOINTS, { zoneHints: true, notReady: (j) => j === 0 }),
    (i: number) => makeEndpointSlice(i, ENDPOINTS, { zoneHints: true }),
  ];
  const current = new Map<number, ReturnType<typeof makeEndpointSlice>>();
  bench("one changed service (slice update) then commit, at 10k services / 100k endpoints", () => {
    const i = (n * 7919) % SERVICES;
    const old = current.get(i) ?? cluster.slices[i]!;
    const next = variants[Math.floor(n / SERVICES) % 2]!(i);
    n++;
    t.endpointSliceHandler.onUpdate!(old, next);
    current.set(i, next);
    const { changes } = t.commit();
    if (changes.changedServicePorts.size !== 1) throw new Error("expected one change");
  });

  let m = 0;
  const svcCurrent = new Map<number, ReturnType<typeof makeService>>();
  bench("one changed service (service update) then commit, at 10k services / 100k endpoints", () => {
    const i = (m * 104_729) % SERVICES;
    const old = svcCurrent.get(i) ?? cluster.services[i]!;
    const next = makeService(i, { affinityTimeout: 1 + (Math.floor(m / SERVICES) % 2) * 10 });
    m++;
    t.serviceHandler.onUpdate!(old, next);
    svcCurrent.set(i, next);
    const { changes } = t.commit();
    if (changes.changedServicePorts.size !== 1) throw new Error("expected one change");
  });
});

describe("builders", () => {
  const svc = makeService(42, {
    type: "LoadBalancer",
    ports: 3,
    externalIPs: ["192.0.2.1"],
    dualStack: true,
  });
  bench("buildServicePorts, LoadBalancer with 3 ports, dual-stack", () => {
    buildServicePorts(svc);
  });

  const sp = buildServicePorts(makeService(1, { type: "NodePort", externalTrafficPolicy: "Local" }))
    .ports[0]!;
  const eps: Endpoint[] = Array.from({ length: 100 }, (_, j) => ({
    ip: `10.0.${j >> 8}.${j & 255}`,
    family: "IPv4",
    port: 8080,
    address: `10.0.${j >> 8}.${j & 255}:8080`,
    ready: j % 10 !== 0,
    serving: j % 10 !== 0 || j % 20 === 0,
    terminating: j % 20 === 0,
    nodeName: `node-${j % 10}`,
    zone: `zone-${j % 3}`,
    zoneHints: [`zone-${j % 3}`],
    nodeHints: [],
    isLocal: j % 10 === 1,
  }));
  bench("categorizeEndpoints, 100 endpoints, zone hints + externalTrafficPolicy Local", () => {
    categorizeEndpoints(sp, eps, { name: "node-1", zone: "zone-1" });
  });
});

describe("snapshot map update, 10k entries, one change", () => {
  const entries = Array.from({ length: SERVICES }, (_, i) => [`ns-${i % 10}/svc-${i}:p0/TCP`, i] as const);
  const native = new Map<string, number>(entries);
  let pm = PersistentMap.from<string, number>(entries);
  let k = 0;
  bench("Map copy + set (copy-on-write by cloning)", () => {
    const copy = new Map(native);
    copy.set(`ns-1/svc-${k++ % SERVICES}:p0/TCP`, k);
  });
  bench("PersistentMap.withChanges", () => {
    pm = pm.withChanges(new Map([[`ns-1/svc-${k++ % SERVICES}:p0/TCP`, k]]));
  });
});
