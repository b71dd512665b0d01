// The CRI client against a real runtime: the lab's private containerd 1.6 (CRI + CNI bridge, images
// pulled from the loopback registry), or the runtime named by $WORKNODE_CRI_ENDPOINT.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { isIPv4 } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { type ContainerdLab, startContainerdLab } from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runtimeServiceRpcs } from "../src/generated/services.js";
import {
  type ContainerConfig,
  type ContainerEventResponse,
  ContainerEventType,
  ContainerState,
  CriCanceledError,
  CriClient,
  CriDeadlineExceededError,
  type CriError,
  CriNotFoundError,
  CriUnimplementedError,
  type DeepPartial,
  GrpcStatus,
  isCriStatus,
  NamespaceMode,
  type PodSandboxConfig,
  PodSandboxState,
} from "../src/index.js";
import { resolveCriClientOptions } from "../src/options.js";
import { CriTransport } from "../src/transport.js";

/** Own bridge, subnet, lab directory and stream port, so this suite does not collide with other labs. */
const LAB_CONTAINERD = {
  labDir: "/tmp/wncri-life",
  bridgeName: "wncri0",
  podSubnet: "10.77.0.0/16",
  streamPort: 10031,
};

let lab: ContainerdLab;
let client: CriClient;
let logRoot: string;

beforeAll(async () => {
  lab = await startContainerdLab({ log: (l) => console.error(`[lab] ${l}`), containerd: LAB_CONTAINERD });
  client = new CriClient({ endpoint: lab.endpoint });
  logRoot = mkdtempSync(path.join(tmpdir(), "wncri-logs-"));
});

afterAll(async () => {
  client?.close();
  await lab?.stop();
  if (logRoot) rmSync(logRoot, { recursive: true, force: true });
});

/** True for the runtime the lab starts by default (Debian's containerd 1.6). */
function isContainerd16(): boolean {
  const v = client.runtimeVersion;
  return v?.runtimeName === "containerd" && /^1\.6\./.test(v.runtimeVersion);
}

describe("CriClient against a real CRI runtime", () => {
  it("negotiates the API version on connect", async () => {
    const v = await client.connect();
    expect(v.runtimeApiVersion).toBe("v1");
    expect(v.runtimeName).not.toBe("");
    expect(client.runtimeVersion).toEqual(v);
    if (lab.containerd) expect(v.runtimeName).toBe("containerd");
  });

  it("reports runtime status with RuntimeReady and NetworkReady", async () => {
    const { status } = await client.runtime.status({});
    const conditions = Object.fromEntries((status?.conditions ?? []).map((c) => [c.type, c.status]));
    expect(conditions).toMatchObject({ RuntimeReady: true, NetworkReady: true });
  });

  describe("full pod lifecycle with a non-host-network pod", () => {
    const uid = randomUUID();
    const podName = `cri-life-${uid.slice(0, 8)}`;
    let sandboxConfig: DeepPartial<PodSandboxConfig>;
    let podId = "";
    let ctrId = "";
    let podIp = "";
    const events: ContainerEventResponse[] = [];
    let eventsError: unknown;
    let eventsDone: Promise<void> = Promise.resolve();
    const eventsAbort = new AbortController();

    afterAll(async () => {
      eventsAbort.abort();
      await eventsDone;
      // Best effort if a test failed half-way; the lab teardown removes everything anyway.
      if (ctrId) await client.runtime.removeContainer({ containerId: ctrId }).catch(() => {});
      if (podId) {
        await client.runtime.stopPodSandbox({ podSandboxId: podId }).catch(() => {});
        await client.runtime.removePodSandbox({ podSandboxId: podId }).catch(() => {});
      }
    });

    it("removes the image, then pulls it from the registry", async () => {
      const image = { image: lab.busyboxImage };
      await client.image.removeImage({ image });
      expect((await client.image.imageStatus({ image })).image).toBeUndefined();

      const logDirectory = path.join(logRoot, `default_${podName}_${uid}`);
      sandboxConfig = {
        metadata: { name: podName, uid, namespace: "default", attempt: 0 },
        hostname: podName,
        logDirectory,
        labels: { "io.kubernetes.pod.uid": uid, "worknode.test": "cri-life" },
        // network POD (the default, 0): a CNI-managed pod network namespace, not hostNetwork.
        linux: { securityContext: { namespaceOptions: { network: NamespaceMode.POD } } },
      };
      const pulled = await client.image.pullImage({ image, sandboxConfig });
      expect(pulled.imageRef).toMatch(/^sha256:[0-9a-f]{64}$/);

      const status = await client.image.imageStatus({ image });
      expect(status.image?.id).toBe(pulled.imageRef);
      expect(status.image?.repoTags).toContain(lab.busyboxImage);
      expect(status.image?.size).toBeGreaterThan(0n);
      const { images } = await client.image.listImages({});
      expect(images.map((i) => i.id)).toContain(pulled.imageRef);
      const fs = await client.image.imageFsInfo({});
      expect(fs.imageFilesystems.length).toBeGreaterThan(0);
    });

    it("runs the pod sandbox with an IP from CNI", async () => {
      // Watch container events from here on (runtimes without evented PLEG answer Unimplemented).
      eventsDone = (async () => {
        try {
          for await (const e of client.runtime.getContainerEvents({}, { signal: eventsAbort.signal }))
            events.push(e);
        } catch (e) {
          eventsError = e;
        }
      })();

      podId = (await client.runtime.runPodSandbox({ config: sandboxConfig })).podSandboxId;
      expect(podId).toMatch(/^[0-9a-f]{64}$/);
      const { status } = await client.runtime.podSandboxStatus({ podSandboxId: podId });
      expect(status?.state).toBe(PodSandboxState.SANDBOX_READY);
      expect(status?.metadata?.uid).toBe(uid);
      podIp = status?.network?.ip ?? "";
      expect(isIPv4(podIp)).toBe(true);
      if (lab.containerd) expect(podIp.startsWith("10.77.")).toBe(true);
    });

    it("creates and starts busybox httpd, reachable from the host at the pod IP", async () => {
      const config: DeepPartial<ContainerConfig> = {
        metadata: { name: "web", attempt: 0 },
        image: { image: lab.busyboxImage },
        command: ["httpd"],
        args: ["-f", "-p", "8080", "-h", "/www"],
        workingDir: "/",
        envs: [{ key: "GREETING", value: Buffer.from("hi from env") }],
        labels: { "io.kubernetes.container.name": "web", "worknode.test": "cri-life" },
        logPath: "web/0.log",
      };
      ctrId = (await client.runtime.createContainer({ podSandboxId: podId, config, sandboxConfig }))
        .containerId;
      expect(ctrId).toMatch(/^[0-9a-f]{64}$/);
      await client.runtime.startContainer({ containerId: ctrId });

      const { status } = await client.runtime.containerStatus({ containerId: ctrId });
      expect(status?.state).toBe(ContainerState.CONTAINER_RUNNING);
      expect(status?.startedAt).toBeGreaterThan(0n);

      const body = await fetchWithRetry(`http://${podIp}:8080/`, 15_000);
      expect(body).toContain("busybox");
    });

    it("runs a command with ExecSync and returns stdout, stderr and the exit code", async () => {
      const res = await client.runtime.execSync({
        containerId: ctrId,
        cmd: ["sh", "-c", 'echo "sum=$((6*7)) $GREETING"; echo oops >&2; exit 3'],
        timeout: 10,
      });
      expect(Buffer.from(res.stdout).toString()).toBe("sum=42 hi from env\n");
      expect(Buffer.from(res.stderr).toString()).toBe("oops\n");
      expect(res.exitCode).toBe(3);
    });

    it("cancels a running call through its AbortSignal", async () => {
      const ac = new AbortController();
      const call = client.runtime.execSync(
        { containerId: ctrId, cmd: ["sleep", "5"], timeout: 10 },
        { signal: ac.signal },
      );
      setTimeout(() => ac.abort(), 200);
      const err = await call.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CriCanceledError);
      expect((err as CriError).grpcCode).toBe(GrpcStatus.CANCELLED);
      expect((err as CriError).rpc).toBe("ExecSync");
    });

    it("gives DeadlineExceeded when the per-call deadline passes", async () => {
      const err = await client.runtime
        .execSync({ containerId: ctrId, cmd: ["sleep", "5"], timeout: 10 }, { timeoutMs: 300 })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CriDeadlineExceededError);
      expect(isCriStatus(err, "DEADLINE_EXCEEDED")).toBe(true);
    });

    it("returns the streaming URL of Exec and PortForward", async () => {
      const exec = await client.runtime.exec({ containerId: ctrId, cmd: ["sh"], stdin: true, stdout: true });
      expect(exec.url).toMatch(/^https?:\/\/[^/]+\/exec\//);
      const pf = await client.runtime.portForward({ podSandboxId: podId, port: [8080] });
      expect(pf.url).toMatch(/^https?:\/\/[^/]+\/portforward\//);
    });

    it("lists the pod and its container, and their stats", async () => {
      const { containers } = await client.runtime.listContainers({ filter: { podSandboxId: podId } });
      expect(containers.map((c) => [c.id, c.state, c.metadata?.name])).toEqual([
        [ctrId, ContainerState.CONTAINER_RUNNING, "web"],
      ]);
      const { items } = await client.runtime.listPodSandbox({
        filter: { labelSelector: { "io.kubernetes.pod.uid": uid } },
      });
      expect(items.map((p) => p.id)).toEqual([podId]);

      const { stats } = await client.runtime.containerStats({ containerId: ctrId });
      expect(stats?.attributes?.id).toBe(ctrId);
      expect(stats?.attributes?.metadata?.name).toBe("web");
      expect(stats?.memory?.workingSetBytes?.value ?? 0n).toBeGreaterThan(0n);
      expect(stats?.cpu?.timestamp ?? 0n).toBeGreaterThan(0n);

      const list = await client.runtime.listContainerStats({ filter: { podSandboxId: podId } });
      expect(list.stats.map((s) => s.attributes?.id)).toEqual([ctrId]);
    });

    it("stops and removes everything, leaving nothing of the pod in the runtime", async () => {
      // busybox httpd is PID 1 without a SIGTERM handler: the runtime kills it after the 1 s grace period.
      await client.runtime.stopContainer({ containerId: ctrId, timeout: 1 });
      const stopped = await client.runtime.containerStatus({ containerId: ctrId });
      expect(stopped.status?.state).toBe(ContainerState.CONTAINER_EXITED);
      await client.runtime.removeContainer({ containerId: ctrId });
      const removedCtr = ctrId;
      ctrId = "";
      await client.runtime.stopPodSandbox({ podSandboxId: podId });
      await client.runtime.removePodSandbox({ podSandboxId: podId });
      const removedPod = podId;
      podId = "";

      const pods = await client.runtime.listPodSandbox({
        filter: { labelSelector: { "io.kubernetes.pod.uid": uid } },
      });
      expect(pods.items).toEqual([]);
      const all = await client.runtime.listContainers({});
      expect(all.containers.filter((c) => c.podSandboxId === removedPod || c.id === removedCtr)).toEqual([]);
      const byLabel = await client.runtime.listContainers({
        filter: { labelSelector: { "worknode.test": "cri-life" } },
      });
      expect(byLabel.containers).toEqual([]);

      const ctrErr = await client.runtime
        .containerStatus({ containerId: removedCtr })
        .catch((e: unknown) => e);
      expect(ctrErr).toBeInstanceOf(CriNotFoundError);
      expect((ctrErr as CriError).rpc).toBe("ContainerStatus");
      const podErr = await client.runtime
        .podSandboxStatus({ podSandboxId: removedPod })
        .catch((e: unknown) => e);
      expect(podErr).toBeInstanceOf(CriNotFoundError);
    });

    it("streamed container events, or answered GetContainerEvents with Unimplemented", async () => {
      eventsAbort.abort();
      await eventsDone;
      if (isContainerd16()) {
        // containerd 1.6 has no evented PLEG.
        expect(eventsError).toBeInstanceOf(CriUnimplementedError);
        expect((eventsError as CriError).rpc).toBe("GetContainerEvents");
      } else {
        expect(eventsError).toBeInstanceOf(CriCanceledError);
        const types = events.filter((e) => e.containerId.length > 0).map((e) => e.containerEventType);
        expect(types).toContain(ContainerEventType.CONTAINER_CREATED_EVENT);
        expect(types).toContain(ContainerEventType.CONTAINER_STARTED_EVENT);
      }
    });
  });

  it("gives a typed NotFound error for PullImage of an image the registry does not have", async () => {
    const ref = `${lab.registry.host}/worknode-no-such-image:${randomUUID().slice(0, 8)}`;
    const err = await client.image.pullImage({ image: { image: ref } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriNotFoundError);
    expect(isCriStatus(err, "NOT_FOUND")).toBe(true);
    expect((err as CriError).rpc).toBe("PullImage");
    expect((err as CriError).service).toBe("ImageService");
    expect((err as CriError).details).toContain("not found");
    // containerd 1.6.20 answers NOT_FOUND itself; older releases answered UNKNOWN with the same text.
    if (isContainerd16()) expect((err as CriError).grpcCode).toBe(GrpcStatus.NOT_FOUND);
  });

  it("gives typed Unimplemented errors for RPCs newer than the runtime", async () => {
    if (isContainerd16()) {
      const newer = [
        () => client.runtime.listMetricDescriptors({}),
        () => client.runtime.listPodSandboxMetrics({}),
        () => client.runtime.runtimeConfig({}),
        () => client.runtime.updatePodSandboxResources({ podSandboxId: "x" }),
        () => client.runtime.checkpointContainer({ containerId: "x" }),
      ];
      for (const call of newer) {
        const err = await call().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(CriUnimplementedError);
        expect((err as CriError).grpcCode).toBe(GrpcStatus.UNIMPLEMENTED);
      }
      const streamErr = await first(client.image.streamImages({})).catch((e: unknown) => e);
      expect(streamErr).toBeInstanceOf(CriUnimplementedError);
      expect((streamErr as CriError).rpc).toBe("StreamImages");
    }
    // On any runtime: a method that is not in the proto at all.
    const transport = new CriTransport(resolveCriClientOptions({ endpoint: lab.endpoint }));
    try {
      const err = await transport
        .unary(
          {
            ...runtimeServiceRpcs.version,
            name: "WorknodeNoSuchRpc",
            path: "/runtime.v1.RuntimeService/WorknodeNoSuchRpc",
          },
          {},
        )
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CriUnimplementedError);
      expect((err as CriError).rpc).toBe("WorknodeNoSuchRpc");
    } finally {
      transport.close();
    }
  });

  it("rejects calls after close with CriCanceledError", async () => {
    const other = new CriClient({ endpoint: lab.endpoint });
    expect((await other.runtime.version({})).runtimeApiVersion).toBe("v1");
    other.close();
    await expect(other.runtime.version({})).rejects.toBeInstanceOf(CriCanceledError);
  });
});

async function first<T>(it: AsyncIterable<T>): Promise<T | undefined> {
  for await (const x of it) return x;
  return undefined;
}

async function fetchWithRetry(url: string, withinMs: number): Promise<string> {
  const until = Date.now() + withinMs;
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      return await res.text();
    } catch (e) {
      if (Date.now() > until) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
