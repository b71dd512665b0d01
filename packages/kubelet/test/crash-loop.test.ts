import { describe, expect, it } from "vitest";
import {
  CRASH_LOOP_RESET_MS,
  crashLoopKey,
  isInBackoffSince,
  newCrashLoopBackoff,
} from "../src/crash-loop.js";
import * as api from "../src/index.js";
import { container, pod, T0 } from "./helpers.js";

describe("isInBackoffSince (client-go IsInBackOffSince)", () => {
  it("measures from the event and expires exactly after resetAfter", () => {
    const b = newCrashLoopBackoff();
    const key = crashLoopKey(pod(), container("app"), "abc");
    expect(key).toBe("web_default_uid-1_app_abc");
    expect(isInBackoffSince(b, key, T0, T0 + 1)).toBe(false); // no entry
    b.next(key, T0); // 10 s, last update T0
    const event = T0 + 5_000;
    expect(isInBackoffSince(b, key, event, event + 9_999)).toBe(true);
    expect(isInBackoffSince(b, key, event, event + 10_000)).toBe(false);
    // An event exactly resetAfter after the last update is not expired; one ms later it is.
    expect(isInBackoffSince(b, key, T0 + CRASH_LOOP_RESET_MS, T0 + CRASH_LOOP_RESET_MS + 1)).toBe(true);
    expect(isInBackoffSince(b, key, T0 + CRASH_LOOP_RESET_MS + 1, T0 + CRASH_LOOP_RESET_MS + 2)).toBe(false);
  });

  it("the package index exports the decision layer", () => {
    for (const name of [
      "computePodActions",
      "generatePodStatus",
      "mergeStatus",
      "buildContainerConfig",
      "buildSandboxConfig",
      "admitPod",
      "ProbeTracker",
      "parseQuantity",
    ]) {
      expect(typeof (api as Record<string, unknown>)[name]).toBe("function");
    }
  });
});
