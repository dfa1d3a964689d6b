/**
 * A hostile frontend against blkback, fuzzed (test/fuzz/blkback-fuzzer.ts): a bounded number of
 * batches per run; scripts/fuzz-campaign.ts runs hundreds of thousands of requests.
 */
import { describe, expect, it } from 'vitest';
import { fuzzBlkback } from '../fuzz/blkback-fuzzer.ts';

describe('blkback against a fuzzed hostile frontend', () => {
  it.each([1, 2, 3])(
    'seed %i: every request answered once with its id and a defined status',
    async (seed) => {
      const r = await fuzzBlkback({ seed, batches: 60 });
      expect(r.violations).toEqual([]);
      expect(r.leaks).toEqual([]);
      expect(r.victimFailures).toBe(0);
      expect(r.batches).toBe(60);
      // the fuzzer reaches both the refusals and the I/O paths
      expect(r.byStatus['0']).toBeGreaterThan(0);
      expect(r.byStatus['-1']).toBeGreaterThan(0);
    },
    60_000,
  );
});
