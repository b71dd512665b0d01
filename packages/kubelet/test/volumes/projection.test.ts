import type { ConfigMap, Pod, Secret } from "@worknode/core";
import { describe, expect, it } from "vitest";
import {
  configMapPayload,
  downwardApiPayload,
  projectedPayload,
  type ResolvedVolumeObjects,
  secretPayload,
  tokenKey,
  type VolumePayload,
  VolumeProjectionError,
  validatePayloadPath,
  volumeReferences,
} from "../../src/volumes/projection.js";

const cm: ConfigMap = {
  metadata: { name: "cfg", namespace: "ns" },
  data: { a: "1", b: "2" },
  binaryData: { bin: Buffer.from([0, 1, 2]).toString("base64") },
};
const secret: Secret = {
  metadata: { name: "sec", namespace: "ns" },
  data: { user: Buffer.from("admin").toString("base64"), pw: Buffer.from("s3cret").toString("base64") },
};
const pod: Pod = {
  metadata: {
    name: "web",
    namespace: "ns",
    uid: "u1",
    labels: { app: "web", tier: "front" },
    annotations: { x: "y" },
  },
  spec: {
    containers: [{ name: "app", image: "busybox", resources: { limits: { cpu: "500m", memory: "128Mi" } } }],
  },
};
const ctx = {
  podIPs: ["10.0.0.5"],
  hostIPs: ["192.0.2.1"],
  nodeAllocatable: { cpuMilli: 4000, memoryBytes: 8 << 30 },
};

function text(p: VolumePayload): Record<string, [string, string]> {
  return Object.fromEntries([...p].map(([k, v]) => [k, [v.data.toString("utf8"), v.mode.toString(8)]]));
}

describe("configMap and secret payloads", () => {
  it("projects every key (data and binaryData) with the default mode 0644", () => {
    const p = configMapPayload({ name: "cfg" }, cm);
    expect(text(p)).toEqual({ a: ["1", "644"], b: ["2", "644"], bin: ["\u0000\u0001\u0002", "644"] });
  });

  it("maps items to paths with per-item modes over defaultMode", () => {
    const p = configMapPayload(
      {
        name: "cfg",
        defaultMode: 0o400,
        items: [
          { key: "a", path: "dir/a.txt" },
          { key: "b", path: "b", mode: 0o600 },
        ],
      },
      cm,
    );
    expect(text(p)).toEqual({ "dir/a.txt": ["1", "400"], b: ["2", "600"] });
  });

  it("fails on a missing object or key unless optional", () => {
    expect(() => configMapPayload({ name: "gone" }, undefined)).toThrow(
      new VolumeProjectionError('configmap "gone" not found'),
    );
    expect(configMapPayload({ name: "gone", optional: true }, undefined).size).toBe(0);
    expect(() => configMapPayload({ name: "cfg", items: [{ key: "zz", path: "z" }] }, cm)).toThrow(
      "configmap references non-existent config key: zz",
    );
    expect(
      configMapPayload({ name: "cfg", optional: true, items: [{ key: "zz", path: "z" }] }, cm).size,
    ).toBe(0);
    expect(() => secretPayload({ secretName: "sec", items: [{ key: "zz", path: "z" }] }, secret)).toThrow(
      "secret references non-existent secret key: zz",
    );
    expect(() => secretPayload({ secretName: "nope" }, undefined)).toThrow('secret "nope" not found');
  });

  it("decodes secret data", () => {
    expect(text(secretPayload({ secretName: "sec", defaultMode: 0o440 }, secret))).toEqual({
      user: ["admin", "440"],
      pw: ["s3cret", "440"],
    });
  });
});

describe("downward API payloads", () => {
  it("writes pod fields and container resources", () => {
    const p = downwardApiPayload(
      pod,
      [
        { path: "labels", fieldRef: { fieldPath: "metadata.labels" } },
        { path: "tier", fieldRef: { fieldPath: "metadata.labels['tier']" } },
        { path: "ns", fieldRef: { fieldPath: "metadata.namespace" }, mode: 0o600 },
        { path: "cpu", resourceFieldRef: { containerName: "app", resource: "limits.cpu", divisor: "1m" } },
        {
          path: "mem",
          resourceFieldRef: { containerName: "app", resource: "limits.memory", divisor: "1Mi" },
        },
      ],
      0o644,
      ctx,
    );
    expect(text(p)).toEqual({
      labels: ['app="web"\ntier="front"', "644"],
      tier: ["front", "644"],
      ns: ["ns", "600"],
      cpu: ["500", "644"],
      mem: ["128", "644"],
    });
  });

  it("rejects unknown containers and fields", () => {
    expect(() =>
      downwardApiPayload(
        pod,
        [{ path: "x", resourceFieldRef: { containerName: "nope", resource: "limits.cpu" } }],
        0o644,
        ctx,
      ),
    ).toThrow(VolumeProjectionError);
    expect(() =>
      downwardApiPayload(pod, [{ path: "x", fieldRef: { fieldPath: "spec.bogus" } }], 0o644, ctx),
    ).toThrow(/field label not supported/);
  });
});

describe("projected payloads", () => {
  const objects: ResolvedVolumeObjects = {
    configMaps: new Map([["cfg", cm]]),
    secrets: new Map([["sec", secret]]),
    tokens: new Map([[tokenKey(undefined, 3607), "jwt.token.here"]]),
  };

  it("combines token, configMap, secret and downward API sources with the volume's defaultMode", () => {
    const p = projectedPayload(
      pod,
      {
        defaultMode: 0o420,
        sources: [
          { serviceAccountToken: { path: "token", expirationSeconds: 3607 } },
          { configMap: { name: "cfg", items: [{ key: "a", path: "ca.crt" }] } },
          { secret: { name: "sec", items: [{ key: "pw", path: "pw", mode: 0o400 }] } },
          { downwardAPI: { items: [{ path: "namespace", fieldRef: { fieldPath: "metadata.namespace" } }] } },
          { configMap: { name: "absent", optional: true } },
        ],
      },
      objects,
      ctx,
    );
    expect(text(p)).toEqual({
      token: ["jwt.token.here", "420"],
      "ca.crt": ["1", "420"],
      pw: ["s3cret", "400"],
      namespace: ["ns", "420"],
    });
  });

  it("fails on a missing non-optional source", () => {
    expect(() => projectedPayload(pod, { sources: [{ secret: { name: "absent" } }] }, objects, ctx)).toThrow(
      'secret "absent" not found',
    );
  });

  it("lists what volumes reference", () => {
    const refs = volumeReferences([
      { name: "a", configMap: { name: "cfg" } },
      { name: "b", secret: { secretName: "sec" } },
      {
        name: "c",
        projected: {
          sources: [
            { serviceAccountToken: { path: "t", audience: "vault", expirationSeconds: 600 } },
            { configMap: { name: "root-ca" } },
          ],
        },
      },
    ]);
    expect([...refs.configMaps]).toEqual(["cfg", "root-ca"]);
    expect([...refs.secrets]).toEqual(["sec"]);
    expect([...refs.tokens]).toEqual([["vault|600", { audience: "vault", expirationSeconds: 600 }]]);
  });
});

describe("payload paths", () => {
  it("accepts relative paths and rejects absolute, '..' and '..'-prefixed ones", () => {
    expect(() => validatePayloadPath("a/b.txt")).not.toThrow();
    for (const bad of ["", "/etc/passwd", "a/../b", "..data", "../x"]) {
      expect(() => validatePayloadPath(bad)).toThrow(VolumeProjectionError);
    }
  });
});
