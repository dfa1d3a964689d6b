/**
 * scsi_debug module parameters, as `modprobe scsi_debug dif=1 opts=34` takes them, plus pvblk's two
 * host-side naming parameters. Names, defaults and load-time checks follow scsi_debug.c (1.82, the
 * 3.x-era driver of the seed scenario; `medium_error_start/count` exist only in later versions).
 *
 * Values are parsed like the kernel's `param_set_int` (kstrtoint with base 0): optional sign, `0x`
 * hex, a leading `0` means octal, an optional trailing newline. Keys are kept in scsi_debug's own
 * snake_case so a parameter string reads the same here and on a kernel command line.
 */
import { PvblkError } from '@pvblk/shared';

/** `opts` bits (SCSI_DEBUG_OPT_* in 1.82, SDEBUG_OPT_* later; the values never changed). */
export const OPT_NOISE = 0x1;
export const OPT_MEDIUM_ERR = 0x2;
export const OPT_TIMEOUT = 0x4;
export const OPT_RECOVERED_ERR = 0x8;
export const OPT_TRANSPORT_ERR = 0x10;
export const OPT_DIF_ERR = 0x20;
export const OPT_DIX_ERR = 0x40;
export const OPT_MAC_TIMEOUT = 0x80;
export const OPT_SHORT_TRANSFER = 0x100;
export const OPT_Q_NOISE = 0x200;
export const OPT_ALL_TSF = 0x400;
export const OPT_RARE_TSF = 0x800;
export const OPT_N_WCE = 0x1000;
export const OPT_RESET_NOISE = 0x2000;
export const OPT_NO_CDB_NOISE = 0x4000;
export const OPT_HOST_BUSY = 0x8000;
export const OPT_CMD_ABORT = 0x10000;

/** First LBA of the unreadable range (OPT_MEDIUM_ERR_ADDR); scsi_debug also uses it for Info fld. */
export const OPT_MEDIUM_ERR_ADDR = 0x1234;
/** Length of the unreadable range (OPT_MEDIUM_ERR_NUM). */
export const OPT_MEDIUM_ERR_NUM = 10;

export type SectorSize = 512 | 1024 | 2048 | 4096;

export interface ScsiDebugParams {
  /** Size of the store in MiB; values below 1 become 1, as scsi_debug_init() does. */
  dev_size_mb: number;
  sector_size: SectorSize;
  /** Protection type the medium is formatted with; 0 = no PI on the medium. */
  dif: 0 | 1 | 2 | 3;
  /**
   * "Data integrity extensions mask" in MODULE_PARM_DESC, but scsi_debug only ever tests it for
   * non-zero: any non-zero value makes the host advertise DIX for the `dif` type (DIX0 when dif=0).
   * Kept as given so a parameter string round-trips; read it as a boolean.
   */
  dix: number;
  /** 0: CRC-16/T10-DIF guard, 1: IP checksum (SHOST_DIX_GUARD_IP). */
  guard: 0 | 1;
  /** Application tag ownership reported to sd: 1 = host owns the app tag (tag_size 2 or 6). */
  ato: 0 | 1;
  opts: number;
  /** 0 = off; n > 0 = every n-th command; n < 0 = once after |n| commands, then every command. */
  every_nth: number;
  medium_error_start: number;
  medium_error_count: number;
  /**
   * Response delay in jiffies (scsi_debug default 1). pvblk models a jiffy as 1 ms (HZ=1000) and adds
   * it to every command except SYNCHRONIZE CACHE, which scsi_debug answers without delay.
   */
  delay: number;
  /**
   * Response delay in nanoseconds (scsi_debug default 0, later versions than 1.82): when non-zero it
   * overrides `delay`, as scsi_debug's JDELAY_OVERRIDDEN does. Kept to the microsecond (see delay.ts).
   */
  ndelay: number;
  /** 0: fixed-format sense (0x70), 1: descriptor format (0x72). */
  dsense: 0 | 1;
  /** Logical block provisioning: UNMAP supported (scsi_debug default 0). */
  lbpu: 0 | 1;
  /** WRITE SAME(16) with the UNMAP bit supported (scsi_debug default 0). */
  lbpws: 0 | 1;
  /** Unmapped blocks read back as zeroes (scsi_debug default 1). */
  lbprz: 0 | 1;
  /**
   * Capacity the disk reports, in GiB; 0 (the default) reports the store's dev_size_mb. Larger than
   * the store, accesses wrap around it (do_device_access's `lba % sdebug_store_sectors`). Writable at
   * runtime: that is how a disk grows under a running guest (sdebug_virtual_gb_store).
   */
  virtual_gb: number;
  /** pvblk: the host's kernel name for the disk (`sdg` in the seed). */
  host_name: string;
  /** pvblk: SCSI address host:channel:target:lun (`9:0:0:0` in the seed). */
  hctl: string;
}

export const DEFAULT_SCSI_DEBUG_PARAMS: Readonly<ScsiDebugParams> = Object.freeze({
  dev_size_mb: 8,
  sector_size: 512,
  dif: 0,
  dix: 0,
  guard: 0,
  ato: 1,
  opts: 0,
  every_nth: 0,
  medium_error_start: OPT_MEDIUM_ERR_ADDR,
  medium_error_count: OPT_MEDIUM_ERR_NUM,
  delay: 1,
  ndelay: 0,
  dsense: 0,
  lbpu: 0,
  lbpws: 0,
  lbprz: 1,
  virtual_gb: 0,
  host_name: 'sdg',
  hctl: '9:0:0:0',
});

export type ScsiDebugParamName = keyof ScsiDebugParams;

/** Canonical order: scsi_debug's own parameters alphabetically as modinfo lists them, then pvblk's. */
export const SCSI_DEBUG_PARAM_NAMES: readonly ScsiDebugParamName[] = [
  'dev_size_mb',
  'sector_size',
  'dif',
  'dix',
  'guard',
  'ato',
  'opts',
  'every_nth',
  'medium_error_start',
  'medium_error_count',
  'delay',
  'ndelay',
  'dsense',
  'lbpu',
  'lbpws',
  'lbprz',
  'virtual_gb',
  'host_name',
  'hctl',
];

/**
 * Parameters that can change while the disk is in use. 1.82 exposes `delay`, `dsense`, `every_nth`,
 * `opts` and `virtual_gb` as writable attributes of /sys/bus/pseudo/drivers/scsi_debug; later versions make
 * `medium_error_start/count` writable module parameters (/sys/module/scsi_debug/parameters). The
 * format-defining ones (dif, dix, guard, ato, sector_size, dev_size_mb) are read-only in every
 * version: changing them means reloading the module, i.e. a new disk.
 */
export const RUNTIME_WRITABLE_PARAMS: readonly ScsiDebugParamName[] = [
  'opts',
  'every_nth',
  'delay',
  'ndelay',
  'dsense',
  'medium_error_start',
  'medium_error_count',
  'virtual_gb',
];

const INT_RE = /^[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\n?$/;

/** kstrtoint(s, 0): the number, or null when the kernel would answer -EINVAL or -ERANGE. */
export function parseKernelInt(s: string): number | null {
  if (!INT_RE.test(s)) return null;
  const body = s.trim();
  const neg = body.startsWith('-');
  const digits = body.replace(/^[+-]/, '');
  let v: number;
  if (/^0[xX]/.test(digits)) v = parseInt(digits.slice(2), 16);
  else if (digits.length > 1 && digits.startsWith('0')) v = parseInt(digits.slice(1), 8);
  else v = parseInt(digits, 10);
  if (neg) v = -v;
  if (v < -0x80000000 || v > 0x7fffffff) return null;
  return v;
}

function usage(message: string): PvblkError {
  return new PvblkError('EUSAGE', message);
}

function unknownParam(key: string): PvblkError {
  return usage(`unknown disk parameter "${key}" (known: ${SCSI_DEBUG_PARAM_NAMES.join(', ')})`);
}

function isParamName(key: string): key is ScsiDebugParamName {
  return (SCSI_DEBUG_PARAM_NAMES as readonly string[]).includes(key);
}

function oneOf<T extends number>(key: string, v: number, allowed: readonly T[], words: string): T {
  if (!(allowed as readonly number[]).includes(v)) {
    throw usage(`disk parameter "${key}": must be ${words} (got ${v})`);
  }
  return v as T;
}

/** Check one value and return it in its stored form; shared by load-time and runtime paths. */
function coerce(key: ScsiDebugParamName, raw: string | number): ScsiDebugParams[ScsiDebugParamName] {
  if (key === 'host_name') {
    const s = String(raw);
    // A kernel disk name: what sd_format_disk_name() produces (sda … sdzz …), lower-case letters.
    if (!/^sd[a-z]+$/.test(s)) throw usage(`disk parameter "host_name": must look like sdX (got "${s}")`);
    return s;
  }
  if (key === 'hctl') {
    const s = String(raw);
    if (!/^\d+:\d+:\d+:\d+$/.test(s)) {
      throw usage(`disk parameter "hctl": must be host:channel:target:lun (got "${s}")`);
    }
    return s;
  }
  let v: number;
  if (typeof raw === 'number') {
    if (!Number.isInteger(raw) || raw < -0x80000000 || raw > 0x7fffffff) {
      throw usage(`disk parameter "${key}": must be a 32-bit integer (got ${raw})`);
    }
    v = raw;
  } else {
    const parsed = parseKernelInt(raw);
    if (parsed === null) throw usage(`disk parameter "${key}": not a 32-bit integer (got "${raw}")`);
    v = parsed;
  }
  switch (key) {
    case 'dev_size_mb':
      // scsi_debug_init(): "if (scsi_debug_dev_size_mb < 1) scsi_debug_dev_size_mb = 1;"
      return Math.max(1, v);
    case 'sector_size':
      return oneOf(key, v, [512, 1024, 2048, 4096] as const, '512, 1024, 2048 or 4096');
    case 'dif':
      return oneOf(key, v, [0, 1, 2, 3] as const, '0, 1, 2 or 3');
    case 'guard':
      return oneOf(key, v, [0, 1] as const, '0 (crc) or 1 (ip)');
    case 'ato':
    case 'dsense':
    case 'lbpu':
    case 'lbpws':
    case 'lbprz':
      return oneOf(key, v, [0, 1] as const, '0 or 1');
    case 'delay':
    case 'medium_error_start':
    case 'medium_error_count':
    case 'virtual_gb':
      if (v < 0) throw usage(`disk parameter "${key}": must be >= 0 (got ${v})`);
      return v;
    case 'ndelay':
      // scsi_debug ignores (at load) or refuses (in sysfs) a delay of a second or more
      if (v < 0 || v >= 1_000_000_000)
        throw usage(`disk parameter "ndelay": must be 0 to 999999999 nanoseconds (got ${v})`);
      return v;
    case 'dix':
    case 'opts':
    case 'every_nth':
      return v;
  }
}

/**
 * Parse a modprobe-style string (`"dif=1 opts=34"`, whitespace-separated key=value). Unset keys keep
 * scsi_debug's defaults; a key given twice takes the last value, as the kernel's parser does.
 */
export function parseScsiDebugParams(s: string): ScsiDebugParams {
  const p: ScsiDebugParams = { ...DEFAULT_SCSI_DEBUG_PARAMS };
  for (const token of s.split(/\s+/).filter((t) => t.length > 0)) {
    const eq = token.indexOf('=');
    const key = eq < 0 ? token : token.slice(0, eq);
    if (!isParamName(key)) throw unknownParam(key);
    if (eq < 0) throw usage(`disk parameter "${key}": expects ${key}=<value> (got "${token}")`);
    (p as unknown as Record<string, unknown>)[key] = coerce(key, token.slice(eq + 1));
  }
  return p;
}

/** Validate a whole params object (e.g. built in code) and return a normalised copy. */
export function validateScsiDebugParams(p: Partial<ScsiDebugParams>): ScsiDebugParams {
  const out: ScsiDebugParams = { ...DEFAULT_SCSI_DEBUG_PARAMS };
  for (const [key, value] of Object.entries(p)) {
    if (!isParamName(key)) throw unknownParam(key);
    if (value === undefined) continue;
    (out as unknown as Record<string, unknown>)[key] = coerce(key, value as string | number);
  }
  return out;
}

/**
 * The inverse of {@link parseScsiDebugParams}: `parse(format(p))` equals `p`. `opts` is written in
 * hex because it is a bit mask. With `onlyChanged`, keys at their default are left out.
 */
export function formatScsiDebugParams(p: ScsiDebugParams, options: { onlyChanged?: boolean } = {}): string {
  const parts: string[] = [];
  for (const key of SCSI_DEBUG_PARAM_NAMES) {
    const value = p[key];
    if (options.onlyChanged && value === DEFAULT_SCSI_DEBUG_PARAMS[key]) continue;
    if (key === 'opts' && typeof value === 'number') {
      parts.push(value < 0 ? `opts=${value}` : `opts=0x${value.toString(16)}`);
    } else {
      parts.push(`${key}=${value}`);
    }
  }
  return parts.join(' ');
}

/**
 * Change one parameter of a loaded disk, as `echo 0x22 > /sys/bus/pseudo/drivers/scsi_debug/opts`
 * would. Returns the new parameter set; rejects parameters that are fixed once the module is loaded.
 */
export function applyRuntimeParam(p: ScsiDebugParams, key: string, value: string | number): ScsiDebugParams {
  if (!isParamName(key)) throw unknownParam(key);
  if (!RUNTIME_WRITABLE_PARAMS.includes(key)) {
    throw usage(
      `disk parameter "${key}" is fixed while the disk exists (writable at runtime: ${RUNTIME_WRITABLE_PARAMS.join(', ')})`,
    );
  }
  const v = coerce(key, value);
  // delay_store() clears ndelay; ndelay_store() of 0 puts the default jiffy delay back
  if (key === 'delay') return { ...p, delay: v as number, ndelay: 0 };
  if (key === 'ndelay') return { ...p, ndelay: v as number, delay: v === 0 ? 1 : p.delay };
  return { ...p, [key]: v };
}

/** Logical blocks of the store: dev_size_mb MiB divided into sector_size blocks. */
export function storeBlocks(p: ScsiDebugParams): number {
  return Math.floor((p.dev_size_mb * 1048576) / p.sector_size);
}

/** get_sdebug_capacity(): what READ CAPACITY reports — virtual_gb when set, else the store. */
export function capacityBlocks(p: ScsiDebugParams): number {
  return p.virtual_gb > 0 ? Math.floor((p.virtual_gb * 1073741824) / p.sector_size) : storeBlocks(p);
}

/** dix as scsi_debug reads it. */
export function dixEnabled(p: ScsiDebugParams): boolean {
  return p.dix !== 0;
}
