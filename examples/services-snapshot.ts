import { ServiceChangeTracker, ServicesFileSource } from "@worknode/core";

// Read Services and EndpointSlices from a file, as `worknode proxy --services-file` does,
// and turn them into the normalized service model that every proxy backend consumes.
const source = new ServicesFileSource({ path: new URL("./services.yaml", import.meta.url).pathname });
const tracker = new ServiceChangeTracker({ nodeName: "node-1" });
source.services.addHandler(tracker.serviceHandler);
source.endpointSlices.addHandler(tracker.endpointSliceHandler);

await source.start();
const { snapshot, changes } = tracker.commit();
for (const [key, port] of snapshot.services) {
  const endpoints = snapshot.endpoints.get(key) ?? [];
  const ready = endpoints.filter((e) => e.ready).map((e) => e.address);
  console.log(`${key} -> ${port.clusterIPs.join(",")}:${port.port} ready=[${ready.join(" ")}]`);
}
console.log(`${changes.changedServicePorts.size} service ports changed since the last commit`);
await source.stop();
