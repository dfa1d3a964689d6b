/**
 * fio's command-line job options, as the guest's `fio` and `pvblk bench` take them: the names, value
 * syntax (`4k`, `30s`, `0`/`1`), defaults and error messages of fio 3.x. Both `--opt=value` and
 * `--opt value` are accepted, except for fio's set-only options (`--time_based`, `--group_reporting`,
 * `--verify_only`), which take a value only with `=`, as fio's getopt table has them.
 *
 * Options before the first `--name` are global; each `--name` starts a job that inherits them (fio's
 * command-line job sections). Every error names the option, in fio's words, and nothing runs.
 *
 * Deliberate differences from fio, all documented in docs/experiments.md: the default ioengine is
 * `libaio` (fio's is psync), because queue depth is the point of this tool; `filename` defaults to the
 * guest's first disk; a size past the end of the device is refused up front (fio would stop short).
 */
import { ownEntry, PvblkError } from '@pvblk/shared';

export const FIO_VERSION = 'fio-3.36';

export type FioRw = 'read' | 'write' | 'randread' | 'randwrite' | 'rw' | 'randrw';
export type FioVerify = 'none' | 'crc32c' | 'md5';
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
  filename: string | null;
  rw: FioRw;
  /** Percentage of reads in a mixed workload. */
  rwmixread: number;
  bs: number;
  iodepth: number;
  numjobs: number;
  /** Bytes of the region each job works on; null = to the end of the device. */
  size: number | null;
  offset: number;
  /** Milliseconds; null = until `size` bytes are done. */
  runtime: number | null;
  timeBased: boolean;
  /** Milliseconds of I/O before statistics start (fio's ramp_time). */
  rampTime: number;
  direct: boolean;
  ioengine: FioEngine;
  verify: FioVerify;
  doVerify: boolean;
  verifyOnly: boolean;
  randseed: number;
  randrepeat: boolean;
}

export interface FioGlobal {
  outputFormat: FioOutputFormat;
  eta: 'auto' | 'always' | 'never';
  groupReporting: boolean;
  percentileList: number[];
  /** Decimals the percentiles are printed with: the most any of them was given with (parse.c). */
  percentilePrecision: number;
}

export interface FioCommandLine {
  global: FioGlobal;
  jobs: FioJob[];
  /** Options given on the command line, per job, as fio's JSON "job options" lists them. */
  given: Array<Record<string, string>>;
}

export const DEFAULT_PERCENTILES = [
  1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99,
];

const RW_VALUES: Array<[FioRw, string]> = [
  ['read', 'Sequential read'],
  ['write', 'Sequential write'],
  ['randread', 'Random read'],
  ['randwrite', 'Random write'],
  ['rw', 'Sequential read and write mix'],
  ['randrw', 'Random read and write mix'],
];

const DEFAULT_JOB: Omit<FioJob, 'name'> = {
  filename: null,
  rw: 'read',
  rwmixread: 50,
  bs: 4096,
  iodepth: 1,
  numjobs: 1,
  size: null,
  offset: 0,
  runtime: null,
  timeBased: false,
  rampTime: 0,
  direct: false,
  ioengine: 'libaio',
  verify: 'none',
  doVerify: true,
  verifyOnly: false,
  randseed: 0x2ce7a3bf,
  randrepeat: true,
};

/** A command-line mistake: the lines fio would print, then exit status 1. */
export class FioUsageError extends PvblkError {
  constructor(readonly lines: string[]) {
    super('EUSAGE', lines.join('\n'));
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

/** fio's size syntax with kb_base=1024: `4096`, `4k`, `4K`, `4KiB`, `128kb`, `1m`, `2g`. */
export function parseSize(opt: string, raw: string): number {
  const m = /^([0-9]+)(?:([kmgtpKMGTP])(?:[iI]?[bB])?|[bB])?$/.exec(raw.trim());
  if (!m) return failedParsing(opt, raw);
  const v = Number(m[1]) * SIZE_UNITS[(m[2] ?? '').toLowerCase()];
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
export function parseTime(opt: string, raw: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h|d)?$/.exec(raw.trim());
  if (!m) return failedParsing(opt, raw);
  return Number(m[1]) * TIME_UNITS[m[2] ?? 's'];
}

export function parseIntOption(opt: string, raw: string, min: number, max: number): number {
  if (!/^-?[0-9]+$/.test(raw.trim())) return failedParsing(opt, raw);
  const v = Number(raw);
  if (v < min) return failedParsing(opt, raw, `${opt}: min value out of range: ${v} (${min} min)`);
  if (v > max) return failedParsing(opt, raw, `${opt}: max value out of range: ${v} (${max} max)`);
  return v;
}

export function parseBool(opt: string, raw: string): boolean {
  if (raw === '1' || raw === 'true' || raw === 'on' || raw === 'yes') return true;
  if (raw === '0' || raw === 'false' || raw === 'off' || raw === 'no') return false;
  return failedParsing(opt, raw, `${opt}: not a boolean: ${raw} (0 or 1)`);
}

export function parseChoice<T extends string>(
  opt: string,
  raw: string,
  values: ReadonlyArray<readonly [T, string]>,
): T {
  const hit = values.find(([v]) => v === raw);
  if (hit) return hit[0];
  const table = values.map(([v, help], i) =>
    `${(i === 0 ? 'valid values' : '').padStart(20)}: ${v.padEnd(10)} ${help}`.trimEnd(),
  );
  return fail(...table, '', `fio: failed parsing ${opt}=${raw}`);
}

type Apply = (job: FioJob | null, global: FioGlobal, raw: string) => void;

interface OptionDef {
  /** fio's set-only options: a value only with `=`. */
  flag?: boolean;
  /** Applies to the whole run, not to one job. */
  global?: boolean;
  apply: Apply;
}

const jobOpt =
  (fn: (job: FioJob, raw: string) => void): Apply =>
  (job, _g, raw) => {
    if (job) fn(job, raw);
  };

/** The options of fio this tool implements, by every name fio accepts for them. */
const OPTIONS: Record<string, OptionDef> = {
  name: { apply: jobOpt((j, v) => (j.name = v)) },
  filename: { apply: jobOpt((j, v) => (j.filename = v)) },
  rw: { apply: jobOpt((j, v) => (j.rw = parseChoice('rw', v === 'readwrite' ? 'rw' : v, RW_VALUES))) },
  readwrite: {
    apply: jobOpt((j, v) => (j.rw = parseChoice('readwrite', v === 'readwrite' ? 'rw' : v, RW_VALUES))),
  },
  rwmixread: { apply: jobOpt((j, v) => (j.rwmixread = parseIntOption('rwmixread', v, 0, 100))) },
  rwmixwrite: { apply: jobOpt((j, v) => (j.rwmixread = 100 - parseIntOption('rwmixwrite', v, 0, 100))) },
  bs: { apply: jobOpt((j, v) => (j.bs = blockSize('bs', v))) },
  blocksize: { apply: jobOpt((j, v) => (j.bs = blockSize('blocksize', v))) },
  iodepth: { apply: jobOpt((j, v) => (j.iodepth = parseIntOption('iodepth', v, 1, 65536))) },
  numjobs: { apply: jobOpt((j, v) => (j.numjobs = parseIntOption('numjobs', v, 1, 64))) },
  size: { apply: jobOpt((j, v) => (j.size = positiveSize('size', v))) },
  offset: { apply: jobOpt((j, v) => (j.offset = parseSize('offset', v))) },
  runtime: { apply: jobOpt((j, v) => (j.runtime = positiveTime('runtime', v))) },
  timeout: { apply: jobOpt((j, v) => (j.runtime = positiveTime('timeout', v))) },
  time_based: { flag: true, apply: jobOpt((j, v) => (j.timeBased = parseBool('time_based', v))) },
  ramp_time: { apply: jobOpt((j, v) => (j.rampTime = parseTime('ramp_time', v))) },
  direct: { apply: jobOpt((j, v) => (j.direct = parseBool('direct', v))) },
  buffered: { apply: jobOpt((j, v) => (j.direct = !parseBool('buffered', v))) },
  ioengine: {
    apply: jobOpt(
      (j, v) =>
        (j.ioengine = parseChoice('ioengine', v, [
          ['libaio', 'Linux native asynchronous IO (here: bios straight to the guest block layer)'],
          ['io_uring', 'Fast Linux native aio (here: the same engine as libaio)'],
          ['pvblk', 'The same engine as libaio'],
          ['psync', 'Use pread/pwrite (synchronous: iodepth 1)'],
          ['sync', 'Use read/write (synchronous: iodepth 1)'],
        ] as const)),
    ),
  },
  verify: {
    apply: jobOpt(
      (j, v) =>
        (j.verify = parseChoice('verify', v === 'crc32c-intel' ? 'crc32c' : v, [
          ['none', "Don't do IO verification"],
          ['md5', 'Use md5 checksums for verification'],
          ['crc32c', 'Use crc32c checksums for verification'],
        ] as const)),
    ),
  },
  do_verify: { apply: jobOpt((j, v) => (j.doVerify = parseBool('do_verify', v))) },
  verify_only: { flag: true, apply: jobOpt((j, v) => (j.verifyOnly = parseBool('verify_only', v))) },
  randseed: {
    apply: jobOpt((j, v) => {
      j.randseed = parseIntOption('randseed', v, 0, 0xffffffff);
      j.randrepeat = true;
    }),
  },
  randrepeat: { apply: jobOpt((j, v) => (j.randrepeat = parseBool('randrepeat', v))) },
  group_reporting: {
    flag: true,
    global: true,
    apply: (_j, g, v) => (g.groupReporting = parseBool('group_reporting', v)),
  },
  percentile_list: {
    global: true,
    apply: (_j, g, v) => {
      const { list, precision } = parsePercentiles(v);
      g.percentileList = list;
      g.percentilePrecision = precision;
    },
  },
  'output-format': { global: true, apply: (_j, g, v) => (g.outputFormat = parseOutputFormat(v)) },
  // fio's --minimal: terse output only
  minimal: {
    flag: true,
    global: true,
    apply: (_j, g, v) => {
      if (parseBool('minimal', v)) g.outputFormat = parseOutputFormat('terse');
    },
  },
  eta: {
    global: true,
    apply: (_j, g, v) =>
      (g.eta = parseChoice('eta', v, [
        ['auto', 'Show the ETA line when the output is a terminal'],
        ['always', 'Always show the ETA line'],
        ['never', 'Never show the ETA line'],
      ] as const)),
  },
};

function positiveSize(opt: string, raw: string): number {
  const v = parseSize(opt, raw);
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

function positiveTime(opt: string, raw: string): number {
  const v = parseTime(opt, raw);
  if (v <= 0) failedParsing(opt, raw, `${opt}: min value out of range: 0 (1 min)`);
  return v;
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
        `value out of range: ${v.toFixed(6)} (range max: 100.000000)`,
        `fio: failed parsing percentile_list=${raw}`,
      );
    if (v < 0)
      fail(
        `value out of range: ${v.toFixed(6)} (range min: 0.000000)`,
        `fio: failed parsing percentile_list=${raw}`,
      );
    return v;
  });
  const precision = Math.max(0, ...parts.map((p) => /\.(\d*)/.exec(p)?.[1].length ?? 0));
  return { list: list.sort((a, b) => a - b), precision };
}

export function isFioOption(name: string): boolean {
  return Object.hasOwn(OPTIONS, name);
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

/** fio's show_closest_option(): a suggestion when a name is within distance 2 of a known one. */
export function closestOption(name: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = 3;
  for (const k of known) {
    // lengths further apart than the best distance cannot beat it: a long name costs nothing
    if (Math.abs(name.length - k.length) >= bestD) continue;
    const dd = distance(name, k);
    if (dd < bestD) {
      bestD = dd;
      best = k;
    }
  }
  return best;
}

export interface SplitOption {
  name: string;
  value: string | null;
  /** The argument as written, for messages. */
  arg: string;
}

/**
 * Splits argv into `--name[=value]` options. `takesValue(name)` says whether a value may come from the
 * next argument. Anything that is not an option is refused (fio would read it as a job file).
 */
export function splitOptions(
  prog: string,
  argv: readonly string[],
  takesValue: (name: string) => boolean,
): SplitOption[] {
  const out: SplitOption[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--') || arg === '--') {
      fail(`${prog}: job files are not supported: '${arg}' (give the job as --name=… options)`);
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    let value = eq < 0 ? null : arg.slice(eq + 1);
    if (value === null && takesValue(name)) {
      if (i + 1 >= argv.length) fail(`Option ${name} requires an argument`, `fio: failed parsing ${name}`);
      value = argv[++i];
    }
    out.push({ name, value, arg });
  }
  return out;
}

export const FIO_OPTION_NAMES: readonly string[] = Object.keys(OPTIONS);

/** Whether a value of `--name` may be the next argument (every option but the set-only ones). */
export function fioTakesValue(name: string): boolean {
  const o = ownEntry(OPTIONS, name);
  return o !== undefined && !o.flag;
}

/**
 * Parses fio options into jobs. `extra` handles names that are not fio's (pvblk's own options): it
 * returns true when it consumed the option. Unknown names fail with fio's message.
 */
export function parseFioOptions(
  opts: readonly SplitOption[],
  extra: (o: SplitOption) => boolean = () => false,
  knownExtra: readonly string[] = [],
): FioCommandLine {
  const global: FioGlobal = {
    outputFormat: parseOutputFormat('normal'),
    eta: 'auto',
    groupReporting: false,
    percentileList: DEFAULT_PERCENTILES,
    percentilePrecision: 2,
  };
  const defaults: FioJob = { name: '', ...DEFAULT_JOB };
  const globalGiven: Record<string, string> = {};
  const jobs: FioJob[] = [];
  const given: Array<Record<string, string>> = [];
  let current: FioJob | null = null;
  for (const o of opts) {
    const def = ownEntry(OPTIONS, o.name);
    if (!def) {
      if (extra(o)) continue;
      const hint = closestOption(o.name, [...FIO_OPTION_NAMES, ...knownExtra]);
      fail(`fio: unrecognized option '${o.arg}'`, ...(hint ? [`Did you mean ${hint}?`] : []));
    }
    const value = o.value ?? (def.flag ? '1' : null);
    if (value === null) fail(`Option ${o.name} requires an argument`, `fio: failed parsing ${o.name}`);
    if (o.name === 'name') {
      if (value === '') fail('fio: job name may not be empty', 'fio: failed parsing name=');
      current = { ...defaults, name: value };
      jobs.push(current);
      given.push({ ...globalGiven, name: value });
      continue;
    }
    if (def.global) {
      def.apply(null, global, value);
      continue;
    }
    def.apply(current ?? defaults, global, value);
    if (current) given[given.length - 1][o.name] = value;
    else globalGiven[o.name] = value;
  }
  if (jobs.length === 0) fail('No job(s) defined', '', 'give a job with --name=<job name> and its options');
  return { global, jobs, given };
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
  const size = job.size ?? dev.bytes - job.offset;
  if (job.offset + size > dev.bytes) {
    fail(`fio: offset=${job.offset} size=${size} goes past the end of ${dev.path} (${dev.bytes} bytes)`);
  }
  if (size < job.bs) {
    fail(`fio: size too small, must not be less than minimum block size: ${size} < ${job.bs}`);
  }
}

/** Checks a job on its own (what needs no device). */
export function checkJob(job: FioJob): void {
  if (job.timeBased && job.runtime === null) {
    fail(`fio: ${job.name}: time_based needs a runtime (--runtime=<seconds>)`);
  }
  if (job.verifyOnly && job.verify === 'none') {
    fail(`fio: ${job.name}: verify_only needs a verify method (--verify=crc32c|md5)`);
  }
  if (job.verify !== 'none' && job.bs < 64) {
    fail(`fio: ${job.name}: bs=${job.bs} cannot hold a verify header (64 bytes at least)`);
  }
}

/** The job's effective region size against a device of `bytes`. */
export function jobSize(job: FioJob, bytes: number): number {
  return job.size ?? bytes - job.offset;
}

/** Whether the job reads, writes or both. */
export function rwKinds(rw: FioRw): { read: boolean; write: boolean; random: boolean } {
  return {
    read: rw === 'read' || rw === 'randread' || rw === 'rw' || rw === 'randrw',
    write: rw === 'write' || rw === 'randwrite' || rw === 'rw' || rw === 'randrw',
    random: rw.startsWith('rand'),
  };
}
