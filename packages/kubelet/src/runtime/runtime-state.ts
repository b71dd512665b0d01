/**
 * Reading the runtime back into the kubelet's view: every sandbox and container
 * that carries the kubelet's pod labels, grouped by pod UID
 * ({@link RuntimeInspector.relist}), and the full {@link RuntimePodStatus} of
 * one pod with IPs, exit codes and termination messages
 * ({@link RuntimeInspector.podStatus}). Objects without the kubelet's labels are
 * never reported, so nothing else on the runtime is ever touched.
 *
 * @module
 */
import { type FileHandle, open } from "node:fs/promises";
import {
  type CriClient,
  type Container as CriContainer,
  type ContainerStatus as CriContainerStatus,
  isCriStatus,
  type PodSandbox,
  PodSandboxState,
} from "@worknode/cri";
import {
  ANNOTATION_TERMINATION_MESSAGE_PATH,
  ANNOTATION_TERMINATION_MESSAGE_POLICY,
  LABEL_POD_UID,
  parseContainerLabels,
  parsePodLabels,
} from "../labels.js";
import type { ContainerRuntimeStatus, RuntimePodStatus, SandboxStatus } from "../runtime-status.js";
import {
  criLogContent,
  MAX_TERMINATION_MESSAGE_BYTES,
  MAX_TERMINATION_MESSAGE_LOG_BYTES,
  MAX_TERMINATION_MESSAGE_LOG_LINES,
  terminationMessageFromCriLog,
  terminationMessageFromLogsNeeded,
} from "../termination-message.js";
import { containerStateName, toContainerRuntimeStatus, toSandboxStatus } from "./cri-adapter.js";

/** The kubelet-labelled runtime objects of one pod, as listed. */
export interface RuntimePodListing {
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  readonly sandboxes: readonly PodSandbox[];
  readonly containers: readonly CriContainer[];
}

/**
 * A compact fingerprint of a pod's runtime objects (IDs and states): the PLEG
 * compares fingerprints between relists to find pods that changed. Equal to
 * {@link runtimeStatusFingerprint} of a status read while the runtime held the
 * same objects in the same states; `""` for a pod with nothing on the runtime.
 */
export function listingFingerprint(p: RuntimePodListing | undefined): string {
  if (!p) return "";
  const parts: string[] = [];
  for (const s of p.sandboxes)
    parts.push(`s:${s.id}:${s.state === PodSandboxState.SANDBOX_READY ? "ready" : "notready"}`);
  for (const c of p.containers) parts.push(`c:${c.id}:${containerStateName(c.state)}`);
  return parts.sort().join(",");
}

/**
 * The {@link listingFingerprint} of the objects in a pod's runtime status: when
 * it equals the fingerprint of the PLEG's latest listing, whoever read the
 * status has already seen everything the relist saw.
 */
export function runtimeStatusFingerprint(rs: RuntimePodStatus | undefined): string {
  if (!rs) return "";
  const parts: string[] = [];
  for (const s of rs.sandboxes) parts.push(`s:${s.id}:${s.state}`);
  for (const c of rs.containers) parts.push(`c:${c.id}:${c.state}`);
  return parts.sort().join(",");
}

/** Groups listed sandboxes and containers by the pod UID in their labels (unlabelled ones are dropped). */
export function groupByPod(
  sandboxes: readonly PodSandbox[],
  containers: readonly CriContainer[],
): Map<string, RuntimePodListing> {
  const out = new Map<
    string,
    { uid: string; name: string; namespace: string; sandboxes: PodSandbox[]; containers: CriContainer[] }
  >();
  const entry = (uid: string, name: string, namespace: string) => {
    let e = out.get(uid);
    if (!e) {
      e = { uid, name, namespace, sandboxes: [], containers: [] };
      out.set(uid, e);
    }
    return e;
  };
  for (const s of sandboxes) {
    const info = parsePodLabels(s.labels);
    if (!info) continue;
    entry(info.podUid, info.podName, info.podNamespace).sandboxes.push(s);
  }
  for (const c of containers) {
    const info = parseContainerLabels(c.labels);
    if (!info) continue;
    entry(info.podUid, info.podName, info.podNamespace).containers.push(c);
  }
  return out;
}

/**
 * The last `max` bytes of a file (kubelet's `tail.ReadAtMost`: a termination
 * message longer than the limit keeps its end).
 */
export async function readFileTail(file: string, max: number): Promise<string> {
  const fh = await open(file, "r");
  try {
    const { size } = await fh.stat();
    const len = Math.min(size, max);
    return (await readAt(fh, size - len, len)).toString("utf8");
  } finally {
    await fh.close();
  }
}

/** Up to `length` bytes of `fh` from `position` (fewer only at the end of the file). */
async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/** Block size and byte limit of the backwards read of a container log. */
const LOG_TAIL_BLOCK = 16 * 1024;
const LOG_TAIL_MAX_READ = 1024 * 1024;

/**
 * The termination message from a CRI container log file (kubelet's
 * `readLastStringFromContainerLogs`): reads the file backwards in blocks until
 * it holds more than 80 lines, enough content for the 2048-byte message, 1 MiB,
 * or the whole file, then takes the message with
 * {@link terminationMessageFromCriLog}. `""` when the log cannot be read.
 */
export async function readTerminationMessageFromLog(file: string): Promise<string> {
  const fh = await open(file, "r").catch(() => undefined);
  if (!fh) return "";
  try {
    const { size } = await fh.stat();
    const chunks: Buffer[] = [];
    let start = size;
    let newlines = 0;
    while (start > 0) {
      const len = Math.min(LOG_TAIL_BLOCK, start);
      start -= len;
      const block = await readAt(fh, start, len);
      chunks.unshift(block);
      for (let i = block.indexOf(0x0a); i >= 0; i = block.indexOf(0x0a, i + 1)) newlines++;
      if (newlines > MAX_TERMINATION_MESSAGE_LOG_LINES || size - start >= LOG_TAIL_MAX_READ) break;
      const content = criLogContent(Buffer.concat(chunks), { fromStart: start === 0 });
      if (content.length >= MAX_TERMINATION_MESSAGE_LOG_BYTES) break;
    }
    return terminationMessageFromCriLog(Buffer.concat(chunks), { fromStart: start === 0 });
  } catch {
    return "";
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Lists and inspects the runtime through CRI. */
export class RuntimeInspector {
  /** Exited containers never change: their status is kept by ID. */
  private readonly exitedCache = new Map<string, { status: CriContainerStatus; message: string }>();

  constructor(private readonly client: CriClient) {}

  /** Every kubelet-labelled sandbox and container, grouped by pod UID. */
  async relist(): Promise<Map<string, RuntimePodListing>> {
    const [pods, ctrs] = await Promise.all([
      this.client.runtime.listPodSandbox({}),
      this.client.runtime.listContainers({}),
    ]);
    const grouped = groupByPod(pods.items, ctrs.containers);
    const live = new Set(ctrs.containers.map((c) => c.id));
    for (const id of this.exitedCache.keys()) if (!live.has(id)) this.exitedCache.delete(id);
    return grouped;
  }

  /** The kubelet-labelled objects of one pod. */
  async listPod(uid: string): Promise<RuntimePodListing | undefined> {
    const selector = { labelSelector: { [LABEL_POD_UID]: uid } };
    const [pods, ctrs] = await Promise.all([
      this.client.runtime.listPodSandbox({ filter: selector }),
      this.client.runtime.listContainers({ filter: selector }),
    ]);
    return groupByPod(pods.items, ctrs.containers).get(uid);
  }

  /** The full runtime status of a pod (kubelet's `GetPodStatus`). */
  async podStatus(uid: string, name: string, namespace: string): Promise<RuntimePodStatus> {
    const listing = await this.listPod(uid);
    if (!listing) return { uid, name, namespace, sandboxes: [], containers: [], ips: [] };
    // One round trip for all of them: the status calls of a pod are independent.
    const [sandboxes, found] = await Promise.all([
      Promise.all(
        listing.sandboxes.map(async (s): Promise<SandboxStatus> => {
          const st = await this.client.runtime
            .podSandboxStatus({ podSandboxId: s.id })
            .then((r) => r.status)
            .catch((e: unknown) => {
              if (isCriStatus(e, "NOT_FOUND")) return undefined;
              throw e;
            });
          return toSandboxStatus(s, st);
        }),
      ),
      Promise.all(
        listing.containers.map(async (c) => {
          const got = await this.containerStatus(c);
          return toContainerRuntimeStatus(c, got?.status, got?.message);
        }),
      ),
    ]);
    const containers = found.filter((c): c is ContainerRuntimeStatus => c !== undefined);
    const newest = [...sandboxes].sort((a, b) => b.createdAt - a.createdAt)[0];
    const ips = newest?.state === "ready" && newest.ip ? [newest.ip, ...(newest.additionalIps ?? [])] : [];
    return { uid, name, namespace, sandboxes, containers, ips };
  }

  private async containerStatus(
    c: CriContainer,
  ): Promise<{ status: CriContainerStatus; message: string } | undefined> {
    const cached = this.exitedCache.get(c.id);
    if (cached) return cached;
    const status = await this.client.runtime
      .containerStatus({ containerId: c.id })
      .then((r) => r.status)
      .catch((e: unknown) => {
        if (isCriStatus(e, "NOT_FOUND")) return undefined;
        throw e;
      });
    if (!status) return undefined;
    let message = "";
    if (status.finishedAt > 0n) {
      message = await this.terminationMessage(status);
      this.exitedCache.set(c.id, { status, message });
    }
    return { status, message };
  }

  /**
   * The termination message of an exited container (kubelet's
   * `getTerminationMessage`): the file mounted at its termination message path
   * or, under `FallbackToLogsOnError` after a failure with nothing in the file,
   * the tail of its log.
   */
  private async terminationMessage(status: CriContainerStatus): Promise<string> {
    const fileMessage = await this.terminationMessageFile(status);
    const fromLogs = terminationMessageFromLogsNeeded({
      policy: status.annotations[ANNOTATION_TERMINATION_MESSAGE_POLICY] ?? "",
      exitCode: status.exitCode,
      reason: status.reason,
      fileMessage,
    });
    if (!fromLogs || !status.logPath) return fileMessage;
    return readTerminationMessageFromLog(status.logPath);
  }

  /** Reads the termination message file mounted at the container's termination message path. */
  private async terminationMessageFile(status: CriContainerStatus): Promise<string> {
    const path = status.annotations[ANNOTATION_TERMINATION_MESSAGE_PATH];
    if (!path) return "";
    const mount = status.mounts.find((m) => m.containerPath === path);
    if (!mount) return "";
    return readFileTail(mount.hostPath, MAX_TERMINATION_MESSAGE_BYTES).catch(() => "");
  }
}
