import { describe, expect, it } from 'vitest';
import { HZ, SpuriousEventBackoff } from '../src/lateeoi.ts';

describe('lateeoi spurious back-off (events_base.c xen_irq_lateeoi_locked)', () => {
  it('delays nothing for the first spurious EOI, then 1, 2, 4 … jiffies, capped at HZ', () => {
    const b = new SpuriousEventBackoff();
    const delays = Array.from({ length: 16 }, () => b.eoi(true));
    // threshold 1: count 1 → 0; count n > 1 → 2^(n-2); the count stops at 12 (2^12 >= 4·HZ)
    expect(delays).toEqual([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, HZ, HZ, HZ, HZ, HZ]);
    expect(b.spuriousEvents).toBe(16);
    expect(b.jiffiesEoiDelayed).toBe(delays.reduce((a, d) => a + d, 0));
  });

  it('an EOI that found work resets the count', () => {
    const b = new SpuriousEventBackoff();
    expect([b.eoi(true), b.eoi(true), b.eoi(true)]).toEqual([0, 1, 2]);
    expect(b.eoi(false)).toBe(0);
    expect([b.eoi(true), b.eoi(true)]).toEqual([0, 1]);
    expect(b.spuriousEvents).toBe(5);
  });

  it('a higher spurious_threshold tolerates more spurious events before delaying', () => {
    const b = new SpuriousEventBackoff(3);
    expect(Array.from({ length: 6 }, () => b.eoi(true))).toEqual([0, 0, 0, 1, 2, 4]);
  });
});
