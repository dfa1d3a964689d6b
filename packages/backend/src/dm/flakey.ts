/**
 * dm-flakey (drivers/md/dm-flakey.c): a linear mapping that is up for <up interval> seconds, then
 * unreliable for <down interval> seconds, from the time the table is loaded, cycling.
 *
 *   <dev> <offset> <up interval> <down interval> [<num_features> [<feature arguments>]]
 *
 * While down, by feature:
 *   error_reads                 reads fail;
 *   error_writes                writes fail;
 *   drop_writes                 writes complete successfully and are thrown away;
 *   corrupt_bio_byte N d v f    byte N (1-based) of each matching bio's data is replaced by v, on
 *                               reads (d = r, after the device returned them) or writes (d = w, in a
 *                               copy on the way down: the caller's buffer is never touched);
 *   no feature                  every I/O fails.
 * Flushes and discards are writes (op_is_write). As in Linux, drop_writes and error_writes exclude each
 * other and both exclude corrupt_bio_byte ... w. `f` (bio flags) must be 0 here: pvblk's requests carry
 * no REQ_* flags a filter could select, so a non-zero mask would match nothing.
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

interface FlakeyFeatures {
  errorReads: boolean;
  errorWrites: boolean;
  dropWrites: boolean;
  corrupt: { byte: number; dir: 'r' | 'w'; value: number; flags: number } | null;
}

export class FlakeyTarget extends PassThrough {
  private readonly start: number;
  /** I/O the target changed while down, by what it did (for status and the chaos checker). */
  readonly counters = { readsFailed: 0, writesFailed: 0, writesDropped: 0, corrupted: 0 };

  constructor(
    ctx: TargetContext,
    private readonly dev: string,
    offset: number,
    readonly up: number,
    readonly down: number,
    readonly f: FlakeyFeatures,
    private readonly now: () => number,
  ) {
    super('flakey', ctx.lower, offset, '');
    this.start = now();
  }

  /** elapsed % (up + down) >= up, in whole seconds since the table was loaded. */
  isDown(): boolean {
    const elapsed = Math.floor((this.now() - this.start) / 1000);
    return elapsed % (this.up + this.down) >= this.up;
  }

  override async read(
    sector: number,
    count: number,
    pi?: { checks: PiBuffer['checks'] },
  ): Promise<ReadResult> {
    if (!this.isDown()) return super.read(sector, count, pi);
    if (this.f.errorReads) {
      this.counters.readsFailed++;
      return { ok: false, error: { kind: 'target', sector, detail: 'dm-flakey: read while down' } };
    }
    const r = await super.read(sector, count, pi);
    const c = this.f.corrupt;
    if (r.ok && c && c.dir === 'r' && c.flags === 0 && r.data.length >= c.byte) {
      const data = Buffer.from(r.data);
      data[c.byte - 1] = c.value;
      this.counters.corrupted++;
      return { ...r, data };
    }
    return r;
  }

  /** A write-direction bio while down: dropped, failed, or null to carry on. */
  private downWrite(sector: number): IoResult | null {
    if (this.f.dropWrites) {
      this.counters.writesDropped++;
      return { ok: true };
    }
    if (this.f.errorWrites) {
      this.counters.writesFailed++;
      return { ok: false, error: { kind: 'target', sector, detail: 'dm-flakey: write while down' } };
    }
    return null;
  }

  override async write(sector: number, data: Buffer, pi?: PiBuffer): Promise<IoResult> {
    if (!this.isDown()) return super.write(sector, data, pi);
    const r = this.downWrite(sector);
    if (r) return r;
    const c = this.f.corrupt;
    if (c && c.dir === 'w' && c.flags === 0 && data.length >= c.byte) {
      const copy = Buffer.from(data);
      copy[c.byte - 1] = c.value;
      this.counters.corrupted++;
      return super.write(sector, copy, pi);
    }
    return super.write(sector, data, pi);
  }

  override async flush(): Promise<IoResult> {
    return (this.isDown() && this.downWrite(0)) || super.flush();
  }

  override async discardRange(sector: number, count: number, secure: boolean): Promise<IoResult> {
    return (this.isDown() && this.downWrite(sector)) || super.discardRange(sector, count, secure);
  }

  override table(): string {
    const feats: string[] = [];
    if (this.f.errorReads) feats.push('error_reads');
    if (this.f.dropWrites) feats.push('drop_writes');
    if (this.f.errorWrites) feats.push('error_writes');
    const c = this.f.corrupt;
    if (c) feats.push('corrupt_bio_byte', String(c.byte), c.dir, String(c.value), String(c.flags));
    return `${this.dev} ${this.offset} ${this.up} ${this.down} ${feats.length}${feats.length ? ' ' + feats.join(' ') : ''}`;
  }

  override status(): string {
    return this.isDown() ? 'down' : 'up';
  }
}

export const flakey: TargetFactory = (args, ctx) => {
  if (args.length < 4) throw dmError('Invalid argument count');
  checkDev(args[0], ctx);
  const offset = parseOffset(args[1], ctx);
  const up = parseUint(args[2], 'up interval', 0xffffffff);
  const down = parseUint(args[3], 'down interval', 0xffffffff);
  if (up + down === 0) throw dmError('Total (up + down) interval is zero');
  const f: FlakeyFeatures = { errorReads: false, errorWrites: false, dropWrites: false, corrupt: null };
  const rest = args.slice(4);
  if (rest.length > 0) {
    const n = parseUint(rest[0], 'number of feature args', 7);
    if (rest.length - 1 !== n)
      throw dmError(`Invalid number of feature args (${n} announced, ${rest.length - 1} given)`);
    const feats = rest.slice(1);
    while (feats.length) {
      const name = feats.shift()!.toLowerCase();
      switch (name) {
        case 'error_reads':
          if (f.errorReads) throw dmError('Feature error_reads duplicated');
          f.errorReads = true;
          break;
        case 'drop_writes':
          if (f.dropWrites) throw dmError('Feature drop_writes duplicated');
          if (f.errorWrites) throw dmError('Feature drop_writes conflicts with feature error_writes');
          f.dropWrites = true;
          break;
        case 'error_writes':
          if (f.errorWrites) throw dmError('Feature error_writes duplicated');
          if (f.dropWrites) throw dmError('Feature error_writes conflicts with feature drop_writes');
          f.errorWrites = true;
          break;
        case 'corrupt_bio_byte': {
          if (feats.length < 4) throw dmError('Feature corrupt_bio_byte requires parameters');
          const byte = parseUint(feats.shift(), 'corrupt bio byte', 0xffffffff);
          if (byte < 1) throw dmError('Invalid corrupt bio byte 0 (counting starts at 1)');
          const dir = feats.shift()!.toLowerCase();
          if (dir !== 'r' && dir !== 'w') throw dmError('Invalid corrupt bio direction (r or w)');
          const value = parseUint(feats.shift(), 'corrupt value to write into bio byte (0-255)', 255);
          const flags = parseUint(feats.shift(), 'corrupt bio flags mask', 0xffffffff);
          f.corrupt = { byte, dir, value, flags };
          break;
        }
        default:
          throw dmError(`Unrecognised flakey feature requested: ${name}`);
      }
    }
  }
  if (f.dropWrites && f.corrupt?.dir === 'w')
    throw dmError('drop_writes is incompatible with corrupt_bio_byte with the WRITE flag set');
  if (f.errorWrites && f.corrupt?.dir === 'w')
    throw dmError('error_writes is incompatible with corrupt_bio_byte with the WRITE flag set');
  // no feature at all: every I/O fails while down
  if (!f.errorReads && !f.errorWrites && !f.dropWrites && !f.corrupt) f.errorReads = f.errorWrites = true;
  return new FlakeyTarget(ctx, args[0], offset, up, down, f, ctx.now);
};
