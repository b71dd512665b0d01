/**
 * Authentication through the KubeConfig: client certificates over TLS, bearer
 * tokens and exec credential plugins, against the fake API server.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { objectKey, type Service } from "../../src/kube/objects.js";
import { Informer } from "../../src/sources/informer.js";
import { KUBE_RESOURCES } from "../../src/sources/kube-client.js";
import { FakeClock } from "../../src/util/clock.js";
import { FakeApiServer, waitFor } from "../helpers/fake-apiserver.js";

const run = promisify(execFile);

interface Pki {
  ca: string;
  serverKey: string;
  serverCert: string;
  clientKey: string;
  clientCert: string;
}

let dir: string;
let pki: Pki;

/** A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
async function makePki(d: string): Promise<Pki> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const p = (name: string) => join(d, name);
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.crt"),
    "-subj",
    "/CN=fake-ca",
    "-days",
    "1",
  ]);
  await writeFile(p("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  await writeFile(p("client.ext"), "extendedKeyUsage=clientAuth\n");
  for (const [name, subj] of [
    ["server", "/CN=fake-apiserver"],
    ["client", "/O=system:nodes/CN=system:node:node1"],
  ] as const) {
    await run("openssl", [
      "req",
      ...ec,
      "-keyout",
      p(`${name}.key`),
      "-out",
      p(`${name}.csr`),
      "-subj",
      subj,
    ]);
    await run("openssl", [
      "x509",
      "-req",
      "-in",
      p(`${name}.csr`),
      "-CA",
      p("ca.crt"),
      "-CAkey",
      p("ca.key"),
      "-CAcreateserial",
      "-days",
      "1",
      "-extfile",
      p(`${name}.ext`),
      "-out",
      p(`${name}.crt`),
    ]);
  }
  const read = (name: string) => readFile(p(name), "utf8");
  return {
    ca: await read("ca.crt"),
    serverKey: await read("server.key"),
    serverCert: await read("server.crt"),
    clientKey: await read("client.key"),
    clientCert: await read("client.crt"),
  };
}

const b64 = (s: string) => Buffer.from(s).toString("base64");

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "worknode-informer-pki-"));
  pki = await makePki(dir);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let server: FakeApiServer | undefined;
let informer: Informer<Service> | undefined;

afterEach(async () => {
  await informer?.stop();
  informer = undefined;
  await server?.close();
  server = undefined;
});

function newInformer(s: FakeApiServer, kubeConfig = s.kubeConfig()): Informer<Service> {
  informer = new Informer<Service>({
    resource: KUBE_RESOURCES.services,
    kubeConfig,
    clock: new FakeClock(),
    backoff: { initialMs: 1000, maxMs: 1000 },
  });
  return informer;
}

describe("Informer authentication", () => {
  it("authenticates with a client certificate over TLS, verifying the server against the CA", async () => {
    server = await FakeApiServer.start({
      tls: { key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, requestCert: true },
    });
    server.add("services", { metadata: { name: "kubernetes" } });
    const kc = server.kubeConfig(
      { certData: b64(pki.clientCert), keyData: b64(pki.clientKey) },
      { caData: b64(pki.ca) },
    );
    const inf = newInformer(server, kc);
    await inf.start();
    expect(inf.list().map(objectKey)).toEqual(["default/kubernetes"]);
    expect(server.requestsOf("list")[0]!.clientCertCN).toBe("system:node:node1");
    await waitFor(() => server!.requestsOf("watch").length === 1, "watch over TLS");
  });

  it("refuses a server whose certificate it cannot verify", async () => {
    server = await FakeApiServer.start({ tls: { key: pki.serverKey, cert: pki.serverCert } });
    const inf = newInformer(server); // no caData: the throwaway CA is not trusted
    const started = inf.start();
    await waitFor(() => inf.status().phase === "backoff", "a failed list");
    expect(inf.status().lastError).toMatch(/certificate/i);
    expect(inf.hasSynced()).toBe(false);
    expect(server.requests).toHaveLength(0);
    await inf.stop();
    await expect(started).rejects.toThrow(/stopped/);
  });

  it("sends the bearer token of the kubeconfig", async () => {
    server = await FakeApiServer.start({ token: "s3cr3t" });
    const inf = newInformer(server);
    await inf.start();
    expect(server.requestsOf("list")[0]!.headers.authorization).toBe("Bearer s3cr3t");
  });

  it("runs an exec credential plugin for the token", async () => {
    server = await FakeApiServer.start({ token: "from-exec" });
    const credential = {
      apiVersion: "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      status: { token: "from-exec" },
    };
    const kc = server.kubeConfig({
      token: undefined,
      exec: {
        apiVersion: "client.authentication.k8s.io/v1",
        command: process.execPath,
        args: ["-e", `process.stdout.write(${JSON.stringify(JSON.stringify(credential))})`],
        interactiveMode: "Never",
      },
    });
    const inf = newInformer(server, kc);
    await inf.start();
    await waitFor(() => server!.requestsOf("watch").length === 1, "watch");
    for (const r of server.requests) expect(r.headers.authorization).toBe("Bearer from-exec");
  });
});
