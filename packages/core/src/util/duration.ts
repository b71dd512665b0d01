/**
 * Go-style duration strings, as Kubernetes flags and config files write them
 * (`1s`, `30s`, `1m30s`, `500ms`, `2h`).
 *
 * @module
 */
import { ConfigError } from "./errors.js";

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go duration string into milliseconds.
 * @throws ConfigError naming `what` when the text is not a valid non-negative duration
 */
export function parseDuration(text: string, what = "duration"): number {
  const t = text.trim();
  if (t === "0") return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < t.length) {
    re.lastIndex = pos;
    const m = re.exec(t);
    if (!m) break;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = re.lastIndex;
  }
  if (pos !== t.length || t.length === 0) {
    throw new ConfigError(`${what}: "${text}" is not a duration (examples: 500ms, 1s, 1m30s)`);
  }
  return total;
}

/** Formats milliseconds as a Go duration string (`1m30s`, `500ms`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms < 1000) return `${ms}ms`;
  let rest = ms;
  let out = "";
  const h = Math.floor(rest / 3_600_000);
  if (h) out += `${h}h`;
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  if (m) out += `${m}m`;
  rest -= m * 60_000;
  if (rest) out += `${rest / 1000}s`;
  return out;
}
