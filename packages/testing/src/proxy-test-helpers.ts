/**
 * Helpers for the tests of service-proxy backends: a scripted {@link CommandRunner}, a recording
 * wrapper around a real one, golden files, and a set of live Services and EndpointSlices fed
 * through a {@link ServiceChangeTracker} into a proxier.
 *
 * @module
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type ChangeSet,
  type CommandOutput,
  type CommandRunner,
  type EndpointSlice,
  type ObjectEventHandler,
  type Proxier,
  type Service,
  type ServiceChangeTracker,
  type ServiceSnapshot,
  WorknodeError,
} from "@worknode/core";
import { pollUntil } from "./exec.js";
import { commitAll } from "./service-objects.js";

/** One call a {@link FakeCommandRunner} received. */
export interface RecordedCommand {
  readonly command: string;
  readonly args: readonly string[];
  /** What was written to the program's stdin, when anything was. */
  readonly stdin?: string;
}

/**
 * A scripted {@link CommandRunner} that runs nothing: it records every call, and `respond`
 * decides each call's output (default: success with empty output).
 */
export class FakeCommandRunner implements CommandRunner {
  /** Every call so far, in order. */
  readonly calls: RecordedCommand[] = [];
  /** The output of a call; fields left out default to exit code 0 and empty output. */
  respond: (call: RecordedCommand) => Partial<CommandOutput> | undefined = () => undefined;

  /** Records the call and answers with {@link FakeCommandRunner.respond}. */
  async exec(command: string, args: readonly string[], stdin?: string): Promise<CommandOutput> {
    const call: RecordedCommand =
      stdin !== undefined ? { command, args: [...args], stdin } : { command, args: [...args] };
    this.calls.push(call);
    const r = this.respond(call) ?? {};
    return { code: r.code ?? 0, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  }

  /** Calls of one program. */
  of(command: string): RecordedCommand[] {
    return this.calls.filter((c) => c.command === command);
  }

  /** Forgets the calls so far. */
  reset(): void {
    this.calls.length = 0;
  }
}

/** A `conntrack` call a {@link RecordingCommandRunner} saw: its arguments and exit code (-2: suppressed). */
export interface ConntrackCall {
  readonly args: readonly string[];
  readonly code: number;
}

/**
 * Wraps a real {@link CommandRunner} (typically one running in a test's node namespace): records
 * the stdin payloads of every program and the `conntrack` calls with their exit codes, and does
 * not run `conntrack` calls naming an address in {@link RecordingCommandRunner.suppressConntrackFor}
 * (a control group for conntrack-cleanup tests; they are recorded with code -2).
 */
export class RecordingCommandRunner implements CommandRunner {
  /** `conntrack` calls, in order. */
  readonly conntrackCalls: ConntrackCall[] = [];
  /** Stdin payloads, in order, with the program they went to. */
  readonly inputs: { readonly command: string; readonly stdin: string }[] = [];
  /** `conntrack` calls with one of these arguments (addresses) are recorded but not run. */
  readonly suppressConntrackFor = new Set<string>();

  /** @param inner the runner that really runs the commands */
  constructor(private readonly inner: CommandRunner) {}

  /** Runs the command through the inner runner, recording it; suppressed `conntrack` calls succeed without running. */
  async exec(command: string, args: readonly string[], stdin?: string): Promise<CommandOutput> {
    if (command === "conntrack" && args.some((a) => this.suppressConntrackFor.has(a))) {
      this.conntrackCalls.push({ args, code: -2 });
      return { code: 0, stdout: "", stderr: "suppressed by the test" };
    }
    if (stdin !== undefined) this.inputs.push({ command, stdin });
    const out = await this.inner.exec(command, args, stdin);
    if (command === "conntrack") this.conntrackCalls.push({ args, code: out.code });
    return out;
  }

  /** Stdin payloads that went to one program. */
  inputsOf(command: string): string[] {
    return this.inputs.filter((i) => i.command === command).map((i) => i.stdin);
  }
}

/** The assertion {@link goldenFiles} needs: vitest's or jest's `expect`. */
export type StringExpect = (actual: string) => { toBe(expected: string): void };

/** Thrown by a {@link goldenFiles} check when the golden file does not exist. */
export class GoldenFileMissingError extends WorknodeError {
  constructor(file: string) {
    super("GOLDEN_MISSING", `golden file ${file} is missing (run with UPDATE_GOLDEN=1 to create it)`);
  }
}

/**
 * A golden-file check over the files of one directory: `check(name, actual)` expects `actual`
 * to equal the file `<dir>/<name>` through the given `expect`. With `UPDATE_GOLDEN=1` in the
 * environment the file is (re)written instead.
 *
 * @param dir the directory, as a path or a `file:` URL (e.g. `new URL("./golden/", import.meta.url)`)
 * @param expect the test framework's `expect`
 * @throws GoldenFileMissingError from the check when the file is missing
 */
export function goldenFiles(dir: string | URL, expect: StringExpect): (name: string, actual: string) => void {
  const base = typeof dir === "string" ? dir : fileURLToPath(dir);
  return (name, actual) => {
    const file = join(base, name);
    if (process.env.UPDATE_GOLDEN === "1") {
      writeFileSync(file, actual);
      return;
    }
    if (!existsSync(file)) throw new GoldenFileMissingError(file);
    expect(actual).toBe(readFileSync(file, "utf8"));
  };
}

/** Result of a commit of {@link LiveServiceObjects}. */
export interface LiveCommit {
  readonly snapshot: ServiceSnapshot;
  readonly changes: ChangeSet;
}

/**
 * Services and EndpointSlices by test-chosen key, fed through one {@link ServiceChangeTracker}:
 * the state a proxy test changes step by step.
 */
export class LiveServiceObjects {
  /** The tracker every object went through. */
  readonly tracker: ServiceChangeTracker;
  /** The first commit, of the initial objects. */
  readonly initial: LiveCommit;
  private readonly services: Record<string, Service>;
  private readonly slices: Record<string, EndpointSlice>;

  /** Feeds the initial objects into a fresh tracker for `nodeName` and commits them ({@link LiveServiceObjects.initial}). */
  constructor(
    services: Readonly<Record<string, Service>>,
    slices: Readonly<Record<string, EndpointSlice>>,
    nodeName: string,
  ) {
    this.services = { ...services };
    this.slices = { ...slices };
    const c = commitAll(Object.values(this.services), Object.values(this.slices), nodeName);
    this.tracker = c.tracker;
    this.initial = { snapshot: c.snapshot, changes: c.changes };
  }

  /**
   * Adds, updates (same key) or deletes (`undefined`) objects, commits the tracker and, with a
   * proxier, syncs it partially. Returns the commit.
   */
  async apply(
    services: Readonly<Record<string, Service | undefined>>,
    slices: Readonly<Record<string, EndpointSlice | undefined>>,
    proxier?: Pick<Proxier, "sync">,
  ): Promise<LiveCommit> {
    applyChanges(this.services, services, this.tracker.serviceHandler);
    applyChanges(this.slices, slices, this.tracker.endpointSliceHandler);
    const next = this.tracker.commit();
    await proxier?.sync({ snapshot: next.snapshot, changes: next.changes, full: false });
    return next;
  }
}

/** Applies keyed adds / updates / deletes (`undefined`) to `current`, telling `handler` about each. */
function applyChanges<T>(
  current: Record<string, T>,
  changes: Readonly<Record<string, T | undefined>>,
  handler: ObjectEventHandler<T>,
): void {
  for (const [k, o] of Object.entries(changes)) {
    const old = current[k];
    if (o === undefined) {
      if (old) handler.onDelete?.(old);
      delete current[k];
    } else {
      if (old) handler.onUpdate?.(old, o);
      else handler.onAdd?.(o);
      current[k] = o;
    }
  }
}

/** A {@link ChangeSet} with no changes (for a full sync of an unchanged snapshot). */
export function emptyChangeSet(): ChangeSet {
  return {
    changedServicePorts: new Set<string>(),
    deletedServicePorts: new Set<string>(),
    staleConntrack: [],
    triggerTimes: new Map<string, number>(),
  };
}

/** Waits until `cond()` holds, checking every 50 ms. @throws WorknodeError after `timeoutMs` */
export async function waitFor(what: string, cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  await pollUntil(what, async () => (cond() ? true : undefined), timeoutMs, 50);
}
