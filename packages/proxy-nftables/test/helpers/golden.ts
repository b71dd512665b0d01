import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";

const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "golden");

/**
 * Compares `actual` with `test/golden/<name>`. With `UPDATE_GOLDEN=1` the file is
 * (re)written instead; a missing file fails the test.
 */
export function expectGolden(name: string, actual: string): void {
  const file = join(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN === "1") {
    writeFileSync(file, actual);
    return;
  }
  if (!existsSync(file))
    throw new Error(`golden file ${file} is missing (run with UPDATE_GOLDEN=1 to create it)`);
  expect(actual).toBe(readFileSync(file, "utf8"));
}
