/**
 * Test PKI of the real control plane: cluster CA, API server serving and
 * kubelet-client certificates, front-proxy CA and client, service-account key
 * pair, admin and component client certificates, and node client certificates
 * issued on demand.
 *
 * Keys are EC P-256 keys made with `node:crypto`; certificates are signed by
 * Debian's `openssl` binary, spawned with argument arrays (`node:crypto`
 * cannot create X.509 certificates by itself).
 *
 * @module
 */
import { execFile } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, UnavailableError } from "@worknode/core";

/** A certificate and its private key as files. */
export interface CertKeyPair {
  /** PEM certificate file. */
  readonly certPath: string;
  /** PEM private key file (PKCS#8). */
  readonly keyPath: string;
}

/** Subject and extensions of a certificate to issue. */
export interface CertificateSpec {
  /** Common name (CN). */
  readonly commonName: string;
  /** Organizations (O), in order; Kubernetes reads them as groups of a client certificate. */
  readonly organizations?: readonly string[];
  /** DNS subject alternative names (serving certificates). */
  readonly dnsNames?: readonly string[];
  /** IP subject alternative names (serving certificates). */
  readonly ipAddresses?: readonly string[];
  /** Extended key usages; default `clientAuth` without SANs, `serverAuth` with SANs. */
  readonly usages?: readonly ("clientAuth" | "serverAuth")[];
}

/** Every file of the control-plane PKI; see {@link generateControlPlanePki}. */
export interface ControlPlanePki {
  /** Directory holding the files. */
  readonly dir: string;
  /** Cluster CA: signs serving and client certificates, `--client-ca-file`. */
  readonly ca: CertKeyPair;
  /** kube-apiserver serving certificate. */
  readonly apiserver: CertKeyPair;
  /** Client certificate kube-apiserver presents to kubelets (`O=system:masters`). */
  readonly apiserverKubeletClient: CertKeyPair;
  /** Front-proxy CA: `--requestheader-client-ca-file`. */
  readonly frontProxyCa: CertKeyPair;
  /** Front-proxy client certificate (`CN=front-proxy-client`), signed by the front-proxy CA. */
  readonly frontProxyClient: CertKeyPair;
  /** Service-account token signing key pair. */
  readonly serviceAccount: { readonly publicKeyPath: string; readonly privateKeyPath: string };
  /** Cluster administrator client certificate (`O=system:masters`). */
  readonly admin: CertKeyPair;
  /** kube-controller-manager client certificate (`CN=system:kube-controller-manager`). */
  readonly controllerManager: CertKeyPair;
  /** kube-scheduler client certificate (`CN=system:kube-scheduler`). */
  readonly scheduler: CertKeyPair;
}

/** Options of {@link generateControlPlanePki}. */
export interface PkiOptions {
  /** Cluster IP of the `kubernetes` Service, added to the serving certificate; default `10.96.0.1`. */
  readonly serviceIp?: string;
  /** Extra DNS names of the serving certificate. */
  readonly extraDnsNames?: readonly string[];
  /** Extra IP addresses of the serving certificate. */
  readonly extraIpAddresses?: readonly string[];
  /** Validity of every certificate in days; default 30. */
  readonly validityDays?: number;
}

/** DNS names every API server serving certificate carries. */
export const APISERVER_DNS_NAMES: readonly string[] = [
  "localhost",
  "kubernetes",
  "kubernetes.default",
  "kubernetes.default.svc",
  "kubernetes.default.svc.cluster.local",
];

/** Group of the cluster administrators (bypasses authorization). */
export const SYSTEM_MASTERS = "system:masters";

const DEFAULT_VALIDITY_DAYS = 30;

/**
 * Generates the complete PKI of a control plane in `dir` (created if missing).
 *
 * @param dir - directory for the PEM files; private keys are written mode 0600
 * @returns the paths of every certificate and key
 * @throws UnavailableError when `openssl` cannot be run
 */
export async function generateControlPlanePki(
  dir: string,
  options: PkiOptions = {},
): Promise<ControlPlanePki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const days = options.validityDays ?? DEFAULT_VALIDITY_DAYS;
  const serviceIp = options.serviceIp ?? "10.96.0.1";

  const ca = await createCa(dir, "ca", "kubernetes-ca", days);
  const frontProxyCa = await createCa(dir, "front-proxy-ca", "front-proxy-ca", days);
  const issue = (name: string, spec: CertificateSpec, issuer: CertKeyPair = ca) =>
    issueCertificate(issuer, dir, name, spec, days);

  const apiserver = await issue("apiserver", {
    commonName: "kube-apiserver",
    dnsNames: [...APISERVER_DNS_NAMES, ...(options.extraDnsNames ?? [])],
    ipAddresses: ["127.0.0.1", serviceIp, ...(options.extraIpAddresses ?? [])],
    usages: ["serverAuth"],
  });
  const apiserverKubeletClient = await issue("apiserver-kubelet-client", {
    commonName: "kube-apiserver-kubelet-client",
    organizations: [SYSTEM_MASTERS],
  });
  const frontProxyClient = await issue(
    "front-proxy-client",
    { commonName: "front-proxy-client" },
    frontProxyCa,
  );
  const admin = await issue("admin", { commonName: "kubernetes-admin", organizations: [SYSTEM_MASTERS] });
  const controllerManager = await issue("controller-manager", {
    commonName: "system:kube-controller-manager",
  });
  const scheduler = await issue("scheduler", { commonName: "system:kube-scheduler" });

  const sa = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const serviceAccount = { publicKeyPath: join(dir, "sa.pub"), privateKeyPath: join(dir, "sa.key") };
  await writeFile(serviceAccount.publicKeyPath, sa.publicKey.export({ type: "spki", format: "pem" }));
  await writeFile(serviceAccount.privateKeyPath, sa.privateKey.export({ type: "pkcs8", format: "pem" }), {
    mode: 0o600,
  });

  return {
    dir,
    ca,
    apiserver,
    apiserverKubeletClient,
    frontProxyCa,
    frontProxyClient,
    serviceAccount,
    admin,
    controllerManager,
    scheduler,
  };
}

/** DNS-1123 subdomain: what Kubernetes accepts as a Node name. */
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Issues a node client certificate (`CN=system:node:<name>, O=system:nodes`),
 * the identity the Node authorizer and NodeRestriction admission recognise.
 *
 * @param pki - the PKI whose cluster CA signs it
 * @param nodeName - Node name (DNS-1123 subdomain)
 * @throws ConfigError when `nodeName` is not a valid Node name
 */
export async function issueNodeClientCertificate(
  pki: ControlPlanePki,
  nodeName: string,
  options: { readonly validityDays?: number } = {},
): Promise<CertKeyPair> {
  if (nodeName.length > 253 || !NODE_NAME.test(nodeName)) {
    throw new ConfigError(`invalid node name ${JSON.stringify(nodeName)}: must be a DNS-1123 subdomain`);
  }
  const dir = join(pki.dir, "nodes");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return issueCertificate(
    pki.ca,
    dir,
    nodeName,
    { commonName: `system:node:${nodeName}`, organizations: ["system:nodes"] },
    options.validityDays ?? DEFAULT_VALIDITY_DAYS,
  );
}

/**
 * Issues a certificate signed by `issuer`, writing `<name>.crt` and `<name>.key` into `dir`.
 *
 * @throws ConfigError when a subject field contains a character the subject syntax cannot carry
 * @throws UnavailableError when `openssl` cannot be run or fails
 */
export async function issueCertificate(
  issuer: CertKeyPair,
  dir: string,
  name: string,
  spec: CertificateSpec,
  validityDays: number = DEFAULT_VALIDITY_DAYS,
): Promise<CertKeyPair> {
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.crt`);
  const csrPath = join(dir, `${name}.csr`);
  const extPath = join(dir, `${name}.ext`);
  const confPath = join(dir, `${name}.req.cnf`);
  await writePrivateKey(keyPath);
  await writeFile(confPath, renderRequestConfig(false));
  await openssl([
    "req",
    "-new",
    "-config",
    confPath,
    "-key",
    keyPath,
    "-subj",
    renderSubject(spec),
    "-out",
    csrPath,
  ]);
  await writeFile(extPath, renderExtensions(spec));
  await openssl([
    "x509",
    "-req",
    "-in",
    csrPath,
    "-CA",
    issuer.certPath,
    "-CAkey",
    issuer.keyPath,
    "-set_serial",
    randomSerial(),
    "-days",
    String(validityDays),
    "-sha256",
    "-extfile",
    extPath,
    "-out",
    certPath,
  ]);
  return { certPath, keyPath };
}

/**
 * Verifies that `certPath` chains to `caPath` (`openssl verify`).
 *
 * @returns `true` when the chain verifies, `false` when openssl rejects it
 * @throws UnavailableError when `openssl` cannot be run
 */
export async function verifyCertificate(caPath: string, certPath: string): Promise<boolean> {
  try {
    await openssl(["verify", "-CAfile", caPath, certPath]);
    return true;
  } catch (error) {
    if (error instanceof OpensslFailedError) return false;
    throw error;
  }
}

/** Reads a PEM file as text (for embedding into kubeconfigs). */
export function readPem(path: string): Promise<string> {
  return readFile(path, "utf8");
}

/**
 * Renders the `-subj` argument of `openssl req`: organizations first, then
 * the common name (`/O=system:nodes/CN=system:node:a`).
 *
 * @throws ConfigError when a value contains `/`, `\`, `+`, `=` or a control character
 */
export function renderSubject(spec: CertificateSpec): string {
  const parts = [
    ...(spec.organizations ?? []).map((o) => ["O", o] as const),
    ["CN", spec.commonName] as const,
  ];
  return parts
    .map(([field, value]) => {
      // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
      if (value.length === 0 || /[/\\+=\x00-\x1f\x7f]/.test(value)) {
        throw new ConfigError(
          `certificate subject ${field}=${JSON.stringify(value)} is empty or has a reserved character`,
        );
      }
      return `/${field}=${value}`;
    })
    .join("");
}

/** Renders the `openssl x509 -extfile` section of a leaf certificate. */
export function renderExtensions(spec: CertificateSpec): string {
  const sans = [
    ...(spec.dnsNames ?? []).map((d) => `DNS:${d}`),
    ...(spec.ipAddresses ?? []).map((ip) => `IP:${ip}`),
  ];
  const usages = spec.usages ?? (sans.length > 0 ? ["serverAuth"] : ["clientAuth"]);
  const lines = [
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    `extendedKeyUsage=${usages.join(",")}`,
    "subjectKeyIdentifier=hash",
    "authorityKeyIdentifier=keyid,issuer",
  ];
  if (sans.length > 0) lines.push(`subjectAltName=${sans.join(",")}`);
  return `${lines.join("\n")}\n`;
}

/**
 * Renders the `openssl req -config` file: no prompts, and for a self-signed CA
 * the CA extensions (so the system openssl.cnf never adds its own).
 */
export function renderRequestConfig(selfSignedCa: boolean): string {
  const lines = ["[req]", "distinguished_name = dn", "prompt = no"];
  if (selfSignedCa) lines.push("x509_extensions = ca_ext");
  lines.push("[dn]");
  if (selfSignedCa) {
    lines.push(
      "[ca_ext]",
      "basicConstraints = critical,CA:TRUE",
      "keyUsage = critical,digitalSignature,keyEncipherment,keyCertSign",
      "subjectKeyIdentifier = hash",
      "authorityKeyIdentifier = keyid:always",
    );
  }
  return `${lines.join("\n")}\n`;
}

async function createCa(dir: string, name: string, commonName: string, days: number): Promise<CertKeyPair> {
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.crt`);
  const confPath = join(dir, `${name}.req.cnf`);
  await writePrivateKey(keyPath);
  await writeFile(confPath, renderRequestConfig(true));
  await openssl([
    "req",
    "-x509",
    "-new",
    "-config",
    confPath,
    "-key",
    keyPath,
    "-subj",
    renderSubject({ commonName }),
    "-days",
    String(days),
    "-sha256",
    "-set_serial",
    randomSerial(),
    "-out",
    certPath,
  ]);
  return { certPath, keyPath };
}

async function writePrivateKey(path: string): Promise<void> {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  await writeFile(path, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive
  return `0x${bytes.toString("hex")}`;
}

/** `openssl` ran and exited non-zero. */
class OpensslFailedError extends UnavailableError {}

function openssl(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("openssl", args, { encoding: "utf8" }, (error, stdout, stderr) => {
      if (!error) {
        resolve(stdout);
        return;
      }
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") {
        reject(
          new UnavailableError("openssl", "openssl is not installed (apt-get install openssl)", {
            cause: error,
          }),
        );
        return;
      }
      reject(
        new OpensslFailedError(
          "openssl",
          `openssl ${args[0] ?? ""} failed: ${stderr.trim() || error.message}`,
          {
            cause: error,
          },
        ),
      );
    });
  });
}
