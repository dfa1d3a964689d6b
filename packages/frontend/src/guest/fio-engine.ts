/**
 * The I/O of the guest's `fio`: workers (a job × numjobs) that keep `iodepth` I/Os in flight against
 * a guest block device and account them as fio does.
 *
 * Two engines, chosen by `direct`:
 * - direct=1 (libaio, io_uring, pvblk): each I/O is a bio submitted straight to the guest block layer
 *   (GuestBlockQueue.submitBio — what io_submit() does for an O_DIRECT block device), from buffers
 *   allocated once per I/O slot as fio allocates its io_u buffers. submitBio reaches blkfront
 *   synchronously and blkfront pushes everything queued in one microtask, so slat is measured from
 *   the issue to the end of that push (a microtask queued right after the submit), clat from there to
 *   the completion, lat from issue to completion. The device's page cache is written back and
 *   dropped at open and after writing, as blkdev_direct_IO keeps the two coherent.
 * - direct=0: pread/pwrite through the guest's page cache (the VFS file), several in flight for
 *   iodepth > 1 (like fio's posixaio); slat is the call until it returns its promise, clat from
 *   there to its completion.
 * psync and sync run with iodepth 1, as fio's synchronous engines do, and have no slat (fio records
 * it only for I/O its engine queued): clat = lat = the call.
 *
 * Completions of one interrupt are reaped together and the free slots refilled once, at the end of
 * that microtask burst (process.nextTick, or after a turn of the event loop: see YIELD_MS), so a
 * burst of completions becomes one push and at most one notification — fio's
 * io_getevents()+io_submit() loop. A job that gives any of fio's batch options (iodepth_batch_submit,
 * iodepth_batch_complete_min/max, iodepth_low) runs fio's own loop instead (ReapLoop, fio-reap.ts):
 * I/Os held until a commit, which is one push, and completions kept until a getevents reaps them.
 *
 * A job with verify runs fio's phases (backend.c's thread_main()): a pass of writes over its region,
 * then the verify phase reading back what the pass wrote, its reads accounted in the read direction
 * with their own run time; a time_based job repeats the pair until its runtime is over. A job whose
 * runtime ends in its writes is not verified, as fio's td->terminate skips do_verify().
 *
 * Deliberate difference from fio: CPU and context switches are the guest process's, divided among
 * its workers.
 */
import { mulberry32 } from '@pvblk/shared';
import { FIO_DEFAULT_RANDSEED, rwmixSeed, Taus88 } from './fio-rand.ts';
import type { GuestDisk } from './toolbox.ts';
import { STRERROR, type CommandIo, type Errno, type GuestFile, type GuestVfs, type IoResult } from './vfs.ts';
import { blkStatusToErrno } from '../block/queue.ts';
import {
  doesDirection,
  jobSize,
  openDirect,
  rateBps,
  rwKinds,
  startOffset,
  syncEngine,
  verifiesWrites,
  type FioJob,
  type RwKinds,
} from './fio-job.ts';
import { batchBucket, depthBucket, JobStats } from './fio-stats.ts';
import { checkVerifyBlock, fillVerifyBlock } from './fio-verify.ts';
import { dryRun, WriteLog, type LoggedWrite } from './fio-write-log.ts';
import { JobStderr } from './fio-job-stderr.ts';
import { MinRateCheck, RateControl } from './fio-rate.ts';
import { jobLogs, type JobLogs } from './fio-log.ts';
import { LatencyTarget, type LatencyStep } from './fio-latency.ts';
import { jobPlacer, type Placement, type Placer } from './fio-offsets.ts';
import { BSRANGE_SEEDS, blockSizes, tdMaxBs, tdMinBs, type JobBlockSizes } from './fio-block-size.ts';
import { blockDraw, withoutRandomMap } from './fio-distribution.ts';
import { JobFsyncs, type SyncKind } from './fio-fsync.ts';
import { fromPages, IoSlots, jobDepth, segmentsFor, toPages, type Slot } from './fio-iomem.ts';
import { JobSamples } from './fio-samples.ts';
import { Stalls } from './fio-stall.ts';
import { etaRates, runLetter, threadEta, type EtaCounters } from './fio-eta.ts';
import { usageNow, usageSince, type ProcessUsage } from './fio-rusage.ts';
import { ERRNO_NUM, verror, type VerrorFunc } from './fio-verror.ts';
import { countsFatal, ERROR_VERIFY, errorKind, ioErrorOutcome, nonFatal } from './fio-td-error.ts';
import {
  DDIR_READ,
  DDIR_TRIM,
  DDIR_WRITE,
  DDIRS,
  ddirName,
  WorkloadDirections,
  type Ddir,
} from './fio-ddir.ts';
import { InlineCall } from './fio-inline.ts';
import { IoBudget } from './fio-io-budget.ts';
import { ReapLoop, reapOptions } from './fio-reap.ts';

/**
 * The longest the submit loop runs on microtasks alone before it lets the event loop turn. Reads the
 * page cache holds complete in promise callbacks, never leaving the microtask queue: without a turn of
 * the loop, a buffered job would hold off the guest's sockets, timers and signals (Ctrl-C, the ETA
 * line) until it ended.
 */
const YIELD_MS = 10;

export interface WorkerTarget {
  path: string;
  disk: GuestDisk;
  vfs: GuestVfs;
  /** fio's subjob_number (subjobNumber()): where `offset_increment` puts this clone's region; 0 if absent. */
  subjob?: number;
}

interface Io {
  slot: Slot;
  ddir: Ddir;
  /** Bytes (io_u->buflen). */
  len: number;
  /** A trim of libaio or io_uring, made inline (InlineCall): no submission of its own, no slat. */
  inline: boolean;
  offset: number;
  tIssue: number;
  tSubmitted: number;
  /** Issued during ramp_time: not accounted. */
  ramp: boolean;
  /** A read of the verify phase, or of `verify_backlog`'s (IO_U_F_VER_LIST): its block is checked. */
  verify: boolean;
  /** A verify read's logged write: the number and seed its header should hold. */
  logged: LoggedWrite | null;
}

/** An I/O the ReapLoop holds until its commit, and what puts it on its way. */
interface Held {
  io: Io;
  go: () => void;
}

const now = (): number => performance.now();

/**
 * Milliseconds, whole, rounded up from whole microseconds, as fio's update_runtime() keeps ts.runtime:
 * IOPS and BW are computed from the runtime the reports print beside them.
 */
function wholeMs(ms: number): number {
  return msOfUs(Math.floor(Math.max(0, ms) * 1000));
}

/** Whole microseconds in whole milliseconds, rounded up (update_runtime()'s `(us + 999) / 1000`). */
function msOfUs(us: number): number {
  return Math.floor((us + 999) / 1000);
}

/** One fio worker (a job, or one of its numjobs clones). */
export class Worker {
  readonly stats: JobStats;
  private readonly kinds: RwKinds;
  private readonly offsets: Placer;
  /** The job's block sizes, per direction. */
  private readonly sizes: JobBlockSizes;
  private rand!: () => number;
  /** get_next_buflen()'s draws, per direction (td->bsrange_state[]), seeded again with the others. */
  private bsRand: Array<() => number> = [];
  /** The job's seed: with randrepeat each pass draws from it again (see startPhase()). */
  private readonly seed: number;
  /** Passes over the region begun (do_io() entered). */
  private ioPhases = 0;
  private readonly depth: number;
  private readonly direct: boolean;
  /**
   * Bytes of the workload's I/Os in flight: not the verify reads (the backlog's), which are not the
   * pass's bytes (io_issue_bytes_exceeded() leaves them out), as its completed bytes are not.
   */
  private inflightBytes = 0;
  /** No I/O fitted in what is left of the region: the pass ends (fill_io_u() failing). */
  private outOfRoom = false;
  /** A synchronous engine (psync, sync): each I/O complete when its call returns. */
  private readonly synchronous: boolean;
  /** The I/O buffers, a slot for each I/O in flight. */
  private readonly buffers: IoSlots;
  private file: GuestFile | null = null;
  private inflight = 0;
  private issued = 0;
  private numberio = 0;
  private stopping = false;
  private pumpQueued = false;
  /** When the event loop last turned while this worker ran (see YIELD_MS and later()). */
  private lastTurn = now();
  /** Whether a check of the loop's next turn is pending. */
  private turnWatched = false;
  private completedBurst = 0;
  /** fio's batched submit and reap (iodepth_batch_*, iodepth_low), when the job gives any of them. */
  private readonly reaper: ReapLoop<Held> | null;
  /** A getevents of the ReapLoop is taking completions: the pump running it goes on after them. */
  private reaping = false;
  /** A trim the engine answered busy (under the ReapLoop): the next I/O, as it was chosen. */
  private requeued: Ddir | null = null;
  /** fio's rate control, when the job has a rate (TD_F_CHECK_RATE). */
  private readonly rate: RateControl | null;
  /** The submit loop's stalls: ahead of the rate, thinking, quiescing (see pump()). */
  private readonly stalls = new Stalls({
    stopping: () => this.stopping,
    woke: () => {
      this.refillFromEmpty = true;
      this.pump();
    },
  });
  /** The queue was full at the last issue: the thought waits for the reap (see pump()). */
  private thinkAfterReap = false;
  /** How long after the command's start the job starts (startdelay). */
  readonly startDelayMs: number;
  /** The job never started: a signal came during its start delay (its report is of no I/O). */
  skipped = false;
  /** A stall drained the queue: the next refill is counted one I/O a commit, as the first fill. */
  private refillFromEmpty = false;
  /** The job's epoch in ms since 1970: its JSON job_start (0 until it begins). */
  startedAtMs = 0;
  /** The direction of the last I/O issued: a thought after the reap is that I/O's (handle_thinktime()). */
  private lastIssueDdir: Ddir = DDIR_READ;
  /** The rate's sleep is over: the next I/O goes this way. */
  private rateWake: Ddir | null = null;
  /** thinktime_blocks's counter when the job last thought (td->last_thinktime_blocks). */
  private lastThinkBlocks = 0;
  /** When the job last thought, for thinktime_iotime (td->last_thinktime). */
  private lastThink = 0;
  /** I/Os completed without error since the epoch (td->io_blocks, both directions). */
  private get completedIos(): number {
    return this.ioBlocks[0] + this.ioBlocks[1] + this.ioBlocks[2];
  }
  private tStart = 0;
  private tMeasure = 0;
  private tEnd = 0;
  /** Whether ramp_time is over (the first submit loop at or past tMeasure ends it). */
  private rampDone = false;
  /**
   * fio's td->epoch: when the job's I/O began (after its open), moved to the end of ramp_time; its
   * total_run_time and CPU figures run from here (the process's usage then) to the end of its verify
   * phase. Null until begun.
   */
  private epoch: { t: number; usage: ProcessUsage } | null = null;
  /** What the guest process used from the epoch to the job's end (set by finish). */
  usage: ProcessUsage = { user: 0, system: 0, ctx: 0, majf: 0, minf: 0 };
  private resolveJob!: () => void;
  /** Whether the job's last phase has ended, or the current one is ending. */
  private ended = false;
  private ending = false;
  /** The syncs of `fsync=N` and `fdatasync=N`, and fio's last_was_sync. */
  private readonly fsyncs: JobFsyncs;
  /** The engine's inline calls: libaio's syncs, libaio's and io_uring's trims. */
  private readonly inline = new InlineCall();
  /** The writes of the current pass, for its verify phase and `verify_backlog` (fio's io_piece log). */
  private readonly written: WriteLog;
  /** Whether the last I/O to complete was a write (td->last_ddir is a read until one completes). */
  private lastCompletedWrite = false;
  /** The job's stderr, verify_dump's files among it (the job issues nothing while they are written). */
  private readonly stderr: JobStderr;
  /** The seeds of verify blocks (fio's td->verify_state), apart from the offsets' generator. */
  private verifyRand!: () => number;
  /** The gaps of rate_process=poisson (fio's poisson_state), seeded again with the others. */
  private rateRand!: () => number;
  /** The mixed workload's generator (fio's td->rwmix_state), and its seed. */
  private mixRand!: Taus88;
  private readonly mixSeed: number;
  /** fio's two phases: the workload's I/O (do_io()) and the read-back of what it wrote (do_verify()). */
  private phase: 'io' | 'verify' = 'io';
  /** The verify phase's blocks, in order (their logged writes), and the index of the next to read. */
  private verifyList: Array<{ at: Placement; logged: LoggedWrite | null }> = [];
  private verifyNext = 0;
  /** When the current phase began (fio's td->start), and the bytes it accounted in each direction. */
  private phaseStart = 0;
  private phaseBytes = [0, 0, 0];
  /** fio's elapsed_us of each direction: the phases that did its I/O, in whole µs. */
  private elapsedUs = [0, 0, 0];
  /** The runtime ended the job (fio's td->terminate from runtime_exceeded()): no verify follows. */
  private terminated = false;
  /** The latency target's search (null without latency_target), and whether it has ended the job. */
  private readonly latTarget: LatencyTarget | null;
  private latDone = false;
  /** The queue was full at the last issue: the min rate's and the latency target's looks wait for
   * the reap (see pump()). */
  private checksAfterReap = false;
  /** The check of rate_min and rate_iops_min, when the job has either (fio's should_check_rate() for them). */
  private readonly minRate: MinRateCheck | null;
  /**
   * Per direction, what completed since the statistics last started (td->this_io_bytes and
   * this_io_blocks).
   */
  private thisIo = { bytes: [0, 0, 0], blocks: [0, 0, 0] };
  /** Per direction, the I/Os completed without error since the epoch, the verify list's too (td->io_blocks). */
  private ioBlocks = [0, 0, 0];
  /** The job's logs, and its samples: of the report's bw and iops, and the logs' entries. */
  readonly logs: JobLogs;
  readonly samples: JobSamples;
  state = 'P';
  /** What the job does: its pass, its bytes issued, io_size, number_ios and loops. */
  private readonly budget: IoBudget;
  /** The workload's I/Os issued per direction since the statistics started (td->io_issues). */
  private ioIssues = [0, 0, 0];
  /** The workload's directions, and where each I/O goes. */
  private readonly directions: WorkloadDirections;
  /** trimwrite trims each block and then writes it: do_io()'s bytes and number_ios are twice the job's. */
  private get trimwrite(): boolean {
    return this.kinds.trimwrite;
  }
  /** Passes done (each with its verify phase), for `loops`. */
  private passes = 0;

  constructor(
    readonly job: FioJob,
    readonly index: number,
    private readonly target: WorkerTarget,
    private readonly io: CommandIo,
  ) {
    this.stats = new JobStats(job.name);
    this.stats.continueOnError = job.continueOnError;
    this.synchronous = syncEngine(job);
    this.fsyncs = new JobFsyncs({
      job,
      stats: this.stats,
      path: target.path,
      synchronous: this.synchronous,
      inline: this.inline,
      direct: openDirect(job),
      inflight: () => this.inflight,
      addInflight: (n) => (this.inflight += n),
      writesIssued: () => this.ioIssues[1],
      rampDone: () => this.rampDone,
      syncFile: () => this.syncFile(),
      pump: () => this.pump(),
      fail: (errno, func, line, name) => this.fail(errno, func, line, name),
    });
    this.stderr = new JobStderr(io, target.vfs, () => this.pump());
    this.kinds = rwKinds(job.rw);
    this.sizes = blockSizes(job);
    const bytes = target.disk.queue.capacity() * 512;
    const size = jobSize(job, bytes, target.subjob);
    const seed =
      job.randrepeat || job.randseedGiven
        ? (job.randseed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0
        : (Math.random() * 2 ** 32) >>> 0;
    this.seed = seed;
    // the mixed workload's generator is fio's, seeded as fio seeds job number index + 1
    this.mixSeed =
      job.randrepeat || job.randseedGiven
        ? rwmixSeed(job.randseedGiven ? BigInt(job.randseed) : FIO_DEFAULT_RANDSEED, index + 1)
        : seed;
    this.seedGenerators();
    const bps = rateBps(job);
    this.rate = DDIRS.some((d) => bps[d] && this.does(d))
      ? new RateControl(
          bps,
          this.sizes.map((s) => s.min),
          job.rateProcess,
          this.kinds.read && this.kinds.write ? { read: job.rwmixread, write: 100 - job.rwmixread } : null,
          () => this.rateRand(),
        )
      : null;
    const start = startOffset(job, bytes, target.subjob);
    // a distribution's own generator (fio's f->zipf and f->gauss), seeded once for the job
    const distRand = mulberry32(seed ^ 0x2545f491);
    const drawFor = (n: number) =>
      blockDraw(
        job,
        n,
        () => Math.floor(this.rand() * 0x1_0000_0000),
        () => Math.floor(distRand() * 0x1_0000_0000),
      );
    this.offsets = jobPlacer(job, this.sizes, {
      start,
      size,
      end: bytes,
      rand: () => this.rand(),
      rand32: (d) => Math.floor(this.bsRand[d]() * 0x1_0000_0000),
      drawFor,
      say: (line) => this.stderr.say(line),
    });
    this.directions = new WorkloadDirections(this.kinds, job.rwmixread, this.offsets, {
      rand: () => this.mixRand,
      issues: () => this.ioIssues,
    });
    // a backlog only where the pass's writes are logged for verification (log_io_piece()'s terms)
    this.written = this.newWriteLog();
    this.direct = openDirect(job);
    this.depth = jobDepth(job);
    this.buffers = new IoSlots(job, index, target.disk);
    // a synchronous engine completes each I/O in its call: nothing to batch or reap
    const reap = this.synchronous ? null : reapOptions(job.iodepthBatch, this.depth);
    this.reaper = reap
      ? new ReapLoop<Held>(
          reap,
          {
            depth: () => this.inflight,
            stats: this.stats,
            submit: (held) => this.submitHeld(held),
          },
          job.ioengine === 'io_uring' ? null : this.depth,
        )
      : null;
    // io_size=N% cuts the pass (setup_files(): o->size becomes the share), not the region its random
    // offsets come from (f->io_size)
    this.budget = new IoBudget(
      job,
      tdMaxBs(this.sizes),
      this.kinds,
      job.ioSizePercent && job.ioSizePercent !== 100
        ? Math.floor((size * job.ioSizePercent) / 100)
        : this.offsets.passBytes,
    );
    this.logs = jobLogs(job, index + 1);
    this.samples = new JobSamples(job, this.stats, this.logs, (s) => this.stderr.say(s), {
      epoch: () => this.epoch?.t,
      rampDone: () => this.rampDone,
    });
    this.latTarget = job.latencyTarget.targetNs ? new LatencyTarget(job.latencyTarget, this.depth) : null;
    this.minRate = DDIRS.some((d) => job.rateMin[d] || job.rateIopsMin[d]) ? new MinRateCheck(job) : null;
    // init.c: a start delay given as a range is drawn once a job, between its ends, whole µs
    const [low, high] = job.startDelay;
    this.startDelayMs =
      high > low ? low + Math.floor(mulberry32(seed ^ 0x3c6ef372)() * ((high - low) * 1000 + 1)) / 1000 : low;
  }

  /** The job's error (td_verror()), said first with `line` on stderr when there is one. */
  private fail(errno: Errno, func: VerrorFunc, line: string | null, name: string = func): void {
    if (this.stats.error) return;
    if (line !== null) this.stderr.say(line + '\n');
    this.stats.error = ERRNO_NUM[errno];
    this.stats.verror = verror(func, STRERROR[errno], name);
    this.stopping = true;
  }

  async open(): Promise<boolean> {
    const cache = this.target.disk.cache;
    if (this.direct) {
      // td_io_open_file()'s invalidate=1 (BLKFLSBUF); past that, O_DIRECT keeps the cache coherent
      // range by range
      if (this.job.invalidate) await cache.flushBuffers();
    } else {
      // O_RDWR for a job that writes or trims (BLKDISCARD needs a file open for writing)
      const f = await this.target.vfs.open(this.target.path, {
        read: true,
        write: this.kinds.write || this.kinds.trim,
      });
      if ('errno' in f) {
        this.io.stderr(`fio: failed opening ${this.target.path}: ${STRERROR[f.errno]}\n`);
        this.stats.error = ERRNO_NUM[f.errno];
        this.stats.verror = verror('open', STRERROR[f.errno], `open(${this.target.path})`);
        return false;
      }
      this.file = f;
      // td_io_open_file(): the device's cache dropped first (invalidate=1: BLKFLSBUF for a block
      // device; a failure would only be said), then the job's pattern advised (fadvise_hint), which is
      // what sizes the readahead of a buffered job: none for a random one, twice the device's for a
      // sequential one
      if (this.job.invalidate && f.ioctl) {
        const r = await f.ioctl('BLKFLSBUF');
        if (!r.ok)
          this.io.stdout(`fio: cache invalidation of ${this.target.path} failed: ${STRERROR[r.errno]}\n`);
      }
      const hint = this.job.fadviseHint;
      if (hint !== 'none') f.fadvise?.(hint !== 'type' ? hint : this.kinds.random ? 'random' : 'sequential');
    }
    // fio allocates iodepth buffers of bs bytes before the first I/O (init_io_u), and says so when
    // that fails; here the bound is FIO_IOMEM_MAX, below what would hold the guest for seconds
    // filling them (--bs=8m --iodepth=65536 asked for 512 GiB)
    if (!this.buffers.alloc()) {
      // ENOMEM is not one of the guest file system's errnos: fio's own words, number and text
      this.io.stderr(
        `fio: pid=${process.pid}, err=12/${verror('iomem allocation', 'Cannot allocate memory')}\n`,
      );
      this.stats.error = 12;
      this.stats.verror = verror('iomem allocation', 'Cannot allocate memory');
      return false;
    }
    return true;
  }

  /** fsync(2) of the job's file: the page cache written back and the device flushed (blkdev_fsync). */
  private syncFile(): Promise<IoResult> {
    return this.file ? this.file.fsync() : this.target.disk.cache.fsync();
  }

  async close(): Promise<void> {
    // fsync_on_close: once more as the file closes (generic_close_file()), unless the last thing
    // done was a sync (should_fsync()'s last_was_sync)
    if (this.job.fsyncOnClose && this.kinds.write && this.epoch !== null && !this.fsyncs.lastWasSync)
      await this.syncFile();
    if (this.direct) {
      if (this.kinds.write) this.target.disk.cache.invalidateAll();
    } else if (this.file) {
      await this.file.close();
      this.file = null;
    }
    this.buffers.release();
  }

  stop(): void {
    this.stopping = true;
    this.stderr.abandon();
    // stalled with nothing in flight: nothing else would wake the job to end it
    if (this.stalls.cancel()) this.pump();
  }

  /** fio's set_epoch_time() and clear_rusage_stat(): the job's run time and CPU count from here. */
  private setEpoch(t: number): void {
    this.epoch = { t, usage: usageNow() };
    // the wall clock at `t`, read now (fio's gettimeofday()): timeOrigin + t parts from it when the
    // wall clock is slewed (NTP) while the process runs
    const wall = Date.now() - (now() - t);
    // td->job_start, set with the epoch: after any startdelay, and again when the ramp ends
    this.startedAtMs = Math.floor(wall);
    // set_epoch_time(): the alternate epoch of the logs' times, whole ms on its clock at `t`
    const clock = this.job.logs.alternateEpochClock;
    let epochMs = 0;
    if (clock === 0) epochMs = Math.floor(wall);
    else if (clock === 1) epochMs = Math.floor(Number(process.hrtime.bigint()) / 1e6 - (now() - t));
    for (const log of Object.values(this.logs)) if (log) log.epochMs = epochMs;
  }

  /**
   * The job's end (after its verify phase, as fio's thread_main() measures it): total_run_time in whole
   * milliseconds rounded up as its runtimes are, so never below a direction's, and the process's usage
   * over the span. A job that never began (its open failed) ran for no time.
   */
  finish(): void {
    this.stats.latencyDepth = this.latTarget?.qd ?? null;
    if (this.epoch === null) return;
    this.stats.totalRunMs = wholeMs(now() - this.epoch.t);
    this.usage = usageSince(this.epoch.usage);
  }

  /** The workload: resolves when the last I/O has completed. */
  run(): Promise<void> {
    const j = this.job;
    this.tStart = now();
    this.lastTurn = this.tStart;
    this.lastThink = this.tStart;
    this.setEpoch(this.tStart);
    this.shown = { t: this.tStart, rBytes: 0, wBytes: 0, rIos: 0, wIos: 0, tBytes: 0, tIos: 0 };
    this.tMeasure = this.tStart + j.rampTime;
    this.tEnd = j.runtime !== null ? this.tMeasure + j.runtime : Infinity;
    this.samples.start(this.tMeasure, this.tEnd);
    return new Promise<void>((resolve) => {
      this.resolveJob = resolve;
      void this.startPhase(this.job.verifyOnly ? 'verify' : 'io', this.tStart);
    });
  }

  private async startPhase(phase: 'io' | 'verify', t: number): Promise<void> {
    this.phase = phase;
    this.phaseStart = t;
    this.phaseBytes = [0, 0, 0];
    // clear_io_state() before each pass after the first (verify_only's dry run is its pass): with
    // randrepeat (the default) the generators are seeded again (td_fill_rand_seeds()), so that every
    // pass issues the first's random offsets, directions and verify seeds, in the first's order
    if (
      (phase === 'io' || this.job.verifyOnly) &&
      ++this.ioPhases > 1 &&
      this.job.randrepeat &&
      // init.c: a randseed given overrides randrepeat (rand_repeatable = 0)
      !this.job.randseedGiven
    ) {
      this.seedGenerators();
      this.offsets.restartRandom();
    }
    // clear_io_state()'s reset_io_counters(), before each pass and each verify phase
    this.fsyncs.lastWasSync = false;
    this.directions.resetMix();
    if (phase === 'io') {
      // the pass starts with its queue drained: refilled one I/O a commit, as the job's first fill
      if (this.ioPhases > 1) this.refillFromEmpty = true;
      this.directions.restart();
      this.offsets.newPass();
      this.outOfRoom = false;
      // prune_io_piece_log(): each pass verifies what it wrote itself
      this.written.clear();
      this.budget.newPass();
      // lat_target_init() at the start of do_io(): each pass searches from depth 1 again
      this.latTarget?.init(t, this.completedIos);
      // TD_RAMP's '/' until ramp_time is over (pump() ends it)
      this.state = this.rampDone ? runLetter(this.job) : '/';
    } else {
      // what the pass wrote and its backlog has not read yet, in the log's order (WriteLog); with
      // verify_only, what the pass would have
      if (this.job.verifyOnly) this.offsets.newPass();
      this.verifyList = this.job.verifyOnly
        ? // (trimwrite's dry run goes until its writes are the size, as do_dry_run()'s
          // io_complete_bytes_exceeded() has it: a trim before each)
          dryRun(
            this.offsets.passBytes * (this.trimwrite ? 2 : 1),
            this.kinds.write,
            this.newWriteLog(),
            () => {
              const d = this.directions.next();
              const at = this.directions.place(d);
              return at && { write: d === DDIR_WRITE, ...at };
            },
          ).map((at) => ({ at, logged: null }))
        : this.written.drain().map((logged) => ({ at: { offset: logged.offset, len: logged.len }, logged }));
      this.verifyNext = 0;
      this.state = 'V';
      // do_verify() syncs and drops the cache of the files still open, and clear_io_state() has
      // closed them all: none. The file opened again for the reads drops its cache with invalidate=1
      // (td_io_open_file(): BLKFLSBUF, its dirty pages written back first, no flush of the disk's)
      if (this.job.invalidate) await this.target.disk.cache.flushBuffers();
    }
    this.pump();
  }

  /** The job's generators from its seed (td_fill_rand_seeds()): at its start, and again for a pass. */
  private seedGenerators(): void {
    this.rand = mulberry32(this.seed);
    // td_fill_rand_seeds_internal(): with verify the writes' lengths are drawn as the reads' (so a job
    // that reads the writes back draws the same sizes), and trimwrite's trims as its writes (so that
    // ranges of one distribution pair up)
    const [read, write, trim] = BSRANGE_SEEDS;
    const writes = this.job.verify !== 'none' ? read : write;
    this.bsRand = [read, writes, this.kinds.trimwrite ? writes : trim].map((k) => mulberry32(this.seed ^ k));
    this.verifyRand = mulberry32(this.seed ^ 0x5bd1e995);
    this.rateRand = mulberry32(this.seed ^ 0x27d4eb2f);
    this.mixRand = new Taus88(this.mixSeed);
  }

  /** A log of the pass's writes, as the job keeps one (and its dry run does). */
  private newWriteLog(): WriteLog {
    const j = this.job;
    // log_io_piece(): a list while the job keeps a random map (each block once a pass), else the
    // tree, where a block written again replaces its earlier write
    return new WriteLog(
      !this.kinds.random || withoutRandomMap(j),
      verifiesWrites(j) ? j.verifyBacklog : 0,
      j.verifyBacklogBatch,
    );
  }

  /**
   * A phase is over: its time goes to the run time of the directions it did I/O in (fio's
   * update_runtime(), whole µs summed over phases, rounded up to ms once), then the next phase, as
   * thread_main() loops: verify after a pass that wrote, another pass while a time_based job has
   * runtime left. An error, a stop or the runtime's end ends the job.
   */
  private endPhase(): void {
    if (this.ended || this.ending) return;
    this.ending = true;
    void this.finishPhase();
  }

  private async finishPhase(): Promise<void> {
    // what the phase has still to say (verify_dump's lines, and what came after them) before its end
    await this.stderr.flushed();
    // cleanup_pending_aio(): a phase that an error ended reaps what is left with a wait for none
    // first, which td_io_getevents() counts as a reap of 0 whatever the engine (psync's too); what
    // was still in flight has been reaped as it completed
    if (this.stats.error) {
      this.stats.completeMap[0]++;
      this.stats.totalComplete++;
    }
    // do_io()'s end: a writer syncs its file (end_fsync, or fsync_on_close), inside the pass's time,
    // in eta.c's TD_FSYNCING ('F'); a failed sync is the job's error (fio_io_sync()'s td_verror)
    // (should_fsync(): not right after a sync)
    if (
      this.phase === 'io' &&
      (this.job.endFsync || this.job.fsyncOnClose) &&
      this.kinds.write &&
      !this.fsyncs.lastWasSync &&
      !this.stats.error
    ) {
      this.state = 'F';
      const r = await this.syncFile();
      if (r.ok) this.fsyncs.lastWasSync = true;
      else this.fail(r.errno, 'td_io_queue', `fio: end_fsync failed for file ${this.target.path}`);
    }
    this.ending = false;
    const t = now();
    const us = Math.floor(Math.max(0, t - this.phaseStart) * 1000);
    if (this.phase === 'io') {
      // thread_main(): a direction the job does, once it has moved bytes since the statistics
      // started (td->io_bytes, the verify phases' reads in it) — and a writer's reads with a
      // backlog (TD_F_VER_BACKLOG)
      for (const d of DDIRS)
        if (this.stats.dir(d).bytes && (this.does(d) || (d === DDIR_READ && this.job.verifyBacklog)))
          this.elapsedUs[d] += us;
    } else this.elapsedUs[DDIR_READ] += us;
    for (const d of DDIRS) if (this.stats.dir(d).ios) this.stats.dir(d).runtimeMs = msOfUs(this.elapsedUs[d]);
    // a pass that did no I/O ends the job (do_io() with no bytes done marks it terminated)
    const idle = this.phase === 'io' && this.phaseBytes.every((b) => !b);
    if (!this.stats.error && !this.stopping && !this.terminated && !idle) {
      if (this.phase === 'io' && verifiesWrites(this.job)) {
        void this.startPhase('verify', t);
        return;
      }
      // keep_running(): time_based runs pass after pass; else `loops` of them
      // a pass that found no room for any I/O would find none again: the job ends
      const noRoom = this.outOfRoom && this.budget.passEmpty;
      if (
        !this.latDone &&
        !noRoom &&
        (this.job.timeBased || ++this.passes < this.job.loops || this.ioSizeLeft())
      ) {
        void this.startPhase(this.job.verifyOnly ? 'verify' : 'io', t);
        return;
      }
    }
    this.ended = true;
    this.samples.end();
    this.state = '_';
    this.resolveJob();
  }

  private more(t: number): boolean {
    if (this.stopping) return false;
    if (t >= this.tEnd) {
      this.terminated = true;
      return false;
    }
    if (this.phase === 'verify') return this.verifyNext < this.verifyList.length;
    // the latency target's final window is over (td->done); or no I/O fits in what is left of the
    // region (get_io_u() failing ends do_io()'s pass)
    if (this.latDone || this.outOfRoom) return false;
    // a time_based job runs to the end of its runtime; with verify, fio's do_io() still ends each
    // pass over the region, for its verify phase to follow — counted in bytes_issued, which only
    // an I/O its engine queued adds to: a synchronous engine's pass never ends, so it never verifies
    // (as init.c's warning says)
    if (this.job.timeBased && (this.job.verify === 'none' || this.synchronous)) return true;
    // io_issue_bytes_exceeded(), which a time_based job does not look at
    if (!this.job.timeBased && this.issueBytesExceeded()) return false;
    // one pass, the ramp's I/O included (trimwrite's: its writes, IoBudget)
    return this.budget.passLeft(this.inflightBytes);
  }

  /**
   * A writer whose `fsync`/`fdatasync` syncs are made: not trimwrite's, whose set_rw_ddir() turns the
   * sync get_rw_ddir() chose into its next trim or write, so that fio 3.33 never syncs it.
   */
  private get syncingWriter(): boolean {
    return this.kinds.write && !this.trimwrite;
  }

  /** Whether the job's workload goes in direction `d` (td_read(), td_write(), td_trim()). */
  private does(d: Ddir): boolean {
    return doesDirection(this.kinds, d);
  }

  /** Whether the job goes on past this pass: do_io()'s own test of its issued bytes, not the pass's. */
  private passesLeft(): boolean {
    if (this.stopping || this.terminated || this.latDone || this.job.timeBased) return false;
    return !this.issueBytesExceeded();
  }

  /** io_issue_bytes_exceeded(), of what completed and is in flight (IoBudget). */
  private issueBytesExceeded(): boolean {
    return this.budget.exceeded(this.completedIos + this.inflight);
  }

  /** keep_running()'s io_size (IoBudget). */
  private ioSizeLeft(): boolean {
    return this.budget.ioSizeLeft(this.stats.totalBytes, this.completedIos + this.inflight);
  }

  /** Refills the free slots: fio's submit loop. */
  private pump(): void {
    this.pumpQueued = false;
    // a wake-up after the job's end (its stderr's reader catching up, say) has nothing to do
    if (this.ended) return;
    if (this.completedBurst) {
      this.stats.completeMap[batchBucket(this.completedBurst)]++;
      this.stats.totalComplete++;
      this.completedBurst = 0;
    }
    const t = now();
    this.rampCheck(t);
    // under the ReapLoop a wait for completions lasts until what it waits for has completed (fio's
    // thread is not reaping while in an inline call or writing verify_dump's files)
    if (this.reaper && !this.inline.blocking && !this.stderr.busy && !this.reap(this.stalls.stalled)) return;
    let n = 0;
    // do_io() reaps when its queue is full and only then looks at thinktime and the latency target:
    // a look the last issue left for after the reap is taken now
    if (this.thinkAfterReap) {
      this.thinkAfterReap = false;
      if (this.phase === 'io') this.think(t, this.lastIssueDdir);
    }
    if (this.checksAfterReap) {
      this.checksAfterReap = false;
      this.loopChecks(t);
    }
    // stalled (ahead of the rate, thinking, quiescing), nothing is issued until the stall is over;
    // nor while verify_dump's files are written
    let sync: SyncKind | null = null;
    while (
      !this.inline.blocking &&
      !this.stalls.stalled &&
      !this.stderr.busy &&
      this.inflight < this.queueDepth &&
      !this.reaper?.waiting &&
      this.more(t)
    ) {
      // get_io_u(): a read of the backlog goes before the rate's say (check_get_verify()), and a
      // sync due (get_rw_ddir()) before the workload's next direction
      const back = this.phase === 'io' ? this.written.nextBacklog(this.lastCompletedWrite) : null;
      // (a direction the rate chose before its sleep is the next I/O's: get_rw_ddir() has returned)
      if (
        !back &&
        this.phase === 'io' &&
        this.rateWake === null &&
        (sync = this.fsyncs.due(this.syncingWriter))
      ) {
        if (!this.fsyncs.queued) {
          // libaio answers busy to a sync behind what it holds: a commit and a wait first; the sync is
          // due again once the wait is over (nothing that ends it has changed)
          if (this.reaper?.holding) {
            this.reaper.busy(this.inflight >= this.queueDepth);
            sync = null;
            if (this.reap(false)) continue;
          }
          break;
        }
        // what the engine holds goes first: libaio answers busy to a sync behind it
        this.reaper?.commit();
        void this.fsyncs.run(sync);
        sync = null;
        continue;
      }
      // a trim the engine answered busy goes first, as it was (fio's io_u_requeues)
      const ddir = back ? DDIR_READ : (this.requeued ?? this.rateIssue(t));
      this.requeued = null;
      if (ddir === null) break;
      // libaio and io_uring trim inline: what their queue holds goes in first (FIO_Q_BUSY), and the
      // trim is a commit of its own
      const inline = ddir === DDIR_TRIM && !this.synchronous;
      if (inline && n) {
        this.committed(n);
        n = 0;
      }
      if (inline && this.reaper?.holding) {
        // under the ReapLoop the busy answer is fio's: the trim requeued, a commit, and a wait
        this.requeued = ddir;
        this.reaper.busy(this.inflight >= this.queueDepth);
        if (this.reap(false)) continue;
        break;
      }
      const len = this.issue(t, back ?? ddir);
      if (!len) break;
      this.rate?.issued(ddir, len);
      this.lastIssueDdir = ddir;
      if (!inline && !this.reaper) n++;
      let full = this.inflight >= this.queueDepth;
      // do_io()'s reap under the ReapLoop: with the queue full (or polling) it waits for completions;
      // what the wait is for may have come already
      if (this.reaper) {
        this.reaper.afterIssue(full);
        full = !this.reap(false);
      }
      if (this.job.thinktime && this.phase === 'io') {
        if (full) this.thinkAfterReap = true;
        else this.think(t, ddir);
      }
      if (this.latTarget || this.minRate) {
        if (full) this.checksAfterReap = true;
        else this.loopChecks(t);
      }
    }
    if (this.reaper && !this.reaper.waiting && !this.inline.blocking && !this.stderr.busy)
      this.reapStopped(t, sync !== null);
    if (this.stalls.waiting && this.inflight === 0) this.stalls.begin(this.tEnd);
    if (n) this.committed(n);
    sync ??= this.passEndSync(t);
    if (sync) {
      void this.fsyncs.run(sync);
      return;
    }
    // a stall after the last I/O is the job's too (fio thinks after it): its wake ends the phase
    if (
      this.inflight === 0 &&
      !this.inline.blocking &&
      !this.stalls.stalled &&
      !this.thinkAfterReap &&
      !this.stderr.busy &&
      !this.more(t)
    )
      this.endPhase();
  }

  /** The ReapLoop's wait, as far as it goes now (ReapLoop.resume()): true once it is over. */
  private reap(quiescing: boolean): boolean {
    this.reaping = true;
    try {
      return this.reaper!.resume(quiescing);
    } finally {
      this.reaping = false;
    }
  }

  /**
   * The submit loop stopped with no wait under way: before an inline sync nothing (the loop gave
   * libaio's busy answer to one behind what the engine held; what a getevents submitted is counted at
   * the next td_io_commit(), as fio counts it); before a stall the queue is committed and
   * drained (io_u_quiesce()); at a pass's end what is in flight is reaped by one getevents (do_io()'s
   * `io_u_queued_complete(td, cur_depth)`).
   */
  private reapStopped(t: number, syncDue: boolean): void {
    const r = this.reaper!;
    if (syncDue) return;
    if (this.stalls.stalled) this.reap(true);
    else if (this.inflight >= this.queueDepth) {
      r.afterIssue(true);
      this.reap(false);
    } else if (this.inflight && !this.more(t)) {
      r.waitAll();
      this.reap(false);
    }
  }

  /**
   * The ramp ends when I/O goes on past it (fio looks when an I/O is queued or completes): not in the
   * pump of a stop, which would forget what the ramp did before the report. What it did is not the
   * job's (ramp_period_over()), and the directions' runtimes start where it ended.
   */
  private rampCheck(t: number): void {
    if (this.rampDone || t < this.tMeasure || this.stopping) return;
    this.rampDone = true;
    this.resetAllStats(this.tMeasure);
    if (this.phase === 'io') this.state = runLetter(this.job);
  }

  /**
   * A refill of `n` I/Os, as fio's td_io_commit() counts it: a submit of `n`, and every I/O of it at
   * the depth the queue has once the whole commit is in (io_u_mark_depth(td, io_u_queued) at
   * cur_depth), not at its own place in the refill — a saturated QD32 job reads 32=100%, as under
   * fio. The first fill is fio's one I/O a commit (iodepth_batch_submit=1) at depths 1, 2, …, which
   * leaves its 0.1 % floors in the lower buckets as under fio; so is a refill after a stall or at a
   * pass's start, which began with the queue drained (io_u_quiesce()).
   */
  private committed(n: number): void {
    const st = this.stats;
    st.submitMap[batchBucket(n)]++;
    st.totalSubmit++;
    if (this.issued === n || this.refillFromEmpty)
      for (let d = this.inflight - n + 1; d <= this.inflight; d++) st.depthMap[depthBucket(d)]++;
    else st.depthMap[depthBucket(this.inflight)] += n;
    this.refillFromEmpty = false;
  }

  /**
   * A synchronous engine never adds to do_io()'s bytes_issued, so at its pass's end do_io() asks
   * get_io_u() for one more I/O while the job has more to do (another pass): the sync due then, if any.
   */
  private passEndSync(t: number): SyncKind | null {
    if (
      !this.synchronous ||
      this.phase !== 'io' ||
      this.inflight !== 0 ||
      this.inline.blocking ||
      this.stalls.stalled ||
      this.stderr.busy ||
      this.more(t) ||
      !this.passesLeft()
    )
      return null;
    return this.fsyncs.due(this.syncingWriter);
  }

  /** break_on_this_error()'s count of an error that ends the job (countsFatal()): a trim's is a write's. */
  private countFatal(d: Ddir, errno: number): void {
    if (countsFatal(this.job, this.synchronous, d !== DDIR_READ, errno)) this.stats.countError(errno);
  }

  /** queue_full()'s bound: the latency target's depth where it has one, else the job's. */
  private get queueDepth(): number {
    return this.latTarget ? this.latTarget.qd : this.depth;
  }

  /**
   * fio's reset_all_stats() and reset_io_stats(): at the end of ramp_time, and before a latency
   * target's final window. The distributions, latencies and rates, the run time, CPU and epoch start
   * again at `t`; so do the think counters (last_thinktime_blocks made relative, last_thinktime at
   * the new epoch), the rate's and the latency target's (lat_target_reset()).
   */
  private resetAllStats(t: number): void {
    this.lastThinkBlocks -= this.thinkCounter();
    this.ioBlocks = [0, 0, 0];
    this.ioIssues = [0, 0, 0];
    this.fsyncs.lastWasSync = false;
    this.lastThink = t;
    this.stats.resetIo();
    this.rate?.reset();
    this.setEpoch(t);
    this.phaseStart = t;
    this.elapsedUs = [0, 0, 0];
    this.samples.restart(t);
    this.latTarget?.reset(t, 0);
    this.logs.hist?.reset();
    // reset_io_counters(td, 1)
    this.thisIo = { bytes: [0, 0, 0], blocks: [0, 0, 0] };
    this.minRate?.reset();
  }

  /**
   * The end of a turn of do_io()'s loop: check_min_rate(), then lat_target_check() — not in the
   * ramp, nor before an I/O has completed.
   */
  private loopChecks(t: number): void {
    if (!this.rampDone || this.phase !== 'io' || !this.completedIos || this.stopping) return;
    if (this.minRate && this.minRateMissed(t)) return;
    if (this.latTarget) this.latStep(this.latTarget.check(t, this.completedIos));
  }

  /** check_min_rate() (MinRateCheck): a direction too slow fails the job with EIO, and says so. */
  private minRateMissed(t: number): boolean {
    const missed = this.minRate!.missed(t, this.phaseStart, this.thisIo);
    if (!missed.length) return false;
    this.fail('EIO', 'check_min_rate', missed.join('\n'));
    return true;
  }

  /** What the latency target decided, done: see LatencyStep. */
  private latStep(step: LatencyStep, io?: Io, latNs?: number): void {
    const lat = this.latTarget!;
    // io_u_quiesce(): what is in flight completes before the next issue
    const quiesce = (after: () => void) => this.stalls.add(0, 0, after);
    switch (step) {
      case null:
        return;
      case 'quiesce':
        quiesce(() => lat.newCycle(now(), this.completedIos));
        return;
      case 'final':
        // the window whose figures are the report's starts once the queue has drained
        quiesce(() => {
          const t = now();
          this.resetAllStats(t);
          lat.newCycle(t, 0);
        });
        return;
      case 'done':
        this.latDone = true;
        return;
      case 'fatal':
        this.latFatal(io!, latNs!, this.job.latencyTarget.targetNs);
        return;
    }
  }

  /** lat_fatal(): the I/O's lat (ns) was over `maxNs`; the job fails with ETIMEDOUT. */
  private latFatal(io: Io, latNs: number, maxNs: number): void {
    const line = `fio: latency of ${latNs} nsec exceeds specified max (${maxNs} nsec): ${this.target.path} ${ddirName(io.ddir)} ${io.offset} ${io.len}`;
    // lat_fatal() sets the error and the completion's: an ignore_error list naming ETIMEDOUT (110)
    // makes it non-fatal, said and counted at each I/O over the bound
    if (
      !this.stats.error &&
      nonFatal(this.job, errorKind(io.ddir !== DDIR_READ, ERRNO_NUM.ETIMEDOUT), ERRNO_NUM.ETIMEDOUT)
    ) {
      this.stderr.say(line + '\n');
      this.stats.verror = verror('max latency exceeded', STRERROR.ETIMEDOUT);
      this.stats.countError(ERRNO_NUM.ETIMEDOUT);
      return;
    }
    // io_u_sync_complete()'s -1, as break_on_this_error() takes it
    if (!this.stats.error) this.countFatal(io.ddir, 1);
    this.fail('ETIMEDOUT', 'max latency exceeded', line);
  }

  /**
   * The next I/O's direction (get_rw_ddir()), and what the rate says of it (rate_ddir()): null when
   * it is not to be issued now — ahead of the rate (a stall is then set) or past the runtime. The
   * verify phase reads its list unrated, as do_verify() does.
   */
  private rateIssue(t: number): Ddir | null {
    if (this.phase === 'verify') return DDIR_READ;
    if (this.rateWake !== null) {
      // slept to this direction's time: it goes now
      const w = this.rateWake;
      this.rateWake = null;
      return this.directions.turned(w);
    }
    const ddir = this.directions.chosen();
    if (!this.rate) return this.directions.turned(ddir);
    const epoch = this.epoch!.t;
    const d = this.rate.decide(ddir, (t - epoch) * 1000, (this.tEnd - epoch) * 1000);
    if (d === 'timeout') {
      this.terminated = true;
      return null;
    }
    this.directions.rated(d.ddir);
    if (d.sleepUs > 0) {
      // what is in flight completes first, however long that takes, and then the whole sleep
      // (io_u_quiesce(), then usec_sleep() of what rate_ddir() worked out before it)
      this.stalls.add(d.sleepUs, 0, () => (this.rateWake = d.ddir));
      return null;
    }
    return this.directions.turned(d.ddir);
  }

  /**
   * handle_thinktime() after an I/O is queued: every `thinktime_blocks` blocks completed (or issued,
   * with thinktime_blocks_type=issue) since the last think — or once `thinktime_iotime` has passed
   * since it — the job stalls: `thinktime_spin` of busy CPU, then the rest of `thinktime` asleep,
   * neither past the runtime.
   */
  private think(t: number, ddir: Ddir): void {
    const j = this.job;
    let due = false;
    if (j.thinktimeIotime) {
      if (t - this.lastThink >= j.thinktimeIotime) due = true;
      // thinktime_iotime alone: the blocks' default of 1 does not apply
      else if (!j.thinktimeBlocksGiven) return;
    }
    const b = this.thinkCounter();
    if (b >= this.lastThinkBlocks + j.thinktimeBlocks) due = true;
    if (!due) return;
    this.stalls.add(j.thinktime * 1000, j.thinktimeSpin * 1000, (us) => {
      if (j.rateIgnoreThinktime) this.rate?.thought(ddir, us);
      this.lastThinkBlocks = b;
      if (j.thinktimeIotime) this.lastThink = now();
    });
  }

  /** thinktime_blocks's counter: blocks completed (td->io_blocks), or issued with thinktime_blocks_type=issue. */
  private thinkCounter(): number {
    return this.job.thinktimeBlocksType === 'issue' ? this.stats.totalIos : this.completedIos;
  }

  /**
   * Issues one I/O: a direction of the workload, or a logged write to read back (the verify phase's
   * next, or `verify_backlog`'s). Returns its length: 0 when none fits, and the pass ends.
   */
  private issue(t: number, what: Ddir | LoggedWrite): number {
    const backlog = typeof what === 'object';
    const ddir = backlog ? DDIR_READ : what;
    const write = ddir === DDIR_WRITE;
    const verify = this.phase === 'verify' || backlog;
    let at: Placement | null;
    let logged: LoggedWrite | null = null;
    if (backlog) at = { offset: what.offset, len: (logged = what).len };
    else if (this.phase === 'verify') ({ at, logged } = this.verifyList[this.verifyNext++]);
    else at = this.directions.place(ddir);
    if (!at) {
      // fill_io_u() failed: the pass is over once what is in flight completes
      this.outOfRoom = true;
      return 0;
    }
    const { offset, len } = at;
    const slot = this.buffers.free.pop()!;
    const inline = ddir === DDIR_TRIM && !this.synchronous;
    const io: Io = {
      slot,
      ddir,
      len,
      inline,
      offset,
      tIssue: t,
      tSubmitted: 0,
      ramp: !this.rampDone,
      verify,
      logged,
    };
    // do_io()'s run state as each I/O is issued: TD_VERIFYING for a read it checks (the backlog's, or
    // any of a job that does not both read and write), else ramping or running
    if (this.phase === 'io') {
      const checked =
        ddir === DDIR_READ &&
        this.job.verify !== 'none' &&
        (backlog || !(this.kinds.read && this.kinds.write));
      this.state = checked ? 'V' : this.rampDone ? runLetter(this.job) : '/';
    }
    this.inflight++;
    if (!verify) this.inflightBytes += len;
    this.issued++;
    // td->io_issue_bytes: every I/O of the workload, a failed one too, over all passes; and
    // td->io_issues, since the statistics started
    if (!verify) {
      this.budget.issue(ddir, len);
      this.ioIssues[ddir]++;
    }
    // fio's total_io_u: every I/O its engine was handed, a failed one too, counted as it is queued
    // (td_io_queue()): the job's IOPS, `issued rwts` and the base of its depth and latency shares
    this.stats.dir(ddir).ios++;
    if (write && this.job.verify !== 'none') {
      const numberio = this.numberio++;
      // a 64-bit seed from two draws, as fio's fill_verify_pattern() multiplies two
      const drawn =
        (BigInt(Math.floor(this.verifyRand() * 2 ** 32)) << 32n) |
        BigInt(Math.floor(this.verifyRand() * 2 ** 32));
      const seed = fillVerifyBlock(this.job, slot.buf!.subarray(0, len), {
        offset,
        seed: drawn,
        numberio,
        thread: this.index + 1, // td->thread_number, from 1
      });
      if (this.direct) toPages(slot, len);
      this.written.log(offset, len, numberio, seed);
    }
    const tIssue = now();
    io.tIssue = tIssue;
    if (ddir === DDIR_TRIM) {
      this.trim(io);
      return len;
    }
    if (this.reaper) this.reaper.queue({ io, go: () => this.start(io) });
    else this.start(io);
    return len;
  }

  /** An I/O on its way: a bio to the block layer (direct), else the page cache's call. */
  private start(io: Io): void {
    const { slot, len, offset } = io;
    const write = io.ddir === DDIR_WRITE;
    const batched = this.reaper !== null;
    if (this.direct) {
      const p = this.target.disk.queue.submitBio({
        op: write ? 'write' : 'read',
        sector: offset / 512,
        segments: segmentsFor(slot, len),
      });
      // a synchronous engine's I/O is issued by its call and has no submission latency: fio records
      // slat only for I/O its engine queued (io_u_queued())
      if (this.synchronous) io.tSubmitted = io.tIssue;
      // blkfront pushes in a microtask queued by the submit: this one runs after that push (a
      // commit of the ReapLoop pushes at once, and takes the time itself: submitHeld())
      if (!batched)
        queueMicrotask(() => {
          if (!this.synchronous) this.submitted(io, now());
          // ring occupancy right after the push that published this I/O (it counts itself)
          this.stats.ringOccupancy.add(this.target.disk.front.inflight);
        });
      p.then(
        (res) => this.done(io, res.status === 'ok' ? null : (blkStatusToErrno(res.status) ?? 'EIO')),
        () => this.done(io, 'EIO'),
      );
    } else {
      this.stats.ringOccupancy.add(this.target.disk.front.inflight);
      const f = this.file!;
      const buf = slot.buf!.subarray(0, len);
      const p = write ? f.pwrite(buf, offset) : f.pread(buf, offset);
      // queued once the call has returned: what an asynchronous engine's submit takes (slat)
      if (this.synchronous) io.tSubmitted = io.tIssue;
      else this.submitted(io, now());
      p.then(
        (r) => this.done(io, r.ok ? (r.n === len ? null : 'EIO') : r.errno),
        () => this.done(io, 'EIO'),
      );
    }
  }

  /**
   * The engine's commit of the I/Os the ReapLoop held: each on its way, and — one io_submit() being
   * one plug — their requests published at once (blk_finish_plug()), not at the end of the turn; a
   * direct I/O's slat ends there.
   */
  private submitHeld(held: Held[]): void {
    for (const h of held) h.go();
    if (!this.direct) return;
    this.target.disk.queue.unplug();
    const t = now();
    for (const h of held) {
      this.submitted(h.io, t);
      this.stats.ringOccupancy.add(this.target.disk.front.inflight);
    }
  }

  /** An I/O's end: taken now, or, under the ReapLoop, when a getevents reaps it. */
  private done(io: Io, err: Errno | null): void {
    if (!this.reaper) {
      this.complete(io, err);
      return;
    }
    this.reaper.arrive(() => this.complete(io, err));
    this.schedulePump();
  }

  /**
   * A trim: BLKDISCARD of the I/O's range on the job's file (do_io_u_trim(), os_trim()). A
   * synchronous engine's is its call. libaio and io_uring make it inline: the engine counts it a
   * submit and a completion of one, td_io_queue() an I/O at the queue's depth, and the job issues
   * nothing until it returns (InlineCall).
   */
  private trim(io: Io): void {
    const f = this.file!;
    const p = (
      f.discard ? f.discard(io.offset, io.len) : Promise.resolve<IoResult>({ ok: false, errno: 'ENOTTY' })
    ).catch((): IoResult => ({ ok: false, errno: 'EIO' }));
    // no submission apart from the call (the issue time is set before it: FIO_ASYNCIO_SYNC_TRIM)
    io.tSubmitted = io.tIssue;
    const done = (r: IoResult, t?: number) => this.complete(io, r.ok ? null : r.errno, t);
    if (!io.inline) {
      void p.then(done);
      return;
    }
    const st = this.stats;
    st.submitMap[batchBucket(1)]++;
    st.totalSubmit++;
    st.completeMap[batchBucket(1)]++;
    st.totalComplete++;
    // io_u_mark_depth(td, 1): at the depth the queue has, the trim in it (td->cur_depth)
    st.depthMap[depthBucket(this.inflight)]++;
    this.inline.begin();
    // its return, and the issues and reaps that follow, after the event loop's turn when one is due
    // (later()): trims that fail at once (no discard, a read-only disk) would otherwise hold the
    // guest's sockets, timers and signals for the whole run. Its time is the call's return.
    void p.then((r) => {
      const t = now();
      this.later(() =>
        this.inline.end(() => {
          done(r, t);
          this.pump();
        }),
      );
    });
  }

  /**
   * A failed trim. Every engine completes a trim in its queue() (FIO_Q_COMPLETED), so the error is
   * td_io_queue()'s, with no `io_u error` line, and break_on_this_error() decides: a trim's error is
   * of the writes' kind (td_error_type()); a fatal one is counted when the job continues on that
   * kind, a non-fatal one counted and cleared, its message kept (the report's `err=`).
   */
  private trimFailed(io: Io, err: Errno): void {
    const num = ERRNO_NUM[err];
    if (nonFatal(this.job, errorKind(true, num), num)) {
      if (!this.stats.error) this.stats.verror = verror('td_io_queue engine', STRERROR[err], 'td_io_queue');
      this.stats.countError(num);
      // issued, it counts in the pass's bytes as if it had completed
      this.budget.done(io.len);
      return;
    }
    // completed in the engine's queue(), it reaches break_on_this_error() as a synchronous one does
    if (!this.stats.error && countsFatal(this.job, true, true, num)) this.stats.countError(num);
    this.fail(err, 'td_io_queue engine', null, 'td_io_queue');
  }

  /** An I/O completed (at `at`, else now). */
  private complete(io: Io, err: Errno | null, at?: number): void {
    // fio's thread may be in fsync(2): what completes meanwhile is reaped when the call returns
    if (this.fsyncs.hold(() => this.complete(io, err))) return;
    const t = at ?? now();
    this.inflight--;
    if (!io.verify) this.inflightBytes -= io.len;
    // io_completed(): the last thing done is no longer a sync
    this.fsyncs.completed();
    const write = io.ddir === DDIR_WRITE;
    this.lastCompletedWrite = write;
    // a failed write leaves the log (io_completed()'s unlog_io_piece()), but for a synchronous
    // engine's: io_queue_event() puts it back with its entry still in flight, where the verify phase
    // and the backlog stop (get_next_verify()), as under fio 3.33 with continue_on_error
    if (write && !(err && this.synchronous)) this.written.completed(io.offset, !err);
    this.buffers.free.push(io.slot);
    // an inline trim was counted a completion of its own (trim())
    // (the ReapLoop counts its own getevents)
    if (!io.inline && !this.reaper) this.completedBurst++;
    if (err && io.ddir === DDIR_TRIM) this.trimFailed(io, err);
    else if (err) {
      // its submission latency was taken as it was queued (io_u_queued()), a failure notwithstanding
      if (!io.ramp && this.queuedSlat(io) && this.job.statsEnabled && !this.job.disableSlat)
        this.stats.dir(io.ddir).slat.add((io.tSubmitted - io.tIssue) * 1e6);
      const line = `fio: io_u error on file ${this.target.path}: ${STRERROR[err]}: ${ddirName(io.ddir)} offset=${io.offset}, buflen=${io.len}`;
      const num = ERRNO_NUM[err];
      // td_io_queue(): a synchronous engine's first I/O of a direction failing as a zoned device's
      // unaligned write would (EIO), said on stdout whatever becomes of the error
      if (this.synchronous && !io.verify && err === 'EIO' && this.ioIssues[io.ddir] === 1)
        this.io.stdout(
          `fio: first I/O failed. If ${this.target.path} is a zoned block device, consider --zonemode=zbd\n`,
        );
      const o = ioErrorOutcome(this.job, {
        // td_error_type(): a trim's error is of the writes' kind
        write: io.ddir !== DDIR_READ,
        errno: num,
        synchronous: this.synchronous,
        verifyPhase: this.phase === 'verify',
      });
      if (o.goesOn) {
        if (o.said) this.stderr.say(line + '\n');
        if (!this.stats.error && o.verror) this.stats.verror = verror(o.verror, STRERROR[err]);
        this.stats.countError(num);
        // issued, it counts in the pass's bytes (td->io_issue_bytes) as if it had completed
        if (!io.verify) this.budget.done(io.len);
      } else {
        if (!this.stats.error && o.countedFatal) this.stats.countError(num);
        this.fail(err, o.verror ?? 'io_u error', o.said ? line : null);
      }
    } else {
      if (io.ddir === DDIR_READ && this.job.verify !== 'none' && (io.verify || !this.kinds.write)) {
        // A read workload with verify checks what it reads (blocks written earlier with headers). A
        // mixed one does not: its reads may find blocks it has not written yet, so fio checks only
        // reads of its verify list (backend.c's do_io) — what the phase after the writes reads back.
        this.verifyRead(io);
      }
      this.account(io, t);
    }
    // under the ReapLoop the pump that reaped it goes on to refill
    if (!this.reaping) this.schedulePump();
  }

  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    this.later(() => this.pump());
  }

  /**
   * Runs `fn` once this burst of completions is over: at the end of the microtask queue, or after a
   * turn of the event loop when the worker has gone YIELD_MS without one.
   */
  private later(fn: () => void): void {
    // an immediate runs once the loop turns: while completions come from sockets (direct I/O) it
    // turns all the time and the refill stays in this burst of microtasks, as before
    if (!this.turnWatched) {
      this.turnWatched = true;
      setImmediate(() => {
        this.turnWatched = false;
        this.lastTurn = now();
      });
    }
    if (now() - this.lastTurn < YIELD_MS) {
      process.nextTick(fn);
      return;
    }
    setImmediate(() => {
      this.lastTurn = now();
      fn();
    });
  }

  private verifyRead(io: Io): void {
    if (this.job.verify === 'none') return;
    if (this.direct) fromPages(io.slot, io.len);
    // verify_header() checks the write's number where the job's log is sure of it: a writer of one
    // block size (td_min_bs() == td_max_bs()), neither time_based nor verify_only
    const sure =
      this.kinds.write &&
      tdMinBs(this.sizes) === tdMaxBs(this.sizes) &&
      !this.job.timeBased &&
      !this.job.verifyOnly;
    const logged = io.logged;
    const r = checkVerifyBlock(
      this.job,
      io.slot.buf!.subarray(0, io.len),
      this.target.path,
      io.offset,
      {
        numberio: sure ? (logged?.numberio ?? null) : null,
        // verify_io_u() takes the header's seed for its own unless the job both reads and writes
        // (td_rw()) without a backlog; a verify_only run's log is of a dry run, whose seeds are not the
        // writer's
        seed:
          this.kinds.read && this.kinds.write && !this.job.verifyOnly && !this.job.verifyBacklog
            ? (logged?.seed ?? null)
            : null,
        flags: io.verify ? 0x88 : 0x8,
      },
      this.stderr.dumpsLeft,
    );
    if (!r) return;
    if (r.failed) {
      // continue_on_error=verify: counted, and the job goes on — but for verify_fatal, which ends it
      // (verify_io_u()'s fio_mark_td_terminate()) with no error of its own
      if (nonFatal(this.job, ERROR_VERIFY, ERRNO_NUM.EILSEQ)) {
        this.stats.countError(ERRNO_NUM.EILSEQ);
        // a bad header returns before verify_fatal's terminate: the job goes on
        if (this.job.verifyFatal && !r.badHeader) this.stopping = true;
      } else this.verifyFailed();
    }
    this.stderr.sayWithDumps(r.lines, r.dumps, r.dumpsDropped);
  }

  private verifyFailed(): void {
    if (this.stats.error) return;
    // io_u_sync_complete()'s -1, as break_on_this_error() takes it: errno 1 of the read's kind
    this.countFatal(DDIR_READ, 1);
    this.stats.error = 84;
    // the check runs where the engine's completions are reaped: at the call's return for a
    // synchronous one
    this.stats.verror = verror(
      this.synchronous ? 'io_u_sync_complete' : 'io_u_queued_complete',
      STRERROR.EILSEQ,
    );
    this.stopping = true;
  }

  private account(io: Io, t: number): void {
    const d = this.stats.dir(io.ddir);
    const bs = io.len;
    // the pass's budget counts what it did in the ramp too: fio's issued bytes outlive the ramp's end
    // (reset_all_stats() leaves them), so a job bound by its size does the size once, ramp included;
    // a read of the verify list (the verify phase's, the backlog's) is not in it (td_io_queue() leaves
    // IO_U_F_VER_LIST out of io_issue_bytes)
    if (!io.verify) this.budget.done(io.len);
    const ddir = io.ddir;
    this.ioBlocks[ddir]++;
    // io_completed()'s this_io_bytes and this_io_blocks, the ramp's too, but no read of the verify
    // list: the bw and iops samples, and rate_min, are of the job's own I/O
    if (!io.verify) {
      this.thisIo.bytes[ddir] += bs;
      this.thisIo.blocks[ddir]++;
    }
    // Issued in the ramp: its bytes counted as fio's io_completed() counts them, its latency never
    // taken (should_account()). The ramp's end forgets the counts (resetIo()); a job that ends before
    // it reports them, with no latencies. One that completes after that end is not the run's.
    if (io.ramp && this.rampDone) return;
    d.bytes += bs;
    this.phaseBytes[ddir] += bs;
    // account_io_completion(): nothing of a job without stats, nor of a latency not measured
    const j = this.job;
    if (io.ramp || !j.statsEnabled) return;
    const lat = (t - io.tIssue) * 1e6;
    if (!j.disableLat) {
      // max_latency, then the latency target, on the whole ns of lat
      const latNs = Math.floor(lat);
      const maxNs = j.maxLatencyNs[ddir];
      if (maxNs && latNs > maxNs) this.latFatal(io, latNs, maxNs);
      if (this.latTarget && latNs > j.latencyTarget.targetNs) this.latStep(this.latTarget.over(), io, latNs);
      d.lat.add(lat);
    }
    // a synchronous engine's I/O has no submission apart from its call (tSubmitted is its issue)
    if (this.queuedSlat(io) && !j.disableSlat) d.slat.add((io.tSubmitted - io.tIssue) * 1e6);
    const clat = (t - io.tSubmitted) * 1e6;
    if (!j.disableClat) {
      d.clat.add(clat);
      // fio's lat (usec/msec) distribution counts completion latency (io_u.c's account_io_completion
      // marks it with the time since issue to the device, the figure clat reports), not total latency
      this.stats.markLatency(clat);
    }
    this.samples.completed(t, ddir, io.offset, io.len, lat, clat, !io.verify);
  }

  /** Whether the I/O was queued by its engine, and so has a submission latency (io_u_queued()). */
  private queuedSlat(io: Io): boolean {
    return !this.synchronous && !io.inline;
  }

  /**
   * An asynchronous engine's I/O is queued at `t` (io_u_queued()): its slat goes to the slat log then,
   * as fio logs it, in the order of submission (its statistics take it with the completion).
   */
  private submitted(io: Io, t: number): void {
    io.tSubmitted = t;
    // io_u_queued(): with slat measured, past the ramp, in a job with stats
    if (!io.ramp && this.job.statsEnabled && !this.job.disableSlat)
      this.samples.slat(t, t - io.tIssue, io.ddir, io.len, io.offset);
  }

  /** What the last ETA line had seen (the job's start, before the first): its time and counters. */
  private shown: EtaCounters = { t: 0, rBytes: 0, wBytes: 0, rIos: 0, wIos: 0, tBytes: 0, tIos: 0 };

  /**
   * What the ETA line shows of this job. Its rates are fio's calc_rate()/calc_iops(): over the whole
   * milliseconds since the line before, whole KiB/s (shown as bytes) and whole IOPS.
   */
  progress(doneSecs = 0): {
    rB: number;
    wB: number;
    tB: number;
    rI: number;
    wI: number;
    tI: number;
    eta: number;
  } {
    const t = now();
    if (this.state === '_') return { rB: 0, wB: 0, tB: 0, rI: 0, wI: 0, tI: 0, eta: 0 };
    // the measured counters: eta.c sums the bytes of jobs past TD_SETTING_UP only, so a job in its
    // ramp (TD_RAMP), whose I/O is counted until the ramp ends, shows no rate
    const ramp = !this.rampDone;
    const is = {
      t,
      rBytes: ramp ? 0 : this.stats.read.bytes,
      tBytes: ramp ? 0 : this.stats.trim.bytes,
      tIos: ramp ? 0 : this.ioBlocks[DDIR_TRIM],
      wBytes: ramp ? 0 : this.stats.write.bytes,
      // calc_iops(): the blocks completed (io_blocks), as the bytes are, not those issued
      rIos: ramp ? 0 : this.ioBlocks[0],
      wIos: ramp ? 0 : this.ioBlocks[1],
    };
    const r = etaRates(this.shown, is);
    this.shown = is;
    const eta = threadEta(
      {
        job: this.job,
        state: this.state,
        sinceEpoch: this.epoch ? Math.floor(t - this.epoch.t) : 0,
        bytesTarget: this.budget.passBytes,
        startDelayMs: this.startDelayMs,
        rampDone: this.rampDone,
        doneBytes: this.stats.totalBytes,
      },
      doneSecs,
    );
    return { rB: r.r, wB: r.w, tB: r.t, rI: r.ri, wI: r.wi, tI: r.ti, eta };
  }
}
