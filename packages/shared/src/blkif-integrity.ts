/**
 * pvblk's proposed blkif extension for T10 protection information (DIF/DIX) — the wire side. The
 * specification, with the reasoning behind each choice, is docs/blkif-integrity.md.
 *
 * One ring slot per request: BLKIF_OP_INTEGRITY carries a READ or WRITE whose data segments and PI
 * segments both live in indirect pages (data first, then PI), so a request can move as much data as
 * an indirect request and the PI for all of it. The response is the ordinary 16-byte blkif_response;
 * for this operation its two padding fields say which check failed, where it was caught, and at which
 * sector offset.
 */
import {
  bufferView,
  bytesView,
  copyInto,
  readU16LE,
  readU32LE,
  readU64LE,
  readU8,
  writeI16LE,
  writeU16LE,
  writeU32LE,
  writeU64LE,
  writeU8,
  zeroedBytes,
} from './bytes.ts';
import {
  BLKIF_OP_READ,
  BLKIF_OP_WRITE,
  BLKIF_REQUEST_SIZE,
  BLKIF_RESPONSE_SIZE,
  BLKIF_RSP_OKAY,
  BLKIF_SEGMENT_SIZE,
  BLKIF_SEGS_PER_INDIRECT_FRAME,
  BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST,
  segmentProblem,
  descriptorAt,
  decodeSegment,
  encodeSegment,
  checkDescriptor,
  checkSlot,
  type BlkifRequestProblem,
  type BlkifSegment,
} from './blkif.ts';
import type { RingMemory } from './ring.ts';
import { PvblkError } from './errors.ts';

export const BLKIF_OP_INTEGRITY = 7;
/** Status of an integrity request whose protection information failed a check. */
export const BLKIF_RSP_EPROTECTION = -3;

/** pi_flags: which checks the receiver applies (BIP_CHECK_* / NVMe PRCHK). */
export const BLKIF_PI_CHECK_GUARD = 1 << 0;
export const BLKIF_PI_CHECK_APP = 1 << 1;
export const BLKIF_PI_CHECK_REF = 1 << 2;
/**
 * pi_flags: the descriptors are in the slot from @36, not in indirect pages — data descriptors, then
 * PI descriptors; a write with no PI descriptor carries its tuples there instead, right after its
 * data descriptors. Only towards a backend that offers `feature-integrity-inline`.
 */
export const BLKIF_PI_INLINE = 1 << 7;
/** Bytes of the slot an inline request has for descriptors and tuples: @36 to the end. */
export const BLKIF_INTEGRITY_INLINE_BYTES = BLKIF_REQUEST_SIZE - 36;
/** Descriptors an inline request can hold: 9. */
export const BLKIF_INTEGRITY_INLINE_DESCRIPTORS = Math.floor(
  BLKIF_INTEGRITY_INLINE_BYTES / BLKIF_SEGMENT_SIZE,
);
/** pi_flags bits with a meaning; the others are reserved and refused, so a later flag is never misread. */
const BLKIF_PI_FLAGS = BLKIF_PI_CHECK_GUARD | BLKIF_PI_CHECK_APP | BLKIF_PI_CHECK_REF | BLKIF_PI_INLINE;

/** Response byte 9 (pi_status): bits 0-1 the failed check, bits 4-5 where it was caught. */
export const BLKIF_PI_ERR_GUARD = 1;
export const BLKIF_PI_ERR_APP = 2;
export const BLKIF_PI_ERR_REF = 3;
export const BLKIF_PI_CAUGHT_BACKEND = 1 << 4;
export const BLKIF_PI_CAUGHT_DEVICE = 2 << 4;

export const BLKIF_INTEGRITY_REQUEST_SIZE = 68;
/** Data plus PI descriptors share the indirect pages: 8 pages × 512 descriptors. */
export const BLKIF_INTEGRITY_MAX_DESCRIPTORS =
  BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * BLKIF_SEGS_PER_INDIRECT_FRAME;

/** XenStore keys of the extension. */
export const IntegrityKey = {
  /** backend: offers the extension; frontend: opts in. */
  feature: 'feature-integrity',
  type: 'integrity-type',
  guard: 'integrity-guard',
  interval: 'integrity-interval',
  tupleSize: 'integrity-tuple-size',
  tagSize: 'integrity-tag-size',
  /** 1 when the backend's medium stores PI (not only its host/HBA). */
  device: 'integrity-device',
  /** backend: accepts BLKIF_PI_INLINE requests. */
  inline: 'feature-integrity-inline',
} as const;

/** Where PI lives inside a granted frame: `length` bytes at `offset`, both multiples of 8. */
export interface BlkifPiSegment {
  gref: number;
  offset: number;
  length: number;
}

export interface BlkifIntegrityRequest {
  operation: typeof BLKIF_OP_INTEGRITY;
  /** READ or WRITE. */
  integrityOp: number;
  nrSegments: number;
  nrPiSegments: number;
  piFlags: number;
  id: bigint;
  sectorNumber: bigint;
  handle: number;
  appTag: number;
  appTagMask: number;
  /** Expected ref tag of the first interval, as the frontend computed it (its virtual seed). */
  refTag: number;
  /** ceil((nrSegments + nrPiSegments) / 512) pages of descriptors; none with BLKIF_PI_INLINE. */
  indirectGrefs: number[];
  /**
   * With BLKIF_PI_INLINE in `piFlags`: the slot's bytes from @36 (BLKIF_INTEGRITY_INLINE_BYTES),
   * holding the descriptors (and a write's tuples); a private copy once decoded.
   */
  inline?: Uint8Array;
}

export interface IntegrityResponseInfo {
  check: 'guard' | 'app' | 'ref' | null;
  caughtBy: 'backend' | 'device' | null;
  /** 512-byte sectors from the request's sector_number to the first failing interval. */
  sectorOffset: number;
}

export function encodeIntegrityRequest(r: BlkifIntegrityRequest): Buffer {
  const b = zeroedBytes(BLKIF_REQUEST_SIZE);
  writeU8(b, 0, BLKIF_OP_INTEGRITY);
  writeU8(b, 1, r.integrityOp);
  writeU16LE(b, 2, r.nrSegments);
  writeU16LE(b, 4, r.nrPiSegments);
  writeU8(b, 6, r.piFlags);
  writeU64LE(b, 8, BigInt.asUintN(64, r.id));
  writeU64LE(b, 16, BigInt.asUintN(64, r.sectorNumber));
  writeU16LE(b, 24, r.handle);
  writeU16LE(b, 26, r.appTag);
  writeU16LE(b, 28, r.appTagMask);
  writeU32LE(b, 32, r.refTag >>> 0);
  if ((r.piFlags & BLKIF_PI_INLINE) !== 0) {
    if (!r.inline || r.inline.length > BLKIF_INTEGRITY_INLINE_BYTES || r.indirectGrefs.length > 0)
      throw new PvblkError(
        'EINVAL',
        `an inline integrity request needs at most ${BLKIF_INTEGRITY_INLINE_BYTES} inline bytes and no indirect page`,
      );
    copyInto(b, 36, r.inline);
  } else {
    r.indirectGrefs.forEach((g, i) => writeU32LE(b, 36 + 4 * i, g >>> 0));
  }
  return b;
}

export type DecodedIntegrityRequest =
  | { ok: true; request: BlkifIntegrityRequest }
  | { ok: false; id: bigint; operation: number; problem: BlkifRequestProblem };

/** Decodes BLKIF_OP_INTEGRITY from a private slot copy; `maxSegments` is the backend's indirect limit. */
export function decodeIntegrityRequest(slot: Uint8Array, maxSegments: number): DecodedIntegrityRequest {
  checkSlot(slot, BLKIF_REQUEST_SIZE, 'integrity slot copy');
  const b = slot;
  const id = readU64LE(b, 8);
  const integrityOp = readU8(b, 1);
  const nrSegments = readU16LE(b, 2);
  const nrPiSegments = readU16LE(b, 4);
  const bad = (problem: BlkifRequestProblem): DecodedIntegrityRequest => ({
    ok: false,
    id,
    operation: BLKIF_OP_INTEGRITY,
    problem,
  });
  if (integrityOp !== BLKIF_OP_READ && integrityOp !== BLKIF_OP_WRITE) {
    return bad({
      code: 'BAD_INDIRECT_OP',
      indirectOp: integrityOp,
      detail: `Invalid integrity operation (${integrityOp})`,
    });
  }
  if (nrSegments === 0 || nrSegments > maxSegments) {
    return bad({
      code: 'BAD_NR_SEGMENTS',
      nrSegments,
      max: maxSegments,
      detail: `Bad number of segments in request (${nrSegments})`,
    });
  }
  const piFlags = readU8(b, 6);
  if ((piFlags & ~BLKIF_PI_FLAGS) !== 0) {
    return bad({
      code: 'BAD_INDIRECT_OP',
      indirectOp: integrityOp,
      detail: `Reserved pi_flags bits set (0x${piFlags.toString(16).padStart(2, '0')})`,
    });
  }
  const inline = (piFlags & BLKIF_PI_INLINE) !== 0;
  const maxDescriptors = inline ? BLKIF_INTEGRITY_INLINE_DESCRIPTORS : BLKIF_INTEGRITY_MAX_DESCRIPTORS;
  if (inline && nrSegments + nrPiSegments > maxDescriptors) {
    return bad({
      code: 'BAD_NR_SEGMENTS',
      nrSegments: nrSegments + nrPiSegments,
      max: maxDescriptors,
      detail: `Bad number of segments in an inline request (${nrSegments} + ${nrPiSegments}; at most ${maxDescriptors} fit the slot)`,
    });
  }
  // inline, a write may carry its tuples in the slot (no PI segment); a read needs pages to fill
  const tuplesInline = inline && nrPiSegments === 0 && integrityOp === BLKIF_OP_WRITE;
  if ((nrPiSegments === 0 && !tuplesInline) || nrSegments + nrPiSegments > maxDescriptors) {
    return bad({
      code: 'BAD_NR_SEGMENTS',
      nrSegments: nrPiSegments,
      max: maxDescriptors - nrSegments,
      detail: `Bad number of PI segments in request (${nrPiSegments}${inline ? ', inline' : ''})`,
    });
  }
  const indirectGrefs: number[] = [];
  if (!inline) {
    const pages = Math.ceil((nrSegments + nrPiSegments) / BLKIF_SEGS_PER_INDIRECT_FRAME);
    for (let i = 0; i < pages; i++) indirectGrefs.push(readU32LE(b, 36 + 4 * i));
  }
  return {
    ok: true,
    request: {
      operation: BLKIF_OP_INTEGRITY,
      integrityOp,
      nrSegments,
      nrPiSegments,
      piFlags,
      id,
      sectorNumber: readU64LE(b, 16),
      handle: readU16LE(b, 24),
      appTag: readU16LE(b, 26),
      appTagMask: readU16LE(b, 28),
      refTag: readU32LE(b, 32),
      indirectGrefs,
      // a copy: the descriptors and tuples are read from it later, after the slot buffer is reused
      ...(inline ? { inline: Buffer.from(bytesView(b, 36, BLKIF_REQUEST_SIZE - 36)) } : {}),
    },
  };
}

export function encodePiSegment(buf: Uint8Array, off: number, s: BlkifPiSegment): void {
  checkDescriptor(buf, off);
  writeU32LE(buf, off, s.gref >>> 0);
  writeU16LE(buf, off + 4, s.offset);
  writeU16LE(buf, off + 6, s.length);
}

export function decodePiSegment(buf: Uint8Array, off: number): BlkifPiSegment {
  checkDescriptor(buf, off);
  return { gref: readU32LE(buf, off), offset: readU16LE(buf, off + 4), length: readU16LE(buf, off + 6) };
}

/** Fills indirect pages with data descriptors followed by PI descriptors. */
export function encodeIntegrityDescriptors(
  pages: Uint8Array[],
  data: BlkifSegment[],
  pi: BlkifPiSegment[],
): void {
  data.forEach((s, i) => encodeSegment(...descriptorAt(pages, i), s));
  pi.forEach((s, i) => encodePiSegment(...descriptorAt(pages, data.length + i), s));
}

/**
 * Reads the descriptors of an integrity request once each from private page copies and checks them:
 * data segments as blkback checks any segment; PI segments must stay inside their frame, be whole
 * tuples, and together carry exactly `expectedPiBytes`.
 */
export function decodeIntegrityDescriptors(
  pages: Uint8Array[],
  nrSegments: number,
  nrPiSegments: number,
  piBytesForSectors: (dataSectors: number) => number,
): { ok: true; data: BlkifSegment[]; pi: BlkifPiSegment[] } | { ok: false; problem: BlkifRequestProblem } {
  const d = decodeDataDescriptors(pages, nrSegments);
  if (!d.ok) return d;
  const { data, sectors } = d;
  const pi: BlkifPiSegment[] = [];
  let piBytes = 0;
  for (let i = 0; i < nrPiSegments; i++) {
    const s = decodePiSegment(...descriptorAt(pages, nrSegments + i));
    if (s.length === 0 || s.length % 8 !== 0 || s.offset % 8 !== 0 || s.offset + s.length > 4096) {
      return {
        ok: false,
        problem: {
          code: 'BAD_SEGMENT',
          index: nrSegments + i,
          firstSect: s.offset,
          lastSect: s.length,
          detail: `PI segment ${i}: offset ${s.offset}, length ${s.length} (need multiples of 8 within the page)`,
        },
      };
    }
    piBytes += s.length;
    pi.push(s);
  }
  const want = piBytesForSectors(sectors);
  if (piBytes !== want) {
    return {
      ok: false,
      problem: {
        code: 'BAD_NR_SEGMENTS',
        nrSegments: nrPiSegments,
        max: want,
        detail: `PI segments carry ${piBytes} bytes for ${sectors} sectors (need ${want})`,
      },
    };
  }
  return { ok: true, data, pi };
}

function decodeDataDescriptors(
  pages: Uint8Array[],
  nrSegments: number,
): { ok: true; data: BlkifSegment[]; sectors: number } | { ok: false; problem: BlkifRequestProblem } {
  const data: BlkifSegment[] = [];
  let sectors = 0;
  for (let i = 0; i < nrSegments; i++) {
    const s = decodeSegment(...descriptorAt(pages, i));
    const p = segmentProblem(s, i);
    if (p) return { ok: false, problem: p };
    sectors += s.lastSect - s.firstSect + 1;
    data.push(s);
  }
  return { ok: true, data, sectors };
}

/**
 * An inline write with its tuples in the slot: the data descriptors, checked as any, then exactly
 * `piBytesForSectors(sectors)` bytes of tuples right after them, which must fit the slot. The tuples
 * are a view of `inline`, the request's private copy.
 */
export function decodeInlineWrite(
  inline: Uint8Array,
  nrSegments: number,
  piBytesForSectors: (dataSectors: number) => number,
): { ok: true; data: BlkifSegment[]; tuples: Uint8Array } | { ok: false; problem: BlkifRequestProblem } {
  const d = decodeDataDescriptors([inline], nrSegments);
  if (!d.ok) return d;
  const at = nrSegments * BLKIF_SEGMENT_SIZE;
  const want = piBytesForSectors(d.sectors);
  if (at + want > inline.length) {
    return {
      ok: false,
      problem: {
        code: 'BAD_NR_SEGMENTS',
        nrSegments,
        max: Math.floor(inline.length / BLKIF_SEGMENT_SIZE),
        detail: `inline tuples for ${d.sectors} sectors need ${want} bytes after ${nrSegments} descriptors; the slot has ${inline.length}`,
      },
    };
  }
  return { ok: true, data: d.data, tuples: bufferView(inline, at, want) };
}

/** Writes an integrity response: the base fields plus pi_status @9 and pi_offset @12. */
export function writeIntegrityResponse(
  mem: RingMemory,
  off: number,
  rsp: { id: bigint; status: number; info?: IntegrityResponseInfo },
): void {
  const b = zeroedBytes(BLKIF_RESPONSE_SIZE);
  writeU64LE(b, 0, BigInt.asUintN(64, rsp.id));
  writeU8(b, 8, BLKIF_OP_INTEGRITY);
  const i = rsp.info;
  let piStatus = 0;
  if (i?.check)
    piStatus |=
      i.check === 'guard' ? BLKIF_PI_ERR_GUARD : i.check === 'app' ? BLKIF_PI_ERR_APP : BLKIF_PI_ERR_REF;
  if (i?.caughtBy) piStatus |= i.caughtBy === 'backend' ? BLKIF_PI_CAUGHT_BACKEND : BLKIF_PI_CAUGHT_DEVICE;
  writeU8(b, 9, piStatus);
  writeI16LE(b, 10, rsp.status);
  writeU32LE(b, 12, rsp.status === BLKIF_RSP_OKAY ? 0 : (i?.sectorOffset ?? 0) >>> 0);
  // every byte is defined for this operation, so the whole slot is written: nothing stale is left
  mem.write(off, b);
}

/** The extension fields of a response to BLKIF_OP_INTEGRITY. */
export function decodeIntegrityResponseInfo(slot: Uint8Array): IntegrityResponseInfo {
  checkSlot(slot, BLKIF_RESPONSE_SIZE, 'integrity response slot');
  const s = readU8(slot, 9);
  const c = s & 3;
  const w = s & 0x30;
  return {
    check:
      c === BLKIF_PI_ERR_GUARD
        ? 'guard'
        : c === BLKIF_PI_ERR_APP
          ? 'app'
          : c === BLKIF_PI_ERR_REF
            ? 'ref'
            : null,
    caughtBy: w === BLKIF_PI_CAUGHT_BACKEND ? 'backend' : w === BLKIF_PI_CAUGHT_DEVICE ? 'device' : null,
    sectorOffset: readU32LE(slot, 12),
  };
}
