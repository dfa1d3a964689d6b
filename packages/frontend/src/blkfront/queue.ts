/**
 * One ring of a blkfront device (struct blkfront_ring_info): the shared ring pages and their grants,
 * the event channel, the shadow array that maps ring ids back to block requests, and the grants that
 * carry each request's data.
 *
 * Responses are untrusted (blkif_interrupt): too many responses, an id outside the ring, an id with no
 * request waiting, or the wrong operation each fail the device for good — logged, nothing crashes.
 *
 * Hardening against a hostile backend, as Linux after XSA-391/396/403:
 * - an upcall that finds no response is a spurious EOI and is backed off (lateeoi, XSA-391);
 * - a request whose grants were handed out for it alone completes only once every one of them is
 *   revoked (gnttab_try_end_foreign_access); a backend that still maps one fails the device, and the
 *   page stays out of reuse (XSA-396);
 * - with bounce buffers (persistent grants, or a backend not `trusted`) the backend only ever sees
 *   pages holding the request's own data: fresh zeroed pages, filled with exactly the segment's bytes
 *   (XSA-403) — never the guest's page with whatever else is in it.
 */
import {
  BLKIF_MAX_SEGMENTS_PER_REQUEST,
  BLKIF_OP_DISCARD,
  BLKIF_OP_INDIRECT,
  BLKIF_OP_READ,
  BLKIF_OP_WRITE,
  BLKIF_REQUEST_SIZE,
  BLKIF_RESPONSE_SIZE,
  BLKIF_SEGMENT_SIZE,
  BLKIF_SEGS_PER_INDIRECT_FRAME,
  decodeResponse,
  encodeIndirectSegments,
  encodeRequest,
  FrontRing,
  SECTOR_SIZE,
  SpuriousEventBackoff,
  SRING_RSP_EVENT,
  type BlkifRequest,
  type BlkifSegment,
  BLKIF_OP_INTEGRITY,
  BLKIF_PI_CHECK_APP,
  BLKIF_PI_CHECK_GUARD,
  BLKIF_PI_CHECK_REF,
  BLKIF_PI_INLINE,
  BLKIF_INTEGRITY_INLINE_BYTES,
  BLKIF_INTEGRITY_INLINE_DESCRIPTORS,
  bytesView,
  copyInto,
  zeroedBytes,
  decodeIntegrityResponseInfo,
  encodeIntegrityDescriptors,
  encodeIntegrityRequest,
  type BlkifPiSegment,
  type IntegrityResponseInfo,
} from '@pvblk/shared';
import { PagesRingMemory, RingEvents, type Page, type Hypercalls } from '@pvblk/client';
import type { BlockRequest } from '../block/types.ts';
import type { BlkfrontRingTrace } from './trace.ts';

/** A block request waiting for, or occupying, a ring slot. */
export interface Submission {
  req: BlockRequest;
  /** Called once with the blkif status (or null when the device failed), and for integrity requests what failed. */
  done(status: number | null, info?: IntegrityResponseInfo, piDropped?: boolean): void;
  /** The ring operation a flush last went out as (its errors are named after it). */
  sentAs?: number;
}

interface Shadow {
  sub: Submission;
  /** Operation a response must carry (the inner op for indirect requests). */
  op: number;
  /** Segments the request carried (0 for an empty flush: its error is "empty flush op failed"). */
  nrSegments: number;
  /** Grants handed out for this request only, revoked before it completes. */
  transientRefs: number[];
  /** Pages this request allocated (bounce, indirect and PI pages), freed once their grants are revoked. */
  transientPages: Page[];
  /** Persistent grants borrowed: returned to the pool at completion; reads are copied back first. */
  borrowed: Array<{ grant: PersistentGrant; seg: BlockRequest['segments'][number] | null }>;
  /** Non-persistent bounce pages of a read: copied back into the request's pages at completion. */
  bounceIn: Array<{ page: Page; seg: BlockRequest['segments'][number] }>;
  /** Read with PI: where the backend puts the tuples, copied into the request at completion. */
  piIn: Array<{ page: Page; offset: number; length: number }>;
}

export interface PersistentGrant {
  page: Page;
  ref: number;
}

/** Where blkfront's pages come from and go back to (the device counts them). */
export interface PageAllocator {
  alloc(): Page;
  /** Returns a page; one still granted is kept back (it cannot be reused while a backend may map it). */
  free(p: Page): void;
}

export interface QueueParams {
  xc: Hypercalls;
  pages: PageAllocator;
  backendId: number;
  /** The device's handle (its virtual-device number), carried in every request. */
  handle: number;
  order: number;
  size: number;
  /** Indirect segments per request we may use (0: none). */
  maxIndirect: number;
  /** The integrity extension is on for this connection. A request carrying PI from before a
   * reconnect that lost it goes out as plain READ/WRITE, and its completion says the PI did not travel. */
  integrity: boolean;
  /** The backend offered feature-integrity-inline: small integrity requests go in the slot alone. */
  integrityInline: boolean;
  startIndex: number;
  /** The operation a flush becomes: WRITE_BARRIER for a barrier-only backend, else FLUSH_DISKCACHE. */
  flushOperation(): number;
  /** A response the device cannot accept: fail it (blkif_interrupt's error path). */
  onFatal(msg: string): void;
  /** Counters shared by the device. */
  stats: {
    requests: number;
    pushes: number;
    upcalls: number;
    grants: number;
    spuriousEvents: number;
    eoiDelayedMs: number;
  };
}

/**
 * Misbehaviour on demand, to test a backend against a hostile frontend (the debugfs-like seam the
 * fuzzing work builds on). Each fault fires once.
 */
export interface FrontFaults {
  /** Rewrites the next request's slot bytes after it is encoded (e.g. nr_segments = 12). */
  mutateNextRequest: ((slot: Buffer) => void) | null;
  /** On the next push, publish req_prod this far beyond the real one (bogus ring indices). */
  bogusReqProdAhead: number | null;
}

export class FrontQueue {
  readonly faults: FrontFaults = { mutateNextRequest: null, bogusReqProdAhead: null };
  readonly pages: Page[] = [];
  readonly ringRefs: number[] = [];
  port = 0;
  readonly ring: FrontRing;
  private readonly mem: PagesRingMemory;
  private readonly shadow: Array<Shadow | null>;
  private readonly freeIds: number[] = [];
  private readonly events: RingEvents;
  private readonly pool: PersistentGrant[] = [];
  readonly allPersistent: PersistentGrant[] = [];
  private readonly backoff = new SpuriousEventBackoff();
  private eoiDelay: { timer: NodeJS.Timeout; wake: () => void } | null = null;
  /** Grants of this connection are kept by the backend across requests (feature_persistent). */
  persistent = false;
  /** Data goes through pages of our own, never the request's (info->bounce). */
  bounce = false;
  private dead = false;
  private handling = false;
  /** Slots placed since the last push, not yet in the ring (writeUnpublished). */
  private readonly unpublished: Buffer[] = [];
  /** Trace hooks (trace.ts), set by the device once the port is known; null when tracing is off. */
  trace: BlkfrontRingTrace | null = null;

  constructor(private readonly p: QueueParams) {
    for (let i = 0; i < 1 << p.order; i++) this.pages.push(p.pages.alloc());
    this.mem = new PagesRingMemory(this.pages);
    this.ring = FrontRing.init(this.mem, p.size, BLKIF_REQUEST_SIZE, p.startIndex);
    this.shadow = new Array<Shadow | null>(p.size).fill(null);
    for (let i = p.size - 1; i >= 0; i--) this.freeIds.push(i);
    this.events = new RingEvents(
      p.xc,
      this.pages[0],
      'requester',
      () => this.port,
      () => this.poll(),
    );
  }

  /** Grants the ring pages and allocates the event channel (talk_to_blkback's setup_blkring). */
  async setup(): Promise<void> {
    const { xc, backendId } = this.p;
    for (const pg of this.pages) this.ringRefs.push(xc.gnttab.grantAccess(pg, backendId, false));
    this.port = await xc.evtchn.allocUnbound(backendId);
    xc.evtchn.onEvent(this.port, () => this.interrupt());
  }

  get inflight(): number {
    return this.p.size - this.freeIds.length;
  }

  hasRoom(): boolean {
    return !this.dead && this.freeIds.length > 0 && !this.ring.full();
  }

  /** In-flight submissions, in ring order, for requeueing after a backend reconnect. */
  takeInflight(): Submission[] {
    const out: Submission[] = [];
    for (let i = 0; i < this.shadow.length; i++) {
      const s = this.shadow[i];
      if (s) out.push(s.sub);
    }
    return out;
  }

  private takePersistent(): PersistentGrant {
    const g = this.pool.pop();
    if (g) return g;
    const page = this.p.pages.alloc();
    const grant = { page, ref: this.p.xc.gnttab.grantAccess(page, this.p.backendId, false) };
    this.p.stats.grants++;
    this.allPersistent.push(grant);
    return grant;
  }

  /** blkif_queue_request: builds one ring request from a block request and places it on the ring. */
  queue(sub: Submission): void {
    const id = this.freeIds.pop()!;
    const req = sub.req;
    this.trace?.placed(this.ring.reqProdPvt, id, req);
    const sh: Shadow = {
      sub,
      op: 0,
      nrSegments: 0,
      transientRefs: [],
      transientPages: [],
      borrowed: [],
      bounceIn: [],
      piIn: [],
    };
    let ringReq: BlkifRequest;
    const { handle } = this.p;
    if (req.op === 'flush') {
      // FLUSH_DISKCACHE, or WRITE_BARRIER when that is all the backend offers (blkif_queue_rw_req)
      const op = this.p.flushOperation() as 2 | 3;
      sh.op = op;
      sub.sentAs = op;
      ringReq = { operation: op, nrSegments: 0, handle, id: BigInt(id), sectorNumber: 0n, segments: [] };
    } else if (req.op === 'discard') {
      sh.op = BLKIF_OP_DISCARD;
      ringReq = {
        operation: BLKIF_OP_DISCARD,
        flag: req.secure ? 1 : 0,
        handle,
        id: BigInt(id),
        sectorNumber: BigInt(req.sector),
        nrSectors: BigInt(req.nrSectors ?? 0),
      };
    } else {
      const write = req.op === 'write';
      sh.op = write ? BLKIF_OP_WRITE : BLKIF_OP_READ;
      const segs: BlkifSegment[] = req.segments.map((s) => {
        const firstSect = s.off / SECTOR_SIZE;
        const lastSect = firstSect + s.len / SECTOR_SIZE - 1;
        if (this.persistent) {
          // bounce through a persistent grant: the backend keeps it mapped across requests
          const g = this.takePersistent();
          if (write) g.page.write(s.off, bytesView(s.page.buf, s.off, s.len));
          sh.borrowed.push({ grant: g, seg: write ? null : s });
          return { gref: g.ref, firstSect, lastSect };
        }
        if (this.bounce) {
          // an untrusted backend sees a zeroed page holding this segment's bytes and nothing else
          const page = this.p.pages.alloc();
          if (write) page.write(s.off, bytesView(s.page.buf, s.off, s.len));
          else sh.bounceIn.push({ page, seg: s });
          sh.transientPages.push(page);
          return { gref: this.grantTransient(sh, page, false), firstSect, lastSect };
        }
        // grant the guest's own page, read-write even for writes, as Linux does
        return { gref: this.grantTransient(sh, s.page, false), firstSect, lastSect };
      });
      sh.nrSegments = segs.length;
      if (req.integrity && this.p.integrity) {
        this.shadow[id] = sh;
        this.placeIntegrity(id, sh, req, segs);
        return;
      }
      if (segs.length <= BLKIF_MAX_SEGMENTS_PER_REQUEST) {
        ringReq = {
          operation: sh.op as 0 | 1,
          nrSegments: segs.length,
          handle,
          id: BigInt(id),
          sectorNumber: BigInt(req.sector),
          segments: segs,
        };
      } else {
        const bufs = descriptorPages(segs.length);
        encodeIndirectSegments(bufs, segs);
        const grefs = bufs.map((b) => this.auxPage(sh, b, true).ref);
        ringReq = {
          operation: BLKIF_OP_INDIRECT,
          indirectOp: sh.op,
          nrSegments: segs.length,
          id: BigInt(id),
          sectorNumber: BigInt(req.sector),
          handle,
          indirectGrefs: grefs,
        };
      }
    }
    this.shadow[id] = sh;
    this.place(encodeRequest(ringReq));
  }

  private grantTransient(sh: Shadow, page: Page, readonly: boolean): number {
    const ref = this.p.xc.gnttab.grantAccess(page, this.p.backendId, readonly);
    this.p.stats.grants++;
    sh.transientRefs.push(ref);
    return ref;
  }

  /** Copies a finished request into the next ring slot (blkfront's `*final_ring_req = *ring_req`). */
  private place(slot: Buffer): void {
    const mutate = this.faults.mutateNextRequest;
    if (mutate) {
      this.faults.mutateNextRequest = null;
      mutate(slot);
    }
    this.unpublished.push(slot);
    this.ring.reqProdPvt = (this.ring.reqProdPvt + 1) >>> 0;
    this.p.stats.requests++;
  }

  /**
   * Writes the slots placed since the last push into the ring, in ring order, right before req_prod
   * is published. Linux stores each request into its slot as it builds it; no backend may read a slot
   * before req_prod covers it, so storing them at the push is the same to any reader, and here it is
   * cheaper: a push's slots are adjacent, so they leave as one page write instead of one each between
   * the data pages' writes (the client merges adjacent writes to one page).
   */
  private writeUnpublished(): void {
    const slots = this.unpublished;
    let idx = (this.ring.reqProdPvt - slots.length) >>> 0;
    for (const slot of slots) {
      this.mem.write(this.ring.slotOffset(idx), slot);
      idx = (idx + 1) >>> 0;
    }
    slots.length = 0;
  }

  /**
   * A page for descriptors or PI: borrowed from the persistent pool (always granted writable), or
   * allocated and granted for this request only, read-only when the backend has no business writing it.
   */
  private auxPage(sh: Shadow, contents: Buffer | null, readonly = false): { page: Page; ref: number } {
    if (this.persistent) {
      const g = this.takePersistent();
      if (contents) g.page.write(0, contents);
      sh.borrowed.push({ grant: g, seg: null });
      return g;
    }
    const page = this.p.pages.alloc();
    if (contents) page.write(0, contents);
    sh.transientPages.push(page);
    return { page, ref: this.grantTransient(sh, page, readonly) };
  }

  /**
   * BLKIF_OP_INTEGRITY (docs/blkif-integrity.md): PI pages after the data, descriptors in indirect
   * pages — or, towards a backend that takes them inline, the descriptors in the slot, and a write's
   * tuples too when they fit after its data descriptors (no PI page, no descriptor page).
   */
  private placeIntegrity(id: number, sh: Shadow, req: BlockRequest, segs: BlkifSegment[]): void {
    const integ = req.integrity!;
    const write = req.op === 'write';
    sh.op = BLKIF_OP_INTEGRITY;
    const inline = this.p.integrityInline;
    const tuplesInline =
      inline &&
      write &&
      segs.length * BLKIF_SEGMENT_SIZE + integ.tuples.length <= BLKIF_INTEGRITY_INLINE_BYTES;
    const pi: BlkifPiSegment[] = [];
    if (tuplesInline) {
      const bytes = inlineDescriptors(segs, []);
      copyInto(bytes, segs.length * BLKIF_SEGMENT_SIZE, integ.tuples);
      this.place(this.integritySlot(id, req, segs.length, 0, { inline: bytes }));
      return;
    }
    for (let off = 0; off < integ.tuples.length; off += 4096) {
      const length = Math.min(4096, integ.tuples.length - off);
      // only the tuples are written: the rest of a reused page is never read, and need not travel
      const content = write ? integ.tuples.subarray(off, off + length) : null;
      const { page, ref } = this.auxPage(sh, content);
      pi.push({ gref: ref, offset: 0, length });
      if (!write) sh.piIn.push({ page, offset: 0, length });
    }
    const descriptors = segs.length + pi.length;
    if (inline && descriptors <= BLKIF_INTEGRITY_INLINE_DESCRIPTORS) {
      this.place(
        this.integritySlot(id, req, segs.length, pi.length, { inline: inlineDescriptors(segs, pi) }),
      );
      return;
    }
    const bufs = descriptorPages(descriptors);
    encodeIntegrityDescriptors(bufs, segs, pi);
    const grefs = bufs.map((b) => this.auxPage(sh, b).ref);
    this.place(this.integritySlot(id, req, segs.length, pi.length, { grefs }));
  }

  private integritySlot(
    id: number,
    req: BlockRequest,
    nrSegments: number,
    nrPiSegments: number,
    where: { inline: Buffer } | { grefs: number[] },
  ): Buffer {
    const integ = req.integrity!;
    const c = integ.checks;
    return encodeIntegrityRequest({
      operation: BLKIF_OP_INTEGRITY,
      integrityOp: req.op === 'write' ? BLKIF_OP_WRITE : BLKIF_OP_READ,
      nrSegments,
      nrPiSegments,
      piFlags:
        (c.guard ? BLKIF_PI_CHECK_GUARD : 0) |
        (c.app ? BLKIF_PI_CHECK_APP : 0) |
        (c.ref ? BLKIF_PI_CHECK_REF : 0) |
        ('inline' in where ? BLKIF_PI_INLINE : 0),
      id: BigInt(id),
      sectorNumber: BigInt(req.sector),
      handle: this.p.handle,
      appTag: integ.appTag,
      appTagMask: 0xffff,
      refTag: integ.refSeed,
      indirectGrefs: 'grefs' in where ? where.grefs : [],
      ...('inline' in where ? { inline: where.inline } : {}),
    });
  }

  /** Publishes queued requests; the backend is notified if its req_event asks for it (see RingEvents). */
  push(): void {
    if (this.dead) return;
    this.writeUnpublished();
    const ahead = this.faults.bogusReqProdAhead;
    if (ahead !== null) {
      this.faults.bogusReqProdAhead = null;
      this.ring.pushRequests();
      this.mem.writeU32(0, (this.ring.reqProdPvt + ahead) >>> 0);
      this.p.xc.evtchn.send(this.port);
      return;
    }
    const pushed = this.ring.pushRequestsAndCheckNotify();
    if (pushed.newProd !== pushed.oldProd) this.p.stats.pushes++;
    this.trace?.pushed(pushed.oldProd, pushed.newProd);
    this.events.pushed(pushed);
  }

  /** Consumes what has arrived and tells the device of freed slots; how many responses it took. */
  private handleResponses(): number {
    this.handling = true;
    let consumed = 0;
    try {
      consumed = this.consumeResponses();
    } finally {
      this.handling = false;
    }
    if (!this.dead) this.onSpace?.();
    return consumed;
  }

  /** Responses that came after a final check found none: blkif_interrupt's `goto again`, without an upcall. */
  private poll(): void {
    if (this.handling || this.dead) return;
    this.handleResponses();
  }

  /** blkif_interrupt, then its xen_irq_lateeoi: an upcall that found no response is backed off. */
  private async interrupt(): Promise<void> {
    if (this.handling) return;
    if (this.dead) return this.quiet();
    this.p.stats.upcalls++;
    const consumed = this.handleResponses();
    if (this.dead) return this.quiet();
    const spurious = consumed === 0;
    const delay = this.backoff.eoi(spurious);
    if (spurious) this.p.stats.spuriousEvents++;
    if (delay > 0) {
      this.p.stats.eoiDelayedMs += delay;
      await new Promise<void>((resolve) => {
        const entry = {
          timer: setTimeout(() => entry.wake(), delay),
          wake: () => {
            clearTimeout(entry.timer);
            if (this.eoiDelay === entry) this.eoiDelay = null;
            resolve();
          },
        };
        this.eoiDelay = entry;
      });
    }
  }

  /** The loop of blkif_interrupt: returns how many responses it consumed. */
  private consumeResponses(): number {
    let consumed = 0;
    for (;;) {
      const rp = this.ring.rspProd;
      if (this.ring.responseProdOverflow(rp)) {
        this.fatal(`illegal number of responses ${(rp - this.ring.rspCons) >>> 0}`);
        return consumed;
      }
      for (let i = this.ring.rspCons; i !== rp; i = (i + 1) >>> 0) {
        consumed++;
        // RING_COPY_RESPONSE: one private copy, read once
        const copy = this.mem.read(this.ring.slotOffset(i), BLKIF_RESPONSE_SIZE);
        const rsp = decodeResponse(copy);
        if (rsp.id >= BigInt(this.p.size)) {
          this.fatal(`response has incorrect id (${BigInt.asIntN(64, rsp.id)})`);
          return consumed;
        }
        const id = Number(rsp.id);
        const sh = this.shadow[id];
        if (!sh) {
          this.fatal('response references no pending request');
          return consumed;
        }
        if (rsp.operation !== sh.op) {
          this.fatal(`response has wrong operation (${rsp.operation} instead of ${sh.op})`);
          return consumed;
        }
        this.trace?.completed(id);
        const info = sh.op === BLKIF_OP_INTEGRITY ? decodeIntegrityResponseInfo(copy) : undefined;
        this.shadow[id] = null;
        this.freeIds.push(id);
        this.ring.rspCons = (i + 1) >>> 0;
        void this.complete(sh, rsp.status, info);
      }
      this.ring.rspCons = rp;
      if (this.ring.rspCons !== this.ring.reqProdPvt) {
        if (!this.events.finalCheck(() => this.ring.finalCheckForResponses(), this.ring.rspCons))
          return consumed;
      } else {
        this.mem.writeU32(SRING_RSP_EVENT, (this.ring.rspCons + 1) >>> 0);
        return consumed;
      }
    }
  }

  /** Set by the device: called when responses freed ring slots. */
  onSpace: (() => void) | null = null;

  /**
   * blkif_completion: data back into the request, persistent grants back to the pool, and every grant
   * handed out for this request alone revoked before the block layer hears of it.
   */
  private async complete(sh: Shadow, status: number, info?: IntegrityResponseInfo): Promise<void> {
    const tuples = sh.sub.req.integrity?.tuples;
    if (tuples && sh.piIn.length) {
      let pos = 0;
      for (const p of sh.piIn) {
        p.page.buf.copy(tuples, pos, p.offset, p.offset + p.length);
        pos += p.length;
      }
    }
    for (const b of sh.borrowed) {
      if (b.seg) b.seg.page.write(b.seg.off, bytesView(b.grant.page.buf, b.seg.off, b.seg.len));
      this.pool.push(b.grant);
    }
    for (const b of sh.bounceIn) {
      b.seg.page.write(b.seg.off, bytesView(b.page.buf, b.seg.off, b.seg.len));
    }
    if (sh.transientRefs.length) {
      // gnttab_try_end_foreign_access: the backend unmapped before responding, so this must succeed;
      // if it does not, the backend still reaches our memory and the device is failed (XSA-396)
      const refs = sh.transientRefs;
      const r = await this.p.xc.gnttab.endForeignAccess(refs).catch(() => null);
      if (!r) return sh.sub.done(null); // the hypervisor is gone: nothing can be known any more
      const busy = r.findIndex((x) => x === 'busy');
      if (busy >= 0) {
        this.fatal(`backed has not unmapped grant: ${refs[busy]}`);
        // never OKAY: the request fails with the device; its pages stay granted, never reused
        return sh.sub.done(null);
      }
    }
    for (const pg of sh.transientPages) this.p.pages.free(pg);
    sh.sub.done(status, info, sh.sub.req.integrity !== undefined && sh.op !== BLKIF_OP_INTEGRITY);
  }

  /**
   * No EOI after a protocol error (blkif_interrupt's `err:`): the upcall is held until the ring is
   * freed, so a backend that keeps signalling reaches nobody.
   */
  private quiet(): Promise<void> {
    return new Promise<void>((r) => this.onFree.push(r));
  }

  private readonly onFree: Array<() => void> = [];

  private fatal(msg: string): void {
    if (this.dead) return;
    this.dead = true;
    // no EOI: the port stays quiet, as blkfront leaves it masked after a protocol error
    this.p.onFatal(msg);
  }

  /**
   * Tears the ring down (suspend/close). Grants still mapped by a backend that has not let go yet are
   * retried until they can be ended (gnttab_end_foreign_access's deferred list).
   */
  async free(): Promise<void> {
    this.dead = true;
    this.eoiDelay?.wake();
    for (const w of this.onFree.splice(0)) w();
    const { xc } = this.p;
    if (!xc.connected) return;
    await xc.evtchn.close(this.port).catch(() => {});
    const refs = [...this.ringRefs, ...this.allPersistent.map((g) => g.ref)];
    const pages = [...this.pages, ...this.allPersistent.map((g) => g.page)];
    for (const s of this.shadow) {
      if (!s) continue;
      refs.push(...s.transientRefs);
      pages.push(...s.transientPages);
    }
    this.shadow.fill(null);
    void endDeferred(xc, refs, () => {
      for (const pg of pages) this.p.pages.free(pg);
    });
  }
}

/** Ends grants, retrying the busy ones every 100 ms for up to a minute ("g.e. still pending"). */
async function endDeferred(xc: Hypercalls, refs: number[], then: () => void, tries = 600): Promise<void> {
  let left = refs;
  for (let i = 0; i < tries && left.length > 0 && xc.connected; i++) {
    const r = await xc.gnttab.endForeignAccess(left).catch(() => null);
    if (!r) return;
    left = left.filter((_, k) => r[k] === 'busy');
    if (left.length) await new Promise((res) => setTimeout(res, 100));
  }
  then();
}

/** The slot's inline bytes (BLKIF_PI_INLINE) holding these descriptors, the rest zero. */
function inlineDescriptors(segs: BlkifSegment[], pi: BlkifPiSegment[]): Buffer {
  const bytes = zeroedBytes(BLKIF_INTEGRITY_INLINE_BYTES);
  encodeIntegrityDescriptors([bytes], segs, pi);
  return bytes;
}

/**
 * The contents of the indirect pages that hold `n` descriptors, each page as many bytes as its
 * descriptors take: what is written into the granted pages. The backend reads exactly the
 * descriptors the request counts, so the rest of a page (stale in a reused persistent page) is never
 * read — and writing only these bytes keeps them off the wire (and spares a zeroed 4 KiB a request).
 */
function descriptorPages(n: number): Buffer[] {
  return Array.from({ length: Math.ceil(n / BLKIF_SEGS_PER_INDIRECT_FRAME) }, (_, i) =>
    zeroedBytes(
      Math.min(BLKIF_SEGS_PER_INDIRECT_FRAME, n - i * BLKIF_SEGS_PER_INDIRECT_FRAME) * BLKIF_SEGMENT_SIZE,
    ),
  );
}
