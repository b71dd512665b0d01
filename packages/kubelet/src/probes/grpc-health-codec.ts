/**
 * Protobuf encoding of the two messages of `grpc.health.v1.Health/Check`, by
 * hand (no proto runtime needed):
 *
 * ```proto
 * message HealthCheckRequest { string service = 1; }
 * message HealthCheckResponse {
 *   enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
 *   ServingStatus status = 1;
 * }
 * ```
 *
 * @module
 */

/** Full method path of the health check RPC. */
export const GRPC_HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check";

/** `HealthCheckResponse.ServingStatus` values. */
export const ServingStatus = {
  UNKNOWN: 0,
  SERVING: 1,
  NOT_SERVING: 2,
  SERVICE_UNKNOWN: 3,
} as const;

/** The name of a serving status number (`SERVING`, …; unknown numbers as themselves). */
export function servingStatusName(status: number): string {
  for (const [name, value] of Object.entries(ServingStatus)) if (value === status) return name;
  return String(status);
}

function encodeVarint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** Encodes a `HealthCheckRequest` (an empty service is the zero value and not written). */
export function encodeHealthCheckRequest(service: string): Buffer {
  if (service === "") return Buffer.alloc(0);
  const bytes = Buffer.from(service, "utf8");
  return Buffer.concat([Buffer.from([0x0a, ...encodeVarint(bytes.length)]), bytes]);
}

/** A malformed protobuf message. */
export class ProtobufDecodeError extends Error {}

function readVarint(buf: Uint8Array, pos: number): [value: number, next: number] {
  let value = 0;
  let mul = 1;
  for (let i = pos; i < buf.length && i < pos + 10; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * mul;
    mul *= 128;
    if ((b & 0x80) === 0) return [value, i + 1];
  }
  throw new ProtobufDecodeError("truncated varint");
}

/**
 * Decodes a `HealthCheckResponse` and returns its status number; unknown fields
 * are skipped, the last `status` wins, a missing one is `UNKNOWN` (0).
 * @throws ProtobufDecodeError for a malformed message
 */
export function decodeHealthCheckResponse(buf: Uint8Array): number {
  let status: number = ServingStatus.UNKNOWN;
  let pos = 0;
  while (pos < buf.length) {
    const [key, afterKey] = readVarint(buf, pos);
    const field = Math.floor(key / 8);
    const wire = key & 7;
    pos = afterKey;
    if (wire === 0) {
      const [v, next] = readVarint(buf, pos);
      if (field === 1) status = v >= 2 ** 63 ? v - 2 ** 64 : v;
      pos = next;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      const [len, next] = readVarint(buf, pos);
      pos = next + len;
    } else throw new ProtobufDecodeError(`unsupported wire type ${wire}`);
    if (pos > buf.length) throw new ProtobufDecodeError("truncated field");
  }
  return status;
}
