/**
 * C's `%.*f`, as fio's numbers go through it. glibc prints the exact binary value of a double rounded
 * to the nearest, and an exact tie to the even digit; JavaScript's toFixed() rounds a tie up. The
 * two differ only on ties: 0.25 to one digit is "0.2" in C and "0.3" in JavaScript, and a 13,250
 * IOPS job is `IOPS=13.2k` in fio's report (num2str's `%.*f` of 250/1000).
 */

/** `printf("%.*f", digits, x)` for |x| < 1e21 (where toFixed stops printing digits) and 0 ≤ digits ≤ 100. */
export function fixed(x: number, digits: number): string {
  const s = x.toFixed(digits);
  const half = tieAt(Math.abs(x), digits);
  if (half === null) return s;
  // |x| · 10^digits is exactly half + 0.5: toFixed took half + 1; C takes the even one of the two
  const n = half % 2n === 0n ? half : half + 1n;
  const d = n.toString().padStart(digits + 1, '0');
  const body = digits ? `${d.slice(0, d.length - digits)}.${d.slice(d.length - digits)}` : d;
  return (x < 0 || Object.is(x, -0) ? '-' : '') + body;
}

/**
 * For a value v ≥ 0 exactly halfway between two multiples of 10^-digits, the lower of them times
 * 10^digits; otherwise null. A double is m · 2^e exactly, so 2 · v · 10^digits is an integer, odd
 * at a tie, and the arithmetic is exact in BigInt.
 */
function tieAt(v: number, digits: number): bigint | null {
  if (!Number.isFinite(v)) return null;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, v);
  const bits = view.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  const m = biased === 0 ? fraction : fraction | (1n << 52n);
  const e = (biased === 0 ? -1074 : biased - 1075) + 1; // the 2 of 2 · v
  const scaled = m * 10n ** BigInt(digits);
  let twice: bigint;
  if (e >= 0) twice = scaled << BigInt(e);
  else {
    const den = 1n << BigInt(-e);
    if (scaled % den !== 0n) return null;
    twice = scaled / den;
  }
  return twice % 2n === 1n ? (twice - 1n) / 2n : null;
}
