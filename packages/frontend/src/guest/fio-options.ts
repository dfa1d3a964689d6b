/**
 * fio's job options (options.c's table), as the guest's `fio` and `pvblk bench` take them: the names,
 * value syntax (`4k`, `30s`, `0`/`1`) and error messages of fio 3.x, each option applied to the job
 * (fio-job.ts) or the run it is given for. The values are read as parse.c reads them (fio-parse.ts);
 * the command line they come on is fio-cmdline.ts's.
 */
import { ownEntry } from '@pvblk/shared';
import { fixed } from './printf.ts';
import { parseVerifyPattern } from './fio-pattern.ts';
import { parseBsRange, parseBsSplit } from './fio-block-size.ts';
import { applyIgnoreError, parseContinueOnError } from './fio-td-error.ts';
import type { RandomDistribution } from './fio-distribution.ts';
import type { IodepthBatch } from './fio-reap.ts';
import {
  MAX_JOBS,
  type FioEngine,
  type FioJob,
  type FioLatencyTarget,
  type FioLogOptions,
  type FioRw,
} from './fio-job.ts';
import {
  fail,
  failedParsing,
  fioBool,
  latencyNs,
  optionRounds,
  fioChoice,
  parseFloatOption,
  parseIntOption,
  parseMicros,
  parseSize,
  fioTime,
  parseUint32,
  perDirection,
  zoneSuffix,
} from './fio-parse.ts';

export const FIO_VERSION = 'fio-3.36';

/**
 * fio's output_format bits: the reports a run prints, any of them together (`--output-format=json,normal`),
 * in fio's order at the end of the run — terse, then JSON, then normal. `jsonPlus` adds the latency bins.
 */
export interface FioOutputFormat {
  terse: boolean;
  json: boolean;
  jsonPlus: boolean;
  normal: boolean;
}

/** init.c's parse_output_format(): a comma-separated list, `minimal` and `csv` being terse's aliases. */
export function parseOutputFormat(raw: string): FioOutputFormat {
  const f: FioOutputFormat = { terse: false, json: false, jsonPlus: false, normal: false };
  for (const opt of raw.split(',')) {
    if (opt === 'terse' || opt === 'minimal' || opt === 'csv') f.terse = true;
    else if (opt === 'json') f.json = true;
    else if (opt === 'json+') f.json = f.jsonPlus = true;
    else if (opt === 'normal') f.normal = true;
    else fail(`fio: invalid output format ${opt}`, 'fio: failed parsing output-format');
  }
  return f;
}

/** How many reports a run prints: with more than one, each waits for the end of the run. */
export function outputCount(f: FioOutputFormat): number {
  return Number(f.terse) + Number(f.json) + Number(f.normal);
}

export interface FioGlobal {
  outputFormat: FioOutputFormat;
  /** fio's `--output`: the file the run's output goes to (the ETA line stays on the terminal). */
  output: string | null;
  eta: 'auto' | 'always' | 'never';
  /** fio's `--section`: the job file sections that run (with the global ones); none given, all. */
  sections: string[];
  /** fio's `--parse-only` (and `--showcmd`, which also prints each job file as options): no run. */
  parseOnly: boolean;
  showcmd: boolean;
}

/** fio's values of rw in its order (options.c); readwrite is rw's other name. */
const RW_VALUES: Array<[FioRw | 'readwrite', string]> = [
  ['read', 'Sequential read'],
  ['write', 'Sequential write'],
  ['trim', 'Sequential trim'],
  ['randread', 'Random read'],
  ['randwrite', 'Random write'],
  ['randtrim', 'Random trim'],
  ['rw', 'Sequential read and write mix'],
  ['readwrite', 'Sequential read and write mix'],
  ['randrw', 'Random read and write mix'],
  ['trimwrite', 'Trim and write mix, trims preceding writes'],
  ['randtrimwrite', 'Randomly trim and write mix, trims preceding writes'],
];

function parseRw(opt: string, raw: string): FioRw {
  const v = fioChoice(opt, raw, RW_VALUES);
  // str_rw_cb() takes what follows a `:` as a count: a new random offset every N I/Os, or a hole of
  // N bytes after each sequential one (ddir_seq_nr, ddir_seq_add)
  if (raw.includes(':'))
    failedParsing(opt, raw, `${opt}: ${raw}: the ':<n>' after the pattern is not supported by this fio`);
  return v === 'readwrite' ? 'rw' : v;
}

/**
 * `startdelay` (FIO_OPT_STR_VAL_TIME with a second offset): the first value is the low end, the last
 * the high end, one alone both. fio takes a high end below the low one, or a negative value, and then
 * waits for what wraps around (it hangs); here those are refused.
 */
function startDelay(raw: string): [number, number] {
  const rounds = optionRounds(raw);
  const ends = [rounds[0], rounds[rounds.length - 1]].map(({ value }) => {
    if (value.startsWith('-'))
      failedParsing('startdelay', raw, `startdelay: ${value}: a delay is not negative`);
    // said of the option as given, not of the piece (`startdelay=1-` has an empty high end)
    const ms = /^[0-9]/.test(value.trim()) ? fioTime('startdelay', value.trim()) : NaN;
    if (Number.isNaN(ms)) failedParsing('startdelay', raw);
    return ms;
  });
  if (ends[1] < ends[0])
    failedParsing(
      'startdelay',
      raw,
      `startdelay: the high end (${rounds[rounds.length - 1].value}) is below the low end (${rounds[0].value})`,
    );
  return [ends[0], ends[1]];
}

/** fio's `verify` values with their help, in its table's order (options.c). */
const VERIFY_CHOICES = [
  ['0', "Don't do IO verification"],
  ['md5', 'Use md5 checksums for verification'],
  ['crc64', 'Use crc64 checksums for verification'],
  ['crc32', 'Use crc32 checksums for verification'],
  ['crc32c-intel', 'Use crc32c checksums for verification (hw assisted, if available)'],
  ['crc32c', 'Use crc32c checksums for verification (hw assisted, if available)'],
  ['crc16', 'Use crc16 checksums for verification'],
  ['crc7', 'Use crc7 checksums for verification'],
  ['sha1', 'Use sha1 checksums for verification'],
  ['sha256', 'Use sha256 checksums for verification'],
  ['sha512', 'Use sha512 checksums for verification'],
  ['sha3-224', 'Use sha3-224 checksums for verification'],
  ['sha3-256', 'Use sha3-256 checksums for verification'],
  ['sha3-384', 'Use sha3-384 checksums for verification'],
  ['sha3-512', 'Use sha3-512 checksums for verification'],
  ['xxhash', 'Use xxhash checksums for verification'],
  [
    'meta',
    "Use io information for verification. Now is implied by default, thus option is obsolete, don't use it",
  ],
  ['pattern', 'Verify strict pattern'],
  ['null', 'Pretend to verify'],
] as const;

/** Applies an option's value: to `job` (the global section's defaults, unless `inJob`), or the run. */
type Apply = (job: FioJob | null, global: FioGlobal, raw: string, inJob: boolean) => void;

interface OptionDef {
  /** fio's set-only options: a value only with `=`. */
  flag?: boolean;
  /** Applies to the whole run, not to one job. */
  global?: boolean;
  /** A switch of fio's command line, not a job option: its JSON lists it in no options object. */
  switch?: boolean;
  /** The option this name is fio's alias of: its JSON lists the option by that name (parse.c). */
  aliasOf?: string;
  apply: Apply;
}

const jobOpt =
  (fn: (job: FioJob, raw: string) => void): Apply =>
  (job, _g, raw) => {
    if (job) fn(job, raw);
  };

/**
 * An option of one of a job's groups of settings (its logs, its latency target): set on a copy of the
 * group, which the job may share with the defaults it was made from.
 */
const groupOpt =
  <K extends 'logs' | 'latencyTarget' | 'iodepthBatch'>(
    key: K,
    fn: (group: FioJob[K], raw: string) => void,
  ): Apply =>
  (job, _g, raw) => {
    if (!job) return;
    const copy = { ...job[key] };
    job[key] = copy;
    fn(copy, raw);
  };
const logOpt = (fn: (logs: FioLogOptions, raw: string) => void) => groupOpt('logs', fn);
const latencyOpt = (fn: (l: FioLatencyTarget, raw: string) => void) => groupOpt('latencyTarget', fn);

/**
 * One of iodepth_batch_submit, iodepth_batch_complete_min/max and iodepth_low (fio-reap.ts): an
 * integer with parse.c's units, stored as fio stores a FIO_OPT_INT — its low 32 bits, so -1 is
 * 4294967295 (a batch or low mark past the depth, which fixup_options() takes down to it).
 */
function batchOption(opt: string, key: keyof IodepthBatch): OptionDef {
  return {
    apply: groupOpt('iodepthBatch', (b, v) => {
      const n = parseIntOption(opt, v, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
      b[key] = Number(BigInt.asUintN(32, BigInt(n)));
    }),
  };
}

/** log_alternate_epoch, under its name or its alias: on the clock log_alternate_epoch_clock_id names. */
function alternateEpochOption(opt: string): OptionDef {
  return {
    apply: logOpt((l, v) => {
      l.alternateEpochClock = fioBool(opt, v, 'bool') ? l.alternateClockId : null;
    }),
  };
}

/** An option with a value per direction (perDirection()), kept in the job's `key`. */
function perDirOption(
  opt: string,
  key: 'rate' | 'rateIops' | 'rateMin' | 'rateIopsMin' | 'maxLatencyNs',
  one: (opt: string, raw: string) => number,
  /** fio's type: an unsigned int (FIO_OPT_INT) or an unsigned long long (FIO_OPT_ULL). */
  type: 'int' | 'ull',
): OptionDef {
  const wrap = type === 'int' ? 2 ** 32 : 2 ** 64;
  return { apply: jobOpt((j, v) => (j[key] = perDirection(opt, v, (x) => one(opt, x), wrap, j[key]))) };
}

/**
 * log_hist_coarseness: fio takes any, and past 10 (2^11 buckets a field) reads outside its 1856
 * buckets; here it ends at 10.
 */
function histCoarseness(raw: string): number {
  const v = parseIntOption('log_hist_coarseness', raw, 0, 0xffffffff);
  if (v > 10)
    failedParsing(
      'log_hist_coarseness',
      raw,
      `log_hist_coarseness: ${v}: 10 at most (2^10 of fio's 1856 buckets a field)`,
    );
  return v;
}

/**
 * bwavgtime and iopsavgtime, in ms. fio takes 0, and its helper thread then takes a sample at every
 * wake-up; here a window is 1 ms at least.
 */
function avgTime(opt: string, raw: string): number {
  const v = parseIntOption(opt, raw, 0, 0xffffffff);
  if (v === 0) failedParsing(opt, raw, `${opt}: a window of 0 ms: this fio's windows are 1 ms at least`);
  return v;
}

/** The engines here (`pvblk` is libaio's, under pvblk's name). */
const IOENGINES: readonly FioEngine[] = ['libaio', 'io_uring', 'pvblk', 'psync', 'sync'];
/**
 * The other engines fio 3.36 builds into a Linux fio without optional libraries (ioengines/*.c, engines/*.c):
 * named as fio's, not as unknown ones.
 */
const FIO_IOENGINES: readonly string[] = [
  'vsync',
  'pvsync',
  'pvsync2',
  'io_uring_cmd',
  'posixaio',
  'mmap',
  'splice',
  'sg',
  'null',
  'net',
  'netsplice',
  'cpuio',
  'e4defrag',
  'falloc',
  'ftruncate',
  'filecreate',
  'filestat',
  'filedelete',
  'dircreate',
  'dirstat',
  'dirdelete',
  'exec',
];

/** The options of fio this tool implements, by every name fio accepts for them. */
export const OPTIONS: Record<string, OptionDef> = {
  name: { apply: jobOpt((j, v) => (j.name = v)) },
  description: { apply: jobOpt((j, v) => (j.description = jobDescription(v))) },
  filename: { apply: jobOpt((j, v) => (j.filename = v)) },
  rw: { apply: jobOpt((j, v) => (j.rw = parseRw('rw', v))) },
  readwrite: {
    aliasOf: 'rw',
    apply: jobOpt((j, v) => (j.rw = parseRw('readwrite', v))),
  },
  rwmixread: { apply: jobOpt((j, v) => (j.rwmixread = parseIntOption('rwmixread', v, 0, 100))) },
  rwmixwrite: { apply: jobOpt((j, v) => (j.rwmixread = 100 - parseIntOption('rwmixwrite', v, 0, 100))) },
  bs: blockSizeOption('bs', 'bs'),
  blocksize: { ...blockSizeOption('blocksize', 'bs'), aliasOf: 'bs' },
  bsrange: blockRangeOption('bsrange'),
  blocksize_range: { ...blockRangeOption('blocksize_range'), aliasOf: 'bsrange' },
  bssplit: { apply: jobOpt((j, v) => Object.assign(j, parseBsSplit('bssplit', v, j))) },
  ba: blockSizeOption('ba', 'ba'),
  blockalign: { ...blockSizeOption('blockalign', 'ba'), aliasOf: 'ba' },
  bs_unaligned: unalignedOption('bs_unaligned'),
  blocksize_unaligned: { ...unalignedOption('blocksize_unaligned'), aliasOf: 'bs_unaligned' },
  bs_is_seq_rand: { apply: jobOpt((j, v) => (j.bsIsSeqRand = fioBool('bs_is_seq_rand', v, 'bool'))) },
  iodepth: {
    apply: jobOpt(
      (j, v) =>
        (j.iodepth = parseIntOption('iodepth', v, 1, Number.MAX_SAFE_INTEGER, {
          max: 65536,
          why: 'this fio keeps in flight (65536 at most)',
        })),
    ),
  },
  iodepth_batch: batchOption('iodepth_batch', 'submit'),
  iodepth_batch_submit: { ...batchOption('iodepth_batch_submit', 'submit'), aliasOf: 'iodepth_batch' },
  iodepth_batch_complete_min: batchOption('iodepth_batch_complete_min', 'completeMin'),
  iodepth_batch_complete: {
    ...batchOption('iodepth_batch_complete', 'completeMin'),
    aliasOf: 'iodepth_batch_complete_min',
  },
  iodepth_batch_complete_max: batchOption('iodepth_batch_complete_max', 'completeMax'),
  iodepth_low: batchOption('iodepth_low', 'low'),
  numjobs: {
    apply: jobOpt(
      (j, v) =>
        (j.numjobs = parseIntOption('numjobs', v, 1, Number.MAX_SAFE_INTEGER, {
          max: MAX_JOBS,
          why: `this fio runs in one guest (${MAX_JOBS} jobs at most)`,
        })),
    ),
  },
  size: { apply: jobOpt((j, v) => sizeOption(j, v)) },
  offset: { apply: jobOpt((j, v) => offsetOption(j, v)) },
  offset_increment: { apply: jobOpt((j, v) => offsetIncrementOption(j, v)) },
  // 0 is taken, as fio takes it; fio then divides by it when an offset is a percentage (SIGFPE),
  // which checkJobAgainstDevice() refuses
  offset_align: {
    apply: jobOpt((j, v) => (j.offsetAlign = parseIntOption('offset_align', v, 0, 0xffffffff))),
  },
  // fio's runtime has no minimum: 0 is no limit, as when it is not given
  runtime: { apply: jobOpt((j, v) => (j.runtime = fioTime('runtime', v) || null)) },
  timeout: { aliasOf: 'runtime', apply: jobOpt((j, v) => (j.runtime = fioTime('timeout', v) || null)) },
  time_based: { flag: true, apply: jobOpt((j, v) => (j.timeBased = fioBool('time_based', v, 'set'))) },
  ramp_time: { apply: jobOpt((j, v) => (j.rampTime = fioTime('ramp_time', v))) },
  direct: { apply: jobOpt((j, v) => (j.direct = fioBool('direct', v, 'bool'))) },
  invalidate: { apply: jobOpt((j, v) => (j.invalidate = fioBool('invalidate', v, 'bool'))) },
  end_fsync: { apply: jobOpt((j, v) => (j.endFsync = fioBool('end_fsync', v, 'bool'))) },
  fsync: { apply: jobOpt((j, v) => (j.fsyncBlocks = parseIntOption('fsync', v, 0, 0xffffffff))) },
  fdatasync: { apply: jobOpt((j, v) => (j.fdatasyncBlocks = parseIntOption('fdatasync', v, 0, 0xffffffff))) },
  fsync_on_close: { apply: jobOpt((j, v) => (j.fsyncOnClose = fioBool('fsync_on_close', v, 'bool'))) },
  fadvise_hint: {
    apply: jobOpt((j, v) => {
      const c = fioChoice('fadvise_hint', v, [
        ['0', "Don't issue fadvise/madvise"],
        ['1', 'Advise using fio IO pattern'],
        ['random', 'Advise using FADV_RANDOM'],
        ['sequential', 'Advise using FADV_SEQUENTIAL'],
      ] as const);
      j.fadviseHint = c === '0' ? 'none' : c === '1' ? 'type' : c;
    }),
  },
  buffered: { apply: jobOpt((j, v) => (j.direct = !fioBool('buffered', v, 'bool'))) },
  ioengine: {
    apply: (j, _g, v, inJob) => {
      if (!j) return;
      const engine = IOENGINES.find((e) => e === v);
      if (engine) {
        j.ioengine = engine;
        return;
      }
      if (FIO_IOENGINES.includes(v))
        fail(`fio: ioengine=${v} is one of fio's engines, but this fio does not implement it (see --help)`);
      // ioengine_load(): no engine of that name, and no library to dlopen(); the job section's
      // td_vmsg() is said when the section is dropped (ioengines.c:135 in fio 3.36)
      fail(
        `fio: engine ${v} not loadable`,
        'fio: failed to load engine',
        ...(inJob
          ? [
              `fio: file:ioengines.c:135, func=dlopen, error=${v}: cannot open shared object file: No such file or directory`,
            ]
          : []),
      );
    },
  },
  verify: {
    apply: jobOpt((j, v) => {
      // `none` is pvblk's word for fio's `0`, which fio 3.36 alone takes
      const m = fioChoice('verify', v === 'none' ? '0' : v, VERIFY_CHOICES);
      j.verify = m === '0' ? 'none' : m === 'crc32c-intel' ? 'crc32c' : m;
      j.verifyGiven = true;
    }),
  },
  rate: perDirOption('rate', 'rate', parseSize, 'ull'),
  rate_iops: perDirOption('rate_iops', 'rateIops', parseUint32, 'int'),
  rate_min: perDirOption('rate_min', 'rateMin', parseSize, 'ull'),
  ratemin: { aliasOf: 'rate_min', ...perDirOption('ratemin', 'rateMin', parseSize, 'ull') },
  rate_iops_min: perDirOption('rate_iops_min', 'rateIopsMin', parseUint32, 'int'),
  rate_cycle: { apply: jobOpt((j, v) => (j.rateCycle = parseIntOption('rate_cycle', v, 0, 0xffffffff))) },
  ratecycle: {
    aliasOf: 'rate_cycle',
    apply: jobOpt((j, v) => (j.rateCycle = parseIntOption('ratecycle', v, 0, 0xffffffff))),
  },
  rate_process: {
    apply: jobOpt(
      (j, v) =>
        (j.rateProcess = fioChoice('rate_process', v, [
          ['linear', 'Linear rate of IO'],
          ['poisson', 'Rate follows Poisson process'],
        ] as const)),
    ),
  },
  rate_ignore_thinktime: {
    apply: jobOpt((j, v) => (j.rateIgnoreThinktime = fioBool('rate_ignore_thinktime', v, 'bool'))),
  },
  norandommap: { flag: true, apply: jobOpt((j, v) => (j.norandommap = fioBool('norandommap', v, 'set'))) },
  random_distribution: { apply: jobOpt((j, v) => (j.randomDistribution = randomDistribution(v))) },
  io_size: { apply: jobOpt((j, v) => ioSizeOption('io_size', j, v)) },
  io_limit: { aliasOf: 'io_size', apply: jobOpt((j, v) => ioSizeOption('io_limit', j, v)) },
  number_ios: { apply: jobOpt((j, v) => (j.numberIos = parseSize('number_ios', v))) },
  loops: { apply: jobOpt((j, v) => (j.loops = Math.max(1, parseIntOption('loops', v, 0, 0xffffffff)))) },
  thinktime: { apply: jobOpt((j, v) => (j.thinktime = parseMicros('thinktime', v))) },
  thinktime_spin: { apply: jobOpt((j, v) => (j.thinktimeSpin = parseMicros('thinktime_spin', v))) },
  thinktime_blocks: {
    apply: jobOpt((j, v) => {
      // no minimum in fio: 0 thinks after every I/O the loop issues
      j.thinktimeBlocks = parseIntOption('thinktime_blocks', v, 0, 0xffffffff);
      j.thinktimeBlocksGiven = true;
    }),
  },
  thinktime_blocks_type: {
    apply: jobOpt(
      (j, v) =>
        (j.thinktimeBlocksType = fioChoice('thinktime_blocks_type', v, [
          ['complete', 'thinktime_blocks takes effect at the completion side'],
          ['issue', 'thinktime_blocks takes effect at the issue side'],
        ] as const)),
    ),
  },
  startdelay: {
    apply: jobOpt((j, v) => (j.startDelay = startDelay(v))),
  },
  thinktime_iotime: {
    apply: jobOpt((j, v) => (j.thinktimeIotime = parseMicros('thinktime_iotime', v, 's'))),
  },
  verify_pattern: {
    apply: jobOpt((j, v) => {
      const p = parseVerifyPattern(v);
      if (!p) failedParsing('verify_pattern', v);
      j.verifyPattern = p;
      if (!j.verifyGiven) j.verify = 'pattern-header';
    }),
  },
  do_verify: { apply: jobOpt((j, v) => (j.doVerify = fioBool('do_verify', v, 'bool'))) },
  verify_only: { flag: true, apply: jobOpt((j, v) => (j.verifyOnly = fioBool('verify_only', v, 'set'))) },
  // verify_interval's and verify_offset's minimums are options.c's (two headers, one header)
  verify_interval: {
    apply: jobOpt((j, v) => (j.verifyInterval = parseIntOption('verify_interval', v, 80, 0xffffffff))),
  },
  verify_offset: {
    apply: jobOpt((j, v) => (j.verifyOffset = parseIntOption('verify_offset', v, 40, 0xffffffff))),
  },
  verify_fatal: { apply: jobOpt((j, v) => (j.verifyFatal = fioBool('verify_fatal', v, 'bool'))) },
  verify_dump: { apply: jobOpt((j, v) => (j.verifyDump = fioBool('verify_dump', v, 'bool'))) },
  continue_on_error: { apply: jobOpt((j, v) => (j.continueOnError = parseContinueOnError(v))) },
  ignore_error: { apply: jobOpt((j, v) => applyIgnoreError(j, v)) },
  error_dump: { apply: jobOpt((j, v) => (j.errorDump = fioBool('error_dump', v, 'bool'))) },
  disable_lat: { apply: jobOpt((j, v) => (j.disableLat = fioBool('disable_lat', v, 'bool'))) },
  disable_clat: { apply: jobOpt((j, v) => (j.disableClat = fioBool('disable_clat', v, 'bool'))) },
  disable_slat: { apply: jobOpt((j, v) => (j.disableSlat = fioBool('disable_slat', v, 'bool'))) },
  disable_bw_measurement: {
    apply: jobOpt((j, v) => (j.disableBw = fioBool('disable_bw_measurement', v, 'bool'))),
  },
  disable_bw: {
    aliasOf: 'disable_bw_measurement',
    apply: jobOpt((j, v) => (j.disableBw = fioBool('disable_bw', v, 'bool'))),
  },
  gtod_reduce: {
    // str_gtod_reduce_cb(): 1 turns the measurements off, 0 leaves them as they are
    apply: jobOpt((j, v) => {
      if (!fioBool('gtod_reduce', v, 'bool')) return;
      j.disableLat = j.disableClat = j.disableSlat = j.disableBw = true;
      j.latencyPercentiles = { slat: false, clat: false, lat: false };
    }),
  },
  stats: { apply: jobOpt((j, v) => (j.statsEnabled = fioBool('stats', v, 'bool'))) },
  io_submit_mode: {
    apply: jobOpt((_j, v) => {
      const mode = fioChoice('io_submit_mode', v, [
        ['inline', 'Submit and complete IO inline'],
        ['offload', 'Offload submit and complete to threads'],
      ] as const);
      // the guest's fio runs every job on its one thread: inline is all it does
      if (mode === 'offload')
        failedParsing(
          'io_submit_mode',
          v,
          'io_submit_mode: offload (submissions and completions on worker threads) is not implemented; inline is',
        );
    }),
  },
  verify_backlog: {
    apply: jobOpt(
      (j, v) => (j.verifyBacklog = parseIntOption('verify_backlog', v, 0, Number.MAX_SAFE_INTEGER)),
    ),
  },
  verify_backlog_batch: {
    apply: jobOpt(
      (j, v) => (j.verifyBacklogBatch = parseIntOption('verify_backlog_batch', v, 0, 0xffffffff)),
    ),
  },
  randseed: {
    apply: jobOpt((j, v) => {
      j.randseed = parseIntOption('randseed', v, 0, 0xffffffff);
      j.randseedGiven = true;
    }),
  },
  randrepeat: { apply: jobOpt((j, v) => (j.randrepeat = fioBool('randrepeat', v, 'bool'))) },
  group_reporting: {
    flag: true,
    apply: jobOpt((j, v) => (j.groupReporting = fioBool('group_reporting', v, 'set'))),
  },
  stonewall: { flag: true, apply: jobOpt((j, v) => (j.stonewall = fioBool('stonewall', v, 'set'))) },
  wait_for_previous: {
    flag: true,
    aliasOf: 'stonewall',
    apply: jobOpt((j, v) => (j.stonewall = fioBool('wait_for_previous', v, 'set'))),
  },
  new_group: { flag: true, apply: jobOpt((j, v) => (j.newGroup = fioBool('new_group', v, 'set'))) },
  wait_for: { apply: jobOpt((j, v) => (j.waitFor = v)) },
  exitall: {
    flag: true,
    // str_exitall_cb() ignores the value: any that parses turns it on
    apply: jobOpt((j, v) => {
      fioBool('exitall', v, 'set');
      j.exitall = true;
    }),
  },
  exit_what: {
    apply: jobOpt(
      (j, v) =>
        (j.exitWhat = fioChoice('exit_what', v, [
          ['group', 'exit_all=1 default behaviour'],
          ['stonewall', 'quit all currently running jobs; continue with next stonewall'],
          ['all', 'Quit everything'],
        ] as const)),
    ),
  },
  exitall_on_error: {
    flag: true,
    apply: jobOpt((j, v) => (j.exitallOnError = fioBool('exitall_on_error', v, 'set'))),
  },
  slat_percentiles: {
    apply: jobOpt(
      (j, v) =>
        (j.latencyPercentiles = { ...j.latencyPercentiles, slat: fioBool('slat_percentiles', v, 'bool') }),
    ),
  },
  clat_percentiles: {
    apply: jobOpt(
      (j, v) =>
        (j.latencyPercentiles = { ...j.latencyPercentiles, clat: fioBool('clat_percentiles', v, 'bool') }),
    ),
  },
  lat_percentiles: {
    apply: jobOpt(
      (j, v) =>
        (j.latencyPercentiles = { ...j.latencyPercentiles, lat: fioBool('lat_percentiles', v, 'bool') }),
    ),
  },
  percentile_list: {
    apply: jobOpt((j, v) => {
      const { list, precision } = parsePercentiles(v);
      j.percentileList = list;
      j.percentilePrecision = precision;
    }),
  },
  max_latency: perDirOption('max_latency', 'maxLatencyNs', latencyNs, 'ull'),
  latency_target: { apply: latencyOpt((l, v) => (l.targetNs = latencyNs('latency_target', v))) },
  latency_window: {
    apply: latencyOpt((l, v) => (l.windowUs = Math.round(fioTime('latency_window', v, 'us') * 1000))),
  },
  latency_percentile: {
    apply: latencyOpt((l, v) => (l.percentile = parseFloatOption('latency_percentile', v, 0, 100))),
  },
  latency_run: { apply: latencyOpt((l, v) => (l.run = fioBool('latency_run', v, 'bool'))) },
  write_lat_log: { apply: logOpt((l, v) => (l.lat = v)) },
  write_bw_log: { apply: logOpt((l, v) => (l.bw = v)) },
  write_iops_log: { apply: logOpt((l, v) => (l.iops = v)) },
  write_hist_log: { apply: logOpt((l, v) => (l.hist = v)) },
  log_hist_msec: {
    apply: logOpt((l, v) => (l.histMsec = parseIntOption('log_hist_msec', v, 0, 0xffffffff))),
  },
  log_hist_coarseness: {
    apply: logOpt((l, v) => (l.histCoarseness = histCoarseness(v))),
  },
  log_avg_msec: { apply: logOpt((l, v) => (l.avgMsec = parseIntOption('log_avg_msec', v, 0, 0xffffffff))) },
  log_max_value: { apply: logOpt((l, v) => (l.maxValue = fioBool('log_max_value', v, 'bool'))) },
  log_offset: { apply: logOpt((l, v) => (l.offset = fioBool('log_offset', v, 'bool'))) },
  log_prio: { apply: logOpt((l, v) => (l.prio = fioBool('log_prio', v, 'bool'))) },
  per_job_logs: { apply: logOpt((l, v) => (l.perJob = fioBool('per_job_logs', v, 'bool'))) },
  log_alternate_epoch: alternateEpochOption('log_alternate_epoch'),
  log_unix_epoch: { aliasOf: 'log_alternate_epoch', ...alternateEpochOption('log_unix_epoch') },
  log_alternate_epoch_clock_id: {
    apply: logOpt((l, v) => {
      const id = parseIntOption('log_alternate_epoch_clock_id', v, 0, 0xffffffff);
      if (id > 1)
        failedParsing(
          'log_alternate_epoch_clock_id',
          v,
          `log_alternate_epoch_clock_id: clock ${id}: this fio has 0 (CLOCK_REALTIME) and 1 (CLOCK_MONOTONIC)`,
        );
      l.alternateClockId = id === 1 ? 1 : 0;
      if (l.alternateEpochClock !== null) l.alternateEpochClock = l.alternateClockId;
    }),
  },
  // the first allocation of a log's entries in fio; this one grows its logs in chunks of its own
  log_entries: { apply: logOpt((_l, v) => parseIntOption('log_entries', v, 1024, 1024 * 1024)) },
  bwavgtime: {
    apply: logOpt((l, v) => {
      l.bwAvgTime = avgTime('bwavgtime', v);
      l.bwAvgGiven = true;
    }),
  },
  iopsavgtime: {
    apply: logOpt((l, v) => {
      l.iopsAvgTime = avgTime('iopsavgtime', v);
      l.iopsAvgGiven = true;
    }),
  },
  output: {
    global: true,
    switch: true,
    apply: (_j, g, v) => (g.output = v),
  },
  // read where the job files are (sectionsAsked()): here for the option's checks and the record
  section: {
    global: true,
    switch: true,
    apply: (_j, g, v) => {
      if (v === 'global') fail("fio: can't use global as only section");
      g.sections.push(v);
    },
  },
  'output-format': {
    global: true,
    switch: true,
    apply: (_j, g, v) => (g.outputFormat = parseOutputFormat(v)),
  },
  // fio's --minimal: terse output only
  minimal: {
    flag: true,
    global: true,
    switch: true,
    apply: (_j, g, v) => {
      if (fioBool('minimal', v, 'set')) g.outputFormat = parseOutputFormat('terse');
    },
  },
  // fio's init.c takes `always` and `never`, and anything else as auto
  eta: {
    global: true,
    switch: true,
    apply: (_j, g, v) => (g.eta = v === 'always' || v === 'never' ? v : 'auto'),
  },
  'parse-only': { flag: true, global: true, switch: true, apply: (_j, g) => (g.parseOnly = true) },
  showcmd: { flag: true, global: true, switch: true, apply: (_j, g) => (g.showcmd = true) },
  // the version of terse output: this fio prints version 3, fio's default, and no other
  'terse-version': {
    global: true,
    switch: true,
    apply: (_j, _g, v) => {
      if (v.trim() !== '3')
        fail(
          `fio: terse-version=${v}: this fio prints terse version 3 only`,
          `fio: failed parsing terse-version=${v}`,
        );
    },
  },
};

/**
 * `size`: bytes, or `N%` of the device from `offset` on (fio's size callback and its filesetup.c, which
 * rounds the share down to the block size).
 */
function sizeOption(j: FioJob, raw: string): void {
  // a count of zones: this fio has no zones (zonemode), and with none fio's zbd.c leaves the size
  // as str_size_cb() set it, 0 — the whole device
  if (zoneSuffix('size', raw, true)) {
    j.size = null;
    j.sizePercent = null;
    return;
  }
  const pct = /^([0-9]+(?:\.[0-9]+)?)%$/.exec(raw.trim());
  if (pct) {
    const v = Number(pct[1]);
    if (v <= 0 || v > 100) failedParsing('size', raw, `size: value out of range: ${raw} (1-100%)`);
    j.sizePercent = v;
    j.size = null;
    return;
  }
  // size=0 is the whole device, as when it is not given (fio's size has no minimum)
  const v = parseSize('size', raw);
  j.size = v === 0 ? null : positiveSize('size', raw, v);
  j.sizePercent = null;
}

/**
 * `offset`: bytes, or `N%` of the device (str_offset_cb(): the share, rounded up to the block size),
 * N whole from 0 to 100.
 */
function offsetOption(j: FioJob, raw: string): void {
  // a count of zones, without zones (see sizeOption()): 0, and no percentage (str_offset_cb())
  const [bytes, percent] = zoneSuffix('offset', raw, true) ? [0, 0] : bytesOrPercent('offset', raw);
  // str_offset_cb(): bytes leave a percentage given before in place, and it is the one used
  j.offset = bytes;
  if (percent !== null) j.offsetPercent = percent;
}

/** `offset_increment`, read as `offset` is (str_offset_increment_cb()). */
function offsetIncrementOption(j: FioJob, raw: string): void {
  const [bytes, percent] = zoneSuffix('offset_increment', raw, true)
    ? [0, 0]
    : bytesOrPercent('offset_increment', raw);
  // fio keeps both, and then fails its assertion that only one is set (get_start_offset()): a
  // percentage of 0 (`0%`, or a count of zones) is none
  if (percent === null && j.offsetIncrementPercent && bytes)
    failedParsing(
      'offset_increment',
      raw,
      `offset_increment: ${raw} after a percentage: fio 3.33 aborts on both (get_start_offset()'s assertion)`,
    );
  j.offsetIncrement = bytes;
  if (percent !== null) j.offsetIncrementPercent = percent;
}

/** options.c's `random_distribution` values, in its order. */
const DISTRIBUTIONS = [
  ['random', 'Uniform random distribution'],
  ['zipf', 'Zipf distribution'],
  ['pareto', 'Pareto distribution'],
  ['normal', 'Normal (Gaussian) distribution'],
  ['zoned', 'Zoned random distribution'],
  ['zoned_abs', 'Zoned absolute random distribution'],
] as const;

/**
 * `random_distribution=<kind>[:<value>[:<center>]]` (str_random_distribution_cb()): zipf's theta
 * (1.1 if not given, not 1), pareto's h (0.2, strictly between 0 and 1), normal's deviation in % (0,
 * below 100), a center from 0 to 1. fio's messages for values out of range.
 */
function randomDistribution(raw: string): RandomDistribution {
  const kind = fioChoice('random_distribution', raw, DISTRIBUTIONS);
  if (kind === 'random') return { kind };
  if (kind === 'zoned' || kind === 'zoned_abs')
    failedParsing(
      'random_distribution',
      raw,
      `random_distribution=${kind}: zoned distributions are not supported by this fio`,
    );
  let value = kind === 'zipf' ? 1.1 : kind === 'pareto' ? 0.2 : 0;
  let center: number | null = null;
  const colon = raw.indexOf(':');
  if (colon >= 0) {
    // split_parse_distr(): the value, then a center after a second ':', each a float (strtod)
    const [v, c] = raw
      .slice(colon + 1)
      .trim()
      .split(/:(.*)/s);
    const float = (t: string) => (/^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?/i.test(t) ? parseFloat(t) : NaN);
    value = float(v);
    if (c !== undefined) center = float(c);
    if (Number.isNaN(value) || (center !== null && Number.isNaN(center)))
      failedParsing('random_distribution', raw, 'fio: random postfix parsing failed');
  }
  if (center !== null && (center < 0 || center > 1))
    failedParsing('random_distribution', raw, 'fio: distribution center out of range (0 <= center <= 1.0)');
  if (kind === 'zipf' && value === 1)
    failedParsing('random_distribution', raw, 'fio: zipf theta must different than 1.0');
  if (kind === 'pareto' && (value <= 0 || value >= 1))
    failedParsing('random_distribution', raw, 'fio: pareto input out of range (0 < input < 1.0)');
  if (kind === 'normal' && (value < 0 || value >= 100))
    failedParsing('random_distribution', raw, 'fio: normal deviation out of range (0 <= input < 100.0)');
  return { kind, value, center };
}

/**
 * `io_size`: bytes (0: none, as when not given), or `N%` of the region (str_io_size_cb(); fio's own
 * message above 100 %).
 */
function ioSizeOption(opt: string, j: FioJob, raw: string): void {
  // a count of zones, without zones (see sizeOption()): none, and no percentage (str_io_size_cb())
  const [bytes, percent] = zoneSuffix(opt, raw, true)
    ? [0, 0]
    : bytesOrPercent(opt, raw, "fio: io_size values greater than 100% aren't supported");
  // str_io_size_cb(): bytes leave a percentage given before in place, and both apply
  j.ioSize = bytes || null;
  if (percent !== null) j.ioSizePercent = percent || null;
}

/** A size in bytes, or `N%` (N whole, 0 to 100; `over` said past 100): [bytes, null] or [0, N]. */
function bytesOrPercent(
  opt: string,
  raw: string,
  over = `${opt}: value out of range: ${raw} (0-100%)`,
): [number, number | null] {
  const pct = /^([0-9]+)%$/.exec(raw.trim());
  if (pct) {
    const v = Number(pct[1]);
    if (v > 100) failedParsing(opt, raw, over);
    return [0, v];
  }
  return [parseSize(opt, raw), null];
}

function positiveSize(opt: string, raw: string, v = parseSize(opt, raw)): number {
  if (v < 1) failedParsing(opt, raw, `${opt}: min value out of range: ${v} (1 min)`);
  return v;
}

/** `bs` or `ba` (FIO_OPT_ULL, at least 1): a size per direction, as perDirection() splits them. */
function blockSizeOption(opt: string, key: 'bs' | 'ba'): OptionDef {
  return {
    apply: jobOpt((j, v) => (j[key] = perDirection(opt, v, (x) => positiveSize(opt, x), 2 ** 64, j[key]))),
  };
}

/** `bs_unaligned` (FIO_OPT_STR_SET). */
function unalignedOption(opt: string): OptionDef {
  return { flag: true, apply: jobOpt((j, v) => (j.bsUnaligned = fioBool(opt, v, 'set'))) };
}

/** `bsrange`: a range per direction (parseBsRange()). */
function blockRangeOption(opt: string): OptionDef {
  return {
    apply: jobOpt((j, v) => {
      const { min, max } = parseBsRange(opt, v, j.minBs, j.maxBs);
      j.minBs = min;
      j.maxBs = max;
    }),
  };
}

/** fio keeps a job's description in FIO_JOBDESC_SIZE (256) bytes with its NUL: the first 255 bytes. */
const JOB_DESCRIPTION_BYTES = 255;

/** A description as fio keeps it: cut to its first 255 bytes, never inside a character. */
export function jobDescription(raw: string): string {
  if (Buffer.byteLength(raw) <= JOB_DESCRIPTION_BYTES) return raw;
  let out = '';
  let bytes = 0;
  for (const ch of raw) {
    bytes += Buffer.byteLength(ch);
    if (bytes > JOB_DESCRIPTION_BYTES) break;
    out += ch;
  }
  return out;
}

/**
 * The percentiles in ascending order, as fio's calc_clat_percentiles() sorts them before every report
 * (normal, JSON and terse alike), and the most digits any was given with after its decimal point: the
 * precision the normal report prints them at (parse.c's percentile_precision).
 */
function parsePercentiles(raw: string): { list: number[]; precision: number } {
  const parts = raw.split(':');
  if (parts.length > 20)
    fail('the list exceeding max length 20', `fio: failed parsing percentile_list=${raw}`);
  const list = parts.map((p) => {
    const v = Number(p);
    if (p === '' || !Number.isFinite(v))
      fail(`not a floating point value: ${p}`, `fio: failed parsing percentile_list=${raw}`);
    // parse.c's words for a float list; its check of the minimum is skipped for a minimum of 0, so
    // fio takes a negative percentile and reports nonsense for it, where this refuses it
    if (v > 100)
      fail(
        `value out of range: ${fixed(v, 6)} (range max: 100.000000)`,
        `fio: failed parsing percentile_list=${raw}`,
      );
    if (v < 0)
      fail(
        `value out of range: ${fixed(v, 6)} (range min: 0.000000)`,
        `fio: failed parsing percentile_list=${raw}`,
      );
    return v;
  });
  const precision = Math.max(0, ...parts.map((p) => /\.(\d*)/.exec(p)?.[1].length ?? 0));
  // stat.c's calc_clat_percentiles() takes the list up to its first 0, then sorts it
  const end = list.indexOf(0);
  return { list: (end < 0 ? list : list.slice(0, end)).sort((a, b) => a - b), precision };
}

/** Whether an option applies to the whole run rather than to a job (group_reporting, the outputs, …). */
export function isGlobalFioOption(name: string): boolean {
  return ownEntry(OPTIONS, name)?.global === true;
}

export const FIO_OPTION_NAMES: readonly string[] = Object.keys(OPTIONS);
