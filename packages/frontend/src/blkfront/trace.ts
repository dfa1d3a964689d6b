/**
 * blkfront's trace hooks (see @pvblk/runtime's trace.ts): when a block request entered the driver,
 * when the producer index covering its ring slot was published, and when its response was consumed,
 * all keyed by (domid, queue, ring index). The driver calls these through the optional `trace` of
 * BlkfrontOptions; with tracing off that is null and costs one test per call site.
 */
import { processTrace, STAMP, type TraceRecorder } from '@pvblk/runtime';
import type { BlockRequest } from '../block/types.ts';

/** One ring's hooks. */
export interface BlkfrontRingTrace {
  /** A request was copied into ring slot `idx` under shadow id `id`. */
  placed(idx: number, id: number, req: BlockRequest): void;
  /** req_prod went from `oldProd` to `newProd`. */
  pushed(oldProd: number, newProd: number): void;
  /** The response for shadow id `id` was consumed. */
  completed(id: number): void;
}

export interface BlkfrontTrace {
  /** A block request reached blkfront (Blkfront.submit). */
  submitted(req: BlockRequest): void;
  ring(domid: number, queue: number, port: number): BlkfrontRingTrace;
}

class FrontTrace implements BlkfrontTrace {
  private readonly entered = new WeakMap<BlockRequest, number>();

  constructor(private readonly rec: TraceRecorder) {}

  submitted(req: BlockRequest): void {
    this.entered.set(req, performance.now());
  }

  ring(domid: number, queue: number, port: number): BlkfrontRingTrace {
    const rec = this.rec;
    const key = ((domid << 16) | queue) >>> 0;
    const idxOf = new Map<number, number>();
    rec.note({ side: 'front', domid, queue, port });
    return {
      placed: (idx, id, req) => {
        idxOf.set(id, idx);
        rec.stamp(STAMP.guestSubmit, key, idx, 0, this.entered.get(req) ?? performance.now());
      },
      pushed: (oldProd, newProd) => {
        const t = performance.now();
        for (let i = oldProd; i !== newProd; i = (i + 1) >>> 0) rec.stamp(STAMP.guestPush, key, i, 0, t);
      },
      completed: (id) => {
        const idx = idxOf.get(id);
        if (idx !== undefined) rec.stamp(STAMP.guestDone, key, idx);
      },
    };
  }
}

/** The hooks of this process: null unless PVBLK_TRACE is set. */
export const blkfrontTrace: BlkfrontTrace | null = processTrace ? new FrontTrace(processTrace) : null;
