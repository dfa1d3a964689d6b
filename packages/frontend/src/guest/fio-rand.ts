/**
 * fio's own generator, lib/rand.c's 32-bit Tausworthe (taus88), and the seeds init.c's
 * setup_random_seeds() gives a job's generators. The guest draws a mixed job's directions with it, as
 * fio does (io_u.c's get_rand_ddir()), so that `rw=randrw` or `rw=rw` splits its I/Os as fio 3.33
 * does for the same seed. Its other draws (offsets, sizes) have generators of their own.
 */

/** fio's randseed when none is given (options.c). */
export const FIO_DEFAULT_RANDSEED = 0x89n;

/** FIO_RAND_MIX_OFF: the mixed workload's index among a job's seeds (fio.h). */
const FIO_RAND_MIX_OFF = 4;

const U64 = (1n << 64n) - 1n;
/** The multiplier setup_random_seeds() steps the seed with (unsigned long: 64 bits). */
const SEED_STEP = 0x9e370001n;

/**
 * rand_seeds[off] of the job numbered `thread` (fio's thread_number, from 1 in the order jobs and
 * their clones are added) for a repeatable seed: the seed stepped four times, then once for each
 * index before `off`; the generator takes its low 32 bits (init_rand_seed() with use64 false).
 */
function repeatableSeed(randseed: bigint, thread: number, off: number): number {
  let seed = randseed & U64;
  for (let i = 0; i < 4 + off; i++) seed = (seed * SEED_STEP) & U64;
  return Number((seed * BigInt(thread) + BigInt(off)) & 0xffffffffn);
}

/** The seed of a job's mixed-workload generator (td->rwmix_state): fio's for a repeatable job. */
export function rwmixSeed(randseed: bigint, thread: number): number {
  return repeatableSeed(randseed, thread, FIO_RAND_MIX_OFF);
}

/** One component's step of __rand32(): rand.h's TAUSWORTHE(s, a, b, c, d), in unsigned 32 bits. */
function taus(s: number, a: number, b: number, c: number, d: number): number {
  return (((s & c) << d) ^ (((s << a) ^ s) >>> b)) >>> 0;
}

/** lib/rand.c's taus88 state, seeded as __init_rand32() seeds it. */
export class Taus88 {
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    // LCG(x, seed) is ((x) * 69069 ^ (seed)) in unsigned 32 bits; the first x is C's
    // (2^31) + (2^17) + (2^7), with ^ as XOR: 29 + 19 + 5
    const lcg = (x: number) => (Math.imul(x, 69069) ^ seed) >>> 0;
    const atLeast = (x: number, m: number) => (x < m ? x + m : x);
    this.s1 = atLeast(lcg(53), 1);
    this.s2 = atLeast(lcg(this.s1), 7);
    this.s3 = atLeast(lcg(this.s2), 15);
    for (let cranks = 0; cranks < 6; cranks++) this.next();
  }

  /** __rand32(): the next 32-bit value. */
  next(): number {
    this.s1 = taus(this.s1, 13, 19, 0xfffffffe, 12);
    this.s2 = taus(this.s2, 2, 25, 0xfffffff8, 4);
    this.s3 = taus(this.s3, 3, 11, 0xfffffff0, 17);
    return (this.s1 ^ this.s2 ^ this.s3) >>> 0;
  }

  /** rand_between(): a value from `start` to `end`, both included (rand32_upto()'s scaling). */
  between(start: number, end: number): number {
    return start + Math.floor((end - start + 1) * (this.next() / 2 ** 32));
  }
}
