import { describe, expect, it } from 'vitest';
import { withBackoff } from '../src/backoff.ts';

describe('withBackoff', () => {
  it('retries with doubling delays until the attempt succeeds', async () => {
    const delays: number[] = [];
    let n = 0;
    const v = await withBackoff(
      async () => {
        if (++n < 4) throw new Error(`no ${n}`);
        return 'up';
      },
      { retryForMs: 5000, firstDelayMs: 5, maxDelayMs: 15, onRetry: (_i, d) => delays.push(d) },
    );
    expect(v).toBe('up');
    expect(delays).toEqual([5, 10, 15]);
  });

  it('gives up with the last error once the next wait would pass the deadline', async () => {
    let n = 0;
    await expect(
      withBackoff(
        async () => {
          throw new Error(`refused ${++n}`);
        },
        { retryForMs: 0, firstDelayMs: 5 },
      ),
    ).rejects.toThrow('refused 1');
  });
});
