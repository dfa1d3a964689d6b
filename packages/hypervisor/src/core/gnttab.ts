/**
 * Grant tables and shared memory.
 *
 * Each domain keeps its own pages in its own process. A page becomes known to the hypervisor when its
 * owner grants it: the grant carries the page's contents, and from then on the owner sends every
 * write to that page here. The hypervisor keeps the authoritative copy of each shared frame and
 * forwards every write — from the owner or from a domain that maps the frame writable — to every
 * other party (owner and mappers), in the order it receives them. Because each connection is FIFO and
 * event notifications travel the same path, a write sent before a notification reaches the peer
 * before that notification does: the release/acquire pairing the ring protocol relies on.
 *
 * Rules follow Xen's grant_table.c: GTF_reading/GTF_writing are set while a grant is mapped, ending
 * foreign access fails while it is mapped, a read-only grant cannot be mapped writable, and copy
 * segments may not cross the page. Deviation: where Xen answers GNTST_general_error for "not granted
 * to you" and "write-pin of a read-only entry", we answer GNTST_permission_denied, which says what
 * happened; out-of-range refs are GNTST_bad_gntref as in Xen.
 */
import {
  GNTST,
  GNTTAB_NR_RESERVED_ENTRIES,
  GTF_permit_access,
  GTF_readonly,
  GTF_reading,
  GTF_writing,
  PAGE_SIZE,
  copyInto,
  PvblkError,
  isZeroPage,
  type GrantCopyOp,
  type GrantCopyResult,
  type GrantMapOp,
  type GrantMapResult,
} from '@pvblk/shared';
import type { Domain } from './domain.ts';

/** Grant-table limits per domain (Xen's `max_grant_frames` and `max_maptrack_frames`, and the broker's own). */
export interface GrantLimits {
  /** Grant-table frames: refs run below frames × 512 (v1 entries); Xen's default is 64. */
  maxGrantFrames: number;
  /** Mappings one domain may hold at once (maptrack entries); GNTST_no_space beyond. */
  maxMaptrack: number;
  /**
   * Frames of one domain the broker keeps a copy of (granted or mapped): the broker's memory per
   * domain is about 4 KiB times this. ENOMEM beyond, as a domain over its memory allocation gets.
   */
  maxSharedFrames: number;
  /**
   * Bytes one GNTTABOP_copy may move out of frames, and one GNTTABOP_map_grant_ref may carry as pages
   * new to the mapper (each reply must fit a frame); E2BIG beyond. GNTTAB_MAP_BATCH pages fit.
   */
  maxCopyBytes: number;
}

export const DEFAULT_GRANT_LIMITS: Readonly<GrantLimits> = Object.freeze({
  maxGrantFrames: 64,
  maxMaptrack: 64 * 1024,
  maxSharedFrames: 16 * 1024,
  maxCopyBytes: 2 * 1024 * 1024,
});

/**
 * Host mappings of one grant entry, of each kind (writable, read-only): Xen keeps each count in 8 bits
 * of the active entry's pin and refuses a map once its top bit is set (GNTPIN_incr2oflow_mask).
 */
export const GRANT_PIN_MAX = 128;

/** v1 grant entries per grant-table frame. */
export const GRANT_ENTRIES_PER_FRAME = 512;

export interface SharedFrame {
  owner: Domain;
  gfn: number;
  data: Buffer;
  /** Grant refs (in the owner's table) that name this frame. */
  refs: Set<number>;
  /**
   * The mappings of this frame, by the domain that holds them (a domain's mappings of one frame share
   * one page there): a map finds its alias, and a write its domains to forward to, without visiting
   * every mapping — 65,536 mappings of one frame had made each write of it cost a millisecond.
   */
  mappings: Map<Domain, MapperMappings>;
}

/** One domain's mappings of one frame, and the one that stands for them all (writes name its handle). */
export interface MapperMappings {
  all: Set<Mapping>;
  first: Mapping;
}

export interface GrantEntry {
  ref: number;
  /** The grantee. */
  domid: number;
  frame: SharedFrame;
  readonly: boolean;
  /** Mappings of this entry currently held (for the busy bits). */
  mapCount: number;
  writableMapCount: number;
}

export interface Mapping {
  handle: number;
  mapper: Domain;
  granter: Domain;
  ref: number;
  frame: SharedFrame;
  readonly: boolean;
}

/** Where grant operations deliver page writes and forced unmaps. */
export interface MemorySink {
  /** Tells `to` that bytes of one of its own frames changed. */
  ownerWrite(to: Domain, gfn: number, off: number, data: Uint8Array): void;
  /** Tells a mapper that bytes of a frame it maps changed. */
  mapperWrite(to: Domain, handle: number, off: number, data: Uint8Array): void;
  unmapped(to: Domain, handles: number[]): void;
}

export function grantFlags(e: GrantEntry): number {
  let f = GTF_permit_access;
  if (e.readonly) f |= GTF_readonly;
  if (e.mapCount > 0) f |= GTF_reading;
  if (e.writableMapCount > 0) f |= GTF_writing;
  return f;
}

export class GrantTables {
  readonly limits: GrantLimits;
  private readonly maxEntries: number;

  constructor(
    private readonly sink: MemorySink,
    private readonly lookup: (domid: number) => Domain | undefined,
    limits: Partial<GrantLimits> = {},
  ) {
    this.limits = { ...DEFAULT_GRANT_LIMITS, ...limits };
    this.maxEntries = this.limits.maxGrantFrames * GRANT_ENTRIES_PER_FRAME;
  }

  grant(
    owner: Domain,
    ref: number,
    grantee: number,
    gfn: number,
    readonly: boolean,
    data?: Uint8Array,
  ): void {
    if (ref < GNTTAB_NR_RESERVED_ENTRIES) {
      throw new PvblkError(
        'EINVAL',
        `grant ref ${ref} is reserved (refs below ${GNTTAB_NR_RESERVED_ENTRIES})`,
      );
    }
    if (ref >= this.maxEntries) {
      throw new PvblkError(
        'GNTST_bad_gntref',
        `grant ref ${ref} is beyond the table (${this.maxEntries} entries: max_grant_frames ${this.limits.maxGrantFrames})`,
      );
    }
    const old = owner.grants.get(ref);
    if (old && old.mapCount > 0) {
      throw new PvblkError(
        'EBUSY',
        `grant ref ${ref} is mapped by domain ${old.domid}; it cannot be rewritten`,
      );
    }
    // Every check comes before any change: a refused re-grant leaves the entry it would have
    // replaced as it was (as Xen leaves a grant entry a failed operation touched), so the grantee
    // keeps the access it had. Dropping the old entry may give back its frame: counted here.
    const freesOldFrame = old !== undefined && old.frame.refs.size === 1 && old.frame.mappings.size === 0;
    const sharedAfter = owner.frames.size - (freesOldFrame ? 1 : 0);
    const gfnSharedAfter = owner.frames.has(gfn) && !(freesOldFrame && old.frame.gfn === gfn);
    if (!gfnSharedAfter && !owner.privileged && sharedAfter >= this.limits.maxSharedFrames) {
      throw new PvblkError(
        'ENOMEM',
        `domain ${owner.domid} already shares ${sharedAfter} frames, its limit (max shared frames ${this.limits.maxSharedFrames})`,
      );
    }
    if (old) this.dropEntry(owner, old);
    let frame = owner.frames.get(gfn);
    if (!frame) {
      frame = { owner, gfn, data: Buffer.alloc(PAGE_SIZE), refs: new Set(), mappings: new Map() };
      owner.frames.set(gfn, frame);
    }
    // The grant carries the page as the owner sees it now; an absent body means a zero page. A frame
    // that is shared already keeps its contents: every write to it has come through here, and its
    // mappers hold the same bytes — a body that differs would make this copy (on which the ring
    // checks are decided) disagree with theirs, without their knowing.
    if (frame.refs.size === 0 && frame.mappings.size === 0) {
      if (data) copyInto(frame.data, 0, data);
      else frame.data.fill(0);
    }
    frame.refs.add(ref);
    owner.grants.set(ref, { ref, domid: grantee, frame, readonly, mapCount: 0, writableMapCount: 0 });
  }

  /** gnttab_end_foreign_access: 'ok' when revoked, 'busy' while mapped, 'invalid' for an unused ref. */
  endAccess(owner: Domain, ref: number): 'ok' | 'busy' | 'invalid' {
    const e = owner.grants.get(ref);
    if (!e) return 'invalid';
    if (e.mapCount > 0) return 'busy';
    this.dropEntry(owner, e);
    return 'ok';
  }

  private dropEntry(owner: Domain, e: GrantEntry): void {
    owner.grants.delete(e.ref);
    e.frame.refs.delete(e.ref);
    this.maybeForget(e.frame);
  }

  private maybeForget(frame: SharedFrame): void {
    if (frame.refs.size === 0 && frame.mappings.size === 0) frame.owner.frames.delete(frame.gfn);
  }

  map(mapper: Domain, ops: GrantMapOp[]): GrantMapResult[] {
    // the reply carries the page of each frame new to the mapper (a frame it maps already, under
    // another ref or earlier in this call, carries none): bounded per call as a copy's reply is. A
    // guest granting itself 1,024 pages and mapping them all, call after call, had 4 MB replies.
    const fresh = new Set<SharedFrame>();
    for (const op of ops) {
      const e = this.lookup(op.dom)?.grants.get(op.ref);
      if (e && e.domid === mapper.domid && !e.frame.mappings.has(mapper)) fresh.add(e.frame);
    }
    if (fresh.size * PAGE_SIZE > this.limits.maxCopyBytes) {
      throw new PvblkError(
        'E2BIG',
        `${ops.length} map operations would carry ${fresh.size} pages (${fresh.size * PAGE_SIZE} bytes); the limit per call is ${this.limits.maxCopyBytes}`,
      );
    }
    return ops.map((op) => {
      const granter = this.lookup(op.dom);
      if (!granter || granter.dying) return { status: GNTST.bad_domain };
      if (op.ref >= this.maxEntries) return { status: GNTST.bad_gntref };
      const e = granter.grants.get(op.ref);
      if (!e || e.domid !== mapper.domid) return { status: GNTST.permission_denied };
      if (e.readonly && !op.readonly) return { status: GNTST.permission_denied };
      if (mapper.maptrack.size >= this.limits.maxMaptrack) return { status: GNTST.no_space };
      // Xen counts an entry's host mappings in 8-bit fields of its pin and refuses a map that could
      // overflow one ("risk of counter overflow", map_grant_ref()): at most 128 of each kind.
      const pinned = op.readonly ? e.mapCount - e.writableMapCount : e.writableMapCount;
      if (pinned >= GRANT_PIN_MAX) return { status: GNTST.general_error };
      // A frame this domain already maps (through another ref): the new mapping shares that page in
      // the mapper, so two views of one frame cannot diverge, and writes are forwarded once per domain.
      const mine = e.frame.mappings.get(mapper);
      const alias = mine?.first;
      const handle = mapper.nextHandle++;
      const m: Mapping = { handle, mapper, granter, ref: op.ref, frame: e.frame, readonly: op.readonly };
      mapper.maptrack.set(handle, m);
      if (mine) mine.all.add(m);
      else e.frame.mappings.set(mapper, { all: new Set([m]), first: m });
      e.mapCount++;
      if (!op.readonly) e.writableMapCount++;
      mapper.stats.grantMaps++;
      if (alias) return { status: GNTST.okay, handle, alias: alias.handle };
      return isZeroPage(e.frame.data)
        ? { status: GNTST.okay, handle }
        : { status: GNTST.okay, handle, data: Buffer.from(e.frame.data) };
    });
  }

  unmap(mapper: Domain, handles: number[]): number[] {
    return handles.map((h) => {
      const m = mapper.maptrack.get(h);
      if (!m) return GNTST.bad_handle;
      this.dropMapping(m);
      return GNTST.okay;
    });
  }

  private dropMapping(m: Mapping): void {
    m.mapper.maptrack.delete(m.handle);
    const mine = m.frame.mappings.get(m.mapper);
    if (mine) {
      mine.all.delete(m);
      const next: Mapping | undefined = mine.first === m ? mine.all.values().next().value : mine.first;
      if (next) mine.first = next;
      else m.frame.mappings.delete(m.mapper);
    }
    const e = m.granter.grants.get(m.ref);
    if (e && e.frame === m.frame) {
      e.mapCount--;
      if (!m.readonly) e.writableMapCount--;
    }
    this.maybeForget(m.frame);
  }

  copy(caller: Domain, ops: GrantCopyOp[]): GrantCopyResult[] {
    // the reply carries what is copied out: bounded per call, as a hypercall's batch is
    let out = 0;
    for (const op of ops) if (op.dir === 'from') out += op.len;
    if (out > this.limits.maxCopyBytes) {
      throw new PvblkError(
        'E2BIG',
        `${ops.length} copy operations would move ${out} bytes out; the limit per call is ${this.limits.maxCopyBytes}`,
      );
    }
    return ops.map((op) => {
      const granter = this.lookup(op.dom);
      if (!granter || granter.dying) return { status: GNTST.bad_domain };
      if (op.ref >= this.maxEntries) return { status: GNTST.bad_gntref };
      const e = granter.grants.get(op.ref);
      if (!e || e.domid !== caller.domid) return { status: GNTST.permission_denied };
      caller.stats.grantCopies++;
      if (op.dir === 'from') {
        if (op.off + op.len > PAGE_SIZE) return { status: GNTST.bad_copy_arg };
        return { status: GNTST.okay, data: Buffer.from(e.frame.data.subarray(op.off, op.off + op.len)) };
      }
      if (e.readonly) return { status: GNTST.permission_denied };
      if (op.off + op.data.length > PAGE_SIZE) return { status: GNTST.bad_copy_arg };
      this.applyWrite(e.frame, op.off, op.data, null);
      return { status: GNTST.okay };
    });
  }

  /** The owner wrote its own frame. Writes to frames that are no longer shared are dropped. */
  ownerWrite(owner: Domain, gfn: number, off: number, data: Uint8Array): boolean {
    const frame = owner.frames.get(gfn);
    if (!frame) return false;
    owner.stats.pageWrites++;
    this.applyWrite(frame, off, data, owner);
    return true;
  }

  /** A mapper wrote through its mapping. */
  mapperWrite(mapper: Domain, handle: number, off: number, data: Uint8Array): void {
    const m = mapper.maptrack.get(handle);
    if (!m)
      throw new PvblkError(
        'GNTST_bad_handle',
        `domain ${mapper.domid} holds no mapping with handle ${handle}`,
      );
    if (m.readonly) {
      throw new PvblkError(
        'EACCES',
        `domain ${mapper.domid} wrote through read-only mapping ${handle} of domain ${m.granter.domid}'s grant ${m.ref}`,
      );
    }
    mapper.stats.pageWrites++;
    this.applyWrite(m.frame, off, data, m);
  }

  /**
   * Applies a write to the authoritative copy and forwards it to every other domain that sees the
   * frame — once per domain, whatever number of mappings it holds (they share one page there). What
   * is forwarded is the written bytes themselves (`data`, a slice of the received frame, which nothing
   * changes afterwards), never a view of the copy: a later write must not show through an earlier record.
   */
  private applyWrite(frame: SharedFrame, off: number, data: Uint8Array, from: Domain | Mapping | null): void {
    // a copy of no bytes is a valid GNTTABOP_copy (Xen checks only that it ends in the page) and
    // changes nothing: forwarded, it became a page write of no bytes, a record every receiver's
    // decoder refuses with the whole frame it stood in — other domains' events and replies with it
    if (data.length === 0) return;
    copyInto(frame.data, off, data);
    // A domain's mappings of one frame share one page there, and its own frame is another page: a
    // domain that maps its own grant (Xen allows it) holds both, and each must hear of the other's
    // writes. So only the view that wrote is left out.
    const byMapper = from !== null && 'mapper' in from ? from.mapper : null;
    if (from === null || byMapper !== null) this.sink.ownerWrite(frame.owner, frame.gfn, off, data);
    for (const [mapper, mine] of frame.mappings) {
      if (mapper === byMapper || mapper.dying) continue;
      this.sink.mapperWrite(mapper, mine.first.handle, off, data);
    }
  }

  /**
   * The frame that holds a ring's header, as the caller names it: one of its own frames (shared), or
   * one it maps. For the ring check (NOTIFY_IF) that is decided here.
   */
  ringFrame(caller: Domain, mapped: boolean, page: number): SharedFrame {
    if (mapped) {
      const m = caller.maptrack.get(page);
      if (!m)
        throw new PvblkError(
          'GNTST_bad_handle',
          `domain ${caller.domid} holds no mapping with handle ${page}`,
        );
      return m.frame;
    }
    const f = caller.frames.get(page);
    if (!f) throw new PvblkError('EINVAL', `frame ${page} of domain ${caller.domid} is not shared`);
    return f;
  }

  /**
   * Tears down everything a domain holds or gives: its own mappings of others' frames, and every
   * grant it issued (mappers are told their mappings are gone). Used on domain destruction, and for
   * Dom0 when its connection drops (it keeps its identity but loses its session state).
   */
  releaseAll(d: Domain): void {
    for (const m of [...d.maptrack.values()]) this.dropMapping(m);
    const byMapper = new Map<Domain, number[]>();
    for (const frame of [...d.frames.values()]) {
      for (const m of [...frame.mappings.values()].flatMap((mine) => [...mine.all])) {
        if (m.mapper !== d) {
          const list = byMapper.get(m.mapper) ?? [];
          list.push(m.handle);
          byMapper.set(m.mapper, list);
        }
        this.dropMapping(m);
      }
    }
    for (const e of [...d.grants.values()]) this.dropEntry(d, e);
    for (const [mapper, handles] of byMapper) if (!mapper.dying) this.sink.unmapped(mapper, handles);
  }
}
