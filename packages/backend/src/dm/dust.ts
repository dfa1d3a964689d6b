/**
 * dm-dust (drivers/md/dm-dust.c): a linear mapping with a list of bad blocks. Once enabled
 * (`fail_read_on_bad_block`), a read touching a bad block fails with EIO; a write to a bad block
 * fails while the block's write fail count lasts (each such write takes one), then removes it from
 * the list and succeeds, as a drive remaps a sector. It starts in bypass mode.
 *
 *   <dev> <offset> <blksz>          blksz in bytes: a power of 2, 512 … 1 GiB
 *
 * Messages (dmsetup message <dev> 0 …), answered as the kernel logs them:
 *   addbadblock <n> [<wr_fail_cnt> 0-255]  removebadblock <n>  queryblock <n>  countbadblocks
 *   clearbadblocks  listbadblocks  enable  disable  quiet
 * `quiet` toggles the logging of additions, removals and remaps; counts and queries always print;
 * listbadblocks answers the blocks, one a line, in order (nothing for an empty list).
 */
import type { IoResult, PiBuffer, ReadResult } from '../block-device.ts';
import {
  checkDev,
  dmError,
  dmInfo,
  parseOffset,
  parseUint,
  PassThrough,
  type TargetContext,
  type TargetFactory,
} from './target.ts';

export class DustTarget extends PassThrough {
  /** Bad blocks and their write fail counts (writes to the block that fail before one remaps it). */
  readonly badBlocks = new Map<number, number>();
  enabled = false;
  quiet = false;
  /** Reads failed on a bad block, writes failed on one, and blocks a write removed. */
  readonly counters = { readsFailed: 0, writesFailed: 0, remapped: 0 };
  private readonly sectPerBlock: number;
  private readonly blocks: number;

  constructor(
    private readonly ctx: TargetContext,
    private readonly dev: string,
    offset: number,
    readonly blksz: number,
  ) {
    super('dust', ctx.lower, offset, '');
    this.sectPerBlock = blksz / 512;
    this.blocks = Math.floor(ctx.length / this.sectPerBlock);
  }

  private blocksOf(sector: number, count: number): number[] {
    const first = Math.floor(sector / this.sectPerBlock);
    const last = Math.floor((sector + Math.max(count, 1) - 1) / this.sectPerBlock);
    const out: number[] = [];
    for (let b = first; b <= last; b++) out.push(b);
    return out;
  }

  override async read(
    sector: number,
    count: number,
    pi?: { checks: PiBuffer['checks'] },
  ): Promise<ReadResult> {
    if (this.enabled) {
      const bad = this.blocksOf(sector, count).find((b) => this.badBlocks.has(b));
      if (bad !== undefined) {
        this.counters.readsFailed++;
        return {
          ok: false,
          error: {
            kind: 'medium',
            sector,
            badSector: bad * this.sectPerBlock,
            detail: `dm-dust: bad block ${bad}`,
          },
        };
      }
    }
    return super.read(sector, count, pi);
  }

  override async write(sector: number, data: Buffer, pi?: PiBuffer): Promise<IoResult> {
    if (!this.enabled) return super.write(sector, data, pi);
    // dm-dust splits I/O at its block size (max_io_len) and maps each piece alone: a block whose
    // write fail count lasts fails its piece, the others are written (bad ones remapped)
    const blocks = this.blocksOf(sector, data.length / 512);
    const failing = blocks.filter((b) => (this.badBlocks.get(b) ?? 0) > 0);
    if (failing.length === 0) {
      this.remap(sector, data.length / 512);
      return super.write(sector, data, pi);
    }
    for (const b of failing) this.badBlocks.set(b, this.badBlocks.get(b)! - 1);
    this.counters.writesFailed++;
    const end = sector + data.length / 512;
    for (const b of blocks) {
      if (failing.includes(b)) continue;
      const from = Math.max(sector, b * this.sectPerBlock);
      const to = Math.min(end, (b + 1) * this.sectPerBlock);
      this.remap(from, to - from);
      const slice = data.subarray((from - sector) * 512, (to - sector) * 512);
      const tuples = pi && { ...pi, tuples: pi.tuples.subarray((from - sector) * 8, (to - sector) * 8) };
      const r = await super.write(from, slice, tuples);
      if (!r.ok) return r;
    }
    const first = Math.max(sector, failing[0] * this.sectPerBlock);
    return {
      ok: false,
      error: { kind: 'target', sector: first, detail: `dm-dust: write to bad block ${failing[0]}` },
    };
  }

  override async discardRange(sector: number, count: number, secure: boolean): Promise<IoResult> {
    if (this.enabled) this.remap(sector, count);
    return super.discardRange(sector, count, secure);
  }

  private remap(sector: number, count: number): void {
    for (const b of this.blocksOf(sector, count)) {
      if (!this.badBlocks.delete(b)) continue;
      this.counters.remapped++;
      if (!this.quiet) dmInfo(this.ctx.klog, 'dust', `block ${b} removed from badblocklist by write`);
    }
  }

  override message(argv: string[]): string {
    const [cmd, arg, ...extra] = argv;
    const block = (counted = false): number => {
      if (extra.length > (counted ? 1 : 0))
        throw dmError(`dust: ${cmd} takes ${counted ? 'a block and a write fail count' : 'one argument'}`);
      const n = parseUint(arg, 'block number');
      if (n >= this.blocks)
        throw dmError(`dust: block ${n} out of range (the device has ${this.blocks} blocks)`);
      return n;
    };
    const noArg = () => {
      if (arg !== undefined) throw dmError(`dust: ${cmd} takes no argument`);
    };
    const say = (text: string, always = false) =>
      always || !this.quiet ? dmInfo(this.ctx.klog, 'dust', text) : text;
    switch (cmd) {
      case 'addbadblock': {
        const n = block(true);
        // kstrtou8: a write fail count is 0-255
        const count = extra.length ? Number(extra[0]) : 0;
        if (extra.length && (!/^\+?\d+$/.test(extra[0]) || count > 255))
          throw dmError(`dust: Invalid write fail count ${JSON.stringify(extra[0])} (0-255)`);
        if (this.badBlocks.has(n)) throw dmError(`dust: block ${n} already in badblocklist`);
        this.badBlocks.set(n, count);
        return say(`badblock added at block ${n} with write fail count ${count}`);
      }
      case 'removebadblock': {
        const n = block();
        if (!this.badBlocks.delete(n)) throw dmError(`dust: block ${n} not found in badblocklist`);
        return say(`badblock removed at block ${n}`);
      }
      case 'queryblock': {
        const n = block();
        return say(
          `queryblock: block ${n} ${this.badBlocks.has(n) ? 'found' : 'not found'} in badblocklist`,
          true,
        );
      }
      case 'countbadblocks':
        noArg();
        return say(`countbadblocks: ${this.badBlocks.size} badblock(s) found`, true);
      case 'listbadblocks':
        noArg();
        return [...this.badBlocks.keys()]
          .sort((a, b) => a - b)
          .map((b) => `${b}\n`)
          .join('');
      case 'clearbadblocks': {
        noArg();
        const had = this.badBlocks.size;
        this.badBlocks.clear();
        return say(had ? 'clearbadblocks: badblocks cleared' : 'clearbadblocks: no badblocks found', true);
      }
      case 'enable':
        noArg();
        this.enabled = true;
        return say('enabling read failures on bad sectors', true);
      case 'disable':
        noArg();
        this.enabled = false;
        return say('disabling read failures on bad sectors', true);
      case 'quiet':
        noArg();
        this.quiet = !this.quiet;
        return this.quiet ? 'quiet mode on' : 'quiet mode off';
      default:
        throw dmError(
          `dust: unrecognised message ${JSON.stringify(cmd ?? '')} (addbadblock, removebadblock, queryblock, countbadblocks, clearbadblocks, listbadblocks, enable, disable, quiet)`,
        );
    }
  }

  override table(): string {
    return `${this.dev} ${this.offset} ${this.blksz}`;
  }

  override status(): string {
    return `${this.dev} ${this.enabled ? 'fail_read_on_bad_block' : 'bypass'} ${this.quiet ? 'quiet' : 'verbose'}`;
  }
}

export const dust: TargetFactory = (args, ctx) => {
  if (args.length !== 3) throw dmError('Invalid argument count (dust: <dev> <offset> <blksz>)');
  checkDev(args[0], ctx);
  const offset = parseOffset(args[1], ctx);
  const blksz = parseUint(args[2], 'block size', 1 << 30);
  if (blksz < 512 || (blksz & (blksz - 1)) !== 0)
    throw dmError(`Invalid block size parameter ${blksz} (a power of 2, 512 to 1073741824)`);
  return new DustTarget(ctx, args[0], offset, blksz);
};
