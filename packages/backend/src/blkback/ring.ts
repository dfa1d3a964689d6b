/**
 * One blkif ring of a vbd as blkback serves it (struct xen_blkif_ring): consume requests, validate
 * each one from a private copy, move its data, do the I/O, answer, and notify only when the frontend
 * asked to be woken.
 *
 * Hostile-frontend rules (Linux __do_block_io_op / dispatch_rw_block_io):
 * - the slot is copied before anything is read from it (XSA-155 double fetch);
 * - a req_prod that runs more than RING_SIZE ahead halts this ring — "Frontend provided bogus ring
 *   requests" — and nothing else: other rings and other guests keep being served;
 * - every field is checked; a bad request gets BLKIF_RSP_ERROR, an unknown operation
 *   BLKIF_RSP_EOPNOTSUPP, always with the id the frontend wrote;
 * - responses are written field by field (XSA-216).
 */
import {
  BackRing,
  BLKIF_OP_DISCARD,
  BLKIF_OP_FLUSH_DISKCACHE,
  BLKIF_OP_INDIRECT,
  BLKIF_OP_NAMES,
  BLKIF_OP_READ,
  BLKIF_OP_WRITE,
  BLKIF_OP_WRITE_BARRIER,
  BLKIF_REQUEST_SIZE,
  BLKIF_RSP_EOPNOTSUPP,
  BLKIF_RSP_ERROR,
  BLKIF_RSP_OKAY,
  BLKIF_DISCARD_SECURE,
  decodeIndirectSegments,
  decodeRequest,
  KERN_DEBUG,
  KERN_WARNING,
  KERN_ERR,
  SECTOR_SIZE,
  segmentSectors,
  writeResponse,
  type BlkifRequest,
  type BlkifSegment,
  type DecodedRequest,
  type KernelLog,
  BLKIF_OP_INTEGRITY,
  BLKIF_RSP_EPROTECTION,
  BLKIF_PI_CHECK_APP,
  BLKIF_PI_CHECK_GUARD,
  BLKIF_PI_CHECK_REF,
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
import { GrantDataPath, PersistentGrants } from './segments.ts';
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
  flush: boolean;
  discard: boolean;
  dataPath: 'map' | 'copy';
  persistent: PersistentGrants | null;
  stats: BlkbackStats;
  /** The PI format negotiated with the frontend (the blkif integrity extension), or null. */
  integrity: IntegrityProfile | null;
  /** Where the vbd starts on the host device (a partition), in 512-byte sectors: ref tags are remapped by it. */
  startSector: number;
  /** Trace hooks (trace.ts); null when tracing is off. */
  trace?: BlkbackRingTrace | null;
}

type Outcome = { status: number; info?: IntegrityResponseInfo };

/** Misbehaviour on demand, to test a frontend against a hostile backend. Each fault fires once. */
export interface BackFaults {
  /** Answer the next request with an id the frontend never used. */
  badResponseId: boolean;
}

export class BlkifRing {
  readonly faults: BackFaults = { badResponseId: false };
  readonly back: BackRing;
  private readonly mem: PagesRingMemory;
  private readonly events: RingEvents;
  private readonly data: GrantDataPath;
  private readonly maxInflight: number;
  inflight = 0;
  halted = false;
  private stopped = false;
  private draining = false;
  private kickAgain = false;
  private waitingForSlot = false;
  private responsesPending = false;
  private idleWaiters: Array<() => void> = [];
  /** Barrier requests wait for everything before them (Linux drains the ring first). */
  private barrierGate: Promise<void> | null = null;

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
    this.data = new GrantDataPath(ctx.xc, ctx.frontDomid, ctx.dataPath, ctx.persistent, ctx.stats);
    this.events = new RingEvents(ctx.xc, ringPages[0], 'responder', () => this.port);
  }

  start(): void {
    this.ctx.xc.evtchn.onEvent(this.port, () => {
      this.ctx.stats.notify_received++;
      return this.kick();
    });
  }

  /** Stops consuming; resolves once every request in flight has been answered (or the timeout passed). */
  async stop(timeoutMs: number): Promise<boolean> {
    this.stopped = true;
    if (this.inflight === 0) return true;
    return new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  releasePersistent(): void {
    this.data.releasePersistent();
  }

  /** do_block_io_op: consume until the ring is empty, then re-arm req_event behind a barrier. */
  kick(): Promise<void> {
    if (this.draining) {
      this.kickAgain = true;
      return Promise.resolve();
    }
    this.draining = true;
    return this.drain().finally(() => {
      this.draining = false;
    });
  }

  private async drain(): Promise<void> {
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
        let rc = this.back.reqCons;
        this.waitingForSlot = false;
        while (rc !== rp) {
          if (this.back.requestConsOverflow(rc)) break;
          if (this.inflight >= this.maxInflight) {
            this.ctx.stats.oo_req++;
            this.waitingForSlot = true;
            break;
          }
          // a private copy first: nothing is read twice from memory the guest can rewrite
          const slot = this.mem.read(this.back.slotOffset(rc), BLKIF_REQUEST_SIZE);
          this.ctx.trace?.consumed(rc, slot);
          rc = (rc + 1) >>> 0;
          this.back.reqCons = rc; // before dispatch: the response may be made at once
          if (slot[0] === BLKIF_OP_INTEGRITY && this.ctx.integrity) {
            this.dispatchIntegrity(slot);
          } else {
            this.dispatch(decodeRequest(slot, { maxIndirectSegments: this.ctx.maxIndirectSegments }));
          }
        }
        if (this.waitingForSlot) return; // a completion kicks us again
        if (!this.events.finalCheck(() => this.back.finalCheckForRequests(), this.back.reqCons)) break;
      }
    } while (this.kickAgain);
  }

  private dispatch(d: DecodedRequest): void {
    const id = d.ok ? d.request.id : d.id;
    // the response to an indirect request carries the inner operation (Linux blkback/blkfront)
    const op = d.ok
      ? d.request.operation === BLKIF_OP_INDIRECT
        ? d.request.indirectOp
        : d.request.operation
      : d.operation;
    this.track(id, op, this.execute(d));
  }

  private dispatchIntegrity(slot: Buffer): void {
    const d = decodeIntegrityRequest(slot, Math.max(this.ctx.maxIndirectSegments, 11));
    const id = d.ok ? d.request.id : d.id;
    if (!d.ok) {
      this.debug(`${d.problem.detail} (integrity, domain ${this.ctx.frontDomid})`);
      this.track(id, BLKIF_OP_INTEGRITY, Promise.resolve({ status: BLKIF_RSP_ERROR }));
      return;
    }
    this.track(
      id,
      BLKIF_OP_INTEGRITY,
      (this.barrierGate ?? Promise.resolve()).then(() => this.integrityRw(d.request)),
    );
  }

  /** Counts a request in flight, answers it when its work settles, and resumes consuming if we had paused. */
  private track(id: bigint, op: number, work: Promise<Outcome>): void {
    this.inflight++;
    work
      .catch((e: Error) => {
        this.ctx.klog.printk(KERN_ERR, `xen-blkback: request ${id} failed unexpectedly: ${e.message}`);
        return { status: BLKIF_RSP_ERROR } as Outcome;
      })
      .then((o) => {
        this.inflight--;
        if (o.status === BLKIF_RSP_ERROR) this.ctx.stats.errors++;
        if (o.status === BLKIF_RSP_EOPNOTSUPP) this.ctx.stats.eopnotsupp++;
        if (o.status === BLKIF_RSP_EPROTECTION) this.ctx.stats.pi_errors++;
        this.respond(id, op, o.status, o.info);
        if (this.inflight === 0 && this.idleWaiters.length) {
          for (const w of this.idleWaiters.splice(0)) w();
        }
        if (this.waitingForSlot && !this.stopped) void this.kick();
      });
  }

  private debug(msg: string): void {
    this.ctx.klog.printk(KERN_DEBUG, `xen-blkback: ${msg}`);
  }

  private async execute(d: DecodedRequest): Promise<Outcome> {
    if (!d.ok) {
      this.debug(`${d.problem.detail} (domain ${this.ctx.frontDomid}, op ${d.operation})`);
      return { status: d.problem.code === 'EOPNOTSUPP' ? BLKIF_RSP_EOPNOTSUPP : BLKIF_RSP_ERROR };
    }
    const req = d.request;
    if (this.barrierGate) await this.barrierGate;
    switch (req.operation) {
      case BLKIF_OP_DISCARD:
        return this.discard(req);
      case BLKIF_OP_FLUSH_DISKCACHE:
      case BLKIF_OP_WRITE_BARRIER:
        return this.flushOrBarrier(req);
      default:
        return this.readWrite(req);
    }
  }

  private async flushOrBarrier(req: Extract<BlkifRequest, { operation: 0 | 1 | 2 | 3 }>): Promise<Outcome> {
    this.ctx.stats.f_req++;
    if (!this.ctx.flush) return { status: BLKIF_RSP_EOPNOTSUPP };
    if (req.operation === BLKIF_OP_WRITE_BARRIER) {
      // drain everything dispatched before the barrier, and hold back what comes after it
      let open!: () => void;
      this.barrierGate = new Promise<void>((r) => (open = r));
      try {
        while (this.inflight > 1) await new Promise((r) => setTimeout(r, 1));
        if (req.segments.length > 0) {
          const w = await this.readWrite({ ...req, operation: BLKIF_OP_WRITE });
          if (w.status !== BLKIF_RSP_OKAY) return w;
        }
        return this.status(await this.ctx.device.flush());
      } finally {
        this.barrierGate = null;
        open();
      }
    }
    if (req.segments.length > 0) {
      const w = await this.readWrite({ ...req, operation: BLKIF_OP_WRITE });
      if (w.status !== BLKIF_RSP_OKAY) return w;
    }
    return this.status(await this.ctx.device.flush());
  }

  private async discard(req: Extract<BlkifRequest, { operation: 5 }>): Promise<Outcome> {
    this.ctx.stats.ds_req++;
    const dev = this.ctx.device;
    if (!this.ctx.discard || !dev.discard) return { status: BLKIF_RSP_EOPNOTSUPP };
    const start = req.sectorNumber;
    const end = start + req.nrSectors;
    if (dev.readOnly || end < start || end > BigInt(dev.sectors)) {
      this.ctx.klog.printk(
        KERN_WARNING,
        `xen-blkback: access denied: DISCARD [${start}->${end}] on dev=${this.ctx.devid.toString(16).padStart(4, '0')}`,
      );
      return { status: BLKIF_RSP_ERROR };
    }
    const secure = (req.flag & BLKIF_DISCARD_SECURE) !== 0 && dev.discard.secure;
    const r = await dev.discardRange(Number(start), Number(req.nrSectors), secure);
    if (!r.ok && r.error.kind === 'notsupp') return { status: BLKIF_RSP_EOPNOTSUPP };
    return this.status(r);
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
      if (!s) return { status: BLKIF_RSP_ERROR };
      segments = s;
    } else {
      segments = req.segments;
    }
    const nrSects = segments.reduce((n, s) => n + segmentSectors(s), 0);
    if (isWrite) {
      this.ctx.stats.wr_req++;
      this.ctx.stats.wr_sect += nrSects;
    } else {
      this.ctx.stats.rd_req++;
      this.ctx.stats.rd_sect += nrSects;
    }
    const opName = BLKIF_OP_NAMES[op] ?? String(op);
    if (isWrite && dev.readOnly) {
      this.debug(`write to a read-only vbd of domain ${this.ctx.frontDomid}`);
      return { status: BLKIF_RSP_ERROR };
    }
    const start = req.sectorNumber;
    const end = start + BigInt(nrSects);
    if (end > BigInt(dev.sectors)) {
      this.debug(
        `access denied: ${opName} of [${start},${end}] on dev=${this.ctx.devid.toString(16).padStart(4, '0')}`,
      );
      return { status: BLKIF_RSP_ERROR };
    }
    const mask = dev.logicalBlockSize / SECTOR_SIZE - 1;
    if (
      (Number(start) & mask) !== 0 ||
      segments.some((s) => ((s.firstSect | segmentSectors(s)) & mask) !== 0)
    ) {
      this.debug(`Misaligned I/O request from domain ${this.ctx.frontDomid}`);
      return { status: BLKIF_RSP_ERROR };
    }
    if (nrSects === 0) return { status: BLKIF_RSP_OKAY };

    const acquired = await this.data.acquire(segments, isWrite);
    if (!acquired.ok) {
      this.ctx.klog.printk(KERN_ERR, `xen-blkback: ${acquired.detail}`);
      return { status: BLKIF_RSP_ERROR };
    }
    const io = acquired.io;
    try {
      if (isWrite) {
        const g = await io.gather();
        if (!g.ok) {
          this.ctx.klog.printk(KERN_ERR, `xen-blkback: ${g.detail}`);
          return { status: BLKIF_RSP_ERROR };
        }
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
      if (!s.ok) {
        this.ctx.klog.printk(KERN_ERR, `xen-blkback: ${s.detail}`);
        return { status: BLKIF_RSP_ERROR };
      }
      return { status: BLKIF_RSP_OKAY };
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
    // descriptors: data segments, then PI segments, in the indirect pages
    const pages = await this.indirectPages(req.indirectGrefs, 'integrity descriptors');
    if (!pages) return { status: BLKIF_RSP_ERROR };
    const desc = decodeIntegrityDescriptors(
      pages,
      req.nrSegments,
      req.nrPiSegments,
      (sectors) => (sectors / spi) * PI_TUPLE_SIZE,
    );
    if (!desc.ok) {
      this.debug(`${desc.problem.detail} (integrity, domain ${this.ctx.frontDomid})`);
      return { status: BLKIF_RSP_ERROR };
    }
    const segments = desc.data;
    const nrSects = segments.reduce((n, s) => n + segmentSectors(s), 0);
    const start = req.sectorNumber;
    if (start + BigInt(nrSects) > BigInt(dev.sectors) || Number(start) % spi !== 0 || nrSects % spi !== 0) {
      this.debug(
        `access denied: integrity ${isWrite ? 'WRITE' : 'READ'} of [${start},${start + BigInt(nrSects)}]`,
      );
      return { status: BLKIF_RSP_ERROR };
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
    const piSegs = desc.pi.map((p) => ({ gref: p.gref, firstSect: 0, lastSect: 7 }));
    const all = await this.data.acquire([...segments, ...piSegs], isWrite);
    if (!all.ok) {
      this.ctx.klog.printk(KERN_ERR, `xen-blkback: ${all.detail}`);
      return { status: BLKIF_RSP_ERROR };
    }
    const io = all.io;
    const dataBytes = nrSects * SECTOR_SIZE;
    try {
      if (isWrite) {
        const g = await io.gather();
        if (!g.ok) return { status: BLKIF_RSP_ERROR };
        const data = g.data.subarray(0, dataBytes);
        const tuples = Buffer.concat(
          desc.pi.map((p, i) => {
            const base = dataBytes + i * 4096;
            return g.data.subarray(base + p.offset, base + p.offset + p.length);
          }),
        );
        this.ctx.stats.pi_tuples += tuples.length / PI_TUPLE_SIZE;
        remapRefs(tuples, virtSeed, physSeed, prof.type);
        this.ctx.trace?.diskStart(req.id);
        const r = await dev.write(sector, Buffer.from(data), { tuples, checks });
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
      // PI pages get the tuples at their offsets; the rest of those pages is left as it was
      const out = Buffer.alloc(dataBytes + desc.pi.length * 4096);
      r.data.copy(out, 0);
      const gathered = desc.pi.length ? await io.gather() : null;
      let pos = 0;
      desc.pi.forEach((p, i) => {
        const base = dataBytes + i * 4096;
        if (gathered?.ok) gathered.data.copy(out, base, base, base + 4096);
        tuples.copy(out, base + p.offset, pos, pos + p.length);
        pos += p.length;
      });
      const s = await io.scatter(out);
      return s.ok ? { status: BLKIF_RSP_OKAY } : { status: BLKIF_RSP_ERROR };
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
    const pages = await this.indirectPages(req.indirectGrefs, 'indirect page');
    if (!pages) return null;
    const d = decodeIndirectSegments(pages, req.nrSegments);
    if (!d.ok) {
      this.debug(`${d.problem.detail} (indirect, domain ${this.ctx.frontDomid})`);
      return null;
    }
    return d.segments;
  }

  /**
   * Private copies of the pages holding an indirect request's descriptors (mapped read-only or copied,
   * then released at once): every descriptor is then read from memory the guest can no longer change.
   */
  private async indirectPages(grefs: number[], what: string): Promise<Uint8Array[] | null> {
    const acquired = await this.data.acquire(
      grefs.map((gref) => ({ gref, firstSect: 0, lastSect: 7 })),
      true,
    );
    if (!acquired.ok) {
      this.ctx.klog.printk(KERN_ERR, `xen-blkback: ${what}: ${acquired.detail}`);
      return null;
    }
    try {
      const g = await acquired.io.gather();
      if (!g.ok) return null;
      return grefs.map((_, i) => g.data.subarray(i * 4096, (i + 1) * 4096));
    } finally {
      acquired.io.release();
    }
  }

  /** make_response: fields into the slot; pushes are batched per event-loop turn, then maybe notify. */
  private respond(id: bigint, operation: number, status: number, info?: IntegrityResponseInfo): void {
    if (this.halted) return;
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
      if (this.halted) return;
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
