// securityContext.fsGroup with the standalone kubelet against real containerd (the lab's private
// containerd, CNI bridge, loopback registry): a static pod running as user 1000 with fsGroup 2000
// gets group 2000 among its supplemental groups, its emptyDir is group 2000 with group write and
// the setgid bit (so the user can write there, and new files inherit the group), its downwardAPI
// volume's 0400 files become group-readable 0440, and its hostPath volume is left alone. The same
// pod without fsGroup cannot write into its emptyDir.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ManifestDirSource, type Pod } from "@worknode/core";
import { CriClient } from "@worknode/cri";
import { type ContainerdLab, startContainerdLab } from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Kubelet, newCrashLoopBackoffWith } from "../src/index.js";
import { waitFor, writeManifest } from "./system-helpers.js";

const LAB_CONTAINERD = {
  labDir: "/tmp/wnfsg-lab",
  bridgeName: "wnfsg0",
  podSubnet: "10.81.0.0/16",
  streamPort: 10074,
};
const NODE = "wnfsg-node";

let lab: ContainerdLab;
let client: CriClient;
let image: string;
const dirs: string[] = [];

function tempDir(prefix: string): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** Unmounts whatever is still mounted under `dir` (tmpfs volumes of a pod a failed test left). */
function unmountUnder(dir: string): void {
  const mounts = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    try {
      execFileSync("umount", [m]);
    } catch (e) {
      console.error(`umount ${m}: ${String(e)}`);
    }
  }
}

beforeAll(async () => {
  lab = await startContainerdLab({ log: (l) => console.error(`[lab] ${l}`), containerd: LAB_CONTAINERD });
  client = new CriClient({ endpoint: lab.endpoint });
  image = lab.busyboxImage;
});

afterAll(async () => {
  client?.close();
  await lab?.stop();
  for (const d of dirs) {
    unmountUnder(d);
    rmSync(d, { recursive: true, force: true });
  }
});

describe("standalone kubelet: securityContext.fsGroup", () => {
  let kubelet: Kubelet;
  let source: ManifestDirSource;
  let manifestDir: string;
  let rootDir: string;
  let hostDir: string;

  beforeAll(async () => {
    manifestDir = tempDir("wnfsg-manifests-");
    rootDir = tempDir("wnfsg-root-");
    hostDir = path.join(tempDir("wnfsg-host-"), "shared");
    mkdirSync(hostDir, { mode: 0o755 });
    source = new ManifestDirSource({
      path: manifestDir,
      nodeName: NODE,
      debounceMs: 20,
      rescanIntervalMs: 1000,
    });
    kubelet = new Kubelet({
      client,
      nodeName: NODE,
      sources: [source],
      rootDir,
      podLogsDir: tempDir("wnfsg-logs-"),
      resolvConf: "",
      relistPeriodMs: 500,
      resyncIntervalMs: 2000,
      errorRetryMs: 500,
      crashLoopBackoff: newCrashLoopBackoffWith(1000),
    });
    await source.start();
    await kubelet.start();
  });

  afterAll(async () => {
    if (kubelet && manifestDir) {
      for (const f of readdirSync(manifestDir)) unlinkSync(path.join(manifestDir, f));
      await waitFor("all pods removed", () => kubelet.pods().length === 0, 60_000).catch((e: unknown) =>
        console.error(String(e)),
      );
      await kubelet.waitForTerminations();
    }
    await kubelet?.stop();
    await source?.stop();
  });

  const podByName = (name: string): Pod | undefined =>
    kubelet.pods().find((p) => p.metadata?.name === `${name}-${NODE}`);

  async function exec(
    pod: string,
    cmd: string[],
  ): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const c = podByName(pod)?.status?.containerStatuses?.find((x) => x.name === "app");
    const containerId = (c?.containerID ?? "").replace("containerd://", "");
    const r = await client.runtime.execSync({ containerId, cmd, timeout: 10 });
    return {
      exitCode: r.exitCode,
      stdout: Buffer.from(r.stdout).toString().trim(),
      stderr: Buffer.from(r.stderr).toString().trim(),
    };
  }

  function manifest(name: string, securityContext: Record<string, unknown>): unknown {
    return {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name },
      spec: {
        terminationGracePeriodSeconds: 1,
        securityContext,
        volumes: [
          { name: "data", emptyDir: {} },
          {
            name: "info",
            downwardAPI: {
              defaultMode: 0o400,
              items: [{ path: "name", fieldRef: { fieldPath: "metadata.name" } }],
            },
          },
          { name: "host", hostPath: { path: hostDir, type: "Directory" } },
        ],
        containers: [
          {
            name: "app",
            image,
            // Writes into the emptyDir as user 1000 (may fail without fsGroup), then stays up.
            command: ["sh", "-c", "echo hello > /data/written; sleep 3600"],
            volumeMounts: [
              { name: "data", mountPath: "/data" },
              { name: "info", mountPath: "/info" },
              { name: "host", mountPath: "/host" },
            ],
          },
        ],
      },
    };
  }

  const running = (name: string) =>
    podByName(name)?.status?.containerStatuses?.[0]?.state?.running !== undefined;

  it("adds fsGroup to the groups and owns the emptyDir and downwardAPI volumes, not the hostPath one", async () => {
    writeManifest(manifestDir, "fsg.yaml", manifest("fsg", { runAsUser: 1000, fsGroup: 2000 }));
    await waitFor("fsg running", () => running("fsg"));

    const id = await exec("fsg", ["id"]);
    expect(id.exitCode).toBe(0);
    expect(id.stdout).toMatch(/^uid=1000\b/);
    expect((await exec("fsg", ["id", "-G"])).stdout.split(/\s+/)).toContain("2000");

    // The container wrote its file as user 1000 through the group write bit; the setgid
    // directory gave the file group 2000 (the user's own group is 0).
    expect(
      await waitFor("the written file", async () => (await exec("fsg", ["cat", "/data/written"])).stdout),
    ).toBe("hello");
    expect((await exec("fsg", ["stat", "-c", "%u %g", "/data/written"])).stdout).toBe("1000 2000");
    expect((await exec("fsg", ["stat", "-c", "%g", "/data"])).stdout).toBe("2000");
    const uid = podByName("fsg")?.metadata?.uid ?? "";
    const dataDir = path.join(rootDir, "pods", uid, "volumes", "kubernetes.io~empty-dir", "data");
    const dataStat = statSync(dataDir);
    expect(dataStat.gid).toBe(2000);
    expect(dataStat.mode & 0o2070).toBe(0o2070);
    expect(dataStat.mode & 0o002).toBe(0); // writable for the group only, not for everyone

    // downwardAPI: 0400 files become 0440 with group 2000, so user 1000 reads them.
    expect((await exec("fsg", ["cat", "/info/name"])).stdout).toBe(`fsg-${NODE}`);
    expect((await exec("fsg", ["stat", "-L", "-c", "%a %g", "/info/name"])).stdout).toBe("440 2000");
    expect((await exec("fsg", ["stat", "-c", "%g", "/info"])).stdout).toBe("2000");
    const infoStat = statSync(
      path.join(rootDir, "pods", uid, "volumes", "kubernetes.io~downward-api", "info"),
    );
    expect(infoStat.mode & 0o2000).toBe(0o2000);

    // hostPath: unchanged.
    expect((await exec("fsg", ["stat", "-c", "%g", "/host"])).stdout).toBe("0");
    const hostStat = statSync(hostDir);
    expect(hostStat.gid).toBe(0);
    expect(hostStat.mode & 0o7777).toBe(0o755);
  });

  it("without fsGroup the same user cannot write into the emptyDir or read 0400 files", async () => {
    writeManifest(manifestDir, "nofsg.yaml", manifest("nofsg", { runAsUser: 1000 }));
    await waitFor("nofsg running", () => running("nofsg"));
    expect((await exec("nofsg", ["id", "-G"])).stdout.split(/\s+/)).not.toContain("2000");
    expect((await exec("nofsg", ["sh", "-c", "echo x > /data/try"])).exitCode).not.toBe(0);
    expect((await exec("nofsg", ["stat", "-c", "%g", "/data"])).stdout).toBe("0");
    expect((await exec("nofsg", ["cat", "/info/name"])).exitCode).not.toBe(0);
  });
});
