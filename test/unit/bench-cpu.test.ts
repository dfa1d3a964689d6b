import { describe, expect, it } from 'vitest';
import {
  cpuBetween,
  cpuFields,
  cpuTicksOf,
  CpuWindows,
  machineBetween,
  machineCpu,
  machineTicks,
  parseCpuTicks,
  parseMachineTicks,
} from '../../src/cli/bench-rss.ts';
import { cpuPerIoLine, machineLine, perIo } from '../../src/cli/bench-report.ts';

// a /proc/<pid>/stat line (proc(5)): utime and stime are fields 14 and 15 of the whole line
const line = (comm: string, utime: number, stime: number) =>
  `4242 (${comm}) S 1 4242 4242 0 -1 4194560 1234 0 0 0 ${utime} ${stime} 0 0 20 0 11 0 100 1000 200`;

describe('bench CPU time: user mode and kernel, apart', () => {
  it('reads utime and stime from a stat line', () => {
    expect(parseCpuTicks(line('node', 812, 95))).toEqual({ user: 812, system: 95 });
  });

  it('counts fields after the last parenthesis, whatever the command name holds', () => {
    // a process may name itself anything: spaces and ") S 1 2" inside the name must not shift fields
    expect(parseCpuTicks(line('a b) S 1 2 3', 7, 3))).toEqual({ user: 7, system: 3 });
  });

  it('gives null for a line without the fields', () => {
    expect(parseCpuTicks('')).toBeNull();
    expect(parseCpuTicks('4242 (node) S 1 2')).toBeNull();
    expect(parseCpuTicks(line('node', 1, 2).replace(' 1 2 0 0 20', ' x y 0 0 20'))).toBeNull();
  });

  it('turns two readings into seconds in each mode, and totals them', () => {
    const c = cpuBetween({ user: 100, system: 40 }, { user: 350, system: 90 });
    expect(c).toEqual({ user: 2.5, system: 0.5 });
    expect(cpuFields(c)).toEqual({ cpuSeconds: 3, cpuUserSeconds: 2.5, cpuSystemSeconds: 0.5 });
    expect(cpuBetween(null, { user: 1, system: 1 })).toBeNull();
    expect(cpuFields(null)).toEqual({ cpuSeconds: null, cpuUserSeconds: null, cpuSystemSeconds: null });
  });

  it("reads this process's own CPU time, which only grows", async () => {
    const a = await cpuTicksOf(process.pid);
    expect(a).not.toBeNull();
    expect(Number.isInteger(a!.user) && Number.isInteger(a!.system)).toBe(true);
    const b = await cpuTicksOf(process.pid);
    expect(b!.user).toBeGreaterThanOrEqual(a!.user);
    expect(b!.system).toBeGreaterThanOrEqual(a!.system);
    expect(await cpuTicksOf(2 ** 30)).toBeNull(); // no such process
  });

  it('divides each mode by the I/Os, over all the processes of a side', () => {
    const hv = cpuFields({ user: 1.5, system: 0.5 });
    const host = cpuFields({ user: 1, system: 0.25 });
    // 2.5 s of user and 0.75 s of kernel time over 10,000 I/Os
    expect(perIo([hv, host], 10_000)).toEqual({ us: 325, userUs: 250, systemUs: 75 });
    // one process that could not be read, or no I/Os: no figure rather than a wrong one
    expect(perIo([hv, cpuFields(null)], 10_000)).toBeNull();
    expect(perIo([hv], 0)).toBeNull();
    expect(perIo([], 10)).toBeNull();
  });

  it('prints both sides and a ratio for each mode', () => {
    const pvblk = { us: 380.2, userUs: 266.0, systemUs: 114.2 };
    const relay = { us: 227.4, userUs: 119.2, systemUs: 108.2 };
    expect(cpuPerIoLine(pvblk, relay)).toBe(
      '  CPU per I/O, all processes: pvblk 380.2us (usr 266.0, sys 114.2), relay 227.4us (usr 119.2, sys 108.2), pvblk/relay 1.67× (usr 2.23×, sys 1.06×)',
    );
    expect(cpuPerIoLine(pvblk, null)).toBe(
      '  CPU per I/O, all processes: pvblk 380.2us (usr 266.0, sys 114.2)',
    );
  });
});

describe("the machine's CPU while each side ran: busy and stolen", () => {
  // /proc/stat as proc(5) lays it out: the all-CPU line, then one per CPU
  const stat = (user: number, idle: number, iowait: number, steal: number) =>
    `cpu  ${user} 5 ${user / 2} ${idle} ${iowait} 0 3 ${steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 0\n`;

  it('reads the all-CPU line: every state, idle with iowait, and steal', () => {
    expect(parseMachineTicks(stat(100, 1000, 20, 7))).toEqual({
      total: 100 + 5 + 50 + 1000 + 20 + 0 + 3 + 7,
      idle: 1020,
      steal: 7,
    });
    // a kernel older than steal (2.6.11) has seven fields: no figure, not a wrong one
    expect(parseMachineTicks('cpu  1 2 3 4 5 6 7\n')).toBeNull();
    expect(parseMachineTicks('cpu0 1 2 3 4 5 6 7 8\n')).toBeNull();
    expect(parseMachineTicks('cpu  1 2 3 x 5 6 7 8\n')).toBeNull();
    expect(parseMachineTicks('')).toBeNull();
  });

  it('turns two readings into shares of the window', () => {
    const a = parseMachineTicks(stat(100, 1000, 0, 0))!;
    const b = parseMachineTicks(stat(300, 1150, 0, 50))!;
    const d = machineBetween(a, b)!;
    // 200 user + 100 system + 150 idle + 50 steal = 500 ticks = 5 CPU seconds
    expect(d).toEqual({ total: 500, idle: 150, steal: 50 });
    expect(machineCpu(d)).toEqual({ cpuSeconds: 5, busyPct: 60, stealPct: 10 });
    // counters that went backwards (another boot, a wrapped counter) or an empty window: none
    expect(machineBetween(b, a)).toBeNull();
    expect(machineBetween(null, b)).toBeNull();
    expect(machineCpu({ total: 0, idle: 0, steal: 0 })).toBeNull();
  });

  it("adds up a side's windows, and reads this machine's own counters", async () => {
    const m = await machineTicks();
    expect(m).not.toBeNull();
    const w = new CpuWindows([process.pid]);
    await w.begin();
    // a window of at least 10 ticks of the machine's clock (10 ms each per CPU), this process
    // burning CPU all through it: some of it is busy whatever else runs
    const t0 = (await machineTicks())!.total;
    for (let i = 0; i < 1e5 && (await machineTicks())!.total - t0 < 10; i++) for (let k = 0; k < 1e5; k++);
    await w.end();
    const c = w.machineCpu()!;
    expect(c.cpuSeconds).toBeGreaterThan(0);
    expect(c.busyPct).toBeGreaterThan(0);
    expect(c.busyPct + c.stealPct).toBeLessThanOrEqual(100);
  });

  it('prints both sides when the relay ran, and nothing without a reading', () => {
    const pvblk = { cpuSeconds: 20, busyPct: 71.25, stealPct: 2.5 };
    const relay = { cpuSeconds: 20, busyPct: 48, stealPct: 25.94 };
    expect(machineLine({ pvblk, relay })).toBe(
      '  machine (/proc/stat, all CPUs): busy 71.3%, steal 2.5% while pvblk ran; busy 48.0%, steal 25.9% while the relay ran',
    );
    expect(machineLine({ pvblk, relay: null })).toBe(
      '  machine (/proc/stat, all CPUs): busy 71.3%, steal 2.5% while pvblk ran',
    );
    expect(machineLine({ pvblk: null, relay })).toBeNull();
  });
});
