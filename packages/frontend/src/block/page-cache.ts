/**
 * The page cache of the block device inode (/dev/xvda opened without O_DIRECT), behaving like
 * Linux's buffer-head based blkdev address space (fs/block_dev.c + fs/buffer.c, 3.x era):
 *
 * - Block size from set_init_blocksize(): start at the logical block size and double while it is
 *   below PAGE_SIZE and the device size has no bit at that size (i.e. stays a multiple of it).
 *   Computed at the first open, like bd_set_size().
 * - Readahead, for a read(2) through an open file: its file_ra_state and Linux's on-demand rules
 *   (./readahead.ts) — a missed page starts a window (page_cache_sync_readahead), the page marked
 *   PG_readahead starts the next one (page_cache_async_readahead), each window's missing pages read
 *   as large bios. read_ahead_kb 0 turns it off, as do reads without a file (the cache's own).
 * - Reads: every page of the range whose wanted bytes are not uptodate (and that no readahead is
 *   reading) contributes all its missing blocks; consecutive missing blocks go out as one bio (the
 *   per-buffer submissions Linux merges under a plug). If a bio spanning several pages fails, each page is
 *   read again on its own, as do_generic_file_read() falls back to ->readpage after a failed
 *   readahead; a page whose own read fails ends the read(2): short count if bytes were copied, EIO
 *   otherwise (whatever the block status: filemap only sees "not uptodate"). Its blocks are
 *   reported with `Buffer I/O error on device %s, logical block %llu` (end_buffer_async_read).
 * - Writes: __block_write_begin(): a block the write covers only partly and that is not uptodate is
 *   read first (ll_rw_block, end_buffer_read_sync: no Buffer I/O line); if that read fails the write
 *   copies nothing and fails with EIO (or returns the bytes already written in earlier pages).
 *   Writes crossing the end are cut short; at or past the end they fail with ENOSPC
 *   (generic_write_checks for S_ISBLK).
 * - Writeback: dirty blocks, merged across pages into large bios, split by the queue. A failed
 *   block loses its data (clear_buffer_uptodate), logs `Buffer I/O error ...` and `lost page write
 *   due to I/O error on %s`, and sets AS_EIO, reported (and cleared) by the next fsync. fsync =
 *   filemap_write_and_wait + FLUSH (blkdev_fsync; a device without flush needs none). Writers wait
 *   for pages under writeback (stable pages, required with integrity). balance_dirty_pages is
 *   modelled as: a writer that takes dirty data above the threshold writes everything back itself.
 * - Last close: sync_blockdev() then kill_bdev(): the cache is written back and dropped; close(2)
 *   itself never fails (blkdev_close returns 0), the result is returned here for callers that want it.
 * - Clean, idle pages are evicted least-recently-used first when the cache is above its limit.
 * - O_DIRECT: aligned to the logical block size (EINVAL otherwise), through temporary driver pages,
 *   after writing back the range (and, for writes, invalidating cached pages before and after).
 *   Errors are blk_status_to_errno() of the failed bio (EILSEQ for protection), as
 *   blkdev_direct_IO reports them since 4.x (3.x dio said EIO for every failure).
 */
import type { Page } from '@pvblk/client';
import { KERN_ERR, KERN_WARNING, PAGE_SIZE, SECTOR_SIZE, type KernelLog } from '@pvblk/shared';
import type { Errno, IoResult } from '../guest/vfs.ts';
import { blkStatusToErrno, type BioResult, type GuestBlockQueue } from './queue.ts';
import type { BioSegment } from './types.ts';
import type { CachedPagesView, FileReadahead, ReadaheadWindow } from './readahead.ts';

export interface BlockDeviceCacheOptions {
  /** Dirty bytes above which a writer writes back (balance_dirty_pages). Default 16 MiB. */
  dirtyThresholdBytes?: number;
  /** Cached bytes above which clean pages are evicted (LRU). Default 64 MiB. */
  cacheLimitBytes?: number;
}

/** BIO_MAX_PAGES: the largest bio direct I/O builds. */
const DIRECT_BIO_PAGES = 256;

interface CachedPage {
  readonly index: number;
  readonly page: Page;
  /** Per block (buffer_head): BH_Uptodate. */
  uptodate: boolean[];
  /** Per block: BH_Dirty. */
  dirty: boolean[];
  /** Per block: the read in flight (BH_Lock for a read). */
  reading: Array<Promise<unknown> | null>;
  /** PG_writeback: the writeback in flight. */
  writeback: Promise<unknown> | null;
  /** Operations using the page across an await; it is neither evicted nor freed while > 0. */
  pins: number;
  /** Removed from the cache (invalidated) while pinned: freed at the last unpin. */
  detached: boolean;
  /** PG_readahead: reaching this page starts the next readahead window. */
  readahead: boolean;
  lastUse: number;
}

const ok = (n: number): IoResult => ({ ok: true, n });
const fail = (errno: Errno): IoResult => ({ ok: false, errno });

export class BlockDeviceCache implements CachedPagesView {
  readonly dirtyThresholdBytes: number;
  readonly cacheLimitBytes: number;
  private readonly pages = new Map<number, CachedPage>();
  private bs: number;
  private openers = 0;
  /** AS_EIO: a writeback failed since the last fsync. */
  private wbError = false;
  private useClock = 0;
  /** Dirty blocks in the cache, kept as a count because balance_dirty_pages asks after every page. */
  private dirtyCount = 0;
  private balancing: Promise<void> | null = null;

  constructor(
    readonly queue: GuestBlockQueue,
    private readonly log: KernelLog,
    opts: BlockDeviceCacheOptions = {},
  ) {
    this.dirtyThresholdBytes = opts.dirtyThresholdBytes ?? 16 * 1024 * 1024;
    this.cacheLimitBytes = opts.cacheLimitBytes ?? 64 * 1024 * 1024;
    this.bs = this.initBlocksize();
  }

  get name(): string {
    return this.queue.name;
  }

  /** The buffer (block) size of the cache: i_blkbits of the bdev inode. */
  get blockSize(): number {
    return this.bs;
  }

  /** Device size in bytes. */
  size(): number {
    return this.queue.capacity() * SECTOR_SIZE;
  }

  cachedBytes(): number {
    return this.pages.size * PAGE_SIZE;
  }

  dirtyBytes(): number {
    return this.dirtyCount * this.bs;
  }

  /** Openers of the device; the first one sizes the cache like bd_set_size(). */
  open(): void {
    // Only an empty cache can change its block size (kill_bdev emptied it at the last close).
    if (this.openers++ === 0 && this.pages.size === 0) this.bs = this.initBlocksize();
  }

  /** Last close: write back, then drop the cache (sync_blockdev + kill_bdev). */
  async close(): Promise<IoResult> {
    if (this.openers === 0) return fail('EBADF');
    if (--this.openers > 0) return ok(0);
    await this.writebackRange(0, Infinity);
    const err = this.takeWbError();
    // truncate_inode_pages() waits for pages still being read (a readahead nobody waited for) before
    // it drops them: none may outlive the last close
    for (const cp of [...this.pages.values()]) await this.pageUnlocked(cp);
    this.invalidateAll();
    return err ? fail('EIO') : ok(0);
  }

  /** set_init_blocksize(). */
  private initBlocksize(): number {
    let bsize = this.queue.limits().logicalBlockSize;
    const size = this.size();
    // `size & bsize` on a 64-bit loff_t: test the bit arithmetically, sizes exceed 2^32.
    while (bsize < PAGE_SIZE) {
      if (Math.floor(size / bsize) % 2 === 1) break;
      bsize *= 2;
    }
    return bsize;
  }

  // --- buffered read -----------------------------------------------------------------------------

  /** read(2) of the device: through the open file's readahead state `ra`, if given. */
  async pread(buf: Uint8Array, off: number, ra?: FileReadahead): Promise<IoResult> {
    const size = this.size();
    if (buf.length === 0 || off >= size) return ok(0);
    const end = Math.min(off + buf.length, size);
    const first = Math.floor(off / PAGE_SIZE);
    const last = Math.floor((end - 1) / PAGE_SIZE);
    // do_generic_file_read()'s last_index: from what was asked, not what the device holds
    if (ra) this.readaheadFor(ra, first, Math.ceil((off + buf.length) / PAGE_SIZE), last);
    /** The last page copied from and where the copy ended: the file's prev_pos. */
    let prevPos = -1;
    const pinned: CachedPage[] = [];
    for (let p = first; p <= last; p++) pinned.push(this.pin(p));
    try {
      // Phase 1: the missing blocks of every page that cannot serve its part, in large bios.
      // Pages whose phase-1 bio was their own (single-page) read: a failure there is final.
      const ownSinglePage = new Map<number, Promise<BioResult>>();
      const missing: number[] = [];
      for (const cp of pinned) {
        const [from, to] = this.pageRange(cp.index, off, end);
        if (this.rangeUptodate(cp, from, to)) continue;
        missing.push(...this.missingBlocks(cp));
      }
      for (const run of runs(missing)) {
        const pagesOfRun = new Set(run.map((b) => this.pageOfBlock(b)));
        const res = this.startRead(run);
        if (pagesOfRun.size === 1) ownSinglePage.set([...pagesOfRun][0], res);
      }

      // Phase 2: copy page by page, re-reading alone a page whose multi-page bio failed.
      let copied = 0;
      for (const cp of pinned) {
        const [from, to] = this.pageRange(cp.index, off, end);
        const own = ownSinglePage.get(cp.index);
        let triedAlone = own !== undefined;
        let lastRes: BioResult | null = own ? await own : null;
        for (;;) {
          await this.pageUnlocked(cp);
          if (this.rangeUptodate(cp, from, to)) {
            buf.set(cp.page.buf.subarray(from, to), cp.index * PAGE_SIZE + from - off);
            copied += to - from;
            cp.lastUse = ++this.useClock;
            prevPos = cp.index * PAGE_SIZE + (to % PAGE_SIZE);
            break;
          }
          if (triedAlone) {
            this.reportReadErrors(cp, lastRes);
            return copied > 0 ? ok(copied) : fail('EIO');
          }
          triedAlone = true;
          lastRes = await this.readPage(cp);
        }
      }
      return ok(copied);
    } finally {
      if (ra && prevPos >= 0) ra.prevPos = prevPos;
      for (const cp of pinned) this.unpin(cp);
      this.shrink();
    }
  }

  /**
   * The readahead of do_generic_file_read()'s page loop over pages [first, lastIndex) (up to the
   * device's last page, `lastPage`): a page not in the cache starts a synchronous readahead, a page
   * carrying the marker an asynchronous one (not while it is under writeback). The windows' reads
   * are started here; the read itself then finds their pages being read and waits for them.
   */
  private readaheadFor(ra: FileReadahead, first: number, lastIndex: number, lastPage: number): void {
    for (let i = first; i < lastIndex && i <= lastPage; i++) {
      let cp = this.pages.get(i);
      if (!cp) {
        for (const w of ra.onMiss(i, lastIndex - i, this) ?? []) this.readaheadWindow(w);
        cp = this.pages.get(i);
        if (!cp) continue;
      }
      // page_cache_async_readahead() leaves the marker for a later reader when this file reads
      // nothing ahead, or the page is under writeback
      if (cp.readahead && ra.raPages > 0 && !cp.writeback) {
        cp.readahead = false;
        const w = ra.onMarker(i, lastIndex - i, this);
        if (w) this.readaheadWindow(w);
      }
    }
  }

  /**
   * __do_page_cache_readahead(): the pages of the window not in the cache are added and their blocks
   * read, consecutive ones as one bio; the page `asyncSize` from the window's end is marked.
   */
  private readaheadWindow(w: ReadaheadWindow): void {
    const pages = Math.ceil(this.size() / PAGE_SIZE);
    const blocks: number[] = [];
    for (let k = 0; k < w.size && w.start + k < pages; k++) {
      if (this.pages.has(w.start + k)) continue;
      const cp = this.newPage(w.start + k);
      if (k === w.size - w.asyncSize) cp.readahead = true;
      blocks.push(...this.missingBlocks(cp));
    }
    // nobody waits on a readahead: a reader that needs its page waits on the page, and one whose
    // read failed reads the page again on its own
    for (const run of runs(blocks)) void this.startRead(run).catch(() => undefined);
  }

  /** radix_tree_next_hole(): the first page at or after `from` not cached, looking at `max` pages. */
  nextHole(from: number, max: number): number {
    for (let i = from; i < from + max; i++) if (!this.pages.has(i)) return i;
    return from + max;
  }

  /** count_history_pages(): cached pages right before `index`, at most `max`. */
  historyBefore(index: number, max: number): number {
    let n = 0;
    while (n < max && index - 1 - n >= 0 && this.pages.has(index - 1 - n)) n++;
    return n;
  }

  /** ->readpage: reads every missing block of the page; resolves with the last failing result. */
  private async readPage(cp: CachedPage): Promise<BioResult | null> {
    let bad: BioResult | null = null;
    const results = await Promise.all(runs(this.missingBlocks(cp)).map((r) => this.startRead(r)));
    for (const r of results) if (r.status !== 'ok') bad = r;
    return bad;
  }

  /** end_buffer_async_read() -> buffer_io_error() for each block still not uptodate. */
  private reportReadErrors(cp: CachedPage, res: BioResult | null): void {
    const base = cp.index * this.blocksPerPage();
    for (let slot = 0; slot < cp.uptodate.length; slot++) {
      if (cp.uptodate[slot]) continue;
      const b = base + slot;
      if (res && !res.failed.some((f) => this.blockInRange(b, f.sector, f.nrSectors))) continue;
      this.log.printk(KERN_ERR, `Buffer I/O error on device ${this.name}, logical block ${b}`);
    }
  }

  // --- buffered write ----------------------------------------------------------------------------

  async pwrite(buf: Uint8Array, off: number): Promise<IoResult> {
    // generic_write_checks() for a block device (3.x says EPERM for a read-only one; EPERM is not
    // an errno of this VFS, so EROFS).
    if (this.queue.driver.readOnly) return fail('EROFS');
    const size = this.size();
    if (off >= size) return buf.length === 0 && off === size ? ok(0) : fail('ENOSPC');
    if (buf.length === 0) return ok(0);
    const end = Math.min(off + buf.length, size);
    let written = 0;
    for (let p = Math.floor(off / PAGE_SIZE); p * PAGE_SIZE < end; p++) {
      const cp = this.pin(p);
      try {
        const [from, to] = this.pageRange(p, off, end);
        // writeBegin's answer arrives a microtask after its last check, and an fsync may have put the
        // page under writeback meanwhile (PI generated over what the page holds now): check again
        // with nothing in between, as the page lock does, so that pages under writeback stay stable.
        let began = await this.writeBegin(cp, from, to);
        while (began && (cp.writeback || cp.reading.some((r) => r)))
          began = await this.writeBegin(cp, from, to);
        if (!began) return written > 0 ? ok(written) : fail('EIO');
        cp.page.write(from, buf.subarray(p * PAGE_SIZE + from - off, p * PAGE_SIZE + to - off));
        for (let s = Math.floor(from / this.bs); s * this.bs < to; s++) {
          cp.uptodate[s] = true;
          if (!cp.dirty[s]) this.dirtyCount++;
          cp.dirty[s] = true;
        }
        cp.lastUse = ++this.useClock;
        written += to - from;
      } finally {
        this.unpin(cp);
      }
      await this.balanceDirty();
    }
    this.shrink();
    return ok(written);
  }

  /**
   * __block_write_begin(): wait for writeback and in-flight reads of the page, read the partly
   * covered blocks that are not uptodate. False when that read failed.
   */
  private async writeBegin(cp: CachedPage, from: number, to: number): Promise<boolean> {
    let readTried = false;
    for (;;) {
      if (cp.writeback) {
        await cp.writeback;
        continue;
      }
      if (cp.reading.some((r) => r)) {
        await this.pageUnlocked(cp);
        continue;
      }
      const need: number[] = [];
      const base = cp.index * this.blocksPerPage();
      for (let s = Math.floor(from / this.bs); s * this.bs < to; s++) {
        const bStart = s * this.bs;
        const partial = bStart < from || bStart + this.bs > to;
        if (partial && !cp.uptodate[s]) need.push(base + s);
      }
      if (need.length === 0) return true;
      if (readTried) return false;
      readTried = true;
      await Promise.all(runs(need).map((r) => this.startRead(r)));
    }
  }

  private async balanceDirty(): Promise<void> {
    if (this.dirtyBytes() <= this.dirtyThresholdBytes) return;
    if (!this.balancing) {
      this.balancing = this.writebackRange(0, Infinity).finally(() => {
        this.balancing = null;
      });
    }
    await this.balancing;
  }

  // --- writeback ---------------------------------------------------------------------------------

  /** fsync(2)/fdatasync(2), or the O_SYNC range sync: blkdev_fsync(). */
  async fsync(range?: { off: number; len: number }): Promise<IoResult> {
    const from = range ? range.off : 0;
    const to = range ? range.off + range.len : Infinity;
    await this.writebackRange(from, to);
    if (this.takeWbError()) return fail('EIO');
    const r = await this.queue.submitBio({ op: 'flush', sector: 0, segments: [] });
    // blkdev_fsync() ignores -EOPNOTSUPP from blkdev_issue_flush(); anything else is -EIO.
    if (r.status !== 'ok' && r.status !== 'notsupp') return fail('EIO');
    return ok(0);
  }

  /**
   * BLKFLSBUF (blkdev_flushbuf()): fsync_bdev() writes the cache back — no device flush — and
   * invalidate_bdev() drops its clean pages. The ioctl says nothing of a writeback error: the wait
   * for writeback (filemap_write_and_wait()) clears it.
   */
  async flushBuffers(): Promise<void> {
    await this.writebackRange(0, Infinity);
    this.takeWbError();
    this.invalidateAll();
  }

  /** Starts writeback of everything dirty without waiting (the flusher thread); for experiments. */
  writebackAll(): Promise<void> {
    return this.writebackRange(0, Infinity);
  }

  private takeWbError(): boolean {
    const e = this.wbError;
    this.wbError = false;
    return e;
  }

  /**
   * filemap_write_and_wait_range() over the pages overlapping [from, to): waits for writeback
   * already in flight there, then writes the dirty blocks, consecutive ones in one bio.
   */
  private async writebackRange(from: number, to: number): Promise<void> {
    const inRange = (cp: CachedPage): boolean =>
      cp.index * PAGE_SIZE < to && (cp.index + 1) * PAGE_SIZE > from;
    for (;;) {
      const busy = [...this.pages.values()].filter((cp) => inRange(cp) && cp.writeback);
      if (busy.length === 0) break;
      await Promise.all(busy.map((cp) => cp.writeback));
    }
    const involved = [...this.pages.values()].filter((cp) => inRange(cp) && cp.dirty.some((d) => d));
    if (involved.length === 0) return;
    involved.sort((a, b) => a.index - b.index);
    const bpp = this.blocksPerPage();
    const blocks: number[] = [];
    for (const cp of involved) {
      for (let s = 0; s < bpp; s++) {
        if (!cp.dirty[s]) continue;
        cp.dirty[s] = false; // test_clear_buffer_dirty() at submission
        this.dirtyCount--;
        blocks.push(cp.index * bpp + s);
      }
      cp.pins++;
    }
    const batch = Promise.all(
      runs(blocks).map(async (run) => {
        const res = await this.queue.submitBio({
          op: 'write',
          sector: (run[0] * this.bs) / SECTOR_SIZE,
          segments: this.segmentsOf(run),
        });
        if (res.status !== 'ok') this.lostWrites(run, res);
      }),
    );
    for (const cp of involved) cp.writeback = batch;
    try {
      await batch;
    } finally {
      for (const cp of involved) {
        if (cp.writeback === batch) cp.writeback = null;
        this.unpin(cp);
      }
    }
  }

  /** end_buffer_async_write() for the blocks of failed requests. */
  private lostWrites(run: number[], res: BioResult): void {
    const bpp = this.blocksPerPage();
    for (const b of run) {
      if (!res.failed.some((f) => this.blockInRange(b, f.sector, f.nrSectors))) continue;
      const cp = this.pages.get(Math.floor(b / bpp));
      if (cp) cp.uptodate[b % bpp] = false;
      this.wbError = true;
      this.log.printk(KERN_ERR, `Buffer I/O error on device ${this.name}, logical block ${b}`);
      this.log.printk(KERN_WARNING, `lost page write due to I/O error on ${this.name}`);
    }
  }

  // --- O_DIRECT ----------------------------------------------------------------------------------

  async directRead(buf: Uint8Array, off: number): Promise<IoResult> {
    const lbs = this.queue.limits().logicalBlockSize;
    if (off % lbs !== 0 || buf.length % lbs !== 0) return fail('EINVAL');
    const size = this.size();
    if (buf.length === 0 || off >= size) return ok(0);
    const n = Math.min(buf.length, size - off);
    await this.writebackRange(off, off + n);
    if (this.takeWbError()) return fail('EIO');
    const errno = await this.directIo('read', buf, off, n);
    return errno ? fail(errno) : ok(n);
  }

  async directWrite(buf: Uint8Array, off: number): Promise<IoResult> {
    if (this.queue.driver.readOnly) return fail('EROFS');
    const lbs = this.queue.limits().logicalBlockSize;
    if (off % lbs !== 0 || buf.length % lbs !== 0) return fail('EINVAL');
    const size = this.size();
    if (off >= size) return buf.length === 0 && off === size ? ok(0) : fail('ENOSPC');
    if (buf.length === 0) return ok(0);
    const n = Math.min(buf.length, size - off);
    // generic_file_direct_write(): write back and invalidate the range, write, invalidate again
    // (readers may have refilled the cache from the old data meanwhile).
    await this.writebackRange(off, off + n);
    if (this.takeWbError()) return fail('EIO');
    await this.invalidateRange(off, off + n);
    const errno = await this.directIo('write', buf, off, n);
    await this.invalidateRange(off, off + n);
    return errno ? fail(errno) : ok(n);
  }

  /** One bio per BIO_MAX_PAGES of temporary driver pages, all in flight together. */
  private async directIo(
    op: 'read' | 'write',
    buf: Uint8Array,
    off: number,
    n: number,
  ): Promise<Errno | null> {
    const driver = this.queue.driver;
    const chunkBytes = DIRECT_BIO_PAGES * PAGE_SIZE;
    const jobs: Array<Promise<{ at: number; res: BioResult }>> = [];
    const allPages: Page[] = [];
    try {
      for (let at = 0; at < n; at += chunkBytes) {
        const len = Math.min(chunkBytes, n - at);
        const segments: BioSegment[] = [];
        for (let o = 0; o < len; o += PAGE_SIZE) {
          const page = driver.allocPage();
          allPages.push(page);
          const l = Math.min(PAGE_SIZE, len - o);
          if (op === 'write') page.write(0, buf.subarray(at + o, at + o + l));
          segments.push({ page, off: 0, len: l });
        }
        const sector = (off + at) / SECTOR_SIZE;
        jobs.push(
          this.queue.submitBio({ op, sector, segments }).then((res) => {
            if (op === 'read' && res.status === 'ok') {
              let pos = at;
              for (const s of segments) {
                buf.set(s.page.buf.subarray(0, s.len), pos);
                pos += s.len;
              }
            }
            return { at, res };
          }),
        );
      }
      const done = await Promise.all(jobs);
      const bad = done.find((d) => d.res.status !== 'ok');
      return bad ? blkStatusToErrno(bad.res.status) : null;
    } finally {
      for (const p of allPages) driver.freePage(p);
    }
  }

  // --- ioctls ------------------------------------------------------------------------------------

  /**
   * BLKDISCARD on the device (block/ioctl.c's blk_ioctl_discard(), in its order), or with `secure`
   * BLKSECDISCARD: refused with EOPNOTSUPP when the device has no discard (no secure one), EPERM when
   * it is read-only (the vbd's mode, or `readOnly`: BLKROSET), EINVAL for an empty range, one not
   * aligned to the logical block size or one past the device's end; else the range is dropped from
   * the cache, dirty data too (truncate_bdev_range(): discardRange()), and the discard goes down, its
   * status the call's. Linux holds the mapping's invalidate lock meanwhile, so that no read brings a
   * block of the range back from before the discard; here a page a read brought in meanwhile is
   * dropped once the discard is done, unless written since (invalidateRange()). `n` is the range's
   * bytes.
   */
  async discard(
    start: number,
    len: number,
    o: { readOnly?: boolean; secure?: boolean } = {},
  ): Promise<IoResult> {
    const q = this.queue;
    const limits = q.limits();
    if (!limits.discard || (o.secure && !limits.discard.secure)) return fail('EOPNOTSUPP');
    if (o.readOnly || q.driver.readOnly) return fail('EPERM');
    const mask = limits.logicalBlockSize - 1;
    if (!len || start % (mask + 1) || len % (mask + 1)) return fail('EINVAL');
    if (start + len > q.capacity() * SECTOR_SIZE) return fail('EINVAL');
    await this.discardRange(start, start + len);
    const r = await q.submitBio({
      op: 'discard',
      sector: start / SECTOR_SIZE,
      segments: [],
      nrSectors: len / SECTOR_SIZE,
      ...(o.secure ? { secure: true } : {}),
    });
    await this.invalidateRange(start, start + len);
    const errno = blkStatusToErrno(r.status);
    return errno ? fail(errno) : { ok: true, n: len };
  }

  // --- cache management --------------------------------------------------------------------------

  /**
   * BLKDISCARD's truncate_inode_pages_range() over [from, to): once their I/O is done, the cached
   * pages inside the range are dropped, dirty or not, so that no page read before the discard (a
   * readahead in flight included) outlives it. A page the range covers in part keeps the rest of its
   * bytes — a write beside the range is not lost —: the range's bytes are zeroed in it and a block
   * wholly inside the range is no longer dirty (truncate_inode_partial_folio(), whose
   * block_invalidate_folio() discards the buffers inside). Goes over the range's pages or the cached
   * ones, whichever are fewer: a discard may span the disk, a trim is a block.
   */
  async discardRange(from: number, to: number): Promise<void> {
    const first = Math.floor(from / PAGE_SIZE);
    const end = Math.ceil(to / PAGE_SIZE);
    const pages: CachedPage[] = [];
    if (end - first <= this.pages.size) {
      for (let i = first; i < end; i++) {
        const cp = this.pages.get(i);
        if (cp) pages.push(cp);
      }
    } else for (const cp of this.pages.values()) if (cp.index >= first && cp.index < end) pages.push(cp);
    for (const cp of pages) {
      while (cp.writeback || cp.reading.some((r) => r)) {
        if (cp.writeback) await cp.writeback;
        await this.pageUnlocked(cp);
      }
      if (this.pages.get(cp.index) !== cp) continue;
      const base = cp.index * PAGE_SIZE;
      const lo = Math.max(from, base) - base;
      const hi = Math.min(to, base + PAGE_SIZE) - base;
      if (lo === 0 && hi === PAGE_SIZE) {
        this.detach(cp);
        continue;
      }
      cp.page.fill(0, lo, hi - lo);
      for (let b = 0; b < cp.dirty.length; b++)
        if (cp.dirty[b] && b * this.bs >= lo && (b + 1) * this.bs <= hi) {
          cp.dirty[b] = false;
          this.dirtyCount--;
        }
    }
  }

  /** Drops the cached pages overlapping [from, to) once their I/O is done (invalidate_inode_pages2_range). */
  private async invalidateRange(from: number, to: number): Promise<void> {
    const first = Math.floor(from / PAGE_SIZE);
    const last = Math.floor((to - 1) / PAGE_SIZE);
    for (let p = first; p <= last; p++) {
      const cp = this.pages.get(p);
      if (!cp) continue;
      while (cp.writeback || cp.reading.some((r) => r)) {
        if (cp.writeback) await cp.writeback;
        await this.pageUnlocked(cp);
      }
      // A writer that dirtied the page meanwhile keeps it (invalidate_complete_page2 refuses dirty).
      if (this.pages.get(p) === cp && !cp.dirty.some((d) => d)) this.detach(cp);
    }
  }

  /**
   * Drops every clean, idle page (invalidate_mapping_pages(): BLKFLSBUF, drop_caches, and the last
   * close once it has written everything back). A page written meanwhile stays: its data is in no
   * other place.
   */
  invalidateAll(): void {
    for (const cp of [...this.pages.values()]) {
      if (cp.writeback || cp.reading.some((r) => r) || cp.dirty.some((d) => d)) continue;
      this.detach(cp);
    }
  }

  /** Evicts clean idle pages, least recently used first, while the cache is over its limit. */
  private shrink(): void {
    if (this.cachedBytes() <= this.cacheLimitBytes) return;
    const idle = [...this.pages.values()]
      .filter(
        (cp) => cp.pins === 0 && !cp.writeback && !cp.dirty.some((d) => d) && !cp.reading.some((r) => r),
      )
      .sort((a, b) => a.lastUse - b.lastUse);
    for (const cp of idle) {
      if (this.cachedBytes() <= this.cacheLimitBytes) break;
      this.detach(cp);
    }
  }

  private detach(cp: CachedPage): void {
    for (const d of cp.dirty) if (d) this.dirtyCount--;
    this.pages.delete(cp.index);
    cp.detached = true;
    if (cp.pins === 0) this.queue.driver.freePage(cp.page);
  }

  private pin(index: number): CachedPage {
    const cp = this.pages.get(index) ?? this.newPage(index);
    cp.pins++;
    return cp;
  }

  /** A page added to the cache: none of its blocks uptodate but those past the device's end. */
  private newPage(index: number): CachedPage {
    const bpp = this.blocksPerPage();
    const nrBlocks = Math.floor(this.size() / this.bs);
    const uptodate: boolean[] = [];
    // Blocks past the end of the device are zeros and uptodate, as block_read_full_page() makes them.
    for (let s = 0; s < bpp; s++) uptodate.push(index * bpp + s >= nrBlocks);
    const cp: CachedPage = {
      index,
      page: this.queue.driver.allocPage(),
      uptodate,
      dirty: new Array<boolean>(bpp).fill(false),
      reading: new Array<Promise<unknown> | null>(bpp).fill(null),
      writeback: null,
      pins: 0,
      detached: false,
      readahead: false,
      lastUse: ++this.useClock,
    };
    this.pages.set(index, cp);
    return cp;
  }

  private unpin(cp: CachedPage): void {
    if (--cp.pins === 0 && cp.detached) this.queue.driver.freePage(cp.page);
  }

  // --- helpers -----------------------------------------------------------------------------------

  private blocksPerPage(): number {
    return PAGE_SIZE / this.bs;
  }

  private pageOfBlock(b: number): number {
    return Math.floor(b / this.blocksPerPage());
  }

  private blockInRange(b: number, sector: number, nrSectors: number): boolean {
    const s = (b * this.bs) / SECTOR_SIZE;
    return s < sector + nrSectors && s + this.bs / SECTOR_SIZE > sector;
  }

  /** The part of [off, end) inside page p, as offsets within the page. */
  private pageRange(p: number, off: number, end: number): [number, number] {
    const base = p * PAGE_SIZE;
    return [Math.max(off, base) - base, Math.min(end, base + PAGE_SIZE) - base];
  }

  private rangeUptodate(cp: CachedPage, from: number, to: number): boolean {
    for (let s = Math.floor(from / this.bs); s * this.bs < to; s++) if (!cp.uptodate[s]) return false;
    return true;
  }

  /** Blocks of the page that are neither uptodate nor being read. */
  private missingBlocks(cp: CachedPage): number[] {
    const base = cp.index * this.blocksPerPage();
    const out: number[] = [];
    cp.uptodate.forEach((u, s) => {
      if (!u && !cp.reading[s]) out.push(base + s);
    });
    return out;
  }

  /** Waits until no block of the page is being read (lock_page for a reader). */
  private async pageUnlocked(cp: CachedPage): Promise<void> {
    for (;;) {
      const r = cp.reading.filter((x) => x);
      if (r.length === 0) return;
      await Promise.all(r);
    }
  }

  private segmentsOf(run: number[]): BioSegment[] {
    const bpp = this.blocksPerPage();
    return run.map((b) => {
      const cp = this.pages.get(Math.floor(b / bpp));
      if (!cp) throw new Error(`block ${b} has no cached page`);
      return { page: cp.page, off: (b % bpp) * this.bs, len: this.bs };
    });
  }

  /** Reads a run of consecutive blocks (all cached pages) into the cache as one bio. */
  private startRead(run: number[]): Promise<BioResult> {
    const bpp = this.blocksPerPage();
    const segments = this.segmentsOf(run);
    const owners = run.map((b) => this.pages.get(Math.floor(b / bpp)) as CachedPage);
    for (const cp of new Set(owners)) cp.pins++;
    const p = this.queue
      .submitBio({ op: 'read', sector: (run[0] * this.bs) / SECTOR_SIZE, segments })
      .then((res) => {
        run.forEach((b, i) => {
          const slot = b % bpp;
          const good = !res.failed.some((f) => this.blockInRange(b, f.sector, f.nrSectors));
          if (res.status === 'ok' || good) owners[i].uptodate[slot] = true;
          owners[i].reading[slot] = null;
        });
        for (const cp of new Set(owners)) this.unpin(cp);
        return res;
      });
    run.forEach((b, i) => {
      owners[i].reading[b % bpp] = p;
    });
    return p;
  }
}

/** Splits a sorted list of block numbers into runs of consecutive ones. */
function runs(blocks: number[]): number[][] {
  const out: number[][] = [];
  for (const b of blocks) {
    const cur = out[out.length - 1];
    if (cur && cur[cur.length - 1] === b - 1) cur.push(b);
    else out.push([b]);
  }
  return out;
}
