/**
 * The host's SCSI disk driver (`sd`), the midlayer's completion and error handling, and the HBA,
 * over the scsi_debug target: the `struct block_device` blkback serves `phy:/dev/sdg` from.
 *
 * Which Linux it follows: the 3.x midlayer of the seed (scsi_io_completion(), scsi_check_sense(),
 * __scsi_error_from_host_byte(), blk_update_request()'s "end_request: … error" line, constants.c's
 * sense printing), sd_prep_fn()/sd_done()/sd_completed_bytes() with the `min(good, transferred)`
 * clamp, sd_dif.c's profile selection and verify messages, and the current sd_prot_op() /
 * sd_setup_protect_cmnd() / sd_prot_flag_mask() for what the HBA is asked to check.
 *
 * Layers of a request, top down, and what each checks:
 *  - block integrity (bio_integrity_prep): with a DIX profile and no PI from the caller, generates
 *    PI on writes and verifies it on reads ("sdg: guard tag error on sector …").
 *  - HBA: WRITE_INSERT generates PI for a formatted disk; *_PASS/*_STRIP check guard (DIX only)
 *    and reference tag as prot_flags say, and fail the command as lpfc-class HBAs do: ILLEGAL
 *    REQUEST / 0x10 / 0x01|0x03 with host byte DID_ABORT ("Host Data Integrity Failure").
 *  - target (scsi-debug.ts): checks per RDPROTECT/WRPROTECT, ABORTED COMMAND / 0x10 on failure.
 *
 * Log lines: the seed transcript is the reference for form. Each printk record is one line; the
 * kernel's trailing blanks are dropped; the device prefix reads `sd 9:0:0:0 [sdg]` as in the seed
 * (dev_printk itself prints `sd 9:0:0:0: [sdg]`). The sense block, CDB and end_request lines go out
 * at KERN_ERR; the midlayer's KERN_INFO description and `Result:` lines only with `logResult`.
 *
 * Error handler, as 3.12–3.18 run it (the asynchronous abort of scsi_error.c): a command that
 * never completes times out after the device's timeout (SD_TIMEOUT, `/sys/block/sdX/device/timeout`),
 * its abort is scheduled and run 10 ms (HZ/100) later, and the aborted command is retried up to
 * SD_MAX_RETRIES times; then it is finished with DID_TIME_OUT ("Unhandled error code",
 * "end_request: I/O error"). Each step prints the line scsi_error.c logs at error-recovery logging
 * level 3 (`scsi_logging_level -s -E 3`) — `… scmd ffff8800… abort scheduled`, `aborting command …`,
 * `retry aborted command` / `finish aborted command` — as they happen, so a stuck disk is visible
 * from its first timeout; Linux's default logging level (0) would keep them quiet, which `ehLogging:
 * 0` gives. The scmd addresses are made up (stable per command, like a slab address). Retryable
 * sense (ABORTED COMMAND other than 0x10, …) is retried the same number of times; TASK SET FULL and
 * HOST_BUSY are requeued without counting.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  KERN_ERR,
  KERN_INFO,
  KERN_NOTICE,
  KERN_WARNING,
  PI_TUPLE_SIZE,
  PvblkError,
  generatePi,
  verifyPi,
  ComputedGuards,
  type KernelLog,
  type PiFormat,
} from '@pvblk/shared';
import type {
  HostBlockDevice,
  IntegrityProfile,
  IoError,
  IoErrorKind,
  IoResult,
  PiBuffer,
  PiCheck,
  ReadResult,
} from '../block-device.ts';
import {
  PROTECT_CHECK,
  PROTECT_NOCHECK,
  UNMAP,
  WRITE_SAME_16,
  chooseRwCdbSize,
  encodeRw,
  encodeSynchronizeCache10,
  encodeUnmap,
  encodeWriteSame16,
  formatCdb,
} from './cdb.ts';
import { OPT_N_WCE, dixEnabled, parseScsiDebugParams, type ScsiDebugParams } from './params.ts';
import {
  ScsiDebugTarget,
  storeFormatFor,
  type HostByte,
  type ScsiCommand,
  type ScsiResult,
} from './scsi-debug.ts';
import {
  ABORTED_COMMAND,
  ASC_PI_ERROR,
  DATA_PROTECT,
  HARDWARE_ERROR,
  ILLEGAL_REQUEST,
  MEDIUM_ERROR,
  NOT_READY,
  NO_SENSE,
  RECOVERED_ERROR,
  UNIT_ATTENTION,
  buildSense,
  decodeSense,
  formatAddSense,
  formatSenseExtras,
  formatSenseKeyLine,
  senseInfo,
  senseKeyName,
  ascText,
  type SenseHeader,
} from './sense.ts';
import { FileStore, MemoryStore, PI_INTERVAL, type BlockStore } from './store.ts';

/** SD_TIMEOUT: 30 s per command. */
export const SD_TIMEOUT_MS = 30_000;
/** The longest device timeout, in seconds: Node's timers wait at most 2^31 - 1 ms. */
export const SD_TIMEOUT_MAX_S = Math.floor(0x7fffffff / 1000);
/** SD_MAX_RETRIES. */
export const SD_MAX_RETRIES = 5;
/** pvblk's bound on silent requeues (Linux would requeue forever). */
const MAX_REQUEUES = 1000;
/** SCSI_QUEUE_DELAY: 3 jiffies before a requeued command is tried again. */
const REQUEUE_DELAY_MS = 3;
/** scsi_abort_command() queues the abort work HZ/100 after the timeout. */
const ABORT_DELAY_MS = 10;
/** The scsi_logging_level ERROR_RECOVERY field at which scsi_error.c prints the abort and the retry. */
const EH_LOG_ABORTS = 3;

/** The device prefix of sd's log lines, in the seed's form. */
export function sdevPrefix(hctl: string, name: string): string {
  return `sd ${hctl} [${name}]`;
}

type ProtOp =
  'NORMAL' | 'READ_STRIP' | 'READ_INSERT' | 'READ_PASS' | 'WRITE_INSERT' | 'WRITE_STRIP' | 'WRITE_PASS';

/** sd_prot_op(). */
function protOp(write: boolean, dix: boolean, dif: boolean): ProtOp {
  if (write) return dif ? (dix ? 'WRITE_PASS' : 'WRITE_INSERT') : dix ? 'WRITE_STRIP' : 'NORMAL';
  return dif ? (dix ? 'READ_PASS' : 'READ_STRIP') : dix ? 'READ_INSERT' : 'NORMAL';
}

/** The HBA's GUARD_CHECK / REF_CHECK after sd_prot_flag_mask(): INSERT and NORMAL check nothing. */
function hbaChecks(op: ProtOp, dix: boolean, type: number, checks: PiBuffer['checks'] | undefined) {
  const masked = op === 'READ_STRIP' || op === 'READ_PASS' || op === 'WRITE_STRIP' || op === 'WRITE_PASS';
  return {
    guard: masked && dix && (checks?.guard ?? true),
    ref: masked && type !== 3 && (checks?.ref ?? true),
  };
}

/** sd_dif_config_host(): the block-integrity profile, or null without DIX. */
export function integrityProfileFor(p: ScsiDebugParams): IntegrityProfile | null {
  if (!dixEnabled(p)) return null;
  // DIX Type 0 (dif=0, dix) registers the Type 1 profile; Type 2 uses the Type 1 profile too.
  const type: 1 | 2 | 3 = p.dif === 0 ? 1 : p.dif;
  const guard = p.guard === 1 ? 'ip' : 'crc';
  const tagSize: 0 | 2 | 6 = p.dif > 0 && p.ato === 1 ? (type === 3 ? 6 : 2) : 0;
  return {
    type,
    guard,
    interval: PI_INTERVAL,
    tupleSize: PI_TUPLE_SIZE,
    tagSize,
    name: `T10-DIF-TYPE${type === 3 ? 3 : 1}-${guard.toUpperCase()}`,
    deviceCapable: p.dif > 0,
  };
}

export interface SdOptions {
  params: ScsiDebugParams;
  store: BlockStore;
  /** The dom0 kernel log; sd and scsi_debug print through it. */
  log: KernelLog;
  /** Per-command timeout before the error handler aborts (SD_TIMEOUT). */
  timeoutMs?: number;
  /** Also print the 3.x midlayer's KERN_INFO lines (description, `Result: hostbyte=…`). */
  logResult?: boolean;
  /** scsi_logging_level's ERROR_RECOVERY field (default 3: the abort and retry lines are printed). */
  ehLogging?: number;
}

/** How one SCSI command ended, after retries, as sd_done()/scsi_io_completion() see it. */
interface Outcome {
  result: ScsiResult;
  /** Host byte after scsi_decide_disposition() (DID_TARGET_FAILURE for TARGET_ERROR sense). */
  hostByte: HostByte;
  timedOut: boolean;
  /** Gave up requeueing a busy device (pvblk's bound). */
  starved: boolean;
}

type Errno = 'EIO' | 'EREMOTEIO' | 'EILSEQ' | 'ENOLINK' | 'EBADE';

export class SdDisk implements HostBlockDevice {
  readonly name: string;
  readonly hctl: string;
  readonly logicalBlockSize: number;
  readonly physicalBlockSize: number;
  readonly readOnly = false;
  readonly integrity: IntegrityProfile | null;
  readonly writeCache: boolean;
  readonly discard: { granularity: number; alignment: number; secure: boolean } | null;
  /** The disk behind the HBA; runtime parameter changes and counters go through it. */
  readonly target: ScsiDebugTarget;

  private readonly log: KernelLog;
  private readonly prefix: string;
  /** The request queue's rq_timeout: `/sys/block/sdX/device/timeout` × HZ. */
  private timeoutMs: number;
  private readonly logResult: boolean;
  private readonly ehLogging: number;
  /** Commands issued so far: each gets an scmd address for the error handler's lines. */
  private issued = 0;
  /** The protection type the disk is formatted with (0 = none): sdkp->protection_type. */
  private readonly difType: 0 | 1 | 2 | 3;
  private readonly guardKind: 'crc' | 'ip';
  private readonly discardMode: 'ws16' | 'unmap' | null;
  private closed = false;

  constructor(opts: SdOptions) {
    const p = opts.params;
    this.target = new ScsiDebugTarget({ params: p, store: opts.store, log: opts.log });
    this.log = opts.log;
    this.name = p.host_name;
    this.hctl = p.hctl;
    this.prefix = sdevPrefix(this.hctl, this.name);
    this.timeoutMs = opts.timeoutMs ?? SD_TIMEOUT_MS;
    this.logResult = opts.logResult ?? false;
    this.ehLogging = opts.ehLogging ?? EH_LOG_ABORTS;
    this.logicalBlockSize = p.sector_size;
    this.physicalBlockSize = p.sector_size;
    this.difType = p.dif;
    this.guardKind = p.guard === 1 ? 'ip' : 'crc';
    this.integrity = integrityProfileFor(p);
    // The caching mode page's WCE bit, read at probe; scsi_debug clears it with opts N_WCE.
    this.writeCache = (p.opts & OPT_N_WCE) === 0;
    // sd_read_block_limits() of 3.x/4.x: UNMAP only when the disk does not promise zeroes, else
    // WRITE SAME(16) with UNMAP (scsi_debug's default lbprz=1 selects the latter).
    this.discardMode = p.lbpu === 1 && p.lbprz === 0 ? 'unmap' : p.lbpws === 1 ? 'ws16' : null;
    this.discard = this.discardMode ? { granularity: p.sector_size, alignment: 0, secure: false } : null;

    if (p.dif > 0) this.log.printk(KERN_NOTICE, `${this.prefix} Enabling DIF Type ${p.dif} protection`);
    if (this.integrity) {
      this.log.printk(KERN_NOTICE, `${this.prefix} Enabling DIX ${this.integrity.name} protection`);
      if (this.integrity.tagSize > 0) {
        this.log.printk(KERN_NOTICE, `${this.prefix} DIF application tag size ${this.integrity.tagSize}`);
      }
    }
  }

  /**
   * Size in 512-byte sectors: the target's capacity, re-read as sd_revalidate_disk would after the
   * capacity-changed unit attention (a runtime virtual_gb change) — set_capacity_and_notify at once.
   */
  get sectors(): number {
    return (this.target.capacityBlocks * this.logicalBlockSize) / 512;
  }

  /** `/sys/block/sdX/device/timeout` (sdev_show_timeout): seconds. */
  get timeoutSeconds(): number {
    return Math.floor(this.timeoutMs / 1000);
  }

  /**
   * Writing `/sys/block/sdX/device/timeout` (sdev_store_timeout: an int, then rq_timeout = timeout × HZ);
   * commands issued from then on use it. pvblk refuses, with EINVAL, what is not a non-negative
   * integer up to SD_TIMEOUT_MAX_S: a Node timer cannot wait longer, and one asked to fires at once.
   */
  setTimeoutSeconds(text: string): boolean {
    const m = /^\s*\+?(\d{1,7})\s*$/.exec(text);
    if (!m || Number(m[1]) > SD_TIMEOUT_MAX_S) return false;
    this.timeoutMs = Number(m[1]) * 1000;
    return true;
  }

  async read(sector: number, count: number, pi?: { checks: PiBuffer['checks'] }): Promise<ReadResult> {
    this.checkOpen();
    const bad = this.prep(sector, count);
    if (bad) return { ok: false, error: bad };
    if (count === 0)
      return this.integrity
        ? { ok: true, data: Buffer.alloc(0), pi: Buffer.alloc(0) }
        : { ok: true, data: Buffer.alloc(0) };

    const dif = this.difType > 0;
    const dix = this.integrity !== null;
    const op = protOp(false, dix, dif);
    // Check flags only mean something when PI can travel with the request (a DIX profile).
    const checks = dix ? pi?.checks : undefined;
    const protect = this.protectField(dif, checks);
    const cdb = this.rwCdb(false, sector, count, protect);
    const bytes = count * 512;
    const hba = hbaChecks(op, dix, this.hostType(), checks);

    const out = await this.execute({ cdb, protIn: op !== 'NORMAL' }, (r) => {
      if (r.status !== 'GOOD') return r;
      // sd_done() takes a GOOD read as complete whatever the residue; short data is what was in
      // the pages (zeroes here).
      r.dataIn = padTo(r.dataIn, bytes);
      if (op !== 'NORMAL') r.protIn = padTo(r.protIn, (bytes / PI_INTERVAL) * PI_TUPLE_SIZE);
      const failed = this.hbaVerify(r.dataIn, r.protIn, sector, hba);
      return failed ? this.hbaFailure(failed, sector) : r;
    });
    const done = this.complete(cdb, sector, bytes, out, true);
    if (!done.ok) {
      const good = done.goodBytes > 0 ? out.result.dataIn?.subarray(0, done.goodBytes) : undefined;
      return good
        ? { ok: false, error: done.error, data: Buffer.from(good) }
        : { ok: false, error: done.error };
    }
    const data = out.result.dataIn ?? Buffer.alloc(bytes);
    if (!dix) return { ok: true, data };
    const prot = out.result.protIn ?? Buffer.alloc((bytes / PI_INTERVAL) * PI_TUPLE_SIZE);
    if (!checks) {
      // bio_integrity_endio(): the block layer verifies the PI it attached (read_verify).
      const err = this.blockLayerVerify(data, prot, sector);
      if (err) return { ok: false, error: err };
    }
    return { ok: true, data, pi: prot };
  }

  async write(sector: number, data: Buffer, pi?: PiBuffer): Promise<IoResult> {
    this.checkOpen();
    if (data.length % 512 !== 0)
      throw new PvblkError('EINVAL', `write of ${data.length} bytes is not whole sectors`);
    const count = data.length / 512;
    const bad = this.prep(sector, count);
    if (bad) return { ok: false, error: bad };
    if (count === 0) return { ok: true };

    const dif = this.difType > 0;
    const dix = this.integrity !== null;
    if (pi && !dix)
      throw new PvblkError('EINVAL', `${this.name} has no integrity profile but the write carried PI`);
    const tupleBytes = (data.length / PI_INTERVAL) * PI_TUPLE_SIZE;
    if (pi && pi.tuples.length !== tupleBytes) {
      throw new PvblkError(
        'EINVAL',
        `write of ${count} sectors needs ${tupleBytes} PI bytes, got ${pi.tuples.length}`,
      );
    }
    const op = protOp(true, dix, dif);
    const checks = pi?.checks;
    const protect = this.protectField(dif, checks);
    const cdb = this.rwCdb(true, sector, count, protect);

    let prot: Buffer | undefined;
    if (pi) prot = pi.tuples;
    else if (op !== 'NORMAL') {
      // bio_integrity_prep()'s generate (DIX), or the HBA inserting PI for a formatted disk.
      prot = Buffer.alloc(tupleBytes);
      generatePi(data, prot, { format: this.hostFormat(), seed: sector });
    }
    const hba = hbaChecks(op, dix, this.hostType(), checks);
    // the drive checks the same bytes again at once: it reads the guards computed here
    const guards = prot && hba.guard ? new ComputedGuards(data, this.guardKind, PI_INTERVAL) : undefined;
    // valid until the drive's check, which follows without a turn of the event loop; should one ever
    // come between (an await before it), this runs first and the drive computes its own
    if (guards) queueMicrotask(() => guards.forget());
    const failed = prot ? this.hbaVerify(data, prot, sector, hba, guards) : null;
    const out: Outcome = failed
      ? { result: this.hbaFailure(failed, sector), hostByte: 'DID_ABORT', timedOut: false, starved: false }
      : await this.execute({ cdb, dataOut: data, protOut: op === 'NORMAL' ? undefined : prot, guards });
    const done = this.complete(cdb, sector, data.length, out, true);
    return done.ok ? { ok: true } : { ok: false, error: done.error };
  }

  async flush(): Promise<IoResult> {
    this.checkOpen();
    // Without a write cache sd registers no flush support and the block layer completes flushes
    // without a command.
    if (!this.writeCache) return { ok: true };
    const cdb = encodeSynchronizeCache10();
    const out = await this.execute({ cdb });
    // REQ_TYPE_BLOCK_PC: no sense printing and no end_request line for a failed flush.
    const done = this.complete(cdb, 0, 0, out, false);
    return done.ok ? { ok: true } : { ok: false, error: done.error };
  }

  async discardRange(sector: number, count: number, secure: boolean): Promise<IoResult> {
    this.checkOpen();
    if (!this.discardMode || secure) {
      // sd never sets QUEUE_FLAG_SECDISCARD; without LBP the queue has no discard at all.
      return { ok: false, error: { kind: 'notsupp', sector, detail: secure ? 'secure discard' : 'discard' } };
    }
    const bad = this.prep(sector, count);
    if (bad) return { ok: false, error: bad };
    const perBlock = this.logicalBlockSize / 512;
    let lba = sector / perBlock;
    let blocks = count / perBlock;
    // max_discard_sectors: scsi_debug's write_same_length of 0xFFFF blocks per command.
    while (blocks > 0) {
      const n = Math.min(blocks, 0xffff);
      let cmd: ScsiCommand;
      if (this.discardMode === 'ws16') {
        // sd_setup_discard_cmnd(): the payload is one zeroed logical block.
        cmd = { cdb: encodeWriteSame16(lba, n, true), dataOut: Buffer.alloc(this.logicalBlockSize) };
      } else {
        const u = encodeUnmap([{ lba, blocks: n }]);
        cmd = { cdb: u.cdb, dataOut: u.params };
      }
      const out = await this.execute(cmd);
      const done = this.complete(cmd.cdb, lba * perBlock, n * this.logicalBlockSize, out, true);
      if (!done.ok) return { ok: false, error: done.error };
      lba += n;
      blocks -= n;
    }
    return { ok: true };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.target.store.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new PvblkError('EBADF', `${this.name} is closed`);
  }

  /** sd_prep_fn()'s checks: beyond capacity is killed quietly; misalignment is logged first. */
  private prep(sector: number, count: number): IoError | null {
    if (!Number.isSafeInteger(sector) || !Number.isSafeInteger(count) || sector < 0 || count < 0) {
      throw new PvblkError('EINVAL', `bad request range (sector ${sector}, count ${count})`);
    }
    if (sector + count > this.sectors) {
      return { kind: 'range', sector, detail: `beyond ${this.sectors} sectors` };
    }
    const perBlock = this.logicalBlockSize / 512;
    if (sector % perBlock !== 0 || count % perBlock !== 0) {
      this.log.printk(KERN_ERR, `${this.prefix} Bad block number requested`);
      return { kind: 'range', sector, detail: `not aligned to ${this.logicalBlockSize}-byte blocks` };
    }
    return null;
  }

  /** RDPROTECT/WRPROTECT: 001 when the host is DIF-capable for the disk, 011 if the caller asks for no checks. */
  private protectField(dif: boolean, checks: PiBuffer['checks'] | undefined): number {
    if (!dif) return 0;
    return checks && !checks.guard && !checks.ref ? PROTECT_NOCHECK : PROTECT_CHECK;
  }

  private rwCdb(write: boolean, sector: number, count: number, protect: number): Buffer {
    const perBlock = this.logicalBlockSize / 512;
    const lba = sector / perBlock;
    const blocks = count / perBlock;
    const size = chooseRwCdbSize({
      lba,
      blocks,
      protect,
      protectionType: this.difType,
      capacityBlocks: this.sectors / perBlock,
    });
    // Type 2's expected initial reference tag, in protection intervals like every ref tag here.
    return encodeRw({ write, size, lba, blocks, protect, expectedRef: sector % 0x100000000 });
  }

  /** The type the host generates and checks: the disk's, or Type 1 for DIX on an unformatted disk. */
  private hostType(): 1 | 2 | 3 {
    return this.difType === 0 ? 1 : this.difType;
  }

  private hostFormat(): PiFormat {
    return { type: this.hostType(), guard: this.guardKind, interval: PI_INTERVAL };
  }

  /** The HBA's checks of PI crossing it; returns the failing check or null. */
  private hbaVerify(
    data: Buffer | undefined,
    prot: Buffer | undefined,
    sector: number,
    hba: { guard: boolean; ref: boolean },
    record?: ComputedGuards,
  ): { check: PiCheck; interval: number } | null {
    if (!data || !prot || (!hba.guard && !hba.ref)) return null;
    const err = verifyPi(data, prot, {
      format: this.hostFormat(),
      seed: sector,
      checks: { guard: hba.guard, ref: hba.ref, app: false },
      record,
    });
    return err ? { check: err.check, interval: err.interval } : null;
  }

  /** What an HBA reports for a PI error it detected: ILLEGAL REQUEST / 0x10 with DID_ABORT. */
  private hbaFailure(failed: { check: PiCheck; interval: number }, sector: number): ScsiResult {
    const ascq = failed.check === 'guard' ? 1 : failed.check === 'app' ? 2 : 3;
    return {
      failedSector: sector + failed.interval,
      status: 'CHECK_CONDITION',
      hostByte: 'DID_ABORT',
      sense: buildSense({
        key: ILLEGAL_REQUEST,
        asc: ASC_PI_ERROR,
        ascq,
        descriptor: this.target.params.dsense === 1,
      }),
      resid: 0,
    };
  }

  /**
   * 3.x sd_dif_type{1,3}_verify() on read completion: per interval, skip escapes, then (Types 1/2)
   * the reference tag, then the guard. Unlike 3.x, which stopped verifying the rest of the bio at
   * the first escape, later intervals are still checked (as t10-pi.c does since 4.x).
   */
  private blockLayerVerify(data: Buffer, prot: Buffer, sector: number): IoError | null {
    const bad = verifyPi(data, prot, {
      format: this.hostFormat(),
      seed: sector,
      checks: { guard: true, ref: true, app: false },
      order: ['ref', 'guard'],
    });
    if (!bad) return null;
    const seed = sector + bad.interval;
    const h = (v: number) => v.toString(16).padStart(4, '0');
    this.log.printk(
      KERN_ERR,
      bad.check === 'ref'
        ? `${this.name}: ref tag error on sector ${seed} (rcvd ${bad.received})`
        : `${this.name}: guard tag error on sector ${seed} (rcvd ${h(bad.received)}, data ${h(bad.expected)})`,
    );
    return {
      kind: 'protection',
      check: bad.check,
      sector: seed,
      badSector: seed,
      detectedBy: 'host',
      detail: `${bad.check} tag error`,
    };
  }

  /**
   * The error handler's message about the `issued`-th command (scmd_printk). Its address is worked
   * out only when something is printed: a BigInt sum and a hex string on every command cost ≈ 1 µs.
   */
  private eh(issued: number, level: typeof KERN_INFO | typeof KERN_WARNING, text: string): void {
    if (this.ehLogging >= EH_LOG_ABORTS)
      this.log.printk(level, `${this.prefix} scmd ${scmdAddress(issued)} ${text}`);
  }

  /** Dispatch, the error handler and scsi_decide_disposition(): run the command until it is final. */
  private async execute(cmd: ScsiCommand, hba?: (r: ScsiResult) => ScsiResult): Promise<Outcome> {
    let retries = 0;
    let requeues = 0;
    const issued = this.issued++;
    for (;;) {
      let r = await this.target.queueCommand(cmd);
      if (hba) r = hba(r);
      switch (r.status) {
        case 'GOOD':
          return { result: r, hostByte: r.hostByte, timedOut: false, starved: false };
        case 'TIMEOUT':
          // scsi_times_out() → scsi_abort_command(); scmd_eh_abort_handler() runs HZ/100 later
          await sleep(this.timeoutMs);
          this.eh(issued, KERN_INFO, 'abort scheduled');
          await sleep(ABORT_DELAY_MS);
          this.eh(issued, KERN_INFO, `aborting command ${scmdAddress(issued)}`);
          this.target.abort();
          if (++retries <= SD_MAX_RETRIES) {
            this.eh(issued, KERN_WARNING, 'retry aborted command');
            continue;
          }
          this.eh(issued, KERN_WARNING, 'finish aborted command');
          return { result: r, hostByte: 'DID_TIME_OUT', timedOut: true, starved: false };
        case 'HOST_BUSY':
        case 'TASK_SET_FULL':
          if (++requeues > MAX_REQUEUES)
            return { result: r, hostByte: 'DID_OK', timedOut: false, starved: true };
          await sleep(REQUEUE_DELAY_MS);
          continue;
        case 'CHECK_CONDITION': {
          // A non-OK host byte (DID_ABORT) returns SUCCESS before the sense is looked at.
          if (r.hostByte !== 'DID_OK')
            return { result: r, hostByte: r.hostByte, timedOut: false, starved: false };
          const disposition = checkSense(decodeSense(r.sense));
          if (disposition === 'retry') {
            if (++retries <= SD_MAX_RETRIES) continue;
            return { result: r, hostByte: 'DID_OK', timedOut: false, starved: false };
          }
          const hostByte: HostByte = disposition === 'target_error' ? 'DID_TARGET_FAILURE' : 'DID_OK';
          return { result: r, hostByte, timedOut: false, starved: false };
        }
      }
    }
  }

  /**
   * sd_done() and scsi_io_completion(): how many bytes completed, what is printed, and the error.
   * `fs` is false for BLOCK_PC requests (the flush), which print nothing.
   */
  private complete(
    cdb: Buffer,
    sector: number,
    bytes: number,
    out: Outcome,
    fs: boolean,
  ): { ok: true } | { ok: false; error: IoError; goodBytes: number } {
    const r = out.result;
    const sense = r.status === 'CHECK_CONDITION' ? r.sense : undefined;
    const h = decodeSense(sense);

    if (r.status === 'GOOD') return { ok: true };
    if (h && h.key === RECOVERED_ERROR && !h.deferred) {
      // Recovered errors are reported and then treated as success.
      if (fs) this.printSense(sense!, h);
      return { ok: true };
    }

    let goodBytes = 0;
    if (fs && h) {
      if (h.key === MEDIUM_ERROR || h.key === HARDWARE_ERROR)
        goodBytes = this.completedBytes(sense!, sector, bytes, r.resid);
      else if ((h.key === ABORTED_COMMAND || h.key === ILLEGAL_REQUEST) && h.asc === ASC_PI_ERROR) {
        goodBytes = this.completedBytes(sense!, sector, bytes, r.resid);
      }
    }

    // __scsi_error_from_host_byte(), then the sense-specific overrides of scsi_io_completion().
    let errno: Errno = out.hostByte === 'DID_TARGET_FAILURE' ? 'EREMOTEIO' : 'EIO';
    const printedHost: HostByte = out.hostByte === 'DID_TARGET_FAILURE' ? 'DID_OK' : out.hostByte;
    let description: string | null = null;
    const discard = cdb[0] === UNMAP || cdb[0] === WRITE_SAME_16;
    if (h && !h.deferred) {
      if (h.key === ILLEGAL_REQUEST) {
        if (h.asc === ASC_PI_ERROR) {
          description = 'Host Data Integrity Failure';
          errno = 'EILSEQ';
        } else if ((h.asc === 0x20 || h.asc === 0x24) && discard) {
          description = 'Discard failure';
          errno = 'EREMOTEIO';
        }
      } else if (h.key === ABORTED_COMMAND) {
        if (h.asc === ASC_PI_ERROR) {
          description = 'Target Data Integrity Failure';
          errno = 'EILSEQ';
        }
      } else if (h.key !== UNIT_ATTENTION && h.key !== NOT_READY) {
        description = 'Unhandled sense code';
      }
    } else if (!h) {
      description = 'Unhandled error code';
    }

    const failSector = sector + goodBytes / 512;
    if (fs && !out.starved) {
      if (this.logResult) {
        if (description) this.log.printk(KERN_INFO, `${this.prefix} ${description}`);
        this.log.printk(KERN_INFO, this.prefix);
        // the aborted command carries DID_TIME_OUT; DRIVER_TIMEOUT is only set on a result still 0
        const driver = sense ? 'DRIVER_SENSE' : 'DRIVER_OK';
        this.log.printk(KERN_INFO, `Result: hostbyte=${printedHost} driverbyte=${driver}`);
      }
      if (h) this.printSense(sense!, h);
      this.log.printk(KERN_ERR, `${this.prefix} CDB:`);
      this.log.printk(KERN_ERR, formatCdb(cdb));
      this.log.printk(
        KERN_ERR,
        `end_request: ${errorType(errno)} error, dev ${this.name}, sector ${failSector}`,
      );
    }
    const error = classify(out, h, sense, failSector, discard);
    const info = senseInfo(sense);
    if (r.failedSector !== undefined) error.badSector = r.failedSector;
    else if (info !== null && h?.key === MEDIUM_ERROR) error.badSector = info * (this.logicalBlockSize / 512);
    return { ok: false, error, goodBytes };
  }

  /** sd_completed_bytes() with the transferred-bytes clamp; `bytes` is the request in bytes. */
  private completedBytes(sense: Buffer, sector: number, bytes: number, resid: number): number {
    const bad = senseInfo(sense);
    if (bad === null) return 0;
    const ss = this.logicalBlockSize;
    if (bytes <= ss) return 0;
    const startLba = sector / (ss / 512);
    const endLba = startLba + bytes / ss;
    if (bad < startLba || bad >= endLba) return 0;
    const transferred = bytes - resid;
    return Math.max(0, Math.min((bad - startLba) * ss, transferred));
  }

  /**
   * scsi_print_sense() in the seed's form: the sense key line, the extras (`Info fld=…`), the
   * device prefix on its own line, then `Add. Sense: …`. With `logResult` the prefix record that
   * 3.x prints before the sense key line is included too, at KERN_INFO.
   */
  private printSense(sense: Buffer, h: SenseHeader): void {
    if (this.logResult) this.log.printk(KERN_INFO, this.prefix);
    this.log.printk(KERN_ERR, formatSenseKeyLine(h));
    for (const line of formatSenseExtras(sense, h)) this.log.printk(KERN_ERR, line);
    this.log.printk(KERN_ERR, this.prefix);
    this.log.printk(KERN_ERR, formatAddSense(h.asc, h.ascq));
  }
}

/** scsi_check_sense() of 3.x, reduced to what decides retry vs. final and TARGET_ERROR. */
function checkSense(h: SenseHeader | null): 'success' | 'retry' | 'target_error' {
  if (!h) return 'success';
  if (h.deferred) return 'retry';
  switch (h.key) {
    case NO_SENSE:
    case RECOVERED_ERROR:
      return 'success';
    case ABORTED_COMMAND:
      return h.asc === ASC_PI_ERROR ? 'success' : 'retry';
    case NOT_READY:
    case UNIT_ATTENTION:
      return 'retry';
    case MEDIUM_ERROR:
      return h.asc === 0x11 || h.asc === 0x13 || h.asc === 0x14 ? 'target_error' : 'retry';
    case HARDWARE_ERROR:
    case DATA_PROTECT:
      return 'target_error';
    case ILLEGAL_REQUEST:
      return h.asc === 0x20 || h.asc === 0x21 || h.asc === 0x24 || h.asc === 0x26
        ? 'target_error'
        : 'success';
    default:
      return 'success';
  }
}

/** blk_update_request()'s error_type. */
function errorType(errno: Errno): string {
  switch (errno) {
    case 'ENOLINK':
      return 'recoverable transport';
    case 'EREMOTEIO':
      return 'critical target';
    case 'EBADE':
      return 'critical nexus';
    default:
      return 'I/O';
  }
}

/** The interface's view of a failed command. */
function classify(
  out: Outcome,
  h: SenseHeader | null,
  sense: Buffer | undefined,
  sector: number,
  discard: boolean,
): IoError {
  if (out.timedOut) return { kind: 'timeout', sector, detail: 'command timed out, retries exhausted' };
  if (out.starved) return { kind: 'transport', sector, detail: `device busy after ${MAX_REQUEUES} requeues` };
  if (!h) return { kind: 'target', sector, detail: `host byte ${out.hostByte}` };
  const keyName = senseKeyName(h.key) ?? `sense key 0x${h.key.toString(16)}`;
  const asc = ascText(h.asc, h.ascq) ?? formatAddSense(h.asc, h.ascq);
  const info = senseInfo(sense);
  const detail = `${keyName}: ${asc}${info !== null ? ` (Info fld=0x${info.toString(16)})` : ''}`;
  let kind: IoErrorKind = 'target';
  if (h.key === MEDIUM_ERROR) kind = 'medium';
  else if ((h.key === ABORTED_COMMAND || h.key === ILLEGAL_REQUEST) && h.asc === ASC_PI_ERROR) {
    const check: PiCheck = h.ascq === 2 ? 'app' : h.ascq === 3 ? 'ref' : 'guard';
    // sd_done(): "ABORTED_COMMAND: DIF: Target detected corruption", "ILLEGAL_REQUEST: DIX: Host detected".
    return {
      kind: 'protection',
      check,
      sector,
      detectedBy: h.key === ILLEGAL_REQUEST ? 'host' : 'device',
      detail,
    };
  } else if (h.key === ABORTED_COMMAND) kind = 'transport';
  else if (h.key === ILLEGAL_REQUEST && h.asc === 0x21) kind = 'range';
  else if (h.key === ILLEGAL_REQUEST && (h.asc === 0x20 || h.asc === 0x24) && discard) kind = 'notsupp';
  else if (h.key === DATA_PROTECT) kind = 'readonly';
  return { kind, sector, detail };
}

/** A kernel-looking address for a command (a made-up slab object: stable for the command's retries). */
function scmdAddress(n: number): string {
  return (0xffff880037a3c000n + BigInt(n % 64) * 0x1c0n).toString(16);
}

function padTo(b: Buffer | undefined, len: number): Buffer {
  if (b && b.length === len) return b;
  const out = Buffer.alloc(len);
  if (b) b.copy(out, 0, 0, Math.min(len, b.length));
  return out;
}

export interface OpenScsiDebugDiskOptions {
  /** Directory for the store file; omit for an in-memory disk. */
  dataDir?: string;
  /** modprobe-style string or parsed parameters. */
  params: string | ScsiDebugParams;
  log: KernelLog;
  timeoutMs?: number;
  logResult?: boolean;
  ehLogging?: number;
}

/**
 * `modprobe scsi_debug …` and sd's probe in one: open (or format) the store, bring up the target
 * and attach `sd`. The disk owns the store and closes it.
 */
export async function openScsiDebugDisk(opts: OpenScsiDebugDiskOptions): Promise<SdDisk> {
  const params = typeof opts.params === 'string' ? parseScsiDebugParams(opts.params) : opts.params;
  const format = storeFormatFor(params);
  const store: BlockStore = opts.dataDir
    ? await FileStore.open({ dir: opts.dataDir, name: params.host_name, format, log: opts.log })
    : new MemoryStore(format);
  try {
    return new SdDisk({
      params,
      store,
      log: opts.log,
      timeoutMs: opts.timeoutMs,
      logResult: opts.logResult,
      ehLogging: opts.ehLogging,
    });
  } catch (e) {
    await store.close();
    throw e;
  }
}
