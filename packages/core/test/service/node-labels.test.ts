import { afterEach, describe, expect, it } from "vitest";
import { NodeLabelsWatcher, sameLabels } from "../../src/service/node-labels.js";
import { KUBE_RESOURCES } from "../../src/sources/kube-client.js";
import { FakeApiServer, waitFor } from "../helpers/fake-apiserver.js";

const ZONE = "topology.kubernetes.io/zone";

describe("NodeLabelsWatcher", () => {
  let api: FakeApiServer | undefined;
  let watcher: NodeLabelsWatcher | undefined;
  afterEach(async () => {
    await watcher?.stop();
    await api?.close();
  });

  it("reports this node's labels after the first list, then each change, and only its own Node", async () => {
    api = await FakeApiServer.start({ resources: [KUBE_RESOURCES.nodes] });
    api.add("nodes", { metadata: { name: "node-1", labels: { [ZONE]: "zone-a" } } });
    api.add("nodes", { metadata: { name: "node-2", labels: { [ZONE]: "zone-b" } } });
    const seen: (Record<string, string> | undefined)[] = [];
    watcher = new NodeLabelsWatcher({
      kubeConfig: api.kubeConfig(),
      nodeName: "node-1",
      onLabels: (l) => seen.push(l === undefined ? undefined : { ...l }),
    });
    await watcher.start();
    expect(seen).toEqual([{ [ZONE]: "zone-a" }]);
    // The list and watch ask for this node only (kube-proxy's field selector).
    expect(api.requestsOf("list")[0]?.query.get("fieldSelector")).toBe("metadata.name=node-1");

    api.modify("nodes", { metadata: { name: "node-2", labels: { [ZONE]: "zone-c" } } });
    api.modify("nodes", {
      metadata: { name: "node-1", labels: { [ZONE]: "zone-a" }, annotations: { x: "y" } },
    });
    api.modify("nodes", { metadata: { name: "node-1", labels: { [ZONE]: "zone-d" } } });
    await waitFor(() => seen.length === 2, "the zone change");
    expect(seen[1]).toEqual({ [ZONE]: "zone-d" });
    expect(watcher.current).toEqual({ [ZONE]: "zone-d" });

    api.remove("nodes", "node-1");
    await waitFor(() => seen.length === 3, "the deletion");
    expect(seen[2]).toBeUndefined();
  });

  it("reports undefined after the first list when the Node does not exist", async () => {
    api = await FakeApiServer.start({ resources: [KUBE_RESOURCES.nodes] });
    const seen: unknown[] = [];
    watcher = new NodeLabelsWatcher({
      kubeConfig: api.kubeConfig(),
      nodeName: "ghost",
      onLabels: (l) => seen.push(l),
    });
    await watcher.start();
    expect(seen).toEqual([undefined]);
  });
});

describe("sameLabels", () => {
  it("compares label maps by content", () => {
    expect(sameLabels({ a: "1", b: "2" }, { b: "2", a: "1" })).toBe(true);
    expect(sameLabels({ a: "1" }, { a: "2" })).toBe(false);
    expect(sameLabels({ a: "1" }, { a: "1", b: "2" })).toBe(false);
    expect(sameLabels(undefined, {})).toBe(true);
  });
});
