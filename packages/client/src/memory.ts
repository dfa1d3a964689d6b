/**
 * Pages as a domain sees them. A page is a 4 KiB buffer in this process: either one of our own frames
 * (identified by its GFN) or a mapping of another domain's grant (identified by the handle the
 * hypervisor returned). Reads are local. Writes go through `write*` so that they also reach the
 * hypervisor when someone else can see the page — our own frame once it is granted, a mapping always.
 */
import {
  PAGE_SIZE,
  PvblkError,
  bytesView,
  copyBytes,
  copyInto,
  readU32LE,
  writeU32LE,
  type RingMemory,
} from '@pvblk/shared';

export interface PageWriteSink {
  /** Called after every write to a page that others can see: bytes [off, off + len) changed. */
  pageWrite(page: Page, off: number, len: number): void;
}

export type PageOrigin =
  | { kind: 'local'; gfn: number }
  | { kind: 'mapped'; handle: number; granter: number; ref: number; readonly: boolean };

export class Page {
  readonly buf: Buffer;
  /** Grants currently naming this (local) page; writes are propagated while it is > 0. */
  grantCount = 0;
  /** A mapping whose grant went away (granter destroyed): writes are dropped, reads see the last contents. */
  revoked = false;
  /**
   * An armed final check: the word at `off` that another domain's write wakes us on (see
   * ring-sync.ts). Held with the buffer, not the Page: the hypervisor forwards a write to a frame
   * mapped twice here through one of the mappings only, and a wake armed on the other must fire too.
   */
  private readonly watch: { wake: { off: number; fire: () => void } | null };

  constructor(
    private readonly sink: PageWriteSink,
    readonly origin: PageOrigin,
    contents?: Uint8Array,
    /** Another mapping of the same frame in this domain: both see one buffer, as two PTEs of one page. */
    sharedWith?: Page,
  ) {
    this.buf = sharedWith ? sharedWith.buf : Buffer.alloc(PAGE_SIZE);
    this.watch = sharedWith ? sharedWith.watch : { wake: null };
    if (contents) this.buf.set(contents);
  }

  get gfn(): number {
    if (this.origin.kind !== 'local')
      throw new PvblkError('EINVAL', 'a mapped page has no GFN in this domain');
    return this.origin.gfn;
  }

  get handle(): number {
    if (this.origin.kind !== 'mapped') throw new PvblkError('EINVAL', 'a local page has no mapping handle');
    return this.origin.handle;
  }

  /** Whether this page is a mapping of another domain's grant (rather than one of our own frames). */
  get mapped(): boolean {
    return this.origin.kind === 'mapped';
  }

  /**
   * The number messages name this page by, beside `mapped`: the mapping's handle, or our own frame's
   * GFN (a page write's record, a ring check's RingPageRef).
   */
  get wireRef(): number {
    return this.origin.kind === 'mapped' ? this.origin.handle : this.origin.gfn;
  }

  /** Whether writes must be sent to the hypervisor. */
  get visible(): boolean {
    return this.origin.kind === 'mapped' ? !this.revoked : this.grantCount > 0;
  }

  /** Checks a store of `len` bytes at `off` before it happens. */
  private writable(off: number, len: number): void {
    if (off < 0 || off + len > PAGE_SIZE) {
      throw new RangeError(`page write of ${len} bytes at ${off} crosses the page`);
    }
    if (this.origin.kind === 'mapped' && this.origin.readonly) {
      throw new PvblkError(
        'EACCES',
        `mapping ${this.origin.handle} of domain ${this.origin.granter}'s grant ${this.origin.ref} is read-only`,
      );
    }
  }

  private stored(off: number, len: number): void {
    if (this.visible && len > 0) this.sink.pageWrite(this, off, len);
  }

  write(off: number, src: Uint8Array): void {
    this.writable(off, src.length);
    copyInto(this.buf, off, src);
    this.stored(off, src.length);
  }

  writeU32LE(off: number, value: number): void {
    this.writable(off, 4);
    writeU32LE(this.buf, off, value >>> 0);
    this.stored(off, 4);
  }

  fill(value: number, off = 0, len = PAGE_SIZE - off): void {
    this.writable(off, len);
    this.buf.fill(value, off, off + len);
    this.stored(off, len);
  }

  read(off: number, len: number): Buffer {
    return Buffer.from(this.buf.subarray(off, off + len));
  }

  readU32LE(off: number): number {
    return readU32LE(this.buf, off);
  }

  /** Applies a write that another domain made (delivered by the hypervisor). */
  applyRemoteWrite(off: number, data: Uint8Array): void {
    copyInto(this.buf, off, data);
    if (this.watch.wake !== null) this.woken(off, data.length);
  }

  /** The same, from bytes [start, end) of a received frame (no view made per write). */
  applyRemoteBytes(off: number, src: Buffer, start: number, end: number): void {
    copyBytes(this.buf, off, src, start, end);
    if (this.watch.wake !== null) this.woken(off, end - start);
  }

  /**
   * Calls `fire` once, the next time another domain's write touches the 4-byte word at `off`. What
   * the word then holds is the caller's to judge (ring-sync.ts looks once the whole frame is applied).
   */
  wakeOnWrite(off: number, fire: () => void): void {
    this.watch.wake = { off, fire };
  }

  private woken(off: number, len: number): void {
    const w = this.watch.wake!;
    if (off + len <= w.off || off >= w.off + 4) return;
    this.watch.wake = null;
    w.fire();
  }
}

/** A ring spanning several pages (a multi-page ring need not be contiguous in our memory). */
export class PagesRingMemory implements RingMemory {
  constructor(readonly pages: Page[]) {}

  get byteLength(): number {
    return this.pages.length * PAGE_SIZE;
  }

  readU32(off: number): number {
    const p = Math.floor(off / PAGE_SIZE);
    const o = off % PAGE_SIZE;
    if (o + 4 <= PAGE_SIZE) return readU32LE(this.pages[p].buf, o);
    return this.read(off, 4).readUInt32LE(0);
  }

  writeU32(off: number, value: number): void {
    const o = off % PAGE_SIZE;
    if (o + 4 <= PAGE_SIZE) return this.pages[Math.floor(off / PAGE_SIZE)].writeU32LE(o, value);
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(value >>> 0);
    this.write(off, b);
  }

  read(off: number, len: number): Buffer {
    const out = Buffer.allocUnsafe(len);
    let done = 0;
    while (done < len) {
      const p = Math.floor((off + done) / PAGE_SIZE);
      const o = (off + done) % PAGE_SIZE;
      const n = Math.min(len - done, PAGE_SIZE - o);
      copyBytes(out, done, this.pages[p].buf, o, o + n);
      done += n;
    }
    return out;
  }

  write(off: number, src: Uint8Array): void {
    let done = 0;
    while (done < src.length) {
      const p = Math.floor((off + done) / PAGE_SIZE);
      const o = (off + done) % PAGE_SIZE;
      const n = Math.min(src.length - done, PAGE_SIZE - o);
      this.pages[p].write(o, bytesView(src, done, n));
      done += n;
    }
  }
}
