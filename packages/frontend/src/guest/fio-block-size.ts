/**
 * A job's block sizes, per direction (fio's `bs`, `bsrange` and `bssplit`: thread_options' bs[],
 * min_bs[], max_bs[] and bssplit[]), and the length of each I/O drawn from them (io_u.c's
 * get_next_buflen()).
 */
import type { Ddir } from './fio-ddir.ts';
import { fail, failedParsing, parseSize, warn, type PerDirection } from './fio-parse.ts';

/** One size of a `bssplit` and its share, in per cent. */
export interface BsSplit {
  readonly bs: number;
  readonly perc: number;
}

/** The sizes of one direction once the options are all given (fixup_options()). */
export interface DirBlockSizes {
  readonly min: number;
  readonly max: number;
  /** bssplit's sizes, in ascending order of their shares (bs_cmp()); empty without one. */
  readonly split: readonly BsSplit[];
}

export type JobBlockSizes = readonly [DirBlockSizes, DirBlockSizes, DirBlockSizes];

/** What a job's options keep of its block sizes, as fio's thread_options does. */
export interface BlockSizeOptions {
  /** `bs`, per direction. */
  bs: PerDirection;
  /** `bsrange`'s and `bssplit`'s smallest and largest, per direction (0: not given, `bs` then). */
  minBs: PerDirection;
  maxBs: PerDirection;
  /** `bssplit`, per direction (empty: none). */
  bsSplit: [BsSplit[], BsSplit[], BsSplit[]];
  /** `blockalign`, per direction: where a random job's I/O may start (0: not given, the smallest size). */
  ba: PerDirection;
  /** `bs_unaligned`: lengths drawn are not taken down to a multiple of the smallest size. */
  bsUnaligned: boolean;
  /** `bs_is_seq_rand`: the reads' sizes are those of sequential I/O, the writes' of random I/O. */
  bsIsSeqRand: boolean;
}

/** fio's BSSPLIT_MAX: the sizes a direction's split holds at most. */
const BSSPLIT_MAX = 64;

/** fixup_options(): each direction's smallest and largest size, `bs` where no range or split gave one. */
export function blockSizes(o: BlockSizeOptions): JobBlockSizes {
  const dir = (d: Ddir): DirBlockSizes => ({
    min: o.minBs[d] || o.bs[d],
    max: o.maxBs[d] || o.bs[d],
    split: o.bsSplit[d],
  });
  return [dir(0), dir(1), dir(2)];
}

/**
 * fixup_options()'s ba[]: where a random job's I/O of each direction may start — `blockalign`, else
 * (and always for a sequential job) the direction's smallest size.
 */
export function blockAlign(o: BlockSizeOptions, random: boolean): PerDirection {
  const s = blockSizes(o);
  const ba = (d: Ddir) => (!o.ba[d] || !random ? s[d].min : o.ba[d]);
  return [ba(0), ba(1), ba(2)];
}

/** A random job's `blockalign` other than its sizes: fio then keeps no random map ("turns off randommap"). */
export function alignTurnsOffMap(o: BlockSizeOptions): boolean {
  const s = blockSizes(o);
  return blockAlign(o, true).some((a, d) => a !== s[d].min);
}

/** init.c's fixed_block_size(): one size, the same in every direction. */
export function fixedBlockSize(s: JobBlockSizes): boolean {
  return s.every((d) => d.min === d.max && d.min === s[0].min);
}

/** td_min_bs(): the smallest size of any direction (fio's rw_min_bs too). */
export function tdMinBs(s: JobBlockSizes): number {
  return Math.min(...s.map((d) => d.min));
}

/** td_max_bs(): the largest size of any direction, what each I/O buffer holds. */
export function tdMaxBs(s: JobBlockSizes): number {
  return Math.max(...s.map((d) => d.max));
}

/**
 * The job header's sizes (add_job()): `(R) 4096B-4096B, (W) 4096B-4096B, (T) 4096B-4096B`, or with
 * `bs_is_seq_rand` the first two and `bs_is_seq_rand`.
 */
export function bsHeader(o: BlockSizeOptions, num2str: (n: number) => string): string {
  const [r, w, t] = blockSizes(o).map((d) => `${num2str(d.min)}-${num2str(d.max)}`);
  return o.bsIsSeqRand ? `(R) ${r}, (W) ${w}, bs_is_seq_rand` : `(R) ${r}, (W) ${w}, (T) ${t}`;
}

/**
 * `bsrange` (FIO_OPT_RANGE): `min-max` (or `min:max`) per direction, split at commas as parse.c's
 * handle_option() splits them — reads, writes, trims, the last given standing for the rest. A pair
 * given high first is swapped. Returns the new minima and maxima.
 */
export function parseBsRange(
  opt: string,
  raw: string,
  prevMin: PerDirection,
  prevMax: PerDirection,
): { min: PerDirection; max: PerDirection } {
  const min: PerDirection = [...prevMin];
  const max: PerDirection = [...prevMax];
  const rounds = rangeRounds(raw);
  let parsed = false;
  rounds.forEach(({ value, more }, curr) => {
    // parse.c looks for a dash, and only then for a colon
    let sep = value.indexOf('-');
    if (sep < 0) sep = value.indexOf(':');
    if (sep < 0) return;
    let lo: number;
    let hi: number;
    try {
      lo = parseSize(opt, value.slice(0, sep));
      hi = parseSize(opt, value.slice(sep + 1));
    } catch {
      return;
    }
    if (lo > hi) [lo, hi] = [hi, lo];
    // a 0 stands for the direction's `bs` (fixup_options(): `0-16k` is bs to 16k)
    parsed = true;
    if (curr < 3) [min[curr], max[curr]] = [lo, hi];
    if (!more) for (let d = curr + 1; d < 3; d++) [min[d], max[d]] = [lo, hi];
  });
  if (!parsed) failedParsing(opt, raw);
  return { min, max };
}

/**
 * handle_option()'s rounds for a range: split at commas only (a range's own `-` and `:` are inside
 * it); a comma that ends the value ends it, and the round after it is empty.
 */
function rangeRounds(raw: string): Array<{ value: string; more: boolean }> {
  const parts = raw.split(',');
  return parts.map((value, i) => ({ value, more: i < parts.length - 1 }));
}

/**
 * `bssplit` (str_split_parse() with bssplit_ddir()): `size/perc:size/perc…` per direction, the
 * directions split at commas — `a` for all, `a,b` reads a and writes and trims b, `a,b,c` each its
 * own; an empty one keeps what it had. A share left out (or 0) takes an equal part of what the
 * others leave of 100 %; over 100 is 100. Returns `minBs`, `maxBs` and `bsSplit` with the directions
 * given set.
 */
export function parseBsSplit(
  opt: string,
  raw: string,
  o: Pick<BlockSizeOptions, 'minBs' | 'maxBs' | 'bsSplit'>,
): Pick<BlockSizeOptions, 'minBs' | 'maxBs' | 'bsSplit'> {
  const out = {
    minBs: [...o.minBs] as PerDirection,
    maxBs: [...o.maxBs] as PerDirection,
    bsSplit: [...o.bsSplit] as BlockSizeOptions['bsSplit'],
  };
  const str = raw.trim();
  const commas = str.split(',');
  const per: Array<[Ddir, string]> =
    commas.length === 1
      ? [
          [1, str],
          [2, str],
          [0, str],
        ]
      : commas.length === 2
        ? [
            [2, commas[1]],
            [1, commas[1]],
            [0, commas[0]],
          ]
        : [
            // str_split_parse() takes all past the second comma as the trims'
            [2, commas.slice(2).join(',')],
            [1, commas[1]],
            [0, commas[0]],
          ];
  for (const [d, part] of per) {
    const split = bssplitDdir(opt, raw, part);
    if (!split) continue;
    out.bsSplit[d] = split;
    out.minBs[d] = Math.min(...split.map((s) => s.bs));
    out.maxBs[d] = Math.max(...split.map((s) => s.bs));
  }
  return out;
}

/** One direction's split, its shares filled in and sorted as bssplit_ddir() leaves them; null when empty. */
function bssplitDdir(opt: string, raw: string, part: string): BsSplit[] | null {
  const entries: Array<{ bs: number; perc: number | null }> = [];
  for (const item of part.split(':')) {
    // split_parse_ddir() stops at an empty item
    if (item === '') break;
    const slash = item.indexOf('/');
    const size = slash < 0 ? item : item.slice(0, slash);
    let perc: number | null = null;
    if (slash >= 0) {
      // atoi(): the leading digits, 0 when there are none; kept in an unsigned long long, so a
      // negative share is over 100, and cut to it
      // atoi() returns an int: a share of 2^32 or more keeps its low 32 bits, as glibc's does
      const digits = /^\s*[+-]?\d*/.exec(item.slice(slash + 1))![0].trim();
      const v = Number(BigInt.asIntN(32, BigInt(/\d/.test(digits) ? digits : '0')));
      perc = v > 100 || v < 0 ? 100 : v === 0 ? null : v;
    }
    let bs: number;
    try {
      bs = parseSize(opt, size);
    } catch {
      fail('fio: split conversion failed', `fio: failed parsing ${opt}=${raw}`);
    }
    entries.push({ bs, perc });
    if (entries.length === BSSPLIT_MAX) {
      warn(`fio: hit max of ${BSSPLIT_MAX} split entries`);
      break;
    }
  }
  if (!entries.length) return null;
  const missing = entries.filter((e) => e.perc === null).length;
  let perc = entries.reduce((a, e) => a + (e.perc ?? 0), 0);
  if (perc > 100 && missing > 1)
    fail('fio: bssplit percentages add to more than 100%', `fio: failed parsing ${opt}=${raw}`);
  if (missing === 1 && entries.length === 1) perc = 100;
  const split = entries.map((e) => ({
    bs: e.bs,
    // fio's unsigned arithmetic: what is left of 100 shared out in whole per cent, 0 for a lone size
    // (never drawn: one size is the direction's), and wrapped past 2^32 when the others go over 100
    perc: e.perc ?? Math.floor(((100 - perc) >>> 0) / missing),
  }));
  // qsort() by share, compared as ints (bs_cmp()): a share wrapped past 2^31 sorts first; equal shares
  // keep their order (glibc's merge sort is stable too)
  return split.sort((a, b) => (a.perc | 0) - (b.perc | 0));
}

/**
 * Blocks the random map of a job whose sizes vary holds at most here (BlockMap): 8 MiB of bits a job
 * (256 GiB of 4 KiB blocks), 512 MiB for a guest's 64 jobs. fio's axmap takes any.
 */
export const BLOCK_MAP_MAX_BITS = 2 ** 26;

/** FRAND32_MAX: the largest value of fio's 32-bit generator. */
const FRAND32_MAX = 0xffffffff;

/**
 * get_next_buflen()'s draws a job makes before it gives up on one I/O's length: fio draws until one
 * fits, which never ends when the only size that fits has a share of 0 (`bssplit=4k/0:64k/100` at
 * the region's last 4 KiB); here the I/O is then not made, as when the smallest does not fit.
 */
const MAX_LENGTH_DRAWS = 10_000;

/**
 * The length of each I/O (get_next_buflen()): the direction's one size, or a size drawn from its
 * range (uniform, in steps of its smallest) or its split, that fits in what is left of the region.
 */
export class BlockLengths {
  /** The split gave up on a length before: said once a job. */
  private saidGaveUp = false;

  constructor(
    private readonly sizes: JobBlockSizes,
    /** `bs_unaligned`: a length is not taken down to a multiple of the smallest size. */
    private readonly unaligned: boolean,
    /** Each direction's own generator of 32-bit values (td->bsrange_state[ddir]), looked up at each draw. */
    private readonly rand32: (d: Ddir) => number,
    /** Said when MAX_LENGTH_DRAWS found no length that fits (fio would draw on forever). */
    private readonly gaveUp: (line: string) => void = () => {},
  ) {}

  /** One I/O's length in direction `d` with `room` bytes left of the region; 0: none fits. */
  next(d: Ddir, room: number): number {
    const { min, max, split } = this.sizes[d];
    if (min === max) return min;
    if (min > room) return 0;
    // a range's lengths that fit are those of a draw below a bound: drawing below it is drawing until
    // one fits, as fio does (over a few bytes left of a wide range, 16,384 draws on average)
    let bound = FRAND32_MAX + 1;
    if (!split.length) {
      // the first length past the room, before it is taken down a step (or, unaligned, as it is)
      const over = this.unaligned ? room + 1 : (Math.floor(room / min) + 1) * min;
      bound = Math.min(bound, Math.ceil(((over - min) * (FRAND32_MAX + 1)) / max));
    }
    for (let draw = 0; draw < MAX_LENGTH_DRAWS; draw++) {
      const r = Math.floor((this.rand32(d) * bound) / (FRAND32_MAX + 1));
      let len = 0;
      if (!split.length) len = min + Math.floor(max * (r / (FRAND32_MAX + 1)));
      else {
        let perc = 0;
        for (const s of split) {
          if (!s.perc) continue;
          len = s.bs;
          perc += s.perc;
          if (Math.floor(r / perc) <= Math.floor(FRAND32_MAX / 100) && len <= room) break;
        }
      }
      // down to a whole number of the smallest size (fio masks a power of two: the same, in 64 bits)
      if (!this.unaligned) len -= len % min;
      if (len > max) len = max;
      // a size of 0 in a split fits, and ends the pass (fill_io_u() takes no empty I/O)
      if (len <= room) return len;
    }
    if (!this.saidGaveUp)
      this.gaveUp(
        `no size of the split of ${min} to ${max} fits in the ${room} bytes left of the region after ${MAX_LENGTH_DRAWS} draws (those that fit have a share of 0): the pass ends there`,
      );
    this.saidGaveUp = true;
    return 0;
  }
}

/** Each direction's 32-bit generator for BlockLengths, from the job's seed (td_fill_rand_seeds()). */
export const BSRANGE_SEEDS: PerDirection = [0x1b873593, 0x85ebca6b, 0xc2b2ae35];

/**
 * The one size of a job's reads and writes, what the relay's requests carry; null when their sizes
 * vary or differ (the trims' are not looked at: the relay has none).
 */
export function rwBlockSize(o: BlockSizeOptions): number | null {
  const [r, w] = blockSizes(o);
  return r.min === r.max && w.min === w.max && r.min === w.min ? r.min : null;
}
