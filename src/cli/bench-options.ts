/**
 * `pvblk bench`'s command line: fio's job options (parsed by the guest fio's own parser, so both take
 * exactly the same syntax) plus pvblk's, which shape the stack the jobs run on. Every value is checked
 * here, against the disk the stack will have, before anything is started: a mistake is refused with a
 * fio-style message naming the option, and the command exits with status 1.
 */
import {
  checkJob,
  checkJobAgainstDevice,
  FIO_OPTION_NAMES,
  FioUsageError,
  fioTakesValue,
  helpAsked,
  versionAsked,
  isGlobalFioOption,
  isGlobalSection,
  commandLineFirst,
  parseBool,
  parseChoice,
  parseFioOptions,
  parseIntOption,
  parseTime,
  PVBLK_STACK_OPTIONS,
  rwBlockSize,
  rwKinds,
  sectionsAsked,
  splitOptions,
  GUEST_KEYWORDS,
  JOB_FILE_MAX_BYTES,
  JobFileError,
  jobFileOptions,
  type FioCommandLine,
  type FioJob,
  type SplitOption,
  FIO_IOMEM_MAX,
  jobIomem,
  jobSize,
  startOffset,
  subjobNumber,
} from '@pvblk/frontend';
import {
  checkNewDisk,
  DEFAULT_HOST_QUOTAS,
  diskBytes,
  formatBytes,
  parseByteSize,
  parseScsiDebugParams,
  QUOTA_SETTINGS,
  storeBlocks,
  capacityBlocks,
  type HostQuotas,
} from '@pvblk/backend';
import { open } from 'node:fs/promises';
import { isPvblkError, XENBUS_MAX_RING_GRANT_ORDER } from '@pvblk/shared';
import { RELAY_MAX_BS } from './bench-relay.ts';
import { guestNames } from './options.ts';

/** The stack a bench point runs on. */
export interface StackShape {
  pi: boolean;
  /** With `pi`, blkback offers inline integrity requests (feature-integrity-inline). */
  piInline: boolean;
  disk: string;
  persistent: boolean;
  dataPath: 'map' | 'copy';
  indirectSegments: number;
  ringPageOrder: number;
  queues: number;
  guests: number;
}

export interface BenchOptions {
  cl: FioCommandLine;
  stack: StackShape;
  baseline: boolean;
  /** With `baseline`: the measured time cut into this many slices, pvblk's and the relay's in turn. */
  baselineSlices: number;
  plot: string | null;
  trace: boolean;
  /** Untimed I/O before each measured run (pvblk's and the relay's), ms. */
  warmupMs: number;
  /** Sample every process's RSS this often, ms. */
  rssIntervalMs: number;
  sweeps: Sweep[];
}

export interface Sweep {
  key: SweepKey;
  /** The values as written, in order. */
  values: string[];
}

/** What --sweep can vary: job options (same stack) and stack options (a new stack per point). */
export const SWEEP_JOB_KEYS = [
  'iodepth',
  'bs',
  'numjobs',
  'rwmixread',
  'rw',
  'rate_iops',
  'rate',
  'thinktime',
  // fio's batches: how many I/Os go down the ring at a time, and how many it waits for
  'iodepth_batch',
  'iodepth_batch_complete_min',
  'iodepth_low',
] as const;
export const SWEEP_STACK_KEYS = [
  'ring-page-order',
  'queues',
  'indirect-segments',
  'data-path',
  'persistent',
  'pi',
  'pi-inline',
  'guests',
  'ndelay',
] as const;
export type SweepKey = (typeof SWEEP_JOB_KEYS)[number] | (typeof SWEEP_STACK_KEYS)[number];

/** pvblk's own options that are not the stack's: name → takes a value. */
const BENCH_OPTIONS: Record<string, boolean> = {
  warmup: true,
  'rss-interval': true,
  'baseline-slices': true,
  help: false,
};

/** Slices of a measured run with --baseline-slices: at most this many, each at least this long. */
export const MAX_BASELINE_SLICES = 100;
export const MIN_SLICE_MS = 200;

/**
 * The longest warm-up: the guests' fio is handed it as `runtime=<n>ms`, and an untimed hour is already
 * far past what JIT, pools and persistent grants need.
 */
export const MAX_WARMUP_MS = 3_600_000;

/** Points of one bench (the product of its sweeps' value counts): each is a measured run of its own. */
export const MAX_SWEEP_POINTS = 256;

export const BENCH_USAGE = `usage: pvblk bench --name=<job> [fio options] [pvblk options] [job file …]

Starts its own stack (hypervisor, host, guests), runs the fio job in every guest (as
\`pvblk guest fio\` would), and prints fio's report with what only the host sees: notifications each
way, grant operations, broker frames and bytes per request, every process's memory.

fio options (fio's names and syntax, --opt=value or --opt value):
  --name --filename --rw=read|write|trim|randread|randwrite|randtrim|rw|randrw|trimwrite|randtrimwrite
  --rwmixread --bs (per direction: 4k,16k) --bsrange --bssplit --blockalign --bs_unaligned
  --bs_is_seq_rand --iodepth --numjobs --size --offset --loops --runtime --time_based --ramp_time --direct=0|1
  --invalidate --fadvise_hint=0|1|random|sequential --end_fsync --fsync_on_close
  --ioengine=libaio|io_uring|psync|sync --verify=none|md5|crc32c|sha256|…|meta|pattern|null
  --verify_pattern --do_verify --verify_only --verify_interval --verify_offset --verify_fatal
  --verify_dump --verify_backlog --verify_backlog_batch
  --rate --rate_iops --rate_process=linear|poisson --thinktime --thinktime_spin --thinktime_blocks
  --thinktime_blocks_type=complete|issue --thinktime_iotime
  --randseed --randrepeat --group_reporting --percentile_list --slat_percentiles --clat_percentiles
  --lat_percentiles --disable_lat --disable_clat --disable_slat --disable_bw_measurement
  --gtod_reduce --stats --stonewall --wait_for_previous --new_group --wait_for --exitall --exit_what
  --exitall_on_error
  --rate_min --rate_iops_min --rate_cycle --rate_ignore_thinktime --startdelay
  --iodepth_batch_submit (--iodepth_batch) --iodepth_batch_complete_min (--iodepth_batch_complete)
  --iodepth_batch_complete_max --iodepth_low
  --max_latency --latency_target --latency_window --latency_percentile --latency_run
  --write_lat_log --write_bw_log --write_iops_log --log_avg_msec --log_max_value --log_offset
  --log_prio --per_job_logs --log_unix_epoch --bwavgtime --iopsavgtime --write_hist_log
  --log_hist_msec --log_hist_coarseness (each guest's logs are brought here as
  <log file>.<guest>, and in a sweep .<key>=<value> after that, as fio's client names a server's)
  --output-format=normal|json|json+|terse[,…] --minimal --terse-version=3 --eta=auto|always|never
  --output=FILE (the report to FILE on this machine, the ETA line to the terminal)
  job files (fio's [section] and key=value lines, read on this machine; \${VAR} from its
  environment) and --section=<name>, as \`fio job.fio\`
  (and fio's aliases: --readwrite, --blocksize, --rwmixwrite, --timeout, --buffered; an
  unambiguous prefix of an option is that option, as fio's getopt takes it)

pvblk options:
  --pi                       disk formatted with PI (dif=1 dix=1) and the blkif integrity extension
  --pi-inline, --no-pi-inline   small integrity requests in the ring slot (default on)
  --disk "<params>"          scsi_debug parameters of the disks (e.g. "ndelay=200000 dev_size_mb=64")
  --persistent, --no-persistent   persistent grants (default on)
  --data-path map|copy       blkback maps grants (Linux) or copies (QEMU qdisk)
  --indirect-segments N      blkfront max_indirect_segments (32; 0 = 11-segment requests only)
  --ring-page-order N        ring of 2^N pages (0-4)
  --queues N                 rings per device (1-16)
  --guests N                 guests running the job at once (1-64)
  --baseline                 also measure a plain relay of the same bytes over the same three
                             hops (ws + the wire codec) and print pvblk/relay beside every figure
  --baseline-slices N        with --baseline and --time_based: cut the runtime into N slices and
                             run pvblk's and the relay's in turn (default 1: pvblk, then the relay),
                             so that a slow spell of the machine falls on both sides of the ratio
  --trace                    per-stage latency breakdown from trace stamps in every process
  --plot FILE.svg|FILE.png   latency CDF (and stage breakdown with --trace); IOPS and latency
                             against the swept value with --sweep
  --sweep KEY=V1,V2,…        run once per value: ${[...SWEEP_JOB_KEYS, ...SWEEP_STACK_KEYS].join(', ')}
                             (several sweeps run their product, ${MAX_SWEEP_POINTS} points at most);
                             each point's jobs are described by its values (terse: the last field)
  --warmup TIME              untimed I/O before each measured run (default 500ms, 0 for none)
  --rss-interval TIME        how often every process's RSS is sampled (default 1s)

Ctrl-C or SIGTERM during a measured run, or once a point has reported, ends the jobs where they
are and reports what ran, as fio does (exit status 128); a second one, or one before the first
measured run, stops everything at once without a report (130). SIGHUP (the terminal closed) stops
everything without a report (129); a closed stdout (\`| head -1\`) too (141). Run through \`npx\`,
a Ctrl-C ends npm's own process too, and the shell sees 130 whatever the bench's status.
`;

const fail = (...lines: string[]): never => {
  throw new FioUsageError(lines);
};

/** `f()`, with a PvblkError it throws refused as `<prefix>: <its detail>` (and `more` lines). */
function failOnError<T>(prefix: string, f: () => T, ...more: string[]): T {
  try {
    return f();
  } catch (e) {
    if (isPvblkError(e)) fail(`${prefix}: ${e.detail}`, ...more);
    throw e;
  }
}

export const DEFAULT_STACK: StackShape = {
  pi: false,
  piInline: true,
  disk: '',
  persistent: true,
  dataPath: 'map',
  indirectSegments: 32,
  ringPageOrder: 0,
  queues: 1,
  guests: 1,
};

/** A switch given as `--key`, `--key=<bool>` or `--no-key` (which takes no value). */
function onOff(key: string, name: string, value: string | null): boolean {
  if (name === key) return value === null ? true : parseBool(key, value);
  if (value !== null) fail(`fio: option '--${name}' takes no value (got "${value}")`);
  return false;
}

/** Applies one stack option (also used for sweep values). */
function applyStack(s: StackShape, name: string, value: string | null): void {
  const need = (): string =>
    value ?? fail(`Option ${name} requires an argument`, `fio: failed parsing ${name}`);
  switch (name) {
    case 'pi':
      s.pi = value === null ? true : parseBool('pi', value);
      return;
    case 'persistent':
    case 'no-persistent':
      s.persistent = onOff('persistent', name, value);
      return;
    case 'pi-inline':
    case 'no-pi-inline':
      s.piInline = onOff('pi-inline', name, value);
      return;
    case 'disk':
      s.disk = need();
      return;
    case 'data-path':
      s.dataPath = parseChoice('data-path', need(), [
        ['map', "blkback maps the guest's grants (Linux blkback)"],
        ['copy', 'blkback uses grant copy (QEMU qdisk)'],
      ] as const);
      return;
    case 'indirect-segments':
      s.indirectSegments = parseIntOption('indirect-segments', need(), 0, 4096);
      return;
    case 'ring-page-order':
      s.ringPageOrder = parseIntOption('ring-page-order', need(), 0, XENBUS_MAX_RING_GRANT_ORDER);
      return;
    case 'queues':
      s.queues = parseIntOption('queues', need(), 1, 16);
      return;
    case 'guests':
      s.guests = parseIntOption('guests', need(), 1, 64);
      return;
  }
}

/** Sets `ndelay=` in a disk parameter string (the sweep key `ndelay`). */
export function withDiskParam(disk: string, key: string, value: string): string {
  const kept = disk.split(/\s+/).filter((t) => t && !t.startsWith(`${key}=`));
  return [...kept, `${key}=${value}`].join(' ');
}

/** The disk parameters a stack gets: --disk, plus dif=1 dix=1 with --pi. */
export function diskParams(s: StackShape): string {
  let d = s.disk;
  if (s.pi) {
    if (!/\bdif=/.test(d)) d = withDiskParam(d, 'dif', '1');
    if (!/\bdix=/.test(d)) d = withDiskParam(d, 'dix', '1');
  }
  return d.trim();
}

/**
 * What the disk adds to every command, in words for the report's stack line: scsi_debug's default is a
 * jiffy (1 ms here), which a `--disk` without `delay=0` keeps and the relay baseline does not have.
 */
export function diskDelayNote(s: StackShape): string {
  const p = parseScsiDebugParams(diskParams(s));
  if (p.ndelay > 0) return `${p.ndelay} ns a command`;
  if (p.delay > 0)
    return `delay=${p.delay}: ${p.delay} ms a command${p.delay === 1 ? ", scsi_debug's default" : ''}; --disk delay=0 for none`;
  return 'no delay';
}

/** One point of a sweep: the job options and the stack it runs on. */
export interface BenchPoint {
  label: Record<string, string>;
  cl: FioCommandLine;
  stack: StackShape;
}

function applyJobValue(cl: FioCommandLine, key: string, value: string): FioCommandLine {
  // the options as given, parsed again with the swept one last in each job's section (before the
  // next --name, global or not): one parser for every value, and every section where it was
  const opts: SplitOption[] = [];
  const swept: SplitOption = { name: key, value, arg: `--${key}=${value}` };
  let inJob = false;
  for (const o of cl.options) {
    // a section's start: the command line's --name or a job file's header (its name= lines rename)
    if (o.name === 'name' && (!o.from || o.from.header)) {
      if (inJob) opts.push(swept);
      inJob = !isGlobalSection(o.value ?? '');
    }
    opts.push(o);
  }
  if (inJob) opts.push(swept);
  const next = parseFioOptions(opts);
  next.global = cl.global;
  return next;
}

/** Every point of the sweeps (their cartesian product), or the one run. */
export function benchPoints(o: BenchOptions): BenchPoint[] {
  let points: BenchPoint[] = [{ label: {}, cl: o.cl, stack: { ...o.stack } }];
  for (const sw of o.sweeps) {
    const next: BenchPoint[] = [];
    for (const p of points) {
      for (const v of sw.values) {
        const stack = { ...p.stack };
        let cl = p.cl;
        if ((SWEEP_JOB_KEYS as readonly string[]).includes(sw.key)) cl = applyJobValue(cl, sw.key, v);
        else if (sw.key === 'ndelay') stack.disk = withDiskParam(stack.disk, 'ndelay', v);
        else applyStack(stack, sw.key, v);
        next.push({ label: { ...p.label, [sw.key]: v }, cl, stack });
      }
    }
    points = next;
  }
  return points;
}

/** True when two points can share one running stack (only job options differ). */
export function sameStack(a: StackShape, b: StackShape): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function parseSweep(raw: string): Sweep {
  const eq = raw.indexOf('=');
  const key = eq < 0 ? raw : raw.slice(0, eq);
  const known = [...SWEEP_JOB_KEYS, ...SWEEP_STACK_KEYS] as readonly string[];
  if (!known.includes(key))
    fail(
      `fio: --sweep ${raw}: cannot sweep "${key}" (sweepable: ${known.join(', ')})`,
      'fio: failed parsing sweep=' + raw,
    );
  const values = eq < 0 ? [] : raw.slice(eq + 1).split(',');
  if (values.length < 1 || values.some((v) => v === ''))
    fail(`fio: --sweep ${raw}: give the values as ${key}=V1,V2,…`, 'fio: failed parsing sweep=' + raw);
  // a disk parameter is checked here, where the message can name the sweep (checkPoint names --disk)
  if (key === 'ndelay')
    for (const v of values)
      failOnError(
        `fio: --sweep ${raw}`,
        () => parseScsiDebugParams(`ndelay=${v}`),
        'fio: failed parsing sweep=' + raw,
      );
  return { key: key as SweepKey, values };
}

/** The bench's argv split: its options (fio's, the stack's, the bench's own) and its job files. */
function splitBench(argv: readonly string[]) {
  const takes = (n: string) =>
    fioTakesValue(n) || PVBLK_STACK_OPTIONS[n] === true || BENCH_OPTIONS[n] === true;
  // help is an option as getopt sees it: not the value of one that takes it (`--filename --help`)
  return splitOptions('pvblk bench', argv, takes);
}

/** How many job files the command line names. */
export function benchJobFileCount(argv: readonly string[]): number {
  return splitBench(argv).jobFiles.length;
}

/**
 * The options of the job files the command line names, read on this host (`-`: standard input), with
 * its environment for `${VAR}`; the keywords are the guests' (GUEST_KEYWORDS). Throws
 * FioUsageError with fio's lines.
 */
export async function benchJobFiles(argv: readonly string[]): Promise<SplitOption[]> {
  const { options, jobFiles } = splitBench(argv);
  if (!jobFiles.length || helpAsked('pvblk bench', options) || versionAsked('pvblk bench', options))
    return [];
  commandLineFirst(() => parseBenchArgs(argv));
  try {
    return await jobFileOptions(jobFiles, {
      async read(path) {
        let fd;
        try {
          fd = await open(path === '-' ? '/dev/stdin' : path, 'r');
        } catch (e) {
          return { missing: (e as NodeJS.ErrnoException).code === 'ENOENT' };
        }
        try {
          // a bound on what is read: a larger file is refused on its size, not held
          const buf = Buffer.alloc(JOB_FILE_MAX_BYTES + 1);
          let n = 0;
          for (;;) {
            const r = await fd.read(buf, n, buf.length - n, null);
            if (r.bytesRead === 0 || (n += r.bytesRead) === buf.length) break;
          }
          return n > JOB_FILE_MAX_BYTES ? { tooBig: true } : buf.subarray(0, n);
        } catch {
          return {};
        } finally {
          await fd.close();
        }
      },
      env: (name) => process.env[name],
      keywords: GUEST_KEYWORDS,
      sections: sectionsAsked(options),
    });
  } catch (e) {
    if (e instanceof JobFileError) throw new FioUsageError(e.lines);
    throw e;
  }
}

/**
 * Parses and checks the whole command line, with the options of its job files (benchJobFiles()).
 * Throws FioUsageError with fio-style lines.
 */
export function parseBenchArgs(
  argv: readonly string[],
  fromFiles: readonly SplitOption[] = [],
): BenchOptions | 'help' | 'version' {
  const stack: StackShape = { ...DEFAULT_STACK };
  let baseline = false;
  let baselineSlices = 1;
  let plot: string | null = null;
  let trace = false;
  let warmupMs = 500;
  let rssIntervalMs = 1000;
  const sweeps: Sweep[] = [];
  const { options: opts } = splitBench(argv);
  if (helpAsked('pvblk bench', opts)) return 'help';
  if (versionAsked('pvblk bench', opts)) return 'version';
  const cl = parseFioOptions(
    [...opts, ...fromFiles],
    (o) => {
      switch (o.name) {
        case 'baseline':
          baseline = o.value === null ? true : parseBool('baseline', o.value);
          return true;
        case 'baseline-slices':
          baselineSlices = parseIntOption('baseline-slices', o.value ?? '', 1, MAX_BASELINE_SLICES);
          return true;
        case 'trace':
          trace = o.value === null ? true : parseBool('trace', o.value);
          return true;
        case 'plot':
          plot = o.value ?? '';
          if (!/\.(svg|png)$/i.test(plot))
            fail(
              `fio: --plot ${plot}: the file name must end in .svg or .png`,
              `fio: failed parsing plot=${plot}`,
            );
          return true;
        case 'sweep':
          sweeps.push(parseSweep(o.value ?? ''));
          return true;
        case 'warmup':
          warmupMs = parseTime('warmup', o.value ?? '');
          // the guests' fio takes it as runtime=, in whole milliseconds (1 at least); 0 means none
          if (warmupMs > 0 && warmupMs < 1)
            fail(
              `warmup: min value out of range: ${o.value} (1ms min, or 0 for none)`,
              `fio: failed parsing warmup=${o.value}`,
            );
          if (warmupMs > MAX_WARMUP_MS)
            fail(
              `warmup: max value out of range: ${o.value} (1h max)`,
              `fio: failed parsing warmup=${o.value}`,
            );
          return true;
        case 'rss-interval':
          rssIntervalMs = parseTime('rss-interval', o.value ?? '');
          if (rssIntervalMs < 100)
            fail(
              `rss-interval: min value out of range: ${o.value} (100ms min)`,
              `fio: failed parsing rss-interval=${o.value}`,
            );
          // a timer takes at most 2^31 - 1 ms: beyond, Node fires it every millisecond
          if (rssIntervalMs > MAX_WARMUP_MS)
            fail(
              `rss-interval: max value out of range: ${o.value} (1h max)`,
              `fio: failed parsing rss-interval=${o.value}`,
            );
          return true;
      }
      if (Object.hasOwn(PVBLK_STACK_OPTIONS, o.name)) {
        applyStack(stack, o.name, o.value);
        return true;
      }
      return false;
    },
    [...Object.keys(PVBLK_STACK_OPTIONS), ...Object.keys(BENCH_OPTIONS)],
  );
  const seen = new Set<string>();
  let points = 1;
  for (const s of sweeps) {
    if (seen.has(s.key)) fail(`fio: --sweep ${s.key} given twice`);
    seen.add(s.key);
    // counted before any point is built: a few sweeps of many values would not fit in memory
    points *= s.values.length;
    if (points > MAX_SWEEP_POINTS)
      fail(
        `fio: --sweep: ${sweeps.map((x) => `${x.key} (${x.values.length})`).join(' × ')} is more than ${MAX_SWEEP_POINTS} points, each a run of its own`,
      );
  }
  if (baselineSlices > 1) checkSlices(cl, baseline, baselineSlices);
  const o: BenchOptions = {
    cl,
    stack,
    baseline,
    baselineSlices,
    plot,
    trace,
    warmupMs,
    rssIntervalMs,
    sweeps,
  };
  for (const p of benchPoints(o)) {
    checkPoint(p, o.stack.disk);
    if (baseline)
      for (const j of p.cl.jobs) {
        const bs = rwBlockSize(j);
        if (bs === null)
          fail(
            `fio: --baseline: the relay carries requests of one size: give one bs for reads and writes (no bsrange or bssplit)`,
          );
        else if (bs > RELAY_MAX_BS)
          fail(
            `fio: --baseline: the relay carries requests of ${RELAY_MAX_BS / 1024} KiB at most (bs=${bs})`,
          );
        if (rwKinds(j.rw).trim)
          fail(`fio: --baseline: the relay carries reads and writes, no trims (rw=${j.rw})`);
        // the relay keeps its depth full: beside a held rate or a thinking job its figures would be
        // of another load, and their ratio no measure of the path
        const held = [
          j.rate[0] || j.rate[1] ? 'rate' : '',
          j.rateIops[0] || j.rateIops[1] ? 'rate_iops' : '',
          j.thinktime ? 'thinktime' : '',
          j.latencyTarget.targetNs ? 'latency_target' : '',
          j.startDelay[1] ? 'startdelay' : '',
          // batches and a low-water mark change the depth the job keeps
          j.iodepthBatch.submit !== null ? 'iodepth_batch_submit' : '',
          j.iodepthBatch.completeMin !== null ? 'iodepth_batch_complete_min' : '',
          j.iodepthBatch.completeMax !== null ? 'iodepth_batch_complete_max' : '',
          j.iodepthBatch.low !== null ? 'iodepth_low' : '',
          // jobs that run one after another: the relay runs them side by side
          j.stonewall ? 'stonewall' : '',
          j.waitFor ? 'wait_for' : '',
          // a job left out of pvblk's report would be in the relay's
          j.statsEnabled ? '' : 'stats=0',
        ].filter(Boolean);
        if (held.length)
          fail(
            `fio: --baseline: the relay runs at its full depth and has no ${held.join(' or ')}: measure that job without --baseline`,
          );
      }
  }
  return o;
}

/** Slices take turns by time: a time-based run, one runtime for every job, long enough to cut. */
function checkSlices(cl: FioCommandLine, baseline: boolean, n: number): void {
  if (!baseline)
    fail(`fio: --baseline-slices=${n} needs --baseline (it interleaves pvblk's run with the relay's)`);
  // a job's options follow its --name: which job lacks what is said, for a second job's own options
  const lacking = cl.jobs.find((j) => !j.timeBased || j.runtime === null);
  if (lacking) {
    const missing = lacking.timeBased ? 'no runtime' : lacking.runtime === null ? 'neither' : 'no time_based';
    const which = cl.jobs.length > 1 ? `: job ${lacking.name} has ${missing}` : '';
    fail(
      `fio: --baseline-slices=${n} needs --time_based and --runtime (slices are cut from the runtime)${which}`,
    );
  }
  const runtimes = new Set(cl.jobs.map((j) => j.runtime));
  if (runtimes.size > 1)
    fail(
      `fio: --baseline-slices=${n} needs the same --runtime for every job (${cl.jobs.map((j) => `${j.name}: ${j.runtime}ms`).join(', ')})`,
    );
  // every slice is a run of its own: a ramp would be repeated in each, and not in the relay's
  if (cl.jobs.some((j) => j.rampTime > 0))
    fail(`fio: --baseline-slices=${n} cannot be used with ramp_time (each slice would ramp again)`);
  // each slice's fio writes its logs afresh, their times from its own start
  const l = (j: FioJob) => j.logs;
  if (cl.jobs.some((j) => l(j).lat !== null || l(j).bw !== null || l(j).iops !== null || l(j).hist !== null))
    fail(
      `fio: --baseline-slices=${n} cannot be used with write_lat_log, write_bw_log, write_iops_log or write_hist_log (each slice is a run of its own, whose log would start again at 0)`,
    );
  const ms = [...runtimes][0]!;
  if (ms / n < MIN_SLICE_MS)
    fail(
      `fio: --baseline-slices=${n}: runtime=${ms}ms gives slices of ${Math.floor(ms / n)}ms (${MIN_SLICE_MS}ms min)`,
    );
}

/** A slice's runtime, ms (whole milliseconds: the guests' fio takes it as `--runtime=<n>ms`). */
export function sliceRuntimeMs(cl: FioCommandLine, slices: number): number | null {
  const r = cl.jobs[0].runtime;
  return r === null ? null : Math.round(r / slices);
}

/** Everything a point must satisfy before a stack is started for it. */
/** The option, as the user gave it, that set `key` of a point: a sweep's value, or the option itself. */
function givenAs(p: BenchPoint, key: string, option: string): string {
  return p.label[key] !== undefined ? `--sweep ${key}=${p.label[key]}` : option;
}

function checkPoint(p: BenchPoint, disk: string): void {
  const params = failOnError('fio: --disk', () => parseScsiDebugParams(diskParams(p.stack)));
  // --pi asks for a PI-formatted disk; dif=0 or dix=0 in --disk would quietly run without one
  if (p.stack.pi && (params.dif === 0 || params.dix === 0)) {
    const pi = givenAs(p, 'pi', '--pi');
    fail(
      `fio: ${pi} with --disk "${disk}": --pi needs protection information on the disk (dif=1, 2 or 3, and dix=1); drop dif=0/dix=0 or ${pi}`,
    );
  }
  // the bench's host refuses a disk over its quotas only once the stack is up: refused here instead
  const quotas = hostQuotas();
  const each = diskBytes(params);
  // the disks in use would be this run's own other guests': say it of the whole run
  if (p.stack.guests > 1 && each <= quotas.maxDiskBytes && p.stack.guests * each > quotas.maxTotalDiskBytes)
    fail(
      `fio: ${givenAs(p, 'guests', `--guests=${p.stack.guests}`)} with --disk "${disk}": ${p.stack.guests} disks of ${formatBytes(each)} (${formatBytes(p.stack.guests * each)}) are over the host's disk quota of ${formatBytes(quotas.maxTotalDiskBytes)} (${QUOTA_SETTINGS.maxTotalDiskBytes})`,
    );
  guestNames(p.stack.guests).forEach((guest, i) =>
    failOnError('fio: --disk', () => checkNewDisk(quotas, guest, each, i * each)),
  );
  // the guest's fio works its regions out against the capacity it sees (virtual_gb's, when set);
  // the data lives in the store, which a larger capacity wraps around
  const bytes = capacityBlocks(params) * params.sector_size;
  const store = storeBlocks(params) * params.sector_size;
  for (const job of p.cl.jobs) {
    checkJob(job);
    if (job.filename !== null && job.filename !== '/dev/xvda' && job.filename !== 'xvda') {
      fail(`fio: ${job.filename}: the bench's guests have one disk, /dev/xvda`);
    }
    checkJobAgainstDevice(job, { path: '/dev/xvda', bytes, logicalBlockSize: params.sector_size });
    checkOverlap(job, bytes, store);
  }
  // what fio in each guest will hold at once; found out there, it would end the run with ENOMEM
  const iomem = p.cl.jobs.reduce((a, j) => a + j.numjobs * jobIomem(j), 0);
  if (iomem > FIO_IOMEM_MAX)
    fail(
      `fio: the jobs' I/O buffers (numjobs × iodepth × bs) come to ${iomem} bytes, over the ${FIO_IOMEM_MAX} a guest gives them`,
    );
}

/** The disk quotas of the bench's host: its defaults, or what the environment it inherits sets. */
function hostQuotas(env: Record<string, string | undefined> = process.env): HostQuotas {
  const size = (v: string | undefined, fallback: number, setting: string): number =>
    v === undefined || v === '' ? fallback : failOnError(`fio: ${setting}`, () => parseByteSize(v));
  return {
    ...DEFAULT_HOST_QUOTAS,
    maxDiskBytes: size(
      env.PVBLK_MAX_DISK_SIZE,
      DEFAULT_HOST_QUOTAS.maxDiskBytes,
      QUOTA_SETTINGS.maxDiskBytes,
    ),
    maxTotalDiskBytes: size(
      env.PVBLK_MAX_TOTAL_DISK,
      DEFAULT_HOST_QUOTAS.maxTotalDiskBytes,
      QUOTA_SETTINGS.maxTotalDiskBytes,
    ),
  };
}

/**
 * fio warns that several writers overwrite each other's blocks; with verify that is a certain failure,
 * unless `offset_increment` keeps the clones' regions apart. The regions are compared where their
 * data lands: in the store, which a virtual_gb capacity wraps around (a region longer than the store
 * overwrites itself).
 */
function checkOverlap(job: FioJob, bytes: number, store: number): void {
  if (job.verify === 'none' || !rwKinds(job.rw).write) return;
  const spans: Array<[number, number]> = [];
  for (let k = 0; k < job.numjobs; k++) {
    const start = startOffset(job, bytes, subjobNumber(job, k));
    const size = jobSize(job, bytes, subjobNumber(job, k));
    if (size > store)
      fail(
        `fio: ${job.name}: verify over ${size} bytes, more than the disk's store of ${store} (virtual_gb wraps the region over itself)`,
      );
    const s = start % store;
    if (s + size <= store) spans.push([s, s + size]);
    else spans.push([s, store], [0, s + size - store]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  if (spans.every(([s], i) => i === 0 || s >= spans[i - 1][1])) return;
  fail(
    `fio: ${job.name}: verify with numjobs=${job.numjobs} on overlapping regions: the writers overwrite each other's blocks`,
    'fio: give the clones regions apart (--offset_increment at least --size), or each job its own --offset and --size, or numjobs=1',
  );
}

export { FIO_OPTION_NAMES };

/**
 * The command line of the guests' fio for a point's jobs: each job on its own, with what it inherited,
 * and `override` (null: leave the option out) over both.
 */
export function fioArgv(
  cl: FioCommandLine,
  override: Record<string, string | null>,
  extra: string[],
): string[] {
  const argv = ['fio'];
  const arg = (k: string, v: string) => (v === '' && !fioTakesValue(k) ? `--${k}` : `--${k}=${v}`);
  // each job with what it inherited from the global sections before it, then its own options, then
  // the bench's (the warm-up's runtime, …), which win over both; the run's own options stay with the
  // bench, and so does group_reporting: the bench groups the jobs of every guest (reportJobs()), from
  // each job's own figures
  cl.given.forEach((given, i) => {
    argv.push(`--name=${cl.jobs[i].name}`);
    const options = { ...cl.inherited[i], ...given, ...override };
    for (const [k, v] of Object.entries(options)) {
      if (k === 'name' || v === null || isGlobalFioOption(k) || k === 'group_reporting') continue;
      argv.push(arg(k, v));
    }
    // the stonewall fio sets between job files is no option given: the job says it
    if (cl.jobs[i].stonewall && !('stonewall' in options)) argv.push('--stonewall');
  });
  // the bench's own global options (the output format) before the jobs: fio shows a job's line by
  // the format in force when it adds the job, which is when the next job's --name comes
  return [argv[0], ...extra, ...argv.slice(1)];
}
