import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  type GrpcObject,
  loadPackageDefinition,
  type Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServiceClientConstructor,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  ProtobufDecodeError,
} from "../../src/probes/grpc-health-codec.js";
import { runGrpcProbe } from "../../src/probes/grpc-probe.js";

// The standard health proto, loaded with protobufjs (through proto-loader) so that
// the server side does not share the probe's hand-written codec.
const HEALTH_PROTO = `syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
`;

interface SeenCall {
  service: string;
  userAgent: string;
}

describe("grpc probe against a grpc.health.v1 server on 127.0.0.1", () => {
  let dir: string;
  let server: Server;
  let bare: Server;
  let port: number;
  let barePort: number;
  const seen: SeenCall[] = [];
  const statuses: Record<string, string> = {
    "": "SERVING",
    "svc.ok": "SERVING",
    "svc.down": "NOT_SERVING",
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "grpc-health-"));
    const protoPath = path.join(dir, "health.proto");
    await writeFile(protoPath, HEALTH_PROTO);
    const def = loadSync(protoPath, { enums: String, defaults: true });
    const pkg = loadPackageDefinition(def) as unknown as { grpc: { health: { v1: GrpcObject } } };
    const Health = pkg.grpc.health.v1.Health as ServiceClientConstructor;
    server = new Server();
    server.addService(Health.service, {
      Check(
        call: ServerUnaryCall<{ service: string }, { status: string }>,
        cb: sendUnaryData<{ status: string }>,
      ) {
        const md: Metadata = call.metadata;
        seen.push({ service: call.request.service, userAgent: String(md.get("user-agent")[0] ?? "") });
        if (call.request.service === "svc.slow") return; // never answers
        const s = statuses[call.request.service];
        if (s === undefined) cb({ code: status.NOT_FOUND, details: "unknown service" });
        else cb(null, { status: s });
      },
    });
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    bare = new Server();
    barePort = await new Promise<number>((resolve, reject) =>
      bare.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
  });

  afterAll(async () => {
    server.forceShutdown();
    bare.forceShutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it("succeeds when the server reports SERVING, sending the service name and kube-probe user agent", async () => {
    const before = seen.length;
    expect(await runGrpcProbe("127.0.0.1", port, "", 2000)).toEqual({ result: "success", output: "" });
    expect((await runGrpcProbe("127.0.0.1", port, "svc.ok", 2000)).result).toBe("success");
    expect(seen.slice(before).map((c) => c.service)).toEqual(["", "svc.ok"]);
    expect(seen[before]!.userAgent).toMatch(/^kube-probe\/1\.36/);
  });

  it("fails when the service is NOT_SERVING", async () => {
    const out = await runGrpcProbe("127.0.0.1", port, "svc.down", 2000);
    expect(out).toEqual({ result: "failure", output: 'service unhealthy (responded with "NOT_SERVING")' });
  });

  it("fails when the server answers with an error status", async () => {
    const out = await runGrpcProbe("127.0.0.1", port, "svc.unknown", 2000);
    expect(out.result).toBe("failure");
    expect(out.output).toContain("NOT_FOUND");
  });

  it("fails when the server does not implement the health service", async () => {
    const out = await runGrpcProbe("127.0.0.1", barePort, "", 2000);
    expect(out.result).toBe("failure");
    expect(out.output).toContain("doesn't implement the grpc health protocol");
  });

  it("fails at the deadline when the server does not answer", async () => {
    const out = await runGrpcProbe("127.0.0.1", port, "svc.slow", 300);
    expect(out).toEqual({ result: "failure", output: "timeout: health rpc did not complete within 300ms" });
  });

  it("fails when nothing listens", async () => {
    const s = new Server();
    const free = await new Promise<number>((resolve, reject) =>
      s.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    s.forceShutdown();
    const out = await runGrpcProbe("127.0.0.1", free, "", 2000);
    expect(out.result).toBe("failure");
    expect(out.output).toContain("UNAVAILABLE");
  });
});

describe("grpc health codec", () => {
  it("encodes the request as protobuf field 1 (empty service: empty message)", () => {
    expect(encodeHealthCheckRequest("")).toEqual(Buffer.alloc(0));
    expect([...encodeHealthCheckRequest("ab")]).toEqual([0x0a, 2, 0x61, 0x62]);
    const long = "s".repeat(200);
    expect([...encodeHealthCheckRequest(long).subarray(0, 3)]).toEqual([0x0a, 0xc8, 0x01]);
  });

  it("decodes the status, skipping unknown fields", () => {
    expect(decodeHealthCheckResponse(new Uint8Array([]))).toBe(0);
    expect(decodeHealthCheckResponse(new Uint8Array([0x08, 1]))).toBe(1);
    // unknown field 2 (length-delimited "xy"), then status NOT_SERVING
    expect(decodeHealthCheckResponse(new Uint8Array([0x12, 2, 0x78, 0x79, 0x08, 2]))).toBe(2);
  });

  it("rejects truncated messages", () => {
    expect(() => decodeHealthCheckResponse(new Uint8Array([0x08]))).toThrow(ProtobufDecodeError);
    expect(() => decodeHealthCheckResponse(new Uint8Array([0x12, 5, 1]))).toThrow(ProtobufDecodeError);
  });
});
