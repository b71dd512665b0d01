import type { Pod } from "@worknode/core";
import { hashContainer } from "../src/container-hash.js";
import type { Container } from "../src/pod-spec.js";
import type { ContainerRuntimeStatus, RuntimePodStatus, SandboxStatus } from "../src/runtime-status.js";

export const T0 = 1_700_000_000_000;

export function container(name: string, extra: Partial<Container> = {}): Container {
  return { name, image: `registry.local/${name}:1.0`, ...extra };
}

export function pod(
  spec: Partial<NonNullable<Pod["spec"]>> = {},
  meta: Partial<NonNullable<Pod["metadata"]>> = {},
): Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "web", namespace: "default", uid: "uid-1", ...meta },
    spec: { containers: [container("app")], ...spec },
  };
}

export function sandbox(extra: Partial<SandboxStatus> = {}): SandboxStatus {
  return { id: "sb1", attempt: 0, state: "ready", createdAt: T0, ip: "10.0.0.5", ...extra };
}

/** A runtime container instance of `spec` in `p` (hash taken from the spec unless given). */
export function ctr(
  spec: Container,
  state: ContainerRuntimeStatus["state"],
  extra: Partial<ContainerRuntimeStatus> = {},
): ContainerRuntimeStatus {
  const restartCount = extra.restartCount ?? 0;
  return {
    id: `${spec.name}-${restartCount}`,
    name: spec.name,
    state,
    createdAt: T0 + 1000 + restartCount * 1000,
    startedAt: state === "created" ? undefined : T0 + 1000 + restartCount * 1000,
    restartCount,
    containerSpecHash: hashContainer(spec),
    image: spec.image ?? "",
    imageRef: `sha256:${spec.name}`,
    ...(state === "exited" ? { exitCode: 0, finishedAt: T0 + 1500 + restartCount * 1000 } : {}),
    ...extra,
  };
}

export function runtime(
  sandboxes: SandboxStatus[],
  containers: ContainerRuntimeStatus[] = [],
  ips: string[] = sandboxes.some((s) => s.state === "ready") ? ["10.0.0.5"] : [],
): RuntimePodStatus {
  return { uid: "uid-1", name: "web", namespace: "default", sandboxes, containers, ips };
}
