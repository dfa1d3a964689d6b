/**
 * A file's readahead state and Linux's on-demand readahead rules, as mm/readahead.c has them from
 * 4.10 to 4.19 (ondemand_readahead(), get_init_ra_size(), get_next_ra_size(), the conservative
 * context readahead of 3.12 on, 4.10's cap on a merged window and its io_pages, which lets an
 * oversize read's window grow to the device's largest request). Pure: the page cache asks it what to read when a reader
 * misses a page (page_cache_sync_readahead) or reaches the page marked PG_readahead
 * (page_cache_async_readahead), and reads the window it returns.
 *
 * All quantities are in pages. The window is [start, start + size); its last `asyncSize` pages are
 * read ahead of the reader, and the first of them carries the marker that starts the next window.
 */

import { PAGE_SIZE } from '@pvblk/shared';

/** What a readahead asks the page cache to read: pages [start, start + size), marked at start + size - asyncSize. */
export interface ReadaheadWindow {
  start: number;
  size: number;
  /** 0: no marker (a plain read of the request, or fadvise RANDOM's forced read). */
  asyncSize: number;
}

/** posix_fadvise(2) advice that changes readahead (mm/fadvise.c). */
export type FadviseAdvice = 'normal' | 'random' | 'sequential';

/** What the page cache can tell about its pages, for the rules that look at it. */
export interface CachedPagesView {
  /** The first page at or after `from` (looking at most `max` pages) not in the cache. */
  nextHole(from: number, max: number): number;
  /** Pages in the cache right before `index`, at most `max` of them (count_history_pages()). */
  historyBefore(index: number, max: number): number;
}

/** roundup_pow_of_two() */
function roundupPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** get_init_ra_size(): the first window, from the request's size: ×4 small, ×2 medium, else max. */
export function initRaSize(size: number, max: number): number {
  const n = roundupPow2(size);
  if (n <= max / 32) return n * 4;
  if (n <= max / 4) return n * 2;
  return max;
}

/** get_next_ra_size(): the window after one, ×4 while small, ×2 after, at most max. */
export function nextRaSize(cur: number, max: number): number {
  return Math.min(cur < max / 16 ? 4 * cur : 2 * cur, max);
}

/** read_ahead_kb in pages (queue_ra_store()'s shift). */
function kbToPages(kb: number): number {
  return Math.floor((kb * 1024) / PAGE_SIZE);
}

/** force_page_cache_readahead()'s chunk: 2 MiB of pages at a time. */
const FORCE_CHUNK_PAGES = 512;

/** struct file_ra_state of one open file, with its FMODE_RANDOM bit. */
export class FileReadahead {
  start = 0;
  size = 0;
  asyncSize = 0;
  /** ra->prev_pos: the byte where the last read(2) of this file stopped, -1 before any. */
  prevPos = -1;
  /** FMODE_RANDOM (POSIX_FADV_RANDOM). */
  random = false;
  /** ra->ra_pages: the device's read_ahead_kb when the file was opened (file_ra_state_init()), in pages. */
  raPages: number;

  /**
   * `ioPages`: the device's largest request in pages (bdi->io_pages, from max_sectors_kb).
   * `limitPages` bounds every window. read_ahead_kb takes any number; Linux 4.x adds a window's
   * pages until an allocation fails (__GFP_NORETRY), where pvblk's page cache has a size limit in
   * place of free memory, so a window is at most the share of it the owner gives.
   */
  constructor(
    readAheadKb: number,
    private readonly limits: { ioPages: number; limitPages: number },
  ) {
    this.raPages = kbToPages(readAheadKb);
  }

  /** The largest window for a read of `reqSize` pages: ra_pages, or up to io_pages for a larger read. */
  private maxFor(reqSize: number): number {
    const { ioPages, limitPages } = this.limits;
    let max = this.raPages;
    if (reqSize > max && ioPages > max) max = Math.min(reqSize, ioPages);
    return Math.min(max, limitPages);
  }

  /**
   * generic_fadvise(), given the device's read_ahead_kb now: RANDOM stops readahead and leaves the
   * window's size alone; NORMAL and SEQUENTIAL start it again, at the device's size or twice it.
   */
  fadvise(advice: FadviseAdvice, readAheadKb: number): void {
    if (advice === 'random') {
      this.random = true;
      return;
    }
    this.random = false;
    this.raPages = kbToPages(readAheadKb) * (advice === 'sequential' ? 2 : 1);
  }

  /**
   * page_cache_sync_readahead(): the reader missed page `index`, wanting `reqSize` pages from it.
   * Null when readahead is off: the page is then read on its own.
   */
  onMiss(index: number, reqSize: number, cache: CachedPagesView): ReadaheadWindow[] | null {
    if (this.raPages === 0) return null;
    if (this.random) {
      // force_page_cache_readahead(): what was asked, up to the larger of io_pages and ra_pages (the
      // read's loop forces again where it finds the rest missing), in chunks, no marker, no state
      const n = Math.min(reqSize, Math.max(this.limits.ioPages, this.raPages), this.limits.limitPages);
      const out: ReadaheadWindow[] = [];
      for (let at = index; at < index + n; at += FORCE_CHUNK_PAGES)
        out.push({ start: at, size: Math.min(FORCE_CHUNK_PAGES, index + n - at), asyncSize: 0 });
      return out;
    }
    return [this.ondemand(false, index, reqSize, cache)].filter((w): w is ReadaheadWindow => w !== null);
  }

  /** page_cache_async_readahead(): the reader reached the marked page `index`. */
  onMarker(index: number, reqSize: number, cache: CachedPagesView): ReadaheadWindow | null {
    if (this.raPages === 0) return null;
    return this.ondemand(true, index, reqSize, cache);
  }

  /** ondemand_readahead(). */
  private ondemand(
    marker: boolean,
    index: number,
    reqSize: number,
    cache: CachedPagesView,
  ): ReadaheadWindow | null {
    const max = this.maxFor(reqSize);
    const initial = (): ReadaheadWindow => {
      this.start = index;
      this.size = initRaSize(reqSize, max);
      this.asyncSize = this.size > reqSize ? this.size - reqSize : this.size;
      return this.readit(index, max);
    };
    // the start of the file
    if (index === 0) return initial();
    // the expected place (the marker, or just past the window): sequential, ramp the window up
    if (index === this.start + this.size - this.asyncSize || index === this.start + this.size) {
      this.start += this.size;
      this.size = nextRaSize(this.size, max);
      this.asyncSize = this.size;
      return this.readit(index, max);
    }
    // a marked page without the state that set it (interleaved readers): the cached run ahead of it
    // is the old window's async part
    if (marker) {
      const hole = cache.nextHole(index + 1, max);
      if (hole - index > max) return null;
      this.start = hole;
      this.size = nextRaSize(hole - index + reqSize, max);
      this.asyncSize = this.size;
      return this.readit(index, max);
    }
    // an oversize read
    if (reqSize > max) return initial();
    // a sequential miss: the page of the last read's end, or the one after (an unsigned difference
    // in Linux: a step back is no sequential miss; prev_pos of -1 is page -1)
    const step = index - Math.floor(this.prevPos / PAGE_SIZE);
    if (step >= 0 && step <= 1) return initial();
    // try_context_readahead() (3.12's): more pages cached just before this one than it asks for are
    // a stream's trace; it reads as many again, and the next page already starts the next window
    let history = cache.historyBefore(index, max);
    if (history > reqSize) {
      // from the start of the file: likely a whole-file read
      if (history >= index) history *= 2;
      this.start = index;
      this.size = Math.min(history + reqSize, max);
      this.asyncSize = 1;
      return this.readit(index, max);
    }
    // a lone small random read: read it as it is, and leave the state alone
    return { start: index, size: reqSize, asyncSize: 0 };
  }

  /**
   * readit: a read that would hit its own marker at once takes the next window along with it, no
   * larger than max together (4.10; before, a window of twice max).
   */
  private readit(index: number, max: number): ReadaheadWindow {
    if (index === this.start && this.size === this.asyncSize) {
      const add = nextRaSize(this.size, max);
      if (this.size + add <= max) {
        this.asyncSize = add;
        this.size += add;
      } else {
        this.size = max;
        this.asyncSize = Math.floor(max / 2);
      }
    }
    return { start: this.start, size: this.size, asyncSize: this.asyncSize };
  }
}
