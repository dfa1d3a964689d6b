/**
 * `pvblk bench --baseline-slices`: a side's slices added up into one run (the runs themselves are in
 * test/process/bench.test.ts), and the CPU time of processes over windows of a run.
 */
import { describe, expect, it } from 'vitest';
import { JobStats, Samples } from '@pvblk/frontend';
import {
  appendGuestSlice,
  appendRelayResult,
  sliceRatio,
  type GuestSlice,
} from '../../src/cli/bench-slices.ts';
import { CpuWindows } from '../../src/cli/bench-rss.ts';
import type { RelayResult } from '../../src/cli/bench-relay.ts';

function guestSlice(ios: number, ms: number, lat: number): GuestSlice {
  const j = new JobStats('sl');
  j.write.ios = ios;
  j.write.bytes = ios * 4096;
  j.write.runtimeMs = ms;
  j.totalRunMs = ms;
  for (let i = 0; i < ios; i++) j.write.clat.add(lat);
  const disk = {
    name: 'xvda',
    readIos: 0,
    writeIos: ios,
    readSectors: 0,
    writeSectors: ios * 8,
    readTicks: 0,
    writeTicks: ms,
    inQueue: ms,
    ioTicks: ms,
    msec: ms,
  };
  return {
    status: 0,
    jobs: [j],
    disks: [disk],
    devices: [{ name: 'xvda', requests: ios, completions: ios, upcalls: ios, grants: 0 }],
    unreported: [],
  };
}

function relayResult(ios: number, ms: number, rtt: number): RelayResult {
  const s = new Samples();
  for (let i = 0; i < ios; i++) s.add(rtt);
  return {
    client: 0,
    ios,
    reads: 0,
    writes: ios,
    bytes: ios * 4096,
    runtimeMs: ms,
    rtt: s.toRaw(),
    framesSent: ios,
    framesReceived: ios,
    bytesSent: ios * 4200,
    bytesReceived: ios * 40,
    cpuUserSeconds: 0.25,
    cpuSystemSeconds: 0.125,
  };
}

describe('bench slices: one run from its slices', () => {
  it("adds a guest's slices: I/Os, times, histograms and counters", () => {
    const run = appendGuestSlice(guestSlice(100, 400, 100_000), guestSlice(300, 410, 900_000_000));
    const j = run.jobs[0];
    expect(j.write.ios).toBe(400);
    expect(j.write.runtimeMs).toBe(810);
    expect(j.totalRunMs).toBe(810);
    expect(j.members).toBe(1);
    expect(j.write.clat.n).toBe(400);
    // the second slice's latencies are far above the first's: the histogram took them
    expect(j.write.clat.pct(90)).toBeGreaterThan(800_000_000);
    expect(run.disks[0]).toMatchObject({ writeIos: 400, writeSectors: 3200, msec: 810, ioTicks: 810 });
    expect(run.devices[0]).toMatchObject({ requests: 400, completions: 400, upcalls: 400 });
  });

  it('starts from the next slice when one printed nothing, and keeps the first failure', () => {
    const empty: GuestSlice = {
      status: 1,
      jobs: [],
      disks: [],
      devices: [],
      unreported: [{ error: 84, verror: 'file:io_u.c:2213, func=io_u_queued_complete, error=x' }],
    };
    const run = appendGuestSlice(empty, guestSlice(10, 400, 1000));
    expect(run.jobs[0].write.ios).toBe(10);
    expect(run.status).toBe(1);
    // a stats=0 job's error in the first slice is the run's
    expect(run.unreported.map((u) => u.error)).toEqual([84]);
  });

  it("adds a relay client's slices, round trips merged", () => {
    const r = appendRelayResult(relayResult(100, 400, 50_000), relayResult(300, 400, 80_000_000));
    expect(r).toMatchObject({ ios: 400, writes: 400, bytes: 400 * 4096, runtimeMs: 800, framesSent: 400 });
    expect(r.cpuUserSeconds).toBeCloseTo(0.5, 9);
    expect(r.cpuSystemSeconds).toBeCloseTo(0.25, 9);
    const rtt = Samples.fromRaw(r.rtt);
    expect(rtt.n).toBe(400);
    expect(rtt.pct(10)).toBeLessThan(60_000);
    expect(rtt.pct(90)).toBeGreaterThan(70_000_000);
  });

  it('gives each slice the ratio of its two rates, and none when a side did nothing', () => {
    const side = (ios: number, runtimeMs: number) => ({ startMs: 0, endMs: runtimeMs, ios, runtimeMs });
    expect(sliceRatio({ pvblk: side(500, 400), relay: side(1000, 500) })).toBeCloseTo(0.625, 9);
    expect(sliceRatio({ pvblk: side(500, 400), relay: side(0, 0) })).toBeNaN();
  });
});

describe('bench CPU over windows of a run', () => {
  it("adds up this process's CPU time over two windows, and not between them", async () => {
    const w = new CpuWindows([process.pid]);
    // spins until this process has used `ms` more of CPU time (not of the clock: a loaded machine
    // may give it less than the time it spins)
    const spin = (ms: number) => {
      const c0 = process.cpuUsage();
      for (;;) {
        const c = process.cpuUsage(c0);
        if ((c.user + c.system) / 1000 >= ms) return;
      }
    };
    await w.begin();
    spin(150);
    await w.end();
    const one = w.seconds()[0]!;
    spin(300); // outside any window
    await w.begin();
    spin(150);
    await w.end();
    const two = w.seconds()[0]!;
    // ticks of 10 ms: each window holds 150 ms of CPU, the gap 300 ms that must not count
    expect(one.user + one.system).toBeGreaterThanOrEqual(0.12);
    expect(two.user + two.system - (one.user + one.system)).toBeGreaterThanOrEqual(0.12);
    expect(two.user + two.system).toBeLessThan(0.45);
  });

  it('has no figure for a process it could not read', async () => {
    const w = new CpuWindows([2 ** 30]);
    await w.begin();
    await w.end();
    expect(w.seconds()).toEqual([null]);
  });
});
