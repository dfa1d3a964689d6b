/**
 * Every process's resident memory during a measured run, sampled from /proc/<pid>/status (VmRSS), so
 * a steady-state claim ("RSS stays flat at QD32 for 60 s") can be checked: first, last and highest
 * sample, and the least-squares slope over the second half of the run (MiB per minute), which ignores
 * the warm-up growth of JIT code and pools. And the CPU time each process used over the run, from
 * /proc/<pid>/stat (utime + stime): CPU per I/O is a cost figure a loaded machine disturbs far less
 * than latency.
 */
import { readFile } from 'node:fs/promises';

export interface RssSeries {
  name: string;
  pid: number;
  /** [ms since the start of sampling, bytes]. */
  samples: Array<[number, number]>;
  /** CPU time (user + system) at the first and the last sample, in clock ticks; null without /proc. */
  cpuTicks: [number, number] | null;
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
  /** CPU seconds (user + system) the process used during the run; null without /proc. */
  cpuSeconds: number | null;
}

/** USER_HZ: what /proc/<pid>/stat counts CPU time in (100 on every Linux architecture pvblk runs on). */
const CLOCK_TICKS_PER_SECOND = 100;

/** CPU time (utime + stime) a process has used so far, in clock ticks; null when it is gone or there is no /proc. */
export async function cpuTicksOf(pid: number): Promise<number | null> {
  try {
    const s = await readFile(`/proc/${pid}/stat`, 'utf8');
    // fields after the command name (which may hold spaces) start after the last ')'
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15 of the whole line)
  } catch {
    return null;
  }
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
    this.series = procs.map((p) => ({ ...p, samples: [], cpuTicks: null }));
  }

  private async sample(): Promise<void> {
    const t = performance.now() - this.t0;
    await Promise.all(
      this.series.map(async (s) => {
        const [b, cpu] = await Promise.all([rssOf(s.pid), cpuTicksOf(s.pid)]);
        if (b !== null) s.samples.push([t, b]);
        if (cpu !== null) s.cpuTicks = s.cpuTicks ? [s.cpuTicks[0], cpu] : [cpu, cpu];
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

/** CPU seconds between two readings of cpuTicksOf (null when either could not be read). */
export function cpuSecondsBetween(before: number | null, after: number | null): number | null {
  return before !== null && after !== null ? (after - before) / CLOCK_TICKS_PER_SECOND : null;
}

/** CPU seconds a process used over the sampled run. */
export function cpuSecondsOf(s: RssSeries): number | null {
  return s.cpuTicks ? cpuSecondsBetween(s.cpuTicks[0], s.cpuTicks[1]) : null;
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
    cpuSeconds: cpuSecondsOf(s),
  };
}
