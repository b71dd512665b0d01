import type { Pod } from "@worknode/core";
import { describe, expect, it } from "vitest";
import { containerSecurityContext } from "../../src/container-config.js";
import {
  ownershipMode,
  podFsGroup,
  podFsGroupChangePolicy,
  rootNeedsOwnershipChange,
  shouldWalkVolume,
  supportsOwnershipManagement,
  volumeOwnershipFor,
} from "../../src/volumes/ownership.js";
import type { PodVolume } from "../../src/volumes/projection.js";

function pod(securityContext?: Record<string, unknown>, volumes: PodVolume[] = []): Pod {
  return {
    metadata: { name: "p", namespace: "default", uid: "u" },
    spec: { containers: [{ name: "c", image: "busybox" }], securityContext, volumes },
  } as Pod;
}

const emptyDir: PodVolume = { name: "scratch", emptyDir: {} };
const hostPath: PodVolume = { name: "host", hostPath: { path: "/srv" } };
const configMap: PodVolume = { name: "cm", configMap: { name: "c" } };
const secret: PodVolume = { name: "s", secret: { secretName: "s" } };
const downward: PodVolume = { name: "d", downwardAPI: { items: [] } };
const projected: PodVolume = { name: "p", projected: { sources: [] } };

describe("volume ownership decisions", () => {
  it("reads fsGroup and the change policy from the pod", () => {
    expect(podFsGroup(pod())).toBeUndefined();
    expect(podFsGroup(pod({ fsGroup: 0 }))).toBe(0);
    expect(podFsGroup(pod({ fsGroup: 2000 }))).toBe(2000);
    expect(podFsGroupChangePolicy(pod({ fsGroup: 2000 }))).toBe("Always");
    expect(podFsGroupChangePolicy(pod({ fsGroupChangePolicy: "Always" }))).toBe("Always");
    expect(podFsGroupChangePolicy(pod({ fsGroupChangePolicy: "OnRootMismatch" }))).toBe("OnRootMismatch");
  });

  it("manages emptyDir and the atomic-writer kinds, never hostPath", () => {
    for (const v of [emptyDir, configMap, secret, downward, projected]) {
      expect(supportsOwnershipManagement(v)).toBe(true);
    }
    expect(supportsOwnershipManagement(hostPath)).toBe(false);
    expect(supportsOwnershipManagement({ name: "nfs", nfs: { server: "x", path: "/" } })).toBe(false);
  });

  it("makes emptyDir writable and the atomic-writer kinds read-only, without a change policy", () => {
    const p = pod({ fsGroup: 2000, fsGroupChangePolicy: "OnRootMismatch" });
    expect(volumeOwnershipFor(p, emptyDir)).toEqual({ fsGroup: 2000, readOnly: false });
    for (const v of [configMap, secret, downward, projected]) {
      expect(volumeOwnershipFor(p, v)).toEqual({ fsGroup: 2000, readOnly: true });
    }
    expect(volumeOwnershipFor(p, hostPath)).toBeUndefined();
    expect(volumeOwnershipFor(pod({ runAsUser: 1000 }), emptyDir)).toBeUndefined();
  });

  it("widens file modes: group read/write, or owner+group read for read-only volumes", () => {
    expect(ownershipMode(0o100644, "file", false)).toBe(0o664);
    expect(ownershipMode(0o100600, "file", false)).toBe(0o660);
    expect(ownershipMode(0o100755, "file", false)).toBe(0o775);
    expect(ownershipMode(0o100744, "file", false)).toBe(0o764);
    expect(ownershipMode(0o100400, "file", true)).toBe(0o440);
    expect(ownershipMode(0o100644, "file", true)).toBe(0o644);
    expect(ownershipMode(0o100600, "file", true)).toBe(0o640);
    expect(ownershipMode(0o100000, "file", true)).toBe(0o440);
  });

  it("gives directories search bits and setgid, and leaves symlinks alone", () => {
    expect(ownershipMode(0o40755, "directory", false)).toBe(0o2775);
    expect(ownershipMode(0o40700, "directory", false)).toBe(0o2770);
    expect(ownershipMode(0o40755, "directory", true)).toBe(0o2755);
    expect(ownershipMode(0o40700, "directory", true)).toBe(0o2750);
    expect(ownershipMode(0o41777, "directory", false)).toBe(0o3777);
    expect(ownershipMode(0o120777, "symlink", false)).toBeUndefined();
    expect(ownershipMode(0o120777, "symlink", true)).toBeUndefined();
  });

  it("finds the root owned only with the group, setgid and the needed bits", () => {
    const owned = { isDirectory: true, gid: 2000, mode: 0o42775 };
    expect(rootNeedsOwnershipChange(owned, 2000, false)).toBe(false);
    expect(rootNeedsOwnershipChange({ ...owned, mode: 0o42770 }, 2000, false)).toBe(false);
    expect(rootNeedsOwnershipChange(undefined, 2000, false)).toBe(true);
    expect(rootNeedsOwnershipChange({ ...owned, gid: 0 }, 2000, false)).toBe(true);
    expect(rootNeedsOwnershipChange({ ...owned, mode: 0o40775 }, 2000, false)).toBe(true);
    expect(rootNeedsOwnershipChange({ ...owned, mode: 0o42755 }, 2000, false)).toBe(true);
    expect(rootNeedsOwnershipChange({ ...owned, mode: 0o42765 }, 2000, false)).toBe(true);
    expect(rootNeedsOwnershipChange({ ...owned, isDirectory: false, mode: 0o102775 }, 2000, false)).toBe(
      true,
    );
    // read-only volumes need no group write
    expect(rootNeedsOwnershipChange({ ...owned, mode: 0o42755 }, 2000, true)).toBe(false);
    expect(rootNeedsOwnershipChange({ ...owned, mode: 0o42715 }, 2000, true)).toBe(true);
  });

  it("walks always, unless OnRootMismatch finds the root owned", () => {
    const owned = { isDirectory: true, gid: 2000, mode: 0o42775 };
    const unowned = { isDirectory: true, gid: 0, mode: 0o40755 };
    expect(shouldWalkVolume({ fsGroup: 2000, readOnly: false }, owned)).toBe(true);
    expect(shouldWalkVolume({ fsGroup: 2000, readOnly: false, policy: "Always" }, owned)).toBe(true);
    expect(shouldWalkVolume({ fsGroup: 2000, readOnly: false, policy: "OnRootMismatch" }, owned)).toBe(false);
    expect(shouldWalkVolume({ fsGroup: 2000, readOnly: false, policy: "OnRootMismatch" }, unowned)).toBe(
      true,
    );
    expect(shouldWalkVolume({ fsGroup: 2000, readOnly: false, policy: "OnRootMismatch" }, undefined)).toBe(
      true,
    );
  });
});

describe("fsGroup in the container's groups", () => {
  it("puts fsGroup first among the supplemental groups", () => {
    const p = pod({ runAsUser: 1000, fsGroup: 2000, supplementalGroups: [3000, 4000] });
    const c = p.spec?.containers[0];
    if (!c) throw new Error("no container");
    expect(containerSecurityContext(p, c).supplementalGroups).toEqual([2000, 3000, 4000]);
    expect(containerSecurityContext(pod({ supplementalGroups: [3000] }), c).supplementalGroups).toEqual([
      3000,
    ]);
  });
});
