/**
 * fio's I/O buffers (memory.c, io_u.c's init_io_u()): a buffer of max_bs bytes for each I/O a job keeps in
 * flight, allocated before its first I/O out of the guest's budget for them and given back as it
 * closes.
 */
import { mulberry32 } from '@pvblk/shared';
import type { Page } from '@pvblk/client';
import type { BioSegment } from '../block/types.ts';
import type { GuestDisk } from './toolbox.ts';
import { openDirect, syncEngine, type FioJob } from './fio-job.ts';
import { blockSizes, tdMaxBs } from './fio-block-size.ts';

const PAGE = 4096;

/**
 * I/O buffers the fio jobs of a guest may hold at once (the sum of iodepth × bs over its running
 * jobs): 1 GiB, what 128 requests of 8 MiB need. The bound is the guest's, not a job's: numjobs and
 * job sections multiplied a per-job bound (12 jobs of 16 × 8 MiB took the guest to 1.8 GB).
 */
export const FIO_IOMEM_MAX = 1 << 30;

/** I/Os a job's worker keeps in flight: iodepth, one for the synchronous engines. */
export function jobDepth(job: FioJob): number {
  return syncEngine(job) ? 1 : job.iodepth;
}

/** Bytes of I/O buffers one job's worker holds: a buffer of its largest block for each I/O in flight. */
export function jobIomem(job: FioJob): number {
  return jobDepth(job) * tdMaxBs(blockSizes(job));
}
/** Bytes of I/O buffers this process's running fio jobs hold (a guest is one process). */
let iomemInUse = 0;

/** The buffers of one I/O in flight (fio's io_u). */
export interface Slot {
  /** direct=1: the I/O's pages, as the bio's segments. */
  pages: Page[];
  segments: BioSegment[];
  /** The block contiguous: the buffer of buffered I/O, and where verify builds and checks blocks. */
  buf: Buffer | null;
  /** Bytes the slot holds: the job's largest block. */
  bytes: number;
}

/** A job's I/O slots: each with its buffers, and those no I/O in flight holds. */
export class IoSlots {
  private readonly slots: Slot[] = [];
  readonly free: Slot[] = [];
  /** Bytes of I/O buffers this job holds in the guest's budget (FIO_IOMEM_MAX), from open to close. */
  private iomem = 0;
  private readonly depth: number;
  private readonly direct: boolean;

  constructor(
    private readonly job: FioJob,
    private readonly index: number,
    private readonly disk: GuestDisk,
  ) {
    this.depth = jobDepth(job);
    this.direct = openDirect(job);
  }

  /**
   * Takes the job's buffers out of the guest's budget and allocates them; false, with nothing taken,
   * when they would take it past FIO_IOMEM_MAX.
   */
  alloc(): boolean {
    const iomem = jobIomem(this.job);
    if (iomemInUse + iomem > FIO_IOMEM_MAX) return false;
    iomemInUse += iomem;
    this.iomem = iomem;
    this.allocSlots();
    return true;
  }

  /** The buffers freed and given back to the guest's budget. */
  release(): void {
    this.freeSlotsAll();
    iomemInUse -= this.iomem;
    this.iomem = 0;
  }

  private allocSlots(): void {
    const driver = this.disk.queue.driver;
    const bs = tdMaxBs(blockSizes(this.job));
    for (let s = 0; s < this.depth; s++) {
      // fio fills its buffers with random data once (a zero page would travel without contents)
      const fill = mulberry32(this.index * 7919 + s * 104729);
      const random = (b: Buffer) => {
        for (let i = 0; i + 4 <= b.length; i += 4) b.writeUInt32LE((fill() * 2 ** 32) >>> 0, i);
      };
      const pages: Page[] = [];
      const segments: BioSegment[] = [];
      if (this.direct) {
        for (let p = 0; p * PAGE < bs; p++) {
          const page = driver.allocPage();
          random(page.buf);
          pages.push(page);
          segments.push({ page, off: 0, len: Math.min(PAGE, bs - p * PAGE) });
        }
      }
      let buf: Buffer | null = null;
      if (!this.direct || this.job.verify !== 'none') {
        buf = Buffer.alloc(bs);
        random(buf);
      }
      const slot = { pages, segments, buf, bytes: bs };
      this.slots.push(slot);
      this.free.push(slot);
    }
  }

  private freeSlotsAll(): void {
    const driver = this.disk.queue.driver;
    for (const s of this.slots) for (const p of s.pages) driver.freePage(p);
    this.slots.length = 0;
    this.free.length = 0;
  }
}

/** direct=1: the bio's segments of an I/O of `len` bytes, the slot's first pages (the last cut short). */
export function segmentsFor(slot: Slot, len: number): BioSegment[] {
  if (len === slot.bytes) return slot.segments;
  const out: BioSegment[] = [];
  for (let pos = 0, i = 0; pos < len; i++) {
    const sg = slot.segments[i];
    out.push({ page: sg.page, off: sg.off, len: Math.min(sg.len, len - pos) });
    pos += sg.len;
  }
  return out;
}

/** direct=1: an I/O's first `len` bytes from the contiguous buffer to the bio's pages. */
export function toPages(slot: Slot, len: number): void {
  let pos = 0;
  for (const sg of slot.segments) {
    if (pos >= len) break;
    const n = Math.min(sg.len, len - pos);
    slot.buf!.copy(sg.page.buf, sg.off, pos, pos + n);
    pos += n;
  }
}

/** direct=1: an I/O's first `len` bytes from the bio's pages to the contiguous buffer. */
export function fromPages(slot: Slot, len: number): void {
  let pos = 0;
  for (const sg of slot.segments) {
    if (pos >= len) break;
    const n = Math.min(sg.len, len - pos);
    sg.page.buf.copy(slot.buf!, pos, sg.off, sg.off + n);
    pos += n;
  }
}
