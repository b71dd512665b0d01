/**
 * The grpc probe handler: one `grpc.health.v1.Health/Check` call over plaintext
 * HTTP/2 to `podIP:port` with the probe's `service`, as kubelet's
 * pkg/probe/grpc does. `SERVING` is success; any other status, an RPC error
 * (UNIMPLEMENTED, UNAVAILABLE, …) or the deadline is failure. A fresh channel is
 * used for every probe and closed afterwards.
 *
 * @module
 */
import { Client, credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import {
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  GRPC_HEALTH_CHECK_METHOD,
  ServingStatus,
  servingStatusName,
} from "./grpc-health-codec.js";
import { type ProbeOutcome, probeFailure, probeSuccess } from "./outcome.js";
import { joinHostPort, probeUserAgent } from "./probe-target.js";

/** Runs a grpc probe against `host:port` for `service` ("" checks the server as a whole). */
export function runGrpcProbe(
  host: string,
  port: number,
  service: string,
  timeoutMs: number,
  userAgent: string = probeUserAgent(),
): Promise<ProbeOutcome> {
  const addr = joinHostPort(host, port);
  const client = new Client(addr, credentials.createInsecure(), {
    "grpc.primary_user_agent": userAgent,
    "grpc.enable_retries": 0,
    "grpc.service_config_disable_resolution": 1,
  });
  return new Promise<ProbeOutcome>((resolve) => {
    client.makeUnaryRequest(
      GRPC_HEALTH_CHECK_METHOD,
      (s: string) => encodeHealthCheckRequest(s),
      (buf: Buffer) => decodeHealthCheckResponse(buf),
      service,
      new Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err: ServiceError | null, value?: number) => {
        if (err) {
          if (err.code === status.UNIMPLEMENTED) {
            resolve(
              probeFailure(
                `this server doesn't implement the grpc health protocol (grpc.health.v1.Health): ${err.details}`,
              ),
            );
          } else if (err.code === status.DEADLINE_EXCEEDED) {
            resolve(probeFailure(`timeout: health rpc did not complete within ${timeoutMs}ms`));
          } else {
            resolve(probeFailure(`error: health rpc probe failed: ${status[err.code]}: ${err.details}`));
          }
        } else if (value === ServingStatus.SERVING) {
          resolve(probeSuccess());
        } else {
          resolve(probeFailure(`service unhealthy (responded with "${servingStatusName(value ?? 0)}")`));
        }
      },
    );
  }).finally(() => client.close());
}
