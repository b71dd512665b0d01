/**
 * The kubelet's serving certificate: the files given (`tlsCertFile` /
 * `tlsPrivateKeyFile`), or — as kubelet does when none are given — a
 * self-signed certificate and key kept in a certificate directory
 * (`<root-dir>/pki/kubelet.crt` and `kubelet.key`), generated on first start
 * and reused afterwards.
 *
 * Node's crypto cannot build X.509 certificates, so generation runs
 * `openssl req -x509` (argument array, no shell): an EC P-256 key, one year,
 * CN `<node>@<unix time>`, subject alternative names for the node name,
 * `localhost`, 127.0.0.1 and ::1 and any further IPs given.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { access, chmod, mkdir, readFile, rename, rm } from "node:fs/promises";
import { isIP } from "node:net";
import path from "node:path";
import { type Clock, ConfigError, realClock, UnavailableError } from "@worknode/core";

/** A certificate and key in PEM, and where they came from. */
export interface ServingCertificate {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly certFile: string;
  readonly keyFile: string;
  /** True when generated during this call. */
  readonly generated: boolean;
}

/** Options of {@link ensureSelfSignedCertificate}. */
export interface SelfSignedCertificateOptions {
  /** Directory holding `kubelet.crt` and `kubelet.key`. */
  readonly certDir: string;
  /** Node name for the CN and a DNS subject alternative name. */
  readonly nodeName: string;
  /** Extra IP addresses to include as subject alternative names. */
  readonly ips?: readonly string[];
  /** The `openssl` program; default `openssl` from PATH. */
  readonly openssl?: string;
  readonly clock?: Clock;
}

function run(program: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(program, [...args], { timeout: 60_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
      reject(
        new UnavailableError(
          program,
          missing
            ? `cannot generate the kubelet's self-signed certificate: ${program} not found (install openssl or give --tls-cert-file and --tls-private-key-file)`
            : `${program} failed to generate the kubelet's self-signed certificate: ${String(stderr).trim().split("\n")[0] ?? err.message}`,
          { cause: err },
        ),
      );
    });
  });
}

async function readable(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** A DNS-safe version of a node name for certificate fields. */
function certName(nodeName: string): string {
  const n = nodeName.toLowerCase().replace(/[^a-z0-9.-]/g, "-");
  return n.length > 0 ? n : "localhost";
}

/**
 * Returns the self-signed serving certificate in `certDir`, generating it when
 * either file is missing.
 * @throws UnavailableError when openssl is missing or fails
 */
export async function ensureSelfSignedCertificate(
  options: SelfSignedCertificateOptions,
): Promise<ServingCertificate> {
  const certFile = path.join(options.certDir, "kubelet.crt");
  const keyFile = path.join(options.certDir, "kubelet.key");
  if ((await readable(certFile)) && (await readable(keyFile))) {
    return {
      cert: await readFile(certFile),
      key: await readFile(keyFile),
      certFile,
      keyFile,
      generated: false,
    };
  }
  await mkdir(options.certDir, { recursive: true, mode: 0o700 });
  const name = certName(options.nodeName);
  const seconds = Math.floor((options.clock ?? realClock).now() / 1000);
  const ips = new Set(["127.0.0.1", "::1", ...(options.ips ?? []).filter((ip) => isIP(ip) !== 0)]);
  const san = [
    `DNS:${name}`,
    ...(name !== "localhost" ? ["DNS:localhost"] : []),
    ...[...ips].map((ip) => `IP:${ip}`),
  ];
  const tmpCert = `${certFile}.tmp-${process.pid}`;
  const tmpKey = `${keyFile}.tmp-${process.pid}`;
  try {
    await run(options.openssl ?? "openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      tmpKey,
      "-out",
      tmpCert,
      "-days",
      "365",
      "-subj",
      `/CN=${name}@${seconds}`,
      "-addext",
      `subjectAltName=${san.join(",")}`,
      "-addext",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "-addext",
      "extendedKeyUsage=serverAuth",
    ]);
    await chmod(tmpKey, 0o600);
    await rename(tmpKey, keyFile);
    await rename(tmpCert, certFile);
  } finally {
    await rm(tmpKey, { force: true });
    await rm(tmpCert, { force: true });
  }
  return { cert: await readFile(certFile), key: await readFile(keyFile), certFile, keyFile, generated: true };
}

/**
 * Reads a given certificate and key pair.
 * @throws ConfigError naming the file that cannot be read
 */
export async function loadServingCertificate(certFile: string, keyFile: string): Promise<ServingCertificate> {
  const read = (file: string, flag: string) =>
    readFile(file).catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError(`${flag}: cannot read ${file}: ${err.code ?? err.message}`, { cause: err });
    });
  return {
    cert: await read(certFile, "--tls-cert-file"),
    key: await read(keyFile, "--tls-private-key-file"),
    certFile,
    keyFile,
    generated: false,
  };
}
