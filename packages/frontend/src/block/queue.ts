/**
 * The guest's gendisk and request queue above blkfront: bios in, requests out, as Linux's block
 * layer shapes them for a driver whose limits blkfront published (blkif_set_queue_limits).
 *
 * - Splitting follows blk_queue_split()/blk_rq_map_sg(): contiguous pieces of one page merge into
 *   one segment, a request never has more than max_segments segments or more than max_sectors
 *   sectors, a segment never crosses a page (blkfront's seg_boundary_mask is PAGE_SIZE - 1) nor
 *   exceeds max_segment_size, and split points stay aligned to the logical block size.
 * - A failed request is reported like 3.x blk_update_request(): `end_request: I/O error, dev xvda,
 *   sector N` at KERN_ERR, N = blk_rq_pos() of that request.
 * - Block integrity follows bio_integrity_prep() / the t10-pi verify loop: PI is generated for
 *   writes and verified for reads when the device has a profile and the sysfs-like switches allow.
 *
 * Fault injection hooks for the corruption experiments sit in `faults` (see QueueFaults).
 */
import type { Page } from '@pvblk/client';
import {
  KERN_ERR,
  KERN_INFO,
  PAGE_SIZE,
  PI_TUPLE_SIZE,
  PvblkError,
  SECTOR_SIZE,
  bufferView,
  generatePi,
  verifyPi,
  type KernelLog,
  type PiCheck,
} from '@pvblk/shared';
import {
  withIntegrity,
  type BioSegment,
  type BlkStatus,
  type BlockDriver,
  type BlockOp,
  type BlockRequest,
  type BlockResult,
  type DeviceIntegrity,
  type QueueLimits,
  type RequestIntegrity,
} from './types.ts';

/** What the page cache and direct I/O hand the block layer: one bio (submit_bio). */
export interface Bio {
  op: BlockOp;
  /** Start, in 512-byte sectors. */
  sector: number;
  /** Data (read/write); empty for flush and discard. */
  segments: BioSegment[];
  /** Discard length in 512-byte sectors. */
  nrSectors?: number;
  /** Secure erase (BLKSECDISCARD) for a discard. */
  secure?: boolean;
}

/** A failed request of a bio: its blk_rq_pos(), length and status. */
export interface FailedRange {
  sector: number;
  nrSectors: number;
  status: BlkStatus;
}

export interface BioResult extends BlockResult {
  /** blk_rq_pos() of the reported failing request (the lowest-sector failure); set when not ok. */
  errorSector?: number;
  /** Every failed request, so callers can tell which blocks were lost (end_buffer_async_write). */
  failed: FailedRange[];
}

/**
 * Test hooks for the corruption experiments, kept apart from the queue's real state because they
 * are what `pvblk guest` will expose under a debugfs-like path. Both stay armed until reset to null.
 */
export interface QueueFaults {
  /**
   * Flip bit 0 of the first byte of this 512-byte sector in every write request that covers it,
   * AFTER the block layer generated PI and before the driver sees the data: a DMA corruption on the
   * way to the disk. The page cache's copy is left intact (the request is given a corrupted copy),
   * as it would be when the corruption happens in transit.
   */
  corruptAfterGenerate: { sector: number } | null;
  /**
   * A write request covering `fromSector` is sent to the same offset relative to `toSector`, with
   * the PI generated for where it was aimed: a misdirected write, which ref-tag checking must catch
   * when `toSector` is read (Types 1/2 only; Type 3 has no ref tag to catch it). A target range
   * past the end of the device leaves the write where it was aimed.
   */
  misdirect: { fromSector: number; toSector: number } | null;
}

/** Counters behind /sys/block/<dev>/stat and the integrity view. */
export interface QueueStats {
  readIos: number;
  readSectors: number;
  readTicksMs: number;
  writeIos: number;
  writeSectors: number;
  writeTicksMs: number;
  flushIos: number;
  discardIos: number;
  discardSectors: number;
  inFlight: number;
  /** In flight by direction as part_in_flight() counts them: reads, and writes (flushes, discards too). */
  inFlightRw: [number, number];
  ioTicksMs: number;
  timeInQueueMs: number;
  /** Requests that completed with an error, by status (a failed guest verify counts as protection). */
  errors: Record<Exclude<BlkStatus, 'ok'>, number>;
  /** PI tuples the guest generated for writes. */
  piGenerated: number;
  /** PI tuples the guest verified on reads. */
  piVerified: number;
  /** Reads the guest's verifier failed, by the check that failed. */
  piVerifyErrors: { guard: number; app: number; ref: number };
  /** Protection errors reported by the driver (caught below the guest). */
  piLowerErrors: number;
  faultHits: { corruptAfterGenerate: number; misdirect: number };
}

export interface QueueOptions {
  /**
   * Check application tags on read (default false). Linux's block layer never does
   * (bio_integrity_prep sets BIP_CHECK_GUARD/REFTAG only); this exists for experiments.
   */
  checkAppTag?: boolean;
  /** Application tag written on generate and expected when checkAppTag is on (default 0, as Linux). */
  appTag?: number;
  /** Monotonic milliseconds, injectable for the stat tick counters. */
  now?: () => number;
}

/** BLK_DEF_MAX_SECTORS of 3.x: the default max_sectors a driver's max_hw_sectors is capped at. */
export const BLK_DEF_MAX_SECTORS = 1024;

/**
 * blk_update_request()'s `%s error` in 3.10: only -ENOLINK ("recoverable transport"), -EREMOTEIO
 * ("critical target") and -EBADE ("critical nexus") have their own words; everything else,
 * including -EILSEQ (protection), -EOPNOTSUPP and -ENOSPC, prints "I/O". None of our statuses maps
 * to the three special errnos. "critical space allocation"/"protection" only appeared with the
 * blk_errors[] table (4.13), by then printed as `blk_update_request: ... error`, not `end_request:`.
 */
const END_REQUEST_ERROR_TYPE: Record<Exclude<BlkStatus, 'ok'>, string> = {
  ioerr: 'I/O',
  protection: 'I/O',
  notsupp: 'I/O',
  nospc: 'I/O',
};

/** blk_status_to_errno(), for callers that hand a block status to user space (direct I/O). */
export function blkStatusToErrno(status: BlkStatus): 'EIO' | 'EILSEQ' | 'EOPNOTSUPP' | 'ENOSPC' | null {
  switch (status) {
    case 'ok':
      return null;
    case 'protection':
      return 'EILSEQ';
    case 'notsupp':
      return 'EOPNOTSUPP';
    case 'nospc':
      return 'ENOSPC';
    default:
      return 'EIO';
  }
}

/** One request being built: a sector range and its segments. */
interface Piece {
  page: Page;
  off: number;
  len: number;
}

export class GuestBlockQueue {
  /** sysfs integrity/write_generate: generate PI on writes (inverse of BLK_INTEGRITY_NOGENERATE). */
  writeGenerate = true;
  /** sysfs integrity/read_verify: verify PI on reads (inverse of BLK_INTEGRITY_NOVERIFY). */
  readVerify = true;
  readonly faults: QueueFaults = { corruptAfterGenerate: null, misdirect: null };
  readonly stats: QueueStats = {
    readIos: 0,
    readSectors: 0,
    readTicksMs: 0,
    writeIos: 0,
    writeSectors: 0,
    writeTicksMs: 0,
    flushIos: 0,
    discardIos: 0,
    discardSectors: 0,
    inFlight: 0,
    inFlightRw: [0, 0],
    ioTicksMs: 0,
    timeInQueueMs: 0,
    errors: { ioerr: 0, protection: 0, notsupp: 0, nospc: 0 },
    piGenerated: 0,
    piVerified: 0,
    piVerifyErrors: { guard: 0, app: 0, ref: 0 },
    piLowerErrors: 0,
    faultHits: { corruptAfterGenerate: 0, misdirect: 0 },
  };
  private maxSectorsSetting: number | null = null;
  private readonly checkAppTag: boolean;
  private readonly appTag: number;
  private readonly now: () => number;
  /** Start of the current busy period, for io_ticks (time with at least one request in flight). */
  private busySince = 0;

  constructor(
    readonly driver: BlockDriver,
    private readonly log: KernelLog,
    opts: QueueOptions = {},
  ) {
    this.checkAppTag = opts.checkAppTag ?? false;
    this.appTag = opts.appTag ?? 0;
    this.now = opts.now ?? (() => performance.now());
  }

  get name(): string {
    return this.driver.name;
  }

  /** Capacity in 512-byte sectors. */
  capacity(): number {
    return this.driver.capacity();
  }

  limits(): QueueLimits {
    return this.driver.limits();
  }

  integrity(): DeviceIntegrity | null {
    return this.driver.integrity();
  }

  /** max_sectors: the soft request size limit, min(max_hw_sectors, BLK_DEF_MAX_SECTORS) by default. */
  get maxSectors(): number {
    const hw = this.limits().maxHwSectors;
    return Math.min(hw, this.maxSectorsSetting ?? BLK_DEF_MAX_SECTORS);
  }

  /**
   * queue/max_sectors_kb store: refuses values above max_hw_sectors_kb or below the page size in KiB,
   * as queue_max_sectors_store() does. Returns false for an invalid value.
   */
  setMaxSectorsKb(kb: number): boolean {
    const hwKb = this.limits().maxHwSectors >> 1;
    if (!Number.isInteger(kb) || kb > hwKb || kb < PAGE_SIZE >> 10) return false;
    this.maxSectorsSetting = kb << 1;
    return true;
  }

  /** /sys/block/<dev>/stat in the 3.x 11-field layout (merges are always 0: bios are not merged here). */
  statLine(): string {
    const s = this.stats;
    const ioTicks = s.ioTicksMs + (s.inFlight > 0 ? this.now() - this.busySince : 0);
    const f = [
      s.readIos,
      0,
      s.readSectors,
      Math.round(s.readTicksMs),
      s.writeIos,
      0,
      s.writeSectors,
      Math.round(s.writeTicksMs),
      s.inFlight,
      Math.round(ioTicks),
      Math.round(s.timeInQueueMs),
    ];
    return f.map((v) => String(v).padStart(8, ' ')).join(' ') + '\n';
  }

  /**
   * blk_finish_plug(): the requests of the bios submitted since go to the driver's queue now — one
   * io_submit() is one plug. A bio reaches the driver in its submitBio() call, so they are all there.
   */
  unplug(): void {
    this.driver.unplug?.();
  }

  async submitBio(bio: Bio): Promise<BioResult> {
    switch (bio.op) {
      case 'flush':
        return this.submitFlush(bio);
      case 'discard':
        return this.submitDiscard(bio);
      default:
        return this.submitRw(bio);
    }
  }

  private async submitFlush(bio: Bio): Promise<BioResult> {
    // generic_make_request_checks(): a queue without a write cache (no feature-flush-cache /
    // feature-barrier) strips REQ_FLUSH, and an empty flush then completes at once with success;
    // blkfront never sees it. (blkfront's own blkif_request_flush_invalid() -> BLK_STS_IOERR only
    // catches flushes that raced with the feature being withdrawn.)
    if (!this.driver.flushSupported()) return { status: 'ok', failed: [] };
    return this.runRequests([{ op: 'flush', sector: bio.sector, segments: [] }]);
  }

  private async submitDiscard(bio: Bio): Promise<BioResult> {
    const nr = bio.nrSectors ?? 0;
    const d = this.limits().discard;
    // blkdev_issue_discard() answers -EOPNOTSUPP before building any bio: no request, no log line.
    if (!d || (bio.secure && !d.secure)) return { status: 'notsupp', failed: [] };
    if (nr === 0) return { status: 'ok', failed: [] };
    const eod = this.checkEod(bio, nr);
    if (eod) return eod;
    // blkdev_issue_discard(): chunks of at most max_discard_sectors rounded down to the granularity,
    // with chunk ends moved onto granularity boundaries (plus discard_alignment).
    const gran = Math.max(1, Math.floor(d.granularity / SECTOR_SIZE));
    const align = Math.floor(d.alignment / SECTOR_SIZE) % gran;
    const max = Math.max(gran, Math.floor(d.maxSectors / gran) * gran);
    const reqs: BlockRequest[] = [];
    let sector = bio.sector;
    let left = nr;
    while (left > 0) {
      let n = Math.min(left, max);
      if (n < left) {
        const end = sector + n;
        const aligned = Math.floor((end - align) / gran) * gran + align;
        if (aligned > sector) n = aligned - sector;
      }
      reqs.push({ op: 'discard', sector, segments: [], nrSectors: n, secure: bio.secure });
      sector += n;
      left -= n;
    }
    return this.runRequests(reqs);
  }

  private async submitRw(bio: Bio): Promise<BioResult> {
    const limits = this.limits();
    const nr = validateSegments(bio.segments, limits.logicalBlockSize);
    if (nr === 0) return { status: 'ok', failed: [] };
    const eod = this.checkEod(bio, nr);
    if (eod) return eod;
    const bi = this.integrity();
    const align = Math.max(limits.logicalBlockSize, bi?.interval ?? 0) / SECTOR_SIZE;
    const reqs = splitBio(bio, limits, this.maxSectors, align);
    return this.runRequests(reqs);
  }

  /** bio_check_eod(): a bio past the end never becomes a request. */
  private checkEod(bio: Bio, nr: number): BioResult | null {
    const limit = this.capacity();
    if (bio.sector + nr <= limit) return null;
    // handle_bad_sector() in 3.x; rw is bi_rw, where WRITE is bit 0.
    const rw = bio.op === 'read' ? 0 : bio.op === 'write' ? 1 : 0x81;
    this.log.printk(KERN_INFO, 'attempt to access beyond end of device');
    this.log.printk(KERN_INFO, `${this.name}: rw=${rw}, want=${bio.sector + nr}, limit=${limit}`);
    return {
      status: 'ioerr',
      errorSector: bio.sector,
      failed: [{ sector: bio.sector, nrSectors: nr, status: 'ioerr' }],
    };
  }

  /** Submits every request at once, waits for all, and combines the results. */
  private async runRequests(reqs: BlockRequest[]): Promise<BioResult> {
    // most bios are one request: its result without Promise.all's array and callbacks
    const results =
      reqs.length === 1 ? [await this.runOne(reqs[0])] : await Promise.all(reqs.map((r) => this.runOne(r)));
    const failed: FailedRange[] = [];
    let first: { req: BlockRequest; res: BlockResult } | null = null;
    results.forEach((res, i) => {
      if (res.status === 'ok') return;
      const req = reqs[i];
      failed.push({ sector: req.sector, nrSectors: requestSectors(req), status: res.status });
      // Linux's bio_chain keeps whichever child error completes first; we keep the lowest sector so
      // that the result does not depend on completion order.
      if (!first || req.sector < first.req.sector) first = { req, res };
    });
    if (!first) return { status: 'ok', failed };
    const f = first as { req: BlockRequest; res: BlockResult };
    return { ...f.res, errorSector: f.req.sector, failed };
  }

  private async runOne(req: BlockRequest): Promise<BlockResult> {
    const bi = this.integrity();
    const nr = requestSectors(req);
    const cleanups: Page[] = [];
    let sent = req;
    let readIntegrity: RequestIntegrity | undefined;
    if (req.op === 'write') {
      if (bi && this.writeGenerate) sent = withIntegrity(sent, this.generate(req, bi));
      sent = this.applyWriteFaults(sent, cleanups);
    } else if (req.op === 'read' && bi && this.readVerify) {
      readIntegrity = this.readIntegrity(req, bi);
      sent = withIntegrity(req, readIntegrity);
    }

    const t0 = this.now();
    const dir = req.op === 'read' ? 0 : 1;
    if (this.stats.inFlight++ === 0) this.busySince = t0;
    this.stats.inFlightRw[dir]++;
    let res: BlockResult;
    try {
      res = await this.driver.submit(sent);
    } finally {
      for (const p of cleanups) this.driver.freePage(p);
      const t1 = this.now();
      this.stats.inFlightRw[dir]--;
      if (--this.stats.inFlight === 0) this.stats.ioTicksMs += t1 - this.busySince;
      this.account(req, nr, t1 - t0);
    }

    if (res.status !== 'ok') {
      this.stats.errors[res.status]++;
      if (res.status === 'protection') this.stats.piLowerErrors++;
      // blk_update_request() prints for every failed fs request, whatever the op.
      this.log.printk(
        KERN_ERR,
        `end_request: ${END_REQUEST_ERROR_TYPE[res.status]} error, dev ${this.name}, sector ${req.sector}`,
      );
      return res;
    }
    if (readIntegrity && bi && !res.piDropped) {
      // The request itself succeeded, so blk_update_request() printed nothing; the verifier runs in
      // bio_integrity_endio() afterwards and only prints its own line.
      const bad = this.verify(req, readIntegrity, bi);
      if (bad) return bad;
    }
    return res;
  }

  private account(req: BlockRequest, nr: number, ms: number): void {
    const s = this.stats;
    s.timeInQueueMs += ms;
    switch (req.op) {
      case 'read':
        s.readIos++;
        s.readSectors += nr;
        s.readTicksMs += ms;
        break;
      case 'write':
        s.writeIos++;
        s.writeSectors += nr;
        s.writeTicksMs += ms;
        break;
      case 'flush':
        s.flushIos++;
        break;
      case 'discard':
        s.discardIos++;
        s.discardSectors += nr;
        break;
    }
  }

  // --- integrity -----------------------------------------------------------------------------

  /**
   * The ref tag of a request's first interval: its start sector in units of the protection
   * interval (sector for 512, sector / 8 for 4096) — what blk_integrity_prepare() remaps the
   * virtual seed to for a whole-disk device, so backend and device can check it against the LBA.
   */
  private seedOf(sector: number, bi: DeviceIntegrity): number {
    return Math.floor(sector / (bi.interval / SECTOR_SIZE));
  }

  private checksFor(bi: DeviceIntegrity): RequestIntegrity['checks'] {
    // BIP_CHECK_GUARD always, BIP_CHECK_REFTAG when the profile has BLK_INTEGRITY_REF_TAG (not
    // Type 3); the block layer never sets BIP_CHECK_APPTAG.
    return { guard: true, app: this.checkAppTag, ref: bi.type !== 3 };
  }

  private generate(req: BlockRequest, bi: DeviceIntegrity): RequestIntegrity {
    const data = gather(req.segments);
    const tuples = Buffer.alloc((data.length / bi.interval) * PI_TUPLE_SIZE);
    const refSeed = this.seedOf(req.sector, bi);
    generatePi(data, tuples, {
      format: { type: bi.type, guard: bi.guard, interval: bi.interval },
      seed: refSeed,
      appTag: this.appTag,
    });
    this.stats.piGenerated += tuples.length / PI_TUPLE_SIZE;
    return { tuples, refSeed, appTag: this.appTag, checks: this.checksFor(bi) };
  }

  private readIntegrity(req: BlockRequest, bi: DeviceIntegrity): RequestIntegrity {
    const bytes = requestSectors(req) * SECTOR_SIZE;
    return {
      tuples: Buffer.alloc((bytes / bi.interval) * PI_TUPLE_SIZE),
      refSeed: this.seedOf(req.sector, bi),
      appTag: this.appTag,
      checks: this.checksFor(bi),
    };
  }

  /**
   * blk_verify_pi() order per interval: escape, ref (Types 1/2), guard; then the app tag when asked
   * (pvblk extension). Logs the t10-pi.c line of the first failure and turns it into `protection`.
   */
  private verify(req: BlockRequest, integ: RequestIntegrity, bi: DeviceIntegrity): BlockResult | null {
    const data = gather(req.segments);
    const count = data.length / bi.interval;
    const bad = verifyPi(data, integ.tuples, {
      format: { type: bi.type, guard: bi.guard, interval: bi.interval },
      seed: integ.refSeed,
      appTag: integ.appTag,
      checks: { guard: true, ref: true, app: integ.checks.app },
      order: LINUX_ORDER,
    });
    // every interval up to the failing one was looked at, escapes included
    this.stats.piVerified += bad ? bad.interval + 1 : count;
    if (!bad) return null;
    const seed = integ.refSeed + bad.interval;
    const sectorsPerInterval = bi.interval / SECTOR_SIZE;
    const line =
      bad.check === 'ref'
        ? `ref tag error at location ${bad.expected} (rcvd ${bad.received})`
        : bad.check === 'guard'
          ? `guard tag error at sector ${seed} (rcvd ${hex4(bad.received)}, want ${hex4(bad.expected)})`
          : // Not a Linux message: the block layer has no app-tag check. Same shape as the guard line.
            `app tag error at sector ${seed} (rcvd ${hex4(bad.received)}, want ${hex4(bad.expected)})`;
    this.stats.piVerifyErrors[bad.check]++;
    this.stats.errors.protection++;
    this.log.printk(KERN_ERR, `${this.name}: ${line}`);
    return {
      status: 'protection',
      pi: { check: bad.check, sector: req.sector + bad.interval * sectorsPerInterval, caughtBy: 'guest' },
    };
  }

  // --- fault injection -------------------------------------------------------------------------

  private applyWriteFaults(req: BlockRequest, cleanups: Page[]): BlockRequest {
    const end = req.sector + requestSectors(req);
    let out = req;
    const c = this.faults.corruptAfterGenerate;
    if (c && c.sector >= req.sector && c.sector < end) {
      out = {
        ...out,
        segments: this.corruptedCopy(out.segments, (c.sector - req.sector) * SECTOR_SIZE, cleanups),
      };
      this.stats.faultHits.corruptAfterGenerate++;
    }
    const m = this.faults.misdirect;
    const shifted = m ? req.sector + (m.toSector - m.fromSector) : 0;
    // Only to a place that exists: the hook models a wrong LBA, not an out-of-range request.
    if (
      m &&
      m.fromSector >= req.sector &&
      m.fromSector < end &&
      shifted >= 0 &&
      shifted + (end - req.sector) <= this.capacity()
    ) {
      // The request now says it is for the new place (its seed follows the sector), but its tuples
      // still carry the ref tags generated for the old one: a write with wrong ref tags.
      const bi = this.integrity();
      out = {
        ...out,
        sector: shifted,
        integrity:
          out.integrity && bi ? { ...out.integrity, refSeed: this.seedOf(shifted, bi) } : out.integrity,
      };
      this.stats.faultHits.misdirect++;
    }
    return out;
  }

  /** The segments with the one holding byte `at` replaced by a corrupted copy of its page. */
  private corruptedCopy(segments: BioSegment[], at: number, cleanups: Page[]): BioSegment[] {
    let pos = 0;
    return segments.map((s) => {
      if (at < pos || at >= pos + s.len) {
        pos += s.len;
        return s;
      }
      const copy = this.driver.allocPage();
      cleanups.push(copy);
      copy.write(0, s.page.buf);
      const byte = s.off + (at - pos);
      copy.write(byte, Uint8Array.of(s.page.buf[byte] ^ 0x01));
      pos += s.len;
      return { page: copy, off: s.off, len: s.len };
    });
  }
}

/** t10-pi.c checks the reference tag before the guard; pvblk's app-tag check comes last. */
const LINUX_ORDER: readonly PiCheck[] = ['ref', 'guard', 'app'];

function hex4(v: number): string {
  return v.toString(16).padStart(4, '0');
}

export function requestSectors(req: BlockRequest): number {
  if (req.op === 'discard') return req.nrSectors ?? 0;
  let bytes = 0;
  for (const s of req.segments) bytes += s.len;
  return bytes / SECTOR_SIZE;
}

/**
 * The data of a list of segments, in order, as one buffer — for reading there and then (PI is
 * generated or checked over it): a single segment is a view of its page, not a copy.
 */
export function gather(segments: BioSegment[]): Buffer {
  if (segments.length === 1) {
    const s = segments[0];
    return bufferView(s.page.buf, s.off, s.len);
  }
  let len = 0;
  for (const s of segments) len += s.len;
  const out = Buffer.allocUnsafe(len);
  let pos = 0;
  for (const s of segments) {
    s.page.buf.copy(out, pos, s.off, s.off + s.len);
    pos += s.len;
  }
  return out;
}

/** Checks the bio's shape (a caller bug otherwise) and returns its length in sectors. */
function validateSegments(segments: BioSegment[], lbs: number): number {
  let bytes = 0;
  for (const s of segments) {
    if (s.off % SECTOR_SIZE !== 0 || s.len % SECTOR_SIZE !== 0 || s.len <= 0 || s.off + s.len > PAGE_SIZE) {
      throw new PvblkError('EINVAL', `bad bio segment: ${s.len} bytes at ${s.off}`);
    }
    bytes += s.len;
  }
  if (bytes % lbs !== 0) {
    throw new PvblkError(
      'EINVAL',
      `a bio of ${bytes} bytes is not a multiple of the ${lbs}-byte logical block`,
    );
  }
  return bytes / SECTOR_SIZE;
}

/**
 * Splits a read/write bio into requests that fit the queue limits. `align` (sectors) is the
 * granularity every request boundary must respect: the logical block size, or the protection
 * interval when it is larger, so that each request carries whole PI intervals.
 */
export function splitBio(bio: Bio, limits: QueueLimits, maxSectors: number, align: number): BlockRequest[] {
  const maxSeg = Math.min(limits.maxSegmentSize, PAGE_SIZE);
  const maxSegs = Math.max(1, limits.maxSegments);
  const alignBytes = align * SECTOR_SIZE;
  const maxBytes = Math.max(align, Math.floor(maxSectors / align) * align) * SECTOR_SIZE;
  // Segments as blk_rq_map_sg() would count them: contiguous pieces of the same page merge.
  const pieces: Piece[] = [];
  for (const s of bio.segments) {
    const last = pieces[pieces.length - 1];
    if (last && last.page === s.page && last.off + last.len === s.off && last.len + s.len <= maxSeg) {
      last.len += s.len;
      continue;
    }
    for (let o = 0; o < s.len; o += maxSeg) {
      pieces.push({ page: s.page, off: s.off + o, len: Math.min(maxSeg, s.len - o) });
    }
  }
  // A stack with the next piece on top, so that a piece given back is simply pushed again.
  const stack = pieces.reverse();
  const giveBack = (p: Piece): void => {
    const top = stack[stack.length - 1];
    if (top && top.page === p.page && p.off + p.len === top.off && p.len + top.len <= maxSeg) {
      stack[stack.length - 1] = { page: p.page, off: p.off, len: p.len + top.len };
    } else {
      stack.push(p);
    }
  };

  const reqs: BlockRequest[] = [];
  let sector = bio.sector;
  while (stack.length > 0) {
    const segs: Piece[] = [];
    let bytes = 0;
    while (stack.length > 0 && segs.length < maxSegs && bytes < maxBytes) {
      const p = stack[stack.length - 1];
      const room = maxBytes - bytes;
      if (p.len <= room) {
        stack.pop();
        segs.push(p);
        bytes += p.len;
      } else {
        // Split inside the segment, as blk_bio_segment_split() splits a bvec at max_sectors.
        segs.push({ page: p.page, off: p.off, len: room });
        stack[stack.length - 1] = { page: p.page, off: p.off + room, len: p.len - room };
        bytes += room;
      }
    }
    // Keep the boundary on a logical block (and PI interval): give the tail back to the next request.
    let excess = bytes % alignBytes;
    while (excess > 0) {
      const last = segs[segs.length - 1];
      if (last.len <= excess) {
        segs.pop();
        giveBack(last);
        excess -= last.len;
        bytes -= last.len;
      } else {
        const keep = last.len - excess;
        giveBack({ page: last.page, off: last.off + keep, len: excess });
        segs[segs.length - 1] = { page: last.page, off: last.off, len: keep };
        bytes -= excess;
        excess = 0;
      }
    }
    if (segs.length === 0) {
      throw new PvblkError(
        'EINVAL',
        `cannot build a ${alignBytes}-byte aligned request within ${maxSegs} segments`,
      );
    }
    reqs.push({ op: bio.op, sector, segments: segs });
    sector += bytes / SECTOR_SIZE;
  }
  return reqs;
}
