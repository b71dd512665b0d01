import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { missingPackagesFromDpkgQuery } from "../src/apt.js";
import {
  CommandFailedError,
  descendantsOf,
  formatCommand,
  GiveUpError,
  parseProcStat,
  pollUntil,
  runCommand,
} from "../src/exec.js";
import { assertImageReference, contentKey, ociArchitecture } from "../src/images.js";
import { isPathWithin, mountsUnder, parseMountInfo } from "../src/lab-dir.js";
import { renderRegistryConfig } from "../src/registry.js";

describe("runCommand", () => {
  it("passes arguments without a shell and feeds stdin", async () => {
    const r = await runCommand(process.execPath, ["-e", "process.stdin.pipe(process.stdout)", "; echo no"], {
      input: "data $(whoami)",
    });
    expect(r.stdout).toBe("data $(whoami)");
  });

  it("throws a CommandFailedError with the exit code and stderr", async () => {
    const err = await runCommand(process.execPath, ["-e", "console.error('boom'); process.exit(3)"]).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(CommandFailedError);
    expect(err.exitCode).toBe(3);
    expect(err.message).toContain("boom");
    const ok = await runCommand(process.execPath, ["-e", "process.exit(3)"], { allowFailure: true });
    expect(ok.exitCode).toBe(3);
  });

  it("fails when the program does not exist or times out", async () => {
    await expect(runCommand("/nonexistent/prog", [])).rejects.toThrow(/could not run/);
    await expect(
      runCommand(process.execPath, ["-e", "setTimeout(() => {}, 10000)"], { timeoutMs: 200 }),
    ).rejects.toThrow(/timed out/);
  });

  it("formats commands for messages", () => {
    expect(formatCommand("ip", ["netns", "exec", "a b"])).toBe('ip netns exec "a b"');
  });
});

describe("process and mount parsing", () => {
  it("parses /proc/<pid>/stat with odd command names", () => {
    expect(parseProcStat("42 (a) b (c)) S 7 42 42 0 -1")).toEqual({ pid: 42, state: "S", ppid: 7 });
    expect(parseProcStat("garbage")).toBeUndefined();
  });

  it("walks a process tree", () => {
    const p = (pid: number, ppid: number) => ({ pid, ppid, state: "S", argv: [] });
    expect(descendantsOf([p(2, 1), p(3, 2), p(4, 3), p(5, 1), p(6, 2)], [2])).toEqual([3, 6, 4]);
  });

  it("lists mounts below a directory deepest first, with escaped names", () => {
    const info = [
      "22 1 0:21 / / rw - ext4 /dev/vda rw",
      "30 22 0:40 / /tmp/lab/state/a rw - tmpfs shm rw",
      "31 30 0:41 / /tmp/lab/state/a/b\\040c rw - overlay overlay rw",
      "32 22 0:42 / /tmp/lab2 rw - tmpfs x rw",
      "33 22 0:43 / /tmp/lab rw - tmpfs x rw",
    ].join("\n");
    const entries = parseMountInfo(info);
    expect(entries[2]).toMatchObject({ mountPoint: "/tmp/lab/state/a/b c", fsType: "overlay" });
    expect(mountsUnder(entries, "/tmp/lab")).toEqual([
      "/tmp/lab/state/a/b c",
      "/tmp/lab/state/a",
      "/tmp/lab",
    ]);
    expect(isPathWithin("/tmp/lab2", "/tmp/lab")).toBe(false);
  });
});

describe("polling", () => {
  it("returns the first defined value and gives up at once on GiveUpError", async () => {
    let n = 0;
    expect(await pollUntil("n", async () => (++n >= 3 ? n : undefined), 5_000, 1)).toBe(3);
    const t0 = Date.now();
    await expect(
      pollUntil(
        "x",
        async () => {
          throw new GiveUpError("gone");
        },
        10_000,
      ),
    ).rejects.toThrow("gone");
    expect(Date.now() - t0).toBeLessThan(5_000);
    await expect(pollUntil("never", async () => undefined, 50, 10)).rejects.toThrow(
      /timed out after 50 ms waiting for never/,
    );
  });
});

describe("apt", () => {
  it("finds packages that are missing or not fully installed", () => {
    const out = [
      "curl\tinstall ok installed",
      "runc\tdeinstall ok config-files",
      "libc6-dev:amd64\tinstall ok installed",
      "gcc\tinstall ok half-configured",
    ].join("\n");
    expect(missingPackagesFromDpkgQuery(out, ["curl", "runc", "libc6-dev", "gcc", "skopeo"])).toEqual([
      "runc",
      "gcc",
      "skopeo",
    ]);
  });
});

describe("images and registry helpers", () => {
  it("keys content with boundaries", () => {
    expect(contentKey(["ab", "c"])).not.toBe(contentKey(["a", "bc"]));
    expect(contentKey(["x", Buffer.from("y")])).toBe(contentKey(["x", "y"]));
  });

  it("maps Node architectures to OCI ones", () => {
    expect(ociArchitecture("x64")).toBe("amd64");
    expect(ociArchitecture("arm64")).toBe("arm64");
    expect(() => ociArchitecture("mips")).toThrow();
  });

  it("validates image references", () => {
    expect(() => assertImageReference("127.0.0.1:5000/busybox:1")).not.toThrow();
    expect(() => assertImageReference("worknode.local/pause:3.9")).not.toThrow();
    expect(() => assertImageReference("a b")).toThrow();
    expect(() => assertImageReference("--help")).toThrow();
  });

  it("renders the registry config with its data dir and loopback address", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "wn-reg-"));
    const cfg = renderRegistryConfig(path.join(dir, "data"), "127.0.0.1:5001");
    await writeFile(path.join(dir, "config.yml"), cfg);
    expect(cfg).toContain(`rootdirectory: "${dir}/data"`);
    expect(cfg).toContain('addr: "127.0.0.1:5001"');
    await rm(dir, { recursive: true });
  });
});
