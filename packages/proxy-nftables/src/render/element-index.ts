/**
 * Which service ports own each set / map element. Several service ports can own one
 * element (an endpoint IP in the hairpin set, a cluster IP shared by a service's ports,
 * or two services claiming one external IP); the element stays while any owner does, and
 * a map element's value is its first owner's (by service-port key), so the result does
 * not depend on the order of changes.
 *
 * @module
 */
import type { PlannedElement } from "./plan.js";

/** Owners of one element: their keys and the value each would give it. */
class Owners {
  /** Owner keys, sorted, with parallel values. */
  keys: string[];
  values: (string | undefined)[];
  constructor(owner: string, value: string | undefined) {
    this.keys = [owner];
    this.values = [value];
  }
  add(owner: string, value: string | undefined): void {
    let i = 0;
    while (i < this.keys.length && this.keys[i]! < owner) i++;
    if (this.keys[i] === owner) {
      this.values[i] = value;
      return;
    }
    this.keys.splice(i, 0, owner);
    this.values.splice(i, 0, value);
  }
  remove(owner: string): void {
    const i = this.keys.indexOf(owner);
    if (i < 0) return;
    this.keys.splice(i, 1);
    this.values.splice(i, 1);
  }
  get value(): string | undefined {
    return this.values[0];
  }
}

/** One change to the kernel's elements, as {@link ElementIndex.apply} reports it. */
export interface ElementChange {
  readonly set: string;
  readonly key: string;
  /** The value before (deleted when `after` differs); undefined for sets. */
  readonly before: string | undefined;
  /** The value after (added when it differs); undefined for sets. */
  readonly after: string | undefined;
  /** Present before / after. */
  readonly existed: boolean;
  readonly exists: boolean;
}

/** Element → owners, per set. Mutable; owned by one render state. */
export class ElementIndex {
  private readonly sets = new Map<string, Map<string, Owners>>();

  /** Adds every element of `owner` (a full render's bulk load; no change report). */
  load(owner: string, elements: readonly PlannedElement[]): void {
    for (const e of elements) {
      let set = this.sets.get(e.set);
      if (set === undefined) {
        set = new Map();
        this.sets.set(e.set, set);
      }
      const o = set.get(e.key);
      if (o === undefined) set.set(e.key, new Owners(owner, e.value));
      else o.add(owner, e.value);
    }
  }

  /**
   * Replaces what `owner` contributes (`before` → `after`) and reports the elements whose
   * presence or value changed.
   */
  apply(owner: string, before: readonly PlannedElement[], after: readonly PlannedElement[]): ElementChange[] {
    const touched = new Map<
      string,
      { set: string; key: string; existed: boolean; value: string | undefined }
    >();
    const note = (set: string, key: string) => {
      const id = `${set}\u0000${key}`;
      if (touched.has(id)) return;
      const o = this.sets.get(set)?.get(key);
      touched.set(id, { set, key, existed: o !== undefined, value: o?.value });
    };
    for (const e of before) {
      note(e.set, e.key);
      const set = this.sets.get(e.set);
      const o = set?.get(e.key);
      if (o === undefined) continue;
      o.remove(owner);
      if (o.keys.length === 0) set!.delete(e.key);
    }
    for (const e of after) note(e.set, e.key);
    this.load(owner, after);
    const out: ElementChange[] = [];
    for (const t of touched.values()) {
      const o = this.sets.get(t.set)?.get(t.key);
      const exists = o !== undefined;
      const value = o?.value;
      if (t.existed === exists && t.value === value) continue;
      out.push({ set: t.set, key: t.key, before: t.value, after: value, existed: t.existed, exists });
    }
    return out;
  }

  /** Every element of `set` with its value, in insertion order. */
  *entries(set: string): IterableIterator<[string, string | undefined]> {
    const s = this.sets.get(set);
    if (s === undefined) return;
    for (const [k, o] of s) yield [k, o.value];
  }

  /** Elements in `set`. */
  size(set: string): number {
    return this.sets.get(set)?.size ?? 0;
  }
}
