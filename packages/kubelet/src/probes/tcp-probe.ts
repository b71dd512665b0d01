/**
 * The tcpSocket probe handler: success when a TCP connection to `host:port`
 * opens within the timeout; the connection is closed at once (kubelet's
 * `DoTCPProbe`). Refused, unreachable and timed out are failures.
 *
 * @module
 */
import { connect } from "node:net";
import { type Clock, realClock } from "@worknode/core";
import { type ProbeOutcome, probeFailure, probeSuccess } from "./outcome.js";
import { joinHostPort } from "./probe-target.js";

/** Runs a tcpSocket probe against `host:port`. */
export function runTcpProbe(
  host: string,
  port: number,
  timeoutMs: number,
  clock: Clock = realClock,
): Promise<ProbeOutcome> {
  const addr = joinHostPort(host, port);
  return new Promise<ProbeOutcome>((resolve) => {
    const socket = connect({ host, port });
    const timer = clock.setTimeout(() => {
      socket.destroy();
      resolve(probeFailure(`dial tcp ${addr}: i/o timeout`));
    }, timeoutMs);
    socket.once("connect", () => {
      timer.cancel();
      socket.destroy();
      resolve(probeSuccess());
    });
    socket.once("error", (err) => {
      timer.cancel();
      socket.destroy();
      resolve(probeFailure(`dial tcp ${addr}: ${err.message}`));
    });
  });
}
