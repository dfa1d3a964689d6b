/**
 * `n` bytes of xorshift32 from `seed` (0 is taken as 1: xorshift never leaves 0): a cheap
 * deterministic filler whose checksums do not collapse to round values. For the CRC tests and the
 * CRC benchmark, where content does not change a table-driven loop's speed but keeps it honest.
 */
export function xorshiftBytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed | 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x;
  }
  return b;
}
