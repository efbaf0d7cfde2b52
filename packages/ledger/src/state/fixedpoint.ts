/**
 * Integer fixed-point exponentials for the weights price. Everything is bigint so that every
 * node computes the same price bit for bit.
 */

/** Fractional bits of the internal fixed-point representation. */
const PRECISION = 128n;
const ONE = 1n << PRECISION;
/** Fractional bits of the exponent: 2^-64 resolution is far finer than any price step. */
export const EXPONENT_BITS = 64n;
/** Caps the integer part of the exponent so a huge value cannot allocate a huge bigint. */
export const MAX_EXPONENT = 4096n;

function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << ((BigInt(n.toString(2).length) >> 1n) + 1n);
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

/** ROOTS[i] = 2^(2^-(i+1)) in 128-bit fixed point, each the integer square root of the one before. */
const ROOTS: bigint[] = (() => {
  const roots: bigint[] = [];
  let r = 2n * ONE;
  for (let i = 0n; i < EXPONENT_BITS; i++) {
    r = isqrt(r << PRECISION);
    roots.push(r);
  }
  return roots;
})();

/**
 * 2^(f / 2^64) for 0 <= f < 2^64, in 128-bit fixed point, by multiplying the roots of the set bits.
 * Monotone in f: each root exceeds the product of all smaller ones by far more than the rounding.
 */
export function exp2Fraction(f: bigint): bigint {
  let acc = ONE;
  for (let i = 0n; i < EXPONENT_BITS; i++) {
    if ((f >> (EXPONENT_BITS - 1n - i)) & 1n) acc = (acc * ROOTS[Number(i)]!) >> PRECISION;
  }
  return acc;
}

/** floor(base × 2^(numerator / denominator)), numerator >= 0, denominator > 0. */
export function mulExp2(base: bigint, numerator: bigint, denominator: bigint): bigint {
  if (numerator < 0n || denominator <= 0n || base < 0n) throw new RangeError("mulExp2: negative input");
  let exponent = (numerator << EXPONENT_BITS) / denominator;
  const cap = MAX_EXPONENT << EXPONENT_BITS;
  if (exponent > cap) exponent = cap;
  const whole = exponent >> EXPONENT_BITS;
  const fraction = exponent & ((1n << EXPONENT_BITS) - 1n);
  return ((base << whole) * exp2Fraction(fraction)) >> PRECISION;
}

/** The weights price: basePrice × 2^(accumulatedValue / doublingValue). */
export function priceAt(basePrice: bigint, accumulatedValue: bigint, doublingValue: bigint): bigint {
  return mulExp2(basePrice, accumulatedValue, doublingValue);
}
