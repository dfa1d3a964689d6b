/**
 * A running job's samples (stat.c's add_bw_samples(), add_iops_samples(), add_log_sample()): the
 * report's bw and iops, each over its window (bwavgtime, iopsavgtime) at the ticks of fio's helper
 * thread, or per I/O where a bw or iops log is not averaged; and the entries of the job's logs
 * (fio-log.ts), as its I/Os are queued and complete, and at its end.
 */
import { timeReduced, type FioJob } from './fio-job.ts';
import { blockSizes } from './fio-block-size.ts';
import type { JobStats } from './fio-stats.ts';
import { DDIRS, type Ddir } from './fio-ddir.ts';
import {
  LOG_MSEC_SLACK,
  MAX_LOG_ENTRIES,
  statWindows,
  type IoLog,
  type JobLogs,
  type LogFile,
} from './fio-log.ts';

/** The longest delay given to one timer (Node's ceiling is 2^31 - 1 ms): longer waits go in steps. */
export const MAX_TIMER_MS = 2 ** 30;

/**
 * What one of the report's rates (bw or iops) counted since its last sample: fio's bw_sample_time or
 * iops_sample_time, and this_io_bytes/blocks against stat_io_bytes/blocks.
 */
interface SampleWindow {
  /** bwavgtime or iopsavgtime (ms). */
  readonly period: number;
  /** Where this window began, and the next tick of fio's helper thread that samples it. */
  t: number;
  next: number;
  /** Bytes (bw) or I/Os (iops) of each direction since then: reads, writes, trims. */
  count: [number, number, number];
}

const now = (): number => performance.now();

/** A job's samples and log entries, as its worker (fio-engine.ts) takes them. */
export class JobSamples {
  /**
   * The report's bw and iops samples, each taken over its window (null: per I/O, as with a bw or iops
   * log that is not averaged).
   */
  private readonly bwWindow: SampleWindow | null;
  private readonly iopsWindow: SampleWindow | null;
  /** The timer of the next tick of the bw and iops windows (see armSampler()). */
  private sampleTimer: NodeJS.Timeout | null = null;
  /** The end of the runtime (ms; Infinity without one): a tick at or past it takes nothing. */
  private tEnd = Infinity;
  /** Whether the job has ended: no tick is armed after. */
  private ended = false;

  constructor(
    private readonly job: FioJob,
    private readonly stats: JobStats,
    private readonly logs: JobLogs,
    /** The job's stderr (JobStderr.say(): after what it has still to say). */
    private readonly say: (text: string) => void,
    /** The worker's epoch (ms; undefined before it has one) and whether its ramp_time is over. */
    private readonly worker: { epoch(): number | undefined; rampDone(): boolean },
  ) {
    const periods = statWindows(job);
    const window = (period: number, log: IoLog | null): SampleWindow | null =>
      log?.perUnit ? null : { period, t: 0, next: 0, count: [0, 0, 0] };
    this.bwWindow = window(periods.bw, this.logs.bw);
    this.iopsWindow = window(periods.iops, this.logs.iops);
  }

  /** The windows start at `t` (the job's start), to sample until `tEnd` (the runtime's end). */
  start(t: number, tEnd: number): void {
    this.tEnd = tEnd;
    this.restart(t);
  }

  /** The windows start again at `t` (reset_all_stats(): the ramp's end, a latency target's final window). */
  restart(t: number): void {
    for (const w of [this.bwWindow, this.iopsWindow]) {
      if (!w) continue;
      w.t = t;
      w.next = t + w.period;
      w.count = [0, 0, 0];
    }
    this.armSampler();
  }

  /** The job has ended: no more ticks. */
  end(): void {
    this.ended = true;
    if (this.sampleTimer) clearTimeout(this.sampleTimer);
    this.sampleTimer = null;
  }

  /**
   * A completed I/O (account_io_completion()): its lat and clat (ns) to the logs, its bytes to the bw
   * and iops windows (`windowed`: not a read of the verify list, which fio's this_io_bytes leaves
   * out) — or, per I/O, a sample of the report's and an entry.
   */
  completed(
    t: number,
    ddir: Ddir,
    offset: number,
    bs: number,
    lat: number,
    clat: number,
    windowed = true,
  ): void {
    const d = this.stats.dir(ddir);
    const ms = this.logTime(t);
    const logs = this.logs;
    if (logs.lat) this.log(logs.lat, ms, Math.floor(lat), ddir, bs, offset);
    if (logs.clat) this.log(logs.clat, ms, Math.floor(clat), ddir, bs, offset);
    // the histogram is of clat's samples (add_clat_sample()), which disable_clat does not take
    if (!this.job.disableClat && logs.hist?.add(ms, Math.floor(clat), ddir, bs)) this.logFull(logs.hist);
    if (this.bwWindow) {
      if (windowed) this.bwWindow.count[ddir] += bs;
    } else if (!this.job.disableBw) {
      // add_bw_sample(): the block's bytes over its clat, a sample of the report's and an entry
      const rate = clat >= 1 ? Math.floor((bs * 1e6) / Math.floor(clat)) : 0;
      d.bw.add(rate);
      this.log(logs.bw!, ms, rate, ddir, bs, offset);
    }
    if (this.iopsWindow) {
      if (windowed) this.iopsWindow.count[ddir]++;
    } else if (!timeReduced(this.job)) {
      d.iops.add(1);
      this.log(logs.iops!, ms, 1, ddir, bs, offset);
    }
  }

  /** An I/O queued at `t`, `ms` after its issue: its slat to the slat log. */
  slat(t: number, ms: number, ddir: Ddir, bs: number, offset: number): void {
    if (this.logs.slat) this.log(this.logs.slat, this.logTime(t), Math.floor(ms * 1e6), ddir, bs, offset);
  }

  /** A log entry's time: whole milliseconds since the job's epoch (mtime_since_now(&td->epoch)). */
  private logTime(t: number): number {
    return Math.floor(t - (this.worker.epoch() ?? t));
  }

  private log(log: IoLog, ms: number, value: number, ddir: Ddir, bs: number, offset: number): void {
    if (log.add(ms, value, ddir, bs, offset)) this.logFull(log);
  }

  private logFull(log: LogFile): void {
    this.say(
      `fio: ${log.file}: the guest's logs hold ${MAX_LOG_ENTRIES} entries at most: later samples dropped\n`,
    );
  }

  /**
   * The job's end, for its logs (finalize_logs()): what their averaging windows hold, as entries at
   * the end.
   */
  finalizeLogs(): void {
    const ms = this.logTime(now());
    for (const log of Object.values(this.logs)) if (log?.finalize(ms)) this.logFull(log);
  }

  /**
   * fio's helper thread's calc_log_samples(): at each tick of the bw and iops windows (every
   * bwavgtime/iopsavgtime ms from the job's start, 500 by default), a sample of each — whether or not
   * an I/O has just completed — while the job runs (not in its ramp), but for a tick at or past the
   * end of the runtime. A timer stands for the helper thread: a tick that fires late takes its sample
   * late, as the helper woken late does.
   */
  private armSampler(): void {
    if (this.sampleTimer) clearTimeout(this.sampleTimer);
    this.sampleTimer = null;
    const next = Math.min(
      ...[this.bwWindow, this.iopsWindow].map((w) => (w && w.next < this.tEnd ? w.next : Infinity)),
    );
    if (next === Infinity || this.ended) return;
    // a timer's delay has a ceiling: a longer window is reached in steps (sampleTick() arms again)
    this.sampleTimer = setTimeout(
      () => this.sampleTick(),
      Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(next - now()))),
    );
  }

  private sampleTick(): void {
    this.sampleTimer = null;
    const t = now();
    // a timer keeps whole milliseconds of a clock read at the loop's turn: it may fire a little
    // before its tick, which the helper never does
    const due = Math.min(...[this.bwWindow, this.iopsWindow].map((w) => w?.next ?? Infinity));
    if (t < due) {
      this.armSampler();
      return;
    }
    // in the ramp the helper takes nothing; the ramp's end starts the windows again
    if (this.worker.rampDone()) {
      this.closeWindow(this.bwWindow, t, 'bw');
      this.closeWindow(this.iopsWindow, t, 'iops');
    }
    for (const w of [this.bwWindow, this.iopsWindow])
      if (w) while (w.next <= t + LOG_MSEC_SLACK) w.next += w.period;
    this.armSampler();
  }

  /**
   * fio's __add_samples() for add_bw_samples()/add_iops_samples(): at a tick (less fio's
   * LOG_MSEC_SLACK of 1 ms), one sample for each direction that did I/O since the last — whole KiB/s
   * and whole IOPS over its whole milliseconds, as fio divides — given to the bw or iops log, if any,
   * as well. A direction without I/O in the window gives none. fio's helper samples a job while it is
   * running, its drain of what it had in flight included, so fio takes the tick at the runtime's end
   * only when the drain outlasts it: over runs of 1 and 2 s it took 1 and 3 samples when its drain
   * ended within a millisecond or so, 2 and 4 when it ran longer; this never takes it. The final
   * values of a run go to fio's logs, not to its statistics.
   */
  private closeWindow(w: SampleWindow | null, t: number, kind: 'bw' | 'iops'): void {
    if (!w || t < w.next - LOG_MSEC_SLACK || w.next >= this.tEnd) return;
    const spent = Math.floor(t - w.t);
    const ms = this.logTime(t);
    const log = kind === 'bw' ? this.logs.bw : this.logs.iops;
    for (const ddir of DDIRS) {
      const n = w.count[ddir];
      if (!n) continue;
      const rate =
        // a tick less than a millisecond after the last (a window of 1 ms, a late timer) spent none:
        // fio's rate is 0 then
        !spent
          ? 0
          : kind === 'bw'
            ? Math.floor(Math.floor((n * 1000) / spent) / 1024)
            : Math.floor((n * 1000) / spent);
      const d = this.stats.dir(ddir);
      (kind === 'bw' ? d.bw : d.iops).add(rate);
      // __add_samples(): the direction's block size when it has one size, else 0
      const { min, max } = blockSizes(this.job)[ddir];
      if (log) this.log(log, ms, rate, ddir, min === max ? min : 0, 0);
    }
    w.t = t;
    w.count = [0, 0, 0];
  }
}
