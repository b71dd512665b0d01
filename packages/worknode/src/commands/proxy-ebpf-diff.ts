/**
 * `worknode proxy plan` in ebpf mode, the pure part: the map operations of a sync as
 * readable lines (`frontend 10.96.0.10:80/TCP -> group 3 (2 backends)`, `backend 3/0 ->
 * 10.244.0.11:8080`), grouped by map, in the shared unified-diff form of `plan --diff`
 * ({@link formatDiffs}): `+` for a key written, `-` for a key deleted.
 *
 * @module
 */
import type { BackendAddress, Frontend, FrontendConflict, MapOp } from "@worknode/proxy-ebpf";
import { type ChainDiff, type DiffLine, formatDiffs } from "./proxy-diff.js";

/** The diff "table" of the ebpf maps, and the names of its two maps in a diff. */
export const EBPF_DIFF_TABLE = "map";
/** The frontend map (`wn_services`) in a diff. */
export const EBPF_FRONTENDS = "frontends";
/** The backend-slot map (`wn_backends`) in a diff. */
export const EBPF_BACKENDS = "backend slots";

function hostPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** `10.96.0.10:80/TCP`, `[fd00::10]:80/UDP`. */
export function formatFrontend(f: Frontend): string {
  return `${hostPort(f.ip, f.port)}/${f.protocol}`;
}

/** `10.244.0.11:8080`, `[fd00::11]:8080`. */
export function formatBackend(b: BackendAddress): string {
  return hostPort(b.ip, b.port);
}

/**
 * One map operation as a line without its `+`/`-`:
 * `frontend 10.96.0.10:80/TCP -> group 3 (2 backends)` (with `, ClientIP affinity 10800s`
 * when set; `-> no backends (refused)` for a service without endpoints),
 * `backend 3/0 -> 10.244.0.11:8080`, and for deletions `frontend …` / `backend 3/1`.
 */
export function describeMapOp(op: MapOp): string {
  switch (op.op) {
    case "putFrontend": {
      const { id, count, affinityTimeout } = op.value;
      const target =
        count === 0 ? "no backends (refused)" : `group ${id} (${count} backend${count === 1 ? "" : "s"})`;
      const affinity = affinityTimeout > 0 ? `, ClientIP affinity ${affinityTimeout}s` : "";
      return `frontend ${formatFrontend(op.frontend)} -> ${target}${affinity}`;
    }
    case "putBackend":
      return `backend ${op.id}/${op.slot} -> ${formatBackend(op.backend)}`;
    case "deleteFrontend":
      return `frontend ${formatFrontend(op.frontend)}`;
    case "deleteBackend":
      return `backend ${op.id}/${op.slot}`;
  }
}

/**
 * The operations as per-map diffs: frontends first, then backend slots, each in the
 * operations' order (writes `+`, deletions `-`); maps without operations are left out.
 */
export function ebpfOpsAsDiffs(ops: readonly MapOp[]): ChainDiff[] {
  const frontends: DiffLine[] = [];
  const backends: DiffLine[] = [];
  for (const op of ops) {
    const line: DiffLine = {
      op: op.op === "putFrontend" || op.op === "putBackend" ? "+" : "-",
      text: describeMapOp(op),
    };
    if (op.op === "putFrontend" || op.op === "deleteFrontend") frontends.push(line);
    else backends.push(line);
  }
  const out: ChainDiff[] = [];
  if (frontends.length > 0)
    out.push({ table: EBPF_DIFF_TABLE, chain: EBPF_FRONTENDS, status: "changed", lines: frontends });
  if (backends.length > 0)
    out.push({ table: EBPF_DIFF_TABLE, chain: EBPF_BACKENDS, status: "changed", lines: backends });
  return out;
}

/**
 * Formats what a full sync would write to the maps pinned in `mapsDir` unified-style
 * ({@link formatDiffs}): `@@ map frontends @@` / `@@ map backend slots @@` and their
 * `+`/`-` lines, then `# ebpf: N maps differ: A keys to add, R to remove` (or
 * `# ebpf: no differences`).
 */
export function formatEbpfDiff(ops: readonly MapOp[], mapsDir: string): string {
  return formatDiffs(ebpfOpsAsDiffs(ops), "ebpf", {
    nodeSide: `node (ebpf maps pinned in ${mapsDir})`,
    added: "",
    removed: "",
    object: "map",
    line: "key",
  });
}

/** A frontend two service ports ask for, as one line. */
export function describeConflict(c: FrontendConflict): string {
  return `two service ports use frontend ${formatFrontend(c.frontend)}: ${c.owner} keeps it, ${c.refused} is refused it`;
}
