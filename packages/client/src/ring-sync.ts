/**
 * The two places where ring.h needs a full barrier, mb(), made concrete over the hypervisor.
 *
 * Pages shared through the hypervisor are coherent only at the hypervisor: each domain reads its own
 * copy, updated in order. A producer that pushes and then reads the peer's event index from its own
 * copy may read a stale value; a consumer that sets its event index and then re-reads the producer's
 * index may miss a push in flight. Either can lose a wake-up (the classic Dekker race), exactly as on
 * real hardware without the barrier. `XenClient.fence()` is that barrier: once it resolves, everything
 * we wrote is applied and everything written before it by others has reached us.
 *
 * The barrier costs a round trip, so it is only taken when the cheap local check says "no": a
 * notification that the local view already calls for is sent at once (a spurious one is harmless);
 * only a "no notification needed" is confirmed after a fence before it is believed.
 */
import { notifyNeeded } from '@pvblk/shared';

/** Producer side: RING_PUSH_*_AND_CHECK_NOTIFY with the mb() made real. */
export class BarrierNotifier {
  /** Old prod of the first push whose "no notify" has not been confirmed yet. */
  private windowStart: number | null = null;
  private fencing = false;
  /** Counters for statistics: notifications sent, decided after a barrier, barriers taken. */
  readonly stats = { notifies: 0, notifiesAfterFence: 0, fences: 0 };

  constructor(
    private readonly fence: () => Promise<void>,
    /** Our current published producer index and the peer's event index, from our copy of the page. */
    private readonly view: () => { prod: number; event: number },
    private readonly notify: () => void,
  ) {}

  /** Call after each push with the macro's result. */
  pushed(r: { notify: boolean; oldProd: number; newProd: number }): void {
    if (r.notify) {
      // The peer will wake and see everything published so far, including any unconfirmed window.
      this.windowStart = null;
      this.stats.notifies++;
      this.notify();
      return;
    }
    if (r.oldProd === r.newProd) return;
    if (this.windowStart === null) this.windowStart = r.oldProd;
    this.confirm();
  }

  private confirm(): void {
    if (this.fencing) return;
    this.fencing = true;
    this.stats.fences++;
    const covered = this.view().prod;
    this.fence().then(
      () => {
        this.fencing = false;
        const start = this.windowStart;
        if (start === null) return;
        const { prod, event } = this.view();
        if (notifyNeeded(start, covered, event)) {
          // sent after every push so far: the peer will see all of them when it wakes
          this.stats.notifies++;
          this.stats.notifiesAfterFence++;
          this.notify();
          this.windowStart = null;
        } else {
          // (start, covered] is confirmed quiet; later pushes still need their own barrier
          this.windowStart = prod === covered ? null : covered;
        }
        // pushes made after the fence was sent need a barrier of their own
        if (this.windowStart !== null) this.confirm();
      },
      () => {
        this.fencing = false; // the connection is gone; nobody is listening any more
      },
    );
  }
}

/**
 * Consumer side: RING_FINAL_CHECK_FOR_* with the mb() made real. `finalCheck` sets the event index
 * (the ring's own final check) and `unconsumed` re-reads the producer index; resolves true when more
 * work arrived and the caller must keep consuming.
 */
export async function finalCheckWithBarrier(
  finalCheck: () => boolean,
  unconsumed: () => number,
  fence: () => Promise<void>,
): Promise<boolean> {
  if (finalCheck()) return true;
  await fence();
  return unconsumed() > 0;
}
