/**
 * Pages as a domain sees them. A page is a 4 KiB buffer in this process: either one of our own frames
 * (identified by its GFN) or a mapping of another domain's grant (identified by the handle the
 * hypervisor returned). Reads are local. Writes go through `write*` so that they also reach the
 * hypervisor when someone else can see the page — our own frame once it is granted, a mapping always.
 */
import { PAGE_SIZE, PvblkError, type RingMemory } from '@pvblk/shared';

export interface PageWriteSink {
  /** Called for every write to a page that others can see; `data` is a private copy. */
  pageWrite(page: Page, off: number, data: Uint8Array): void;
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

  constructor(
    private readonly sink: PageWriteSink,
    readonly origin: PageOrigin,
    contents?: Uint8Array,
  ) {
    this.buf = Buffer.alloc(PAGE_SIZE);
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

  /** Whether writes must be sent to the hypervisor. */
  get visible(): boolean {
    return this.origin.kind === 'mapped' ? !this.revoked : this.grantCount > 0;
  }

  write(off: number, src: Uint8Array): void {
    if (off < 0 || off + src.length > PAGE_SIZE) {
      throw new RangeError(`page write of ${src.length} bytes at ${off} crosses the page`);
    }
    if (this.origin.kind === 'mapped' && this.origin.readonly) {
      throw new PvblkError(
        'EACCES',
        `mapping ${this.origin.handle} of domain ${this.origin.granter}'s grant ${this.origin.ref} is read-only`,
      );
    }
    this.buf.set(src, off);
    if (this.visible) this.sink.pageWrite(this, off, Buffer.from(src));
  }

  writeU32LE(off: number, value: number): void {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(value >>> 0);
    this.write(off, b);
  }

  fill(value: number, off = 0, len = PAGE_SIZE - off): void {
    this.write(off, Buffer.alloc(len, value));
  }

  read(off: number, len: number): Buffer {
    return Buffer.from(this.buf.subarray(off, off + len));
  }

  readU32LE(off: number): number {
    return this.buf.readUInt32LE(off);
  }

  /** Applies a write that another domain made (delivered by the hypervisor). */
  applyRemoteWrite(off: number, data: Uint8Array): void {
    this.buf.set(data, off);
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
    if (o + 4 <= PAGE_SIZE) return this.pages[p].buf.readUInt32LE(o);
    return this.read(off, 4).readUInt32LE(0);
  }

  writeU32(off: number, value: number): void {
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
      this.pages[p].buf.copy(out, done, o, o + n);
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
      this.pages[p].write(o, src.subarray(done, done + n));
      done += n;
    }
  }
}
