/**
 * Key pairs and PKCS#10 certificate signing requests for kubelet client certificates:
 * an EC P-256 key (node:crypto) and a CSR for `CN=system:node:<name>, O=system:nodes`
 * signed with ECDSA-SHA256, DER-encoded here (a CSR is a few fixed ASN.1 structures).
 *
 * @module
 */
import { createPublicKey, generateKeyPairSync, type KeyObject, sign, X509Certificate } from "node:crypto";
import { ConfigError } from "@worknode/core";

/** A private key with its PEM (SEC1 `EC PRIVATE KEY`, as the kubelet writes it). */
export interface ClientKey {
  /** The key. */
  readonly privateKey: KeyObject;
  /** Its PEM. */
  readonly pem: string;
}

/** Generates an EC P-256 private key, the kind the kubelet uses for its client certificate. */
export function generateClientKey(): ClientKey {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { privateKey, pem: privateKey.export({ type: "sec1", format: "pem" }).toString() };
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

const OID_ORGANIZATION = Buffer.from([0x06, 0x03, 0x55, 0x04, 0x0a]); // 2.5.4.10
const OID_COMMON_NAME = Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03]); // 2.5.4.3
const OID_ECDSA_WITH_SHA256 = Buffer.from([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]); // 1.2.840.10045.4.3.2

/** A certificate subject: one common name and its organizations (in that RDN order after O, like Go). */
export interface CsrSubject {
  /** `CN`. */
  readonly commonName: string;
  /** `O` values. */
  readonly organizations: readonly string[];
}

function encodeName(subject: CsrSubject): Buffer {
  const rdn = (oid: Buffer, value: string) =>
    der(0x31, der(0x30, oid, der(0x0c, Buffer.from(value, "utf8"))));
  return der(
    0x30,
    ...subject.organizations.map((o) => rdn(OID_ORGANIZATION, o)),
    rdn(OID_COMMON_NAME, subject.commonName),
  );
}

function toPem(label: string, body: Buffer): string {
  const b64 = body
    .toString("base64")
    .replace(/(.{64})/g, "$1\n")
    .replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/**
 * Creates a PKCS#10 CSR (PEM) for `subject` signed by an EC `privateKey` with ECDSA-SHA256.
 *
 * @throws ConfigError when the key is not an EC key
 */
export function createCsrPem(privateKey: KeyObject, subject: CsrSubject): string {
  if (privateKey.asymmetricKeyType !== "ec") throw new ConfigError("a CSR key must be an EC key");
  const spki = createPublicKey(privateKey).export({ type: "spki", format: "der" });
  const info = der(
    0x30,
    Buffer.from([0x02, 0x01, 0x00]),
    encodeName(subject),
    spki,
    Buffer.from([0xa0, 0x00]),
  );
  const signature = sign("sha256", info, { key: privateKey, dsaEncoding: "der" });
  const bitString = der(0x03, Buffer.from([0x00]), signature);
  return toPem("CERTIFICATE REQUEST", der(0x30, info, der(0x30, OID_ECDSA_WITH_SHA256), bitString));
}

/** The subject of a node client certificate: `CN=system:node:<name>, O=system:nodes`. */
export function nodeClientSubject(nodeName: string): CsrSubject {
  return { commonName: `system:node:${nodeName}`, organizations: ["system:nodes"] };
}

/** A certificate's validity, serial and subject. */
export interface CertificateValidity {
  /** Start of validity, epoch ms. */
  readonly notBefore: number;
  /** End of validity, epoch ms. */
  readonly notAfter: number;
  /** Serial number (hex). */
  readonly serialNumber: string;
  /** Subject, one `key=value` per line. */
  readonly subject: string;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

/**
 * Reads the validity of the first certificate in a PEM bundle.
 *
 * @throws ConfigError when the PEM holds no parsable certificate
 */
export function certificateValidity(pem: string): CertificateValidity {
  const block = CERT_BLOCK.exec(pem)?.[0];
  if (!block) throw new ConfigError("no certificate found in PEM data");
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(block);
  } catch (err) {
    throw new ConfigError("the certificate cannot be parsed", { cause: err });
  }
  return {
    notBefore: Date.parse(cert.validFrom),
    notAfter: Date.parse(cert.validTo),
    serialNumber: cert.serialNumber,
    subject: cert.subject,
  };
}
