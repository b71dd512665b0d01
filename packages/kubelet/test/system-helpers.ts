/** Helpers the kubelet's standalone system tests share. */
import { renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { stringify } from "yaml";

/**
 * Polls `fn` every 200 ms until it returns something other than `undefined` or `false`
 * (errors count as not yet) and returns that; throws after `timeoutMs`, with the last error.
 */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

/** Writes a static-pod manifest as YAML through a rename, so the source sees the whole file at once. */
export function writeManifest(dir: string, file: string, pod: unknown): void {
  const tmp = path.join(dir, `.${file}.tmp`);
  writeFileSync(tmp, stringify(pod));
  renameSync(tmp, path.join(dir, file));
}
