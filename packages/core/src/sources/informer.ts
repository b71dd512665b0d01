/**
 * worknode's Kubernetes informer: list, then watch with bookmarks, into an
 * {@link IndexedStore}, delivering add / update / delete events to handlers.
 *
 * It follows client-go's reflector and differs from `@kubernetes/client-node`'s
 * informer where that one is known to fail:
 * - it never stops by itself: any error (connection reset, 5xx, undecodable stream,
 *   watch `ERROR` event, failing credentials) restarts it with exponential backoff;
 * - `410 Gone` / `Expired` relists and diffs the result against the cache, emitting
 *   the deletes, updates and adds that were missed;
 * - a watchdog aborts a watch that stays silent well past its `timeoutSeconds`
 *   (a half-dead connection otherwise leaves the informer silent forever);
 * - every cache update is O(1).
 *
 * @module
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { Counter, type Registry } from "prom-client";
import { type KubeObject, objectKey } from "../kube/objects.js";
import { Backoff, type BackoffOptions } from "../util/backoff.js";
import { type Clock, realClock, type TimerHandle } from "../util/clock.js";
import {
  AbortedError,
  ApiStatusError,
  ConfigError,
  describeError,
  InvalidObjectError,
  UnavailableError,
  WorknodeError,
} from "../util/errors.js";
import { type Logger, silentLogger } from "../util/logging.js";
import { IdleWatchdog, RequestStalledError } from "./informer-watchdog.js";
import {
  apiStatusError,
  isResourceExpired,
  KubeApiClient,
  type KubeResource,
  type KubeResponse,
  type QueryParams,
  resourceApiVersion,
  resourceLabel,
  resourcePath,
} from "./kube-client.js";
import { JsonLinesDecoder, toWatchEvent, WatchDecodeError } from "./kube-client-watch.js";
import { IndexedStore, type Indexers, type ReadonlyIndexedStore } from "./store.js";
import type { ObjectEventHandler, ObjectSource, RunnableSource } from "./types.js";

/** Options of an {@link Informer}. */
export interface InformerOptions<T extends KubeObject> {
  /** The resource to list and watch, such as `KUBE_RESOURCES.services`. */
  readonly resource: KubeResource;
  /** Server URL and credentials (client certificate, bearer token, exec plugin …). */
  readonly kubeConfig: KubeConfig;
  /** Only this namespace; default all namespaces. */
  readonly namespace?: string;
  /** Label selector, such as `!service.kubernetes.io/headless`. */
  readonly labelSelector?: string;
  /** Field selector, such as `spec.nodeName=node1`. */
  readonly fieldSelector?: string;
  /** Secondary indexes of the cache. */
  readonly indexers?: Indexers<T>;
  /** Clock for timers (backoff, watchdog); default the real clock. */
  readonly clock?: Clock;
  /** Logger; default silent. */
  readonly logger?: Logger;
  /** Registry for the informer metrics; default none. */
  readonly metrics?: Registry;
  /** Restart backoff; default 800 ms doubling to 30 s with ±50 % jitter (as client-go's reflector). */
  readonly backoff?: BackoffOptions;
  /** Objects per list page (`limit`); 0 lists in one request; default 500. */
  readonly pageSize?: number;
  /** Minimum watch `timeoutSeconds`; each watch draws from [min, 2·min); default 300. */
  readonly minWatchTimeoutSeconds?: number;
  /** Extra silence tolerated beyond a watch's `timeoutSeconds` before the watchdog aborts it; default 30 s. */
  readonly watchdogGraceMs?: number;
  /**
   * Longest wait for response headers, and longest silence inside a list body,
   * before the request is aborted; default 60 s.
   */
  readonly requestTimeoutMs?: number;
  /**
   * When set, `start()` rejects with an {@link UnavailableError} if the first list did not
   * succeed within this time; the informer keeps retrying until stopped. Default: wait forever.
   */
  readonly syncTimeoutMs?: number;
  /** Random source in [0, 1) for watch timeouts and backoff jitter; default `Math.random`. */
  readonly random?: () => number;
  /** `User-Agent` of the requests; default `worknode`. */
  readonly userAgent?: string;
}

/** What an {@link Informer} is doing. */
export type InformerPhase = "idle" | "listing" | "watching" | "backoff" | "stopped";

/** A snapshot of an informer's state, for diagnostics and health checks. */
export interface InformerStatus {
  /** Current activity. */
  readonly phase: InformerPhase;
  /** True once the first list was delivered. */
  readonly synced: boolean;
  /** The resourceVersion the next watch starts from. */
  readonly resourceVersion: string | undefined;
  /** Objects in the cache. */
  readonly objects: number;
  /** Successful lists so far (the first one included). */
  readonly lists: number;
  /** Watch requests started so far. */
  readonly watches: number;
  /** Description of the last error, if any. */
  readonly lastError: string | undefined;
}

interface Registration<T> {
  readonly handler: ObjectEventHandler<T>;
  active: boolean;
}

interface InformerMetrics {
  readonly relists: Counter<string>;
  readonly restarts: Counter<string>;
  readonly events: Counter<string>;
}

interface WatchOutcome {
  /** The watch delivered events or stayed open for a while. */
  readonly healthy: boolean;
  /** Why it ended, when it did not end normally. */
  readonly error?: unknown;
  readonly durationMs: number;
}

interface ListPage<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

/** A watch open at least this long counts as healthy even without events. */
const HEALTHY_WATCH_MS = 60_000;
/** A watch closed normally sooner than this, without events, is treated as a failure. */
const SHORT_WATCH_MS = 1_000;

const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 800, maxMs: 30_000, factor: 2, jitter: 0.5 };

/**
 * Lists and watches one resource, keeps an indexed cache of it and delivers
 * change events to handlers. Implements {@link ObjectSource} and {@link RunnableSource}.
 *
 * Delivered objects are the parsed API responses, shared with the cache: treat them
 * as immutable. Handlers run synchronously, in event order; a throwing handler is
 * logged and does not disturb the informer or the other handlers.
 *
 * @example
 * ```ts
 * const services = new Informer<Service>({ resource: KUBE_RESOURCES.services, kubeConfig });
 * services.addHandler({ onAdd: (s) => console.log("added", objectKey(s)) });
 * await services.start();
 * ```
 */
export class Informer<T extends KubeObject> implements ObjectSource<T>, RunnableSource {
  readonly kind: string;
  private readonly options: InformerOptions<T>;
  private readonly client: KubeApiClient;
  private readonly cache: IndexedStore<T>;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private readonly random: () => number;
  private readonly path: string;
  private readonly label: string;
  private readonly apiVersion: string;
  private readonly metrics: InformerMetrics | undefined;
  private readonly abort = new AbortController();
  private handlers: ReadonlyArray<Registration<T>> = [];
  private loop: Promise<void> | undefined;
  private stopped = false;
  private synced = false;
  private phase: InformerPhase = "idle";
  private resourceVersion: string | undefined;
  private lastError: string | undefined;
  private listCount = 0;
  private watchCount = 0;
  private syncTimer: TimerHandle | undefined;
  private readonly syncedPromise: Promise<void>;
  private resolveSynced!: () => void;
  private rejectSynced!: (err: unknown) => void;

  /** @throws ConfigError on an invalid resource, namespace or kubeconfig */
  constructor(options: InformerOptions<T>) {
    this.options = options;
    this.kind = options.resource.kind;
    this.path = resourcePath(options.resource, options.namespace);
    this.label = resourceLabel(options.resource);
    this.apiVersion = resourceApiVersion(options.resource);
    this.client = new KubeApiClient(options.kubeConfig, { userAgent: options.userAgent ?? "worknode" });
    this.cache = new IndexedStore<T>({ indexers: options.indexers ?? {} });
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.log = (options.logger ?? silentLogger()).child({ component: "informer", resource: this.label });
    this.backoff = new Backoff({ ...(options.backoff ?? DEFAULT_BACKOFF), random: this.random });
    if (options.pageSize !== undefined && !(Number.isInteger(options.pageSize) && options.pageSize >= 0)) {
      throw new ConfigError(`informer pageSize must be a non-negative integer, got ${options.pageSize}`);
    }
    const minTimeout = options.minWatchTimeoutSeconds ?? 300;
    if (!(Number.isInteger(minTimeout) && minTimeout >= 1)) {
      throw new ConfigError(`informer minWatchTimeoutSeconds must be a positive integer, got ${minTimeout}`);
    }
    this.metrics = options.metrics ? informerMetrics(options.metrics) : undefined;
    this.syncedPromise = new Promise<void>((resolve, reject) => {
      this.resolveSynced = resolve;
      this.rejectSynced = reject;
    });
    // Callers that never await start() must not see an unhandled rejection after stop().
    this.syncedPromise.catch(() => {});
  }

  /** The cache, with its indexes (read-only). */
  get store(): ReadonlyIndexedStore<T> {
    return this.cache;
  }

  /** The server this informer talks to. */
  get server(): string {
    return this.client.server;
  }

  addHandler(handler: ObjectEventHandler<T>): () => void {
    const reg: Registration<T> = { handler, active: true };
    this.handlers = [...this.handlers, reg];
    for (const obj of this.cache.list()) this.call(reg, "onAdd", () => handler.onAdd?.(obj));
    if (this.synced) this.call(reg, "onSynced", () => handler.onSynced?.());
    return () => {
      reg.active = false;
      this.handlers = this.handlers.filter((r) => r !== reg);
    };
  }

  hasSynced(): boolean {
    return this.synced;
  }

  list(): readonly T[] {
    return this.cache.list();
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  /** Objects whose index `indexName` holds `value` (see {@link IndexedStore.byIndex}). */
  byIndex(indexName: string, value: string): T[] {
    return this.cache.byIndex(indexName, value);
  }

  /** A snapshot of what the informer is doing. */
  status(): InformerStatus {
    return {
      phase: this.phase,
      synced: this.synced,
      resourceVersion: this.resourceVersion,
      objects: this.cache.size,
      lists: this.listCount,
      watches: this.watchCount,
      lastError: this.lastError,
    };
  }

  /**
   * Starts listing and watching (once; later calls return the same promise).
   * Resolves after the first list was delivered to the handlers; keeps retrying until then.
   * Rejects with {@link AbortedError} if stopped first, or with {@link UnavailableError}
   * when `syncTimeoutMs` elapses first.
   */
  start(): Promise<void> {
    if (this.stopped && !this.loop) return Promise.reject(new AbortedError("informer was stopped"));
    if (!this.loop) {
      const { syncTimeoutMs } = this.options;
      if (syncTimeoutMs !== undefined) {
        this.syncTimer = this.clock.setTimeout(() => {
          if (this.synced) return;
          this.rejectSynced(
            new UnavailableError(
              this.client.server,
              `${this.label}: not synced after ${syncTimeoutMs} ms` +
                (this.lastError ? `; last error: ${this.lastError}` : ""),
            ),
          );
        }, syncTimeoutMs);
      }
      this.loop = this.run();
    }
    return this.syncedPromise;
  }

  /** Aborts in-flight requests and timers and waits until the loop ended; idempotent. */
  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.syncTimer?.cancel();
      this.abort.abort(new AbortedError("informer stopped"));
      if (!this.synced) this.rejectSynced(new AbortedError("informer stopped before it synced"));
    }
    await this.loop;
    this.phase = "stopped";
  }

  // ---------------------------------------------------------------------------
  // The loop

  private async run(): Promise<void> {
    let needList = true;
    let expiredBefore = false;
    while (!this.abort.signal.aborted) {
      try {
        if (needList) {
          try {
            await this.listAndSync();
            needList = false;
          } catch (err) {
            if (this.abort.signal.aborted) break;
            this.noteError(err, "list failed", !this.synced);
            await this.pause();
            continue;
          }
        }
        const outcome = await this.watch();
        if (this.abort.signal.aborted) break;
        if (outcome.healthy) {
          this.backoff.reset();
          expiredBefore = false;
        }
        if (outcome.error === undefined) {
          this.countRestart("closed");
          if (outcome.healthy || outcome.durationMs >= SHORT_WATCH_MS) continue;
          this.noteError(
            new UnavailableError(this.client.server, "watch closed at once without events"),
            "watch failed",
          );
          await this.pause();
          continue;
        }
        if (isResourceExpired(outcome.error)) {
          this.countRestart("expired");
          this.log.info({ err: describeError(outcome.error) }, "resourceVersion expired; relisting");
          this.lastError = describeError(outcome.error);
          needList = true;
          if (!expiredBefore) {
            expiredBefore = true;
            continue;
          }
          await this.pause();
          continue;
        }
        this.countRestart(outcome.error instanceof RequestStalledError ? "stalled" : "error");
        this.noteError(outcome.error, "watch failed");
        await this.pause();
      } catch (err) {
        // Defensive: nothing above should throw, but the informer must never stop by itself.
        if (this.abort.signal.aborted) break;
        this.noteError(err, "informer loop error", true);
        await this.pause();
      }
    }
    this.phase = "stopped";
  }

  private noteError(err: unknown, msg: string, loud = false): void {
    this.lastError = describeError(err);
    const fields = {
      err: this.lastError,
      ...(err instanceof ApiStatusError ? { status: err.status, reason: err.reason } : {}),
    };
    if (loud) this.log.error(fields, msg);
    else this.log.warn(fields, msg);
  }

  private async pause(): Promise<void> {
    if (this.abort.signal.aborted) return;
    const delay = this.backoff.next();
    this.phase = "backoff";
    this.log.debug({ delayMs: delay, attempt: this.backoff.attempts }, "backing off");
    try {
      await this.clock.sleep(delay, this.abort.signal);
    } catch {
      // aborted by stop()
    }
  }

  // ---------------------------------------------------------------------------
  // List

  private async listAndSync(): Promise<void> {
    this.phase = "listing";
    const pageSize = this.options.pageSize ?? 500;
    let result: { items: T[]; resourceVersion: string };
    try {
      result = await this.listAll(pageSize);
    } catch (err) {
      // An expired continue token: list again in one request (as client-go does).
      if (!(pageSize > 0 && isResourceExpired(err))) throw err;
      this.log.info({ err: describeError(err) }, "list continuation expired; listing without pages");
      result = await this.listAll(0);
    }
    if (this.abort.signal.aborted) return;
    const valid: T[] = [];
    for (const item of result.items) if (this.accept(item, "list")) valid.push(item);
    const diff = this.cache.replace(valid);
    this.resourceVersion = result.resourceVersion;
    this.listCount++;
    if (this.synced) this.metrics?.relists.inc({ resource: this.label });
    this.log.debug(
      {
        resourceVersion: result.resourceVersion,
        objects: valid.length,
        added: diff.added.length,
        updated: diff.updated.length,
        deleted: diff.deleted.length,
      },
      "listed",
    );
    for (const obj of diff.deleted) this.emitDelete(obj);
    for (const { oldObj, newObj } of diff.updated) this.emitChange(oldObj, newObj);
    for (const obj of diff.added) this.emitAdd(obj);
    if (!this.synced) this.markSynced();
  }

  private async listAll(pageSize: number): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let resourceVersion: string | undefined;
    let cont: string | undefined;
    do {
      const query: QueryParams = {
        labelSelector: this.options.labelSelector,
        fieldSelector: this.options.fieldSelector,
        limit: pageSize > 0 ? pageSize : undefined,
        continue: cont,
      };
      const page = await this.request("list", query, async (res, dog) => {
        const chunks: Buffer[] = [];
        for await (const chunk of res.body) {
          dog.touch();
          chunks.push(chunk);
        }
        try {
          return JSON.parse(Buffer.concat(chunks).toString("utf8")) as ListPage<T>;
        } catch (err) {
          throw new WatchDecodeError(`invalid JSON in list response: ${(err as Error).message}`, {
            cause: err,
          });
        }
      });
      if (
        typeof page !== "object" ||
        page === null ||
        (page.items !== undefined && !Array.isArray(page.items))
      ) {
        throw new WatchDecodeError("list response is not a list");
      }
      resourceVersion ??= page.metadata?.resourceVersion;
      for (const item of page.items ?? []) items.push(item);
      cont = page.metadata?.continue || undefined;
    } while (cont);
    if (!resourceVersion) throw new WatchDecodeError("list response has no resourceVersion");
    return { items, resourceVersion };
  }

  // ---------------------------------------------------------------------------
  // Watch

  private async watch(): Promise<WatchOutcome> {
    const minTimeout = this.options.minWatchTimeoutSeconds ?? 300;
    const timeoutSeconds = Math.floor(minTimeout * (1 + this.random()));
    const query: QueryParams = {
      watch: true,
      allowWatchBookmarks: true,
      resourceVersion: this.resourceVersion,
      timeoutSeconds,
      labelSelector: this.options.labelSelector,
      fieldSelector: this.options.fieldSelector,
    };
    const started = this.clock.monotonic();
    let events = 0;
    this.phase = "watching";
    this.watchCount++;
    this.log.debug({ resourceVersion: this.resourceVersion, timeoutSeconds }, "watching");
    let error: unknown;
    try {
      await this.request("watch", query, async (res, dog) => {
        dog.setLimit(timeoutSeconds * 1000 + (this.options.watchdogGraceMs ?? 30_000));
        const decoder = new JsonLinesDecoder();
        const onValue = (value: unknown) => {
          if (this.abort.signal.aborted) return;
          this.handleWatchEvent(value);
          events++;
        };
        for await (const chunk of res.body) {
          dog.touch();
          decoder.push(chunk, onValue);
        }
        if (decoder.hasPartial) {
          throw new WatchDecodeError(`watch stream ended inside an event (${decoder.partialBytes} bytes)`);
        }
      });
    } catch (err) {
      error = err;
    }
    const durationMs = this.clock.monotonic() - started;
    return { healthy: events > 0 || durationMs >= HEALTHY_WATCH_MS, durationMs, ...(error ? { error } : {}) };
  }

  private handleWatchEvent(value: unknown): void {
    const event = toWatchEvent(value);
    this.metrics?.events.inc({ resource: this.label, type: event.type });
    if (event.type === "ERROR") throw apiStatusError(500, event.object, `watch ${this.path}`);
    const obj = event.object as T;
    if (event.type === "BOOKMARK") {
      const rv = obj.metadata?.resourceVersion;
      if (rv) this.resourceVersion = rv;
      return;
    }
    const rv = obj.metadata?.resourceVersion;
    if (this.accept(obj, "watch")) {
      const key = objectKey(obj);
      if (event.type === "DELETED") {
        const old = this.cache.delete(key);
        if (old !== undefined) this.emitDelete(old);
      } else {
        const current = this.cache.get(key);
        // The same resourceVersion again is a duplicate, not a change.
        if (current === undefined || !rv || current.metadata?.resourceVersion !== rv) {
          this.cache.upsert(obj);
          if (current === undefined) this.emitAdd(obj);
          else this.emitChange(current, obj);
        }
      }
    }
    if (rv) this.resourceVersion = rv;
  }

  // ---------------------------------------------------------------------------
  // Requests

  /**
   * Runs one request with a watchdog: aborted when the headers or body data do not
   * arrive within `requestTimeoutMs` (the consumer may change the limit), or on stop().
   */
  private async request<R>(
    what: "list" | "watch",
    query: QueryParams,
    consume: (res: KubeResponse, dog: IdleWatchdog) => Promise<R>,
  ): Promise<R> {
    if (this.abort.signal.aborted) throw new AbortedError("informer stopped");
    const local = new AbortController();
    const onStop = () => local.abort(this.abort.signal.reason);
    this.abort.signal.addEventListener("abort", onStop, { once: true });
    let stalled: RequestStalledError | undefined;
    const dog = new IdleWatchdog(this.clock, this.options.requestTimeoutMs ?? 60_000, (idleMs) => {
      stalled = new RequestStalledError(
        this.client.server,
        `${what} ${this.path}: no data for ${Math.round(idleMs)} ms`,
        idleMs,
      );
      local.abort(stalled);
    });
    let res: KubeResponse | undefined;
    try {
      res = await this.client.get(this.path, query, { signal: local.signal, acceptGzip: what === "list" });
      return await consume(res, dog);
    } catch (err) {
      if (this.abort.signal.aborted) throw new AbortedError("informer stopped", { cause: err });
      if (stalled) throw stalled;
      if (res && !(err instanceof WorknodeError)) {
        // The stream broke after the response started (connection reset, truncated body):
        // name the request, as errors raised before the response do.
        throw new UnavailableError(this.client.server, `${what} ${this.path}: ${describeError(err)}`, {
          cause: err,
        });
      }
      throw err;
    } finally {
      dog.cancel();
      this.abort.signal.removeEventListener("abort", onStop);
      res?.body.destroy();
    }
  }

  // ---------------------------------------------------------------------------
  // Delivery

  /** Fills in kind/apiVersion (list items lack them) and rejects objects without a name. */
  private accept(obj: T, origin: string): boolean {
    if (typeof obj !== "object" || obj === null || !obj.metadata?.name) {
      const meta = typeof obj === "object" && obj !== null ? obj.metadata : undefined;
      const error = new InvalidObjectError(
        {
          kind: this.kind,
          namespace: meta?.namespace ?? "",
          name: meta?.name ?? "",
          origin: `${origin} ${this.path}`,
        },
        ["metadata.name is missing"],
      );
      this.log.warn({ err: error.message }, "invalid object");
      this.forEachHandler("onInvalid", (h) => h.onInvalid?.(error));
      return false;
    }
    obj.kind ??= this.kind;
    obj.apiVersion ??= this.apiVersion;
    return true;
  }

  private emitAdd(obj: T): void {
    this.forEachHandler("onAdd", (h) => h.onAdd?.(obj));
  }

  /** An update, or a delete + add when the name now belongs to a different object (new UID). */
  private emitChange(oldObj: T, newObj: T): void {
    const oldUid = oldObj.metadata?.uid;
    const newUid = newObj.metadata?.uid;
    if (oldUid && newUid && oldUid !== newUid) {
      this.emitDelete(oldObj);
      this.emitAdd(newObj);
      return;
    }
    this.forEachHandler("onUpdate", (h) => h.onUpdate?.(oldObj, newObj));
  }

  private emitDelete(obj: T): void {
    this.forEachHandler("onDelete", (h) => h.onDelete?.(obj));
  }

  private markSynced(): void {
    this.synced = true;
    this.syncTimer?.cancel();
    this.log.info({ objects: this.cache.size, resourceVersion: this.resourceVersion }, "synced");
    this.forEachHandler("onSynced", (h) => h.onSynced?.());
    this.resolveSynced();
  }

  private forEachHandler(what: string, fn: (h: ObjectEventHandler<T>) => void): void {
    if (this.stopped) return;
    for (const reg of this.handlers) this.call(reg, what, () => fn(reg.handler));
  }

  private call(reg: Registration<T>, what: string, fn: () => void): void {
    if (!reg.active) return;
    try {
      fn();
    } catch (err) {
      this.log.error({ err: describeError(err), callback: what }, "informer handler threw");
    }
  }

  private countRestart(reason: "closed" | "expired" | "stalled" | "error"): void {
    this.metrics?.restarts.inc({ resource: this.label, reason });
  }
}

/** Gets or registers the informer metrics in a registry (shared by all informers on it). */
function informerMetrics(registry: Registry): InformerMetrics {
  const counter = (name: string, help: string, labelNames: string[]): Counter<string> => {
    const existing = registry.getSingleMetric(name);
    if (existing instanceof Counter) return existing as Counter<string>;
    return new Counter({ name, help, labelNames, registers: [registry] });
  };
  return {
    relists: counter(
      "worknode_informer_relists_total",
      "Lists after the initial sync (relists after an expired resourceVersion).",
      ["resource"],
    ),
    restarts: counter(
      "worknode_informer_watch_restarts_total",
      "Watches that ended, by reason (closed, expired, stalled, error).",
      ["resource", "reason"],
    ),
    events: counter("worknode_informer_events_total", "Watch events received, by type.", [
      "resource",
      "type",
    ]),
  };
}
