/**
 * client-go's event correlation (tools/record/events_cache.go), pure and
 * clock-driven, deciding for each new event whether to create it, patch an
 * existing one or drop it:
 *
 * 1. **aggregation**: events with the same source, involved object, type and
 *    reason but different messages are counted per 10 min window; from the
 *    10th distinct message on they collapse into one event whose message is
 *    `(combined from similar events): <message>`;
 * 2. **deduplication**: an event equal to one seen before (same source,
 *    object, type, reason and message) is not created again: the existing
 *    event's `count` goes up and its `lastTimestamp` moves (a PATCH);
 * 3. **spam filter**: a token bucket per source and involved object (burst 25,
 *    one token per 5 min) drops events beyond it, so a crash loop cannot flood
 *    the API.
 *
 * @module
 */
import type { EventType, ObjectReference } from "./event-recorder.js";

/** A core/v1 Event in wire form (the fields the kubelet writes). */
export interface CoreEvent {
  apiVersion: "v1";
  kind: "Event";
  metadata: { name: string; namespace: string; resourceVersion?: string };
  involvedObject: ObjectReference;
  reason: string;
  message: string;
  type: EventType;
  source: { component: string; host?: string };
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  reportingComponent: string;
  reportingInstance: string;
}

/** The correlator's verdict on one event. */
export type CorrelationResult = (
  | { readonly action: "create"; readonly event: CoreEvent }
  | {
      readonly action: "patch";
      readonly event: CoreEvent;
      /** Strategic-merge patch body: `count`, `lastTimestamp`, `message`. */
      readonly patch: { count: number; lastTimestamp: string; message: string };
    }
  | { readonly action: "skip"; readonly event: CoreEvent }
) & {
  /** The deduplication key (for {@link EventCorrelator.forget}). */
  readonly key: string;
};

/** Tunables (client-go's defaults). */
export interface CorrelatorOptions {
  /** Similar events before aggregation; default 10. */
  readonly maxSimilarEvents?: number;
  /** Aggregation window; default 600 s. */
  readonly maxIntervalMs?: number;
  /** Spam filter burst; default 25. */
  readonly burst?: number;
  /** Spam filter refill rate, tokens per second; default 1/300. */
  readonly qps?: number;
  /** Entries kept in each cache (LRU); default 4096. */
  readonly cacheSize?: number;
}

/** The message of an aggregated event. */
export const AGGREGATED_MESSAGE_PREFIX = "(combined from similar events): ";

function refKey(e: CoreEvent): string[] {
  const o = e.involvedObject;
  return [
    e.source.component,
    e.source.host ?? "",
    o.kind ?? "",
    o.namespace ?? "",
    o.name ?? "",
    o.fieldPath ?? "",
    o.uid ?? "",
    o.apiVersion ?? "",
  ];
}

/** client-go `getEventKey`: everything that makes two events the same. */
export function eventKey(e: CoreEvent): string {
  return [...refKey(e), e.type, e.reason, e.message].join("\u0000");
}

/** client-go `getSpamKey`: the event's source and involved object. */
export function spamKey(e: CoreEvent): string {
  const o = e.involvedObject;
  return [e.source.component, e.source.host ?? "", o.kind, o.namespace, o.name, o.uid, o.apiVersion].join(
    "\u0000",
  );
}

function aggregateKey(e: CoreEvent): string {
  const o = e.involvedObject;
  return [
    e.source.component,
    e.source.host ?? "",
    o.kind,
    o.namespace,
    o.name,
    o.uid,
    o.apiVersion,
    e.type,
    e.reason,
    e.reportingComponent,
    e.reportingInstance,
  ].join("\u0000");
}

/** A bounded map dropping the least recently used entry. */
class Lru<V> {
  private readonly m = new Map<string, V>();
  constructor(private readonly max: number) {}
  delete(k: string): void {
    this.m.delete(k);
  }
  get(k: string): V | undefined {
    const v = this.m.get(k);
    if (v !== undefined) {
      this.m.delete(k);
      this.m.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.m.delete(k);
    this.m.set(k, v);
    if (this.m.size > this.max) this.m.delete(this.m.keys().next().value as string);
  }
}

interface AggregateRecord {
  messages: Set<string>;
  lastMs: number;
}

interface SeenRecord {
  count: number;
  firstTimestamp: string;
  name: string;
  resourceVersion?: string;
}

interface Bucket {
  tokens: number;
  atMs: number;
}

/** The correlation state of one recorder (see the module notes). */
export class EventCorrelator {
  private readonly maxSimilar: number;
  private readonly maxIntervalMs: number;
  private readonly burst: number;
  private readonly qps: number;
  private readonly aggregates: Lru<AggregateRecord>;
  private readonly seen: Lru<SeenRecord>;
  private readonly buckets: Lru<Bucket>;

  constructor(options: CorrelatorOptions = {}) {
    this.maxSimilar = options.maxSimilarEvents ?? 10;
    this.maxIntervalMs = options.maxIntervalMs ?? 600_000;
    this.burst = options.burst ?? 25;
    this.qps = options.qps ?? 1 / 300;
    const size = options.cacheSize ?? 4096;
    this.aggregates = new Lru(size);
    this.seen = new Lru(size);
    this.buckets = new Lru(size);
  }

  /** Decides what to do with a new event at `nowMs` (it carries `count: 1` and fresh timestamps). */
  correlate(event: CoreEvent, nowMs: number): CorrelationResult {
    const aggregated = this.aggregate(event, nowMs);
    const observed = this.observe(aggregated.event, aggregated.key);
    if (!this.allow(observed.event, nowMs))
      return { action: "skip", event: observed.event, key: aggregated.key };
    return observed;
  }

  /** Forgets an event by its result's `key` (its PATCH found it gone): the next one is created afresh. */
  forget(key: string): void {
    this.seen.delete(key);
  }

  private aggregate(event: CoreEvent, nowMs: number): { event: CoreEvent; key: string } {
    const key = aggregateKey(event);
    let rec = this.aggregates.get(key);
    if (!rec || nowMs - rec.lastMs > this.maxIntervalMs) rec = { messages: new Set(), lastMs: nowMs };
    rec.messages.add(event.message);
    rec.lastMs = nowMs;
    this.aggregates.set(key, rec);
    if (rec.messages.size < this.maxSimilar) return { event, key: eventKey(event) };
    const first = rec.messages.values().next().value as string;
    rec.messages.delete(first);
    const now = new Date(nowMs).toISOString();
    const combined: CoreEvent = {
      ...event,
      metadata: { ...event.metadata },
      message: AGGREGATED_MESSAGE_PREFIX + event.message,
      count: 1,
      firstTimestamp: now,
      lastTimestamp: now,
    };
    return { event: combined, key };
  }

  private observe(event: CoreEvent, key: string): CorrelationResult {
    const last = this.seen.get(key);
    if (last && last.count > 0) {
      const count = last.count + 1;
      const merged: CoreEvent = {
        ...event,
        metadata: {
          ...event.metadata,
          name: last.name,
          ...(last.resourceVersion ? { resourceVersion: last.resourceVersion } : {}),
        },
        count,
        firstTimestamp: last.firstTimestamp,
      };
      this.seen.set(key, { ...last, count });
      return {
        action: "patch",
        key,
        event: merged,
        patch: { count, lastTimestamp: event.lastTimestamp, message: event.message },
      };
    }
    this.seen.set(key, { count: 1, firstTimestamp: event.firstTimestamp, name: event.metadata.name });
    return { action: "create", event, key };
  }

  private allow(event: CoreEvent, nowMs: number): boolean {
    const key = spamKey(event);
    const b = this.buckets.get(key) ?? { tokens: this.burst, atMs: nowMs };
    b.tokens = Math.min(this.burst, b.tokens + ((nowMs - b.atMs) / 1000) * this.qps);
    b.atMs = nowMs;
    const ok = b.tokens >= 1;
    if (ok) b.tokens -= 1;
    this.buckets.set(key, b);
    return ok;
  }
}

/**
 * client-go's event name, `<object name>.<unix nanoseconds in hex>`; `sequence`
 * (0, 1, …) keeps names of events made in the same millisecond apart.
 */
export function eventName(objectName: string, nowMs: number, sequence = 0): string {
  return `${objectName}.${(BigInt(Math.round(nowMs)) * 1_000_000n + BigInt(sequence)).toString(16)}`;
}
