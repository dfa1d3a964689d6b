/**
 * fio's log of a pass's writes for verification (iolog.c's log_io_piece(), the io_piece list and
 * tree): what the verify phase reads back, and what `verify_backlog` reads back while the pass goes on
 * (io_u.c's check_get_verify(), verify.c's get_next_verify()).
 *
 * A random job keeps its writes in the order it issued them (fio's list: with its random map a pass
 * writes each block once); a sequential one sorted by offset (fio's tree, where a later write of a
 * block replaces the earlier one). A write is logged as it is issued and is in flight until it
 * completes; a failed one leaves the log (unlog_io_piece()), but for a synchronous engine's (drain()).
 */

/** One logged write: the number and seed its header holds. */
export interface LoggedWrite {
  offset: number;
  len: number;
  numberio: number;
  seed: bigint;
  inFlight: boolean;
}

export class WriteLog {
  private readonly entries = new Map<number, LoggedWrite>();
  /** Whether every offset logged so far was above the one before: insertion order is then sorted. */
  private ascending = true;
  private lastOffset = -1;
  /** Verify reads left of the current backlog batch (td->verify_batch). */
  private batch = 0;

  /**
   * @param sorted a sequential job's log (fio's tree)
   * @param backlog `verify_backlog`: every this many logged writes, a batch of them is read back (0: never)
   * @param backlogBatch `verify_backlog_batch`: the batch's size (0: `backlog`)
   */
  constructor(
    private readonly sorted: boolean,
    private readonly backlog: number,
    private readonly backlogBatch: number,
  ) {}

  /** Logged writes not yet read back (td->io_hist_len). */
  get size(): number {
    return this.entries.size;
  }

  log(offset: number, len: number, numberio: number, seed: bigint): void {
    // an earlier write of the block leaves the log (the tree's overlap), so the newest is last; writes
    // that overlap without starting at the same offset are of sizes that vary without a random map,
    // which checkJob() refuses to verify
    this.entries.delete(offset);
    this.entries.set(offset, { offset, len, numberio, seed, inFlight: true });
    if (offset <= this.lastOffset) this.ascending = false;
    this.lastOffset = offset;
  }

  /** The write at `offset` completed: no longer in flight, or gone from the log when it failed. */
  completed(offset: number, ok: boolean): void {
    const e = this.entries.get(offset);
    if (!e) return;
    if (ok) e.inFlight = false;
    else this.entries.delete(offset);
  }

  get(offset: number): LoggedWrite | undefined {
    return this.entries.get(offset);
  }

  /** A new pass (prune_io_piece_log()): each pass verifies what it wrote itself. */
  clear(): void {
    this.entries.clear();
    this.ascending = true;
    this.lastOffset = -1;
    this.batch = 0;
  }

  /**
   * What the verify phase reads back, in the log's order; the log is then empty. get_next_verify()
   * ends the phase at a write still in flight: only a synchronous engine's failed write is one then.
   */
  drain(): LoggedWrite[] {
    const all = [...this.entries.values()];
    if (this.sorted && !this.ascending) all.sort((a, b) => a.offset - b.offset);
    this.clear();
    const stuck = all.findIndex((e) => e.inFlight);
    return stuck < 0 ? all : all.slice(0, stuck);
  }

  /**
   * check_get_verify(), before each I/O of the pass: the write to read back now, or null. A batch
   * starts when the logged writes are a multiple of `backlog` and the last I/O to complete was not a
   * read (td->last_ddir); it goes on over the next I/Os while the log's first write has completed.
   */
  nextBacklog(lastCompletedWrite: boolean): LoggedWrite | null {
    if (!this.backlog || !this.entries.size) return null;
    if (!this.batch) {
      if (this.entries.size % this.backlog !== 0 || !lastCompletedWrite) return null;
      this.batch = this.backlogBatch || this.backlog;
    }
    const first = this.first();
    // get_next_verify(): nothing while the first is in flight; the batch waits for it
    if (first.inFlight) return null;
    this.entries.delete(first.offset);
    this.batch--;
    return first;
  }

  private first(): LoggedWrite {
    if (!this.sorted || this.ascending) return this.entries.values().next().value!;
    let min: LoggedWrite | null = null;
    for (const e of this.entries.values()) if (!min || e.offset < min.offset) min = e;
    return min!;
  }
}

/** One I/O of a dry run: its direction and place. */
export interface DryIo {
  write: boolean;
  offset: number;
  len: number;
}

/**
 * verify_only's pass (backend.c's do_dry_run()): I/Os drawn as the job draws them (`next`), until
 * they come to `bytes` or none fits,
 * its writes logged in `log` as the job would log them and its backlog's reads taken off the log with
 * no I/O, as fio completes them. Returns the offsets verify_only reads back: what the log is left
 * with (a random writer's blocks in the order it wrote them, none a mixed job only read), or, for a
 * job that does not write, its own reads in its order, as its do_io() would read them.
 */
export function dryRun(
  bytes: number,
  writes: boolean,
  log: WriteLog,
  next: () => DryIo | null,
): Array<{ offset: number; len: number }> {
  const reads: Array<{ offset: number; len: number }> = [];
  let lastWrite = false;
  for (let done = 0; done < bytes;) {
    if (log.nextBacklog(lastWrite)) {
      lastWrite = false;
      continue;
    }
    const io = next();
    if (!io) break;
    done += io.len;
    lastWrite = io.write;
    if (!io.write) reads.push({ offset: io.offset, len: io.len });
    else {
      log.log(io.offset, io.len, 0, 0n);
      log.completed(io.offset, true);
    }
  }
  return writes ? log.drain().map(({ offset, len }) => ({ offset, len })) : reads;
}
