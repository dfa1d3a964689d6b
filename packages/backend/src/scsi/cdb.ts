/**
 * SCSI command descriptor blocks the host's `sd` sends to the disk: READ/WRITE (10), (16), (32),
 * SYNCHRONIZE CACHE(10), WRITE SAME(16) and UNMAP, their encoding and decoding, the choice of CDB
 * size `sd` makes, and the kernel's one-line rendering of a CDB (`Read(10): 28 20 00 …`).
 *
 * Field layouts are SBC-3's; the choices are sd.c's: sd_setup_read_write_cmnd() / the 3.x
 * sd_prep_fn() put RDPROTECT/WRPROTECT in bits 7–5 of byte 1 (byte 10 of the 32-byte form), never
 * use 6-byte CDBs for a device with protection or use_10_for_rw (always set by the SCSI scan), and
 * seed the Type 2 expected initial reference tag at bytes 20–23.
 */
import { PvblkError } from '@pvblk/shared';

export const READ_10 = 0x28;
export const WRITE_10 = 0x2a;
export const READ_16 = 0x88;
export const WRITE_16 = 0x8a;
export const VARIABLE_LENGTH_CMD = 0x7f;
export const SYNCHRONIZE_CACHE = 0x35;
export const WRITE_SAME_16 = 0x93;
export const UNMAP = 0x42;

/** Service actions of VARIABLE LENGTH (0x7F), bytes 8–9. */
export const READ_32 = 0x0009;
export const WRITE_32 = 0x000b;

/** Byte 7 of a 32-byte CDB: additional CDB length (32 − 8). */
const VARLEN_ADDITIONAL_LENGTH = 0x18;

/** RDPROTECT/WRPROTECT 001b: the target checks the PI (Linux's default when PI is in use). */
export const PROTECT_CHECK = 1;
/** 011b: PI transferred, the target does not check it (BIP_DISK_NOCHECK). */
export const PROTECT_NOCHECK = 3;

export interface RwCdb {
  write: boolean;
  size: 10 | 16 | 32;
  lba: number;
  blocks: number;
  /** RDPROTECT/WRPROTECT, 0–7. */
  protect: number;
  fua?: boolean;
  /** 32-byte only: EXPECTED INITIAL LOGICAL BLOCK REFERENCE TAG (bytes 20–23). */
  expectedRef?: number;
}

export type DecodedCdb =
  | ({ kind: 'rw' } & RwCdb)
  | { kind: 'sync'; lba: number; blocks: number }
  | { kind: 'write_same'; unmap: boolean; lba: number; blocks: number; protect: number }
  | { kind: 'unmap'; paramLength: number }
  | { kind: 'unsupported'; opcode: number; serviceAction?: number };

function be(buf: Buffer, off: number, len: number): number {
  let v = 0;
  for (let i = 0; i < len; i++) v = v * 256 + buf[off + i];
  return v;
}

function putBe(buf: Buffer, off: number, len: number, value: number): void {
  let v = value;
  for (let i = len - 1; i >= 0; i--) {
    buf[off + i] = v % 256;
    v = Math.floor(v / 256);
  }
}

function checkField(name: string, v: number, max: number): void {
  if (!Number.isSafeInteger(v) || v < 0 || v > max) {
    throw new PvblkError('EINVAL', `CDB field ${name} out of range for this CDB size (got ${v})`);
  }
}

/** Build a READ/WRITE CDB of the given size. */
export function encodeRw(c: RwCdb): Buffer {
  checkField('protect', c.protect, 7);
  const flags = (c.protect << 5) | (c.fua ? 0x08 : 0);
  if (c.size === 10) {
    checkField('lba', c.lba, 0xffffffff);
    checkField('blocks', c.blocks, 0xffff);
    const cdb = Buffer.alloc(10);
    cdb[0] = c.write ? WRITE_10 : READ_10;
    cdb[1] = flags;
    putBe(cdb, 2, 4, c.lba);
    putBe(cdb, 7, 2, c.blocks);
    return cdb;
  }
  if (c.size === 16) {
    checkField('lba', c.lba, Number.MAX_SAFE_INTEGER);
    checkField('blocks', c.blocks, 0xffffffff);
    const cdb = Buffer.alloc(16);
    cdb[0] = c.write ? WRITE_16 : READ_16;
    cdb[1] = flags;
    putBe(cdb, 2, 8, c.lba);
    putBe(cdb, 10, 4, c.blocks);
    return cdb;
  }
  checkField('lba', c.lba, Number.MAX_SAFE_INTEGER);
  checkField('blocks', c.blocks, 0xffffffff);
  const ref = c.expectedRef ?? c.lba % 0x100000000;
  checkField('expectedRef', ref, 0xffffffff);
  const cdb = Buffer.alloc(32);
  cdb[0] = VARIABLE_LENGTH_CMD;
  cdb[7] = VARLEN_ADDITIONAL_LENGTH;
  putBe(cdb, 8, 2, c.write ? WRITE_32 : READ_32);
  cdb[10] = flags;
  putBe(cdb, 12, 8, c.lba);
  putBe(cdb, 20, 4, ref);
  // Bytes 24–27 (expected application tag and its mask) stay 0, as sd leaves them.
  putBe(cdb, 28, 4, c.blocks);
  return cdb;
}

export function encodeSynchronizeCache10(): Buffer {
  // sd_prepare_flush() / sd_sync_cache(): whole cache, no IMMED, LBA and count 0.
  const cdb = Buffer.alloc(10);
  cdb[0] = SYNCHRONIZE_CACHE;
  return cdb;
}

/** WRITE SAME(16), byte 1 bit 3 = UNMAP (sd_setup_discard_cmnd() SD_LBP_WS16: `cmd[1] = 0x8`). */
export function encodeWriteSame16(lba: number, blocks: number, unmap: boolean): Buffer {
  checkField('lba', lba, Number.MAX_SAFE_INTEGER);
  checkField('blocks', blocks, 0xffffffff);
  const cdb = Buffer.alloc(16);
  cdb[0] = WRITE_SAME_16;
  cdb[1] = unmap ? 0x08 : 0;
  putBe(cdb, 2, 8, lba);
  putBe(cdb, 10, 4, blocks);
  return cdb;
}

/** UNMAP with its parameter list (sd's SD_LBP_UNMAP: one descriptor per request). */
export function encodeUnmap(ranges: readonly { lba: number; blocks: number }[]): {
  cdb: Buffer;
  params: Buffer;
} {
  const params = Buffer.alloc(8 + 16 * ranges.length);
  putBe(params, 0, 2, params.length - 2);
  putBe(params, 2, 2, 16 * ranges.length);
  ranges.forEach((r, i) => {
    checkField('lba', r.lba, Number.MAX_SAFE_INTEGER);
    checkField('blocks', r.blocks, 0xffffffff);
    putBe(params, 8 + 16 * i, 8, r.lba);
    putBe(params, 16 + 16 * i, 4, r.blocks);
  });
  const cdb = Buffer.alloc(10);
  cdb[0] = UNMAP;
  putBe(cdb, 7, 2, params.length);
  return { cdb, params };
}

/** Parse an UNMAP parameter list into its block descriptors; null if the header is inconsistent. */
export function decodeUnmapParams(params: Buffer): { lba: number; blocks: number }[] | null {
  if (params.length < 8) return null;
  const descLen = be(params, 2, 2);
  if (descLen % 16 !== 0 || 8 + descLen > params.length) return null;
  const out: { lba: number; blocks: number }[] = [];
  for (let off = 8; off < 8 + descLen; off += 16)
    out.push({ lba: be(params, off, 8), blocks: be(params, off + 8, 4) });
  return out;
}

/** What a target needs from a CDB; unknown opcodes come back as `unsupported`. */
export function decodeCdb(cdb: Buffer): DecodedCdb {
  const op = cdb[0];
  switch (op) {
    case READ_10:
    case WRITE_10:
      if (cdb.length < 10) break;
      return {
        kind: 'rw',
        write: op === WRITE_10,
        size: 10,
        lba: be(cdb, 2, 4),
        blocks: be(cdb, 7, 2),
        protect: cdb[1] >> 5,
        fua: (cdb[1] & 0x08) !== 0,
      };
    case READ_16:
    case WRITE_16:
      if (cdb.length < 16) break;
      return {
        kind: 'rw',
        write: op === WRITE_16,
        size: 16,
        lba: be(cdb, 2, 8),
        blocks: be(cdb, 10, 4),
        protect: cdb[1] >> 5,
        fua: (cdb[1] & 0x08) !== 0,
      };
    case VARIABLE_LENGTH_CMD: {
      if (cdb.length < 32) return { kind: 'unsupported', opcode: op };
      const sa = be(cdb, 8, 2);
      if (sa !== READ_32 && sa !== WRITE_32) return { kind: 'unsupported', opcode: op, serviceAction: sa };
      return {
        kind: 'rw',
        write: sa === WRITE_32,
        size: 32,
        lba: be(cdb, 12, 8),
        blocks: be(cdb, 28, 4),
        protect: cdb[10] >> 5,
        fua: (cdb[10] & 0x08) !== 0,
        expectedRef: be(cdb, 20, 4),
      };
    }
    case SYNCHRONIZE_CACHE:
      if (cdb.length < 10) break;
      return { kind: 'sync', lba: be(cdb, 2, 4), blocks: be(cdb, 7, 2) };
    case WRITE_SAME_16:
      if (cdb.length < 16) break;
      return {
        kind: 'write_same',
        unmap: (cdb[1] & 0x08) !== 0,
        lba: be(cdb, 2, 8),
        blocks: be(cdb, 10, 4),
        protect: cdb[1] >> 5,
      };
    case UNMAP:
      if (cdb.length < 10) break;
      return { kind: 'unmap', paramLength: be(cdb, 7, 2) };
  }
  return { kind: 'unsupported', opcode: op };
}

/**
 * The CDB size `sd` uses for a read or write, after sd_setup_read_write_cmnd() (current sd.c):
 * 32 bytes when PI is in use on a Type 2 disk (only the 32-byte form carries the expected initial
 * reference tag); 16 bytes when the disk is larger than 2^32 blocks (use_16_for_rw) or the transfer
 * exceeds 0xffff blocks; otherwise 10 bytes. 3.x differs only beyond 2 TiB: it picked 16 bytes per
 * request when the start LBA exceeded 32 bits and clamped a 10-byte transfer to 0xffff blocks.
 * The 6-byte branch is unreachable here because the SCSI scan sets use_10_for_rw for every disk.
 */
export function chooseRwCdbSize(opts: {
  lba: number;
  blocks: number;
  protect: number;
  protectionType: number;
  capacityBlocks: number;
}): 10 | 16 | 32 {
  if (opts.protect !== 0 && opts.protectionType === 2) return 32;
  if (opts.capacityBlocks > 0xffffffff || opts.blocks > 0xffff || opts.lba > 0xffffffff) return 16;
  return 10;
}

/** cdb_byte0_names[] of the 3.x constants.c, for the opcodes a disk model meets. */
const OPCODE_NAMES: Readonly<Record<number, string>> = {
  0x00: 'Test Unit Ready',
  0x03: 'Request Sense',
  0x08: 'Read(6)',
  0x0a: 'Write(6)',
  0x12: 'Inquiry',
  0x1a: 'Mode Sense(6)',
  0x25: 'Read Capacity(10)',
  0x28: 'Read(10)',
  0x2a: 'Write(10)',
  0x2f: 'Verify(10)',
  0x35: 'Synchronize Cache(10)',
  0x41: 'Write Same(10)',
  0x42: 'Unmap/Read sub-channel',
  0x5a: 'Mode Sense(10)',
  0x7e: 'Extended CDB',
  0x88: 'Read(16)',
  0x8a: 'Write(16)',
  0x8f: 'Verify(16)',
  0x91: 'Synchronize cache(16)',
  0x93: 'Write same(16)',
  0x9e: 'Service action in(16)',
  0xa0: 'Report luns',
  0xa8: 'Read(12)',
  0xaa: 'Write(12)',
};

/** variable_length_arr[] of constants.c (service actions of opcode 0x7F). */
const VARLEN_NAMES: Readonly<Record<number, string>> = {
  0x9: 'Read(32)',
  0xa: 'Verify(32)',
  0xb: 'Write(32)',
  0xc: 'Write an verify(32)',
  0xd: 'Write same(32)',
};

/** CDB length implied by the opcode's group code (scsi_command_size()). */
export function cdbLength(cdb: Buffer): number {
  if (cdb[0] === VARIABLE_LENGTH_CMD && cdb.length >= 8) return cdb[7] + 8;
  const group = cdb[0] >> 5;
  return [6, 10, 10, 12, 16, 12, 10, 10][group];
}

/** print_opcode_name() of 3.x constants.c. */
export function opcodeName(cdb: Buffer): string {
  const op = cdb[0];
  if (op === VARIABLE_LENGTH_CMD) {
    const len = cdbLength(cdb);
    if (len < 10) return `short variable length command, len=${len} ext_len=${cdb.length}`;
    const sa = be(cdb, 8, 2);
    let name = VARLEN_NAMES[sa] ?? `cdb[0]=0x${op.toString(16)}, sa=0x${sa.toString(16)}`;
    if (len !== cdb.length) name += `, in_cdb_len=${len}, ext_len=${cdb.length}`;
    return name;
  }
  if (op >= 0xc0) return `cdb[0]=0x${op.toString(16)} (vendor)`;
  return OPCODE_NAMES[op] ?? `cdb[0]=0x${op.toString(16)} (reserved)`;
}

/**
 * The CDB as scsi_print_command() prints it after the `sd H:C:T:L: [sdX] CDB: ` prefix:
 * `Read(10): 28 20 00 00 12 30 00 00 08 00`, every byte of the command in lower-case hex.
 */
export function formatCdb(cdb: Buffer): string {
  const bytes = Array.from(cdb, (b) => b.toString(16).padStart(2, '0')).join(' ');
  return `${opcodeName(cdb)}: ${bytes}`;
}
