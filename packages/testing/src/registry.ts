/**
 * A plain-HTTP image registry on loopback (Debian's `docker-registry`, the
 * CNCF distribution registry), started detached with its own data directory
 * and reused when a lab registry already runs on the port.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { mkdir, open, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { ConfigError, UnavailableError } from "@worknode/core";
import {
  GiveUpError,
  isProcessAlive,
  pollUntil,
  readPidFile,
  readProcessArgv,
  terminateProcesses,
} from "./exec.js";
import { defaultRunRoot, defaultTestingCacheRoot } from "./lab-dir.js";

/** Options of {@link startRegistry}. */
export interface RegistryOptions {
  /** Loopback port; default 5000. */
  readonly port?: number;
  /** Loopback address to listen on; default `127.0.0.1`. */
  readonly host?: string;
  /** Storage directory; default `<cache root>/registry-<port>` (kept between runs). */
  readonly dataDir?: string;
  /** Directory for config, pid file and log; default `/run/worknode-testing/registry-<port>`. */
  readonly runDir?: string;
  /** How long to wait for it to answer, ms; default 20 000. */
  readonly startTimeoutMs?: number;
}

/** A running lab registry. */
export interface LabRegistry {
  /** Base URL, `http://127.0.0.1:5000`. */
  readonly url: string;
  /** `host:port`, the registry part of image references (`127.0.0.1:5000/busybox:1`). */
  readonly host: string;
  /** Storage directory. */
  readonly dataDir: string;
  /** Process id of the registry. */
  readonly pid: number;
  /** True when an already running lab registry was reused (then {@link LabRegistry.stop} leaves it running). */
  readonly reused: boolean;
  /** Stops the registry if this call started it; idempotent. */
  stop(): Promise<void>;
}

/** Renders the distribution registry's `config.yml`. */
export function renderRegistryConfig(dataDir: string, listen: string): string {
  return `version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${JSON.stringify(dataDir)}
  delete:
    enabled: true
http:
  addr: ${JSON.stringify(listen)}
`;
}

/** Checks `GET /v2/` answers 200 (the registry API version check). */
export async function registryAnswers(url: string, timeoutMs = 2_000): Promise<boolean> {
  try {
    const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return (
      res.status === 200 &&
      (res.headers.get("docker-distribution-api-version") ?? "").startsWith("registry/2")
    );
  } catch {
    return false;
  }
}

async function isOurRegistry(pid: number, configFile: string): Promise<boolean> {
  const argv = await readProcessArgv(pid);
  if (argv === undefined) return false;
  return (
    argv.some((a) => a.endsWith("docker-registry") || a.endsWith("registry")) && argv.includes(configFile)
  );
}

/**
 * Starts Debian's `docker-registry` on a loopback port, or reuses the lab registry already
 * running there (found by its pid file and command line).
 *
 * @throws ConfigError when the port serves something that is not a lab registry
 * @throws UnavailableError when the registry does not come up (the message has its log)
 */
export async function startRegistry(opts: RegistryOptions = {}): Promise<LabRegistry> {
  const port = opts.port ?? 5000;
  const host = opts.host ?? "127.0.0.1";
  if (!host.startsWith("127.") && host !== "::1")
    throw new ConfigError(`the lab registry listens on loopback only, not ${host}`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError(`bad registry port ${port}`);
  const hostPort = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  const url = `http://${hostPort}`;
  const dataDir = path.resolve(opts.dataDir ?? path.join(defaultTestingCacheRoot(), `registry-${port}`));
  const runDir = path.resolve(opts.runDir ?? path.join(defaultRunRoot(), `registry-${port}`));
  const configFile = path.join(runDir, "config.yml");
  const pidFile = path.join(runDir, "registry.pid");
  const logFile = path.join(runDir, "registry.log");

  const existing = await readPidFile(pidFile);
  if (existing !== undefined && (await isOurRegistry(existing, configFile))) {
    await pollUntil(
      `the lab registry at ${url}`,
      async () => ((await registryAnswers(url)) ? true : undefined),
      10_000,
    );
    return { url, host: hostPort, dataDir, pid: existing, reused: true, stop: async () => {} };
  }
  if (await registryAnswers(url)) {
    throw new ConfigError(
      `${url} already serves a registry that this kit did not start (Debian's docker-registry service? ` +
        "stop it with `systemctl disable --now docker-registry`, or pick another port)",
    );
  }

  await mkdir(dataDir, { recursive: true });
  await mkdir(runDir, { recursive: true });
  await writeFile(configFile, renderRegistryConfig(dataDir, hostPort));
  const log = await open(logFile, "w");
  let pid: number;
  try {
    const child = spawn("docker-registry", ["serve", configFile], {
      detached: true,
      stdio: ["ignore", log.fd, log.fd],
      cwd: runDir,
    });
    pid = await new Promise<number>((resolve, reject) => {
      child.once("error", reject);
      child.once("spawn", () => resolve(child.pid!));
    }).catch((e: unknown) => {
      throw new UnavailableError(url, `cannot run docker-registry (install the docker-registry package)`, {
        cause: e,
      });
    });
    child.unref();
  } finally {
    await log.close();
  }
  await writeFile(pidFile, `${pid}\n`);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (await isOurRegistry(pid, configFile)) await terminateProcesses([pid]);
    await rm(runDir, { recursive: true, force: true });
  };
  try {
    await pollUntil(
      `docker-registry at ${url}`,
      async () => {
        if (!(await isProcessAlive(pid))) throw new GiveUpError("docker-registry exited");
        return (await registryAnswers(url)) ? true : undefined;
      },
      opts.startTimeoutMs ?? 20_000,
    );
  } catch (e) {
    const logText = await readFile(logFile, "utf8").catch(() => "");
    await stop();
    throw new UnavailableError(
      url,
      `the lab registry did not start: ${(e as Error).message}\n${logText.slice(-2000)}`,
      {
        cause: e,
      },
    );
  }
  return { url, host: hostPort, dataDir, pid, reused: false, stop };
}
