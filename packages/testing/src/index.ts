/**
 * `@worknode/testing`: harnesses that start and stop real components for
 * system tests — worknode's own and integrators'.
 *
 * - {@link startContainerdLab}: Debian packages, a loopback registry, locally built pause and
 *   busybox images and a private containerd with CRI and CNI bridge networking (or an existing
 *   runtime through `WORKNODE_CRI_ENDPOINT`), with one `stop()`.
 * - {@link createNetns}, {@link createVethPair}, {@link createBridge}, {@link startNetnsServer},
 *   {@link connectFromNetns}, {@link destroyAll}: network namespaces for data-path tests.
 *
 * @packageDocumentation
 */
export * from "./apt.js";
export * from "./cgroup.js";
export * from "./cni-cleanup.js";
export * from "./containerd.js";
export * from "./containerd-config.js";
export * from "./containerd-lab.js";
export * from "./control-plane.js";
export * from "./control-plane-args.js";
export * from "./control-plane-kubeconfig.js";
export * from "./control-plane-process.js";
export * from "./control-plane-sockets.js";
export * from "./cri-probe.js";
export * from "./exec.js";
export * from "./go-build.js";
export * from "./images.js";
export * from "./lab-dir.js";
export * from "./netns.js";
export * from "./pki.js";
export * from "./proxy-fixtures.js";
export * from "./proxy-lab.js";
export * from "./proxy-test-helpers.js";
export * from "./proxy-traffic.js";
export * from "./registry.js";
export * from "./service-objects.js";
