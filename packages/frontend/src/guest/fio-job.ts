/**
 * A fio job's settings (fio's thread_options), as its options leave them, and their defaults; what
 * init.c checks of a job before it runs, on its own and against its device; and what follows from
 * the settings (the job's region, its rate, whether it verifies what it writes).
 *
 * Deliberate differences from fio, all documented in docs/experiments.md: the default ioengine is
 * `libaio` (fio's is psync), because queue depth is the point of this tool; `filename` defaults to the
 * guest's first disk; a size past the end of the device is refused up front (fio would stop short).
 */
import type { RandomDistribution } from './fio-distribution.ts';
import type { ChecksumName } from './fio-checksum.ts';
import type { VerifyPattern } from './fio-pattern.ts';
import { headerInterval, headerSize } from './fio-verify.ts';
import type { RateProcess } from './fio-rate.ts';
import type { IodepthBatch } from './fio-reap.ts';
import { fail, type PerDirection } from './fio-parse.ts';
import { DDIR_READ, DDIR_WRITE, DDIRS, ddirName, type Ddir } from './fio-ddir.ts';
import {
  BLOCK_MAP_MAX_BITS,
  blockAlign,
  blockSizes,
  fixedBlockSize,
  tdMinBs,
  type BlockSizeOptions,
} from './fio-block-size.ts';
import { withoutRandomMap } from './fio-distribution.ts';

/** Which latencies the report gives percentiles of (slat_percentiles, clat_percentiles, lat_percentiles). */
export interface LatencyPercentiles {
  slat: boolean;
  clat: boolean;
  lat: boolean;
}

export type FioRw =
  | 'read'
  | 'write'
  | 'trim'
  | 'randread'
  | 'randwrite'
  | 'randtrim'
  | 'rw'
  | 'randrw'
  | 'trimwrite'
  | 'randtrimwrite';
/**
 * fio's verify methods; `pattern-header` is VERIFY_PATTERN, which a `verify_pattern` given without
 * `verify` sets (a header, then the pattern), where `pattern` is VERIFY_PATTERN_NO_HDR.
 */
export type FioVerify = 'none' | ChecksumName | 'meta' | 'pattern' | 'pattern-header' | 'null';

export type FioEngine = 'libaio' | 'io_uring' | 'psync' | 'sync' | 'pvblk';

/** A job's options; its block sizes (`bs`, `bsrange`, `bssplit`, …) as BlockSizeOptions keeps them. */
export interface FioJob extends BlockSizeOptions {
  name: string;
  /** fio's `description`: printed with the job's report ('' when not given). */
  description: string;
  filename: string | null;
  rw: FioRw;
  /** Percentage of reads in a mixed workload. */
  rwmixread: number;
  iodepth: number;
  /**
   * fio's `iodepth_batch_submit` (`iodepth_batch`), `iodepth_batch_complete_min`
   * (`iodepth_batch_complete`), `iodepth_batch_complete_max` and `iodepth_low`, as given (each an
   * unsigned int, as fio stores it); null when not given. Given any, the job submits and reaps as
   * fio's loop does with them (fio-reap.ts); given none, as this fio's own loop does.
   */
  iodepthBatch: IodepthBatch;
  numjobs: number;
  /** Bytes of the region each job works on; null = to the end of the device (or sizePercent of it). */
  size: number | null;
  /** fio's `size=N%`: that share of the device, from `offset` on; null when not given so. */
  sizePercent: number | null;
  offset: number;
  /** fio's `offset=N%`: the region starts that share into the device (startOffset()); null when not given so. */
  offsetPercent: number | null;
  /**
   * fio's `offset_increment`: each numjobs clone's region starts its subjob number times this past
   * `offset` (startOffset()); `offset_increment=N%`, that share of the device instead.
   */
  offsetIncrement: number;
  offsetIncrementPercent: number | null;
  /** fio's `offset_align`: what an offset worked out from a percentage is rounded up to (null: `bs`). */
  offsetAlign: number | null;
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
  /**
   * fio's `fsync` and `fdatasync` (fsync_blocks, fdatasync_blocks): a writer syncs its file after
   * every this many writes issued (get_rw_ddir()); 0: never.
   */
  fsyncBlocks: number;
  fdatasyncBlocks: number;
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
  /** fio's `verify_interval`: a header every this many bytes of a block (0: one a block). */
  verifyInterval: number;
  /** fio's `verify_offset`: each header is kept this far into its interval, swapped with what was there. */
  verifyOffset: number;
  /** fio's `verify_fatal`: a block's check stops at its first bad interval (and so fails on it). */
  verifyFatal: boolean;
  /** fio's `verify_dump`: a bad interval's bytes, and what they should be, written to files. */
  verifyDump: boolean;
  /** fio's `verify_backlog`: every this many blocks written, some of them are read back (0: at the end). */
  verifyBacklog: number;
  /**
   * fio's `continue_on_error`: the kinds of error (ERROR_TYPE_READ 1, WRITE 2, VERIFY 4, any 0xffff)
   * that a job counts and goes on after, for the errnos `ignoreError` lists; `ignore_error` adds the
   * kinds it lists errors for.
   */
  continueOnError: number;
  /**
   * fio's `ignore_error`: per kind (reads, writes, verify), the errnos taken as non-fatal; null is
   * fio's default list, EIO and EILSEQ (td_error.c's __NON_FATAL_ERR).
   */
  ignoreError: [read: number[] | null, write: number[] | null, verify: number[] | null];
  /** fio's `error_dump`: a non-fatal I/O error is said all the same (`fio: io_u error …`). */
  errorDump: boolean;
  /** fio's `verify_backlog_batch`: how many are read back each time (0: `verify_backlog`). */
  verifyBacklogBatch: number;
  /** fio's `disable_lat`, `disable_clat`, `disable_slat`: that latency is not measured (nor logged). */
  disableLat: boolean;
  disableClat: boolean;
  disableSlat: boolean;
  /** fio's `disable_bw_measurement`: no bw sample per I/O (the windows' samples are still taken). */
  disableBw: boolean;
  /** fio's `stats`: false leaves the job out of every report (its I/O is done all the same). */
  statsEnabled: boolean;
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
  /** fio's `norandommap`: random offsets drawn with replacement, not every block once a pass. */
  norandommap: boolean;
  /** fio's `random_distribution`: anything but `random` draws with replacement too (init.c). */
  randomDistribution: RandomDistribution;
  /** fio's `loops`: passes over the region (and their verify phases), 1 for 0 as keep_running() has it. */
  loops: number;
  /**
   * fio's `io_size` (`io_limit`): the bytes the job does, over as many passes as that takes
   * (keep_running()), the last cut where its issued bytes reach it; null: `size`, `loops` times.
   */
  ioSize: number | null;
  /** fio's `io_size=N%`: the region cut to that share (filesetup.c's io_size_percent); null when not given so. */
  ioSizePercent: number | null;
  /** fio's `number_ios`: the job ends once this many I/Os (times `loops`) are done or in flight; 0: no bound. */
  numberIos: number;
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
  /** Whether `randseed` was given: the seed is it, and, as init.c has it, the passes do not repeat. */
  randseedGiven: boolean;
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
  /**
   * fio's `exitall`: when a job ends, the jobs `exitWhat` names are stopped. Its callback sets a
   * global flag whatever the value, so one job's `exitall` (even `exitall=0`) is the run's.
   */
  exitall: boolean;
  /** fio's `exit_what`: the jobs an exit stops — its reporting group's, those running, or all. */
  exitWhat: 'group' | 'stonewall' | 'all';
  /** fio's `exitall_on_error`: a job that fails (or misses its minimum rate) stops them too. */
  exitallOnError: boolean;
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

/**
 * The jobs a guest's fio runs at most, numjobs clones counted (fio's is 4096): each is a worker with
 * its own buffers and histograms (some 100 KB) in the guest's one process.
 */
export const MAX_JOBS = 64;

export const DEFAULT_PERCENTILES = [
  1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99,
];

export const DEFAULT_JOB: Omit<FioJob, 'name'> = {
  description: '',
  filename: null,
  rw: 'read',
  rwmixread: 50,
  bs: [4096, 4096, 4096],
  minBs: [0, 0, 0],
  maxBs: [0, 0, 0],
  bsSplit: [[], [], []],
  ba: [0, 0, 0],
  bsUnaligned: false,
  bsIsSeqRand: false,
  iodepth: 1,
  iodepthBatch: { submit: null, completeMin: null, completeMax: null, low: null },
  numjobs: 1,
  size: null,
  sizePercent: null,
  offset: 0,
  offsetPercent: null,
  offsetIncrement: 0,
  offsetIncrementPercent: null,
  offsetAlign: null,
  runtime: null,
  timeBased: false,
  rampTime: 0,
  direct: false,
  invalidate: true,
  endFsync: false,
  fsyncBlocks: 0,
  fdatasyncBlocks: 0,
  fsyncOnClose: false,
  fadviseHint: 'type',
  ioengine: 'libaio',
  verify: 'none',
  verifyGiven: false,
  verifyPattern: null,
  doVerify: true,
  verifyOnly: false,
  verifyInterval: 0,
  verifyOffset: 0,
  verifyFatal: false,
  verifyDump: false,
  verifyBacklog: 0,
  continueOnError: 0,
  ignoreError: [null, null, null],
  errorDump: false,
  verifyBacklogBatch: 0,
  disableLat: false,
  disableClat: false,
  disableSlat: false,
  disableBw: false,
  statsEnabled: true,
  rate: [0, 0, 0],
  rateIops: [0, 0, 0],
  rateMin: [0, 0, 0],
  rateIopsMin: [0, 0, 0],
  rateCycle: 1000,
  rateProcess: 'linear',
  rateIgnoreThinktime: false,
  loops: 1,
  norandommap: false,
  randomDistribution: { kind: 'random' },
  ioSize: null,
  ioSizePercent: null,
  numberIos: 0,
  thinktime: 0,
  thinktimeSpin: 0,
  thinktimeBlocks: 1,
  thinktimeBlocksGiven: false,
  thinktimeBlocksType: 'complete',
  thinktimeIotime: 0,
  startDelay: [0, 0],
  randseed: 0x2ce7a3bf,
  randseedGiven: false,
  randrepeat: true,
  groupReporting: false,
  stonewall: false,
  newGroup: false,
  waitFor: '',
  groupid: 0,
  exitall: false,
  exitWhat: 'group',
  exitallOnError: false,
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

/**
 * Checks a job against the device it will run on: what fio refuses at setup, plus a size past the
 * end of the device (fio would stop short; here it is refused, as the brief of the tool is exact counts).
 */
export function checkJobAgainstDevice(
  job: FioJob,
  dev: { path: string; bytes: number; logicalBlockSize: number },
): void {
  const sizes = blockSizes(job);
  for (const d of DDIRS) {
    const { min, max, split } = sizes[d];
    for (const v of [min, max, ...split.map((s) => s.bs)])
      if (v % dev.logicalBlockSize !== 0)
        fail(
          `fio: ${fixedBlockSize(sizes) ? 'bs' : `${ddirName(d)} block size`}=${v} is not a multiple of the logical block size of ${dev.path} (${dev.logicalBlockSize})`,
        );
    // a random job's direct I/O starts at a multiple of its blockalign (buffered I/O starts anywhere)
    const ba = blockAlign(job, rwKinds(job.rw).random)[d];
    if (openDirect(job) && job.ba[d] && ba % dev.logicalBlockSize !== 0 && doesDirection(rwKinds(job.rw), d))
      fail(
        `fio: ba=${ba} (${ddirName(d)}) is not a multiple of the logical block size of ${dev.path} (${dev.logicalBlockSize}) for direct=1`,
      );
  }
  // get_start_offset() rounds an offset worked out from a percentage up to offset_align: fio 3.33
  // divides by 0 there (SIGFPE)
  if (job.offsetAlign === 0 && ((job.offsetPercent ?? 0) > 0 || (job.offsetIncrementPercent ?? 0) > 0))
    fail('fio: offset_align=0 with an offset given as a percentage: fio 3.33 divides by it (SIGFPE)');
  // each clone's region: offset_increment moves them apart
  for (let k = 0; k < job.numjobs; k++) {
    const subjob = subjobNumber(job, k);
    // the job's own offset is said as before; a clone's names its subjob number
    const of = subjob ? ` (${job.name}'s subjob ${subjob}, offset_increment)` : '';
    const offset = startOffset(job, dev.bytes, subjob);
    if (offset % dev.logicalBlockSize !== 0) {
      fail(
        `fio: offset=${offset}${of} is not a multiple of the logical block size of ${dev.path} (${dev.logicalBlockSize})`,
      );
    }
    if (offset >= dev.bytes) {
      fail(`fio: offset=${offset}${of} is at or past the end of ${dev.path} (${dev.bytes} bytes)`);
    }
    const size = jobSize(job, dev.bytes, subjob);
    if (offset + size > dev.bytes) {
      fail(`fio: offset=${offset}${of} size=${size} goes past the end of ${dev.path} (${dev.bytes} bytes)`);
    }
    if (size < tdMinBs(sizes)) {
      fail(`fio: size too small, must not be less than minimum block size: ${size} < ${tdMinBs(sizes)}`);
    }
    // the random map of sizes that vary is a bit a block of the smallest (VariableOffsets)
    const bits = Math.floor(Math.min(size, dev.bytes - offset) / tdMinBs(sizes));
    if (
      rwKinds(job.rw).random &&
      !withoutRandomMap(job) &&
      !fixedBlockSize(sizes) &&
      bits > BLOCK_MAP_MAX_BITS
    )
      fail(
        `fio: ${job.name}${of}: a random map of ${bits} blocks of ${tdMinBs(sizes)} bytes is more than this fio keeps for block sizes that vary (${BLOCK_MAP_MAX_BITS}): give norandommap, a smaller size or a larger smallest size`,
      );
  }
}

/**
 * The bytes a second each way a job is held to (init.c's __setup_rate(): `rate`, else `rate_iops` ×
 * the direction's smallest block size); 0: none.
 */
export function rateBps(job: FioJob): [number, number, number] {
  const sizes = blockSizes(job);
  const bps = (d: 0 | 1 | 2) => job.rate[d] || job.rateIops[d] * sizes[d].min;
  return [bps(0), bps(1), bps(2)];
}

/**
 * fixup_options() of what the job's options say of each other once all are given: a latency that is
 * not measured has no percentiles (`--disable_clat --clat_percentiles=1` gives none).
 */
export function fixupJob(job: FioJob): void {
  if (job.verify !== 'none') job.verifyInterval = verifyInterval(job);
  const p = job.latencyPercentiles;
  if ((job.disableLat && p.lat) || (job.disableClat && p.clat) || (job.disableSlat && p.slat))
    job.latencyPercentiles = {
      lat: p.lat && !job.disableLat,
      clat: p.clat && !job.disableClat,
      slat: p.slat && !job.disableSlat,
    };
}

/**
 * io_u.c's gtod_reduce(): clat and slat unmeasured and no per-I/O bw sample (`gtod_reduce=1` sets
 * those, and disable_lat) — fio then takes no iops sample per I/O either. Its `|| o->gtod_reduce`
 * never holds: the option has a callback and no field of its own, so one of them turned on again
 * after it (`--gtod_reduce=1 --disable_clat=0`) brings the iops samples back, as in fio 3.33.
 */
export function timeReduced(job: FioJob): boolean {
  return job.disableClat && job.disableSlat && job.disableBw;
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
  // a trim-only job has nothing to verify (fio 3.33 takes verify there and verifies nothing); trimwrite's
  // writes are read back as any writer's
  const kinds = rwKinds(job.rw);
  if (job.verify !== 'none' && kinds.trim && !kinds.write)
    fail(
      `fio: ${job.name}: verify with rw=${job.rw} is not supported by this fio: a job that only trims writes nothing to verify`,
    );
  const sizes = blockSizes(job);
  if (job.rateProcess === 'poisson') {
    // usec_for_io() divides by the blocks a second: fio 3.36 dies of SIGFPE under one
    const rates = rateBps(job);
    for (const d of DDIRS) {
      const bps = rates[d];
      if (bps && bps < sizes[d].min)
        fail(
          `fio: ${job.name}: rate_process=poisson needs a block a second at least (rate=${bps} B/s, bs=${sizes[d].min})`,
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
  // a range's lengths are any number of bytes with bs_unaligned (a split's and one size's are theirs)
  const unaligned =
    job.bsUnaligned && DDIRS.some((d) => sizes[d].min !== sizes[d].max && !sizes[d].split.length);
  // O_DIRECT wants whole sectors: fio says "bs_unaligned may not work with raw io" and its I/O fails
  // with EINVAL
  if (unaligned && openDirect(job))
    fail(
      `fio: ${job.name}: bs_unaligned with a bsrange and direct=1 is refused: O_DIRECT I/O of lengths that are not whole sectors fails (fio: bs_unaligned may not work with raw io)`,
    );
  if (job.verify === 'none') return;
  // fio's verify of a length that its interval does not divide checks a last interval cut short
  if (unaligned)
    fail(`fio: ${job.name}: verify with bs_unaligned and a bsrange is not supported by this fio`);
  // fio warns ("norandommap given for variable block sizes, verify limited") and reads back only the
  // newest of writes that overlap: writes that may start closer than they are long (sizes that vary, a
  // blockalign below the largest), with no random map to keep them apart
  if (kinds.write && kinds.random && withoutRandomMap(job) && blockAlign(job, true)[1] < sizes[1].max)
    fail(
      `fio: ${job.name}: verify of writes that may overlap (sizes that vary, or a blockalign below them) without a random map is not supported by this fio`,
    );
  const hdr = headerSize(job.verify);
  const inc = headerInterval(job, sizes[1].min);
  if (inc <= hdr) {
    // populate_hdr()'s "Blocksize too small", said before the job starts
    const what = inc === sizes[1].min ? `bs=${sizes[1].min}` : `verify_interval=${inc}`;
    fail(`fio: ${job.name}: ${what} is too small for verify=${job.verify}'s ${hdr}-byte header`);
  }
  // fio swaps the header with whatever lies at verify_offset: overlapping it, or past the interval
  // (past the buffer, for the last one); here the header's place must be apart from it, in the interval
  if (job.verifyOffset && hdr && (job.verifyOffset < hdr || job.verifyOffset + hdr > inc)) {
    fail(
      inc < 2 * hdr
        ? `fio: ${job.name}: verify_offset=${job.verifyOffset}: an interval of ${inc} has no room to swap verify=${job.verify}'s ${hdr}-byte header with another ${hdr} bytes (it needs ${2 * hdr})`
        : `fio: ${job.name}: verify_offset=${job.verifyOffset} must be from ${hdr} to ${inc - hdr}: verify=${job.verify}'s ${hdr}-byte header is swapped with the bytes there, in an interval of ${inc}`,
    );
  }
}

/**
 * Where the job's region starts on a device of `bytes` (filesetup.c's get_start_offset()): `offset`, or
 * `offsetPercent` of the device rounded up to the block size.
 */
export function startOffset(job: FioJob, bytes: number, subjob = 0): number {
  // filesetup.c's get_start_offset(): a percentage, of the offset or of the increment, rounds the
  // offset up to `offset_align`, else to the block size; bytes alone are taken as they are
  let align = false;
  let increment = job.offsetIncrement;
  // offset_increment_percent is looked at when it is not 0
  if (job.offsetIncrementPercent) {
    increment = Math.floor((job.offsetIncrementPercent * bytes) / 100);
    align = true;
  }
  let offset = job.offset + subjob * increment;
  if (job.offsetPercent !== null && job.offsetPercent > 0) {
    offset = Math.floor((bytes * job.offsetPercent) / 100) + subjob * increment;
    align = true;
  }
  if (!align) return offset;
  const to = job.offsetAlign ?? tdMinBs(blockSizes(job));
  return Math.ceil(offset / to) * to;
}

/**
 * fio's subjob_number of a job's clone `k` (0 the job itself): add_job() makes the clones counting
 * down, so the second job of `numjobs=4` is subjob 3 and the last subjob 1.
 */
export function subjobNumber(job: FioJob, k: number): number {
  return k === 0 ? 0 : job.numjobs - k;
}

/**
 * The job's region against a device of `bytes`: `size`, or `sizePercent` of the device (at most what
 * lies past `offset`, a whole number of blocks, as fio's filesetup.c has it), or all past `offset`.
 */
export function jobSize(job: FioJob, bytes: number, subjob = 0): number {
  if (job.size !== null) return job.size;
  const rest = bytes - startOffset(job, bytes, subjob);
  if (job.sizePercent === null) return rest;
  const share = Math.min(rest, Math.floor((bytes * job.sizePercent) / 100));
  return share - (share % tdMinBs(blockSizes(job)));
}

/**
 * A writer that verifies what it wrote (`do_verify && verify && td_write(td)` in fio): backend.c
 * follows each of its passes with a verify phase, eta.c counts that phase in its size, and init.c
 * warns of what can keep the phase from starting or passing.
 */
export function verifiesWrites(job: FioJob): boolean {
  return job.verify !== 'none' && job.doVerify && rwKinds(job.rw).write;
}

/**
 * Whether the job's file is opened O_DIRECT: `direct`, but never for a job that trims, which
 * generic_open_file() opens without it (its skip_flags) — trimwrite's writes go through the page cache.
 */
export function openDirect(job: FioJob): boolean {
  return job.direct && !rwKinds(job.rw).trim;
}

/** fio's synchronous engines (FIO_SYNCIO): one I/O at a time, each complete when its call returns. */
export function syncEngine(job: FioJob): boolean {
  return job.ioengine === 'psync' || job.ioengine === 'sync';
}

/** What a job's rw does (fio's td_ddir flags). */
export interface RwKinds {
  /** td_read(), td_write(), td_trim(). */
  read: boolean;
  write: boolean;
  trim: boolean;
  /** td_trimwrite(): trims, each followed by a write of its range. */
  trimwrite: boolean;
  /** td_random(). */
  random: boolean;
}

/** Whether the job reads, writes, trims (td_read(), td_write(), td_trim()), and at random offsets. */
/** Whether a workload of these kinds goes in direction `d` (td_read(), td_write(), td_trim()). */
export function doesDirection(k: RwKinds, d: Ddir): boolean {
  return d === DDIR_READ ? k.read : d === DDIR_WRITE ? k.write : k.trim;
}

export function rwKinds(rw: FioRw): RwKinds {
  return {
    read: rw === 'read' || rw === 'randread' || rw === 'rw' || rw === 'randrw',
    write: rw === 'write' || rw === 'randwrite' || rw === 'rw' || rw === 'randrw' || rw.endsWith('trimwrite'),
    trim: rw.includes('trim'),
    trimwrite: rw.endsWith('trimwrite'),
    random: rw.startsWith('rand'),
  };
}

/**
 * The verify header's interval as init.c's fixup_options() leaves it: the writes' smallest size when
 * their sizes vary and none was given; at most the writes' smallest (else the reads', for a job that
 * reads); and a factor of both the writes' smallest and largest, else their greatest common divisor.
 */
function verifyInterval(job: FioJob): number {
  const s = blockSizes(job);
  const w = s[1];
  let vi = job.verifyInterval;
  if (w.max !== w.min && !vi) vi = w.min;
  if (vi > w.min) vi = w.min;
  else if (rwKinds(job.rw).read && vi > s[0].min) vi = s[0].min;
  if (!vi || w.min % vi || w.max % vi) vi = gcd(w.min, w.max);
  return vi;
}

function gcd(m: number, n: number): number {
  return n ? gcd(n, m % n) : m;
}
