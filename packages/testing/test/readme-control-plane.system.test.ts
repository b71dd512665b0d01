import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { type ControlPlane, startControlPlane } from "@worknode/testing";
import { afterAll, beforeAll, expect, it } from "vitest";

let cp: ControlPlane;
beforeAll(async () => {
  // Builds the pinned release with Go the first time (cached), then starts etcd, kube-apiserver,
  // kube-controller-manager and kube-scheduler on 127.0.0.1 with a fresh PKI.
  cp = await startControlPlane();
}, 1_800_000);
afterAll(() => cp?.stop());

it("a node's client certificate can register its own Node", async () => {
  const admin = cp.adminKubeConfig.makeApiClient(CoreV1Api);
  expect((await admin.readNamespace({ name: "default" })).metadata?.name).toBe("default");

  const nodeConfig = new KubeConfig();
  nodeConfig.loadFromFile(await cp.nodeCredentials("node-1")); // CN=system:node:node-1, O=system:nodes
  const node = nodeConfig.makeApiClient(CoreV1Api);
  await node.createNode({ body: { metadata: { name: "node-1" } } });
  expect((await admin.readNode({ name: "node-1" })).metadata?.name).toBe("node-1");
});
