import { describe, expect, it } from "vitest";
import {
  ContainerConfigError,
  expandCommandAndArgs,
  makeEnvironment,
  podFieldValue,
  splitSubscriptedPath,
} from "../src/env.js";
import { expandVariables, lookupIn } from "../src/expansion.js";
import { container, pod } from "./helpers.js";

describe("expandVariables (Kubernetes $(VAR) rules)", () => {
  const lookup = lookupIn(
    new Map([
      ["VAR_A", "A"],
      ["VAR_B", "B"],
      ["EMPTY", ""],
    ]),
  );
  it.each([
    ["$(VAR_A)", "A"],
    ["___$(VAR_A)___", "___A___"],
    ["$(VAR_A)-$(VAR_B)", "A-B"],
    ["$(VAR_A)$(VAR_B)", "AB"],
    ["$(UNKNOWN)", "$(UNKNOWN)"],
    ["$$(VAR_A)", "$(VAR_A)"],
    ["$$$(VAR_A)", "$A"],
    ["$$$$(VAR_A)", "$$(VAR_A)"],
    ["$$", "$"],
    ["$", "$"],
    ["foo$", "foo$"],
    ["$VAR_A", "$VAR_A"],
    ["$(VAR_A", "$(VAR_A"],
    ["$(", "$("],
    ["$()", "$()"],
    ["$(EMPTY)x", "x"],
    ["$(VAR_A)$", "A$"],
    ["no vars", "no vars"],
    ["$é$(VAR_A)", "$éA"],
  ])("%j → %j", (input, out) => expect(expandVariables(input, lookup)).toBe(out));
});

describe("makeEnvironment", () => {
  const p = pod(
    { nodeName: "node-1", serviceAccountName: "sa" },
    { labels: { app: "web", tier: "front" }, annotations: { "a.io/x": "1" } },
  );
  const ctx = {
    podIPs: ["10.0.0.5", "fd00::5"],
    hostIPs: ["192.168.1.10"],
    nodeAllocatable: { cpuMilli: 4000, memoryBytes: 8 * 1024 ** 3 },
  };

  it("resolves values, field refs and expansion against earlier variables", () => {
    const c = container("app", {
      env: [
        { name: "A", value: "alpha" },
        { name: "B", value: "$(A)-beta-$(LATER)" },
        { name: "POD", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
        { name: "NS", valueFrom: { fieldRef: { fieldPath: "metadata.namespace", apiVersion: "v1" } } },
        { name: "UID", valueFrom: { fieldRef: { fieldPath: "metadata.uid" } } },
        { name: "APP", valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
        { name: "ANN", valueFrom: { fieldRef: { fieldPath: "metadata.annotations['a.io/x']" } } },
        { name: "LABELS", valueFrom: { fieldRef: { fieldPath: "metadata.labels" } } },
        { name: "NODE", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
        { name: "SA", valueFrom: { fieldRef: { fieldPath: "spec.serviceAccountName" } } },
        { name: "IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
        { name: "IPS", valueFrom: { fieldRef: { fieldPath: "status.podIPs" } } },
        { name: "HOST", valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } },
        { name: "HOSTS", valueFrom: { fieldRef: { fieldPath: "status.hostIPs" } } },
        { name: "LATER", value: "late" },
        { name: "A", value: "again" },
      ],
    });
    const env = Object.fromEntries(makeEnvironment(p, c, ctx).map((e) => [e.key, e.value]));
    expect(env).toEqual({
      A: "again",
      B: "alpha-beta-$(LATER)",
      POD: "web",
      NS: "default",
      UID: "uid-1",
      APP: "web",
      ANN: "1",
      LABELS: 'app="web"\ntier="front"',
      NODE: "node-1",
      SA: "sa",
      IP: "10.0.0.5",
      IPS: "10.0.0.5,fd00::5",
      HOST: "192.168.1.10",
      HOSTS: "192.168.1.10",
      LATER: "late",
    });
  });

  it("resourceFieldRef: divisor, rounding up, node allocatable for missing limits", () => {
    const c = container("app", {
      resources: { requests: { cpu: "250m", memory: "64Mi" }, limits: { memory: "100Mi" } },
      env: [
        { name: "CPU_REQ", valueFrom: { resourceFieldRef: { resource: "requests.cpu" } } },
        { name: "CPU_REQ_M", valueFrom: { resourceFieldRef: { resource: "requests.cpu", divisor: "1m" } } },
        { name: "CPU_LIM", valueFrom: { resourceFieldRef: { resource: "limits.cpu" } } },
        {
          name: "MEM_LIM_MI",
          valueFrom: { resourceFieldRef: { resource: "limits.memory", divisor: "1Mi" } },
        },
        { name: "MEM_REQ", valueFrom: { resourceFieldRef: { resource: "requests.memory" } } },
        {
          name: "MEM_REQ_G",
          valueFrom: { resourceFieldRef: { resource: "requests.memory", divisor: "1G" } },
        },
      ],
    });
    const env = Object.fromEntries(makeEnvironment(p, c, ctx).map((e) => [e.key, e.value]));
    expect(env).toEqual({
      CPU_REQ: "1",
      CPU_REQ_M: "250",
      CPU_LIM: "4",
      MEM_LIM_MI: "100",
      MEM_REQ: "67108864",
      MEM_REQ_G: "1",
    });
  });

  it("expands command and args with the final environment, $$ escapes", () => {
    const c = container("app", {
      env: [{ name: "PORT", value: "8080" }],
      command: ["/bin/sh", "-c", "echo $(PORT) $$(PORT) $(NOPE)"],
      args: ["--port=$(PORT)"],
    });
    expect(expandCommandAndArgs(c, makeEnvironment(p, c, ctx))).toEqual({
      command: ["/bin/sh", "-c", "echo 8080 $(PORT) $(NOPE)"],
      args: ["--port=8080"],
    });
  });

  it("rejects unsupported field paths and missing references as CreateContainerConfigError", () => {
    expect(() => podFieldValue(p, "spec.restartPolicy", ctx)).toThrow(ContainerConfigError);
    expect(() => podFieldValue(p, "metadata.name", ctx, "v2")).toThrow(ContainerConfigError);
    expect(() => podFieldValue(p, "spec.nodeName['x']", ctx)).toThrow(/does not support subscript/);
    const missing = container("app", {
      env: [{ name: "X", valueFrom: { configMapKeyRef: { name: "cm", key: "k" } } }],
    });
    expect(() => makeEnvironment(p, missing, ctx)).toThrow(ContainerConfigError);
    const optional = container("app", {
      env: [{ name: "X", valueFrom: { configMapKeyRef: { name: "cm", key: "k", optional: true } } }],
    });
    expect(makeEnvironment(p, optional, ctx)).toEqual([]);
    const found = makeEnvironment(p, missing, { ...ctx, configMaps: new Map([["cm", { k: "v" }]]) });
    expect(found).toEqual([{ key: "X", value: "v" }]);
  });

  it("envFrom comes first, with prefix; env overrides it", () => {
    const c = container("app", {
      envFrom: [{ configMapRef: { name: "cm" }, prefix: "P_" }],
      env: [{ name: "P_a", value: "override" }],
    });
    const env = makeEnvironment(p, c, {
      ...ctx,
      configMaps: new Map([["cm", { a: "1", b: "2", "bad key": "x" }]]),
    });
    expect(env).toEqual([
      { key: "P_a", value: "override" },
      { key: "P_b", value: "2" },
    ]);
  });

  it("splits subscripted paths like apimachinery", () => {
    expect(splitSubscriptedPath("metadata.annotations['a[b]c']")).toEqual({
      path: "metadata.annotations",
      subscript: "a[b]c",
    });
    expect(splitSubscriptedPath("metadata.labels['']")).toEqual({ path: "metadata.labels", subscript: "" });
    expect(splitSubscriptedPath("metadata.labels")).toEqual({ path: "metadata.labels" });
    expect(splitSubscriptedPath("['x']")).toEqual({ path: "['x']" });
  });
});
