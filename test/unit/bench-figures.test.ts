import { describe, expect, it } from 'vitest';
import { figures, type BenchPointJson } from '../../bench/lib.ts';

/**
 * One QD1 write job as `pvblk bench --baseline --output-format=json` writes it, cut to what
 * figures() reads, with the relay's round trips at `rtt` (ns, by row) and pvblk's lat/round-trip
 * ratios at `lat`. The rows follow the run's percentile list, so a list without 50 has no p50.
 */
function point(relay: { rtt: Record<string, number>; lat?: Record<string, number> } | null): BenchPointJson {
  const none = {
    iops: 0,
    bw_bytes: 0,
    total_ios: 0,
    clat_ns: { mean: 0, percentile: {} },
    lat_ns: { mean: 0 },
  };
  return {
    jobs: [
      {
        jobname: 'x',
        read: none,
        write: {
          iops: 8000,
          bw_bytes: 8000 * 4096,
          total_ios: 40_000,
          clat_ns: { mean: 118_000, percentile: { '50.000000': 117_000, '99.000000': 160_000 } },
          lat_ns: { mean: 140_000 },
        },
        pvblk: {
          ring_occupancy: { mean: 1, max: 1 },
          ...(relay && {
            relay: {
              iops: 9000,
              bw_bytes: 9000 * 4096,
              rtt_ns: relay.rtt,
              ratio: { iops: 8000 / 9000, bw: 8000 / 9000, clat: {}, ...(relay.lat && { lat: relay.lat }) },
            },
          }),
        },
      },
    ],
    pvblk: { point: {}, guests: [], memory: [], stages: null },
  };
}

describe("figures(): the relay's round trip and pvblk's lat beside it", () => {
  it('reads both p50s from the comparison when the percentile list has 50', () => {
    const f = figures(point({ rtt: { min: 70_000, p50: 110_000 }, lat: { min: 1.1, p50: 1.25 } }));
    expect(f.relayRttP50us).toBeCloseTo(110, 9);
    expect(f.latP50us).toBeCloseTo(137.5, 9);
    expect(f.clatP50us).toBeCloseTo(117, 9);
    expect(f.relayIops).toBe(9000);
  });

  it('gives null, not NaN, for both when the list has no 50 (--percentile_list=10:90)', () => {
    const f = figures(
      point({ rtt: { min: 70_000, p10: 90_000, p90: 130_000 }, lat: { p10: 1.2, p90: 1.3 } }),
    );
    expect(f.relayRttP50us).toBeNull();
    expect(f.latP50us).toBeNull();
  });

  it('gives null for lat from JSON written before the bench compared lat, and for both without a relay', () => {
    expect(figures(point({ rtt: { p50: 110_000 } })).latP50us).toBeNull();
    expect(figures(point({ rtt: { p50: 110_000 } })).relayRttP50us).toBeCloseTo(110, 9);
    const f = figures(point(null));
    expect(f.relayRttP50us).toBeNull();
    expect(f.latP50us).toBeNull();
    expect(f.relayIops).toBeNull();
  });
});
