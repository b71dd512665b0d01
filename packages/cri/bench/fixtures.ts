/**
 * Realistic CRI responses for benchmarks: containers shaped like the kubelet creates them
 * (kubelet labels and annotations, digested image refs, nanosecond timestamps).
 *
 * @module
 */
import { type Container, ContainerState, ListContainersResponse } from "../src/generated/api.js";

const hex = (n: number, len = 64) => n.toString(16).padStart(len, "0").slice(-len);

/** One container as containerd lists it for a kubelet-managed pod. */
export function kubeletContainer(i: number): Container {
  const pod = `web-${Math.floor(i / 2)}`;
  const ns = `team-${i % 20}`;
  return {
    id: hex(0xc0ffee00 + i),
    podSandboxId: hex(0x5a0d0000 + Math.floor(i / 2)),
    metadata: { name: i % 2 === 0 ? "app" : "sidecar", attempt: i % 3 },
    image: {
      image: `sha256:${hex(0xabcdef + (i % 40))}`,
      annotations: {},
      userSpecifiedImage: `registry.example.com/${ns}/app:v${i % 7}`,
      runtimeHandler: "",
      imageRef: `sha256:${hex(0xabcdef + (i % 40))}`,
    },
    imageRef: `sha256:${hex(0xabcdef + (i % 40))}`,
    state: i % 10 === 0 ? ContainerState.CONTAINER_EXITED : ContainerState.CONTAINER_RUNNING,
    createdAt: 1_795_554_862_138_000_000n + BigInt(i) * 1_000_003n,
    labels: {
      "io.kubernetes.container.name": i % 2 === 0 ? "app" : "sidecar",
      "io.kubernetes.pod.name": pod,
      "io.kubernetes.pod.namespace": ns,
      "io.kubernetes.pod.uid": `0c8f${hex(i, 4)}-1d2e-4f5a-8b9c-${hex(i, 12)}`,
    },
    annotations: {
      "io.kubernetes.container.hash": hex(i * 7919, 8),
      "io.kubernetes.container.restartCount": String(i % 3),
      "io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
      "io.kubernetes.container.terminationMessagePolicy": "File",
      "io.kubernetes.pod.terminationGracePeriod": "30",
    },
    imageId: `sha256:${hex(0xabcdef + (i % 40))}`,
  };
}

/** The encoded bytes of a ListContainers response with `n` containers. */
export function encodedListContainersResponse(n: number): Uint8Array {
  const containers = Array.from({ length: n }, (_, i) => kubeletContainer(i));
  return ListContainersResponse.encode({ containers }).finish();
}
