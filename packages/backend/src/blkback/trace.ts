/**
 * blkback's trace hooks (see @pvblk/runtime's trace.ts): when a request was copied off the ring, when
 * its I/O went to the disk and came back, when its response was written and published — keyed by the
 * frontend's (domid, queue, ring index), the same key the guest stamps. The ring calls these through
 * the optional `trace` of its RingContext; with tracing off that is null.
 */
import { readU64LE } from '@pvblk/shared';
import { processTrace, STAMP, type TraceRecorder } from '@pvblk/runtime';

export interface BlkbackRingTrace {
  /** The request in ring slot `idx` was copied out (its id is read from the copy). */
  consumed(idx: number, slot: Uint8Array): void;
  diskStart(id: bigint): void;
  diskDone(id: bigint): void;
  /** The response to `id` was written into response slot `rspIdx`. */
  responded(id: bigint, rspIdx: number): void;
  /** rsp_prod went from `oldProd` to `newProd`. */
  pushed(oldProd: number, newProd: number): void;
}

export interface BlkbackTrace {
  ring(frontDomid: number, queue: number, port: number, backDomid: number): BlkbackRingTrace;
}

class BackTrace implements BlkbackTrace {
  constructor(private readonly rec: TraceRecorder) {}

  ring(frontDomid: number, queue: number, port: number, backDomid: number): BlkbackRingTrace {
    const rec = this.rec;
    const key = ((frontDomid << 16) | queue) >>> 0;
    const idxOf = new Map<bigint, number>();
    const reqOfRsp = new Map<number, number>();
    rec.note({ side: 'back', domid: backDomid, frontDomid, queue, port });
    const stampId = (kind: number, id: bigint) => {
      const idx = idxOf.get(id);
      if (idx !== undefined) rec.stamp(kind, key, idx);
    };
    return {
      consumed: (idx, slot) => {
        const id = readU64LE(slot, 8);
        idxOf.set(id, idx);
        rec.stamp(STAMP.backendConsume, key, idx);
      },
      diskStart: (id) => stampId(STAMP.diskStart, id),
      diskDone: (id) => stampId(STAMP.diskDone, id),
      responded: (id, rspIdx) => {
        const idx = idxOf.get(id);
        if (idx === undefined) return;
        reqOfRsp.set(rspIdx, idx);
        rec.stamp(STAMP.backendRespond, key, idx, rspIdx);
      },
      pushed: (oldProd, newProd) => {
        const t = performance.now();
        for (let i = oldProd; i !== newProd; i = (i + 1) >>> 0) {
          const idx = reqOfRsp.get(i);
          if (idx === undefined) continue;
          reqOfRsp.delete(i);
          rec.stamp(STAMP.backendPush, key, idx, i, t);
        }
      },
    };
  }
}

/** The hooks of this process: null unless PVBLK_TRACE is set. */
export const blkbackTrace: BlkbackTrace | null = processTrace ? new BackTrace(processTrace) : null;
