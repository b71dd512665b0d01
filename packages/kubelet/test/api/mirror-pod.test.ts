import { ANNOTATION_CONFIG_HASH, ANNOTATION_CONFIG_SOURCE, type Pod } from "@worknode/core";
import { describe, expect, it } from "vitest";
import {
  ANNOTATION_CONFIG_MIRROR,
  buildMirrorPod,
  deleteOptionsFor,
  isMirrorPod,
  isStaticPod,
  mirrorPodAction,
  podPath,
} from "../../src/api/mirror-pod.js";
import { pod } from "../helpers.js";

const NODE = { name: "node-a", uid: "node-uid-1" };

function staticPod(hash = "hash-1"): Pod {
  return {
    ...pod(
      { nodeName: "node-a", terminationGracePeriodSeconds: 3 },
      {
        name: "web-node-a",
        uid: hash,
        labels: { app: "web" },
        annotations: {
          [ANNOTATION_CONFIG_HASH]: hash,
          [ANNOTATION_CONFIG_SOURCE]: "file",
          "kubernetes.io/config.seen": "2026-01-01T00:00:00Z",
        },
        resourceVersion: "12",
        creationTimestamp: "2026-01-01T00:00:00Z",
      },
    ),
    status: { phase: "Running" },
  };
}

describe("buildMirrorPod", () => {
  it("copies name, namespace, labels, annotations and spec, adds the mirror annotation and the node owner", () => {
    const m = buildMirrorPod(staticPod(), NODE);
    expect(m.metadata).toEqual({
      name: "web-node-a",
      namespace: "default",
      labels: { app: "web" },
      annotations: {
        [ANNOTATION_CONFIG_HASH]: "hash-1",
        [ANNOTATION_CONFIG_SOURCE]: "file",
        "kubernetes.io/config.seen": "2026-01-01T00:00:00Z",
        [ANNOTATION_CONFIG_MIRROR]: "hash-1",
      },
      ownerReferences: [
        { apiVersion: "v1", kind: "Node", name: "node-a", uid: "node-uid-1", controller: true },
      ],
    });
    expect(m.spec?.nodeName).toBe("node-a");
    expect(m.spec?.terminationGracePeriodSeconds).toBe(3);
    expect(m.status).toBeUndefined();
    expect(isMirrorPod(m)).toBe(true);
  });

  it("does not share the spec with the static pod", () => {
    const s = staticPod();
    const m = buildMirrorPod(s, NODE);
    m.spec?.containers.push({ name: "x" });
    expect(s.spec?.containers).toHaveLength(1);
  });
});

describe("static and mirror pods", () => {
  it("tells static pods (source not api) from API pods", () => {
    expect(isStaticPod(staticPod())).toBe(true);
    expect(isStaticPod(pod())).toBe(false);
    expect(isStaticPod(pod({}, { annotations: { [ANNOTATION_CONFIG_SOURCE]: "api" } }))).toBe(false);
    expect(isMirrorPod(pod())).toBe(false);
  });
});

describe("mirrorPodAction", () => {
  const apiCopy = (m: Pod, extra: Partial<NonNullable<Pod["metadata"]>> = {}): Pod => ({
    ...m,
    metadata: { ...m.metadata, uid: "mirror-uid", resourceVersion: "40", ...extra },
  });

  it("creates a missing mirror and keeps a current one", () => {
    expect(mirrorPodAction(staticPod(), undefined, NODE)).toBe("create");
    expect(mirrorPodAction(staticPod(), apiCopy(buildMirrorPod(staticPod(), NODE)), NODE)).toBe("none");
  });

  it("recreates a mirror of another manifest version or another node owner", () => {
    const old = apiCopy(buildMirrorPod(staticPod("hash-0"), NODE));
    expect(mirrorPodAction(staticPod("hash-1"), old, NODE)).toBe("recreate");
    const foreign = apiCopy(buildMirrorPod(staticPod(), { name: "node-a", uid: "old-node-uid" }));
    expect(mirrorPodAction(staticPod(), foreign, NODE)).toBe("recreate");
  });

  it("recreates a mirror someone deleted and leaves a regular pod of the same name alone", () => {
    const dying = apiCopy(buildMirrorPod(staticPod(), NODE), { deletionTimestamp: "2026-01-01T00:00:00Z" });
    expect(mirrorPodAction(staticPod(), dying, NODE)).toBe("recreate");
    expect(mirrorPodAction(staticPod(), pod({}, { name: "web-node-a" }), NODE)).toBe("none");
  });
});

describe("API requests", () => {
  it("deletes immediately with a UID precondition", () => {
    expect(deleteOptionsFor("u-1")).toEqual({
      kind: "DeleteOptions",
      apiVersion: "v1",
      gracePeriodSeconds: 0,
      preconditions: { uid: "u-1" },
    });
  });

  it("builds pod paths", () => {
    expect(podPath("kube-system", "a b", "status")).toBe("/api/v1/namespaces/kube-system/pods/a%20b/status");
    expect(podPath("default", "web")).toBe("/api/v1/namespaces/default/pods/web");
  });
});
