/**
 * A local EndpointSlice controller for a node without a control plane: a
 * Service of the services file that has a selector and no EndpointSlice of its
 * own gets slices generated from the node's pods (labels, pod IPs, readiness),
 * recomputed whenever a Service, a file slice or a pod changes.
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  type EndpointSlice,
  LABEL_HEADLESS,
  LABEL_MANAGED_BY,
  LABEL_SERVICE_NAME,
  objectKey,
  type Pod,
  type Service,
} from "../kube/objects.js";
import type { IPFamily } from "../net/ip.js";
import { SnapshotObjectSource } from "../sources/snapshot-source.js";
import type { ObjectEventHandler, ObjectSource } from "../sources/types.js";
import { type Logger, silentLogger } from "../util/logging.js";
import {
  hasSelector,
  podEligible,
  podEndpointPorts,
  podToEndpoint,
  type SliceEndpoint,
  type SlicePort,
  selectorMatches,
  serviceAddressTypes,
} from "./pod-endpoints.js";

/** Value of the `endpointslice.kubernetes.io/managed-by` label on generated slices. */
export const LOCAL_ENDPOINT_SLICE_CONTROLLER_NAME = "worknode.dev/local-endpointslice-controller";

const DEFAULT_NAMESPACE = "default";

/** Options of {@link buildLocalEndpointSlices}. */
export interface BuildLocalEndpointSlicesOptions {
  /** Zone of the node, written as each endpoint's `zone` when set. */
  readonly zone?: string;
}

/**
 * The name of the generated slice of `serviceName` for `family` (`<svc>-local-ipv4`,
 * `<svc>-local-ipv6`). Pods whose target ports resolve differently go to further
 * slices named `<base>-<hash of the ports>`.
 */
export function localEndpointSliceName(serviceName: string, family: IPFamily): string {
  return `${serviceName}-local-${family.toLowerCase()}`;
}

function namespaceOf(obj: { metadata?: { namespace?: string } }): string {
  return obj.metadata?.namespace || DEFAULT_NAMESPACE;
}

function sliceLabels(service: Service, serviceName: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(service.metadata?.labels ?? {})) {
    if (k === LABEL_SERVICE_NAME || k === LABEL_MANAGED_BY || k === LABEL_HEADLESS) continue;
    labels[k] = v;
  }
  labels[LABEL_SERVICE_NAME] = serviceName;
  labels[LABEL_MANAGED_BY] = LOCAL_ENDPOINT_SLICE_CONTROLLER_NAME;
  if (service.spec?.clusterIP === "None") labels[LABEL_HEADLESS] = "";
  return labels;
}

function firstAddress(e: SliceEndpoint): string {
  return e.addresses[0] ?? "";
}

function makeSlice(
  service: Service,
  name: string,
  family: IPFamily,
  ports: SlicePort[],
  endpoints: SliceEndpoint[],
): EndpointSlice {
  const serviceName = service.metadata?.name ?? "";
  const uid = service.metadata?.uid;
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name,
      namespace: namespaceOf(service),
      labels: sliceLabels(service, serviceName),
      ...(uid
        ? {
            ownerReferences: [
              {
                apiVersion: "v1",
                kind: "Service",
                name: serviceName,
                uid,
                controller: true,
                blockOwnerDeletion: true,
              },
            ],
          }
        : {}),
    },
    addressType: family,
    endpoints: endpoints.sort((a, b) => {
      const x = firstAddress(a);
      const y = firstAddress(b);
      return x < y ? -1 : x > y ? 1 : 0;
    }),
    ports,
  };
}

/** True when this controller would generate slices for `service` (given no file slice). */
function wantsLocalSlices(service: Service): boolean {
  if (!service.metadata?.name) return false;
  if (service.spec?.type === "ExternalName") return false;
  return hasSelector(service.spec?.selector);
}

/**
 * The EndpointSlices the local controller generates, a pure function of its inputs.
 *
 * A Service gets generated slices when it has a non-empty `spec.selector`, is not of
 * type ExternalName, and no slice of `fileSlices` carries its `kubernetes.io/service-name`
 * label in its namespace (a file-given slice wins and the Service is left alone).
 * Its endpoints are the pods of the same namespace whose labels match the selector
 * (equality-based), that are bound to `nodeName` (or to no node), not in a terminal
 * phase and have an IP, mapped as the EndpointSlice controller maps them (see
 * {@link podToEndpoint}). There is one slice per address type of the Service
 * ({@link serviceAddressTypes}) that has endpoints, named {@link localEndpointSliceName};
 * pods whose target ports resolve differently (named ports) get further slices of
 * that family. A Service whose pods yield no endpoint gets one empty placeholder slice
 * of its first address type. Generated slices whose `namespace/name` is taken by a
 * file slice are dropped. The result is sorted by key.
 *
 * @param services the Services (the services file's)
 * @param fileSlices the EndpointSlices given by the file
 * @param pods the node's pods, with status
 * @param nodeName this node's name; written as the endpoints' `nodeName`
 * @returns the generated slices only (not `fileSlices`)
 */
export function buildLocalEndpointSlices(
  services: Iterable<Service>,
  fileSlices: Iterable<EndpointSlice>,
  pods: Iterable<Pod>,
  nodeName: string,
  options: BuildLocalEndpointSlicesOptions = {},
): EndpointSlice[] {
  const fileKeys = new Set<string>();
  const servedByFile = new Set<string>();
  for (const s of fileSlices) {
    fileKeys.add(objectKey(s));
    const svc = s.metadata?.labels?.[LABEL_SERVICE_NAME];
    if (svc) servedByFile.add(`${namespaceOf(s)}/${svc}`);
  }

  const podsByNamespace = new Map<string, Pod[]>();
  for (const pod of pods) {
    const bound = pod.spec?.nodeName;
    if (bound && bound !== nodeName) continue;
    if (!podEligible(pod)) continue;
    const ns = namespaceOf(pod);
    let list = podsByNamespace.get(ns);
    if (!list) {
      list = [];
      podsByNamespace.set(ns, list);
    }
    list.push(pod);
  }

  const out: EndpointSlice[] = [];
  for (const service of services) {
    if (!wantsLocalSlices(service)) continue;
    const ns = namespaceOf(service);
    const name = service.metadata?.name as string;
    if (servedByFile.has(`${ns}/${name}`)) continue;
    const selector = service.spec?.selector;
    const selected = (podsByNamespace.get(ns) ?? []).filter((p) =>
      selectorMatches(selector, p.metadata?.labels),
    );
    const families = serviceAddressTypes(service);
    const slices: EndpointSlice[] = [];
    for (const family of families) {
      // Pods whose ports resolve the same way share a slice.
      const groups = new Map<string, { ports: SlicePort[]; endpoints: SliceEndpoint[] }>();
      for (const pod of selected) {
        const endpoint = podToEndpoint(pod, service, family, { nodeName, zone: options.zone });
        if (endpoint === undefined) continue;
        const ports = podEndpointPorts(service, pod);
        const signature = JSON.stringify(ports);
        let group = groups.get(signature);
        if (!group) {
          group = { ports, endpoints: [] };
          groups.set(signature, group);
        }
        group.endpoints.push(endpoint);
      }
      const base = localEndpointSliceName(name, family);
      [...groups.keys()].sort().forEach((signature, i) => {
        const group = groups.get(signature)!;
        const sliceName =
          i === 0 ? base : `${base}-${createHash("sha256").update(signature).digest("hex").slice(0, 10)}`;
        slices.push(makeSlice(service, sliceName, family, group.ports, group.endpoints));
      });
    }
    if (slices.length === 0) {
      const family = families[0] ?? "IPv4";
      slices.push(makeSlice(service, localEndpointSliceName(name, family), family, [], []));
    }
    for (const s of slices) if (!fileKeys.has(objectKey(s))) out.push(s);
  }
  return out.sort((a, b) => {
    const x = objectKey(a);
    const y = objectKey(b);
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

/** Options of {@link LocalEndpointSliceController}. */
export interface LocalEndpointSliceControllerOptions {
  /** The Services to serve (the services file's). */
  readonly services: ObjectSource<Service>;
  /** The EndpointSlices the file itself gives; passed through unchanged. */
  readonly endpointSlices: ObjectSource<EndpointSlice>;
  /** The node's pods with their status (such as the kubelet's). */
  readonly pods: ObjectSource<Pod>;
  /** This node's name. */
  readonly nodeName: string;
  /** Zone of the node, written as each generated endpoint's `zone` when set. */
  readonly zone?: string;
  /** Logger; default silent. */
  readonly logger?: Logger;
}

/**
 * Maintains the EndpointSlices of a standalone node: {@link LocalEndpointSliceController.endpointSlices}
 * holds the input's file slices merged with the slices {@link buildLocalEndpointSlices}
 * generates from the pods, recomputed on every Service, slice or pod event once all three
 * inputs synced. The output emits exactly the adds, updates and deletes that happened
 * and is synced once all three inputs are. Invalid-object reports of the input slice
 * source are passed on. Call {@link LocalEndpointSliceController.start} to attach to the
 * inputs and {@link LocalEndpointSliceController.stop} to detach.
 */
export class LocalEndpointSliceController {
  /** The file's EndpointSlices merged with the generated ones. */
  readonly endpointSlices: ObjectSource<EndpointSlice>;
  private readonly output: SnapshotObjectSource<EndpointSlice>;
  private readonly options: LocalEndpointSliceControllerOptions;
  private readonly logger: Logger;
  private detach: (() => void)[] = [];
  private attaching = false;
  private computing = false;
  private dirty = false;

  constructor(options: LocalEndpointSliceControllerOptions) {
    this.options = options;
    this.logger = options.logger ?? silentLogger();
    this.output = new SnapshotObjectSource<EndpointSlice>({ kind: "EndpointSlice", logger: this.logger });
    this.endpointSlices = this.output;
  }

  /** Attaches to the three inputs and computes the slices when they are synced; idempotent. */
  start(): void {
    if (this.detach.length > 0) return;
    const onChange = (): void => this.recompute();
    const handler = {
      onAdd: onChange,
      onUpdate: onChange,
      onDelete: onChange,
      onSynced: onChange,
    };
    const sliceHandler: ObjectEventHandler<EndpointSlice> = {
      ...handler,
      onInvalid: (err) => this.output.reportInvalid(err),
    };
    this.attaching = true;
    try {
      this.detach = [
        this.options.services.addHandler(handler),
        this.options.endpointSlices.addHandler(sliceHandler),
        this.options.pods.addHandler(handler),
      ];
    } finally {
      this.attaching = false;
    }
    this.recompute();
  }

  /** Detaches from the inputs; the output keeps its last state. Idempotent. */
  stop(): void {
    for (const d of this.detach) d();
    this.detach = [];
  }

  /** True once all three inputs are synced. */
  inputsSynced(): boolean {
    const { services, endpointSlices, pods } = this.options;
    return services.hasSynced() && endpointSlices.hasSynced() && pods.hasSynced();
  }

  /** Recomputes the output now (a no-op until all inputs are synced). */
  recompute(): void {
    if (this.attaching || !this.inputsSynced()) return;
    if (this.computing) {
      // An output handler changed an input: compute again once this pass is done.
      this.dirty = true;
      return;
    }
    this.computing = true;
    try {
      do {
        this.dirty = false;
        this.computeOnce();
      } while (this.dirty);
    } finally {
      this.computing = false;
    }
  }

  private computeOnce(): void {
    const { services, endpointSlices, pods, nodeName, zone } = this.options;
    const fileSlices = endpointSlices.list();
    let generated: EndpointSlice[];
    try {
      generated = buildLocalEndpointSlices(
        services.list(),
        fileSlices,
        pods.list(),
        nodeName,
        zone ? { zone } : {},
      );
    } catch (err) {
      this.logger.error({ err }, "local endpoint slices: computing the slices failed");
      return;
    }
    const result = this.output.replace([...fileSlices, ...generated]);
    if (result.added + result.updated + result.deleted > 0) {
      this.logger.debug(
        { ...result, generated: generated.length, fileSlices: fileSlices.length },
        "local endpoint slices updated",
      );
    }
  }
}
