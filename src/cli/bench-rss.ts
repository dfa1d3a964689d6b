/**
 * Every process's resident memory during a measured run, sampled from /proc/<pid>/status (VmRSS), so
 * a steady-state claim ("RSS stays flat at QD32 for 60 s") can be checked: first, last and highest
 * sample, and the least-squares slope over the second half of the run (MiB per minute), which ignores
 * the warm-up growth of JIT code and pools. And the CPU time each process used over the run, from
 * /proc/<pid>/stat (utime and stime, kept apart as fio's `usr=`/`sys=` are): CPU per I/O is a cost
 * figure a loaded machine disturbs far less than latency, and its split says whether a difference is
 * the process's own code or the kernel's (socket calls, wake-ups, page faults). And the whole
 * machine's CPU time over the same windows, from /proc/stat: how busy it was, and how much of its
 * time the hypervisor under a virtual machine gave to others (steal) — on a cloud VM the one figure
 * that says whether a ratio was measured on a quiet machine or through another tenant's burst.
 */
import { readFile } from 'node:fs/promises';
import { NO_TCP, tcpBetween, tcpCounters, tcpSum, type TcpCounters } from './bench-tcp.ts';

export interface RssSeries {
  name: string;
  pid: number;
  /** [ms since the start of sampling, bytes]. */
  samples: Array<[number, number]>;
  /** CPU time at the first and the last sample, in clock ticks; null without /proc. */
  cpuTicks: [CpuTicks, CpuTicks] | null;
  /**
   * The CPU time to report instead, when the process was measured over windows of the run rather
   * than from its first sample to its last (pvblk's slices of a run that takes turns with the relay).
   */
  cpu?: CpuSeconds | null;
}

/** What one process's CPU time over a run is reported as; null where it could not be read. */
export interface CpuFields {
  /** CPU seconds, user + system. */
  cpuSeconds: number | null;
  /** The same, in user mode (utime) … */
  cpuUserSeconds: number | null;
  /** … and in the kernel on its behalf (stime). */
  cpuSystemSeconds: number | null;
}

export interface RssSummary extends CpuFields {
  name: string;
  pid: number;
  samples: number;
  firstBytes: number;
  lastBytes: number;
  maxBytes: number;
  /** MiB per minute over the second half of the samples (null with fewer than 4 there). */
  slopeMiBPerMin: number | null;
}

/** A process's CPU time so far, in clock ticks: user mode (utime) and kernel (stime). */
export interface CpuTicks {
  user: number;
  system: number;
}

/** CPU seconds used between two readings. */
export interface CpuSeconds {
  user: number;
  system: number;
}

/** The whole machine's CPU time so far (the `cpu` line of /proc/stat, all CPUs), in clock ticks. */
export interface MachineTicks {
  /** Every state: user, nice, system, idle, iowait, irq, softirq, steal. */
  total: number;
  /** Idle and waiting for I/O. */
  idle: number;
  /** Wanted to run, but the hypervisor ran another virtual CPU (0 on bare metal). */
  steal: number;
}

/** The machine's CPU over a window (or several, added up): its shares, in per cent of `cpuSeconds`. */
export interface MachineCpu {
  /** CPU seconds of all CPUs over the window (its length times the CPUs). */
  cpuSeconds: number;
  /** Neither idle nor stolen: what every process on the machine (pvblk's, the relay's, others') ran. */
  busyPct: number;
  stealPct: number;
}

/** The machine's CPU time in /proc/stat's text; null when it has no `cpu` line. */
export function parseMachineTicks(stat: string): MachineTicks | null {
  const line = /^cpu (.*)$/m.exec(stat);
  if (!line) return null;
  const f = line[1].trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal (guest and guest_nice are counted in user and nice)
  if (f.length < 8 || f.slice(0, 8).some((x) => !Number.isSafeInteger(x) || x < 0)) return null;
  return { total: sum8(f), idle: f[3] + f[4], steal: f[7] };
}

function sum8(f: number[]): number {
  let t = 0;
  for (let i = 0; i < 8; i++) t += f[i];
  return t;
}

/** The machine's CPU time so far; null without /proc. */
export async function machineTicks(): Promise<MachineTicks | null> {
  try {
    return parseMachineTicks(await readFile('/proc/stat', 'utf8'));
  } catch {
    return null;
  }
}

/** The ticks between two readings (null when either is missing or the counters went backwards). */
export function machineBetween(a: MachineTicks | null, b: MachineTicks | null): MachineTicks | null {
  if (!a || !b) return null;
  const d = { total: b.total - a.total, idle: b.idle - a.idle, steal: b.steal - a.steal };
  return d.total >= 0 && d.idle >= 0 && d.steal >= 0 ? d : null;
}

/** Ticks as the shares a report shows; null for an empty window. */
export function machineCpu(t: MachineTicks | null): MachineCpu | null {
  if (!t || t.total <= 0) return null;
  return {
    cpuSeconds: t.total / CLOCK_TICKS_PER_SECOND,
    busyPct: (100 * (t.total - t.idle - t.steal)) / t.total,
    stealPct: (100 * t.steal) / t.total,
  };
}

/** USER_HZ: what /proc/<pid>/stat counts CPU time in (100 on every Linux architecture pvblk runs on). */
const CLOCK_TICKS_PER_SECOND = 100;

/** The CPU time in a /proc/<pid>/stat line; null when the line has no such fields. */
export function parseCpuTicks(stat: string): CpuTicks | null {
  // fields after the command name (which may hold spaces and parentheses) start after the last ')'
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  const f = stat.slice(close + 2).split(' ');
  const user = Number(f[11]); // utime: field 14 of the whole line
  const system = Number(f[12]); // stime: field 15
  return Number.isInteger(user) && Number.isInteger(system) ? { user, system } : null;
}

/** CPU time a process has used so far; null when it is gone or there is no /proc. */
export async function cpuTicksOf(pid: number): Promise<CpuTicks | null> {
  try {
    return parseCpuTicks(await readFile(`/proc/${pid}/stat`, 'utf8'));
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
  /** The machine's CPU time at the first and the last sample. */
  private machine: [MachineTicks, MachineTicks] | null = null;
  /** This namespace's TCP counters at the first and the last sample. */
  private tcp: [TcpCounters, TcpCounters] | null = null;

  constructor(
    procs: Array<{ name: string; pid: number }>,
    private readonly intervalMs: number,
  ) {
    this.series = procs.map((p) => ({ ...p, samples: [], cpuTicks: null }));
  }

  private async sample(): Promise<void> {
    const t = performance.now() - this.t0;
    const [m, tcp] = await Promise.all([
      machineTicks(),
      tcpCounters(),
      ...this.series.map(async (s) => {
        const [b, cpu] = await Promise.all([rssOf(s.pid), cpuTicksOf(s.pid)]);
        if (b !== null) s.samples.push([t, b]);
        if (cpu !== null) s.cpuTicks = s.cpuTicks ? [s.cpuTicks[0], cpu] : [cpu, cpu];
      }),
    ]);
    if (m) this.machine = this.machine ? [this.machine[0], m] : [m, m];
    if (tcp) this.tcp = this.tcp ? [this.tcp[0], tcp] : [tcp, tcp];
  }

  /** What TCP did in this namespace between the first sample and the last (after stop()). */
  tcpCounters(): TcpCounters | null {
    return this.tcp ? tcpBetween(this.tcp[0], this.tcp[1]) : null;
  }

  /** The machine's CPU between the first sample and the last (after stop()). */
  machineCpu(): MachineCpu | null {
    return this.machine ? machineCpu(machineBetween(this.machine[0], this.machine[1])) : null;
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
export function cpuBetween(before: CpuTicks | null, after: CpuTicks | null): CpuSeconds | null {
  if (!before || !after) return null;
  return {
    user: (after.user - before.user) / CLOCK_TICKS_PER_SECOND,
    system: (after.system - before.system) / CLOCK_TICKS_PER_SECOND,
  };
}

/** CPU seconds a process used over the sampled run (or over its windows, see RssSeries.cpu). */
export function cpuOf(s: RssSeries): CpuSeconds | null {
  if (s.cpu !== undefined) return s.cpu;
  return s.cpuTicks ? cpuBetween(s.cpuTicks[0], s.cpuTicks[1]) : null;
}

/**
 * The CPU time processes used over several windows of a run, added up: one side's slices when pvblk
 * and the relay take turns, so that neither is charged with what it did (or idled) during the
 * other's. A process that could not be read at some window's edge has no figure (null), rather
 * than a wrong one.
 */
export class CpuWindows {
  private readonly total: Array<CpuSeconds | null>;
  private machine: MachineTicks | null = { total: 0, idle: 0, steal: 0 };
  private tcp: TcpCounters | null = NO_TCP;
  private opened: Promise<Reading> | null = null;

  constructor(private readonly pids: number[]) {
    this.total = pids.map(() => ({ user: 0, system: 0 }));
  }

  private read(): Promise<Reading> {
    return Promise.all([machineTicks(), Promise.all(this.pids.map((p) => cpuTicksOf(p))), tcpCounters()]);
  }

  begin(): Promise<unknown> {
    this.opened = this.read();
    return this.opened;
  }

  async end(): Promise<void> {
    if (!this.opened) throw new Error('CpuWindows.end without begin');
    const [[ma, a, ta], [mb, b, tb]] = await Promise.all([this.opened, this.read()]);
    this.opened = null;
    this.tcp = tcpSum(this.tcp, tcpBetween(ta, tb));
    this.total.forEach((t, i) => {
      const d = cpuBetween(a[i], b[i]);
      this.total[i] = t && d ? { user: t.user + d.user, system: t.system + d.system } : null;
    });
    const m = machineBetween(ma, mb);
    this.machine =
      this.machine && m
        ? {
            total: this.machine.total + m.total,
            idle: this.machine.idle + m.idle,
            steal: this.machine.steal + m.steal,
          }
        : null;
  }

  /** The sums, in the order of the pids given. */
  seconds(): Array<CpuSeconds | null> {
    return [...this.total];
  }

  /** The machine's CPU over the windows, added up. */
  machineCpu(): MachineCpu | null {
    return machineCpu(this.machine);
  }

  /** What TCP did in this namespace over the windows, added up. */
  tcpCounters(): TcpCounters | null {
    return this.tcp;
  }
}

/** One reading at a window's edge: the machine, each process, this namespace's TCP. */
type Reading = [MachineTicks | null, Array<CpuTicks | null>, TcpCounters | null];

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
    ...cpuFields(cpuOf(s)),
  };
}

/** The three CPU fields of a summary (or of a relay process's row) from one reading. */
export function cpuFields(c: CpuSeconds | null): CpuFields {
  return {
    cpuSeconds: c ? c.user + c.system : null,
    cpuUserSeconds: c?.user ?? null,
    cpuSystemSeconds: c?.system ?? null,
  };
}
