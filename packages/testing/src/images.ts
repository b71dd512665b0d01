/**
 * Container images built locally (no outside registry): a static `pause`
 * sandbox image compiled from C, and a busybox image from Debian's
 * `busybox-static`. Both are OCI layouts built with umoci and cached by the
 * content of their inputs; skopeo pushes them to a registry or turns them
 * into archives for `ctr images import`.
 *
 * @module
 */
import { createHash, randomBytes } from "node:crypto";
import { chmod, copyFile, mkdir, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { WorknodeError } from "@worknode/core";
import { runCommand } from "./exec.js";
import { defaultImageCacheDir } from "./lab-dir.js";

/** Bump when the way images are built changes, so caches are rebuilt. */
const BUILD_RECIPE_VERSION = "1";
const LAYOUT_TAG = "image";

/** A locally built image: an OCI layout directory with one tag. */
export interface LocalImage {
  /** What it is (`pause`, `busybox`). */
  readonly kind: string;
  /** Content key of the inputs (sha256 hex). */
  readonly key: string;
  /** OCI image layout directory. */
  readonly layoutDir: string;
  /** Tag inside the layout. */
  readonly tag: string;
  /** skopeo / containers-image transport reference: `oci:<layoutDir>:<tag>`. */
  readonly ociRef: string;
  /** True when it was taken from the cache rather than built now. */
  readonly cached: boolean;
}

/** Options shared by the image builders. */
export interface ImageBuildOptions {
  /** Cache directory; default `/var/cache/worknode-testing/images` (or `$WORKNODE_TESTING_CACHE/images`). */
  readonly cacheDir?: string;
  /** Rebuild even when the cache has the image. */
  readonly rebuild?: boolean;
}

/** Options of {@link buildPauseImage}. */
export interface PauseImageOptions extends ImageBuildOptions {
  /** C source of the pause program; default the kit's `assets/pause.c`. */
  readonly source?: string;
}

/** Options of {@link buildBusyboxImage}. */
export interface BusyboxImageOptions extends ImageBuildOptions {
  /** Static busybox binary; default `/usr/bin/busybox` (Debian `busybox-static`). */
  readonly busyboxPath?: string;
  /** Content of `/www/index.html`; default `"hello from worknode busybox httpd\n"`. */
  readonly indexHtml?: string;
}

/** The OCI architecture name of this machine. */
export function ociArchitecture(nodeArch: string = process.arch): string {
  const map: Record<string, string> = {
    x64: "amd64",
    arm64: "arm64",
    arm: "arm",
    ppc64: "ppc64le",
    s390x: "s390x",
  };
  const a = map[nodeArch];
  if (!a) throw new WorknodeError("UNSUPPORTED", `no OCI architecture for ${nodeArch}`);
  return a;
}

/** Content key: sha256 over the parts, each length-prefixed so boundaries count. */
export function contentKey(parts: ReadonlyArray<string | Buffer>): string {
  const h = createHash("sha256");
  for (const p of parts) {
    const b = typeof p === "string" ? Buffer.from(p, "utf8") : p;
    h.update(`${b.length}:`);
    h.update(b);
  }
  return h.digest("hex");
}

/** Path of a file in the kit's `assets` directory (works from the sources and from `dist`). */
export function assetPath(name: string): string {
  const here = typeof __dirname === "string" ? __dirname : path.dirname(fileURLToPath(import.meta.url));
  return path.join(here, "..", "assets", name);
}

/** `/etc/passwd` of the busybox image. */
export const BUSYBOX_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
/** `/etc/group` of the busybox image. */
export const BUSYBOX_GROUP = "root:x:0:\nnogroup:x:65534:\n";
/** Default `/www/index.html` of the busybox image. */
export const BUSYBOX_INDEX_HTML = "hello from worknode busybox httpd\n";

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/**
 * Returns the cached image `<cacheDir>/<kind>-<key>` or builds it with `build(layoutDir, workDir)`
 * in a scratch directory and moves it into place atomically.
 */
async function cachedBuild(
  kind: string,
  key: string,
  opts: ImageBuildOptions,
  build: (layoutDir: string, workDir: string) => Promise<void>,
): Promise<LocalImage> {
  const cacheDir = opts.cacheDir ?? defaultImageCacheDir();
  const finalDir = path.join(cacheDir, `${kind}-${key.slice(0, 32)}`);
  const layoutDir = path.join(finalDir, "oci");
  const image = (cached: boolean): LocalImage => ({
    kind,
    key,
    layoutDir,
    tag: LAYOUT_TAG,
    ociRef: `oci:${layoutDir}:${LAYOUT_TAG}`,
    cached,
  });
  const marker = path.join(finalDir, "complete.json");
  if (!opts.rebuild && (await exists(marker))) return image(true);
  await mkdir(cacheDir, { recursive: true });
  const scratch = path.join(cacheDir, `.build-${kind}-${randomBytes(6).toString("hex")}`);
  try {
    await mkdir(path.join(scratch, "work"), { recursive: true });
    await build(path.join(scratch, "oci"), path.join(scratch, "work"));
    await rm(path.join(scratch, "work"), { recursive: true, force: true });
    await writeFile(
      path.join(scratch, "complete.json"),
      `${JSON.stringify({ kind, key, builtAt: new Date() })}\n`,
    );
    if (opts.rebuild) await rm(finalDir, { recursive: true, force: true });
    try {
      await rename(scratch, finalDir);
    } catch (e) {
      // another process finished the same build first: use theirs
      if (!(await exists(marker))) throw e;
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return image(false);
}

async function umociNewImage(layoutDir: string, bundleDir: string): Promise<string> {
  const ref = `${layoutDir}:${LAYOUT_TAG}`;
  await runCommand("umoci", ["init", "--layout", layoutDir]);
  await runCommand("umoci", ["new", "--image", ref]);
  await runCommand("umoci", ["unpack", "--image", ref, bundleDir]);
  return ref;
}

/**
 * Builds (or takes from the cache) the pod sandbox image: `pause.c` compiled with
 * `gcc -static -Os -s`, entrypoint `/pause`, user 65535.
 */
export async function buildPauseImage(opts: PauseImageOptions = {}): Promise<LocalImage> {
  const source = opts.source ?? (await readFile(assetPath("pause.c"), "utf8"));
  const gcc = (await runCommand("gcc", ["--version"])).stdout.split("\n")[0] ?? "";
  const arch = ociArchitecture();
  const key = contentKey([BUILD_RECIPE_VERSION, "pause", source, gcc, arch]);
  return cachedBuild("pause", key, opts, async (layoutDir, work) => {
    const src = path.join(work, "pause.c");
    const bin = path.join(work, "pause");
    await writeFile(src, source);
    await runCommand("gcc", ["-static", "-Os", "-s", "-o", bin, src]);
    const bundle = path.join(work, "bundle");
    const ref = await umociNewImage(layoutDir, bundle);
    await copyFile(bin, path.join(bundle, "rootfs", "pause"));
    await chmod(path.join(bundle, "rootfs", "pause"), 0o755);
    await runCommand("umoci", ["repack", "--image", ref, bundle]);
    await runCommand("umoci", [
      "config",
      "--image",
      ref,
      "--config.entrypoint",
      "/pause",
      "--config.user",
      "65535:65535",
      "--architecture",
      arch,
      "--os",
      "linux",
    ]);
    await runCommand("umoci", ["gc", "--layout", layoutDir]);
  });
}

/**
 * Builds (or takes from the cache) a busybox image from the static busybox binary: every applet
 * linked in `/bin`, `/etc/passwd` and `/etc/group` (root, nobody), `/www/index.html`, a sticky
 * `/tmp`; `CMD ["sh"]`, `PATH=/bin`.
 */
export async function buildBusyboxImage(opts: BusyboxImageOptions = {}): Promise<LocalImage> {
  const busybox = opts.busyboxPath ?? "/usr/bin/busybox";
  const indexHtml = opts.indexHtml ?? BUSYBOX_INDEX_HTML;
  const binary = await readFile(busybox).catch((e: unknown) => {
    throw new WorknodeError("MISSING", `cannot read ${busybox} (install busybox-static)`, { cause: e });
  });
  const arch = ociArchitecture();
  const key = contentKey([
    BUILD_RECIPE_VERSION,
    "busybox",
    binary,
    BUSYBOX_PASSWD,
    BUSYBOX_GROUP,
    indexHtml,
    arch,
  ]);
  return cachedBuild("busybox", key, opts, async (layoutDir, work) => {
    const applets = (await runCommand(busybox, ["--list"])).stdout
      .split("\n")
      .map((s) => s.trim())
      .filter((s) => /^[\w.[-]+$/.test(s) && s !== "busybox");
    const bundle = path.join(work, "bundle");
    const ref = await umociNewImage(layoutDir, bundle);
    const root = path.join(bundle, "rootfs");
    for (const d of ["bin", "etc", "www", "tmp", "root"])
      await mkdir(path.join(root, d), { recursive: true });
    await copyFile(busybox, path.join(root, "bin", "busybox"));
    await chmod(path.join(root, "bin", "busybox"), 0o755);
    for (const a of applets) await symlink("busybox", path.join(root, "bin", a));
    await writeFile(path.join(root, "etc", "passwd"), BUSYBOX_PASSWD);
    await writeFile(path.join(root, "etc", "group"), BUSYBOX_GROUP);
    await writeFile(path.join(root, "www", "index.html"), indexHtml);
    await chmod(path.join(root, "tmp"), 0o1777);
    await runCommand("umoci", ["repack", "--image", ref, bundle]);
    await runCommand("umoci", [
      "config",
      "--image",
      ref,
      "--config.cmd",
      "sh",
      "--config.env",
      "PATH=/bin",
      "--architecture",
      arch,
      "--os",
      "linux",
    ]);
    await runCommand("umoci", ["gc", "--layout", layoutDir]);
  });
}

/** Validates an image reference enough to pass it to skopeo/ctr safely. */
export function assertImageReference(ref: string): void {
  if (
    !/^[a-z0-9][a-z0-9._:/-]*(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?$/.test(ref) ||
    ref.includes("//")
  ) {
    throw new WorknodeError("CONFIG", `not a valid image reference: ${JSON.stringify(ref)}`);
  }
}

/**
 * Pushes a local image to a plain-HTTP registry with skopeo.
 *
 * @param destination `host:port/name:tag`, such as `127.0.0.1:5000/busybox:1`
 */
export async function pushImage(image: LocalImage, destination: string): Promise<void> {
  assertImageReference(destination);
  await runCommand("skopeo", [
    "--insecure-policy",
    "copy",
    "--dest-tls-verify=false",
    image.ociRef,
    `docker://${destination}`,
  ]);
}

/**
 * Imports a local image into a containerd under the exact name `name` (namespace `k8s.io` by
 * default, the one CRI uses), through a docker-archive made by skopeo and `ctr images import`.
 */
export async function importImageIntoContainerd(
  image: LocalImage,
  name: string,
  socketPath: string,
  namespace = "k8s.io",
): Promise<void> {
  assertImageReference(name);
  const tmp = path.join(path.dirname(image.layoutDir), `.import-${randomBytes(6).toString("hex")}.tar`);
  try {
    await runCommand("skopeo", ["--insecure-policy", "copy", image.ociRef, `docker-archive:${tmp}:${name}`]);
    await runCommand("ctr", ["--address", socketPath, "-n", namespace, "images", "import", tmp]);
  } finally {
    await rm(tmp, { force: true });
  }
}
