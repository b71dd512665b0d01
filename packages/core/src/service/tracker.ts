/**
 * {@link ServiceChangeTracker}: Service and EndpointSlice events in, immutable
 * snapshots and change sets out.
 *
 * @module
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { EndpointSlice, Service } from "../kube/objects.js";
import type { ObjectEventHandler } from "../sources/types.js";
import { type Clock, realClock } from "../util/clock.js";
import { formatObjectRef, type InvalidObjectError } from "../util/errors.js";
import { type Logger, silentLogger } from "../util/logging.js";
import { needsConntrackCleanup, staleConntrackEntries } from "./conntrack.js";
import {
  mergeEndpointSlices,
  type ParsedEndpointSlice,
  parsedSlicesEqual,
  parseEndpointSlice,
} from "./endpoints.js";
import { serviceKey } from "./keys.js";
import type {
  ChangeSet,
  Commit,
  Endpoint,
  ServicePort,
  ServicePortKey,
  ServiceSnapshot,
  ServiceStateTracker,
  StaleConntrack,
} from "./model.js";
import { PersistentMap } from "./persistent-map.js";
import { buildServicePorts, servicePortsEqual } from "./ports.js";

/** Options of {@link ServiceChangeTracker}. */
export interface ServiceChangeTrackerOptions {
  /** This node's name: endpoints whose `nodeName` equals it are local. */
  readonly nodeName: string;
  /**
   * This proxy's name for the `service.kubernetes.io/service-proxy-name` label; unset:
   * the default proxy (see {@link ignoredByLabels}).
   */
  readonly proxyName?: string;
  /** Allowed node ports (default 1–65535), see {@link BuildServicePortsOptions.nodePortRange}. */
  readonly nodePortRange?: { readonly min: number; readonly max: number };
  /** Logger for invalid objects (warn) and skipped ones (debug); default silent. */
  readonly logger?: Logger;
  /**
   * Registry for the tracker's metrics: `worknode_service_tracker_events_total{kind}`,
   * `worknode_service_tracker_pending_services`, `worknode_service_tracker_invalid_objects`.
   * One tracker per registry.
   */
  readonly metrics?: Registry;
  /** Clock; trigger times older than the tracker's creation are ignored (as kube-proxy does). */
  readonly clock?: Clock;
  /** Called (synchronously) with every invalid object seen, besides logging it. */
  readonly onInvalid?: (error: InvalidObjectError) => void;
}

/** Per-Service state: what was committed and what is pending. */
interface ServiceRecord {
  readonly key: string;
  /** Ports in the last committed snapshot (empty when none). */
  committedPorts: readonly ServicePort[];
  /** Ports after pending Service events; `undefined` when no Service change is pending. */
  pendingPorts: readonly ServicePort[] | undefined;
  /** Slices (by slice name) in the last committed snapshot. */
  readonly committedSlices: Map<string, ParsedEndpointSlice>;
  /** Pending slice changes by slice name (`null`: removal). */
  readonly pendingSlices: Map<string, ParsedEndpointSlice | null>;
  /** Earliest trigger time of the pending slice changes (ms), when known. */
  triggerTime: number | undefined;
}

interface TrackerSnapshot extends ServiceSnapshot {
  readonly services: PersistentMap<ServicePortKey, ServicePort>;
  readonly endpoints: PersistentMap<ServicePortKey, readonly Endpoint[]>;
}

const NO_PORTS: readonly ServicePort[] = Object.freeze([]);

function emptyChanges(): ChangeSet {
  return Object.freeze({
    changedServicePorts: new Set<ServicePortKey>(),
    deletedServicePorts: new Set<ServicePortKey>(),
    staleConntrack: Object.freeze([]) as readonly StaleConntrack[],
    triggerTimes: new Map<ServicePortKey, number>(),
  });
}

function sameIdentities(a: readonly ServicePort[], b: readonly ServicePort[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameKeys(a: readonly ServicePort[], b: readonly ServicePort[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.key !== b[i]!.key) return false;
  return true;
}

function metaKey(obj: { metadata?: { namespace?: string; name?: string } } | undefined): string | undefined {
  const ns = obj?.metadata?.namespace;
  const name = obj?.metadata?.name;
  return typeof ns === "string" && ns !== "" && typeof name === "string" && name !== ""
    ? serviceKey(ns, name)
    : undefined;
}

/**
 * Turns Service and EndpointSlice events into immutable {@link ServiceSnapshot}s and
 * {@link ChangeSet}s: kube-proxy's ServiceChangeTracker, EndpointsChangeTracker and
 * EndpointSliceCache in one.
 *
 * **Events** only record pending changes, per Service: each event rebuilds that Service's
 * ports ({@link buildServicePorts}) or that slice ({@link parseEndpointSlice}) and compares it
 * with what was last committed, so an update that changes nothing, or an add followed by a
 * delete before a commit, leaves nothing pending. {@link ServiceChangeTracker.onPendingChange}
 * callbacks run whenever an event leaves a change pending.
 *
 * **{@link ServiceChangeTracker.commit}** applies pending changes in O(changed Services and their
 * endpoints): only the touched Services' endpoints are re-merged, and the snapshot maps are
 * {@link PersistentMap}s updated without copying the untouched entries (amortised: a map is
 * flattened once every ~2·√n changed keys). A commit with no effective change returns the
 * previous snapshot (same object, same `generation`); otherwise `generation` grows by one.
 * Unchanged
 * `ServicePort` objects and endpoint arrays are the very objects of the previous snapshot,
 * so backends can compare by identity. `snapshot.endpoints` only holds keys of existing
 * service ports with at least one endpoint; slices whose Service is unknown are kept and
 * used once the Service appears.
 *
 * **Change sets** list every service port whose `ServicePort` or endpoint list changed
 * (added, updated or deleted) and the deleted ones; `staleConntrack` holds the UDP/SCTP
 * entries {@link staleConntrackEntries} derives for each changed port; `triggerTimes` gives,
 * for ports whose endpoints changed, the earliest `endpoints.kubernetes.io/last-change-trigger-time`
 * of the slice updates behind the change (times before the tracker was created are ignored).
 *
 * **Filtering**: Services and EndpointSlices that {@link ignoredByLabels} rejects (another proxy's
 * `service-proxy-name`, the `headless` label), ExternalName and headless Services, and FQDN
 * slices contribute nothing, as kube-proxy's informer label selector and service filter do.
 *
 * **Invalid objects**: an invalid Service update *drops* that Service's ports (and so its
 * endpoints) from the next snapshot, as if it had been deleted, rather than keeping the
 * last valid version: that is what kube-proxy does with whatever the API hands it, and it
 * keeps the proxy's state a pure function of its inputs. Invalid parts of an EndpointSlice
 * (bad ports or endpoints) are dropped and the rest is used; a slice that cannot be tied to
 * a Service is ignored. Every invalid object is logged (warn) with a reason naming it,
 * passed to `onInvalid`, and listed by {@link ServiceChangeTracker.invalidObjects} until it
 * is fixed or deleted. Other Services keep being served.
 */
export class ServiceChangeTracker implements ServiceStateTracker {
  /** Attach to a Service source (add, update, delete, synced, invalid). */
  readonly serviceHandler: ObjectEventHandler<Service>;
  /** Attach to an EndpointSlice source (add, update, delete, synced, invalid). */
  readonly endpointSliceHandler: ObjectEventHandler<EndpointSlice>;

  private readonly nodeName: string;
  private readonly proxyName: string | undefined;
  private readonly nodePortRange: { readonly min: number; readonly max: number } | undefined;
  private readonly logger: Logger;
  private readonly onInvalidCallback: ((error: InvalidObjectError) => void) | undefined;
  private readonly startTime: number;

  private readonly records = new Map<string, ServiceRecord>();
  /** Service keys with pending changes. */
  private readonly pending = new Set<string>();
  /** `namespace/sliceName` → the Service key the slice was last assigned to. */
  private readonly sliceOwner = new Map<string, string>();
  /** Current invalid objects by `Kind namespace/name`. */
  private readonly invalid = new Map<string, InvalidObjectError>();
  private readonly callbacks = new Set<() => void>();
  private current: TrackerSnapshot;
  private servicesSynced = false;
  private slicesSynced = false;

  private readonly eventsTotal: Counter<"kind"> | undefined;
  private readonly pendingGauge: Gauge | undefined;
  private readonly invalidGauge: Gauge | undefined;

  constructor(options: ServiceChangeTrackerOptions) {
    this.nodeName = options.nodeName;
    this.proxyName = options.proxyName || undefined;
    this.nodePortRange = options.nodePortRange;
    this.logger = options.logger ?? silentLogger();
    this.onInvalidCallback = options.onInvalid;
    this.startTime = (options.clock ?? realClock).now();
    this.current = Object.freeze({
      services: PersistentMap.empty<ServicePortKey, ServicePort>(),
      endpoints: PersistentMap.empty<ServicePortKey, readonly Endpoint[]>(),
      generation: 0,
    });
    if (options.metrics) {
      const registers = [options.metrics];
      this.eventsTotal = new Counter({
        name: "worknode_service_tracker_events_total",
        help: "Service and EndpointSlice events received by the service change tracker",
        labelNames: ["kind"],
        registers,
      });
      this.pendingGauge = new Gauge({
        name: "worknode_service_tracker_pending_services",
        help: "Services with changes not yet committed",
        registers,
      });
      this.invalidGauge = new Gauge({
        name: "worknode_service_tracker_invalid_objects",
        help: "Services and EndpointSlices currently rejected as invalid",
        registers,
      });
    }

    this.serviceHandler = {
      onAdd: (svc) => this.serviceEvent(undefined, svc),
      onUpdate: (oldSvc, newSvc) => this.serviceEvent(oldSvc, newSvc),
      onDelete: (svc) => this.serviceEvent(svc, undefined),
      onSynced: () => {
        this.servicesSynced = true;
      },
      onInvalid: (error) => this.reportExternal(error),
    };
    this.endpointSliceHandler = {
      onAdd: (slice) => this.sliceEvent(undefined, slice),
      onUpdate: (oldSlice, newSlice) => this.sliceEvent(oldSlice, newSlice),
      onDelete: (slice) => this.sliceEvent(slice, undefined),
      onSynced: () => {
        this.slicesSynced = true;
      },
      onInvalid: (error) => this.reportExternal(error),
    };
  }

  /** True once both the Service and the EndpointSlice source delivered their initial state. */
  hasSynced(): boolean {
    return this.servicesSynced && this.slicesSynced;
  }

  /** True when an event since the last commit changed what the next snapshot will hold. */
  hasPendingChanges(): boolean {
    return this.pending.size > 0;
  }

  /** The last committed snapshot (generation 0 and empty before the first effective commit). */
  snapshot(): ServiceSnapshot {
    return this.current;
  }

  /**
   * Registers `callback`, run synchronously after every event that leaves a change pending
   * (an event that changes nothing does not call it). Exceptions it throws are logged.
   * @returns a function that unregisters the callback
   */
  onPendingChange(callback: () => void): () => void {
    const cb = () => callback();
    this.callbacks.add(cb);
    return () => {
      this.callbacks.delete(cb);
    };
  }

  /** The Services and EndpointSlices currently rejected (each error names its object and reasons). */
  invalidObjects(): readonly InvalidObjectError[] {
    return [...this.invalid.values()];
  }

  // ---------------------------------------------------------------- events

  private serviceEvent(oldSvc: Service | undefined, newSvc: Service | undefined): void {
    this.eventsTotal?.inc({ kind: "Service" });
    const oldKey = metaKey(oldSvc);
    const newKey = metaKey(newSvc);
    if (oldKey !== undefined && oldKey !== newKey) this.setService(oldKey, undefined);
    if (newSvc === undefined) return;
    if (newKey === undefined) {
      // Cannot be tracked without a name: report it, nothing else to do.
      const r = buildServicePorts(newSvc, { proxyName: this.proxyName });
      if (r.error) this.report(r.error, false);
      return;
    }
    this.setService(newKey, newSvc);
  }

  private setService(key: string, svc: Service | undefined): void {
    const invalidKey = `Service ${key}`;
    let ports: readonly ServicePort[] = NO_PORTS;
    const rec = this.records.get(key) ?? this.newRecord(key);
    if (svc !== undefined) {
      const r = buildServicePorts(svc, {
        ...(this.proxyName ? { proxyName: this.proxyName } : {}),
        ...(this.nodePortRange ? { nodePortRange: this.nodePortRange } : {}),
      });
      if (r.error) this.report(r.error, true, invalidKey);
      else this.clearInvalid(invalidKey);
      if (r.skipped) this.logger.debug({ service: key, reason: r.skipped }, "service not proxied");
      ports = r.ports.map((sp) => {
        const old = rec.committedPorts.find((c) => c.key === sp.key);
        return old && servicePortsEqual(old, sp) ? old : sp;
      });
    } else {
      this.clearInvalid(invalidKey);
    }
    rec.pendingPorts = sameIdentities(ports, rec.committedPorts) ? undefined : ports;
    this.settle(rec);
  }

  private sliceEvent(oldSlice: EndpointSlice | undefined, newSlice: EndpointSlice | undefined): void {
    this.eventsTotal?.inc({ kind: "EndpointSlice" });
    const oldId = metaKey(oldSlice);
    const newId = metaKey(newSlice);
    if (oldId !== undefined && oldId !== newId) {
      this.clearInvalid(`EndpointSlice ${oldId}`);
      this.removeSlice(oldId);
    }
    if (newSlice === undefined) return;
    const r = parseEndpointSlice(newSlice, {
      nodeName: this.nodeName,
      ...(this.proxyName ? { proxyName: this.proxyName } : {}),
    });
    const invalidKey = newId !== undefined ? `EndpointSlice ${newId}` : undefined;
    if (r.error) this.report(r.error, invalidKey !== undefined, invalidKey);
    else if (invalidKey) this.clearInvalid(invalidKey);
    if (newId === undefined) return;
    if (!r.slice) {
      if (r.skipped)
        this.logger.debug({ endpointSlice: newId, reason: r.skipped }, "endpoint slice not proxied");
      this.removeSlice(newId);
      return;
    }
    const owner = r.slice.serviceKey;
    const prevOwner = this.sliceOwner.get(newId);
    if (prevOwner !== undefined && prevOwner !== owner) this.setSlice(prevOwner, r.slice.name, null);
    this.sliceOwner.set(newId, owner);
    this.setSlice(owner, r.slice.name, r.slice);
  }

  private removeSlice(id: string): void {
    const owner = this.sliceOwner.get(id);
    if (owner === undefined) return;
    this.sliceOwner.delete(id);
    this.setSlice(owner, id.slice(id.indexOf("/") + 1), null);
  }

  private setSlice(key: string, sliceName: string, slice: ParsedEndpointSlice | null): void {
    const rec = this.records.get(key) ?? this.newRecord(key);
    const committed = rec.committedSlices.get(sliceName);
    const same =
      slice === null
        ? committed === undefined
        : committed !== undefined && parsedSlicesEqual(committed, slice);
    if (same) {
      rec.pendingSlices.delete(sliceName);
    } else {
      rec.pendingSlices.set(sliceName, slice);
      const t = slice?.triggerTime;
      if (t !== undefined && t >= this.startTime && (rec.triggerTime === undefined || t < rec.triggerTime)) {
        rec.triggerTime = t;
      }
    }
    this.settle(rec);
  }

  private newRecord(key: string): ServiceRecord {
    const rec: ServiceRecord = {
      key,
      committedPorts: NO_PORTS,
      pendingPorts: undefined,
      committedSlices: new Map(),
      pendingSlices: new Map(),
      triggerTime: undefined,
    };
    this.records.set(key, rec);
    return rec;
  }

  /** Updates the pending set after an event on `rec`, and wakes listeners when a change is pending. */
  private settle(rec: ServiceRecord): void {
    const isPending = rec.pendingPorts !== undefined || rec.pendingSlices.size > 0;
    if (isPending) {
      this.pending.add(rec.key);
    } else {
      this.pending.delete(rec.key);
      rec.triggerTime = undefined;
      this.dropIfEmpty(rec);
    }
    this.pendingGauge?.set(this.pending.size);
    if (isPending && this.callbacks.size > 0) {
      for (const cb of [...this.callbacks]) {
        try {
          cb();
        } catch (err) {
          this.logger.error({ err }, "onPendingChange callback failed");
        }
      }
    }
  }

  private dropIfEmpty(rec: ServiceRecord): void {
    if (rec.committedPorts.length === 0 && rec.committedSlices.size === 0 && !this.pending.has(rec.key)) {
      this.records.delete(rec.key);
    }
  }

  private report(error: InvalidObjectError, track: boolean, key?: string): void {
    this.logger.warn({ object: error.object, reasons: error.reasons }, error.message);
    if (track && key !== undefined) {
      this.invalid.set(key, error);
      this.invalidGauge?.set(this.invalid.size);
    }
    this.callInvalid(error);
  }

  private reportExternal(error: InvalidObjectError): void {
    this.logger.warn({ object: error.object, reasons: error.reasons }, error.message);
    this.callInvalid(error);
  }

  private callInvalid(error: InvalidObjectError): void {
    if (!this.onInvalidCallback) return;
    try {
      this.onInvalidCallback(error);
    } catch (err) {
      this.logger.error({ err, object: formatObjectRef(error.object) }, "onInvalid callback failed");
    }
  }

  private clearInvalid(key: string): void {
    if (this.invalid.delete(key)) this.invalidGauge?.set(this.invalid.size);
  }

  // ---------------------------------------------------------------- commit

  /**
   * Applies every pending change and returns the new snapshot and what changed; costs
   * O(pending Services and their endpoints), not O(everything).
   */
  commit(): Commit {
    const prev = this.current;
    if (this.pending.size === 0) return { snapshot: prev, changes: emptyChanges() };

    const svcChanges = new Map<ServicePortKey, ServicePort | undefined>();
    const epChanges = new Map<ServicePortKey, readonly Endpoint[] | undefined>();
    const changed = new Set<ServicePortKey>();
    const deleted = new Set<ServicePortKey>();
    const stale: StaleConntrack[] = [];
    const triggerTimes = new Map<ServicePortKey, number>();

    for (const key of this.pending) {
      const rec = this.records.get(key);
      if (!rec) continue;
      const oldPorts = rec.committedPorts;
      const newPorts = rec.pendingPorts ?? oldPorts;
      const slicesChanged = rec.pendingSlices.size > 0;
      for (const [name, slice] of rec.pendingSlices) {
        if (slice) rec.committedSlices.set(name, slice);
        else rec.committedSlices.delete(name);
      }
      rec.pendingSlices.clear();
      rec.pendingPorts = undefined;
      rec.committedPorts = newPorts;
      const triggerTime = rec.triggerTime;
      rec.triggerTime = undefined;

      let newEndpoints: Map<ServicePortKey, readonly Endpoint[]> | undefined;
      if (slicesChanged || !sameKeys(oldPorts, newPorts)) {
        newEndpoints =
          newPorts.length > 0 && rec.committedSlices.size > 0
            ? mergeEndpointSlices(rec.committedSlices.values(), newPorts, prev.endpoints)
            : new Map();
      }

      // Every key of the old and the new ports, once (services have few ports).
      const keys: ServicePortKey[] = newPorts.map((sp) => sp.key);
      for (const sp of oldPorts) if (!keys.includes(sp.key)) keys.push(sp.key);
      for (const k of keys) {
        const oldSP = prev.services.get(k);
        const newSP = newPorts.find((sp) => sp.key === k);
        const oldEps = prev.endpoints.get(k);
        const newEps = newSP === undefined ? undefined : newEndpoints ? newEndpoints.get(k) : oldEps;
        if (oldSP === newSP && oldEps === newEps) continue;
        changed.add(k);
        if (newSP === undefined) deleted.add(k);
        if (oldSP !== newSP) svcChanges.set(k, newSP);
        if (oldEps !== newEps) epChanges.set(k, newEps);
        if (needsConntrackCleanup(oldSP) || needsConntrackCleanup(newSP)) {
          for (const entry of staleConntrackEntries(oldSP, newSP, oldEps, newEps)) stale.push(entry);
        }
        if (triggerTime !== undefined && slicesChanged && oldEps !== newEps) triggerTimes.set(k, triggerTime);
      }
      this.dropIfEmptyAfterCommit(rec);
    }
    this.pending.clear();
    this.pendingGauge?.set(0);

    if (changed.size === 0) return { snapshot: prev, changes: emptyChanges() };
    const next: TrackerSnapshot = Object.freeze({
      services: prev.services.withChanges(svcChanges),
      endpoints: prev.endpoints.withChanges(epChanges),
      generation: prev.generation + 1,
    });
    this.current = next;
    const changes: ChangeSet = Object.freeze({
      changedServicePorts: changed,
      deletedServicePorts: deleted,
      staleConntrack: Object.freeze(stale),
      triggerTimes,
    });
    return { snapshot: next, changes };
  }

  private dropIfEmptyAfterCommit(rec: ServiceRecord): void {
    if (rec.committedPorts.length === 0 && rec.committedSlices.size === 0) this.records.delete(rec.key);
  }
}
