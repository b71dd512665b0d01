/**
 * Finding what a streaming request targets on the runtime: the running
 * container of a pod (exec, attach) or its ready sandbox (port-forward), as
 * kubelet's `findContainer` / `GetPortForward` do, from the kubelet's pods
 * and the labels the kubelet puts on runtime objects.
 *
 * @module
 */
import type { Pod } from "@worknode/core";
import { ContainerState, type CriClient, PodSandboxState } from "@worknode/cri";
import { LABEL_CONTAINER_NAME, LABEL_POD_UID } from "../labels.js";
import { StreamingRequestError } from "./streaming-request.js";

/** Where a streaming request goes; the kubelet satisfies it (see {@link CriRuntimeLocator}). */
export interface PodRuntimeLocator {
  /**
   * The runtime ID of a pod's running container.
   * @throws StreamingRequestError 404 when the pod or a running instance of the container does not exist
   */
  containerId(namespace: string, pod: string, uid: string | undefined, container: string): Promise<string>;
  /**
   * The runtime ID of a pod's ready sandbox.
   * @throws StreamingRequestError 404 when the pod or a ready sandbox does not exist
   */
  sandboxId(namespace: string, pod: string, uid: string | undefined): Promise<string>;
}

/** Options of {@link CriRuntimeLocator}. */
export interface CriRuntimeLocatorOptions {
  readonly client: CriClient;
  /** The kubelet's pods (`Kubelet.pods`). */
  readonly pods: () => Pod[];
}

/** {@link PodRuntimeLocator} over the kubelet's pods and CRI listings. */
export class CriRuntimeLocator implements PodRuntimeLocator {
  constructor(private readonly options: CriRuntimeLocatorOptions) {}

  private podUid(namespace: string, name: string, uid: string | undefined): string {
    const pod = this.options
      .pods()
      .find((p) => p.metadata?.namespace === namespace && p.metadata?.name === name);
    const podUid = pod?.metadata?.uid;
    if (!podUid) throw new StreamingRequestError(404, "pod does not exist");
    if (uid && uid !== podUid) throw new StreamingRequestError(404, "pod not found");
    return podUid;
  }

  async containerId(
    namespace: string,
    pod: string,
    uid: string | undefined,
    container: string,
  ): Promise<string> {
    const podUid = this.podUid(namespace, pod, uid);
    const { containers } = await this.options.client.runtime.listContainers({
      filter: {
        state: { state: ContainerState.CONTAINER_RUNNING },
        labelSelector: { [LABEL_POD_UID]: podUid, [LABEL_CONTAINER_NAME]: container },
      },
    });
    const newest = [...containers].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1))[0];
    if (!newest) throw new StreamingRequestError(404, `container not found (${JSON.stringify(container)})`);
    return newest.id;
  }

  async sandboxId(namespace: string, pod: string, uid: string | undefined): Promise<string> {
    const podUid = this.podUid(namespace, pod, uid);
    const { items } = await this.options.client.runtime.listPodSandbox({
      filter: { state: { state: PodSandboxState.SANDBOX_READY }, labelSelector: { [LABEL_POD_UID]: podUid } },
    });
    const newest = [...items].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1))[0];
    if (!newest) throw new StreamingRequestError(404, `pod ${namespace}/${pod} has no ready sandbox`);
    return newest.id;
  }
}
