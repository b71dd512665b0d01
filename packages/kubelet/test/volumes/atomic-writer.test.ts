import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DATA_DIR_NAME, timestampedDirName, writeAtomically } from "../../src/volumes/atomic-writer.js";
import { type VolumePayload, VolumeProjectionError } from "../../src/volumes/projection.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), "wn-atomic-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function payload(entries: Record<string, string | [string, number]>): VolumePayload {
  return new Map(
    Object.entries(entries).map(([k, v]) => {
      const [data, mode] = typeof v === "string" ? [v, 0o644] : v;
      return [k, { data: Buffer.from(data), mode }];
    }),
  );
}

describe("atomic writer", () => {
  it("names data directories with a UTC timestamp", () => {
    expect(timestampedDirName(new Date(Date.UTC(2026, 10, 24, 23, 4, 5)))).toMatch(
      /^\.\.2026_11_24_23_04_05\.\d{10}$/,
    );
  });

  it("writes the payload into a timestamped directory behind ..data and user-visible symlinks", async () => {
    const r = await writeAtomically(dir, payload({ a: "1", "sub/b": ["2", 0o600] }));
    expect(r.changed).toBe(true);
    expect(readlinkSync(path.join(dir, DATA_DIR_NAME))).toBe(r.dataDir);
    expect(readlinkSync(path.join(dir, "a"))).toBe("..data/a");
    expect(readlinkSync(path.join(dir, "sub"))).toBe("..data/sub");
    expect(readFileSync(path.join(dir, "a"), "utf8")).toBe("1");
    expect(readFileSync(path.join(dir, "sub/b"), "utf8")).toBe("2");
    expect(statSync(path.join(dir, "sub/b")).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).sort()).toEqual([DATA_DIR_NAME, r.dataDir, "a", "sub"].sort());
  });

  it("does nothing when the payload is unchanged", async () => {
    const first = await writeAtomically(dir, payload({ a: "1" }));
    const again = await writeAtomically(dir, payload({ a: "1" }));
    expect(again).toEqual({ changed: false, dataDir: first.dataDir });
  });

  it("rewrites on a content or mode change, swaps ..data and removes the old directory and stale entries", async () => {
    const first = await writeAtomically(dir, payload({ a: "1", old: "x" }));
    const modeOnly = await writeAtomically(dir, payload({ a: ["1", 0o400], old: "x" }));
    expect(modeOnly.changed).toBe(true);
    const second = await writeAtomically(dir, payload({ a: "2", fresh: "y" }));
    expect(second.changed).toBe(true);
    expect(second.dataDir).not.toBe(first.dataDir);
    expect(readFileSync(path.join(dir, "a"), "utf8")).toBe("2");
    expect(readFileSync(path.join(dir, "fresh"), "utf8")).toBe("y");
    expect(readdirSync(dir).sort()).toEqual([DATA_DIR_NAME, second.dataDir, "a", "fresh"].sort());
  });

  it("replaces files a user put in the target, and rejects invalid paths before writing", async () => {
    writeFileSync(path.join(dir, "stray"), "junk");
    await writeAtomically(dir, payload({ a: "1" }));
    expect(readdirSync(dir)).not.toContain("stray");
    await expect(writeAtomically(dir, payload({ "../escape": "x" }))).rejects.toBeInstanceOf(
      VolumeProjectionError,
    );
    expect(readFileSync(path.join(dir, "a"), "utf8")).toBe("1");
  });

  it("writes an empty payload (optional source missing) as an empty ..data", async () => {
    const r = await writeAtomically(dir, new Map());
    expect(r.changed).toBe(true);
    expect(readdirSync(path.join(dir, DATA_DIR_NAME))).toEqual([]);
    expect((await writeAtomically(dir, new Map())).changed).toBe(false);
  });
});
