/**
 * mulberry32: a small seeded generator of floats in [0, 1), good enough for I/O offsets, read/write
 * choices and fill data. The guest's fio and the bench relay draw the same job shape from one seed,
 * so both use this one.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
