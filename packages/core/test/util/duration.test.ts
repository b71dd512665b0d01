import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration } from "../../src/util/duration.js";
import { ConfigError } from "../../src/util/errors.js";

describe("Go durations", () => {
  it("parses the forms Kubernetes flags use", () => {
    expect(parseDuration("1s")).toBe(1000);
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("1m30s")).toBe(90_000);
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("1.5h")).toBe(5_400_000);
    expect(parseDuration("0")).toBe(0);
  });

  it("rejects garbage with a ConfigError naming the flag", () => {
    for (const bad of ["", "1", "s", "1x", "-1s", "1s junk"]) {
      expect(() => parseDuration(bad, "--iptables-sync-period")).toThrow(ConfigError);
    }
    expect(() => parseDuration("10", "--file-check-frequency")).toThrow(/--file-check-frequency: "10"/);
  });

  it("formats back", () => {
    expect(formatDuration(90_000)).toBe("1m30s");
    expect(formatDuration(500)).toBe("500ms");
    expect(formatDuration(3_600_000 + 1500)).toBe("1h1.5s");
    expect(parseDuration(formatDuration(123_456))).toBe(123_456);
  });
});
