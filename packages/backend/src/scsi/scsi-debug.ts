/**
 * The disk: a model of Linux's scsi_debug as the target behind the host's `sd`. It answers READ and
 * WRITE (10/16/32), SYNCHRONIZE CACHE(10), WRITE SAME(16) (with UNMAP when lbpws=1) and UNMAP (when
 * lbpu=1); every other opcode gets ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE.
 *
 * Which version it follows, and where it departs:
 *  - Fault injection is 1.82's (the 3.x driver of the seed): `every_nth` counts every command, and
 *    when it fires only the first of TIMEOUT, MAC_TIMEOUT, RECOVERED_ERR, TRANSPORT_ERR, DIF_ERR,
 *    DIX_ERR set in `opts` is armed; the error ones are applied only if the command otherwise
 *    succeeded, reads take all four, writes all but TRANSPORT_ERR. Bits that 1.82 lacks
 *    (SHORT_TRANSFER, HOST_BUSY, CMD_ABORT, RARE_TSF) continue that chain in this order.
 *  - MEDIUM_ERR is 0191's: the range is [medium_error_start, +medium_error_count). Like every
 *    version, the Information field is `lba < 0x1234 ? 0x1234 : lba` — the constant, not
 *    medium_error_start — so a moved range still reports 0x1234 for reads that start below it.
 *  - PI placement is 0191's (after Martin Petersen's 2021 RDPROTECT/WRPROTECT work): a failure the
 *    target finds is ABORTED COMMAND / 0x10 with plain CHECK CONDITION, and RD/WRPROTECT=3 skips the
 *    check. Unlike scsi_debug, which is HBA and target at once and only touches PI when the host
 *    passes a protection SGL (dix=1), this target is a PI-formatted drive: with dif>0 it checks
 *    whenever RD/WRPROTECT asks, and the PI arrives in `protOut` either from DIX or from the HBA
 *    model in sd.ts, which also raises the ILLEGAL REQUEST / DID_ABORT errors scsi_debug gives for
 *    checks the HBA was asked to make. Type 2 reads RDPROTECT of a 32-byte CDB from byte 10
 *    (scsi_debug reads byte 1 there, which is the CONTROL byte).
 *  - The application tag is never checked, and on reads an app tag of 0xFFFF skips the interval for
 *    every type, both as in scsi_debug. Writes are checked without escapes, also as scsi_debug.
 *  - Reference tags count 512-byte protection intervals: on a 512-byte disk that is the LBA, as in
 *    Linux; on larger blocks each block has blockSize/512 tuples numbered from LBA × (blockSize/512).
 *    Type 2's expected initial reference tag (CDB bytes 20–23) is in the same unit.
 *  - No UNIT ATTENTION after "power on": sd's probe consumes it in Linux before any I/O.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  KERN_ERR,
  KERN_INFO,
  PI_TUPLE_SIZE,
  PvblkError,
  bufferView,
  verifyPi,
  type ComputedGuards,
  type KernelLog,
} from '@pvblk/shared';
import {
  READ_32,
  UNMAP,
  VARIABLE_LENGTH_CMD,
  WRITE_32,
  decodeCdb,
  decodeUnmapParams,
  READ_10,
  READ_16,
  SYNCHRONIZE_CACHE,
  WRITE_10,
  WRITE_16,
  WRITE_SAME_16,
  type RwCdb,
} from './cdb.ts';
import {
  OPT_CMD_ABORT,
  OPT_DIF_ERR,
  OPT_DIX_ERR,
  OPT_HOST_BUSY,
  OPT_MAC_TIMEOUT,
  OPT_MEDIUM_ERR,
  OPT_MEDIUM_ERR_ADDR,
  OPT_NOISE,
  OPT_RARE_TSF,
  OPT_RECOVERED_ERR,
  OPT_SHORT_TRANSFER,
  OPT_TIMEOUT,
  OPT_TRANSPORT_ERR,
  RUNTIME_WRITABLE_PARAMS,
  SCSI_DEBUG_PARAM_NAMES,
  applyRuntimeParam,
  dixEnabled,
  storeBlocks,
  capacityBlocks,
  validateScsiDebugParams,
  type ScsiDebugParams,
} from './params.ts';
import {
  ABORTED_COMMAND,
  ASC_INVALID_FIELD_IN_CDB,
  ASC_INVALID_FIELD_IN_PARAM_LIST,
  ASC_INVALID_OPCODE,
  ASC_LBA_OUT_OF_RANGE,
  ASC_PI_ERROR,
  ASC_THRESHOLD_EXCEEDED,
  ASC_TRANSPORT_PROBLEM,
  ASC_UNRECOVERED_READ_ERR,
  ASCQ_ACK_NAK_TO,
  ILLEGAL_REQUEST,
  MEDIUM_ERROR,
  RECOVERED_ERROR,
  buildSense,
} from './sense.ts';
import { PI_INTERVAL, type BlockStore, type StoreFormat, type StoreRead } from './store.ts';
import { delayNs } from './delay.ts';

/**
 * How the command ended. GOOD, CHECK_CONDITION and TASK_SET_FULL are SAM status codes; HOST_BUSY
 * is queuecommand() refusing the command (SCSI_MLQUEUE_HOST_BUSY, the midlayer requeues it) and
 * TIMEOUT means no completion will ever come — the initiator's timer has to fire.
 */
export type ScsiStatus = 'GOOD' | 'CHECK_CONDITION' | 'TASK_SET_FULL' | 'HOST_BUSY' | 'TIMEOUT';

/** Host byte names in value order (hostbyte_table[] of constants.c). */
export const HOST_BYTES = [
  'DID_OK',
  'DID_NO_CONNECT',
  'DID_BUS_BUSY',
  'DID_TIME_OUT',
  'DID_BAD_TARGET',
  'DID_ABORT',
  'DID_PARITY',
  'DID_ERROR',
  'DID_RESET',
  'DID_BAD_INTR',
  'DID_PASSTHROUGH',
  'DID_SOFT_ERROR',
  'DID_IMM_RETRY',
  'DID_REQUEUE',
  'DID_TRANSPORT_DISRUPTED',
  'DID_TRANSPORT_FAILFAST',
  'DID_TARGET_FAILURE',
  'DID_NEXUS_FAILURE',
] as const;
export type HostByte = (typeof HOST_BYTES)[number];

export interface ScsiCommand {
  cdb: Buffer;
  /** Data for WRITE / WRITE SAME, or the UNMAP parameter list. */
  dataOut?: Buffer;
  /** PI tuples accompanying `dataOut`: from the host via DIX, or inserted by the HBA. */
  protOut?: Buffer;
  /** The initiator has a protection buffer: return the blocks' PI with the data. */
  protIn?: boolean;
  /**
   * Guards the HBA computed over `dataOut` just before issuing the command (not on the wire): the
   * target's own check reads them instead of computing them again. Taken when the command is
   * queued, so a retry, which may find other bytes in the guest's page, computes its own.
   */
  guards?: ComputedGuards;
}

export interface ScsiResult {
  status: ScsiStatus;
  hostByte: HostByte;
  sense?: Buffer;
  dataIn?: Buffer;
  protIn?: Buffer;
  /** Bytes of the data buffer not transferred (scsi_set_resid()). */
  resid: number;
  /**
   * pvblk diagnostic, not on the wire: the 512-byte sector whose PI check failed in the target, which
   * scsi_debug only names in its log line ("GUARD check failed on sector …").
   */
  failedSector?: number;
}

/** The /proc/scsi/scsi_debug counters, plus pvblk's own. */
export interface ScsiDebugStats {
  /** Commands received (pvblk). */
  commands: number;
  /** The every_nth counter (`every_nth=N(curr:M)`). */
  cmndCount: number;
  aborts: number;
  dixReads: number;
  dixWrites: number;
  difErrors: number;
  /** READs failed with MEDIUM ERROR (pvblk). */
  mediumErrors: number;
  /** Commands swallowed by TIMEOUT / MAC_TIMEOUT / CMD_ABORT (pvblk). */
  timeouts: number;
}

/** What the store of a disk with these parameters looks like. */
export function storeFormatFor(p: ScsiDebugParams): StoreFormat {
  // Current scsi_debug allocates the PI store when dix is set; 1.82 when dif is. Either needs it here.
  return { blockSize: p.sector_size, blocks: storeBlocks(p), pi: p.dif > 0 || dixEnabled(p) };
}

type Injection = 'timeout' | 'recovered' | 'transport' | 'dif' | 'dix' | 'short' | 'host_busy' | 'tsf';

/** scsi_medium_access_command() of 3.x scsi_cmnd.h, for MAC_TIMEOUT. */
function isMediumAccess(cdb: Buffer): boolean {
  switch (cdb[0]) {
    case READ_10:
    case READ_16:
    case WRITE_10:
    case WRITE_16:
    case SYNCHRONIZE_CACHE:
    case WRITE_SAME_16:
    case UNMAP:
      return true;
    case VARIABLE_LENGTH_CMD: {
      const sa = cdb.length >= 10 ? cdb.readUInt16BE(8) : -1;
      return sa === READ_32 || sa === WRITE_32;
    }
  }
  return false;
}

/** The first armed bit, in 1.82's order and then the later bits. */
function pickInjection(opts: number, cdb: Buffer): Injection | null {
  if (opts & OPT_TIMEOUT) return 'timeout';
  if (opts & OPT_MAC_TIMEOUT && isMediumAccess(cdb)) return 'timeout';
  if (opts & OPT_RECOVERED_ERR) return 'recovered';
  if (opts & OPT_TRANSPORT_ERR) return 'transport';
  if (opts & OPT_DIF_ERR) return 'dif';
  if (opts & OPT_DIX_ERR) return 'dix';
  if (opts & OPT_SHORT_TRANSFER) return 'short';
  if (opts & OPT_HOST_BUSY) return 'host_busy';
  if (opts & OPT_CMD_ABORT) return 'timeout';
  if (opts & OPT_RARE_TSF) return 'tsf';
  return null;
}

const hex2 = (b: number) => b.toString(16).padStart(2, '0');
const hex4 = (v: number) => `0x${v.toString(16).padStart(4, '0')}`;

export interface ScsiDebugTargetOptions {
  params: ScsiDebugParams;
  store: BlockStore;
  /** The dom0 kernel log for scsi_debug's own messages. */
  log?: KernelLog;
}

export class ScsiDebugTarget {
  readonly store: BlockStore;
  private p: ScsiDebugParams;
  private readonly log: KernelLog | undefined;
  private readonly counters: ScsiDebugStats = {
    commands: 0,
    cmndCount: 0,
    aborts: 0,
    dixReads: 0,
    dixWrites: 0,
    difErrors: 0,
    mediumErrors: 0,
    timeouts: 0,
  };

  constructor(opts: ScsiDebugTargetOptions) {
    this.p = validateScsiDebugParams(opts.params);
    this.store = opts.store;
    this.log = opts.log;
    const want = storeFormatFor(this.p);
    const have = opts.store.format;
    if (have.blockSize !== want.blockSize || have.blocks !== want.blocks || have.pi !== want.pi) {
      throw new PvblkError(
        'EUSAGE',
        `store format ${have.blocks}x${have.blockSize}${have.pi ? '+PI' : ''} does not match the disk parameters (${want.blocks}x${want.blockSize}${want.pi ? '+PI' : ''})`,
      );
    }
    // sdebug_driver_probe(): the host's protection capabilities, always printed.
    const caps: string[] = [];
    if (this.p.dif > 0) caps.push(` DIF${this.p.dif}`);
    if (dixEnabled(this.p)) caps.push(` DIX${this.p.dif}`);
    this.log?.printk(KERN_INFO, `scsi_debug: host protection${caps.join('')}`);
  }

  /** A copy of the parameters in force. */
  get params(): ScsiDebugParams {
    return { ...this.p };
  }

  /** What READ CAPACITY reports (get_sdebug_capacity): virtual_gb when set, else the store's size. */
  get capacityBlocks(): number {
    return capacityBlocks(this.p);
  }

  get blockSize(): number {
    return this.p.sector_size;
  }

  /**
   * Replace the parameters; only the runtime-writable ones may differ. As 1.82's sysfs stores do,
   * writing `opts` or `every_nth` restarts the every_nth count. Takes effect for the next command.
   */
  setParams(next: ScsiDebugParams): void {
    const n = validateScsiDebugParams(next);
    for (const key of SCSI_DEBUG_PARAM_NAMES) {
      if (n[key] !== this.p[key] && !RUNTIME_WRITABLE_PARAMS.includes(key)) {
        throw new PvblkError(
          'EUSAGE',
          `disk parameter "${key}" is fixed while the disk exists (writable at runtime: ${RUNTIME_WRITABLE_PARAMS.join(', ')})`,
        );
      }
    }
    if (n.opts !== this.p.opts || n.every_nth !== this.p.every_nth) this.counters.cmndCount = 0;
    this.p = n;
  }

  /** `echo value > /sys/bus/pseudo/drivers/scsi_debug/<key>`. */
  applyRuntimeParam(key: string, value: string | number): void {
    this.setParams(applyRuntimeParam(this.p, key, value));
  }

  /** eh_abort_handler: scsi_debug_abort() counts and drops the command. */
  abort(): void {
    this.counters.aborts++;
  }

  stats(): ScsiDebugStats {
    return { ...this.counters };
  }

  /** /proc/scsi/scsi_debug/<host> as 1.82 prints it. */
  procInfo(): string {
    const p = this.p;
    const capacity = storeBlocks(p);
    let heads = 8;
    let sectors = 32;
    if (p.dev_size_mb >= 16) heads = 32;
    let cylinders = Math.floor(capacity / (sectors * heads));
    if (cylinders >= 1024) {
      heads = 255;
      sectors = 63;
      cylinders = Math.floor(capacity / (sectors * heads));
    }
    const c = this.counters;
    return (
      `scsi_debug adapter driver, version 1.82 [20100324]\n` +
      `num_tgts=1, shared (ram) size=${p.dev_size_mb} MB, opts=0x${(p.opts >>> 0).toString(16)}, every_nth=${p.every_nth}(curr:${c.cmndCount})\n` +
      `delay=${p.delay}, max_luns=1, scsi_level=5\n` +
      `sector_size=${p.sector_size} bytes, cylinders=${cylinders}, heads=${heads}, sectors=${sectors}\n` +
      `number of aborts=${c.aborts}, device_reset=0, bus_resets=0, host_resets=0\n` +
      `dix_reads=${c.dixReads} dix_writes=${c.dixWrites} dif_errors=${c.difErrors}\n`
    );
  }

  /** scsi_debug_queuecommand(). Never rejects for a guest-visible failure: that is in the result. */
  async queueCommand(cmd: ScsiCommand): Promise<ScsiResult> {
    // Parameters are read once per command, so a runtime change applies from the next one.
    const p = this.p;
    const cdb = cmd.cdb;
    const guards = cmd.guards;
    cmd.guards = undefined;
    this.counters.commands++;
    if (p.opts & OPT_NOISE) {
      this.log?.printk(KERN_INFO, `scsi_debug: cmd ${Array.from(cdb, hex2).join(' ')}`);
    }

    let inj: Injection | null = null;
    if (p.every_nth !== 0 && ++this.counters.cmndCount >= Math.abs(p.every_nth)) {
      this.counters.cmndCount = 0;
      // A negative every_nth fires once after |n| commands, then on every command.
      if (p.every_nth < -1) this.p = { ...this.p, every_nth: -1 };
      inj = pickInjection(p.opts, cdb);
    }
    if (inj === 'timeout') {
      this.counters.timeouts++;
      return { status: 'TIMEOUT', hostByte: 'DID_OK', resid: 0 };
    }
    if (inj === 'host_busy') return { status: 'HOST_BUSY', hostByte: 'DID_OK', resid: 0 };
    if (inj === 'tsf') return { status: 'TASK_SET_FULL', hostByte: 'DID_OK', resid: 0 };

    const d = decodeCdb(cdb);
    let res: ScsiResult;
    let delayed = true;
    switch (d.kind) {
      case 'rw':
        if (d.size === 32 && p.dif !== 2) {
          // 1.82: VARIABLE LENGTH is only understood on a Type 2 disk.
          res = this.check(p, ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB, 0);
          break;
        }
        res = d.write ? await this.respWrite(p, d, cmd, inj, guards) : await this.respRead(p, d, cmd, inj);
        break;
      case 'sync':
        delayed = false;
        await this.store.flush();
        res = good();
        break;
      case 'write_same':
        res = await this.respWriteSame(p, d, cmd);
        break;
      case 'unmap':
        res = await this.respUnmap(p, cmd);
        break;
      case 'unsupported':
        res = this.check(
          p,
          ILLEGAL_REQUEST,
          d.opcode === VARIABLE_LENGTH_CMD ? ASC_INVALID_FIELD_IN_CDB : ASC_INVALID_OPCODE,
          0,
        );
        break;
    }
    this.noiseResult(p, res);
    // ndelay: an hrtimer, kept to the microsecond; delay: jiffies, as coarse as the timer wheel
    if (delayed && p.ndelay > 0) await delayNs(p.ndelay);
    else if (delayed && p.delay > 0) await sleep(p.delay);
    return res;
  }

  private check(
    p: ScsiDebugParams,
    key: number,
    asc: number,
    ascq: number,
    host: HostByte = 'DID_OK',
  ): ScsiResult {
    this.noiseSense(p, key, asc, ascq);
    return {
      status: 'CHECK_CONDITION',
      hostByte: host,
      sense: buildSense({ key, asc, ascq, descriptor: p.dsense === 1 }),
      resid: 0,
    };
  }

  /** mk_sense_buffer() with opts NOISE prints every sense it builds. */
  private noiseSense(p: ScsiDebugParams, key: number, asc: number, ascq: number): void {
    if (p.opts & OPT_NOISE) {
      this.log?.printk(
        KERN_INFO,
        `scsi_debug:    [sense_key,asc,ascq]: [0x${key.toString(16)},0x${asc.toString(16)},0x${ascq.toString(16)}]`,
      );
    }
  }

  /**
   * schedule_resp() with opts NOISE reports a non-zero result as the 1.82 result word:
   * driver byte DRIVER_SENSE (0x08) with CHECK CONDITION, host byte, status byte.
   */
  private noiseResult(p: ScsiDebugParams, r: ScsiResult): void {
    if (!(p.opts & OPT_NOISE) || r.status !== 'CHECK_CONDITION') return;
    const word = ((0x08 << 24) | (HOST_BYTES.indexOf(r.hostByte) << 16) | 0x02) >>> 0;
    const hctl = p.hctl.split(':').join(' ');
    this.log?.printk(KERN_INFO, `scsi_debug:    <${hctl}> non-zero result=0x${word.toString(16)}`);
  }

  /** The 1.82 switch's checks shared by READ and WRITE before the response function runs. */
  private protectPrecheck(p: ScsiDebugParams, d: RwCdb): ScsiResult | null {
    if (d.size !== 32 && p.dif === 2 && d.protect !== 0) {
      // Type 2 requires the 32-byte CDBs; a protected 10/16-byte command is an invalid opcode.
      return this.check(p, ILLEGAL_REQUEST, ASC_INVALID_OPCODE, 0);
    }
    if ((p.dif === 1 || p.dif === 3 || (p.dif === 2 && d.size === 32)) && d.protect === 0) {
      this.log?.printk(KERN_ERR, 'Unprotected RD/WR to DIF device');
    }
    return null;
  }

  /** check_device_access_params(). */
  private accessCheck(p: ScsiDebugParams, lba: number, blocks: number): ScsiResult | null {
    const capacity = capacityBlocks(p);
    if (lba + blocks > capacity) return this.check(p, ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE, 0);
    if (blocks > capacity) return this.check(p, ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB, 0);
    return null;
  }

  private async respRead(
    p: ScsiDebugParams,
    d: RwCdb,
    cmd: ScsiCommand,
    inj: Injection | null,
  ): Promise<ScsiResult> {
    const pre = this.protectPrecheck(p, d);
    if (pre) return pre;
    const ss = p.sector_size;
    const bufflen = d.blocks * ss;
    // SHORT_TRANSFER (later versions): transfer half and leave the rest as residue.
    const num = inj === 'short' ? Math.floor(d.blocks / 2) : d.blocks;
    const bad = this.accessCheck(p, d.lba, num);
    if (bad) return bad;

    if (
      p.opts & OPT_MEDIUM_ERR &&
      d.lba <= p.medium_error_start + p.medium_error_count - 1 &&
      d.lba + num > p.medium_error_start
    ) {
      this.counters.mediumErrors++;
      this.noiseSense(p, MEDIUM_ERROR, ASC_UNRECOVERED_READ_ERR, 0);
      const info = d.lba < OPT_MEDIUM_ERR_ADDR ? OPT_MEDIUM_ERR_ADDR : d.lba % 0x100000000;
      return {
        status: 'CHECK_CONDITION',
        hostByte: 'DID_OK',
        sense: buildSense({
          key: MEDIUM_ERROR,
          asc: ASC_UNRECOVERED_READ_ERR,
          ascq: 0,
          descriptor: p.dsense === 1,
          info: p.dsense === 1 ? undefined : info,
        }),
        // scsi_set_resid(SCpnt, scsi_bufflen(SCpnt)): nothing transferred.
        resid: bufflen,
      };
    }

    const { data, pi } = await this.storeRead(d.lba, num);
    if (pi && p.dif > 0 && d.protect !== 0 && d.protect !== 3) {
      const bad = this.verify(p, d, data, pi, false);
      if (bad) return { ...this.check(p, ABORTED_COMMAND, ASC_PI_ERROR, bad.ascq), failedSector: bad.sector };
    }
    const res: ScsiResult = {
      status: 'GOOD',
      hostByte: 'DID_OK',
      dataIn: data,
      resid: bufflen - data.length,
    };
    if (cmd.protIn && pi) {
      res.protIn = pi;
      this.counters.dixReads++;
    }
    // 1.82 applies the armed error only to a read that succeeded; the data has been transferred.
    const withSense = (key: number, asc: number, ascq: number, host: HostByte = 'DID_OK'): ScsiResult => ({
      ...res,
      ...this.check(p, key, asc, ascq, host),
      dataIn: res.dataIn,
      protIn: res.protIn,
      resid: res.resid,
    });
    if (inj === 'recovered') return withSense(RECOVERED_ERROR, ASC_THRESHOLD_EXCEEDED, 0);
    if (inj === 'transport') return withSense(ABORTED_COMMAND, ASC_TRANSPORT_PROBLEM, ASCQ_ACK_NAK_TO);
    if (inj === 'dif') return withSense(ABORTED_COMMAND, ASC_PI_ERROR, 1, 'DID_ABORT');
    if (inj === 'dix') return withSense(ILLEGAL_REQUEST, ASC_PI_ERROR, 1, 'DID_ABORT');
    return res;
  }

  private async respWrite(
    p: ScsiDebugParams,
    d: RwCdb,
    cmd: ScsiCommand,
    inj: Injection | null,
    guards: ComputedGuards | undefined,
  ): Promise<ScsiResult> {
    const pre = this.protectPrecheck(p, d);
    if (pre) return pre;
    const ss = p.sector_size;
    const bad = this.accessCheck(p, d.lba, d.blocks);
    if (bad) return bad;
    const data = cmd.dataOut ?? Buffer.alloc(0);
    if (data.length !== d.blocks * ss) {
      throw new PvblkError('EINVAL', `WRITE of ${d.blocks} blocks came with ${data.length} data bytes`);
    }
    let pi: Buffer | undefined;
    if (cmd.protOut) {
      const want = (data.length / PI_INTERVAL) * PI_TUPLE_SIZE;
      if (!this.store.format.pi || cmd.protOut.length !== want) {
        throw new PvblkError(
          'EINVAL',
          `WRITE protection buffer of ${cmd.protOut.length} bytes (disk wants ${this.store.format.pi ? want : 0})`,
        );
      }
      pi = cmd.protOut;
      if (p.dif > 0 && d.protect !== 0 && d.protect !== 3) {
        const bad = this.verify(p, d, data, pi, true, guards);
        if (bad)
          return { ...this.check(p, ABORTED_COMMAND, ASC_PI_ERROR, bad.ascq), failedSector: bad.sector };
      }
    }
    await this.storeWrite(d.lba, data, pi);
    if (pi) this.counters.dixWrites++;
    if (inj === 'recovered') return this.check(p, RECOVERED_ERROR, ASC_THRESHOLD_EXCEEDED, 0);
    if (inj === 'dif') return this.check(p, ABORTED_COMMAND, ASC_PI_ERROR, 1, 'DID_ABORT');
    if (inj === 'dix') return this.check(p, ILLEGAL_REQUEST, ASC_PI_ERROR, 1, 'DID_ABORT');
    return good();
  }

  /**
   * prot_verify_read() / prot_verify_write(): guard, then reference tag, per interval; returns the
   * ASCQ of the first failure (1 guard, 3 ref) and its 512-byte sector, or null. Reads skip intervals
   * whose app tag is 0xFFFF.
   */
  private verify(
    p: ScsiDebugParams,
    d: RwCdb,
    data: Buffer,
    pi: Buffer,
    write: boolean,
    guards?: ComputedGuards,
  ): { ascq: number; sector: number } | null {
    const perBlock = p.sector_size / PI_INTERVAL;
    const bad = verifyPi(data, pi, {
      format: { type: p.dif as 1 | 2 | 3, guard: p.guard === 1 ? 'ip' : 'crc', interval: PI_INTERVAL },
      seed: d.size === 32 ? (d.expectedRef ?? 0) : d.lba * perBlock,
      checks: { guard: true, ref: true, app: false },
      order: ['guard', 'ref'],
      escape: write ? 'none' : 'scsi_debug',
      record: guards,
    });
    if (!bad) return null;
    const fn = write ? 'prot_verify_write' : 'prot_verify_read';
    const i = bad.interval;
    const lba = d.lba + Math.floor(i / perBlock);
    this.log?.printk(
      KERN_ERR,
      bad.check === 'guard'
        ? `${fn}: GUARD check failed on sector ${lba} rcvd ${hex4(bad.received)}, ${write ? 'calculated' : 'data'} ${hex4(bad.expected)}`
        : `${fn}: REF check failed on sector ${lba}`,
    );
    this.counters.difErrors++;
    if (write) this.dumpSector(data, Math.floor(i / perBlock) * p.sector_size, p.sector_size);
    return { ascq: bad.check === 'guard' ? 1 : 3, sector: d.lba * perBlock + i };
  }

  /** 1.82's dump_sector() after a failed write check: printable bytes as ` c `, others as `xx `. */
  private dumpSector(data: Buffer, start: number, len: number): void {
    if (!this.log) return;
    this.log.printk(KERN_ERR, '>>> Sector Dump <<<');
    for (let i = 0; i < len; i += 16) {
      let line = `${String(i).padStart(4, '0')}: `;
      for (let j = 0; j < 16; j++) {
        const c = data[start + i + j];
        line += c >= 0x20 && c < 0x7e ? ` ${String.fromCharCode(c)} ` : `${hex2(c)} `;
      }
      this.log.printk(KERN_ERR, line.trimEnd());
    }
  }

  private async respWriteSame(
    p: ScsiDebugParams,
    d: { unmap: boolean; lba: number; blocks: number },
    cmd: ScsiCommand,
  ): Promise<ScsiResult> {
    if (d.unmap && p.lbpws === 0) return this.check(p, ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB, 0);
    const bad = this.accessCheck(p, d.lba, d.blocks);
    if (bad) return bad;
    // scsi_debug's default write_same_length: 0xFFFF blocks per command.
    if (d.blocks > 0xffff) return this.check(p, ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB, 0);
    if (d.unmap) {
      await this.unmapRegion(p, d.lba, d.blocks);
      return good();
    }
    const block = cmd.dataOut;
    if (!block || block.length !== p.sector_size) {
      throw new PvblkError('EINVAL', `WRITE SAME needs one ${p.sector_size}-byte block of data`);
    }
    // Like 1.82's resp_write_same(): data replicated, PI left as it was.
    for (let done = 0; done < d.blocks;) {
      const n = Math.min(256, d.blocks - done);
      const chunk = Buffer.alloc(n * p.sector_size);
      for (let i = 0; i < n; i++) block.copy(chunk, i * p.sector_size);
      await this.storeWrite(d.lba + done, chunk);
      done += n;
    }
    return good();
  }

  private async respUnmap(p: ScsiDebugParams, cmd: ScsiCommand): Promise<ScsiResult> {
    if (p.lbpu === 0) return this.check(p, ILLEGAL_REQUEST, ASC_INVALID_OPCODE, 0);
    const ranges = cmd.dataOut ? decodeUnmapParams(cmd.dataOut) : null;
    if (!ranges) return this.check(p, ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAM_LIST, 0);
    for (const r of ranges) {
      const bad = this.accessCheck(p, r.lba, r.blocks);
      if (bad) return bad;
      await this.unmapRegion(p, r.lba, r.blocks);
    }
    return good();
  }

  /**
   * do_device_access(): the store holds dev_size_mb; a disk reporting more (virtual_gb) maps block
   * `lba` to `lba % store blocks`, an access crossing the store's end wrapping to its start.
   */
  private storePieces(lba: number, blocks: number): Array<{ at: number; lba: number; n: number }> {
    const size = this.store.format.blocks;
    const out: Array<{ at: number; lba: number; n: number }> = [];
    for (let done = 0; done < blocks;) {
      const l = (lba + done) % size;
      const n = Math.min(blocks - done, size - l);
      out.push({ at: done, lba: l, n });
      done += n;
    }
    return out;
  }

  private async storeRead(lba: number, blocks: number): Promise<StoreRead> {
    const parts = this.storePieces(lba, blocks);
    if (parts.length === 1) return this.store.read(parts[0].lba, parts[0].n);
    const reads = [];
    for (const q of parts) reads.push(await this.store.read(q.lba, q.n));
    return {
      data: Buffer.concat(reads.map((r) => r.data)),
      pi: reads[0].pi === null ? null : Buffer.concat(reads.map((r) => r.pi!)),
    };
  }

  private async storeWrite(lba: number, data: Buffer, pi?: Buffer | null): Promise<void> {
    const bs = this.store.format.blockSize;
    const parts = this.storePieces(lba, data.length / bs);
    const tupleBytes = pi ? pi.length / (data.length / bs) : 0;
    for (const q of parts) {
      await this.store.write(
        q.lba,
        bufferView(data, q.at * bs, q.n * bs),
        pi ? bufferView(pi, q.at * tupleBytes, q.n * tupleBytes) : pi,
      );
    }
  }

  /**
   * unmap_region() with unmap_granularity 1: zero the data when lbprz=1 and reset the PI to 0xFF
   * (current scsi_debug; 1.82 left stale PI that no longer matched the zeroed data).
   */
  private async unmapRegion(p: ScsiDebugParams, lba: number, blocks: number): Promise<void> {
    const f = this.store.format;
    const piPerBlock = (f.pi ? f.blockSize / PI_INTERVAL : 0) * PI_TUPLE_SIZE;
    for (let done = 0; done < blocks;) {
      const n = Math.min(256, blocks - done);
      const pi = f.pi ? Buffer.alloc(n * piPerBlock, 0xff) : undefined;
      if (p.lbprz === 1) {
        await this.storeWrite(lba + done, Buffer.alloc(n * f.blockSize), pi);
      } else if (pi) {
        const { data } = await this.storeRead(lba + done, n);
        await this.storeWrite(lba + done, data, pi);
      }
      done += n;
    }
  }
}

function good(): ScsiResult {
  return { status: 'GOOD', hostByte: 'DID_OK', resid: 0 };
}
