/**
 * Kubernetes resource quantities (`100m`, `1.5`, `128Mi`, `1G`, `1e3`), parsed exactly.
 *
 * `@kubernetes/client-node` exports `quantityToScalar`, but it goes through floating
 * point for `m`/`u`/`n`, throws on fractions with other suffixes (`1.5Gi`) and does
 * not know exponents (`1e3`), so the kubelet logic uses this parser instead.
 *
 * The grammar is apimachinery's `resource.ParseQuantity`:
 * `[+-]digits[.digits]` followed by nothing, a binary-SI suffix (`Ki Mi Gi Ti Pi Ei`),
 * a decimal-SI suffix (`n u m k M G T P E`) or a decimal exponent (`e3`, `E-2`).
 * Values are kept as an exact fraction of two bigints, so `MilliValue()` /
 * `Value()` round exactly as Kubernetes does (up, to the next integer).
 *
 * @module
 */
import { WorknodeError } from "@worknode/core";

/** A string that is not a Kubernetes quantity. */
export class QuantityError extends WorknodeError {
  /** The rejected text. */
  readonly text: string;

  constructor(text: string) {
    super(
      "INVALID_QUANTITY",
      `quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': "${text}"`,
    );
    this.text = text;
  }
}

const QUANTITY_RE = /^([+-]?)(\d+\.?\d*|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$/;

const BINARY_POWER: Readonly<Record<string, bigint>> = {
  Ki: 10n,
  Mi: 20n,
  Gi: 30n,
  Ti: 40n,
  Pi: 50n,
  Ei: 60n,
};
const DECIMAL_EXP: Readonly<Record<string, number>> = {
  n: -9,
  u: -6,
  m: -3,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};

function gcd(a: bigint, b: bigint): bigint {
  let x = a < 0n ? -a : a;
  let y = b;
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

/** Ceiling of `num / den` for `den > 0`. */
function ceilDiv(num: bigint, den: bigint): bigint {
  const q = num / den;
  return num % den !== 0n && num > 0n ? q + 1n : q;
}

/** An exact resource quantity: `numerator / denominator` (denominator > 0). */
export class Quantity {
  /** The zero quantity. */
  static readonly ZERO = new Quantity(0n, 1n);

  readonly numerator: bigint;
  readonly denominator: bigint;

  constructor(numerator: bigint, denominator = 1n) {
    if (denominator <= 0n) throw new RangeError("quantity denominator must be > 0");
    const g = gcd(numerator, denominator) || 1n;
    this.numerator = numerator / g;
    this.denominator = denominator / g;
  }

  /** A quantity of `milli` thousandths (for example CPU millicores). */
  static fromMilli(milli: number | bigint): Quantity {
    return new Quantity(BigInt(milli), 1000n);
  }

  /** The value in thousandths, rounded up (apimachinery `MilliValue()`). */
  milliValue(): number {
    return Number(ceilDiv(this.numerator * 1000n, this.denominator));
  }

  /** The value rounded up to an integer (apimachinery `Value()`). */
  value(): number {
    return Number(ceilDiv(this.numerator, this.denominator));
  }

  /** True when the quantity is exactly zero. */
  isZero(): boolean {
    return this.numerator === 0n;
  }

  /** -1, 0 or 1 as this quantity is less than, equal to or greater than `other`. */
  cmp(other: Quantity): -1 | 0 | 1 {
    const l = this.numerator * other.denominator;
    const r = other.numerator * this.denominator;
    return l < r ? -1 : l > r ? 1 : 0;
  }

  /** The sum of this quantity and `other`. */
  add(other: Quantity): Quantity {
    return new Quantity(
      this.numerator * other.denominator + other.numerator * this.denominator,
      this.denominator * other.denominator,
    );
  }

  /** The larger of this quantity and `other`. */
  max(other: Quantity): Quantity {
    return this.cmp(other) >= 0 ? this : other;
  }
}

const cache = new Map<string, Quantity>();
const CACHE_LIMIT = 4096;

/**
 * Parses a Kubernetes quantity.
 *
 * @throws {@link QuantityError} when `text` is not a quantity
 */
export function parseQuantity(text: string | number): Quantity {
  if (typeof text === "number") {
    if (!Number.isFinite(text)) throw new QuantityError(String(text));
    text = String(text);
  }
  const hit = cache.get(text);
  if (hit) return hit;
  const m = QUANTITY_RE.exec(text.trim() === text ? text : "");
  if (!m) throw new QuantityError(text);
  const [, sign = "", digits = "", suffix = ""] = m;
  const [intPart = "", fracPart = ""] = digits.split(".");
  let num = BigInt((intPart || "0") + fracPart);
  let den = 10n ** BigInt(fracPart.length);
  if (sign === "-") num = -num;
  if (suffix in BINARY_POWER) {
    num *= 2n ** (BINARY_POWER[suffix] ?? 0n);
  } else {
    const exp =
      suffix === "" ? 0 : suffix in DECIMAL_EXP ? (DECIMAL_EXP[suffix] ?? 0) : Number(suffix.slice(1));
    if (!Number.isSafeInteger(exp) || Math.abs(exp) > 1000) throw new QuantityError(text);
    if (exp >= 0) num *= 10n ** BigInt(exp);
    else den *= 10n ** BigInt(-exp);
  }
  const q = new Quantity(num, den);
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(text, q);
  return q;
}

/** Parses `text` when it is a quantity, or returns `undefined` (for optional fields). */
export function tryParseQuantity(text: string | number | undefined): Quantity | undefined {
  if (text === undefined) return undefined;
  try {
    return parseQuantity(text);
  } catch {
    return undefined;
  }
}
