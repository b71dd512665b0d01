// Container log rotation against real containerd (the lab's private containerd 1.6): a container
// that writes a lot of output with a small containerLogMaxSize gets its log rotated to
// <log>.<timestamp> (CRI ReopenContainerLog), older rotated files gzipped, the oldest deleted
// beyond containerLogMaxFiles, no line lost; the kubelet's /containerLogs still reads the current
// file and /metrics shows kubelet_pod_start_duration_seconds.
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { ManifestDirSource, type Pod } from "@worknode/core";
import { CriClient } from "@worknode/cri";
import { type ContainerdLab, startContainerdLab } from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import {
  containerLogPathFromStatus,
  Kubelet,
  KubeletMetrics,
  KubeletServer,
  logRotationPolicy,
  parseCriLogLine,
} from "../src/index.js";
import { waitFor } from "./system-helpers.js";

const LAB_CONTAINERD = {
  labDir: "/tmp/wnk5-lab",
  bridgeName: "wnk5b0",
  podSubnet: "10.90.0.0/16",
  streamPort: 10057,
};
const NODE = "wnk5-logs-node";
const MAX_SIZE = "32Ki";
const MAX_FILES = 3;

let lab: ContainerdLab;
let client: CriClient;
let manifestDir: string;
let rootDir: string;
let logsDir: string;
let kubelet: Kubelet;
let source: ManifestDirSource;
let server: KubeletServer;
const metrics = new KubeletMetrics({ nodeName: NODE });

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(url), { rejectUnauthorized: false, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

function podByName(name: string): Pod | undefined {
  return kubelet.pods().find((p) => p.metadata?.name === `${name}-${NODE}`);
}

/** The line numbers ("line N") of CRI log text, in order. */
function lineNumbers(criLog: string): number[] {
  const out: number[] = [];
  for (const raw of criLog.split("\n")) {
    if (!raw) continue;
    const e = parseCriLogLine(Buffer.from(raw));
    const m = /^line (\d+)$/.exec(e?.content.toString() ?? "");
    if (m) out.push(Number(m[1]));
  }
  return out;
}

beforeAll(async () => {
  lab = await startContainerdLab({ log: (l) => console.error(`[lab] ${l}`), containerd: LAB_CONTAINERD });
  client = new CriClient({ endpoint: lab.endpoint });
  manifestDir = mkdtempSync(path.join(tmpdir(), "wnk5-logs-manifests-"));
  rootDir = mkdtempSync(path.join(tmpdir(), "wnk5-logs-root-"));
  logsDir = mkdtempSync(path.join(tmpdir(), "wnk5-logs-pods-"));
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
    podLogsDir: logsDir,
    resolvConf: "",
    relistPeriodMs: 500,
    containerLogRotation: logRotationPolicy(MAX_SIZE, MAX_FILES),
    containerLogMonitorIntervalMs: 500,
    onPodStarted: metrics.observePodStart,
  });
  server = new KubeletServer({
    nodeName: NODE,
    server: { host: "127.0.0.1", port: 0, certDir: path.join(rootDir, "pki") },
    provider: {
      pods: () => kubelet.pods(),
      containerLogPath: (namespace, name, container, previous) => {
        const pod = kubelet
          .pods()
          .find((p) => p.metadata?.namespace === namespace && p.metadata?.name === name);
        return pod ? containerLogPathFromStatus(pod, container, previous, logsDir) : undefined;
      },
      healthy: () => kubelet.plegHealth().healthy,
      registries: [metrics.registry],
    },
  });
  await server.start();
  await source.start();
  await kubelet.start();
});

afterAll(async () => {
  if (kubelet && manifestDir) {
    for (const f of readdirSync(manifestDir)) unlinkSync(path.join(manifestDir, f));
    await waitFor("pods removed", () => (kubelet.pods().length === 0 ? true : undefined)).catch(
      (e: unknown) => console.error(String(e)),
    );
    await kubelet.waitForTerminations();
  }
  await kubelet?.stop();
  await source?.stop();
  await server?.stop();
  client?.close();
  await lab?.stop();
  for (const d of [manifestDir, rootDir, logsDir]) if (d) rmSync(d, { recursive: true, force: true });
});

describe("container log rotation", () => {
  it("rotates a chatty container's log, gzips older files, keeps containerLogMaxFiles and loses no line", async () => {
    const tmp = path.join(manifestDir, ".chatty.tmp");
    writeFileSync(
      tmp,
      stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "chatty" },
        spec: {
          terminationGracePeriodSeconds: 0,
          containers: [
            {
              name: "app",
              image: lab.busyboxImage,
              // ~400 numbered lines (~20 KiB of CRI log) per second, forever.
              command: [
                "sh",
                "-c",
                'i=0; while true; do seq $((i+1)) $((i+400)) | sed "s/^/line /"; i=$((i+400)); sleep 1; done',
              ],
            },
          ],
        },
      }),
    );
    renameSync(tmp, path.join(manifestDir, "chatty.yaml"));
    const pod = await waitFor("chatty running", () => {
      const p = podByName("chatty");
      return p?.status?.containerStatuses?.[0]?.state?.running ? p : undefined;
    });
    const dir = path.join(logsDir, `default_chatty-${NODE}_${pod.metadata?.uid}`, "app");
    const rotatedFiles = () => readdirSync(dir).filter((n) => n.startsWith("0.log."));
    // Enough rotations that the oldest had to be deleted: at least one gzipped and one plain file.
    await waitFor(
      "rotations with a compressed file",
      () => {
        const r = rotatedFiles();
        return r.length === MAX_FILES - 1 && r.some((n) => n.endsWith(".gz")) ? true : undefined;
      },
      90_000,
    );
    // Let a few more rotations happen: the file budget holds.
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const names = readdirSync(dir).filter((n) => !n.endsWith(".tmp"));
      expect(names.length, names.join(" ")).toBeLessThanOrEqual(MAX_FILES);
      expect(names).toContain("0.log");
    }

    // Freeze a consistent view: read the newest rotated file and the current file back to back.
    let plain: string[] = [];
    let gz: string[] = [];
    let current = "";
    let older = "";
    let newest = "";
    await waitFor("a settled directory", () => {
      const r = rotatedFiles().sort();
      plain = r.filter((n) => !n.endsWith(".gz") && !n.endsWith(".tmp"));
      gz = r.filter((n) => n.endsWith(".gz"));
      if (plain.length !== 1 || gz.length !== r.length - 1) return undefined;
      older = gunzipSync(readFileSync(path.join(dir, gz[gz.length - 1] as string))).toString();
      newest = readFileSync(path.join(dir, plain[0] as string), "utf8");
      current = readFileSync(path.join(dir, "0.log"), "utf8");
      // Still the same files (no rotation in between)?
      return rotatedFiles().sort().join() === r.join() ? true : undefined;
    });
    // The timestamp names sort by time: the plain file is the newest rotated one.
    expect(plain[0]?.replace(/^0\.log\./, "") ?? "").toMatch(/^\d{8}-\d{6}$/);
    for (const g of gz) expect(g < (plain[0] as string)).toBe(true);

    // No line lost or duplicated across the compressed, rotated and current files.
    const seq = [...lineNumbers(older), ...lineNumbers(newest), ...lineNumbers(current)];
    expect(seq.length).toBeGreaterThan(400);
    for (let i = 1; i < seq.length; i++) expect(seq[i], `at ${i}`).toBe((seq[i - 1] as number) + 1);
    expect(Buffer.byteLength(newest)).toBeGreaterThanOrEqual(32 * 1024);

    // /containerLogs reads the current file: it starts right after the newest rotated file. Observed
    // between two listings of the directory that agree (no rotation in between) and once the
    // current file has output (right after a rotation it is empty until the next burst).
    const base = `https://127.0.0.1:${server.serverAddress?.port}`;
    const seen = await waitFor("/containerLogs output between two rotations", async () => {
      const names = rotatedFiles().sort();
      const newestRotated = names.filter((n) => !n.endsWith(".gz") && !n.endsWith(".tmp")).at(-1);
      if (!newestRotated) return undefined;
      const rotatedText = readFileSync(path.join(dir, newestRotated), "utf8");
      const res = await get(`${base}/containerLogs/default/chatty-${NODE}/app`);
      if (rotatedFiles().sort().join() !== names.join()) return undefined;
      const served = res.body
        .split("\n")
        .filter(Boolean)
        .map((l) => Number(/^line (\d+)$/.exec(l)?.[1]));
      if (served.length === 0) return undefined;
      return { status: res.status, served, lastRotated: lineNumbers(rotatedText).at(-1) };
    });
    expect(seen.status).toBe(200);
    expect(seen.served[0]).toBe((seen.lastRotated as number) + 1);
    for (let i = 1; i < seen.served.length; i++)
      expect(seen.served[i]).toBe((seen.served[i - 1] as number) + 1);
  });

  it("serves kubelet_pod_start_duration_seconds and kubelet_pod_start_sli_duration_seconds on /metrics", async () => {
    const base = `https://127.0.0.1:${server.serverAddress?.port}`;
    const res = await get(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.body).toContain("# TYPE kubelet_pod_start_duration_seconds histogram");
    expect(res.body).toContain("kubelet_pod_start_duration_seconds_count 1");
    expect(res.body).toContain('kubelet_pod_start_duration_seconds_bucket{le="3600"} 1');
    expect(res.body).toContain("# TYPE kubelet_pod_start_sli_duration_seconds histogram");
    expect(res.body).toContain("kubelet_pod_start_sli_duration_seconds_count 1");
  });
});
