import { describe, expect, it } from 'vitest';
import { cpuBetween, cpuFields, cpuTicksOf, parseCpuTicks } from '../../src/cli/bench-rss.ts';
import { cpuPerIoLine, perIo } from '../../src/cli/bench-report.ts';

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
