/**
 * A hostile backend against blkfront, fuzzed (test/fuzz/blkfront-fuzzer.ts): a bounded number of
 * requests per run; scripts/fuzz-campaign.ts runs many more.
 */
import { describe, expect, it } from 'vitest';
import { fuzzBlkfront } from '../fuzz/blkfront-fuzzer.ts';

describe('blkfront against a fuzzed hostile backend', () => {
  it.each([1, 2, 3, 4, 5, 6])(
    'seed %i: every request settles once; a detected lie fails the device, nothing else',
    async (seed) => {
      const r = await fuzzBlkfront({ seed, requests: 60 });
      expect(r.violations).toEqual([]);
      expect(r.requests).toBeGreaterThan(0);
    },
    60_000,
  );
});
