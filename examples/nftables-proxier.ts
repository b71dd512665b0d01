import { execFileSync } from "node:child_process";
import { ServiceChangeTracker, ServicesFileSource } from "@worknode/core";
import { NftablesProxier } from "@worknode/proxy-nftables";

// Program the Services of services.yaml with the nftables backend (kube-proxy's nftables
// layout), inside a network namespace of its own so the host is left alone. Needs root.
const netns = "wnex-nft";
const inNetns = (...args: string[]) =>
  execFileSync("ip", ["netns", "exec", netns, ...args], { encoding: "utf8" });
execFileSync("ip", ["netns", "add", netns]);
try {
  const source = new ServicesFileSource({ path: new URL("./services.yaml", import.meta.url).pathname });
  const tracker = new ServiceChangeTracker({ nodeName: "node-1" });
  source.services.addHandler(tracker.serviceHandler);
  source.endpointSlices.addHandler(tracker.endpointSliceHandler);
  await source.start();

  const proxier = new NftablesProxier({ nodeName: "node-1", clusterCIDRs: ["10.244.0.0/16"], netns });
  const { snapshot, changes } = tracker.commit();
  const stats = await proxier.sync({ snapshot, changes, full: true });
  console.log(`programmed ${stats.servicePorts} service ports with ${stats.endpoints} endpoints`);
  const dispatch = inNetns("nft", "list", "map", "ip", "kube-proxy", "service-ips");
  console.log(dispatch.trim());
  if (!dispatch.includes("goto service-")) throw new Error("no service port was programmed");

  await proxier.cleanup(); // deletes `table ip kube-proxy` and `table ip6 kube-proxy`
  await source.stop();
} finally {
  execFileSync("ip", ["netns", "delete", netns]);
}
