/**
 * The broker's trace hooks (see @pvblk/runtime's trace.ts). For each NOTIFY_IF — the record every
 * ring push ends with — the time its frame arrived, and the time the frame carrying what it produced
 * for the peer (the forwarded ring writes, and the event when one was due) was handed to the peer's
 * socket; keyed by (domid, port, producer indices), which the bench maps to rings with the ports the
 * drivers noted. And the hypervisor's half of every clock probe: when it handled each fence.
 */
import { processTrace, STAMP, type TraceRecorder } from '@pvblk/runtime';
import type { ClientMessage, PackedMessage, PageRun } from '@pvblk/shared';

class BrokerTrace {
  /** NOTIFY_IFs routed to a domain whose frame has not left yet: peer domid → keys. */
  private readonly pending = new Map<number, Array<[number, number, number]>>();
  /** Domains with output queued and not flushed yet. */
  private readonly unflushed = new Set<number>();
  /** When each domain's last frame left. */
  private readonly lastOut = new Map<number, number>();

  constructor(private readonly rec: TraceRecorder) {}

  /** A frame from `domid` was decoded (the stamp is at least the arrival time). */
  frameIn(domid: number, msgs: ReadonlyArray<ClientMessage | PageRun | PackedMessage>): void {
    const t = performance.now();
    for (const m of msgs) {
      if (m.t === 'ev_notify_if')
        this.rec.stamp(STAMP.brokerIn, ((domid << 16) | m.port) >>> 0, m.newProd >>> 0, m.oldProd >>> 0, t);
    }
  }

  /** Something was queued for `domid`. */
  queued(domid: number): void {
    this.unflushed.add(domid);
  }

  /**
   * A NOTIFY_IF of `domid` was applied; what it produced for `peer` (the ring writes before it, an
   * event) leaves with the peer's next frame — or, when nothing waits for the peer, already left with
   * its last one (the writes were flushed before the record was served).
   */
  routed(domid: number, port: number, oldProd: number, newProd: number, peer: number): void {
    if (peer < 0) return;
    const key: [number, number, number] = [((domid << 16) | port) >>> 0, newProd >>> 0, oldProd >>> 0];
    if (!this.unflushed.has(peer)) {
      const t = this.lastOut.get(peer);
      if (t !== undefined) this.rec.stamp(STAMP.brokerOut, key[0], key[1], key[2], t);
      return;
    }
    let p = this.pending.get(peer);
    if (!p) this.pending.set(peer, (p = []));
    p.push(key);
  }

  /** Frames for `domid` are about to be handed to its socket. */
  frameOut(domid: number): void {
    const t = performance.now();
    this.unflushed.delete(domid);
    this.lastOut.set(domid, t);
    const p = this.pending.get(domid);
    if (!p || p.length === 0) return;
    for (const [a, b, c] of p) this.rec.stamp(STAMP.brokerOut, a, b, c, t);
    p.length = 0;
  }

  fence(domid: number, id: number): void {
    this.rec.stamp(STAMP.fence, domid, id);
  }
}

/** The hooks of this process: null unless PVBLK_TRACE is set. */
export const brokerTrace: BrokerTrace | null = processTrace ? new BrokerTrace(processTrace) : null;
