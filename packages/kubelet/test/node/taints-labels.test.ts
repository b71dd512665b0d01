import { describe, expect, it } from "vitest";
import {
  formatTaint,
  isKubeletAllowedLabel,
  NodeLabelError,
  parseNodeLabels,
  parseTaint,
  parseTaints,
  TaintParseError,
  validateNodeLabels,
} from "../../src/index.js";

describe("parseTaint / parseTaints (--register-with-taints)", () => {
  it("parses key=value:Effect and key:Effect", () => {
    expect(parseTaint("dedicated=ops:NoSchedule")).toEqual({
      key: "dedicated",
      value: "ops",
      effect: "NoSchedule",
    });
    expect(parseTaint("example.com/gpu:NoExecute")).toEqual({ key: "example.com/gpu", effect: "NoExecute" });
    expect(parseTaint("a=:PreferNoSchedule")).toEqual({ key: "a", effect: "PreferNoSchedule" });
  });

  it("parses a comma-separated list and skips empty entries", () => {
    expect(parseTaints("a=1:NoSchedule, b:NoExecute,")).toEqual([
      { key: "a", value: "1", effect: "NoSchedule" },
      { key: "b", effect: "NoExecute" },
    ]);
    expect(parseTaints("")).toEqual([]);
  });

  it.each([
    ["dedicated=ops", /expected key=value:Effect/],
    ["dedicated=ops:Sometimes", /effect must be one of NoSchedule, PreferNoSchedule, NoExecute/],
    [":NoSchedule", /key is empty/],
    ["bad key=x:NoSchedule", /name must be/],
    ["Example.com/x=y:NoSchedule", /prefix must be a DNS-1123 subdomain/],
    ["k=bad value:NoSchedule", /label value/],
    ["a/b/c=1:NoSchedule", /at most one "\/"/],
  ])("rejects %s with a typed error", (spec, message) => {
    expect(() => parseTaint(spec)).toThrow(TaintParseError);
    expect(() => parseTaint(spec)).toThrow(message);
  });

  it("rejects the same key and effect twice, but allows the same key with another effect", () => {
    expect(() => parseTaints("a=1:NoSchedule,a=2:NoSchedule")).toThrow(/duplicate taint key a/);
    expect(parseTaints("a=1:NoSchedule,a=1:NoExecute")).toHaveLength(2);
  });

  it("formats taints back in flag syntax", () => {
    expect(formatTaint({ key: "a", value: "1", effect: "NoSchedule" })).toBe("a=1:NoSchedule");
    expect(formatTaint({ key: "b", effect: "NoExecute" })).toBe("b:NoExecute");
  });
});

describe("node label rules (--node-labels)", () => {
  it("allows labels outside kubernetes.io / k8s.io, the kubelet's own and the node/kubelet namespaces", () => {
    for (const key of [
      "team",
      "example.com/rack",
      "kubernetes.io/hostname",
      "topology.kubernetes.io/zone",
      "node.kubernetes.io/instance-type",
      "node.kubernetes.io/pool",
      "kubelet.kubernetes.io/x",
      "foo.node.kubernetes.io/bar",
      "notkubernetes.io/x",
    ]) {
      expect(isKubeletAllowedLabel(key), key).toBe(true);
    }
  });

  it("refuses other labels in the restricted namespaces", () => {
    for (const key of [
      "kubernetes.io/role",
      "node-role.kubernetes.io/control-plane",
      "k8s.io/x",
      "a.k8s.io/y",
    ]) {
      expect(isKubeletAllowedLabel(key), key).toBe(false);
    }
    expect(() => validateNodeLabels({ "node-role.kubernetes.io/worker": "" })).toThrow(NodeLabelError);
  });

  it("checks key and value syntax and reports every problem", () => {
    expect(() => validateNodeLabels({ "-bad": "ok", good: "not ok!" })).toThrow(/"-bad".*"not ok!"/);
    expect(() => validateNodeLabels({ a: "x".repeat(64) })).toThrow(NodeLabelError);
    expect(() => validateNodeLabels({ a: "", "b.example/c": "d-e_f.g" })).not.toThrow();
  });

  it("parses key=value lists", () => {
    expect(parseNodeLabels("a=1, example.com/b=two,c=")).toEqual({ a: "1", "example.com/b": "two", c: "" });
    expect(() => parseNodeLabels("a")).toThrow(/expected key=value/);
    expect(() => parseNodeLabels("kubernetes.io/role=x")).toThrow(NodeLabelError);
  });
});
