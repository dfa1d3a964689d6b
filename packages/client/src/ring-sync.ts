/**
 * The two places where ring.h needs a full barrier, mb(), made concrete over the hypervisor.
 *
 * Pages shared through the hypervisor are coherent only at the hypervisor: each domain reads its own
 * copy, updated in order. A producer that pushes and then reads the peer's event index from its own
 * copy may read a stale value; a consumer that sets its event index and then re-reads the producer's
 * index may miss a push in flight. Either can lose a wake-up (the classic Dekker race), exactly as on
 * real hardware without the barrier.
 *
 * Both decisions are therefore made at the hypervisor, which applies every write of every domain in
 * one order: after a push, the producer sends NOTIFY_IF (notify iff the event index there lies in
 * (old, new]); after writing its event index, a consumer that sees nothing more to do locally sends
 * FINAL (raise my own port iff the producer index there has moved past what I consumed). Whichever of
 * the two the hypervisor applies first, the other sees its effect: the wake-up cannot be lost, no
 * notification is sent that the event index did not ask for, and neither side waits for a round trip.
 * `req_event`/`rsp_event` keep their meaning: they are written into the shared page and honoured.
 */
import { SRING_REQ_EVENT, SRING_REQ_PROD, SRING_RSP_EVENT, SRING_RSP_PROD } from '@pvblk/shared';
import type { Hypercalls } from './hypercalls.ts';
import type { Page } from './memory.ts';

export class RingEvents {
  /** NOTIFY_IF and FINAL records sent (whether an event follows is the hypervisor's call). */
  readonly stats = { notifyChecks: 0, finalChecks: 0 };

  constructor(
    private readonly xc: Hypercalls,
    /** The ring's first page: the shared header with the four indices. */
    private readonly header: Page,
    /** The requester (blkfront) pushes requests; the responder (blkback) pushes responses. */
    private readonly role: 'requester' | 'responder',
    /** The local event-channel port of this ring (known once it is allocated or bound). */
    private readonly port: () => number,
  ) {}

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
   * keep consuming; false when it may go idle — then the hypervisor raises our port if work arrived
   * that our copy has not seen yet, and we are called again.
   */
  finalCheck(check: () => boolean, cons: number): boolean {
    if (check()) return true;
    this.stats.finalChecks++;
    const prodOff = this.role === 'requester' ? SRING_RSP_PROD : SRING_REQ_PROD;
    this.xc.evtchn.finalCheck(this.port(), this.header, prodOff, cons);
    return false;
  }
}
