/**
 * The offsets of a job's I/O (io_u.c's get_next_offset()): sequential through its region, each
 * direction from where it left off, or random, every block once a pass as fio's random map has it.
 */
import type { Ddir } from './fio-ddir.ts';
import { blockAlign, BlockLengths, fixedBlockSize, tdMinBs, type JobBlockSizes } from './fio-block-size.ts';
import { withoutRandomMap } from './fio-distribution.ts';
import { rwKinds, type FioJob } from './fio-job.ts';

/**
 * A pseudo-random order of the blocks `[0, n)` that visits each exactly once, drawn afresh for each
 * pass: fio's random map (every block once per pass) without a map. fio keeps a bitmap of the blocks
 * done (an axmap, one bit a block), or with `random_generator=lfsr` a maximal-length LFSR walked
 * until it lands in range; a table of the blocks in shuffled order, as this was, took 4 bytes a
 * block and could not be made at all past 2^32 blocks (a 16 TiB disk at 4 KiB: "Invalid typed array
 * length"). Here a four-round Feistel network keyed from the job's generator permutes the integers
 * below the even power of two at or above n, and values at or past n are skipped (cycle walking):
 * constant memory, and fewer than four steps a block on average.
 */
export class RandomOrder {
  /** Bits of each half of the permuted integers. */
  private readonly half: number;
  private readonly halfSize: number;
  private readonly keys = new Int32Array(4);
  /** The next integer of the current pass to permute. */
  private at = 0;
  /** Blocks given out in the current pass. */
  private given = 0;

  constructor(
    private readonly n: number,
    private readonly rand: () => number,
  ) {
    let bits = 2;
    while (2 ** bits < n) bits++;
    this.half = Math.ceil(bits / 2);
    this.halfSize = 2 ** this.half;
    this.newPass();
  }

  next(): number {
    if (this.given === this.n) this.newPass();
    this.given++;
    for (;;) {
      const v = this.permute(this.at++);
      if (v < this.n) return v;
    }
  }

  /** A new pass, its keys drawn now (from a generator seeded again, the pass before's order). */
  newPass(): void {
    for (let i = 0; i < 4; i++) this.keys[i] = Math.floor(this.rand() * 0x1_0000_0000) | 0;
    this.at = 0;
    this.given = 0;
  }

  private permute(x: number): number {
    const mask = this.halfSize - 1;
    let l = Math.floor(x / this.halfSize);
    let r = x % this.halfSize;
    for (let i = 0; i < 4; i++) {
      // a 32-bit integer hash of the right half under the round's key (the halves are at most 22
      // bits wide for the largest disk blkfront accepts, 2^44 sectors)
      let h = r ^ this.keys[i];
      h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
      h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
      h ^= h >>> 16;
      const t = r;
      r = (l ^ h) & mask;
      l = t;
    }
    return l * this.halfSize + r;
  }
}

/** One I/O's place: its offset and length. */
export interface Placement {
  offset: number;
  len: number;
}

/** Where a worker's I/O goes, and how long each is. */
export interface Placer {
  /** The next I/O in direction `d`; null: none fits, and the pass ends (fill_io_u() failing). */
  place(d: Ddir): Placement | null;
  /** A pass begins (clear_io_state()). */
  newPass(): void;
  /** The generators were seeded again (randrepeat): a random order is drawn afresh. */
  restartRandom(): void;
  /** The bytes of one pass over the region (do_io()'s total). */
  readonly passBytes: number;
}

/**
 * Offsets of one worker of one block size: sequential with wrap-around, a fresh random order per
 * pass, or drawn with replacement from a distribution (fio-distribution.ts).
 */
export class Offsets implements Placer {
  private readonly blocks: number;
  private readonly order: RandomOrder | null;
  private readonly draw: (() => number) | null;
  /** The next block of each direction: fio keeps a sequential position per direction (last_pos[ddir]). */
  private readonly at = [0, 0, 0];

  constructor(
    private readonly base: number,
    size: number,
    private readonly bs: number,
    random: boolean,
    rand: () => number,
    end: number,
    /** A random job's generator of block numbers below `n` when it has no random map (blockDraw()). */
    drawFor: (n: number) => (() => number) | null = () => null,
  ) {
    // A random job's map holds the region's whole blocks (io_size / min_bs). A sequential one issues
    // until the bytes issued reach the size (do_io()), so its last block may run past the size when
    // bs does not divide it — but not past the device's end, where fill_io_u() refuses the I/O.
    const whole = Math.floor(size / bs);
    this.blocks = Math.max(1, random ? whole : Math.min(Math.ceil(size / bs), Math.floor((end - base) / bs)));
    this.draw = random ? drawFor(this.blocks) : null;
    this.order = random && !this.draw ? new RandomOrder(this.blocks, rand) : null;
  }

  /** Blocks in one pass over the region. */
  get count(): number {
    return this.blocks;
  }

  get passBytes(): number {
    return this.blocks * this.bs;
  }

  place(d: Ddir): Placement {
    return { offset: this.next(d), len: this.bs };
  }

  /**
   * Nothing: each sequential direction goes on from where it left off, wrapping around the region,
   * where fio's clear_io_state() starts every direction over — the same place for a job of one
   * direction, whose pass covers the region; the random order starts its next pass once the last
   * has given every block.
   */
  newPass(): void {}

  /** A random job's new pass over its blocks, in an order drawn now (fio's random map reset). */
  restartRandom(): void {
    this.order?.newPass();
  }

  /** The next offset of direction `d` (0 read, 1 write, 2 trim). */
  next(d: 0 | 1 | 2): number {
    if (this.draw) return this.base + this.draw() * this.bs;
    if (this.order) return this.base + this.order.next() * this.bs;
    return this.base + (this.at[d]++ % this.blocks) * this.bs;
  }
}

/**
 * fio's random map (lib/axmap.c) where a job's sizes vary: one bit a block of the job's smallest
 * size, set for each block an I/O covers. An I/O that runs into a block done before is cut there
 * (mark_random_map()), and a block drawn that is done gives way to the next free one, wrapping
 * around (axmap_next_free()). Besides the bits, one bit a word says the word is full, so that the
 * search near a pass's end skips 1024 blocks a step.
 */
export class BlockMap {
  private readonly words: Uint32Array;
  private readonly full: Uint32Array;

  constructor(readonly bits: number) {
    this.words = new Uint32Array(Math.ceil(bits / 32));
    this.full = new Uint32Array(Math.ceil(this.words.length / 32));
  }

  clear(): void {
    this.words.fill(0);
    this.full.fill(0);
  }

  isSet(b: number): boolean {
    return (this.words[b >>> 5] & (1 << (b & 31))) !== 0;
  }

  /** axmap_set_nr(): sets up to `n` bits from `b`, stopping at one already set or at the end; how many. */
  setRun(b: number, n: number): number {
    let done = 0;
    while (done < n && b + done < this.bits && !this.isSet(b + done)) {
      const at = b + done;
      const w = at >>> 5;
      this.words[w] |= 1 << (at & 31);
      if (this.words[w] === 0xffffffff || (w === this.words.length - 1 && this.lastWordFull())) {
        this.full[w >>> 5] |= 1 << (w & 31);
      }
      done++;
    }
    return done;
  }

  /** axmap_next_free(): the first clear bit after `b`, wrapping to 0; -1 when none is. */
  nextFree(b: number): number {
    const next = b + 1 >= this.bits ? 0 : b + 1;
    const found = this.firstFreeFrom(next);
    if (found >= 0 || next === 0) return found;
    return this.firstFreeFrom(0);
  }

  private firstFreeFrom(from: number): number {
    for (let b = from; b < this.bits;) {
      const w = b >>> 5;
      if (this.full[w >>> 5] === 0xffffffff && (w & 31) === 0) {
        b = (w + 32) * 32;
        continue;
      }
      if (this.full[w >>> 5] & (1 << (w & 31))) {
        b = (w + 1) * 32;
        continue;
      }
      const free = ~this.words[w] & (0xffffffff << (b & 31));
      if (free) {
        const at = w * 32 + (31 - Math.clz32(free & -free));
        return at < this.bits ? at : -1;
      }
      b = (w + 1) * 32;
    }
    return -1;
  }

  /** The last word holds fewer than 32 bits: full when those are all set. */
  private lastWordFull(): boolean {
    const used = this.bits - (this.words.length - 1) * 32;
    const mask = used === 32 ? 0xffffffff : (1 << used) - 1;
    return (this.words[this.words.length - 1] & mask) >>> 0 === mask >>> 0;
  }
}

/**
 * Offsets and lengths of one worker whose block sizes vary (a range, a split, or sizes that differ
 * between directions): io_u.c's get_next_offset() and get_next_buflen(), in bytes. Sequential I/O
 * goes on from where each direction left off (last_pos[ddir]); random I/O draws a block of its
 * direction's smallest size (ba[ddir]), kept apart by a BlockMap, or with replacement from `draw`.
 * null: no I/O fits, and the pass ends (fill_io_u() failing).
 */
export interface VariableOffsetsOptions {
  /** The region: where it starts and its bytes. */
  base: number;
  size: number;
  sizes: JobBlockSizes;
  /** Where each direction's random I/O may start (fio's ba[]: blockAlign()). */
  align: readonly number[];
  random: boolean;
  /** The job's generator, uniform in [0, 1). */
  rand: () => number;
  /** The device's end: no I/O goes past it. */
  end: number;
  /** time_based: a sequential direction at the region's end starts over; a full map is cleared. */
  wrap: boolean;
  lengths: BlockLengths;
  /** `bs_is_seq_rand`: lengths of the reads' sizes for sequential I/O, of the writes' for random. */
  seqRand: boolean;
  /** The random map (null without one: norandommap, a distribution, blockalign). */
  map: BlockMap | null;
  /** A random job's generator of block numbers below `n` when it has no random map. */
  drawFor: (n: number) => (() => number) | null;
  /**
   * A distribution (zipf, pareto, normal): one generator over the region in ranges of the smaller
   * of the reads' and writes' sizes (__init_rand_distribution()); else each direction draws
   * uniformly below its own blocks (last_block()).
   */
  distribution: boolean;
}

export class VariableOffsets implements Placer {
  private readonly pos = [0, 0, 0];
  /** Each direction's blocks (last_block()): the starts of its smallest size in the region. */
  private readonly lastb: number[];
  private readonly draw: Array<(() => number) | null>;
  private readonly base: number;
  private readonly size: number;
  private readonly map: BlockMap | null;

  constructor(private readonly o: VariableOffsetsOptions) {
    ({ base: this.base, size: this.size, map: this.map } = o);
    const { sizes, align, random, size } = o;
    // last_block(): a smallest block past its alignment's last start would run off the region
    this.lastb = sizes.map((s, d) => Math.floor((size - Math.max(0, s.min - align[d])) / align[d]));
    const ranges = Math.ceil(Math.min(size, o.end - o.base) / Math.min(sizes[0].min, sizes[1].min));
    const shared = random && !o.map && o.distribution ? o.drawFor(ranges) : null;
    this.draw = this.lastb.map((n) => (random && !o.map ? (shared ?? o.drawFor(n)) : null));
  }

  get passBytes(): number {
    return this.size;
  }

  /** The generators are looked up at each draw. */
  restartRandom(): void {}

  /** A pass begins (fio_file_reset()): every direction from the region's start, the map cleared. */
  newPass(): void {
    this.pos.fill(0);
    this.map?.clear();
  }

  place(d: Ddir): Placement | null {
    const { random, seqRand } = this.o;
    const off = random ? this.randomOffset(d) : this.sequentialOffset(d);
    if (off === null || off >= this.size) return null;
    let len = this.o.lengths.next(seqRand ? (random ? 1 : 0) : d, this.size - off);
    if (!len || this.base + off + len > this.o.end) return null;
    if (random && this.map) {
      const unit = this.o.sizes[d].min;
      const nr = this.map.setRun(Math.floor(off / unit), Math.ceil(len / unit));
      if (nr * unit < len) len = nr * unit;
    }
    if (!random) this.pos[d] = off + len;
    return { offset: this.base + off, len };
  }

  private sequentialOffset(d: Ddir): number | null {
    if (this.pos[d] >= this.size && this.o.wrap) this.pos[d] = 0;
    return this.pos[d];
  }

  private randomOffset(d: Ddir): number | null {
    const unit = this.o.align[d];
    const lastb = this.lastb[d];
    // get_next_rand_offset(): no block of the direction in the region, no I/O (a distribution draws
    // over the region's ranges regardless)
    if (!lastb && !this.o.distribution) return null;
    const draw = this.draw[d];
    if (draw) return draw() * unit;
    const map = this.map!;
    let b = Math.floor(lastb * this.o.rand());
    if (!map.isSet(b)) return b * unit;
    b = map.nextFree(b);
    if (b < 0 && this.o.wrap) {
      // get_next_rand_block(): a time_based job starts its map over
      map.clear();
      b = Math.floor(lastb * this.o.rand());
    }
    return b < 0 ? null : b * unit;
  }
}

/**
 * A worker's placer: Offsets for a job of one block size, else VariableOffsets, with the random map
 * (filesetup.c's init_random_map(): a bit a block of the smallest size, bounded by
 * checkJobAgainstDevice()) where a random job keeps one.
 */
export function jobPlacer(
  job: FioJob,
  sizes: JobBlockSizes,
  o: {
    /** The region: where it starts, its bytes, and the device's end. */
    start: number;
    size: number;
    end: number;
    /** The job's generator, uniform in [0, 1). */
    rand: () => number;
    /** Each direction's generator of lengths (td->bsrange_state[]), 32-bit values. */
    rand32: (d: Ddir) => number;
    /** A random job's generator of block numbers below `n` when it has no random map (blockDraw()). */
    drawFor: (n: number) => (() => number) | null;
    /** Says a line on the job's stderr (BlockLengths giving up on a length). */
    say: (line: string) => void;
  },
): Placer {
  const random = rwKinds(job.rw).random;
  const align = blockAlign(job, random);
  if (fixedBlockSize(sizes) && align.every((a) => a === sizes[0].min))
    return new Offsets(o.start, o.size, sizes[0].min, random, o.rand, o.end, o.drawFor);
  const map = random && !withoutRandomMap(job);
  return new VariableOffsets({
    base: o.start,
    size: o.size,
    sizes,
    align,
    random,
    rand: o.rand,
    end: o.end,
    wrap: job.timeBased,
    lengths: new BlockLengths(sizes, job.bsUnaligned, o.rand32, (line) =>
      o.say(`fio: ${job.name}: ${line}\n`),
    ),
    seqRand: job.bsIsSeqRand,
    map: map ? new BlockMap(Math.floor(Math.min(o.size, o.end - o.start) / tdMinBs(sizes))) : null,
    drawFor: o.drawFor,
    distribution: job.randomDistribution.kind !== 'random',
  });
}
