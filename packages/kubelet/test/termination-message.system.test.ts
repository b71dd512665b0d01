// terminationMessagePolicy: FallbackToLogsOnError with the standalone kubelet against real
// containerd (the lab's private containerd, CNI bridge, loopback registry): a static pod
// (restartPolicy Never) whose containers print and exit 3. A FallbackToLogsOnError container gets
// the tail of its log as its terminated.message — a long line containerd split into a partial
// entry comes out joined, and the message is cut to its last 2048 bytes — while a container under
// the default policy (File) with an empty termination message file gets no message.
import { mkdtempSync, readFileSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ManifestDirSource, type Pod } from "@worknode/core";
import { CriClient } from "@worknode/cri";
import { type ContainerdLab, startContainerdLab } from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Kubelet, podLogDirectory } from "../src/index.js";
import { waitFor, writeManifest } from "./system-helpers.js";

const LAB_CONTAINERD = {
  labDir: "/tmp/wntmsg-lab",
  bridgeName: "wntmsg0",
  podSubnet: "10.93.0.0/16",
  streamPort: 10076,
};
const NODE = "wntmsg-node";
const POD = "tmsg";
const MANIFEST = "tmsg.yaml";

let lab: ContainerdLab;
let client: CriClient;
let image: string;
const dirs: string[] = [];

function tempDir(prefix: string): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  lab = await startContainerdLab({ log: (l) => console.error(`[lab] ${l}`), containerd: LAB_CONTAINERD });
  client = new CriClient({ endpoint: lab.endpoint });
  image = lab.busyboxImage;
});

afterAll(async () => {
  client?.close();
  await lab?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("standalone kubelet: terminationMessagePolicy FallbackToLogsOnError", () => {
  let kubelet: Kubelet;
  let source: ManifestDirSource;
  let manifestDir: string;
  let podLogsDir: string;

  beforeAll(async () => {
    manifestDir = tempDir("wntmsg-manifests-");
    podLogsDir = tempDir("wntmsg-logs-");
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
      rootDir: tempDir("wntmsg-root-"),
      podLogsDir,
      resolvConf: "",
      relistPeriodMs: 500,
      resyncIntervalMs: 2000,
      errorRetryMs: 500,
    });
    await source.start();
    await kubelet.start();
  });

  afterAll(async () => {
    if (kubelet && manifestDir) {
      try {
        unlinkSync(path.join(manifestDir, MANIFEST));
      } catch {
        // already removed by the test
      }
      await waitFor("all pods removed", () => kubelet.pods().length === 0, 60_000).catch((e: unknown) =>
        console.error(String(e)),
      );
      await kubelet.waitForTerminations();
    }
    await kubelet?.stop();
    await source?.stop();
  });

  const pod = (): Pod | undefined => kubelet.pods().find((p) => p.metadata?.name === `${POD}-${NODE}`);
  const terminated = (name: string) =>
    pod()?.status?.containerStatuses?.find((c) => c.name === name)?.state?.terminated;

  it("reports the log tail of failed FallbackToLogsOnError containers and nothing under File", async () => {
    // Each container sleeps before it exits, so its output is in the log when it exits.
    writeManifest(manifestDir, MANIFEST, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: POD },
      spec: {
        restartPolicy: "Never",
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: "fallback",
            image,
            terminationMessagePolicy: "FallbackToLogsOnError",
            command: ["sh", "-c", "echo one; echo two; sleep 1; echo three >&2; sleep 1; exit 3"],
          },
          {
            // 5 short lines, a 17 000-byte line (containerd writes it as a 16 KiB partial entry
            // and the rest), a line on stderr: the last 2048 bytes run across the split.
            name: "fallback-long",
            image,
            terminationMessagePolicy: "FallbackToLogsOnError",
            command: [
              "sh",
              "-c",
              [
                "for i in 1 2 3 4 5; do echo line-$i; done",
                "head -c 17000 /dev/zero | tr '\\000' x; echo END",
                "sleep 1",
                "echo bye >&2",
                "sleep 1",
                "exit 3",
              ].join("\n"),
            ],
          },
          {
            name: "file",
            image,
            command: ["sh", "-c", "echo one; echo two; echo three >&2; sleep 1; exit 3"],
          },
        ],
      },
    });

    await waitFor(
      "all containers terminated",
      () =>
        pod()?.status?.phase === "Failed" &&
        ["fallback", "fallback-long", "file"].every((n) => terminated(n) !== undefined),
      90_000,
    );

    expect(terminated("fallback")).toMatchObject({
      exitCode: 3,
      reason: "Error",
      message: "one\ntwo\nthree\n",
    });

    const long = terminated("fallback-long");
    expect(long).toMatchObject({ exitCode: 3, reason: "Error" });
    expect(long?.message).toBe(`${"x".repeat(2040)}END\nbye\n`);
    expect(Buffer.byteLength(long?.message ?? "")).toBe(2048);
    // The long line really was split into a partial entry in the CRI log.
    const p = pod();
    if (!p) throw new Error("pod vanished");
    const rawLog = readFileSync(path.join(podLogDirectory(p, podLogsDir), "fallback-long", "0.log"), "utf8");
    const tags = rawLog
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => l.split(" ")[2]);
    expect(tags).toContain("P");
    expect(tags.filter((t) => t === "F")).toHaveLength(7);

    const file = terminated("file");
    expect(file).toMatchObject({ exitCode: 3, reason: "Error" });
    expect(file?.message).toBeUndefined();

    unlinkSync(path.join(manifestDir, MANIFEST));
    await waitFor("pod removed", () => kubelet.pods().length === 0, 60_000);
    await kubelet.waitForTerminations();
    const { containers } = await client.runtime.listContainers({});
    expect(containers.filter((c) => c.labels["io.kubernetes.pod.name"] === `${POD}-${NODE}`)).toEqual([]);
  });
});
