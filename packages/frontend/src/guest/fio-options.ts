/**
 * fio's command-line job options, as the guest's `fio` and `pvblk bench` take them: the names, value
 * syntax (`4k`, `30s`, `0`/`1`), defaults and error messages of fio 3.x. Both `--opt=value` and
 * `--opt value` are accepted, except for fio's set-only options (`--time_based`, `--group_reporting`,
 * `--verify_only`), which take a value only with `=`, as fio's getopt table has them.
 *
 * Options before the first `--name` are global, and so are those after `--name=global` (fio's global
 * section, as its parse_cmd_line() takes any name starting with "global"); each other `--name` starts
 * a job that inherits the global options given before it (fio's command-line job sections). Every
 * error names the option, in fio's words, and nothing runs.
 *
 * Deliberate differences from fio, all documented in docs/experiments.md: the default ioengine is
 * `libaio` (fio's is psync), because queue depth is the point of this tool; `filename` defaults to the
 * guest's first disk; a size past the end of the device is refused up front (fio would stop short).
 */
import { ownEntry, PvblkError } from '@pvblk/shared';
import { fixed } from './printf.ts';
import { FIO_GETOPT_TABLE } from './fio-getopt-table.ts';
import type { JobFileLine } from './fio-jobfile.ts';
import type { ChecksumName } from './fio-checksum.ts';
import { parseVerifyPattern, type VerifyPattern } from './fio-pattern.ts';
import { headerSize } from './fio-verify.ts';
import type { RateProcess } from './fio-rate.ts';

export const FIO_VERSION = 'fio-3.36';

/** Which latencies the report gives percentiles of (slat_percentiles, clat_percentiles, lat_percentiles). */
export interface LatencyPercentiles {
  slat: boolean;
  clat: boolean;
  lat: boolean;
}

export type FioRw = 'read' | 'write' | 'randread' | 'randwrite' | 'rw' | 'randrw';
/**
 * fio's verify methods; `pattern-header` is VERIFY_PATTERN, which a `verify_pattern` given without
 * `verify` sets (a header, then the pattern), where `pattern` is VERIFY_PATTERN_NO_HDR.
 */
export type FioVerify = 'none' | ChecksumName | 'meta' | 'pattern' | 'pattern-header' | 'null';
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
export type FioEngine = 'libaio' | 'io_uring' | 'psync' | 'sync' | 'pvblk';

export interface FioJob {
  name: string;
  /** fio's `description`: printed with the job's report ('' when not given). */
  description: string;
  filename: string | null;
  rw: FioRw;
  /** Percentage of reads in a mixed workload. */
  rwmixread: number;
  bs: number;
  iodepth: number;
  numjobs: number;
  /** Bytes of the region each job works on; null = to the end of the device (or sizePercent of it). */
  size: number | null;
  /** fio's `size=N%`: that share of the device, from `offset` on; null when not given so. */
  sizePercent: number | null;
  offset: number;
  /** Milliseconds; null = until `size` bytes are done. */
  runtime: number | null;
  timeBased: boolean;
  /** Milliseconds of I/O before statistics start (fio's ramp_time). */
  rampTime: number;
  direct: boolean;
  /** fio's `invalidate`: drop the device's page cache before the job (BLKFLSBUF on a block device). */
  invalidate: boolean;
  /** fio's `end_fsync`: a writer fsyncs its file at the end of each pass, inside the pass's time. */
  endFsync: boolean;
  /** fio's `fsync_on_close`: that, and once more when the file is closed. */
  fsyncOnClose: boolean;
  /** fio's `fadvise_hint`: none, the job's pattern (`1`: random or sequential), or one of the two. */
  fadviseHint: 'none' | 'type' | 'random' | 'sequential';
  ioengine: FioEngine;
  verify: FioVerify;
  /** Whether `verify` was given (fio_option_is_set()): a later `verify_pattern` leaves it alone. */
  verifyGiven: boolean;
  /** fio's `verify_pattern`: the data of every block written, checked by meta and the pattern methods. */
  verifyPattern: VerifyPattern | null;
  doVerify: boolean;
  verifyOnly: boolean;
  /** fio's `rate`: bytes a second, reads then writes; 0 where unlimited. */
  rate: PerDirection;
  /** fio's `rate_iops`: I/Os a second, reads then writes; 0 where unlimited. */
  rateIops: PerDirection;
  /** fio's `rate_min` (bytes a second) and `rate_iops_min`: a job slower than either over a
   * `rate_cycle` (ms) fails; 0 where not checked. */
  rateMin: PerDirection;
  rateIopsMin: PerDirection;
  rateCycle: number;
  rateProcess: RateProcess;
  /** fio's `rate_ignore_thinktime`: the time a job thinks counts as time at its rate (no catching up). */
  rateIgnoreThinktime: boolean;
  /** fio's `loops`: passes over the region (and their verify phases), 1 for 0 as keep_running() has it. */
  loops: number;
  /** fio's `thinktime` and `thinktime_spin`, in ms (given in µs without a unit). */
  thinktime: number;
  thinktimeSpin: number;
  thinktimeBlocks: number;
  /** Whether thinktime_blocks was given: thinktime_iotime alone leaves its default of 1 out. */
  thinktimeBlocksGiven: boolean;
  thinktimeBlocksType: 'complete' | 'issue';
  /** fio's `thinktime_iotime`, in ms (given in seconds without a unit). */
  thinktimeIotime: number;
  /** fio's `startdelay` (seconds without a unit; `low-high` for a random one per job), in ms. */
  startDelay: [low: number, high: number];
  randseed: number;
  randrepeat: boolean;
  /**
   * fio's `group_reporting`, a job option: the job's report joins the one before it (stat.c's
   * __show_run_stats(); reportGroups()).
   */
  groupReporting: boolean;
  /**
   * fio's `stonewall` (alias `wait_for_previous`): the job starts once every job started before it
   * has ended (backend.c's run_threads()), and starts a new reporting group.
   */
  stonewall: boolean;
  /** fio's `new_group`: the job starts a new reporting group, without waiting. */
  newGroup: boolean;
  /** fio's `wait_for`: the name of an earlier job this one starts after ('' for none). */
  waitFor: string;
  /** fio's td->groupid: the job's reporting group, as init.c's add_job() numbers them. */
  groupid: number;
  percentileList: number[];
  /** fio's slat_percentiles, clat_percentiles and lat_percentiles: whose percentiles the report gives. */
  latencyPercentiles: LatencyPercentiles;
  /** Decimals the percentiles are printed with: the most any of them was given with (parse.c). */
  percentilePrecision: number;
  logs: FioLogOptions;
  latencyTarget: FioLatencyTarget;
  /** fio's max_latency, reads then writes: the lat (ns) over which an I/O fails the job; 0 = none. */
  maxLatencyNs: PerDirection;
}

/** fio's latency target (fio-latency.ts): `latency_target` (ns here; 0 = none), `latency_window`
 * (µs), `latency_percentile`, `latency_run` — in the units fio's report prints them. */
export interface FioLatencyTarget {
  targetNs: number;
  windowUs: number;
  percentile: number;
  run: boolean;
}

/** fio's logging options (the files a job writes as it runs: fio-log.ts). */
export interface FioLogOptions {
  /** The name prefixes of write_lat_log (lat, slat and clat), write_bw_log, write_iops_log; null = none. */
  lat: string | null;
  bw: string | null;
  iops: string | null;
  /** write_hist_log's prefix (null: none), log_hist_msec (0: no entries), log_hist_coarseness. */
  hist: string | null;
  histMsec: number;
  histCoarseness: number;
  /** log_avg_msec: 0 logs every sample. */
  avgMsec: number;
  /** log_max_value: a window's maximum instead of its mean. */
  maxValue: boolean;
  /** log_offset: each entry with its I/O's offset. */
  offset: boolean;
  /** log_prio: the priority column as the I/O's ioprio in hex. */
  prio: boolean;
  /** per_job_logs: the job's number in each file's name (else the jobs append to one file). */
  perJob: boolean;
  /**
   * log_alternate_epoch (log_unix_epoch): entries' times on the clock of log_alternate_epoch_clock_id
   * (0: CLOCK_REALTIME, ms since 1970; 1: CLOCK_MONOTONIC), else since the job's start; null: off.
   */
  alternateEpochClock: 0 | 1 | null;
  alternateClockId: 0 | 1;
  /** bwavgtime, iopsavgtime: the report's rate windows in ms, and whether they were given. */
  bwAvgTime: number;
  bwAvgGiven: boolean;
  iopsAvgTime: number;
  iopsAvgGiven: boolean;
}

export interface FioGlobal {
  outputFormat: FioOutputFormat;
  /** fio's `--output`: the file the run's output goes to (the ETA line stays on the terminal). */
  output: string | null;
  eta: 'auto' | 'always' | 'never';
  /** fio's `--section`: the job file sections that run (with the global ones); none given, all. */
  sections: string[];
}

export interface FioCommandLine {
  global: FioGlobal;
  jobs: FioJob[];
  /** Options given in the global section (before the first job, or after `--name=global`), as fio's
   * JSON "global options" lists them. */
  globalGiven: Record<string, string>;
  /** Options given in each job's own section, as fio's JSON "job options" lists them. */
  given: Array<Record<string, string>>;
  /** For each job, the global options given before it: what it inherited (a later global section's
   * options are not its). */
  inherited: Array<Record<string, string>>;
  /** fio's options as given, in their order (pvblk's own left out): to parse again with a change. */
  options: SplitOption[];
}

export const DEFAULT_PERCENTILES = [
  1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99,
];

/** fio's values of rw in its order, but for the trims this fio lacks; readwrite is rw's other name. */
const RW_VALUES: Array<[FioRw | 'readwrite', string]> = [
  ['read', 'Sequential read'],
  ['write', 'Sequential write'],
  ['randread', 'Random read'],
  ['randwrite', 'Random write'],
  ['rw', 'Sequential read and write mix'],
  ['readwrite', 'Sequential read and write mix'],
  ['randrw', 'Random read and write mix'],
];

function parseRw(opt: string, raw: string): FioRw {
  const v = parseChoice(opt, raw, RW_VALUES);
  return v === 'readwrite' ? 'rw' : v;
}

const DEFAULT_JOB: Omit<FioJob, 'name'> = {
  description: '',
  filename: null,
  rw: 'read',
  rwmixread: 50,
  bs: 4096,
  iodepth: 1,
  numjobs: 1,
  size: null,
  sizePercent: null,
  offset: 0,
  runtime: null,
  timeBased: false,
  rampTime: 0,
  direct: false,
  invalidate: true,
  endFsync: false,
  fsyncOnClose: false,
  fadviseHint: 'type',
  ioengine: 'libaio',
  verify: 'none',
  verifyGiven: false,
  verifyPattern: null,
  doVerify: true,
  verifyOnly: false,
  rate: [0, 0, 0],
  rateIops: [0, 0, 0],
  rateMin: [0, 0, 0],
  rateIopsMin: [0, 0, 0],
  rateCycle: 1000,
  rateProcess: 'linear',
  rateIgnoreThinktime: false,
  loops: 1,
  thinktime: 0,
  thinktimeSpin: 0,
  thinktimeBlocks: 1,
  thinktimeBlocksGiven: false,
  thinktimeBlocksType: 'complete',
  thinktimeIotime: 0,
  startDelay: [0, 0],
  randseed: 0x2ce7a3bf,
  randrepeat: true,
  groupReporting: false,
  stonewall: false,
  newGroup: false,
  waitFor: '',
  groupid: 0,
  percentileList: DEFAULT_PERCENTILES,
  latencyPercentiles: { slat: false, clat: true, lat: false },
  percentilePrecision: 2,
  logs: {
    lat: null,
    bw: null,
    iops: null,
    hist: null,
    histMsec: 0,
    histCoarseness: 0,
    avgMsec: 0,
    maxValue: false,
    offset: false,
    prio: false,
    perJob: true,
    alternateEpochClock: null,
    alternateClockId: 0,
    bwAvgTime: 500,
    bwAvgGiven: false,
    iopsAvgTime: 500,
    iopsAvgGiven: false,
  },
  latencyTarget: { targetNs: 0, windowUs: 0, percentile: 100, run: false },
  maxLatencyNs: [0, 0, 0],
};

/** A command-line mistake: the lines fio would print, then exit status 1. */
export class FioUsageError extends PvblkError {
  /**
   * `lines` go to stderr (fio's log_err); `out`, printed first, to stdout, where fio's log_info puts
   * what it says beside an error (a choice's table of valid values).
   */
  constructor(
    readonly lines: string[],
    readonly out: string[] = [],
  ) {
    super('EUSAGE', [...out, ...lines].join('\n'));
  }
}

function fail(...lines: string[]): never {
  throw new FioUsageError(lines);
}
function failedParsing(opt: string, val: string, why?: string): never {
  return why ? fail(why, `fio: failed parsing ${opt}=${val}`) : fail(`fio: failed parsing ${opt}=${val}`);
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  p: 1024 ** 5,
};

/**
 * fio's number syntax for sizes and integer options alike (parse.c's str_to_decimal with kb_base=1024):
 * `4096`, `0x1000`, `4k`, `4K`, `4KiB`, `128kb`, `1m`, `2g`.
 */
export function parseSize(opt: string, raw: string): number {
  const m = /^(?:0[xX]([0-9a-fA-F]+)|([0-9]+)(?:([kmgtpKMGTP])(?:[iI]?[bB])?|[bB])?)$/.exec(raw.trim());
  if (!m) return failedParsing(opt, raw);
  const v =
    m[1] !== undefined ? Number.parseInt(m[1], 16) : Number(m[2]) * SIZE_UNITS[(m[3] ?? '').toLowerCase()];
  if (!Number.isSafeInteger(v)) return failedParsing(opt, raw, `${opt}: value out of range: ${raw}`);
  return v;
}

const TIME_UNITS: Record<string, number> = {
  us: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** fio's time syntax, seconds by default: `60`, `30s`, `500ms`, `2m`, `1h`. Returns milliseconds. */
export function parseTime(opt: string, raw: string, unit: keyof typeof TIME_UNITS = 's'): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h|d)?$/.exec(raw.trim());
  if (!m) return failedParsing(opt, raw);
  return Number(m[1]) * TIME_UNITS[m[2] ?? unit];
}

/**
 * A time option fio keeps in an unsigned int of microseconds (`unit` without one), in ms. parse.c
 * takes a value past 2^32 µs and the unsigned int keeps what is left of it (`thinktime=5000s` is
 * 705 s), so this does too.
 */
function parseMicros(opt: string, raw: string, unit: 'us' | 's' = 'us'): number {
  const us = Math.round(parseTime(opt, raw, unit) * 1000);
  return (us % 2 ** 32) / 1000;
}

/**
 * An integer option in fio's number syntax (parseSize's: `1k` is 1024, `0x10` is 16) within fio's
 * bounds for it, refused in parse.c's words. `limit` is a bound of this tool's where fio has none: it
 * is refused in words that say so, not in fio's.
 */
export function parseIntOption(
  opt: string,
  raw: string,
  min: number,
  max: number,
  limit?: { max: number; why: string },
): number {
  const t = raw.trim();
  const v = t.startsWith('-') ? -parseSize(opt, t.slice(1)) : parseSize(opt, t);
  if (v < min) return failedParsing(opt, raw, `${opt}: min value out of range: ${v} (${min} min)`);
  if (v > max) return failedParsing(opt, raw, `${opt}: max value out of range: ${v} (${max} max)`);
  if (limit && v > limit.max) return failedParsing(opt, raw, `${opt}: ${v} is more than ${limit.why}`);
  return v;
}

/** A yes/no option of pvblk's own (`--pi=1`, `--baseline=true`). */
export function parseBool(opt: string, raw: string): boolean {
  if (raw === '1' || raw === 'true' || raw === 'on' || raw === 'yes') return true;
  if (raw === '0' || raw === 'false' || raw === 'off' || raw === 'no') return false;
  return failedParsing(opt, raw, `${opt}: not a boolean: ${raw} (0 or 1)`);
}

/**
 * fio's boolean options (FIO_OPT_BOOL: `direct`, `do_verify`, …) take an integer, 0 or 1 (parse.c's
 * check_int, decimal or 0x hex; its option table bounds a bool to 0..1); its set-only ones
 * (FIO_OPT_STR_SET: `time_based`, `group_reporting`, …) take any integer, set when it is not 0.
 */
export function fioBool(opt: string, raw: string, kind: 'bool' | 'set'): boolean {
  const m = /^(?:0[xX]([0-9a-fA-F]+)|([0-9]+))$/.exec(raw.trim());
  if (!m) return failedParsing(opt, raw);
  const v = m[1] !== undefined ? Number.parseInt(m[1], 16) : Number(m[2]);
  if (kind === 'bool' && v > 1) return failedParsing(opt, raw, `max value out of range: ${v} (1 max)`);
  return v !== 0;
}

export function parseChoice<T extends string>(
  opt: string,
  raw: string,
  values: ReadonlyArray<readonly [T, string]>,
): T {
  const hit = values.find(([v]) => v === raw);
  if (hit) return hit[0];
  // parse.c's show_option_values() says the table with log_info, on stdout; the failure on stderr
  const table = values.map(([v, help], i) =>
    `${(i === 0 ? 'valid values' : '').padStart(20)}: ${v.padEnd(10)} ${help}`.trimEnd(),
  );
  throw new FioUsageError([`fio: failed parsing ${opt}=${raw}`], [...table, '']);
}

/** A value per direction, as fio keeps those options (off1, off2, off3): reads, writes, trims. */
export type PerDirection = [read: number, write: number, trim: number];

/**
 * The rounds of parse.c's handle_option(): the value split at `,` (else `:`, else `-`), each round the
 * text up to its separator and whether another round follows. A round that begins with the `-` it
 * is split at is a negative number, as fio's strtoll() reads the rest of the string (`-5` is -5,
 * then 5).
 */
function optionRounds(raw: string): Array<{ value: string; more: boolean }> {
  const rounds: Array<{ value: string; more: boolean }> = [];
  let rest = raw;
  for (;;) {
    let at = rest.indexOf(',');
    if (at < 0) at = rest.indexOf(':');
    if (at < 0) at = rest.indexOf('-');
    if (at < 0) {
      rounds.push({ value: rest, more: false });
      return rounds;
    }
    let value = rest.slice(0, at);
    if (at === 0 && rest[0] === '-') value = '-' + (/^[^,:-]*/.exec(rest.slice(1))?.[0] ?? '');
    rounds.push({ value, more: true });
    rest = rest.slice(at + 1);
  }
}

/**
 * One round's value of an unsigned option: a negative one kept as fio's unsigned integer keeps it,
 * `wrap` (2^32 for an int, 2^64 for an unsigned long long) less its magnitude.
 */
function unsignedValue(value: string, parse: (v: string) => number, wrap: number): number {
  if (!value.startsWith('-')) return parse(value);
  const n = parse(value.slice(1));
  return n ? wrap - n : 0;
}

/**
 * An option with a value per direction, as parse.c's handle_option() takes it: values split at `,`
 * (else at `:`, else at `-`), the first the reads', the second the writes', the third the trims'; the
 * last value given sets the directions after it too (`rate=1m` is all three, `rate=1m,500k` trims at
 * 500k), unless the list ends with a separator (`rate=1m,`: writes and trims as they were). A value
 * that does not parse leaves its direction as it was (`--rate=,500k`: reads unlimited), and the
 * option fails only when none parses — with that value's own words. A negative value wraps as fio's
 * unsigned one does (`rate_iops=-5`: reads at 4294967291, writes and trims at 5). Values past the
 * third are parsed and kept nowhere. Directions keep `prev` (a global section's, the defaults) where
 * not set.
 */
function perDirection(
  opt: string,
  raw: string,
  parse: (v: string) => number,
  wrap: number,
  prev: PerDirection,
): PerDirection {
  const out: PerDirection = [...prev];
  let firstError: unknown = null;
  let parsed = false;
  optionRounds(raw).forEach(({ value, more }, curr) => {
    try {
      const v = unsignedValue(value, parse, wrap);
      parsed = true;
      if (curr < 3) out[curr] = v;
      if (!more) for (let d = curr + 1; d < 3; d++) out[d] = v;
    } catch (e) {
      if (!(e instanceof FioUsageError)) throw e;
      firstError ??= e;
    }
  });
  if (!parsed) {
    // the words of the value that failed first; said of the option as given
    const lines = (firstError as FioUsageError).lines.filter((l) => !l.startsWith('fio: failed parsing'));
    fail(...lines, `fio: failed parsing ${opt}=${raw}`);
  }
  return out;
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
    const ms = /^[0-9]/.test(value.trim()) ? parseTime('startdelay', value.trim()) : NaN;
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
  <K extends 'logs' | 'latencyTarget'>(key: K, fn: (group: FioJob[K], raw: string) => void): Apply =>
  (job, _g, raw) => {
    if (!job) return;
    const copy = { ...job[key] };
    job[key] = copy;
    fn(copy, raw);
  };
const logOpt = (fn: (logs: FioLogOptions, raw: string) => void) => groupOpt('logs', fn);
const latencyOpt = (fn: (l: FioLatencyTarget, raw: string) => void) => groupOpt('latencyTarget', fn);

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

/** An unsigned int of fio's (FIO_OPT_INT without bounds). */
function parseUint32(opt: string, raw: string): number {
  return parseIntOption(opt, raw, 0, 0xffffffff);
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

/** A latency fio takes in µs without a unit (`200`, `2ms`), in ns. */
function latencyNs(opt: string, raw: string): number {
  return Math.round(parseTime(opt, raw, 'us') * 1e6);
}

/** A single floating-point value within bounds, refused in parse.c's words for a float list. */
function parseFloatOption(opt: string, raw: string, min: number, max: number): number {
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v)) failedParsing(opt, raw, `not a floating point value: ${raw}`);
  if (v > max) failedParsing(opt, raw, `value out of range: ${fixed(v, 6)} (range max: ${fixed(max, 6)})`);
  if (v < min) failedParsing(opt, raw, `value out of range: ${fixed(v, 6)} (range min: ${fixed(min, 6)})`);
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
const OPTIONS: Record<string, OptionDef> = {
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
  bs: { apply: jobOpt((j, v) => (j.bs = blockSize('bs', v))) },
  blocksize: { aliasOf: 'bs', apply: jobOpt((j, v) => (j.bs = blockSize('blocksize', v))) },
  iodepth: {
    apply: jobOpt(
      (j, v) =>
        (j.iodepth = parseIntOption('iodepth', v, 1, Number.MAX_SAFE_INTEGER, {
          max: 65536,
          why: 'this fio keeps in flight (65536 at most)',
        })),
    ),
  },
  numjobs: {
    apply: jobOpt(
      (j, v) =>
        (j.numjobs = parseIntOption('numjobs', v, 1, Number.MAX_SAFE_INTEGER, {
          max: 64,
          why: 'this fio runs in one guest (64 jobs at most)',
        })),
    ),
  },
  size: { apply: jobOpt((j, v) => sizeOption(j, v)) },
  offset: { apply: jobOpt((j, v) => (j.offset = parseSize('offset', v))) },
  // fio's runtime has no minimum: 0 is no limit, as when it is not given
  runtime: { apply: jobOpt((j, v) => (j.runtime = parseTime('runtime', v) || null)) },
  timeout: { aliasOf: 'runtime', apply: jobOpt((j, v) => (j.runtime = parseTime('timeout', v) || null)) },
  time_based: { flag: true, apply: jobOpt((j, v) => (j.timeBased = fioBool('time_based', v, 'set'))) },
  ramp_time: { apply: jobOpt((j, v) => (j.rampTime = parseTime('ramp_time', v))) },
  direct: { apply: jobOpt((j, v) => (j.direct = fioBool('direct', v, 'bool'))) },
  invalidate: { apply: jobOpt((j, v) => (j.invalidate = fioBool('invalidate', v, 'bool'))) },
  end_fsync: { apply: jobOpt((j, v) => (j.endFsync = fioBool('end_fsync', v, 'bool'))) },
  fsync_on_close: { apply: jobOpt((j, v) => (j.fsyncOnClose = fioBool('fsync_on_close', v, 'bool'))) },
  fadvise_hint: {
    apply: jobOpt((j, v) => {
      const c = parseChoice('fadvise_hint', v, [
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
      const m = parseChoice('verify', v === 'none' ? '0' : v, VERIFY_CHOICES);
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
        (j.rateProcess = parseChoice('rate_process', v, [
          ['linear', 'Linear rate of IO'],
          ['poisson', 'Rate follows Poisson process'],
        ] as const)),
    ),
  },
  rate_ignore_thinktime: {
    apply: jobOpt((j, v) => (j.rateIgnoreThinktime = fioBool('rate_ignore_thinktime', v, 'bool'))),
  },
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
        (j.thinktimeBlocksType = parseChoice('thinktime_blocks_type', v, [
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
  randseed: {
    apply: jobOpt((j, v) => {
      j.randseed = parseIntOption('randseed', v, 0, 0xffffffff);
      j.randrepeat = true;
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
    apply: latencyOpt((l, v) => (l.windowUs = Math.round(parseTime('latency_window', v, 'us') * 1000))),
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
  section: { global: true, switch: true, apply: (_j, g, v) => g.sections.push(v) },
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

/** fio's getopt table by name: whether getopt takes the value from the next argument. */
const FIO_GETOPT = new Map(FIO_GETOPT_TABLE);
const FIO_GETOPT_NAMES = [...FIO_GETOPT.keys()];
/** The names of fio's job options (fio_options, from `description` on): a job file's options. */
const FIO_JOB_OPTION_NAMES = FIO_GETOPT_NAMES.slice(FIO_GETOPT_NAMES.indexOf('description'));
const FIO_JOB_OPTIONS = new Set(FIO_JOB_OPTION_NAMES);

/**
 * The option a name means, as glibc's getopt_long_only() finds it in fio's table: the name itself,
 * or the one option it is a prefix of; the candidates, in the table's order, when it is a prefix of
 * several; null when it is none.
 */
export function fioOptionName(name: string): string | readonly string[] | null {
  if (ownEntry(OPTIONS, name) || FIO_GETOPT.has(name)) return name;
  const c = FIO_GETOPT_TABLE.filter(([n]) => n.startsWith(name)).map(([n]) => n);
  return c.length === 1 ? c[0] : c.length > 1 ? c : null;
}

/**
 * `size`: bytes, or `N%` of the device from `offset` on (fio's size callback and its filesetup.c, which
 * rounds the share down to the block size).
 */
function sizeOption(j: FioJob, raw: string): void {
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

function positiveSize(opt: string, raw: string, v = parseSize(opt, raw)): number {
  if (v < 1) failedParsing(opt, raw, `${opt}: min value out of range: ${v} (1 min)`);
  return v;
}

/**
 * fio takes a block size per direction (`bs=4k,8k`: reads, writes[, trims]); this fio runs one size for
 * all, so a list is taken only when its sizes agree, and refused, by name, when they do not.
 */
function blockSize(opt: string, raw: string): number {
  const sizes = raw.split(',').filter((p) => p !== '');
  if (sizes.length === 0) return positiveSize(opt, raw);
  const [first, ...rest] = sizes.map((p) => positiveSize(opt, p));
  if (rest.some((v) => v !== first))
    failedParsing(opt, raw, `${opt}: block sizes per direction (${raw}) are not supported: give one size`);
  return first;
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

/** Levenshtein distance, for fio's "Did you mean" hint. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

/**
 * fio's show_closest_option() (init.c): the first name of its getopt table nearest the argument as
 * written — leading dashes stripped, `=value` and all — if within half the argument's length (parse.c's
 * string_distance_ok()); `extra` names (the bench's own options) come after fio's.
 */
export function closestOption(
  arg: string,
  extra: readonly string[] = [],
  among: readonly string[] = FIO_GETOPT_NAMES,
): string | null {
  const name = arg.replace(/^-+/, '');
  const ok = Math.floor((name.length + 1) / 2);
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of [...among, ...extra]) {
    // the distance is at least the lengths' difference: a name that far off can neither beat the
    // best so far nor be close enough (a 100k-character option took 2.4 s of distance tables)
    const gap = Math.abs(name.length - k.length);
    if (gap >= bestD || gap > ok) continue;
    const dd = distance(name, k);
    if (dd < bestD) {
      bestD = dd;
      best = k;
    }
  }
  return bestD <= ok ? best : null;
}

/**
 * What fio says of an option given without its value: getopt's message, then init.c's for the '?' it
 * returns, with show_closest_option()'s hint (from the argument as written, dashes and all).
 */
function missingArgument(name: string, arg: string): string[] {
  const hint = closestOption(arg);
  return [
    `fio: option '--${name}' requires an argument`,
    `fio: unrecognized option '${arg}'`,
    ...(hint ? [`Did you mean ${hint}?`] : []),
  ];
}

export interface SplitOption {
  name: string;
  value: string | null;
  /** The argument as written, for messages. */
  arg: string;
  /** Where a job file's option came from: its errors are said as fio says a job file's. */
  from?: JobFileLine;
}

/** A command line: its options, and the job files named in it (fio's words that are no option). */
export interface SplitCommandLine {
  options: SplitOption[];
  jobFiles: string[];
}

/**
 * Splits argv into `--name[=value]` options and job files. `takesValue(name)` says whether a value may
 * come from the next argument. As glibc's getopt permutes them, a word that is no option (and every
 * word after `--`) is a job file wherever it stands; fio reads its job files after the command line.
 */
export function splitOptions(
  prog: string,
  argv: readonly string[],
  takesValue: (name: string) => boolean,
): SplitCommandLine {
  const options: SplitOption[] = [];
  const jobFiles: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    // -h is fio's short --help; getopt refuses any other short option it does not know
    if (arg === '-h') {
      options.push({ name: 'help', value: null, arg });
      continue;
    }
    if (arg === '--') {
      jobFiles.push(...argv.slice(i + 1));
      break;
    }
    // `-` alone is a job file: standard input
    if (arg.startsWith('-') && !arg.startsWith('--') && arg !== '-')
      fail(`${prog}: unrecognized option '${arg}'`);
    if (!arg.startsWith('--')) {
      jobFiles.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    let value = eq < 0 ? null : arg.slice(eq + 1);
    if (value === null && takesValue(name)) {
      if (i + 1 >= argv.length) fail(...missingArgument(name, arg));
      value = argv[++i];
    }
    options.push({ name, value, arg });
  }
  return { options, jobFiles };
}

export const FIO_OPTION_NAMES: readonly string[] = Object.keys(OPTIONS);

/**
 * Whether the options ask for help (`--help` or `-h` where getopt sees an option, not an option's
 * value); `--help=…` is refused, as getopt refuses an argument to it.
 */
export function helpAsked(prog: string, opts: readonly SplitOption[]): boolean {
  return switchAsked(prog, opts, 'help');
}
/**
 * Whether the options ask for fio's version (`--version`, which fio.c answers with the version string
 * and status 0); `--version=…` is refused, as getopt refuses an argument to it.
 */
export function versionAsked(prog: string, opts: readonly SplitOption[]): boolean {
  return switchAsked(prog, opts, 'version');
}

/** The `--section` names of a command line, which choose among its job files' sections. */
export function sectionsAsked(opts: readonly SplitOption[]): string[] {
  return opts.filter((o) => fioOptionName(o.name) === 'section').map((o) => o.value ?? '');
}

/** Whether a switch that getopt takes with no argument was given; one given a value is refused. */
function switchAsked(prog: string, opts: readonly SplitOption[], name: string): boolean {
  const o = opts.find((x) => fioOptionName(x.name) === name);
  if (o && o.value !== null) fail(`${prog}: option '--${name}' doesn't allow an argument`);
  return o !== undefined;
}
/**
 * Whether a value of `--name` may be the next argument: every option but the set-only ones — fio's
 * own that this fio lacks too, so that `--io_submit_mode offload` is refused for the option it is.
 */
export function fioTakesValue(name: string): boolean {
  const r = fioOptionName(name);
  if (typeof r !== 'string') return false;
  const o = ownEntry(OPTIONS, r);
  return o ? !o.flag : (FIO_GETOPT.get(r) ?? false);
}

/**
 * Parses fio options into jobs: the command line's, then its job files' (jobFileOptions()). `extra`
 * handles names that are not fio's (pvblk's own options): it returns true when it consumed the option.
 * Unknown names fail with fio's message — a job file's as options.c says them for a file: every bad
 * option of the section, then `fio: job <section> dropped`.
 */
export function parseFioOptions(
  opts: readonly SplitOption[],
  extra: (o: SplitOption) => boolean = () => false,
  knownExtra: readonly string[] = [],
): FioCommandLine {
  const global: FioGlobal = {
    outputFormat: parseOutputFormat('normal'),
    output: null,
    eta: 'auto',
    sections: [],
  };
  const defaults: FioJob = { name: '', ...DEFAULT_JOB };
  const globalGiven: Record<string, string> = {};
  const jobs: FioJob[] = [];
  const given: Array<Record<string, string>> = [];
  const inherited: Array<Record<string, string>> = [];
  const options: SplitOption[] = [];
  let current: FioJob | null = null;
  // a job file's section whose options failed: what fio said of each, until the section ends
  let dropped: {
    section: string;
    index: number;
    lines: string[];
    unknown: string[];
    out: string[];
  } | null = null;
  const endOfSection = (next: SplitOption | null) => {
    if (dropped && next?.from?.sectionIndex !== dropped.index)
      throw new FioUsageError(
        [...dropped.lines, ...dropped.unknown, `fio: job ${dropped.section} dropped`],
        dropped.out,
      );
  };
  const take = (given0: SplitOption) => {
    let def = ownEntry(OPTIONS, given0.name);
    if (given0.from) {
      // a file names an option exactly (parse.c's find_option_c()), and the command line's own
      // switches are none of its options
      if (def?.switch || (!def && !FIO_JOB_OPTIONS.has(given0.name))) {
        const hint = closestOption(given0.name, [], FIO_JOB_OPTION_NAMES);
        fail(`Bad option <${given0.arg}>`, ...(hint ? [`Did you mean ${hint}?`] : []));
      }
    } else if (!def && extra(given0)) return;
    // an unambiguous prefix is the option it begins (getopt_long_only()); a file's is exact
    const meant = def || given0.from ? given0.name : fioOptionName(given0.name);
    if (typeof meant !== 'string') {
      const hint = closestOption(given0.arg, knownExtra);
      const said = `fio: unrecognized option '${given0.arg}'`;
      const did = hint ? [`Did you mean ${hint}?`] : [];
      // glibc's getopt names the candidates, then init.c its '?'; an unknown name both say unknown
      if (meant)
        fail(
          `fio: option '${given0.arg}' is ambiguous; possibilities: ${meant.map((n) => `'--${n}'`).join(' ')}`,
          said,
          ...did,
        );
      fail(said, said, ...did);
    }
    const o: SplitOption = { ...given0, name: meant };
    def = ownEntry(OPTIONS, meant);
    if (!def) fail(`fio: option '${o.arg}' is one of fio's, but this fio does not implement it (see --help)`);
    // a switch of fio's command line with no argument (getopt's no_argument): getopt refuses one
    // given with '=', and init.c then calls the option unrecognized
    if (def.switch && def.flag && o.value !== null)
      fail(
        `fio: option '--${o.name}' doesn't allow an argument`,
        `fio: unrecognized option '${o.arg}'`,
        `Did you mean ${o.name}?`,
      );
    const value = o.value ?? (def.flag ? '1' : null);
    if (value === null)
      fail(...(o.from ? [`Option ${o.name} requires an argument`] : missingArgument(o.name, o.arg)));
    // init.c's parse_cmd_line(): a job option of getopt's required_argument given `=` and nothing
    if (value === '' && !o.from && !def.switch && fioTakesValue(o.name))
      fail(`fio: option ${o.name} requires an argument`);
    options.push(o);
    if (o.name === 'name') {
      // a job file's `name=` names the job of its section (its [header] started it)
      if (o.from && !o.from.header) {
        if (!current) fail(`fio: ${o.from.line}: a [global] section's name= is not supported`);
        current.name = value;
        given[given.length - 1].name = value;
        return;
      }
      // init.c's parse_cmd_line(): a section whose name starts with "global" is the global one
      if (value.startsWith('global')) {
        current = null;
        return;
      }
      current = { ...defaults, name: value };
      jobs.push(current);
      // a job file's section header is no option: fio's JSON lists no name for its job
      given.push(o.from ? {} : { name: value });
      inherited.push({ ...globalGiven });
      return;
    }
    if (def.global) def.apply(null, global, value, false);
    else def.apply(current ?? defaults, global, value, current !== null);
    if (def.switch) return;
    // as fio's add_to_dump_list() keeps it: the option's own name, and no value for a flag given bare
    const key = def.aliasOf ?? o.name;
    const shown = o.value ?? '';
    if (current) given[given.length - 1][key] = shown;
    else globalGiven[key] = shown;
  };
  for (const o of opts) {
    endOfSection(o);
    if (!o.from) {
      take(o);
      continue;
    }
    try {
      take(o);
    } catch (e) {
      if (!(e instanceof FioUsageError)) throw e;
      // parse.c says a file's value that does not parse with the line as written
      const failed = `fio: failed parsing ${o.name}=${o.value ?? ''}`;
      const lines = e.lines.map((l) => (l === failed ? `fio: failed parsing ${o.arg}` : l));
      if (!lines.includes(`fio: failed parsing ${o.arg}`) && !lines[0].startsWith('Bad option'))
        lines.push(`fio: failed parsing ${o.arg}`);
      dropped ??= {
        section: o.from.section,
        index: o.from.sectionIndex,
        lines: [],
        unknown: [],
        out: [],
      };
      // fio_options_parse() tries the names it does not know again after the others (as the
      // ioengine's options), and says them then
      (lines[0].startsWith('Bad option') ? dropped.unknown : dropped.lines).push(...lines);
      dropped.out.push(...e.out);
    }
  }
  endOfSection(null);
  if (jobs.length === 0) fail('No job(s) defined', '', 'give a job with --name=<job name> and its options');
  numberGroups(jobs);
  return { global, jobs, globalGiven, given, inherited, options };
}

/**
 * init.c's add_job(), job by job: a `stonewall` or `new_group` job after others starts a new reporting
 * group (its numjobs clones stay in it: fio clears the option on them); a `wait_for` names one earlier
 * job, not itself, and not a name two jobs have.
 */
function numberGroups(jobs: FioJob[]): void {
  let groupid = 0;
  let groupJobs = 0;
  for (const [i, j] of jobs.entries()) {
    if ((j.stonewall || j.newGroup) && groupJobs) {
      groupJobs = 0;
      groupid++;
    }
    j.groupid = groupid;
    groupJobs += j.numjobs;
    if (!j.waitFor) continue;
    if (j.waitFor === j.name) fail(`${j.name}: a job cannot wait for itself (wait_for=${j.waitFor}).`);
    const waitees = jobs.slice(0, i).filter((w) => w.name === j.waitFor).length;
    if (!waitees) fail(`${j.name}: waitee job ${j.waitFor} unknown.`);
    if (waitees > 1)
      fail(
        `${j.name}: multiple waitees ${j.waitFor} found,`,
        'please avoid duplicates when using wait_for option.',
      );
  }
}

/**
 * Checks a job against the device it will run on: what fio refuses at setup, plus a size past the
 * end of the device (fio would stop short; here it is refused, as the brief of the tool is exact counts).
 */
export function checkJobAgainstDevice(
  job: FioJob,
  dev: { path: string; bytes: number; logicalBlockSize: number },
): void {
  if (job.bs % dev.logicalBlockSize !== 0) {
    fail(
      `fio: bs=${job.bs} is not a multiple of the logical block size of ${dev.path} (${dev.logicalBlockSize})`,
    );
  }
  if (job.offset % dev.logicalBlockSize !== 0) {
    fail(
      `fio: offset=${job.offset} is not a multiple of the logical block size of ${dev.path} (${dev.logicalBlockSize})`,
    );
  }
  if (job.offset >= dev.bytes) {
    fail(`fio: offset=${job.offset} is at or past the end of ${dev.path} (${dev.bytes} bytes)`);
  }
  const size = jobSize(job, dev.bytes);
  if (job.offset + size > dev.bytes) {
    fail(`fio: offset=${job.offset} size=${size} goes past the end of ${dev.path} (${dev.bytes} bytes)`);
  }
  if (size < job.bs) {
    fail(`fio: size too small, must not be less than minimum block size: ${size} < ${job.bs}`);
  }
}

/** The bytes a second each way a job is held to (init.c's __setup_rate(): `rate`, else `rate_iops` × bs); 0: none. */
export function rateBps(job: FioJob): [number, number] {
  return [job.rate[0] || job.rateIops[0] * job.bs, job.rate[1] || job.rateIops[1] * job.bs];
}

/** Checks a job on its own (what needs no device). */
export function checkJob(job: FioJob): void {
  if (job.timeBased && job.runtime === null) {
    fail(`fio: ${job.name}: time_based needs a runtime (--runtime=<seconds>)`);
  }
  // fixup_options(): the sums over the three directions, as fio adds them; each direction's minimum
  // against its rate
  const sum = (x: PerDirection) => x[0] + x[1] + x[2];
  const rateLines: string[] = [];
  if ((sum(job.rate) && sum(job.rateIops)) || (sum(job.rateMin) && sum(job.rateIopsMin)))
    rateLines.push('fio: rate and rate_iops are mutually exclusive');
  for (const d of [0, 1, 2])
    if (
      (job.rate[d] && job.rate[d] < job.rateMin[d]) ||
      (job.rateIops[d] && job.rateIops[d] < job.rateIopsMin[d])
    )
      rateLines.push(`fio: minimum rate exceeds rate, ddir ${d}`);
  if (rateLines.length) fail(...rateLines);
  if (job.rateProcess === 'poisson') {
    // usec_for_io() divides by the blocks a second: fio 3.36 dies of SIGFPE under one
    for (const bps of rateBps(job)) {
      if (bps && bps < job.bs)
        fail(
          `fio: ${job.name}: rate_process=poisson needs a block a second at least (rate=${bps} B/s, bs=${job.bs})`,
        );
    }
  }
  if (job.verifyOnly && job.verify === 'none') {
    fail(`fio: ${job.name}: verify_only needs a verify method (--verify=crc32c|md5|…)`);
  }
  // fio 3.36 writes such a job's blocks and then fails an assertion in its verify phase
  if (job.verify === 'pattern' && !job.verifyPattern) {
    fail(`fio: ${job.name}: verify=pattern needs a verify_pattern (--verify_pattern=0xdeadbeef, say)`);
  }
  if (job.verify !== 'none' && job.bs <= headerSize(job.verify)) {
    // populate_hdr()'s "Blocksize too small", said before the job starts
    fail(
      `fio: ${job.name}: bs=${job.bs} is too small for verify=${job.verify}'s ${headerSize(job.verify)}-byte header`,
    );
  }
}

/**
 * The job's region against a device of `bytes`: `size`, or `sizePercent` of the device (at most what
 * lies past `offset`, a whole number of blocks, as fio's filesetup.c has it), or all past `offset`.
 */
export function jobSize(job: FioJob, bytes: number): number {
  if (job.size !== null) return job.size;
  const rest = bytes - job.offset;
  if (job.sizePercent === null) return rest;
  const share = Math.min(rest, Math.floor((bytes * job.sizePercent) / 100));
  return share - (share % job.bs);
}

/**
 * A writer that verifies what it wrote (`do_verify && verify && td_write(td)` in fio): backend.c
 * follows each of its passes with a verify phase, eta.c counts that phase in its size, and init.c
 * warns of what can keep the phase from starting or passing.
 */
export function verifiesWrites(job: FioJob): boolean {
  return job.verify !== 'none' && job.doVerify && rwKinds(job.rw).write;
}

/** Whether the job reads, writes or both. */
export function rwKinds(rw: FioRw): { read: boolean; write: boolean; random: boolean } {
  return {
    read: rw === 'read' || rw === 'randread' || rw === 'rw' || rw === 'randrw',
    write: rw === 'write' || rw === 'randwrite' || rw === 'rw' || rw === 'randrw',
    random: rw.startsWith('rand'),
  };
}
