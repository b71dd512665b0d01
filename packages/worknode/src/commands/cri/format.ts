/**
 * crictl-style output of CRI objects: aligned tables with crictl's columns,
 * human durations and sizes as crictl prints them (go-units).
 *
 * @module
 */
import { type Container, ContainerState, type Image, type PodSandbox, PodSandboxState } from "@worknode/cri";

/** Formats rows as columns separated by at least three spaces (crictl's tabwriter look). */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3)))
      .join("")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}

/** go-units `HumanDuration`, which crictl prints before " ago". */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return "Less than a second";
  if (seconds === 1) return "1 second";
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes === 1) return "About a minute";
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(ms / 3_600_000);
  if (hours === 1) return "About an hour";
  const h = ms / 3_600_000;
  if (h < 48) return `${Math.floor(h)} hours`;
  if (h < 24 * 7 * 2) return `${Math.floor(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.floor(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24 / 30)} months`;
  return `${Math.floor(h / 24 / 365)} years`;
}

/** go-units `HumanSizeWithPrecision(size, 3)`: decimal units, three significant digits (`2.07MB`). */
export function humanSize(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
  let size = bytes;
  let i = 0;
  while (size >= 1000 && i < units.length - 1) {
    size /= 1000;
    i++;
  }
  return `${Number(size.toPrecision(3))}${units[i]}`;
}

/** "2 minutes ago" from a CRI nanosecond timestamp. */
export function createdAgo(createdAtNs: bigint, nowMs: number): string {
  return `${humanDuration(Math.max(0, nowMs - Number(createdAtNs / 1_000_000n)))} ago`;
}

/** crictl's 13-character short id (without a `sha256:` prefix). */
export function shortId(id: string): string {
  return id.replace(/^sha256:/, "").slice(0, 13);
}

const CONTAINER_STATE: Readonly<Record<number, string>> = {
  [ContainerState.CONTAINER_CREATED]: "Created",
  [ContainerState.CONTAINER_RUNNING]: "Running",
  [ContainerState.CONTAINER_EXITED]: "Exited",
  [ContainerState.CONTAINER_UNKNOWN]: "Unknown",
};

const SANDBOX_STATE: Readonly<Record<number, string>> = {
  [PodSandboxState.SANDBOX_READY]: "Ready",
  [PodSandboxState.SANDBOX_NOTREADY]: "NotReady",
};

/** `crictl ps` table. */
export function formatContainers(
  containers: readonly Container[],
  sandboxes: readonly PodSandbox[],
  nowMs: number,
): string {
  const podName = new Map(sandboxes.map((s) => [s.id, s.metadata?.name ?? ""]));
  const rows = [...containers]
    .sort((a, b) => Number(b.createdAt - a.createdAt))
    .map((c) => [
      shortId(c.id),
      shortId(c.imageRef || c.image?.image || ""),
      createdAgo(c.createdAt, nowMs),
      CONTAINER_STATE[c.state] ?? "Unknown",
      c.metadata?.name ?? "",
      String(c.metadata?.attempt ?? 0),
      shortId(c.podSandboxId),
      podName.get(c.podSandboxId) ?? c.labels["io.kubernetes.pod.name"] ?? "unknown",
    ]);
  return formatTable(["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"], rows);
}

/** `crictl pods` table. */
export function formatSandboxes(sandboxes: readonly PodSandbox[], nowMs: number): string {
  const rows = [...sandboxes]
    .sort((a, b) => Number(b.createdAt - a.createdAt))
    .map((s) => [
      shortId(s.id),
      createdAgo(s.createdAt, nowMs),
      SANDBOX_STATE[s.state] ?? "NotReady",
      s.metadata?.name ?? "",
      s.metadata?.namespace ?? "",
      String(s.metadata?.attempt ?? 0),
      s.runtimeHandler || "(default)",
    ]);
  return formatTable(["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"], rows);
}

/** Splits `repo:tag` (a `:` after the last `/`), as crictl does for its IMAGE / TAG columns. */
export function splitRepoTag(ref: string): { repo: string; tag: string } {
  const slash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  return colon > slash
    ? { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) }
    : { repo: ref, tag: "<none>" };
}

/** `crictl images` table (one row per tag). */
export function formatImages(images: readonly Image[]): string {
  const rows: string[][] = [];
  for (const img of images) {
    const tags = img.repoTags.length > 0 ? img.repoTags : ["<none>:<none>"];
    for (const t of tags) {
      const { repo, tag } = splitRepoTag(t);
      rows.push([repo, tag, shortId(img.id), humanSize(Number(img.size))]);
    }
  }
  rows.sort((a, b) => a[0]!.localeCompare(b[0]!) || a[1]!.localeCompare(b[1]!));
  return formatTable(["IMAGE", "TAG", "IMAGE ID", "SIZE"], rows);
}
