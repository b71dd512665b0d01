/**
 * Builds the real Kubernetes control-plane binaries (etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler, kubectl, and optionally kubelet and
 * kube-proxy) from published Go modules, with the local Go toolchain.
 *
 * The pin lives in `packages/testing/go/go.mod` (one `k8s.io/kubernetes`
 * release, every `k8s.io` staging module replaced by its published
 * `v0.<minor>.<patch>`, etcd at the version Kubernetes pins) with its
 * `go.sum`. Binaries are cached outside the repository in
 * `$WORKNODE_K8S_CACHE/<version>/` (default
 * `/var/cache/worknode-testing/k8s/<version>/`) next to a stamp of the pin, and
 * rebuilt only when the pin changes. Nothing prebuilt is downloaded: the Go
 * module proxy serves sources only, and `GOTOOLCHAIN=local` forbids toolchain
 * downloads.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { access, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  AbortedError,
  type Clock,
  ConfigError,
  createLogger,
  type Logger,
  realClock,
  UnavailableError,
} from "@worknode/core";

/** The Go main package of every binary this module can build. */
export const CONTROL_PLANE_PACKAGES = {
  etcd: "go.etcd.io/etcd/server/v3",
  "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
  kubectl: "k8s.io/kubernetes/cmd/kubectl",
  "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
  "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
  kubelet: "k8s.io/kubernetes/cmd/kubelet",
  "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
} as const;

/** Name of a buildable binary. */
export type ControlPlaneBinary = keyof typeof CONTROL_PLANE_PACKAGES;

/** The control plane and kubectl, in build order (the ones `startControlPlane` runs). */
export const CORE_CONTROL_PLANE_BINARIES: readonly ControlPlaneBinary[] = [
  "etcd",
  "kube-apiserver",
  "kubectl",
  "kube-controller-manager",
  "kube-scheduler",
];

/**
 * Every buildable binary, in build order: the control plane, kubectl and the
 * reference node components (kubelet, kube-proxy), which cost little once the
 * others are built and are what {@link ensureControlPlaneBinaries} builds by default.
 */
export const ALL_CONTROL_PLANE_BINARIES: readonly ControlPlaneBinary[] = Object.keys(
  CONTROL_PLANE_PACKAGES,
) as ControlPlaneBinary[];

/** The pin read from the build module. */
export interface BuildPin {
  /** Kubernetes release, such as `v1.36.3`. */
  readonly kubernetesVersion: string;
  /** etcd server module version, such as `v3.6.8`. */
  readonly etcdVersion: string;
  /** Digest of go.mod, go.sum and the build recipe: a change of any of them means a rebuild. */
  readonly digest: string;
}

/** Result of {@link ensureControlPlaneBinaries}. */
export interface ControlPlaneBinaries {
  /** Directory holding the binaries. */
  readonly dir: string;
  /** Kubernetes release they were built from (`v1.36.3`). */
  readonly version: string;
  /** etcd release (`v3.6.8`). */
  readonly etcdVersion: string;
  /** Absolute path of each binary that was asked for. */
  readonly binaries: Readonly<Partial<Record<ControlPlaneBinary, string>>>;
}

/** Options of {@link ensureControlPlaneBinaries}. */
export interface EnsureBinariesOptions {
  /** Binaries to have; default {@link ALL_CONTROL_PLANE_BINARIES}. */
  readonly binaries?: readonly ControlPlaneBinary[];
  /** Cache root; default `$WORKNODE_K8S_CACHE`, else `/var/cache/worknode-testing/k8s`. */
  readonly cacheRoot?: string;
  /** The Go build module; default `packages/testing/go`. */
  readonly goModuleDir?: string;
  /** The `go` command; default `go` on PATH. */
  readonly goCommand?: string;
  /** Progress logger; default a pino logger on standard error. */
  readonly logger?: Logger;
  /** Cancels a running build. */
  readonly signal?: AbortSignal;
  /** Clock for progress heartbeats and lock polling; default the real clock. */
  readonly clock?: Clock;
}

/** Bumped when the way binaries are built changes, so caches rebuild. */
const RECIPE_VERSION = "1";
const STAMP_FILE = ".worknode-build-stamp";
const HEARTBEAT_MS = 30_000;
const LOCK_POLL_MS = 2_000;

/** The default Go build module directory (`packages/testing/go`, beside `src/` and `dist/`). */
export function defaultGoModuleDir(): string {
  return fileURLToPath(new URL("../go/", import.meta.url));
}

/** The default cache root: `$WORKNODE_K8S_CACHE` or `/var/cache/worknode-testing/k8s`. */
export function defaultCacheRoot(): string {
  return process.env.WORKNODE_K8S_CACHE || "/var/cache/worknode-testing/k8s";
}

/**
 * Reads the pin from the build module's go.mod and go.sum.
 *
 * @throws ConfigError when go.mod does not require exactly one k8s.io/kubernetes and etcd server version
 */
export function parseBuildPin(goMod: string, goSum: string): BuildPin {
  const kubernetesVersion = requiredVersion(goMod, "k8s.io/kubernetes");
  const etcdVersion = requiredVersion(goMod, "go.etcd.io/etcd/server/v3");
  const digest = createHash("sha256")
    .update(`recipe ${RECIPE_VERSION}\n${process.platform}/${process.arch}\n`)
    .update(goMod)
    .update("\0")
    .update(goSum)
    .digest("hex");
  return { kubernetesVersion, etcdVersion, digest };
}

function requiredVersion(goMod: string, modulePath: string): string {
  const escaped = modulePath.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  const matches = [...goMod.matchAll(new RegExp(`^\\s*(?:require\\s+)?${escaped}\\s+(v\\S+)`, "gm"))];
  const versions = new Set(matches.map((m) => m[1]));
  const [version] = versions;
  if (versions.size !== 1 || version === undefined) {
    throw new ConfigError(
      `go.mod must require exactly one version of ${modulePath} (found ${versions.size})`,
    );
  }
  return version;
}

/**
 * The `-ldflags` value of a build: stripped binaries whose `--version` prints
 * the pinned release (`k8s.io/component-base/version` and
 * `k8s.io/client-go/pkg/version` variables, as Kubernetes' own build sets them).
 *
 * @param version - Kubernetes release, `vMAJOR.MINOR.PATCH`
 * @param buildDate - ISO-8601 build date recorded in the version info
 */
export function versionLdflags(version: string, buildDate: string): string {
  const m = /^v(\d+)\.(\d+)\.\d+/.exec(version);
  if (!m) throw new ConfigError(`not a Kubernetes release version: ${version}`);
  const flags = ["-s", "-w"];
  for (const pkg of ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"]) {
    flags.push(
      `-X ${pkg}.gitVersion=${version}`,
      `-X ${pkg}.gitMajor=${m[1]}`,
      `-X ${pkg}.gitMinor=${m[2]}`,
      `-X ${pkg}.gitTreeState=clean`,
      `-X ${pkg}.buildDate=${buildDate}`,
    );
  }
  return flags.join(" ");
}

/**
 * Makes sure the control-plane binaries of the pinned release exist in the
 * cache, building the missing ones with Go (minutes per binary on a cold Go
 * build cache; all of them take tens of minutes on 2 cores). Concurrent callers
 * (several test processes) wait for each other through a lock directory.
 *
 * @returns the binaries' directory, the pinned versions and each binary's path
 * @throws UnavailableError when Go is missing or a build (including module downloads) fails
 * @throws AbortedError when `signal` aborts
 */
export async function ensureControlPlaneBinaries(
  options: EnsureBinariesOptions = {},
): Promise<ControlPlaneBinaries> {
  const log = options.logger ?? createLogger({ name: "worknode-testing.go-build" });
  const clock = options.clock ?? realClock;
  const moduleDir = options.goModuleDir ?? defaultGoModuleDir();
  const wanted = options.binaries ?? ALL_CONTROL_PLANE_BINARIES;
  const go = options.goCommand ?? "go";

  const [goMod, goSum] = await Promise.all([
    readFile(join(moduleDir, "go.mod"), "utf8"),
    readFile(join(moduleDir, "go.sum"), "utf8"),
  ]).catch((error: unknown) => {
    throw new ConfigError(`cannot read the Go build module in ${moduleDir}`, { cause: error });
  });
  const pin = parseBuildPin(goMod, goSum);
  const root = options.cacheRoot ?? defaultCacheRoot();
  const dir = join(root, pin.kubernetesVersion);
  const binaries: Partial<Record<ControlPlaneBinary, string>> = {};
  for (const name of wanted) binaries[name] = join(dir, name);
  const result: ControlPlaneBinaries = {
    dir,
    version: pin.kubernetesVersion,
    etcdVersion: pin.etcdVersion,
    binaries,
  };

  if (await upToDate(dir, pin, wanted)) return result;

  await mkdir(root, { recursive: true });
  const release = await acquireLock(join(root, `.lock-${pin.kubernetesVersion}`), clock, log, options.signal);
  try {
    // Another process may have built while we waited for the lock.
    if (await upToDate(dir, pin, wanted)) return result;
    if ((await readStamp(dir)) !== pin.digest) {
      log.info({ dir, version: pin.kubernetesVersion }, "pin changed or cache empty: clearing binary cache");
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, STAMP_FILE), `${pin.digest}\n`);
    }
    const env = goEnvironment();
    await checkGo(go, moduleDir, env);
    const buildDate = await moduleTime(go, moduleDir, env);
    const ldflags = versionLdflags(pin.kubernetesVersion, buildDate);
    const missing: ControlPlaneBinary[] = [];
    for (const name of wanted) if (!(await isExecutable(join(dir, name)))) missing.push(name);
    const started = clock.monotonic();
    log.info(
      { binaries: missing, version: pin.kubernetesVersion, etcd: pin.etcdVersion, dir },
      "building Kubernetes binaries from Go modules (minutes per binary on a cold cache)",
    );
    for (const [index, name] of missing.entries()) {
      const target = join(dir, name);
      const tmp = `${target}.tmp-${process.pid}`;
      const t0 = clock.monotonic();
      log.info({ binary: name, step: `${index + 1}/${missing.length}` }, `building ${name}`);
      const heartbeat = startHeartbeat(clock, log, name, t0);
      try {
        await runGo(
          go,
          ["build", "-trimpath", "-ldflags", ldflags, "-o", tmp, CONTROL_PLANE_PACKAGES[name]],
          moduleDir,
          env,
          options.signal,
        );
      } catch (error) {
        await rm(tmp, { force: true });
        throw error;
      } finally {
        heartbeat.cancel();
      }
      await rename(tmp, target);
      log.info({ binary: name, seconds: Math.round((clock.monotonic() - t0) / 1000) }, `built ${name}`);
    }
    log.info({ seconds: Math.round((clock.monotonic() - started) / 1000), dir }, "Kubernetes binaries ready");
    return result;
  } finally {
    await release();
  }
}

async function upToDate(dir: string, pin: BuildPin, wanted: readonly ControlPlaneBinary[]): Promise<boolean> {
  if ((await readStamp(dir)) !== pin.digest) return false;
  for (const name of wanted) if (!(await isExecutable(join(dir, name)))) return false;
  return true;
}

async function readStamp(dir: string): Promise<string | undefined> {
  try {
    return (await readFile(join(dir, STAMP_FILE), "utf8")).trim();
  } catch {
    return undefined;
  }
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The environment of every go command: no cgo (static binaries), no toolchain downloads, go.sum enforced. */
function goEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CGO_ENABLED: "0",
    GOTOOLCHAIN: "local",
    GOFLAGS: "-mod=readonly -buildvcs=false",
    GOWORK: "off",
  };
  if (!env.HOME) env.HOME = homedir();
  return env;
}

async function checkGo(go: string, cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  try {
    await runGo(go, ["version"], cwd, env);
  } catch (error) {
    throw new UnavailableError(
      go,
      `the Go toolchain is needed to build the Kubernetes control plane for system tests and could not run: ${
        error instanceof Error ? error.message : String(error)
      }`,
      { cause: error },
    );
  }
}

/** Release time of the pinned k8s.io/kubernetes module (reproducible build date); downloads module metadata. */
async function moduleTime(go: string, cwd: string, env: NodeJS.ProcessEnv): Promise<string> {
  const out = await runGo(go, ["list", "-m", "-json", "k8s.io/kubernetes"], cwd, env);
  const parsed: unknown = JSON.parse(out);
  const time =
    typeof parsed === "object" && parsed !== null && "Time" in parsed && typeof parsed.Time === "string"
      ? parsed.Time
      : undefined;
  return time ? new Date(time).toISOString().replace(/\.\d{3}Z$/, "Z") : "1970-01-01T00:00:00Z";
}

const STDERR_TAIL = 4_000;

function runGo(
  go: string,
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
  signal?: AbortSignal,
): Promise<string> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortedError("Go build aborted"));
      return;
    }
    const child = spawn(go, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL);
    });
    const onAbort = () => child.kill("SIGTERM");
    signal?.addEventListener("abort", onAbort, { once: true });
    child.on("error", (error) => {
      signal?.removeEventListener("abort", onAbort);
      reject(
        new UnavailableError(go, `cannot run ${go}: ${error.message} (is Go installed and on PATH?)`, {
          cause: error,
        }),
      );
    });
    child.on("close", (code, sig) => {
      signal?.removeEventListener("abort", onAbort);
      if (signal?.aborted) {
        reject(new AbortedError(`go ${args[0] ?? ""} aborted`));
      } else if (code === 0) {
        resolve(stdout);
      } else {
        const hint = /proxy|dial tcp|i\/o timeout|no such host|reading .*zip|verifying module/i.test(stderr)
          ? " (the Go module proxy could not be reached or served a bad module)"
          : "";
        reject(
          new UnavailableError(
            go,
            `go ${args.filter((a) => !a.startsWith("-X")).join(" ")} failed (${
              code === null ? `signal ${sig}` : `exit ${code}`
            })${hint}:\n${stderr.trim()}`,
          ),
        );
      }
    });
  });
}

function startHeartbeat(clock: Clock, log: Logger, name: string, t0: number): { cancel(): void } {
  let handle = clock.setTimeout(tick, HEARTBEAT_MS);
  function tick(): void {
    log.info(
      { binary: name, seconds: Math.round((clock.monotonic() - t0) / 1000) },
      `still building ${name}`,
    );
    handle = clock.setTimeout(tick, HEARTBEAT_MS);
  }
  return { cancel: () => handle.cancel() };
}

/**
 * Takes an exclusive lock by creating a directory holding the owner's pid; a
 * lock whose owner is gone is taken over.
 */
async function acquireLock(
  path: string,
  clock: Clock,
  log: Logger,
  signal?: AbortSignal,
): Promise<() => Promise<void>> {
  let announced = false;
  for (;;) {
    if (signal?.aborted) throw new AbortedError("waiting for the build lock aborted");
    try {
      await mkdir(path);
      await writeFile(join(path, "pid"), `${process.pid}\n`);
      return () => rm(path, { recursive: true, force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const owner = Number.parseInt(await readFile(join(path, "pid"), "utf8").catch(() => ""), 10);
    if (Number.isFinite(owner) && !isAlive(owner)) {
      log.warn({ lock: path, owner }, "removing stale build lock");
      await rm(path, { recursive: true, force: true });
      continue;
    }
    if (!announced) {
      log.info({ lock: path, owner }, "another process is building the Kubernetes binaries; waiting");
      announced = true;
    }
    await clock.sleep(LOCK_POLL_MS, signal);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
