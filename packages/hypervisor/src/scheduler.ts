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
  /** Serves up to `budget` messages, for about `ms` at most; true when input remains. */
  runSlice(budget: number, ms?: number): boolean;
  /** Hands what is owed to the peer to its socket. */
  flush(): void;
  /** True while the connection may not be served (see above). */
  readonly blocked: boolean;
  readonly closed: boolean;
}

/** Messages served per connection per round … */
export const SLICE_MESSAGES = 256;
/**
 * … and milliseconds, for a domain served in the rounds (one with a backlog): its slice ends at
 * whichever comes first. 256 XenStore writes, each firing a watch, took 1-2 ms, and another guest's
 * request waited for one such slice at every pass through the broker (a QD1 write passes two to three
 * times). A domain served as its frame arrives has no time bound: a frame of the data path is
 * forwarded in one piece (cut by time, a QD32 frame from the guest left in two flushes to Dom0 when
 * the machine was busy), and a flooder is served that way once per frame at most.
 */
export const SLICE_MS = 0.2;

export class FairScheduler {
  private readonly runnable = new Set<Schedulable>();
  /** Connections with output owed, flushed at the start of the next turn. */
  private readonly owing = new Set<Schedulable>();
  private scheduled = false;
  private running = false;

  /**
   * `c` has input: served at once when it had none waiting — a sparse flow, as fq_codel's new flows go
   * before the backlogged ones — else in its turn. A connection with a backlog cannot jump ahead by
   * sending more: its new input queues behind its old. So a guest whose one request waits at each
   * pass through the broker is served on arrival, not after a slice of every domain that floods it.
   */
  arrived(c: Schedulable): void {
    if (!this.running && !this.runnable.has(c) && !c.blocked) {
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

  /**
   * `c` owes its peer output: it leaves at the start of the next turn, before any slice is served. A
   * sparse flow's answer, produced when its frame arrived, went out behind the next slice of every
   * backlogged domain when the two were separate callbacks (setImmediate runs them in order): at each
   * pass through a flooded broker a guest's request waited for a whole slice more.
   */
  flushSoon(c: Schedulable): void {
    this.owing.add(c);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.turn());
  }

  /** One turn: what is owed goes out, then every runnable connection gets one slice, in order of arrival. */
  private turn(): void {
    this.scheduled = false;
    if (this.owing.size > 0) {
      const owing = [...this.owing];
      this.owing.clear();
      for (const c of owing) c.flush();
    }
    if (this.runnable.size > 0) this.round();
  }

  private round(): void {
    const turn = [...this.runnable];
    this.runnable.clear();
    this.running = true;
    try {
      for (const c of turn) {
        if (c.closed) continue;
        if (c.blocked) continue; // woken again by what it waits for
        if (c.runSlice(SLICE_MESSAGES, SLICE_MS)) this.runnable.add(c);
      }
    } finally {
      this.running = false;
    }
    if (this.runnable.size > 0) this.schedule();
  }
}
