// TLS bootstrap and client certificate rotation against a real control plane: from only the
// bootstrap-token kubeconfig, the kubelet creates a CSR that kube-controller-manager's
// csrapproving controller approves and its signer signs with the cluster CA, stores the
// certificate in <rootDir>/pki (kubelet's layout), writes its kubeconfig and registers its
// Node as system:node:<name> (NodeRestriction in force); the rotator then renews the
// certificate with a CSR authenticated by the current one, and later requests use the new one.
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ApiStatusError, KubeApiClient, type Node } from "@worknode/core";
import { type ControlPlane, startControlPlane } from "@worknode/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bootstrapClientCertificate,
  buildNode,
  CertificateRotator,
  CertificateStore,
  certificateValidity,
  loadKubeconfig,
  NodeRegistrar,
  nodePath,
  readMachineInfo,
  type StoredCertificate,
} from "../src/index.js";

const NODE = "wnboot-node";

let cp: ControlPlane;
let dir: string;
let rootDir: string;
let kubeconfigPath: string;
let rotator: CertificateRotator | undefined;

beforeAll(async () => {
  cp = await startControlPlane();
  dir = mkdtempSync(path.join(tmpdir(), "wnboot-"));
  rootDir = path.join(dir, "kubelet");
  kubeconfigPath = path.join(dir, "etc", "kubelet.conf");
}, 300_000);

afterAll(async () => {
  await rotator?.stop();
  await cp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

interface SelfSubjectReview {
  status?: { userInfo?: { username?: string; groups?: string[] } };
}

async function whoAmI(api: KubeApiClient): Promise<string | undefined> {
  const review = await api.requestJson<SelfSubjectReview>(
    "POST",
    "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    { body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } },
  );
  return review.status?.userInfo?.username;
}

describe("TLS bootstrap", () => {
  it("obtains an approved client certificate, writes pki files and kubeconfig, and registers the Node", async () => {
    if (!cp.bootstrapKubeconfigPath) throw new Error("the control plane has no bootstrap kubeconfig");
    const result = await bootstrapClientCertificate({
      kubeconfigPath,
      bootstrapKubeconfigPath: cp.bootstrapKubeconfigPath,
      rootDir,
      nodeName: NODE,
      pollIntervalMs: 250,
      timeoutMs: 120_000,
    });
    expect(result.outcome).toBe("requested");

    const current = path.join(rootDir, "pki", "kubelet-client-current.pem");
    expect(lstatSync(current).isSymbolicLink()).toBe(true);
    const target = readlinkSync(current);
    expect(target).toMatch(/^kubelet-client-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}\.pem$/);
    expect(statSync(path.join(rootDir, "pki", target)).mode & 0o777).toBe(0o600);
    const pem = readFileSync(current, "utf8");
    expect(pem).toContain("BEGIN CERTIFICATE");
    expect(pem).toContain("BEGIN EC PRIVATE KEY");
    const validity = certificateValidity(pem);
    expect(validity.subject).toContain(`CN=system:node:${NODE}`);
    expect(validity.subject).toContain("O=system:nodes");
    expect(statSync(kubeconfigPath).mode & 0o777).toBe(0o600);

    const kc = await loadKubeconfig(kubeconfigPath);
    expect(kc.getCurrentUser()?.certFile).toBe(current);
    const api = new KubeApiClient(kc);
    expect(await whoAmI(api)).toBe(`system:node:${NODE}`);

    const machine = await readMachineInfo(dir);
    const registrar = new NodeRegistrar({
      api,
      desiredNode: () =>
        buildNode({
          nodeName: NODE,
          nodeIPs: ["192.0.2.20"],
          machine,
          runtime: { runtimeName: "containerd", runtimeVersion: "v0.0.0-not-queried" },
        }),
    });
    const node = await registrar.register(AbortSignal.timeout(60_000));
    expect(node.metadata?.name).toBe(NODE);
    const stored = await new KubeApiClient(cp.adminKubeConfig).requestJson<Node>("GET", nodePath(NODE));
    expect(stored.metadata?.labels?.["kubernetes.io/hostname"]).toBe(NODE);

    // NodeRestriction: the node may not create (or write) another node
    const err = await api
      .requestJson("POST", "/api/v1/nodes", {
        body: { apiVersion: "v1", kind: "Node", metadata: { name: "other" } },
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ApiStatusError);
    expect((err as ApiStatusError).status).toBe(403);

    // a second start finds the kubeconfig usable
    const again = await bootstrapClientCertificate({
      kubeconfigPath,
      bootstrapKubeconfigPath: cp.bootstrapKubeconfigPath,
      rootDir,
      nodeName: NODE,
    });
    expect(again.outcome).toBe("existing");
  }, 180_000);

  it("rotates the client certificate and later requests use the new one", async () => {
    const store = new CertificateStore(rootDir);
    const before = await store.current();
    if (!before) throw new Error("no current certificate");
    const api = new KubeApiClient(await loadKubeconfig(kubeconfigPath));
    const rotated = new Promise<StoredCertificate>((resolve) => {
      rotator = new CertificateRotator({
        api,
        nodeName: NODE,
        store,
        pollIntervalMs: 250,
        // a short threshold for the first certificate only; its successor gets kubelet's 70-90 %
        deadline: (v) =>
          v.serialNumber === before.validity.serialNumber
            ? Date.now() + 1_000
            : v.notBefore + 0.8 * (v.notAfter - v.notBefore),
        onRotated: resolve,
      });
      rotator.start();
    });
    const after = await rotated;
    expect(after.validity.serialNumber).not.toBe(before.validity.serialNumber);
    expect(readlinkSync(store.currentPath)).not.toBe(path.basename(before.path));
    const leaf = certificateValidity(readFileSync(store.currentPath, "utf8"));
    expect(leaf.serialNumber).toBe(after.validity.serialNumber);
    // the same client (credentials applied per request) now presents the new certificate
    expect(await whoAmI(api)).toBe(`system:node:${NODE}`);
    const node = await api.requestJson<Node>("GET", nodePath(NODE));
    expect(node.metadata?.name).toBe(NODE);
  }, 120_000);
});
