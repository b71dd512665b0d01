/**
 * Flag parsing with Kubernetes conventions (`--flag=value` or `--flag value`,
 * durations as Go strings), built on `node:util` parseArgs: unknown flags and
 * bad values become one-line {@link CliUsageError}s.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError, parseDuration } from "@worknode/core";

/** A usage error: unknown flag, missing or malformed value. The CLI exits with status 2. */
export class CliUsageError extends ConfigError {}

/** The kinds of value a flag takes. */
export type FlagKind = "string" | "boolean" | "duration" | "int";

/** One flag of a command. */
export interface FlagSpec {
  readonly kind: FlagKind;
  /** Help text, one line. */
  readonly help: string;
  /** Default as the user would type it (durations as `20s`). */
  readonly default?: string | boolean;
}

/** Parsed value of a flag by kind: durations in milliseconds. */
export type FlagValue<K extends FlagKind> = K extends "boolean"
  ? boolean
  : K extends "string"
    ? string
    : number;

/** Parsed flags of a spec table. */
export type ParsedFlags<S extends Record<string, FlagSpec>> = {
  -readonly [N in keyof S]: S[N]["default"] extends string | boolean
    ? FlagValue<S[N]["kind"]>
    : FlagValue<S[N]["kind"]> | undefined;
};

/** Parses `argv` against `spec` for the command named `command` (used in messages). */
export function parseFlags<S extends Record<string, FlagSpec>>(
  command: string,
  spec: S,
  argv: readonly string[],
): { flags: ParsedFlags<S>; positionals: string[]; help: boolean } {
  const options: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } };
  for (const [name, f] of Object.entries(spec))
    options[name] = { type: f.kind === "boolean" ? "boolean" : "string" };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new CliUsageError(`${explainParseError(err)} (see "${command} --help")`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const flags: Record<string, string | boolean | number | undefined> = {};
  for (const [name, f] of Object.entries(spec)) {
    const raw = values[name] ?? f.default;
    flags[name] = raw === undefined ? undefined : convert(name, f.kind, raw);
  }
  return { flags: flags as ParsedFlags<S>, positionals: parsed.positionals, help: values.help === true };
}

function convert(name: string, kind: FlagKind, raw: string | boolean): string | boolean | number {
  if (kind === "boolean" || typeof raw === "boolean") return raw;
  if (kind === "duration") {
    try {
      return parseDuration(raw, `--${name}`);
    } catch (err) {
      throw new CliUsageError((err as Error).message);
    }
  }
  if (kind === "int") {
    if (!/^\d+$/.test(raw)) throw new CliUsageError(`--${name}: "${raw}" is not a whole number`);
    return Number(raw);
  }
  if (raw === "") throw new CliUsageError(`--${name} needs a value`);
  return raw;
}

function explainParseError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const flag = /'(-[^']*)'/.exec(e.message ?? "")?.[1];
  switch (e.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown flag ${flag ?? ""}`.trim();
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return `flag ${flag ?? ""} needs a value`.replace("  ", " ");
    default:
      return (e.message ?? String(err)).split("\n")[0] ?? "bad arguments";
  }
}

/** Renders a help screen for a command. */
export function renderHelp(usage: string, summary: string, spec: Record<string, FlagSpec>): string {
  const rows = Object.entries(spec).map(([name, f]) => {
    const arg =
      f.kind === "boolean" ? "" : f.kind === "duration" ? " duration" : f.kind === "int" ? " int" : " string";
    const def = f.default !== undefined && f.default !== "" ? ` (default ${JSON.stringify(f.default)})` : "";
    return [`  --${name}${arg}`, `${f.help}${def}`] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length), 10) + 2;
  return [
    summary,
    "",
    `Usage: ${usage}`,
    "",
    "Flags:",
    ...rows.map(([l, r]) => l.padEnd(width) + r),
    "  --help".padEnd(width) + "Show this help",
    "",
  ].join("\n");
}
