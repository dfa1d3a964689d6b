/**
 * dm-delay (drivers/md/dm-delay.c): every I/O waits before it goes down, by direction.
 *
 *   <dev> <offset> <delay> [<write_dev> <write_offset> <write_delay> [<flush_dev> <flush_offset> <flush_delay>]]
 *
 * Delays in milliseconds. With 3 arguments one delay applies to reads, writes and flushes; with 6 the
 * second group applies to writes and flushes; with 9 flushes get their own. Discards are writes. The
 * write and flush devices must be the read device here (no splitting across devices). I/O held when
 * the table is replaced or removed is released at once, as dm's suspend flushes the delayed list.
 */
import type { IoResult, PiBuffer, ReadResult } from '../block-device.ts';
import {
  checkDev,
  dmError,
  parseOffset,
  parseUint,
  PassThrough,
  type TargetContext,
  type TargetFactory,
} from './target.ts';

/** dm-delay's own limit on a delay (ms). */
const MAX_DELAY_MS = 24 * 3600 * 1000;

export class DelayTarget extends PassThrough {
  private readonly held = new Map<NodeJS.Timeout, () => void>();
  /** I/O delayed so far, by direction. */
  readonly counters = { reads: 0, writes: 0, flushes: 0 };

  constructor(
    ctx: TargetContext,
    private readonly spec: string[],
    offset: number,
    readonly readMs: number,
    readonly writeMs: number,
    readonly flushMs: number,
  ) {
    super('delay', ctx.lower, offset, '');
  }

  private wait(ms: number): Promise<void> {
    if (ms === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.held.delete(t);
        resolve();
      }, ms);
      this.held.set(t, resolve);
    });
  }

  override async read(
    sector: number,
    count: number,
    pi?: { checks: PiBuffer['checks'] },
  ): Promise<ReadResult> {
    this.counters.reads++;
    await this.wait(this.readMs);
    return super.read(sector, count, pi);
  }

  override async write(sector: number, data: Buffer, pi?: PiBuffer): Promise<IoResult> {
    this.counters.writes++;
    await this.wait(this.writeMs);
    return super.write(sector, data, pi);
  }

  override async flush(): Promise<IoResult> {
    this.counters.flushes++;
    await this.wait(this.flushMs);
    return super.flush();
  }

  override async discardRange(sector: number, count: number, secure: boolean): Promise<IoResult> {
    this.counters.writes++;
    await this.wait(this.writeMs);
    return super.discardRange(sector, count, secure);
  }

  override pending(): number {
    return this.held.size;
  }

  override close(): void {
    for (const [t, resolve] of this.held) {
      clearTimeout(t);
      resolve();
    }
    this.held.clear();
  }

  override table(): string {
    return this.spec.join(' ');
  }

  override status(): string {
    return `${this.held.size} held`;
  }
}

export const delay: TargetFactory = (args, ctx) => {
  if (args.length !== 3 && args.length !== 6 && args.length !== 9)
    throw dmError('Requires exactly 3, 6 or 9 arguments');
  const group = (i: number) => {
    checkDev(args[i], ctx);
    return { off: parseOffset(args[i + 1], ctx), ms: parseUint(args[i + 2], 'delay', MAX_DELAY_MS) };
  };
  const r = group(0);
  const w = args.length >= 6 ? group(3) : r;
  const f = args.length === 9 ? group(6) : w;
  if (w.off !== r.off || f.off !== r.off)
    throw dmError('the write and flush groups must map the same offset as reads here');
  return new DelayTarget(ctx, args, r.off, r.ms, w.ms, f.ms);
};
