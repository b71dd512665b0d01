import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { ConfigError } from "@worknode/core";
import { afterAll, describe, expect, it } from "vitest";
import {
  compressLogFile,
  logRotationPolicy,
  NOTHING_TO_DO,
  planLogRotation,
  rotationTimestamp,
} from "../../src/logs/index.js";

const LOG = "/var/log/pods/ns_web_uid/app/0.log";
const DIR = "/var/log/pods/ns_web_uid/app";
// 2026-11-24 23:45:06 UTC
const NOW = Date.UTC(2026, 10, 24, 23, 45, 6);
const policy = { maxSizeBytes: 1000, maxFiles: 5 };
const abs = (n: string) => `${DIR}/${n}`;

describe("logRotationPolicy", () => {
  it("defaults to kubelet's 10Mi and 5 files", () => {
    expect(logRotationPolicy()).toEqual({ maxSizeBytes: 10 * 1024 * 1024, maxFiles: 5 });
  });

  it("takes quantities and bytes", () => {
    expect(logRotationPolicy("1Ki", 2)).toEqual({ maxSizeBytes: 1024, maxFiles: 2 });
    expect(logRotationPolicy(500, 3).maxSizeBytes).toBe(500);
    expect(logRotationPolicy("1M").maxSizeBytes).toBe(1_000_000);
  });

  it("rejects fewer than 2 files and sizes that are not positive quantities", () => {
    expect(() => logRotationPolicy("10Mi", 1)).toThrow(ConfigError);
    expect(() => logRotationPolicy("10Mi", 2.5)).toThrow(/greater than 1/);
    expect(() => logRotationPolicy("0")).toThrow(/must be positive/);
    expect(() => logRotationPolicy("ten megs")).toThrow(/not a quantity/);
  });
});

describe("rotationTimestamp", () => {
  it("is Go's 20060102-150405 in UTC", () => {
    expect(rotationTimestamp(NOW)).toBe("20261124-234506");
    expect(rotationTimestamp(Date.UTC(2027, 0, 2, 3, 4, 5))).toBe("20270102-030405");
  });
});

describe("planLogRotation", () => {
  const plan = (sizeBytes: number, siblings: string[], p = policy) =>
    planLogRotation({ logPath: LOG, sizeBytes, siblings, policy: p, now: NOW });

  it("does nothing below the maximum size, whatever lies around", () => {
    expect(plan(999, ["0.log", "0.log.20261124-000000", "0.log.x.tmp"])).toEqual(NOTHING_TO_DO);
  });

  it("rotates a file that reached the maximum size to <log>.<timestamp>", () => {
    expect(plan(1000, ["0.log"])).toEqual({
      removeUnused: [],
      removeExcess: [],
      compress: [],
      rotateTo: abs("0.log.20261124-234506"),
    });
  });

  it("compresses the previously rotated file, leaving only the newest rotated file plain", () => {
    const p = plan(5000, ["0.log", "0.log.20261124-230000.gz", "0.log.20261124-231000"]);
    expect(p.compress).toEqual([abs("0.log.20261124-231000")]);
    expect(p.removeExcess).toEqual([]);
    expect(p.rotateTo).toBe(abs("0.log.20261124-234506"));
  });

  it("keeps at most maxFiles - 2 rotated files before rotating, deleting the oldest", () => {
    const siblings = [
      "0.log",
      "0.log.20261124-230000.gz",
      "0.log.20261124-230100.gz",
      "0.log.20261124-230200.gz",
      "0.log.20261124-230300",
    ];
    const p = plan(1000, siblings);
    // 4 rotated, budget 5 - 2 = 3: the oldest goes; with the new rotation and the reopened file: 5.
    expect(p.removeExcess).toEqual([abs("0.log.20261124-230000.gz")]);
    expect(p.compress).toEqual([abs("0.log.20261124-230300")]);
    const p2 = plan(1000, siblings, { maxSizeBytes: 1000, maxFiles: 2 });
    expect(p2.removeExcess).toEqual(siblings.slice(1).map(abs));
    expect(p2.compress).toEqual([]);
  });

  it("removes interrupted compressions and plain copies of compressed files", () => {
    const p = plan(1000, [
      "0.log",
      "0.log.20261124-230000",
      "0.log.20261124-230000.gz",
      "0.log.20261124-230100.gz.tmp",
    ]);
    expect(p.removeUnused).toEqual([abs("0.log.20261124-230000"), abs("0.log.20261124-230100.gz.tmp")]);
    expect(p.compress).toEqual([]);
    expect(p.removeExcess).toEqual([]);
  });

  it("leaves other containers' and other instances' files alone", () => {
    const p = plan(1000, ["0.log", "1.log", "1.log.20261124-230000", "10.log.20261124-230000", "0.log."]);
    expect(p).toEqual({ ...NOTHING_TO_DO, rotateTo: abs("0.log.20261124-234506") });
  });

  it("does not rotate twice within one second", () => {
    expect(plan(1000, ["0.log", "0.log.20261124-234506"]).rotateTo).toBeUndefined();
    const p = plan(1000, ["0.log", "0.log.20261124-234506", "0.log.20261124-230000"]);
    expect(p.rotateTo).toBeUndefined();
    expect(p.compress).toEqual([abs("0.log.20261124-230000")]);
  });
});

describe("compressLogFile", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "wnk5-logs-unit-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("writes <file>.gz with the same content and removes the plain file", async () => {
    const file = path.join(dir, "0.log.20261124-230000");
    const text = "2026-11-24T23:00:00.000000000Z stdout F hello\n".repeat(1000);
    writeFileSync(file, text);
    const gz = await compressLogFile(file);
    expect(gz).toBe(`${file}.gz`);
    expect(readdirSync(dir)).toEqual(["0.log.20261124-230000.gz"]);
    expect(gunzipSync(readFileSync(gz)).toString()).toBe(text);
  });

  it("leaves no temporary file behind when the source is missing", async () => {
    await expect(compressLogFile(path.join(dir, "missing"))).rejects.toThrow(/ENOENT/);
    expect(readdirSync(dir)).toEqual(["0.log.20261124-230000.gz"]);
  });
});
