/**
 * `pvblk bench`'s stack options as parsed (the runs themselves are test/process/bench.test.ts):
 * --pi-inline / --no-pi-inline and its sweep; the disk delay its stack line names; a plot's job title.
 */
import { describe, expect, it } from 'vitest';
import { FioUsageError, rwBlockSize } from '@pvblk/frontend';
import { describeJob } from '../../src/cli/bench-plot.ts';
import {
  benchPoints,
  diskDelayNote,
  fioArgv,
  MAX_SWEEP_POINTS,
  parseBenchArgs,
  type BenchOptions,
} from '../../src/cli/bench-options.ts';

const parse = (...args: string[]) => parseBenchArgs(['--name=t', ...args]) as BenchOptions;

describe('pvblk bench: inline integrity requests', () => {
  it('are on by default, and --no-pi-inline or --pi-inline=0 turns them off', () => {
    expect(parse('--pi').stack.piInline).toBe(true);
    expect(parse('--pi', '--no-pi-inline').stack.piInline).toBe(false);
    expect(parse('--pi', '--pi-inline=0').stack.piInline).toBe(false);
    expect(parse('--pi', '--no-pi-inline', '--pi-inline').stack.piInline).toBe(true);
  });

  it('can be swept: one stack each', () => {
    const points = benchPoints(parse('--pi', '--sweep', 'pi-inline=1,0'));
    expect(points.map((p) => p.stack.piInline)).toEqual([true, false]);
    expect(points.map((p) => p.stack.pi)).toEqual([true, true]);
  });

  it('refuses a value for --no-pi-inline and a word for --pi-inline, naming the option', () => {
    expect(() => parse('--no-pi-inline=1')).toThrow(FioUsageError);
    expect(() => parse('--no-pi-inline=1')).toThrow("option '--no-pi-inline' takes no value");
    expect(() => parse('--pi-inline=maybe')).toThrow(/pi-inline/);
  });
});

describe('pvblk bench: bounds a command line cannot go past', () => {
  it('refuses sweeps of more than MAX_SWEEP_POINTS points before building any', () => {
    const values = (n: number) => Array.from({ length: n }, (_, i) => i + 1).join(',');
    expect(
      benchPoints(parse('--sweep', `iodepth=${values(16)}`, '--sweep', `numjobs=${values(16)}`)),
    ).toHaveLength(MAX_SWEEP_POINTS);
    expect(() => parse('--sweep', `iodepth=${values(16)}`, '--sweep', `numjobs=${values(17)}`)).toThrow(
      `fio: --sweep: iodepth (16) × numjobs (17) is more than ${MAX_SWEEP_POINTS} points, each a run of its own`,
    );
    // five sweeps of 30 values were 24 million points: refused at once, not out of memory
    const huge = ['iodepth', 'numjobs', 'bs', 'rwmixread', 'queues'].flatMap((k) => [
      '--sweep',
      `${k}=${values(30)}`,
    ]);
    expect(() => parse(...huge)).toThrow(`is more than ${MAX_SWEEP_POINTS} points`);
  });

  it('refuses, with --baseline, requests larger than the relay carries (1 MiB)', () => {
    expect(parse('--bs=1m', '--baseline').cl.jobs[0].bs[1]).toBe(1 << 20);
    expect(parse('--bs=2m').cl.jobs[0].bs[1]).toBe(2 << 20);
    expect(() => parse('--bs=2m', '--baseline')).toThrow(
      'fio: --baseline: the relay carries requests of 1024 KiB at most (bs=2097152)',
    );
    expect(() => parse('--baseline', '--sweep', 'bs=4k,2m')).toThrow(/the relay carries requests/);
    // the relay's requests are all of one size
    for (const sizes of ['--bs=4k,8k', '--bsrange=4k-16k', '--bssplit=4k/50:64k/50'])
      expect(() => parse(sizes, '--baseline')).toThrow(
        'fio: --baseline: the relay carries requests of one size: give one bs for reads and writes (no bsrange or bssplit)',
      );
    // the trims' size is not the relay's concern
    expect(parse('--rw=randrw', '--bs=4k,4k,16k', '--baseline').cl.jobs[0].bs).toEqual([4096, 4096, 16384]);
    expect(parse('--bssplit=4k/50:64k/50').cl.jobs[0].maxBs).toEqual([65536, 65536, 65536]);
  });

  it("names the job that --baseline-slices cannot cut: a job's options follow its own --name", () => {
    const slices = ['--baseline', '--baseline-slices=2'];
    expect(() => parse('--size=64k', ...slices)).toThrow(
      'fio: --baseline-slices=2 needs --time_based and --runtime (slices are cut from the runtime)',
    );
    // --runtime and --time_based after --name=b are b's alone
    expect(() => parse('--name=b', '--time_based', '--runtime=1', ...slices)).toThrow(
      'fio: --baseline-slices=2 needs --time_based and --runtime (slices are cut from the runtime): job t has neither',
    );
    expect(() => parse('--runtime=1', '--name=b', '--time_based', '--runtime=1', ...slices)).toThrow(
      /: job t has no time_based$/,
    );
    expect(() => parse('--time_based', '--name=b', '--time_based', '--runtime=1', ...slices)).toThrow(
      /: job t has no runtime$/,
    );
    expect(() =>
      parse('--time_based', '--runtime=1', '--name=b', '--time_based', '--runtime=2', ...slices),
    ).toThrow('fio: --baseline-slices=2 needs the same --runtime for every job (t: 1000ms, b: 2000ms)');
    expect(
      parse('--time_based', '--runtime=2', '--name=b', '--time_based', '--runtime=2', ...slices)
        .baselineSlices,
    ).toBe(2);
  });

  it('takes trim workloads, but not with --baseline: the relay has no trims', () => {
    expect(parse('--rw=randtrimwrite').cl.jobs[0].rw).toBe('randtrimwrite');
    expect(() => parse('--rw=randtrim', '--baseline')).toThrow(
      'fio: --baseline: the relay carries reads and writes, no trims (rw=randtrim)',
    );
    // a rate on trims alone holds no read or write
    expect(parse('--rw=randwrite', '--rate_iops=,,100', '--baseline').cl.jobs[0].rateIops).toEqual([
      0, 0, 100,
    ]);
  });

  it('refuses, with --baseline, a held rate, a thinking job or a latency target, which the relay has no counterpart of', () => {
    expect(() => parse('--rate_iops=1000', '--baseline')).toThrow(
      'fio: --baseline: the relay runs at its full depth and has no rate_iops: measure that job without --baseline',
    );
    expect(() => parse('--baseline', '--sweep', 'rate_iops=0,1000')).toThrow(/has no rate_iops/);
    expect(() => parse('--thinktime=1ms', '--rate=1m', '--baseline')).toThrow(/has no rate or thinktime/);
    // a latency target keeps its own depth, below the relay's
    expect(() => parse('--latency_target=2ms', '--iodepth=32', '--baseline')).toThrow(
      /has no latency_target/,
    );
    // a job left out of pvblk's report (stats=0) would be in the relay's figures
    expect(() => parse('--stats=0', '--baseline')).toThrow(/has no stats=0/);
    expect(parse('--stats=1', '--baseline').baseline).toBe(true);
    // without --baseline, and at a point with no rate, all is well
    expect(parse('--rate_iops=1000').cl.jobs[0].rateIops).toEqual([1000, 1000, 1000]);
    expect(parse('--baseline', '--sweep', 'thinktime=0').baseline).toBe(true);
    // fio's batches and low-water mark change the depth the job keeps; the relay keeps its own
    expect(() => parse('--iodepth=32', '--iodepth_batch=8', '--iodepth_low=16', '--baseline')).toThrow(
      'fio: --baseline: the relay runs at its full depth and has no iodepth_batch_submit or iodepth_low: measure that job without --baseline',
    );
    expect(() => parse('--iodepth_batch_complete=4', '--baseline')).toThrow(
      /has no iodepth_batch_complete_min:/,
    );
    expect(parse('--iodepth=32', '--iodepth_batch_complete_max=32').cl.jobs[0].iodepthBatch.completeMax).toBe(
      32,
    );
    // swept, each point's job has its batch, the others' options as given
    const points = benchPoints(
      parse(
        '--iodepth=32',
        '--iodepth_low=8',
        '--sweep',
        'iodepth_batch=1,16',
        '--sweep',
        'iodepth_batch_complete_min=1,16',
      ),
    );
    expect(points.map((p) => p.cl.jobs[0].iodepthBatch)).toEqual([
      { submit: 1, completeMin: 1, completeMax: null, low: 8 },
      { submit: 1, completeMin: 16, completeMax: null, low: 8 },
      { submit: 16, completeMin: 1, completeMax: null, low: 8 },
      { submit: 16, completeMin: 16, completeMax: null, low: 8 },
    ]);
  });

  it('refuses jobs whose I/O buffers together are more than a guest gives fio, before any stack starts', () => {
    // 12 × 16 × 8 MiB: each job alone under the bound; the guest found out, 1.8 GB later
    expect(() =>
      parse('--bs=8m', '--iodepth=16', '--numjobs=12', '--size=8m', '--disk', 'dev_size_mb=8'),
    ).toThrow(
      "fio: the jobs' I/O buffers (numjobs × iodepth × bs) come to 1610612736 bytes, over the 1073741824 a guest gives them",
    );
    expect(
      parse('--bs=8m', '--iodepth=16', '--numjobs=8', '--size=8m', '--disk', 'dev_size_mb=8').cl.jobs[0]
        .numjobs,
    ).toBe(8);
    // a synchronous engine holds one buffer, whatever the iodepth
    expect(
      parse('--bs=8m', '--iodepth=1000', '--ioengine=psync', '--size=8m', '--disk', 'dev_size_mb=8').cl
        .jobs[0].iodepth,
    ).toBe(1000);
  });

  it('refuses a warm-up shorter than the guests can run (1 ms); 0 means none', () => {
    expect(parse('--warmup=0').warmupMs).toBe(0);
    expect(parse('--warmup=2ms').warmupMs).toBe(2);
    expect(() => parse('--warmup=0.4ms')).toThrow(
      'warmup: min value out of range: 0.4ms (1ms min, or 0 for none)',
    );
  });
});

describe('pvblk bench: options', () => {
  it('bounds --rss-interval where a timer can take it (1h), not only below', () => {
    expect(parse('--rss-interval=250ms').rssIntervalMs).toBe(250);
    expect(() => parse('--rss-interval=25d')).toThrow('rss-interval: max value out of range: 25d (1h max)');
  });

  it('refuses a short option as unrecognized', () => {
    expect(() => parse('-x')).toThrow("pvblk bench: unrecognized option '-x'");
  });

  it('takes --help as getopt does: an option without a value, not the value of another', () => {
    expect(parseBenchArgs(['--name=t', '-h'])).toBe('help');
    expect(parseBenchArgs(['--iodepth=0', '--help'])).toBe('help');
    expect(() => parse('--help=foo')).toThrow("pvblk bench: option '--help' doesn't allow an argument");
    // fio's getopt gives `--help` to --filename: not a disk of the guests
    expect(() => parse('--filename', '--help')).toThrow(
      "fio: --help: the bench's guests have one disk, /dev/xvda",
    );
  });

  it("says where a point's --pi came from, and a quota the run's own guests fill as the run's", () => {
    expect(() => parseBenchArgs(['--name=t', '--sweep=pi=1,0', '--disk=dif=0'])).toThrow(
      'fio: --sweep pi=1 with --disk "dif=0": --pi needs protection information on the disk (dif=1, 2 or 3, and dix=1); drop dif=0/dix=0 or --sweep pi=1',
    );
    expect(() => parseBenchArgs(['--name=t', '--sweep', 'guests=1,8', '--disk', 'dev_size_mb=1024'])).toThrow(
      /fio: --sweep guests=8 with --disk "dev_size_mb=1024": 8 disks of 1 GiB/,
    );
    expect(() => parse('--guests=64', '--disk', 'delay=0 dev_size_mb=100')).toThrow(
      /fio: --guests=64 with --disk "delay=0 dev_size_mb=100": 64 disks of 100 MiB \(6400 MiB\) are over the host's disk quota of 4 GiB /,
    );
  });

  it('gives each job the global options before it only, in the sweep points and in the guests', () => {
    const o = parseBenchArgs([
      '--name=a',
      '--size=1m',
      '--name=global',
      '--bs=64k',
      '--name=b',
      '--size=1m',
      '--sweep',
      'iodepth=1,2',
    ]) as BenchOptions;
    for (const p of benchPoints(o)) {
      expect(p.cl.jobs.map((j) => [j.name, rwBlockSize(j)])).toEqual([
        ['a', 4096],
        ['b', 65536],
      ]);
      const argv = fioArgv(p.cl, {}, []);
      expect(argv.slice(0, argv.indexOf('--name=b'))).not.toContain('--bs=64k');
      expect(argv.slice(argv.indexOf('--name=b'))).toContain('--bs=64k');
    }
  });

  it("lets the warm-up's overrides win over a global section's options", () => {
    const o = parse('--verify=crc32c', '--verify_only', '--ramp_time=1', '--size=1m');
    const argv = fioArgv(o.cl, { verify: 'none', verify_only: null, ramp_time: null }, []);
    expect(argv).toContain('--verify=none');
    expect(argv.filter((a) => /^--(verify_only|ramp_time)/.test(a))).toEqual([]);
    // a bare flag goes to the guest bare
    expect(fioArgv(parse('--time_based', '--runtime=1').cl, {}, [])).toContain('--time_based');
  });

  it('passes the global section to the sweep points, and sweeps the jobs after it', () => {
    const o = parseBenchArgs([
      '--name=global',
      '--bs=8k',
      '--name=a',
      '--sweep',
      'iodepth=1,4',
    ]) as BenchOptions;
    const points = benchPoints(o);
    expect(points.map((p) => [rwBlockSize(p.cl.jobs[0]), p.cl.jobs[0].iodepth])).toEqual([
      [8192, 1],
      [8192, 4],
    ]);
    expect(points.map((p) => p.cl.globalGiven)).toEqual([{ bs: '8k' }, { bs: '8k' }]);
  });
});

describe('pvblk bench: what a plot says its job is', () => {
  it('leaves out what a sweep varies: the command line holds one value, the points others', () => {
    const base = ['--rw=randread', '--bs=4k', '--iodepth=1'];
    expect(describeJob(parse(...base))).toBe('randread bs=4096 iodepth=1');
    expect(describeJob(parse(...base, '--sweep', 'iodepth=1,2'))).toBe('randread bs=4096');
    expect(describeJob(parse(...base, '--sweep', 'bs=4k,8k', '--sweep', 'rw=read,write'))).toBe('iodepth=1');
    expect(describeJob(parse(...base, '--numjobs=2'))).toBe('randread bs=4096 iodepth=1 numjobs=2');
    // sizes that vary: the smallest and the largest
    expect(describeJob(parse(...base, '--bssplit=4k/50:64k/50'))).toBe('randread bs=4096-65536 iodepth=1');
  });
});

describe("pvblk bench: the disk's delay, named in the stack line", () => {
  it("says scsi_debug's default jiffy is there unless --disk takes it away", () => {
    expect(diskDelayNote(parse().stack)).toBe(
      "delay=1: 1 ms a command, scsi_debug's default; --disk delay=0 for none",
    );
    expect(diskDelayNote(parse('--disk', 'delay=3').stack)).toBe(
      'delay=3: 3 ms a command; --disk delay=0 for none',
    );
    expect(diskDelayNote(parse('--disk', 'delay=0').stack)).toBe('no delay');
    expect(diskDelayNote(parse('--disk', 'ndelay=50000', '--pi').stack)).toBe('50000 ns a command');
  });
});

describe('pvblk bench: verifying writers of numjobs clones', () => {
  it('takes them when offset_increment keeps their regions apart, and refuses them when the regions overlap', () => {
    const job = ['--rw=write', '--verify=crc32c', '--numjobs=3', '--size=1m'];
    expect(parse(...job, '--offset_increment=1m').cl.jobs[0].offsetIncrement).toBe(1 << 20);
    expect(() => parse(...job, '--offset_increment=512k')).toThrow(
      "fio: t: verify with numjobs=3 on overlapping regions: the writers overwrite each other's blocks",
    );
    expect(() => parse(...job)).toThrow(/on overlapping regions/);
  });

  it('compares the regions the guest works out against its capacity, where their data lands in the store (virtual_gb)', () => {
    // 50 % of a 1 GiB capacity is 512 MiB: a multiple of the 8 MiB store, so the clone's region
    // lands on the first's
    const job = [
      '--rw=randwrite',
      '--verify=crc32c',
      '--numjobs=2',
      '--size=4m',
      '--disk',
      'delay=0 virtual_gb=1',
    ];
    expect(() => parse(...job, '--offset_increment=50%')).toThrow(/on overlapping regions/);
    expect(parse(...job, '--offset_increment=4m').cl.jobs[0].offsetIncrement).toBe(4 << 20);
    // the whole capacity wraps over itself
    expect(() => parse('--rw=write', '--verify=crc32c', '--disk', 'delay=0 virtual_gb=1')).toThrow(
      /more than the disk's store of 8388608 \(virtual_gb wraps the region over itself\)/,
    );
  });
});
