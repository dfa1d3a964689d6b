/**
 * `pvblk bench` and the guest's `fio` across real processes: bad options are refused before anything
 * starts; a run's JSON has fio's keys and pvblk's counters; a process of the stack or of the relay
 * killed during a run is reported and the rest stopped; the counts of a QD1 write run add up; a
 * block corrupted on the host's disk file is caught by `--verify` with fio's message; plots are
 * valid SVG and PNG files. Behaviour only: no figure is asserted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, open, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  environOf,
  processGone,
  PVBLK,
  pvblk,
  startPvblk,
  startSystem,
  tempDir,
  waitUntil,
  type Running,
} from './helpers.ts';
import { tcpCongestionControl } from '../../src/cli/bench-tcp.ts';

const QUICK = ['--disk', 'delay=0', '--warmup=0', '--rss-interval=200ms'];

// each case is a process that refuses and exits: run a few at once (vitest's maxConcurrency, 5)
describe.concurrent('pvblk bench: bad input', () => {
  const tmp = tempDir('pvblk-bench-err-');
  afterAll(() => tmp.cleanup());

  const cases: Array<[string[], string[]]> = [
    [
      ['--name=t', '--iodepth', '0'],
      ['iodepth: min value out of range: 0 (1 min)', 'fio: failed parsing iodepth=0'],
    ],
    [
      ['--name=t', '--iodeph=4'],
      [
        "fio: unrecognized option '--iodeph=4'",
        "fio: unrecognized option '--iodeph=4'",
        'Did you mean iodepth?',
      ],
    ],
    [
      ['--name=t', '--bs=1000'],
      ['fio: bs=1000 is not a multiple of the logical block size of /dev/xvda (512)'],
    ],
    [
      ['--name=t', '--size=16m'],
      ['fio: offset=0 size=16777216 goes past the end of /dev/xvda (8388608 bytes)'],
    ],
    [
      ['--name=t', '--disk', 'dev_size_mb=64', '--size=65m'],
      ['fio: offset=0 size=68157440 goes past the end of /dev/xvda (67108864 bytes)'],
    ],
    [
      ['--name=t', '--offset=100m'],
      ['fio: offset=104857600 is at or past the end of /dev/xvda (8388608 bytes)'],
    ],
    [['--name=t', '--rw=trimread'], ['fio: failed parsing rw=trimread']],
    [
      ['--name=t', '--warmup=2h'],
      ['warmup: max value out of range: 2h (1h max)', 'fio: failed parsing warmup=2h'],
    ],
    [
      ['--name=t', '--rss-interval=50ms'],
      ['rss-interval: min value out of range: 50ms (100ms min)', 'fio: failed parsing rss-interval=50ms'],
    ],
    [
      ['--name=t', '--pi', '--disk', 'dif=0'],
      ['fio: --pi with --disk "dif=0": --pi needs protection information on the disk'],
    ],
    [['--name=t', '--sweep', 'pi=0,1', '--disk', 'dix=0'], ['fio: --sweep pi=1 with --disk "dix=0"']],
    [
      ['--name=t', '--disk', 'dev_size_mb=2048'],
      [
        "fio: --disk: the disk of guest guest: dev_size_mb=2048 (2 GiB) is over the host's limit of 1 GiB per disk (--max-disk-size / PVBLK_MAX_DISK_SIZE)",
      ],
    ],
    [
      ['--name=t', '--guests=5', '--disk', 'dev_size_mb=1024'],
      [
        'fio: --guests=5 with --disk "dev_size_mb=1024": 5 disks of 1 GiB (5 GiB) are over the host\'s disk quota of 4 GiB',
      ],
    ],
    [
      ['--name=t', '--sweep', 'ndelay=abc,1'],
      ['fio: --sweep ndelay=abc,1: disk parameter "ndelay"', 'fio: failed parsing sweep=ndelay=abc,1'],
    ],
    [['--name=t', '--time_based'], ['fio: t: time_based needs a runtime (--runtime=<seconds>)']],
    [
      ['--name=t', '--queues', '0'],
      ['queues: min value out of range: 0 (1 min)', 'fio: failed parsing queues=0'],
    ],
    [['--name=t', '--ring-page-order=5'], ['ring-page-order: max value out of range: 5 (4 max)']],
    [['--name=t', '--plot=out.jpg'], ['fio: --plot out.jpg: the file name must end in .svg or .png']],
    [
      ['--name=t', '--plot=/nonexistent-dir/x.svg'],
      ['pvblk bench: --plot /nonexistent-dir/x.svg: /nonexistent-dir: no such directory'],
    ],
    [
      ['--name=t', '--plot=/proc/x.png'],
      ['pvblk bench: --plot /proc/x.png: cannot create a file in /proc ('],
    ],
    [['--name=t', '--sweep', 'colour=1,2'], ['fio: --sweep colour=1,2: cannot sweep "colour"']],
    [['--name=t', '--sweep', 'iodepth=1,0'], ['iodepth: min value out of range: 0 (1 min)']],
    [['--name=t', '--disk', 'nope=1'], ['fio: --disk: unknown disk parameter "nope"']],
    [
      ['--name=t', '--rw=write', '--verify=crc32c', '--numjobs=2'],
      ["fio: t: verify with numjobs=2 on overlapping regions: the writers overwrite each other's blocks"],
    ],
    [['--name=t', '--filename=/dev/xvdb'], ["fio: /dev/xvdb: the bench's guests have one disk, /dev/xvda"]],
    [['--rw=read'], ['No job(s) defined']],
    [
      ['--name=t', '--time_based', '--runtime=2', '--baseline-slices=4'],
      ["fio: --baseline-slices=4 needs --baseline (it interleaves pvblk's run with the relay's)"],
    ],
    [
      ['--name=t', '--size=64k', '--baseline', '--baseline-slices=2'],
      ['fio: --baseline-slices=2 needs --time_based and --runtime (slices are cut from the runtime)'],
    ],
    [
      ['--name=t', '--time_based', '--runtime=1', '--baseline', '--baseline-slices=10'],
      ['fio: --baseline-slices=10: runtime=1000ms gives slices of 100ms (200ms min)'],
    ],
    [
      ['--name=t', '--time_based', '--runtime=2', '--ramp_time=1', '--baseline', '--baseline-slices=2'],
      ['fio: --baseline-slices=2 cannot be used with ramp_time (each slice would ramp again)'],
    ],
    [
      ['--name=t', '--time_based', '--runtime=1', '--baseline', '--baseline-slices=0'],
      ['baseline-slices: min value out of range: 0 (1 min)'],
    ],
    [
      ['--name=t', '--time_based', '--runtime=100', '--baseline', '--baseline-slices=101'],
      ['baseline-slices: max value out of range: 101 (100 max)'],
    ],
    [
      ['--name=t', '--time_based', '--runtime=2', '--baseline', '--baseline-slices=2', '--write_bw_log=b'],
      [
        'fio: --baseline-slices=2 cannot be used with write_lat_log, write_bw_log, write_iops_log or write_hist_log (each slice is a run of its own, whose log would start again at 0)',
      ],
    ],
    [['--name=t', '--write_lat_log='], ['fio: option write_lat_log requires an argument']],
    [
      ['--name=t', '--output=/nonexistent/dir/out'],
      ['fio: output file open error: No such file or directory'],
    ],
    [['/nonexistent/job.fio'], ["fio: unable to open '/nonexistent/job.fio' job file"]],
  ];

  for (const [args, lines] of cases) {
    it(`refuses ${args.join(' ')} with status 1 and starts nothing`, async ({ expect }) => {
      const r = await pvblk(['bench', ...args], { env: { TMPDIR: tmp.path }, timeoutMs: 30_000 });
      expect(r.code).toBe(1);
      for (const l of lines) expect(r.stderr).toContain(l);
      // a bad choice's table of valid values goes to stdout, as fio's show_option_values() says it
      if (args.includes('--rw=trimread'))
        expect(r.stdout).toMatch(/^ {8}valid values: read {7}Sequential read\n/);
      else expect(r.stdout).toBe('');
      // a stack would have made its temporary directory here
      expect((await readdir(tmp.path)).filter((f) => f.startsWith('pvblk-bench-'))).toEqual([]);
    });
  }

  it('prints its usage with --help', async ({ expect }) => {
    const r = await pvblk(['bench', '--help'], { env: { TMPDIR: tmp.path } });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: pvblk bench --name=<job>/);
    expect(r.stdout).toContain('--baseline');
  });
});

interface SliceSide {
  start_ms: number;
  end_ms: number;
  ios: number;
  runtime_ms: number;
  iops: number;
}

interface FioJson {
  'fio version': string;
  jobs: Array<{
    jobname: string;
    error: number;
    job_runtime: number;
    'job options': Record<string, string>;
    write: {
      iops: number;
      bw_bytes: number;
      total_ios: number;
      slat_ns: { N: number };
      clat_ns: { N: number; percentile: Record<string, number> };
      lat_ns: { N: number; min: number; max: number; mean: number };
    };
    pvblk: {
      relay?: {
        rtt_ns: Record<string, number>;
        ratio: { iops: number; clat: Record<string, number>; lat: Record<string, number> };
      };
      ring_occupancy: { max: number };
    };
  }>;
  disk_util: Array<{ name: string; write_ios: number }>;
  pvblk: {
    guests: Array<{
      devices: Array<{ requests: number; completions: number; upcalls: number; grants: number }>;
      blkback: Record<string, number>;
      broker: Record<string, number>;
      per_request: Record<string, number>;
    }>;
    stages: {
      requests: number;
      clocks: Array<{ name: string; uncertaintyUs: number }>;
      stages_ns: Array<{ name: string }>;
    };
    memory: Array<{ name: string; samples: number; maxBytes: number } & Cpu>;
    dom0_broker: Record<string, number>;
    relay: Record<string, { ios: number; runtimeMs: number; rtt: { n: number } }> | null;
    relay_error: string | null;
    slices: Array<{ pvblk: SliceSide; relay: SliceSide; ratio: number }> | null;
    relay_cpu: Array<{ name: string } & Cpu>;
    cpu_per_io_us: { pvblk: CpuPerIo | null; relay: CpuPerIo | null };
    machine: { pvblk: Machine | null; relay: Machine | null };
    tcp_congestion_control: string | null;
    tcp: { pvblk: Record<string, number> | null; relay: Record<string, number> | null };
  };
}

interface Machine {
  cpu_seconds: number;
  busy_pct: number;
  steal_pct: number;
}

/** The machine's CPU over a side's measured time: some of it, in shares that add up to at most 100. */
function expectMachine(m: Machine | null): void {
  expect(m).not.toBeNull();
  expect(m!.cpu_seconds).toBeGreaterThan(0);
  expect(m!.busy_pct).toBeGreaterThan(0);
  expect(m!.steal_pct).toBeGreaterThanOrEqual(0);
  expect(m!.busy_pct + m!.steal_pct).toBeLessThanOrEqual(100);
}

interface Cpu {
  cpuSeconds: number | null;
  cpuUserSeconds: number | null;
  cpuSystemSeconds: number | null;
}
interface CpuPerIo {
  us: number;
  userUs: number;
  systemUs: number;
}

/** A process's CPU was read, and its total is its user and kernel time. */
function expectCpuSplit(c: Cpu): void {
  expect(c.cpuUserSeconds).toBeGreaterThanOrEqual(0);
  expect(c.cpuSystemSeconds).toBeGreaterThanOrEqual(0);
  expect(c.cpuSeconds).toBeCloseTo(c.cpuUserSeconds! + c.cpuSystemSeconds!, 9);
}

/** The pids (or null) of a bench's relay processes: its router, server and client. */
function relayOf(bench: number): Array<number | null> {
  return ['relay', 'server', 'client'].map((r) => childWith(bench, `relay-role=${r}`));
}

/** The pids (or null) of a bench's stack: its hypervisor, host and guest. */
function stackOf(bench: number): Array<number | null> {
  return ['hypervisor', 'host', 'domu'].map((t) => childWith(bench, `pvblk.mjs ${t}`));
}

/** The pid of a child of `parent` whose command line (arguments joined by spaces) holds `text`, or null. */
function childWith(parent: number, text: string): number | null {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
      if (ppid === parent && argv.includes(text)) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

describe('pvblk bench: a run', () => {
  const tmp = tempDir('pvblk-bench-run-');
  afterAll(() => tmp.cleanup());

  /**
   * A time-based 4 KiB randwrite bench for `runtime` seconds that `attack` kills a process of; the
   * bench and its stack are stopped if the test fails before the bench has exited.
   */
  async function killedRun(
    runtime: number,
    extra: string[],
    attack: (b: Running, bench: number) => Promise<void>,
  ): Promise<void> {
    const b = startPvblk(
      [
        'bench',
        '--name=k',
        '--rw=randwrite',
        '--bs=4k',
        '--direct=1',
        '--time_based',
        `--runtime=${runtime}`,
        // after QUICK: a test's own --warmup (or --disk) is the one taken
        ...QUICK,
        ...extra,
      ],
      { env: { TMPDIR: tmp.path } },
    );
    try {
      await attack(b, b.proc.pid!);
    } finally {
      if (b.proc.exitCode === null && b.proc.signalCode === null) b.proc.kill('SIGTERM');
    }
  }

  /**
   * Kills the relay's server once its client runs: the bench's own figures stand (status 0), the
   * baseline is reported failed, and the relay and its client are stopped, not left waiting.
   */
  async function killRelayServer(b: Running, bench: number): Promise<void> {
    await waitUntil(() => childWith(bench, 'relay-role=client') !== null, 60_000, 'the relay client runs');
    const server = childWith(bench, 'relay-role=server')!;
    const others = ['relay-role=relay', 'relay-role=client'].map((t) => childWith(bench, t));
    expect(others.every((pid) => pid !== null)).toBe(true);
    process.kill(server, 'SIGKILL');
    const exit = await b.exited;
    expect(exit.code).toBe(0);
    expect(b.out).toContain(
      'relay baseline: failed (relay-server was killed by SIGKILL (status 137) during the run)',
    );
    for (const pid of others) expect(processGone(pid!)).toBe(true);
  }

  it('reports a relay server killed during the baseline, and does not wait for it', async () => {
    await killedRun(3, ['--baseline'], async (b, bench) => {
      // the clients start once the server is ready: then the baseline is running
      await killRelayServer(b, bench);
    });
  });

  it('with slices, a relay server killed during the run: pvblk runs every slice, the relay is stopped', async () => {
    await killedRun(4, ['--baseline', '--baseline-slices=4'], async (b, bench) => {
      // with slices the relay is up, warm, before pvblk's first slice
      await killRelayServer(b, bench);
      // all four of pvblk's slices ran: its runtime is the whole run's
      const run = b.out.map((l) => /WRITE: .* run=(\d+)-(\d+)msec/.exec(l)).find((m) => m);
      expect(run).toBeTruthy();
      expect(Number(run![1])).toBeGreaterThanOrEqual(3900);
    });
  });

  it('with slices, Ctrl-C stops the relay at once, and a second one the stack wherever the run is', async () => {
    await killedRun(4, ['--baseline', '--baseline-slices=4'], async (b, bench) => {
      await waitUntil(() => childWith(bench, 'relay-role=client') !== null, 60_000, 'the relay client runs');
      const relay = relayOf(bench);
      const stack = stackOf(bench);
      expect([...relay, ...stack].every((pid) => pid !== null)).toBe(true);
      // a guest that cannot answer: the run the first signal cuts short cannot end and report
      process.kill(stack[2]!, 'SIGSTOP');
      // before pvblk's first slice the signal stops everything at once; in it, the relay goes and the
      // bench waits for the guest's report, which the stopped guest cannot give
      process.kill(bench, 'SIGINT');
      await waitUntil(() => relay.every((pid) => processGone(pid!)), 20_000, "the relay's processes end");
      // either way the stopped guest holds the bench for seconds yet (SIGKILL comes after a grace)
      if (b.proc.exitCode === null) process.kill(bench, 'SIGINT');
      const exit = await b.exited;
      expect(exit.code).toBe(130);
      for (const pid of stack) expect(processGone(pid!)).toBe(true);
      expect(b.out.some((l) => l.includes('Run status group') || l.includes('baseline slices'))).toBe(false);
    });
  });

  it('`pvblk bench … | head -1`: stops everything and exits 141, as SIGPIPE would, with no stack trace', async () => {
    await killedRun(60, ['--eta=always'], async (b, bench) => {
      // the ETA line comes once a second: a write after the reader has gone
      await b.line((l) => l.startsWith('Jobs: 1 '));
      const stack = stackOf(bench);
      expect(stack.every((pid) => pid !== null)).toBe(true);
      b.proc.stdout!.destroy();
      const exit = await b.exited;
      expect(exit.code).toBe(141);
      expect(b.out.some((l) => /Error| {4}at /.test(l))).toBe(false);
      for (const pid of stack) expect(processGone(pid!)).toBe(true);
    });
  });

  it('SIGHUP (its terminal closed) stops everything without a report: 129, nothing left', async () => {
    await killedRun(60, ['--eta=always'], async (b, bench) => {
      await b.line((l) => l.startsWith('Jobs: 1 '));
      const stack = stackOf(bench);
      expect(stack.every((pid) => pid !== null)).toBe(true);
      process.kill(bench, 'SIGHUP');
      const exit = await b.exited;
      expect(exit.code).toBe(129);
      expect(b.out.some((l) => l.includes('Run status group'))).toBe(false);
      for (const pid of stack) expect(processGone(pid!)).toBe(true);
    });
  });

  it("says what fio says as it reads its jobs once, in fio's order, before the run: not again for each guest", async () => {
    // stdout and stderr into one file: the order they were written in
    const file = join(tmp.path, 'said.txt');
    const fh = await open(file, 'w');
    try {
      const proc = spawn(
        process.execPath,
        [
          PVBLK,
          'bench',
          ...'--name=a --rw=randread --bs=4k,0 --blockalign=512 --size=64k --numjobs=2'.split(' '),
          ...'--name=b --bs=8k,0 --rw=randread --blockalign=512 --size=64k'.split(' '),
          '--guests=2',
          '--eta=never',
          ...QUICK,
        ],
        { env: { ...process.env, TMPDIR: tmp.path }, stdio: ['ignore', fh.fd, fh.fd] },
      );
      expect(await new Promise((res) => proc.on('close', res))).toBe(0);
    } finally {
      await fh.close();
    }
    const lines = (await readFile(file, 'utf8')).split('\n');
    const start = lines.findIndex((l) => l.startsWith('Starting '));
    const job = (name: string, bs: string) =>
      `${name}: (g=0): rw=randread, bs=(R) ${bs}, (W) 4096B-4096B, (T) 4096B-4096B, ioengine=libaio, iodepth=1`;
    // fio 3.33's order: a job's parse warnings, its fixup message, its line, its clone's fixup, `...`
    expect(lines.slice(0, start + 1)).toEqual([
      'bs: min value out of range: 0 (1 min)',
      'fio: Any use of blockalign= turns off randommap',
      job('a', '4096B-4096B'),
      '...',
      'bs: min value out of range: 0 (1 min)',
      'fio: Any use of blockalign= turns off randommap',
      job('b', '8192B-8192B'),
      'fio-3.36',
      'Starting 3 processes in each of 2 guests',
    ]);
    // the guests' fio said none of it: nothing of it after the run, from either guest
    expect(lines.slice(start).filter((l) => /min value out of range|blockalign=/.test(l))).toEqual([]);
    // and the run was whole: two clones of a in each guest
    expect(lines.filter((l) => /^a@guest[12]: \(groupid=0/.test(l))).toHaveLength(4);
  });

  it("says what the guests' fio say during the run as they say it, a whole line at a time, each guest's named", async () => {
    // nothing was ever written at 2 MiB: every block read fails its check, and the job goes on for
    // two minutes; a bench that kept the lines to the end would say none of them within the wait
    const b = startPvblk(
      [
        'bench',
        ...'--name=v --rw=read --bs=4k --size=64k --offset=2m --direct=1 --verify=crc32c --verify_only'.split(
          ' ',
        ),
        ...'--continue_on_error=verify --time_based --runtime=120 --guests=2 --eta=never'.split(' '),
        ...QUICK,
      ],
      { env: { TMPDIR: tmp.path } },
    );
    const failed = (guest: string) =>
      new RegExp(
        `^${guest}: verify: bad magic header 0, wanted acca at file /dev/xvda offset (\\d+), length 4096 \\(requested block: offset=\\1, length=4096\\)$`,
      );
    try {
      await b.line((l) => failed('guest1').test(l), 30_000);
      await b.line((l) => failed('guest2').test(l), 30_000);
      // still running: no report yet
      expect(b.proc.exitCode).toBeNull();
      expect(b.out.some((l) => l.includes('Run status group'))).toBe(false);
      process.kill(b.proc.pid!, 'SIGINT');
      expect((await b.exited).code).toBe(128);
    } finally {
      if (b.proc.exitCode === null && b.proc.signalCode === null) b.proc.kill('SIGTERM');
    }
    // every line the guests said came whole, under its guest's name: none cut into by the other's
    const said = b.out.filter((l) => l.includes('verify: '));
    expect(said.length).toBeGreaterThan(1);
    for (const l of said) expect(l).toMatch(failed('guest[12]'));
    // and the run was reported, each guest's job with its verify error
    expect(b.out.filter((l) => /^v@guest[12]: \(groupid=0, jobs=1\): err=84 /.test(l))).toHaveLength(2);
  });

  it('says each failed job on stdout, and exits with one more for each, as fio', async () => {
    // nothing was ever written at 2 MiB: every block fails its check
    const r = await pvblk(
      [
        'bench',
        '--rw=read',
        '--bs=4k',
        '--size=64k',
        '--direct=1',
        '--verify=crc32c',
        '--verify_only',
        '--offset=2m',
        '--name=a',
        '--name=b',
        ...QUICK,
      ],
      { env: { TMPDIR: tmp.path } },
    );
    expect(r.code).toBe(2);
    expect(
      r.stdout.split('\n').filter((l) => /^fio: pid=\d+, err=84\/file:io_u\.c:2213, /.test(l)),
    ).toHaveLength(2);
  });

  it("Ctrl-C in the measured run ends the jobs where they are and reports them, as fio's sig_int", async () => {
    await killedRun(60, ['--eta=always', '--iodepth=4'], async (b, bench) => {
      // the ETA line carries rates once the jobs have done I/O
      await b.line((l) => l.startsWith('Jobs: 1 ') && l.includes(' IOPS]'));
      const stack = stackOf(bench);
      expect(stack.every((pid) => pid !== null)).toBe(true);
      process.kill(bench, 'SIGINT');
      const exit = await b.exited;
      expect(exit.code).toBe(128); // fio's exit_value after a signal
      expect(b.out).toContain('fio: terminating on signal 2');
      const run = b.out.map((l) => /WRITE: .* io=.* run=(\d+)-(\d+)msec/.exec(l)).find((m) => m);
      expect(run, b.out.join('\n')).toBeTruthy();
      // what ran until the signal, well short of the minute asked for
      expect(Number(run![2])).toBeGreaterThan(0);
      expect(Number(run![2])).toBeLessThan(60_000);
      // the job's process is the guest's, where its fio ran (fio's job line names the job's process)
      expect(b.out.some((l) => l.startsWith(`k: (groupid=0, jobs=1): err= 0: pid=${stack[2]}: `))).toBe(true);
      const issued = b.out.map((l) => /issued rwts: total=0,(\d+),/.exec(l)).find((m) => m);
      expect(Number(issued![1])).toBeGreaterThan(0);
      expect(b.out).toContain(
        "stopped by SIGINT: pvblk's jobs ended where they were: the figures cover the run until the signal",
      );
      for (const pid of stack) expect(processGone(pid!)).toBe(true);
    });
  });

  it('Ctrl-C during the warm-up of the first point stops at once: nothing measured, nothing said', async () => {
    await killedRun(2, ['--warmup=20s'], async (b, bench) => {
      await b.line((l) => l.startsWith('Starting 1 process'));
      const guest = childWith(bench, 'pvblk.mjs domu');
      expect(guest).not.toBeNull();
      process.kill(bench, 'SIGINT');
      const exit = await b.exited;
      expect(exit.code).toBe(130);
      expect(b.out.some((l) => l.includes('terminating') || l.includes('Run status group'))).toBe(false);
      expect(processGone(guest!)).toBe(true);
    });
  });

  it("Ctrl-C while the relay baseline warms up reports pvblk's run without waiting for it", async () => {
    // the relay's clients warm up as long as pvblk's jobs did: 6 s, were the start not stopped. The
    // bench ends well inside that (≈ 0.3 s here), so a bench that waited for the warm-up fails the bound
    await killedRun(1, ['--baseline', '--warmup=6s'], async (b, bench) => {
      await waitUntil(() => childWith(bench, 'relay-role=client') !== null, 90_000, 'the relay client runs');
      const relay = relayOf(bench);
      const signalled = Date.now();
      process.kill(bench, 'SIGINT');
      const exit = await b.exited;
      expect(exit.code).toBe(128);
      expect(Date.now() - signalled).toBeLessThan(4_000);
      for (const pid of relay) if (pid !== null) expect(processGone(pid)).toBe(true);
      expect(b.out.some((l) => l.includes('Run status group'))).toBe(true);
      expect(b.out).toContain(
        "stopped by SIGINT: pvblk's run had ended: the figures cover all of it; the relay baseline was left out",
      );
    });
  });

  it('Ctrl-C between sweep points reports the points that ran, keeps the sweep JSON, draws no plot', async () => {
    const plot = join(tmp.path, 'cut-sweep.svg');
    const before = new Set(benchDirs());
    await killedRun(
      2,
      ['--sweep', 'queues=1,2', '--output-format=json,normal', '--plot', plot],
      async (b, bench) => {
        await b.line((l) => l.startsWith('Starting 1 process'));
        const first = childWith(bench, 'pvblk.mjs hypervisor')!;
        // the first point's stack stops once its run is over: the bench is between points
        await waitUntil(() => processGone(first), 90_000, "the first point's stack stops");
        process.kill(bench, 'SIGINT');
        const exit = await b.exited;
        expect(exit.code).toBe(128);
        expect(b.out).toContain('fio: terminating on signal 2');
        const start = b.out.indexOf('{');
        const end = b.out.indexOf('}', start);
        const doc = JSON.parse(b.out.slice(start, end + 1).join('\n')) as {
          sweep: Array<{ pvblk: { stopped: unknown } }>;
          stopped_by: string;
        };
        expect(doc.sweep).toHaveLength(1);
        expect(doc.stopped_by).toBe('SIGINT');
        expect(doc.sweep[0].pvblk.stopped).toBeNull(); // its run had ended whole
        expect(b.out.some((l) => l.includes('=== queues=2'))).toBe(false);
        expect(b.out).toContain(`pvblk bench: --plot ${plot}: not drawn, the run was stopped by SIGINT`);
        expect(existsSync(plot)).toBe(false);
        // every stack it started is gone with its directory, the second one's too if it had begun
        expect(processGone(first)).toBe(true);
        expect(benchDirs().filter((d) => !before.has(d))).toEqual([]);
      },
    );
  });

  it("gives the relay's processes the allowlisted environment pvblk's get, and none of its secrets", async () => {
    // a setting made for a measurement must reach both sides of a ratio
    const tunables = 'glibc.malloc.trim_threshold=67108864';
    const nodeOptions = '--max-old-space-size=1024';
    const token = 'relay-must-not-see-this-token';
    const b = startPvblk(
      [
        'bench',
        '--name=e',
        '--rw=randwrite',
        '--bs=4k',
        '--direct=1',
        '--time_based',
        '--runtime=2',
        '--baseline',
        ...QUICK,
      ],
      {
        env: {
          TMPDIR: tmp.path,
          GLIBC_TUNABLES: tunables,
          NODE_OPTIONS: nodeOptions,
          PVBLK_TOOLSTACK_TOKEN: token,
        },
      },
    );
    try {
      const bench = b.proc.pid!;
      await waitUntil(() => childWith(bench, 'pvblk.mjs host') !== null, 60_000, "pvblk's host runs");
      const host = environOf(childWith(bench, 'pvblk.mjs host')!);
      expect(host.GLIBC_TUNABLES).toBe(tunables);
      expect(host.NODE_OPTIONS).toBe(nodeOptions);
      await waitUntil(() => childWith(bench, 'relay-role=client') !== null, 60_000, 'the relay client runs');
      for (const role of ['relay', 'server', 'client']) {
        const pid = childWith(bench, `relay-role=${role}`);
        expect(pid, role).not.toBeNull();
        const env = environOf(pid!);
        expect(env.GLIBC_TUNABLES, role).toBe(tunables);
        expect(env.NODE_OPTIONS, role).toBe(nodeOptions);
        expect(env.PATH, role).toBe(process.env.PATH);
        expect(
          Object.values(env).some((v) => v.includes(token)),
          role,
        ).toBe(false);
      }
      const exit = await b.exited;
      expect(exit.code).toBe(0);
      expect(b.out.some((l) => l.includes('pvblk/relay'))).toBe(true);
    } finally {
      if (b.proc.exitCode === null && b.proc.signalCode === null) b.proc.kill('SIGTERM');
    }
  });

  /** The benches' directories under this file's TMPDIR. */
  const benchDirs = () => readdirSync(tmp.path).filter((f) => f.startsWith('pvblk-bench-'));

  for (const signal of ['SIGINT', 'SIGKILL'] as const) {
    it(`leaves no relay process behind when the bench gets ${signal} during the baseline`, async () => {
      const before = new Set(benchDirs());
      // the relay runs as long as pvblk did: 3 s in which to find its client and signal the bench
      await killedRun(3, ['--baseline'], async (b, bench) => {
        await waitUntil(
          () => childWith(bench, 'relay-role=client') !== null,
          60_000,
          'the relay client runs',
        );
        const relay = relayOf(bench);
        expect(relay.every((pid) => pid !== null)).toBe(true);
        process.kill(bench, signal);
        const exit = await b.exited;
        if (signal === 'SIGINT') {
          // Ctrl-C: the bench stops them itself, and reports pvblk's run, which had ended, without them
          expect(exit.code).toBe(128);
          for (const pid of relay) expect(processGone(pid!)).toBe(true);
          expect(b.out.some((l) => l.includes('Run status group'))).toBe(true);
          expect(b.out.some((l) => l.includes('pvblk/relay') || l.includes('relay baseline:'))).toBe(false);
          expect(b.out).toContain(
            "stopped by SIGINT: pvblk's run had ended: the figures cover all of it; the relay baseline was left out",
          );
        } else {
          // nobody left to stop them: they see the bench's IPC channel close and end on their own
          await waitUntil(() => relay.every((pid) => processGone(pid!)), 20_000, "the relay's processes end");
          // nor to remove the bench's directory: it names the bench's pid, and the next bench removes it
          const left = benchDirs().filter((d) => !before.has(d));
          expect(left).toHaveLength(1);
          expect(readFileSync(join(tmp.path, left[0], 'bench.pid'), 'utf8')).toBe(`${bench}\n`);
          const next = await pvblk(['bench', '--name=n', '--rw=write', '--bs=4k', '--size=64k', ...QUICK], {
            env: { TMPDIR: tmp.path },
            timeoutMs: 120_000,
          });
          expect(next.code).toBe(0);
          expect(existsSync(join(tmp.path, left[0]))).toBe(false);
        }
      });
    });
  }

  it('Ctrl-C while the stack is still starting stops what has started and leaves no directory', async () => {
    // a bench killed outright by an earlier test of this file leaves its directory: only new ones count
    const dirs = benchDirs;
    const before = new Set(dirs());
    await killedRun(6, [], async (b, bench) => {
      await waitUntil(
        () => childWith(bench, 'pvblk.mjs hypervisor') !== null,
        60_000,
        'the hypervisor starts',
      );
      const hv = childWith(bench, 'pvblk.mjs hypervisor')!;
      process.kill(bench, 'SIGINT');
      const exit = await b.exited;
      expect(exit.code).toBe(130);
      expect(processGone(hv)).toBe(true);
      expect(dirs().filter((d) => !before.has(d))).toEqual([]);
    });
  });

  it("fails a run whose guest shut down under its fio: a cut run is not the bench's own signal's", async () => {
    await killedRun(60, ['--eta=always'], async (b, bench) => {
      await b.line((l) => l.startsWith('Jobs: 1 ') && l.includes(' IOPS]'));
      const guest = childWith(bench, 'pvblk.mjs domu')!;
      // SIGTERM: the guest shuts down in order, interrupting its commands on the way
      process.kill(guest, 'SIGTERM');
      const exit = await b.exited;
      expect(exit.code).toBe(1);
      expect(b.out.some((l) => l.includes('stopped by'))).toBe(false);
    });
  });

  it('ends the run with an error when a process of its stack is killed, and stops the rest', async () => {
    await killedRun(60, [], async (b, bench) => {
      await b.line((l) => l.startsWith('Starting 1 process'));
      const [hv, host, guest] = stackOf(bench);
      expect([hv, host, guest].every((pid) => pid !== null)).toBe(true);
      process.kill(host!, 'SIGKILL');
      // long before the 60 s the job asked for: the guest's fio would wait for its disk forever
      const exit = await b.exited;
      expect(exit.code).toBe(1);
      expect(b.out).toContain('pvblk bench: host was killed by SIGKILL (status 137) during the run');
      expect(processGone(hv!) && processGone(guest!)).toBe(true);
    });
  });

  it("writes fio's JSON with pvblk's counters, the relay's ratios and the stage breakdown", async () => {
    const svg = join(tmp.path, 'cdf.svg');
    const r = await pvblk(
      [
        'bench',
        '--name=rw4',
        '--rw=randwrite',
        '--bs=4k',
        '--iodepth=4',
        '--size=256k',
        '--direct=1',
        '--output-format=json',
        '--baseline',
        '--trace',
        `--plot=${svg}`,
        ...QUICK,
      ],
      { env: { TMPDIR: tmp.path }, timeoutMs: 120_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as FioJson;
    expect(j['fio version']).toMatch(/^fio-3\./);
    const w = j.jobs[0].write;
    expect(j.jobs[0].jobname).toBe('rw4');
    expect(j.jobs[0].error).toBe(0);
    expect(w.total_ios).toBe(64);
    expect(w.iops).toBeGreaterThan(0);
    expect(w.bw_bytes).toBeGreaterThan(0);
    expect(w.clat_ns.N).toBe(64);
    expect(w.lat_ns.N).toBe(64);
    expect(w.slat_ns.N).toBe(64);
    expect(Object.keys(w.clat_ns.percentile)).toEqual(
      [
        '1',
        '5',
        '10',
        '20',
        '30',
        '40',
        '50',
        '60',
        '70',
        '80',
        '90',
        '95',
        '99',
        '99.5',
        '99.9',
        '99.95',
        '99.99',
      ].map((p) => Number(p).toFixed(6)),
    );
    expect(w.clat_ns.percentile['50.000000']).toBeGreaterThan(0);
    expect(j.disk_util[0]).toMatchObject({ name: 'xvda' });
    expect(j.disk_util[0].write_ios).toBeGreaterThanOrEqual(64);
    // the relay ran in the same run: every figure has its ratio
    const rel = j.jobs[0].pvblk.relay!;
    expect(Number.isFinite(rel.ratio.iops)).toBe(true);
    expect(Number.isFinite(rel.ratio.clat.p50)).toBe(true);
    // lat (issue → completion) is slat + clat for every I/O, so each of its order statistics is at
    // least clat's: over the same round trips, no lat ratio is below its clat ratio
    expect(Object.keys(rel.ratio.lat)).toEqual(Object.keys(rel.ratio.clat));
    for (const k of Object.keys(rel.ratio.clat).filter((k) => k !== 'stdev'))
      expect(rel.ratio.lat[k], k).toBeGreaterThanOrEqual(rel.ratio.clat[k]);
    // and it is the job's own lat set against the round trip (min and mean are exact in both)
    expect(rel.ratio.lat.min * rel.rtt_ns.min).toBeCloseTo(w.lat_ns.min, 3);
    expect(rel.ratio.lat.avg * rel.rtt_ns.avg).toBeCloseTo(w.lat_ns.mean, 3);
    expect(rel.ratio.lat.avg).toBeGreaterThan(rel.ratio.clat.avg); // every submission takes some time
    expect(j.jobs[0].pvblk.ring_occupancy.max).toBeLessThanOrEqual(4);
    // host-side counters
    const g = j.pvblk.guests[0];
    expect(g.devices[0].requests).toBeGreaterThanOrEqual(64);
    expect(g.blkback.wr_req).toBeGreaterThanOrEqual(64);
    expect(g.broker.framesIn).toBeGreaterThan(0);
    expect(g.per_request.requests).toBe(g.devices[0].requests);
    // stages: joined requests, clocks measured, 11 stages and the total
    expect(j.pvblk.stages.requests).toBeGreaterThan(0);
    expect(j.pvblk.stages.clocks.map((c) => c.name).sort()).toEqual(['guest', 'host']);
    expect(j.pvblk.stages.stages_ns).toHaveLength(12);
    // every process's memory was sampled
    expect(j.pvblk.memory.map((m) => m.name).sort()).toEqual(['guest', 'host', 'hypervisor']);
    for (const m of j.pvblk.memory) expect(m.samples).toBeGreaterThan(0);
    // CPU per I/O of both sides, in user mode and in the kernel: the relay's three processes were
    // measured over its own run
    for (const m of j.pvblk.memory) expectCpuSplit(m);
    expect(j.pvblk.relay_cpu.map((c) => c.name)).toEqual(['relay', 'relay-server', 'relay-client (guest)']);
    for (const c of j.pvblk.relay_cpu) expectCpuSplit(c);
    for (const side of [j.pvblk.cpu_per_io_us.pvblk, j.pvblk.cpu_per_io_us.relay]) {
      expect(side!.us).toBeGreaterThan(0);
      expect(side!.us).toBeCloseTo(side!.userUs + side!.systemUs, 6);
    }
    // and the machine's CPU while each side ran: busy, and stolen by the hypervisor under this VM
    expectMachine(j.pvblk.machine.pvblk);
    expectMachine(j.pvblk.machine.relay);
    // the kernel's TCP congestion control under both sides' connections, as this namespace has it
    expect(j.pvblk.tcp_congestion_control).toBe(tcpCongestionControl());
    // and what TCP did while each side ran: both moved their bytes over loopback TCP
    for (const side of [j.pvblk.tcp.pvblk, j.pvblk.tcp.relay]) {
      expect(Object.keys(side!).sort()).toEqual(
        ['dsack_recv', 'loss_probes', 'ofo_queue', 'out_segs', 'retrans_segs', 'sack_recovery'].sort(),
      );
      expect(side!.out_segs).toBeGreaterThan(0);
      for (const v of Object.values(side!)) expect(Number.isSafeInteger(v) && v >= 0).toBe(true);
    }
    const text = await readFile(svg, 'utf8');
    expect(text.startsWith('<svg')).toBe(true);
    expect(text.trimEnd().endsWith('</svg>')).toBe(true);
    expect(text).toContain('Latency CDF');
    // the relay's round trip beside both of pvblk's latencies
    for (const series of [
      'pvblk clat (submitted → completion)',
      'pvblk lat (issue → completion)',
      'relay round trip',
    ])
      expect(text).toContain(series);
    expect(text).toContain('Stage breakdown');
  });

  it('--baseline-slices runs pvblk and the relay in turn, and adds the slices up into the run', async () => {
    const r = await pvblk(
      [
        'bench',
        '--name=sl',
        '--rw=randwrite',
        '--bs=4k',
        '--iodepth=2',
        '--direct=1',
        '--time_based',
        '--runtime=1200ms',
        '--output-format=json',
        '--baseline',
        '--baseline-slices=3',
        ...QUICK,
      ],
      { env: { TMPDIR: tmp.path }, timeoutMs: 120_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as FioJson;
    expect(j.pvblk.relay_error).toBeNull();
    const sl = j.pvblk.slices!;
    expect(sl).toHaveLength(3);
    // in turn, on the bench's clock, and every other pair the other way round: no two of the six
    // measured stretches overlap
    const spans = sl
      .flatMap((x) => [x.pvblk, x.relay])
      .map((x) => [x.start_ms, x.end_ms])
      .sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i][0]).toBeGreaterThanOrEqual(spans[i - 1][1]);
    expect(sl.map((x) => (x.pvblk.start_ms < x.relay.start_ms ? 'pvblk' : 'relay'))).toEqual([
      'pvblk',
      'relay',
      'pvblk',
    ]);
    for (const x of sl) {
      for (const side of [x.pvblk, x.relay]) {
        expect(side.ios).toBeGreaterThan(0);
        // each side ran for its slice of the runtime (fio stops at it; the relay client too)
        expect(side.runtime_ms).toBeGreaterThanOrEqual(350);
        expect(side.runtime_ms).toBeLessThan(side.end_ms - side.start_ms + 1);
      }
      expect(x.ratio).toBeCloseTo(x.pvblk.iops / x.relay.iops, 6);
    }
    // the run's figures are the slices added up
    const w = j.jobs[0].write;
    expect(w.total_ios).toBe(sl.reduce((a, x) => a + x.pvblk.ios, 0));
    expect(w.clat_ns.N).toBe(w.total_ios);
    const rel = j.pvblk.relay!.guest;
    expect(rel.ios).toBe(sl.reduce((a, x) => a + x.relay.ios, 0));
    expect(rel.rtt.n).toBe(rel.ios);
    expect(rel.runtimeMs).toBeCloseTo(
      sl.reduce((a, x) => a + x.relay.runtime_ms, 0),
      3,
    );
    expect(Number.isFinite(j.jobs[0].pvblk.relay!.ratio.iops)).toBe(true);
    // the job's run time is its slices' added up: each slice's is never below its I/O's runtime, and
    // above it only by the moments between the last I/O and the job's end (a few ms on a loaded
    // machine: CI once saw 5 over 3 slices); one slice's alone would be a third of the sum
    const ioMs = sl.reduce((a, x) => a + x.pvblk.runtime_ms, 0);
    expect(j.jobs[0].job_runtime).toBeGreaterThanOrEqual(ioMs);
    expect(j.jobs[0].job_runtime - ioMs).toBeLessThan(50 * sl.length);
    // the options as given: the whole run's runtime, not a slice's, and nothing the bench added
    // for its guests (their percentile list, the slice's seed)
    expect(j.jobs[0]['job options'].runtime).toBe('1200ms');
    expect(Object.keys(j.jobs[0]['job options'])).not.toContain('percentile_list');
    expect(Object.keys(j.jobs[0]['job options'])).not.toContain('randseed');
    expect(j.pvblk.relay_cpu.map((c) => c.name)).toEqual(['relay', 'relay-server', 'relay-client (guest)']);
    for (const c of [...j.pvblk.relay_cpu, ...j.pvblk.memory]) expectCpuSplit(c);
    // each side's share of the machine over its own slices, and its TCP segments over them
    expectMachine(j.pvblk.machine.pvblk);
    expectMachine(j.pvblk.machine.relay);
    expect(j.pvblk.tcp.pvblk!.out_segs).toBeGreaterThan(0);
    expect(j.pvblk.tcp.relay!.out_segs).toBeGreaterThan(0);
  });

  /** A direct-I/O job of QUICK's stack, its JSON output. */
  const countedRun = async (job: string[]): Promise<FioJson> => {
    const r = await pvblk(['bench', ...job, '--direct=1', '--output-format=json', ...QUICK], {
      env: { TMPDIR: tmp.path },
      timeoutMs: 120_000,
    });
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as FioJson;
  };

  it('counts: a QD1 write run of N ios has N completions and at most one notification per request each way', async () => {
    const j = await countedRun(['--name=c', '--rw=write', '--bs=4k', '--iodepth=1', '--size=128k']);
    const n = 32;
    expect(j.jobs[0].write.total_ios).toBe(n);
    const g = j.pvblk.guests[0];
    const d = g.devices[0];
    // the command also sends the flush of its open (O_DIRECT writes back the cache first): at most one more
    expect(d.requests - n).toBeGreaterThanOrEqual(0);
    expect(d.requests - n).toBeLessThanOrEqual(1);
    expect(d.completions).toBe(d.requests);
    expect(g.blkback.wr_req).toBe(n);
    expect(g.blkback.notify_received).toBeLessThanOrEqual(d.requests);
    expect(d.upcalls).toBeLessThanOrEqual(d.requests);
    expect(g.blkback.notify_received).toBeGreaterThan(0);
    expect(d.upcalls).toBeGreaterThan(0);
    // a request's frame leaves at its doorbell (the push's NOTIFY_IF); EOI rides with the next frame
    // instead of costing one: about one frame per request each way. An EOI goes alone when no
    // doorbell follows in the turn of the loop it waits for, which is timing: 33 requests took 34-37
    // frames from the guest in twelve runs (the bound here was + 2 until a CI run met 36)
    expect(g.broker.framesIn).toBeLessThanOrEqual(d.requests + 4);
    expect(j.pvblk.dom0_broker.framesIn).toBeLessThanOrEqual(d.requests + 4);
  });

  it('QD32: under 0.1 notifications per request each way, and a final check costs no frame of its own', async () => {
    const j = await countedRun(['--name=q', '--rw=randwrite', '--bs=4k', '--iodepth=32', '--size=4m']);
    expect(j.jobs[0].write.total_ios).toBe(1024);
    const pr = j.pvblk.guests[0].per_request;
    expect(pr.notificationsToBackend).toBeLessThan(0.1);
    expect(pr.notificationsToGuest).toBeLessThan(0.1);
    // The broker forwards each frame of one side in a frame of its own to the other, and sends
    // nothing else in steady state: a consumer that goes idle arms a wake in its own copy of the ring
    // (ring-sync.ts). When the broker decided that final check (wire version 2's FINAL), the event it
    // raised on the consumer's own port went out in a frame of its own about one push in two:
    // 1.35-1.5 frames to Dom0 per frame from the guest at this depth. (The broker cuts what it
    // forwards into frames below BROKER_FRAME_TARGET; a turn's output is one flush, however cut.)
    expect(pr.flushesBrokerToDom0).toBeLessThanOrEqual(pr.framesGuestToBroker * 1.1);
    expect(pr.flushesBrokerToGuest).toBeLessThanOrEqual(pr.framesDom0ToBroker * 1.1);
  });

  it('round trips through the broker: with persistent grants only for the first use of a grant; without, two a request on each side', async () => {
    const job = ['--name=rt', '--rw=write', '--bs=4k', '--iodepth=1', '--size=128k'];
    const kept = await countedRun(job);
    const g = kept.pvblk.guests[0];
    const d0 = kept.pvblk.dom0_broker;
    expect(kept.jobs[0].write.total_ios).toBe(32);
    // one write at a time needs one persistent grant: made (guest) and mapped (Dom0) by the first
    // write of the run, reused by the other 31 with no hypercall at all
    expect([g.devices[0].grants, g.blkback.persistent_grants, g.blkback.grant_maps]).toEqual([1, 1, 1]);
    expect(g.blkback.persistent_hits).toBe(31);
    expect([g.broker.calls, d0.calls]).toEqual([1, 1]);
    expect([g.broker.fences, d0.fences]).toEqual([0, 0]);
    expect(g.per_request.callsGuest * g.per_request.requests).toBeCloseTo(1, 6);
    const per = await countedRun([...job, '--no-persistent']);
    const h = per.pvblk.guests[0];
    const e0 = per.pvblk.dom0_broker;
    // the guest grants each write's page and ends the grant; Dom0 maps it and unmaps it: four hypercalls
    // the broker answers, none of them a fence
    expect(h.devices[0].grants).toBe(32);
    expect(h.broker.calls).toBe(2 * h.devices[0].grants);
    expect(h.blkback.grant_maps + h.blkback.grant_unmaps).toBe(64);
    expect(e0.calls).toBe(h.blkback.grant_maps + h.blkback.grant_unmaps);
    expect([h.broker.fences, e0.fences]).toEqual([0, 0]);
    const r = h.per_request.requests;
    expect(h.per_request.callsGuest * r).toBeCloseTo(64, 6);
    expect(h.per_request.callsBackend * r).toBeCloseTo(64, 6);
  });

  it('--pi sends a small write inline; with --no-pi-inline its descriptors and tuples take pages', async () => {
    const run = async (extra: string[]) => {
      const r = await pvblk(
        [
          'bench',
          '--name=pi',
          '--rw=randwrite',
          '--bs=4k',
          '--iodepth=1',
          '--size=256k',
          '--direct=1',
          '--output-format=json',
          '--pi',
          ...extra,
          ...QUICK,
        ],
        { env: { TMPDIR: tmp.path }, timeoutMs: 120_000 },
      );
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout) as FioJson & { pvblk: { stack: { piInline: boolean } } };
      expect(j.jobs[0].error).toBe(0);
      return j.pvblk;
    };
    const inline = await run([]);
    const paged = await run(['--no-pi-inline']);
    expect([inline.stack.piInline, paged.stack.piInline]).toEqual([true, false]);
    const [gi, gp] = [inline.guests[0], paged.guests[0]];
    // one write at a time reuses its grants: the data page alone, or with a PI and a descriptor page
    expect([gi.blkback.persistent_grants, gp.blkback.persistent_grants]).toEqual([1, 3]);
    // inline, the tuples ride in the 112-byte slot that is written anyway; paged, they and the
    // descriptors are two more page writes (64 + 16 bytes, 9 bytes of record header each): ≈ 98 bytes
    expect(gp.per_request.bytesGuestToBroker - gi.per_request.bytesGuestToBroker).toBeGreaterThan(64);
    expect(gi.blkback.pi_tuples).toBe(gp.blkback.pi_tuples);
  });

  it("brings the measured run's logs from every guest, not the warm-up's; a log the guest could not write is said", async () => {
    const dir = join(tmp.path, 'logs');
    await mkdir(dir);
    const r = await pvblk(
      [
        'bench',
        '--name=l',
        '--rw=randwrite',
        '--bs=4k',
        '--size=64k',
        '--direct=1',
        '--write_lat_log=l',
        '--per_job_logs=0',
        '--name=m',
        '--write_bw_log=/no/such/dir/m',
        '--guests=2',
        '--disk',
        'delay=0',
        '--warmup=300ms',
        '--output-format=terse',
        '--output=report.txt',
      ],
      { env: { TMPDIR: tmp.path }, timeoutMs: 120_000, cwd: dir },
    );
    expect(r.code).toBe(0);
    // --output: the report in the file, nothing on stdout
    expect(r.stdout).toBe('');
    const report = await readFile(join(dir, 'report.txt'), 'utf8');
    expect(report.split('\n').filter((l) => l.startsWith('3;fio-3.36;'))).toHaveLength(4);
    const logs = (await readdir(dir)).filter((f) => f !== 'report.txt');
    expect(logs.sort()).toEqual(
      ['clat', 'lat', 'slat'].flatMap((k) => [`l_${k}.log.guest1`, `l_${k}.log.guest2`]).sort(),
    );
    // per_job_logs=0 appends: a warm-up that logged would have added its own entries before these
    for (const f of logs) {
      const lines = (await readFile(join(dir, f), 'utf8')).split('\n');
      expect(lines.filter((l) => /^\d+, \d+, 1, 4096, 0$/.test(l))).toHaveLength(16);
      expect(lines).toHaveLength(17);
    }
    for (const g of ['guest1', 'guest2'])
      expect(r.stderr).toContain(`pvblk bench: ${g} wrote no /no/such/dir/m_bw.2.log`);
  });

  it("runs a job file from the host, ${VAR} from the bench's environment; a stonewall job in its own group", async () => {
    const dir = join(tmp.path, 'jobfile');
    await mkdir(dir);
    await writeFile(
      join(dir, 'walls.fio'),
      [
        '[global]',
        'bs=4k',
        'direct=1',
        'size=${JOB_SIZE}',
        '[w]',
        'rw=write',
        '[r]',
        'stonewall',
        'rw=read',
        'iodepth=4',
      ].join('\n'),
    );
    const r = await pvblk(['bench', 'walls.fio', ...QUICK, '--output-format=json'], {
      env: { TMPDIR: tmp.path, JOB_SIZE: '64k' },
      timeoutMs: 120_000,
      cwd: dir,
    });
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as {
      'global options': Record<string, string>;
      jobs: Array<{
        jobname: string;
        groupid: number;
        read: { io_bytes: number };
        write: { io_bytes: number };
      }>;
    };
    expect(j['global options']).toEqual({ bs: '4k', direct: '1', size: '64k' });
    expect(j.jobs.map((x) => [x.jobname, x.groupid, x.write.io_bytes, x.read.io_bytes])).toEqual([
      ['w', 0, 65536, 0],
      ['r', 1, 0, 65536],
    ]);
  });

  it('sweeps and plots IOPS against the swept value as a PNG; each point says which it is', async () => {
    const png = join(tmp.path, 'sweep.png');
    const r = await pvblk(
      [
        'bench',
        '--name=s',
        '--rw=randread',
        '--bs=4k',
        '--size=128k',
        '--direct=1',
        '--description=cold',
        '--sweep',
        'iodepth=1,4',
        `--plot=${png}`,
        '--output-format=normal,terse',
        '--write_iops_log=sw',
        ...QUICK,
      ],
      { env: { TMPDIR: tmp.path }, timeoutMs: 120_000, cwd: tmp.path },
    );
    expect(r.code).toBe(0);
    // each point's log, brought from the guest as fio's client names a server's, the point after it:
    // an entry per read of the 128 KiB pass
    for (const qd of [1, 4]) {
      const log = await readFile(join(tmp.path, `sw_iops.1.log.guest.iodepth=${qd}`), 'utf8');
      expect(log.split('\n').filter((l) => /^\d+, 1, 0, 4096, 0$/.test(l))).toHaveLength(32);
      expect(log.split('\n')).toHaveLength(33);
    }
    // a terse line per point, told apart by its last field: the job's description, then the point
    const terse = r.stdout.split('\n').filter((l) => l.startsWith('3;fio-'));
    expect(terse.map((l) => l.split(';').at(-1))).toEqual(['cold iodepth=1', 'cold iodepth=4']);
    expect(r.stdout).toContain('  Description  : [cold iodepth=4]\n');
    expect(r.stdout).toContain('=== iodepth=1');
    expect(r.stdout).toContain('=== iodepth=4');
    // each point says which TCP congestion control carried it
    expect(r.stdout).toContain(`TCP congestion control: ${tcpCongestionControl() ?? 'unknown'}`);
    expect(r.stdout).toMatch(/Sweep summary:\n.*\n {2}iodepth=1 .*\n {2}iodepth=4 /);
    // without --baseline there are no ratio columns, and the footnote does not speak of them
    expect(r.stdout).toContain(
      '  (clat in usec; notify/req: notifications each way, summed, per ring request)\n',
    );
    const b = await readFile(png);
    expect(b.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(b.subarray(12, 16).toString('latin1')).toBe('IHDR');
    expect(b.readUInt32BE(16)).toBeGreaterThan(100); // width
    expect(b.subarray(b.length - 8, b.length - 4).toString('latin1')).toBe('IEND');
  });
});

describe('fio in a running guest: --verify catches a block corrupted on the host', () => {
  const data = tempDir('pvblk-bench-verify-');
  let sys: Awaited<ReturnType<typeof startSystem>>;
  let guestSocketDir = '';

  beforeAll(async () => {
    sys = await startSystem({ disk: 'delay=0', dataDir: data.path });
    const g = await sys.guest('vguest');
    guestSocketDir = join(g.socket, '..');
  });
  afterAll(async () => {
    await sys?.stop();
    data.cleanup();
  });

  const fio = (args: string[]) =>
    pvblk(
      [
        'guest',
        '--run-dir',
        guestSocketDir,
        '--name',
        'vguest',
        'fio',
        '--name=v',
        '--rw=randwrite',
        '--bs=4k',
        '--size=64k',
        '--direct=1',
        '--verify=crc32c',
        ...args,
      ],
      {
        timeoutMs: 60_000,
      },
    );

  it('a mixed job checks what it wrote, not its own reads; rates are of the runtime printed; lat (usec) counts clat', async () => {
    // first on the blank disk: the job's reads find blocks no one wrote, which fio does not check
    // (backend.c verifies a read of a mixed job only from its verify list)
    const r = await fio(['--rw=randrw', '--size=256k', '--iodepth=4', '--output-format=json+']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    type Dir = {
      total_ios: number;
      io_bytes: number;
      runtime: number;
      iops: number;
      bw_bytes: number;
      clat_ns: { bins: Record<string, number> };
    };
    const job = (JSON.parse(r.stdout) as { jobs: Array<Record<string, unknown>> }).jobs[0];
    const dirs = [job.read, job.write] as Dir[];
    for (const d of dirs) {
      expect(d.total_ios).toBeGreaterThan(0);
      // whole milliseconds, and IOPS and BW exactly what they give (stat.c), IOPS to the six
      // decimals of json.c's %f
      expect(Number.isInteger(d.runtime)).toBe(true);
      expect(Math.abs(d.iops - (1000 * d.total_ios) / d.runtime)).toBeLessThanOrEqual(5e-7);
      expect(d.bw_bytes).toBe(Math.floor((1000 * d.io_bytes) / d.runtime));
    }
    // fio's latency distribution, bucketed from the clat bins: the same shares (to the bins' precision)
    const edges = [2, 4, 10, 20, 50, 100, 250, 500, 750, 1000];
    const bucket = (ns: number): string => {
      const [unit, v, es] =
        ns < 1000
          ? ['ns', ns, edges]
          : ns < 1e6
            ? ['us', ns / 1000, edges]
            : ['ms', ns / 1e6, [...edges, 2000]];
      const e = es.find((x) => v < x);
      return `${unit}:${e ?? '>=2000'}`;
    };
    const total = dirs.reduce((n, d) => n + d.total_ios, 0);
    // each bin is fio's bucket whose middle is its key: 2^(msb - 6) ns wide from 128 ns up. A bucket
    // inside one class counts there for sure; one across an edge may count on either side
    const sure = new Map<string, number>();
    const may = new Map<string, number>();
    const add = (m: Map<string, number>, k: string, c: number) => m.set(k, (m.get(k) ?? 0) + c);
    for (const d of dirs)
      for (const [key, c] of Object.entries(d.clat_ns.bins)) {
        const v = Number(key);
        let msb = 0;
        while (2 ** (msb + 1) <= v) msb++;
        const half = v < 128 ? 0 : 2 ** (msb - 6) / 2;
        const lo = bucket(v - half);
        const hi = bucket(Math.max(v - half, v + half - 1));
        add(may, lo, c);
        if (hi === lo) add(sure, lo, c);
        else add(may, hi, c);
      }
    for (const unit of ['ns', 'us', 'ms'])
      for (const [edge, pct] of Object.entries(job[`latency_${unit}`] as Record<string, number>)) {
        const k = `${unit}:${edge}`;
        expect(pct).toBeGreaterThanOrEqual((100 * (sure.get(k) ?? 0)) / total - 0.01);
        expect(pct).toBeLessThanOrEqual((100 * (may.get(k) ?? 0)) / total + 0.01);
      }
  });

  it("verifies what it wrote, then fails on the corrupted block with fio's message", async () => {
    const w = await fio([]);
    expect(w.stderr).toBe('');
    expect(w.code).toBe(0);
    expect(w.stdout).toContain('v: (groupid=0, jobs=1): err= 0');
    const again = await fio(['--verify_only']);
    expect(again.code).toBe(0);

    // flip one byte in the data of block 5 (bytes 20480-24575 of the disk), past the header
    const dir = join(data.path, 'disks');
    const img = (await readdir(dir)).find((f) => f.endsWith('.img'))!;
    const fh = await open(join(dir, img), 'r+');
    const at = 5 * 4096 + 1000;
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] ^= 0x40;
    await fh.write(b, 0, 1, at);
    await fh.close();

    const v = await fio(['--verify_only']);
    expect(v.code).toBe(1);
    expect(v.stderr).toContain(
      'crc32c: verify failed at file /dev/xvda offset 20480, length 4096 (requested block: offset=20480, length=4096, flags=88)',
    );
    expect(v.stderr).toMatch(/ {7}Expected CRC: [0-9a-f]{8}\n {7}Received CRC: [0-9a-f]{8}/);
    // fio's thread_main() says it on stdout (log_info), as the job ends
    expect(v.stdout).toMatch(
      /fio: pid=\d+, err=84\/file:io_u\.c:2213, func=io_u_queued_complete, error=Invalid or incomplete multibyte or wide character/,
    );
    expect(v.stdout).toContain('v: (groupid=0, jobs=1): err=84 (file:io_u.c:2213, func=io_u_queued_complete');
  });
});
