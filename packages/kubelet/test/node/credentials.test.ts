import { verify } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ConfigError } from "@worknode/core";
import { afterAll, describe, expect, it } from "vitest";
import {
  clientCertFileName,
  clientCertificateProblem,
  createCsrPem,
  generateClientKey,
  KUBELET_CLIENT_SIGNER,
  loadKubeconfig,
  nodeClientCsrObject,
  nodeClientSubject,
  renderKubeletKubeconfig,
  rotationDeadline,
} from "../../src/index.js";

const dir = mkdtempSync(path.join(tmpdir(), "wnnode-cred-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Reads one DER TLV at `offset`: its tag, the content range and the end. */
function tlv(buf: Buffer, offset: number): { tag: number; start: number; end: number } {
  const tag = buf[offset] ?? 0;
  let len = buf[offset + 1] ?? 0;
  let start = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[start + i] ?? 0);
    start += n;
  }
  return { tag, start, end: start + len };
}

describe("CSR", () => {
  it("is a PKCS#10 request for CN=system:node:<name>, O=system:nodes, signed by the key", () => {
    const key = generateClientKey();
    expect(key.pem).toContain("BEGIN EC PRIVATE KEY");
    const pem = createCsrPem(key.privateKey, nodeClientSubject("node-1"));
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n/);
    const der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ""), "base64");
    const outer = tlv(der, 0);
    expect(outer.tag).toBe(0x30);
    expect(outer.end).toBe(der.length);
    const info = tlv(der, outer.start);
    const alg = tlv(der, info.end);
    const sig = tlv(der, alg.end);
    expect(sig.tag).toBe(0x03);
    const infoBytes = der.subarray(outer.start, info.end);
    const signature = der.subarray(sig.start + 1, sig.end); // skip the unused-bits byte
    expect(verify("sha256", infoBytes, { key: key.privateKey, dsaEncoding: "der" }, signature)).toBe(true);
    const text = infoBytes.toString("latin1");
    expect(text).toContain("system:node:node-1");
    expect(text).toContain("system:nodes");
    expect(text.indexOf("system:nodes")).toBeLessThan(text.indexOf("system:node:node-1")); // O before CN, like Go
  });

  it("refuses non-EC keys", async () => {
    const { generateKeyPairSync } = await import("node:crypto");
    const { privateKey } = generateKeyPairSync("ed25519");
    expect(() => createCsrPem(privateKey, nodeClientSubject("n"))).toThrow(ConfigError);
  });

  it("is posted for the kubelet client signer with kubelet's ECDSA usages", () => {
    expect(nodeClientCsrObject("PEM")).toEqual({
      apiVersion: "certificates.k8s.io/v1",
      kind: "CertificateSigningRequest",
      metadata: { generateName: "csr-" },
      spec: {
        request: Buffer.from("PEM").toString("base64"),
        signerName: KUBELET_CLIENT_SIGNER,
        usages: ["digital signature", "client auth"],
      },
    });
    expect(KUBELET_CLIENT_SIGNER).toBe("kubernetes.io/kube-apiserver-client-kubelet");
  });
});

describe("rotationDeadline", () => {
  const v = { notBefore: 1_000_000, notAfter: 1_000_000 + 1_000_000 };

  it("lies between 70 % and 90 % of the lifetime", () => {
    expect(rotationDeadline(v, 0)).toBe(1_700_000);
    expect(rotationDeadline(v, 0.5)).toBe(1_800_000);
    expect(rotationDeadline(v, 0.999999)).toBeLessThan(1_900_000);
    expect(rotationDeadline(v, 0.999999)).toBeGreaterThan(1_899_000);
  });

  it("honours a custom window and rejects a bad one", () => {
    expect(rotationDeadline(v, 0.5, { min: 0, max: 0.1 })).toBe(1_050_000);
    expect(() => rotationDeadline(v, 0.5, { min: 0.9, max: 0.7 })).toThrow(RangeError);
    expect(() => rotationDeadline(v, 0.5, { min: 0, max: 1.5 })).toThrow(RangeError);
  });

  it("clamps a zero or negative lifetime to notBefore", () => {
    expect(rotationDeadline({ notBefore: 5, notAfter: 1 }, 0.5)).toBe(5);
  });
});

describe("kubeconfig", () => {
  it("names the file and the problem on errors", async () => {
    await expect(loadKubeconfig(path.join(dir, "missing"))).rejects.toThrow(/missing: cannot read/);
    const bad = path.join(dir, "bad.yaml");
    writeFileSync(
      bad,
      "apiVersion: v1\nkind: Config\ncurrent-context: nope\ncontexts: []\nclusters: []\nusers: []\n",
    );
    await expect(loadKubeconfig(bad)).rejects.toThrow(ConfigError);
    await expect(loadKubeconfig(bad)).rejects.toThrow(/bad.yaml: no current context/);
  });

  it("renders the kubelet's kubeconfig, which loads back pointing at the current pem", async () => {
    const file = path.join(dir, "kubelet.conf");
    writeFileSync(
      file,
      renderKubeletKubeconfig({
        server: "https://127.0.0.1:6443",
        caPem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        clientCertPath: "/var/lib/kubelet/pki/kubelet-client-current.pem",
      }),
    );
    const kc = await loadKubeconfig(file);
    expect(kc.getCurrentCluster()?.server).toBe("https://127.0.0.1:6443");
    expect(kc.getCurrentUser()?.certFile).toBe("/var/lib/kubelet/pki/kubelet-client-current.pem");
    expect(kc.getCurrentUser()?.keyFile).toBe("/var/lib/kubelet/pki/kubelet-client-current.pem");
    expect(await clientCertificateProblem(kc)).toMatch(/client certificate unreadable/);
  });

  it("finds nothing wrong with token credentials", async () => {
    const file = path.join(dir, "token.conf");
    writeFileSync(
      file,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]",
        "users: [{name: u, user: {token: abc}}]",
        "contexts: [{name: x, context: {cluster: c, user: u}}]",
        "current-context: x",
      ].join("\n"),
    );
    expect(await clientCertificateProblem(await loadKubeconfig(file))).toBeUndefined();
  });

  it("names certificate files with kubelet's timestamp layout", () => {
    expect(clientCertFileName(Date.parse("2026-01-02T03:04:05.678Z"))).toBe(
      "kubelet-client-2026-01-02-03-04-05.pem",
    );
  });
});
