import { appendFile, mkdtemp, rename, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ContainerLogError, readContainerLog, streamContainerLog } from "../../src/server/container-logs.js";

const line = (n: number, text: string, tag = "F") =>
  `2024-05-01T10:00:${String(n).padStart(2, "0")}.5Z stdout ${tag} ${text}\n`;

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("container log files", () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "ctr-logs-"));
    file = path.join(dir, "0.log");
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads a whole file, with tailLines and timestamps", async () => {
    await writeFile(file, line(1, "one") + line(2, "tw", "P") + line(3, "o") + line(4, "three"));
    expect(await readContainerLog(file)).toBe("one\ntwo\nthree\n");
    expect(await readContainerLog(file, { tailLines: 2 })).toBe("two\nthree\n");
    expect(await readContainerLog(file, { tailLines: 0 })).toBe("");
    expect(await readContainerLog(file, { tailLines: 1, timestamps: true })).toBe(
      "2024-05-01T10:00:04.500000000Z three\n",
    );
  });

  it("reads files larger than one read chunk, lines crossing chunk boundaries", async () => {
    const lines = Array.from({ length: 3000 }, (_, i) => line(i % 60, `line-${i}-${"x".repeat(i % 97)}`));
    await writeFile(file, lines.join(""));
    const out = (await readContainerLog(file)).split("\n");
    expect(out).toHaveLength(3001);
    expect(out[2999]).toBe(`line-2999-${"x".repeat(2999 % 97)}`);
  });

  it("fails with ContainerLogError for a missing file", async () => {
    await expect(readContainerLog(path.join(dir, "7.log"))).rejects.toBeInstanceOf(ContainerLogError);
  });

  it("follows appended lines, holding back an unfinished line until it completes, until aborted", async () => {
    await writeFile(file, line(1, "first"));
    const ac = new AbortController();
    let out = "";
    const done = streamContainerLog(
      file,
      { follow: true },
      {
        signal: ac.signal,
        pollIntervalMs: 50,
        write: async (c) => {
          out += c.toString();
        },
      },
    );
    await until(() => out === "first\n", "the existing line");
    await appendFile(file, "2024-05-01T10:00:02Z stdout F sec");
    await new Promise((r) => setTimeout(r, 150));
    expect(out).toBe("first\n");
    await appendFile(file, `ond\n${line(3, "third")}`);
    await until(() => out === "first\nsecond\nthird\n", "the appended lines");
    ac.abort();
    await done;
  });

  it("follows a rotated file: the rest of the old one, then the new one from its start", async () => {
    await writeFile(file, line(1, "before"));
    const ac = new AbortController();
    let out = "";
    const done = streamContainerLog(
      file,
      { follow: true },
      {
        signal: ac.signal,
        pollIntervalMs: 50,
        write: async (c) => {
          out += c.toString();
        },
      },
    );
    await until(() => out === "before\n", "the first line");
    await appendFile(file, line(2, "late"));
    await rename(file, `${file}.20240501-100003`);
    await writeFile(file, line(4, "after"));
    await until(() => out === "before\nlate\nafter\n", "lines of both files");
    ac.abort();
    await done;
  });

  it("starts over when the file is truncated", async () => {
    await writeFile(file, line(1, "old-1") + line(2, "old-2"));
    const ac = new AbortController();
    let out = "";
    const done = streamContainerLog(
      file,
      { follow: true },
      {
        signal: ac.signal,
        pollIntervalMs: 50,
        write: async (c) => {
          out += c.toString();
        },
      },
    );
    await until(() => out === "old-1\nold-2\n", "the old lines");
    await truncate(file, 0);
    await new Promise((r) => setTimeout(r, 120));
    await appendFile(file, line(3, "new"));
    await until(() => out === "old-1\nold-2\nnew\n", "the line after truncation");
    ac.abort();
    await done;
  });

  it("ends a follow once the container instance is no longer current", async () => {
    await writeFile(file, line(1, "last words"));
    let current = true;
    let out = "";
    const done = streamContainerLog(
      file,
      { follow: true },
      {
        signal: new AbortController().signal,
        pollIntervalMs: 30,
        stillCurrent: () => current,
        write: async (c) => {
          out += c.toString();
        },
      },
    );
    await until(() => out === "last words\n", "the line");
    await appendFile(file, line(2, "really last"));
    current = false;
    await done;
    expect(out).toBe("last words\nreally last\n");
  });
});
