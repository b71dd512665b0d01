import { mkdtemp, rm } from "node:fs/promises";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import path from "node:path";
import { UnavailableError } from "@worknode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  criListPodSandboxIds,
  criRunPodSandbox,
  criVersion,
  decodeProtoFields,
  encodeMinimalPodSandboxConfig,
  encodeProtoMessage,
  GrpcStatusError,
  grpcFrame,
  grpcUnframe,
  socketPathOf,
} from "../src/cri-probe.js";

function str(fields: ReturnType<typeof decodeProtoFields>, n: number): string | undefined {
  const f = fields.find((x) => x.field === n);
  return f && Buffer.isBuffer(f.value) ? f.value.toString() : undefined;
}

describe("protobuf and gRPC framing", () => {
  it("round-trips strings, varints and nested messages", () => {
    const inner = encodeProtoMessage([[2, 300]]);
    const msg = encodeProtoMessage([
      [1, "héllo"],
      [2, 150],
      [3, inner],
      [3, inner],
    ]);
    // 150 is the classic varint example: 0x96 0x01
    expect(msg.includes(Buffer.from([0x10, 0x96, 0x01]))).toBe(true);
    const f = decodeProtoFields(msg);
    expect(str(f, 1)).toBe("héllo");
    expect(f.find((x) => x.field === 2)?.value).toBe(150n);
    const nested = f.filter((x) => x.field === 3);
    expect(nested).toHaveLength(2);
    expect(decodeProtoFields(nested[0]!.value as Buffer)[0]?.value).toBe(300n);
  });

  it("rejects truncated input", () => {
    expect(() => decodeProtoFields(Buffer.from([0x0a, 0x05, 0x61]))).toThrow(/truncated/);
    expect(() => grpcUnframe(Buffer.from([0, 0, 0, 0, 9, 1]))).toThrow(/truncated/);
  });

  it("frames one message with a 5-byte prefix", () => {
    const framed = grpcFrame(Buffer.from("abc"));
    expect([...framed.subarray(0, 5)]).toEqual([0, 0, 0, 0, 3]);
    expect(grpcUnframe(framed).toString()).toBe("abc");
  });

  it("encodes a pod sandbox config with metadata and port mappings", () => {
    const cfg = decodeProtoFields(
      encodeMinimalPodSandboxConfig({
        name: "p",
        uid: "u",
        tcpPortMappings: [{ containerPort: 80, hostPort: 8080 }],
      }),
    );
    const meta = decodeProtoFields(cfg.find((x) => x.field === 1)!.value as Buffer);
    expect([str(meta, 1), str(meta, 2), str(meta, 3)]).toEqual(["p", "u", "default"]);
    const pm = decodeProtoFields(cfg.find((x) => x.field === 5)!.value as Buffer);
    expect(pm.map((x) => [x.field, x.value])).toEqual([
      [2, 80n],
      [3, 8080n],
    ]);
  });

  it("parses endpoints", () => {
    expect(socketPathOf("unix:///run/x.sock")).toBe("/run/x.sock");
    expect(socketPathOf("/run/x.sock")).toBe("/run/x.sock");
    expect(() => socketPathOf("tcp://1.2.3.4:1")).toThrow();
  });
});

describe("CRI probe against a gRPC server on a unix socket", () => {
  let dir: string;
  let sock: string;
  let server: http2.Http2Server;
  const calls: Array<{ path: string; body: Buffer }> = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "wn-cri-probe-"));
    sock = path.join(dir, "cri.sock");
    server = http2.createServer();
    server.on("stream", (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        const p = String(headers[":path"]);
        const body = grpcUnframe(Buffer.concat(chunks));
        calls.push({ path: p, body });
        const reply = (msg: Buffer | undefined, status: number, message = "") => {
          stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
          stream.on("wantTrailers", () =>
            stream.sendTrailers({ "grpc-status": String(status), "grpc-message": message }),
          );
          stream.end(msg ? grpcFrame(msg) : undefined);
        };
        if (p === "/runtime.v1.RuntimeService/Version") {
          reply(
            encodeProtoMessage([
              [1, "0.1.0"],
              [2, "fake"],
              [3, "9.9"],
              [4, "v1"],
            ]),
            0,
          );
        } else if (p === "/runtime.v1.RuntimeService/ListPodSandbox") {
          const item = (id: string) =>
            encodeProtoMessage([
              [1, id],
              [5, 1],
            ]);
          reply(
            encodeProtoMessage([
              [1, item("a")],
              [1, item("b")],
            ]),
            0,
          );
        } else {
          reply(undefined, 12, "unknown%20method");
        }
      });
    });
    await new Promise<void>((r) => server.listen(sock, r));
  });

  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  it("calls Version with version v1 and decodes the answer", async () => {
    expect(await criVersion(`unix://${sock}`)).toEqual({
      version: "0.1.0",
      runtimeName: "fake",
      runtimeVersion: "9.9",
      runtimeApiVersion: "v1",
    });
    const call = calls.find((c) => c.path === "/runtime.v1.RuntimeService/Version");
    expect(str(decodeProtoFields(call!.body), 1)).toBe("v1");
  });

  it("lists pod sandbox ids", async () => {
    expect(await criListPodSandboxIds(sock)).toEqual(["a", "b"]);
  });

  it("surfaces a gRPC error status with its message", async () => {
    const err = await criRunPodSandbox(sock, { name: "p", uid: "u" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GrpcStatusError);
    expect((err as GrpcStatusError).grpcStatus).toBe(12);
    expect((err as Error).message).toContain("unknown method");
  });

  it("reports a missing socket as unavailable", async () => {
    await expect(criVersion(path.join(dir, "nope.sock"), 2_000)).rejects.toBeInstanceOf(UnavailableError);
  });
});
