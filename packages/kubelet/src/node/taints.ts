/**
 * kubelet's `--register-with-taints` syntax: `key=value:Effect` or `key:Effect`,
 * comma-separated, effects `NoSchedule`, `PreferNoSchedule` and `NoExecute`.
 *
 * @module
 */
import type { Node } from "@worknode/core";
import { ConfigError } from "@worknode/core";
import { labelValueErrors, qualifiedNameErrors } from "./labels.js";

/** A taint in wire form. */
export type Taint = NonNullable<NonNullable<Node["spec"]>["taints"]>[number];

/** Taint effects. */
export const TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"] as const;

/** One of {@link TAINT_EFFECTS}. */
export type TaintEffect = (typeof TAINT_EFFECTS)[number];

/** A taint specification could not be parsed. */
export class TaintParseError extends ConfigError {
  /** The offending specification. */
  readonly spec: string;

  constructor(spec: string, reason: string) {
    super(`invalid taint ${JSON.stringify(spec)}: ${reason}`);
    this.spec = spec;
  }
}

/**
 * Parses one taint, `key=value:Effect` or `key:Effect`.
 *
 * @throws TaintParseError when the syntax, key, value or effect is invalid
 */
export function parseTaint(spec: string): Taint {
  const colon = spec.lastIndexOf(":");
  if (colon < 0) throw new TaintParseError(spec, "expected key=value:Effect or key:Effect");
  const kv = spec.slice(0, colon);
  const effect = spec.slice(colon + 1);
  if (!(TAINT_EFFECTS as readonly string[]).includes(effect)) {
    throw new TaintParseError(spec, `effect must be one of ${TAINT_EFFECTS.join(", ")}`);
  }
  const eq = kv.indexOf("=");
  const key = eq < 0 ? kv : kv.slice(0, eq);
  const value = eq < 0 ? undefined : kv.slice(eq + 1);
  if (!key) throw new TaintParseError(spec, "the key is empty");
  const errors = [...qualifiedNameErrors(key), ...(value === undefined ? [] : labelValueErrors(value))];
  if (errors.length > 0) throw new TaintParseError(spec, errors.join("; "));
  return value === undefined || value === "" ? { key, effect } : { key, value, effect };
}

/**
 * Parses a comma-separated list of taints (the `--register-with-taints` flag value).
 *
 * @throws TaintParseError for an invalid entry or a repeated key and effect
 */
export function parseTaints(text: string): Taint[] {
  const taints: Taint[] = [];
  for (const raw of text.split(",")) {
    const spec = raw.trim();
    if (!spec) continue;
    const taint = parseTaint(spec);
    if (taints.some((t) => t.key === taint.key && t.effect === taint.effect)) {
      throw new TaintParseError(spec, `duplicate taint key ${taint.key} with effect ${taint.effect}`);
    }
    taints.push(taint);
  }
  return taints;
}

/** Formats a taint back in `key=value:Effect` syntax. */
export function formatTaint(taint: Taint): string {
  return `${taint.key}${taint.value ? `=${taint.value}` : ""}:${taint.effect}`;
}
