/**
 * A call an asynchronous engine makes inline, in its queue() (FIO_Q_COMPLETED): libaio's and
 * io_uring's trims (FIO_ASYNCIO_SYNC_TRIM: do_io_u_trim(), BLKDISCARD), libaio's syncs. fio's thread
 * is in the call: nothing is issued until it returns, and what completes meanwhile is reaped after
 * the issues that follow its return — do_io() goes on filling its queue before it reaps.
 */
export class InlineCall {
  private active = false;
  private held: Array<() => void> = [];

  /** A call is in progress: the job issues nothing. */
  get blocking(): boolean {
    return this.active;
  }

  begin(): void {
    this.active = true;
  }

  /** A completion that came during the call, kept for after it; false when no call is in progress. */
  hold(complete: () => void): boolean {
    if (!this.active) return false;
    this.held.push(complete);
    return true;
  }

  /** The call returned: `after` (its own accounting, do_io()'s next issues), then what was held is reaped. */
  end(after: () => void): void {
    this.active = false;
    after();
    const held = this.held;
    this.held = [];
    for (const c of held) c();
  }
}
