/**
 * Node capacity and allocatable (kubelet's node allocatable rules): allocatable is
 * capacity minus `--kube-reserved`, `--system-reserved` and the hard eviction
 * thresholds of `memory.available` and `nodefs.available`, never below zero.
 *
 * @module
 */
import { ConfigError } from "@worknode/core";
import { parseQuantity, Quantity } from "../quantity.js";

/** A resource list in wire form (`{ cpu: "4", memory: "8129732Ki" }`). */
export type ResourceList = Record<string, string>;

/** kubelet's default `--eviction-hard` thresholds that reduce allocatable. */
export const DEFAULT_EVICTION_HARD: Readonly<Record<string, string>> = {
  "memory.available": "100Mi",
  "nodefs.available": "10%",
};

/** Which resource each eviction signal reserves. */
const EVICTION_SIGNAL_RESOURCE: Readonly<Record<string, string>> = {
  "memory.available": "memory",
  "nodefs.available": "ephemeral-storage",
};

/** Reservations subtracted from capacity. */
export interface ReservationOptions {
  /** `--system-reserved`: resource name → quantity. */
  readonly systemReserved?: Readonly<ResourceList>;
  /** `--kube-reserved`: resource name → quantity. */
  readonly kubeReserved?: Readonly<ResourceList>;
  /**
   * `--eviction-hard` thresholds (`memory.available`, `nodefs.available`; a quantity or a
   * percentage of capacity); default {@link DEFAULT_EVICTION_HARD}.
   */
  readonly evictionHard?: Readonly<Record<string, string>>;
}

function parse(what: string, text: string): Quantity {
  try {
    return parseQuantity(text);
  } catch (err) {
    throw new ConfigError(`${what}: invalid quantity ${JSON.stringify(text)}`, { cause: err });
  }
}

function subtract(a: Quantity, b: Quantity): Quantity {
  const n = a.numerator * b.denominator - b.numerator * a.denominator;
  return n <= 0n ? Quantity.ZERO : new Quantity(n, a.denominator * b.denominator);
}

/**
 * Formats a quantity the way the kubelet reports it: CPU as cores or millicores,
 * byte counts in `Ki` when divisible by 1024, anything else as an integer.
 */
export function formatResourceQuantity(resource: string, q: Quantity): string {
  if (resource === "cpu") {
    const milli = q.milliValue();
    return milli % 1000 === 0 ? String(milli / 1000) : `${milli}m`;
  }
  const v = BigInt(q.value());
  return v !== 0n && v % 1024n === 0n ? `${v / 1024n}Ki` : v.toString();
}

/**
 * Computes allocatable from capacity.
 *
 * @throws ConfigError for an invalid quantity or percentage
 */
export function computeAllocatable(
  capacity: Readonly<ResourceList>,
  options: ReservationOptions = {},
): ResourceList {
  const reserved = new Map<string, Quantity>();
  const add = (resource: string, q: Quantity) =>
    reserved.set(resource, (reserved.get(resource) ?? Quantity.ZERO).add(q));
  for (const [flag, list] of [
    ["--system-reserved", options.systemReserved],
    ["--kube-reserved", options.kubeReserved],
  ] as const) {
    for (const [resource, text] of Object.entries(list ?? {}))
      add(resource, parse(`${flag} ${resource}`, text));
  }
  for (const [signal, text] of Object.entries(options.evictionHard ?? DEFAULT_EVICTION_HARD)) {
    const resource = EVICTION_SIGNAL_RESOURCE[signal];
    if (!resource) continue;
    const cap = capacity[resource];
    if (text.endsWith("%")) {
      const pct = Number(text.slice(0, -1));
      if (!Number.isFinite(pct) || pct < 0 || pct > 100) {
        throw new ConfigError(`--eviction-hard ${signal}: invalid percentage ${JSON.stringify(text)}`);
      }
      if (cap === undefined) continue;
      const c = parse(`capacity ${resource}`, cap);
      // percentage of capacity, in hundredths of a percent to stay exact
      add(resource, new Quantity(c.numerator * BigInt(Math.round(pct * 100)), c.denominator * 10000n));
    } else {
      add(resource, parse(`--eviction-hard ${signal}`, text));
    }
  }
  const out: ResourceList = {};
  for (const [resource, text] of Object.entries(capacity)) {
    const cap = parse(`capacity ${resource}`, text);
    const r = reserved.get(resource);
    out[resource] = r ? formatResourceQuantity(resource, subtract(cap, r)) : text;
  }
  return out;
}
