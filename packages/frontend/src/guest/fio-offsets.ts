/**
 * The offsets of a job's I/O (io_u.c's get_next_offset()): sequential through its region, each
 * direction from where it left off, or random, every block once a pass as fio's random map has it.
 */

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

/**
 * Offsets of one worker: sequential with wrap-around, a fresh random order per pass, or drawn with
 * replacement from a distribution (fio-distribution.ts).
 */
export class Offsets {
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
