/**
 * Static pods read from a manifest directory, as kubelet's `--pod-manifest-path`
 * (`staticPodPath`) file source does.
 *
 * Every `.yaml`, `.yml` and `.json` file of the directory (hidden files,
 * other extensions and subdirectories are ignored) holds one pod, several
 * (multi-document YAML) or a `List` / `PodList` of pods. Each pod is defaulted
 * the way kubelet's file source does it (pkg/kubelet/config/common.go):
 * - name `<name>-<nodeName in lower case>`, namespace `default` when missing;
 * - UID, when the manifest sets none, the MD5 (hex) of the node name, the file
 *   path and the pod document's content; it changes whenever the pod changes,
 *   and is also the `kubernetes.io/config.hash` annotation;
 * - `kubernetes.io/config.seen` (RFC 3339 time the UID was first seen) and
 *   `kubernetes.io/config.source: file`;
 * - `spec.nodeName` set to the node, a toleration of every `NoExecute` taint,
 *   `status.phase: Pending`.
 *
 * Invalid input follows kubelet: only pods that currently parse and validate
 * run. A file (or one document of it) that becomes invalid is reported and its
 * pods are deleted (kubelet drops them at its next full relist); the pods of
 * other files and documents keep running. A missing directory means no pods;
 * a directory that cannot be read changes nothing. Two pods with the same
 * final name: the one already running keeps it, otherwise the first in file
 * name and document order wins; the other is reported.
 *
 * Differences from kubelet: kubelet reads every non-hidden file whatever its
 * extension and only one pod per file; the UID hashes the document's
 * canonical JSON instead of Go's object dump (so UIDs differ from kubelet's).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { extname } from "node:path";
import type { Registry } from "prom-client";
import { objectKey, type Pod } from "../kube/objects.js";
import { type Clock, realClock } from "../util/clock.js";
import {
  ConfigError,
  InvalidObjectError,
  type ObjectRef,
  UnavailableError,
  type WorknodeError,
} from "../util/errors.js";
import { type Logger, silentLogger } from "../util/logging.js";
import { type PathSnapshot, PathWatcher, type WatchFunction } from "./file-watch.js";
import {
  canonicalJson,
  checkMetadata,
  checkName,
  describeType,
  documentIdentity,
  expandListDocuments,
  isRecord,
  type ManifestDocument,
  parseManifestDocuments,
} from "./parse.js";
import { SnapshotObjectSource } from "./snapshot-source.js";
import { sourceInvalidObjectsCounter } from "./source-metrics.js";
import type { ObjectEventHandler, ObjectSource, RunnableSource } from "./types.js";

/** Annotation holding the hash (the UID) of a static pod's manifest. */
export const ANNOTATION_CONFIG_HASH = "kubernetes.io/config.hash";
/** Annotation holding when a pod (with this hash) was first seen, RFC 3339. */
export const ANNOTATION_CONFIG_SEEN = "kubernetes.io/config.seen";
/** Annotation naming where a pod came from (`file`, `http`, `api`). */
export const ANNOTATION_CONFIG_SOURCE = "kubernetes.io/config.source";
/** Value of {@link ANNOTATION_CONFIG_SOURCE} for pods of a manifest directory. */
export const CONFIG_SOURCE_FILE = "file";
/** File extensions read from a manifest directory by default. */
export const DEFAULT_MANIFEST_EXTENSIONS: readonly string[] = [".yaml", ".yml", ".json"];

const DEFAULT_NAMESPACE = "default";

/** A valid pod of a manifest file, defaulted, before `config.seen` is set. */
export interface StaticPodCandidate {
  /** The defaulted pod (without {@link ANNOTATION_CONFIG_SEEN}). */
  readonly pod: Pod;
  /** The manifest file. */
  readonly path: string;
  /** `path:line, document N` of the pod. */
  readonly origin: string;
}

/** The pods of one manifest file and its rejected documents. */
export interface PodManifestFileContent {
  readonly pods: readonly StaticPodCandidate[];
  readonly invalid: readonly InvalidObjectError[];
}

/** True when a directory entry is read as a manifest: not hidden, with one of `extensions`. */
export function isManifestFileName(
  name: string,
  extensions: readonly string[] = DEFAULT_MANIFEST_EXTENSIONS,
): boolean {
  if (name.startsWith(".")) return false;
  const ext = extname(name).toLowerCase();
  return extensions.some((e) => e.toLowerCase() === ext);
}

/** The static pod name kubelet generates: `<name>-<nodeName in lower case>`. */
export function staticPodName(name: string, nodeName: string): string {
  return `${name}-${nodeName.toLowerCase()}`;
}

/**
 * The UID of a static pod whose manifest sets none: MD5 (hex) of
 * `host:<nodeName>`, `file:<path>` and the canonical JSON of the pod document.
 */
export function staticPodUid(manifest: unknown, path: string, nodeName: string): string {
  return createHash("md5")
    .update(`host:${nodeName}`)
    .update(`file:${path}`)
    .update(canonicalJson(manifest))
    .digest("hex");
}

/** Formats a time as RFC 3339 in UTC, with fractional seconds only when non-zero (Go's RFC3339Nano style). */
export function formatRfc3339(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2023-11-14T22:13:20.120Z
  return iso.replace(/\.(\d*?)0*Z$/, (_m, frac: string) => (frac ? `.${frac}Z` : "Z"));
}

/** Applies kubelet's static-pod defaults to a valid manifest (pure; `config.seen` is left to the caller). */
export function applyStaticPodDefaults(manifest: Pod, path: string, nodeName: string): Pod {
  const meta = manifest.metadata ?? {};
  const uid = meta.uid ? meta.uid : staticPodUid(manifest, path, nodeName);
  const spec = manifest.spec ?? { containers: [] };
  return {
    ...manifest,
    metadata: {
      ...meta,
      name: staticPodName(meta.name ?? "", nodeName),
      namespace: meta.namespace ? meta.namespace : DEFAULT_NAMESPACE,
      uid,
      annotations: {
        ...meta.annotations,
        [ANNOTATION_CONFIG_HASH]: uid,
        [ANNOTATION_CONFIG_SOURCE]: CONFIG_SOURCE_FILE,
      },
    },
    spec: { ...spec, nodeName, tolerations: withNoExecuteToleration(spec.tolerations) },
    status: { ...manifest.status, phase: "Pending" },
  };
}

type Toleration = NonNullable<NonNullable<Pod["spec"]>["tolerations"]>[number];

function withNoExecuteToleration(tolerations: Toleration[] | undefined): Toleration[] {
  const list = tolerations ?? [];
  const present = list.some((t) => !t.key && t.operator === "Exists" && !t.value && t.effect === "NoExecute");
  return present ? [...list] : [...list, { operator: "Exists", effect: "NoExecute" }];
}

/**
 * Parses, checks and defaults the pods of one manifest file (pure; no I/O).
 *
 * @param text file content
 * @param path the file's path (part of the UID and of messages)
 * @param nodeName the node the pods are bound to
 */
export function parsePodManifestFile(text: string, path: string, nodeName: string): PodManifestFileContent {
  const docs = expandListDocuments(parseManifestDocuments(text, path), path);
  const pods: StaticPodCandidate[] = [];
  const invalid: InvalidObjectError[] = [];
  if (docs.length === 0) {
    invalid.push(new InvalidObjectError({ kind: "Pod", origin: path }, ["the file holds no pod"]));
  }
  for (const doc of docs) {
    const id = documentIdentity(doc.value);
    const ref: ObjectRef = {
      kind: id.kind ?? "Pod",
      ...(id.name ? { namespace: id.namespace ?? DEFAULT_NAMESPACE, name: id.name } : {}),
      origin: doc.origin,
    };
    const reasons = checkPodDocument(doc, nodeName);
    if (reasons.length > 0) {
      invalid.push(new InvalidObjectError(ref, reasons));
      continue;
    }
    pods.push({ pod: applyStaticPodDefaults(doc.value as Pod, path, nodeName), path, origin: doc.origin });
  }
  return { pods, invalid };
}

function checkPodDocument(doc: ManifestDocument, nodeName: string): string[] {
  if (doc.error !== undefined) return [`YAML syntax error: ${doc.error}`];
  const v = doc.value;
  if (!isRecord(v)) return [`document is a ${describeType(v)}, expected a Pod mapping`];
  if (v.kind !== "Pod" || v.apiVersion !== "v1") {
    if (typeof v.kind !== "string" || v.kind === "")
      return ["kind is missing (expected kind: Pod, apiVersion: v1)"];
    if (v.kind !== "Pod") return [`kind "${v.kind}" is not Pod: a manifest directory holds v1 Pods`];
    return [`unsupported apiVersion ${JSON.stringify(v.apiVersion ?? null)} for Pod (expected v1)`];
  }
  const reasons: string[] = [];
  checkMetadata(v, "dns1123-subdomain", reasons);
  const name = isRecord(v.metadata) && typeof v.metadata.name === "string" ? v.metadata.name : "";
  if (name && reasons.length === 0) {
    const full = staticPodName(name, nodeName);
    const bad = checkName(full, "dns1123-subdomain");
    if (bad) reasons.push(`generated pod name "${full}" ${bad}`);
  }
  const spec = v.spec;
  if (!isRecord(spec)) {
    reasons.push(spec === undefined || spec === null ? "spec is missing" : "spec must be a mapping");
    return reasons;
  }
  const names = new Set<string>();
  checkContainers(spec.containers, "spec.containers", true, names, reasons);
  checkContainers(spec.initContainers, "spec.initContainers", false, names, reasons);
  if (spec.tolerations !== undefined && spec.tolerations !== null) {
    if (!Array.isArray(spec.tolerations)) reasons.push("spec.tolerations must be a list");
    else if (!spec.tolerations.every(isRecord)) reasons.push("spec.tolerations must be a list of mappings");
  }
  if (v.status !== undefined && v.status !== null && !isRecord(v.status))
    reasons.push("status must be a mapping");
  return reasons;
}

function checkContainers(
  value: unknown,
  field: string,
  required: boolean,
  names: Set<string>,
  reasons: string[],
): void {
  if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) {
    if (required) reasons.push(`${field} is missing: a pod needs at least one container`);
    return;
  }
  if (!Array.isArray(value)) {
    reasons.push(`${field} must be a list, got ${describeType(value)}`);
    return;
  }
  value.forEach((c: unknown, i: number) => {
    const f = `${field}[${i}]`;
    if (!isRecord(c)) {
      reasons.push(`${f} must be a mapping, got ${describeType(c)}`);
      return;
    }
    if (typeof c.name !== "string" || c.name === "") reasons.push(`${f}.name is missing`);
    else {
      const bad = checkName(c.name, "dns1123-label");
      if (bad) reasons.push(`${f}.name "${c.name}" ${bad}`);
      else if (names.has(c.name)) reasons.push(`${f}.name "${c.name}" is used by another container`);
      names.add(c.name);
    }
    if (typeof c.image !== "string" || c.image.trim() === "") reasons.push(`${f}.image is missing`);
  });
}

/** Options of {@link ManifestDirSource}. */
export interface ManifestDirSourceOptions {
  /** The manifest directory. It need not exist yet. */
  readonly path: string;
  /** Name of this node: suffix of pod names, `spec.nodeName`, part of the UID. */
  readonly nodeName: string;
  /** Clock for rescans, debouncing and `config.seen`; default the real clock. */
  readonly clock?: Clock;
  /** Logger; default silent. */
  readonly logger?: Logger;
  /** Registry for `worknode_source_invalid_objects_total`; none by default. */
  readonly registry?: Registry;
  /** Value of the `source` metric label; default `manifest-dir`. */
  readonly sourceName?: string;
  /** File extensions read; default `.yaml`, `.yml`, `.json`. */
  readonly extensions?: readonly string[];
  /** Full rescan interval in milliseconds; default 20 000 (kubelet's `--file-check-frequency`); 0 disables. */
  readonly rescanIntervalMs?: number;
  /** Debounce of filesystem events in milliseconds; default 100. */
  readonly debounceMs?: number;
  /** Watch with inotify (`fs.watch`); default true. */
  readonly fsWatch?: boolean;
  /** Replacement for `fs.watch` (tests). */
  readonly watchFn?: WatchFunction;
}

/**
 * The static pods of a manifest directory, following its changes.
 * See the module documentation for the defaults applied and how invalid input is handled.
 */
export class ManifestDirSource implements ObjectSource<Pod>, RunnableSource {
  /** Always `Pod`. */
  readonly kind = "Pod";
  private readonly pods: SnapshotObjectSource<Pod>;
  private readonly path: string;
  private readonly nodeName: string;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly sourceName: string;
  private readonly counter: ReturnType<typeof sourceInvalidObjectsCounter> | undefined;
  private readonly watcher: PathWatcher;
  /** UID → RFC 3339 time it was first seen. */
  private readonly firstSeen = new Map<string, string>();
  /** Pod key → manifest file serving it. */
  private readonly owners = new Map<string, string>();
  private problems: readonly WorknodeError[] = [];

  constructor(options: ManifestDirSourceOptions) {
    if (!options.nodeName) throw new ConfigError("ManifestDirSource needs a nodeName");
    this.path = options.path;
    this.nodeName = options.nodeName;
    this.clock = options.clock ?? realClock;
    this.logger = (options.logger ?? silentLogger()).child({ source: "manifest-dir", path: options.path });
    this.sourceName = options.sourceName ?? "manifest-dir";
    this.counter = options.registry ? sourceInvalidObjectsCounter(options.registry) : undefined;
    this.pods = new SnapshotObjectSource<Pod>({ kind: "Pod", logger: this.logger });
    const extensions = options.extensions ?? DEFAULT_MANIFEST_EXTENSIONS;
    this.watcher = new PathWatcher({
      path: options.path,
      kind: "directory",
      include: (name) => isManifestFileName(name, extensions),
      onChange: (snap) => this.apply(snap),
      clock: this.clock,
      logger: this.logger,
      ...(options.rescanIntervalMs !== undefined ? { rescanIntervalMs: options.rescanIntervalMs } : {}),
      ...(options.debounceMs !== undefined ? { debounceMs: options.debounceMs } : {}),
      ...(options.fsWatch !== undefined ? { fsWatch: options.fsWatch } : {}),
      ...(options.watchFn ? { watchFn: options.watchFn } : {}),
    });
  }

  /** Reads the directory and delivers its pods, then follows changes. Resolves once synced. */
  start(): Promise<void> {
    return this.watcher.start();
  }

  /** Stops watching; idempotent. The pods stay readable. */
  stop(): Promise<void> {
    return this.watcher.stop();
  }

  /** Re-reads the directory now; resolves once any change was delivered. */
  rescan(): Promise<void> {
    return this.watcher.rescan();
  }

  /** Attaches a handler; it first receives an `onAdd` per current pod (and `onSynced` when synced). */
  addHandler(handler: ObjectEventHandler<Pod>): () => void {
    return this.pods.addHandler(handler);
  }

  /** True once the directory was read for the first time. */
  hasSynced(): boolean {
    return this.pods.hasSynced();
  }

  /** The current static pods. */
  list(): readonly Pod[] {
    return this.pods.list();
  }

  /** The pod with the given `namespace/name` key (name with the node suffix), if any. */
  get(key: string): Pod | undefined {
    return this.pods.get(key);
  }

  /**
   * The problems of the last load: an {@link InvalidObjectError} per rejected
   * file or pod, or an {@link UnavailableError} when the directory could not be read.
   */
  errors(): readonly WorknodeError[] {
    return this.problems;
  }

  private apply(snap: PathSnapshot): void {
    if (snap.error) {
      this.problems = [
        new UnavailableError(
          this.path,
          `cannot read manifest directory ${this.path}: ${snap.error.message}`,
          {
            cause: snap.error,
          },
        ),
      ];
      this.logger.error(
        { err: snap.error.message },
        "cannot read manifest directory; keeping the current pods",
      );
      this.pods.replace(this.pods.list());
      return;
    }
    if (!snap.exists) this.logger.warn("manifest directory does not exist; no static pods");
    const candidates: StaticPodCandidate[] = [];
    const invalid: InvalidObjectError[] = [];
    for (const file of snap.files) {
      if (!file.ok) {
        invalid.push(
          new InvalidObjectError(
            { kind: "Pod", origin: file.path },
            [`cannot read file: ${file.error.message}`],
            {
              cause: file.error,
            },
          ),
        );
        continue;
      }
      const content = parsePodManifestFile(file.content, file.path, this.nodeName);
      candidates.push(...content.pods);
      invalid.push(...content.invalid);
    }
    const winners = this.resolveDuplicates(candidates, invalid);
    const now = formatRfc3339(this.clock.now());
    const uids = new Set<string>();
    const pods = winners.map(({ pod }) => {
      const uid = pod.metadata?.uid ?? "";
      uids.add(uid);
      let seen = this.firstSeen.get(uid);
      if (seen === undefined) {
        seen = now;
        this.firstSeen.set(uid, seen);
      }
      return {
        ...pod,
        metadata: {
          ...pod.metadata,
          annotations: { ...pod.metadata?.annotations, [ANNOTATION_CONFIG_SEEN]: seen },
        },
      };
    });
    for (const uid of [...this.firstSeen.keys()]) if (!uids.has(uid)) this.firstSeen.delete(uid);
    this.owners.clear();
    for (const w of winners) this.owners.set(objectKey(w.pod), w.path);

    this.problems = invalid;
    for (const err of invalid) {
      this.logger.warn({ object: err.object, reasons: err.reasons }, err.message);
      this.counter?.inc({ source: this.sourceName, kind: err.object.kind === "Pod" ? "Pod" : "unknown" });
    }
    const changes = this.pods.replace(pods);
    this.logger.info({ pods: pods.length, invalid: invalid.length, changes }, "manifest directory loaded");
    for (const err of invalid) this.pods.reportInvalid(err);
  }

  /** Keeps one pod per key: the running one's file first, else file name and document order. */
  private resolveDuplicates(
    candidates: readonly StaticPodCandidate[],
    invalid: InvalidObjectError[],
  ): StaticPodCandidate[] {
    const byKey = new Map<string, StaticPodCandidate[]>();
    for (const c of candidates) {
      const key = objectKey(c.pod);
      const list = byKey.get(key);
      if (list) list.push(c);
      else byKey.set(key, [c]);
    }
    const winners: StaticPodCandidate[] = [];
    for (const [key, list] of byKey) {
      const owner = this.owners.get(key);
      const winner = list.find((c) => c.path === owner) ?? list[0]!;
      winners.push(winner);
      for (const c of list) {
        if (c === winner) continue;
        const meta = c.pod.metadata ?? {};
        invalid.push(
          new InvalidObjectError(
            { kind: "Pod", namespace: meta.namespace, name: meta.name, origin: c.origin },
            [`duplicate pod ${key}: already defined at ${winner.origin}`],
          ),
        );
      }
    }
    return winners;
  }
}
