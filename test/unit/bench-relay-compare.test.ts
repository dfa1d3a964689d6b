import { describe, expect, it } from 'vitest';
import { JobStats, Samples } from '@pvblk/frontend';
import {
  compare,
  comparisonLines,
  mergedLatency,
  LINE_SAYER_MAX,
  LineSayer,
  type PointResult,
} from '../../src/cli/bench-report.ts';

/**
 * A QD1 job whose every write spent 30 µs in submission (fio's slat) and 100 µs after it (clat),
 * against a relay whose round trips took 110 µs: set beside the relay's round trip, clat looks like
 * 0.91× and lat, the same span as the round trip (issue → response), is 1.18×.
 */
function job(n: number): JobStats {
  const s = new JobStats('w');
  for (let i = 0; i < n; i++) {
    s.write.slat.add(30_000);
    s.write.clat.add(100_000);
    s.write.lat.add(130_000);
  }
  s.write.ios = n;
  s.write.bytes = n * 4096;
  s.write.runtimeMs = 1000;
  return s;
}

function relay(n: number): { ios: number; bytes: number; runtimeMs: number; rtt: Samples } {
  const rtt = new Samples();
  for (let i = 0; i < n; i++) rtt.add(110_000);
  return { ios: n, bytes: n * 4096, runtimeMs: 1000, rtt };
}

describe('pvblk against the relay: clat and lat beside the round trip', () => {
  it("sets both pvblk's clat and its lat beside the relay's round trip, row by row", () => {
    const c = compare(job(1000), relay(2000), [1, 50, 99, 99.9]);
    expect(c.iops[0] / c.iops[1]).toBeCloseTo(0.5, 6);
    const row = (rows: Array<[string, number, number]>, k: string) => rows.find(([name]) => name === k)!;
    // every sample of a kind is equal: each percentile is that value
    expect(row(c.clat, 'p50')[1] / row(c.clat, 'p50')[2]).toBeCloseTo(100 / 110, 2);
    expect(row(c.lat, 'p50')[1] / row(c.lat, 'p50')[2]).toBeCloseTo(130 / 110, 2);
    expect(row(c.lat, 'avg')[1]).toBe(130_000);
    expect(c.lat.map(([k]) => k)).toEqual(c.clat.map(([k]) => k));
  });

  it('prints every clat row, then the spread and tail of lat, and names the span of the relay column', () => {
    const lines = comparisonLines(compare(job(10), relay(10), [1, 50, 99, 99.9]), "guest's jobs");
    expect(lines[0]).toContain("the relay's latencies are its round trips, issue → response");
    const labels = lines.slice(4).map((l) => l.trim().split(/ {2,}/)[0]);
    expect(labels).toEqual([
      'clat min (usec)',
      'clat avg (usec)',
      'clat stdev (usec)',
      'clat p1 (usec)',
      'clat p50 (usec)',
      'clat p99 (usec)',
      'clat p99.9 (usec)',
      'clat max (usec)',
      'lat min (usec)',
      'lat avg (usec)',
      'lat stdev (usec)',
      'lat p50 (usec)',
      'lat p99 (usec)',
      'lat max (usec)',
    ]);
    expect(lines.find((l) => l.trim().startsWith('lat avg (usec)'))).toMatch(/130\.0\s+110\.0\s+1\.18×$/);
  });
});

describe("a guest's stderr, said as it comes", () => {
  const sayer = (prefix: string) => {
    const said: string[] = [];
    return { said, s: new LineSayer(prefix, (t) => said.push(t)) };
  };

  it('prefixes each line with its guest, and leaves nothing dangling after the last newline', () => {
    const a = sayer('guest1: ');
    a.s.push('fio: one\nfio: two\n');
    expect(a.said).toEqual(['guest1: fio: one\nguest1: fio: two\n']);
    const b = sayer('g: ');
    b.s.push('a\n\nb');
    b.s.flush();
    // a last line left unfinished is ended: what is said next starts a line of its own
    expect(b.said).toEqual(['g: a\n\n', 'g: b\n']);
    const c = sayer('g: ');
    c.s.push('');
    c.s.flush();
    expect(c.said).toEqual([]);
  });

  it('says a line only once it is whole, so that two guests never cut into each other', () => {
    const out: string[] = [];
    const one = new LineSayer('guest1: ', (t) => out.push(t));
    const two = new LineSayer('guest2: ', (t) => out.push(t));
    one.push('verify: bad magic');
    two.push('verify: bad ');
    one.push(' header 0\nfio: pid');
    two.push('magic header 0\n');
    one.push('=1\n');
    expect(out.join('')).toBe(
      'guest1: verify: bad magic header 0\nguest2: verify: bad magic header 0\nguest1: fio: pid=1\n',
    );
    one.flush();
    two.flush();
    expect(out).toHaveLength(3);
  });

  it('says them unprefixed with one guest', () => {
    const a = sayer('');
    a.s.push('x\ny');
    a.s.flush();
    expect(a.said).toEqual(['x\n', 'y\n']);
  });

  it('says a line that never ends in pieces, holding back no more than one piece', () => {
    const a = sayer('g: ');
    const chunk = 'x'.repeat(LINE_SAYER_MAX / 4 + 1);
    for (let i = 0; i < 8; i++) a.s.push(chunk);
    // 8 chunks are two whole pieces and a bit: the pieces said, the bit held
    expect(a.said).toEqual([`g: ${'x'.repeat(LINE_SAYER_MAX)}\n`, `g: ${'x'.repeat(LINE_SAYER_MAX)}\n`]);
    a.s.flush();
    expect(a.said[2]).toBe(`g: ${'x'.repeat(8 * chunk.length - 2 * LINE_SAYER_MAX)}\n`);
  });
});

describe("a point's merged latency (the sweep table's clat, the CDF plots)", () => {
  it('holds every direction of every job, trims too', () => {
    const trims = new JobStats('t');
    for (let i = 0; i < 10; i++) trims.trim.clat.add(1_000_000);
    const point = { guests: [{ jobs: [job(10), trims] }] } as unknown as PointResult;
    const clat = mergedLatency(point, 'clat');
    expect(clat.n).toBe(20);
    expect(clat.max).toBe(1_000_000);
  });
});
