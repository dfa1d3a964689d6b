/**
 * The contract between the guest's block layer and a block driver (blkfront), in Linux's terms: the
 * driver publishes queue limits and geometry like blkif_set_queue_limits(); the block layer hands it
 * requests that already respect those limits; completions come back as a status, never an exception.
 *
 * Data lives in pages the guest owns (`Page` from the hypercall client), so that the driver can grant
 * the very pages the page cache holds, as Linux grants bio pages to the backend.
 */
import type { Page } from '@pvblk/client';

/** One piece of a request: `len` bytes at `off` within one 4 KiB page; both multiples of 512. */
export interface BioSegment {
  page: Page;
  off: number;
  len: number;
}

export type BlockOp = 'read' | 'write' | 'flush' | 'discard';

/** Per-request protection information (DIX): one 8-byte tuple per integrity interval of data. */
export interface RequestIntegrity {
  /** The tuples, big-endian; on reads the driver fills this buffer. */
  tuples: Buffer;
  /** Ref tag of the first interval as the guest computed it (its virtual sector / interval). */
  refSeed: number;
  appTag: number;
  checks: { guard: boolean; app: boolean; ref: boolean };
}

export interface BlockRequest {
  op: BlockOp;
  /** Start, in 512-byte sectors. */
  sector: number;
  /** Data segments (read/write); empty for flush/discard. */
  segments: BioSegment[];
  /** Length in 512-byte sectors for discard (derived from segments otherwise). */
  nrSectors?: number;
  /** Secure erase, for discard. */
  secure?: boolean;
  integrity?: RequestIntegrity;
}

/**
 * `req` with its protection information set, built field by field. Not `{ ...req, integrity }`: V8
 * (11.3, Node 20) gives an object literal that spreads an object and then adds a key it did not have
 * a hidden class of its own every time, so each PI request reached blkfront with a new one — every
 * property read of a request there became a megamorphic miss, and the guest allocated a map per
 * request. Optional fields are copied only when present, so that requests keep the few shapes the
 * block layer builds.
 */
export function withIntegrity(req: BlockRequest, integrity: RequestIntegrity | undefined): BlockRequest {
  const out: BlockRequest = { op: req.op, sector: req.sector, segments: req.segments, integrity };
  if (req.nrSectors !== undefined) out.nrSectors = req.nrSectors;
  if (req.secure !== undefined) out.secure = req.secure;
  return out;
}

/** blk_status_t, the subset a paravirtual disk can return. */
export type BlkStatus = 'ok' | 'ioerr' | 'notsupp' | 'protection' | 'nospc';

export interface BlockResult {
  status: BlkStatus;
  /** For protection errors: which check failed and the first failing 512-byte sector. */
  pi?: { check: 'guard' | 'app' | 'ref'; sector: number; caughtBy: 'guest' | 'backend' | 'device' };
  /** The request's PI did not travel (the connection lost the integrity extension meanwhile): nothing to verify. */
  piDropped?: boolean;
}

/** struct queue_limits, as blkfront sets them. */
export interface QueueLimits {
  /** Largest request, in 512-byte sectors (max_hw_sectors). */
  maxHwSectors: number;
  /** Most segments in one request. */
  maxSegments: number;
  /** Largest segment in bytes (PAGE_SIZE). */
  maxSegmentSize: number;
  logicalBlockSize: number;
  physicalBlockSize: number;
  /** Discard limits; null without discard. */
  discard: { maxSectors: number; granularity: number; alignment: number; secure: boolean } | null;
}

/** What the block layer knows of the device's integrity format (struct blk_integrity); null without PI. */
export interface DeviceIntegrity {
  type: 1 | 2 | 3;
  guard: 'crc' | 'ip';
  /** Bytes of data per tuple. */
  interval: number;
  tagSize: number;
  /** Profile name shown in /sys/block/<dev>/integrity/format. */
  name: string;
}

/** A block driver's face towards the block layer (blkfront implements it). */
export interface BlockDriver {
  /** Kernel name, e.g. `xvda`. */
  readonly name: string;
  /** Capacity in 512-byte sectors. */
  capacity(): number;
  readonly readOnly: boolean;
  limits(): QueueLimits;
  /** Whether FLUSH is supported (feature-flush-cache / feature-barrier). */
  flushSupported(): boolean;
  integrity(): DeviceIntegrity | null;
  /** Queues one request; resolves when it completes (possibly after a backend reconnect). */
  submit(req: BlockRequest): Promise<BlockResult>;
  /**
   * The end of a plug (blk_finish_plug()): what was queued since goes to the device now rather than
   * at the end of the turn. Optional: a driver without it sends what it queued at its own pace.
   */
  unplug?(): void;
  /** Allocates a page the driver can share with the backend (zeroed). */
  allocPage(): Page;
  freePage(p: Page): void;
}
