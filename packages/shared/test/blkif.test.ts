import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  BLKIF_INDIRECT_SIZE,
  BLKIF_DISCARD_SIZE,
  BLKIF_RESPONSE_SIZE,
  BLKIF_SEGMENT_SIZE,
  BLKIF_SEGS_PER_INDIRECT_FRAME,
  decodeIndirectSegments,
  decodeRequest,
  decodeSegment,
  encodeSegment,
  decodeResponse,
  encodeIndirectSegments,
  encodeRequest,
  writeResponse,
} from '../src/blkif.ts';
import { BufferRingMemory } from '../src/ring.ts';
import { readU16LE, writeU16LE } from '../src/bytes.ts';
import { loadVectors } from './vectors.ts';

const sizes = loadVectors<{ sizes: Record<string, number> }>('blkif-ring-vectors.json').sizes;

function slot(bytes: Record<number, number>): Buffer {
  const b = Buffer.alloc(112);
  for (const [off, v] of Object.entries(bytes)) b[Number(off)] = v;
  return b;
}

describe('blkif x86_64 sizes', () => {
  it('matches the gcc layout', () => {
    expect(BLKIF_RESPONSE_SIZE).toBe(sizes.response);
    expect(BLKIF_DISCARD_SIZE).toBe(sizes.discard);
    expect(BLKIF_INDIRECT_SIZE).toBe(sizes.indirect);
    expect(BLKIF_SEGMENT_SIZE).toBe(sizes.segment);
    expect(BLKIF_SEGS_PER_INDIRECT_FRAME).toBe(sizes.segs_per_indirect_frame);
  });
});

describe('decodeRequest on hostile bytes', () => {
  const limits = { maxIndirectSegments: 256 };

  it('rejects nr_segments = 12 with the id to answer', () => {
    const b = slot({ 0: 1, 1: 12, 8: 0x2a });
    expect(decodeRequest(b, limits)).toMatchObject({
      ok: false,
      id: 42n,
      operation: 1,
      problem: { code: 'BAD_NR_SEGMENTS', nrSegments: 12, max: 11 },
    });
  });

  it('rejects a read with no segments but allows an empty flush', () => {
    expect(decodeRequest(slot({ 0: 0, 1: 0 }), limits)).toMatchObject({
      ok: false,
      problem: { code: 'BAD_NR_SEGMENTS' },
    });
    expect(decodeRequest(slot({ 0: 3, 1: 0, 8: 5 }), limits)).toMatchObject({
      ok: true,
      request: { operation: 3, id: 5n },
    });
  });

  it('rejects last_sect = 8 and first_sect > last_sect, naming the segment', () => {
    // segment 0 at offset 24: gref, first_sect @28, last_sect @29
    expect(decodeRequest(slot({ 0: 0, 1: 1, 24: 9, 28: 0, 29: 8 }), limits)).toMatchObject({
      ok: false,
      problem: { code: 'BAD_SEGMENT', index: 0, firstSect: 0, lastSect: 8 },
    });
    expect(decodeRequest(slot({ 0: 1, 1: 2, 28: 0, 29: 7, 36: 5, 37: 4 }), limits)).toMatchObject({
      ok: false,
      problem: { code: 'BAD_SEGMENT', index: 1, firstSect: 5, lastSect: 4 },
    });
  });

  it('answers an unknown operation with EOPNOTSUPP and the echoed id', () => {
    const b = slot({ 0: 0x99 });
    b.writeBigUInt64LE(0xdeadbeefcafef00dn, 8);
    expect(decodeRequest(b, limits)).toMatchObject({
      ok: false,
      id: 0xdeadbeefcafef00dn,
      operation: 0x99,
      problem: { code: 'EOPNOTSUPP' },
    });
  });

  it('rejects INDIRECT when not offered, with a bad inner op, and past the advertised limit', () => {
    expect(decodeRequest(slot({ 0: 6, 1: 0, 2: 20 }), { maxIndirectSegments: 0 })).toMatchObject({
      ok: false,
      problem: { code: 'EOPNOTSUPP' },
    });
    expect(decodeRequest(slot({ 0: 6, 1: 3, 2: 20 }), limits)).toMatchObject({
      ok: false,
      problem: { code: 'BAD_INDIRECT_OP', indirectOp: 3 },
    });
    const tooMany = slot({ 0: 6, 1: 1 });
    tooMany.writeUInt16LE(257, 2);
    expect(decodeRequest(tooMany, limits)).toMatchObject({
      ok: false,
      problem: { code: 'BAD_NR_SEGMENTS', nrSegments: 257, max: 256 },
    });
  });

  it('never throws on random bytes, and round-trips whatever it accepts', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 112, maxLength: 112 }), fc.nat(4096), (bytes, maxInd) => {
        const d = decodeRequest(bytes, { maxIndirectSegments: maxInd });
        if (!d.ok) return typeof d.problem.detail === 'string';
        const again = decodeRequest(encodeRequest(d.request), { maxIndirectSegments: maxInd });
        expect(again).toEqual(d);
        return true;
      }),
      { numRuns: 2000 },
    );
  });
});

describe('indirect segment pages', () => {
  it('spread 600 segments over two pages and read them back, checking each once', () => {
    const pages = [Buffer.alloc(4096), Buffer.alloc(4096)];
    const segs = Array.from({ length: 600 }, (_, i) => ({ gref: 1000 + i, firstSect: i % 8, lastSect: 7 }));
    encodeIndirectSegments(pages, segs);
    expect(pages[1].readUInt32LE(0)).toBe(1512); // segment 512 opens the second page
    expect(decodeIndirectSegments(pages, 600)).toEqual({ ok: true, segments: segs });
    pages[1][8 * 3 + 5] = 9; // segment 515: last_sect = 9
    expect(decodeIndirectSegments(pages, 600)).toMatchObject({
      ok: false,
      problem: { code: 'BAD_SEGMENT', index: 515, lastSect: 9 },
    });
  });
});

describe('segment descriptors', () => {
  it('encode little-endian at their offset, padding zeroed, and decode back', () => {
    const page = Buffer.alloc(24, 0xee);
    encodeSegment(page, 8, { gref: 0x89abcdef, firstSect: 1, lastSect: 7 });
    expect(page.subarray(8, 16)).toEqual(Buffer.from('efcdab8901070000', 'hex'));
    expect(page[7]).toBe(0xee);
    expect(page[16]).toBe(0xee);
    expect(decodeSegment(page, 8)).toEqual({ gref: 0x89abcdef, firstSect: 1, lastSect: 7 });
  });

  it('refuse offsets outside the buffer, as a DataView would', () => {
    const page = Buffer.alloc(12);
    expect(() => decodeSegment(page, 8)).toThrow(RangeError);
    expect(() => encodeSegment(page, 8, { gref: 1, firstSect: 0, lastSect: 7 })).toThrow(
      'descriptor at offset 8 is outside the 12-byte buffer',
    );
    expect(() => readU16LE(page, -1)).toThrow(RangeError);
    expect(() => writeU16LE(page, 11, 1)).toThrow(RangeError);
    expect(page).toEqual(Buffer.alloc(12));
  });
});

describe('responses', () => {
  it('are written field by field, leaving padding untouched (XSA-216)', () => {
    const buf = Buffer.alloc(16, 0xaa);
    writeResponse(new BufferRingMemory(buf), 0, { id: 0x0102030405060708n, operation: 1, status: -1 });
    expect(buf.toString('hex')).toBe('080706050403020101aaffffaaaaaaaa');
    expect(decodeResponse(buf)).toEqual({ id: 0x0102030405060708n, operation: 1, status: -1 });
  });

  it('are not decoded from a slot shorter than one, though the buffer around it goes on', () => {
    const around = Buffer.alloc(256, 0x11);
    expect(() => decodeResponse(around.subarray(8, 8 + BLKIF_RESPONSE_SIZE - 1))).toThrow(
      'blkif response slot is 15 bytes, need 16',
    );
    expect(() => decodeRequest(around.subarray(0, 111), { maxIndirectSegments: 256 })).toThrow(
      'blkif slot copy is 111 bytes, need 112',
    );
  });
});
