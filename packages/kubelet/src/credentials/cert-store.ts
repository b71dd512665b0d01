/**
 * The kubelet's client certificate store: `<rootDir>/pki/kubelet-client-<timestamp>.pem`
 * files (certificate chain, then key; mode 0600) and the `kubelet-client-current.pem`
 * symlink to the one in use, swapped atomically (a new link renamed over the old).
 *
 * @module
 */
import { chmod, mkdir, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { ConfigError } from "@worknode/core";
import { type CertificateValidity, certificateValidity } from "./csr.js";

/** Name of the symlink to the current client certificate. */
export const CURRENT_CLIENT_CERT_FILE = "kubelet-client-current.pem";

/** `kubelet-client-2006-01-02-15-04-05.pem` for a time (UTC), the kubelet's file name layout. */
export function clientCertFileName(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2006-01-02T15:04:05.000Z
  return `kubelet-client-${iso.slice(0, 19).replace(/[T:]/g, "-")}.pem`;
}

/** The current certificate of a store. */
export interface StoredCertificate {
  /** Path of the current symlink. */
  readonly path: string;
  /** The PEM (certificate chain and key). */
  readonly pem: string;
  /** The leaf certificate's validity. */
  readonly validity: CertificateValidity;
}

/** A kubelet client certificate store in `<rootDir>/pki`. */
export class CertificateStore {
  /** The `pki` directory. */
  readonly dir: string;

  /** @param rootDir the kubelet's `--root-dir` */
  constructor(rootDir: string) {
    this.dir = join(rootDir, "pki");
  }

  /** Path of the `kubelet-client-current.pem` symlink. */
  get currentPath(): string {
    return join(this.dir, CURRENT_CLIENT_CERT_FILE);
  }

  /**
   * The current certificate, or `undefined` when there is none or it cannot be read.
   */
  async current(): Promise<StoredCertificate | undefined> {
    let pem: string;
    try {
      pem = await readFile(this.currentPath, "utf8");
    } catch {
      return undefined;
    }
    try {
      return { path: this.currentPath, pem, validity: certificateValidity(pem) };
    } catch {
      return undefined;
    }
  }

  /**
   * Stores a new certificate (PEM chain) and its key (PEM) as a timestamped file and
   * points the current symlink at it.
   *
   * @returns the path of the new file
   * @throws ConfigError when `certPem` holds no certificate
   */
  async update(certPem: string, keyPem: string, nowMs = Date.now()): Promise<string> {
    certificateValidity(certPem);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    let file = join(this.dir, clientCertFileName(nowMs));
    for (let i = 1; await exists(file); i++)
      file = join(this.dir, clientCertFileName(nowMs).replace(".pem", `-${i}.pem`));
    const body = `${certPem.trimEnd()}\n${keyPem.trimEnd()}\n`;
    await writeFile(file, body, { mode: 0o600, flag: "wx" });
    await chmod(file, 0o600);
    const tmpLink = join(this.dir, `.${CURRENT_CLIENT_CERT_FILE}.${process.pid}.tmp`);
    await rm(tmpLink, { force: true });
    await symlink(basename(file), tmpLink);
    try {
      await rename(tmpLink, this.currentPath);
    } catch (err) {
      await rm(tmpLink, { force: true });
      throw new ConfigError(`cannot update ${this.currentPath}`, { cause: err });
    }
    return file;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await readFile(path);
    return true;
  } catch {
    return false;
  }
}
