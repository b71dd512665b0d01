// Native sidecar containers (KEP-753) with the standalone kubelet against real containerd (the
// lab's private containerd, CNI bridge, loopback registry): a static pod with a sidecar init
// container (restartPolicy Always), a regular init container that checks the sidecar already runs,
// and an app container. The sidecar keeps running beside the app, is restarted after it exits
// (under the pod's restartPolicy Never) while the app keeps running, and on deletion it is stopped
// only after the app container stopped.
import { mkdtempSync, readFileSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ManifestDirSource, type Pod } from "@worknode/core";
import { CriClient } from "@worknode/cri";
import { type ContainerdLab, startContainerdLab } from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Kubelet, newCrashLoopBackoffWith, type PodStatus } from "../src/index.js";
import { waitFor, writeManifest } from "./system-helpers.js";

const LAB_CONTAINERD = {
  labDir: "/tmp/wnsdc-lab",
  bridgeName: "wnsdc0",
  podSubnet: "10.83.0.0/16",
  streamPort: 10073,
};
const NODE = "wnsdc-node";
const POD = "sdc-sidecar";

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

function condition(s: PodStatus | undefined, type: string): string | undefined {
  return s?.conditions?.find((c) => c.type === type)?.status;
}

describe("standalone kubelet: native sidecar containers", () => {
  let kubelet: Kubelet;
  let source: ManifestDirSource;
  let manifestDir: string;
  let outDir: string;

  beforeAll(async () => {
    manifestDir = tempDir("wnsdc-manifests-");
    outDir = tempDir("wnsdc-out-");
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
      rootDir: tempDir("wnsdc-root-"),
      podLogsDir: tempDir("wnsdc-logs-"),
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
      try {
        unlinkSync(path.join(manifestDir, "sidecar.yaml"));
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

  const events = (): string[] =>
    readFileSync(path.join(outDir, "events.log"), "utf8")
      .split("\n")
      .filter((l) => l.length > 0);
  const pod = (): Pod | undefined => kubelet.pods().find((p) => p.metadata?.name === `${POD}-${NODE}`);
  const initStatus = (name: string) => pod()?.status?.initContainerStatuses?.find((c) => c.name === name);
  const appStatus = () => pod()?.status?.containerStatuses?.find((c) => c.name === "app");

  it("starts the sidecar before the next init container, restarts it, and stops it after the app", async () => {
    writeManifest(manifestDir, "sidecar.yaml", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: POD },
      spec: {
        restartPolicy: "Never",
        terminationGracePeriodSeconds: 15,
        volumes: [
          { name: "shared", emptyDir: {} },
          { name: "out", hostPath: { path: outDir, type: "Directory" } },
        ],
        initContainers: [
          {
            name: "side",
            image,
            restartPolicy: "Always",
            volumeMounts: [
              { name: "shared", mountPath: "/shared" },
              { name: "out", mountPath: "/out" },
            ],
            // Marks itself up in the shared emptyDir; exits 3 once when /shared/exit-now appears;
            // on SIGTERM records when it was asked to stop.
            command: [
              "sh",
              "-c",
              [
                "trap 'echo side-term $(date +%s) >> /out/events.log; exit 0' TERM",
                "echo side-start $(date +%s) >> /out/events.log",
                "touch /shared/side-up",
                "while true; do",
                "  if [ -f /shared/exit-now ]; then rm /shared/exit-now; echo side-exit >> /out/events.log; exit 3; fi",
                "  sleep 1",
                "done",
              ].join("\n"),
            ],
          },
          {
            name: "check",
            image,
            volumeMounts: [
              { name: "shared", mountPath: "/shared" },
              { name: "out", mountPath: "/out" },
            ],
            command: ["sh", "-c", "test -f /shared/side-up && echo init-saw-side >> /out/events.log"],
          },
        ],
        containers: [
          {
            name: "app",
            image,
            volumeMounts: [{ name: "out", mountPath: "/out" }],
            // Takes 2 s to stop: a sidecar stopped at the same time would record its SIGTERM first.
            command: [
              "sh",
              "-c",
              [
                "trap 'echo app-term $(date +%s) >> /out/events.log; sleep 2; echo app-exit $(date +%s) >> /out/events.log; exit 0' TERM",
                "echo app-start >> /out/events.log",
                "while true; do sleep 1; done",
              ].join("\n"),
            ],
          },
        ],
      },
    });

    // All running: sidecar started and ready, regular init container completed, app running.
    await waitFor(
      "sidecar, init and app up",
      () => {
        const st = pod()?.status;
        return (
          st?.phase === "Running" &&
          initStatus("side")?.state?.running !== undefined &&
          initStatus("check")?.state?.terminated?.exitCode === 0 &&
          appStatus()?.state?.running !== undefined &&
          condition(st, "Ready") === "True"
        );
      },
      90_000,
    );
    expect(initStatus("side")).toMatchObject({ started: true, ready: true, restartCount: 0 });
    expect(initStatus("check")).toMatchObject({
      ready: true,
      state: { terminated: { reason: "Completed" } },
    });
    expect(condition(pod()?.status, "Initialized")).toBe("True");
    expect(condition(pod()?.status, "ContainersReady")).toBe("True");
    // The order: the sidecar ran before the regular init container, which ran before the app.
    await waitFor("app start recorded", () => events().includes("app-start"));
    const first = events();
    const sideStart = first.findIndex((l) => l.startsWith("side-start"));
    expect(sideStart).toBe(0);
    expect(first.indexOf("init-saw-side")).toBeGreaterThan(sideStart);
    expect(first.indexOf("app-start")).toBeGreaterThan(first.indexOf("init-saw-side"));

    // The sidecar exits (code 3): restarted despite restartPolicy Never, the app keeps running.
    const appId = appStatus()?.containerID ?? "";
    const sideId = (initStatus("side")?.containerID ?? "").replace("containerd://", "");
    expect(appId).not.toBe("");
    const r = await client.runtime.execSync({
      containerId: sideId,
      cmd: ["touch", "/shared/exit-now"],
      timeout: 10,
    });
    expect(r.exitCode).toBe(0);
    await waitFor(
      "sidecar restarted",
      () => {
        const s = initStatus("side");
        return (
          s?.restartCount === 1 &&
          s.state?.running !== undefined &&
          s.containerID !== `containerd://${sideId}`
        );
      },
      30_000,
    );
    expect(initStatus("side")?.lastState?.terminated).toMatchObject({ exitCode: 3 });
    expect(appStatus()).toMatchObject({ containerID: appId, restartCount: 0 });
    expect(appStatus()?.state?.running).toBeDefined();
    expect(pod()?.status?.phase).toBe("Running");
    expect(initStatus("check")?.restartCount).toBe(0);
    const afterRestart = events();
    expect(afterRestart.filter((l) => l.startsWith("side-start"))).toHaveLength(2);
    expect(afterRestart.filter((l) => l === "init-saw-side")).toHaveLength(1);
    expect(afterRestart.filter((l) => l === "app-start")).toHaveLength(1);
    await waitFor("pod ready again", () => condition(pod()?.status, "Ready") === "True", 30_000);

    // Deleting the pod stops the app first (it takes 2 s), then the sidecar.
    unlinkSync(path.join(manifestDir, "sidecar.yaml"));
    await waitFor("pod removed", () => kubelet.pods().length === 0, 60_000);
    await kubelet.waitForTerminations();
    const last = events();
    const appTerm = last.findIndex((l) => l.startsWith("app-term"));
    const appExit = last.findIndex((l) => l.startsWith("app-exit"));
    const sideTerm = last.findIndex((l) => l.startsWith("side-term"));
    expect(appTerm).toBeGreaterThan(-1);
    expect(appExit).toBeGreaterThan(appTerm);
    expect(sideTerm).toBeGreaterThan(appExit);
    const secs = (line: string | undefined) => Number(line?.split(" ")[1]);
    expect(secs(last[sideTerm])).toBeGreaterThanOrEqual(secs(last[appTerm]) + 2);
    const { containers } = await client.runtime.listContainers({});
    expect(containers.filter((c) => c.labels["io.kubernetes.pod.name"] === `${POD}-${NODE}`)).toEqual([]);
  });
});
