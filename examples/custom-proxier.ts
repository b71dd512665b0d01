import {
  categorizeEndpoints,
  type Proxier,
  ProxyController,
  ServiceChangeTracker,
  ServicesFileSource,
  type SyncInput,
  type SyncStats,
} from "@worknode/core";

// A backend is anything that implements `Proxier`. This one only prints what it would program;
// real backends (iptables, nftables, IPVS, eBPF) render rules from the same input.
class PrintingProxier implements Proxier {
  readonly mode = "print";

  async sync({ snapshot, changes, full }: SyncInput): Promise<SyncStats> {
    const keys = full ? [...snapshot.services.keys()] : [...changes.changedServicePorts];
    let endpoints = 0;
    for (const key of keys) {
      const port = snapshot.services.get(key);
      if (!port) {
        console.log(`delete ${key}`);
        continue;
      }
      // The endpoint selection every backend shares: ready first, then serving-terminating,
      // traffic policies and topology hints.
      const { allReachableEndpoints } = categorizeEndpoints(port, snapshot.endpoints.get(key), {
        name: "node-1",
      });
      endpoints += allReachableEndpoints.length;
      const backends = allReachableEndpoints.map((e) => e.address).join(" ") || "(reject: no endpoints)";
      console.log(
        `${full ? "full" : "partial"} ${key}: ${port.clusterIPs.join(",")}:${port.port} -> ${backends}`,
      );
    }
    return { servicePorts: snapshot.services.size, endpoints };
  }

  async cleanup(): Promise<void> {}
}

// Wire it exactly as `worknode proxy` wires a real backend:
// source -> change tracker -> bounded-frequency runner -> backend.
const source = new ServicesFileSource({ path: new URL("./services.yaml", import.meta.url).pathname });
const tracker = new ServiceChangeTracker({ nodeName: "node-1" });
source.services.addHandler(tracker.serviceHandler);
source.endpointSlices.addHandler(tracker.endpointSliceHandler);

const controller = new ProxyController({ tracker, proxier: new PrintingProxier(), minSyncPeriodMs: 1000 });
controller.trackSourcesSynced(source.services, source.endpointSlices);
controller.start();
await source.start();

const result = await controller.syncNow();
console.log(`sync: ${result.status}, healthy: ${controller.health.isHealthy()}`);
await controller.stop();
await source.stop();
