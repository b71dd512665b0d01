/**
 * Probe handlers (exec, httpGet, tcpSocket, grpc) and the runner combining them.
 *
 * @module
 */
export * from "./exec-probe.js";
export * from "./grpc-health-codec.js";
export * from "./grpc-probe.js";
export * from "./http-probe.js";
export * from "./outcome.js";
export * from "./probe-handlers.js";
export * from "./probe-target.js";
export * from "./prober-metrics.js";
export * from "./tcp-probe.js";
