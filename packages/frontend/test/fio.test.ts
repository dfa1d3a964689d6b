/**
 * The guest fio's parts against fio's own definitions: option syntax and messages (fio's parse.c and
 * init.c), verify headers and checksums (verify.c, the CRC-32C check value), num2str (lib/num2str.c),
 * the percentile block and the terse v3 field list (stat.c), JSON keys (stat.c's json output).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { closestOption, fioTakesValue, parseFioOptions, splitOptions } from '../src/guest/fio-cmdline.ts';
import { checkJob, checkJobAgainstDevice, jobSize } from '../src/guest/fio-job.ts';
import { blockAlign, BlockLengths, blockSizes, rwBlockSize } from '../src/guest/fio-block-size.ts';
import { withoutRandomMap } from '../src/guest/fio-distribution.ts';
import { fixupErrors, jobBanner, setupLines } from '../src/guest/fio-setup.ts';
import {
  checkVerifyBlock,
  crc32c,
  fillVerifyBlock,
  type VerifyExpect,
  type VerifySpec,
} from '../src/guest/fio-verify.ts';
import { parseVerifyPattern } from '../src/guest/fio-pattern.ts';
import { RateControl } from '../src/guest/fio-rate.ts';
import { WorkloadDirections } from '../src/guest/fio-ddir.ts';
import { HistLog, IoLog, jobLogs, MAX_LOG_ENTRIES, statWindows } from '../src/guest/fio-log.ts';
import { LatencyTarget } from '../src/guest/fio-latency.ts';
import { fioTime } from '../src/guest/fio-parse.ts';
import {
  applyIgnoreError,
  errorKind,
  ioErrorOutcome,
  nonFatal,
  type ErrorPolicy,
} from '../src/guest/fio-td-error.ts';
import { JobStderr } from '../src/guest/fio-job-stderr.ts';
import type { FioVerify } from '../src/guest/fio-job.ts';
import { Worker } from '../src/guest/fio-engine.ts';
import { etaRates, runLetter } from '../src/guest/fio-eta.ts';
import { FIO_IOMEM_MAX } from '../src/guest/fio-iomem.ts';
import { BlockMap, RandomOrder, VariableOffsets } from '../src/guest/fio-offsets.ts';
import { mulberry32 } from '@pvblk/shared';
import { fixed } from '../src/guest/printf.ts';
import { fioJsonText } from '../src/guest/fio-json.ts';
import {
  FIO_IO_U_PLAT_NR,
  JobStats,
  Samples,
  depthBucket,
  latBuckets,
  platIdxToVal,
  platValToIdx,
} from '../src/guest/fio-stats.ts';
import { num2str, renderJson, renderNormal, renderTerse, type FioReport } from '../src/guest/fio-report.ts';
import {
  condensedRunStr,
  etaBare,
  etaLimit,
  etaLine,
  etaPercentage,
  etaRedraw,
  etaToStr,
  fioExitStatus,
  parseEtaLine,
  parseGuestFio,
} from '../src/guest/fio.ts';
import { thrown, usage } from './fio-usage.ts';

function parse(args: string[]) {
  return parseFioOptions(splitOptions('fio', args, fioTakesValue).options);
}

/** The mixed workload of a job that is not mixed: never drawn from. */
const NO_MIX = {
  rand: () => {
    throw new Error('a job that is not mixed draws no direction');
  },
  issues: () => [0, 0, 0],
};
describe('fio options', () => {
  it('takes --opt=value and --opt value alike, with fio units', () => {
    const a = parse([
      '--name=j',
      '--rw=randwrite',
      '--bs=4k',
      '--iodepth=32',
      '--size=1m',
      '--runtime=2s',
      '--time_based',
    ]);
    const b = parse([
      '--name',
      'j',
      '--rw',
      'randwrite',
      '--bs',
      '4KiB',
      '--iodepth',
      '32',
      '--size',
      '1024k',
      '--runtime',
      '2000ms',
      '--time_based',
    ]);
    for (const cl of [a, b]) {
      expect(cl.jobs).toHaveLength(1);
      expect(cl.jobs[0]).toMatchObject({
        name: 'j',
        rw: 'randwrite',
        bs: [4096, 4096, 4096],
        iodepth: 32,
        size: 1048576,
        runtime: 2000,
        timeBased: true,
      });
    }
  });

  it('applies options before the first --name to every job, and each --name starts a job', () => {
    const cl = parse([
      '--bs=8k',
      '--direct=1',
      '--name=a',
      '--rw=read',
      '--name=b',
      '--rw=write',
      '--iodepth=4',
    ]);
    expect(cl.jobs.map((j) => [j.name, j.rw, rwBlockSize(j), j.direct, j.iodepth])).toEqual([
      ['a', 'read', 8192, true, 1],
      ['b', 'write', 8192, true, 4],
    ]);
    // fio's JSON lists the global section's options apart from each job's own (stat.c, init.c)
    expect(cl.globalGiven).toEqual({ bs: '8k', direct: '1' });
    expect(cl.given[1]).toEqual({ name: 'b', rw: 'write', iodepth: '4' });
  });

  it('takes --name=global as the global section, for the jobs after it (init.c parse_cmd_line)', () => {
    const cl = parse([
      '--name=a',
      '--rw=write',
      '--name=global',
      '--rw=randread',
      '--group_reporting',
      '--output-format=json',
      '--name=b',
      '--name=globalish',
      '--bs=8k',
      '--name=c',
    ]);
    expect(cl.jobs.map((j) => [j.name, j.rw, rwBlockSize(j)])).toEqual([
      ['a', 'write', 4096],
      ['b', 'randread', 4096],
      ['c', 'randread', 8192],
    ]);
    // group_reporting is a job option fio lists; output-format is a switch of its command line
    expect(cl.globalGiven).toEqual({ rw: 'randread', group_reporting: '', bs: '8k' });
    expect(cl.given.map((g) => g.name)).toEqual(['a', 'b', 'c']);
    // a job option: the jobs after the global section that set it have it, the one before does not
    expect(cl.jobs.map((j) => j.groupReporting)).toEqual([false, true, true]);
    expect(usage(() => parse(['--name=global', '--rw=read']))[0]).toBe('No job(s) defined');
  });

  it("reads numbers as fio's str_to_decimal does: hex and size suffixes, in integer options too", () => {
    const j = parse(['--name=j', '--iodepth=1k', '--randseed=0x10', '--numjobs=0x2', '--offset=0x1000'])
      .jobs[0];
    expect([j.iodepth, j.randseed, j.numjobs, j.offset]).toEqual([1024, 16, 2, 4096]);
    expect(usage(() => parse(['--name=j', '--rwmixread=1k']))).toEqual([
      'rwmixread: max value out of range: 1024 (100 max)',
      'fio: failed parsing rwmixread=1k',
    ]);
    expect(usage(() => parse(['--name=j', '--iodepth=4k5']))).toEqual(['fio: failed parsing iodepth=4k5']);
    expect(usage(() => parse(['--name=j', '--offset=-1']))).toEqual(['fio: failed parsing offset=-1']);
    // this fio's own bounds, where fio has none, are said to be this fio's
    expect(usage(() => parse(['--name=j', '--numjobs=65']))).toEqual([
      'numjobs: 65 is more than this fio runs in one guest (64 jobs at most)',
      'fio: failed parsing numjobs=65',
    ]);
    expect(usage(() => parse(['--name=j', '--iodepth=65537']))[0]).toBe(
      'iodepth: 65537 is more than this fio keeps in flight (65536 at most)',
    );
  });

  it("takes fio's booleans as integers: 0 or 1 for a bool, any for a set-only option (parse.c)", () => {
    expect(parse(['--name=j', '--direct=0x1']).jobs[0].direct).toBe(true);
    expect(usage(() => parse(['--name=j', '--direct=2']))).toEqual([
      'max value out of range: 2 (1 max)',
      'fio: failed parsing direct=2',
    ]);
    expect(usage(() => parse(['--name=j', '--direct=true']))).toEqual(['fio: failed parsing direct=true']);
    expect(parse(['--name=j', '--time_based=5', '--runtime=1']).jobs[0].timeBased).toBe(true);
    expect(parse(['--name=j', '--time_based=0']).jobs[0].timeBased).toBe(false);

    // check_int() is sscanf()'s: what follows the digits is left unread, a blank or a sign before
    // them taken, the low 32 bits kept (each as fio 3.33 took it)
    for (const v of ['1z', '1.5', ' 1', '-1', '+1'])
      expect(parse(['--name=j', `--direct=${v}`]).jobs[0].direct, v).toBe(true);
    expect(parse(['--name=j', '--time_based=7z', '--runtime=1']).jobs[0].timeBased).toBe(true);
    expect(usage(() => parse(['--name=j', '--direct=10x']))).toEqual([
      'max value out of range: 16 (1 max)',
      'fio: failed parsing direct=10x',
    ]);
    expect(usage(() => parse(['--name=j', '--direct=99999999999']))).toEqual([
      'max value out of range: 1215752191 (1 max)',
      'fio: failed parsing direct=99999999999',
    ]);
    // each round of handle_option() is read: a later one out of bounds is said, and the option stands
    const later = parse(['--name=j', '--direct=1,5']);
    expect([later.jobs[0].direct, later.warnings]).toEqual([true, ['max value out of range: 5 (1 max)']]);
    expect(usage(() => parse(['--name=j', '--direct=5,7']))).toEqual([
      'max value out of range: 5 (1 max)',
      'max value out of range: 7 (1 max)',
      'fio: failed parsing direct=5,7',
    ]);
  });

  it('takes size as a share of the device (size=N%), rounded down to the block size', () => {
    const j = parse(['--name=j', '--size=50%', '--bs=4k']).jobs[0];
    expect(j.size).toBeNull();
    expect(j.sizePercent).toBe(50);
    expect(jobSize(j, 1_000_000)).toBe(499_712);
    // never past the end, from the offset on
    const o = parse(['--name=j', '--size=100%', '--offset=64k']).jobs[0];
    expect(jobSize(o, 1 << 20)).toBe((1 << 20) - 65536);
    expect(usage(() => parse(['--name=j', '--size=0%']))[0]).toBe('size: value out of range: 0% (1-100%)');
    expect(usage(() => parse(['--name=j', '--size=101%']))[0]).toBe(
      'size: value out of range: 101% (1-100%)',
    );
  });

  it("lists options in JSON as fio's add_to_dump_list() does: by their own name, a bare flag without value", () => {
    const cl = parse([
      '--name=t',
      '--readwrite=randrw',
      '--blocksize=8k',
      '--timeout=1',
      '--time_based',
      '--direct=1',
    ]);
    expect(cl.given[0]).toEqual({
      name: 't',
      rw: 'randrw',
      bs: '8k',
      runtime: '1',
      time_based: '',
      direct: '1',
    });
  });

  it('ends the percentile list at its first 0, as calc_clat_percentiles() reads it', () => {
    const cl = parse(['--name=t', '--percentile_list=99:50:0:99.999']);
    expect(cl.jobs[0].percentileList).toEqual([50, 99]);
    expect(cl.jobs[0].percentilePrecision).toBe(3);
  });

  it("takes fio's switches as fio does: any --eta but always and never is auto; terse is version 3", () => {
    expect(parse(['--name=j', '--eta=sometimes']).global.eta).toBe('auto');
    expect(parse(['--name=j', '--eta=never']).global.eta).toBe('never');
    expect(parse(['--name=j', '--terse-version=3']).globalGiven).toEqual({});
    expect(usage(() => parse(['--name=j', '--terse-version=2']))).toEqual([
      'fio: terse-version=2: this fio prints terse version 3 only',
      'fio: failed parsing terse-version=2',
    ]);
  });

  it("takes -h and --help where getopt sees an option, not as another option's value", () => {
    expect(parseGuestFio(['--name=a', '-h'])).toBe('help');
    expect(parseGuestFio(['--name=a', '--help'])).toBe('help');
    const named = parseGuestFio(['--name', '-h', '--filename', '--help']);
    expect(typeof named === 'string' ? null : [named.cl.jobs[0].name, named.cl.jobs[0].filename]).toEqual([
      '-h',
      '--help',
    ]);
    expect(usage(() => parseGuestFio(['--name=a', '--help=x']))).toEqual([
      "fio: option '--help' doesn't allow an argument",
    ]);
  });

  it("answers --version as fio.c does, and names fio's options it lacks as fio's", () => {
    expect(parseGuestFio(['--version'])).toBe('version');
    expect(parseGuestFio(['--name=a', '--iodepth=0', '--version'])).toBe('version');
    // --minimal is getopt's no_argument too
    expect(usage(() => parseGuestFio(['--name=a', '--minimal=1']))).toEqual([
      "fio: option '--minimal' doesn't allow an argument",
      "fio: unrecognized option '--minimal=1'",
      'Did you mean minimal?',
    ]);
    expect(usage(() => parseGuestFio(['--version=1']))).toEqual([
      "fio: option '--version' doesn't allow an argument",
    ]);
    // switches and job options of fio's that this fio does not have: not "unrecognized"
    for (const o of [
      '--kb_base=1000',
      '--unified_rw_reporting=1',
      '--significant_figures=6',
      '--readonly',
      '--cmdhelp',
    ])
      expect(usage(() => parseGuestFio(['--name=a', o]))).toEqual([
        `fio: option '${o}' is one of fio's, but this fio does not implement it (see --help)`,
      ]);
  });

  it("takes an option's unambiguous prefix, as glibc's getopt_long_only() does in fio's table", () => {
    // fio 3.33 took these (--parse-only exited 0)
    const j = parse(['--name=a', '--invalid=0', '--iodepth', '4', '--rwmixr=30', '--rw=randrw']).jobs[0];
    expect([j.invalidate, j.iodepth, j.rwmixread]).toEqual([false, 4, 30]);
    // listed in JSON under its own name, as fio's dump list has it
    expect(parse(['--name=a', '--invalid=0']).given[0]).toEqual({ name: 'a', invalidate: '0' });
    expect(parseGuestFio(['--vers'])).toBe('version');
    // several candidates: glibc names them in the table's order (fio 3.33's very lines)
    expect(usage(() => parse(['--name=a', '--iodep=2']))).toEqual([
      "fio: option '--iodep=2' is ambiguous; possibilities: '--iodepth' '--iodepth_batch' '--iodepth_batch_submit' '--iodepth_batch_complete_min' '--iodepth_batch_complete' '--iodepth_batch_complete_max' '--iodepth_low'",
      "fio: unrecognized option '--iodep=2'",
      'Did you mean iodepth?',
    ]);
    // a prefix of one option this fio lacks is that option
    expect(usage(() => parse(['--name=a', '--gtod_cp=1']))).toEqual([
      "fio: option '--gtod_cp=1' is one of fio's, but this fio does not implement it (see --help)",
    ]);
    // a set-only option of fio's takes no value from the next argument (getopt's optional_argument):
    // the word after it is a job file
    expect(splitOptions('fio', ['--name=a', '--zero_buffers', 'x'], fioTakesValue)).toEqual({
      options: [
        { name: 'name', value: 'a', arg: '--name=a' },
        { name: 'zero_buffers', value: null, arg: '--zero_buffers' },
      ],
      jobFiles: ['x'],
    });
  });

  it('takes runtime=0 and size=0 as fio does: no limit, the whole device', () => {
    const j = parse(['--name=a', '--runtime=0', '--size=0']).jobs[0];
    expect([j.runtime, j.size, j.sizePercent]).toEqual([null, null, null]);
    expect(parse(['--name=a', '--timeout=0']).jobs[0].runtime).toBeNull();
    expect(parse(['--name=a', '--runtime=2']).jobs[0].runtime).toBe(2000);
    // time_based still needs a runtime to end
    expect(usage(() => checkJob(parse(['--name=a', '--runtime=0', '--time_based']).jobs[0]))).toEqual([
      'fio: a: time_based needs a runtime (--runtime=<seconds>)',
    ]);
  });

  it('holds the failed-job count of the exit status below the statuses of signals', () => {
    expect(fioExitStatus(false, 2)).toBe(2);
    expect(fioExitStatus(false, 128)).toBe(127);
    expect(fioExitStatus(true, 0)).toBe(128);
    expect(fioExitStatus(true, 300)).toBe(255);
  });

  it("says an option of fio's that this fio lacks is fio's, not unknown", () => {
    expect(usage(() => parse(['--name=j', '--zonemode=zbd']))).toEqual([
      "fio: option '--zonemode=zbd' is one of fio's, but this fio does not implement it (see --help)",
    ]);
    // written with its value apart too, which is then no job file
    expect(usage(() => parse(['--name=j', '--log_compression', '1m']))).toEqual([
      "fio: option '--log_compression' is one of fio's, but this fio does not implement it (see --help)",
    ]);
    // io_submit_mode's default is all this fio does: offload is refused as a value
    expect(parse(['--name=j', '--io_submit_mode', 'inline']).jobs).toHaveLength(1);
    expect(usage(() => parse(['--name=j', '--io_submit_mode=offload']))).toEqual([
      'io_submit_mode: offload (submissions and completions on worker threads) is not implemented; inline is',
      'fio: failed parsing io_submit_mode=offload',
    ]);
    // --output takes its value apart too
    expect(parse(['--output', 'out.txt', '--name=j']).global.output).toBe('out.txt');
  });

  it("reads time values as parse.c's get_mult_time() does, fio 3.33's runs of them checked", () => {
    // (ms) fio 3.33's --time_based --runtime=…: 500msec ran 0.5 s, 1500000usec 1.5 s, 1.5s 1 s, and
    // 2sec and 2mins next to nothing (2 µs: a word it does not know is a microsecond)
    expect(fioTime('runtime', '500msec')).toBe(500);
    expect(fioTime('runtime', '1500000usec')).toBe(1500);
    expect(fioTime('runtime', '1.5s')).toBe(1000);
    expect(fioTime('runtime', '2sec')).toBe(0.002);
    expect(fioTime('runtime', '2mins')).toBe(0.002);
    expect([fioTime('runtime', '30'), fioTime('runtime', '2m'), fioTime('runtime', '1h')]).toEqual([
      30_000, 120_000, 3_600_000,
    ]);
    // an option in µs: latency_target=1ns was target=1000 (ns) under fio 3.33, 1500ns 1500000
    expect(fioTime('latency_target', '1ns', 'us')).toBe(0.001);
    expect(fioTime('latency_target', '1500ns', 'us')).toBe(1.5);
    // a blank before the number leaves the unit unread, as before; a negative or no number is refused
    expect(fioTime('runtime', ' 10ms')).toBe(10_000);
    expect(() => fioTime('runtime', '-1s')).toThrow(/failed parsing runtime=-1s/);
    expect(() => fioTime('runtime', 'abc')).toThrow(/failed parsing runtime=abc/);
  });

  it('refuses what fio refuses, in its words', () => {
    expect(usage(() => parse(['--name=j', '--iodepth=0']))).toEqual([
      'iodepth: min value out of range: 0 (1 min)',
      'fio: failed parsing iodepth=0',
    ]);
    // glibc's getopt_long says it, then init.c (fio 3.33 prints both)
    expect(usage(() => parse(['--name=j', '--iodeph=4']))).toEqual([
      "fio: unrecognized option '--iodeph=4'",
      "fio: unrecognized option '--iodeph=4'",
      'Did you mean iodepth?',
    ]);
    // names every object inherits are not options; a bad --rw after one is not swallowed as its value
    for (const arg of ['--constructor=foo', '--toString=1', '--__proto__=1', '--valueOf'])
      expect(usage(() => parse(['--name=j', arg]))[0]).toBe(`fio: unrecognized option '${arg}'`);
    expect(usage(() => parse(['--name=j', '--constructor', '--rw=bogus']))[0]).toBe(
      "fio: unrecognized option '--constructor'",
    );
    // the table of valid values on stdout (show_option_values()'s log_info), the failure on stderr
    const rw = thrown(() => parse(['--name=j', '--rw=bogus']));
    expect(rw.out[0]).toBe('        valid values: read       Sequential read');
    expect(rw.out).toContain('                    : readwrite  Sequential read and write mix');
    expect(rw.out[rw.out.length - 1]).toBe('');
    expect(rw.lines).toEqual(['fio: failed parsing rw=bogus']);
    expect(usage(() => parse(['--rw=read']))[0]).toBe('No job(s) defined');
    // getopt's message, then init.c's for its '?', with the hint show_closest_option() gives
    expect(usage(() => parse(['--name=j', '--bs']))).toEqual([
      "fio: option '--bs' requires an argument",
      "fio: unrecognized option '--bs'",
      'Did you mean bs?',
    ]);
    // `=` and nothing: init.c's own words for a job option that requires its argument (fio 3.33's),
    // the option named in full; a set-only one has its value parsed, and fails that
    for (const [arg, name] of [
      ['--bs=', 'bs'],
      ['--rw=', 'rw'],
      ['--percentile_list=', 'percentile_list'],
      ['--rwmixr=', 'rwmixread'],
      ['--name=', 'name'],
    ])
      expect(usage(() => parse(['--name=j', arg]))).toEqual([`fio: option ${name} requires an argument`]);
    expect(usage(() => parse(['--name=j', '--time_based=']))).toEqual(['fio: failed parsing time_based=']);
    // an engine fio has no library of: ioengine_load()'s words, with the job section's td_vmsg() (fio
    // 3.33's lines, at its line of ioengines.c); fio's own engines that this fio lacks are named so
    expect(usage(() => parse(['--name=j', '--ioengine=foo']))).toEqual([
      'fio: engine foo not loadable',
      'fio: failed to load engine',
      'fio: file:ioengines.c:135, func=dlopen, error=foo: cannot open shared object file: No such file or directory',
    ]);
    expect(usage(() => parse(['--ioengine=foo', '--name=j']))).toEqual([
      'fio: engine foo not loadable',
      'fio: failed to load engine',
    ]);
    expect(usage(() => parse(['--name=j', '--ioengine=null']))).toEqual([
      "fio: ioengine=null is one of fio's engines, but this fio does not implement it (see --help)",
    ]);
    expect(usage(() => checkJob(parse(['--name=j', '--time_based']).jobs[0]))).toEqual([
      'fio: j: time_based needs a runtime (--runtime=<seconds>)',
    ]);
  });

  it("takes bs, bsrange and bssplit per direction as fio's parser does: reads, writes, trims", () => {
    const sizes = (...args: string[]) =>
      blockSizes(parse(['--name=j', ...args]).jobs[0]).map((d) =>
        d.split.length
          ? `${d.min}-${d.max} ${d.split.map((s) => `${s.bs}/${s.perc}`).join(':')}`
          : `${d.min}-${d.max}`,
      );
    expect(sizes('--bs=4k,4096')).toEqual(['4096-4096', '4096-4096', '4096-4096']);
    // a value with none after it stands for the directions after it; an empty one (a trailing comma)
    // keeps the direction's default, as fio 3.33 prints them: `bs=(R) 8192B-8192B, (W) 4096B-4096B, …`
    expect(sizes('--bs=8k,32k')).toEqual(['8192-8192', '32768-32768', '32768-32768']);
    expect(sizes('--blocksize=8k,')).toEqual(['8192-8192', '4096-4096', '4096-4096']);
    expect(sizes('--bs=8k,32k,')).toEqual(['8192-8192', '32768-32768', '4096-4096']);
    expect(sizes('--bs=,8k')).toEqual(['4096-4096', '8192-8192', '8192-8192']);
    // a range wins over bs whatever their order, and is swapped when given high first
    expect(sizes('--bsrange=16k-4k', '--bs=8k')).toEqual(['4096-16384', '4096-16384', '4096-16384']);
    expect(sizes('--blocksize_range=1k:4k,2k-8k')).toEqual(['1024-4096', '2048-8192', '2048-8192']);
    // a split's shares sorted; one left out takes what the others leave
    expect(sizes('--bssplit=4k/10:64k/50:32k')).toEqual(
      Array(3).fill('4096-65536 4096/10:32768/40:65536/50'),
    );
    // `a,b`: reads a, writes and trims b; a lone size without a share gets 0 (bssplit_ddir()'s sum),
    // and a share over 100 is 100
    expect(sizes('--bssplit=4k/50:8k/50,16k')).toEqual([
      '4096-8192 4096/50:8192/50',
      '16384-16384 16384/0',
      '16384-16384 16384/0',
    ]);
    expect(sizes('--bssplit=,,8k/150')).toEqual(['4096-4096', '4096-4096', '8192-8192 8192/100']);
    // a share of what is left wraps past 2^32 when the others pass 100, and, compared as an int, sorts
    // first; a negative share is over 100, and cut to 100
    expect(sizes('--bssplit=4k/80:8k/80:16k')).toEqual(
      Array(3).fill('4096-16384 16384/4294967236:4096/80:8192/80'),
    );
    expect(sizes('--bssplit=4k/-5:8k/-5:16k/50')).toEqual(
      Array(3).fill('4096-16384 16384/50:4096/100:8192/100'),
    );
    // a range's 0 is the direction's bs
    expect(sizes('--bsrange=0-16k')).toEqual(['4096-16384', '4096-16384', '4096-16384']);
    expect(usage(() => parse(['--name=j', '--bssplit=4k/90:8k/20:16k:32k']))).toEqual([
      'fio: bssplit percentages add to more than 100%',
      'fio: failed parsing bssplit=4k/90:8k/20:16k:32k',
    ]);
    expect(usage(() => parse(['--name=j', '--bssplit=4q/50:8k/50']))).toEqual([
      'fio: split conversion failed',
      'fio: failed parsing bssplit=4q/50:8k/50',
    ]);
    expect(usage(() => parse(['--name=j', '--bsrange=4k']))).toEqual(['fio: failed parsing bsrange=4k']);
    expect(usage(() => parse(['--name=j', '--bs=0']))).toEqual([
      'bs: min value out of range: 0 (1 min)',
      'fio: failed parsing bs=0',
    ]);
  });

  it("takes fio's output formats together, and its aliases for terse (init.c)", () => {
    const f = (args: string[]) => parse(['--name=j', ...args]).global.outputFormat;
    expect(f([])).toEqual({ terse: false, json: false, jsonPlus: false, normal: true });
    expect(f(['--output-format=json,normal'])).toEqual({
      terse: false,
      json: true,
      jsonPlus: false,
      normal: true,
    });
    expect(f(['--output-format=json+,minimal'])).toEqual({
      terse: true,
      json: true,
      jsonPlus: true,
      normal: false,
    });
    expect(f(['--output-format=csv'])).toEqual({ terse: true, json: false, jsonPlus: false, normal: false });
    expect(f(['--minimal'])).toEqual({ terse: true, json: false, jsonPlus: false, normal: false });
    expect(usage(() => f(['--output-format=json,bogus']))).toEqual([
      'fio: invalid output format bogus',
      'fio: failed parsing output-format',
    ]);
  });

  it('sorts the percentile list and keeps the precision it was given with (parse.c, stat.c)', () => {
    const g = parse(['--name=j', '--percentile_list=99.999:50:1']).jobs[0];
    expect(g.percentileList).toEqual([1, 50, 99.999]);
    expect(g.percentilePrecision).toBe(3);
    expect(parse(['--name=j', '--percentile_list=90:50']).jobs[0]).toMatchObject({
      percentileList: [50, 90],
      percentilePrecision: 0,
    });
    expect(parse(['--name=j']).jobs[0].percentilePrecision).toBe(2);
    // a job option, as fio's: each job has its own list
    const two = parse(['--name=a', '--percentile_list=50', '--name=b', '--percentile_list=90:99']).jobs;
    expect(two.map((j) => j.percentileList)).toEqual([[50], [90, 99]]);
    expect(usage(() => parse(['--name=j', '--percentile_list=50:101']))).toEqual([
      'value out of range: 101.000000 (range max: 100.000000)',
      'fio: failed parsing percentile_list=50:101',
    ]);
  });

  it('checks a job against the device it runs on', () => {
    const dev = { path: '/dev/xvda', bytes: 8 << 20, logicalBlockSize: 512 };
    expect(usage(() => checkJobAgainstDevice(parse(['--name=j', '--bs=1000']).jobs[0], dev))).toEqual([
      'fio: bs=1000 is not a multiple of the logical block size of /dev/xvda (512)',
    ]);
    expect(usage(() => checkJobAgainstDevice(parse(['--name=j', '--size=16m']).jobs[0], dev))).toEqual([
      'fio: offset=0 size=16777216 goes past the end of /dev/xvda (8388608 bytes)',
    ]);
    expect(
      usage(() => checkJobAgainstDevice(parse(['--name=j', '--size=2k', '--bs=4k']).jobs[0], dev)),
    ).toEqual(['fio: size too small, must not be less than minimum block size: 2048 < 4096']);
    expect(() => checkJobAgainstDevice(parse(['--name=j', '--size=8m']).jobs[0], dev)).not.toThrow();
  });

  it("refuses pvblk bench's stack options inside a guest", () => {
    expect(usage(() => parseGuestFio(['--name=j', '--queues=4']))).toEqual([
      "fio: option '--queues' configures the stack of `pvblk bench`; a running guest cannot change it",
    ]);
    expect(usage(() => parseGuestFio(['--name=j', '--pi']))[0]).toMatch(/option '--pi' configures the stack/);
  });
});

describe('fio verify', () => {
  const spec = (verify: FioVerify, pattern?: string): VerifySpec => ({
    verify,
    verifyPattern: pattern === undefined ? null : parseVerifyPattern(pattern),
  });
  // the lines of a block the check fails
  const check = (...args: Parameters<typeof checkVerifyBlock>): string[] | null => {
    const r = checkVerifyBlock(...args);
    if (r) expect(r.failed).toBe(true);
    return r?.lines ?? null;
  };
  const sure = (numberio: number | null, flags = 0x88): VerifyExpect => ({ numberio, seed: null, flags });
  /** The header's fields that do not depend on the writer's data or time: magic, type, len, offset, thread, numberio. */
  const HEADER_FIELDS = [
    [0, 2],
    [2, 2],
    [4, 4],
    [16, 8],
    [32, 2],
    [34, 2],
  ] as const;
  const fixture = (name: string): Buffer =>
    readFileSync(new URL(`./fixtures/fio-3.33-verify-${name}.bin`, import.meta.url));

  it('computes CRC-32C (check value of "123456789" is e3069283)', () => {
    expect(crc32c(Buffer.from('123456789')).toString(16)).toBe('e3069283');
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });

  it("writes fio's header and finds a flipped bit with fio's message", () => {
    for (const kind of ['crc32c', 'md5'] as const) {
      const b = Buffer.alloc(4096);
      fillVerifyBlock(spec(kind), b, { offset: 8192, seed: 7n, numberio: 3, thread: 1 });
      expect(b.readUInt16LE(0)).toBe(0xacca);
      expect(b.readUInt16LE(2)).toBe(kind === 'md5' ? 2 : 5);
      expect(b.readUInt32LE(4)).toBe(4096);
      expect(b.readBigUInt64LE(8)).toBe(7n);
      expect(Number(b.readBigUInt64LE(16))).toBe(8192);
      expect([b.readUInt16LE(32), b.readUInt16LE(34)]).toEqual([1, 3]);
      expect(check(spec(kind), b, '/dev/xvda', 8192, sure(3))).toBeNull();
      const bad = Buffer.from(b);
      bad[1000] ^= 0x10;
      const lines = check(spec(kind), bad, '/dev/xvda', 8192)!;
      expect(lines[0]).toBe(
        `${kind}: verify failed at file /dev/xvda offset 8192, length 4096 (requested block: offset=8192, length=4096, flags=88)`,
      );
      expect(lines[1]).toMatch(/^ {7}Expected CRC: [0-9a-f]+$/);
      expect(lines[2]).toMatch(/^ {7}Received CRC: [0-9a-f]+$/);
      expect(lines).toHaveLength(3);
      // a job's own read, not one of the verify phase: io_u->flags without IO_U_F_VER_LIST
      expect(check(spec(kind), bad, '/dev/xvda', 8192, sure(null, 0x8))![0]).toMatch(/, flags=8\)$/);
      // a block written for another offset (a misdirected write) fails on its header
      expect(check(spec(kind), b, '/dev/xvda', 4096)![0]).toBe(
        'verify: bad header offset 8192, wanted 4096 at file /dev/xvda offset 4096, length 4096 (requested block: offset=4096, length=4096)',
      );
      // an older write of the block (a lost write) fails on its number
      expect(check(spec(kind), b, '/dev/xvda', 8192, sure(4))![0]).toBe(
        'verify: bad header numberio 3, wanted 4 at file /dev/xvda offset 8192, length 4096 (requested block: offset=8192, length=4096)',
      );
      // … and in a job that reads and writes, on its seed first, as verify_header() checks them
      expect(check(spec(kind), b, '/dev/xvda', 8192, { numberio: 4, seed: 9n, flags: 0x88 })![0]).toBe(
        'verify: bad header rand_seed 7, wanted 9 at file /dev/xvda offset 8192, length 4096 (requested block: offset=8192, length=4096)',
      );
      expect(check(spec(kind), Buffer.alloc(4096), '/dev/xvda', 0)![0]).toMatch(
        /^verify: bad magic header 0, wanted acca at file \/dev\/xvda offset 0/,
      );
    }
  });

  it('verifies the blocks real fio wrote with every checksum method, and writes the same layout', () => {
    const methods = [
      'md5',
      'crc64',
      'crc32',
      'crc32c',
      'crc16',
      'crc7',
      'sha1',
      'sha256',
      'sha512',
      'sha3-224',
      'sha3-256',
      'sha3-384',
      'sha3-512',
      'xxhash',
      'meta',
    ] as const;
    for (const kind of methods) {
      const file = fixture(kind);
      for (const k of [0, 1]) {
        const block = Buffer.from(file.subarray(k * 4096, (k + 1) * 4096));
        // a writer's check, numberio and all
        expect(check(spec(kind), block, '/dev/xvda', k * 4096, sure(k)), kind).toBeNull();
        // a flipped bit in the data: fio's lines, the method's name first (meta checks no data)
        const bad = Buffer.from(block);
        bad[4095] ^= 0x01;
        const lines = check(spec(kind), bad, '/dev/xvda', k * 4096, sure(k));
        if (kind === 'meta') expect(lines).toBeNull();
        else {
          expect(lines![0], kind).toBe(
            `${kind}: verify failed at file /dev/xvda offset ${k * 4096}, length 4096 (requested block: offset=${k * 4096}, length=4096, flags=88)`,
          );
          expect(lines).toHaveLength(3);
        }
        // ours: the same fields at the same places (the data and its seed are each writer's own),
        // and a checksum that checks
        const ours = Buffer.alloc(4096);
        fillVerifyBlock(spec(kind), ours, { offset: k * 4096, seed: 1n, numberio: k, thread: 1 });
        for (const [at, size] of HEADER_FIELDS)
          expect(ours.subarray(at, at + size), `${kind} @${at}`).toEqual(block.subarray(at, at + size));
        expect(check(spec(kind), ours, '/dev/xvda', k * 4096, sure(k))).toBeNull();
      }
    }
    // fio's sha512 keeps only its block buffer: the data's last partial block (88 bytes here) over
    // its first 128 bytes. A flipped bit anywhere else goes unnoticed, by fio and so by the guest's.
    const sha512 = Buffer.from(fixture('sha512').subarray(0, 4096));
    sha512[2000] ^= 0x01;
    expect(check(spec('sha512'), sha512, '/dev/xvda', 0, sure(0))).toBeNull();
    sha512[40 + 128 + 5] ^= 0x01; // the data's 6th byte: under the tail in the buffer
    expect(check(spec('sha512'), sha512, '/dev/xvda', 0, sure(0))).toBeNull();
    sha512[40 + 128 + 100] ^= 0x01; // its 101st: still in the buffer
    expect(check(spec('sha512'), sha512, '/dev/xvda', 0, sure(0))![0]).toMatch(/^sha512: verify failed/);
    // checked by the other method: fio 3.33's lines (the medium's md5 digest read as a CRC32C's
    // place, and the type mismatch named)
    const crc = fixture('crc32c').subarray(0, 4096);
    const lines = check(spec('md5'), Buffer.from(crc), '/dev/xvda', 0)!;
    expect(lines[0]).toBe(
      'md5: verify failed at file /dev/xvda offset 0, length 4096 (requested block: offset=0, length=4096, flags=88)',
    );
    expect(lines[3]).toBe('fio: verify type mismatch (5 media, 2 given)');
    // a zeroed byte in the header: its CRC
    const hdr = Buffer.from(crc);
    hdr[34] = 0xff;
    expect(check(spec('crc32c'), hdr, '/dev/xvda', 0)![0]).toMatch(
      /^verify: bad header crc [0-9a-f]+, calculated /,
    );
  });

  it("checks fio's pattern blocks, with and without a header, and fails one as fio 3.36 says", () => {
    // verify=pattern verify_pattern=0xdeadbeef: no header at all
    const plain = fixture('pattern');
    expect(plain.subarray(0, 8).toString('hex')).toBe('deadbeefdeadbeef');
    for (const k of [0, 1])
      expect(
        check(
          spec('pattern', '0xdeadbeef'),
          Buffer.from(plain.subarray(k * 4096, (k + 1) * 4096)),
          '/f',
          k * 4096,
        ),
      ).toBeNull();
    const bad = Buffer.from(plain.subarray(4096));
    bad[100] = 0;
    // real fio 3.33's lines for this block, byte for byte: the "length" and the media type are the
    // pattern's bytes read as a header's
    expect(check(spec('pattern', '0xdeadbeef'), bad, '/f', 4096, sure(null, 0x8))).toEqual([
      "fio: got pattern '00', wanted 'de'. Bad bits 6",
      'fio: bad pattern block offset 100',
      'pattern: verify failed at file /f offset 4096, length 4022250974 (requested block: offset=4096, length=4096, flags=8)',
      'fio: verify type mismatch (61374 media, 18 given)',
    ]);
    // verify_pattern alone: a header (VERIFY_PATTERN, 17), the pattern after it with the block's
    // offset for %o; fio 3.36 counts the bad byte's offset from the block's start (3.33 from the
    // pattern's start after the header: 2)
    const withHdr = fixture('pattern-header');
    const p = spec('pattern-header', '"ab"%o-12');
    for (const k of [0, 1])
      expect(
        check(p, Buffer.from(withHdr.subarray(k * 4096, (k + 1) * 4096)), '/f', k * 4096, sure(k)),
      ).toBeNull();
    const bad2 = Buffer.from(withHdr.subarray(4096));
    bad2[42] = 0;
    expect(check(p, bad2, '/f', 4096, sure(1, 0x8))).toEqual([
      "fio: got pattern '00', wanted '61'. Bad bits 3",
      'fio: bad pattern block offset 42',
      'pattern: verify failed at file /f offset 4096, length 4096 (requested block: offset=4096, length=4096, flags=8)',
    ]);
    // the block at 4096 does not pass for the one at 0: %o is in its data
    const moved = Buffer.from(withHdr.subarray(4096));
    moved.writeBigUInt64LE(0n, 16);
    moved.writeUInt32LE(0, 36);
    expect(check(p, moved, '/f', 0)![0]).toMatch(/^verify: bad header crc/);
    // ours, the same bytes but for the header's time and CRC
    const ours = Buffer.alloc(4096);
    fillVerifyBlock(p, ours, { offset: 4096, seed: 5n, numberio: 1, thread: 1 });
    expect(ours.subarray(40)).toEqual(withHdr.subarray(4096 + 40));
    expect(ours.readBigUInt64LE(8)).toBe(0n); // a pattern leaves io_u->rand_seed 0
    // meta with a pattern checks it too
    const meta = spec('meta', '0x55');
    const m = Buffer.alloc(4096);
    fillVerifyBlock(meta, m, { offset: 0, seed: 5n, numberio: 0, thread: 1 });
    expect(m.subarray(40, 48).toString('hex')).toBe('5555555555555555');
    m[4095] = 0x54;
    expect(check(meta, m, '/f', 0)![1]).toBe('fio: bad pattern block offset 4095');
    // null checks nothing
    expect(check(spec('null'), Buffer.alloc(4096), '/f', 0)).toBeNull();
  });

  it("checks fio's blocks with a header every verify_interval bytes, swapped to verify_offset, as fio 3.33 wrote and failed them", () => {
    // --verify=crc32c --verify_interval=1024 --verify_offset=100: four headers a block, each 100 bytes in
    const spec = { verify: 'crc32c', verifyPattern: null, verifyInterval: 1024, verifyOffset: 100 } as const;
    const file = fixture('crc32c-interval-offset');
    const block = (k: number) => Buffer.from(file.subarray(k * 4096, (k + 1) * 4096));
    for (const k of [0, 1]) expect(checkVerifyBlock(spec, block(k), '/f', k * 4096, sure(k))).toBeNull();
    // ours: the same fields at the same places of each interval, and a check that passes
    const ours = Buffer.alloc(4096);
    fillVerifyBlock(spec, ours, { offset: 4096, seed: 3n, numberio: 1, thread: 1 });
    for (let i = 0; i < 4; i++) {
      const at = i * 1024 + 100;
      for (const [f, size] of HEADER_FIELDS)
        expect(ours.subarray(at + f, at + f + size), `interval ${i} @${f}`).toEqual(
          block(1).subarray(at + f, at + f + size),
        );
    }
    expect(checkVerifyBlock(spec, Buffer.from(ours), '/f', 4096, sure(1))).toBeNull();
    // fio 3.33's lines for two bad intervals (6144+500 and 5120+700): each said, in the order of the
    // block, and — the last interval being good — the block not failed (verify_io_u()'s last return)
    const bad = block(1);
    bad[2048 + 500] = 0;
    bad[1024 + 700] = 0;
    const r = checkVerifyBlock(spec, Buffer.from(bad), '/tmp/fv/fx1b', 4096, sure(1))!;
    expect(r.failed).toBe(false);
    expect(r.lines.filter((l) => l.includes('verify failed'))).toEqual([
      'crc32c: verify failed at file /tmp/fv/fx1b offset 5120, length 1024 (requested block: offset=4096, length=4096, flags=88)',
      'crc32c: verify failed at file /tmp/fv/fx1b offset 6144, length 1024 (requested block: offset=4096, length=4096, flags=88)',
    ]);
    // the CRCs fio printed for the first, over its own data
    expect(r.lines.slice(1, 3)).toEqual(['       Expected CRC: 922eb9fa', '       Received CRC: 7dfdf38e']);
    // a bad last interval fails the block; verify_fatal stops at the first bad one and fails it
    const last = block(1);
    last[3072 + 900] ^= 0x01;
    expect(checkVerifyBlock(spec, Buffer.from(last), '/f', 4096, sure(1))!.failed).toBe(true);
    const fatal = checkVerifyBlock({ ...spec, verifyFatal: true }, Buffer.from(bad), '/f', 4096, sure(1))!;
    expect(fatal.failed).toBe(true);
    expect(fatal.lines).toHaveLength(3);
    expect(fatal.lines[0]).toMatch(/offset 5120, length 1024/);
    // a header checked against its interval's place, said against the block's (fio's words)
    const moved = block(1);
    moved.copy(moved, 1024, 0, 1024);
    expect(check(spec, moved, '/f', 4096, sure(1))).toEqual([
      'verify: bad header offset 4096, wanted 4096 at file /f offset 5120, length 1024 (requested block: offset=4096, length=4096)',
    ]);
  });

  it("checks a pattern after each interval's header, and dumps a bad interval as fio 3.33 does (verify_dump)", () => {
    // --verify=md5 --verify_interval=512 --verify_pattern=0x5a: md5 checks its digest, not the pattern
    const spec = { verify: 'md5', verifyPattern: parseVerifyPattern('0x5a'), verifyInterval: 512 } as const;
    const file = fixture('md5-interval-pattern');
    const block = Buffer.from(file.subarray(0, 4096));
    expect(checkVerifyBlock(spec, Buffer.from(block), '/f', 0, sure(0))).toBeNull();
    expect(block.subarray(512 + 56, 512 + 64).toString('hex')).toBe('5a5a5a5a5a5a5a5a');
    // the byte fio 3.33's run found (1536+300): its one line, and its two files named so
    const bad = Buffer.from(block);
    bad[1536 + 300] = 0;
    const r = checkVerifyBlock({ ...spec, verifyDump: true }, bad, '/tmp/fv/fx2b', 0, sure(0))!;
    expect(r.failed).toBe(false);
    expect(r.lines).toEqual([
      'md5: verify failed at file /tmp/fv/fx2b offset 1536, length 512 (requested block: offset=0, length=4096, flags=88)',
      expect.stringMatching(/^ {7}Expected CRC: [0-9a-f]{32}$/),
      expect.stringMatching(/^ {7}Received CRC: [0-9a-f]{32}$/),
      '       received data dumped as fx2b.1536.received',
      '       expected data dumped as fx2b.1536.expected',
    ]);
    expect(r.dumps.map((d) => [d.name, d.line, d.data.length])).toEqual([
      ['fx2b.1536.received', 3, 512],
      ['fx2b.1536.expected', 4, 512],
    ]);
    // received: the interval read; expected: it made again, which differs in the bad byte and the
    // header's time and CRC alone
    const [got, want] = r.dumps.map((d) => d.data);
    expect(got).toEqual(bad.subarray(1536, 2048));
    const differ = [...got.keys()].filter((i) => got[i] !== want[i]);
    expect(differ.every((i) => i === 300 || (i >= 24 && i < 32) || (i >= 36 && i < 40))).toBe(true);
    expect(differ).toContain(300);
    // meta checks the pattern after each interval's header: the byte named from the interval's start
    const meta = { ...spec, verify: 'meta' } as const;
    const m = Buffer.alloc(4096);
    fillVerifyBlock(meta, m, { offset: 0, seed: 1n, numberio: 0, thread: 1 });
    expect(checkVerifyBlock(meta, Buffer.from(m), '/f', 0)).toBeNull();
    m[1536 + 300] = 0;
    expect(checkVerifyBlock(meta, m, '/f', 0)?.lines).toEqual([
      "fio: got pattern '00', wanted '5a'. Bad bits 4",
      'fio: bad pattern block offset 300',
      'pattern: verify failed at file /f offset 1536, length 512 (requested block: offset=0, length=4096, flags=88)',
    ]);
    // past the job's bound (maxDumps) the files are counted, not made: a bad header's, with none left…
    const zero = checkVerifyBlock({ ...spec, verifyDump: true }, Buffer.alloc(4096), '/f', 0, sure(0), 0)!;
    expect([zero.dumps.length, zero.dumpsDropped]).toEqual([0, 1]);
    const pat = {
      verify: 'pattern',
      verifyPattern: parseVerifyPattern('0x5a'),
      verifyInterval: 512,
    } as const;
    const many = checkVerifyBlock({ ...pat, verifyDump: true }, Buffer.alloc(4096), '/f', 0, sure(0), 3)!;
    expect([many.dumps.length, many.dumpsDropped, many.lines.filter((l) => l.includes('dumped as'))]).toEqual(
      [
        3,
        13,
        [
          '       received data dumped as f.0.received',
          '       expected data dumped as f.0.expected',
          '       received data dumped as f.512.received',
        ],
      ],
    );
    // a bad header: its line and its interval dumped as hdr_fail
    const hdr = Buffer.from(block);
    hdr[512] = 0;
    const h = checkVerifyBlock({ ...spec, verifyDump: true }, hdr, '/dev/xvda', 0, sure(0))!;
    expect(h.failed).toBe(true);
    expect(h.lines).toEqual([
      'verify: bad magic header ac00, wanted acca at file /dev/xvda offset 512, length 512 (requested block: offset=0, length=4096)',
      '       hdr_fail data dumped as xvda.512.hdr_fail',
    ]);
  });

  it('parses verify_pattern as lib/pattern.c does (its own examples)', () => {
    const hexOf = (s: string) => {
      const p = parseVerifyPattern(s);
      return p && { hex: p.bytes.toString('hex'), offsets: p.offsets };
    };
    expect(hexOf('"abcd"')).toEqual({ hex: '61626364', offsets: [] });
    expect(hexOf('-1024')).toEqual({ hex: '00fcffff', offsets: [] });
    expect(hexOf('66')).toEqual({ hex: '42', offsets: [] });
    expect(hexOf('0xFF0X1')).toEqual({ hex: 'ff01', offsets: [] });
    expect(hexOf('%o')).toEqual({ hex: '0000000000000000', offsets: [0] });
    expect(hexOf('"123"0xFFeeCC')).toEqual({ hex: '313233ffeecc', offsets: [] });
    expect(hexOf('-100xab"1"%o"2"')).toEqual({ hex: 'f6ffffffab31' + '00'.repeat(8) + '32', offsets: [6] });
    expect(hexOf('%o0xdeadbeef%o')).toEqual({
      hex: '00'.repeat(8) + 'deadbeef' + '00'.repeat(8),
      offsets: [0, 12],
    });
    expect(hexOf('0x' + 'fe'.repeat(21))).toEqual({ hex: 'fe'.repeat(21), offsets: [] });
    expect(hexOf('0')).toEqual({ hex: '00', offsets: [] });
    // an odd count of hex digits: the first byte takes one (real fio 3.33 wrote 0a bc for 0xabc)
    expect(hexOf('0xabc')).toEqual({ hex: '0abc', offsets: [] });
    // what fio fails to parse
    // eight %o at most (fio's verify_fmt[8])
    expect(parseVerifyPattern('%o'.repeat(8))!.offsets).toHaveLength(8);
    for (const bad of [
      '0xzz',
      '"open',
      '%x',
      'abc',
      '2147483648',
      '',
      '0x' + 'ff'.repeat(513),
      '%o'.repeat(9),
    ])
      expect(parseVerifyPattern(bad), bad).toBeNull();
  });

  it("takes fio's verify values and verify_pattern, and refuses what fio cannot check", () => {
    const job = (...args: string[]) => parse(['--name=j', '--filename=/dev/xvda', ...args]).jobs[0];
    expect(job('--verify=sha256').verify).toBe('sha256');
    expect(job('--verify=crc32c-intel').verify).toBe('crc32c');
    expect(job('--verify=0').verify).toBe('none');
    expect(job('--verify=none').verify).toBe('none');
    expect(job('--verify_pattern=0xdeadbeef').verify).toBe('pattern-header');
    expect(job('--verify=crc32c', '--verify_pattern=0xdeadbeef').verify).toBe('crc32c');
    expect(job('--verify_pattern=0xdeadbeef', '--verify=pattern').verify).toBe('pattern');
    expect(job('--verify_pattern=0xdeadbeef').verifyPattern!.bytes.toString('hex')).toBe('deadbeef');
    // fio's table of values, in its order, for one it does not know
    const e = usage(() => parseGuestFio(['--name=j', '--verify=foo']));
    expect(e[0]).toBe('fio: failed parsing verify=foo');
    expect(thrown(() => parseGuestFio(['--name=j', '--verify=foo'])).out).toContain(
      '                    : sha3-512   Use sha3-512 checksums for verification',
    );
    expect(usage(() => parseGuestFio(['--name=j', '--verify_pattern=0xzz']))[0]).toBe(
      'fio: failed parsing verify_pattern=0xzz',
    );
    // fio 3.36 writes these blocks and then fails an assertion reading them back
    expect(() => parseGuestFio(['--name=j', '--filename=/dev/xvda', '--verify=pattern'])).toThrow(
      /verify=pattern needs a verify_pattern/,
    );
  });
});

describe("fio's logs (iolog.c, stat.c's add_log_sample())", () => {
  it('names the files as init.c does: the prefix, or the job for an empty one; the job number unless per_job_logs=0', () => {
    const [a, b] = parse([
      '--write_lat_log=x',
      '--name=one',
      '--write_bw_log=bwp',
      '--name=two',
      '--per_job_logs=0',
      '--write_iops_log=/tmp/i',
    ]).jobs;
    const la = jobLogs(a, 1);
    expect([la.lat?.file, la.slat?.file, la.clat?.file, la.bw?.file, la.iops]).toEqual([
      'x_lat.1.log',
      'x_slat.1.log',
      'x_clat.1.log',
      'bwp_bw.1.log',
      null,
    ]);
    const lb = jobLogs(b, 3);
    expect([lb.lat?.file, lb.bw, lb.iops?.file]).toEqual(['x_lat.log', null, '/tmp/i_iops.log']);
    // the logs' options were the job's own: the first job's are untouched by the second's
    expect([a.logs.perJob, a.logs.iops, b.logs.bw]).toEqual([true, null, null]);
    // an empty prefix is refused on the command line, as fio's getopt requires an argument
    expect(usage(() => parse(['--name=j', '--write_lat_log=']))).toEqual([
      'fio: option write_lat_log requires an argument',
    ]);
  });

  it("writes fio 3.36's lines: time, value, direction, block size, [offset,] priority (0x%04x with log_prio)", () => {
    const plain = new IoLog('clat', 'c', 0, false, false, false);
    plain.add(0, 27651, 1, 4096, 61440);
    plain.add(3, 5320, 0, 4096, 8192);
    expect(plain.text()).toBe('0, 27651, 1, 4096, 0\n3, 5320, 0, 4096, 0\n');
    const off = new IoLog('lat', 'l', 0, false, true, true);
    off.add(7, 382464, 1, 4096, 61440);
    expect(off.text()).toBe('7, 382464, 1, 4096, 61440, 0x0000\n');
    expect(plain.text(1)).toBe('3, 5320, 0, 4096, 0\n');
  });

  it('averages each direction over its window, rounded half up, or keeps its maximum; the rest at the end', () => {
    const lat = new IoLog('lat', 'l', 250, false, false, false);
    lat.add(10, 100, 1, 4096, 0);
    lat.add(100, 101, 1, 4096, 0);
    lat.add(120, 7, 0, 4096, 0);
    // a latency sample 1 ms before the window's end does not close it (inline_log())
    lat.add(249, 102, 1, 4096, 0);
    expect(lat.length).toBe(0);
    // the first at or past 250 does: the mean of four (100, 101, 102, 103) is 101.5, written 102
    lat.add(251, 103, 1, 4096, 0);
    expect(lat.text()).toBe('251, 102, 1, 0, 0\n');
    // the next window runs from 250, where the last ended (avg_last = elapsed - elapsed % avg_msec)
    lat.add(499, 1, 1, 4096, 0);
    expect(lat.length).toBe(1);
    lat.finalize(530);
    expect(lat.text().split('\n').slice(1)).toEqual(['530, 7, 0, 0, 0', '530, 1, 1, 0, 0', '']);
    const max = new IoLog('clat', 'm', 100, true, false, false);
    for (const v of [5, 90, 3]) max.add(50, v, 0, 4096, 0);
    max.add(100, 4, 0, 4096, 0);
    expect(max.text()).toBe('100, 90, 0, 0, 0\n');
    // a bw or iops sample within LOG_MSEC_SLACK (1 ms) of its window's end closes it
    const bw = new IoLog('bw', 'b', 500, false, false, false);
    bw.add(499, 8000, 1, 4096, 0);
    expect(bw.text()).toBe('499, 8000, 1, 0, 0\n');
  });

  it("writes each window's histogram as flush_hist_samples() does: the buckets since the last, 2^coarseness a field", () => {
    const h = new HistLog('h_clat_hist.1.log', 100, 10, true);
    // the window starts with the first sample at or after 1 ms (hist_last 0 is "not yet")
    h.add(1, 5, 0, 4096);
    h.add(50, 300, 0, 4096);
    expect(h.length).toBe(0);
    h.add(101, 5, 0, 4096);
    // 1024 buckets a field: the first field, then the last 1024 (fio's last field overlaps the one
    // before when 1856 is not a multiple)
    expect(h.text()).toBe('101, 0, 4096, 3, 0\n');
    h.add(150, 7, 1, 4096);
    h.add(250, 7, 1, 4096);
    h.add(201, 5, 0, 4096);
    expect(h.text(1)).toBe('250, 1, 4096, 2, 0\n201, 0, 4096, 1, 0\n');
    // 1856 fields at coarseness 0
    const fine = new HistLog('f', 10, 0, true);
    fine.add(1, 3, 0, 512);
    fine.add(11, 3, 0, 512);
    const fields = fine.text().trim().split(', ').map(Number);
    expect(fields).toHaveLength(3 + 1856);
    expect(fields[3 + 3]).toBe(2);
    for (const l of [h, fine]) l.dispose();
  });

  it("bounds the entries of all the guest's logs together, and gives a written log's back", () => {
    const a = new IoLog('lat', 'a', 0, false, false, false);
    const b = new IoLog('clat', 'b', 0, false, false, false);
    // (the logs of the tests before hold a few entries of the bound)
    let i = 0;
    while (i <= MAX_LOG_ENTRIES && !a.add(i, i, 1, 4096, 0)) i++;
    expect(a.length).toBe(i);
    expect(a.length).toBeGreaterThan(MAX_LOG_ENTRIES - 100);
    expect(a.length).toBeLessThanOrEqual(MAX_LOG_ENTRIES);
    // the next entry of any log is one too many: said once (true), then dropped
    expect(b.add(0, 1, 0, 4096, 0)).toBe(true);
    expect(b.add(1, 1, 0, 4096, 0)).toBe(false);
    expect(b.length).toBe(0);
    a.dispose();
    const c = new IoLog('slat', 'c', 0, false, false, false);
    expect(c.add(0, 1, 0, 4096, 0)).toBe(false);
    expect(c.length).toBe(1);
    c.dispose();
  });

  it("takes the report's rate windows from the logs as add_job() does (bwavgtime, iopsavgtime)", () => {
    const w = (...args: string[]) => {
      const j = parse(['--name=j', ...args]).jobs[0];
      const l = jobLogs(j, 1);
      return { windows: statWindows(j), bwAvg: l.bw?.avgMsec, iopsAvg: l.iops?.avgMsec };
    };
    expect(w()).toEqual({ windows: { bw: 500, iops: 500 }, bwAvg: undefined, iopsAvg: undefined });
    // a bw log sets the report's bw window to log_avg_msec (0: per I/O); iops keeps 500
    expect(w('--write_bw_log=b', '--log_avg_msec=250')).toEqual({
      windows: { bw: 250, iops: 500 },
      bwAvg: 250,
      iopsAvg: undefined,
    });
    expect(w('--write_bw_log=b').bwAvg).toBe(0);
    // given, bwavgtime stays the report's window, and the log averages over the shorter of the two
    expect(w('--write_bw_log=b', '--log_avg_msec=1000', '--bwavgtime=300', '--write_iops_log=i')).toEqual({
      windows: { bw: 300, iops: 1000 },
      bwAvg: 300,
      iopsAvg: 1000,
    });
    expect(w('--iopsavgtime=200').windows).toEqual({ bw: 500, iops: 200 });
    expect(usage(() => parse(['--name=j', '--bwavgtime=0']))).toEqual([
      "bwavgtime: a window of 0 ms: this fio's windows are 1 ms at least",
      'fio: failed parsing bwavgtime=0',
    ]);
    expect(usage(() => parse(['--name=j', '--log_avg_msec=x']))).toEqual([
      'fio: failed parsing log_avg_msec=x',
    ]);
    // log_entries is fio's first allocation, taken within its bounds and of no other use here
    expect(usage(() => parse(['--name=j', '--log_entries=1000']))).toEqual([
      'log_entries: min value out of range: 1000 (1024 min)',
      'fio: failed parsing log_entries=1000',
    ]);
    expect(usage(() => parse(['--name=j', '--log_alternate_epoch_clock_id=4']))).toEqual([
      'log_alternate_epoch_clock_id: clock 4: this fio has 0 (CLOCK_REALTIME) and 1 (CLOCK_MONOTONIC)',
      'fio: failed parsing log_alternate_epoch_clock_id=4',
    ]);
    // the clock id given before or after the switch
    const clock = (...a: string[]) => parse(['--name=j', ...a]).jobs[0].logs.alternateEpochClock;
    expect(clock('--log_alternate_epoch_clock_id=1', '--log_unix_epoch=1')).toBe(1);
    expect(clock('--log_unix_epoch=1', '--log_alternate_epoch_clock_id=1')).toBe(1);
    expect(clock('--log_unix_epoch=1')).toBe(0);
    expect(clock('--log_alternate_epoch_clock_id=1')).toBeNull();
  });
});

describe("fio's latency target (io_u.c's lat_target_check(), lat_target_success(), __lat_target_failed())", () => {
  const target = (percentile = 100, run = false, windowUs = 0) =>
    new LatencyTarget({ targetNs: 1e6, windowUs, percentile, run }, 32);

  it('doubles the depth while every window holds, bisects towards a depth that failed, then runs a final window and ends', () => {
    const lt = target();
    lt.init(0, 0);
    expect(lt.qd).toBe(1);
    let done = 0;
    const ok = () => lt.check(0, (done += 10));
    for (const qd of [2, 4, 8, 16]) {
      expect(ok()).toBeNull();
      expect(lt.qd).toBe(qd);
    }
    // an I/O over the target at 16: halfway down to the last depth that held, after a quiesce
    expect(lt.over()).toBe('quiesce');
    expect(lt.qd).toBe(12);
    lt.newCycle(0, done);
    expect(ok()).toBeNull();
    expect(lt.qd).toBe(14);
    expect(ok()).toBeNull();
    expect(lt.qd).toBe(15);
    // one below the depth that failed: the depth stays, so the final window starts, and then the job ends
    expect(ok()).toBe('final');
    expect(lt.qd).toBe(15);
    lt.newCycle(0, 0);
    done = 0;
    expect(ok()).toBe('done');
    expect(lt.qd).toBe(15);
  });

  it('takes the depth as far as iodepth, and keeps adjusting with latency_run', () => {
    const lt = target();
    lt.init(0, 0);
    let done = 0;
    for (let i = 0; i < 5; i++) expect(lt.check(0, (done += 5))).toBeNull();
    expect(lt.qd).toBe(32);
    expect(lt.check(0, (done += 5))).toBe('final');
    const run = target(100, true);
    run.init(0, 0);
    done = 0;
    for (let i = 0; i < 20; i++) expect(run.check(0, (done += 5))).toBeNull();
    expect(run.qd).toBe(32);
  });

  it('with a percentile under 100, counts the I/Os over the target and judges the window by their share', () => {
    const lt = target(99, false, 100_000);
    lt.init(0, 0);
    lt.check(0, 100); // not a window yet: nothing
    expect(lt.qd).toBe(1);
    expect(lt.check(100, 100)).toBeNull();
    expect(lt.qd).toBe(2);
    lt.newCycle(100, 100);
    // 2 of 100 over the target: 98 % held, under 99 %
    expect(lt.over()).toBeNull();
    expect(lt.over()).toBeNull();
    expect(lt.check(150, 200)).toBeNull();
    expect(lt.check(200, 200)).toBe('quiesce');
    expect(lt.qd).toBe(1);
  });

  it('at depth 1, an I/O over a 100 % target is fatal, and a window without completions a failure that changes nothing', () => {
    const lt = target();
    lt.init(0, 0);
    expect(lt.over()).toBe('fatal');
    // fio's 0/0: no percentile is reached, so the window fails; at depth 1 the depth and cycle stay
    expect(lt.check(0, 0)).toBeNull();
    // what fio 3.33 did with latency_window=0 (run=1msec, depth=1): up to 2 on the first completion,
    // down again on a look without one, then a final window of one I/O
    expect(lt.check(0, 1)).toBeNull();
    expect(lt.check(0, 1)).toBe('quiesce');
    expect(lt.qd).toBe(1);
    lt.newCycle(0, 1);
    expect(lt.check(0, 2)).toBe('final');
    lt.newCycle(0, 0);
    expect(lt.check(0, 1)).toBe('done');
  });

  it('parses the options as fio does: times in µs without a unit, a percentile in 0-100, max_latency per direction', () => {
    const j = parse([
      '--name=j',
      '--latency_target=2ms',
      '--latency_window=300',
      '--latency_percentile=99.5',
      '--latency_run=1',
      '--max_latency=100,2ms',
    ]).jobs[0];
    expect(j.latencyTarget).toEqual({ targetNs: 2e6, windowUs: 300, percentile: 99.5, run: true });
    expect(j.maxLatencyNs).toEqual([100_000, 2_000_000, 2_000_000]);
    expect(usage(() => parse(['--name=j', '--latency_percentile=101']))).toEqual([
      'value out of range: 101.000000 (range max: 100.000000)',
      'fio: failed parsing latency_percentile=101',
    ]);
    expect(usage(() => parse(['--name=j', '--latency_percentile=abc']))).toEqual([
      'not a floating point value: abc',
      'fio: failed parsing latency_percentile=abc',
    ]);
    expect(usage(() => parse(['--name=j', '--max_latency=abc']))).toEqual([
      'fio: failed parsing max_latency=abc',
    ]);
    // the defaults were not touched by the job that set them
    expect(parse(['--name=k']).jobs[0].latencyTarget).toEqual({
      targetNs: 0,
      windowUs: 0,
      percentile: 100,
      run: false,
    });
  });
});

describe("fio's rate control (rate, rate_iops, rate_process)", () => {
  it('times each direction by the bytes it issued (usec_for_io()), and sleeps, switches or ends as rate_ddir() does', () => {
    // 200 IOPS of 4 KiB each way; a writer alone
    const w = new RateControl([819200, 819200], [4096, 4096, 4096], 'linear', null, Math.random);
    expect(w.decide(1, 0, Infinity)).toEqual({ ddir: 1, sleepUs: 0 });
    w.issued(1, 4096);
    // the next write is due 5 ms after the epoch: 1.2 ms in, sleep 3.8 ms
    expect(w.decide(1, 1200, Infinity)).toEqual({ ddir: 1, sleepUs: 3800 });
    // late: at once (fio catches up)
    expect(w.decide(1, 9000, Infinity)).toEqual({ ddir: 1, sleepUs: 0 });
    // a sleep past the runtime is cut to it, and past it the job is over
    expect(w.decide(1, 1200, 3000)).toEqual({ ddir: 1, sleepUs: 1800 });
    expect(w.decide(1, 3001, 3000)).toBe('timeout');
    // the bytes count, not the time: 1 MiB/s of 4 KiB is 3906.25 µs a block, rounded down each time
    const b = new RateControl([0, 1048576], [4096, 4096, 4096], 'linear', null, Math.random);
    for (let i = 0; i < 3; i++) b.issued(1, 4096);
    expect(b.decide(1, 0, Infinity)).toEqual({ ddir: 1, sleepUs: 11718 });
    // reset at the ramp's end: due at once again
    b.reset();
    expect(b.decide(1, 0, Infinity)).toEqual({ ddir: 1, sleepUs: 0 });
    // a mix: the other direction goes when it is due, else the nearer one is slept to
    const m = new RateControl(
      [409600, 1228800],
      [4096, 4096, 4096],
      'linear',
      { read: 50, write: 50 },
      Math.random,
    );
    m.issued(0, 4096); // next read at 10 ms
    expect(m.decide(0, 1000, Infinity)).toEqual({ ddir: 1, sleepUs: 0 });
    m.issued(1, 4096); // next write at 3333 µs
    expect(m.decide(0, 1000, Infinity)).toEqual({ ddir: 1, sleepUs: 2333 });
    // rwmixread=100: no writes to switch to
    const r = new RateControl(
      [409600, 409600],
      [4096, 4096, 4096],
      'linear',
      { read: 100, write: 0 },
      Math.random,
    );
    r.issued(0, 4096);
    expect(r.decide(0, 0, Infinity)).toEqual({ ddir: 0, sleepUs: 10000 });
  });

  it("turns trimwrite's directions as set_rw_ddir() does, whatever was chosen, and writes where it trimmed", () => {
    // each direction sequential from its own place, at its own size
    const offsetsOf = (sizes: number[]) => {
      const pos = [0, 0, 0];
      return {
        place: (d: 0 | 1 | 2) => {
          const at = { offset: pos[d] % 65536, len: sizes[d] };
          pos[d] += sizes[d];
          return at;
        },
      };
    };
    const run = (kinds: { random: boolean }, sizes: number[], n: number) => {
      const tw = new WorkloadDirections(
        { read: false, write: true, trimwrite: true, ...kinds },
        50,
        offsetsOf(sizes),
        NO_MIX,
      );
      const seq: string[] = [];
      for (let i = 0; i < n; i++) {
        // the rate decides on the writes' direction
        expect(tw.chosen()).toBe(1);
        const d = tw.turned(tw.chosen());
        const at = tw.place(d)!;
        seq.push(`${d === 2 ? 'T' : 'W'}${at.len / 1024}k@${at.offset / 1024}k`);
      }
      return { tw, seq };
    };
    // one size: a trim, then a write of its range
    const { tw, seq } = run({ random: false }, [4096, 4096, 4096], 6);
    expect(seq).toEqual(['T4k@0k', 'W4k@0k', 'T4k@4k', 'W4k@4k', 'T4k@8k', 'W4k@8k']);
    // a new pass begins with a trim, even after a trim
    expect(tw.turned(tw.chosen())).toBe(2);
    tw.place(2);
    tw.restart();
    expect(tw.next()).toBe(2);
    // trims of 16k and writes of 4k: the writes go on from their own place until one starts where
    // the last trim did, as fio 3.33 logs `bs=4k,4k,16k`
    expect(run({ random: false }, [4096, 4096, 16384], 8).seq).toEqual([
      'T16k@0k',
      'W4k@0k',
      'T16k@16k',
      'W4k@4k',
      'W4k@8k',
      'W4k@12k',
      'W4k@16k',
      'T16k@32k',
    ]);
    // writes of 16k after trims of 4k never start where a trim did again (fio 3.33: total=0,16,2)
    expect(run({ random: false }, [4096, 16384, 4096], 5).seq).toEqual([
      'T4k@0k',
      'W16k@0k',
      'T4k@4k',
      'W16k@16k',
      'W16k@32k',
    ]);
    // randtrimwrite writes the range its trim went over, at the trim's length
    expect(run({ random: true }, [4096, 4096, 16384], 4).seq).toEqual([
      'T16k@0k',
      'W16k@0k',
      'T16k@16k',
      'W16k@16k',
    ]);
    // a mixed job neither trims nor is turned; it keeps a direction for a run of I/Os (get_rw_ddir()):
    // after 10 reads a draw of 80 (above rwmixread) turns it to writes for 10 × 50 % of them
    // (set_rwmix_bytes(): the old direction's issues by the other's share), then a draw of 10 to reads
    // for 5 × 50 %, floored: 2, which the 10 reads already pass, so the next I/O draws again
    const draws = [80, 10, 30];
    const issues = [10, 0, 0];
    const rw = new WorkloadDirections(
      { read: true, write: true, trimwrite: false, random: false },
      50,
      offsetsOf([4096, 4096, 4096]),
      {
        rand: () => ({ between: (a, b) => (expect([a, b]).toEqual([1, 100]), draws.shift()!) }),
        issues: () => issues,
      },
    );
    const mixed: number[] = [];
    for (let i = 0; i < 7; i++) {
      const d = rw.next();
      issues[d]++;
      mixed.push(d);
    }
    expect(mixed).toEqual([1, 1, 1, 1, 1, 0, 0]);
    expect(draws).toEqual([]);
    // a pass's start (reset_io_counters()) draws at the next I/O, and the rate's direction is the run's
    draws.push(10, 90);
    rw.resetMix();
    expect(rw.chosen()).toBe(0);
    rw.rated(1);
    expect(rw.chosen()).toBe(1);
  });

  it('moves the write off a random trim that lands where the last one did, so that a write follows', () => {
    const places = [0, 0, 8192];
    const tw = new WorkloadDirections(
      { read: false, write: true, trimwrite: true, random: true },
      50,
      { place: () => ({ offset: places.shift()!, len: 4096 }) },
      NO_MIX,
    );
    const seq: string[] = [];
    for (let i = 0; i < 6; i++) {
      const d = tw.next();
      seq.push(`${d === 2 ? 'T' : 'W'}@${tw.place(d)!.offset}`);
    }
    expect(seq).toEqual(['T@0', 'W@0', 'T@0', 'W@0', 'T@8192', 'W@8192']);
  });

  it('holds trims to their own rate, which never turns to another direction', () => {
    // 100 trims a second of 4 KiB; reads and writes unlimited, a mix's shares beside it
    const t = new RateControl(
      [0, 0, 409600],
      [4096, 4096, 4096],
      'linear',
      { read: 50, write: 50 },
      Math.random,
    );
    expect(t.decide(2, 0, Infinity)).toEqual({ ddir: 2, sleepUs: 0 });
    t.issued(2, 4096);
    expect(t.decide(2, 4000, Infinity)).toEqual({ ddir: 2, sleepUs: 6000 });
    // the other directions are not held by it
    expect(t.decide(1, 4000, Infinity)).toEqual({ ddir: 1, sleepUs: 0 });
  });

  it('counts a thought as time at the rate with rate_ignore_thinktime: no catching up after it', () => {
    // 100 IOPS of 4 KiB: one I/O, then 500 ms of thought
    const ignoring = new RateControl([409600, 409600], [4096, 4096, 4096], 'linear', null, Math.random);
    const catching = new RateControl([409600, 409600], [4096, 4096, 4096], 'linear', null, Math.random);
    for (const r of [ignoring, catching]) r.issued(1, 4096);
    // the 50 blocks it would have issued meanwhile, less one: the next goes at once, the one after
    // a block's time later (510 ms), where a job that catches up goes at once again
    ignoring.thought(1, 500_000);
    for (const r of [ignoring, catching]) {
      expect(r.decide(1, 505_000, Infinity)).toEqual({ ddir: 1, sleepUs: 0 });
      r.issued(1, 4096);
    }
    expect(ignoring.decide(1, 505_000, Infinity)).toEqual({ ddir: 1, sleepUs: 5000 });
    expect(catching.decide(1, 505_000, Infinity)).toEqual({ ddir: 1, sleepUs: 0 });
  });

  it('spaces Poisson arrivals at the rate on average', () => {
    const p = new RateControl([0, 4096 * 1000], [4096, 4096, 4096], 'poisson', null, mulberry32(7));
    for (let i = 0; i < 20000; i++) p.issued(1, 4096);
    // 20,000 gaps of 1 ms on average
    const due = (p.decide(1, 0, Infinity) as { sleepUs: number }).sleepUs;
    expect(due / 20000).toBeGreaterThan(950);
    expect(due / 20000).toBeLessThan(1050);
  });

  it('takes rate and rate_iops per direction, rate_process by name, and refuses both rates together', () => {
    const job = (...args: string[]) => parse(['--name=j', ...args]).jobs[0];
    // reads, writes, trims, as parse.c fills them: the last value given sets the rest, unless the
    // list ends with a separator; ':' and '-' separate too; a value that does not parse is skipped
    // (fio 3.33: `rate_iops=100,` held reads at 100 and writes not at all, `-5` writes at 5)
    expect(job('--rate=1m').rate).toEqual([1048576, 1048576, 1048576]);
    expect(job('--rate=1m,500k').rate).toEqual([1048576, 512000, 512000]);
    expect(job('--rate=,500k').rate).toEqual([0, 512000, 512000]);
    expect(job('--rate=500k,').rate).toEqual([512000, 0, 0]);
    expect(job('--rate=1m:500k').rate).toEqual([1048576, 512000, 512000]);
    expect(job('--rate_iops=100-200').rateIops).toEqual([100, 200, 200]);
    // a negative value wraps, as fio's unsigned int keeps it: reads at 4294967291, writes at 5
    expect(job('--rate_iops=-5').rateIops).toEqual([4294967291, 5, 5]);
    expect(job('--rate_iops=-5,-6').rateIops).toEqual([4294967291, 4294967290, 6]);
    // so a negative minimum is above any rate (fio 3.36: `fio: minimum rate exceeds rate, ddir 0`)
    expect(
      usage(() =>
        parseGuestFio(['--name=j', '--filename=/dev/xvda', '--rate_iops=100', '--rate_iops_min=-5']),
      ),
    ).toEqual(['fio: minimum rate exceeds rate, ddir 0']);
    expect(job('--rate_iops=100,abc').rateIops).toEqual([100, 0, 0]);
    expect(job('--rate_iops=1,2,3,4').rateIops).toEqual([1, 2, 3]);
    expect(job('--rate_iops=200').rateIops).toEqual([200, 200, 200]);
    // startdelay: seconds without a unit, a range's two ends
    expect(job('--startdelay=2').startDelay).toEqual([2000, 2000]);
    expect(job('--startdelay=500ms-2s').startDelay).toEqual([500, 2000]);
    // the low end from the first value, the high end from the last (fio 3.36 waited up to 3 s for
    // `0,0,3`); a high end below the low one, or a negative delay, which fio waits on forever, refused
    expect(job('--startdelay=0,0,3').startDelay).toEqual([0, 3000]);
    expect(usage(() => parse(['--name=j', '--startdelay=3-1']))).toEqual([
      'startdelay: the high end (1) is below the low end (3)',
      'fio: failed parsing startdelay=3-1',
    ]);
    expect(usage(() => parse(['--name=j', '--startdelay=-3']))).toEqual([
      'startdelay: -3: a delay is not negative',
      'fio: failed parsing startdelay=-3',
    ]);
    // a direction a job does not set keeps what the global section gave it
    expect(parse(['--rate=1m', '--name=j', '--rate=,500k']).jobs[0].rate).toEqual([1048576, 512000, 512000]);
    expect(usage(() => parse(['--name=j', '--rate_iops=abc,def']))).toEqual([
      'fio: failed parsing rate_iops=abc,def',
    ]);
    expect(usage(() => parse(['--name=j', '--rate_iops=4294967296']))).toEqual([
      'rate_iops: max value out of range: 4294967296 (4294967295 max)',
      'fio: failed parsing rate_iops=4294967296',
    ]);
    expect(job('--rate_process=poisson').rateProcess).toBe('poisson');
    expect(usage(() => parse(['--name=j', '--rate_process=burst']))[0]).toBe(
      'fio: failed parsing rate_process=burst',
    );
    expect(usage(() => parse(['--name=j', '--rate=fast']))[0]).toBe('fio: failed parsing rate=fast');
    // thinktime's unit is the microsecond, thinktime_iotime's the second, as fio's is_time options
    const t = job('--thinktime=1500', '--thinktime_spin=1ms', '--thinktime_iotime=2', '--thinktime_blocks=4');
    expect([t.thinktime, t.thinktimeSpin, t.thinktimeIotime, t.thinktimeBlocks]).toEqual([1.5, 1, 2000, 4]);
    expect(t.thinktimeBlocksGiven).toBe(true);
    expect(job('--thinktime_blocks_type=issue').thinktimeBlocksType).toBe('issue');
    // an unsigned int of microseconds, as fio keeps them: 5000 s is what is left past 2^32 µs
    expect(job('--thinktime=5000s').thinktime).toBe(705032.704);
    expect(job('--thinktime_iotime=5000').thinktimeIotime).toBe(705032.704);
    // no minimum: 0 thinks after every I/O issued
    expect(job('--thinktime_blocks=0').thinktimeBlocks).toBe(0);
    // Poisson arrivals need a block a second: fio 3.36 divides by zero (SIGFPE)
    expect(
      usage(() => parseGuestFio(['--name=j', '--filename=/dev/xvda', '--rate=1k', '--rate_process=poisson'])),
    ).toEqual(['fio: j: rate_process=poisson needs a block a second at least (rate=1024 B/s, bs=4096)']);
    expect(
      usage(() => parseGuestFio(['--name=j', '--filename=/dev/xvda', '--rate=1m', '--rate_iops=10'])),
    ).toEqual(['fio: rate and rate_iops are mutually exclusive']);
  });
});

describe('fio statistics and output', () => {
  it('formats numbers like num2str', () => {
    expect(num2str(4096, 4, true, 'byte')).toBe('4096B');
    expect(num2str(131072, 4, true, 'byte')).toBe('128KiB');
    expect(num2str(20123, 4, false, 'none')).toBe('20.1k');
    expect(num2str(1048576 * 19.6, 4, true, 'bytepersec')).toBe('19.6MiB/s');
    expect(num2str(999, 4, false, 'none')).toBe('999');
    expect(num2str(123456, 6, false, 'none')).toBe('123456');
    expect(num2str(1234567, 6, false, 'none')).toBe('1234.6k');
    // a remainder exactly halfway is rounded to even by glibc's %.*f, which num2str prints it with
    // (fio's own lib/num2str.c, compiled, gave these)
    expect(num2str(13250, 4, false, 'none')).toBe('13.2k');
    expect(num2str(13750, 4, false, 'none')).toBe('13.8k'); // 0.75: a tie, 8 is even
    expect(num2str(13350, 4, false, 'none')).toBe('13.3k'); // 0.35 is 0.3499… as a double: no tie
    expect(num2str(13894192, 4, true, 'bytepersec')).toBe('13.2MiB/s');
    expect(num2str(1004250, 6, false, 'none')).toBe('1004.2k');
  });

  it('prints %.*f as glibc does: the exact value of the double, a tie to even (printf.ts)', () => {
    // expected values from C's printf (Python's % operator gives the same)
    const cases: Array<[number, number, string]> = [
      [0.25, 1, '0.2'],
      [0.125, 2, '0.12'],
      [0.375, 2, '0.38'],
      [2.5, 0, '2'],
      [3.5, 0, '4'],
      [12.5, 0, '12'],
      [0.15, 1, '0.1'], // 0.1499999… as a double: not a tie
      [1.005, 2, '1.00'],
      [99.95, 1, '100.0'],
      [50.0625, 3, '50.062'],
      [5e-324, 3, '0.000'],
      [-0.25, 1, '-0.2'],
    ];
    expect(cases.map(([x, d]) => fixed(x, d))).toEqual(cases.map(([, , c]) => c));
  });

  it('buckets depth and latency as fio', () => {
    expect([1, 2, 3, 4, 7, 8, 16, 31, 32, 63, 64, 500].map(depthBucket)).toEqual([
      0, 1, 1, 2, 2, 3, 4, 4, 5, 5, 6, 6,
    ]);
    expect(latBuckets(1500)).toEqual({ unit: 'u', idx: 0 });
    expect(latBuckets(250_000)).toEqual({ unit: 'u', idx: 7 });
    expect(latBuckets(2_500_000_000)).toEqual({ unit: 'm', idx: 11 });
  });

  it('merges and round-trips samples exactly (moments) and by histogram (percentiles)', () => {
    const a = new Samples();
    const b = new Samples();
    const all = new Samples();
    for (let i = 1; i <= 1000; i++) {
      (i % 3 ? a : b).add(i * 1000);
      all.add(i * 1000);
    }
    a.merge(b);
    expect(a.n).toBe(1000);
    expect(a.mean).toBeCloseTo(all.mean, 6);
    expect(a.stdev).toBeCloseTo(all.stdev, 6);
    expect(a.min).toBe(1000);
    expect(a.max).toBe(1_000_000);
    const back = Samples.fromRaw(JSON.parse(JSON.stringify(a.toRaw())));
    expect(back.pct(50)).toBe(a.pct(50));
    expect(Math.abs(back.pct(50) - 500_000) / 500_000).toBeLessThan(0.001);
  });

  it("numbers latency buckets as fio's plat_val_to_idx and plat_idx_to_val do", () => {
    // below 128 ns a value is its own bucket; from there 64 buckets an octave, keyed by their middle
    expect([0, 1, 127, 128, 129, 130, 255, 256].map(platValToIdx)).toEqual([
      0, 1, 127, 128, 128, 129, 191, 192,
    ]);
    expect([127, 128, 129, 191, 192].map(platIdxToVal)).toEqual([127, 129, 131, 255, 258]);
    // 1 ms: msb 19, 13 error bits, group 14, offset (1e6 >> 13) & 63 = 58; its bucket is
    // [2^19 + 58·2^13, 2^19 + 59·2^13) and fio keys it by the middle
    expect(platValToIdx(1_000_000)).toBe(14 * 64 + 58);
    expect(platIdxToVal(14 * 64 + 58)).toBe(2 ** 19 + 58.5 * 2 ** 13);
    // past 2^32 ns (4.3 s) as below; past 2^34 (17.2 s) everything lands in the last bucket
    expect(platValToIdx(2 ** 33 + 5 * 2 ** 27)).toBe(28 * 64 + 5);
    expect(platValToIdx(2 ** 34)).toBe(FIO_IO_U_PLAT_NR - 1);
    expect(platValToIdx(3600e9)).toBe(FIO_IO_U_PLAT_NR - 1);
    // every bucket's value is inside the bucket, and the buckets tile the line in order
    let prev = -1;
    for (let idx = 0; idx < FIO_IO_U_PLAT_NR - 1; idx++) {
      expect(platValToIdx(platIdxToVal(idx))).toBe(idx);
      expect(platIdxToVal(idx)).toBeGreaterThan(prev);
      prev = platIdxToVal(idx);
    }
  });

  it("keys json+ bins as real fio does, and fio's own percentiles follow from them", () => {
    // a real fio 3.33 job's clat_ns (fixtures/README.md)
    const fio = JSON.parse(
      readFileSync(new URL('./fixtures/fio-3.33-jsonplus-clat.json', import.meta.url), 'utf8'),
    ) as { clat_ns: { N: number; percentile: Record<string, number>; bins: Record<string, number> } };
    const { N, percentile, bins } = fio.clat_ns;
    const keys = Object.keys(bins).map(Number);
    expect(keys.length).toBeGreaterThan(100);
    // every key fio printed is the value of its own bucket
    for (const k of keys) expect(platIdxToVal(platValToIdx(k))).toBe(k);
    // calc_clat_percentiles(): the first bucket whose running count reaches p % of N
    for (const [p, v] of Object.entries(percentile)) {
      let sum = 0;
      const at = keys.find((k) => (sum += bins[k]) >= (Number(p) / 100) * N);
      expect(at).toBe(v);
    }
    // the same latencies recorded by the guest fio come out as fio's very bins
    const s = new Samples();
    for (const k of keys) for (let i = 0; i < bins[k]; i++) s.add(k);
    expect(Object.fromEntries(s.fioBins().map(([v, c]) => [String(v), c]))).toEqual(bins);
  });

  it("gives json+ bins in fio's buckets, folded from the HDR histogram without loss", () => {
    const s = new Samples();
    const direct = new Map<number, number>();
    const rnd = mulberry32(7);
    for (let i = 0; i < 20_000; i++) {
      // latencies from 1 ns to about 20 s, spread over every octave
      const v = Math.floor(2 ** (rnd() * 34.2));
      s.add(v);
      const key = platIdxToVal(platValToIdx(v));
      direct.set(key, (direct.get(key) ?? 0) + 1);
    }
    const bins = s.fioBins();
    expect(bins).toEqual([...direct].sort((a, b) => a[0] - b[0]));
    expect(bins.reduce((n, [, c]) => n + c, 0)).toBe(20_000);
  });
  it('merges larger values into samples decoded from JSON (a later slice of a run)', () => {
    const early = new Samples();
    for (let i = 1; i <= 100; i++) early.add(1000 + i);
    const late = new Samples();
    for (let i = 1; i <= 100; i++) late.add(50_000_000 + i * 1000);
    const s = Samples.fromRaw(early.toRaw());
    s.merge(Samples.fromRaw(late.toRaw()));
    expect(s.n).toBe(200);
    expect(s.max).toBe(50_100_000);
    expect(Math.abs(s.pct(99) - 50_099_000) / 50_099_000).toBeLessThan(0.001);
    expect(s.pct(25)).toBeLessThan(1101);
  });

  it('appends a later stretch of a job: times add up, where merging side-by-side jobs keeps the longer', () => {
    const slice = (ios: number, ms: number) => {
      const j = new JobStats('sl');
      j.write.ios = ios;
      j.write.runtimeMs = ms;
      j.totalRunMs = ms;
      for (let i = 0; i < ios; i++) j.write.clat.add(100_000 + i);
      return j;
    };
    const a = slice(300, 400);
    a.append(slice(500, 410));
    expect(a.write.ios).toBe(800);
    expect(a.write.runtimeMs).toBe(810);
    expect(a.totalRunMs).toBe(810);
    expect(a.members).toBe(1);
    expect(a.write.clat.n).toBe(800);
    const b = slice(300, 400);
    b.merge(slice(500, 410));
    expect(b.write.runtimeMs).toBe(410);
    expect(b.members).toBe(2);
  });

  function report(): FioReport {
    const s = new JobStats('randw');
    s.write.ios = 1000;
    s.write.bytes = 1000 * 4096;
    s.write.runtimeMs = 1000;
    for (let i = 0; i < 1000; i++) {
      s.write.slat.add(20_000 + i);
      s.write.clat.add(200_000 + i * 100);
      s.write.lat.add(220_000 + i * 100);
      s.markLatency(220_000 + i * 100);
      s.depthMap[0]++;
    }
    s.write.bw.add(4000);
    s.write.iops.add(1000);
    s.totalRunMs = 1000;
    return {
      jobs: [{ stats: s, options: { name: 'randw', rw: 'randwrite', iodepth: '1' }, iodepth: 1 }],
      disks: [
        {
          name: 'xvda',
          readIos: 0,
          writeIos: 1000,
          readSectors: 0,
          writeSectors: 8000,
          readTicks: 0,
          writeTicks: 900,
          inQueue: 900,
          ioTicks: 950,
          msec: 1000,
        },
      ],
      percentiles: [1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99],
      timestampMs: Date.UTC(2024, 0, 2, 3, 4, 5),
      elapsedMs: 1200,
      globalOptions: {},
      pid: 42,
    };
  }

  it("dates a job's report line when the report is made, as show_thread_status_normal() does", () => {
    const r = report();
    r.jobs[0].stats.jobStartMs = r.timestampMs - 3_600_000;
    const d = new Date(r.timestampMs);
    const hhmmss = [d.getHours(), d.getMinutes(), d.getSeconds()]
      .map((v) => String(v).padStart(2, '0'))
      .join(':');
    expect(renderNormal(r).split('\n')[0]).toContain(` ${hhmmss} `);
    // the JSON keeps the job's start
    expect((renderJson(r).jobs as Array<{ job_start: number }>)[0].job_start).toBe(r.timestampMs - 3_600_000);
  });

  it("prints the normal report in fio's layout", () => {
    const text = renderNormal(report());
    const lines = text.split('\n');
    expect(lines[0]).toMatch(
      /^randw: \(groupid=0, jobs=1\): err= 0: pid=42: \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/,
    );
    // fio 3.36's write line ends with its zoned-block count (stat.c's zbd_write_status()), 0 here
    expect(lines[1]).toBe('  write: IOPS=1000, BW=4000KiB/s (4096kB/s)(4000KiB/1000msec); 0 zone resets');
    expect(lines).toContain('    clat percentiles (usec):');
    // 4 per line, "     |" continued, fio's " %5.2fth=[%5llu]" cells
    const i = lines.indexOf('    clat percentiles (usec):');
    expect(lines[i + 1]).toMatch(
      /^ {5}\| {2}1\.00th=\[ {2}\d{3}\], {2}5\.00th=\[ {2}\d{3}\], 10\.00th=\[ {2}\d{3}\], 20\.00th=\[ {2}\d{3}\],$/,
    );
    expect(lines[i + 5]).toMatch(/^ {5}\| 99\.99th=\[ {2}\d{3}\]$/);
    expect(text).toContain(
      '  WRITE: bw=4000KiB/s (4096kB/s), 4000KiB/s-4000KiB/s (4096kB/s-4096kB/s), io=4000KiB (4096kB), run=1000-1000msec',
    );
    expect(text).toContain(
      '  xvda: ios=0/1000, sectors=0/8000, merge=0/0, ticks=0/900, in_queue=900, util=95.00%',
    );
  });

  it("prints the percentiles at their precision, as many a line as fio's width allows", () => {
    const r = { ...report(), percentiles: [1, 50, 99.999], percentilePrecision: 3 };
    const lines = renderNormal(r).split('\n');
    const i = lines.indexOf('    clat percentiles (usec):');
    // " %6.3fth=[%5llu]" cells, (80 - 7) / (3 + 10 + 5) = 4 a line
    expect(lines[i + 1]).toMatch(
      /^ {5}\| {2}1\.000th=\[ {2}\d{3}\], 50\.000th=\[ {2}\d{3}\], 99\.999th=\[ {2}\d{3}\]$/,
    );
    const none = renderNormal({ ...report(), percentiles: [50, 90], percentilePrecision: 0 }).split('\n');
    expect(none[none.indexOf('    clat percentiles (usec):') + 1]).toMatch(
      /^ {5}\| {2}50th=\[ {2}\d{3}\], {2}90th=\[ {2}\d{3}\]$/,
    );
  });

  it("adds up the rates of jobs reported as a group (sum_stat's pure sum), and pools a later stretch's", () => {
    const job = (rates: number[]) => {
      const j = new JobStats('g');
      j.write.ios = 100;
      j.write.bytes = 100 * 4096;
      j.write.runtimeMs = 1000;
      for (const r of rates) {
        j.write.bw.add(r);
        j.write.iops.add(r / 4);
      }
      return j;
    };
    const group = new JobStats('g');
    group.members = 0;
    group.merge(job([4000, 5000]));
    group.merge(job([3000, 3000]));
    expect(group.write.bw).toMatchObject({ n: 4, min: 7000, max: 8000, mean: 7500 });
    expect(group.write.iops).toMatchObject({ n: 4, min: 1750, max: 2000, mean: 1875 });
    // the group's bw line is the group's: about all of the aggregate bandwidth
    const r = { ...report(), jobs: [{ stats: group, options: {}, iodepth: 1 }] };
    expect(renderNormal(r)).toMatch(
      / {3}bw \( {2}KiB\/s\): min= 7000, max= 8000, per=100\.00%, avg=7500\.00,/,
    );
    const stretch = job([4000, 5000]);
    stretch.append(job([3000, 3000]));
    expect(stretch.write.bw).toMatchObject({ n: 4, min: 3000, max: 5000, mean: 3750 });
  });

  it('floors a depth share under 0.1 % to 0.1 in the JSON as in the normal report (stat_calc_dist)', () => {
    const r = report();
    const s = r.jobs[0].stats;
    s.write.ios = 2000; // fio's total: the job's I/Os
    s.depthMap.fill(0);
    s.depthMap[0] = 1999;
    s.depthMap[1] = 1;
    const j = renderJson(r) as { jobs: Array<{ iodepth_level: Record<string, number> }> };
    expect(j.jobs[0].iodepth_level['1']).toBeCloseTo(99.95, 6);
    expect(j.jobs[0].iodepth_level['2']).toBe(0.1);
    expect(j.jobs[0].iodepth_level['4']).toBe(0);
  });

  it('prints JSON as real fio 3.33 does: its layout, its keys in its order, its integers and floats', () => {
    const fio = readFileSync(new URL('./fixtures/fio-3.33-randwrite-json.txt', import.meta.url), 'utf8');
    const ours = fioJsonText(renderJson(report())) + '\n';
    // each line as its key and the kind of its value: I an integer, F fio's %f, S a string
    const skeleton = (text: string, from: string, to: string): string[] => {
      const lines = text.split('\n');
      const a = lines.indexOf(from);
      const b = lines.indexOf(to, a);
      return lines.slice(a, b + 1).map((l) =>
        l
          .replace(/,$/, '')
          .replace(/ : -?\d+\.\d{6}$/, ' : F')
          .replace(/ : -?\d+$/, ' : I')
          .replace(/ : ".*"$/, ' : S'),
      );
    };
    // a job's report from its read direction to its last key, past the options it was given
    const job = (text: string) => skeleton(text, '      "read" : {', '      "latency_window" : 0');
    expect(job(fio).length).toBeGreaterThan(150);
    expect(job(ours)).toEqual(job(fio));
    // the document's head, but for the key fio 3.36 added (job_start) and the options given
    const head = (text: string) =>
      skeleton(text, '{', '      "job options" : {').filter((l) => !l.includes('"job_start"'));
    expect(head(ours)).toEqual(head(fio));
    // fio was given --time_based: a bare flag, which its JSON leaves out
    expect(fio).not.toContain('"time_based"');
  });

  it("prints terse version 3 with fio's 121 fields plus 9 per disk", () => {
    const f = renderTerse(report()).trimEnd().split(';');
    expect(f.slice(0, 5)).toEqual(['3', 'fio-3.36', 'randw', '0', '0']);
    expect(f).toHaveLength(121 + 9);
    // write section starts after the 41 read fields: kb, bw (KiB/s), iops, runtime
    expect(f.slice(46, 50)).toEqual(['4000', '4000', '1000', '1000']);
    expect(f[f.length - 9]).toBe('xvda');
    // the read direction ran nothing, and still names every listed percentile, at 0, as
    // calc_clat_percentiles() gives them for no samples; the list's unused places are 0%=0
    const plist = [1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99];
    expect(f.slice(17, 37)).toEqual([...plist.map((p) => `${p.toFixed(6)}%=0`), '0%=0', '0%=0', '0%=0']);
  });

  it("works out terse's bw share as show_ddir_status_terse() does, not as the normal report's and JSON's", () => {
    const r = report();
    const w = r.jobs[0].stats.write;
    // an aggregate of 4000.5 KiB/s, and samples of 3001.5 KiB/s on average
    w.bytes += 512;
    w.bw.add(2003);
    const f = renderTerse(r).trimEnd().split(';');
    const at = f.findIndex((x, i) => x === '2003' && f[i + 1] === '4000');
    // the mean over the aggregate in whole KiB: 3001.5 × 100 / 4000
    expect(f[at + 2]).toBe('75.037500%');
    // convert_agg_kbytes_percent(): the mean truncated, over the aggregate in KiB: 3001 × 100 / 4000.5
    expect(renderNormal(r)).toContain('per=75.02%');
    const bwAgg = (renderJson(r).jobs as Array<{ write: { bw_agg: number } }>)[0].write.bw_agg;
    expect(bwAgg).toBeCloseTo((3001 * 100) / 4000.5, 9);
  });

  it('prints no line between two jobs, and one before the run status group (show_run_stats)', () => {
    const r = report();
    r.jobs.push({ ...r.jobs[0] });
    const lines = renderNormal(r).split('\n');
    const heads = lines.flatMap((l, i) => (l.startsWith('randw: (groupid=0') ? [i] : []));
    expect(heads).toHaveLength(2);
    expect(lines[heads[1] - 1]).toMatch(/^ {5}latency {3}: target=0/);
    const run = lines.indexOf('Run status group 0 (all jobs):');
    expect(lines[run - 1]).toBe('');
    expect(lines[run - 2]).toMatch(/^ {5}latency {3}: target=0/);
  });

  it("carries fio's JSON keys", () => {
    const j = renderJson(report()) as { jobs: Array<Record<string, Record<string, unknown>>> };
    const w = j.jobs[0].write as Record<string, unknown>;
    expect(w.iops).toBe(1000);
    expect(w.bw_bytes).toBe(4096000);
    expect(w.total_ios).toBe(1000);
    const clat = w.clat_ns as { percentile: Record<string, number>; N: number };
    expect(Object.keys(clat.percentile)).toContain('50.000000');
    expect(Object.keys(clat.percentile)).toContain('99.990000');
    expect(clat.N).toBe(1000);
    expect((w.lat_ns as { N: number }).N).toBe(1000);
    expect(w.slat_ns).toMatchObject({ N: 1000 });
    expect(j.jobs[0]['job options']).toEqual({ name: 'randw', rw: 'randwrite', iodepth: '1' });
    // no global section given: no "global options" at all (json_add_job_opts() on an empty list)
    expect(Object.keys(j)).not.toContain('global options');
    // a bare flag is not in fio's JSON (json.c's strdup_escape() refuses an empty value)
    const bare = report();
    bare.globalOptions = { time_based: '', direct: '1' };
    bare.jobs[0].options = { name: 'randw', group_reporting: '' };
    const jb = renderJson(bare) as Record<string, unknown> & { jobs: Array<Record<string, unknown>> };
    expect(jb['global options']).toEqual({ direct: '1' });
    expect(jb.jobs[0]['job options']).toEqual({ name: 'randw' });
    expect(Object.keys(j.jobs[0].latency_us)).toEqual([
      '2',
      '4',
      '10',
      '20',
      '50',
      '100',
      '250',
      '500',
      '750',
      '1000',
    ]);
  });

  it("makes display_thread_status()'s percentage of whole seconds, -.-% until an ETA is first known", () => {
    const shown = { bare: false, running: 1, states: ['w'] };
    const p = etaPercentage();
    // no ETA yet and none shown: -.-%
    expect(p(2500, 0, shown)).toBeNull();
    // a bare line, or one where every running job ramps, shows none and leaves the memory as it was
    expect(p(2500, 5, { ...shown, bare: true })).toBeNull();
    expect(p(2500, 5, { ...shown, states: ['/'] })).toBeNull();
    expect(p(2600, 0, shown)).toBeNull();
    // 3 whole seconds (2.5 s rounded up is 3) and 5 left: 3/8
    expect(p(2500, 5, shown)).toBe(3 / 8);
    expect(p(3001, 5, shown)).toBe(4 / 9);
    // once one was shown, an ETA of 0 is 100 %
    expect(p(5000, 0, shown)).toBe(1);
    // fio 3.33's lines of a 5 s time_based job: 60.0 % with 2 s left at 3 s, 80.0 % with 1 s at 4 s
    const q = etaPercentage();
    expect(fixed(q(3000, 2, shown)! * 100, 1)).toBe('60.0');
    expect(fixed(q(4000, 1, shown)! * 100, 1)).toBe('80.0');
  });

  it('draws the ETA line as fio', () => {
    expect(etaToStr(22)).toBe('00m:22s');
    expect(etaToStr(3723)).toBe('01h:02m:03s');
    expect(condensedRunStr(['w', 'w', 'R'])).toBe('w(2),R(1)');
    expect(
      etaLine({ running: 1, states: ['w'], done: 0.12, eta: 22, rB: 0, wB: 19.6 * 1048576, rI: 0, wI: 5012 }),
    ).toBe('Jobs: 1 (f=1): [w(1)][12.0%][w=19.6MiB/s][w=5012 IOPS][eta 00m:22s]');
    // eta.c's TD_RAMP: '/', no file open, and no percentage while every running job ramps
    const idle = { rB: 0, wB: 0, rI: 0, wI: 0 };
    expect(etaLine({ running: 1, states: ['/'], done: 0.3, eta: 3, ...idle })).toBe(
      'Jobs: 1 (f=0): [/(1)][-.-%][eta 00m:03s]',
    );
    expect(etaLine({ running: 2, states: ['/', 'w'], done: 0.5, eta: 2, ...idle })).toBe(
      'Jobs: 2 (f=1): [/(1),w(1)][50.0%][eta 00m:02s]',
    );
    // no estimate yet, or no job running: the count of jobs and open files alone
    expect(etaLine({ running: 2, states: ['/', 'w'], done: 0.5, eta: 2, ...idle }, true)).toBe(
      'Jobs: 2 (f=1)',
    );
  });

  it("shows trims as t= and a trimming job as D/d, trimwrite's as a writer's W/w (eta.c)", () => {
    const job = (rw: string) => parse(['--name=j', `--rw=${rw}`]).jobs[0];
    expect(
      ['trim', 'randtrim', 'trimwrite', 'randtrimwrite', 'randrw'].map((rw) => runLetter(job(rw))),
    ).toEqual(['D', 'd', 'W', 'w', 'm']);
    const trims = { running: 1, states: ['d'], done: 0.429, eta: 4, rB: 0, wB: 0, rI: 0, wI: 0 };
    const line = etaLine({ ...trims, tB: 200 * 1024, tI: 50 });
    // fio 3.33 with --rw=randtrim --rate_iops=,,50
    expect(line).toBe('Jobs: 1 (f=1): [d(1)][42.9%][t=200KiB/s][t=50 IOPS][eta 00m:04s]');
    expect(parseEtaLine(line)).toMatchObject({ tB: 200 * 1024, tI: 50, rB: 0, wB: 0 });
    expect(etaLine({ ...trims, states: ['w'], wB: 102400, wI: 25, tB: 102400, tI: 25 })).toBe(
      'Jobs: 1 (f=1): [w(1)][42.9%][w=100KiB/s,t=100KiB/s][w=25,t=25 IOPS][eta 00m:04s]',
    );
    // the trims' counters between two lines, as the others'
    const was = { t: 0, rBytes: 0, wBytes: 0, rIos: 0, wIos: 0, tBytes: 0, tIos: 0 };
    expect(etaRates(was, { ...was, t: 1000, tBytes: 51 * 4096, tIos: 51 })).toMatchObject({
      t: 204 * 1024,
      ti: 51,
    });
  });

  it("has eta.c's first estimate once the whole seconds since fio's start, rounded up, reach 3", () => {
    expect(etaBare(1000, 1)).toBe(true);
    expect(etaBare(2000.9, 1)).toBe(true); // mtime_since_genesis() is whole ms: (2000 + 999) / 1000 = 2
    expect(etaBare(2001, 1)).toBe(false);
    expect(etaBare(60_000, 0)).toBe(true);
    // a bare line is not padded over the full one before, nor does it shorten the next one's padding
    const redraw = etaRedraw();
    const full = 'Jobs: 1 (f=1): [w(1)][12.0%][w=19.6MiB/s][w=5012 IOPS][eta 00m:22s]';
    expect(redraw(full)).toBe(full + '\r');
    expect(redraw('Jobs: 0 (f=0)')).toBe('Jobs: 0 (f=0)\r');
    expect(redraw('Jobs: 1 (f=1): [w(1)][99.0%][eta 00m:01s]')).toBe(
      'Jobs: 1 (f=1): [w(1)][99.0%][eta 00m:01s]'.padEnd(full.length) + '\r',
    );
  });

  it("takes the ETA line's rates as eta.c's calc_rate() and calc_iops(): whole ms, KiB/s and IOPS, truncated", () => {
    const was = { t: 1000.2, rBytes: 0, wBytes: 4096, rIos: 0, wIos: 1 };
    // 999.9 ms pass: fio divides by 999; 1,000,000 bytes are 1,001,001 B/s, 977 whole KiB/s
    const is = { t: 2000.1, rBytes: 1_000_000, wBytes: 4096 + 3 * 4096, rIos: 1999, wIos: 4 };
    expect(etaRates(was, is)).toEqual({ r: 977 * 1024, w: 12 * 1024, t: 0, ri: 2001, wi: 3, ti: 0 });
    // no whole millisecond between the two lines: no rate, as fio's mtime of 0
    expect(etaRates(is, { ...is, t: is.t + 0.5, wIos: 9 })).toEqual({
      r: 0,
      w: 0,
      t: 0,
      ri: 0,
      wi: 0,
      ti: 0,
    });
  });

  it('reads its own ETA line back, to the precision it prints', () => {
    const status = {
      running: 3,
      states: ['R', 'R', 'w'],
      done: 0.5,
      eta: 3723,
      rB: 2.5 * 1048576,
      wB: 1.25 * 1048576,
      rI: 640,
      wI: 320,
      limit: null,
    };
    expect(parseEtaLine(etaLine(status))).toEqual(status);
    // with the running jobs' rate limits after the count, as fio 3.33 draws them
    const rated = { ...status, limit: { kind: 'iops' as const, min: 0, max: 200 } };
    expect(etaLine(rated)).toMatch(/^Jobs: 3 \(f=3\), 0-200 IOPS: \[R\(2\),w\(1\)\]/);
    expect(parseEtaLine(etaLine(rated))).toEqual(rated);
    // the running jobs' limits, summed over their directions as eta.c sums them (fio 3.33 and 3.36:
    // `100-200 IOPS`, `200KiB/s-0B/s`, `50-0 IOPS`)
    const limit = (...a: string[]) => etaLimit(parse(['--name=j', ...a]).jobs);
    expect(limit('--rw=randrw', '--rate_iops=100', '--rate_iops_min=50')).toEqual({
      kind: 'iops',
      min: 100,
      max: 200,
    });
    expect(limit('--rw=randrw', '--rate_min=100k')).toEqual({ kind: 'bw', min: 204800, max: 0 });
    expect(limit('--rw=randrw', '--rate_iops_min=20,30')).toEqual({ kind: 'iops', min: 50, max: 0 });
    expect(limit('--rw=read', '--rate=1m')).toEqual({ kind: 'bw', min: 0, max: 1048576 });
    // rate_iops_min before the dash (fio 3.36: `Jobs: 1 (f=1), 100-200 IOPS`)
    const floored = { ...status, limit: { kind: 'iops' as const, min: 100, max: 200 } };
    expect(etaLine(floored)).toMatch(/^Jobs: 3 \(f=3\), 100-200 IOPS: /);
    expect(parseEtaLine(etaLine(floored))).toEqual(floored);
    const minOnly = { ...status, limit: { kind: 'bw' as const, min: 204800, max: 0 } };
    expect(etaLine(minOnly)).toMatch(/^Jobs: 3 \(f=3\), 200KiB\/s-0B\/s: /);
    expect(parseEtaLine(etaLine(minOnly))).toEqual(minOnly);
    const bw = { ...status, limit: { kind: 'bw' as const, min: 0, max: 1048576 } };
    expect(etaLine(bw)).toMatch(/^Jobs: 3 \(f=3\), 0B\/s-1024KiB\/s: \[/);
    expect(parseEtaLine(etaLine(bw))).toEqual(bw);
    expect(etaLine(bw, true)).toBe('Jobs: 3 (f=3), 0B/s-1024KiB/s');
    // no rates yet, no percentage: the line fio draws while jobs start
    expect(
      parseEtaLine(etaLine({ running: 1, states: ['P'], done: null, eta: null, rB: 0, wB: 0, rI: 0, wI: 0 })),
    ).toMatchObject({
      running: 1,
      done: null,
      rB: 0,
      wI: 0,
    });
    expect(parseEtaLine('fio-3.36')).toBeNull();
  });
});

describe('fio job memory', () => {
  it("refuses iodepth × bs over FIO_IOMEM_MAX before allocating a buffer, in fio's words", async () => {
    // --bs=8m --iodepth=65536 made the guest fill 512 GiB of buffers, holding it all the while
    const job = parse(['--name=x', '--bs=8m', '--iodepth=65536', '--size=8m', '--rw=write', '--direct=1'])
      .jobs[0];
    let err = '';
    let pages = 0;
    const disk = {
      queue: {
        capacity: () => 16384,
        driver: {
          allocPage: () => {
            pages++;
            throw new Error('no buffer may be allocated');
          },
        },
      },
      cache: {
        fsync: async () => ({ ok: true, n: 0 }),
        invalidateAll: () => {},
        flushBuffers: async () => {},
      },
    };
    const w = new Worker(job, 0, { path: '/dev/xvda', disk, vfs: null } as never, {
      stdout: () => {},
      stderr: (t) => (err += t),
      signal: new AbortController().signal,
    });
    expect(job.iodepth * job.bs[0]).toBeGreaterThan(FIO_IOMEM_MAX);
    expect(await w.open()).toBe(false);
    expect(pages).toBe(0);
    expect(err).toBe(
      `fio: pid=${process.pid}, err=12/file:memory.c:334, func=iomem allocation, error=Cannot allocate memory\n`,
    );
  });

  it('bounds the I/O buffers of all the jobs a guest runs at once, not each job alone', async () => {
    // 12 jobs of 16 × 8 MiB each passed a per-job bound and took the guest to 1.8 GB
    const job = parse(['--name=x', '--bs=8m', '--iodepth=100', '--size=8m', '--rw=write', '--direct=1'])
      .jobs[0];
    const empty = { buf: Buffer.alloc(0) }; // nothing to fill: the test is about the accounting
    const disk = {
      queue: { capacity: () => 16384, driver: { allocPage: () => empty, freePage: () => {} } },
      cache: {
        fsync: async () => ({ ok: true, n: 0 }),
        invalidateAll: () => {},
        flushBuffers: async () => {},
      },
    };
    let err = '';
    const worker = (i: number) =>
      new Worker(job, i, { path: '/dev/xvda', disk, vfs: null } as never, {
        stdout: () => {},
        stderr: (t) => (err += t),
        signal: new AbortController().signal,
      });
    expect(job.iodepth * job.bs[0]).toBeLessThanOrEqual(FIO_IOMEM_MAX);
    expect(2 * job.iodepth * job.bs[0]).toBeGreaterThan(FIO_IOMEM_MAX);
    const a = worker(0);
    expect(await a.open()).toBe(true);
    const b = worker(1);
    expect(await b.open()).toBe(false);
    expect(err).toBe(
      `fio: pid=${process.pid}, err=12/file:memory.c:334, func=iomem allocation, error=Cannot allocate memory\n`,
    );
    // the first job's buffers go back to the guest when it closes
    await a.close();
    const c = worker(2);
    expect(await c.open()).toBe(true);
    await c.close();
  });

  it("suggests as init.c's show_closest_option(): fio's whole table, the argument as written, half its length", () => {
    expect(closestOption('--iodeph')).toBe('iodepth');
    expect(closestOption('--iodepthxx')).toBe('iodepth');
    expect(closestOption('--bs')).toBe('bs');
    // fio 3.33's hints for these (`fio --name=j <arg>`): options this fio lacks are in the table too,
    // and the value counts toward the distance
    expect(closestOption('--stonwall=1')).toBe('stonewall');
    expect(closestOption('--rwmix=50')).toBe('rwmixread');
    expect(closestOption('--foo=1')).toBe('loops');
    expect(closestOption('--directt=1')).toBe('directory');
    expect(closestOption('--output-formt=json')).toBe('output-format');
    expect(closestOption('--timebased')).toBe('time_based');
    // nearer than half the argument's length, or nothing (fio 3.33 said nothing for --zz=1)
    expect(closestOption('--zz=1')).toBeNull();
    // the bench's own names come after fio's
    expect(closestOption('--baselin', ['baseline'])).toBe('baseline');
    // names whose lengths differ by more than the best distance so far are not compared (a 100k-
    // character option took 2.4 s of distance tables)
    expect(closestOption('a'.repeat(100_000))).toBeNull();
  });
});

describe("random offsets: fio's random map without a map", () => {
  const pass = (o: RandomOrder, n: number) => Array.from({ length: n }, () => o.next());

  it('visits every block exactly once a pass, in a new order each pass', () => {
    for (const n of [1, 2, 3, 7, 100, 1000, 4097]) {
      const o = new RandomOrder(n, mulberry32(n));
      const first = pass(o, n);
      const second = pass(o, n);
      const all = Array.from({ length: n }, (_, i) => i);
      expect(
        [...first].sort((a, b) => a - b),
        `n=${n}`,
      ).toEqual(all);
      expect(
        [...second].sort((a, b) => a - b),
        `n=${n}`,
      ).toEqual(all);
      if (n >= 100) {
        expect(second).not.toEqual(first);
        // not the identity, nor close to it: few blocks land where sequential order would put them
        expect(first.filter((v, i) => v === i).length).toBeLessThan(n / 10);
      }
    }
  });

  it('is the same order for the same seed (randrepeat)', () => {
    expect(pass(new RandomOrder(5000, mulberry32(7)), 5000)).toEqual(
      pass(new RandomOrder(5000, mulberry32(7)), 5000),
    );
    expect(pass(new RandomOrder(5000, mulberry32(7)), 50)).not.toEqual(
      pass(new RandomOrder(5000, mulberry32(8)), 50),
    );
  });

  it('serves a disk of more than 2^32 blocks without a table of them (a 16 TiB disk at 4 KiB had none)', () => {
    const n = 2 ** 35 + 1;
    const o = new RandomOrder(n, mulberry32(1));
    const got = pass(o, 20_000);
    expect(new Set(got).size).toBe(got.length);
    expect(got.every((v) => Number.isInteger(v) && v >= 0 && v < n)).toBe(true);
    // spread over the whole range, not its start
    expect(got.filter((v) => v >= n / 2).length).toBeGreaterThan(got.length / 4);
  });
});

describe("block sizes that vary: bsrange, bssplit, sizes per direction (io_u.c's get_next_buflen())", () => {
  const sizesOf = (...args: string[]) => blockSizes(parse(['--name=j', ...args]).jobs[0]);
  const FRAND32_MAX = 0xffffffff;

  it("draws a range's lengths as fio does: min + max × r, down to a step of the smallest, at most the largest", () => {
    const draws: number[] = [];
    const lengths = new BlockLengths(sizesOf('--bsrange=4k-16k'), false, () => draws.shift()!);
    const len = (r: number, room = Infinity) => {
      draws.push(r);
      return lengths.next(1, room);
    };
    // min + floor(16k × r / 2^32): [4k, 20k) in 4k steps, the last step cut to 16k — four sizes alike
    expect(len(0)).toBe(4096);
    expect(len(2 ** 30 - 1)).toBe(4096);
    expect(len(2 ** 30)).toBe(8192);
    expect(len(2 ** 31)).toBe(12288);
    expect(len(3 * 2 ** 30)).toBe(16384);
    expect(len(FRAND32_MAX)).toBe(16384);
    // a length that does not fit is drawn again: the draw is taken below the bound of those that fit,
    // the same lengths alike (8 KiB left: 4k or 8k, half each); none fits under the smallest
    expect(len(FRAND32_MAX, 8192)).toBe(8192);
    expect(len(2 ** 30, 8192)).toBe(4096);
    expect(len(3 * 2 ** 30, 8192)).toBe(8192);
    expect(lengths.next(1, 4095)).toBe(0);
    expect(draws).toEqual([]);
    // one size is the size, with no draw and no room looked at
    expect(new BlockLengths(sizesOf('--bs=8k'), false, () => 0).next(0, 0)).toBe(8192);
  });

  it("says what it skipped as it parses, as fio's log_err does, and goes on", () => {
    expect(parse(['--name=j', '--bs=4k,0,8k']).warnings).toEqual(['bs: min value out of range: 0 (1 min)']);
    expect(blockSizes(parse(['--name=j', '--bs=4k,0,8k']).jobs[0]).map((d) => d.min)).toEqual([
      4096, 4096, 8192,
    ]);
    const many = Array.from({ length: 70 }, (_, i) => `${(i + 1) * 4}k/1`).join(':');
    const cl = parse(['--name=j', `--bssplit=${many}`]);
    expect(cl.warnings).toEqual(Array(3).fill('fio: hit max of 64 split entries'));
    expect(blockSizes(cl.jobs[0])[0].max).toBe(256 * 1024);
    // an option that fails after them: they are said first
    expect(usage(() => parse(['--name=j', '--bs=4k,0', '--rw=wat']))[0]).toBe(
      'bs: min value out of range: 0 (1 min)',
    );
    expect(parse(['--name=j', '--bs=,8k']).warnings).toEqual([]);
    // an alias's value is parsed as its option's and said by the option's name, as parse.c's o->name;
    // the line that names what failed keeps the name as given
    expect(parse(['--name=j', '--blockalign=4k,0']).warnings).toEqual([
      'ba: min value out of range: 0 (1 min)',
    ]);
    expect(usage(() => parse(['--name=j', '--blocksize=0']))).toEqual([
      'bs: min value out of range: 0 (1 min)',
      'fio: failed parsing blocksize=0',
    ]);
    expect(usage(() => parse(['--name=j', '--io_limit=101%']))).toEqual([
      "fio: io_size values greater than 100% aren't supported",
      'fio: failed parsing io_limit=101%',
    ]);
    // with verify and no random map, sizes that vary are read back as far as they do not overlap
    const job = (...args: string[]) => parse(['--name=j', ...args]).jobs[0];
    expect(
      fixupErrors(job('--rw=write', '--bsrange=4k-16k', '--norandommap', '--verify=crc32c'), false),
    ).toEqual(['fio: norandommap given for variable block sizes, verify limited']);
    expect(fixupErrors(job('--rw=write', '--bs=4k', '--norandommap', '--verify=crc32c'), false)).toEqual([]);
  });

  it("draws fio's sizes of shares that wrapped: one past 2^31 takes every draw, a negative one is 100", () => {
    const draws = (split: string) => {
      const rand = mulberry32(5);
      const l = new BlockLengths(sizesOf(`--bssplit=${split}`), false, () => Math.floor(rand() * 2 ** 32));
      const seen = new Map<number, number>();
      for (let i = 0; i < 2000; i++) {
        const len = l.next(1, Infinity);
        seen.set(len, (seen.get(len) ?? 0) + 1);
      }
      return seen;
    };
    // fio 3.33: all 16K
    expect([...draws('4k/80:8k/80:16k').keys()]).toEqual([16384]);
    // fio 3.33: 4K and 16K about alike, never 8K
    const halves = draws('4k/-5:8k/-5:16k/50');
    expect([...halves.keys()].sort((a, b) => a - b)).toEqual([4096, 16384]);
    expect(halves.get(16384)!).toBeGreaterThan(850);
    expect(halves.get(4096)!).toBeGreaterThan(850);
  });

  it("takes a split's size by the running sum of its shares, in the order of the shares", () => {
    const draws: number[] = [];
    // sorted by share: 4k/10, 6k/40 (taken down to 4k, a step of the smallest), 64k/50
    const lengths = new BlockLengths(sizesOf('--bssplit=64k/50:4k/10:6k/40'), false, () => draws.shift()!);
    const len = (r: number, room = Infinity) => {
      draws.push(r);
      return lengths.next(0, room);
    };
    const step = Math.floor(FRAND32_MAX / 100);
    // r / 10 <= step: the first; then r / 50 <= step; else the last
    expect(len(10 * step + 9)).toBe(4096);
    expect(len(10 * step + 10)).toBe(4096);
    expect(len(50 * step + 49)).toBe(4096);
    expect(len(50 * step + 50)).toBe(65536);
    expect(len(FRAND32_MAX)).toBe(65536);
    // a size that does not fit is passed over for the next: the last, 64k, does not fit either,
    // and is drawn again until one does
    draws.push(0);
    expect(len(FRAND32_MAX, 8192)).toBe(4096);
    // a size whose share is 0 is never drawn: with only it fitting, the I/O is not made (fio draws forever)
    const zero = new BlockLengths(sizesOf('--bssplit=4k/0:64k/100'), false, () => 0);
    expect(zero.next(0, 8192)).toBe(0);
  });

  it('keeps a random map of the smallest blocks: a run stops at a block done, the next free wraps around', () => {
    const m = new BlockMap(100);
    expect(m.setRun(10, 4)).toBe(4);
    // a run into block 10 is cut there
    expect(m.setRun(8, 4)).toBe(2);
    expect([m.isSet(8), m.isSet(9), m.isSet(13), m.isSet(14)]).toEqual([true, true, true, false]);
    expect(m.nextFree(8)).toBe(14);
    // at the end it runs out of map
    expect(m.setRun(98, 4)).toBe(2);
    expect(m.nextFree(98)).toBe(0);
    // everything but one block, in a map whose full words are skipped
    const big = new BlockMap(70_000);
    big.setRun(0, 70_000);
    expect(big.nextFree(5)).toBe(-1);
    const holes = new BlockMap(70_000);
    holes.setRun(0, 45_677);
    holes.setRun(45_678, 70_000);
    for (const from of [0, 45_676, 45_677, 45_678, 69_999]) expect(holes.nextFree(from)).toBe(45_677);
    holes.clear();
    expect(holes.nextFree(69_999)).toBe(0);
  });

  it('covers a random region exactly once a pass, each I/O cut where it meets one done before', () => {
    for (const args of [
      ['--bsrange=4k-16k'],
      ['--bssplit=4k/30:8k/30:128k/40'],
      ['--bs=4k,4k', '--bsrange=4k-64k'],
    ]) {
      const sizes = sizesOf(...args);
      const rand = mulberry32(11);
      const size = 1 << 20;
      const o = new VariableOffsets({
        base: 0,
        size,
        sizes,
        align: sizes.map((s) => s.min),
        random: true,
        rand,
        end: 8 << 20,
        wrap: false,
        lengths: new BlockLengths(sizes, false, () => Math.floor(rand() * 2 ** 32)),
        seqRand: false,
        map: new BlockMap(size / 4096),
        drawFor: () => null,
        distribution: false,
      });
      for (let pass = 0; pass < 2; pass++) {
        const done = new Uint8Array(size / 4096);
        let bytes = 0;
        const lens = new Set<number>();
        for (let at = o.place(1); at; at = bytes < size ? o.place(1) : null) {
          for (let b = at.offset / 4096; b < (at.offset + at.len) / 4096; b++) {
            expect(done[b], `${args.join(' ')}: block ${b} twice`).toBe(0);
            done[b] = 1;
          }
          bytes += at.len;
          lens.add(at.len);
        }
        expect(bytes).toBe(size);
        // sizes drawn, and cut ones beside them, none past the largest
        expect(lens.size).toBeGreaterThan(2);
        expect(Math.max(...lens)).toBeLessThanOrEqual(sizes[1].max);
        // a full map: nothing more this pass
        expect(o.place(1)).toBeNull();
        o.newPass();
      }
    }
  });

  it('ends a sequential pass where the smallest size no longer fits; time_based starts over at the end', () => {
    const sizes = sizesOf('--bsrange=4k-8k');
    const run = (region: number, wrap: boolean) => {
      const rand = mulberry32(3);
      const o = new VariableOffsets({
        base: 4096,
        size: region,
        sizes,
        align: sizes.map((s) => s.min),
        random: false,
        rand,
        end: 8 << 20,
        wrap,
        lengths: new BlockLengths(sizes, false, () => Math.floor(rand() * 2 ** 32)),
        seqRand: false,
        map: null,
        drawFor: () => null,
        distribution: false,
      });
      const got: Array<[number, number]> = [];
      for (let i = 0, at = o.place(1); at && i < 12; i++, at = o.place(1))
        got.push([at.offset - 4096, at.len]);
      return got;
    };
    // each I/O starts where the last ended, 4k or 8k long, until less than 4k is left of 10 KiB
    for (const wrap of [false, true]) {
      const got = run(10 * 1024, wrap);
      let pos = 0;
      for (const [off, len] of got) {
        expect(off).toBe(pos);
        expect([4096, 8192]).toContain(len);
        pos += len;
      }
      expect(pos).toBeGreaterThan(10 * 1024 - 4096);
      expect(pos).toBeLessThanOrEqual(10 * 1024);
    }
    // 16 KiB ends exactly at its end (a length that does not fit is drawn again): a pass of its own,
    // or with time_based the region again from its start
    const once = run(16 * 1024, false);
    expect(once.reduce((a, [, len]) => a + len, 0)).toBe(16 * 1024);
    const again = run(16 * 1024, true);
    expect(again.length).toBe(12);
    expect(again.slice(0, once.length)).toEqual(once);
    expect(again[once.length][0]).toBe(0);
  });

  it("takes blockalign, bs_unaligned and bs_is_seq_rand as fio's fixup_options() leaves them", () => {
    const job = (...args: string[]) => parse(['--name=j', ...args]).jobs[0];
    // blockalign is per direction, and only a random job's; one other than the sizes turns the map off,
    // as fio says on stderr
    expect(blockAlign(job('--rw=randread', '--ba=512,2k'), true)).toEqual([512, 2048, 2048]);
    expect(blockAlign(job('--rw=read', '--blockalign=512'), false)).toEqual([4096, 4096, 4096]);
    expect(fixupErrors(job('--rw=randread', '--blockalign=512'), false)).toEqual([
      'fio: Any use of blockalign= turns off randommap',
    ]);
    expect(fixupErrors(job('--rw=randread', '--blockalign=4k'), false)).toEqual([]);
    expect(fixupErrors(job('--rw=randread', '--blockalign=512', '--norandommap'), false)).toEqual([]);
    expect(fixupErrors(job('--rw=read', '--blockalign=512'), false)).toEqual([]);
    expect(withoutRandomMap(job('--rw=randread', '--blockalign=512'))).toBe(true);
    // bs_is_seq_rand: the job line has no trims
    expect(jobBanner(job('--rw=randread', '--bs=4k,16k', '--bs_is_seq_rand=1'))).toContain(
      'bs=(R) 4096B-4096B, (W) 16.0KiB-16.0KiB, bs_is_seq_rand, ioengine',
    );
    // bs_unaligned: lengths off the smallest size's steps
    const draws = [2 ** 31];
    expect(new BlockLengths(sizesOf('--bsrange=512-4k'), true, () => draws.shift()!).next(1, Infinity)).toBe(
      512 + 2048,
    );
    const odd = [2 ** 31 + 2 ** 20];
    expect(new BlockLengths(sizesOf('--bsrange=512-4k'), true, () => odd.shift()!).next(1, Infinity)).toBe(
      2561,
    );
    const unaligned = [3 * 2 ** 29];
    expect(
      new BlockLengths(sizesOf('--bsrange=1000-3000'), true, () => unaligned.shift()!).next(1, Infinity),
    ).toBe(1000 + 1125);
    expect(
      usage(() => checkJob(job('--rw=randwrite', '--bsrange=512-4k', '--bs_unaligned', '--direct=1'))),
    ).toEqual([
      'fio: j: bs_unaligned with a bsrange and direct=1 is refused: O_DIRECT I/O of lengths that are not whole sectors fails (fio: bs_unaligned may not work with raw io)',
    ]);
    expect(
      usage(() => checkJob(job('--rw=write', '--bsrange=512-4k', '--bs_unaligned', '--verify=md5'))),
    ).toEqual(['fio: j: verify with bs_unaligned and a bsrange is not supported by this fio']);
    // a split's lengths and one size are whole sectors: taken, with fio's warning for direct=1
    checkJob(job('--rw=randwrite', '--bssplit=4k/50:6k/50', '--bs_unaligned', '--direct=1', '--verify=md5'));
    // each numjobs clone's fixup_options() says it
    expect(
      setupLines(
        parse([
          '--name=j',
          '--rw=write',
          '--bs=4k',
          '--bs_unaligned',
          '--direct=1',
          '--numjobs=2',
          '--output-format=json',
        ]),
      ),
    ).toEqual([
      { stderr: true, line: 'fio: bs_unaligned may not work with raw io' },
      { stderr: true, line: 'fio: bs_unaligned may not work with raw io' },
    ]);
    // writes of one size at a blockalign below it overlap, with no map to keep them apart
    expect(usage(() => checkJob(job('--rw=randwrite', '--blockalign=512', '--verify=crc32c')))).toEqual([
      'fio: j: verify of writes that may overlap (sizes that vary, or a blockalign below them) without a random map is not supported by this fio',
    ]);
    // a blockalign at or above the size keeps writes apart, and a reader writes nothing: taken
    checkJob(job('--rw=randwrite', '--bs=4k', '--blockalign=16k', '--verify=crc32c'));
    checkJob(job('--rw=randread', '--blockalign=2k', '--verify=crc32c'));
    const dev = { path: '/dev/xvda', bytes: 8 << 20, logicalBlockSize: 4096 };
    expect(
      usage(() => checkJobAgainstDevice(job('--rw=randread', '--blockalign=512', '--direct=1'), dev)),
    ).toEqual([
      'fio: ba=512 (read) is not a multiple of the logical block size of /dev/xvda (4096) for direct=1',
    ]);
    // buffered I/O starts anywhere, and a direction the job does not do is not looked at
    checkJobAgainstDevice(job('--rw=randread', '--blockalign=512'), dev);
    checkJobAgainstDevice(job('--rw=randread', '--blockalign=4k,512', '--direct=1'), dev);
  });

  it('refuses what this fio does not do with sizes that vary, naming it', () => {
    const job = (...args: string[]) => parse(['--name=j', ...args]).jobs[0];
    expect(
      usage(() => checkJob(job('--rw=randwrite', '--bsrange=4k-16k', '--norandommap', '--verify=crc32c'))),
    ).toEqual([
      'fio: j: verify of writes that may overlap (sizes that vary, or a blockalign below them) without a random map is not supported by this fio',
    ]);
    // with a random map, or sequential, they do not overlap: taken
    checkJob(job('--rw=randwrite', '--bsrange=4k-16k', '--verify=crc32c'));
    checkJob(job('--rw=write', '--bssplit=4k/50:16k/50', '--norandommap', '--verify=crc32c'));
    const dev = { path: '/dev/xvda', bytes: 8 << 20, logicalBlockSize: 512 };
    expect(usage(() => checkJobAgainstDevice(job('--bsrange=1000-4k,4k'), dev))).toEqual([
      'fio: read block size=1000 is not a multiple of the logical block size of /dev/xvda (512)',
    ]);
    // a map of 2^26 blocks at most: 256 GiB of 4 KiB
    const big = { path: '/dev/xvdb', bytes: 2 ** 41, logicalBlockSize: 512 };
    checkJobAgainstDevice(job('--rw=randread', '--bsrange=4k-8k', '--size=256g'), big);
    expect(
      usage(() => checkJobAgainstDevice(job('--rw=randread', '--bsrange=4k-8k', '--size=1100g'), big)),
    ).toEqual([
      'fio: j: a random map of 288358400 blocks of 4096 bytes is more than this fio keeps for block sizes that vary (67108864): give norandommap, a smaller size or a larger smallest size',
    ]);
    checkJobAgainstDevice(job('--rw=randread', '--bsrange=4k-8k', '--norandommap'), big);
    expect(usage(() => checkJobAgainstDevice(job('--bs=4k', '--size=2k'), dev))).toEqual([
      'fio: size too small, must not be less than minimum block size: 2048 < 4096',
    ]);
  });
});

describe("fio's non-fatal errors (td_error.c, options.c's str_ignore_error_cb())", () => {
  const policy = (...given: string[]): ErrorPolicy => {
    const p: ErrorPolicy = { continueOnError: 0, ignoreError: [null, null, null] };
    for (const g of given) applyIgnoreError(p, g);
    return p;
  };

  it('takes an EILSEQ as a verify failure whatever its direction: a PI error on a read is one', () => {
    expect([errorKind(false, 84), errorKind(true, 84), errorKind(false, 5), errorKind(true, 5)]).toEqual([
      2, 2, 0, 1,
    ]);
    const p: ErrorPolicy = { continueOnError: 1, ignoreError: [null, null, null] };
    expect([nonFatal(p, 0, 5), nonFatal(p, 0, 28), nonFatal(p, 2, 84)]).toEqual([true, false, false]);
  });

  it("decides an I/O error's fate as io_completed(), io_queue_event() and break_on_this_error() do", () => {
    const all = { continueOnError: 0xffff, ignoreError: [null, null, null] as ErrorPolicy['ignoreError'] };
    const io = (o: Partial<Parameters<typeof ioErrorOutcome>[1]>) => ({
      write: false,
      errno: 5,
      synchronous: false,
      verifyPhase: false,
      ...o,
    });
    // non-fatal: goes on; verror from xfer for a synchronous engine, from the log with error_dump
    expect(ioErrorOutcome({ ...all, errorDump: false }, io({}))).toEqual({
      goesOn: true,
      said: false,
      verror: null,
      countedFatal: false,
    });
    expect(ioErrorOutcome({ ...all, errorDump: false }, io({ synchronous: true })).verror).toBe('xfer');
    expect(ioErrorOutcome({ ...all, errorDump: true }, io({ synchronous: true }))).toMatchObject({
      said: true,
      verror: 'io_u error',
    });
    // a synchronous engine's verify phase stops on it, uncounted
    expect(
      ioErrorOutcome({ ...all, errorDump: false }, io({ synchronous: true, verifyPhase: true })),
    ).toEqual({
      goesOn: false,
      said: false,
      verror: 'xfer',
      countedFatal: false,
    });
    // fatal, but of a kind continued on: a synchronous engine counts it, an asynchronous one not
    const enospc = {
      continueOnError: 1,
      ignoreError: [[28], null, null] as ErrorPolicy['ignoreError'],
      errorDump: false,
    };
    expect(ioErrorOutcome(enospc, io({ synchronous: true }))).toEqual({
      goesOn: false,
      said: true,
      verror: 'io_u error',
      countedFatal: true,
    });
    expect(ioErrorOutcome(enospc, io({})).countedFatal).toBe(false);
    expect(ioErrorOutcome(enospc, io({ synchronous: true, write: true })).countedFatal).toBe(false);
  });

  it('reads the lists as fio does: atoi, absolute values, an empty entry ending a list', () => {
    expect(policy('EIO::ENOSPC').ignoreError).toEqual([[5], null, null]);
    expect(policy('-28, 5x:ENOSPC').ignoreError).toEqual([[28], [5, 28], null]);
    // str_ignore_error_cb() splits the value from its start, blanks and all: a name after a blank is
    // unknown, a number is read by atoi(), which skips them
    expect(policy('  5,  7').ignoreError).toEqual([[5], [7], null]);
    expect(() => policy('  EIO')).toThrow(/Unknown error {3}EIO, please use number value/);
    const p = policy(',,110');
    expect(p.ignoreError).toEqual([null, null, [110]]);
    expect(p.continueOnError).toBe(4);
    // a kind given before and emptied: nothing of it is non-fatal any more
    const q = policy('EIO', ',EIO');
    expect(q.ignoreError).toEqual([[], [5], null]);
    expect(nonFatal(q, 0, 5)).toBe(false);
    expect(nonFatal(policy(',EIO'), 0, 5)).toBe(false);
    // glibc's atoi(): all the digits, the long cut to an int (fio 3.33 takes 4294967301 as EIO)
    expect(policy('0000000000005,4294967301').ignoreError).toEqual([[5], [5], null]);
    expect(() => policy('4294967296')).toThrow(/Unknown error 4294967296/);
    expect(() => policy('E5')).toThrow(/Unknown error E5, please use number value/);
    expect(() => policy('0')).toThrow(/Unknown error 0/);
  });
});

describe("a job's stderr waits for its reader (fio-job-stderr.ts)", () => {
  it('keeps the job from issuing while the reader lags, and wakes it once the reader has caught up', async () => {
    let release!: () => void;
    let said = '';
    let woken = 0;
    const io = {
      stdout: () => {},
      stderr: (t: string) => (said += t),
      signal: new AbortController().signal,
      stderrDrain: () => new Promise<void>((r) => (release = r)),
    };
    const err = new JobStderr(io, null as never, () => woken++);
    err.say('fio: latency of 5000 nsec exceeds specified max (1000 nsec): /dev/xvda read 0 4096\n');
    expect(said).toContain('exceeds specified max');
    expect(err.busy).toBe(true);
    // more lines while it lags wait on the same drain
    err.say('second\n');
    await Promise.resolve();
    expect([err.busy, woken]).toEqual([true, 0]);
    release();
    await until(() => woken === 1);
    expect(err.busy).toBe(false);
    // without a drain (a command run in-process) nothing waits
    const free = new JobStderr({ ...io, stderrDrain: undefined }, null as never, () => woken++);
    free.say('x\n');
    expect(free.busy).toBe(false);
  });
});

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setImmediate(r));
  expect(cond()).toBe(true);
}

describe("a job's error counts and sync figures across merges and the raw JSON (stat.c's __show_run_stats())", () => {
  const job = (o: { error?: number; coe?: number; errs?: number[]; syncs?: number[] }) => {
    const j = new JobStats('j');
    j.error = o.error ?? 0;
    j.verror = o.error ? 'file:io_u.c:1896, func=io_u error, error=Input/output error' : '';
    j.continueOnError = o.coe ?? 0;
    for (const e of o.errs ?? []) j.countError(e);
    for (const ns of o.syncs ?? []) {
      j.syncIos++;
      j.syncLat.add(ns);
    }
    return j;
  };

  it("gives a group its first member's reported error, its counts added up, the last member's first_error", () => {
    const m = JobStats.merged('g', [
      job({ coe: 1, syncs: [1000] }),
      job({ coe: 1, errs: [5, 84], syncs: [3000, 5000] }),
      job({ coe: 1, error: 84 }),
    ]);
    // the second member's first non-fatal error is the first reported one; the third's fatal one
    // does not replace it
    expect([m.reported.error, m.totalErr, m.firstError, m.continueOnError]).toEqual([5, 2, 0, 1]);
    expect([m.error, m.syncIos, m.syncLat.n, m.syncLat.max]).toEqual([84, 3, 3, 5000]);
    // through the raw JSON pvblk bench reads, unchanged
    const back = JobStats.fromRaw(JSON.parse(JSON.stringify(m.toRaw())) as ReturnType<JobStats['toRaw']>);
    expect([back.reported, back.totalErr, back.firstError, back.syncIos, back.syncLat.n]).toEqual([
      m.reported,
      2,
      0,
      3,
      3,
    ]);
  });

  it("keeps a job's first error when a later stretch of it is appended (a bench slice)", () => {
    const a = job({ coe: 0xffff, errs: [5] });
    a.append(job({ coe: 0xffff, errs: [84, 84], syncs: [2000] }));
    expect([a.totalErr, a.firstError, a.reported.error, a.syncIos]).toEqual([3, 5, 5, 1]);
    const none = job({ coe: 0xffff });
    none.append(job({ coe: 0xffff, errs: [84] }));
    expect([none.firstError, none.reported.error]).toEqual([84, 84]);
  });
});
