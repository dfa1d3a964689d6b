/**
 * The two places where ring.h needs a full barrier, mb(), made concrete over the hypervisor.
 *
 * Pages shared through the hypervisor are coherent only at the hypervisor: each domain reads its own
 * copy, updated in order. A producer that pushes and then reads the peer's event index from its own
 * copy may read a stale value; a consumer that sets its event index and then re-reads the producer's
 * index may miss a push in flight. Either can lose a wake-up (the classic Dekker race), exactly as on
 * real hardware without the barrier.
 *
 * - The producer's half is decided at the hypervisor, which applies every write of every domain in
 *   one order: after a push, the producer sends NOTIFY_IF (notify iff the event index there lies in
 *   (old, new]).
 * - The consumer's half (RING_FINAL_CHECK_FOR_*) needs nobody else. After writing its event index E
 *   and finding nothing more in its own copy, the consumer arms a wake on the producer index of that
 *   copy: once a frame the hypervisor forwards has moved it away from what was consumed, the consumer
 *   runs again (a frame that leaves it where it was does not, whatever it wrote: that would let a
 *   guest buy a pass of Dom0's loop per frame, past the lateeoi backoff that holds back spurious
 *   events). A push P either reaches the hypervisor after E — its NOTIFY_IF sees E and sends the
 *   event — or before it, and then P's write was forwarded to the consumer ahead of anything that
 *   follows E: it is already in the consumer's copy when it looks (and it goes on consuming), or it
 *   arrives later and fires the wake. No wake-up is lost, and no notification is sent that the event
 *   index did not ask for.
 *
 * Wire version 2 asked the hypervisor instead (a FINAL record: raise my own port iff the producer
 * index has moved past what I consumed). That answered the second case with an event of its own,
 * usually in a frame of its own right behind the one that carried the push: at 4 KiB QD32 with PI,
 * 0.30 frames per request over the four hops against 0.19 with the local wake.
 * `req_event`/`rsp_event` keep their meaning: they are written into the shared page and honoured.
 */
import { SRING_REQ_EVENT, SRING_REQ_PROD, SRING_RSP_EVENT, SRING_RSP_PROD } from '@pvblk/shared';
import type { Hypercalls } from './hypercalls.ts';
import type { Page } from './memory.ts';

export class RingEvents {
  /** What the consumer had consumed when its final check armed the wake; null when none is armed. */
  private armedAt: number | null = null;

  /** The page saw a write of the index: look again once the frame that carried it is applied whole. */
  private readonly woken = (): void => queueMicrotask(this.recheck);

  /**
   * Runs the consumer only if the index differs from what it consumed once the whole frame is
   * applied. A peer that rewrites the index unchanged, or moves it and puts it back within one frame
   * (cons + 1, then cons), would otherwise buy a pass of our loop per frame — no request consumed, so
   * nothing counted as spurious and no lateeoi backoff — and our event-index write back to it; now
   * it buys a re-arm.
   */
  private readonly recheck = (): void => {
    if (this.armedAt === null) return;
    if (this.header.readU32LE(this.prodOff) === this.armedAt) {
      this.header.wakeOnWrite(this.prodOff, this.woken);
      return;
    }
    this.armedAt = null;
    this.wake();
  };
  /** NOTIFY_IF records sent (whether an event follows is the hypervisor's call), and final checks that armed a wake. */
  readonly stats = { notifyChecks: 0, finalChecks: 0 };

  constructor(
    private readonly xc: Hypercalls,
    /** The ring's first page: the shared header with the four indices. */
    private readonly header: Page,
    /** The requester (blkfront) pushes requests; the responder (blkback) pushes responses. */
    private readonly role: 'requester' | 'responder',
    /** The local event-channel port of this ring (known once it is allocated or bound). */
    private readonly port: () => number,
    /** The consumer's loop: run again when work arrives after a final check found none. */
    private readonly wake: () => void,
  ) {}

  /** The producer index the consumer waits on: the peer's. */
  private get prodOff(): number {
    return this.role === 'requester' ? SRING_RSP_PROD : SRING_REQ_PROD;
  }

  /** After RING_PUSH_REQUESTS / RING_PUSH_RESPONSES: notify the peer if its event index asks for it. */
  pushed(r: { oldProd: number; newProd: number }): void {
    if (r.oldProd === r.newProd) return;
    this.stats.notifyChecks++;
    const eventOff = this.role === 'requester' ? SRING_REQ_EVENT : SRING_RSP_EVENT;
    this.xc.evtchn.notifyIf(this.port(), this.header, eventOff, r.oldProd, r.newProd);
  }

  /**
   * RING_FINAL_CHECK_FOR_REQUESTS / _RESPONSES. `check` is the ring's own first half: it writes the
   * event index and says whether work is already visible here. Returns true when the caller must
   * keep consuming; false when it may go idle — then the next write that moves the producer index
   * of our copy away from `cons` (what we consumed up to) calls `wake`, once, as the work our copy
   * had not seen yet arrives.
   */
  finalCheck(check: () => boolean, cons: number): boolean {
    if (check()) return true;
    this.stats.finalChecks++;
    this.armedAt = cons >>> 0;
    this.header.wakeOnWrite(this.prodOff, this.woken);
    return false;
  }
}
