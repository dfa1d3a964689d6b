/**
 * `fio` inside a guest: fio's command-line jobs run against the guest's block devices, with fio's
 * outputs (normal, json, json+, terse) and its live ETA line. Like fio in a VM, it sees only what a
 * guest sees: its own requests, latencies and blkfront's counters; the broker's and the backend's side
 * are `pvblk bench`'s business (it runs this command in each guest and adds them).
 *
 *   pvblk guest fio --name=randw --rw=randwrite --bs=4k --iodepth=32 --direct=1 --size=4m
 */
import {
  num2str,
  renderJson,
  renderNormal,
  renderTerse,
  reportGroups,
  type FioReportJob,
} from './fio-report.ts';
import { FIO_VERSION } from './fio-options.ts';
import {
  NO_JOBS_LINE,
  fioTakesValue,
  helpAsked,
  versionAsked,
  parseFioOptions,
  sectionsAsked,
  showCommandLines,
  splitOptions,
  type FioCommandLine,
  type SplitOption,
} from './fio-cmdline.ts';
import {
  checkJob,
  checkJobAgainstDevice,
  subjobNumber,
  DEFAULT_PERCENTILES,
  rwKinds,
  syncEngine,
  type FioJob,
} from './fio-job.ts';
import { FioUsageError, parseBool, sayLines } from './fio-parse.ts';
import { setupLines, startBanner } from './fio-setup.ts';
import { Worker } from './fio-engine.ts';
import { diskDelta, diskSnapshot, frontDelta, frontSnapshot } from './fio-diskutil.ts';
import { JOB_FILE_MAX_BYTES, JobFileError, jobFileOptions, type JobFileSource } from './fio-jobfile.ts';
import { readWhole } from './commands.ts';
import { runThreads } from './fio-run-threads.ts';
import { JobStats, type DeviceCounters } from './fio-stats.ts';
import type { GuestDisk, GuestRuntime } from './toolbox.ts';
import {
  COMMAND_SIGNALS,
  commandSignal,
  STRERROR,
  type CommandIo,
  type Errno,
  type GuestCommand,
  type GuestVfs,
} from './vfs.ts';
import { fixed } from './printf.ts';
import { totalmem } from 'node:os';
import { fioJsonText } from './fio-json.ts';
import { writeLog } from './fio-log.ts';

/**
 * Options of `pvblk bench` that configure the stack (name → whether it takes a value): meaningless
 * inside a running guest, refused there with a message saying so.
 */
export const PVBLK_STACK_OPTIONS: Readonly<Record<string, boolean>> = {
  pi: false,
  disk: true,
  persistent: false,
  'no-persistent': false,
  'pi-inline': false,
  'no-pi-inline': false,
  'data-path': true,
  'indirect-segments': true,
  'ring-page-order': true,
  queues: true,
  guests: true,
  baseline: false,
  plot: true,
  sweep: true,
  trace: false,
};

/**
 * pvblk's own option of the guest's fio, for `pvblk bench`: include the raw statistics (HDR
 * histograms) and the errors of jobs no report lists, and leave what fio says as it reads its jobs
 * (setupLines()) to the bench, which says it once for all its guests.
 */
const RAW_OPTION = 'pvblk_raw';
/**
 * pvblk's own option of the guest's fio: the ETA line whatever the output format — fio prints it only
 * with the normal output (eta.c), but `pvblk bench` reads its guests' ETA lines beside their JSON.
 */
const ETA_OPTION = 'pvblk_eta';

/** What the guest's fio is asked to run, and pvblk's own options for it. */
export interface GuestFioCommand {
  cl: FioCommandLine;
  raw: boolean;
  eta: boolean;
}

export const FIO_USAGE = `usage: fio [global options] --name=<job> [options] [--name=<job> [options] …] [job file …]
job files: [section] lines and key=value options, as fio's (docs/experiments.md); --section=<name>
job options (fio's names and syntax; --opt=value or --opt value; --name=global starts global ones):
  --filename=/dev/xvda   --rw=read|write|trim|randread|randwrite|randtrim|rw|randrw|trimwrite|randtrimwrite
  --rwmixread=50
  --bs=4k[,<writes>[,<trims>]]   --bsrange=4k-64k[,…]   --bssplit=4k/50:64k/50[,…]
  --blockalign=<bytes>[,…]   --bs_unaligned   --bs_is_seq_rand=0
  --iodepth=1   --numjobs=1   --size=<bytes>   --offset=0   --loops=1
  --iodepth_batch_submit=1   --iodepth_batch_complete_min=1   --iodepth_batch_complete_max=<n>
  --iodepth_low=<n>   (any of them: fio's submit and reap; none: reap a burst, refill at once)
  --runtime=<time>   --time_based   --ramp_time=<time>   --direct=0|1
  --invalidate=1   --fadvise_hint=0|1|random|sequential   --end_fsync=0   --fsync_on_close=0
  --ioengine=libaio|io_uring|psync|sync   --do_verify=1   --verify_only
  --verify=none|md5|crc64|crc32|crc32c|crc16|crc7|sha1|sha256|sha512|sha3-224|sha3-256|sha3-384|
           sha3-512|xxhash|meta|pattern|null   --verify_pattern=0xdeadbeef|"text"|<int>|%o…
  --verify_interval=<bytes>   --verify_offset=<bytes>   --verify_fatal=0   --verify_dump=0
  --verify_backlog=<blocks>   --verify_backlog_batch=<blocks>
  --rate=<bytes/s>[,<bytes/s>]   --rate_iops=<n>[,<n>]   --rate_process=linear|poisson
  --thinktime=<µs>   --thinktime_spin=<µs>   --thinktime_blocks=1   --thinktime_iotime=<s>
  --thinktime_blocks_type=complete|issue   --rate_ignore_thinktime=0
  --rate_min=<bytes/s>[,…]   --rate_iops_min=<n>[,…]   --rate_cycle=1000   --startdelay=<s>[-<s>]
  --randseed=<n>   --randrepeat=1   --description=<text>
  --stonewall   --wait_for_previous   --new_group   --wait_for=<job>   --exitall
  --exit_what=group|stonewall|all   --exitall_on_error
  --group_reporting   --percentile_list=1:5:…:99.99
  --slat_percentiles=0   --clat_percentiles=1   --lat_percentiles=0
  --disable_lat=0   --disable_clat=0   --disable_slat=0   --disable_bw_measurement=0   --gtod_reduce=0
  --stats=1
  --max_latency=<µs>[,<µs>]   --latency_target=<µs>   --latency_window=<µs>   --latency_percentile=100
  --latency_run=0
  --write_lat_log=<prefix>   --write_bw_log=<prefix>   --write_iops_log=<prefix>   --log_avg_msec=0
  --log_max_value=0   --log_offset=0   --log_prio=0   --per_job_logs=1   --bwavgtime=500
  --iopsavgtime=500   --log_unix_epoch=0   --write_hist_log=<prefix>   --log_hist_msec=0
  --log_hist_coarseness=0   (the logs are written in the guest's /, as <prefix>_lat.1.log, …)
  --output-format=normal|json|json+|terse[,…]   --minimal   --eta=auto|always|never   --version
  --output=<file>
`;

/** What fio's thread_main() says of a synchronous engine given a queue depth, once per job it starts. */
export const SYNC_DEPTH_NOTE =
  'note: both iodepth >= 1 and synchronous I/O engine are selected, queue depth will be capped at 1';

/** The notes fio prints as its jobs start (one per job clone). */
export function startNotes(jobs: FioJob[]): string[] {
  return jobs.flatMap((j) =>
    syncEngine(j) && j.iodepth > 1 ? new Array<string>(j.numjobs).fill(SYNC_DEPTH_NOTE) : [],
  );
}

/** The line fio's thread_main() prints (log_info, on stdout) for a job that ended in error. */
export function jobErrorLine(pid: number, error: number, verror: string): string {
  return `fio: pid=${pid}, err=${error}/${verror}`;
}

/** eta_to_str(). */
export function etaToStr(sec: number | null): string {
  if (sec === null || !Number.isFinite(sec)) return '--';
  let s = Math.max(0, Math.round(sec));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const p2 = (v: number) => String(v).padStart(2, '0');
  return `${d ? `${p2(d)}d:` : ''}${h || d ? `${p2(h)}h:` : ''}${p2(m)}m:${p2(s)}s`;
}

/** fio's condensed run string: runs of one state as `w(4)`. */
export function condensedRunStr(states: string[]): string {
  const out: string[] = [];
  for (let i = 0; i < states.length;) {
    let j = i;
    while (j < states.length && states[j] === states[i]) j++;
    out.push(`${states[i]}(${j - i})`);
    i = j;
  }
  return out.join(',');
}

/** What the ETA line shows: jobs running and their states, done fraction, ETA (s), rates (B/s, IOPS). */
export interface EtaStatus {
  running: number;
  states: string[];
  done: number | null;
  eta: number | null;
  rB: number;
  wB: number;
  rI: number;
  wI: number;
  /** Trims' rates (absent: none). */
  tB?: number;
  tI?: number;
  /**
   * The rate limits of the running jobs, summed over them and their directions (eta.c's m_rate and
   * t_rate, or m_iops and t_iops): `, 200KiB/s-1024KiB/s` or `, 100-200 IOPS` after the job count —
   * rate_min (rate_iops_min) before the dash, rate (rate_iops) after it.
   */
  limit?: { kind: 'bw' | 'iops'; min: number; max: number } | null;
}

/**
 * Whether display_thread_status() draws the bare `Jobs: 1 (f=1)`: with no job running, or before
 * eta.c estimates. calc_thread_status() leaves every job's ETA at INT_MAX until the whole seconds
 * since fio's start (`(mtime_since_genesis() + 999) / 1000`) reach 3.
 */
export function etaBare(msSinceGenesis: number, running: number): boolean {
  return running === 0 || Math.floor((Math.floor(msSinceGenesis) + 999) / 1000) < 3;
}

/**
 * The rate part of the ETA line (EtaStatus.limit): calc_thread_status() sums the `rate` (else the
 * `rate_iops`) of every job running, over the directions it does I/O in.
 */
export function etaLimit(jobs: FioJob[]): EtaStatus['limit'] {
  const sum: RateSums = { bwMin: 0, bw: 0, iopsMin: 0, iops: 0 };
  for (const j of jobs) {
    const k = rwKinds(j.rw);
    for (const [d, on] of [
      [0, k.read],
      [1, k.write],
      [2, k.trim],
    ] as const)
      if (on) {
        sum.bwMin += j.rateMin[d];
        sum.bw += j.rate[d];
        sum.iopsMin += j.rateIopsMin[d];
        sum.iops += j.rateIops[d];
      }
  }
  return rateLimit(sum);
}

/** Byte and I/O rates, their minimums and limits, summed (eta.c's m_rate, t_rate, m_iops, t_iops). */
export interface RateSums {
  bwMin: number;
  bw: number;
  iopsMin: number;
  iops: number;
}

/** The limit the ETA line names, of summed rates: byte rates over I/O ones, as eta.c. */
export function rateLimit(s: RateSums): EtaStatus['limit'] {
  if (s.bwMin || s.bw) return { kind: 'bw', min: s.bwMin, max: s.bw };
  if (s.iopsMin || s.iops) return { kind: 'iops', min: s.iopsMin, max: s.iops };
  return null;
}

/**
 * display_thread_status()'s percentage, with its memory: the whole seconds since fio's start over
 * those and the ETA (the largest of the jobs' thread_eta()). `-.-%` (null) while the ETA is 0 and no
 * percentage has been shown yet (its static eta_good), and on a line that shows none: a bare one, or
 * one where every running job ramps — neither sets the memory. Steps of whole seconds, as fio's.
 */
export function etaPercentage(): (
  msSinceGenesis: number,
  etaSec: number,
  line: { bare: boolean; running: number; states: string[] },
) => number | null {
  let good = false;
  return (ms, eta, line) => {
    const allRamp = line.running > 0 && line.states.filter((c) => c === '/').length === line.running;
    if (line.bare || allRamp || (eta === 0 && !good)) return null;
    good = true;
    const elapsed = Math.floor((Math.floor(ms) + 999) / 1000);
    return elapsed ? elapsed / (elapsed + eta) : 0;
  };
}

/**
 * The ETA line fio redraws once a second (display_thread_status()); `bare` (etaBare()), the count of
 * jobs and open files alone.
 */
export function etaLine(p: EtaStatus, bare = false): string {
  // a job in its ramp_time ('/', TD_RAMP) runs but has no file open in eta.c's count, and while every
  // running job ramps there is no percentage
  const ramping = p.states.filter((c) => c === '/').length;
  const limit = !p.limit
    ? ''
    : p.limit.kind === 'bw'
      ? `, ${num2str(p.limit.min, 4, true, 'bytepersec')}-${num2str(p.limit.max, 4, true, 'bytepersec')}`
      : `, ${p.limit.min}-${p.limit.max} IOPS`;
  const head = `Jobs: ${p.running} (f=${p.running - ramping})${limit}`;
  if (bare) return head;
  const perc =
    p.done === null || (ramping > 0 && ramping === p.running) ? '-.-%' : `${fixed(p.done * 100, 1)}%`;
  let rates = '';
  // each direction with a rate or IOPS above 0, as r=, w=, t=
  const dirs = [
    ['r', p.rB, p.rI],
    ['w', p.wB, p.wI],
    ['t', p.tB ?? 0, p.tI ?? 0],
  ] as const;
  const shown = dirs.filter(([, b, i]) => b > 0 || i > 0);
  if (shown.length) {
    const bw = shown.map(([c, b]) => `${c}=${num2str(b, 4, true, 'bytepersec')}`).join(',');
    const io = shown.map(([c, , i]) => `${c}=${num2str(i, 4, false, 'none')}`).join(',');
    rates = `[${bw}][${io} IOPS]`;
  }
  return `${head}: [${condensedRunStr(p.states)}][${perc}]${rates}[eta ${etaToStr(p.eta)}]`;
}

/**
 * Draws ETA lines over each other as eta.c does: each ends with a carriage return, and one shorter
 * than the line before is padded with spaces over that line's tail (linelen_last). A bare line
 * (`Jobs: 1 (f=1)`) is neither padded nor remembered: display_thread_status() keeps linelen_last in
 * the branch that draws the full line only.
 */
export function etaRedraw(): (line: string) => string {
  let last = 0;
  return (line) => {
    if (/^Jobs: \d+ \(f=\d+\)$/.test(line)) return line + '\r';
    const out = line.padEnd(last, ' ') + '\r';
    last = line.length;
    return out;
  };
}

/**
 * The ETA line read back (etaLine's inverse, to the precision it prints): `pvblk bench` sums the lines
 * of several guests into one.
 */
export function parseEtaLine(line: string): EtaStatus | null {
  const m =
    /^Jobs: (\d+) \(f=\d+\)(?:, (?:(\d+)-(\d+) IOPS|([^-]+)-([^:]+)))?: \[([^\]]*)\]\[([^\]]*)\](?:\[([^\]]*)\]\[([^\]]*) IOPS\])?\[eta ([^\]]+)\]/.exec(
      line.trim(),
    );
  if (!m) return null;
  const unit: Record<string, number> = {
    '': 1,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    Ki: 1024,
    Mi: 1048576,
    Gi: 1073741824,
  };
  const num = (v: string) => {
    const x = /^([\d.]+)(Ki|Mi|Gi|k|M|G)?/.exec(v);
    return x ? Number(x[1]) * (unit[x[2] ?? ''] ?? 1) : 0;
  };
  const pairs = (s: string | undefined) => {
    const r = { r: 0, w: 0, t: 0 };
    for (const p of (s ?? '').split(',')) {
      const [k, v] = p.split('=');
      if (k === 'r' || k === 'w' || k === 't') r[k] = num(v ?? '');
    }
    return r;
  };
  const states: string[] = [];
  for (const part of m[6].split(',')) {
    const x = /^(.)\((\d+)\)$/.exec(part);
    if (x) for (let i = 0; i < Number(x[2]); i++) states.push(x[1]);
  }
  const eta = /^(?:(\d+)d:)?(?:(\d+)h:)?(\d+)m:(\d+)s$/.exec(m[10]);
  const bw = pairs(m[8]);
  const io = pairs(m[9]);
  return {
    running: Number(m[1]),
    states,
    done: m[7].endsWith('%') && m[7] !== '-.-%' ? Number(m[7].slice(0, -1)) / 100 : null,
    eta: eta
      ? Number(eta[1] ?? 0) * 86400 + Number(eta[2] ?? 0) * 3600 + Number(eta[3]) * 60 + Number(eta[4])
      : null,
    rB: bw.r,
    wB: bw.w,
    rI: io.r,
    wI: io.w,
    // trims only where the line shows them
    ...(bw.t || io.t ? { tB: bw.t, tI: io.t } : {}),
    limit:
      m[2] !== undefined
        ? { kind: 'iops', min: Number(m[2]), max: Number(m[3]) }
        : m[4] !== undefined
          ? { kind: 'bw', min: num(m[4]), max: num(m[5]) }
          : null,
  };
}

function findDisk(rt: GuestRuntime, path: string | null): GuestDisk | undefined {
  if (path === null) return rt.disks[0];
  return rt.disks.find((d) => `/dev/${d.name}` === path || d.name === path);
}

/**
 * fio's keywords in a job file as a guest's fio finds them: 4 KiB pages, the memory of the machine it
 * runs on, one CPU (one thread runs every job).
 */
export const GUEST_KEYWORDS: JobFileSource['keywords'] = {
  pagesize: 4096,
  mb_memory: Math.floor(totalmem() / 2 ** 20),
  ncpus: 1,
};

/** The guest fio's argv split: its options and its job files. */
function splitGuestFio(args: string[]) {
  return splitOptions('fio', args, (n) => fioTakesValue(n) || PVBLK_STACK_OPTIONS[n] === true);
}

/**
 * Parses the guest fio's argv (without argv[0]) and the options of its job files (jobFileOptions(),
 * which fio takes after the command line's), or finds --help in it; throws FioUsageError.
 */
export function parseGuestFio(
  args: string[],
  fromFiles: readonly SplitOption[] = [],
): GuestFioCommand | 'help' | 'version' {
  // the bench's own switches, fio booleans both
  const own: Record<string, 'raw' | 'eta'> = { [RAW_OPTION]: 'raw', [ETA_OPTION]: 'eta' };
  const set = { raw: false, eta: false };
  const { options } = splitGuestFio(args);
  if (helpAsked('fio', options)) return 'help';
  if (versionAsked('fio', options)) return 'version';
  const cl = parseFioOptions(
    [...options, ...fromFiles],
    (o) => {
      if (Object.hasOwn(own, o.name)) {
        set[own[o.name]] = o.value === null || parseBool(o.name, o.value);
        return true;
      }
      if (Object.hasOwn(PVBLK_STACK_OPTIONS, o.name)) {
        throw new FioUsageError([
          `fio: option '--${o.name}' configures the stack of \`pvblk bench\`; a running guest cannot change it`,
        ]);
      }
      return false;
    },
    [],
  );
  cl.jobs.forEach((j, i) => {
    try {
      checkJob(j);
    } catch (e) {
      if (!(e instanceof FioUsageError)) throw e;
      // what fio said as it read the jobs before comes first: with --parse-only (or --showcmd) it adds
      // none, and says what its parse said; for pvblk bench (raw) the bench has said it
      const reading = cl.global.parseOnly || cl.global.showcmd;
      throw new FioUsageError(
        e.lines,
        e.out,
        set.raw ? [] : reading ? cl.warnings.map((line) => ({ stderr: true, line })) : setupLines(cl, i),
      );
    }
  });
  return { cl, ...set };
}

/**
 * init.c's parse_cmd_line() ends the run at the command line's first error, before a job file is
 * read: `parse` (the command line alone) says it; that its jobs are all in the files is no error.
 */
export function commandLineFirst(parse: () => unknown): void {
  try {
    parse();
  } catch (e) {
    if (!(e instanceof FioUsageError) || e.lines[0] !== NO_JOBS_LINE) throw e;
  }
}

/**
 * The job files of a guest's fio, read from its filesystem (`-`: its standard input) into options;
 * throws JobFileError with fio's lines (or, `aborted`, none: a signal came).
 */
async function guestJobFiles(rt: GuestRuntime, args: string[], io: CommandIo): Promise<SplitOption[]> {
  const { options, jobFiles } = splitGuestFio(args);
  if (!jobFiles.length || helpAsked('fio', options) || versionAsked('fio', options)) return [];
  commandLineFirst(() => parseGuestFio(args));
  const src: JobFileSource = {
    async read(path) {
      const chunks: Uint8Array[] = [];
      let bytes = 0;
      const r = await readWhole(rt.vfs, path, io, (c) => {
        bytes += c.length;
        // past the bound: enough read to refuse the file
        if (bytes > JOB_FILE_MAX_BYTES) return false;
        chunks.push(c.slice());
      });
      if (r.ok === 'aborted') return { aborted: true };
      if (!r.ok)
        return {
          missing: r.message === STRERROR.ENOENT,
          reason: path === '-' ? r.message : undefined,
        };
      return bytes > JOB_FILE_MAX_BYTES ? { tooBig: true } : Buffer.concat(chunks);
    },
    // the guest has no environment: a ${VAR} is replaced by nothing, as fio does an unset one
    env: () => undefined,
    keywords: GUEST_KEYWORDS,
    sections: sectionsAsked(options),
  };
  return await jobFileOptions(jobFiles, src);
}

/** The guest command. */
export function fioCommand(rt: GuestRuntime): GuestCommand {
  return async (argv, io) => {
    if (argv.length === 1) {
      io.stderr(FIO_USAGE);
      return 1;
    }
    let parsed: GuestFioCommand;
    const targets = new Map<FioJob, GuestDisk>();
    try {
      const p = parseGuestFio(argv.slice(1), await guestJobFiles(rt, argv.slice(1), io));
      if (p === 'help') {
        io.stdout(FIO_USAGE);
        return 0;
      }
      if (p === 'version') {
        io.stdout(`${FIO_VERSION}\n`);
        return 0;
      }
      parsed = p;
      // --parse-only and --showcmd: the jobs parsed (and the files shown), nothing run, nothing added
      if (p.cl.global.showcmd || p.cl.global.parseOnly) {
        for (const line of p.cl.warnings) io.stderr(line + '\n');
        if (p.cl.global.showcmd)
          io.stdout(showCommandLines(p.cl.options, splitGuestFio(argv.slice(1)).jobFiles.length));
        return 0;
      }
      try {
        checkDevices(rt, p.cl.jobs, targets);
      } catch (e) {
        // fio opens its files once it has read every job: what it said of them comes first
        if (!(e instanceof FioUsageError) || p.raw) throw e;
        throw new FioUsageError(e.lines, e.out, setupLines(p.cl));
      }
    } catch (e) {
      // a signal while the job files were read ends the command as the signal would fio's
      if (e instanceof JobFileError && e.aborted)
        return 128 + COMMAND_SIGNALS[commandSignal(io.signal.reason)];
      if (e instanceof FioUsageError || e instanceof JobFileError) {
        if (e instanceof FioUsageError) {
          sayLines(e.said, io.stderr, io.stdout);
          if (e.out.length) io.stdout(e.out.join('\n') + '\n');
        }
        io.stderr(e.lines.join('\n') + '\n');
        return 1;
      }
      throw e;
    }
    if (io.signal.aborted) return 128 + COMMAND_SIGNALS[commandSignal(io.signal.reason)];
    return runFio(rt, parsed, targets, io);
  };
}

/** Finds each job's disk in the guest (into `targets`), and checks the job against it. */
function checkDevices(rt: GuestRuntime, jobs: FioJob[], targets: Map<FioJob, GuestDisk>): void {
  for (const j of jobs) {
    const disk = findDisk(rt, j.filename);
    if (!disk) {
      throw new FioUsageError([
        j.filename === null
          ? 'fio: this guest has no block device'
          : `fio: ${j.filename}: not a block device of this guest (${rt.disks.map((d) => `/dev/${d.name}`).join(', ') || 'none'})`,
      ]);
    }
    checkJobAgainstDevice(j, {
      path: `/dev/${disk.name}`,
      bytes: disk.queue.capacity() * 512,
      logicalBlockSize: disk.queue.limits().logicalBlockSize,
    });
    if (j.rw !== 'read' && j.rw !== 'randread' && disk.front.readOnly) {
      throw new FioUsageError([`fio: /dev/${disk.name} is read-only: it cannot be written`]);
    }
    targets.set(j, disk);
  }
}

async function runFio(
  rt: GuestRuntime,
  { cl, raw, eta }: GuestFioCommand,
  targets: Map<FioJob, GuestDisk>,
  tty: CommandIo,
): Promise<number> {
  const genesis = performance.now();
  const fmt = cl.global.outputFormat;
  // --output: what fio says with log_info() goes to the file, the ETA line stays on the terminal
  const output = cl.global.output === null ? null : await openOutput(rt.vfs, cl.global.output);
  if (output && 'errno' in output) {
    tty.stderr(`fio: output file open error: ${STRERROR[output.errno]}\n`);
    return 1;
  }
  const io: CommandIo = output ? { ...tty, stdout: output.write } : tty;
  const workers: Worker[] = [];
  try {
    // for pvblk bench (raw) the bench says these itself, once for all its guests and slices
    if (!raw) sayLines(setupLines(cl), tty.stderr, io.stdout);
    if (fmt.normal) io.stdout(startBanner(cl.jobs).join('\n') + '\n');
    for (const note of startNotes(cl.jobs)) io.stdout(note + '\n');
    let index = 0;
    for (const j of cl.jobs) {
      for (let k = 0; k < j.numjobs; k++) {
        const w = new Worker(
          j,
          index++,
          {
            path: `/dev/${targets.get(j)!.name}`,
            disk: targets.get(j)!,
            vfs: rt.vfs,
            subjob: subjobNumber(j, k),
          },
          io,
        );
        w.stats.groupid = j.groupid;
        workers.push(w);
      }
    }
    const disks = [...new Set(targets.values())];
    const before = disks.map((d) => diskSnapshot(d));
    const front0 = disks.map((d) => frontSnapshot(d));
    const tStart = Date.now();
    // each job opens its file and takes its buffers as it starts (thread_main()), after its startdelay
    const opened = workers.map(() => false);
    // Ctrl-C as fio's sig_int (backend.c) takes it: said at once, the jobs end where they are, and the
    // report still covers what ran
    const onAbort = () => {
      io.stdout(`\nfio: terminating on signal ${COMMAND_SIGNALS[commandSignal(io.signal.reason)]}\n`);
      workers.forEach((w) => w.stop());
    };
    io.signal.addEventListener('abort', onAbort);
    // interrupted while the jobs were opening: the listener came too late to hear it
    if (io.signal.aborted) onAbort();
    // eta.c: the line goes with the normal output only, unless the bench asks for it
    const showEta = eta || (cl.global.eta === 'always' && fmt.normal);
    let etaTimer: NodeJS.Timeout | null = null;
    const redraw = etaRedraw();
    // fio's exitall_on_terminate: any job's exitall, whatever its value, is the run's
    const exitall = cl.jobs.some((j) => j.exitall);
    // fio clears stonewall on a job's numjobs clones: the first of them has it
    const stonewall = workers.map((w, i) => w.job.stonewall && (i === 0 || workers[i - 1].job !== w.job));
    const stoneWaiting = (i: number) => workers[i].state === 'P' && stonewall[i];
    if (showEta) {
      const percentage = etaPercentage();
      etaTimer = setInterval(() => {
        // fio's done_secs: the whole seconds of the jobs that have ended
        const doneSecs = workers.reduce(
          (a, w) => a + (w.state === '_' ? Math.floor(w.stats.totalRunMs / 1000) : 0),
          0,
        );
        const ps = workers.map((w) => w.progress(doneSecs));
        const running = workers.filter((w) => w.state !== '_' && w.state !== 'P').length;
        // eta.c: under exitall the first job to end ends the run, so the shortest; else a stonewall
        // job yet to start adds its time to the longest of the others'
        const etaSec = exitall
          ? Math.min(...ps.map((p) => p.eta))
          : Math.max(0, ...ps.filter((_, i) => !stoneWaiting(i)).map((p) => p.eta)) +
            ps.reduce((a, p, i) => a + (stoneWaiting(i) ? p.eta : 0), 0);
        const ms = performance.now() - genesis;
        const states = workers.map((w) => w.state);
        const bare = !eta && etaBare(ms, running);
        // the bench draws its own line from the guests' (on its own clock): theirs are never bare
        const line = etaLine(
          {
            running,
            states,
            done: percentage(ms, etaSec, { bare, running, states }),
            eta: etaSec,
            limit: etaLimit(workers.filter((w) => !'_P/'.includes(w.state)).map((w) => w.job)),
            rB: ps.reduce((a, p) => a + p.rB, 0),
            wB: ps.reduce((a, p) => a + p.wB, 0),
            rI: ps.reduce((a, p) => a + p.rI, 0),
            wI: ps.reduce((a, p) => a + p.wI, 0),
            tB: ps.reduce((a, p) => a + p.tB, 0),
            tI: ps.reduce((a, p) => a + p.tI, 0),
          },
          bare,
        );
        tty.stdout(redraw(line));
      }, 1000);
    }
    // the jobs' logs are written one file at a time: with per_job_logs=0 jobs append to one file. Each
    // as its job ends (td_writeout_logs()), but for the bench's (raw): after the report, so that the
    // bench's figures, which end with the report, leave the writing out
    let logsWritten: Promise<void> = Promise.resolve();
    const writeLogs = (w: Worker): Promise<void> =>
      (logsWritten = logsWritten.then(async () => {
        for (const log of Object.values(w.logs))
          if (log) await writeLog(rt.vfs, log, !w.job.logs.perJob, (s) => io.stderr(s));
      }));
    // libfio.c's fio_terminate_threads(), as a job that ends calls it under exitall (or
    // exitall_on_error, failed): the jobs exit_what names end where they are, those not started never do
    const terminated = workers.map(() => false);
    const terminate = (from: Worker) => {
      for (const [i, w] of workers.entries()) {
        const hit =
          from.job.exitWhat === 'all' ||
          (from.job.exitWhat === 'group' && w.job.groupid === from.job.groupid) ||
          (from.job.exitWhat === 'stonewall' && w.state !== 'P' && w.state !== '_');
        if (!hit || terminated[i]) continue;
        terminated[i] = true;
        w.stop();
      }
    };
    try {
      const starting = workers.map((w, i) => ({
        name: w.job.name,
        startDelayMs: w.startDelayMs,
        stonewall: stonewall[i],
        waitFor: w.job.waitFor,
      }));
      await runThreads(
        starting,
        () => performance.now() - genesis,
        io.signal,
        async (i) => {
          const w = workers[i];
          opened[i] = await w.open();
          if (!opened[i]) return;
          try {
            await w.run();
            w.finish();
            w.samples.finalizeLogs();
          } finally {
            // its buffers go back to the guest's budget whatever happened
            await w.close();
          }
          if (exitall || (w.job.exitallOnError && w.stats.error)) terminate(w);
          if (!raw) await writeLogs(w);
          if (w.stats.error) io.stdout(jobErrorLine(process.pid, w.stats.error, w.stats.verror) + '\n');
        },
        // one a signal (or an exitall) stops before it starts never does
        (i) => (workers[i].skipped = true),
        (i) => terminated[i],
      );
    } finally {
      if (etaTimer) {
        clearInterval(etaTimer);
        tty.stdout('\n');
      }
      io.signal.removeEventListener('abort', onAbort);
    }
    // one JavaScript thread ran every job: what the process used over each job's span, shared evenly
    const n = workers.length;
    for (const w of workers) {
      const u = w.usage;
      // job_start: the job's epoch (fio's td->job_start), after any startdelay or ramp
      w.stats.jobStartMs = w.startedAtMs || tStart;
      w.stats.usrMs = u.user / 1000 / n;
      w.stats.sysMs = u.system / 1000 / n;
      w.stats.ctx = Math.round(u.ctx / n);
      w.stats.majf = Math.round(u.majf / n);
      w.stats.minf = Math.round(u.minf / n);
    }
    const after = disks.map((d) => diskSnapshot(d));
    // a disk's figures are said when a job that began used it (fio's init_disk_util() as a job starts)
    const began = new Set(workers.filter((w) => !w.skipped).map((w) => targets.get(w.job)));
    const used = disks.map((d) => began.has(d));
    const devices = disks.map((d, i) => frontDelta(front0[i], frontSnapshot(d))).filter((_, i) => used[i]);
    const report = {
      jobs: reportJobs(workers, cl, raw),
      disks: before.map((b, i) => diskDelta(b, after[i])).filter((_, i) => used[i]),
      percentiles: DEFAULT_PERCENTILES,
      timestampMs: Date.now(),
      elapsedMs: performance.now() - genesis,
      globalOptions: cl.globalGiven,
      pid: process.pid,
    };
    // fio's order (stat.c prints its output buffers by index): terse, JSON, normal
    if (fmt.terse) io.stdout(renderTerse(report));
    if (fmt.json) {
      const json = renderJson(report, fmt.jsonPlus);
      json.pvblk = {
        devices: devices.map(deviceJson),
        // for pvblk bench (raw): the errors of jobs no report lists (stats=0), which fio says all the same
        ...(raw && {
          unreported: workers
            .filter((w) => !w.job.statsEnabled && w.stats.error)
            .map((w) => ({ error: w.stats.error, verror: w.stats.verror })),
        }),
      };
      io.stdout(fioJsonText(json) + '\n');
    }
    if (fmt.normal) {
      // fio ends its run with one new line before the report: the one that ended the ETA line, if shown
      io.stdout((showEta && !output ? '' : '\n') + renderNormal(report));
      for (const d of devices) {
        io.stdout(
          `  ${d.name} (blkfront): ring requests=${d.requests}, notifications received=${d.upcalls} (${(d.requests ? d.upcalls / d.requests : 0).toFixed(3)}/request), grant operations=${d.grants}\n`,
        );
      }
    }
    if (raw) for (const [i, w] of workers.entries()) if (opened[i] && !w.skipped) await writeLogs(w);
    await logsWritten;
    return fioExitStatus(io.signal.aborted, workers.filter((w) => w.stats.error).length);
  } finally {
    // whatever happened: the logs' entries back to the guest's bound (a job that never ran, its open
    // failed, writes none), the output file written and closed
    for (const w of workers) for (const log of Object.values(w.logs)) log?.dispose();
    await output?.close((line) => tty.stderr(line));
  }
}

/**
 * fio's `--output` file, opened as init.c opens it (`w+`: made, or emptied) before anything runs, and
 * written when the run is over.
 */
async function openOutput(
  vfs: GuestVfs,
  path: string,
): Promise<
  { errno: Errno } | { write: (s: string) => void; close: (err: (l: string) => void) => Promise<void> }
> {
  const f = await vfs.open(path.startsWith('/') ? path : `/${path}`, {
    read: true,
    write: true,
    create: true,
    truncate: true,
  });
  if ('errno' in f) return f;
  const text: string[] = [];
  return {
    write: (s) => void text.push(s),
    close: async (err) => {
      const data = new TextEncoder().encode(text.join(''));
      for (let at = 0; at < data.length;) {
        const r = await f.pwrite(data.subarray(at), at);
        if (!r.ok || r.n === 0) {
          err(`fio: ${path}: ${STRERROR[r.ok ? 'ENOSPC' : r.errno]}\n`);
          break;
        }
        at += r.n;
      }
      await f.close();
    },
  };
}

/**
 * fio's exit_value: 128 once a signal has ended the run, one more for each job that failed — the
 * count held below 128, where fio's would run into the statuses of signals (128 failed jobs and no
 * signal made 128) and wrap past 255.
 */
export function fioExitStatus(signalled: boolean, failedJobs: number): number {
  return (signalled ? 128 : 0) + Math.min(127, failedJobs);
}

/** blkfront's counters of a device over the command, with the per-request ratios. */
export function deviceJson(d: DeviceCounters): Record<string, number | string> {
  return {
    name: d.name,
    ring_requests: d.requests,
    completions: d.completions,
    notifications_received: d.upcalls,
    notifications_received_per_request: d.requests ? d.upcalls / d.requests : 0,
    grant_operations: d.grants,
  };
}

/** Jobs for the report: a worker's own, or a group's (group_reporting: reportGroups()). */
function reportJobs(workers: Worker[], cl: FioCommandLine, raw: boolean): FioReportJob[] {
  const pvblkOf = (s: JobStats): Record<string, unknown> => {
    const occ = s.ringOccupancy;
    const o: Record<string, unknown> = {
      ring_occupancy: { samples: occ.n, mean: occ.mean, max: occ.max, p50: occ.pct(50), p99: occ.pct(99) },
    };
    if (raw) o.raw = s.toRaw();
    return o;
  };
  // a job with stats=0 is in no report, nor in its group's figures (stat.c's __show_run_stats())
  return reportGroups(
    workers.filter((w) => w.job.statsEnabled),
    (w) => w.job.groupReporting,
    (w) => w.job.groupid,
  ).map((group) => {
    const first = group[0].job;
    const last = group[group.length - 1].job;
    const stats =
      group.length > 1
        ? JobStats.merged(
            first.name,
            group.map((w) => w.stats),
          )
        : group[0].stats;
    return {
      stats,
      options: cl.given[cl.jobs.indexOf(last)],
      iodepth: last.iodepth,
      latencyTarget: last.latencyTarget,
      description: first.description,
      percentiles: last.percentileList,
      percentilePrecision: last.percentilePrecision,
      latencyPercentiles: last.latencyPercentiles,
      pvblk: pvblkOf(stats),
    };
  });
}
