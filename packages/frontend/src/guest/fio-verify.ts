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
 * data, header and checksum for `stamp` (fill_pattern_headers()). Returns the seed its header
 * holds: 0 when a pattern fills the data, as fio leaves io_u->rand_seed then.
 */
export function fillVerifyBlock(spec: VerifySpec, block: Buffer, s: VerifyStamp): bigint {
  const kind = spec.verify;
  // the data first, over the whole block; the header, then, over its start
  if (spec.verifyPattern) fillPattern(block, patternAt(spec.verifyPattern, s.offset));
  else fillFromSeed(block, s.seed ^ BigInt(Math.floor(s.offset / 512)) ^ BigInt(s.numberio << 7));
  const seed = spec.verifyPattern ? 0n : s.seed;
  if (kind === 'none' || kind === 'null' || kind === 'pattern') return seed;
  const now = Date.now();
  block.writeUInt16LE(FIO_HDR_MAGIC, 0);
  block.writeUInt16LE(VERIFY_TYPE[kind], 2);
  block.writeUInt32LE(block.length, 4);
  block.writeBigUInt64LE(seed, 8);
  block.writeBigUInt64LE(BigInt(s.offset), 16);
  block.writeUInt32LE(Math.floor(now / 1000), 24);
  block.writeUInt32LE((now % 1000) * 1_000_000, 28);
  block.writeUInt16LE(s.thread & 0xffff, 32);
  block.writeUInt16LE(s.numberio & 0xffff, 34);
  block.writeUInt32LE(fioCrc32c(block.subarray(0, HDR_CRC_OFF)), HDR_CRC_OFF);
  const sum = checksumOf(kind);
  if (sum) sum.sum(block.subarray(HDR_SIZE + sum.size)).copy(block, HDR_SIZE);
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

/**
 * Checks one block read back from `file` at `offset` by the method the job was given. Returns null
 * when the block verifies, else the lines fio prints (verify_header(), log_verify_failure(),
 * verify_io_u_pattern(), verify_io_u()).
 */
export function checkVerifyBlock(
  spec: VerifySpec,
  block: Buffer,
  file: string,
  offset: number,
  expect: VerifyExpect = { numberio: null, seed: null, flags: 0x88 },
): string[] | null {
  const kind = spec.verify;
  if (kind === 'none' || kind === 'null') return null;
  const len = block.length;
  if (kind !== 'pattern') {
    const bad = checkHeader(block, file, offset, expect);
    if (bad) return [bad];
  }
  // The header does not choose the check: the job's method does, and a failure names both types
  // when they differ. Without a header, fio reads its fields from the data all the same.
  const media = block.readUInt16LE(2);
  const failed = (name: string, lines: string[] = []): string[] => [
    // log_verify_failure() prints the header's length, whatever it holds
    `${name}: verify failed at file ${file} offset ${offset}, length ${block.readUInt32LE(4)} (requested block: offset=${offset}, length=${len}, flags=${expect.flags.toString(16)})`,
    ...lines,
    ...(media !== VERIFY_TYPE[kind]
      ? [`fio: verify type mismatch (${media} media, ${VERIFY_TYPE[kind]} given)`]
      : []),
  ];
  const sum = checksumOf(kind);
  if (!sum) {
    // meta checks the pattern if there is one; pattern and pattern-header always have one
    if (!spec.verifyPattern) return null;
    const at = headerSize(kind);
    const pattern = patternAt(spec.verifyPattern, offset);
    for (let i = at, mod = at % pattern.length; i < len; i++, mod = (mod + 1) % pattern.length) {
      if (block[i] === pattern[mod]) continue;
      let bits = block[i] ^ pattern[mod];
      let n = 0;
      for (; bits; bits &= bits - 1) n++;
      // the block offset is the byte's from the block's start, as fio 3.36 prints it (242c63db)
      const got = block[i].toString(16).padStart(2, '0');
      const wanted = pattern[mod].toString(16).padStart(2, '0');
      return [
        `fio: got pattern '${got}', wanted '${wanted}'. Bad bits ${n}`,
        `fio: bad pattern block offset ${i}`,
        ...failed('pattern'),
      ];
    }
    return null;
  }
  // over what follows the header the medium's type implies (hdr_size()), against the bytes after
  // the header
  const dataAt = mediaHeaderSize(media) ?? headerSize(kind);
  const want = block.subarray(HDR_SIZE, HDR_SIZE + sum.size);
  const got = sum.sum(block.subarray(Math.min(dataAt, len)));
  if (got.equals(want)) return null;
  return failed(kind.slice(0, 8), [`       Expected CRC: ${hex(want)}`, `       Received CRC: ${hex(got)}`]);
}

/** verify_header(): the first field that is wrong, in fio's order, with its words. */
function checkHeader(block: Buffer, file: string, offset: number, expect: VerifyExpect): string | null {
  const len = block.length;
  const where = ` at file ${file} offset ${offset}, length ${len} (requested block: offset=${offset}, length=${len})`;
  const magic = block.readUInt16LE(0);
  if (magic !== FIO_HDR_MAGIC)
    return `verify: bad magic header ${magic.toString(16)}, wanted ${FIO_HDR_MAGIC.toString(16)}${where}`;
  const hlen = block.readUInt32LE(4);
  if (hlen !== len) return `verify: bad header length ${hlen}, wanted ${len}${where}`;
  const hseed = block.readBigUInt64LE(8);
  if (expect.seed !== null && hseed !== expect.seed)
    return `verify: bad header rand_seed ${hseed}, wanted ${expect.seed}${where}`;
  const hoff = Number(block.readBigUInt64LE(16));
  if (hoff !== offset) return `verify: bad header offset ${hoff}, wanted ${offset}${where}`;
  const hnum = block.readUInt16LE(34);
  if (expect.numberio !== null && hnum !== (expect.numberio & 0xffff))
    return `verify: bad header numberio ${hnum}, wanted ${expect.numberio & 0xffff}${where}`;
  const hcrc = block.readUInt32LE(HDR_CRC_OFF);
  const calc = fioCrc32c(block.subarray(0, HDR_CRC_OFF));
  if (hcrc !== calc)
    return `verify: bad header crc ${hcrc.toString(16)}, calculated ${calc.toString(16)}${where}`;
  return null;
}
