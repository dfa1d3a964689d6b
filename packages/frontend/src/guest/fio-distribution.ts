/**
 * fio's random distributions (`random_distribution`: lib/zipf.c, lib/gauss.c, io_u.c's
 * get_next_rand_offset()): the block each random I/O goes to, drawn from its own generator, with
 * replacement — a distribution other than `random` turns the random map off (init.c), as
 * `norandommap` does for `random`. Each draws a rank and scrambles it over the region with fio's
 * `__hash_u64()` (a multiply by the 64-bit golden ratio), so the hot blocks are spread, not packed at
 * its start; `:center` (0 to 1) sets where the draws start instead of a random offset.
 */
import type { FioJob } from './fio-job.ts';
import { alignTurnsOffMap } from './fio-block-size.ts';

export type RandomDistribution =
  { kind: 'random' } | { kind: 'zipf' | 'pareto' | 'normal'; value: number; center: number | null };

/** FRAND32_MAX: the largest of __rand()'s 32-bit draws. */
const FRAND32_MAX = 0xffffffff;
/** hash.h's GOLDEN_RATIO_64. */
const GOLDEN_RATIO_64 = 0x61c8864680b583ebn;
/** zipf.c's ZIPF_MAX_GEN: the terms of the zeta sum it adds up at most. */
const ZIPF_MAX_GEN = 10_000_000;
/** gauss.c's GAUSS_ITERS: the uniform draws averaged for one normal one. */
const GAUSS_ITERS = 12;

/** `(rank hashed + off) % n` in fio's 64-bit arithmetic. */
function scatter(rank: bigint, off: bigint, n: number): number {
  const hashed = BigInt.asUintN(64, rank * GOLDEN_RATIO_64);
  return Number(BigInt.asUintN(64, hashed + off) % BigInt(n));
}

/** A double cut to an unsigned 64-bit integer, as C's conversion does for what fits. */
function u64(x: number): bigint {
  return BigInt.asUintN(64, BigInt(Math.trunc(x)));
}

/**
 * file_randommap()'s negation, of a random job: `norandommap`, a distribution other than `random`, or
 * a `blockalign` other than the sizes (init.c's fixup_options() sets norandommap then).
 */
export function withoutRandomMap(job: FioJob): boolean {
  return job.norandommap || job.randomDistribution.kind !== 'random' || alignTurnsOffMap(job);
}

/**
 * A generator of block numbers in `[0, n)` for the job's distribution, or null for `random` with the
 * random map (Offsets' own order). Both generators draw 32-bit integers, as fio's __rand(): `random`
 * without a map draws from the job's offsets generator (`jobRand32`, seeded again each pass with
 * randrepeat), the others from their own (`ownRand32`), which fio seeds once, as it sets the file
 * up (filesetup.c's __init_rand_distribution()), and so runs on across passes.
 */
export function blockDraw(
  job: FioJob,
  n: number,
  jobRand32: () => number,
  ownRand32: () => number,
): (() => number) | null {
  const d = job.randomDistribution;
  if (d.kind === 'random')
    return withoutRandomMap(job) ? () => Math.floor(n * (jobRand32() / (FRAND32_MAX + 1))) : null;
  const rand32 = ownRand32;
  if (d.kind === 'normal') return gauss(n, d.value, d.center, rand32);
  // shared_rand_init(): a random offset, unless a center is given
  const off = d.center === null ? BigInt(rand32()) : u64(n * d.center);
  if (d.kind === 'zipf') return zipf(n, d.value, off, rand32);
  const pow = Math.log(d.value) / Math.log(1 - d.value);
  return () => scatter(u64((n - 1) * Math.pow(rand32() / FRAND32_MAX, pow)), off, n);
}

/** zipf_init() and zipf_next(). */
function zipf(n: number, theta: number, off: bigint, rand32: () => number): () => number {
  let zetan = 0;
  const terms = Math.min(n, ZIPF_MAX_GEN);
  for (let i = 0; i < terms; i++) zetan += Math.pow(1 / (i + 1), theta);
  const zeta2 = 1 + Math.pow(0.5, theta);
  const alpha = 1 / (1 - theta);
  const eta = (1 - Math.pow(2 / n, 1 - theta)) / (1 - zeta2 / zetan);
  return () => {
    const uni = rand32() / FRAND32_MAX;
    const z = uni * zetan;
    let val: bigint;
    if (z < 1) val = 1n;
    else if (z < 1 + Math.pow(0.5, theta)) val = 2n;
    else val = 1n + u64(n * Math.pow(eta * uni - eta + 1, alpha));
    return scatter(BigInt.asUintN(64, val - 1n), off, n);
  };
}

/** gauss_init() and gauss_next(): the mean of twelve uniform draws, spread by `dev` % of the region. */
function gauss(n: number, dev: number, center: number | null, rand32: () => number): () => number {
  let stddev = 0;
  if (dev !== 0) stddev = Math.min(Math.ceil((n * dev) / 100), Math.floor(n / 2));
  const off = center === null ? 0n : u64(n * (center - 0.5));
  return () => {
    let sum = 0;
    for (let i = 0; i < GAUSS_ITERS; i++) sum += rand32() % (n + 1);
    sum = Math.floor((sum + GAUSS_ITERS - 1) / GAUSS_ITERS);
    if (stddev) {
      // gauss_dev(): an int from [-stddev/2, stddev/2), halved until the sum stays in the region
      // (fio adds them as unsigned: a sum below 0 is as far out as one past the end)
      let d = Math.trunc(stddev * (rand32() / (FRAND32_MAX + 1))) - Math.trunc(stddev / 2);
      while (d + sum >= n || d + sum < 0) d = Math.trunc(d / 2);
      sum += d;
    }
    return scatter(BigInt(sum), off, n);
  };
}
