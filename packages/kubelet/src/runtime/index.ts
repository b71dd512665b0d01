/**
 * The I/O half of the kubelet: CRI adapter, runtime inspection, PLEG, image
 * puller, volumes, container killer, probe runner contract, pod workers and the
 * {@link Kubelet} that composes them.
 *
 * @module
 */
export * from "./container-killer.js";
export * from "./cri-adapter.js";
export * from "./image-puller.js";
export * from "./kubelet.js";
export * from "./pleg.js";
export * from "./pod-killer.js";
export * from "./pod-worker.js";
export * from "./probe-runner.js";
export * from "./runtime-state.js";
export * from "./volumes.js";
