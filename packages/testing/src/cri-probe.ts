/**
 * A dependency-free CRI probe: unary gRPC calls over a unix socket with
 * `node:http2`, and the few protobuf messages the harness needs (runtime
 * version, listing / stopping / removing pod sandboxes when a lab is torn down).
 *
 * This is not a CRI client (that is `@worknode/cri`); it only checks that a
 * runtime answers and cleans up after tests.
 *
 * @module
 */
import http2 from "node:http2";
import net from "node:net";
import { UnavailableError, WorknodeError } from "@worknode/core";

/** A gRPC call returned a non-OK status. */
export class GrpcStatusError extends WorknodeError {
  /** gRPC status code (12 = UNIMPLEMENTED, 14 = UNAVAILABLE …). */
  readonly grpcStatus: number;

  constructor(method: string, grpcStatus: number, message: string) {
    super("GRPC_STATUS", `${method}: gRPC status ${grpcStatus}${message ? `: ${message}` : ""}`);
    this.grpcStatus = grpcStatus;
  }
}

/** One decoded protobuf field: varints as bigint, length-delimited as bytes. */
export interface ProtoField {
  /** Field number. */
  readonly field: number;
  /** Wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32). */
  readonly wireType: number;
  /** The value: a bigint for varints and fixed ints, a Buffer for length-delimited fields. */
  readonly value: bigint | Buffer;
}

function encodeVarint(n: number): Buffer {
  const bytes: number[] = [];
  let v = n;
  while (v > 0x7f) {
    bytes.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

/** A protobuf field value for {@link encodeProtoMessage}: string, non-negative integer (varint) or nested message bytes. */
export type ProtoValue = string | number | Buffer;

/**
 * Encodes a protobuf message from `[field number, value]` pairs: strings as UTF-8, numbers as
 * varints, Buffers as length-delimited (nested messages). Repeat a field number for repeated fields.
 */
export function encodeProtoMessage(fields: ReadonlyArray<readonly [number, ProtoValue]>): Buffer {
  const parts: Buffer[] = [];
  for (const [num, value] of fields) {
    if (typeof value === "number") {
      if (!Number.isSafeInteger(value) || value < 0) throw new WorknodeError("PROTO", `bad varint ${value}`);
      parts.push(encodeVarint(num << 3), encodeVarint(value));
    } else {
      const data = typeof value === "string" ? Buffer.from(value, "utf8") : value;
      parts.push(encodeVarint((num << 3) | 2), encodeVarint(data.length), data);
    }
  }
  return Buffer.concat(parts);
}

/** Decodes the top level of a protobuf message. */
export function decodeProtoFields(buf: Buffer): ProtoField[] {
  const out: ProtoField[] = [];
  let i = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (i >= buf.length) throw new WorknodeError("PROTO", "truncated varint");
      const b = buf[i++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wireType = key & 7;
    if (wireType === 0) out.push({ field, wireType, value: varint() });
    else if (wireType === 2) {
      const len = Number(varint());
      if (i + len > buf.length) throw new WorknodeError("PROTO", "truncated length-delimited field");
      out.push({ field, wireType, value: buf.subarray(i, i + len) });
      i += len;
    } else if (wireType === 1 || wireType === 5) {
      const size = wireType === 1 ? 8 : 4;
      if (i + size > buf.length) throw new WorknodeError("PROTO", "truncated fixed field");
      const value = wireType === 1 ? buf.readBigUInt64LE(i) : BigInt(buf.readUInt32LE(i));
      out.push({ field, wireType, value });
      i += size;
    } else throw new WorknodeError("PROTO", `unsupported wire type ${wireType}`);
  }
  return out;
}

function stringField(fields: readonly ProtoField[], num: number): string {
  const f = fields.find((x) => x.field === num && x.wireType === 2);
  return f && Buffer.isBuffer(f.value) ? f.value.toString("utf8") : "";
}

/** Frames a message as one gRPC length-prefixed message (uncompressed). */
export function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(0, 0);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** Extracts the first message of a gRPC response body. */
export function grpcUnframe(body: Buffer): Buffer {
  if (body.length < 5) throw new WorknodeError("PROTO", "gRPC response has no message");
  if (body.readUInt8(0) !== 0)
    throw new WorknodeError("PROTO", "compressed gRPC responses are not supported");
  const len = body.readUInt32BE(1);
  if (body.length < 5 + len) throw new WorknodeError("PROTO", "truncated gRPC message");
  return body.subarray(5, 5 + len);
}

/** Turns `unix:///path` (or a bare path) into a socket path. */
export function socketPathOf(endpoint: string): string {
  if (endpoint.startsWith("unix://")) return endpoint.slice("unix://".length);
  if (endpoint.startsWith("/")) return endpoint;
  throw new WorknodeError("CONFIG", `not a unix socket endpoint: ${endpoint}`);
}

/**
 * Makes one unary gRPC call over a unix socket.
 *
 * @param endpoint `unix:///path/to.sock` or `/path/to.sock`
 * @param method full method path, such as `/runtime.v1.RuntimeService/Version`
 * @param request the encoded request message
 * @returns the encoded response message
 */
export function grpcUnaryCall(
  endpoint: string,
  method: string,
  request: Buffer,
  timeoutMs = 10_000,
): Promise<Buffer> {
  const socketPath = socketPathOf(endpoint);
  return new Promise<Buffer>((resolve, reject) => {
    let done = false;
    const session = http2.connect("http://localhost", {
      createConnection: () => net.connect({ path: socketPath }),
    });
    const finish = (err: Error | undefined, value?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      session.close();
      session.destroy();
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = setTimeout(
      () => finish(new UnavailableError(endpoint, `${method}: no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    session.on("error", (e) =>
      finish(new UnavailableError(endpoint, `${method}: ${e.message}`, { cause: e })),
    );
    const req = session.request({
      ":method": "POST",
      ":path": method,
      "content-type": "application/grpc",
      te: "trailers",
    });
    const chunks: Buffer[] = [];
    let headerStatus: string | undefined;
    let headerMessage = "";
    req.on("response", (headers) => {
      // trailers-only responses carry grpc-status in the headers
      const s = headers["grpc-status"];
      if (typeof s === "string") {
        headerStatus = s;
        headerMessage = decodeURIComponent(String(headers["grpc-message"] ?? ""));
      }
    });
    req.on("data", (c: Buffer) => chunks.push(c));
    let trailerStatus: string | undefined;
    let trailerMessage = "";
    req.on("trailers", (t) => {
      trailerStatus = typeof t["grpc-status"] === "string" ? t["grpc-status"] : undefined;
      trailerMessage = decodeURIComponent(String(t["grpc-message"] ?? ""));
    });
    req.on("error", (e) => finish(new UnavailableError(endpoint, `${method}: ${e.message}`, { cause: e })));
    req.on("end", () => {
      const status = trailerStatus ?? headerStatus;
      const message = trailerStatus !== undefined ? trailerMessage : headerMessage;
      if (status === undefined) return finish(new UnavailableError(endpoint, `${method}: no grpc-status`));
      if (status !== "0") return finish(new GrpcStatusError(method, Number(status), message));
      try {
        finish(undefined, grpcUnframe(Buffer.concat(chunks)));
      } catch (e) {
        finish(e as Error);
      }
    });
    req.end(grpcFrame(request));
  });
}

/** The answer of the CRI `RuntimeService/Version` call. */
export interface CriVersion {
  /** Version of the kubelet runtime API the runtime speaks (`0.1.0`). */
  readonly version: string;
  /** Runtime name, such as `containerd` or `cri-o`. */
  readonly runtimeName: string;
  /** Runtime version. */
  readonly runtimeVersion: string;
  /** API version (`v1`). */
  readonly runtimeApiVersion: string;
}

/** Decodes a `runtime.v1.VersionResponse`. */
export function decodeCriVersion(msg: Buffer): CriVersion {
  const f = decodeProtoFields(msg);
  return {
    version: stringField(f, 1),
    runtimeName: stringField(f, 2),
    runtimeVersion: stringField(f, 3),
    runtimeApiVersion: stringField(f, 4),
  };
}

/** Calls CRI v1 `RuntimeService/Version` on a runtime socket. */
export async function criVersion(endpoint: string, timeoutMs = 10_000): Promise<CriVersion> {
  const res = await grpcUnaryCall(
    endpoint,
    "/runtime.v1.RuntimeService/Version",
    encodeProtoMessage([[1, "v1"]]),
    timeoutMs,
  );
  return decodeCriVersion(res);
}

/** Decodes the sandbox ids of a `runtime.v1.ListPodSandboxResponse`. */
export function decodePodSandboxIds(msg: Buffer): string[] {
  return decodeProtoFields(msg)
    .filter((f) => f.field === 1 && Buffer.isBuffer(f.value))
    .map((f) => stringField(decodeProtoFields(f.value as Buffer), 1))
    .filter((id) => id !== "");
}

/** Lists the ids of every pod sandbox the runtime knows. */
export async function criListPodSandboxIds(endpoint: string, timeoutMs = 10_000): Promise<string[]> {
  const res = await grpcUnaryCall(
    endpoint,
    "/runtime.v1.RuntimeService/ListPodSandbox",
    Buffer.alloc(0),
    timeoutMs,
  );
  return decodePodSandboxIds(res);
}

/** Stops then removes one pod sandbox (and its containers; the runtime runs CNI DEL). */
export async function criStopAndRemovePodSandbox(
  endpoint: string,
  id: string,
  timeoutMs = 60_000,
): Promise<void> {
  const req = encodeProtoMessage([[1, id]]);
  await grpcUnaryCall(endpoint, "/runtime.v1.RuntimeService/StopPodSandbox", req, timeoutMs);
  await grpcUnaryCall(endpoint, "/runtime.v1.RuntimeService/RemovePodSandbox", req, timeoutMs);
}

/** Options of {@link criRunPodSandbox}. */
export interface MinimalPodSandbox {
  /** Pod name. */
  readonly name: string;
  /** Pod UID (any unique string). */
  readonly uid: string;
  /** Pod namespace; default `default`. */
  readonly namespace?: string;
  /** Optional hostPort mappings (TCP), which exercise the CNI portmap plugin. */
  readonly tcpPortMappings?: ReadonlyArray<{ readonly containerPort: number; readonly hostPort: number }>;
  /** Log directory; default none. */
  readonly logDirectory?: string;
}

/** Encodes a `runtime.v1.PodSandboxConfig` for {@link criRunPodSandbox} (pod network namespace, CNI networking). */
export function encodeMinimalPodSandboxConfig(p: MinimalPodSandbox): Buffer {
  const metadata = encodeProtoMessage([
    [1, p.name],
    [2, p.uid],
    [3, p.namespace ?? "default"],
  ]);
  const fields: Array<readonly [number, ProtoValue]> = [
    [1, metadata],
    [2, p.name],
  ];
  if (p.logDirectory) fields.push([3, p.logDirectory]);
  for (const m of p.tcpPortMappings ?? []) {
    // PortMapping { protocol = 1 (TCP = 0), container_port = 2, host_port = 3 }
    fields.push([
      5,
      encodeProtoMessage([
        [2, m.containerPort],
        [3, m.hostPort],
      ]),
    ]);
  }
  return encodeProtoMessage(fields);
}

/**
 * Runs a pod sandbox with the runtime's sandbox (pause) image through CRI `RunPodSandbox`:
 * a smoke test that the runtime, the sandbox image and CNI all work.
 *
 * @returns the pod sandbox id
 */
export async function criRunPodSandbox(
  endpoint: string,
  pod: MinimalPodSandbox,
  timeoutMs = 120_000,
): Promise<string> {
  const req = encodeProtoMessage([[1, encodeMinimalPodSandboxConfig(pod)]]);
  const res = await grpcUnaryCall(endpoint, "/runtime.v1.RuntimeService/RunPodSandbox", req, timeoutMs);
  const id = stringField(decodeProtoFields(res), 1);
  if (!id) throw new WorknodeError("PROTO", "RunPodSandbox returned no pod_sandbox_id");
  return id;
}

/**
 * Pulls an image through CRI `ImageService/PullImage` (the runtime resolves the registry with its
 * own configuration, e.g. the lab's `hosts.toml`).
 *
 * @returns the image reference (id) the runtime reports
 */
export async function criPullImage(endpoint: string, image: string, timeoutMs = 120_000): Promise<string> {
  const req = encodeProtoMessage([[1, encodeProtoMessage([[1, image]])]]);
  const res = await grpcUnaryCall(endpoint, "/runtime.v1.ImageService/PullImage", req, timeoutMs);
  return stringField(decodeProtoFields(res), 1);
}
