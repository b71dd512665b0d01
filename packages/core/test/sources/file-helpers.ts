/** Helpers shared by the file-source tests (temporary directories, event recording, bounded waiting). */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { vi } from "vitest";
import { type KubeObject, objectKey } from "../../src/kube/objects.js";
import type { ObjectSource } from "../../src/sources/types.js";
import type { InvalidObjectError } from "../../src/util/errors.js";

/** Creates a fresh temporary directory; `cleanup` removes it. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "worknode-file-source-"));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Events of a source as short strings (`add ns/name`, `update ns/name`, `delete ns/name`, `synced`, `invalid`). */
export interface Recorder<T> {
  readonly events: string[];
  readonly invalid: InvalidObjectError[];
  readonly updates: [T, T][];
  /** Returns the events recorded since the last call and forgets them. */
  take(): string[];
  detach(): void;
}

/** Attaches a handler that records every callback. */
export function record<T extends KubeObject>(source: ObjectSource<T>): Recorder<T> {
  const events: string[] = [];
  const invalid: InvalidObjectError[] = [];
  const updates: [T, T][] = [];
  const detach = source.addHandler({
    onAdd: (o) => events.push(`add ${objectKey(o)}`),
    onUpdate: (a, b) => {
      events.push(`update ${objectKey(b)}`);
      updates.push([a, b]);
    },
    onDelete: (o) => events.push(`delete ${objectKey(o)}`),
    onSynced: () => events.push("synced"),
    onInvalid: (e) => {
      events.push("invalid");
      invalid.push(e);
    },
  });
  return { events, invalid, updates, take: () => events.splice(0), detach };
}

/** Polls `check` until it passes (bounded: 5 s). */
export function until(check: () => void | Promise<void>, timeout = 5_000): Promise<void> {
  return vi.waitFor(check, { timeout, interval: 5 });
}
