/**
 * Xen shared rings (xen/include/public/io/ring.h), independent of the payload type.
 *
 * A ring lives in one or more granted 4 KiB pages: a 64-byte header with four free-running 32-bit
 * indices, then a power-of-two array of fixed-size slots, each holding a request or its response.
 * All index arithmetic is modulo 2^32 (`>>> 0` everywhere): the indices are never reset, they wrap.
 *
 * Memory is reached through `RingMemory` so that the same code runs over a plain Buffer (byte-fixture
 * tests against Xen's own macros) and over pages shared through the hypervisor, where a multi-page
 * ring's slots may straddle a page boundary.
 *
 * Barriers: ring.h issues wmb()/mb() around index updates. Here a write becomes visible to the peer in
 * program order (the transport is FIFO), so wmb() is free; the full barrier mb() before reading the
 * peer's event index is the caller's business (see `notifyNeeded` and the drivers' fence use).
 */

export const SRING_REQ_PROD = 0;
export const SRING_REQ_EVENT = 4;
export const SRING_RSP_PROD = 8;
export const SRING_RSP_EVENT = 12;
/** Header size: four indices, the 4-byte pvt union and 44 bytes of padding. */
export const SRING_HEADER_SIZE = 64;
export const XEN_PAGE_SIZE = 4096;
/** XENBUS_MAX_RING_GRANT_ORDER: rings of up to 16 pages. */
export const XENBUS_MAX_RING_GRANT_ORDER = 4;

export interface RingMemory {
  readonly byteLength: number;
  readU32(off: number): number;
  writeU32(off: number, value: number): void;
  /** Copies `len` bytes out (a private snapshot: the peer may rewrite shared memory at any time). */
  read(off: number, len: number): Buffer;
  write(off: number, src: Uint8Array): void;
}

/** RingMemory over one contiguous Buffer. */
export class BufferRingMemory implements RingMemory {
  constructor(readonly buf: Buffer) {}
  get byteLength(): number {
    return this.buf.length;
  }
  readU32(off: number): number {
    return this.buf.readUInt32LE(off);
  }
  writeU32(off: number, value: number): void {
    this.buf.writeUInt32LE(value >>> 0, off);
  }
  read(off: number, len: number): Buffer {
    return Buffer.from(this.buf.subarray(off, off + len));
  }
  write(off: number, src: Uint8Array): void {
    this.buf.set(src, off);
  }
}

/** __RD32: round a 32-bit value down to a power of two (0 stays 0). */
export function roundDownPow2(n: number): number {
  if (n < 1) return 0;
  return 2 ** Math.floor(Math.log2(n >>> 0));
}

/** __CONST_RING_SIZE: slots that fit in `bytes` after the header, rounded down to a power of two. */
export function ringSize(bytes: number, entrySize: number): number {
  return roundDownPow2(Math.floor((bytes - SRING_HEADER_SIZE) / entrySize));
}

/** The event-index rule of RING_PUSH_*_AND_CHECK_NOTIFY: notify iff `event` lies in (old, new]. */
export function notifyNeeded(oldProd: number, newProd: number, event: number): boolean {
  return (newProd - event) >>> 0 < (newProd - oldProd) >>> 0;
}

/** SHARED_RING_INIT, generalised to start the indices at `start` (default 0) to test wraparound. */
export function sharedRingInit(mem: RingMemory, start = 0): void {
  const s = start >>> 0;
  mem.writeU32(SRING_REQ_PROD, s);
  mem.writeU32(SRING_RSP_PROD, s);
  mem.writeU32(SRING_REQ_EVENT, (s + 1) >>> 0);
  mem.writeU32(SRING_RSP_EVENT, (s + 1) >>> 0);
  mem.write(16, Buffer.alloc(48));
}

abstract class RingSide {
  constructor(
    readonly mem: RingMemory,
    /** RING_SIZE: number of slots (a power of two). */
    readonly size: number,
    readonly entrySize: number,
  ) {
    if (size < 1 || (size & (size - 1)) !== 0)
      throw new RangeError(`ring size ${size} is not a power of two`);
    if (SRING_HEADER_SIZE + size * entrySize > mem.byteLength) {
      throw new RangeError(`ring of ${size}×${entrySize} bytes does not fit in ${mem.byteLength} bytes`);
    }
  }
  /** Byte offset of the slot that index `idx` maps to (RING_GET_REQUEST/RESPONSE). */
  slotOffset(idx: number): number {
    return SRING_HEADER_SIZE + (idx & (this.size - 1)) * this.entrySize;
  }
  get reqProd(): number {
    return this.mem.readU32(SRING_REQ_PROD);
  }
  get reqEvent(): number {
    return this.mem.readU32(SRING_REQ_EVENT);
  }
  get rspProd(): number {
    return this.mem.readU32(SRING_RSP_PROD);
  }
  get rspEvent(): number {
    return this.mem.readU32(SRING_RSP_EVENT);
  }
}

/** The requester's side (blkfront): struct blkif_front_ring. */
export class FrontRing extends RingSide {
  /** Next request slot to fill. */
  reqProdPvt: number;
  /** Next response to consume. */
  rspCons: number;

  /** FRONT_RING_ATTACH: private indices start at `start`. */
  constructor(mem: RingMemory, size: number, entrySize: number, start = 0) {
    super(mem, size, entrySize);
    this.reqProdPvt = start >>> 0;
    this.rspCons = start >>> 0;
  }

  /** XEN_FRONT_RING_INIT: initialise the shared page, then attach. */
  static init(mem: RingMemory, size: number, entrySize: number, start = 0): FrontRing {
    sharedRingInit(mem, start);
    return new FrontRing(mem, size, entrySize, start);
  }

  /**
   * RING_FREE_REQUESTS: `RING_SIZE - (req_prod_pvt - rsp_cons)` in unsigned int arithmetic. Within the
   * contract (at most RING_SIZE outstanding) it is 0..RING_SIZE; outside it wraps modulo 2^32 as the C
   * macro does, so a corrupted private index gives a huge count, never a negative one.
   */
  freeRequests(): number {
    return (this.size - ((this.reqProdPvt - this.rspCons) >>> 0)) >>> 0;
  }
  /** RING_FULL. */
  full(): boolean {
    return this.freeRequests() === 0;
  }
  /** XEN_RING_NR_UNCONSUMED_RESPONSES. */
  unconsumedResponses(): number {
    return (this.rspProd - this.rspCons) >>> 0;
  }
  /** RING_RESPONSE_PROD_OVERFLOW: the backend published more responses than could be outstanding. */
  responseProdOverflow(prod: number): boolean {
    return (prod - this.rspCons) >>> 0 > this.size;
  }
  /** RING_PUSH_REQUESTS. */
  pushRequests(): void {
    this.mem.writeU32(SRING_REQ_PROD, this.reqProdPvt);
  }
  /**
   * RING_PUSH_REQUESTS_AND_CHECK_NOTIFY against the current view of req_event. The caller owes the
   * macro's mb(): when this says "no notify", re-check with `notifyNeeded(old, new, ring.reqEvent)`
   * after a full barrier before concluding the backend does not need waking.
   */
  pushRequestsAndCheckNotify(): { notify: boolean; oldProd: number; newProd: number } {
    const oldProd = this.reqProd;
    const newProd = this.reqProdPvt;
    this.mem.writeU32(SRING_REQ_PROD, newProd);
    return { notify: notifyNeeded(oldProd, newProd, this.reqEvent), oldProd, newProd };
  }
  /**
   * First half of RING_FINAL_CHECK_FOR_RESPONSES: if nothing is pending, ask to be woken on the next
   * response. Returns true when responses are already waiting. After a full barrier the caller must
   * look again with `unconsumedResponses()`.
   */
  finalCheckForResponses(): boolean {
    if (this.unconsumedResponses() > 0) return true;
    this.mem.writeU32(SRING_RSP_EVENT, (this.rspCons + 1) >>> 0);
    return this.unconsumedResponses() > 0;
  }
}

/** The responder's side (blkback): struct blkif_back_ring. */
export class BackRing extends RingSide {
  /** Next response slot to fill. */
  rspProdPvt: number;
  /** Next request to consume. */
  reqCons: number;

  /** BACK_RING_ATTACH: Linux attaches with `start = sring->rsp_prod` so a live ring can be re-attached. */
  constructor(mem: RingMemory, size: number, entrySize: number, start = 0) {
    super(mem, size, entrySize);
    this.rspProdPvt = start >>> 0;
    this.reqCons = start >>> 0;
  }

  /**
   * XEN_RING_NR_UNCONSUMED_REQUESTS: min(published - consumed, free response slots), both terms
   * unsigned int as in ring.h (the second wraps, rather than going negative, when req_cons has run
   * more than RING_SIZE ahead of rsp_prod_pvt).
   */
  unconsumedRequests(): number {
    const req = (this.reqProd - this.reqCons) >>> 0;
    const rsp = (this.size - ((this.reqCons - this.rspProdPvt) >>> 0)) >>> 0;
    return Math.min(req, rsp);
  }
  /** RING_REQUEST_CONS_OVERFLOW: no response slot left for request `cons`. */
  requestConsOverflow(cons: number): boolean {
    return (cons - this.rspProdPvt) >>> 0 >= this.size;
  }
  /** RING_REQUEST_PROD_OVERFLOW: the frontend claims more requests than the ring can hold. */
  requestProdOverflow(prod: number): boolean {
    return (prod - this.rspProdPvt) >>> 0 > this.size;
  }
  /** RING_PUSH_RESPONSES. */
  pushResponses(): void {
    this.mem.writeU32(SRING_RSP_PROD, this.rspProdPvt);
  }
  /** RING_PUSH_RESPONSES_AND_CHECK_NOTIFY; the same barrier caveat as the front's push. */
  pushResponsesAndCheckNotify(): { notify: boolean; oldProd: number; newProd: number } {
    const oldProd = this.rspProd;
    const newProd = this.rspProdPvt;
    this.mem.writeU32(SRING_RSP_PROD, newProd);
    return { notify: notifyNeeded(oldProd, newProd, this.rspEvent), oldProd, newProd };
  }
  /** First half of RING_FINAL_CHECK_FOR_REQUESTS (see FrontRing.finalCheckForResponses). */
  finalCheckForRequests(): boolean {
    if (this.unconsumedRequests() > 0) return true;
    this.mem.writeU32(SRING_REQ_EVENT, (this.reqCons + 1) >>> 0);
    return this.unconsumedRequests() > 0;
  }
}
