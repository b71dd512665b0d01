// Connection failures with the real gRPC stack and no runtime: a missing socket, a path that is
// not a socket, a closed client, an already aborted signal. (Calls against a runtime are in the
// system tests.)
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CriClient } from "../src/client.js";
import { CriCanceledError, type CriError, CriUnavailableError, GrpcStatus } from "../src/errors.js";

const dir = mkdtempSync(path.join(tmpdir(), "wncri-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("CriClient without a runtime", () => {
  it("fails a call to a missing socket with Unavailable after the connect wait, not at the deadline", async () => {
    const socket = path.join(dir, "missing.sock");
    const client = new CriClient({ endpoint: `unix://${socket}`, timeoutMs: 60_000, connectTimeoutMs: 200 });
    try {
      const err = (await client.runtime.version({}).catch((e: unknown) => e)) as CriError;
      expect(err).toBeInstanceOf(CriUnavailableError);
      expect(err.grpcCode).toBe(GrpcStatus.UNAVAILABLE);
      expect(err.rpc).toBe("Version");
      expect(err.service).toBe("RuntimeService");
      expect(err.details).toContain(`socket ${socket} does not exist`);
      expect(err.message).toContain(`CRI Version on unix://${socket} failed: UNAVAILABLE`);
      // connect() reports the same error (it is a Version call).
      await expect(client.connect()).rejects.toBeInstanceOf(CriUnavailableError);
    } finally {
      client.close();
    }
  });

  it("fails with Unavailable when the path is not a listening socket", async () => {
    const notSocket = path.join(dir, "plain-file");
    writeFileSync(notSocket, "");
    const client = new CriClient({ endpoint: notSocket, connectTimeoutMs: 200 });
    try {
      const err = (await client.image.listImages({}).catch((e: unknown) => e)) as CriError;
      expect(err).toBeInstanceOf(CriUnavailableError);
      expect(err.rpc).toBe("ListImages");
      expect(err.service).toBe("ImageService");
      expect(err.details).not.toContain("does not exist");
    } finally {
      client.close();
    }
  });

  it("fails streaming calls the same way, on iteration", async () => {
    const client = new CriClient({ endpoint: path.join(dir, "missing2.sock"), connectTimeoutMs: 100 });
    try {
      const it = client.runtime.getContainerEvents({});
      const err = await it[Symbol.asyncIterator]()
        .next()
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CriUnavailableError);
      expect((err as CriError).rpc).toBe("GetContainerEvents");
    } finally {
      client.close();
    }
  });

  it("rejects with Canceled when the signal is already aborted, or the client is closed", async () => {
    const client = new CriClient({ endpoint: path.join(dir, "missing3.sock") });
    const ac = new AbortController();
    ac.abort();
    const aborted = (await client.runtime
      .listContainers({}, { signal: ac.signal })
      .catch((e: unknown) => e)) as CriError;
    expect(aborted).toBeInstanceOf(CriCanceledError);
    expect(aborted.details).toContain("aborted");
    client.close();
    const closed = (await client.runtime.version({}).catch((e: unknown) => e)) as CriError;
    expect(closed).toBeInstanceOf(CriCanceledError);
    expect(closed.details).toContain("closed");
  });

  it("stops waiting for the connection when the signal aborts", async () => {
    const client = new CriClient({ endpoint: path.join(dir, "missing4.sock"), connectTimeoutMs: 30_000 });
    try {
      const ac = new AbortController();
      const call = client.runtime.version({}, { signal: ac.signal }).catch((e: unknown) => e);
      setTimeout(() => ac.abort(), 50);
      expect(await call).toBeInstanceOf(CriCanceledError);
    } finally {
      client.close();
    }
  });

  it("rejects a bad endpoint at construction", () => {
    expect(() => new CriClient({ endpoint: "relative.sock" })).toThrow(/unsupported scheme/);
  });
});
