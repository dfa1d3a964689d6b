/**
 * The broker's trace hooks (see @pvblk/runtime's trace.ts). For each NOTIFY_IF — the record every
 * ring push ends with — the time its frame arrived, and the time the frame carrying what it produced
 * for the peer (the forwarded ring writes, and the event when one was due) was handed to the peer's
 * socket; keyed by (domid, port, producer indices), which the bench maps to rings with the ports the
 * drivers noted. And the hypervisor's half of every clock probe: when it handled each fence.
 */
import { processTrace, STAMP, type TraceRecorder } from '@pvblk/runtime';
import type { ClientMessage } from '@pvblk/shared';

class BrokerTrace {
  /** NOTIFY_IFs routed to a domain whose frame has not left yet: peer domid → keys. */
  private readonly pending = new Map<number, Array<[number, number, number]>>();

  constructor(private readonly rec: TraceRecorder) {}

  /** A frame from `domid` was decoded. */
  frameIn(domid: number, msgs: readonly ClientMessage[]): void {
    const t = performance.now();
    for (const m of msgs) {
      if (m.t === 'ev_notify_if')
        this.rec.stamp(STAMP.brokerIn, ((domid << 16) | m.port) >>> 0, m.newProd >>> 0, m.oldProd >>> 0, t);
    }
  }

  /** A NOTIFY_IF of `domid` was applied; its effects go to `peer`. */
  routed(domid: number, port: number, oldProd: number, newProd: number, peer: number): void {
    if (peer < 0) return;
    let p = this.pending.get(peer);
    if (!p) this.pending.set(peer, (p = []));
    p.push([((domid << 16) | port) >>> 0, newProd >>> 0, oldProd >>> 0]);
  }

  /** Frames for `domid` were handed to its socket. */
  frameOut(domid: number): void {
    const p = this.pending.get(domid);
    if (!p || p.length === 0) return;
    const t = performance.now();
    for (const [a, b, c] of p) this.rec.stamp(STAMP.brokerOut, a, b, c, t);
    p.length = 0;
  }

  fence(domid: number, id: number): void {
    this.rec.stamp(STAMP.fence, domid, id);
  }
}

/** The hooks of this process: null unless PVBLK_TRACE is set. */
export const brokerTrace: BrokerTrace | null = processTrace ? new BrokerTrace(processTrace) : null;
