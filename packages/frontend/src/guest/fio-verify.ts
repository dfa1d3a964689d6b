/**
 * fio's block verification (verify.c): every written block starts with a `struct verify_header`
 * (magic 0xacca, verify type, block length, random seed, offset, write time, thread, numberio, and
 * a CRC32C of the header itself), then the checksum of the rest of the block (fio-checksum.ts), then
 * data: random from the seed, or the job's `verify_pattern`. Reading the block back checks the header
 * (verify_header(): magic, length, seed, offset, numberio, header CRC) and then the block by the
 * method the job was given (verify_io_u()), and reports failures with fio's messages, so a
 * misdirected or corrupted block is named by file and offset.
 *
 * The methods: the checksums; `meta` (the header alone, and the pattern if one is given);
 * `pattern` (the pattern alone, no header: VERIFY_PATTERN_NO_HDR); a header and the pattern, which a
 * `verify_pattern` without `verify` gives (VERIFY_PATTERN, named `pattern-header` here); `null`
 * (nothing written, nothing checked).
 *
 * Layout of fio 3.36 (verify.h), little-endian as on x86-64, 40 bytes, then the checksum:
 *   0 magic u16 | 2 verify_type u16 | 4 len u32 | 8 rand_seed u64 | 16 offset u64 |
 *   24 time_sec u32 | 28 time_nsec u32 | 32 thread u16 | 34 numberio u16 | 36 crc32 u32 | 40 checksum
 * Blocks fio 3.33 wrote are fixtures of the tests (packages/frontend/test/fixtures/).
 */
import { CHECKSUMS, type ChecksumName, fioCrc32c } from './fio-checksum.ts';
import type { FioVerify } from './fio-job.ts';
import { fillPattern, patternAt, type VerifyPattern } from './fio-pattern.ts';

export { crc32c } from './fio-checksum.ts';

export const FIO_HDR_MAGIC = 0xacca;
const HDR_SIZE = 40;
const HDR_CRC_OFF = 36;
type VerifyKind = Exclude<FioVerify, 'none'>;

/** fio's VERIFY_* numbers (verify.h). */
const VERIFY_TYPE: Record<VerifyKind, number> = {
  meta: 1,
  ...(Object.fromEntries(Object.entries(CHECKSUMS).map(([k, m]) => [k, m.type])) as Record<
    ChecksumName,
    number
  >),
  'pattern-header': 17,
  pattern: 18,
  null: 19,
};

const checksumOf = (kind: VerifyKind) => (kind in CHECKSUMS ? CHECKSUMS[kind as ChecksumName] : null);

/** What a method puts before the data (fio's hdr_size() for the job's method). */
export function headerSize(kind: VerifyKind): number {
  if (kind === 'pattern' || kind === 'null') return 0;
  return HDR_SIZE + (checksumOf(kind)?.size ?? 0);
}

/**
 * __hdr_size() of the type a block's header names, or null for a number no method has: fio asserts
 * on one (`fio: unknown verify header!`), the guest's fio reads the block as the job's method would.
 */
function mediaHeaderSize(type: number): number | null {
  if (type === VERIFY_TYPE.pattern) return 0;
  if (type === VERIFY_TYPE.null) return HDR_SIZE;
  const kind = (Object.keys(VERIFY_TYPE) as VerifyKind[]).find((k) => VERIFY_TYPE[k] === type);
  return kind === undefined ? null : headerSize(kind);
}

/** The job's verify settings the blocks depend on. */
export interface VerifySpec {
  verify: FioVerify;
  verifyPattern: VerifyPattern | null;
  /** fio's `verify_interval`: a header every this many bytes of a block (0: one a block). */
  verifyInterval?: number;
  /** fio's `verify_offset`: each header is swapped with the bytes this far into its interval. */
  verifyOffset?: number;
  /** fio's `verify_fatal`: the check of a block stops at its first bad interval. */
  verifyFatal?: boolean;
  /** fio's `verify_dump`: a bad interval's bytes, and what they should have been, kept in files. */
  verifyDump?: boolean;
}

/**
 * The bytes each header covers in a block of `len` (get_hdr_inc(), with init.c's fixup of
 * `verify_interval` folded in: at most the block size, and a divisor of it, or else the block size —
 * fio's gcd of the smallest and largest block size, both `bs` here).
 */
export function headerInterval(spec: VerifySpec, len: number): number {
  const i = spec.verifyInterval ?? 0;
  return i > 0 && i <= len && len % i === 0 ? i : len;
}

/** memswp(): fio's `verify_offset` moves each interval's header there, and back before the check. */
function swapHeader(interval: Buffer, at: number, size: number): void {
  if (!at || !size) return;
  const head = Buffer.from(interval.subarray(0, size));
  interval.copy(interval, 0, at, at + size);
  head.copy(interval, at);
}

/** xorshift32 fill: fio fills verify blocks from a per-block seed; any fast PRNG serves. */
function fillFromSeed(buf: Buffer, seed: bigint): void {
  let x = Number(seed & 0xffffffffn) ^ Number(seed >> 32n) || 0x9e3779b9;
  let i = 0;
  for (; i + 4 <= buf.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf.writeUInt32LE(x >>> 0, i);
  }
  for (; i < buf.length; i++) buf[i] = (x >>>= 1) & 0xff;
}

export interface VerifyStamp {
  offset: number;
  /** The write's random seed (io_u->rand_seed): its data's, unless a pattern fills it. */
  seed: bigint;
  numberio: number;
  thread: number;
}

/**
 * Fills one block (`block`, the block's bytes, possibly spread over pages by the caller) with its
 * data, then a header and checksum at the start of each interval for `stamp` (fill_pattern_headers(),
 * populate_hdr()). Returns the seed its headers hold: 0 when a pattern fills the data, as fio leaves
 * io_u->rand_seed then.
 */
export function fillVerifyBlock(spec: VerifySpec, block: Buffer, s: VerifyStamp, time = Date.now()): bigint {
  const kind = spec.verify;
  // the data first, over the whole block; the headers, then, over its intervals' starts
  if (spec.verifyPattern) fillPattern(block, patternAt(spec.verifyPattern, s.offset));
  // numberio as the header keeps it (16 bits), so that verify_dump can make the block again from it
  else fillFromSeed(block, s.seed ^ BigInt(Math.floor(s.offset / 512)) ^ BigInt((s.numberio & 0xffff) << 7));
  const seed = spec.verifyPattern ? 0n : s.seed;
  if (kind === 'none' || kind === 'null' || kind === 'pattern') return seed;
  const inc = headerInterval(spec, block.length);
  const size = headerSize(kind);
  for (let at = 0; at < block.length; at += inc) {
    const b = block.subarray(at, at + inc);
    b.writeUInt16LE(FIO_HDR_MAGIC, 0);
    b.writeUInt16LE(VERIFY_TYPE[kind], 2);
    b.writeUInt32LE(inc, 4);
    b.writeBigUInt64LE(seed, 8);
    // __fill_hdr(): the block's offset plus the interval's place in it
    b.writeBigUInt64LE(BigInt(s.offset + at), 16);
    b.writeUInt32LE(Math.floor(time / 1000), 24);
    b.writeUInt32LE((time % 1000) * 1_000_000, 28);
    b.writeUInt16LE(s.thread & 0xffff, 32);
    b.writeUInt16LE(s.numberio & 0xffff, 34);
    b.writeUInt32LE(fioCrc32c(b.subarray(0, HDR_CRC_OFF)), HDR_CRC_OFF);
    const sum = checksumOf(kind);
    if (sum) sum.sum(b.subarray(HDR_SIZE + sum.size)).copy(b, HDR_SIZE);
    swapHeader(b, spec.verifyOffset ?? 0, size);
  }
  return seed;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** What the job's log says of the block read back, where fio checks it; null where it does not. */
export interface VerifyExpect {
  /** The number of the write logged for the block (a writer of one block size, neither time_based nor verify_only). */
  numberio: number | null;
  /** The seed logged for it (a job that both reads and writes: td_rw()). */
  seed: bigint | null;
  /** io_u->flags as log_verify_failure() prints them: 0x88 for a read of the verify phase, 8 for a job's own read. */
  flags: number;
}

/** A file `verify_dump` writes (dump_buf()): `<file's basename>.<offset>.<type>` in fio's directory. */
export interface VerifyDump {
  name: string;
  data: Buffer;
  /** The index in the outcome's `lines` of its `… data dumped as …` line. */
  line: number;
}

/** What the check of one block says. */
export interface VerifyOutcome {
  /** fio's lines on stderr, in its order. */
  lines: string[];
  /**
   * Whether the block failed: verify_io_u()'s return, which a bad header decides at once and, after
   * that, the last interval checked — so that without `verify_fatal` a bad interval followed by a
   * good one is said and not failed, as fio 3.33 does.
   */
  failed: boolean;
  /** It failed on a header: verify_io_u() returns at once, before verify_fatal's terminate. */
  badHeader: boolean;
  dumps: VerifyDump[];
  /** Files verify_dump would have written past `maxDumps`. */
  dumpsDropped: number;
}

/**
 * Checks one block read back from `file` at `offset` by the method the job was given, interval by
 * interval (verify_io_u()): each one's header swapped back from `verify_offset`, then checked
 * (verify_header()), then its data. Returns null when there is nothing to say.
 */
export function checkVerifyBlock(
  spec: VerifySpec,
  block: Buffer,
  file: string,
  offset: number,
  expect: VerifyExpect = { numberio: null, seed: null, flags: 0x88 },
  /** verify_dump's files this check may still ask for (the job's bound: see JobStderr). */
  maxDumps = Infinity,
): VerifyOutcome | null {
  const kind = spec.verify;
  if (kind === 'none' || kind === 'null') return null;
  const len = block.length;
  const inc = headerInterval(spec, len);
  const out: VerifyOutcome = { lines: [], failed: false, badHeader: false, dumps: [], dumpsDropped: 0 };
  const base = file.slice(file.lastIndexOf('/') + 1);
  const dump = (data: Buffer, at: number, type: string): void => {
    if (!spec.verifyDump) return;
    if (out.dumps.length >= maxDumps) {
      out.dumpsDropped++;
      return;
    }
    const name = `${base}.${at}.${type}`;
    out.dumps.push({ name, data: Buffer.from(data), line: out.lines.length });
    out.lines.push(`       ${type} data dumped as ${name}`);
  };
  // the block made again for verify_dump's expected files: once for all its bad intervals (made per
  // interval, a 1 MiB block of 128-byte intervals took minutes), again only for another write's header
  let again = null as { key: string; block: Buffer } | null;
  let failed = false;
  for (let k = 0; k * inc < len; k++) {
    if (failed && spec.verifyFatal) break;
    const b = block.subarray(k * inc, (k + 1) * inc);
    swapHeader(b, spec.verifyOffset ?? 0, headerSize(kind));
    if (kind !== 'pattern') {
      const bad = checkHeader(b, k, file, offset, len, expect);
      if (bad) {
        out.lines.push(bad);
        dump(b, offset + k * inc, 'hdr_fail');
        out.failed = true;
        out.badHeader = true;
        return out;
      }
    }
    const lines = checkInterval(spec, b, k, offset);
    failed = lines !== null;
    if (!lines) continue;
    // The header does not choose the check: the job's method does, and a failure names both types
    // when they differ. Without a header, fio reads its fields from the data all the same.
    const media = b.readUInt16LE(2);
    const hlen = b.readUInt32LE(4);
    // log_verify_failure(): the interval's place from the header's length, an unsigned int product
    out.lines.push(
      ...lines.before,
      `${lines.name}: verify failed at file ${file} offset ${offset + (Math.imul(k, hlen) >>> 0)}, length ${hlen} (requested block: offset=${offset}, length=${len}, flags=${expect.flags.toString(16)})`,
      ...lines.after,
    );
    if (spec.verifyDump) {
      // the interval as read (its header swapped back), then as fill_pattern_headers() makes it again
      // from the header's seed and number (fio's time is the read's)
      dump(b, offset + k * inc, 'received');
      const stamp = {
        offset,
        seed: b.readBigUInt64LE(8),
        numberio: b.readUInt16LE(34),
        thread: b.readUInt16LE(32),
      };
      const key = `${stamp.seed}/${stamp.numberio}/${stamp.thread}`;
      if (again?.key !== key) {
        again = { key, block: Buffer.alloc(len) };
        fillVerifyBlock(spec, again.block, stamp);
      }
      dump(again.block.subarray(k * inc, (k + 1) * inc), offset + k * inc, 'expected');
    }
    if (media !== VERIFY_TYPE[kind])
      out.lines.push(`fio: verify type mismatch (${media} media, ${VERIFY_TYPE[kind]} given)`);
  }
  out.failed = failed;
  return out.lines.length ? out : null;
}

/**
 * The check of one interval's data by the job's method: null when it passes, else the failure's
 * name (`%.8s`) and fio's lines before and after its `verify failed` one.
 */
function checkInterval(
  spec: VerifySpec,
  b: Buffer,
  k: number,
  offset: number,
): { before: string[]; name: string; after: string[] } | null {
  const kind = spec.verify as VerifyKind;
  const inc = b.length;
  const sum = checksumOf(kind);
  if (!sum) {
    // meta checks the pattern if there is one; pattern and pattern-header always have one
    if (!spec.verifyPattern) return null;
    const at = headerSize(kind);
    const pattern = patternAt(spec.verifyPattern, offset);
    // verify_io_u_pattern(): the pattern's phase where this interval's data starts in the block
    for (let i = at, mod = (inc * k + at) % pattern.length; i < inc; i++, mod = (mod + 1) % pattern.length) {
      if (b[i] === pattern[mod]) continue;
      let bits = b[i] ^ pattern[mod];
      let n = 0;
      for (; bits; bits &= bits - 1) n++;
      // the offset is the byte's from the interval's start, as fio 3.36 prints it (242c63db)
      const got = b[i].toString(16).padStart(2, '0');
      const wanted = pattern[mod].toString(16).padStart(2, '0');
      return {
        before: [
          `fio: got pattern '${got}', wanted '${wanted}'. Bad bits ${n}`,
          `fio: bad pattern block offset ${i}`,
        ],
        name: 'pattern',
        after: [],
      };
    }
    return null;
  }
  // over what follows the header the medium's type implies (hdr_size()), against the bytes after
  // the header
  const dataAt = mediaHeaderSize(b.readUInt16LE(2)) ?? headerSize(kind);
  const want = b.subarray(HDR_SIZE, HDR_SIZE + sum.size);
  const got = sum.sum(b.subarray(Math.min(dataAt, inc)));
  if (got.equals(want)) return null;
  return {
    before: [],
    name: kind.slice(0, 8),
    after: [`       Expected CRC: ${hex(want)}`, `       Received CRC: ${hex(got)}`],
  };
}

/**
 * verify_header() of interval `k` (`b`, its header swapped back) of the block at `offset`, `len`
 * bytes long: the first field that is wrong, in fio's order, with its words.
 */
function checkHeader(
  b: Buffer,
  k: number,
  file: string,
  offset: number,
  len: number,
  expect: VerifyExpect,
): string | null {
  const inc = b.length;
  const where = ` at file ${file} offset ${offset + k * inc}, length ${inc} (requested block: offset=${offset}, length=${len})`;
  const magic = b.readUInt16LE(0);
  if (magic !== FIO_HDR_MAGIC)
    return `verify: bad magic header ${magic.toString(16)}, wanted ${FIO_HDR_MAGIC.toString(16)}${where}`;
  const hlen = b.readUInt32LE(4);
  if (hlen !== inc) return `verify: bad header length ${hlen}, wanted ${inc}${where}`;
  const hseed = b.readBigUInt64LE(8);
  if (expect.seed !== null && hseed !== expect.seed)
    return `verify: bad header rand_seed ${hseed}, wanted ${expect.seed}${where}`;
  // checked against the interval's place, said against the block's (fio's words)
  const hoff = Number(b.readBigUInt64LE(16));
  if (hoff !== offset + k * inc) return `verify: bad header offset ${hoff}, wanted ${offset}${where}`;
  const hnum = b.readUInt16LE(34);
  if (expect.numberio !== null && hnum !== (expect.numberio & 0xffff))
    return `verify: bad header numberio ${hnum}, wanted ${expect.numberio & 0xffff}${where}`;
  const hcrc = b.readUInt32LE(HDR_CRC_OFF);
  const calc = fioCrc32c(b.subarray(0, HDR_CRC_OFF));
  if (hcrc !== calc)
    return `verify: bad header crc ${hcrc.toString(16)}, calculated ${calc.toString(16)}${where}`;
  return null;
}
