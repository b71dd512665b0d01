/**
 * The service model every proxy backend consumes, and the pure builders and
 * change tracker that produce it from Services and EndpointSlices.
 *
 * @module
 */
export * from "./conntrack.js";
export * from "./endpoints.js";
export * from "./keys.js";
export * from "./labels.js";
export * from "./local-endpoint-slices.js";
export * from "./model.js";
export * from "./node-labels.js";
export * from "./persistent-map.js";
export * from "./ports.js";
export * from "./topology.js";
export * from "./tracker.js";
export * from "./traffic-plan.js";
