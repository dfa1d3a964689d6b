/**
 * A job's stalls: fio's io_u_quiesce(), then usec_spin() and usec_sleep() (time.c), which its submit
 * loop waits in when it is ahead of its rate (rate_ddir()), thinks (handle_thinktime()) or quiesces
 * for its latency target. Nothing is issued while a stall is pending; once nothing is in flight the
 * worker begins it, and it wakes the worker when it is over.
 */

/** The longest stretch thinktime_spin keeps the event loop busy (see begin()). */
const SPIN_SLICE_MS = 5;
/** The last part of a stall's sleep not left to a timer (see begin()). */
const SLEEP_POLL_MS = 1.5;
/** What a wait of the thread overshoots by, about (a futex's wake-up here): left to the loop's turns. */
const WAIT_SLACK_MS = 0.2;
/** Never notified: Atomics.wait() on it is a sleep of the thread. */
const SLEEPER = new Int32Array(new SharedArrayBuffer(4));

const now = (): number => performance.now();

/** The stall of a job's submit loop: pending, under way, or none. */
export class Stalls {
  /**
   * A stall of the submit loop — ahead of the rate (rate_ddir()) or thinking (handle_thinktime()):
   * once nothing is in flight (fio's io_u_quiesce()), `spinUs` of busy CPU and then `us` asleep, and
   * `after` when it is over. Nothing is issued meanwhile.
   */
  private stall: { us: number; spinUs: number; after: (stalledUs: number) => void } | null = null;
  /** Cancels the stall's pending spin slice, timer or poll (set while one is pending). */
  private stallCancel: (() => void) | null = null;

  constructor(
    /** The worker's: whether it is stopping, and what it does when a stall is over (the refill). */
    private readonly worker: { stopping(): boolean; woke(): void },
  ) {}

  /** Whether a stall is pending or under way: nothing is issued meanwhile. */
  get stalled(): boolean {
    return this.stall !== null;
  }

  /** Whether a stall is pending and not begun: it begins once nothing is in flight. */
  get waiting(): boolean {
    return this.stall !== null && this.stallCancel === null;
  }

  /** Cancels the stall under way, if any (a stop): true when there was one. */
  cancel(): boolean {
    if (!this.stallCancel) return false;
    this.stallCancel();
    this.stallCancel = null;
    this.stall = null;
    return true;
  }

  /**
   * A stall of `us` (`spinUs` of it spun) once nothing is in flight, then `after` with the µs it took.
   * One already pending (not begun: it begins once the queue has drained, and nothing is in flight
   * while it runs) takes this one after it, as fio does its quiesce, thought and rate sleep one after
   * the other.
   */
  add(us: number, spinUs: number, after: (stalledUs: number) => void): void {
    const before = this.stall;
    this.stall = before
      ? {
          us: before.us + us,
          spinUs: before.spinUs + spinUs,
          after: (took) => {
            before.after(took);
            after(took);
          },
        }
      : { us, spinUs, after };
  }

  /**
   * The stall, now that nothing is in flight: the spin, then what it left of the stall asleep on a
   * timer — neither past the runtime. The spin keeps the CPU busy as the application it stands for
   * would, in slices of SPIN_SLICE_MS with a turn of the event loop between them: the guest's kernel
   * (blkfront, its interrupts) shares this thread, where a real guest's would preempt fio.
   */
  begin(tEnd: number): void {
    const st = this.stall!;
    const t0 = now();
    const spinUntil = Math.min(t0 + st.spinUs / 1000, tEnd);
    const later = (fn: () => void, ms: number) => {
      const h = setTimeout(fn, ms);
      this.stallCancel = () => clearTimeout(h);
    };
    const nextTurn = (fn: () => void) => {
      const h = setImmediate(fn);
      this.stallCancel = () => clearImmediate(h);
    };
    const spin = () => {
      const sliceEnd = Math.min(spinUntil, now() + SPIN_SLICE_MS);
      while (now() < sliceEnd) {
        /* fio's usec_spin() */
      }
      if (now() < spinUntil && !this.worker.stopping()) nextTurn(spin);
      else sleep();
    };
    const sleep = () => {
      // one reading of the clock, and never past the runtime's end: a wake at that end ends the job
      const start = now();
      const until = Math.min(start + Math.max(0, st.us / 1000 - (start - t0)), tEnd);
      // usec_sleep()'s precision: a timer until SLEEP_POLL_MS before the end (in steps of a second
      // at most: a timer's delay has a ceiling) — a timer never fires under a millisecond, and a
      // think of 100 µs would take ten times that — then the thread asleep (Atomics.wait: no CPU,
      // as fio's nanosleep) to WAIT_SLACK_MS before the end, which a wait overshoots by about that
      // much, and the rest by looking at the clock each turn of the loop
      const wake = () => {
        const left = until - now();
        if (left > 0 && !this.worker.stopping()) {
          if (left > SLEEP_POLL_MS) later(wake, Math.min(left - SLEEP_POLL_MS, 1000));
          else {
            if (left > WAIT_SLACK_MS) Atomics.wait(SLEEPER, 0, 0, left - WAIT_SLACK_MS);
            nextTurn(wake);
          }
          return;
        }
        this.stallCancel = null;
        this.stall = null;
        // what fio's usec_spin() and usec_sleep() return: the whole µs spun and slept
        st.after(Math.floor((now() - t0) * 1000));
        this.worker.woke();
      };
      // never at once: the pump that set the stall is still on the stack
      nextTurn(wake);
    };
    if (st.spinUs > 0) spin();
    else sleep();
  }
}
