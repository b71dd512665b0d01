/**
 * Map operations as a `bpftool batch` script: one `map update` / `map delete` line per
 * operation, in the given order. Pure.
 *
 * @module
 */
import { WorknodeError } from "@worknode/core";
import {
  BACKENDS_MAP,
  encodeBackendKey,
  encodeBackendValue,
  encodeServiceKey,
  encodeServiceValue,
  SERVICES_MAP,
  toHexWords,
} from "./layout.js";
import type { MapOp } from "./state.js";

/** A pin path that `bpftool batch` cannot carry (it splits lines on blanks and quotes). */
export class UnsafePinPathError extends WorknodeError {
  constructor(readonly path: string) {
    super(
      "EBPF_UNSAFE_PIN_PATH",
      `pin path ${JSON.stringify(path)} must be absolute, without blanks or quotes`,
    );
  }
}

/** Checks that `path` can appear in a batch line unquoted. */
export function checkPinPath(path: string): string {
  if (!path.startsWith("/") || /[\s"'\\#]/.test(path)) throw new UnsafePinPathError(path);
  return path;
}

/**
 * Renders `ops` for `bpftool batch file -`, with the maps pinned in `mapsDir`.
 * @returns one line per operation (joined with newlines, ending in one)
 */
export function renderBatch(ops: readonly MapOp[], mapsDir: string): string {
  const dir = checkPinPath(mapsDir);
  const services = `${dir}/${SERVICES_MAP}`;
  const backends = `${dir}/${BACKENDS_MAP}`;
  const lines: string[] = new Array(ops.length);
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as MapOp;
    switch (op.op) {
      case "putBackend":
        lines[i] =
          `map update pinned ${backends} key hex ${toHexWords(encodeBackendKey(op.id, op.slot))} value hex ${toHexWords(encodeBackendValue(op.backend))}`;
        break;
      case "putFrontend":
        lines[i] =
          `map update pinned ${services} key hex ${toHexWords(encodeServiceKey(op.frontend))} value hex ${toHexWords(encodeServiceValue(op.value))}`;
        break;
      case "deleteFrontend":
        lines[i] = `map delete pinned ${services} key hex ${toHexWords(encodeServiceKey(op.frontend))}`;
        break;
      case "deleteBackend":
        lines[i] = `map delete pinned ${backends} key hex ${toHexWords(encodeBackendKey(op.id, op.slot))}`;
        break;
    }
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}
