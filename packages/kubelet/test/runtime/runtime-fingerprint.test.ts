import {
  ContainerState,
  type Container as CriContainer,
  type PodSandbox,
  PodSandboxState,
} from "@worknode/cri";
import { describe, expect, it } from "vitest";
import { containerAnnotations, containerLabels, sandboxLabels } from "../../src/labels.js";
import { toContainerRuntimeStatus, toSandboxStatus } from "../../src/runtime/cri-adapter.js";
import {
  groupByPod,
  listingFingerprint,
  type RuntimePodListing,
  runtimeStatusFingerprint,
} from "../../src/runtime/runtime-state.js";
import type { ContainerRuntimeStatus } from "../../src/runtime-status.js";
import { container, pod } from "../helpers.js";

const p = pod({ containers: [container("app"), container("side")] });

function sandbox(id: string, state: PodSandboxState): PodSandbox {
  return {
    id,
    metadata: { name: "web", uid: "uid-1", namespace: "default", attempt: 0 },
    state,
    createdAt: 1_000_000_000n,
    labels: sandboxLabels(p),
    annotations: {},
    runtimeHandler: "",
  };
}

function ctr(id: string, name: string, state: ContainerState): CriContainer {
  const spec = container(name);
  return {
    id,
    podSandboxId: "sb1",
    metadata: { name, attempt: 0 },
    image: { image: "img:1", annotations: {}, userSpecifiedImage: "", runtimeHandler: "", imageRef: "" },
    imageRef: "sha256:abc",
    state,
    createdAt: 2_000_000_000n,
    labels: containerLabels(p, spec),
    annotations: containerAnnotations(p, spec, 0),
    imageId: "",
  };
}

/** The runtime status a worker would build from the same objects. */
function statusOf(l: RuntimePodListing) {
  return {
    uid: l.uid,
    name: l.name,
    namespace: l.namespace,
    sandboxes: l.sandboxes.map((s) => toSandboxStatus(s)),
    containers: l.containers
      .map((c) => toContainerRuntimeStatus(c))
      .filter((c): c is ContainerRuntimeStatus => c !== undefined),
    ips: [],
  };
}

describe("runtime fingerprints", () => {
  const listing = groupByPod(
    [sandbox("sb0", PodSandboxState.SANDBOX_NOTREADY), sandbox("sb1", PodSandboxState.SANDBOX_READY)],
    [ctr("c2", "side", ContainerState.CONTAINER_CREATED), ctr("c1", "app", ContainerState.CONTAINER_RUNNING)],
  ).get("uid-1") as RuntimePodListing;

  it("are equal for a listing and a status read from the same objects, whatever the order", () => {
    const fp = listingFingerprint(listing);
    expect(fp).toBe("c:c1:running,c:c2:created,s:sb0:notready,s:sb1:ready");
    expect(runtimeStatusFingerprint(statusOf(listing))).toBe(fp);
    const reversed = { ...listing, containers: [...listing.containers].reverse() };
    expect(listingFingerprint(reversed)).toBe(fp);
  });

  it("differ when an object appears, disappears or changes state", () => {
    const fp = listingFingerprint(listing);
    const exited = { ...listing, containers: [ctr("c1", "app", ContainerState.CONTAINER_EXITED)] };
    expect(runtimeStatusFingerprint(statusOf(exited))).not.toBe(fp);
    const more = {
      ...listing,
      sandboxes: [...listing.sandboxes, sandbox("sb2", PodSandboxState.SANDBOX_READY)],
    };
    expect(listingFingerprint(more)).not.toBe(fp);
    expect(runtimeStatusFingerprint(statusOf({ ...listing, containers: [] }))).not.toBe(fp);
  });

  it("are empty for a pod with nothing on the runtime and for none seen yet", () => {
    expect(listingFingerprint(undefined)).toBe("");
    expect(runtimeStatusFingerprint(undefined)).toBe("");
    expect(
      runtimeStatusFingerprint({
        uid: "u",
        name: "n",
        namespace: "d",
        sandboxes: [],
        containers: [],
        ips: [],
      }),
    ).toBe("");
  });
});
