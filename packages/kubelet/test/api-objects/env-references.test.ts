import type { Pod } from "@worknode/core";
import { describe, expect, it } from "vitest";
import { ContainerConfigError, type EnvironmentContext, makeEnvironment } from "../../src/env.js";
import type { Container } from "../../src/pod-spec.js";

const pod: Pod = { metadata: { name: "p", namespace: "ns", uid: "u" }, spec: { containers: [] } };
const base: EnvironmentContext = {
  podIPs: ["10.0.0.2"],
  hostIPs: ["192.0.2.1"],
  nodeAllocatable: { cpuMilli: 1000, memoryBytes: 1 << 30 },
};
const c = (fields: Partial<Container>): Container => ({ name: "app", image: "busybox", ...fields });

describe("environment from ConfigMaps, Secrets and Services", () => {
  it("reports a missing ConfigMap or Secret with kubelet's message unless optional", () => {
    const cm = c({ env: [{ name: "X", valueFrom: { configMapKeyRef: { name: "cfg", key: "k" } } }] });
    expect(() => makeEnvironment(pod, cm, base)).toThrow(
      new ContainerConfigError('configmap "cfg" not found'),
    );
    const sec = c({ envFrom: [{ secretRef: { name: "creds" } }] });
    expect(() => makeEnvironment(pod, sec, base)).toThrow('secret "creds" not found');
    expect(
      makeEnvironment(pod, c({ envFrom: [{ secretRef: { name: "creds", optional: true } }] }), base),
    ).toEqual([]);
  });

  it("reports a missing key with kubelet's message unless optional", () => {
    const ctx = { ...base, secrets: new Map([["creds", { user: "admin" }]]) };
    const missingKey = c({
      env: [{ name: "PW", valueFrom: { secretKeyRef: { name: "creds", key: "pw" } } }],
    });
    expect(() => makeEnvironment(pod, missingKey, ctx)).toThrow("couldn't find key pw in Secret ns/creds");
    const ok = c({
      env: [
        { name: "USER", valueFrom: { secretKeyRef: { name: "creds", key: "user" } } },
        { name: "PW", valueFrom: { secretKeyRef: { name: "creds", key: "pw", optional: true } } },
      ],
    });
    expect(makeEnvironment(pod, ok, ctx)).toEqual([{ key: "USER", value: "admin" }]);
  });

  it("fails even optional references when the object could not be read", () => {
    const ctx = { ...base, objectErrors: new Map([["configmap/cfg", 'configmaps "cfg" is forbidden']]) };
    const optional = c({
      env: [{ name: "X", valueFrom: { configMapKeyRef: { name: "cfg", key: "k", optional: true } } }],
    });
    expect(() => makeEnvironment(pod, optional, ctx)).toThrow('configmaps "cfg" is forbidden');
  });

  it("skips invalid envFrom keys and reports them", () => {
    const reported: Array<[string, string, readonly string[]]> = [];
    const env = makeEnvironment(
      pod,
      c({ envFrom: [{ configMapRef: { name: "cfg" }, prefix: "P_" }, { configMapRef: { name: "raw" } }] }),
      {
        ...base,
        configMaps: new Map<string, Record<string, string>>([
          ["cfg", { a: "1" }],
          ["raw", { ok: "2", "1st": "3", "has space": "4" }],
        ]),
        onInvalidKeys: (kind, name, keys) => reported.push([kind, name, keys]),
      },
    );
    expect(env).toEqual([
      { key: "P_a", value: "1" },
      { key: "ok", value: "2" },
    ]);
    expect(reported).toEqual([["configMap", "ns/raw", ["1st", "has space"]]]);
  });

  it("adds service variables last, below explicit ones, and expands $(VAR) against them", () => {
    const env = makeEnvironment(
      pod,
      c({
        env: [
          { name: "URL", value: "https://$(KUBERNETES_SERVICE_HOST):443" },
          { name: "KUBERNETES_SERVICE_PORT", value: "1" },
        ],
      }),
      {
        ...base,
        serviceEnv: [
          { key: "KUBERNETES_SERVICE_HOST", value: "10.96.0.1" },
          { key: "KUBERNETES_SERVICE_PORT", value: "443" },
        ],
      },
    );
    expect(env).toEqual([
      { key: "URL", value: "https://10.96.0.1:443" },
      { key: "KUBERNETES_SERVICE_PORT", value: "1" },
      { key: "KUBERNETES_SERVICE_HOST", value: "10.96.0.1" },
    ]);
  });
});
