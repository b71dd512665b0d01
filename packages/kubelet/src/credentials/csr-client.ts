/**
 * Obtaining a kubelet client certificate through the certificates.k8s.io/v1 API:
 * POST a CertificateSigningRequest (signer `kubernetes.io/kube-apiserver-client-kubelet`,
 * usages `digital signature` + `client auth` as the kubelet requests for ECDSA keys),
 * then wait until it is approved and signed; a denied or failed request is a typed error.
 *
 * @module
 */
import {
  AbortedError,
  type Clock,
  type KubeApiClient,
  type Logger,
  realClock,
  silentLogger,
  UnavailableError,
  WorknodeError,
} from "@worknode/core";
import { type ClientKey, createCsrPem, generateClientKey, nodeClientSubject } from "./csr.js";

/** The signer of kubelet client certificates. */
export const KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet";
/** The usages the kubelet requests for an ECDSA client key. */
export const KUBELET_CLIENT_USAGES: readonly string[] = ["digital signature", "client auth"];

const CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

/** A CertificateSigningRequest condition (wire form). */
export interface CsrCondition {
  /** `Approved`, `Denied` or `Failed`. */
  type?: string;
  /** `True` / `False`. */
  status?: string;
  /** CamelCase reason. */
  reason?: string;
  /** Human-readable message. */
  message?: string;
}

/** The parts of a CertificateSigningRequest read here. */
interface CertificateSigningRequestWire {
  metadata?: { name?: string };
  status?: { conditions?: CsrCondition[]; certificate?: string };
}

/** A CertificateSigningRequest was denied or failed. */
export class CertificateRequestError extends WorknodeError {
  /** The CSR's name. */
  readonly csrName: string;
  /** `Denied` or `Failed`. */
  readonly conditionType: string;

  constructor(csrName: string, condition: CsrCondition) {
    const type = condition.type ?? "Failed";
    super(
      type === "Denied" ? "CSR_DENIED" : "CSR_FAILED",
      `certificate signing request ${csrName} ${type === "Denied" ? "was denied" : "failed"}${condition.reason ? ` (${condition.reason})` : ""}${condition.message ? `: ${condition.message}` : ""}`,
    );
    this.csrName = csrName;
    this.conditionType = type;
  }
}

/** Options of {@link requestNodeClientCertificate}. */
export interface NodeCertificateRequestOptions {
  /** API client: the bootstrap credentials, or the current client certificate when rotating. */
  readonly api: KubeApiClient;
  /** The node name. */
  readonly nodeName: string;
  /** Key to certify; default a fresh EC P-256 key. */
  readonly key?: ClientKey;
  /** How often to look at the CSR; default 1 s. */
  readonly pollIntervalMs?: number;
  /** How long to wait for approval; default 15 min (kubelet's bootstrap wait). */
  readonly timeoutMs?: number;
  /** Cancels the wait. */
  readonly signal?: AbortSignal;
  /** Clock; default the real clock. */
  readonly clock?: Clock;
  /** Logger; default silent. */
  readonly logger?: Logger;
}

/** An issued client certificate and its key. */
export interface IssuedCertificate {
  /** The certificate chain, PEM. */
  readonly certPem: string;
  /** The private key, PEM. */
  readonly keyPem: string;
  /** The name of the CSR that produced it. */
  readonly csrName: string;
}

/** The CertificateSigningRequest object the kubelet posts for `csrPem`. */
export function nodeClientCsrObject(csrPem: string): Record<string, unknown> {
  return {
    apiVersion: "certificates.k8s.io/v1",
    kind: "CertificateSigningRequest",
    metadata: { generateName: "csr-" },
    spec: {
      request: Buffer.from(csrPem).toString("base64"),
      signerName: KUBELET_CLIENT_SIGNER,
      usages: [...KUBELET_CLIENT_USAGES],
    },
  };
}

/**
 * Requests a node client certificate and waits until it is issued.
 *
 * @throws CertificateRequestError when the CSR is denied or fails
 * @throws UnavailableError when it is not issued in time
 * @throws AbortedError when the signal aborts
 * @throws ApiStatusError when the API server refuses the request
 */
export async function requestNodeClientCertificate(
  options: NodeCertificateRequestOptions,
): Promise<IssuedCertificate> {
  const { api, signal } = options;
  const clock = options.clock ?? realClock;
  const logger = options.logger ?? silentLogger();
  const key = options.key ?? generateClientKey();
  const csrPem = createCsrPem(key.privateKey, nodeClientSubject(options.nodeName));
  const created = await api.requestJson<CertificateSigningRequestWire>("POST", CSR_PATH, {
    body: nodeClientCsrObject(csrPem),
    signal,
  });
  const name = created.metadata?.name ?? "";
  logger.info(
    { csr: name, node: options.nodeName },
    "created certificate signing request; waiting for approval",
  );
  const deadline = clock.monotonic() + (options.timeoutMs ?? 15 * 60_000);
  let csr = created;
  for (;;) {
    const conditions = csr.status?.conditions ?? [];
    const bad = conditions.find((c) => (c.type === "Denied" || c.type === "Failed") && c.status !== "False");
    if (bad) throw new CertificateRequestError(name, bad);
    const approved = conditions.some((c) => c.type === "Approved" && c.status !== "False");
    if (approved && csr.status?.certificate) {
      logger.info({ csr: name }, "certificate signing request approved and issued");
      return {
        certPem: Buffer.from(csr.status.certificate, "base64").toString("utf8"),
        keyPem: key.pem,
        csrName: name,
      };
    }
    if (clock.monotonic() > deadline) {
      throw new UnavailableError(CSR_PATH, `certificate signing request ${name} was not issued in time`);
    }
    try {
      await clock.sleep(options.pollIntervalMs ?? 1_000, signal);
    } catch (err) {
      throw new AbortedError(`waiting for certificate signing request ${name} aborted`, { cause: err });
    }
    csr = await api.requestJson<CertificateSigningRequestWire>(
      "GET",
      `${CSR_PATH}/${encodeURIComponent(name)}`,
      {
        signal,
      },
    );
  }
}
