/**
 * Every process's resident memory during a measured run, sampled from /proc/<pid>/status (VmRSS), so
 * a steady-state claim ("RSS stays flat at QD32 for 60 s") can be checked: first, last and highest
 * sample, and the least-squares slope over the second half of the run (MiB per minute), which ignores
 * the warm-up growth of JIT code and pools.
 */
import { readFile } from 'node:fs/promises';

export interface RssSeries {
  name: string;
  pid: number;
  /** [ms since the start of sampling, bytes]. */
  samples: Array<[number, number]>;
}

export interface RssSummary {
  name: string;
  pid: number;
  samples: number;
  firstBytes: number;
  lastBytes: number;
  maxBytes: number;
  /** MiB per minute over the second half of the samples (null with fewer than 4 there). */
  slopeMiBPerMin: number | null;
}

async function rssOf(pid: number): Promise<number | null> {
  try {
    const s = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(s);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null; // gone, or no /proc here
  }
}

export class RssSampler {
  private readonly series: RssSeries[];
  private timer: NodeJS.Timeout | null = null;
  private readonly t0 = performance.now();

  constructor(
    procs: Array<{ name: string; pid: number }>,
    private readonly intervalMs: number,
  ) {
    this.series = procs.map((p) => ({ ...p, samples: [] }));
  }

  private async sample(): Promise<void> {
    const t = performance.now() - this.t0;
    await Promise.all(
      this.series.map(async (s) => {
        const b = await rssOf(s.pid);
        if (b !== null) s.samples.push([t, b]);
      }),
    );
  }

  start(): void {
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
  }

  async stop(): Promise<RssSeries[]> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sample();
    return this.series;
  }
}

export function summarizeRss(s: RssSeries): RssSummary {
  const b = s.samples.map(([, v]) => v);
  const half = s.samples.slice(Math.floor(s.samples.length / 2));
  let slope: number | null = null;
  if (half.length >= 4) {
    const n = half.length;
    const mx = half.reduce((a, [t]) => a + t, 0) / n;
    const my = half.reduce((a, [, v]) => a + v, 0) / n;
    let num = 0;
    let den = 0;
    for (const [t, v] of half) {
      num += (t - mx) * (v - my);
      den += (t - mx) ** 2;
    }
    slope = den ? ((num / den) * 60_000) / 1048576 : 0;
  }
  return {
    name: s.name,
    pid: s.pid,
    samples: b.length,
    firstBytes: b[0] ?? 0,
    lastBytes: b[b.length - 1] ?? 0,
    maxBytes: b.length ? Math.max(...b) : 0,
    slopeMiBPerMin: slope,
  };
}
