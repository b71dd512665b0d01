import { execFile } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ConfigError } from "@worknode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ControlPlanePki,
  generateControlPlanePki,
  issueNodeClientCertificate,
  renderExtensions,
  renderSubject,
  verifyCertificate,
} from "../src/pki.js";

const run = promisify(execFile);

/** Prints a certificate's subject, SANs and extended key usage with openssl (an independent reader). */
async function describeCert(path: string): Promise<string> {
  const { stdout } = await run("openssl", [
    "x509",
    "-in",
    path,
    "-noout",
    "-subject",
    "-nameopt",
    "RFC2253",
    "-ext",
    "subjectAltName,extendedKeyUsage,basicConstraints",
  ]);
  return stdout;
}

describe("control-plane PKI", () => {
  let dir: string;
  let pki: ControlPlanePki;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "worknode-pki-test-"));
    pki = await generateControlPlanePki(join(dir, "pki"), { extraDnsNames: ["api.test"] });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("chains every cluster certificate to the cluster CA and not to the front-proxy CA", async () => {
    for (const pair of [
      pki.apiserver,
      pki.apiserverKubeletClient,
      pki.admin,
      pki.controllerManager,
      pki.scheduler,
    ]) {
      expect(await verifyCertificate(pki.ca.certPath, pair.certPath), pair.certPath).toBe(true);
      expect(await verifyCertificate(pki.frontProxyCa.certPath, pair.certPath), pair.certPath).toBe(false);
    }
  });

  it("chains the front-proxy client to the front-proxy CA only", async () => {
    expect(await verifyCertificate(pki.frontProxyCa.certPath, pki.frontProxyClient.certPath)).toBe(true);
    expect(await verifyCertificate(pki.ca.certPath, pki.frontProxyClient.certPath)).toBe(false);
  });

  it("gives the serving certificate the loopback, service and kubernetes names", async () => {
    const text = await describeCert(pki.apiserver.certPath);
    for (const san of [
      "IP Address:127.0.0.1",
      "IP Address:10.96.0.1",
      "DNS:localhost",
      "DNS:kubernetes",
      "DNS:kubernetes.default",
      "DNS:api.test",
    ]) {
      expect(text).toContain(san);
    }
    expect(text).toContain("TLS Web Server Authentication");
    expect(text).toContain("CA:FALSE");
  });

  it("makes the admin a system:masters client", async () => {
    const text = await describeCert(pki.admin.certPath);
    expect(text).toMatch(/subject=CN=kubernetes-admin,O=system:masters/);
    expect(text).toContain("TLS Web Client Authentication");
    expect(text).not.toContain("Subject Alternative Name");
  });

  it("makes both CAs real CAs", async () => {
    for (const ca of [pki.ca, pki.frontProxyCa]) {
      expect(await describeCert(ca.certPath)).toContain("CA:TRUE");
      expect(await verifyCertificate(ca.certPath, ca.certPath)).toBe(true);
    }
  });

  it("issues node client certificates with the node identity", async () => {
    const node = await issueNodeClientCertificate(pki, "worker-1.example");
    expect(await verifyCertificate(pki.ca.certPath, node.certPath)).toBe(true);
    const text = await describeCert(node.certPath);
    expect(text).toMatch(/subject=CN=system:node:worker-1\.example,O=system:nodes/);
    expect((await stat(node.keyPath)).mode & 0o077).toBe(0);
  });

  it("writes a service-account key pair whose halves match", async () => {
    const pub = await run("openssl", ["pkey", "-in", pki.serviceAccount.privateKeyPath, "-pubout"]);
    const { stdout: onDisk } = await run("openssl", [
      "pkey",
      "-pubin",
      "-in",
      pki.serviceAccount.publicKeyPath,
    ]);
    expect(pub.stdout).toBe(onDisk);
    expect((await stat(pki.serviceAccount.privateKeyPath)).mode & 0o077).toBe(0);
  });

  it("rejects node names and subject values it cannot encode", async () => {
    await expect(issueNodeClientCertificate(pki, "Bad_Name")).rejects.toBeInstanceOf(ConfigError);
    await expect(issueNodeClientCertificate(pki, "a/b")).rejects.toBeInstanceOf(ConfigError);
    expect(() => renderSubject({ commonName: "x", organizations: ["a/CN=admin"] })).toThrow(ConfigError);
    expect(renderSubject({ commonName: "system:node:a", organizations: ["system:nodes"] })).toBe(
      "/O=system:nodes/CN=system:node:a",
    );
  });

  it("renders server usages and SANs only for serving certificates", () => {
    expect(renderExtensions({ commonName: "c" })).toContain("extendedKeyUsage=clientAuth");
    expect(renderExtensions({ commonName: "c" })).not.toContain("subjectAltName");
    const serving = renderExtensions({ commonName: "s", dnsNames: ["a"], ipAddresses: ["127.0.0.1"] });
    expect(serving).toContain("extendedKeyUsage=serverAuth");
    expect(serving).toContain("subjectAltName=DNS:a,IP:127.0.0.1");
  });
});
