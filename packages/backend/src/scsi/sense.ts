/**
 * SCSI sense data: building it as scsi_debug does (scsi_build_sense_buffer() plus the Information
 * field for medium errors), decoding it as the midlayer does (scsi_normalize_sense(),
 * scsi_get_sense_info_fld()), and the text the 3.x kernel prints for it (constants.c:
 * scsi_show_sense_hdr(), scsi_decode_sense_extras(), scsi_show_extd_sense()).
 */
import { PvblkError } from '@pvblk/shared';

export const NO_SENSE = 0x0;
export const RECOVERED_ERROR = 0x1;
export const NOT_READY = 0x2;
export const MEDIUM_ERROR = 0x3;
export const HARDWARE_ERROR = 0x4;
export const ILLEGAL_REQUEST = 0x5;
export const UNIT_ATTENTION = 0x6;
export const DATA_PROTECT = 0x7;
export const BLANK_CHECK = 0x8;
export const COPY_ABORTED = 0xa;
export const ABORTED_COMMAND = 0xb;
export const VOLUME_OVERFLOW = 0xd;
export const MISCOMPARE = 0xe;

/** Additional sense codes scsi_debug returns (its #defines), as ASC. */
export const ASC_UNRECOVERED_READ_ERR = 0x11;
export const ASC_INVALID_OPCODE = 0x20;
export const ASC_LBA_OUT_OF_RANGE = 0x21;
export const ASC_INVALID_FIELD_IN_CDB = 0x24;
export const ASC_INVALID_FIELD_IN_PARAM_LIST = 0x26;
export const ASC_TRANSPORT_PROBLEM = 0x4b;
export const ASCQ_ACK_NAK_TO = 0x03;
export const ASC_THRESHOLD_EXCEEDED = 0x5d;
/** ASC 0x10: protection information errors; ASCQ 1 guard, 2 application tag, 3 reference tag. */
export const ASC_PI_ERROR = 0x10;

/** Bytes of fixed-format sense scsi_debug fills: 8 + additional length 0x0A. */
export const FIXED_SENSE_LEN = 18;
/** Bytes of descriptor-format sense without descriptors. */
export const DESC_SENSE_LEN = 8;

export interface SenseSpec {
  key: number;
  asc: number;
  ascq: number;
  /** Descriptor format (0x72/0x73) instead of fixed (0x70/0x71): scsi_debug's dsense=1. */
  descriptor?: boolean;
  deferred?: boolean;
  /** Fixed format only: sets the VALID bit and the INFORMATION field (bytes 3–6). */
  info?: number;
}

/** scsi_build_sense_buffer(), plus `sense[0] |= 0x80` and the info bytes when `info` is given. */
export function buildSense(s: SenseSpec): Buffer {
  if (s.descriptor) {
    const b = Buffer.alloc(DESC_SENSE_LEN);
    b[0] = s.deferred ? 0x73 : 0x72;
    b[1] = s.key & 0x0f;
    b[2] = s.asc;
    b[3] = s.ascq;
    // scsi_debug only fills the Information field for fixed format (`if (0x70 == (sb[0] & 0x7f))`).
    return b;
  }
  const b = Buffer.alloc(FIXED_SENSE_LEN);
  b[0] = s.deferred ? 0x71 : 0x70;
  b[2] = s.key & 0x0f;
  b[7] = FIXED_SENSE_LEN - 8;
  b[12] = s.asc;
  b[13] = s.ascq;
  if (s.info !== undefined) {
    if (!Number.isInteger(s.info) || s.info < 0 || s.info > 0xffffffff) {
      throw new PvblkError('EINVAL', `sense information field must be a u32 (got ${s.info})`);
    }
    b[0] |= 0x80;
    b.writeUInt32BE(s.info, 3);
  }
  return b;
}

/** struct scsi_sense_hdr. */
export interface SenseHeader {
  responseCode: number;
  key: number;
  asc: number;
  ascq: number;
  additionalLength: number;
  descriptor: boolean;
  deferred: boolean;
}

/** scsi_normalize_sense(): null when the buffer holds no valid sense data. */
export function decodeSense(b: Buffer | undefined): SenseHeader | null {
  if (!b || b.length === 0) return null;
  const responseCode = b[0] & 0x7f;
  if ((responseCode & 0x70) !== 0x70) return null;
  if (responseCode >= 0x72) {
    return {
      responseCode,
      key: b.length > 1 ? b[1] & 0x0f : 0,
      asc: b.length > 2 ? b[2] : 0,
      ascq: b.length > 3 ? b[3] : 0,
      additionalLength: b.length > 7 ? b[7] : 0,
      descriptor: true,
      deferred: responseCode === 0x73,
    };
  }
  const additionalLength = b.length > 7 ? b[7] : 0;
  return {
    responseCode,
    key: b.length > 2 ? b[2] & 0x0f : 0,
    asc: b.length > 12 && additionalLength >= 5 ? b[12] : 0,
    ascq: b.length > 13 && additionalLength >= 6 ? b[13] : 0,
    additionalLength,
    descriptor: false,
    deferred: responseCode === 0x71,
  };
}

/**
 * scsi_get_sense_info_fld(): the INFORMATION field if it is valid — fixed format with the VALID
 * bit, or descriptor format with an information descriptor (type 0) whose VALID bit is set.
 */
export function senseInfo(b: Buffer | undefined): number | null {
  const h = decodeSense(b);
  if (!h || !b) return null;
  if (!h.descriptor) {
    if ((b[0] & 0x80) === 0 || b.length < 7) return null;
    return b.readUInt32BE(3);
  }
  let off = 8;
  const end = Math.min(b.length, 8 + h.additionalLength);
  while (off + 1 < end) {
    const type = b[off];
    const len = b[off + 1];
    if (type === 0 && len === 0x0a && off + 12 <= end && (b[off + 2] & 0x80) !== 0) {
      // 64-bit field; every LBA pvblk meets fits in a double exactly.
      return b.readUInt32BE(off + 4) * 0x100000000 + b.readUInt32BE(off + 8);
    }
    off += 2 + len;
  }
  return null;
}

/** snstext[] of constants.c (keys 0x0–0xE). */
const SENSE_KEY_NAMES = [
  'No Sense',
  'Recovered Error',
  'Not Ready',
  'Medium Error',
  'Hardware Error',
  'Illegal Request',
  'Unit Attention',
  'Data Protect',
  'Blank Check',
  'Vendor Specific(9)',
  'Copy Aborted',
  'Aborted Command',
  'Equal',
  'Volume Overflow',
  'Miscompare',
] as const;

export function senseKeyName(key: number): string | null {
  return SENSE_KEY_NAMES[key] ?? null;
}

/** The part of constants.c's additional[] table a disk with PI and fault injection produces. */
const ASC_TEXT: ReadonlyMap<number, string> = new Map([
  [0x0000, 'No additional sense information'],
  [0x0400, 'Logical unit not ready, cause not reportable'],
  [0x0401, 'Logical unit is in process of becoming ready'],
  [0x0402, 'Logical unit not ready, initializing command required'],
  [0x0c00, 'Write error'],
  [0x1000, 'Id CRC or ECC error'],
  [0x1001, 'Logical block guard check failed'],
  [0x1002, 'Logical block application tag check failed'],
  [0x1003, 'Logical block reference tag check failed'],
  [0x1004, 'Logical block protection error on recover buffered data'],
  [0x1005, 'Logical block protection method error'],
  [0x1100, 'Unrecovered read error'],
  [0x1101, 'Read retries exhausted'],
  [0x1104, 'Unrecovered read error - auto reallocate failed'],
  [0x1400, 'Recorded entity not found'],
  [0x1a00, 'Parameter list length error'],
  [0x2000, 'Invalid command operation code'],
  [0x2100, 'Logical block address out of range'],
  [0x2400, 'Invalid field in cdb'],
  [0x2600, 'Invalid field in parameter list'],
  [0x2700, 'Write protected'],
  [0x2900, 'Power on, reset, or bus device reset occurred'],
  [0x3900, 'Saving parameters not supported'],
  [0x4400, 'Internal target failure'],
  [0x4700, 'Scsi parity error'],
  [0x4b00, 'Data phase error'],
  [0x4b01, 'Invalid target port transfer tag received'],
  [0x4b02, 'Too much write data'],
  [0x4b03, 'Ack/nak timeout'],
  [0x4b04, 'Nak received'],
  [0x4b05, 'Data offset error'],
  [0x4b06, 'Initiator response timeout'],
  [0x5d00, 'Failure prediction threshold exceeded'],
  [0x5d01, 'Media failure prediction threshold exceeded'],
]);

/** scsi_extd_sense_format() for the codes above; null for the rest. */
export function ascText(asc: number, ascq: number): string | null {
  return ASC_TEXT.get((asc << 8) | ascq) ?? null;
}

/** The body of scsi_show_extd_sense(): `Add. Sense: …`, or `ASC=0x.. ASCQ=0x..` for unknown codes. */
export function formatAddSense(asc: number, ascq: number): string {
  const text = ascText(asc, ascq);
  if (text) return `Add. Sense: ${text}`;
  const hex = (v: number) => `0x${v.toString(16)}`;
  if (asc >= 0x80) return `<<vendor>> ASC=${hex(asc)} ASCQ=${hex(ascq)}`;
  if (ascq >= 0x80) return `ASC=${hex(asc)} <<vendor>> ASCQ=${hex(ascq)}`;
  return `ASC=${hex(asc)} ASCQ=${hex(ascq)}`;
}

/**
 * The sense key line of scsi_show_sense_hdr(): `Sense Key : Medium Error [current]`, with
 * `[descriptor]` appended for descriptor format. The kernel leaves a trailing blank; like the seed
 * transcript, lines here carry none.
 */
export function formatSenseKeyLine(h: SenseHeader): string {
  const name = senseKeyName(h.key) ?? `0x${h.key.toString(16)}`;
  return `Sense Key : ${name} ${h.deferred ? '[deferred]' : '[current]'}${h.descriptor ? ' [descriptor]' : ''}`;
}

/**
 * scsi_decode_sense_extras(): for fixed format one line with `Info fld=0x…` (only with the VALID
 * bit) and FMK/EOM/ILI; for descriptor format with descriptors, a hex dump.
 */
export function formatSenseExtras(b: Buffer, h: SenseHeader): string[] {
  if (!h.descriptor) {
    const parts: string[] = [];
    if ((b[0] & 0x80) !== 0 && b.length >= 7) parts.push(`Info fld=0x${b.readUInt32BE(3).toString(16)}`);
    if (b.length > 2) {
      if (b[2] & 0x80) parts.push('FMK');
      if (b[2] & 0x40) parts.push('EOM');
      if (b[2] & 0x20) parts.push('ILI');
    }
    return parts.length > 0 ? [parts.join(', ')] : [];
  }
  if (h.additionalLength === 0) return [];
  const n = Math.min(b.length, 8 + h.additionalLength);
  const lines = ['Descriptor sense data with sense descriptors (in hex):'];
  for (let k = 0; k < n; k += 16) {
    const row = Array.from(b.subarray(k, Math.min(n, k + 16)), (x) => x.toString(16).padStart(2, '0'));
    lines.push(`        ${row.join(' ')}`);
  }
  return lines;
}
