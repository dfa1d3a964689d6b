/**
 * Fair service in the broker. Each domain's decoded input waits in its connection's inbox; the
 * scheduler serves the connections round-robin, a bounded slice at a time, so a domain that sends a
 * flood (a frame of 300,000 XenStore writes, say) is served at the same rate as everybody else instead
 * of holding the broker until it is done — the others' frames are handled between its slices.
 *
 * A connection is not served while it is blocked: its own output backlog is over the high-water mark
 * (it is not reading what it asked for), or the last message it was served produced output for a
 * receiver whose backlog is over the mark (it must wait for that receiver to drain, as a producer
 * waits on a full ring). The control domain is never made to wait on a guest: a guest that stops
 * reading is cut off at its backlog limit instead (see Connection).
 */

/** What the scheduler needs of a connection. */
export interface Schedulable {
  /** Serves up to `budget` messages; true when input remains. */
  runSlice(budget: number): boolean;
  /** True while the connection may not be served (see above). */
  readonly blocked: boolean;
  readonly closed: boolean;
}

/** Messages served per connection per round. */
export const SLICE_MESSAGES = 256;

export class FairScheduler {
  private readonly runnable = new Set<Schedulable>();
  private scheduled = false;
  private running = false;

  /** True when connections other than the caller are waiting: the caller must queue, not jump ahead. */
  get busy(): boolean {
    return this.running || this.runnable.size > 0;
  }

  /** `c` has input: serve it now when nobody else waits, else in its turn. */
  arrived(c: Schedulable): void {
    if (!this.busy && !c.blocked) {
      this.running = true;
      let more: boolean;
      try {
        more = c.runSlice(SLICE_MESSAGES);
      } finally {
        this.running = false;
      }
      if (!more) return;
    }
    this.wake(c);
  }

  /** `c` has input and may be served in its turn (called again when it becomes unblocked). */
  wake(c: Schedulable): void {
    if (c.closed) return;
    this.runnable.add(c);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.round());
  }

  /** One round: every runnable connection gets one slice, in order of arrival. */
  private round(): void {
    this.scheduled = false;
    const turn = [...this.runnable];
    this.runnable.clear();
    this.running = true;
    try {
      for (const c of turn) {
        if (c.closed) continue;
        if (c.blocked) continue; // woken again by what it waits for
        if (c.runSlice(SLICE_MESSAGES)) this.runnable.add(c);
      }
    } finally {
      this.running = false;
    }
    if (this.runnable.size > 0) this.schedule();
  }
}
