/**
 * The two guard functions of T10 protection information: CRC-16/T10-DIF (the guard on the wire and
 * on the medium) and the RFC 1071 Internet checksum (the cheaper guard DIX lets a host hand to its
 * HBA). Both run once per 512-byte sector on every PI-protected I/O, so both loops run as
 * WebAssembly (guard-wasm.ts): the CRC table-driven (slicing-by-16), the checksum summing 64-bit
 * loads. The bit-at-a-time CRC stays as the executable definition the fast one is tested against.
 * A range must lie within the buffer (RangeError otherwise); an empty or reversed one is empty.
 *
 * All functions take a `[start, end)` byte range so callers can checksum one protection interval of
 * a larger buffer without making a view of it first.
 */
import { copyBytes } from './bytes.ts';
import { RESULTS, SCRATCH, SCRATCH_BYTES, guardKernel } from './guard-wasm.ts';

/** CRC-16/T10-DIF generator polynomial (x^16 + x^15 + x^11 + x^9 + x^8 + x^7 + x^5 + x^4 + x^2 + x + 1). */
const T10DIF_POLY = 0x8bb7;

/** How many bytes one step of the fast CRC loop consumes; the number of lookup tables. */
const SLICES = 16;

/**
 * `TABLES[k][b]` is the CRC register after feeding byte `b` followed by `k` zero bytes into a zero
 * register. Because the CRC is linear, the register after 16 bytes is the XOR of each byte's
 * contribution looked up in the table for its distance from the end, which turns 16 dependent
 * steps into 16 independent loads. The incoming 16-bit register only overlaps the first two bytes.
 */
const TABLES: Uint16Array[] = buildTables();

function buildTables(): Uint16Array[] {
  const tables: Uint16Array[] = [];
  const t0 = new Uint16Array(256);
  for (let b = 0; b < 256; b++) t0[b] = crc16T10DifBitwise(Uint8Array.of(b));
  tables.push(t0);
  for (let k = 1; k < SLICES; k++) {
    const prev = tables[k - 1];
    const t = new Uint16Array(256);
    // One more zero byte after the contribution: a single byte-step of the one-table CRC.
    for (let b = 0; b < 256; b++) t[b] = ((prev[b] << 8) & 0xffff) ^ t0[prev[b] >>> 8];
    tables.push(t);
  }
  return tables;
}

const kernel = guardKernel(TABLES);

/**
 * The module is told a length, not handed a view: a range past the buffer would have it read what an
 * earlier call left in its memory, where JavaScript read `undefined`.
 */
function inBuffer(data: Uint8Array, start: number, end: number): void {
  if (start < 0 || end > data.length) {
    throw new RangeError(`guard over [${start}, ${end}) of a ${data.length}-byte buffer`);
  }
}

/**
 * CRC-16/T10-DIF of `data[start, end)`: poly 0x8BB7, init 0, no reflection, no final XOR
 * (check value 0xD0DB for "123456789"). `crc` continues a previous computation, so
 * `crc16T10Dif(b, m, e, crc16T10Dif(b, s, m)) === crc16T10Dif(b, s, e)`.
 *
 * The bytes are copied into the WebAssembly module's scratch area, at most SCRATCH_BYTES at a
 * time: a copy of a 512-byte sector costs a few percent of its CRC.
 */
export function crc16T10Dif(data: Uint8Array, start = 0, end = data.length, crc = 0): number {
  inBuffer(data, start, end);
  crc &= 0xffff;
  for (let at = start; at < end; at += SCRATCH_BYTES) {
    const stop = Math.min(end, at + SCRATCH_BYTES);
    copyBytes(kernel.memory, SCRATCH, data, at, stop);
    crc = kernel.crc(SCRATCH, SCRATCH + (stop - at), crc);
  }
  return crc;
}

/**
 * The same CRC computed one bit at a time, straight from the definition (MSB first). Slow; it is
 * the reference the table-driven version is property-tested against and the benchmark's floor.
 * The conditional XOR is written as a mask (`-(top bit) & poly`) so its speed does not depend on
 * how well the CPU predicts the data's bits, which made benchmark figures vary with buffer size.
 */
export function crc16T10DifBitwise(data: Uint8Array, start = 0, end = data.length, crc = 0): number {
  crc &= 0xffff;
  for (let i = start; i < end; i++) {
    crc ^= data[i] << 8;
    for (let bit = 0; bit < 8; bit++) crc = ((crc << 1) ^ (-(crc >>> 15) & T10DIF_POLY)) & 0xffff;
  }
  return crc;
}

/**
 * The guard of each `interval` bytes of `data[start, end)` — CRC-16/T10-DIF or the Internet
 * checksum, as `crc16T10Dif` / `ipChecksum` compute them — into `out[0]`, `out[1]`, …; returns how
 * many. What generating or checking PI needs: one guard per protection interval. The bytes go into
 * the module once per SCRATCH_BYTES and each piece's guards come out of one call, where a call per
 * interval paid for its own copy and call eight times per 4 KiB.
 */
export function intervalGuards(
  data: Uint8Array,
  start: number,
  end: number,
  interval: number,
  kind: 'crc' | 'ip',
  out: Uint16Array,
): number {
  inBuffer(data, start, end);
  if (!Number.isSafeInteger(interval) || interval <= 0 || (end - start) % interval !== 0) {
    throw new RangeError(`[${start}, ${end}) is not a whole number of ${interval}-byte intervals`);
  }
  const count = (end - start) / interval;
  if (out.length < count) throw new RangeError(`${count} guards do not fit in ${out.length}`);
  // the module's result area holds 2 bytes per interval of a scratch-full only from 4-byte intervals
  if (interval < 4 || interval > SCRATCH_BYTES) {
    for (let i = 0; i < count; i++) {
      const at = start + i * interval;
      out[i] = kind === 'crc' ? crc16T10Dif(data, at, at + interval) : ipChecksum(data, at, at + interval);
    }
    return count;
  }
  const piece = Math.floor(SCRATCH_BYTES / interval) * interval;
  const mem = kernel.memory;
  let n = 0;
  for (let at = start; at < end; at += piece) {
    const stop = Math.min(end, at + piece);
    copyBytes(mem, SCRATCH, data, at, stop);
    const len = stop - at;
    const got =
      kind === 'crc'
        ? kernel.crcs(SCRATCH, SCRATCH + len, interval, RESULTS)
        : kernel.ipsums(SCRATCH, SCRATCH + len, interval, RESULTS);
    for (let i = 0; i < got; i++) {
      const v = mem[RESULTS + 2 * i] | (mem[RESULTS + 2 * i + 1] << 8);
      out[n++] = kind === 'crc' ? v : ipGuardOf(v);
    }
  }
  return n;
}

/** Reduce a non-negative sum to 16 bits with end-around carry (one's-complement addition). */
function foldOnesComplement(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/**
 * RFC 1071 Internet checksum of `data[start, end)`: the one's complement of the one's-complement
 * sum of big-endian 16-bit words, a trailing odd byte padded with a zero low byte. Returned as the
 * u16 whose big-endian bytes are the checksum bytes in network order — the bytes Linux stores raw
 * in the guard field — so a big-endian tuple encoder writes them unchanged.
 *
 * The module sums the bytes as little-endian words, at most SCRATCH_BYTES (an even number, so no
 * word straddles two pieces) at a time; the folded sum of the pieces is then swapped into big-endian
 * order (see guard-wasm.ts).
 */
export function ipChecksum(data: Uint8Array, start = 0, end = data.length): number {
  inBuffer(data, start, end);
  let sum = 0;
  for (let at = start; at < end; at += SCRATCH_BYTES) {
    const stop = Math.min(end, at + SCRATCH_BYTES);
    copyBytes(kernel.memory, SCRATCH, data, at, stop);
    sum += kernel.ipsum(SCRATCH, SCRATCH + (stop - at));
  }
  return ipGuardOf(foldOnesComplement(sum));
}

/** The checksum of a folded little-endian one's-complement sum: swapped into network order, complemented. */
function ipGuardOf(folded: number): number {
  return ~(((folded & 0xff) << 8) | (folded >>> 8)) & 0xffff;
}
