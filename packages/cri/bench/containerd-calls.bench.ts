// Per-call overhead of the client against a real containerd 1.6 (the lab's, on its unix socket):
// Version, and ListContainers with 0 / 100 / 500 containers in the runtime.
// Needs root (the lab starts containerd with CNI): it throws, loudly, when not root.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type ContainerdLab, startContainerdLab } from "@worknode/testing";
import { afterAll, beforeAll, bench, describe } from "vitest";
import { CriClient, type DeepPartial, type PodSandboxConfig } from "../src/index.js";

if (process.getuid?.() !== 0) {
  throw new Error(
    "packages/cri/bench/containerd-calls.bench.ts needs root: it starts a private containerd with CNI " +
      "networking (startContainerdLab). Run it as root: npx vitest bench --run --project unit packages/cri/bench/containerd-calls.bench.ts",
  );
}

let lab: ContainerdLab;
let client: CriClient;
let podId = "";
let sandboxConfig: DeepPartial<PodSandboxConfig>;
let created = 0;
const logRoot = mkdtempSync(path.join(tmpdir(), "wncri-bench-"));

beforeAll(async () => {
  lab = await startContainerdLab({
    containerd: {
      labDir: "/tmp/wncri-bench",
      bridgeName: "wncri2",
      podSubnet: "10.79.0.0/16",
      streamPort: 10033,
    },
  });
  client = new CriClient({ endpoint: lab.endpoint });
  await client.connect();
  await client.image.pullImage({ image: { image: lab.busyboxImage } });
  const uid = randomUUID();
  sandboxConfig = {
    metadata: { name: "bench", uid, namespace: "default" },
    logDirectory: path.join(logRoot, uid),
  };
  podId = (await client.runtime.runPodSandbox({ config: sandboxConfig })).podSandboxId;
}, 600_000);

afterAll(async () => {
  client?.close();
  await lab?.stop();
  rmSync(logRoot, { recursive: true, force: true });
});

/** Creates (without starting) containers until the runtime holds `total` of them. */
async function ensureContainers(total: number): Promise<void> {
  for (; created < total; created++) {
    await client.runtime.createContainer({
      podSandboxId: podId,
      sandboxConfig,
      config: {
        metadata: { name: `c${created}` },
        image: { image: lab.busyboxImage },
        command: ["sleep", "3600"],
        labels: { "io.kubernetes.container.name": `c${created}`, "io.kubernetes.pod.name": "bench" },
        annotations: { "io.kubernetes.container.hash": created.toString(16) },
        logPath: `c${created}.log`,
      },
    });
  }
  const { containers } = await client.runtime.listContainers({});
  if (containers.length !== total)
    throw new Error(`expected ${total} containers, runtime lists ${containers.length}`);
}

describe("CRI call round trip, containerd 1.6 over its unix socket", () => {
  bench("version", async () => {
    await client.runtime.version({});
  });
});

describe("listContainers, 0 / 100 / 500 containers in the runtime", () => {
  for (const n of [0, 100, 500]) {
    // tinybench's setup hook runs before the warm-up and before the measured run (vitest bench does
    // not run describe-level beforeAll hooks); ensureContainers only creates what is missing.
    bench(
      `listContainers (${n})`,
      async () => {
        await client.runtime.listContainers({});
      },
      { setup: () => ensureContainers(n) },
    );
  }
});
