/**
 * The whole CRI lab in one call: Debian packages, a loopback registry,
 * locally built images, a private containerd with the pause image imported
 * and busybox pushed — or, with `WORKNODE_CRI_ENDPOINT` set, an existing
 * runtime (containerd 2.x, CRI-O …) in place of the private containerd.
 *
 * @module
 */
import { UnavailableError, WorknodeError } from "@worknode/core";
import { CONTAINERD_LAB_PACKAGES, ensureAptPackages } from "./apt.js";
import { type ContainerdInstance, type ContainerdOptions, startContainerd } from "./containerd.js";
import { type CriVersion, criVersion } from "./cri-probe.js";
import { runCommand } from "./exec.js";
import {
  buildBusyboxImage,
  buildPauseImage,
  importImageIntoContainerd,
  type LocalImage,
  pushImage,
} from "./images.js";
import { type LabRegistry, type RegistryOptions, startRegistry } from "./registry.js";

/** Environment variable naming an existing CRI endpoint to test against instead of a lab containerd. */
export const CRI_ENDPOINT_ENV = "WORKNODE_CRI_ENDPOINT";

/** Options of {@link startContainerdLab}. */
export interface ContainerdLabOptions {
  /** Install missing Debian packages first; default true. */
  readonly installPackages?: boolean;
  /** Registry options (port, data directory). */
  readonly registry?: RegistryOptions;
  /** containerd options (lab directory, bridge, subnet, ports …). */
  readonly containerd?: ContainerdOptions;
  /** Image cache directory; default `/var/cache/worknode-testing/images`. */
  readonly imageCacheDir?: string;
  /** Repository and tag of busybox in the lab registry; default `busybox:1`. */
  readonly busyboxRepository?: string;
  /** Repository and tag of the pause image in the lab registry; default `pause:3.9`. */
  readonly pauseRepository?: string;
  /** Sandbox image name imported into containerd; default `worknode.local/pause:3.9`. */
  readonly sandboxImage?: string;
  /** CRI endpoint to use instead of starting containerd; default `$WORKNODE_CRI_ENDPOINT`. */
  readonly criEndpoint?: string;
  /** Progress lines, e.g. `(l) => console.error(l)`. */
  readonly log?: (line: string) => void;
}

/** A running CRI lab. */
export interface ContainerdLab {
  /** CRI endpoint (`unix:///…`) to point the code under test at. */
  readonly endpoint: string;
  /** What the runtime reported to a CRI `Version` call. */
  readonly runtimeVersion: CriVersion;
  /** The private containerd, or `undefined` when an external endpoint is used. */
  readonly containerd: ContainerdInstance | undefined;
  /** The loopback registry. */
  readonly registry: LabRegistry;
  /** Locally built images. */
  readonly images: { readonly pause: LocalImage; readonly busybox: LocalImage };
  /** Reference of busybox in the registry, such as `127.0.0.1:5000/busybox:1`. */
  readonly busyboxImage: string;
  /** Reference of the pause image in the registry, such as `127.0.0.1:5000/pause:3.9`. */
  readonly pauseRegistryImage: string;
  /** Sandbox image name the lab containerd uses (already imported), such as `worknode.local/pause:3.9`. */
  readonly sandboxImage: string;
  /** Stops containerd (full teardown) and the registry (if this lab started it). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts the CRI lab: (1) Debian packages, (2) the registry, (3) images built or taken from the
 * cache, (4) containerd — unless `criEndpoint`/`$WORKNODE_CRI_ENDPOINT` names a runtime to use —
 * with (5) the pause image imported under the sandbox image name, and (6) busybox and pause
 * pushed to the registry. On failure, what was started is stopped and the error is rethrown.
 */
export async function startContainerdLab(opts: ContainerdLabOptions = {}): Promise<ContainerdLab> {
  const log = opts.log ?? (() => {});
  const external = opts.criEndpoint ?? (process.env[CRI_ENDPOINT_ENV] || undefined);
  const sandboxImage = opts.sandboxImage ?? opts.containerd?.sandboxImage ?? "worknode.local/pause:3.9";
  const cleanups: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    const errors: string[] = [];
    for (const c of cleanups.splice(0).reverse()) {
      await c().catch((e: unknown) => errors.push((e as Error).message));
    }
    if (errors.length > 0)
      throw new WorknodeError("TEARDOWN", `CRI lab teardown failed:\n${errors.join("\n")}`);
  };
  try {
    if (opts.installPackages ?? true) {
      const installed = await ensureAptPackages(CONTAINERD_LAB_PACKAGES, { log });
      if (installed.length > 0) log(`installed ${installed.join(", ")}`);
      if (installed.includes("docker-registry")) await stopPackagedRegistryService(log);
    }
    log("starting registry");
    const registry = await startRegistry(opts.registry);
    cleanups.push(() => registry.stop());

    log("building images");
    const cache = opts.imageCacheDir ? { cacheDir: opts.imageCacheDir } : {};
    const pause = await buildPauseImage(cache);
    const busybox = await buildBusyboxImage(cache);
    const busyboxImage = `${registry.host}/${opts.busyboxRepository ?? "busybox:1"}`;
    const pauseRegistryImage = `${registry.host}/${opts.pauseRepository ?? "pause:3.9"}`;
    log(`pushing ${busyboxImage} and ${pauseRegistryImage}`);
    await pushImage(busybox, busyboxImage);
    await pushImage(pause, pauseRegistryImage);

    let containerd: ContainerdInstance | undefined;
    let endpoint: string;
    if (external) {
      endpoint = external.startsWith("unix://") ? external : `unix://${external}`;
      log(`using the CRI runtime at ${endpoint}`);
    } else {
      log("starting containerd");
      const started = await startContainerd({
        insecureRegistries: [registry.host],
        ...opts.containerd,
        sandboxImage,
      });
      containerd = started;
      cleanups.push(() => started.stop());
      endpoint = started.endpoint;
      log(`importing ${sandboxImage}`);
      await importImageIntoContainerd(pause, sandboxImage, started.socket);
    }
    const runtimeVersion = await criVersion(endpoint).catch((e: unknown) => {
      throw new UnavailableError(endpoint, `the CRI runtime does not answer: ${(e as Error).message}`, {
        cause: e,
      });
    });
    let stopped: Promise<void> | undefined;
    return {
      endpoint,
      runtimeVersion,
      containerd,
      registry,
      images: { pause, busybox },
      busyboxImage,
      pauseRegistryImage,
      sandboxImage,
      stop() {
        stopped ??= stopAll();
        return stopped;
      },
    };
  } catch (e) {
    await stopAll().catch(() => {});
    throw e;
  }
}

/**
 * Debian starts `docker-registry.service` on port 5000 when the package is installed (under
 * systemd). The kit just installed it for the lab, so it disables that service again; the lab
 * runs its own registry.
 */
async function stopPackagedRegistryService(log: (line: string) => void): Promise<void> {
  const active = await runCommand("systemctl", ["is-active", "--quiet", "docker-registry"], {
    allowFailure: true,
  }).catch(() => undefined);
  if (active?.exitCode !== 0) return;
  log("disabling docker-registry.service (installed for the lab; the lab runs its own registry)");
  await runCommand("systemctl", ["disable", "--now", "docker-registry"]);
}
