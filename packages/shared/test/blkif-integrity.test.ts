/**
 * Byte fixtures for the blkif integrity extension (docs/blkif-integrity.md): the request slot, the PI
 * descriptors in the indirect pages, and the response with pi_status / pi_offset. Expected bytes are
 * written out literally from the documented offsets, never produced by the encoder under test.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  BLKIF_INTEGRITY_INLINE_BYTES,
  BLKIF_INTEGRITY_MAX_DESCRIPTORS,
  BLKIF_INTEGRITY_REQUEST_SIZE,
  BLKIF_OP_INTEGRITY,
  BLKIF_PI_CAUGHT_BACKEND,
  BLKIF_PI_CAUGHT_DEVICE,
  BLKIF_PI_CHECK_APP,
  BLKIF_PI_CHECK_GUARD,
  BLKIF_PI_CHECK_REF,
  BLKIF_PI_ERR_APP,
  BLKIF_PI_ERR_GUARD,
  BLKIF_PI_ERR_REF,
  BLKIF_PI_INLINE,
  BLKIF_RSP_EPROTECTION,
  IntegrityKey,
  decodeInlineWrite,
  decodeIntegrityDescriptors,
  decodeIntegrityRequest,
  decodeIntegrityResponseInfo,
  decodePiSegment,
  encodeIntegrityDescriptors,
  encodeIntegrityRequest,
  encodePiSegment,
  writeIntegrityResponse,
  type BlkifIntegrityRequest,
  type BlkifPiSegment,
  type IntegrityResponseInfo,
} from '../src/blkif-integrity.ts';
import {
  BLKIF_OP_READ,
  BLKIF_OP_WRITE,
  BLKIF_REQUEST_SIZE,
  BLKIF_RSP_ERROR,
  BLKIF_RSP_OKAY,
  decodeResponse,
  encodeSegment,
  type BlkifSegment,
} from '../src/blkif.ts';
import { PvblkError } from '../src/errors.ts';
import { BufferRingMemory } from '../src/ring.ts';

/** Hex with spaces and line breaks allowed, for readable literal fixtures. */
const hex = (s: string): string => s.replace(/\s+/g, '');

/** A 112-byte slot with the given bytes set, everything else zero. */
function slot(bytes: Record<number, number>): Buffer {
  const b = Buffer.alloc(BLKIF_REQUEST_SIZE);
  for (const [off, v] of Object.entries(bytes)) b[Number(off)] = v;
  return b;
}

/** A slot with op 7, the given integrity_op, nr_segments, nr_pi_segments and id 0x2a. */
function header(integrityOp: number, nrSegments: number, nrPiSegments: number): Buffer {
  const b = slot({ 0: BLKIF_OP_INTEGRITY, 1: integrityOp, 8: 0x2a });
  b.writeUInt16LE(nrSegments, 2);
  b.writeUInt16LE(nrPiSegments, 4);
  return b;
}

const FIXTURE: BlkifIntegrityRequest = {
  operation: BLKIF_OP_INTEGRITY,
  integrityOp: BLKIF_OP_WRITE,
  nrSegments: 0x0203, // 515 data segments ...
  nrPiSegments: 0x0004, // ... + 4 PI segments = 519 descriptors: two indirect pages
  piFlags: BLKIF_PI_CHECK_GUARD | BLKIF_PI_CHECK_REF,
  id: 0x1122334455667788n,
  sectorNumber: 0x0000000102030405n,
  handle: 0xbeef,
  appTag: 0x1234,
  appTagMask: 0xff0f,
  refTag: 0xdeadbeef,
  indirectGrefs: [0x0a0b0c0d, 0x00000002],
};

// offsets: op@0 integrity_op@1 nr_segments@2 nr_pi_segments@4 pi_flags@6 pad@7 id@8 sector@16
// handle@24 app_tag@26 app_tag_mask@28 pad@30 ref_tag@32 indirect_grefs[8]@36 .. 68, zero to 112
const FIXTURE_HEX = hex(`
  07 01 0302 0400 05 00
  8877665544332211
  0504030201000000
  efbe 3412 0fff 0000
  efbeadde
  0d0c0b0a 02000000 00000000 00000000 00000000 00000000 00000000 00000000
  ${'00'.repeat(112 - 68)}
`);

describe('BLKIF_OP_INTEGRITY request layout', () => {
  it('has the documented sizes and constants', () => {
    expect(BLKIF_OP_INTEGRITY).toBe(7);
    expect(BLKIF_RSP_EPROTECTION).toBe(-3);
    expect(BLKIF_INTEGRITY_REQUEST_SIZE).toBe(68);
    expect(BLKIF_INTEGRITY_MAX_DESCRIPTORS).toBe(4096);
    expect([BLKIF_PI_CHECK_GUARD, BLKIF_PI_CHECK_APP, BLKIF_PI_CHECK_REF]).toEqual([1, 2, 4]);
    expect(BLKIF_PI_INLINE).toBe(0x80);
    expect(BLKIF_INTEGRITY_INLINE_BYTES).toBe(76);
    expect([BLKIF_PI_ERR_GUARD, BLKIF_PI_ERR_APP, BLKIF_PI_ERR_REF]).toEqual([1, 2, 3]);
    expect([BLKIF_PI_CAUGHT_BACKEND, BLKIF_PI_CAUGHT_DEVICE]).toEqual([0x10, 0x20]);
    expect(IntegrityKey).toEqual({
      feature: 'feature-integrity',
      type: 'integrity-type',
      guard: 'integrity-guard',
      interval: 'integrity-interval',
      tupleSize: 'integrity-tuple-size',
      tagSize: 'integrity-tag-size',
      device: 'integrity-device',
      inline: 'feature-integrity-inline',
    });
  });

  it('encodes every field at its offset, little-endian, and zeroes the rest of the 112-byte slot', () => {
    const b = encodeIntegrityRequest(FIXTURE);
    expect(b.length).toBe(112);
    expect(FIXTURE_HEX.length).toBe(224);
    expect(b.toString('hex')).toBe(FIXTURE_HEX);
  });

  it('encodes 64-bit id and sector modulo 2^64 and a full 8-gref array up to byte 68', () => {
    const b = encodeIntegrityRequest({
      ...FIXTURE,
      integrityOp: BLKIF_OP_READ,
      nrSegments: 1,
      nrPiSegments: 1,
      piFlags: 0,
      id: -1n,
      sectorNumber: 1n << 64n, // wraps to 0
      handle: 0,
      appTag: 0xffff,
      appTagMask: 0,
      refTag: -1, // >>> 0: 0xffffffff
      indirectGrefs: [1, 2, 3, 4, 5, 6, 7, 0xffffffff],
    });
    expect(b.toString('hex')).toBe(
      hex(`
        07 00 0100 0100 00 00
        ffffffffffffffff
        0000000000000000
        0000 ffff 0000 0000
        ffffffff
        01000000 02000000 03000000 04000000 05000000 06000000 07000000 ffffffff
        ${'00'.repeat(44)}
      `),
    );
  });

  it('decodes the literal fixture back to the request (grefs for ceil(519/512) = 2 pages)', () => {
    const d = decodeIntegrityRequest(Buffer.from(FIXTURE_HEX, 'hex'), 1024);
    expect(d).toEqual({ ok: true, request: FIXTURE });
  });

  it('reads only the grefs the descriptor count needs, and decodes from a slot at an odd offset', () => {
    const big = Buffer.alloc(3 + 112 + 5, 0xee);
    const s = header(BLKIF_OP_READ, 11, 1); // 12 descriptors: one page
    s.writeUInt32LE(77, 36);
    s.writeUInt32LE(88, 40); // a second gref the request does not use
    s.copy(big, 3);
    const d = decodeIntegrityRequest(big.subarray(3, 3 + 112), 11);
    expect(d).toEqual({
      ok: true,
      request: {
        operation: 7,
        integrityOp: 0,
        nrSegments: 11,
        nrPiSegments: 1,
        piFlags: 0,
        id: 42n,
        sectorNumber: 0n,
        handle: 0,
        appTag: 0,
        appTagMask: 0,
        refTag: 0,
        indirectGrefs: [77],
      },
    });
  });

  it('round-trips any valid request', () => {
    const req = fc
      .record({
        integrityOp: fc.constantFrom(BLKIF_OP_READ, BLKIF_OP_WRITE),
        nrSegments: fc.integer({ min: 1, max: 4095 }),
        piFrac: fc.double({ min: 0, max: 1, noNaN: true }),
        piFlags: fc.integer({ min: 0, max: 7 }),
        id: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        sectorNumber: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        handle: fc.integer({ min: 0, max: 0xffff }),
        appTag: fc.integer({ min: 0, max: 0xffff }),
        appTagMask: fc.integer({ min: 0, max: 0xffff }),
        refTag: fc.integer({ min: 0, max: 0xffffffff }),
        grefs: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 8, maxLength: 8 }),
      })
      .map((r): BlkifIntegrityRequest => {
        const nrPiSegments = 1 + Math.floor(r.piFrac * (4096 - r.nrSegments - 1));
        const pages = Math.ceil((r.nrSegments + nrPiSegments) / 512);
        return {
          operation: BLKIF_OP_INTEGRITY,
          integrityOp: r.integrityOp,
          nrSegments: r.nrSegments,
          nrPiSegments,
          piFlags: r.piFlags,
          id: r.id,
          sectorNumber: r.sectorNumber,
          handle: r.handle,
          appTag: r.appTag,
          appTagMask: r.appTagMask,
          refTag: r.refTag,
          indirectGrefs: r.grefs.slice(0, pages),
        };
      });
    fc.assert(
      fc.property(req, (r) => {
        expect(decodeIntegrityRequest(encodeIntegrityRequest(r), 4096)).toEqual({ ok: true, request: r });
      }),
      { numRuns: 500 },
    );
  });
});

describe('BLKIF_OP_INTEGRITY inline (BLKIF_PI_INLINE)', () => {
  /** A 4 KiB write with its 8 tuples in the slot: one data descriptor, then 64 bytes of tuples. */
  const inlineWrite = (): BlkifIntegrityRequest => {
    const inline = Buffer.alloc(BLKIF_INTEGRITY_INLINE_BYTES);
    encodeSegment(inline, 0, { gref: 0x11223344, firstSect: 0, lastSect: 7 });
    for (let i = 0; i < 64; i++) inline[8 + i] = 0xa0 + i;
    return {
      operation: BLKIF_OP_INTEGRITY,
      integrityOp: BLKIF_OP_WRITE,
      nrSegments: 1,
      nrPiSegments: 0,
      piFlags: BLKIF_PI_INLINE | BLKIF_PI_CHECK_GUARD | BLKIF_PI_CHECK_REF,
      id: 9n,
      sectorNumber: 64n,
      handle: 0x300,
      appTag: 0,
      appTagMask: 0xffff,
      refTag: 64,
      indirectGrefs: [],
      inline,
    };
  };

  it("puts the descriptors and a write's tuples in the slot from @36, and decodes them back from a copy", () => {
    const r = inlineWrite();
    const slot = encodeIntegrityRequest(r);
    expect(slot[6]).toBe(0x85);
    expect(slot.subarray(36, 44)).toEqual(Buffer.from('4433221100070000', 'hex'));
    expect(slot.subarray(44, 108)).toEqual(r.inline!.subarray(8, 72));
    const d = decodeIntegrityRequest(slot, 256);
    expect(d).toEqual({ ok: true, request: r });
    slot.fill(0); // the decoded request does not see the slot change
    const w = decodeInlineWrite((d as { request: BlkifIntegrityRequest }).request.inline!, 1, (n) => n * 8);
    expect(w).toEqual({
      ok: true,
      data: [{ gref: 0x11223344, firstSect: 0, lastSect: 7 }],
      tuples: r.inline!.subarray(8, 72),
    });
  });

  it('round-trips any inline request that fits the slot', () => {
    const req = fc
      .record({
        write: fc.boolean(),
        nrSegments: fc.integer({ min: 1, max: 9 }),
        nrPi: fc.integer({ min: 0, max: 8 }),
        bytes: fc.uint8Array({ minLength: 76, maxLength: 76 }),
        checks: fc.integer({ min: 0, max: 7 }),
      })
      .filter((r) => r.nrSegments + r.nrPi <= 9 && (r.nrPi > 0 || r.write))
      .map((r): BlkifIntegrityRequest => ({
        operation: BLKIF_OP_INTEGRITY,
        integrityOp: r.write ? BLKIF_OP_WRITE : BLKIF_OP_READ,
        nrSegments: r.nrSegments,
        nrPiSegments: r.nrPi,
        piFlags: BLKIF_PI_INLINE | r.checks,
        id: 1n,
        sectorNumber: 8n,
        handle: 1,
        appTag: 2,
        appTagMask: 3,
        refTag: 4,
        indirectGrefs: [],
        inline: Buffer.from(r.bytes),
      }));
    fc.assert(
      fc.property(req, (r) => {
        expect(decodeIntegrityRequest(encodeIntegrityRequest(r), 256)).toEqual({ ok: true, request: r });
      }),
      { numRuns: 300 },
    );
  });

  it('refuses an inline read without PI segments, and more descriptors than the slot holds', () => {
    const slot = encodeIntegrityRequest(inlineWrite());
    slot[1] = BLKIF_OP_READ;
    expect(decodeIntegrityRequest(slot, 256)).toMatchObject({
      ok: false,
      id: 9n,
      problem: { code: 'BAD_NR_SEGMENTS', detail: 'Bad number of PI segments in request (0, inline)' },
    });
    slot[1] = BLKIF_OP_WRITE;
    slot.writeUInt16LE(9, 2);
    slot.writeUInt16LE(1, 4);
    expect(decodeIntegrityRequest(slot, 256)).toMatchObject({
      ok: false,
      problem: {
        max: 9,
        detail: 'Bad number of segments in an inline request (9 + 1; at most 9 fit the slot)',
      },
    });
    slot.writeUInt16LE(8, 2);
    expect(decodeIntegrityRequest(slot, 256)).toMatchObject({ ok: true });
  });

  it('refuses reserved pi_flags bits, naming them', () => {
    const slot = encodeIntegrityRequest(inlineWrite());
    for (const bit of [3, 4, 5, 6]) {
      const s = Buffer.from(slot);
      s[6] |= 1 << bit;
      expect(decodeIntegrityRequest(s, 256)).toMatchObject({
        ok: false,
        id: 9n,
        problem: { detail: `Reserved pi_flags bits set (0x${(0x85 | (1 << bit)).toString(16)})` },
      });
    }
  });

  it('refuses inline tuples that do not fit after the descriptors, or a bad data descriptor', () => {
    const inline = Buffer.alloc(76);
    encodeSegment(inline, 0, { gref: 1, firstSect: 0, lastSect: 7 });
    encodeSegment(inline, 8, { gref: 2, firstSect: 0, lastSect: 7 });
    // 16 sectors need 128 bytes of tuples; 60 are left
    expect(decodeInlineWrite(inline, 2, (n) => n * 8)).toMatchObject({
      ok: false,
      problem: {
        code: 'BAD_NR_SEGMENTS',
        detail: 'inline tuples for 16 sectors need 128 bytes after 2 descriptors; the slot has 76',
      },
    });
    // with 4096-byte intervals, 2 tuples: they fit
    expect(decodeInlineWrite(inline, 2, (n) => (n / 8) * 8)).toMatchObject({
      ok: true,
      tuples: inline.subarray(16, 32),
    });
    encodeSegment(inline, 0, { gref: 1, firstSect: 5, lastSect: 2 });
    expect(decodeInlineWrite(inline, 2, (n) => n * 8)).toMatchObject({
      ok: false,
      problem: { code: 'BAD_SEGMENT', index: 0 },
    });
  });

  it('will not encode an inline request whose bytes do not fit or that also names indirect pages', () => {
    const r = inlineWrite();
    expect(() => encodeIntegrityRequest({ ...r, inline: Buffer.alloc(77) })).toThrow(PvblkError);
    expect(() => encodeIntegrityRequest({ ...r, indirectGrefs: [5] })).toThrow('no indirect page');
    expect(() => encodeIntegrityRequest({ ...r, inline: undefined })).toThrow(PvblkError);
  });
});

describe('decodeIntegrityRequest on hostile slots', () => {
  it('refuses a slot copy shorter than a request, and a response slot shorter than a response', () => {
    const around = Buffer.alloc(256, 0);
    expect(() => decodeIntegrityRequest(around.subarray(0, BLKIF_REQUEST_SIZE - 1), 256)).toThrow(
      'integrity slot copy is 111 bytes, need 112',
    );
    expect(() => decodeIntegrityResponseInfo(around.subarray(0, 12))).toThrow(
      'integrity response slot is 12 bytes, need 16',
    );
  });

  it('rejects an integrity_op other than READ or WRITE, echoing id and operation 7', () => {
    for (const op of [2, 3, 5, 6, 7, 0xff]) {
      expect(decodeIntegrityRequest(header(op, 1, 1), 256)).toEqual({
        ok: false,
        id: 42n,
        operation: 7,
        problem: {
          code: 'BAD_INDIRECT_OP',
          indirectOp: op,
          detail: `Invalid integrity operation (${op})`,
        },
      });
    }
  });

  it('rejects nr_segments 0 and above the backend limit, accepts the limit itself', () => {
    expect(decodeIntegrityRequest(header(BLKIF_OP_WRITE, 0, 1), 256)).toEqual({
      ok: false,
      id: 42n,
      operation: 7,
      problem: {
        code: 'BAD_NR_SEGMENTS',
        nrSegments: 0,
        max: 256,
        detail: 'Bad number of segments in request (0)',
      },
    });
    expect(decodeIntegrityRequest(header(BLKIF_OP_WRITE, 257, 1), 256)).toMatchObject({
      ok: false,
      problem: { code: 'BAD_NR_SEGMENTS', nrSegments: 257, max: 256 },
    });
    expect(decodeIntegrityRequest(header(BLKIF_OP_WRITE, 0xffff, 1), 256)).toMatchObject({
      ok: false,
      problem: { code: 'BAD_NR_SEGMENTS', nrSegments: 0xffff, max: 256 },
    });
    expect(decodeIntegrityRequest(header(BLKIF_OP_WRITE, 256, 1), 256)).toMatchObject({
      ok: true,
      request: { nrSegments: 256, nrPiSegments: 1, indirectGrefs: [0] },
    });
  });

  it('rejects nr_pi_segments 0', () => {
    expect(decodeIntegrityRequest(header(BLKIF_OP_READ, 8, 0), 256)).toEqual({
      ok: false,
      id: 42n,
      operation: 7,
      problem: {
        code: 'BAD_NR_SEGMENTS',
        nrSegments: 0,
        max: 4088,
        detail: 'Bad number of PI segments in request (0)',
      },
    });
  });

  it('rejects data + PI descriptors beyond 8 pages × 512, accepts exactly 4096', () => {
    expect(decodeIntegrityRequest(header(BLKIF_OP_WRITE, 4000, 97), 4096)).toMatchObject({
      ok: false,
      problem: { code: 'BAD_NR_SEGMENTS', nrSegments: 97, max: 96 },
    });
    expect(decodeIntegrityRequest(header(BLKIF_OP_WRITE, 1, 0xffff), 4096)).toMatchObject({
      ok: false,
      problem: { code: 'BAD_NR_SEGMENTS', nrSegments: 0xffff, max: 4095 },
    });
    const full = header(BLKIF_OP_WRITE, 4000, 96);
    for (let i = 0; i < 8; i++) full.writeUInt32LE(100 + i, 36 + 4 * i);
    expect(decodeIntegrityRequest(full, 4096)).toMatchObject({
      ok: true,
      request: {
        nrSegments: 4000,
        nrPiSegments: 96,
        indirectGrefs: [100, 101, 102, 103, 104, 105, 106, 107],
      },
    });
  });

  it('never throws on random bytes (at any offset in a larger buffer) and round-trips what it accepts', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 112, maxLength: 112 }),
        fc.nat(7),
        fc.integer({ min: 0, max: 0xffff }),
        fc.boolean(),
        (bytes, pad, maxSegments, plausible) => {
          if (plausible) {
            // most random slots die at integrity_op; half the runs get past it to the counts
            bytes[1] &= 1;
            bytes[3] &= 0x0f;
            bytes[5] &= 0x03;
          }
          const host = new Uint8Array(pad + 112);
          host.set(bytes, pad);
          const s = host.subarray(pad);
          const d = decodeIntegrityRequest(s, maxSegments);
          if (!d.ok) {
            expect(d.operation).toBe(7);
            expect(d.id).toBe(Buffer.from(bytes).readBigUInt64LE(8));
            expect(typeof d.problem.detail).toBe('string');
            return;
          }
          const r = d.request;
          expect(r.nrSegments).toBeGreaterThanOrEqual(1);
          expect(r.nrSegments).toBeLessThanOrEqual(maxSegments);
          if ((r.piFlags & BLKIF_PI_INLINE) !== 0) {
            // inline: everything in the slot's 76 bytes, no page; only a write may carry its tuples
            expect(r.nrSegments + r.nrPiSegments).toBeLessThanOrEqual(9);
            if (r.nrPiSegments === 0) expect(r.integrityOp).toBe(BLKIF_OP_WRITE);
            expect(r.indirectGrefs).toEqual([]);
            expect(r.inline).toEqual(Buffer.from(bytes.subarray(36)));
          } else {
            expect(r.nrPiSegments).toBeGreaterThanOrEqual(1);
            expect(r.nrSegments + r.nrPiSegments).toBeLessThanOrEqual(4096);
            expect(r.indirectGrefs).toHaveLength(Math.ceil((r.nrSegments + r.nrPiSegments) / 512));
            expect(r.inline).toBeUndefined();
          }
          expect(decodeIntegrityRequest(encodeIntegrityRequest(r), maxSegments)).toEqual(d);
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('PI segment descriptors', () => {
  it('encode as gref u32, offset u16, length u16, little-endian', () => {
    const b = Buffer.alloc(16, 0xaa);
    encodePiSegment(b, 8, { gref: 0x01020304, offset: 0x0ff8, length: 0x0008 });
    expect(b.toString('hex')).toBe(hex('aaaaaaaaaaaaaaaa 04030201 f80f 0800'));
    expect(decodePiSegment(b, 8)).toEqual({ gref: 0x01020304, offset: 0x0ff8, length: 8 });
  });

  /** Data segments then PI segments in fresh indirect pages, as blkfront lays them out. */
  function pagesFor(data: BlkifSegment[], pi: BlkifPiSegment[]): Buffer[] {
    const n = Math.ceil((data.length + pi.length) / 512);
    const pages = Array.from({ length: n }, () => Buffer.alloc(4096));
    encodeIntegrityDescriptors(pages, data, pi);
    return pages;
  }
  const tuplesFor = (sectors: number): number => sectors * 8;

  it('put data descriptors first and PI descriptors after them, across the page boundary', () => {
    const data = Array.from({ length: 511 }, (_, i) => ({ gref: 1000 + i, firstSect: 0, lastSect: 7 }));
    // 511 × 8 sectors = 4088 tuples = 32704 bytes of PI: seven full pages and 4032 bytes of an eighth
    const piSegs: BlkifPiSegment[] = [];
    for (let i = 0; i < 7; i++) piSegs.push({ gref: 2000 + i, offset: 0, length: 4096 });
    piSegs.push({ gref: 2007, offset: 64, length: 4032 });
    const pages = pagesFor(data, piSegs);
    expect(pages).toHaveLength(2);
    // descriptor 511 (last of page 0) is PI segment 0; descriptor 512 opens page 1 with PI segment 1
    expect(pages[0].subarray(511 * 8, 512 * 8).toString('hex')).toBe(hex('d0070000 0000 0010'));
    expect(pages[1].subarray(0, 8).toString('hex')).toBe(hex('d1070000 0000 0010'));
    expect(pages[1].subarray(6 * 8, 7 * 8).toString('hex')).toBe(hex('d7070000 4000 c00f'));
    expect(decodeIntegrityDescriptors(pages, 511, 8, tuplesFor)).toEqual({
      ok: true,
      data,
      pi: piSegs,
    });
  });

  it('reject a bad data segment by its index', () => {
    const pages = pagesFor(
      [
        { gref: 1, firstSect: 0, lastSect: 7 },
        { gref: 2, firstSect: 0, lastSect: 8 },
      ],
      [{ gref: 3, offset: 0, length: 128 }],
    );
    expect(decodeIntegrityDescriptors(pages, 2, 1, tuplesFor)).toMatchObject({
      ok: false,
      problem: { code: 'BAD_SEGMENT', index: 1, firstSect: 0, lastSect: 8 },
    });
  });

  it.each([
    { what: 'odd offset', seg: { gref: 9, offset: 1, length: 64 } },
    { what: 'offset not a tuple multiple', seg: { gref: 9, offset: 4, length: 64 } },
    { what: 'odd length', seg: { gref: 9, offset: 0, length: 63 } },
    { what: 'length not a tuple multiple', seg: { gref: 9, offset: 0, length: 60 } },
    { what: 'zero length', seg: { gref: 9, offset: 0, length: 0 } },
    { what: 'crossing the page end', seg: { gref: 9, offset: 4088, length: 16 } },
    { what: 'starting past the page', seg: { gref: 9, offset: 4096, length: 8 } },
    { what: 'longer than a page', seg: { gref: 9, offset: 0, length: 4104 } },
  ])('reject a PI segment with $what, naming its descriptor index', ({ seg }) => {
    // 8 sectors of data need 64 bytes of PI: segment 0 is fine, segment 1 (descriptor 2) is bad
    const pages = pagesFor(
      [{ gref: 1, firstSect: 0, lastSect: 7 }],
      [{ gref: 2, offset: 0, length: 8 }, seg],
    );
    expect(decodeIntegrityDescriptors(pages, 1, 2, tuplesFor)).toEqual({
      ok: false,
      problem: {
        code: 'BAD_SEGMENT',
        index: 2,
        firstSect: seg.offset,
        lastSect: seg.length,
        detail: `PI segment 1: offset ${seg.offset}, length ${seg.length} (need multiples of 8 within the page)`,
      },
    });
  });

  it('accept a PI segment ending exactly at the page end', () => {
    const pages = pagesFor([{ gref: 1, firstSect: 0, lastSect: 0 }], [{ gref: 2, offset: 4088, length: 8 }]);
    expect(decodeIntegrityDescriptors(pages, 1, 1, tuplesFor)).toMatchObject({ ok: true });
  });

  it('reject PI that does not match the data sectors (too little, too much)', () => {
    const data = [
      { gref: 1, firstSect: 0, lastSect: 7 },
      { gref: 2, firstSect: 2, lastSect: 4 },
    ]; // 11 sectors: 88 bytes of PI
    expect(
      decodeIntegrityDescriptors(pagesFor(data, [{ gref: 3, offset: 0, length: 80 }]), 2, 1, tuplesFor),
    ).toEqual({
      ok: false,
      problem: {
        code: 'BAD_NR_SEGMENTS',
        nrSegments: 1,
        max: 88,
        detail: 'PI segments carry 80 bytes for 11 sectors (need 88)',
      },
    });
    expect(
      decodeIntegrityDescriptors(
        pagesFor(data, [
          { gref: 3, offset: 0, length: 48 },
          { gref: 4, offset: 0, length: 48 },
        ]),
        2,
        2,
        tuplesFor,
      ),
    ).toMatchObject({ ok: false, problem: { code: 'BAD_NR_SEGMENTS', nrSegments: 2, max: 88 } });
    expect(
      decodeIntegrityDescriptors(
        pagesFor(data, [
          { gref: 3, offset: 0, length: 40 },
          { gref: 4, offset: 8, length: 48 },
        ]),
        2,
        2,
        tuplesFor,
      ),
    ).toMatchObject({ ok: true });
  });

  it('never throw on random descriptor pages', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 700 }),
        fc.integer({ min: 1, max: 400 }),
        fc.uint8Array({ minLength: 8192, maxLength: 8192 }),
        (nrSegments, nrPi, bytes) => {
          const buf = Buffer.from(bytes);
          const pages = [buf.subarray(0, 4096), buf.subarray(4096)];
          const d = decodeIntegrityDescriptors(pages, nrSegments, nrPi, tuplesFor);
          if (d.ok) {
            expect(d.data).toHaveLength(nrSegments);
            expect(d.pi).toHaveLength(nrPi);
          } else {
            expect(typeof d.problem.detail).toBe('string');
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('integrity responses', () => {
  /** A 64-byte buffer of 0xAA with the response written at offset 16. */
  function written(rsp: { id: bigint; status: number; info?: IntegrityResponseInfo }): Buffer {
    const buf = Buffer.alloc(64, 0xaa);
    writeIntegrityResponse(new BufferRingMemory(buf), 16, rsp);
    // the neighbouring slots are untouched
    expect(buf.subarray(0, 16).every((b) => b === 0xaa)).toBe(true);
    expect(buf.subarray(32).every((b) => b === 0xaa)).toBe(true);
    return buf.subarray(16, 32);
  }

  it('write id@0, op 7 @8, pi_status@9, status@10, pi_offset@12', () => {
    const s = written({
      id: 0x0102030405060708n,
      status: BLKIF_RSP_EPROTECTION,
      info: { check: 'guard', caughtBy: 'device', sectorOffset: 0x1234 },
    });
    expect(s.toString('hex')).toBe(hex('0807060504030201 07 21 fdff 34120000'));
    expect(decodeResponse(s)).toEqual({ id: 0x0102030405060708n, operation: 7, status: -3 });
    expect(decodeIntegrityResponseInfo(s)).toEqual({
      check: 'guard',
      caughtBy: 'device',
      sectorOffset: 0x1234,
    });
  });

  it('encode app / ref and backend in pi_status', () => {
    const app = written({
      id: 5n,
      status: BLKIF_RSP_EPROTECTION,
      info: { check: 'app', caughtBy: 'backend', sectorOffset: 7 },
    });
    expect(app.toString('hex')).toBe(hex('0500000000000000 07 12 fdff 07000000'));
    const ref = written({
      id: 5n,
      status: BLKIF_RSP_EPROTECTION,
      info: { check: 'ref', caughtBy: 'device', sectorOffset: 0xffffffff },
    });
    expect(ref.toString('hex')).toBe(hex('0500000000000000 07 23 fdff ffffffff'));
  });

  it('define all 16 bytes even for a plain OK or ERROR (no stale padding reaches the guest)', () => {
    expect(written({ id: 9n, status: BLKIF_RSP_OKAY }).toString('hex')).toBe(
      hex('0900000000000000 07 00 0000 00000000'),
    );
    expect(written({ id: 9n, status: BLKIF_RSP_ERROR }).toString('hex')).toBe(
      hex('0900000000000000 07 00 ffff 00000000'),
    );
    // an OK answer never carries a failing interval's offset
    expect(
      written({
        id: 9n,
        status: BLKIF_RSP_OKAY,
        info: { check: null, caughtBy: null, sectorOffset: 99 },
      }).toString('hex'),
    ).toBe(hex('0900000000000000 07 00 0000 00000000'));
  });

  it('round-trip every check × caught-by combination and any offset', () => {
    const checks = [null, 'guard', 'app', 'ref'] as const;
    const where = [null, 'backend', 'device'] as const;
    fc.assert(
      fc.property(
        fc.constantFrom(...checks),
        fc.constantFrom(...where),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        (check, caughtBy, sectorOffset, id) => {
          const s = written({ id, status: BLKIF_RSP_EPROTECTION, info: { check, caughtBy, sectorOffset } });
          expect(decodeResponse(s)).toEqual({ id, operation: 7, status: -3 });
          expect(decodeIntegrityResponseInfo(s)).toEqual({ check, caughtBy, sectorOffset });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('decode undefined pi_status bits as no check / unknown place', () => {
    const s = Buffer.from(hex('0100000000000000 07 33 fdff 02000000'), 'hex');
    expect(decodeIntegrityResponseInfo(s)).toEqual({ check: 'ref', caughtBy: null, sectorOffset: 2 });
    const t = Buffer.from(hex('0100000000000000 07 c0 fdff 00000000'), 'hex');
    expect(decodeIntegrityResponseInfo(t)).toEqual({ check: null, caughtBy: null, sectorOffset: 0 });
  });
});
