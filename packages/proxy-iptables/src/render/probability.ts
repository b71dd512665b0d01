/**
 * Statistic-mode probabilities `1/n`, formatted as kube-proxy formats them
 * (Go's `%0.10f`: ten decimals, exact value of the double rounded half to even).
 *
 * @module
 */

const cache: string[] = [];

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/** Half-to-even rounding of the exact rational 1/n to ten decimals (exact for powers of two). */
function exactTenDecimals(n: number): string {
  const scale = 10_000_000_000n;
  const d = BigInt(n);
  let q = scale / d;
  const r = scale % d;
  if (2n * r > d || (2n * r === d && q % 2n === 1n)) q += 1n;
  const whole = q / scale;
  const frac = (q % scale).toString().padStart(10, "0");
  return `${whole}.${frac}`;
}

/**
 * `1/n` with ten decimals (`0.3333333333` for 3). `toFixed` rounds ties away from zero
 * where Go rounds them to even; a tie only happens for exact binary fractions, so powers
 * of two go through exact arithmetic.
 */
export function probability(n: number): string {
  let s = cache[n];
  if (s === undefined) {
    s = isPowerOfTwo(n) ? exactTenDecimals(n) : (1 / n).toFixed(10);
    if (n < 100_000) cache[n] = s;
  }
  return s;
}
