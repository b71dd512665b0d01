import { EventEmitter } from "node:events";
import { type FSWatcher, watch } from "node:fs";
import { mkdir, rename, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  type PathSnapshot,
  PathWatcher,
  type PathWatcherOptions,
  readPathSnapshot,
  type WatchFunction,
} from "../../src/sources/file-watch.js";
import { FakeClock } from "../../src/util/clock.js";
import { tempDir, until } from "./file-helpers.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

/** Starts a watcher recording every snapshot; stopped after the test. */
async function startWatcher(options: Omit<PathWatcherOptions, "onChange">) {
  const snapshots: PathSnapshot[] = [];
  const watcher = new PathWatcher({ ...options, onChange: (s) => void snapshots.push(s) });
  cleanups.push(() => watcher.stop());
  await watcher.start();
  return { watcher, snapshots, latest: () => snapshots[snapshots.length - 1]! };
}

function contentOf(s: PathSnapshot): string | undefined {
  const f = s.files[0];
  return f?.ok ? f.content : undefined;
}

/** A watch function that records the watchers it opens and whether they were closed. */
function trackingWatch(): { fn: WatchFunction; opened: string[]; open: () => number } {
  const live = new Set<FSWatcher>();
  const opened: string[] = [];
  const fn: WatchFunction = (path, options, listener) => {
    const w = watch(path, options, listener);
    opened.push(path);
    live.add(w);
    const close = w.close.bind(w);
    w.close = () => {
      live.delete(w);
      close();
    };
    return w;
  };
  return { fn, opened, open: () => live.size };
}

describe("PathWatcher on a file", () => {
  it("delivers the initial content before start() resolves", async () => {
    const dir = await setup();
    const file = join(dir, "a.yaml");
    await writeFile(file, "hello\n");
    const { snapshots, watcher } = await startWatcher({ path: file, kind: "file", rescanIntervalMs: 0 });
    expect(snapshots).toHaveLength(1);
    expect(snapshots[0]!.exists).toBe(true);
    expect(contentOf(snapshots[0]!)).toBe("hello\n");
    expect(watcher.watchedDirectory()).toBe(dir);
  });

  it("reports a change seen through fs.watch", async () => {
    const dir = await setup();
    const file = join(dir, "a.yaml");
    await writeFile(file, "one\n");
    const w = await startWatcher({ path: file, kind: "file", rescanIntervalMs: 0, debounceMs: 5 });
    await writeFile(file, "two\n");
    await until(() => expect(contentOf(w.latest())).toBe("two\n"));
  });

  it("reports nothing when a file is touched without changing", async () => {
    const dir = await setup();
    const file = join(dir, "a.yaml");
    await writeFile(file, "same\n");
    const w = await startWatcher({ path: file, kind: "file", rescanIntervalMs: 0, debounceMs: 5 });
    const scans = w.watcher.stats().scans;
    const later = new Date(Date.now() + 60_000);
    await utimes(file, later, later); // inotify reports the attribute change
    await until(() => expect(w.watcher.stats().scans).toBeGreaterThan(scans));
    await w.watcher.rescan();
    expect(w.snapshots).toHaveLength(1);
  });

  it("follows editors' atomic rename-replace, repeatedly", async () => {
    const dir = await setup();
    const file = join(dir, "a.yaml");
    await writeFile(file, "v1\n");
    const w = await startWatcher({ path: file, kind: "file", rescanIntervalMs: 0, debounceMs: 5 });
    for (const v of ["v2\n", "v3\n"]) {
      const tmp = join(dir, ".a.yaml.tmp");
      await writeFile(tmp, v);
      await rename(tmp, file);
      await until(() => expect(contentOf(w.latest())).toBe(v));
    }
    expect(w.snapshots.map(contentOf)).toEqual(["v1\n", "v2\n", "v3\n"]);
  });

  it("sees a file that appears after start and its deletion", async () => {
    const dir = await setup();
    const file = join(dir, "later.yaml");
    const w = await startWatcher({ path: file, kind: "file", rescanIntervalMs: 0, debounceMs: 5 });
    expect(w.latest()).toMatchObject({ exists: false, files: [] });
    await writeFile(file, "here\n");
    await until(() => expect(contentOf(w.latest())).toBe("here\n"));
    await rm(file);
    await until(() => expect(w.latest()).toMatchObject({ exists: false, files: [] }));
  });

  it("catches a change missed by the watch at the periodic rescan", async () => {
    const dir = await setup();
    const file = join(dir, "a.yaml");
    await writeFile(file, "one\n");
    const clock = new FakeClock();
    const w = await startWatcher({
      path: file,
      kind: "file",
      clock,
      fsWatch: false,
      rescanIntervalMs: 20_000,
    });
    expect(w.watcher.watchedDirectory()).toBeUndefined();
    await writeFile(file, "two\n");
    await clock.advance(19_999);
    expect(w.watcher.stats().scans).toBe(1); // the rescan is not due yet
    expect(w.snapshots).toHaveLength(1);
    await clock.advance(1);
    await until(() => expect(contentOf(w.latest())).toBe("two\n"));
    // the next rescan is scheduled again after this one
    await until(() => expect(clock.pendingTimers()).toBe(1));
    await writeFile(file, "three\n");
    await clock.advance(20_000);
    await until(() => expect(contentOf(w.latest())).toBe("three\n"));
  });

  it("coalesces a burst of events into one scan", async () => {
    const dir = await setup();
    const file = join(dir, "a.yaml");
    await writeFile(file, "0\n");
    const clock = new FakeClock();
    // a fake fs.watch, so that the test decides exactly when events arrive
    let emit: (() => void) | undefined;
    const fakeWatch: WatchFunction = (_path, _options, listener) => {
      emit = () => listener("change", "a.yaml");
      return Object.assign(new EventEmitter(), { close() {} }) as unknown as FSWatcher;
    };
    const w = await startWatcher({
      path: file,
      kind: "file",
      clock,
      watchFn: fakeWatch,
      rescanIntervalMs: 0,
    });
    for (let i = 1; i <= 5; i++) {
      await writeFile(file, `${i}\n`);
      emit!();
      await clock.advance(10); // events 10 ms apart: all within the 100 ms debounce
    }
    expect(w.watcher.stats()).toMatchObject({ fsEvents: 5, scans: 1 });
    expect(clock.pendingTimers()).toBe(1); // one debounce timer for the whole burst
    await clock.advance(100);
    await until(() => expect(w.watcher.stats().scans).toBe(2));
    expect(w.snapshots.map(contentOf)).toEqual(["0\n", "5\n"]);
    // an event after the scan starts a new debounce period
    await writeFile(file, "6\n");
    emit!();
    expect(clock.pendingTimers()).toBe(1);
    await clock.advance(100);
    await until(() => expect(contentOf(w.latest())).toBe("6\n"));
  });

  it("falls back to periodic rescans when fs.watch fails", async () => {
    const dir = await setup();
    const file = join(dir, "a.yaml");
    await writeFile(file, "one\n");
    const clock = new FakeClock();
    const failing: WatchFunction = () => {
      throw Object.assign(new Error("inotify watch limit reached"), { code: "ENOSPC" });
    };
    const w = await startWatcher({ path: file, kind: "file", clock, watchFn: failing });
    expect(w.watcher.watchedDirectory()).toBeUndefined();
    await writeFile(file, "two\n");
    await clock.advance(20_000);
    await until(() => expect(contentOf(w.latest())).toBe("two\n"));
  });

  it("stop() closes the watch, cancels timers and delivers nothing more", async () => {
    const dir = await setup();
    const file = join(dir, "a.yaml");
    await writeFile(file, "one\n");
    const clock = new FakeClock();
    const tracking = trackingWatch();
    const w = await startWatcher({ path: file, kind: "file", clock, watchFn: tracking.fn, debounceMs: 50 });
    expect(tracking.opened).toEqual([dir]);
    expect(tracking.open()).toBe(1);
    await writeFile(file, "two\n");
    await until(() => expect(clock.pendingTimers()).toBe(2)); // periodic rescan + debounce
    await w.watcher.stop();
    expect(tracking.open()).toBe(0);
    expect(clock.pendingTimers()).toBe(0);
    await clock.advance(60_000);
    await w.watcher.rescan();
    expect(w.snapshots).toHaveLength(1);
    await w.watcher.stop(); // idempotent
  });

  it("rejects a second start", async () => {
    const dir = await setup();
    const w = await startWatcher({ path: join(dir, "x"), kind: "file", rescanIntervalMs: 0, fsWatch: false });
    await expect(w.watcher.start()).rejects.toThrow(/only once/);
  });
});

describe("PathWatcher on a directory", () => {
  it("reads matching regular files, skipping hidden ones and subdirectories", async () => {
    const dir = await setup();
    await writeFile(join(dir, "b.yaml"), "b");
    await writeFile(join(dir, "a.yaml"), "a");
    await writeFile(join(dir, ".hidden.yaml"), "h");
    await writeFile(join(dir, "notes.txt"), "t");
    await mkdir(join(dir, "sub.yaml"));
    const w = await startWatcher({
      path: dir,
      kind: "directory",
      rescanIntervalMs: 0,
      fsWatch: false,
      include: (n) => n.endsWith(".yaml"),
    });
    expect(w.latest().files.map((f) => f.path)).toEqual([join(dir, "a.yaml"), join(dir, "b.yaml")]);
  });

  it("sees a directory created after start, then files added, changed and removed", async () => {
    const parent = await setup();
    const dir = join(parent, "manifests");
    const w = await startWatcher({ path: dir, kind: "directory", rescanIntervalMs: 0, debounceMs: 5 });
    expect(w.latest().exists).toBe(false);
    expect(w.watcher.watchedDirectory()).toBe(parent);
    await mkdir(dir);
    await until(() => expect(w.latest().exists).toBe(true));
    await until(() => expect(w.watcher.watchedDirectory()).toBe(dir));
    await writeFile(join(dir, "p.yaml"), "p1");
    await until(() => expect(w.latest().files).toHaveLength(1));
    await writeFile(join(dir, "p.yaml"), "p2");
    await until(() => expect(w.latest().files[0]).toMatchObject({ ok: true, content: "p2" }));
    await rm(join(dir, "p.yaml"));
    await until(() => expect(w.latest().files).toHaveLength(0));
  });

  it("re-establishes the watch when the directory is deleted and recreated", async () => {
    const parent = await setup();
    const dir = join(parent, "manifests");
    await mkdir(dir);
    const w = await startWatcher({ path: dir, kind: "directory", rescanIntervalMs: 0, debounceMs: 5 });
    await rm(dir, { recursive: true });
    await until(() => expect(w.latest().exists).toBe(false));
    await mkdir(dir);
    await writeFile(join(dir, "p.yaml"), "again");
    await until(() => expect(w.latest().files[0]).toMatchObject({ ok: true, content: "again" }));
    await writeFile(join(dir, "p.yaml"), "still watched");
    await until(() => expect(w.latest().files[0]).toMatchObject({ ok: true, content: "still watched" }));
  });
});

describe("readPathSnapshot", () => {
  it("reports a directory where a file is expected as an error of the path", async () => {
    const dir = await setup();
    const snap = await readPathSnapshot(dir, "file");
    expect(snap.exists).toBe(true);
    expect(snap.error).toBeInstanceOf(Error);
    expect(snap.files).toEqual([]);
  });

  it("reports a file where a directory is expected as an error of the path", async () => {
    const dir = await setup();
    await writeFile(join(dir, "f"), "x");
    const snap = await readPathSnapshot(join(dir, "f"), "directory");
    expect(snap.error).toMatchObject({ code: "ENOTDIR" });
  });

  it("refuses files over the size limit", async () => {
    const dir = await setup();
    await writeFile(join(dir, "big.yaml"), "x".repeat(100));
    await writeFile(join(dir, "small.yaml"), "x");
    const snap = await readPathSnapshot(dir, "directory", { maxFileBytes: 10 });
    expect(snap.files).toHaveLength(2);
    expect(snap.files[0]).toMatchObject({ ok: false });
    expect(snap.files[0]!.ok ? "" : snap.files[0]!.error.message).toMatch(/larger than 10 bytes/);
    expect(snap.files[1]).toMatchObject({ ok: true, content: "x" });
  });

  it("hashes content: equal bytes give equal hashes", async () => {
    const dir = await setup();
    await writeFile(join(dir, "a"), "same");
    await writeFile(join(dir, "b"), "same");
    await writeFile(join(dir, "c"), "other");
    const snap = await readPathSnapshot(dir, "directory");
    const hashes = snap.files.map((f) => (f.ok ? f.hash : ""));
    expect(hashes[0]).toBe(hashes[1]);
    expect(hashes[2]).not.toBe(hashes[0]);
    expect(hashes[0]).toMatch(/^[0-9a-f]{64}$/);
  });
});
