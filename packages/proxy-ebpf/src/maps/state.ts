/**
 * The kernel's frontend and backend maps as worknode last wrote them, and the diff from
 * that state to a new plan: the map operations of one sync, in an order that never lets a
 * socket see a frontend pointing at a half-written backend group. Pure.
 *
 * Order of the operations a diff returns:
 * 1. the slots of every new backend group (a changed backend list always gets a new id,
 *    so a live group is never edited in place);
 * 2. the frontends, each now pointing at its complete group;
 * 3. the deletion of frontends that are no longer planned;
 * 4. the deletion of the slots of groups no frontend uses any more.
 *
 * Stopped anywhere (a failed batch), the maps still serve every frontend from a complete
 * group: the old one or the new one.
 *
 * @module
 */
import { WorknodeError } from "@worknode/core";
import { type BackendAddress, backendsSignature, type Frontend, type FrontendValue } from "./layout.js";
import type { BackendGroup, PortPlan } from "./plan.js";

/** One map operation of a sync. */
export type MapOp =
  | {
      readonly op: "putBackend";
      readonly id: number;
      readonly slot: number;
      readonly backend: BackendAddress;
    }
  | { readonly op: "putFrontend"; readonly frontend: Frontend; readonly value: FrontendValue }
  | { readonly op: "deleteFrontend"; readonly frontend: Frontend }
  | { readonly op: "deleteBackend"; readonly id: number; readonly slot: number };

interface FrontendEntry {
  readonly frontend: Frontend;
  readonly value: FrontendValue;
  /** Service port key that owns it; undefined when read from the kernel and not yet claimed. */
  owner: string | undefined;
}

interface GroupEntry {
  /** Backend-list identity, or undefined when read from a kernel whose slots are incomplete. */
  readonly signature: string | undefined;
  /** Slots present in the kernel. */
  readonly slots: readonly number[];
  refs: number;
}

/** A frontend that two service ports plan; the first owner keeps it. */
export interface FrontendConflict {
  readonly frontend: Frontend;
  /** The service port that keeps it. */
  readonly owner: string;
  /** The service port that was refused it. */
  readonly refused: string;
}

/** The result of {@link EbpfMapState.apply}. */
export interface MapDiff {
  /** Operations in safe order (see the module documentation). */
  readonly ops: readonly MapOp[];
  /** Frontends planned by a second service port and left to their first owner. */
  readonly conflicts: readonly FrontendConflict[];
}

/** The ids of backend groups are unsigned 32-bit numbers. */
const MAX_GROUP_ID = 0xffffffff;
/** The id of frontends without backends (count 0, which refuse connections): never a group. */
const EMPTY_GROUP_ID = 0;

/** The state cannot hand out more backend-group ids. */
export class GroupIdsExhaustedError extends WorknodeError {
  constructor() {
    super("EBPF_GROUP_IDS_EXHAUSTED", "no backend-group id is left; a full sync renumbers the groups");
  }
}

/** An entry of a kernel map, decoded (for {@link EbpfMapState.fromKernel}). */
export interface KernelMaps {
  readonly frontends: readonly { readonly frontend: Frontend; readonly value: FrontendValue }[];
  readonly backends: readonly {
    readonly id: number;
    readonly slot: number;
    readonly backend: BackendAddress;
  }[];
}

/**
 * The map contents worknode owns, by frontend, by backend group and by service port.
 * {@link apply} computes the operations that turn the kernel from this state into a plan
 * and records the plan, as if the operations succeeded; after a failure, rebuild the state
 * from the kernel ({@link fromKernel}).
 */
export class EbpfMapState {
  private readonly frontends = new Map<string, FrontendEntry>();
  private readonly groups = new Map<number, GroupEntry>();
  private readonly ports = new Map<string, readonly string[]>();
  private nextId = 1;

  /** An empty state: the maps hold nothing. */
  static empty(): EbpfMapState {
    return new EbpfMapState();
  }

  /**
   * The state of maps read from the kernel (after a restart or a failed sync). Every
   * frontend is unowned until a plan claims it; {@link apply} with `full` deletes the rest.
   *
   * @param frontendIdOf {@link frontendId}, passed in so that this module stays free of encoding
   */
  static fromKernel(maps: KernelMaps, frontendIdOf: (f: Frontend) => string): EbpfMapState {
    const state = new EbpfMapState();
    const slotsById = new Map<number, { slot: number; backend: BackendAddress }[]>();
    for (const b of maps.backends) {
      let list = slotsById.get(b.id);
      if (list === undefined) {
        list = [];
        slotsById.set(b.id, list);
      }
      list.push({ slot: b.slot, backend: b.backend });
      if (b.id >= state.nextId) state.nextId = b.id + 1;
    }
    for (const [id, list] of slotsById) {
      list.sort((a, b) => a.slot - b.slot);
      const complete = list.every((e, i) => e.slot === i);
      state.groups.set(id, {
        signature: complete ? backendsSignature(list.map((e) => e.backend)) : undefined,
        slots: list.map((e) => e.slot),
        refs: 0,
      });
    }
    for (const f of maps.frontends) {
      state.frontends.set(frontendIdOf(f.frontend), {
        frontend: f.frontend,
        value: f.value,
        owner: undefined,
      });
      const g = state.groups.get(f.value.id);
      if (g !== undefined) g.refs++;
      if (f.value.id >= state.nextId) state.nextId = f.value.id + 1;
    }
    return state;
  }

  /** Frontends in the maps. */
  get frontendCount(): number {
    return this.frontends.size;
  }

  /** Backend slots in the maps. */
  get backendSlotCount(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.slots.length;
    return n;
  }

  /** The value a frontend has in the maps, by {@link frontendId}. */
  frontendValue(id: string): FrontendValue | undefined {
    return this.frontends.get(id)?.value;
  }

  /**
   * Turns the maps into `plans` for the service ports it names (a plan of `undefined`
   * deletes the port's frontends). With `full`, `plans` is everything: frontends and groups
   * that no plan names are deleted too.
   */
  apply(plans: ReadonlyMap<string, PortPlan | undefined>, full: boolean): MapDiff {
    const puts: MapOp[] = [];
    const frontendOps: MapOp[] = [];
    const deletions: MapOp[] = [];
    const conflicts: FrontendConflict[] = [];
    const released = new Set<number>();
    const release = (id: number): void => {
      const g = this.groups.get(id);
      if (g === undefined) return;
      g.refs--;
      if (g.refs <= 0) released.add(id);
    };
    const retain = (id: number): void => {
      const g = this.groups.get(id);
      if (g !== undefined) g.refs++;
      released.delete(id);
    };
    // Deletions of frontends that another port then puts again in this apply: not written
    // (the put, which comes first, already replaced the value).
    const dropped = new Map<string, MapOp>();
    const cancelled = new Set<MapOp>();
    const dropFrontend = (id: string): void => {
      const entry = this.frontends.get(id);
      if (entry === undefined) return;
      this.frontends.delete(id);
      const op: MapOp = { op: "deleteFrontend", frontend: entry.frontend };
      deletions.push(op);
      dropped.set(id, op);
      release(entry.value.id);
    };

    // First every port gives up what it no longer plans, so that a frontend moving from one
    // port to another in this apply goes to its new port whatever the order of the plans.
    for (const [portKey, plan] of plans) {
      const before = this.ports.get(portKey) ?? [];
      const planned = new Set(plan?.frontends.map((f) => f.id) ?? []);
      for (const id of before)
        if (!planned.has(id) && this.frontends.get(id)?.owner === portKey) dropFrontend(id);
      if (plan === undefined) this.ports.delete(portKey);
    }
    for (const [portKey, plan] of plans) {
      if (plan === undefined) continue;
      const groupIds = new Map<number, number>();
      const owned: string[] = [];
      for (const pf of plan.frontends) {
        const group = plan.groups[pf.group] as BackendGroup;
        const entry = this.frontends.get(pf.id);
        if (entry?.owner !== undefined && entry.owner !== portKey && this.ports.has(entry.owner)) {
          conflicts.push({ frontend: pf.frontend, owner: entry.owner, refused: portKey });
          continue;
        }
        owned.push(pf.id);
        let id = groupIds.get(pf.group);
        if (id === undefined) {
          const current = entry !== undefined ? this.groups.get(entry.value.id) : undefined;
          if (group.backends.length === 0) {
            id = EMPTY_GROUP_ID;
          } else if (current !== undefined && current.signature === group.signature && entry !== undefined) {
            id = entry.value.id;
          } else {
            id = this.allocate(group, puts);
          }
          groupIds.set(pf.group, id);
        }
        const value: FrontendValue = {
          id,
          count: group.backends.length,
          affinityTimeout: group.affinityTimeout,
        };
        if (entry !== undefined && entry.owner !== undefined && entry.owner !== portKey) {
          // The previous owner is gone; this port takes the frontend over.
          const prevOwned = this.ports.get(entry.owner);
          if (prevOwned !== undefined)
            this.ports.set(
              entry.owner,
              prevOwned.filter((f) => f !== pf.id),
            );
        }
        if (entry === undefined || !sameValue(entry.value, value)) {
          frontendOps.push({ op: "putFrontend", frontend: pf.frontend, value });
          const deletion = dropped.get(pf.id);
          if (deletion !== undefined) cancelled.add(deletion);
          if (entry !== undefined) release(entry.value.id);
          retain(id);
          this.frontends.set(pf.id, { frontend: pf.frontend, value, owner: portKey });
        } else {
          entry.owner = portKey;
        }
      }
      this.ports.set(portKey, owned);
    }

    if (full) {
      for (const [id, entry] of [...this.frontends]) {
        if (entry.owner === undefined || !plans.has(entry.owner)) {
          dropFrontend(id);
          if (entry.owner !== undefined) this.ports.delete(entry.owner);
        }
      }
      for (const [id, g] of this.groups) if (g.refs <= 0) released.add(id);
      for (const key of [...this.ports.keys()]) if (!plans.has(key)) this.ports.delete(key);
    }
    for (const id of released) {
      const g = this.groups.get(id);
      if (g === undefined || g.refs > 0) continue;
      for (const slot of g.slots) deletions.push({ op: "deleteBackend", id, slot });
      this.groups.delete(id);
    }
    const kept = cancelled.size === 0 ? deletions : deletions.filter((op) => !cancelled.has(op));
    return { ops: [...puts, ...frontendOps, ...kept], conflicts };
  }

  private allocate(group: BackendGroup, puts: MapOp[]): number {
    let id = this.nextId;
    let tries = 0;
    while (this.groups.has(id) || id === 0) {
      id = id >= MAX_GROUP_ID ? 1 : id + 1;
      if (++tries > this.groups.size + 1) throw new GroupIdsExhaustedError();
    }
    this.nextId = id >= MAX_GROUP_ID ? 1 : id + 1;
    group.backends.forEach((backend, slot) => {
      puts.push({ op: "putBackend", id, slot, backend });
    });
    this.groups.set(id, { signature: group.signature, slots: group.backends.map((_, i) => i), refs: 0 });
    return id;
  }
}

function sameValue(a: FrontendValue, b: FrontendValue): boolean {
  return a.id === b.id && a.count === b.count && a.affinityTimeout === b.affinityTimeout;
}
