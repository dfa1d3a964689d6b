/**
 * An in-memory BlockDriver for the block layer tests: a disk of `capacity` sectors with optional PI
 * storage, blkfront-like default limits (11 segments of a page, 88 sectors), injectable failures per
 * sector range, and a log of every request as the driver received it, so tests can assert exact
 * request boundaries.
 *
 * PI on the medium starts all-ones (never written: app tag 0xFFFF escapes checking, like scsi_debug's
 * store). A write with PI stores the tuples it carries; a write without PI (write_generate off) gets
 * PI generated with ref = LBA, as an HBA inserting it would. Reads with PI return the stored tuples.
 */
import { Page } from '@pvblk/client';
import { PAGE_SIZE, PI_TUPLE_SIZE, SECTOR_SIZE, generatePi, verifyPi } from '@pvblk/shared';
import type {
  BlkStatus,
  BlockDriver,
  BlockOp,
  BlockRequest,
  BlockResult,
  DeviceIntegrity,
  QueueLimits,
} from '../../src/block/types.ts';

export interface LoggedRequest {
  op: BlockOp;
  sector: number;
  nrSectors: number;
  nrSegments: number;
  /** Segment lengths in bytes, in order. */
  segLens: number[];
  integrity?: {
    refSeed: number;
    appTag: number;
    checks: { guard: boolean; app: boolean; ref: boolean };
    tuples: Buffer;
  };
  /** A copy of the data of a write, as the driver saw it. */
  data?: Buffer;
  secure?: boolean;
}

export interface Failure {
  /** Which requests; default any data request (read or write). */
  op?: BlockOp | 'any';
  /** Inclusive sector range: a request touching any of these sectors fails. */
  from: number;
  to: number;
  status: Exclude<BlkStatus, 'ok'>;
  pi?: BlockResult['pi'];
}

export interface FakeDriverOptions {
  name?: string;
  /** Capacity in 512-byte sectors. Default 16384 (8 MiB). */
  capacity?: number;
  limits?: Partial<QueueLimits>;
  integrity?: DeviceIntegrity | null;
  flush?: boolean;
  readOnly?: boolean;
  /** Check the PI of writes against the data and the LBA, as a DIF target would. */
  verifyWrites?: boolean;
}

/** blkfront without indirect descriptors: BLKIF_MAX_SEGMENTS_PER_REQUEST pages. */
export const BLKFRONT_LIMITS: QueueLimits = {
  maxHwSectors: 88,
  maxSegments: 11,
  maxSegmentSize: PAGE_SIZE,
  logicalBlockSize: 512,
  physicalBlockSize: 512,
  discard: null,
};

export const TYPE1_CRC: DeviceIntegrity = {
  type: 1,
  guard: 'crc',
  interval: 512,
  tagSize: 0,
  name: 'T10-DIF-TYPE1-CRC',
};

export class FakeDriver implements BlockDriver {
  readonly name: string;
  readonly readOnly: boolean;
  readonly data: Buffer;
  /** Stored PI, one tuple per interval; null without integrity. */
  readonly pi: Buffer | null;
  readonly requests: LoggedRequest[] = [];
  failures: Failure[] = [];
  flush: boolean;
  verifyWrites: boolean;
  private lim: QueueLimits;
  private readonly integ: DeviceIntegrity | null;
  private nextGfn = 1;
  readonly livePages = new Set<Page>();
  inFlight = 0;
  maxInFlight = 0;
  /** Resolves requests only when the test says so (for concurrency tests); null = immediately. */
  gate: Promise<void> | null = null;

  constructor(opts: FakeDriverOptions = {}) {
    this.name = opts.name ?? 'xvda';
    this.readOnly = opts.readOnly ?? false;
    const cap = opts.capacity ?? 16384;
    this.data = Buffer.alloc(cap * SECTOR_SIZE);
    this.lim = { ...BLKFRONT_LIMITS, ...opts.limits };
    this.integ = opts.integrity ?? null;
    this.pi = this.integ
      ? Buffer.alloc((this.data.length / this.integ.interval) * PI_TUPLE_SIZE, 0xff)
      : null;
    this.flush = opts.flush ?? true;
    this.verifyWrites = opts.verifyWrites ?? false;
  }

  capacity(): number {
    return this.data.length / SECTOR_SIZE;
  }

  limits(): QueueLimits {
    return this.lim;
  }

  setLimits(l: Partial<QueueLimits>): void {
    this.lim = { ...this.lim, ...l };
  }

  flushSupported(): boolean {
    return this.flush;
  }

  integrity(): DeviceIntegrity | null {
    return this.integ;
  }

  allocPage(): Page {
    const p = new Page({ pageWrite() {} }, { kind: 'local', gfn: this.nextGfn++ });
    this.livePages.add(p);
    return p;
  }

  freePage(p: Page): void {
    if (!this.livePages.delete(p)) throw new Error(`page gfn ${p.gfn} freed twice or never allocated`);
  }

  /** Requests of one kind, as [sector, nrSectors] pairs. */
  ranges(op: BlockOp): Array<[number, number]> {
    return this.requests.filter((r) => r.op === op).map((r) => [r.sector, r.nrSectors]);
  }

  failWhen(f: Failure): void {
    this.failures.push(f);
  }

  async submit(req: BlockRequest): Promise<BlockResult> {
    let bytes = 0;
    for (const s of req.segments) bytes += s.len;
    const nr = req.op === 'discard' ? (req.nrSectors ?? 0) : bytes / SECTOR_SIZE;
    const logged: LoggedRequest = {
      op: req.op,
      sector: req.sector,
      nrSectors: nr,
      nrSegments: req.segments.length,
      segLens: req.segments.map((s) => s.len),
      secure: req.secure,
    };
    if (req.integrity) {
      logged.integrity = {
        refSeed: req.integrity.refSeed,
        appTag: req.integrity.appTag,
        checks: { ...req.integrity.checks },
        tuples: Buffer.from(req.integrity.tuples),
      };
    }
    if (req.op === 'write') logged.data = gatherData(req);
    this.requests.push(logged);

    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      // Complete asynchronously, so that callers really have several requests in flight.
      await new Promise<void>((r) => setImmediate(r));
      if (this.gate) await this.gate;
      return this.complete(req, nr);
    } finally {
      this.inFlight--;
    }
  }

  private complete(req: BlockRequest, nr: number): BlockResult {
    for (const f of this.failures) {
      const opMatch = f.op === 'any' || (f.op ? f.op === req.op : req.op === 'read' || req.op === 'write');
      if (opMatch && req.sector <= f.to && req.sector + Math.max(nr, 1) - 1 >= f.from) {
        return f.pi ? { status: f.status, pi: f.pi } : { status: f.status };
      }
    }
    const off = req.sector * SECTOR_SIZE;
    switch (req.op) {
      case 'read': {
        let pos = off;
        for (const s of req.segments) {
          s.page.write(s.off, this.data.subarray(pos, pos + s.len));
          pos += s.len;
        }
        if (req.integrity && this.pi && this.integ) {
          const first = off / this.integ.interval;
          this.pi.copy(
            req.integrity.tuples,
            0,
            first * PI_TUPLE_SIZE,
            first * PI_TUPLE_SIZE + req.integrity.tuples.length,
          );
        }
        return { status: 'ok' };
      }
      case 'write': {
        if (this.readOnly) return { status: 'ioerr' };
        const data = gatherData(req);
        if (this.pi && this.integ) {
          const fmt = { type: this.integ.type, guard: this.integ.guard, interval: this.integ.interval };
          const first = off / this.integ.interval;
          const lba = first;
          if (req.integrity && this.verifyWrites) {
            const bad = verifyPi(data, req.integrity.tuples, {
              format: fmt,
              seed: lba,
              checks: { ref: this.integ.type !== 3 },
            });
            if (bad) {
              const sector = req.sector + bad.interval * (this.integ.interval / SECTOR_SIZE);
              return { status: 'protection', pi: { check: bad.check, sector, caughtBy: 'device' } };
            }
          }
          const tuples = req.integrity
            ? req.integrity.tuples
            : Buffer.alloc((data.length / this.integ.interval) * PI_TUPLE_SIZE);
          if (!req.integrity) generatePi(data, tuples, { format: fmt, seed: lba });
          tuples.copy(this.pi, first * PI_TUPLE_SIZE);
        }
        data.copy(this.data, off);
        return { status: 'ok' };
      }
      case 'discard':
        this.data.fill(0, off, off + nr * SECTOR_SIZE);
        return { status: 'ok' };
      case 'flush':
        return { status: 'ok' };
    }
  }
}

function gatherData(req: BlockRequest): Buffer {
  return Buffer.concat(req.segments.map((s) => s.page.buf.subarray(s.off, s.off + s.len)));
}

/** A page with the given contents, for building bios by hand. */
export function pageWith(driver: FakeDriver, fill: number | Uint8Array): Page {
  const p = driver.allocPage();
  if (typeof fill === 'number') p.fill(fill);
  else p.write(0, fill);
  return p;
}
