import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc16T10Dif, crc16T10DifBitwise, intervalGuards, ipChecksum } from '../src/crc.ts';
import { SCRATCH_BYTES } from '../src/guard-wasm.ts';
import { xorshiftBytes } from './xorshift.ts';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
const filled = (n: number, byte: number): Uint8Array => new Uint8Array(n).fill(byte);
const incrementing = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => i & 0xff);

/** RFC 1071 written the obvious way (16-bit words, fold as you go), to check the WebAssembly sum of 64-bit loads. */
function ipChecksumByWords(data: Uint8Array, start = 0, end = data.length): number {
  let sum = 0;
  let i = start;
  for (; i + 1 < end; i += 2) {
    sum += (data[i] << 8) | data[i + 1];
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  if (i < end) sum += data[i] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** A buffer and a [start, end) range inside it. */
const bufferWithRange = fc
  .uint8Array({ minLength: 0, maxLength: 1200 })
  .chain((buf) =>
    fc
      .tuple(fc.nat({ max: buf.length }), fc.nat({ max: buf.length }))
      .map(([a, b]) => ({ buf, start: Math.min(a, b), end: Math.max(a, b) })),
  );

describe('crc16T10Dif', () => {
  it('matches the catalogue check value and the reference table', () => {
    expect(crc16T10Dif(ascii('123456789'))).toBe(0xd0db);
    expect(crc16T10DifBitwise(ascii('123456789'))).toBe(0xd0db);
    expect(crc16T10Dif(new Uint8Array(0))).toBe(0x0000);
    expect(crc16T10Dif(filled(512, 0x00))).toBe(0x0000);
    expect(crc16T10Dif(filled(512, 0xff))).toBe(0xe6a1);
    expect(crc16T10DifBitwise(filled(512, 0xff))).toBe(0xe6a1);
    expect(crc16T10Dif(incrementing(512))).toBe(0x4f10);
  });

  it('sees a single set bit at either end of a zero sector', () => {
    const first = new Uint8Array(512);
    first[0] = 0x01;
    const last = new Uint8Array(512);
    last[511] = 0x80;
    expect(crc16T10Dif(first)).toBe(0xb45e);
    expect(crc16T10Dif(last)).toBe(0x3ab1);
  });

  it('honours start/end and a non-zero byteOffset', () => {
    const framed = new Uint8Array(20).fill(0xaa);
    framed.set(ascii('123456789'), 5);
    expect(crc16T10Dif(framed, 5, 14)).toBe(0xd0db);
    expect(crc16T10Dif(framed.subarray(5, 14))).toBe(0xd0db);
    expect(crc16T10Dif(framed, 7, 7)).toBe(0);
  });

  it('chains through the crc argument', () => {
    const data = ascii('123456789');
    expect(crc16T10Dif(data, 4, 9, crc16T10Dif(data, 0, 4))).toBe(0xd0db);
  });

  it('leaves residue 0 when the CRC is appended big-endian', () => {
    const data = incrementing(512);
    const framed = new Uint8Array(514);
    framed.set(data);
    framed[512] = 0x4f;
    framed[513] = 0x10;
    expect(crc16T10Dif(framed)).toBe(0);
  });

  it('equals the bitwise reference on random buffers and ranges', () => {
    fc.assert(
      fc.property(bufferWithRange, ({ buf, start, end }) => {
        expect(crc16T10Dif(buf, start, end)).toBe(crc16T10DifBitwise(buf, start, end));
      }),
      { numRuns: 300 },
    );
  });

  it('chains like one pass over the whole range, for any split point and initial crc', () => {
    fc.assert(
      fc.property(bufferWithRange, fc.nat(), fc.integer({ min: 0, max: 0xffff }), (r, cut, init) => {
        const mid = r.start + (cut % (r.end - r.start + 1));
        const whole = crc16T10DifBitwise(r.buf, r.start, r.end, init);
        expect(crc16T10Dif(r.buf, mid, r.end, crc16T10Dif(r.buf, r.start, mid, init))).toBe(whole);
        expect(crc16T10Dif(r.buf, r.start, r.end, init)).toBe(whole);
      }),
      { numRuns: 300 },
    );
  });
});

describe("the guards' loops in WebAssembly", () => {
  it('takes a range longer than its scratch area in pieces, from any offset', () => {
    const big = xorshiftBytes(2 * SCRATCH_BYTES + 4099, 0x9e3779b9);
    for (const [start, end] of [
      [0, big.length],
      [7, big.length - 5],
      [SCRATCH_BYTES - 3, 2 * SCRATCH_BYTES + 20],
      [1, SCRATCH_BYTES + 1],
    ]) {
      expect(crc16T10Dif(big, start, end, 0x1234)).toBe(crc16T10DifBitwise(big, start, end, 0x1234));
      expect(ipChecksum(big, start, end)).toBe(ipChecksumByWords(big, start, end));
    }
  });

  it('takes only the low 16 bits of a crc to continue from (the register is 16 bits wide)', () => {
    const d = incrementing(1000);
    expect(crc16T10Dif(d, 0, d.length, 0x12345)).toBe(crc16T10Dif(d, 0, d.length, 0x2345));
    expect(crc16T10Dif(d, 0, d.length, 0x12345)).toBe(crc16T10DifBitwise(d, 0, d.length, 0x2345));
  });

  it('refuses a range outside the buffer rather than read what the last call left in its memory', () => {
    const d = incrementing(16);
    expect(() => crc16T10Dif(d, 0, 20)).toThrow(RangeError);
    expect(() => crc16T10Dif(d, -1, 8)).toThrow(RangeError);
    expect(() => ipChecksum(d, 0, 17)).toThrow(RangeError);
    // an empty or reversed range is empty, as it always was
    expect(crc16T10Dif(d, 9, 3, 0x77)).toBe(0x77);
    expect(ipChecksum(d, 9, 3)).toBe(0xffff);
  });
});

describe('ipChecksum', () => {
  it('matches fixed values', () => {
    expect(ipChecksum(filled(512, 0x00))).toBe(0xffff);
    expect(ipChecksum(filled(512, 0xff))).toBe(0x0000);
    expect(ipChecksum(incrementing(512))).toBe(0x7f80);
    // RFC 1071 section 3 example: the words sum to 0xddf2.
    expect(ipChecksum(Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7))).toBe(0x220d);
    // An odd trailing byte is the high byte of a zero-padded word.
    expect(ipChecksum(Uint8Array.of(0x01))).toBe(0xfeff);
    expect(ipChecksum(Uint8Array.of(0x00, 0x01, 0xf2))).toBe(0x0dfe);
    expect(ipChecksum(new Uint8Array(0))).toBe(0xffff);
  });

  it('honours start/end', () => {
    const framed = Uint8Array.of(0xee, 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7, 0xee);
    expect(ipChecksum(framed, 1, 9)).toBe(0x220d);
  });

  it('checks to zero with its own checksum appended', () => {
    const data = incrementing(512);
    const framed = new Uint8Array(514);
    framed.set(data);
    framed[512] = 0x7f;
    framed[513] = 0x80;
    expect(ipChecksum(framed)).toBe(0x0000);
  });

  it('equals the 16-bit-word reference on random buffers and ranges', () => {
    fc.assert(
      fc.property(bufferWithRange, ({ buf, start, end }) => {
        expect(ipChecksum(buf, start, end)).toBe(ipChecksumByWords(buf, start, end));
      }),
      { numRuns: 300 },
    );
  });

  it('stays exact on 12 MiB, folded piece by piece', () => {
    const big = xorshiftBytes(12 * 1024 * 1024 + 3, 0x12345678);
    expect(ipChecksum(big)).toBe(ipChecksumByWords(big));
    expect(ipChecksum(filled(12 * 1024 * 1024, 0xff))).toBe(0x0000);
  });
});

describe('intervalGuards', () => {
  /** Each interval's guard computed on its own, as the one-call loop must reproduce. */
  const oneByOne = (data: Uint8Array, start: number, end: number, interval: number, kind: 'crc' | 'ip') =>
    Array.from({ length: (end - start) / interval }, (_, i) => {
      const at = start + i * interval;
      return kind === 'crc'
        ? crc16T10DifBitwise(data, at, at + interval)
        : ipChecksumByWords(data, at, at + interval);
    });

  it('equals one guard per interval, for both kinds, any interval and offset', () => {
    const data = xorshiftBytes(3 * SCRATCH_BYTES + 4096, 0x1d0f);
    // 4 KiB with 512-byte intervals (the common case); odd intervals; whole pieces of the scratch
    // area and more than one; intervals too small or too large for the one-call loop
    const cases: Array<[number, number, number]> = [
      [0, 4096, 512],
      [7, 7 + 4096, 512],
      [1, 1 + 5 * 520, 520],
      [3, 3 + 9 * 5, 5],
      [0, 2 * SCRATCH_BYTES + 1024, 512],
      [4096, 4096 + 3 * 4096, 4096],
      [0, 40, 4],
      [2, 2 + 6 * 3, 3],
      [0, 2 * SCRATCH_BYTES, SCRATCH_BYTES],
      [5, 5 + SCRATCH_BYTES + 2, SCRATCH_BYTES + 2],
      [10, 10, 512],
    ];
    for (const kind of ['crc', 'ip'] as const) {
      for (const [start, end, interval] of cases) {
        const want = oneByOne(data, start, end, interval, kind);
        const out = new Uint16Array(want.length + 2).fill(0xbeef);
        expect(
          intervalGuards(data, start, end, interval, kind, out),
          `${kind} ${start} ${end} ${interval}`,
        ).toBe(want.length);
        expect(Array.from(out.subarray(0, want.length)), `${kind} ${start} ${end} ${interval}`).toEqual(want);
        expect(Array.from(out.subarray(want.length))).toEqual([0xbeef, 0xbeef]); // nothing past them
      }
    }
  });

  it('refuses a range that is not whole intervals, a bad interval, a short output or a range outside', () => {
    const data = new Uint8Array(4096);
    const out = new Uint16Array(8);
    expect(() => intervalGuards(data, 0, 4000, 512, 'crc', out)).toThrow(/not a whole number of 512-byte/);
    expect(() => intervalGuards(data, 0, 4096, 0, 'crc', out)).toThrow(RangeError);
    expect(() => intervalGuards(data, 0, 4096, 1.5, 'crc', out)).toThrow(RangeError);
    expect(() => intervalGuards(data, 0, 4096, 256, 'crc', out)).toThrow(/16 guards do not fit in 8/);
    expect(() => intervalGuards(data, 512, 4608, 512, 'ip', out)).toThrow(RangeError);
  });
});
