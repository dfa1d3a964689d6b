/**
 * What the nemesis knows about blkif: which frames are rings, and what each granted page carries
 * for the request that uses it — data, PI tuples or descriptors, for a read or a write, and which
 * bytes of it the request consumes. The broker holds every shared frame, so it can read the rings the
 * way blkback does: when a frontend publishes a new req_prod (a write to the first 4 bytes of its ring
 * page, forwarded to the backend), the requests between the previous req_prod and the new one are
 * complete in the frame, and their descriptors (indirect pages) too — the frontend wrote them first.
 *
 * This is how "flip a bit in a data page in transit" stays a corruption that the end-to-end checks
 * must catch: the bit lands in bytes the request moves, never in a ring slot or a descriptor (those
 * are different faults with different consequences), and only on the way the data goes — to the
 * backend for a write, to the frontend for a read.
 *
 * Rings are found through XenStore (the frontend's `ring-ref`/`ring-refN`, `ring-page-order`,
 * `multi-queue-num-queues`, `queue-N/`), lazily, when a frame nobody classified yet is written. Only a
 * run with the nemesis installed pays for any of it.
 */
import {
  BLKIF_OP_DISCARD,
  BLKIF_OP_INDIRECT,
  BLKIF_OP_INTEGRITY,
  BLKIF_OP_READ,
  BLKIF_OP_WRITE,
  BLKIF_REQUEST_SIZE,
  BLKIF_MAX_INDIRECT_SEGMENTS,
  BlkifKey,
  blkifRingSize,
  parseXsUint,
  XENBUS_MAX_RING_GRANT_ORDER,
  decodeIntegrityRequest,
  decodePiSegment,
  decodeRequest,
  decodeSegment,
  descriptorAt,
  PAGE_SIZE,
  queueDir,
  ringRefKey,
  SECTOR_SIZE,
  SRING_HEADER_SIZE,
  SRING_REQ_EVENT,
  SRING_REQ_PROD,
  SRING_RSP_EVENT,
  SRING_RSP_PROD,
  type BlkifSegment,
  vbdFrontendDir,
} from '@pvblk/shared';
import type { Domain } from './core/domain.ts';
import type { GrantEntry, SharedFrame } from './core/gnttab.ts';
import type { Envelope, Hypervisor } from './core/hypervisor.ts';

export type PageRole = 'data' | 'pi' | 'indirect' | 'ring';

/** What one granted page carries for the request that uses it now. */
export interface PageUse {
  role: PageRole;
  /** The request's direction: data and PI travel to the backend for a write, to the frontend for a read. */
  op: 'read' | 'write' | null;
  /** Bytes of the page the request moves, [start, end). */
  ranges: Array<[number, number]>;
}

/** One ring as the broker sees it. */
export interface RingState {
  frontDomid: number;
  devid: number;
  queue: number;
  size: number;
  frames: SharedFrame[];
  /** The last req_prod whose requests were decoded. */
  seenReqProd: number | null;
}

/** The shared indices of one ring (the private ones, req_cons and rsp_cons, live in the drivers). */
export interface RingIndices {
  domid: number;
  devid: number;
  queue: number;
  size: number;
  reqProd: number;
  reqEvent: number;
  rspProd: number;
  rspEvent: number;
}

export class BlkifTracer {
  private readonly rings = new WeakMap<SharedFrame, RingState>();
  /** Grant entries known not to be ring pages (a new grant is a new entry: no stale answers). */
  private readonly notRing = new WeakSet<GrantEntry>();
  private readonly uses = new WeakMap<GrantEntry, PageUse>();
  /** Requests decoded (for status). */
  decoded = 0;

  constructor(private readonly hv: Hypervisor) {}

  /** Learns from one delivery, in delivery order, before any fault is decided. */
  observe(env: Envelope): void {
    const m = env.msg;
    if (m.t !== 'gw') return;
    const mapping = env.to.maptrack.get(m.handle);
    if (!mapping) return;
    const entry = mapping.granter.grants.get(mapping.ref);
    if (!entry || entry.frame !== mapping.frame) return;
    const ring = this.ringOf(mapping.granter, entry);
    if (!ring || ring.frames[0] !== entry.frame) return;
    // a write that covers req_prod publishes requests
    if (m.off > SRING_REQ_PROD || m.off + m.data.length < SRING_REQ_PROD + 4) return;
    this.decodeNew(ring, mapping.granter);
  }

  /** The role of grant `ref` of domain `granter` in the request that uses it, when known. */
  use(granter: Domain, ref: number): PageUse | undefined {
    const e = granter.grants.get(ref);
    if (!e) return undefined;
    if (this.ringOf(granter, e)) return { role: 'ring', op: null, ranges: [[0, PAGE_SIZE]] };
    return this.uses.get(e);
  }

  /** Every frontend ring currently in XenStore, with its shared indices. */
  indices(): RingIndices[] {
    const out: RingIndices[] = [];
    for (const d of this.hv.domains.values()) {
      if (d.privileged) continue;
      for (const r of this.scan(d)) {
        const f = r.frames[0].data;
        out.push({
          domid: r.frontDomid,
          devid: r.devid,
          queue: r.queue,
          size: r.size,
          reqProd: f.readUInt32LE(SRING_REQ_PROD),
          reqEvent: f.readUInt32LE(SRING_REQ_EVENT),
          rspProd: f.readUInt32LE(SRING_RSP_PROD),
          rspEvent: f.readUInt32LE(SRING_RSP_EVENT),
        });
      }
    }
    return out;
  }

  private ringOf(granter: Domain, entry: GrantEntry): RingState | undefined {
    const known = this.rings.get(entry.frame);
    if (known) return known;
    if (this.notRing.has(entry)) return undefined;
    this.scan(granter);
    const found = this.rings.get(entry.frame);
    if (!found) this.notRing.add(entry);
    return found;
  }

  /** Reads a frontend's rings from XenStore and (re)registers their frames. */
  private scan(d: Domain): RingState[] {
    const xs = this.hv.xenstore;
    const read = (p: string): string | null => {
      try {
        return xs.read(0, 0, p);
      } catch {
        return null;
      }
    };
    // a decimal number up to `max`, as blkback reads a frontend's keys (parseXsUint); null otherwise
    const xsUint = (raw: string | null, max?: number): number | null => {
      const v = parseXsUint(raw, 'key', max);
      return v.ok ? v.value : null;
    };
    const out: RingState[] = [];
    let devids: string[] = [];
    try {
      devids = xs.directory(0, 0, vbdFrontendDir(d.domid));
    } catch {
      return out;
    }
    for (const devid of devids) {
      const base = `${vbdFrontendDir(d.domid)}/${devid}`;
      // the frontend's keys read as blkback reads them (decimal, in range), or the device is skipped:
      // a ring blkback would refuse is not one the nemesis should learn requests from
      const orderNode = read(`${base}/${BlkifKey.ringPageOrder}`);
      const order = orderNode === null ? 0 : xsUint(orderNode, XENBUS_MAX_RING_GRANT_ORDER);
      const nqNode = read(`${base}/${BlkifKey.multiQueueNumQueues}`);
      const nq = nqNode === null ? 1 : xsUint(nqNode, 64);
      if (order === null || nq === null || nq < 1) continue;
      for (let q = 0; q < nq; q++) {
        const dir = nq === 1 ? base : `${base}/${queueDir(q)}`;
        const frames: SharedFrame[] = [];
        for (let i = 0; i < 1 << order; i++) {
          const ref = xsUint(read(`${dir}/${ringRefKey(orderNode !== null, i)}`));
          const e = ref === null ? undefined : d.grants.get(ref);
          if (!e) break;
          frames.push(e.frame);
        }
        if (frames.length !== 1 << order) continue;
        const old = this.rings.get(frames[0]);
        const state: RingState = old ?? {
          frontDomid: d.domid,
          devid: Number(devid),
          queue: q,
          size: blkifRingSize(order),
          frames,
          // requests already published are not ours to learn: start from what the backend answered
          seenReqProd: frames[0].data.readUInt32LE(SRING_RSP_PROD),
        };
        for (const f of frames) this.rings.set(f, state);
        out.push(state);
      }
    }
    return out;
  }

  private slot(ring: RingState, idx: number): Buffer {
    const off = SRING_HEADER_SIZE + (idx & (ring.size - 1)) * BLKIF_REQUEST_SIZE;
    const out = Buffer.alloc(BLKIF_REQUEST_SIZE);
    for (let done = 0; done < BLKIF_REQUEST_SIZE;) {
      const p = Math.floor((off + done) / PAGE_SIZE);
      const o = (off + done) % PAGE_SIZE;
      const n = Math.min(BLKIF_REQUEST_SIZE - done, PAGE_SIZE - o);
      ring.frames[p].data.copy(out, done, o, o + n);
      done += n;
    }
    return out;
  }

  private decodeNew(ring: RingState, front: Domain): void {
    const f = ring.frames[0].data;
    const prod = f.readUInt32LE(SRING_REQ_PROD);
    let i = ring.seenReqProd ?? prod;
    // requests published while the nemesis was not installed went by unseen: those not answered yet
    // are still in their slots, from rsp_prod on
    if ((prod - i) >>> 0 > ring.size) i = f.readUInt32LE(SRING_RSP_PROD);
    // a req_prod more than a ring ahead is the backend's problem (it halts the ring); learn nothing
    if ((prod - i) >>> 0 > ring.size) i = prod;
    for (; i !== prod; i = (i + 1) >>> 0) this.learn(front, this.slot(ring, i));
    ring.seenReqProd = prod;
  }

  private learn(front: Domain, slot: Buffer): void {
    this.decoded++;
    const op = slot[0];
    const pageOf = (ref: number) => front.grants.get(ref);
    const indirectPages = (grefs: number[]): Uint8Array[] | null => {
      const pages: Uint8Array[] = [];
      for (const g of grefs) {
        const e = pageOf(g);
        if (!e) return null;
        this.uses.set(e, { role: 'indirect', op: null, ranges: [[0, PAGE_SIZE]] });
        pages.push(e.frame.data);
      }
      return pages;
    };
    const markData = (segs: BlkifSegment[], dir: 'read' | 'write') => {
      // one page may carry several segments of one request
      const byEntry = new Map<GrantEntry, Array<[number, number]>>();
      for (const s of segs) {
        const e = pageOf(s.gref);
        if (!e) continue;
        const list = byEntry.get(e) ?? [];
        list.push([s.firstSect * SECTOR_SIZE, (s.lastSect + 1) * SECTOR_SIZE]);
        byEntry.set(e, list);
      }
      for (const [e, ranges] of byEntry) this.uses.set(e, { role: 'data', op: dir, ranges });
    };
    if (op === BLKIF_OP_INTEGRITY) {
      const d = decodeIntegrityRequest(slot, BLKIF_MAX_INDIRECT_SEGMENTS);
      if (!d.ok) return;
      const r = d.request;
      const dir = r.integrityOp === BLKIF_OP_WRITE ? 'write' : 'read';
      // inline (BLKIF_PI_INLINE), the descriptors are in the slot, and a write with no PI segment
      // has its tuples there too: they travel with the ring page (role ring), not in a PI page
      const pages = r.inline ? [r.inline] : indirectPages(r.indirectGrefs);
      if (!pages) return;
      const segs: BlkifSegment[] = [];
      for (let k = 0; k < r.nrSegments; k++) segs.push(decodeSegment(...descriptorAt(pages, k)));
      markData(segs, dir);
      for (let k = 0; k < r.nrPiSegments; k++) {
        const s = decodePiSegment(...descriptorAt(pages, r.nrSegments + k));
        const e = pageOf(s.gref);
        if (e) this.uses.set(e, { role: 'pi', op: dir, ranges: [[s.offset, s.offset + s.length]] });
      }
      return;
    }
    const d = decodeRequest(slot, { maxIndirectSegments: BLKIF_MAX_INDIRECT_SEGMENTS });
    if (!d.ok) return;
    const r = d.request;
    if (r.operation === BLKIF_OP_DISCARD) return;
    if (r.operation === BLKIF_OP_INDIRECT) {
      const pages = indirectPages(r.indirectGrefs);
      if (!pages) return;
      const segs: BlkifSegment[] = [];
      for (let k = 0; k < r.nrSegments; k++) segs.push(decodeSegment(...descriptorAt(pages, k)));
      markData(segs, r.indirectOp === BLKIF_OP_WRITE ? 'write' : 'read');
      return;
    }
    if (r.operation === BLKIF_OP_READ || r.operation === BLKIF_OP_WRITE)
      markData(r.segments, r.operation === BLKIF_OP_WRITE ? 'write' : 'read');
  }
}
