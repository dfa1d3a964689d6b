/**
 * Grant tables, version 1 (xen/include/public/grant_table.h): the 8-byte entry a granting domain
 * fills in, its flag bits, the map/copy flags and the GNTST_* statuses with Xen's own messages.
 */
import { PvblkError, type ErrorCode } from './errors.ts';

export const GRANT_ENTRY_V1_SIZE = 8;
/**
 * Map operations a driver puts in one GNTTABOP_map_grant_ref call: the broker answers a call with the
 * pages it maps, and refuses (E2BIG) a call whose pages would pass 2 MiB. Linux's blkback maps in
 * batches too (of BLKIF_MAX_SEGMENTS_PER_REQUEST); pvblk's are larger so that a request of 256
 * segments is one call.
 */
export const GNTTAB_MAP_BATCH = 512;
/**
 * Copy operations a driver puts in one GNTTABOP_copy call: 512 of a page each is 2 MiB, the broker's
 * bound on what one call copies out (E2BIG beyond), and half the ops the wire lets a call carry. An
 * integrity write of 256 data pages and 2,048 tuple pages, copied in one call, was refused.
 */
export const GNTTAB_COPY_BATCH = 512;
/** Refs below 8 are reserved (console 0, xenstore 1); Linux never hands them out. */
export const GNTTAB_NR_RESERVED_ENTRIES = 8;
export const GNTTAB_RESERVED_CONSOLE = 0;
export const GNTTAB_RESERVED_XENSTORE = 1;

export const GTF_invalid = 0;
export const GTF_permit_access = 1;
export const GTF_accept_transfer = 2;
export const GTF_transitive = 3;
export const GTF_type_mask = 3;
export const GTF_readonly = 1 << 2;
/** Set by Xen while the frame is mapped or being copied for reading. */
export const GTF_reading = 1 << 3;
/** Set by Xen while the frame is mapped writable or being copied into. */
export const GTF_writing = 1 << 4;

export const GNTMAP_device_map = 1 << 0;
export const GNTMAP_host_map = 1 << 1;
export const GNTMAP_readonly = 1 << 2;

export const GNTCOPY_source_gref = 1 << 0;
export const GNTCOPY_dest_gref = 1 << 1;

export const GNTST = {
  okay: 0,
  general_error: -1,
  bad_domain: -2,
  bad_gntref: -3,
  bad_handle: -4,
  bad_virt_addr: -5,
  bad_dev_addr: -6,
  no_device_space: -7,
  permission_denied: -8,
  bad_page: -9,
  bad_copy_arg: -10,
  address_too_big: -11,
  eagain: -12,
  no_space: -13,
} as const;
export type GntStatus = (typeof GNTST)[keyof typeof GNTST];

/** GNTTABOP_error_msgs, indexed by -status. */
export const GNTTABOP_ERROR_MSGS = [
  'okay',
  'undefined error',
  'unrecognised domain id',
  'invalid grant reference',
  'invalid mapping handle',
  'invalid virtual address',
  'invalid device address',
  'no spare translation slot in the I/O MMU',
  'permission denied',
  'bad page',
  'copy arguments cross page boundary',
  'page address size too large',
  'operation not done; try again',
  'out of space',
] as const;

export function gntstName(status: number): string {
  const e = Object.entries(GNTST).find(([, v]) => v === status);
  return e ? `GNTST_${e[0]}` : `GNTST_${status}`;
}

export function gntstMessage(status: number): string {
  return GNTTABOP_ERROR_MSGS[-status] ?? `unknown grant status ${status}`;
}

/** An exception for a whole failed grant operation, when a caller prefers one. */
export function gntstError(status: number, what: string): PvblkError {
  const name = gntstName(status);
  const code: ErrorCode = (
    [
      'GNTST_general_error',
      'GNTST_bad_domain',
      'GNTST_bad_gntref',
      'GNTST_bad_handle',
      'GNTST_permission_denied',
      'GNTST_bad_copy_arg',
      'GNTST_no_space',
    ] as const
  ).includes(name as never)
    ? (name as ErrorCode)
    : 'GNTST_general_error';
  return new PvblkError(code, `${what}: ${gntstMessage(status)}`);
}

export interface GrantEntryV1 {
  flags: number;
  /** The grantee. */
  domid: number;
  /** The granted frame number (GFN) in the granter's space. */
  frame: number;
}

export function encodeGrantEntryV1(buf: Uint8Array, off: number, e: GrantEntryV1): void {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  v.setUint16(off, e.flags, true);
  v.setUint16(off + 2, e.domid, true);
  v.setUint32(off + 4, e.frame >>> 0, true);
}

export function decodeGrantEntryV1(buf: Uint8Array, off: number): GrantEntryV1 {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    flags: v.getUint16(off, true),
    domid: v.getUint16(off + 2, true),
    frame: v.getUint32(off + 4, true),
  };
}

/** "Is the grant in use?" — either busy bit set means it cannot be revoked (XSA-396). */
export function grantBusy(flags: number): boolean {
  return (flags & (GTF_reading | GTF_writing)) !== 0;
}
