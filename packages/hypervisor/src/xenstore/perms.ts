/**
 * XenStore node permissions (docs/misc/xenstore.txt, xenstored `perm_for_conn()`).
 *
 * A node carries a non-empty list of entries. The first names the owner, who always has full
 * access, and its letter is the default for every domain without an entry of its own; later entries
 * grant a specific domain its letter. Dom0, the control domain, bypasses all checks.
 */
import { PvblkError } from '@pvblk/shared';

export type PermLetter = 'n' | 'r' | 'w' | 'b';

export interface PermEntry {
  domid: number;
  perm: PermLetter;
}

/** The privileged control domain. */
export const DOM0 = 0;
/** DOMID_FIRST_RESERVED (xen.h): ids from here up are DOMID_SELF, DOMID_IO, ... never a guest. */
export const DOMID_FIRST_RESERVED = 0x7ff0;
/** The wire carries perm domids as decimal 0..65535 (xenstore.txt). */
const PERM_DOMID_MAX = 0xffff;

/** libxenstore's XS_PERM_* bit values. */
export const XS_PERM_NONE = 0x00;
export const XS_PERM_READ = 0x01;
export const XS_PERM_WRITE = 0x02;
export const XS_PERM_OWNER = 0x08;

const LETTER_BITS: Record<PermLetter, number> = {
  n: XS_PERM_NONE,
  r: XS_PERM_READ,
  w: XS_PERM_WRITE,
  b: XS_PERM_READ | XS_PERM_WRITE,
};

const PERM_STRING = /^([nrwb])(0|[1-9][0-9]{0,4})$/;

export function isPrivileged(domid: number): boolean {
  return domid === DOM0;
}

/** A domid a connection can be authenticated as. */
export function isValidDomid(domid: unknown): domid is number {
  return typeof domid === 'number' && Number.isInteger(domid) && domid >= 0 && domid < DOMID_FIRST_RESERVED;
}

export function assertDomid(domid: unknown, what: string): asserts domid is number {
  if (!isValidDomid(domid))
    throw new PvblkError('EINVAL', `${what} ${String(domid)} is not a valid domain id`);
}

/** Parses one `n<domid>`/`r<domid>`/`w<domid>`/`b<domid>` string. */
export function parsePerm(s: string): PermEntry {
  const m = typeof s === 'string' ? PERM_STRING.exec(s) : null;
  const domid = m ? Number(m[2]) : NaN;
  if (!m || domid > PERM_DOMID_MAX)
    throw new PvblkError('EINVAL', `bad permission string ${JSON.stringify(s)}: want [nrwb]<domid 0..65535>`);
  return { domid, perm: m[1] as PermLetter };
}

export function formatPerm(e: PermEntry): string {
  return `${e.perm}${e.domid}`;
}

export function parsePerms(list: readonly string[]): PermEntry[] {
  return validatePerms(list.map(parsePerm));
}

export function formatPerms(perms: readonly PermEntry[]): string[] {
  return perms.map(formatPerm);
}

/** Checks a caller-supplied list and returns a private copy (nodes must not alias caller objects). */
export function validatePerms(perms: readonly PermEntry[]): PermEntry[] {
  if (!Array.isArray(perms) || perms.length === 0)
    throw new PvblkError('EINVAL', 'a permission list needs at least the owner entry');
  return perms.map((e, i) => {
    const ok =
      e !== null &&
      typeof e === 'object' &&
      Number.isInteger(e.domid) &&
      e.domid >= 0 &&
      e.domid <= PERM_DOMID_MAX &&
      Object.hasOwn(LETTER_BITS, e.perm);
    if (!ok) throw new PvblkError('EINVAL', `bad permission entry ${i}: ${JSON.stringify(e)}`);
    return { domid: e.domid, perm: e.perm };
  });
}

export function ownerOf(perms: readonly PermEntry[]): number {
  return perms[0].domid;
}

/** XS_PERM_* bits `domid` has on a node with `perms` (perm_for_conn without SET_TARGET). */
export function accessFor(domid: number, perms: readonly PermEntry[]): number {
  if (isPrivileged(domid) || perms[0].domid === domid) return XS_PERM_READ | XS_PERM_WRITE | XS_PERM_OWNER;
  for (let i = 1; i < perms.length; i++) if (perms[i].domid === domid) return LETTER_BITS[perms[i].perm];
  return LETTER_BITS[perms[0].perm];
}

export function hasAccess(domid: number, perms: readonly PermEntry[], want: number): boolean {
  return (accessFor(domid, perms) & want) === want;
}

/** Permissions of a node created by `creator` under a node with `parentPerms` (construct_node):
 * the list is inherited, and an unprivileged creator becomes the owner. Dom0 keeps the parent's
 * owner, so the toolstack creating inside a guest's home leaves the guest owning the new nodes. */
export function inheritPerms(parentPerms: readonly PermEntry[], creator: number): PermEntry[] {
  const perms = parentPerms.map((e) => ({ ...e }));
  if (!isPrivileged(creator)) perms[0] = { domid: creator, perm: perms[0].perm };
  return perms;
}
