/**
 * fio's submit and reap under `iodepth_batch_submit`, `iodepth_batch_complete_min`,
 * `iodepth_batch_complete_max` and `iodepth_low`, as fio 3.33 runs its queue with them:
 * td_io_queue() and td_io_commit() (ioengines.c), wait_for_completions() (backend.c),
 * io_u_queued_complete() (io_u.c), td_io_getevents(), and libaio's commit and getevents.
 *
 * - An I/O is queued in the engine, not yet submitted; once `batch` are queued, td_io_commit() counts
 *   them in `IO depths` at the queue's depth and the engine submits what it holds (one io_submit(), a
 *   `submit` of that many). Until then an I/O is not on its way to the device.
 * - After each I/O, with the queue full (or "polling": both complete options 0), the loop waits:
 *   getevents of at least `min(complete_min, depth)` completions and at most `complete_max` (never
 *   below that minimum), again while the queue was full and is deeper than `iodepth_low`. Each
 *   getevents submits what the engine holds first — without td_io_commit()'s count, so those I/Os are
 *   counted in `IO depths` only at the next td_io_commit(), as fio's are.
 * - A completed I/O keeps its slot (fio's cur_depth) until it is reaped, and its latency ends when it
 *   is: an I/O that completes early in a batch waits for the batch, as under fio.
 * - At a pass's end everything in flight is reaped by one getevents (do_io()'s
 *   `io_u_queued_complete(td, cur_depth)`); before a stall (ahead of the rate, thinking, quiescing for
 *   the latency target) the queue is committed and drained as io_u_quiesce() drains it.
 *
 * fio's defaults (submit 1, complete_min 1, complete_max = complete_min, low = iodepth) are a submit
 * and a reap of one I/O at a time. Given none of the four, this fio keeps its own loop, which reaps
 * what one interrupt completed and refills at once (docs/experiments.md).
 */
import { batchBucket, depthBucket } from './fio-stats.ts';

/** The four options as given (null: not given), each an unsigned int as fio stores it. */
export interface IodepthBatch {
  submit: number | null;
  completeMin: number | null;
  completeMax: number | null;
  low: number | null;
}

/** The four options as init.c's fixup_options() leaves them for a queue of `iodepth`. */
export interface ReapOptions {
  batch: number;
  completeMin: number;
  completeMax: number;
  low: number;
}

/** The options in force, or null when none was given (this fio's own loop). */
export function reapOptions(b: IodepthBatch, iodepth: number): ReapOptions | null {
  if (b.submit === null && b.completeMin === null && b.completeMax === null && b.low === null) return null;
  // fixup_options(): a batch or low mark of 0, or above the depth, is the depth
  let batch = b.submit ?? 1;
  if (batch > iodepth || batch === 0) batch = iodepth;
  let low = b.low ?? 0;
  if (low > iodepth || low === 0) low = iodepth;
  const completeMin = b.completeMin ?? 1;
  let completeMax = b.completeMax ?? 0;
  if (completeMin > completeMax) completeMax = completeMin;
  return { batch, completeMin, completeMax, low };
}

/** The maps a reap counts in (JobStats's). */
export interface ReapStats {
  depthMap: number[];
  submitMap: number[];
  completeMap: number[];
  totalSubmit: number;
  totalComplete: number;
}

export interface ReapWorker<T> {
  /** fio's td->cur_depth: I/Os queued, in flight, or completed and not reaped. */
  depth(): number;
  readonly stats: ReapStats;
  /** The engine's commit: these I/Os go to the device now, as one submission. */
  submit(ios: T[]): void;
}

/** What the loop waits for: getevents with a minimum (and again down to iodepth_low), or everything. */
type Wait = { kind: 'events'; min: number; full: boolean } | { kind: 'all' };

export class ReapLoop<T> {
  /** fio's td->io_u_queued: queued since td_io_commit() last counted them. */
  private queued = 0;
  /** Where the engine's next submission starts in its ring of iocbs (libaio's ld->tail). */
  private tail = 0;
  /** The engine's queue (libaio's ld->queued): not yet submitted. */
  private held: T[] = [];
  /** Completed and not yet reaped, oldest first: each is the completion to run when it is. */
  private arrived: Array<() => void> = [];
  private wait: Wait | null = null;

  constructor(
    readonly options: ReapOptions,
    private readonly w: ReapWorker<T>,
    /**
     * libaio's ring of iocbs (iodepth entries): a commit that runs past its end is two io_submit()
     * calls, each a submission of its own. Null for an engine that submits all at once (io_uring).
     */
    private readonly ringEntries: number | null,
  ) {}

  /** Whether the loop is in wait_for_completions() (or at a pass's end, waiting for all). */
  get waiting(): boolean {
    return this.wait !== null;
  }

  /** Completions not yet reaped. */
  get unreaped(): number {
    return this.arrived.length;
  }

  /** io_in_polling(): both complete options 0, the loop reaps after every I/O. */
  private get polling(): boolean {
    return !this.options.completeMin && !this.options.completeMax;
  }

  /** td_io_queue() of an I/O the engine queued (FIO_Q_QUEUED): committed once `batch` are queued. */
  queue(io: T): void {
    this.held.push(io);
    if (++this.queued >= this.options.batch) this.commit();
  }

  /** td_io_commit(): what was queued counted at the queue's depth, and the engine's commit. */
  commit(): void {
    if (!this.w.depth() || !this.queued) return;
    this.w.stats.depthMap[depthBucket(this.w.depth())] += this.queued;
    this.submitHeld();
    this.queued = 0;
  }

  /**
   * The engine's commit: an io_submit() of what it holds, a `submit` of that many — two where libaio's
   * ring of iocbs wraps (`nr = min(queued, entries - tail)`): a batch of 5 at depth 32 is split every
   * so often, which fio 3.33 counts as two submits, and which goes down the ring as two pushes.
   */
  private submitHeld(): void {
    const st = this.w.stats;
    while (this.held.length) {
      const ring = this.ringEntries;
      const n = ring ? Math.min(this.held.length, ring - this.tail) : this.held.length;
      if (ring) this.tail = (this.tail + n) % ring;
      st.submitMap[batchBucket(n)]++;
      st.totalSubmit++;
      this.w.submit(this.held.splice(0, n));
    }
  }

  /** An I/O completed: `reap` runs when the loop reaps it. */
  arrive(reap: () => void): void {
    this.arrived.push(reap);
  }

  /**
   * do_io()'s look after an issue: with the queue full, or polling, wait_for_completions() — at least
   * min(complete_min, depth) events a getevents (1 with a full queue and none asked, or polling).
   */
  afterIssue(full: boolean): void {
    if (full || this.polling) this.waitFor(full);
  }

  /** Whether the engine holds I/Os it has not submitted. */
  get holding(): boolean {
    return this.held.length > 0;
  }

  /**
   * The engine answered busy (FIO_Q_BUSY): libaio takes a trim or a sync, which it makes inline, only
   * with nothing held. td_io_queue()'s caller requeues it as it is, commits, and waits for completions
   * — once (a busy queue is not a full one), with the queue full again down to iodepth_low.
   */
  busy(full: boolean): void {
    this.commit();
    this.waitFor(full);
  }

  /** wait_for_completions(): `full`, whether the queue is full (queue_full()). */
  private waitFor(full: boolean): void {
    const cmin = this.options.completeMin;
    let min = Math.min(cmin, this.w.depth());
    if ((full && !min) || !cmin) min = 1;
    this.wait = { kind: 'events', min, full };
  }

  /** The end of a pass (or of the job): one getevents of everything in flight. */
  waitAll(): void {
    if (this.w.depth()) this.wait = { kind: 'all' };
  }

  /**
   * The wait, as far as what has completed lets it go: true once it is over, or when there is none.
   * `quiescing`: a stall is waiting for the queue to drain (io_u_quiesce()): the queue is committed and
   * what has completed reaped, a getevents at a time.
   */
  resume(quiescing: boolean): boolean {
    const w = this.wait;
    if (!w) {
      if (quiescing) {
        this.commit();
        while (this.arrived.length) this.getevents(1);
      }
      return true;
    }
    // a getevents with a minimum submits what the engine holds before it waits
    if (w.kind === 'all') {
      const depth = this.w.depth();
      if (depth) this.submitHeld();
      if (depth && this.arrived.length < depth) return false;
      this.wait = null;
      if (depth) this.getevents(depth);
      return true;
    }
    for (;;) {
      // io_u_queued_complete() takes the minimum down to the depth (which a queued sync's end lowers)
      const min = Math.min(w.min, this.w.depth());
      if (min) this.submitHeld();
      if (this.arrived.length < min) return false;
      if (min) this.getevents(min);
      else this.countComplete(0); // td_io_getevents(0, 0) on an empty queue: a reap of none, counted
      if (!min || !(w.full && this.w.depth() > this.options.low)) {
        this.wait = null;
        return true;
      }
    }
  }

  /**
   * td_io_getevents(min, complete_max): the engine's commit first, then between `min` and the most a
   * call takes — complete_max down to the depth, never below `min` — of what has completed.
   */
  private getevents(min: number): void {
    this.submitHeld();
    let max = Math.min(this.options.completeMax, this.w.depth());
    if (min > max) max = min;
    const r = Math.min(this.arrived.length, max);
    this.countComplete(r);
    for (const reap of this.arrived.splice(0, r)) reap();
  }

  /** io_u_mark_complete(): a getevents of `r`, none included. */
  private countComplete(r: number): void {
    const st = this.w.stats;
    st.completeMap[batchBucket(r)]++;
    st.totalComplete++;
  }
}
