/**
 * An {@link EventRecorder} posting core/v1 Events to the API server like
 * client-go's recorder: each event is correlated ({@link EventCorrelator}:
 * aggregation, `count` / `lastTimestamp` PATCH of repeats, spam filter), then
 * written from a bounded queue in the background (callers never wait), with a
 * few retries; a PATCH of an event that is gone (events expire after an hour)
 * creates it again with its count.
 *
 * @module
 */
import {
  ApiStatusError,
  type Clock,
  describeError,
  type KubeApiClient,
  type Logger,
  realClock,
  silentLogger,
} from "@worknode/core";
import {
  type CoreEvent,
  type CorrelationResult,
  type CorrelatorOptions,
  EventCorrelator,
  eventName,
} from "./correlator.js";
import type { EventRecorder, EventType, ObjectReference } from "./event-recorder.js";

/** Options of {@link ApiEventRecorder}. */
export interface ApiEventRecorderOptions {
  readonly client: KubeApiClient;
  /** `source.component` and `reportingComponent`; default `kubelet`. */
  readonly component?: string;
  /** `source.host` and `reportingInstance`: the node name. */
  readonly host: string;
  /** Events queued beyond this are dropped (client-go: 1000). */
  readonly maxQueued?: number;
  /** Attempts per write; default 3. */
  readonly maxAttempts?: number;
  /** Delay between attempts; default 1 s. */
  readonly retryDelayMs?: number;
  readonly correlator?: CorrelatorOptions;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** Posts events to the API server (see the module notes). */
export class ApiEventRecorder implements EventRecorder {
  private readonly correlator: EventCorrelator;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly component: string;
  private readonly queue: CorrelationResult[] = [];
  private draining: Promise<void> | undefined;
  private lastMs = 0;
  private seq = 0;
  private dropped = 0;

  constructor(private readonly options: ApiEventRecorderOptions) {
    this.correlator = new EventCorrelator(options.correlator);
    this.clock = options.clock ?? realClock;
    this.logger = (options.logger ?? silentLogger()).child({ component: "event-recorder" });
    this.component = options.component ?? "kubelet";
  }

  /** Events dropped because the queue was full. */
  get droppedEvents(): number {
    return this.dropped;
  }

  event(ref: ObjectReference, type: EventType, reason: string, message: string): void {
    const ns = ref.namespace || "default";
    const nowMs = this.clock.now();
    this.seq = nowMs === this.lastMs ? this.seq + 1 : 0;
    this.lastMs = nowMs;
    const now = new Date(nowMs).toISOString();
    const ev: CoreEvent = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: eventName(ref.name ?? "", nowMs, this.seq), namespace: ns },
      involvedObject: ref,
      reason,
      message,
      type,
      source: { component: this.component, host: this.options.host },
      count: 1,
      firstTimestamp: now,
      lastTimestamp: now,
      reportingComponent: this.component,
      reportingInstance: this.options.host,
    };
    const result = this.correlator.correlate(ev, nowMs);
    if (result.action === "skip") {
      this.logger.debug({ reason, object: ref.name }, "event dropped by the spam filter");
      return;
    }
    if (this.queue.length >= (this.options.maxQueued ?? 1000)) {
      this.dropped++;
      return;
    }
    this.queue.push(result);
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
    });
  }

  /** Resolves once every queued event was written (or given up on). */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private async drain(): Promise<void> {
    for (let r = this.queue.shift(); r; r = this.queue.shift()) {
      const attempts = this.options.maxAttempts ?? 3;
      for (let i = 1; i <= attempts; i++) {
        try {
          await this.write(r);
          break;
        } catch (e) {
          if (i === attempts) {
            this.logger.warn({ reason: r.event.reason, err: describeError(e) }, "could not write event");
          } else {
            await this.clock.sleep(this.options.retryDelayMs ?? 1000);
          }
        }
      }
    }
  }

  private async write(r: CorrelationResult): Promise<void> {
    const ns = encodeURIComponent(r.event.metadata.namespace);
    const client = this.options.client;
    if (r.action === "patch") {
      try {
        await client.requestJson(
          "PATCH",
          `/api/v1/namespaces/${ns}/events/${encodeURIComponent(r.event.metadata.name)}`,
          {
            body: r.patch,
            contentType: "application/strategic-merge-patch+json",
          },
        );
        return;
      } catch (e) {
        // The event is gone (expired): create it again under the same name, count kept.
        if (!(e instanceof ApiStatusError && e.status === 404)) throw e;
      }
    }
    const { resourceVersion: _rv, ...metadata } = r.event.metadata;
    const body = { ...r.event, metadata };
    try {
      await client.requestJson("POST", `/api/v1/namespaces/${ns}/events`, { body });
    } catch (e) {
      // Created by an earlier attempt whose answer was lost.
      if (e instanceof ApiStatusError && e.status === 409) return;
      throw e;
    }
  }
}
