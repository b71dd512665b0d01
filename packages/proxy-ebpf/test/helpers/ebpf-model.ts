/**
 * Test helpers of the eBPF backend: plans of a snapshot (as `EbpfProxier.planPorts` makes
 * them), and {@link FakeKernel}, an in-memory pair of maps keyed by the encoded key bytes
 * that executes map operations as `bpftool batch` would (deleting a missing key fails).
 */
import { type ServiceSnapshot, WorknodeError } from "@worknode/core";
import {
  type BackendAddress,
  backendsSignature,
  decodeBackendKey,
  decodeBackendValue,
  decodeServiceKey,
  decodeServiceValue,
  encodeBackendKey,
  encodeBackendValue,
  encodeServiceKey,
  encodeServiceValue,
  type FrontendValue,
  toHexWords,
} from "../../src/maps/layout.js";
import { type PlanOptions, type PortPlan, planServicePorts } from "../../src/maps/plan.js";
import type { KernelMaps, MapOp } from "../../src/maps/state.js";

/** The node of the tests. */
export const NODE = { name: "test-node", nodeIPs: ["192.168.0.2", "2001:db8::2"] } as const;

/** Plans of the service ports `keys` (all when undefined) of `snapshot`; a missing port plans its deletion. */
export function plansOf(
  snapshot: ServiceSnapshot,
  options: PlanOptions = { families: ["IPv4"] },
  keys?: Iterable<string>,
  node: { readonly name: string; readonly nodeIPs: readonly string[] } = NODE,
): Map<string, PortPlan | undefined> {
  return planServicePorts(snapshot, node, options, keys);
}

/** A map operation the fake kernel refuses (as bpftool would fail the batch). */
export class FakeKernelError extends WorknodeError {
  constructor(message: string) {
    super("TEST_FAKE_KERNEL", message);
  }
}

/** What a frontend resolves to: its affinity and its backends in slot order. */
export interface Resolved {
  readonly affinityTimeout: number;
  readonly backends: string;
}

/** The two maps user space writes, as the kernel holds them: hex key → value bytes. */
export class FakeKernel {
  readonly services = new Map<string, Uint8Array>();
  readonly backends = new Map<string, Uint8Array>();

  /** Executes one operation. @throws FakeKernelError when it deletes a missing key */
  exec(op: MapOp): void {
    switch (op.op) {
      case "putBackend":
        this.backends.set(toHexWords(encodeBackendKey(op.id, op.slot)), encodeBackendValue(op.backend));
        return;
      case "putFrontend":
        this.services.set(toHexWords(encodeServiceKey(op.frontend)), encodeServiceValue(op.value));
        return;
      case "deleteFrontend": {
        const key = toHexWords(encodeServiceKey(op.frontend));
        if (!this.services.delete(key))
          throw new FakeKernelError(`delete of missing frontend ${JSON.stringify(op)}`);
        return;
      }
      case "deleteBackend": {
        const key = toHexWords(encodeBackendKey(op.id, op.slot));
        if (!this.backends.delete(key))
          throw new FakeKernelError(`delete of missing slot ${op.id}/${op.slot}`);
        return;
      }
    }
  }

  /**
   * Executes `ops` in order; after each one (and before the first), calls `check` (for
   * invariants that must hold at every prefix of a batch).
   */
  run(ops: readonly MapOp[], check?: (afterOps: number) => void): void {
    check?.(0);
    ops.forEach((op, i) => {
      this.exec(op);
      check?.(i + 1);
    });
  }

  /** The maps decoded, as `EbpfMapState.fromKernel` takes them. */
  dump(): KernelMaps {
    const hex = (h: string) => Uint8Array.from(h.split(" ").map((b) => Number.parseInt(b, 16)));
    return {
      frontends: [...this.services].map(([k, v]) => ({
        frontend: decodeServiceKey(hex(k)),
        value: decodeServiceValue(v),
      })),
      backends: [...this.backends].map(([k, v]) => ({
        ...decodeBackendKey(hex(k)),
        backend: decodeBackendValue(v),
      })),
    };
  }

  private slots(value: FrontendValue): BackendAddress[] | string {
    const out: BackendAddress[] = [];
    for (let slot = 0; slot < value.count; slot++) {
      const b = this.backends.get(toHexWords(encodeBackendKey(value.id, slot)));
      if (b === undefined) return `slot ${value.id}/${slot} of ${value.count} is missing`;
      out.push(decodeBackendValue(b));
    }
    return out;
  }

  /**
   * Frontends whose `count` slots are not all there: what a socket could see half-written.
   * @returns one message per broken frontend
   */
  brokenFrontends(): string[] {
    const broken: string[] = [];
    for (const [key, v] of this.services) {
      const value = decodeServiceValue(v);
      const slots = this.slots(value);
      if (typeof slots === "string") broken.push(`${key}: ${slots}`);
    }
    return broken;
  }

  /** Every frontend (by key hex) → its affinity and backends (group ids left out). */
  resolve(): Map<string, Resolved> {
    const out = new Map<string, Resolved>();
    for (const [key, v] of this.services) {
      const value = decodeServiceValue(v);
      const slots = this.slots(value);
      if (typeof slots === "string") throw new FakeKernelError(`${key}: ${slots}`);
      out.set(key, { affinityTimeout: value.affinityTimeout, backends: backendsSignature(slots) });
    }
    return out;
  }

  /** Slots no frontend points at (leaks). */
  orphanSlots(): string[] {
    const used = new Set<number>();
    for (const v of this.services.values()) used.add(decodeServiceValue(v).id);
    const hex = (h: string) => Uint8Array.from(h.split(" ").map((b) => Number.parseInt(b, 16)));
    return [...this.backends.keys()].filter((k) => !used.has(decodeBackendKey(hex(k)).id));
  }
}

/** The kernel a fresh, full apply of `ops` onto empty maps produces. */
export function kernelOf(ops: readonly MapOp[]): FakeKernel {
  const k = new FakeKernel();
  k.run(ops);
  return k;
}

/** The ops of each kind, in order. */
export function opKinds(ops: readonly MapOp[]): string[] {
  return ops.map((o) => o.op);
}

/** True when `kinds` is some putBackends, then putFrontends, then deleteFrontends, then deleteBackends. */
export function inSafeOrder(ops: readonly MapOp[]): boolean {
  const rank = { putBackend: 0, putFrontend: 1, deleteFrontend: 2, deleteBackend: 3 } as const;
  for (let i = 1; i < ops.length; i++)
    if (rank[(ops[i] as MapOp).op] < rank[(ops[i - 1] as MapOp).op]) return false;
  return true;
}
