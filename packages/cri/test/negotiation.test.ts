import { describe, expect, it } from "vitest";
import { CriUnsupportedRuntimeError } from "../src/errors.js";
import { checkRuntimeApiVersion } from "../src/negotiation.js";

const base = {
  version: "0.1.0",
  runtimeName: "containerd",
  runtimeVersion: "1.6.20",
  runtimeApiVersion: "v1",
};

describe("checkRuntimeApiVersion", () => {
  it("accepts a v1 runtime", () => {
    expect(checkRuntimeApiVersion("unix:///x.sock", base)).toBe(base);
  });

  it.each(["v1alpha2", "0.1.0", "", "v2"])(
    "refuses runtimeApiVersion %j with a typed error",
    (apiVersion) => {
      const run = () => checkRuntimeApiVersion("unix:///x.sock", { ...base, runtimeApiVersion: apiVersion });
      expect(run).toThrow(CriUnsupportedRuntimeError);
      try {
        run();
      } catch (e) {
        const err = e as CriUnsupportedRuntimeError;
        expect(err.code).toBe("CRI_UNSUPPORTED_RUNTIME");
        expect(err.runtimeApiVersion).toBe(apiVersion);
        expect(err.endpoint).toBe("unix:///x.sock");
        expect(err.message).toContain("containerd 1.6.20");
        expect(err.message).toContain("supports v1");
      }
    },
  );
});
