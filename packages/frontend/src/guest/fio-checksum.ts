/**
 * The checksums fio's verify methods store after a block's header (fio 3.36's crc/ and verify.c),
 * reproduced byte for byte as fio stores them on x86-64 — fio's own variants, not the textbook ones
 * where the two differ:
 *
 * - crc32 is MSB-first over polynomial 0x04C11DB7 from 0 with no final inversion (POSIX cksum's
 *   table without its length), crc32c has no final inversion, crc64 is the reflected
 *   0x95AC9329AC4BC9B5 from 0, crc16 the reflected 0x8005 from 0 (CRC-16/ARC), crc7 the MMC one
 *   (0x09) as a 7-bit value;
 * - sha1 stores its five state words in the machine's byte order, not the digest's big-endian one;
 * - "sha256" appends the message length in the machine's byte order, and what it keeps is its last
 *   64-byte block with the low byte of each state word over the first eight: only the data's last
 *   block and those eight bytes depend on it;
 * - "sha512" is never finalized: what it keeps is its block buffer, the data's last partial block
 *   over the first 128 bytes of the data;
 * - md5, sha3-* and xxhash (XXH32, seed 1) are the standard ones.
 *
 * Blocks real fio 3.33 wrote with each method are fixtures of the tests.
 */
import { createHash } from 'node:crypto';

/** A table-driven CRC step, built bitwise from the polynomial (reflected or MSB-first). */
function reflectedTable32(poly: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
}

const CRC32C_T = (() => {
  // slicing by 8: the CRC32C runs over every block a verifying job writes or reads
  const t = [reflectedTable32(0x82f63b78)];
  for (let s = 1; s < 8; s++) {
    const p = t[s - 1];
    t.push(p.map((v) => (v >>> 8) ^ t[0][v & 0xff]));
  }
  return t;
})();

/** CRC-32C (Castagnoli) with the usual initial and final inversion, continuing from `crc`. */
export function crc32c(buf: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  let i = 0;
  const n = buf.length;
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC32C_T;
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

/** fio_crc32c() (crc32c_sw() and its SSE4.2 and ARM64 twins): from ~0, without the final inversion. */
export function fioCrc32c(buf: Uint8Array): number {
  return ~crc32c(buf) >>> 0;
}

const CRC32_MSB_T = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    t[i] = c >>> 0;
  }
  return t;
})();

function fioCrc32(buf: Uint8Array): number {
  let c = 0;
  for (let i = 0; i < buf.length; i++) c = ((c << 8) ^ CRC32_MSB_T[((c >>> 24) ^ buf[i]) & 0xff]) >>> 0;
  return c;
}

const CRC64_T = (() => {
  const poly = 0x95ac9329ac4bc9b5n;
  const t = new BigUint64Array(256);
  for (let i = 0; i < 256; i++) {
    let c = BigInt(i);
    for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ poly : c >> 1n;
    t[i] = c;
  }
  // split into 32-bit halves: a BigInt step per byte would cost a 4 KiB block ≈ 1 ms
  const hi = new Uint32Array(256);
  const lo = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    hi[i] = Number(t[i] >> 32n);
    lo[i] = Number(t[i] & 0xffffffffn);
  }
  return { hi, lo };
})();

function fioCrc64(buf: Uint8Array): Buffer {
  let hi = 0;
  let lo = 0;
  const { hi: th, lo: tl } = CRC64_T;
  for (let i = 0; i < buf.length; i++) {
    const x = (lo ^ buf[i]) & 0xff;
    // crc = table[x] ^ (crc >> 8)
    lo = (tl[x] ^ ((lo >>> 8) | (hi << 24))) >>> 0;
    hi = (th[x] ^ (hi >>> 8)) >>> 0;
  }
  const b = Buffer.alloc(8);
  b.writeUInt32LE(lo, 0);
  b.writeUInt32LE(hi, 4);
  return b;
}

const CRC16_T = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    t[i] = c;
  }
  return t;
})();

function fioCrc16(buf: Uint8Array): number {
  let c = 0;
  for (let i = 0; i < buf.length; i++) c = (c >>> 8) ^ CRC16_T[(c ^ buf[i]) & 0xff];
  return c;
}

/** CRC-7 of the MMC/SD spec (x^7 + x^3 + 1), MSB first, the 7-bit value (Linux's crc7 before 3.16). */
const CRC7_T = (() => {
  const t = new Uint8Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 0x80 ? ((c << 1) ^ (0x09 << 1)) & 0xff : (c << 1) & 0xff;
    t[i] = c >>> 1;
  }
  return t;
})();

function fioCrc7(buf: Uint8Array): number {
  let c = 0;
  for (let i = 0; i < buf.length; i++) c = CRC7_T[((c << 1) ^ buf[i]) & 0xff];
  return c;
}

const P1 = 2654435761;
const P2 = 2246822519;
const P3 = 3266489917;
const P4 = 668265263;
const P5 = 374761393;
const rotl = (x: number, r: number): number => ((x << r) | (x >>> (32 - r))) >>> 0;
const mul = (a: number, b: number): number => Math.imul(a, b) >>> 0;

/** XXH32 with `seed` (fio's XXH32_init(1)). */
export function xxh32(buf: Uint8Array, seed: number): number {
  const n = buf.length;
  const dv = new DataView(buf.buffer, buf.byteOffset, n);
  let i = 0;
  let h: number;
  if (n >= 16) {
    let v1 = (seed + P1 + P2) >>> 0;
    let v2 = (seed + P2) >>> 0;
    let v3 = seed >>> 0;
    let v4 = (seed - P1) >>> 0;
    const round = (v: number, at: number): number =>
      mul(rotl((v + mul(dv.getUint32(at, true), P2)) >>> 0, 13), P1);
    for (; i + 16 <= n; i += 16) {
      v1 = round(v1, i);
      v2 = round(v2, i + 4);
      v3 = round(v3, i + 8);
      v4 = round(v4, i + 12);
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) >>> 0;
  } else h = (seed + P5) >>> 0;
  h = (h + n) >>> 0;
  for (; i + 4 <= n; i += 4) h = mul(rotl((h + mul(dv.getUint32(i, true), P3)) >>> 0, 17), P4);
  for (; i < n; i++) h = mul(rotl((h + mul(buf[i], P5)) >>> 0, 11), P1);
  h = mul(h ^ (h >>> 15), P2);
  h = mul(h ^ (h >>> 13), P3);
  return (h ^ (h >>> 16)) >>> 0;
}

const K256 = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);

/** One SHA-256 compression of the 64 bytes of `block` at `at` into `s` (FIPS 180-4). */
function sha256Compress(s: Uint32Array, block: Uint8Array, at: number, w: Uint32Array): void {
  for (let t = 0; t < 16; t++) {
    const j = at + t * 4;
    w[t] = ((block[j] << 24) | (block[j + 1] << 16) | (block[j + 2] << 8) | block[j + 3]) >>> 0;
  }
  for (let t = 16; t < 64; t++) {
    const a = w[t - 15];
    const b = w[t - 2];
    const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
    const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
    w[t] = (w[t - 16] + s0 + w[t - 7] + s1) >>> 0;
  }
  let [a, b, c, d, e, f, g, h] = s;
  for (let t = 0; t < 64; t++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K256[t] + w[t]) >>> 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) >>> 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) >>> 0;
  }
  s[0] += a;
  s[1] += b;
  s[2] += c;
  s[3] += d;
  s[4] += e;
  s[5] += f;
  s[6] += g;
  s[7] += h;
}

/**
 * What fio's sha256 leaves in its 64-byte field (fio_sha256_update()/_final() with the field as its
 * block buffer): the message is padded with its bit length in little-endian order, and the field
 * ends up holding the last block compressed, its first eight bytes replaced by the low byte of each
 * state word.
 */
function fioSha256(data: Uint8Array): Buffer {
  const s = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const w = new Uint32Array(64);
  const n = data.length;
  const full = n - (n % 64);
  for (let at = 0; at < full; at += 64) sha256Compress(s, data, at, w);
  // the tail, 0x80, zeros to 56 mod 64 and the 64-bit length: one block or two
  const rest = n - full;
  const tail = Buffer.alloc(rest < 56 ? 64 : 128);
  tail.set(data.subarray(full), 0);
  tail[rest] = 0x80;
  tail.writeBigUInt64LE(BigInt(n) * 8n, tail.length - 8);
  for (let at = 0; at < tail.length; at += 64) sha256Compress(s, tail, at, w);
  const field = Buffer.from(tail.subarray(tail.length - 64));
  for (let i = 0; i < 8; i++) field[i] = s[i] & 0xff;
  return field;
}

/**
 * What fio's sha512 leaves in its 128-byte field (fio_sha512_update() alone, the field its block
 * buffer): the first 128 bytes of the data, the data's last `n mod 128` bytes over their start. The
 * SHA-512 state it computes is never stored. Data shorter than 128 bytes leaves the rest of the
 * field as it was, which fio's check reads uninitialized: such blocks (under 296 bytes) are refused
 * when the job is parsed.
 */
function fioSha512(data: Uint8Array): Buffer {
  const field = Buffer.from(data.subarray(0, 128));
  const rest = data.length % 128;
  field.set(data.subarray(data.length - rest), 0);
  return field;
}

/** md5's digest as fio stores it (four words in the machine's order: the standard digest bytes). */
const digest = (alg: string, data: Uint8Array): Buffer => createHash(alg).update(data).digest();

function fioSha1(data: Uint8Array): Buffer {
  const d = digest('sha1', data);
  for (let i = 0; i < 20; i += 4) d.writeUInt32LE(d.readUInt32BE(i), i);
  return d;
}

const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};

/** A checksum verify method of fio's: its VERIFY_* number, its field's size and how it is filled. */
export interface ChecksumMethod {
  type: number;
  size: number;
  sum(data: Uint8Array): Buffer;
}

export const CHECKSUMS = {
  md5: { type: 2, size: 16, sum: (d) => digest('md5', d) },
  crc64: { type: 3, size: 8, sum: fioCrc64 },
  crc32: { type: 4, size: 4, sum: (d) => u32(fioCrc32(d)) },
  crc32c: { type: 5, size: 4, sum: (d) => u32(fioCrc32c(d)) },
  crc16: {
    type: 7,
    size: 2,
    sum: (d) => {
      const b = Buffer.alloc(2);
      b.writeUInt16LE(fioCrc16(d));
      return b;
    },
  },
  crc7: { type: 8, size: 1, sum: (d) => Buffer.of(fioCrc7(d)) },
  sha256: { type: 9, size: 64, sum: fioSha256 },
  sha512: { type: 10, size: 128, sum: fioSha512 },
  'sha3-224': { type: 11, size: 28, sum: (d) => digest('sha3-224', d) },
  'sha3-256': { type: 12, size: 32, sum: (d) => digest('sha3-256', d) },
  'sha3-384': { type: 13, size: 48, sum: (d) => digest('sha3-384', d) },
  'sha3-512': { type: 14, size: 64, sum: (d) => digest('sha3-512', d) },
  xxhash: { type: 15, size: 4, sum: (d) => u32(xxh32(d, 1)) },
  sha1: { type: 16, size: 20, sum: fioSha1 },
} satisfies Record<string, ChecksumMethod>;

export type ChecksumName = keyof typeof CHECKSUMS;
