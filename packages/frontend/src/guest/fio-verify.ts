/**
 * fio's block verification (verify.c): every written block starts with a `struct verify_header`
 * (magic 0xacca, verify type, block length, random seed, offset, write time, thread, numberio, and
 * a CRC32C of the header itself), then the checksum of the rest of the block (`struct vhdr_crc32`
 * or `vhdr_md5`), then data generated from the seed. Reading the block back checks the header
 * (verify_header(): magic, length, offset, numberio, header CRC) and then the block's checksum by the
 * method the job was given (verify_io_u()), and reports failures with fio's messages, so a
 * misdirected or corrupted block is named by file and offset.
 *
 * Layout of fio 3.36 (verify.h), little-endian as on x86-64, 40 bytes, then the checksum:
 *   0 magic u16 | 2 verify_type u16 | 4 len u32 | 8 rand_seed u64 | 16 offset u64 |
 *   24 time_sec u32 | 28 time_nsec u32 | 32 thread u16 | 34 numberio u16 | 36 crc32 u32 | 40 checksum
 * Blocks fio 3.33 wrote are fixtures of the tests (packages/frontend/test/fixtures/).
 */
import { createHash } from 'node:crypto';
import type { FioVerify } from './fio-options.ts';

export const FIO_HDR_MAGIC = 0xacca;
const HDR_SIZE = 40;
const HDR_CRC_OFF = 36;
type VerifyKind = Exclude<FioVerify, 'none'>;
/** fio's VERIFY_* numbers of the methods implemented here. */
const VERIFY_TYPE: Record<VerifyKind, number> = { md5: 2, crc32c: 5 };
const CHECKSUM_SIZE: Record<VerifyKind, number> = { md5: 16, crc32c: 4 };
const KIND_OF_TYPE = new Map<number, VerifyKind>([
  [2, 'md5'],
  [5, 'crc32c'],
]);

// CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, slicing by 8.
const T = (() => {
  const t = Array.from({ length: 8 }, () => new Uint32Array(256));
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[0][i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++)
    for (let s = 1; s < 8; s++) t[s][i] = (t[s - 1][i] >>> 8) ^ t[0][t[s - 1][i] & 0xff];
  return t;
})();

/** CRC-32C of `buf` (fio's fio_crc32c: initial ~0, final xor ~0). */
export function crc32c(buf: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  let i = 0;
  const n = buf.length;
  const [t0, t1, t2, t3, t4, t5, t6, t7] = T;
  for (; i + 8 <= n; i += 8) {
    const a = (c ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24))) >>> 0;
    c =
      t7[a & 0xff] ^
      t6[(a >>> 8) & 0xff] ^
      t5[(a >>> 16) & 0xff] ^
      t4[a >>> 24] ^
      t3[buf[i + 4]] ^
      t2[buf[i + 5]] ^
      t1[buf[i + 6]] ^
      t0[buf[i + 7]];
  }
  for (; i < n; i++) c = t0[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * fio's fio_crc32c() (crc/crc32c.c's crc32c_sw(), and the SSE4.2 and ARM64 paths that give the
 * same): CRC-32C from ~0 without the final inversion, for the header's CRC and the block's checksum.
 */
function fioCrc32c(buf: Uint8Array): number {
  return ~crc32c(buf) >>> 0;
}

/** xorshift32 fill: fio fills verify blocks from a per-block seed; any fast PRNG serves. */
function fillFromSeed(buf: Buffer, seed: number): void {
  let x = seed >>> 0 || 0x9e3779b9;
  let i = 0;
  for (; i + 4 <= buf.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf.writeUInt32LE(x >>> 0, i);
  }
  for (; i < buf.length; i++) buf[i] = (x >>>= 1) & 0xff;
}

function checksumOf(kind: VerifyKind, data: Uint8Array): Buffer {
  if (kind === 'md5') return createHash('md5').update(data).digest();
  const b = Buffer.alloc(4);
  b.writeUInt32LE(fioCrc32c(data));
  return b;
}

export interface VerifyStamp {
  offset: number;
  seed: number;
  numberio: number;
  thread: number;
}

/**
 * Fills one block (`block`, the block's bytes, possibly spread over pages by the caller) with a
 * header, checksum and data for `stamp`.
 */
export function fillVerifyBlock(kind: VerifyKind, block: Buffer, s: VerifyStamp): void {
  const hdrLen = HDR_SIZE + CHECKSUM_SIZE[kind];
  fillFromSeed(block.subarray(hdrLen), (s.seed ^ Math.floor(s.offset / 512) ^ (s.numberio << 7)) >>> 0);
  const now = Date.now();
  block.writeUInt16LE(FIO_HDR_MAGIC, 0);
  block.writeUInt16LE(VERIFY_TYPE[kind], 2);
  block.writeUInt32LE(block.length, 4);
  block.writeBigUInt64LE(BigInt(s.seed >>> 0), 8);
  block.writeBigUInt64LE(BigInt(s.offset), 16);
  block.writeUInt32LE(Math.floor(now / 1000), 24);
  block.writeUInt32LE((now % 1000) * 1_000_000, 28);
  block.writeUInt16LE(s.thread & 0xffff, 32);
  block.writeUInt16LE(s.numberio & 0xffff, 34);
  block.writeUInt32LE(fioCrc32c(block.subarray(0, HDR_CRC_OFF)), HDR_CRC_OFF);
  checksumOf(kind, block.subarray(hdrLen)).copy(block, HDR_SIZE);
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/**
 * Checks one block read back from `file` at `offset` by the method the job was given. `numberio`
 * is the number of the write the job logged for the block, where fio checks it (a writer of one
 * block size, neither time_based nor verify_only), else null. Returns null when the block verifies,
 * else the lines fio prints (verify_header(), log_verify_failure(), verify_io_u()).
 */
export function checkVerifyBlock(
  kind: VerifyKind,
  block: Buffer,
  file: string,
  offset: number,
  numberio: number | null = null,
): string[] | null {
  const len = block.length;
  const where = ` at file ${file} offset ${offset}, length ${len} (requested block: offset=${offset}, length=${len})`;
  const magic = block.readUInt16LE(0);
  if (magic !== FIO_HDR_MAGIC)
    return [`verify: bad magic header ${magic.toString(16)}, wanted ${FIO_HDR_MAGIC.toString(16)}${where}`];
  const hlen = block.readUInt32LE(4);
  if (hlen !== len) return [`verify: bad header length ${hlen}, wanted ${len}${where}`];
  const hoff = Number(block.readBigUInt64LE(16));
  if (hoff !== offset) return [`verify: bad header offset ${hoff}, wanted ${offset}${where}`];
  const hnum = block.readUInt16LE(34);
  if (numberio !== null && hnum !== (numberio & 0xffff))
    return [`verify: bad header numberio ${hnum}, wanted ${numberio & 0xffff}${where}`];
  const hcrc = block.readUInt32LE(HDR_CRC_OFF);
  const calc = fioCrc32c(block.subarray(0, HDR_CRC_OFF));
  if (hcrc !== calc)
    return [`verify: bad header crc ${hcrc.toString(16)}, calculated ${calc.toString(16)}${where}`];
  // The header does not choose the check: the job's method does, over what follows the header the
  // medium's type implies (hdr_size()), against the bytes after the header, and a failure names
  // both types when they differ.
  const media = block.readUInt16LE(2);
  const dataAt = HDR_SIZE + CHECKSUM_SIZE[KIND_OF_TYPE.get(media) ?? kind];
  const want = block.subarray(HDR_SIZE, HDR_SIZE + CHECKSUM_SIZE[kind]);
  const got = checksumOf(kind, block.subarray(dataAt));
  if (got.equals(want)) return null;
  return [
    `${kind}: verify failed at file ${file} offset ${offset}, length ${len} (requested block: offset=${offset}, length=${len}, flags=88)`,
    `       Expected CRC: ${hex(want)}`,
    `       Received CRC: ${hex(got)}`,
    ...(media !== VERIFY_TYPE[kind]
      ? [`fio: verify type mismatch (${media} media, ${VERIFY_TYPE[kind]} given)`]
      : []),
  ];
}
