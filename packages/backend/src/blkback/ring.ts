/**
 * One blkif ring of a vbd as blkback serves it (struct xen_blkif_ring): consume requests, validate
 * each one from a private copy, move its data, do the I/O, answer, and notify only when the frontend
 * asked to be woken.
 *
 * Rules taken from Linux (drivers/block/xen-blkback/blkback.c):
 * - the slot is copied before anything is read from it (XSA-155 double fetch);
 * - a req_prod that runs more than RING_SIZE ahead halts this ring — "Frontend provided bogus ring
 *   requests" — and nothing else: other rings and other guests keep being served; a halted ring
 *   sends no more EOIs, so its event channel goes quiet;
 * - every field is checked; a refused request gets BLKIF_RSP_ERROR (then the ring backs off 1 ms, as
 *   dispatch_rw_block_io's fail_response does), an unknown operation BLKIF_RSP_EOPNOTSUPP, always with
 *   the id the frontend wrote and, for an indirect request, its indirect_op;
 * - WRITE_BARRIER waits for every request before it (xen_blk_drain_io), then flushes and writes;
 *   FLUSH_DISKCACHE flushes first too (REQ_PREFLUSH); on a device without a write cache the flush is
 *   stripped and an empty one answered OKAY, as the block layer does;
 * - an event that finds no request is a spurious EOI: the EOI, and with it the next upcall, is held
 *   back by the lateeoi rule (XSA-332);
 * - responses are written field by field (XSA-216).
 *
 * One deliberate difference: responses go out in the order the requests were consumed, not in
 * completion order. Then the requests between rsp_prod and req_prod are exactly the unanswered ones,
 * and a blkback that restarts after a crash can re-attach at rsp_prod (BACK_RING_ATTACH) without
 * answering a request twice or forgetting one — Linux's re-attach is only safe after a clean unbind.
 *
 * Nothing here polls: waits are on promises resolved by completions, and the only timers (the LRU
 * pass, the 1 ms back-off, a delayed EOI) are all cancelled by stop().
 */
import {
  BackRing,
  BLKIF_OP_DISCARD,
  BLKIF_OP_FLUSH_DISKCACHE,
  BLKIF_OP_INDIRECT,
  BLKIF_OP_READ,
  BLKIF_OP_WRITE,
  BLKIF_OP_WRITE_BARRIER,
  BLKIF_REQUEST_SIZE,
  BLKIF_SEGMENT_SIZE,
  BLKIF_RSP_EOPNOTSUPP,
  BLKIF_RSP_ERROR,
  BLKIF_RSP_OKAY,
  BLKIF_DISCARD_SECURE,
  bytesView,
  copyBytes,
  decodeIndirectSegments,
  decodeRequest,
  KERN_DEBUG,
  KERN_WARNING,
  KERN_ERR,
  SECTOR_SIZE,
  segmentSectors,
  SpuriousEventBackoff,
  writeResponse,
  type BlkifRequest,
  type BlkifRwRequest,
  type BlkifSegment,
  type DecodedRequest,
  type KernelLog,
  BLKIF_OP_INTEGRITY,
  BLKIF_RSP_EPROTECTION,
  BLKIF_PI_CHECK_APP,
  BLKIF_PI_CHECK_GUARD,
  BLKIF_PI_CHECK_REF,
  decodeInlineWrite,
  decodeIntegrityDescriptors,
  decodeIntegrityRequest,
  PI_TUPLE_SIZE,
  writeIntegrityResponse,
  type BlkifIntegrityRequest,
  type IntegrityResponseInfo,
} from '@pvblk/shared';
import { PagesRingMemory, RingEvents, type Page, type Hypercalls } from '@pvblk/client';
import type { HostBlockDevice, IntegrityProfile, IoError, IoResult } from '../block-device.ts';
import { BLKIF_REQS_PER_PAGE } from './config.ts';
import { GrantDataPath, PersistentGrants, type MapBudget } from './segments.ts';
import type { BlkbackStats } from './stats.ts';
import type { BlkbackRingTrace } from './trace.ts';

export interface RingContext {
  xc: Hypercalls;
  klog: KernelLog;
  frontDomid: number;
  devid: number;
  /** MKDEV(major, minor) of the physical device, for log lines (`dev=%04x`). */
  pdevice: number;
  device: HostBlockDevice;
  maxIndirectSegments: number;
  /** The vbd is read-only (`mode` without 'w'): every write-class request is refused. */
  readOnly: boolean;
  /** The device has a volatile write cache (vbd->flush_support); without one, flushes are stripped. */
  flushSupport: boolean;
  dataPath: 'map' | 'copy';
  persistent: PersistentGrants | null;
  /** The guest's budget of mappings beyond persistent grants, shared by all its rings and disks. */
  mapBudget: MapBudget;
  stats: BlkbackStats;
  /** The PI format negotiated with the frontend (the blkif integrity extension), or null. */
  integrity: IntegrityProfile | null;
  /** feature-integrity-inline was offered: BLKIF_PI_INLINE requests are served, else refused. */
  integrityInline: boolean;
  /** Where the vbd starts on the host device (a partition), in 512-byte sectors: ref tags are remapped by it. */
  startSector: number;
  /** LRU_INTERVAL: the ring wakes this often to purge persistent grants and notice a resize. */
  lruIntervalMs: number;
  /** The device answered a flush or barrier with "not supported": withdraw that feature (Linux writes it 0). */
  withdrawFeature(key: 'feature-flush-cache' | 'feature-barrier'): void;
  /** Called at every wake of the ring: the vbd compares the device's size with what it published. */
  checkResize(): void;
  /** Trace hooks (trace.ts); null when tracing is off. */
  trace?: BlkbackRingTrace | null;
}

type Outcome = { status: number; info?: IntegrityResponseInfo; refused?: boolean };

/** Misbehaviour on demand, to test a frontend against a hostile backend. Each fault fires once. */
export interface BackFaults {
  /** Answer the next request with an id the frontend never used. */
  badResponseId: boolean;
}

/** A consumed request waiting for its answer; answers leave in this order. */
interface Pending {
  id: bigint;
  op: number;
  outcome: Outcome | null;
  /** Set for a request something waits on (a barrier): called once its answer is written. */
  answered: (() => void) | null;
}

/** What a request turned into once decoded and checked. */
type Dispatch =
  | { kind: 'refuse'; id: bigint; op: number; status: number }
  | { kind: 'barrier'; id: bigint; req: BlkifRwRequest }
  | { kind: 'work'; id: bigint; op: number; run: () => Promise<Outcome> };

export class BlkifRing {
  readonly faults: BackFaults = { badResponseId: false };
  readonly back: BackRing;
  private readonly mem: PagesRingMemory;
  private readonly events: RingEvents;
  private readonly data: GrantDataPath;
  private readonly maxInflight: number;
  private readonly backoff = new SpuriousEventBackoff();
  /** Consumed and not yet answered, in ring order. */
  private readonly pending: Pending[] = [];
  halted = false;
  private stopped = false;
  private draining: Promise<void> | null = null;
  /** The consume loop is running (it clears this itself, synchronously, when it stops). */
  private consuming = false;
  private kickAgain = false;
  private waitingForSlot = false;
  /** A request was consumed since the last EOI (Linux clears XEN_EOI_FLAG_SPURIOUS). */
  private sawRequest = false;
  /**
   * Milliseconds to back off before consuming the next request: 1 for each request refused since
   * (fail_response's msleep(1)). Linux sleeps in the consume loop itself, since it maps a request's
   * grants before it reads the next; here a mapping is a call to the broker, answered after the loop
   * has read on, so the sleeps owed are added up and taken at its next request — a guest whose
   * requests fail is held to about a thousand a second, as in Linux.
   */
  private backOffMs = 0;
  private responsesPending = false;
  private idleWaiters: Array<() => void> = [];
  private readonly sleeps = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();
  private lru: NodeJS.Timeout | null = null;
  private stopWaiters: Array<() => void> = [];

  constructor(
    private readonly ctx: RingContext,
    readonly queue: number,
    readonly ringPages: Page[],
    ringSize: number,
    readonly port: number,
  ) {
    this.mem = new PagesRingMemory(ringPages);
    // BACK_RING_ATTACH at rsp_prod, so a ring that already carried traffic is picked up where it is
    this.back = new BackRing(this.mem, ringSize, BLKIF_REQUEST_SIZE, this.mem.readU32(8));
    this.maxInflight = BLKIF_REQS_PER_PAGE * ringPages.length;
    this.data = new GrantDataPath(
      ctx.xc,
      ctx.frontDomid,
      ctx.dataPath,
      ctx.persistent,
      ctx.stats,
      ctx.mapBudget,
    );
    this.events = new RingEvents(
      ctx.xc,
      ringPages[0],
      'responder',
      () => this.port,
      () => void this.kick(),
    );
  }

  /** Requests consumed and not answered yet. */
  get inflight(): number {
    return this.pending.length;
  }

  /** Timers this ring holds (tests check that none survives stop()). */
  get liveTimers(): number {
    return this.sleeps.size + (this.lru ? 1 : 0);
  }

  start(): void {
    this.ctx.xc.evtchn.onEvent(this.port, () => this.onEvent());
    // xen_blkif_schedule wakes at least every LRU_INTERVAL: resize check, persistent-grant purge
    this.lru = setInterval(() => {
      this.ctx.checkResize();
      this.data.purgePersistent(Date.now());
    }, this.ctx.lruIntervalMs);
    this.lru.unref();
  }

  /** The upcall: consume, then EOI — late and held back when the event found nothing. */
  private async onEvent(): Promise<void> {
    this.ctx.stats.notify_received++;
    this.ctx.checkResize();
    await this.kick();
    if (this.halted) {
      // no EOI for a ring we stopped serving: its port stays quiet until the device goes away
      await new Promise<void>((r) => (this.stopped ? r() : this.stopWaiters.push(r)));
      return;
    }
    const spurious = !this.sawRequest;
    this.sawRequest = false;
    const delay = this.backoff.eoi(spurious);
    if (spurious) this.ctx.stats.spurious_events++;
    if (delay > 0) {
      this.ctx.stats.jiffies_eoi_delayed += delay;
      await this.sleep(delay);
    }
  }

  /**
   * Stops consuming; resolves true once every request in flight has been answered, false if the
   * timeout passed first (null: no timeout). Idempotent: a stopped ring can be waited on again.
   */
  async stop(timeoutMs: number | null): Promise<boolean> {
    this.stopped = true;
    if (this.lru) clearInterval(this.lru);
    this.lru = null;
    for (const s of [...this.sleeps]) s.wake();
    for (const w of this.stopWaiters.splice(0)) w();
    await this.draining;
    if (this.pending.length === 0) return true;
    return new Promise<boolean>((resolve) => {
      const t = timeoutMs === null ? undefined : setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  releasePersistent(): void {
    this.data.releasePersistent();
  }

  /** A cancellable pause: stop() ends it at once, so no timer outlives the ring. */
  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const entry = {
        timer: setTimeout(() => entry.wake(), ms),
        wake: () => {
          clearTimeout(entry.timer);
          this.sleeps.delete(entry);
          resolve();
        },
      };
      this.sleeps.add(entry);
    });
  }

  /** Resolves once nothing consumed is left unanswered (xen_blk_drain_io's wait), or at stop. */
  private idle(): Promise<void> {
    if (this.pending.length === 0) return Promise.resolve();
    return new Promise<void>((r) => this.idleWaiters.push(r));
  }

  /** do_block_io_op: consume until the ring is empty, then re-arm req_event behind a barrier. */
  kick(): Promise<void> {
    // `consuming`, not `draining`: the loop has decided to stop a few microtasks before its promise
    // settles, and a kick in between must start it again rather than set a flag nobody reads
    if (this.consuming) {
      this.kickAgain = true;
      return this.draining ?? Promise.resolve();
    }
    this.consuming = true;
    const run: Promise<void> = this.consume()
      .catch((e: Error) => {
        // the hypervisor went away under us (a fence or a map failed): nothing more to serve
        if (this.ctx.xc.connected)
          this.ctx.klog.printk(KERN_ERR, `xen-blkback: ring ${this.queue}: ${e.message}`);
      })
      .finally(() => {
        if (this.draining === run) this.draining = null;
      });
    this.draining = run;
    return run;
  }

  private async consume(): Promise<void> {
    // the flag drops in the same turn the loop decides to stop (see kick)
    try {
      do {
        this.kickAgain = false;
        for (;;) {
          if (this.halted || this.stopped) return;
          const rp = this.back.reqProd;
          if (this.back.requestProdOverflow(rp)) {
            const diff = (rp - this.back.rspProdPvt) | 0;
            this.ctx.klog.printk(
              KERN_WARNING,
              `xen-blkback: Frontend provided bogus ring requests (${rp | 0} - ${this.back.rspProdPvt | 0} = ${diff}). Halting ring processing on dev=${this.ctx.pdevice.toString(16).padStart(4, '0')}`,
            );
            this.halted = true;
            return;
          }
          this.waitingForSlot = false;
          while (this.back.reqCons !== rp && !this.stopped) {
            const rc = this.back.reqCons;
            if (this.back.requestConsOverflow(rc)) break;
            if (this.pending.length >= this.maxInflight) {
              this.ctx.stats.oo_req++;
              this.waitingForSlot = true;
              break;
            }
            if (this.backOffMs > 0) {
              const ms = this.backOffMs;
              this.backOffMs = 0;
              await this.sleep(ms);
              continue;
            }
            // a private copy first: nothing is read twice from memory the guest can rewrite
            const slot = this.mem.read(this.back.slotOffset(rc), BLKIF_REQUEST_SIZE);
            this.ctx.trace?.consumed(rc, slot);
            this.back.reqCons = (rc + 1) >>> 0; // before dispatch: the response may be made at once
            this.sawRequest = true;
            const d = this.classify(slot);
            if (d.kind === 'refuse') {
              this.answerNow(d.id, d.op, { status: d.status });
              if (d.status === BLKIF_RSP_ERROR) this.backOffMs++;
            } else if (d.kind === 'barrier') {
              // xen_blk_drain_io: everything consumed before the barrier completes first; what follows
              // it waits until the barrier itself is done
              await this.idle();
              if (this.stopped) return; // unanswered: the next connection sees it again
              const barrier = this.track(d.id, BLKIF_OP_WRITE_BARRIER, this.flushThenWrite(d.req));
              await new Promise<void>((r) => (barrier.answered = r));
            } else {
              this.track(d.id, d.op, d.run());
            }
          }
          if (this.waitingForSlot || this.stopped) return; // a completion kicks us again
          if (!this.events.finalCheck(() => this.back.finalCheckForRequests(), this.back.reqCons)) break;
        }
      } while (this.kickAgain && !this.stopped && !this.halted);
    } finally {
      this.consuming = false;
    }
  }

  /** Decodes a request and applies the checks that need no I/O (dispatch_rw_block_io's first half). */
  private classify(slot: Buffer): Dispatch {
    if (slot[0] === BLKIF_OP_INTEGRITY && this.ctx.integrity) return this.classifyIntegrity(slot);
    const d = decodeRequest(slot, { maxIndirectSegments: this.ctx.maxIndirectSegments });
    if (!d.ok) return this.refuse(d, slot);
    const req = d.request;
    switch (req.operation) {
      case BLKIF_OP_DISCARD:
        return { kind: 'work', id: req.id, op: req.operation, run: () => this.discard(req) };
      case BLKIF_OP_WRITE_BARRIER:
      case BLKIF_OP_FLUSH_DISKCACHE: {
        this.ctx.stats.f_req++;
        const bad = this.checkDirect(req, true);
        if (bad) return { kind: 'refuse', id: req.id, op: req.operation, status: BLKIF_RSP_ERROR };
        if (req.operation === BLKIF_OP_WRITE_BARRIER) return { kind: 'barrier', id: req.id, req };
        return { kind: 'work', id: req.id, op: req.operation, run: () => this.flushThenWrite(req) };
      }
      case BLKIF_OP_INDIRECT:
        this.countRequest(req.indirectOp !== BLKIF_OP_READ);
        // the descriptors live in granted pages: fetched and checked in readWrite
        return { kind: 'work', id: req.id, op: req.indirectOp, run: () => this.readWrite(req) };
      default: {
        this.countRequest(req.operation !== BLKIF_OP_READ);
        const bad = this.checkDirect(req, req.operation !== BLKIF_OP_READ);
        if (bad) return { kind: 'refuse', id: req.id, op: req.operation, status: BLKIF_RSP_ERROR };
        return { kind: 'work', id: req.id, op: req.operation, run: () => this.readWrite(req) };
      }
    }
  }

  /** st_rd_req / st_wr_req, counted as dispatch_rw_block_io does: before the request is checked. */
  private countRequest(write: boolean): void {
    if (write) this.ctx.stats.wr_req++;
    else this.ctx.stats.rd_req++;
  }

  /** A request the decoder rejected: ERROR, or EOPNOTSUPP for an unknown operation (dispatch_other_io). */
  private refuse(d: Extract<DecodedRequest, { ok: false }>, slot: Buffer): Dispatch {
    // the answer to an indirect request carries its indirect_op (byte 1), whatever was wrong with it:
    // make_response is given req_operation, and blkfront compares the response with it
    const op = d.operation === BLKIF_OP_INDIRECT ? slot[1] : d.operation;
    this.debug(`${d.problem.detail} (domain ${this.ctx.frontDomid}, op ${d.operation})`);
    const notsupp = d.problem.code === 'EOPNOTSUPP';
    return { kind: 'refuse', id: d.id, op, status: notsupp ? BLKIF_RSP_EOPNOTSUPP : BLKIF_RSP_ERROR };
  }

  /**
   * xen_vbd_translate and the alignment check for a direct request: read-only vbd, range, logical
   * block alignment. Logs as Linux does and returns true when the request must be refused.
   */
  private checkDirect(req: Extract<BlkifRequest, { operation: 0 | 1 | 2 | 3 }>, write: boolean): boolean {
    const nrSects = req.segments.reduce((n, s) => n + segmentSectors(s), 0);
    return this.translate(req.sectorNumber, nrSects, write, req.segments);
  }

  private translate(start: bigint, nrSects: number, write: boolean, segments: BlkifSegment[]): boolean {
    const dev = this.ctx.device;
    const end = start + BigInt(nrSects);
    if ((write && this.ctx.readOnly) || (nrSects > 0 && end > BigInt(dev.sectors))) {
      this.debug(
        `access denied: ${write ? 'write' : 'read'} of [${start},${end}] on dev=${this.ctx.pdevice.toString(16).padStart(4, '0')}`,
      );
      return true;
    }
    const mask = dev.logicalBlockSize / SECTOR_SIZE - 1;
    if (
      (Number(BigInt.asUintN(32, start)) & mask) !== 0 ||
      segments.some((s) => (segmentSectors(s) & mask) !== 0)
    ) {
      this.debug(`Misaligned I/O request from domain ${this.ctx.frontDomid}`);
      return true;
    }
    return false;
  }

  private classifyIntegrity(slot: Buffer): Dispatch {
    const d = decodeIntegrityRequest(slot, Math.max(this.ctx.maxIndirectSegments, 11));
    if (!d.ok) {
      this.debug(`${d.problem.detail} (integrity, domain ${this.ctx.frontDomid})`);
      return { kind: 'refuse', id: d.id, op: BLKIF_OP_INTEGRITY, status: BLKIF_RSP_ERROR };
    }
    if (d.request.inline && !this.ctx.integrityInline) {
      this.debug(`inline integrity request without feature-integrity-inline (domain ${this.ctx.frontDomid})`);
      return { kind: 'refuse', id: d.request.id, op: BLKIF_OP_INTEGRITY, status: BLKIF_RSP_ERROR };
    }
    return {
      kind: 'work',
      id: d.request.id,
      op: BLKIF_OP_INTEGRITY,
      run: () => this.integrityRw(d.request),
    };
  }

  /** Answers a request that needs no I/O, in its place in the answer order. */
  private answerNow(id: bigint, op: number, o: Outcome): void {
    this.track(id, op, Promise.resolve(o));
  }

  /** Counts a request in flight; its answer goes out once it and everything consumed before it are done. */
  private track(id: bigint, op: number, work: Promise<Outcome>): Pending {
    // no promise per request for its answer: only a barrier waits on one (see consume)
    const p: Pending = { id, op, outcome: null, answered: null };
    this.pending.push(p);
    work
      .catch((e: Error) => {
        this.ctx.klog.printk(KERN_ERR, `xen-blkback: request ${id} failed unexpectedly: ${e.message}`);
        return { status: BLKIF_RSP_ERROR } as Outcome;
      })
      .then((o) => {
        p.outcome = o;
        if (o.refused) this.backOffMs++;
        this.answerInOrder();
      });
    return p;
  }

  /** Writes the answers at the head of the queue whose work is done, in consumption order. */
  private answerInOrder(): void {
    while (this.pending.length > 0 && this.pending[0].outcome) {
      const p = this.pending.shift()!;
      const o = p.outcome!;
      if (o.status === BLKIF_RSP_ERROR) this.ctx.stats.errors++;
      if (o.status === BLKIF_RSP_EOPNOTSUPP) this.ctx.stats.eopnotsupp++;
      if (o.status === BLKIF_RSP_EPROTECTION) this.ctx.stats.pi_errors++;
      this.respond(p.id, p.op, o.status, o.info);
      p.answered?.();
    }
    if (this.pending.length === 0) for (const w of this.idleWaiters.splice(0)) w();
    if (this.waitingForSlot && !this.stopped) void this.kick();
  }

  private debug(msg: string): void {
    this.ctx.klog.printk(KERN_DEBUG, `xen-blkback: ${msg}`);
  }

  /**
   * WRITE_BARRIER and FLUSH_DISKCACHE: REQ_OP_WRITE | REQ_PREFLUSH — the cache is flushed, then the
   * data (if any) written. Without a write cache the block layer strips the flush: an empty one
   * completes OKAY at once, one with data is a plain write. A device that cannot flush makes the
   * backend withdraw the feature and answer EOPNOTSUPP (__end_block_io_op).
   */
  private async flushThenWrite(req: BlkifRwRequest): Promise<Outcome> {
    if (this.ctx.flushSupport) {
      const f = await this.ctx.device.flush();
      if (!f.ok && f.error.kind === 'notsupp') {
        const barrier = req.operation === BLKIF_OP_WRITE_BARRIER;
        this.debug(`${barrier ? 'write barrier' : 'flush diskcache'} op failed, not supported`);
        this.ctx.withdrawFeature(barrier ? 'feature-barrier' : 'feature-flush-cache');
        return { status: BLKIF_RSP_EOPNOTSUPP };
      }
      if (!f.ok) return { status: BLKIF_RSP_ERROR };
    }
    if (req.segments.length === 0) return { status: BLKIF_RSP_OKAY };
    return this.readWrite({ ...req, operation: BLKIF_OP_WRITE });
  }

  /**
   * dispatch_discard_io (synchronous in Linux's ring thread; its answer keeps its place here too).
   * xen_vbd_translate's rule: a read-only vbd refuses it, and the range is checked only when it has
   * sectors — a zero-length discard anywhere is blkdev_issue_discard() of nothing, answered OKAY.
   */
  private async discard(req: Extract<BlkifRequest, { operation: 5 }>): Promise<Outcome> {
    const dev = this.ctx.device;
    const start = req.sectorNumber;
    const end = start + req.nrSectors;
    if (this.ctx.readOnly || (req.nrSectors > 0n && end > BigInt(dev.sectors))) {
      this.ctx.klog.printk(
        KERN_WARNING,
        `xen-blkback: access denied: DISCARD [${start}->${end}] on dev=${this.ctx.pdevice.toString(16).padStart(4, '0')}`,
      );
      return { status: BLKIF_RSP_ERROR };
    }
    this.ctx.stats.ds_req++;
    if (!dev.discard) return { status: BLKIF_RSP_EOPNOTSUPP };
    if (req.nrSectors === 0n) return { status: BLKIF_RSP_OKAY };
    const secure = (req.flag & BLKIF_DISCARD_SECURE) !== 0 && dev.discard.secure;
    const r = await dev.discardRange(Number(start), Number(req.nrSectors), secure);
    if (!r.ok && r.error.kind === 'notsupp') return { status: BLKIF_RSP_EOPNOTSUPP };
    return this.status(r);
  }

  /**
   * A request's grants could not be mapped, copied or written — grants the guest named: BLKIF_RSP_ERROR,
   * then the ring backs off 1 ms, and the line is a debug one. That is xen_blkbk_map's pr_debug
   * ("invalid buffer -- could not remap it") and dispatch_rw_block_io's fail_response, msleep(1)
   * included. At KERN_ERR with no back-off, a guest that queued reads of grants it never gave put
   * 24,000 lines in Dom0's log in 5 s, and stalled Dom0 outright once the console stopped reading.
   */
  private ioFailed(detail: string): Outcome {
    this.debug(detail);
    return { status: BLKIF_RSP_ERROR, refused: true };
  }

  private status(r: IoResult): Outcome {
    return { status: r.ok ? BLKIF_RSP_OKAY : BLKIF_RSP_ERROR };
  }

  private async readWrite(req: Extract<BlkifRequest, { operation: 0 | 1 | 2 | 3 | 6 }>): Promise<Outcome> {
    const dev = this.ctx.device;
    const isIndirect = req.operation === BLKIF_OP_INDIRECT;
    const op = isIndirect ? req.indirectOp : req.operation;
    const isWrite = op !== BLKIF_OP_READ;
    let segments: BlkifSegment[];
    if (isIndirect) {
      const s = await this.indirectSegments(req);
      if (!s) return { status: BLKIF_RSP_ERROR, refused: true };
      segments = s;
      const n = segments.reduce((a, x) => a + segmentSectors(x), 0);
      if (this.translate(req.sectorNumber, n, isWrite, segments))
        return { status: BLKIF_RSP_ERROR, refused: true };
    } else {
      segments = req.segments;
    }
    const nrSects = segments.reduce((n, s) => n + segmentSectors(s), 0);
    if (isWrite) this.ctx.stats.wr_sect += nrSects;
    else this.ctx.stats.rd_sect += nrSects;
    const start = req.sectorNumber;
    if (nrSects === 0) return { status: BLKIF_RSP_OKAY };

    const acquired = await this.data.acquire(segments, isWrite);
    if (!acquired.ok) return this.ioFailed(acquired.detail);
    const io = acquired.io;
    try {
      if (isWrite) {
        const g = await io.gather();
        if (!g.ok) return this.ioFailed(g.detail);
        this.ctx.trace?.diskStart(req.id);
        const w = await dev.write(Number(start), g.data);
        this.ctx.trace?.diskDone(req.id);
        return this.status(w);
      }
      this.ctx.trace?.diskStart(req.id);
      const r = await dev.read(Number(start), nrSects);
      this.ctx.trace?.diskDone(req.id);
      if (!r.ok) return { status: BLKIF_RSP_ERROR };
      const s = await io.scatter(r.data);
      return s.ok ? { status: BLKIF_RSP_OKAY } : this.ioFailed(s.detail);
    } finally {
      io.release();
    }
  }

  /**
   * BLKIF_OP_INTEGRITY: data and PI move together. The guest's ref tags are remapped from its
   * virtual seed to the device's LBAs on the way down and back on the way up (blk_integrity_prepare /
   * _complete); tuples that do not carry the expected virtual ref are left alone, so a misdirected
   * write still fails the ref check below. Checks happen in the host's sd/HBA model and in the device.
   */
  private async integrityRw(req: BlkifIntegrityRequest): Promise<Outcome> {
    const dev = this.ctx.device;
    const prof = this.ctx.integrity!;
    const isWrite = req.integrityOp === BLKIF_OP_WRITE;
    const spi = prof.interval / SECTOR_SIZE;
    const piBytesForSectors = (sectors: number) => (sectors / spi) * PI_TUPLE_SIZE;
    // descriptors: data segments, then PI segments, in the indirect pages or in the slot (inline);
    // an inline write may carry its tuples in the slot instead of PI segments
    let desc: ReturnType<typeof decodeIntegrityDescriptors> | ReturnType<typeof decodeInlineWrite>;
    if (req.inline && req.nrPiSegments === 0) {
      desc = decodeInlineWrite(req.inline, req.nrSegments, piBytesForSectors);
    } else {
      const pages = req.inline
        ? [req.inline]
        : await this.indirectPages(
            req.indirectGrefs,
            'integrity descriptors',
            req.nrSegments + req.nrPiSegments,
          );
      if (!pages) return { status: BLKIF_RSP_ERROR, refused: true };
      desc = decodeIntegrityDescriptors(pages, req.nrSegments, req.nrPiSegments, piBytesForSectors);
    }
    if (!desc.ok) {
      this.debug(`${desc.problem.detail} (integrity, domain ${this.ctx.frontDomid})`);
      return { status: BLKIF_RSP_ERROR, refused: true };
    }
    const piDesc = 'pi' in desc ? desc.pi : [];
    const inlineTuples = 'tuples' in desc ? desc.tuples : null;
    const segments = desc.data;
    const nrSects = segments.reduce((n, s) => n + segmentSectors(s), 0);
    const start = req.sectorNumber;
    // the same xen_vbd_translate as a plain write: a read-only vbd refuses integrity writes too
    if (this.translate(start, nrSects, isWrite, segments)) return { status: BLKIF_RSP_ERROR, refused: true };
    if (Number(start) % spi !== 0 || nrSects % spi !== 0) {
      this.debug(
        `access denied: integrity ${isWrite ? 'WRITE' : 'READ'} of [${start},${start + BigInt(nrSects)}]`,
      );
      return { status: BLKIF_RSP_ERROR, refused: true };
    }
    if (isWrite) {
      this.ctx.stats.wr_req++;
      this.ctx.stats.wr_sect += nrSects;
    } else {
      this.ctx.stats.rd_req++;
      this.ctx.stats.rd_sect += nrSects;
    }
    const sector = Number(start);
    const checks = {
      guard: (req.piFlags & BLKIF_PI_CHECK_GUARD) !== 0,
      app: (req.piFlags & BLKIF_PI_CHECK_APP) !== 0,
      ref: (req.piFlags & BLKIF_PI_CHECK_REF) !== 0 && prof.type !== 3,
    };
    const virtSeed = req.refTag >>> 0;
    const physSeed = (this.ctx.startSector + sector) / spi;
    const piSegs = piDesc.map((p) => ({ gref: p.gref, firstSect: 0, lastSect: 7 }));
    const all = await this.data.acquire([...segments, ...piSegs], isWrite);
    if (!all.ok) return this.ioFailed(all.detail);
    const io = all.io;
    const dataBytes = nrSects * SECTOR_SIZE;
    try {
      if (isWrite) {
        // the data as a plain write takes it: a one-segment write's is a view of its page, which the
        // device copies before completing (a guest rewriting a page in flight changes only its own
        // data, as with DMA); the tuples are copied, as remapping rewrites them. Both ranges are
        // asked for at once: with grant copy each is a call to the hypervisor.
        const [g, gp] = await Promise.all([
          io.gather(0, segments.length),
          inlineTuples ? null : io.gather(segments.length, segments.length + piSegs.length),
        ]);
        if (!g.ok) return this.ioFailed(g.detail);
        if (gp && !gp.ok) return this.ioFailed(gp.detail);
        const data = g.data;
        const tuples = gp?.ok
          ? Buffer.concat(
              piDesc.map((p, i) => gp.data.subarray(i * 4096 + p.offset, i * 4096 + p.offset + p.length)),
            )
          : Buffer.from(inlineTuples!);
        this.ctx.stats.pi_tuples += tuples.length / PI_TUPLE_SIZE;
        remapRefs(tuples, virtSeed, physSeed, prof.type);
        this.ctx.trace?.diskStart(req.id);
        const r = await dev.write(sector, data, { tuples, checks });
        this.ctx.trace?.diskDone(req.id);
        return this.integrityOutcome(r, sector);
      }
      this.ctx.trace?.diskStart(req.id);
      const r = await dev.read(sector, nrSects, { checks });
      this.ctx.trace?.diskDone(req.id);
      if (!r.ok) return this.integrityOutcome(r, sector);
      const tuples = r.pi ?? Buffer.alloc((dataBytes / prof.interval) * PI_TUPLE_SIZE);
      this.ctx.stats.pi_tuples += tuples.length / PI_TUPLE_SIZE;
      remapRefs(tuples, physSeed, virtSeed, prof.type);
      // PI pages get the tuples at their offsets; the rest of those pages is left as it was. The
      // pages are written whole, so each is built once with every tuple bound for it — a page may
      // hold several PI segments of this request — and written that way at each of its segments.
      const out = Buffer.alloc(dataBytes + piDesc.length * 4096);
      r.data.copy(out, 0);
      const gathered = piDesc.length
        ? await io.gather(segments.length, segments.length + piSegs.length)
        : null;
      if (gathered && !gathered.ok) return this.ioFailed(gathered.detail);
      const pageOf = new Map<number, Buffer>();
      let pos = 0;
      piDesc.forEach((p, i) => {
        let page = pageOf.get(p.gref);
        if (!page) {
          page = Buffer.from(gathered!.data.subarray(i * 4096, (i + 1) * 4096));
          pageOf.set(p.gref, page);
        }
        tuples.copy(page, p.offset, pos, pos + p.length);
        pos += p.length;
      });
      piDesc.forEach((p, i) => pageOf.get(p.gref)!.copy(out, dataBytes + i * 4096));
      const s = await io.scatter(out);
      return s.ok ? { status: BLKIF_RSP_OKAY } : this.ioFailed(s.detail);
    } finally {
      io.release();
    }
  }

  /** Turns the device's result into the response, with which check failed and where. */
  private integrityOutcome(r: IoResult | { ok: false; error: IoError }, sector: number): Outcome {
    if (r.ok) return { status: BLKIF_RSP_OKAY };
    const e = r.error;
    if (e.kind !== 'protection') return { status: BLKIF_RSP_ERROR };
    const bad = (e.badSector ?? e.sector) - this.ctx.startSector;
    const caughtBy = e.detectedBy === 'host' ? 'backend' : 'device';
    if (caughtBy === 'backend') this.ctx.stats.pi_caught_backend++;
    else this.ctx.stats.pi_caught_device++;
    return {
      status: BLKIF_RSP_EPROTECTION,
      info: { check: e.check ?? 'guard', caughtBy, sectorOffset: Math.max(0, bad - sector) },
    };
  }

  /** Fetches an indirect request's segment array, reading each descriptor once (xen_blkbk_parse_indirect). */
  private async indirectSegments(
    req: Extract<BlkifRequest, { operation: 6 }>,
  ): Promise<BlkifSegment[] | null> {
    const pages = await this.indirectPages(req.indirectGrefs, 'indirect page', req.nrSegments);
    if (!pages) return null;
    const d = decodeIndirectSegments(pages, req.nrSegments);
    if (!d.ok) {
      this.debug(`${d.problem.detail} (indirect, domain ${this.ctx.frontDomid})`);
      return null;
    }
    return d.segments;
  }

  /**
   * Private copies of the `descriptors` an indirect request's pages hold (mapped read-only or copied,
   * then released at once), one view per page — empty past the last descriptor: every descriptor is
   * then read from memory the guest can no longer change.
   */
  private async indirectPages(
    grefs: number[],
    what: string,
    descriptors: number,
  ): Promise<Uint8Array[] | null> {
    const acquired = await this.data.acquire(
      grefs.map((gref) => ({ gref, firstSect: 0, lastSect: 7 })),
      true,
    );
    if (!acquired.ok) {
      // xen_blkbk_parse_indirect maps them with xen_blkbk_map: a debug line, as for data (ioFailed)
      this.debug(`${what}: ${acquired.detail}`);
      return null;
    }
    try {
      const g = await acquired.io.gather();
      if (!g.ok) return null;
      // gather may hand back a view of the mapped page: the copy is what the guest cannot change.
      // Only the descriptors that will be read are copied (a 4 KiB write with PI uses 16 bytes of
      // its page; a copy of the whole page cost blkback ≈ 1 µs a request in allocation alone).
      const used = Math.min(descriptors * BLKIF_SEGMENT_SIZE, g.data.length);
      const copy = Buffer.allocUnsafe(used);
      copyBytes(copy, 0, g.data, 0, used);
      return grefs.map((_, i) => {
        const start = Math.min(i * 4096, used);
        return bytesView(copy, start, Math.min((i + 1) * 4096, used) - start);
      });
    } finally {
      acquired.io.release();
    }
  }

  /** make_response: fields into the slot; pushes are batched per event-loop turn, then maybe notify. */
  private respond(id: bigint, operation: number, status: number, info?: IntegrityResponseInfo): void {
    if (this.faults.badResponseId) {
      this.faults.badResponseId = false;
      id = 0xdead_beefn;
    }
    this.ctx.trace?.responded(id, this.back.rspProdPvt);
    const off = this.back.slotOffset(this.back.rspProdPvt);
    if (operation === BLKIF_OP_INTEGRITY) writeIntegrityResponse(this.mem, off, { id, status, info });
    else writeResponse(this.mem, off, { id, operation, status });
    this.back.rspProdPvt = (this.back.rspProdPvt + 1) >>> 0;
    if (this.responsesPending) return;
    this.responsesPending = true;
    queueMicrotask(() => {
      this.responsesPending = false;
      const pushed = this.back.pushResponsesAndCheckNotify();
      this.ctx.trace?.pushed(pushed.oldProd, pushed.newProd);
      this.events.pushed(pushed);
    });
  }
}

/**
 * __blk_reftag_remap: tuples whose ref tag is the expected `from` seed (+ interval) are rewritten to
 * the `to` seed (+ interval). Type 3 has no ref tag to remap.
 */
export function remapRefs(tuples: Buffer, from: number, to: number, type: 1 | 2 | 3): void {
  if (type === 3 || from === to) return;
  for (let i = 0, off = 4; off < tuples.length; i++, off += PI_TUPLE_SIZE) {
    if (tuples.readUInt32BE(off) === (from + i) >>> 0) tuples.writeUInt32BE((to + i) >>> 0, off);
  }
}
