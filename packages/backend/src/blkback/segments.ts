/**
 * Moving a request's data between the guest's granted pages and a buffer for the disk.
 *
 * Three ways, as real backends do it:
 * - map (Linux blkback): map the segment grants for the request's lifetime, read or write through
 *   the mapping, unmap before the response goes out (one map round trip per request);
 * - persistent grants (Linux, when both sides offer feature-persistent): keep grants mapped across
 *   requests in a per-ring tree keyed by gref, so steady-state I/O maps nothing;
 * - copy (QEMU qdisk): never map data pages; GNTTABOP_copy in or out (one copy round trip).
 */
import {
  GNTST,
  GNTTAB_COPY_BATCH,
  GNTTAB_MAP_BATCH,
  SECTOR_SIZE,
  SpareBuffers,
  bufferView,
  bytesView,
  copyBytes,
  gntstName,
  type BlkifSegment,
} from '@pvblk/shared';
import type { Page, Hypercalls } from '@pvblk/client';
import type { BlkbackStats } from './stats.ts';
import { LRU_PERCENT_CLEAN } from './config.ts';

/** One entry of the tree (struct persistent_gnt). */
interface PersistentGrant {
  page: Page;
  /** In use by a request in flight (PERSISTENT_GNT_ACTIVE). */
  active: boolean;
  /** When the last request using it finished (persistent_gnt->last_used). */
  lastUsed: number;
}

/** The persistent grants of one ring (blkback's rb-tree of `struct persistent_gnt`). */
export class PersistentGrants {
  readonly tree = new Map<number, PersistentGrant>();
  /** Set once the tree filled up and grants had to be mapped per request (overflow_max_grants). */
  overflow = false;
  warnedInUse = false;
  constructor(
    readonly max: number,
    /** persistent_grant_unused_seconds, in ms; 0: idle grants are only purged when the tree is full. */
    readonly unusedMs: number,
  ) {}

  /**
   * purge_persistent_gnt: takes out of the tree every idle grant unused for `unusedMs`, and when the
   * tree is full (or overflowed) enough idle ones — LRU_PERCENT_CLEAN of the maximum beyond it — to
   * make room. Grants in use are never taken. Returns the pages to unmap.
   */
  purge(now: number): Page[] {
    const size = this.tree.size;
    let numClean = 0;
    if (size > this.max || (size === this.max && this.overflow)) {
      numClean = Math.min(size, size - this.max + Math.floor(this.max / 100) * LRU_PERCENT_CLEAN);
    }
    const out: Page[] = [];
    const timedOut = (g: PersistentGrant) => this.unusedMs > 0 && now - g.lastUsed >= this.unusedMs;
    // the tree is walked in gref order, as rb-tree iteration does
    const inOrder = () => [...this.tree].sort((a, b) => a[0] - b[0]);
    for (const [gref, g] of inOrder()) {
      if (g.active || !timedOut(g)) continue;
      this.tree.delete(gref);
      out.push(g.page);
    }
    if (out.length < numClean) {
      // not enough idle-for-long grants: take recently used idle ones too (the scan_used pass)
      for (const [gref, g] of inOrder()) {
        if (out.length >= numClean) break;
        if (g.active) continue;
        this.tree.delete(gref);
        out.push(g.page);
      }
    }
    if (out.length > 0) this.overflow = false;
    return out;
  }
}

/**
 * The grants one guest's requests hold mapped in Dom0 beyond its persistent grants, shared by every
 * ring and disk of that guest. The broker bounds the mappings Dom0 holds at once for all guests
 * together (maptrack, GNTST_no_space beyond), and Linux's blkback bounds only persistent grants and
 * requests in flight: a guest with an order-4 ring, persistent grants off and 512 indirect requests of
 * 256 segments in flight made Dom0 hold 131,600 mappings, and other guests' requests failed with
 * GNTST_no_space. Past this budget a request moves its data by grant copy, which maps nothing: the
 * guest that asks for more only slows itself. A deliberate deviation from Linux (docs/security.md).
 * It bounds each guest, not all of them together: see GrantDataPath.copyInstead for that.
 */
export class MapBudget {
  /** Mappings held now. */
  held = 0;
  constructor(readonly limit: number) {}

  /** Takes `n` mappings if they fit. */
  take(n: number): boolean {
    if (this.held + n > this.limit) return false;
    this.held += n;
    return true;
  }

  give(n: number): void {
    this.held -= n;
  }
}

export interface SegmentData {
  /**
   * Data of the segments `from` … `to` − 1 (all by default), in order (guest → disk): a view of the
   * guest's page, or a buffer the ring lends until `release` — either way to be read before the
   * request completes (a private copy is the caller's to make).
   */
  gather(from?: number, to?: number): Promise<{ ok: true; data: Buffer } | { ok: false; detail: string }>;
  /** Writes disk data into the segments, in order (disk → guest). */
  scatter(data: Buffer): Promise<{ ok: true } | { ok: false; detail: string }>;
  /** Ends the request's use of the grants: unmap (ordered before the response) or mark persistent ones idle. */
  release(): void;
}

/**
 * A request's segments through mapped pages (persistent or not). A class, not closures made per
 * request: the loader names every closure it creates, which cost blkback ≈ 1.7 µs a request at QD32.
 */
class MappedSegments implements SegmentData {
  constructor(
    private readonly segments: BlkifSegment[],
    /** The mapped page of each segment (entries of failed maps are never read: acquire fails). */
    private readonly pages: Page[],
    private readonly persistentUsed: number[],
    private readonly transient: Page[],
    /** Mappings taken from the guest's budget for this request (those that failed too). */
    private budgeted: number,
    private readonly path: GrantDataPath,
  ) {}

  /** Buffers gather took from the ring's spares, given back at release. */
  private gathered: Buffer[] | null = null;

  /**
   * A range of one segment is handed over as a view of its mapped page, as Linux's bio points at the
   * granted page (the device copies it before the request completes; a guest that rewrites a page it
   * has in flight changes only its own data, as with DMA); several are gathered into one buffer.
   */
  async gather(from = 0, to = this.segments.length): Promise<{ ok: true; data: Buffer }> {
    const { segments, pages } = this;
    if (to - from === 1) {
      const off = segmentOffset(segments[from]);
      return { ok: true, data: bufferView(pages[from].buf, off, segmentLength(segments[from])) };
    }
    let bytes = 0;
    for (let i = from; i < to; i++) bytes += segmentLength(segments[i]);
    const whole = this.path.gatherBuffer(bytes);
    (this.gathered ??= []).push(whole);
    const data = whole.subarray(0, bytes);
    let pos = 0;
    for (let i = from; i < to; i++) {
      const off = segmentOffset(segments[i]);
      const len = segmentLength(segments[i]);
      copyBytes(data, pos, pages[i].buf, off, off + len);
      pos += len;
    }
    return { ok: true, data };
  }

  async scatter(data: Buffer): Promise<{ ok: true }> {
    let pos = 0;
    for (let i = 0; i < this.segments.length; i++) {
      const off = segmentOffset(this.segments[i]);
      const len = segmentLength(this.segments[i]);
      this.pages[i].write(off, bytesView(data, pos, len));
      pos += len;
    }
    return { ok: true };
  }

  release(): void {
    this.path.releaseMapped(this.persistentUsed, this.transient, this.budgeted);
    this.budgeted = 0;
    // the device has copied what it was handed (see gather): the buffers can carry later requests
    if (this.gathered) for (const b of this.gathered.splice(0)) this.path.spareGatherBuffer(b);
  }
}

/** Where a segment's bytes start in its page, and how many there are (no object: a hot path). */
function segmentOffset(s: BlkifSegment): number {
  return s.firstSect * SECTOR_SIZE;
}

function segmentLength(s: BlkifSegment): number {
  return (s.lastSect - s.firstSect + 1) * SECTOR_SIZE;
}

function segBytes(s: BlkifSegment): { off: number; len: number } {
  return { off: segmentOffset(s), len: segmentLength(s) };
}

/**
 * Gather buffers a ring keeps for its later requests, and the largest it keeps. A fresh 128 KiB
 * buffer per multi-segment write cost the host ≈ 18 page faults per request (`perf stat -e
 * page-faults`: 40-48k a second at ≈ 2.5k writes a second; 346 a second with the buffers reused) —
 * memory the allocator had given back and the kernel zeroed again. Eight cover a QD8 stream of
 * 128 KiB writes; an idle ring drops them at its next LRU pass.
 */
const GATHER_SPARES = 8;
const GATHER_SPARE_BYTES = 256 * 1024;

export class GrantDataPath {
  private readonly spares = new SpareBuffers(GATHER_SPARES, GATHER_SPARE_BYTES);
  /** Gathers since the last LRU pass: none, and the spares go (purgePersistent). */
  private gathers = 0;

  constructor(
    private readonly xc: Hypercalls,
    private readonly frontDomid: number,
    private readonly mode: 'map' | 'copy',
    private readonly persistent: PersistentGrants | null,
    private readonly stats: BlkbackStats,
    private readonly budget: MapBudget,
  ) {}

  /**
   * Prepares access to the segments' pages. `toDisk` is true when data flows from the guest (a write):
   * then non-persistent maps are read-only, as Linux maps them for writes.
   */
  async acquire(
    segments: BlkifSegment[],
    toDisk: boolean,
  ): Promise<{ ok: true; io: SegmentData } | { ok: false; detail: string }> {
    if (this.mode === 'copy') return { ok: true, io: this.copyIo(segments) };

    const pages: Array<Page | null> = new Array(segments.length).fill(null);
    const persistentUsed: number[] = [];
    const toMap: Array<{ index: number; persist: boolean }> = [];
    /** Of `toMap`, the maps that will be kept (counted as they come: a filter per segment was O(n²)). */
    let persistNew = 0;
    const p = this.persistent;
    for (let i = 0; i < segments.length; i++) {
      const gref = segments[i].gref;
      const hit = p?.tree.get(gref);
      if (hit && !hit.active) {
        hit.active = true;
        pages[i] = hit.page;
        persistentUsed.push(gref);
        this.stats.persistent_hits++;
      } else if (p && !hit && p.tree.size + persistNew < p.max) {
        toMap.push({ index: i, persist: true });
        persistNew++;
      } else {
        if (p && hit && !p.warnedInUse) p.warnedInUse = true; // "requesting a grant already in use"
        if (p && !hit) p.overflow = true;
        toMap.push({ index: i, persist: false });
      }
    }
    // the maps this request would hold beyond the ring's persistent grants, against the guest's budget
    const budgeted = toMap.length - persistNew;
    if (budgeted > 0 && !this.budget.take(budgeted)) return this.copyInstead(segments, [], persistentUsed, 0);
    // steady state with persistent grants maps nothing: no call, not even a resolved one to await
    const results =
      toMap.length === 0
        ? []
        : await this.mapBatched(
            toMap.map((m) => ({
              dom: this.frontDomid,
              ref: segments[m.index].gref,
              readonly: m.persist ? false : toDisk,
            })),
          );
    this.stats.grant_maps += toMap.length;
    if (results.some((r) => r.status === GNTST.no_space))
      return this.copyInstead(segments, results, persistentUsed, budgeted);
    const transient: Page[] = [];
    let failure: string | null = null;
    results.forEach((r, k) => {
      const m = toMap[k];
      const gref = segments[m.index].gref;
      if (r.status !== GNTST.okay || !r.page) {
        failure ??= `segment ${m.index}: mapping grant ${gref} of domain ${this.frontDomid} failed (${gntstName(r.status)})`;
        return;
      }
      pages[m.index] = r.page;
      if (m.persist && p && !p.tree.has(gref)) {
        p.tree.set(gref, { page: r.page, active: true, lastUsed: Date.now() });
        persistentUsed.push(gref);
        this.stats.persistent_grants = p.tree.size;
      } else {
        transient.push(r.page);
      }
    });
    const io = new MappedSegments(segments, pages as Page[], persistentUsed, transient, budgeted, this);
    if (failure) {
      // unmap what was mapped, as xen_blkbk_map does on any failure (XSA-365)
      io.release();
      return { ok: false, detail: failure };
    }
    return { ok: true, io };
  }

  /**
   * GNTTABOP_map_grant_ref in calls of at most GNTTAB_MAP_BATCH operations, sent together (one round
   * trip): a hostile frontend's integrity request may name 4,096 descriptors, past what the broker
   * answers in one call.
   */
  private async mapBatched(
    ops: Array<{ dom: number; ref: number; readonly: boolean }>,
  ): Promise<Array<{ status: number; page?: Page }>> {
    if (ops.length <= GNTTAB_MAP_BATCH) return this.xc.gnttab.map(ops);
    const settled = await Promise.allSettled(
      inCalls(ops, GNTTAB_MAP_BATCH, (batch) => this.xc.gnttab.map(batch)),
    );
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      // what the other calls mapped goes again, as on any failure to map (XSA-365)
      const mapped = settled.flatMap((r) =>
        r.status === 'fulfilled' ? r.value.flatMap((m) => (m.page ? [m.page] : [])) : [],
      );
      if (mapped.length) this.xc.gnttab.unmapAsync(mapped);
      throw failed.reason;
    }
    return settled.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
  }

  /**
   * The request moves its data by grant copy, which maps nothing, instead of by mappings: when it
   * would pass the guest's budget (nothing mapped yet), and when Dom0's maptrack is full — every
   * guest's mappings together, which no one guest's budget bounds (several guests each within theirs
   * can fill it). Linux's blkback answers the latter BLKIF_RSP_ERROR, which hands the load of some
   * guests to another as I/O errors; here it only slows everyone down. What this request did map
   * (`results`) is unmapped and its budget (`budgeted`) given back; its persistent grants in use are
   * idle again.
   */
  private copyInstead(
    segments: BlkifSegment[],
    results: Array<{ status: number; page?: Page }>,
    persistentUsed: number[],
    budgeted: number,
  ): { ok: true; io: SegmentData } {
    const mapped = results.flatMap((r) => (r.status === GNTST.okay && r.page ? [r.page] : []));
    for (const g of persistentUsed) this.persistent!.tree.get(g)!.active = false;
    this.stats.persistent_hits -= persistentUsed.length;
    this.budget.give(budgeted);
    this.stats.grant_unmaps += mapped.length;
    this.xc.gnttab.unmapAsync(mapped);
    return { ok: true, io: this.copyIo(segments) };
  }

  /** A buffer of at least `bytes` for a gather: the smallest spare that fits, else a new one. */
  gatherBuffer(bytes: number): Buffer {
    this.gathers++;
    return this.spares.take(bytes);
  }

  /** Takes back a gather buffer nothing refers to any more (its request was released). */
  spareGatherBuffer(b: Buffer): void {
    this.spares.give(b);
  }

  /** MappedSegments.release: mark the persistent grants idle, unmap the transient ones. */
  releaseMapped(persistentUsed: number[], transient: Page[], budgeted: number): void {
    this.budget.give(budgeted);
    const p = this.persistent;
    const now = Date.now();
    for (const g of persistentUsed) {
      const e = p?.tree.get(g);
      if (e) {
        e.active = false;
        e.lastUsed = now;
      }
    }
    this.stats.grant_unmaps += transient.length;
    this.xc.gnttab.unmapAsync(transient);
  }

  private copyIo(segments: BlkifSegment[]): SegmentData {
    return {
      gather: async (from = 0, to = segments.length) => {
        const range = segments.slice(from, to);
        const rs = await copyBatched(
          range.map((s) => ({ dom: this.frontDomid, ref: s.gref, ...segBytes(s) })),
          (ops) => this.xc.gnttab.copyFrom(ops),
        );
        this.stats.grant_copies += range.length;
        const bad = rs.findIndex((r) => r.status !== GNTST.okay);
        if (bad >= 0) {
          return {
            ok: false,
            detail: `segment ${from + bad}: copy from grant ${range[bad].gref} failed (${gntstName(rs[bad].status)})`,
          };
        }
        return {
          ok: true,
          data: Buffer.concat(
            rs.map((r, i) => (r.data ? Buffer.from(r.data) : Buffer.alloc(segBytes(range[i]).len))),
          ),
        };
      },
      scatter: async (data) => {
        let pos = 0;
        const ops = segments.map((s) => {
          const { off, len } = segBytes(s);
          const op = { dom: this.frontDomid, ref: s.gref, off, data: data.subarray(pos, pos + len) };
          pos += len;
          return op;
        });
        const st = await copyBatched(ops, (batch) => this.xc.gnttab.copyTo(batch));
        this.stats.grant_copies += segments.length;
        const bad = st.findIndex((x) => x !== GNTST.okay);
        return bad >= 0
          ? {
              ok: false,
              detail: `segment ${bad}: copy to grant ${segments[bad].gref} failed (${gntstName(st[bad])})`,
            }
          : { ok: true };
      },
      release: () => {},
    };
  }

  /** One LRU pass (xen_blkif_schedule → purge_persistent_gnt → xen_blkbk_unmap_purged_grants). */
  purgePersistent(now: number): number {
    if (this.gathers === 0) this.spares.clear();
    this.gathers = 0;
    const p = this.persistent;
    if (!p) return 0;
    const pages = p.purge(now);
    if (pages.length === 0) return 0;
    this.stats.persistent_purged += pages.length;
    this.stats.grant_unmaps += pages.length;
    this.stats.persistent_grants = p.tree.size;
    this.xc.gnttab.unmapAsync(pages);
    return pages.length;
  }

  /** Unmaps every persistent grant (disconnect). */
  releasePersistent(): void {
    this.spares.clear();
    const p = this.persistent;
    if (!p) return;
    const pages = [...p.tree.values()].map((e) => e.page);
    p.tree.clear();
    this.stats.grant_unmaps += pages.length;
    this.stats.persistent_grants = 0;
    this.xc.gnttab.unmapAsync(pages);
  }
}

/**
 * GNTTABOP_copy in calls of at most GNTTAB_COPY_BATCH ops, sent together; the results in the ops'
 * order. A copy holds nothing once done, so a failed call fails the whole, as one call would.
 */
async function copyBatched<T, R>(ops: T[], copy: (batch: T[]) => Promise<R[]>): Promise<R[]> {
  if (ops.length <= GNTTAB_COPY_BATCH) return copy(ops);
  return (await Promise.all(inCalls(ops, GNTTAB_COPY_BATCH, copy))).flat();
}

/** `ops` cut into calls of at most `size`, all sent at once (one round trip); the calls in order. */
function inCalls<T, R>(ops: T[], size: number, call: (batch: T[]) => Promise<R>): Array<Promise<R>> {
  const calls: Array<Promise<R>> = [];
  for (let i = 0; i < ops.length; i += size) calls.push(call(ops.slice(i, i + size)));
  return calls;
}
