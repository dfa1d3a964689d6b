import { describe, expect, it } from 'vitest';
import { RateLimit } from '@pvblk/shared';

describe("printk's rate limit (lib/ratelimit.c)", () => {
  it('lets ten through in five seconds, counts the rest, and says how many once the next interval begins', () => {
    const r = new RateLimit();
    const first = Array.from({ length: 25 }, (_, i) => r.take(1000 + i));
    expect(first.filter((v) => v.ok)).toHaveLength(10);
    expect(first.slice(0, 10).every((v) => v.ok)).toBe(true);
    expect(first.every((v) => v.suppressed === 0)).toBe(true);
    // still inside the interval (begin + 5000 is not yet past): refused, nothing said
    expect(r.take(6000)).toEqual({ ok: false, suppressed: 0 });
    // past it: the 16 left out are reported with the first of the new interval, which passes
    expect(r.take(6001)).toEqual({ ok: true, suppressed: 16 });
    expect(r.take(6002)).toEqual({ ok: true, suppressed: 0 });
  });

  it('takes its interval and burst as ratelimit_state does', () => {
    const r = new RateLimit(100, 2);
    expect([r.take(0), r.take(1), r.take(2)].map((v) => v.ok)).toEqual([true, true, false]);
    expect(r.take(101)).toEqual({ ok: true, suppressed: 1 });
  });

  it('allows(): the same verdict for a logger, saying what was left out first', () => {
    const r = new RateLimit(100, 1);
    const missed: number[] = [];
    const say = (n: number) => missed.push(n);
    expect([r.allows(0, say), r.allows(1, say), r.allows(2, say)]).toEqual([true, false, false]);
    expect(r.allows(101, say)).toBe(true);
    expect(missed).toEqual([2]);
  });
});
