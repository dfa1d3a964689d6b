/**
 * The two primitives every fault in pvblk's chaos tooling is built on: a seeded random generator (a
 * run is reproduced by its seed, as a deterministic simulator's is) and Linux's `struct fault_attr`
 * (lib/fault-inject.c), whose knobs — probability, interval, times, space, verbose — decide whether a
 * given opportunity fails.
 *
 * should_fail(attr, size), in the kernel's order:
 *   probability 0            never fails (and nothing else is counted);
 *   times == 0               never fails any more (times -1 means no limit);
 *   space > size             space -= size, no failure (a budget spent before the first failure);
 *   interval > 1             only every interval-th opportunity that got this far may fail;
 *   probability <= rand%100  no failure;
 *   otherwise                fail: verbose reports it, times is decremented unless -1.
 * The kernel's per-task fail_nth and stack-trace filters have no equivalent here: the filters of a
 * nemesis rule (domain, port, grant ref, message kind) play their part.
 */
import { PvblkError } from '@pvblk/shared';

/**
 * A small seeded generator (SplitMix32): the same seed gives the same sequence on every machine.
 * Not for secrets; for reproducible fault schedules.
 */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A generator for a named sub-stream: draws from one do not shift the other's. */
  fork(label: string | number): Prng {
    let h = this.state ^ 0x9e3779b9;
    for (const c of String(label)) h = Math.imul(h ^ c.charCodeAt(0), 0x85ebca6b) >>> 0;
    return new Prng(mix(h));
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  u32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    return mix(this.state);
  }

  /** An integer in [0, n) (n ≥ 1), without modulo bias. */
  below(n: number): number {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`Prng.below(${n})`);
    if (n === 1) return 0;
    const limit = Math.floor(0x100000000 / n) * n;
    for (;;) {
      const x = this.u32();
      if (x < limit) return x % n;
    }
  }

  /** An integer in [lo, hi]. */
  between(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  /** True with `percent` % probability. */
  chance(percent: number): boolean {
    return this.below(100) < percent;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)];
  }

  /** One key of `weights`, drawn in proportion to its weight (keys with weight 0 never). */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const keys = (Object.keys(weights) as K[]).filter((k) => weights[k] > 0);
    const total = keys.reduce((n, k) => n + weights[k], 0);
    if (total <= 0) throw new RangeError('Prng.weighted: no positive weight');
    let x = this.below(total);
    for (const k of keys) {
      if (x < weights[k]) return k;
      x -= weights[k];
    }
    return keys[keys.length - 1];
  }
}

function mix(x: number): number {
  let z = x >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** The knobs of /sys/kernel/debug/<fault>/, as they are written. */
export interface FaultAttrSpec {
  /** Percent chance, 0-100, that an opportunity which passed the other tests fails. */
  probability: number;
  /** Only every interval-th opportunity may fail (1: all). */
  interval: number;
  /** Failures left; -1 for no limit. */
  times: number;
  /** Size budget consumed before the first failure (bytes for page writes, 1 per other message). */
  space: number;
  /** 0: quiet; 1: one line per failure; 2: the line and what failed. */
  verbose: 0 | 1 | 2;
}

export const DEFAULT_FAULT_ATTR: Readonly<FaultAttrSpec> = Object.freeze({
  probability: 100,
  interval: 1,
  times: 1,
  space: 0,
  verbose: 0,
});

function intIn(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new PvblkError(
      'EINVAL',
      `${name} must be an integer ${min}-${max} (got ${typeof v === 'number' ? v : JSON.stringify(v)})`,
    );
  }
  return v;
}

/** Checks and completes fault_attr knobs given as JSON; refuses a value out of range by name. */
export function parseFaultAttr(raw: Record<string, unknown>): FaultAttrSpec {
  const a = { ...DEFAULT_FAULT_ATTR };
  if (raw.probability !== undefined) a.probability = intIn('probability', raw.probability, 0, 100);
  if (raw.interval !== undefined) a.interval = intIn('interval', raw.interval, 1, 0x7fffffff);
  if (raw.times !== undefined) a.times = intIn('times', raw.times, -1, 0x7fffffff);
  if (raw.space !== undefined) a.space = intIn('space', raw.space, 0, 0x7fffffff);
  if (raw.verbose !== undefined) a.verbose = intIn('verbose', raw.verbose, 0, 2) as 0 | 1 | 2;
  return a;
}

/** One fault_attr with its counters. */
export class FaultAttr {
  readonly spec: FaultAttrSpec;
  times: number;
  space: number;
  /** Opportunities that reached the interval test (the kernel's attr->count). */
  count = 0;
  /** Failures forced. */
  failures = 0;

  constructor(
    spec: FaultAttrSpec,
    private readonly rng: Prng,
    /** The fault's name in fail_dump()'s line (the kernel prints its debugfs directory). */
    readonly name = 'fault',
  ) {
    this.spec = { ...spec };
    this.times = spec.times;
    this.space = spec.space;
  }

  /** should_fail(attr, size); `dump` receives fail_dump()'s line (before `times` is decremented). */
  shouldFail(size: number, dump?: (line: string) => void): boolean {
    if (this.spec.probability === 0) return false;
    if (this.times === 0) return false;
    if (this.space > size) {
      this.space -= size;
      return false;
    }
    if (this.spec.interval > 1) {
      this.count++;
      if (this.count % this.spec.interval !== 0) return false;
    }
    if (this.spec.probability <= this.rng.below(100)) return false;
    dump?.(this.describe());
    if (this.times !== -1 && this.times > 0) this.times--;
    this.failures++;
    return true;
  }

  /** fail_dump()'s line. */
  describe(): string {
    return `FAULT_INJECTION: forcing a failure. name ${this.name}, interval ${this.spec.interval}, probability ${this.spec.probability}, space ${this.space}, times ${this.times}`;
  }
}
