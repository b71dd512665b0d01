/**
 * Pod lifecycle events: the {@link EventRecorder} contract and kubelet's
 * reasons, client-go's correlation (aggregation, dedup, spam filter) and the
 * recorder posting core/v1 Events to the API server.
 *
 * @module
 */
export * from "./api-recorder.js";
export * from "./correlator.js";
export * from "./event-recorder.js";
