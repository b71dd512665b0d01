import type { Pod } from "@worknode/core";
import { bench, describe } from "vitest";
import { hashContainer } from "../src/container-hash.js";
import { newCrashLoopBackoff } from "../src/crash-loop.js";
import { computePodActions } from "../src/pod-actions.js";
import type { Container, PodStatus } from "../src/pod-spec.js";
import { generatePodStatus } from "../src/pod-status.js";
import type { RuntimePodStatus } from "../src/runtime-status.js";
import { mergeStatus } from "../src/status-merge.js";

// The per-relist cost of the decision layer: 110 pods (kubelet's default maxPods) × 3 containers,
// each running with a readiness probe, one init container done, resources set.
const T0 = 1_700_000_000_000;
const pods: Pod[] = [];
const runtimes: RuntimePodStatus[] = [];
for (let i = 0; i < 110; i++) {
  const uid = `uid-${i}`;
  const mk = (name: string): Container => ({
    name,
    image: `registry.local/${name}:1.0`,
    ports: [{ containerPort: 8080 }],
    readinessProbe: { httpGet: { path: "/healthz", port: 8080 } },
    resources: { requests: { cpu: "100m", memory: "64Mi" }, limits: { cpu: "200m", memory: "128Mi" } },
    env: [{ name: "A", value: "b" }],
  });
  const containers = [mk("app"), mk("sidecar"), mk("metrics")];
  const init: Container = { name: "init", image: "registry.local/init:1.0", command: ["/bin/true"] };
  pods.push({
    metadata: { name: `pod-${i}`, namespace: "default", uid, labels: { app: `a${i}` } },
    spec: { initContainers: [init], containers, restartPolicy: "Always" },
  });
  runtimes.push({
    uid,
    name: `pod-${i}`,
    namespace: "default",
    sandboxes: [
      { id: `sb-${i}`, attempt: 0, state: "ready", createdAt: T0, ip: `10.0.${i >> 8}.${i & 255}` },
    ],
    containers: [
      {
        id: `i-${i}`,
        name: "init",
        state: "exited",
        createdAt: T0 + 1,
        startedAt: T0 + 1,
        finishedAt: T0 + 2,
        exitCode: 0,
        restartCount: 0,
        containerSpecHash: hashContainer(init),
        image: init.image ?? "",
        imageRef: "sha256:init",
      },
      ...containers.map((c, j) => ({
        id: `c-${i}-${j}`,
        name: c.name,
        state: "running" as const,
        createdAt: T0 + 10 + j,
        startedAt: T0 + 10 + j,
        restartCount: 0,
        containerSpecHash: hashContainer(c),
        image: c.image ?? "",
        imageRef: `sha256:${c.name}`,
      })),
    ],
    ips: [`10.0.${i >> 8}.${i & 255}`],
  });
}
const probeResults = new Map([
  ["app", { ready: true }],
  ["sidecar", { ready: true }],
  ["metrics", { ready: false }],
]);
const previous: PodStatus[] = pods.map((p, i) =>
  generatePodStatus(p, runtimes[i] as RuntimePodStatus, { now: T0, nodeIPs: ["192.168.1.10"], probeResults }),
);

describe("decision layer, one relist of 110 pods × 3 containers", () => {
  const backoff = newCrashLoopBackoff();
  bench("computePodActions", () => {
    for (let i = 0; i < pods.length; i++)
      computePodActions(pods[i] as Pod, runtimes[i] as RuntimePodStatus, { now: T0 + 60_000, backoff });
  });
  bench("generatePodStatus + mergeStatus", () => {
    for (let i = 0; i < pods.length; i++) {
      const next = generatePodStatus(pods[i] as Pod, runtimes[i] as RuntimePodStatus, {
        now: T0 + 60_000,
        nodeIPs: ["192.168.1.10"],
        probeResults,
        previous: previous[i],
      });
      mergeStatus(pods[i] as Pod, previous[i], next);
    }
  });
  bench("both (full decision pass)", () => {
    for (let i = 0; i < pods.length; i++) {
      computePodActions(pods[i] as Pod, runtimes[i] as RuntimePodStatus, { now: T0 + 60_000, backoff });
      const next = generatePodStatus(pods[i] as Pod, runtimes[i] as RuntimePodStatus, {
        now: T0 + 60_000,
        nodeIPs: ["192.168.1.10"],
        probeResults,
        previous: previous[i],
      });
      mergeStatus(pods[i] as Pod, previous[i], next);
    }
  });
});
