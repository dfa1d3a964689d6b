/**
 * The blkif wire structures (xen/include/public/io/blkif.h), x86_64 ABI — the `x86_64-abi` protocol
 * that a 64-bit frontend writes into XenStore. Offsets are those gcc gives the public header on
 * x86_64 (see the reference notes); all fields little-endian.
 *
 * Decoding treats the bytes as hostile: it never throws, it reads each field once from a private
 * copy (the XSA-155 double-fetch defence is the caller's copy; this code never goes back to shared
 * memory) and it returns a typed result that says what is wrong, so blkback can answer
 * BLKIF_RSP_ERROR or BLKIF_RSP_EOPNOTSUPP with the request's id.
 */
import {
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
  zeroedBytes,
} from './bytes.ts';
import { ringSize, XEN_PAGE_SIZE, type RingMemory } from './ring.ts';

export const BLKIF_OP_READ = 0;
export const BLKIF_OP_WRITE = 1;
export const BLKIF_OP_WRITE_BARRIER = 2;
export const BLKIF_OP_FLUSH_DISKCACHE = 3;
export const BLKIF_OP_RESERVED_1 = 4;
export const BLKIF_OP_DISCARD = 5;
export const BLKIF_OP_INDIRECT = 6;

export const BLKIF_OP_NAMES: Record<number, string> = {
  0: 'READ',
  1: 'WRITE',
  2: 'WRITE_BARRIER',
  3: 'FLUSH_DISKCACHE',
  4: 'RESERVED_1',
  5: 'DISCARD',
  6: 'INDIRECT',
};

export const BLKIF_RSP_OKAY = 0;
export const BLKIF_RSP_ERROR = -1;
export const BLKIF_RSP_EOPNOTSUPP = -2;

export const BLKIF_MAX_SEGMENTS_PER_REQUEST = 11;
export const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST = 8;
export const BLKIF_DISCARD_SECURE = 1 << 0;

export const VDISK_CDROM = 0x1;
export const VDISK_REMOVABLE = 0x2;
export const VDISK_READONLY = 0x4;

/** sizeof(union blkif_sring_entry) on x86_64: the request is the larger member. */
export const BLKIF_REQUEST_SIZE = 112;
export const BLKIF_RESPONSE_SIZE = 16;
export const BLKIF_SEGMENT_SIZE = 8;
export const BLKIF_DISCARD_SIZE = 32;
export const BLKIF_INDIRECT_SIZE = 64;
/** Segments per 4 KiB indirect page. */
export const BLKIF_SEGS_PER_INDIRECT_FRAME = XEN_PAGE_SIZE / BLKIF_SEGMENT_SIZE;
/** Protocol limit on indirect segments (8 pages × 512). */
export const BLKIF_MAX_INDIRECT_SEGMENTS =
  BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * BLKIF_SEGS_PER_INDIRECT_FRAME;

/** Ring units are always 512-byte sectors, whatever `sector-size` says (normative since Xen 221f2748e8). */
export const SECTOR_SIZE = 512;
export const SECTORS_PER_PAGE = XEN_PAGE_SIZE / SECTOR_SIZE;

/** RING_SIZE of a blkif ring of 2^order pages: 32, 64, 128, 256, 512. */
export function blkifRingSize(order: number): number {
  return ringSize(XEN_PAGE_SIZE << order, BLKIF_REQUEST_SIZE);
}

export interface BlkifSegment {
  gref: number;
  /** First 512-byte sector within the 4 KiB frame, inclusive. */
  firstSect: number;
  /** Last 512-byte sector within the frame, inclusive. */
  lastSect: number;
}

/** READ, WRITE, WRITE_BARRIER and FLUSH_DISKCACHE share struct blkif_request_rw. */
export interface BlkifRwRequest {
  operation: 0 | 1 | 2 | 3;
  nrSegments: number;
  handle: number;
  /** Opaque, echoed in the response; 64 bits so a hostile value survives intact. */
  id: bigint;
  sectorNumber: bigint;
  segments: BlkifSegment[];
}

export interface BlkifDiscardRequest {
  operation: 5;
  flag: number;
  handle: number;
  id: bigint;
  sectorNumber: bigint;
  nrSectors: bigint;
}

export interface BlkifIndirectRequest {
  operation: 6;
  /** READ or WRITE. */
  indirectOp: number;
  /** uint16, unlike the 8-bit field of direct requests. */
  nrSegments: number;
  id: bigint;
  sectorNumber: bigint;
  handle: number;
  /** Grants of the pages holding the segment array: ceil(nrSegments / 512) of them. */
  indirectGrefs: number[];
}

export type BlkifRequest = BlkifRwRequest | BlkifDiscardRequest | BlkifIndirectRequest;

export interface BlkifResponse {
  id: bigint;
  operation: number;
  status: number;
}

export type BlkifRequestProblem =
  | { code: 'EOPNOTSUPP'; detail: string }
  | { code: 'BAD_NR_SEGMENTS'; nrSegments: number; max: number; detail: string }
  | { code: 'BAD_SEGMENT'; index: number; firstSect: number; lastSect: number; detail: string }
  | { code: 'BAD_INDIRECT_OP'; indirectOp: number; detail: string };

export type DecodedRequest =
  | { ok: true; request: BlkifRequest }
  /** Enough to answer: the id as the frontend wrote it and the operation to echo. */
  | { ok: false; id: bigint; operation: number; problem: BlkifRequestProblem };

// Descriptors are read and written byte by byte (bytes.ts): a DataView made per descriptor
// was an allocation per segment on both sides of every request.

/**
 * A slot (or its private copy) shorter than the struct it holds is refused: the fields past its end
 * are not read as zeros, nor from whatever lies beyond it.
 */
export function checkSlot(slot: Uint8Array, size: number, what: string): void {
  if (slot.length < size) throw new RangeError(`${what} is ${slot.length} bytes, need ${size}`);
}

/** An 8-byte descriptor (a segment's or a PI segment's) must lie inside its page. */
export function checkDescriptor(buf: Uint8Array, off: number): void {
  if (!(Number.isInteger(off) && off >= 0 && off + BLKIF_SEGMENT_SIZE <= buf.length))
    throw new RangeError(`descriptor at offset ${off} is outside the ${buf.length}-byte buffer`);
}

export function encodeSegment(buf: Uint8Array, off: number, seg: BlkifSegment): void {
  checkDescriptor(buf, off);
  writeU16LE(buf, off + 6, 0);
  writeU32LE(buf, off, seg.gref >>> 0);
  buf[off + 4] = seg.firstSect;
  buf[off + 5] = seg.lastSect;
}

export function decodeSegment(buf: Uint8Array, off: number): BlkifSegment {
  checkDescriptor(buf, off);
  return { gref: readU32LE(buf, off), firstSect: buf[off + 4], lastSect: buf[off + 5] };
}

/** Checks blkback applies to every segment: 0 <= first_sect <= last_sect <= 7. */
export function segmentProblem(seg: BlkifSegment, index: number): BlkifRequestProblem | null {
  if (seg.lastSect >= SECTORS_PER_PAGE || seg.lastSect < seg.firstSect) {
    return {
      code: 'BAD_SEGMENT',
      index,
      firstSect: seg.firstSect,
      lastSect: seg.lastSect,
      detail: `segment ${index}: first_sect ${seg.firstSect}, last_sect ${seg.lastSect} (need first <= last <= 7)`,
    };
  }
  return null;
}

/** Sectors covered by a segment. */
export function segmentSectors(seg: BlkifSegment): number {
  return seg.lastSect - seg.firstSect + 1;
}

/** Encodes a whole 112-byte slot (unused bytes zero), as blkfront copies its shadow request in. */
export function encodeRequest(req: BlkifRequest): Buffer {
  const b = zeroedBytes(BLKIF_REQUEST_SIZE);
  writeU8(b, 0, req.operation);
  switch (req.operation) {
    case BLKIF_OP_DISCARD:
      writeU8(b, 1, req.flag);
      writeU16LE(b, 2, req.handle);
      writeU64LE(b, 8, BigInt.asUintN(64, req.id));
      writeU64LE(b, 16, BigInt.asUintN(64, req.sectorNumber));
      writeU64LE(b, 24, BigInt.asUintN(64, req.nrSectors));
      break;
    case BLKIF_OP_INDIRECT:
      writeU8(b, 1, req.indirectOp);
      writeU16LE(b, 2, req.nrSegments);
      writeU64LE(b, 8, BigInt.asUintN(64, req.id));
      writeU64LE(b, 16, BigInt.asUintN(64, req.sectorNumber));
      writeU16LE(b, 24, req.handle);
      req.indirectGrefs.forEach((g, i) => writeU32LE(b, 28 + 4 * i, g >>> 0));
      break;
    default:
      writeU8(b, 1, req.nrSegments);
      writeU16LE(b, 2, req.handle);
      writeU64LE(b, 8, BigInt.asUintN(64, req.id));
      writeU64LE(b, 16, BigInt.asUintN(64, req.sectorNumber));
      req.segments.forEach((s, i) => encodeSegment(b, 24 + BLKIF_SEGMENT_SIZE * i, s));
  }
  return b;
}

export interface DecodeLimits {
  /** The backend's feature-max-indirect-segments; 0 when it does not implement BLKIF_OP_INDIRECT. */
  maxIndirectSegments: number;
}

/**
 * Decodes one request from a private copy of its slot, like blkif_get_x86_64_req(): the operation is
 * read once, only min(nr_segments, 11) direct segments or min(8, ceil(n/512)) indirect grefs are
 * copied, and an unknown operation yields only its id (for the EOPNOTSUPP answer).
 */
export function decodeRequest(slot: Uint8Array, limits: DecodeLimits): DecodedRequest {
  checkSlot(slot, BLKIF_REQUEST_SIZE, 'blkif slot copy');
  const b = slot;
  const operation = readU8(b, 0);
  const id = readU64LE(b, 8);
  switch (operation) {
    case BLKIF_OP_READ:
    case BLKIF_OP_WRITE:
    case BLKIF_OP_WRITE_BARRIER:
    case BLKIF_OP_FLUSH_DISKCACHE: {
      const nrSegments = readU8(b, 1);
      const handle = readU16LE(b, 2);
      const sectorNumber = readU64LE(b, 16);
      const n = Math.min(nrSegments, BLKIF_MAX_SEGMENTS_PER_REQUEST);
      const segments: BlkifSegment[] = [];
      for (let i = 0; i < n; i++) segments.push(decodeSegment(b, 24 + BLKIF_SEGMENT_SIZE * i));
      const isFlush = operation === BLKIF_OP_FLUSH_DISKCACHE || operation === BLKIF_OP_WRITE_BARRIER;
      if (nrSegments > BLKIF_MAX_SEGMENTS_PER_REQUEST || (nrSegments === 0 && !isFlush)) {
        return {
          ok: false,
          id,
          operation,
          problem: {
            code: 'BAD_NR_SEGMENTS',
            nrSegments,
            max: BLKIF_MAX_SEGMENTS_PER_REQUEST,
            detail: `Bad number of segments in request (${nrSegments})`,
          },
        };
      }
      for (let i = 0; i < segments.length; i++) {
        const p = segmentProblem(segments[i], i);
        if (p) return { ok: false, id, operation, problem: p };
      }
      return {
        ok: true,
        request: { operation, nrSegments, handle, id, sectorNumber, segments },
      };
    }
    case BLKIF_OP_DISCARD:
      return {
        ok: true,
        request: {
          operation,
          flag: readU8(b, 1),
          handle: readU16LE(b, 2),
          id,
          sectorNumber: readU64LE(b, 16),
          nrSectors: readU64LE(b, 24),
        },
      };
    case BLKIF_OP_INDIRECT: {
      const indirectOp = readU8(b, 1);
      const nrSegments = readU16LE(b, 2);
      const sectorNumber = readU64LE(b, 16);
      const handle = readU16LE(b, 24);
      if (limits.maxIndirectSegments === 0) {
        return {
          ok: false,
          id,
          operation,
          problem: { code: 'EOPNOTSUPP', detail: 'indirect requests were not offered' },
        };
      }
      if (indirectOp !== BLKIF_OP_READ && indirectOp !== BLKIF_OP_WRITE) {
        return {
          ok: false,
          id,
          operation,
          problem: {
            code: 'BAD_INDIRECT_OP',
            indirectOp,
            detail: `Invalid indirect operation (${indirectOp})`,
          },
        };
      }
      const max = Math.min(limits.maxIndirectSegments, BLKIF_MAX_INDIRECT_SEGMENTS);
      if (nrSegments === 0 || nrSegments > max) {
        return {
          ok: false,
          id,
          operation,
          problem: {
            code: 'BAD_NR_SEGMENTS',
            nrSegments,
            max,
            detail: `Bad number of segments in request (${nrSegments})`,
          },
        };
      }
      const pages = Math.ceil(nrSegments / BLKIF_SEGS_PER_INDIRECT_FRAME);
      const indirectGrefs: number[] = [];
      for (let i = 0; i < pages; i++) indirectGrefs.push(readU32LE(b, 28 + 4 * i));
      return {
        ok: true,
        request: { operation, indirectOp, nrSegments, id, sectorNumber, handle, indirectGrefs },
      };
    }
    default:
      return {
        ok: false,
        id,
        operation,
        problem: { code: 'EOPNOTSUPP', detail: `unknown operation ${operation}` },
      };
  }
}

/** Where descriptor `i` of an indirect request lives: its page and byte offset (512 per page). */
export function descriptorAt(pages: Uint8Array[], i: number): [Uint8Array, number] {
  return [
    pages[Math.floor(i / BLKIF_SEGS_PER_INDIRECT_FRAME)],
    (i % BLKIF_SEGS_PER_INDIRECT_FRAME) * BLKIF_SEGMENT_SIZE,
  ];
}

/**
 * Reads the segment array of an indirect request from private copies of its indirect pages, each
 * segment read once and checked (xen_blkbk_parse_indirect reads first/last_sect once with READ_ONCE).
 */
export function decodeIndirectSegments(
  pages: Uint8Array[],
  nrSegments: number,
): { ok: true; segments: BlkifSegment[] } | { ok: false; problem: BlkifRequestProblem } {
  const segments: BlkifSegment[] = [];
  for (let i = 0; i < nrSegments; i++) {
    const seg = decodeSegment(...descriptorAt(pages, i));
    const p = segmentProblem(seg, i);
    if (p) return { ok: false, problem: p };
    segments.push(seg);
  }
  return { ok: true, segments };
}

/** Fills indirect pages with a segment array (frontend side). */
export function encodeIndirectSegments(pages: Uint8Array[], segments: BlkifSegment[]): void {
  segments.forEach((s, i) => encodeSegment(...descriptorAt(pages, i), s));
}

/**
 * Writes a response into its slot field by field — id @0, operation @8, status @10 — and leaves the
 * padding bytes (9, 12-15) alone. Copying a whole struct from the backend's stack leaked its
 * contents to the guest (XSA-216); Linux and QEMU now store the fields individually, and so do we.
 */
export function writeResponse(mem: RingMemory, off: number, rsp: BlkifResponse): void {
  // one scratch for the fields (RingMemory.write copies them before returning)
  const f = responseFields;
  writeU64LE(f, 0, BigInt.asUintN(64, rsp.id));
  f[8] = rsp.operation & 0xff;
  writeI16LE(f, 10, rsp.status);
  mem.write(off, responseHead);
  mem.write(off + 10, responseStatus);
}

const responseFields = new Uint8Array(BLKIF_RESPONSE_SIZE);
/** Its id and operation, and its status: views made once, not per response. */
const responseHead = responseFields.subarray(0, 9);
const responseStatus = responseFields.subarray(10, 12);

export function decodeResponse(slot: Uint8Array): BlkifResponse {
  checkSlot(slot, BLKIF_RESPONSE_SIZE, 'blkif response slot');
  return { id: readU64LE(slot, 0), operation: readU8(slot, 8), status: readI16LE(slot, 10) };
}

/** The `protocol` ABI strings (io/protocols.h). */
export const XEN_IO_PROTO_ABI_X86_32 = 'x86_32-abi';
export const XEN_IO_PROTO_ABI_X86_64 = 'x86_64-abi';
export const XEN_IO_PROTO_ABI_ARM = 'arm-abi';
