/**
 * fio's latency target (io_u.c's lat_target_*: `latency_target`, `latency_window`,
 * `latency_percentile`, `latency_run`): the job starts at depth 1 and looks for the deepest queue
 * whose I/O keeps within the target. Each `latency_window` it looks at the I/Os completed since the
 * last look: if at least `latency_percentile` % of them had a total latency (lat) within the target,
 * the depth goes up — doubled until a depth has failed, then halfway to the lowest that failed —,
 * else down, halfway to the highest that held. With a percentile of 100 a single I/O over the
 * target is a failure at once. When a look would leave the depth where it is, the job quiesces,
 * starts its statistics again and runs one more window at that depth, whose figures are the report's,
 * and then ends — unless `latency_run`, which goes on adjusting until the runtime is over. An I/O over
 * the target at depth 1 ends the job with ETIMEDOUT, as `max_latency` does.
 *
 * This is the decision alone; the engine keeps the depth, quiesces and resets (fio-engine.ts).
 */
import type { FioLatencyTarget } from './fio-job.ts';

/** What the engine is to do after a decision. */
export type LatencyStep =
  /** nothing to do: the depth stays, or it went up and a new cycle began (lat_new_cycle()) */
  | null
  /** let what is in flight complete before issuing at the new depth (io_u_quiesce()), then a new cycle */
  | 'quiesce'
  /** quiesce, start the statistics again (reset_all_stats()), and run one more window: the report's */
  | 'final'
  /** the final window is over: the job ends (td->done) */
  | 'done'
  /** an I/O over the target at depth 1: the job fails (lat_fatal()) */
  | 'fatal';

export class LatencyTarget {
  /** td->latency_qd: the depth the job keeps now; the report's `depth`. */
  qd: number;
  private high = 0;
  private low = 1;
  private stable = 0;
  /** The current cycle: when it began (ms), the I/Os completed then, those over the target since. */
  private cycleStart = 0;
  private cycleIos = 0;
  private failed = 0;
  private endRun = false;

  constructor(
    private readonly o: FioLatencyTarget,
    /** The job's iodepth: the deepest the search goes (but see success()). */
    private readonly iodepth: number,
  ) {
    this.qd = iodepth;
  }

  /** lat_target_init(), at the start of each pass: from depth 1 again. */
  init(t: number, completed: number): void {
    this.endRun = false;
    this.qd = 1;
    this.high = this.iodepth;
    this.low = 1;
    this.cycleStart = t;
    this.cycleIos = completed;
  }

  /** lat_target_reset(), when the statistics start again (the end of ramp_time): unless in the final window. */
  reset(t: number, completed: number): void {
    if (!this.endRun) this.init(t, completed);
  }

  /** lat_new_cycle(): a window starts, once the engine has quiesced. */
  newCycle(t: number, completed: number): void {
    this.cycleStart = t;
    this.cycleIos = completed;
    this.failed = 0;
  }

  /** A completion whose lat (ns) was over the target: lat_target_failed(). */
  over(): LatencyStep {
    if (this.o.percentile === 100) return this.rampDown() ? 'fatal' : 'quiesce';
    this.failed++;
    return null;
  }

  /** lat_target_check(), once a turn of the submit loop: at `t` (ms), with `completed` I/Os completed. */
  check(t: number, completed: number): LatencyStep {
    if ((t - this.cycleStart) * 1000 < this.o.windowUs) return null;
    const ios = completed - this.cycleIos;
    // no I/O completed in the window is 0/0, which no percentile reaches: a failure, as fio's NaN
    const success = ((ios - this.failed) / ios) * 100;
    if (success >= this.o.percentile) return this.success(t, completed);
    // a failure at depth 1 is no step here: the depth stays (fio ignores __lat_target_failed()'s answer)
    return this.rampDown() ? null : 'quiesce';
  }

  /** __lat_target_failed(): true at depth 1, where there is nowhere lower to go. */
  private rampDown(): boolean {
    if (this.qd === 1) return true;
    this.high = this.qd;
    if (this.qd === this.low) this.low--;
    this.qd = Math.floor((this.qd + this.low) / 2);
    this.stable = 0;
    return false;
  }

  /** lat_target_success(). */
  private success(t: number, completed: number): LatencyStep {
    const qd = this.qd;
    this.low = this.qd;
    // a depth one below the lowest that failed would never move: after three successes in a row
    // there, the bound goes up one
    if (this.qd + 1 === this.high && ++this.stable >= 3) {
      this.high++;
      this.stable = 0;
    }
    // doubling until a depth has failed, then bisecting towards it
    this.qd = this.high !== this.iodepth ? Math.floor((this.qd + this.high) / 2) : this.qd * 2;
    if (this.qd > this.iodepth) this.qd = this.iodepth;
    if (!this.o.run && this.qd === qd) {
      if (!this.endRun) {
        this.endRun = true;
        return 'final';
      }
      this.newCycle(t, completed);
      return 'done';
    }
    this.newCycle(t, completed);
    return null;
  }
}
