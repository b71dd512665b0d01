import { mkdirSync, rmdirSync } from "node:fs";
import { ServiceChangeTracker, ServicesFileSource } from "@worknode/core";
import { cgroup2Root, EbpfProxier } from "@worknode/proxy-ebpf";

// Balance the Services of services.yaml in cgroup socket hooks, for the processes of a cgroup
// of the example's own (a node agent leaves cgroupPath unset: the whole node). Needs root, bpffs
// on /sys/fs/bpf and cgroup v2.
const cgroupPath = `${await cgroup2Root()}/wnex-ebpf`;
mkdirSync(cgroupPath, { recursive: true });
try {
  const source = new ServicesFileSource({ path: new URL("./services.yaml", import.meta.url).pathname });
  const tracker = new ServiceChangeTracker({ nodeName: "node-1" });
  source.services.addHandler(tracker.serviceHandler);
  source.endpointSlices.addHandler(tracker.endpointSliceHandler);
  await source.start();

  const proxier = new EbpfProxier({ nodeName: "node-1", cgroupPath, pinPath: "/sys/fs/bpf/wnex-ebpf" });
  const { snapshot, changes } = tracker.commit();
  const stats = await proxier.sync({ snapshot, changes, full: true });
  const frontends = proxier.lastApplied()?.ops.filter((op) => op.op === "putFrontend") ?? [];
  console.log(`programmed ${stats.servicePorts} service ports: ${frontends.length} frontends`);
  for (const op of frontends.slice(0, 5)) console.log(op.frontend, "->", op.value);
  if (frontends.length === 0) throw new Error("no service port was programmed");

  await proxier.cleanup(); // detaches the programs and removes /sys/fs/bpf/wnex-ebpf
  await source.stop();
} finally {
  rmdirSync(cgroupPath);
}
