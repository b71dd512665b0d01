/**
 * The container spec hash stored on every container (annotation
 * `io.kubernetes.container.hash`), used to detect that a running container no
 * longer matches its spec.
 *
 * kubelet hashes `json.Marshal(container)` with 32-bit FNV-1a and writes it in hex
 * (recent kubelets hash only name and image, since that is all the API lets change
 * in a running pod). worknode hashes the *canonical* JSON of the whole container
 * spec — object keys sorted, `undefined`, `null`, empty strings, empty arrays and
 * empty objects dropped, so that a field left out and the same field set to its
 * empty value hash alike — with 32-bit FNV-1a over the UTF-8 bytes, written as
 * lower-case hex without leading zeros. The values differ from kubelet's; they are
 * stable across worknode versions as long as this function is.
 *
 * @module
 */
import type { Container } from "./pod-spec.js";

function prune(value: unknown): unknown {
  if (value === null || value === undefined || value === "") return undefined;
  if (Array.isArray(value)) {
    const items = value.map((v) => prune(v) ?? null);
    return items.length ? items : undefined;
  }
  if (typeof value === "object") {
    const out: Record<string, unknown> = {};
    let any = false;
    for (const key of Object.keys(value).sort()) {
      const v = prune((value as Record<string, unknown>)[key]);
      if (v !== undefined) {
        out[key] = v;
        any = true;
      }
    }
    return any ? out : undefined;
  }
  return value;
}

/** Canonical JSON of a value: sorted keys, empty values dropped. */
export function canonicalSpecJson(value: unknown): string {
  return JSON.stringify(prune(value) ?? {});
}

const encoder = new TextEncoder();

/** 32-bit FNV-1a of a string's UTF-8 bytes. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const b of encoder.encode(text)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

const hashCache = new WeakMap<object, string>();

/**
 * The hash of a container spec, lower-case hex (see the module notes).
 * Results are cached per container object (pod specs are treated as immutable
 * data; a changed spec arrives as a new object).
 */
export function hashContainer(container: Container): string {
  const hit = hashCache.get(container);
  if (hit !== undefined) return hit;
  const h = fnv1a32(canonicalSpecJson(container)).toString(16);
  hashCache.set(container, h);
  return h;
}
