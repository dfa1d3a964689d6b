/**
 * A job's syncs of `fsync=N` and `fdatasync=N` (io_u.c's get_rw_ddir() and should_fsync(), the
 * engines' do_io_u_sync()): when one is due, how it goes in — inline for libaio and the synchronous
 * engines, queued for io_uring — and how it is counted. On the guest's block device fsync and
 * fdatasync are both a cache flush (blkdev_fsync: BLKIF_OP_FLUSH_DISKCACHE).
 */
import { batchBucket, depthBucket, type JobStats } from './fio-stats.ts';
import { countsFatal, errorKind, nonFatal } from './fio-td-error.ts';
import { ERRNO_NUM, type VerrorFunc } from './fio-verror.ts';
import type { FioJob } from './fio-job.ts';
import { STRERROR, type Errno, type IoResult } from './vfs.ts';
import type { InlineCall } from './fio-inline.ts';

export type SyncKind = 'fsync' | 'fdatasync';

/** What the syncs need of their job's worker. */
export interface FsyncWorker {
  readonly job: FioJob;
  readonly stats: JobStats;
  /** The device's path, for fio's error line. */
  readonly path: string;
  /** A synchronous engine (psync, sync). */
  readonly synchronous: boolean;
  /** The engine's inline calls, which an inline sync is one of. */
  readonly inline: InlineCall;
  readonly direct: boolean;
  /** I/Os in flight, the queued sync's too; `add` counts one in (1) or out (-1). */
  inflight(): number;
  addInflight(n: 1 | -1): void;
  /** The workload's writes issued since the statistics started (td->io_issues[DDIR_WRITE]). */
  writesIssued(): number;
  rampDone(): boolean;
  /** fsync(2) of the job's file. */
  syncFile(): Promise<IoResult>;
  /** do_io()'s loop: issue what it may. */
  pump(): void;
  /** The job's error (td_verror()), `line` said first; `name` the function fio names, if not `func`. */
  fail(errno: Errno, func: VerrorFunc, line: string | null, name?: string): void;
}

const now = (): number => performance.now();

export class JobFsyncs {
  /** fio's td->last_was_sync: set as a sync completes, cleared by any other completion. */
  lastWasSync = false;
  /** The inline sync waiting for the buffered I/O in flight to complete. */
  private onIdle: (() => void) | null = null;

  constructor(private readonly w: FsyncWorker) {}

  /** io_uring queues a sync (IORING_OP_FSYNC); libaio and the synchronous engines call it inline. */
  get queued(): boolean {
    return this.w.job.ioengine === 'io_uring';
  }

  /**
   * get_rw_ddir()'s look before the next I/O: a writer whose writes issued are a multiple of `fsync`
   * (else `fdatasync`), unless a sync was the last thing to complete — which only another completion
   * undoes, so a deep queue may pass a multiple by, and io_uring, whose syncs are queued, queues one
   * after another until one completes or the queue is full.
   */
  due(writer: boolean): SyncKind | null {
    const j = this.w.job;
    const writes = this.w.writesIssued();
    if (!writer || this.lastWasSync || !writes) return null;
    if (j.fsyncBlocks && writes % j.fsyncBlocks === 0) return 'fsync';
    if (j.fdatasyncBlocks && writes % j.fdatasyncBlocks === 0) return 'fdatasync';
    return null;
  }

  /**
   * An I/O completed: held while an inline sync runs (fio's thread is in fsync(2), and reaps after
   * it), unless the sync waits for the buffered writes in flight. Returns whether it was held.
   */
  hold(complete: () => void): boolean {
    return !this.onIdle && this.w.inline.hold(complete);
  }

  /** An I/O's completion was taken: the last thing done is no longer a sync; a waiting sync may go. */
  completed(): void {
    this.lastWasSync = false;
    if (this.onIdle && this.w.inflight() === 0) {
      const idle = this.onIdle;
      this.onIdle = null;
      queueMicrotask(idle);
    }
  }

  /**
   * The sync, counted as issued (total_io_u[DDIR_SYNC]) at the depth it goes in at; a synchronous
   * engine counts it a submit and a completion of one. Inline, nothing is issued until it returns and
   * what completes meanwhile is reaped after the refill that follows it — the I/O already submitted
   * stays in flight, libaio having none waiting to be submitted, but a buffered write is in the page
   * cache once Linux's io_submit() returns, so those in flight here are waited for. Queued, it is one
   * more I/O in flight. Done, it is the last thing done and, past the ramp, a sync sample from its
   * issue (deliberately for libaio too, whose inline sync fio 3.33 never stamps).
   */
  async run(kind: SyncKind): Promise<void> {
    const w = this.w;
    const st = w.stats;
    const queued = this.queued;
    st.syncIos++;
    st.depthMap[depthBucket(w.inflight() + 1)]++;
    if (w.synchronous) {
      st.submitMap[batchBucket(1)]++;
      st.totalSubmit++;
      st.completeMap[batchBucket(1)]++;
      st.totalComplete++;
    }
    if (queued) w.addInflight(1);
    else {
      w.inline.begin();
      if (!w.direct && w.inflight() > 0) await new Promise<void>((resolve) => (this.onIdle = resolve));
    }
    const tIssue = now();
    const r = await w.syncFile().catch((): IoResult => ({ ok: false, errno: 'EIO' }));
    const t = now();
    const done = () => {
      if (r.ok) {
        this.lastWasSync = true;
        // account_io_completion(): past the ramp, with stats and clat measured
        if (w.rampDone() && w.job.statsEnabled && !w.job.disableClat) st.syncLat.add((t - tIssue) * 1e6);
      } else this.failed(kind, r.errno);
      // do_io() goes on issuing until its queue is full before it reaps: what completed during the
      // sync is still in flight to it (a write issued now finds last_was_sync set), and is reaped after
      w.pump();
    };
    if (queued) {
      w.addInflight(-1);
      done();
    } else w.inline.end(done);
  }

  /**
   * A failed sync is an error of the writes' kind (td_error_type()). io_uring's is an I/O's error like
   * any other; an inline one goes through td_io_queue() and break_on_this_error(), which counts it
   * even when it ends the job, if the job continues on that kind: a synchronous engine says it as
   * fio_io_end() does, libaio silently, with td_io_queue()'s message.
   */
  private failed(kind: SyncKind, errno: Errno): void {
    const w = this.w;
    const st = w.stats;
    const num = ERRNO_NUM[errno];
    if (nonFatal(w.job, errorKind(true, num), num)) {
      st.countError(num);
      return;
    }
    if (st.error) return;
    if (countsFatal(w.job, !this.queued, true, num)) st.countError(num);
    // fio prints the offset and length its io_u last held: here 0
    const line = `fio: io_u error on file ${w.path}: ${STRERROR[errno]}: ${kind === 'fsync' ? 'sync' : 'datasync'} offset=0, buflen=0`;
    if (w.synchronous || this.queued) w.fail(errno, 'io_u error', line);
    else w.fail(errno, 'td_io_queue engine', null, 'td_io_queue');
  }
}
