import { describe, expect, it } from 'vitest';
import {
  arrayBufferOf,
  asBuffer,
  bufferView,
  byteOffsetOf,
  bytesView,
  copyBytes,
  copyInto,
  fillBytes,
  latin1Text,
  readI16LE,
  readU16LE,
  readU32LE,
  readU64LE,
  readU8,
  writeI16LE,
  writeU16LE,
  writeU32LE,
  writeU64LE,
  writeU8,
} from '../src/bytes.ts';
import { xorshiftBytes } from './xorshift.ts';

/** A view into the middle of a larger buffer, as frames and pages are. */
function inner(len: number, fill = 0): Buffer {
  const outer = Buffer.alloc(len + 32, 0xee);
  const b = outer.subarray(16, 16 + len);
  b.fill(fill);
  return b;
}

describe('fixed-width fields', () => {
  it("read what Buffer's readers read, at every offset of a view", () => {
    const b = inner(64);
    b.set(xorshiftBytes(64, 7));
    for (let at = 0; at + 8 <= b.length; at++) {
      expect(readU8(b, at)).toBe(b.readUInt8(at));
      expect(readU16LE(b, at)).toBe(b.readUInt16LE(at));
      expect(readI16LE(b, at)).toBe(b.readInt16LE(at));
      expect(readU32LE(b, at)).toBe(b.readUInt32LE(at));
      expect(readU64LE(b, at)).toBe(b.readBigUInt64LE(at));
    }
  });

  it("write what Buffer's writers write, extremes included", () => {
    const cases: Array<
      [(b: Buffer, at: number, v: never) => void, (b: Buffer, at: number, v: never) => unknown, unknown[]]
    > = [
      [writeU8, (b, at, v) => b.writeUInt8(v, at), [0, 1, 0x7f, 0xff]],
      [writeU16LE, (b, at, v) => b.writeUInt16LE(v, at), [0, 1, 0x1234, 0xffff]],
      [writeI16LE, (b, at, v) => b.writeInt16LE(v, at), [-0x8000, -1, 0, 0x7fff]],
      [writeU32LE, (b, at, v) => b.writeUInt32LE(v, at), [0, 1, 0x80000000, 0xffffffff]],
      [writeU64LE, (b, at, v) => b.writeBigUInt64LE(v, at), [0n, 1n, 1n << 63n, (1n << 64n) - 1n]],
    ];
    for (const [mine, theirs, values] of cases) {
      for (const v of values) {
        const a = inner(16, 0x55);
        const b = inner(16, 0x55);
        mine(a, 3, v as never);
        theirs(b, 3, v as never);
        expect(a).toEqual(b);
      }
    }
  });

  it('refuse a value out of the field and leave the bytes alone', () => {
    const b = inner(16, 0x55);
    expect(() => writeU8(b, 0, 256)).toThrow('256 is out of range for a field of 0..255');
    expect(() => writeU16LE(b, 0, -1)).toThrow(RangeError);
    expect(() => writeU16LE(b, 0, 0x10000)).toThrow(RangeError);
    expect(() => writeI16LE(b, 0, 0x8000)).toThrow(RangeError);
    expect(() => writeU32LE(b, 0, 2 ** 32)).toThrow(RangeError);
    expect(() => writeU32LE(b, 0, Number.NaN)).toThrow(RangeError);
    expect(() => writeU64LE(b, 0, -1n)).toThrow(RangeError);
    expect(() => writeU64LE(b, 0, 1n << 64n)).toThrow(RangeError);
    expect(b).toEqual(Buffer.alloc(16, 0x55));
  });

  it('refuse an offset outside the view, though the buffer around it goes on', () => {
    const b = inner(8);
    expect(() => readU8(b, 8)).toThrow('1 bytes at 8 are not within 8');
    expect(() => readU16LE(b, 7)).toThrow(RangeError);
    expect(() => readU32LE(b, -1)).toThrow(RangeError);
    expect(() => readU64LE(b, 1)).toThrow(RangeError);
    expect(() => writeU16LE(b, 7, 1)).toThrow(RangeError);
    expect(() => writeU32LE(b, 5, 1)).toThrow(RangeError);
    expect(() => writeU64LE(b, 1, 1n)).toThrow(RangeError);
    expect(() => writeU8(b, -1, 1)).toThrow(RangeError);
    // nothing was written, in the view or beside it
    const outer = Buffer.from(arrayBufferOf(b), byteOffsetOf(b) - 16, 40);
    expect(outer).toEqual(Buffer.concat([Buffer.alloc(16, 0xee), Buffer.alloc(8), Buffer.alloc(16, 0xee)]));
  });
});

describe('views and copies', () => {
  it('are views of the same memory, as subarray is', () => {
    const b = inner(32);
    const v = bytesView(b, 4, 8);
    const w = bufferView(b, 4, 8);
    expect(v).not.toBeInstanceOf(Buffer);
    expect(w).toBeInstanceOf(Buffer);
    v[0] = 1;
    w[1] = 2;
    expect([...b.subarray(4, 6)]).toEqual([1, 2]);
    expect(asBuffer(v)).toEqual(b.subarray(4, 12));
    expect(arrayBufferOf(w)).toBe(b.buffer);
    expect(byteOffsetOf(w)).toBe(b.byteOffset + 4);
  });

  it('refuse a range past the view instead of showing the bytes beside it', () => {
    const b = inner(8);
    expect(() => bytesView(b, 4, 5)).toThrow('bytes 4..9 are not within 8');
    expect(() => bufferView(b, -1, 2)).toThrow(RangeError);
    expect(() => bytesView(b, 0, -1)).toThrow(RangeError);
    expect(bytesView(b, 8, 0).length).toBe(0);
  });

  it("copy as Buffer's copy does, and refuse what does not fit", () => {
    const src = inner(16);
    for (let i = 0; i < 16; i++) src[i] = i + 1;
    const a = inner(16);
    const b = inner(16);
    copyBytes(a, 2, src, 5, 9);
    src.copy(b, 2, 5, 9);
    expect(a).toEqual(b);
    copyInto(a, 12, src.subarray(0, 4));
    expect([...a.subarray(12)]).toEqual([1, 2, 3, 4]);
    expect(() => copyBytes(a, 14, src, 0, 4)).toThrow(RangeError);
    expect(() => copyBytes(a, 0, src, 10, 20)).toThrow(RangeError);
    expect(() => copyInto(a, 13, src.subarray(0, 4))).toThrow(RangeError);
    fillBytes(a, 0xab, 1, 3);
    expect([...a.subarray(0, 4)]).toEqual([0, 0xab, 0xab, 7]);
    fillBytes(a, 0);
    expect(a).toEqual(Buffer.alloc(16));
  });

  it('latin1Text gives one character a byte, for every byte value, of the view only', () => {
    const b = inner(256);
    for (let i = 0; i < 256; i++) b[i] = i;
    const t = latin1Text(b.subarray(1, 255));
    expect(t.length).toBe(254);
    expect([...t].map((c) => c.charCodeAt(0))).toEqual([...b.subarray(1, 255)]);
  });
});
