/**
 * The host block device blkback serves a vbd from: in Linux terms the `struct block_device` of
 * `phy:/dev/sdg`. Implementations: the SCSI disk (`sd` over the scsi_debug-like target) and an
 * in-memory device for unit tests. Errors are data: every operation resolves to an IoResult and
 * never rejects for an I/O failure (a rejection means a bug or a closed device).
 *
 * Units: `sector` and `count` are always 512-byte sectors, as on the blkif ring, whatever the
 * logical block size; callers keep requests aligned to `logicalBlockSize`.
 */

/** The block layer's view of a PI format (struct blk_integrity): what the host can carry from above. */
export interface IntegrityProfile {
  /** Protection type of the device (1, 2 or 3); DIX on a type-0 disk behaves as type 1. */
  type: 1 | 2 | 3;
  guard: 'crc' | 'ip';
  /** Bytes of data per PI tuple (the logical block size). */
  interval: 512 | 4096;
  /** Bytes per tuple (8). */
  tupleSize: 8;
  /** Application-tag bytes the host owns per interval: 2 (types 1/2) or 6 (type 3) with ATO=1, else 0. */
  tagSize: 0 | 2 | 6;
  /** Linux's profile name: T10-DIF-TYPE1-CRC, T10-DIF-TYPE3-IP, ... */
  name: string;
  /** True when the medium itself stores PI (dif > 0): the device checks tags too. */
  deviceCapable: boolean;
}

/** Which PI check failed, as T10 names them (ASCQ 1, 2, 3 of ASC 0x10). */
export type PiCheck = 'guard' | 'app' | 'ref';

export type IoErrorKind =
  | 'medium' // MEDIUM ERROR (unrecovered read error)
  | 'protection' // a PI check failed (ABORTED COMMAND / ILLEGAL REQUEST, ASC 0x10)
  | 'target' // other CHECK CONDITION the upper layer cannot retry
  | 'transport' // ABORTED COMMAND, ACK/NAK timeout and friends
  | 'timeout' // the command never completed
  | 'range' // outside the device (LBA out of range)
  | 'readonly' // write to a read-only device
  | 'notsupp'; // the device does not implement the operation

export interface IoError {
  kind: IoErrorKind;
  /**
   * First 512-byte sector the request failed at, as the kernel reports it (`end_request: … sector
   * N`): the request's start plus what completed (sd_completed_bytes()), or the failing interval when
   * the block layer's own PI verify failed.
   */
  sector: number;
  /**
   * The 512-byte sector the device or checker named as bad, when known: the sense Information field
   * for medium errors (0x1234 → 4660 in the seed, whose request failed at 4656), the failing PI
   * interval for protection errors. Absent for injected errors that name no block.
   */
  badSector?: number;
  /** Which check failed, for kind 'protection'. */
  check?: PiCheck;
  /** Where the failure was detected: the HBA/host integrity checker or the target (device). */
  detectedBy?: 'host' | 'device';
  /** Human-readable detail for logs. */
  detail?: string;
}

export type IoResult = { ok: true } | { ok: false; error: IoError };

/** Protection information travelling with a read or write (DIX): one 8-byte tuple per interval. */
export interface PiBuffer {
  /** The tuples, big-endian as on the wire; length = 8 × intervals. */
  tuples: Buffer;
  /** Which checks the device should apply (blkif per-request flags / BIP_CHECK_*). */
  checks: { guard: boolean; app: boolean; ref: boolean };
}

export interface HostBlockDevice {
  /** Kernel name, e.g. `sdg`. */
  readonly name: string;
  /** Size in 512-byte sectors. */
  readonly sectors: number;
  readonly logicalBlockSize: number;
  readonly physicalBlockSize: number;
  readonly readOnly: boolean;
  /** Non-null when the host can pass PI to and from the device (DIX). */
  readonly integrity: IntegrityProfile | null;
  /** True when the device has a volatile write cache worth flushing. */
  readonly writeCache: boolean;
  readonly discard: { granularity: number; alignment: number; secure: boolean } | null;

  read(sector: number, count: number, pi?: { checks: PiBuffer['checks'] }): Promise<ReadResult>;
  write(sector: number, data: Buffer, pi?: PiBuffer): Promise<IoResult>;
  flush(): Promise<IoResult>;
  discardRange(sector: number, count: number, secure: boolean): Promise<IoResult>;
  close(): Promise<void>;
}

export type ReadResult =
  | { ok: true; data: Buffer; /** present when the device has an integrity profile */ pi?: Buffer }
  | { ok: false; error: IoError; /** bytes that did transfer before the error, if any */ data?: Buffer };
