/**
 * Services and EndpointSlices read from a local YAML file: a node agent that
 * proxies a fixed set of services without any API server.
 *
 * The file holds any number of YAML documents (separated by `---`), each a
 * v1 `Service`, a discovery.k8s.io/v1 `EndpointSlice`, or a `List` of them
 * (the output of `kubectl get svc,endpointslices -o yaml` works as is).
 *
 * Invalid input never takes down valid objects. The rules:
 * - every rejected document is reported (handlers' `onInvalid`, the log, the
 *   `worknode_source_invalid_objects_total` counter and {@link ServicesFileSource.errors});
 * - a valid document is served, whatever is wrong elsewhere in the file;
 * - a rejected document that still names its object (kind and name readable)
 *   keeps that object's previous version in service until the document is fixed;
 * - when some document cannot be attributed to any object (YAML syntax error,
 *   not a mapping, no kind or name), objects missing from the file are kept,
 *   since they may be inside the broken part: deletions wait for a file
 *   that parses;
 * - a file that cannot be read (permission, path is a directory …) changes nothing;
 * - a missing file means no objects (deleting the file deletes its objects).
 *
 * @module
 */
import type { Registry } from "prom-client";
import { type EndpointSlice, LABEL_SERVICE_NAME, objectKey, type Service } from "../kube/objects.js";
import type { Clock } from "../util/clock.js";
import { InvalidObjectError, type ObjectRef, UnavailableError, type WorknodeError } from "../util/errors.js";
import { type Logger, silentLogger } from "../util/logging.js";
import { type PathSnapshot, PathWatcher, readPathSnapshot, type WatchFunction } from "./file-watch.js";
import {
  checkMetadata,
  describeType,
  documentIdentity,
  expandListDocuments,
  isIntInRange,
  isRecord,
  type ManifestDocument,
  parseManifestDocuments,
} from "./parse.js";
import { SnapshotObjectSource } from "./snapshot-source.js";
import { sourceInvalidObjectsCounter } from "./source-metrics.js";
import type { ObjectSource, RunnableSource } from "./types.js";

const SERVICE_API_VERSION = "v1";
const ENDPOINT_SLICE_API_VERSION = "discovery.k8s.io/v1";
const DEFAULT_NAMESPACE = "default";
const PROTOCOLS = ["TCP", "UDP", "SCTP"];
const SERVICE_TYPES = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
const ADDRESS_TYPES = ["IPv4", "IPv6", "FQDN"];

/** The result of reading a services file: the valid objects and the rejected documents. */
export interface ServicesFileContent {
  /** Valid Services, in file order, namespace defaulted. */
  readonly services: readonly Service[];
  /** Valid EndpointSlices, in file order, namespace defaulted. */
  readonly endpointSlices: readonly EndpointSlice[];
  /** One error per rejected document, in file order. */
  readonly invalid: readonly InvalidObjectError[];
  /** Keys of Services named by a rejected document (other than a duplicate of a served one). */
  readonly rejectedServiceKeys: ReadonlySet<string>;
  /** Keys of EndpointSlices named by a rejected document (other than a duplicate of a served one). */
  readonly rejectedEndpointSliceKeys: ReadonlySet<string>;
  /**
   * True when a document could not be attributed to any object (YAML syntax error,
   * not a mapping, no kind or name): objects absent from the file may be hidden in it.
   */
  readonly hasUnattributedDocuments: boolean;
}

type Kind = "Service" | "EndpointSlice";

/**
 * Parses and checks the text of a services file (pure; no I/O).
 * Only structure is checked here; the service model validates semantics.
 *
 * @param text file content
 * @param path file name used in origins and messages
 */
export function parseServicesFile(text: string, path: string): ServicesFileContent {
  const docs = expandListDocuments(parseManifestDocuments(text, path), path);
  const services: Service[] = [];
  const slices: EndpointSlice[] = [];
  const invalid: InvalidObjectError[] = [];
  const rejectedServiceKeys = new Set<string>();
  const rejectedEndpointSliceKeys = new Set<string>();
  const seen = new Map<string, string>(); // `${kind} ${key}` → origin of the first definition
  let hasUnattributedDocuments = false;

  for (const doc of docs) {
    const id = documentIdentity(doc.value);
    const known = id.kind === "Service" || id.kind === "EndpointSlice";
    const ref: ObjectRef = {
      kind: id.kind ?? "object",
      ...(id.name ? { namespace: id.namespace ?? (known ? DEFAULT_NAMESPACE : undefined) } : {}),
      ...(id.name ? { name: id.name } : {}),
      origin: doc.origin,
    };
    const reasons = checkDocument(doc);
    const attributed = doc.error === undefined && isRecord(doc.value) && !!id.kind && !!id.name;
    if (reasons.length > 0) {
      invalid.push(new InvalidObjectError(ref, reasons));
      if (!attributed) hasUnattributedDocuments = true;
      else if (known) {
        const key = `${id.namespace ?? DEFAULT_NAMESPACE}/${id.name}`;
        (id.kind === "Service" ? rejectedServiceKeys : rejectedEndpointSliceKeys).add(key);
      }
      continue;
    }
    const obj = withDefaultNamespace(doc.value as Service | EndpointSlice);
    const kind = id.kind as Kind;
    const key = objectKey(obj);
    const first = seen.get(`${kind} ${key}`);
    if (first !== undefined) {
      invalid.push(new InvalidObjectError(ref, [`duplicate ${kind} ${key}: already defined at ${first}`]));
      continue;
    }
    seen.set(`${kind} ${key}`, doc.origin);
    if (kind === "Service") services.push(obj as Service);
    else slices.push(obj as EndpointSlice);
  }
  return {
    services,
    endpointSlices: slices,
    invalid,
    rejectedServiceKeys,
    rejectedEndpointSliceKeys,
    hasUnattributedDocuments,
  };
}

function withDefaultNamespace<T extends Service | EndpointSlice>(obj: T): T {
  if (obj.metadata?.namespace) return obj;
  return { ...obj, metadata: { ...obj.metadata, namespace: DEFAULT_NAMESPACE } };
}

/** Returns the structural problems of one document (empty when valid). */
function checkDocument(doc: ManifestDocument): string[] {
  if (doc.error !== undefined) return [`YAML syntax error: ${doc.error}`];
  const v = doc.value;
  if (!isRecord(v)) return [`document is a ${describeType(v)}, expected a mapping (a Kubernetes object)`];
  const reasons: string[] = [];
  if (typeof v.kind !== "string" || v.kind === "") reasons.push("kind is missing");
  if (typeof v.apiVersion !== "string" || v.apiVersion === "") reasons.push("apiVersion is missing");
  if (reasons.length > 0) return reasons;
  if (v.kind === "Service") {
    if (v.apiVersion !== SERVICE_API_VERSION) {
      return [`unsupported apiVersion "${v.apiVersion}" for Service (expected ${SERVICE_API_VERSION})`];
    }
    checkMetadata(v, "dns1035-label", reasons);
    checkServiceSpec(v, reasons);
  } else if (v.kind === "EndpointSlice") {
    if (v.apiVersion !== ENDPOINT_SLICE_API_VERSION) {
      return [
        `unsupported apiVersion "${v.apiVersion}" for EndpointSlice (expected ${ENDPOINT_SLICE_API_VERSION})`,
      ];
    }
    checkMetadata(v, "dns1123-subdomain", reasons);
    checkEndpointSlice(v, reasons);
  } else {
    return [
      `unsupported kind "${v.kind}" (apiVersion ${v.apiVersion}): a services file holds ${SERVICE_API_VERSION} Service and ${ENDPOINT_SLICE_API_VERSION} EndpointSlice objects`,
    ];
  }
  return reasons;
}

function checkStringMap(value: unknown, field: string, reasons: string[]): void {
  if (value === undefined || value === null) return;
  if (!isRecord(value)) {
    reasons.push(`${field} must be a mapping, got ${describeType(value)}`);
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") reasons.push(`${field}["${k}"] must be a string, got ${describeType(v)}`);
  }
}

function checkStringList(value: unknown, field: string, reasons: string[]): void {
  if (value === undefined || value === null) return;
  if (!Array.isArray(value)) {
    reasons.push(`${field} must be a list, got ${describeType(value)}`);
    return;
  }
  value.forEach((v, i) => {
    if (typeof v !== "string") reasons.push(`${field}[${i}] must be a string, got ${describeType(v)}`);
  });
}

function checkOptionalString(value: unknown, field: string, reasons: string[], allowed?: string[]): void {
  if (value === undefined || value === null) return;
  if (typeof value !== "string") reasons.push(`${field} must be a string, got ${describeType(value)}`);
  else if (allowed && !allowed.includes(value)) {
    reasons.push(`${field} "${value}" is not one of ${allowed.join(", ")}`);
  }
}

function checkServiceSpec(v: Record<string, unknown>, reasons: string[]): void {
  const spec = v.spec;
  if (!isRecord(spec)) {
    reasons.push(spec === undefined || spec === null ? "spec is missing" : "spec must be a mapping");
    return;
  }
  checkOptionalString(spec.type, "spec.type", reasons, SERVICE_TYPES);
  checkOptionalString(spec.clusterIP, "spec.clusterIP", reasons);
  checkStringList(spec.clusterIPs, "spec.clusterIPs", reasons);
  checkStringList(spec.externalIPs, "spec.externalIPs", reasons);
  checkStringList(spec.ipFamilies, "spec.ipFamilies", reasons);
  checkStringList(spec.loadBalancerSourceRanges, "spec.loadBalancerSourceRanges", reasons);
  checkStringMap(spec.selector, "spec.selector", reasons);
  checkOptionalString(spec.sessionAffinity, "spec.sessionAffinity", reasons, ["None", "ClientIP"]);
  checkOptionalString(spec.externalTrafficPolicy, "spec.externalTrafficPolicy", reasons);
  checkOptionalString(spec.internalTrafficPolicy, "spec.internalTrafficPolicy", reasons);
  checkOptionalString(spec.externalName, "spec.externalName", reasons);
  const clusterIPs = Array.isArray(spec.clusterIPs) ? spec.clusterIPs : [];
  const headless = spec.clusterIP === "None" || clusterIPs[0] === "None";
  const externalName = spec.type === "ExternalName";
  const ports = spec.ports;
  if (ports === undefined || ports === null || (Array.isArray(ports) && ports.length === 0)) {
    if (!headless && !externalName) {
      reasons.push("spec.ports is missing: a Service that is neither headless nor ExternalName needs ports");
    }
    return;
  }
  if (!Array.isArray(ports)) {
    reasons.push(`spec.ports must be a list, got ${describeType(ports)}`);
    return;
  }
  ports.forEach((p: unknown, i: number) => {
    const f = `spec.ports[${i}]`;
    if (!isRecord(p)) {
      reasons.push(`${f} must be a mapping, got ${describeType(p)}`);
      return;
    }
    if (!isIntInRange(p.port, 1, 65535)) reasons.push(`${f}.port must be an integer in 1-65535`);
    checkOptionalString(p.name, `${f}.name`, reasons);
    checkOptionalString(p.protocol, `${f}.protocol`, reasons, PROTOCOLS);
    checkOptionalString(p.appProtocol, `${f}.appProtocol`, reasons);
    if (p.nodePort !== undefined && p.nodePort !== null && !isIntInRange(p.nodePort, 0, 65535)) {
      reasons.push(`${f}.nodePort must be an integer in 0-65535`);
    }
    const t = p.targetPort;
    if (t !== undefined && t !== null && !isIntInRange(t, 1, 65535) && !(typeof t === "string" && t !== "")) {
      reasons.push(`${f}.targetPort must be an integer in 1-65535 or a port name`);
    }
  });
}

function checkEndpointSlice(v: Record<string, unknown>, reasons: string[]): void {
  const labels = isRecord(v.metadata) && isRecord(v.metadata.labels) ? v.metadata.labels : {};
  const owner = labels[LABEL_SERVICE_NAME];
  if (typeof owner !== "string" || owner === "") {
    reasons.push(`label ${LABEL_SERVICE_NAME} is missing: the slice would belong to no Service`);
  }
  if (typeof v.addressType !== "string") reasons.push("addressType is missing");
  else checkOptionalString(v.addressType, "addressType", reasons, ADDRESS_TYPES);
  const endpoints = v.endpoints;
  if (!Array.isArray(endpoints)) {
    reasons.push(
      endpoints === undefined || endpoints === null
        ? "endpoints is missing (use [] for none)"
        : `endpoints must be a list, got ${describeType(endpoints)}`,
    );
  } else {
    endpoints.forEach((e: unknown, i: number) => {
      const f = `endpoints[${i}]`;
      if (!isRecord(e)) {
        reasons.push(`${f} must be a mapping, got ${describeType(e)}`);
        return;
      }
      if (!Array.isArray(e.addresses) || e.addresses.length === 0) {
        reasons.push(`${f}.addresses must be a non-empty list`);
      } else checkStringList(e.addresses, `${f}.addresses`, reasons);
      if (e.conditions !== undefined && e.conditions !== null) {
        if (!isRecord(e.conditions)) reasons.push(`${f}.conditions must be a mapping`);
        else {
          for (const c of ["ready", "serving", "terminating"]) {
            const cv = e.conditions[c];
            if (cv !== undefined && cv !== null && typeof cv !== "boolean") {
              reasons.push(`${f}.conditions.${c} must be a boolean, got ${describeType(cv)}`);
            }
          }
        }
      }
      checkOptionalString(e.nodeName, `${f}.nodeName`, reasons);
      checkOptionalString(e.zone, `${f}.zone`, reasons);
      checkOptionalString(e.hostname, `${f}.hostname`, reasons);
    });
  }
  const ports = v.ports;
  if (ports === undefined || ports === null) return;
  if (!Array.isArray(ports)) {
    reasons.push(`ports must be a list, got ${describeType(ports)}`);
    return;
  }
  ports.forEach((p: unknown, i: number) => {
    const f = `ports[${i}]`;
    if (!isRecord(p)) {
      reasons.push(`${f} must be a mapping, got ${describeType(p)}`);
      return;
    }
    if (p.port !== undefined && p.port !== null && !isIntInRange(p.port, 1, 65535)) {
      reasons.push(`${f}.port must be an integer in 1-65535`);
    }
    checkOptionalString(p.name, `${f}.name`, reasons);
    checkOptionalString(p.protocol, `${f}.protocol`, reasons, PROTOCOLS);
  });
}

/** The objects to serve after a load, and what was kept from before. */
export interface MergedObjects<T> {
  /** The objects to serve. */
  readonly objects: readonly T[];
  /** Keys of previous objects kept although the file no longer provides a valid version. */
  readonly kept: readonly string[];
}

/**
 * Applies the "lose nothing on bad input" rule (pure): the valid objects of the
 * file, plus the previous version of every object whose document was rejected,
 * plus (when `keepMissing`) every previous object absent from the file.
 */
export function mergeWithPrevious<T extends Service | EndpointSlice>(
  previous: readonly T[],
  valid: readonly T[],
  rejectedKeys: ReadonlySet<string>,
  keepMissing: boolean,
): MergedObjects<T> {
  const validKeys = new Set(valid.map((o) => objectKey(o)));
  const objects = [...valid];
  const kept: string[] = [];
  for (const old of previous) {
    const key = objectKey(old);
    if (validKeys.has(key)) continue;
    if (keepMissing || rejectedKeys.has(key)) {
      objects.push(old);
      kept.push(key);
    }
  }
  return { objects, kept: kept.sort() };
}

/** Reads and parses a services file once (for a CLI `plan`); a missing file gives no objects. */
export async function readServicesFile(path: string): Promise<ServicesFileContent> {
  const snap = await readPathSnapshot(path, "file");
  const file = snap.files[0];
  if (snap.error)
    throw new UnavailableError(path, `cannot read services file ${path}: ${snap.error.message}`);
  if (!file) return parseServicesFile("", path);
  if (!file.ok) throw new UnavailableError(path, `cannot read services file ${path}: ${file.error.message}`);
  return parseServicesFile(file.content, path);
}

/** Options of {@link ServicesFileSource}. */
export interface ServicesFileSourceOptions {
  /** Path of the YAML file. It need not exist yet. */
  readonly path: string;
  /** Clock for rescans and debouncing; default the real clock. */
  readonly clock?: Clock;
  /** Logger; default silent. */
  readonly logger?: Logger;
  /** Registry for `worknode_source_invalid_objects_total`; none by default. */
  readonly registry?: Registry;
  /** Value of the `source` metric label; default `services-file`. */
  readonly sourceName?: string;
  /** Full rescan interval in milliseconds; default 20 000; 0 disables. */
  readonly rescanIntervalMs?: number;
  /** Debounce of filesystem events in milliseconds; default 100. */
  readonly debounceMs?: number;
  /** Watch with inotify (`fs.watch`); default true. */
  readonly fsWatch?: boolean;
  /** Replacement for `fs.watch` (tests). */
  readonly watchFn?: WatchFunction;
}

/**
 * Serves the Services and EndpointSlices of a YAML file, following its changes.
 * See the module documentation for how invalid input is handled.
 */
export class ServicesFileSource implements RunnableSource {
  /** The Services of the file. */
  readonly services: ObjectSource<Service>;
  /** The EndpointSlices of the file. */
  readonly endpointSlices: ObjectSource<EndpointSlice>;
  private readonly svc: SnapshotObjectSource<Service>;
  private readonly eps: SnapshotObjectSource<EndpointSlice>;
  private readonly path: string;
  private readonly logger: Logger;
  private readonly sourceName: string;
  private readonly counter: ReturnType<typeof sourceInvalidObjectsCounter> | undefined;
  private readonly watcher: PathWatcher;
  private problems: readonly WorknodeError[] = [];

  constructor(options: ServicesFileSourceOptions) {
    this.path = options.path;
    this.logger = (options.logger ?? silentLogger()).child({ source: "services-file", path: options.path });
    this.sourceName = options.sourceName ?? "services-file";
    this.counter = options.registry ? sourceInvalidObjectsCounter(options.registry) : undefined;
    this.svc = new SnapshotObjectSource<Service>({ kind: "Service", logger: this.logger });
    this.eps = new SnapshotObjectSource<EndpointSlice>({ kind: "EndpointSlice", logger: this.logger });
    this.services = this.svc;
    this.endpointSlices = this.eps;
    this.watcher = new PathWatcher({
      path: options.path,
      kind: "file",
      onChange: (snap) => this.apply(snap),
      logger: this.logger,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.rescanIntervalMs !== undefined ? { rescanIntervalMs: options.rescanIntervalMs } : {}),
      ...(options.debounceMs !== undefined ? { debounceMs: options.debounceMs } : {}),
      ...(options.fsWatch !== undefined ? { fsWatch: options.fsWatch } : {}),
      ...(options.watchFn ? { watchFn: options.watchFn } : {}),
    });
  }

  /** Reads the file and delivers its objects, then follows changes. Resolves once both sources are synced. */
  start(): Promise<void> {
    return this.watcher.start();
  }

  /** Stops watching; idempotent. The objects stay readable. */
  stop(): Promise<void> {
    return this.watcher.stop();
  }

  /** Re-reads the file now; resolves once any change was delivered. */
  rescan(): Promise<void> {
    return this.watcher.rescan();
  }

  /**
   * The problems of the last load: an {@link InvalidObjectError} per rejected
   * document, or an {@link UnavailableError} when the file could not be read.
   */
  errors(): readonly WorknodeError[] {
    return this.problems;
  }

  private apply(snap: PathSnapshot): void {
    const file = snap.files[0];
    const readError = snap.error ?? (file && !file.ok ? file.error : undefined);
    if (readError) {
      const err = new UnavailableError(
        this.path,
        `cannot read services file ${this.path}: ${readError.message}`,
        {
          cause: readError,
        },
      );
      this.problems = [err];
      this.logger.error({ err: readError.message }, "cannot read services file; keeping the current objects");
      this.svc.replace(this.svc.list());
      this.eps.replace(this.eps.list());
      return;
    }
    if (!file?.ok) {
      this.logger.warn("services file does not exist; serving no objects");
      this.problems = [];
      this.svc.replace([]);
      this.eps.replace([]);
      return;
    }
    const parsed = parseServicesFile(file.content, this.path);
    const keepMissing = parsed.hasUnattributedDocuments;
    const services = mergeWithPrevious(
      this.svc.list(),
      parsed.services,
      parsed.rejectedServiceKeys,
      keepMissing,
    );
    const slices = mergeWithPrevious(
      this.eps.list(),
      parsed.endpointSlices,
      parsed.rejectedEndpointSliceKeys,
      keepMissing,
    );
    const keptNote = (kind: string, keys: readonly string[]) => keys.map((k) => `${kind} ${k}`);
    const keptAll = [...keptNote("Service", services.kept), ...keptNote("EndpointSlice", slices.kept)];
    const problems = parsed.invalid.map((err) =>
      annotateKept(err, services.kept, slices.kept, keepMissing, keptAll),
    );
    this.problems = problems;
    for (const err of problems) {
      this.logger.warn({ object: err.object, reasons: err.reasons }, err.message);
      const kind =
        err.object.kind === "Service" || err.object.kind === "EndpointSlice" ? err.object.kind : "unknown";
      this.counter?.inc({ source: this.sourceName, kind });
    }
    const s = this.svc.replace(services.objects);
    const e = this.eps.replace(slices.objects);
    this.logger.info(
      {
        services: this.svc.list().length,
        endpointSlices: this.eps.list().length,
        invalid: problems.length,
        kept: keptAll.length,
        changes: { services: s, endpointSlices: e },
      },
      "services file loaded",
    );
    for (const err of problems) {
      if (err.object.kind !== "EndpointSlice") this.svc.reportInvalid(err);
      if (err.object.kind !== "Service") this.eps.reportInvalid(err);
    }
  }
}

/** Adds to an error what was kept in service because of it. */
function annotateKept(
  err: InvalidObjectError,
  keptServices: readonly string[],
  keptSlices: readonly string[],
  keepMissing: boolean,
  keptAll: readonly string[],
): InvalidObjectError {
  const { kind, namespace, name } = err.object;
  const key = `${namespace}/${name}`;
  const extra: string[] = [];
  if (kind === "Service" && keptServices.includes(key)) {
    extra.push("the previous version of the Service stays in service until the document is fixed");
  } else if (kind === "EndpointSlice" && keptSlices.includes(key)) {
    extra.push("the previous version of the EndpointSlice stays in service until the document is fixed");
  }
  const attributed = !!name && !!kind && kind !== "object";
  if (keepMissing && !attributed && keptAll.length > 0) {
    extra.push(`objects missing from the file are kept until it parses again: ${keptAll.join(", ")}`);
  }
  if (extra.length === 0) return err;
  return new InvalidObjectError(err.object, [...err.reasons, ...extra], { cause: err });
}
