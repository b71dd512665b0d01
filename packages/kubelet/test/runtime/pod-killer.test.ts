import { describe, expect, it } from "vitest";
import { containerAnnotations } from "../../src/labels.js";
import { killTargetOf } from "../../src/runtime/pod-killer.js";
import { container, ctr, pod } from "../helpers.js";

describe("killTargetOf", () => {
  const preStop = { exec: { command: ["sh", "-c", "sleep 1"] } };
  const spec = container("app", { lifecycle: { preStop }, ports: [{ name: "http", containerPort: 80 }] });
  const p = pod({ containers: [spec], terminationGracePeriodSeconds: 12 });

  it("takes grace period and preStop from the pod spec", () => {
    const t = killTargetOf(ctr(spec, "running"), p, undefined, "10.0.0.5");
    expect(t).toMatchObject({ gracePeriodSeconds: 12, preStop, podIP: "10.0.0.5" });
    expect(t.ports).toEqual([{ name: "http", containerPort: 80 }]);
  });

  it("honours an override and skips preStop for containers not running", () => {
    expect(killTargetOf(ctr(spec, "running"), p, undefined, undefined, 1).gracePeriodSeconds).toBe(1);
    expect(killTargetOf(ctr(spec, "created"), p, undefined, undefined).preStop).toBeUndefined();
  });

  it("falls back to the stored annotations for an orphan, then to 30 s", () => {
    const ann = containerAnnotations(p, spec, 0);
    const t = killTargetOf(ctr(spec, "running"), undefined, ann, undefined);
    expect(t.gracePeriodSeconds).toBe(12);
    expect(t.preStop).toEqual(preStop);
    expect(killTargetOf(ctr(spec, "running"), undefined, {}, undefined).gracePeriodSeconds).toBe(30);
  });
});
