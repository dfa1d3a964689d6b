/**
 * device-mapper targets between blkback and the host disk: what `dmsetup create <name> --table
 * '<start> <length> <target> <args>'` builds, reduced to one target per table mapping the whole device.
 *
 * A target sees the device below it (`lower`) and passes I/O down, possibly changed: delayed
 * (delay), failed or dropped or corrupted (flakey), failed on bad blocks (dust), or straight (linear).
 * Errors are data (IoResult), as everywhere below blkback. Sectors are 512-byte units.
 *
 * Deviations from Linux, deliberate: one line per table, covering the whole device; a target's
 * `<dev>` must name the device right below it (the disk, or the layer under this one) and a table's
 * offset must be 0 on a device with PI, since reference tags are not remapped here.
 */
import { KERN_INFO, PvblkError, type KernelLog } from '@pvblk/shared';
import type { HostBlockDevice, IoResult, PiBuffer, ReadResult } from '../block-device.ts';

/** What a target is built with. */
export interface TargetContext {
  lower: HostBlockDevice;
  /** Names `<dev>` may take for the lower device: `/dev/sdg`, `8:96`, `/dev/mapper/<name>`. */
  lowerNames: string[];
  /** Sectors the table maps (the lower device's size). */
  length: number;
  klog: KernelLog;
  /** Milliseconds, for flakey's up/down cycle (injectable in tests). */
  now: () => number;
}

/** The I/O interface of a target: HostBlockDevice's operations. */
export interface DmTarget {
  readonly type: string;
  read(sector: number, count: number, pi?: { checks: PiBuffer['checks'] }): Promise<ReadResult>;
  write(sector: number, data: Buffer, pi?: PiBuffer): Promise<IoResult>;
  flush(): Promise<IoResult>;
  discardRange(sector: number, count: number, secure: boolean): Promise<IoResult>;
  /** `dmsetup table`: the arguments after the target name. */
  table(): string;
  /** `dmsetup status`: the arguments after the target name. */
  status(): string;
  /** `dmsetup message <dev> 0 <argv…>`: returns what the kernel would log in answer, if anything. */
  message(argv: string[]): string;
  /** I/O the target holds right now (delay's queue): 0 at rest. */
  pending(): number;
  /** The table is being replaced or removed: held I/O is released (dm's suspend flushes it). */
  close(): void;
}

export type TargetFactory = (args: string[], ctx: TargetContext) => DmTarget;

export function dmError(what: string): PvblkError {
  return new PvblkError('EINVAL', what);
}

/** `<dev>`: must name the device right below. */
export function checkDev(dev: string | undefined, ctx: TargetContext): void {
  if (!dev || !ctx.lowerNames.includes(dev))
    throw dmError(
      `device ${dev ?? '(none)'} is not the device below this target (${ctx.lowerNames.join(' or ')})`,
    );
}

/** `<offset>` in sectors: where the mapped area starts on the device below. */
export function parseOffset(raw: string | undefined, ctx: TargetContext): number {
  const v = parseUint(raw, 'offset');
  // dm-table.c device_area_is_invalid(): the area a target maps must lie within the device below;
  // the table maps as many sectors as that device has, so only offset 0 fits
  if (v + ctx.length > ctx.lower.sectors)
    throw dmError(
      `${ctx.lowerNames[0]} too small for target: start=${v}, len=${ctx.length}, dev_size=${ctx.lower.sectors}`,
    );
  return v;
}

export function parseUint(raw: string | undefined, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (raw === undefined || !/^[0-9]+$/.test(raw)) throw dmError(`Invalid ${what} ${raw ?? '(missing)'}`);
  const v = Number(raw);
  if (v > max) throw dmError(`Invalid ${what} ${raw} (at most ${max})`);
  return v;
}

/** dm's DMINFO: `device-mapper: <target>: <text>` at KERN_INFO. */
export function dmInfo(klog: KernelLog, target: string, text: string): string {
  klog.printk(KERN_INFO, `device-mapper: ${target}: ${text}`);
  return text;
}

/** linear: `<dev> <offset>`. */
export const linear: TargetFactory = (args, ctx) => {
  if (args.length !== 2) throw dmError('Invalid argument count (linear: <dev> <offset>)');
  checkDev(args[0], ctx);
  const off = parseOffset(args[1], ctx);
  return new PassThrough('linear', ctx.lower, off, `${args[0]} ${off}`);
};

/** error: every I/O fails. */
export const errorTarget: TargetFactory = (args) => {
  if (args.length !== 0) throw dmError('Invalid argument count (error takes none)');
  const fail = async (sector: number) =>
    ({ ok: false, error: { kind: 'target', sector, detail: 'dm-error' } }) as const;
  return {
    type: 'error',
    read: (s) => fail(s),
    write: (s) => fail(s),
    flush: () => fail(0),
    discardRange: (s) => fail(s),
    table: () => '',
    status: () => '',
    message: () => {
      throw dmError('error: no messages');
    },
    pending: () => 0,
    close: () => {},
  };
};

/** A target that remaps by an offset and passes everything down (linear, and the base of others). */
export class PassThrough implements DmTarget {
  constructor(
    readonly type: string,
    protected readonly lower: HostBlockDevice,
    protected readonly offset: number,
    private readonly args: string,
  ) {}
  read(sector: number, count: number, pi?: { checks: PiBuffer['checks'] }): Promise<ReadResult> {
    return this.lower.read(this.offset + sector, count, pi);
  }
  write(sector: number, data: Buffer, pi?: PiBuffer): Promise<IoResult> {
    return this.lower.write(this.offset + sector, data, pi);
  }
  flush(): Promise<IoResult> {
    return this.lower.flush();
  }
  discardRange(sector: number, count: number, secure: boolean): Promise<IoResult> {
    return this.lower.discardRange(this.offset + sector, count, secure);
  }
  table(): string {
    return this.args;
  }
  status(): string {
    return '';
  }
  message(_argv: string[]): string {
    throw dmError(`${this.type}: no messages`);
  }
  pending(): number {
    return 0;
  }
  close(): void {}
}
