/**
 * Buffers kept for reuse instead of a new one each time: FrameWriter's frame buffers, blkback's gather
 * buffers. A buffer allocated per request of 128 KiB cost a young-generation collection every few
 * requests, and page faults where the allocator had handed the memory back to the kernel.
 */
import { arrayBufferOf } from './bytes.ts';

export class SpareBuffers {
  private readonly spares: Buffer[] = [];

  /** At most `maxCount` buffers are kept, none over `maxBytes`. */
  constructor(
    private readonly maxCount: number,
    private readonly maxBytes: number,
  ) {}

  /** The smallest kept buffer of at least `size` bytes (no longer kept), else a new one. */
  take(size: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.spares.length; i++)
      if (this.spares[i].length >= size && (best < 0 || this.spares[i].length < this.spares[best].length))
        best = i;
    return best >= 0 ? this.spares.splice(best, 1)[0] : Buffer.allocUnsafeSlow(size);
  }

  /**
   * Keeps `b` (nothing else may refer to its bytes any more) when there is room and it is small
   * enough. Given back twice, a buffer would be handed out twice at once: a kept one is not kept again.
   */
  give(b: Buffer): void {
    if (this.spares.length >= this.maxCount || b.length > this.maxBytes) return;
    const bytes = arrayBufferOf(b);
    if (this.spares.some((s) => arrayBufferOf(s) === bytes)) return;
    this.spares.push(b);
  }

  /** Drops every kept buffer. */
  clear(): void {
    this.spares.length = 0;
  }
}
