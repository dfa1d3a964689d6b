/**
 * XenStore path rules (docs/misc/xenstore.txt, xenstored `canonicalize()`).
 *
 * Paths are '/'-separated and absolute once canonicalised. A path without a leading '/' is
 * relative to the caller's home `/local/domain/<domid>`; because the caller is always the
 * authenticated domain of the connection, a guest can never name another domain's home implicitly.
 */
import { domainPath, PvblkError } from '@pvblk/shared';

/** XENSTORE_ABS_PATH_MAX (xs_wire.h): no canonical path may be longer. */
export const XENSTORE_ABS_PATH_MAX = 3072;
/** XENSTORE_REL_PATH_MAX (xs_wire.h): the bound on a relative path, and xenstored's default
 * "path-max" quota for unprivileged domains on the part after `/local/domain/<n>/`. */
export const XENSTORE_REL_PATH_MAX = 2048;

/** The only '@' names xenstored invents events for. */
export const SPECIAL_PATHS = ['@introduceDomain', '@releaseDomain'] as const;
export type SpecialPath = (typeof SPECIAL_PATHS)[number];

export interface CanonicalPath {
  /** Absolute path, or a special '@' name. */
  readonly path: string;
  /** The caller gave a relative path: watch events for it are reported relative too. */
  readonly relative: boolean;
}

export interface CanonicalizeOptions {
  /** Accept `@introduceDomain`/`@releaseDomain` (watch, unwatch and the perms calls). */
  allowSpecial?: boolean;
  /** Dom0 is not subject to the per-domain path-max quota. */
  privileged?: boolean;
}

const VALID_CHARS = /^[A-Za-z0-9\-/_@]+$/;
// xenstored matches the home prefix with sscanf("%5u"), so at most five digits.
const LOCAL_DOMAIN_PREFIX = /^\/local\/domain\/\d{1,5}\//;

export { domainPath };

export function isSpecialPath(path: string): path is SpecialPath {
  return (SPECIAL_PATHS as readonly string[]).includes(path);
}

/** Validates `path` for `caller` and returns its absolute form. Throws EINVAL naming the problem. */
export function canonicalize(caller: number, path: string, opts: CanonicalizeOptions = {}): CanonicalPath {
  const bad = (why: string): PvblkError =>
    new PvblkError('EINVAL', `invalid xenstore path ${JSON.stringify(path)} from domain ${caller}: ${why}`);
  if (typeof path !== 'string' || path.length === 0) throw bad('empty path');
  if (!VALID_CHARS.test(path)) throw bad('only [A-Za-z0-9-/_@] are allowed');
  if (path.startsWith('@')) {
    if (!opts.allowSpecial) throw bad('special @ paths are only valid for watches and permissions');
    if (!isSpecialPath(path)) throw bad(`the only special paths are ${SPECIAL_PATHS.join(' and ')}`);
    return { path, relative: false };
  }
  const relative = !path.startsWith('/');
  if (relative && path.length > XENSTORE_REL_PATH_MAX)
    throw bad(`relative path longer than ${XENSTORE_REL_PATH_MAX} bytes`);
  const abs = relative ? `${domainPath(caller)}/${path}` : path;
  if (abs.includes('//')) throw bad('doubled slash');
  if (abs.length > 1 && abs.endsWith('/')) throw bad('trailing slash');
  if (abs.length > XENSTORE_ABS_PATH_MAX) throw bad(`longer than ${XENSTORE_ABS_PATH_MAX} bytes`);
  if (!opts.privileged) {
    // xenstored's path-max quota: a guest may not build arbitrarily deep trees anywhere, its own
    // home (or any /local/domain/<n>) only being exempt for the prefix itself.
    const local = LOCAL_DOMAIN_PREFIX.exec(abs);
    const counted = abs.length - (local ? local[0].length : 0);
    if (counted > XENSTORE_REL_PATH_MAX)
      throw bad(`longer than the ${XENSTORE_REL_PATH_MAX}-byte path limit for unprivileged domains`);
  }
  return { path: abs, relative };
}

/** Parent of an absolute path; '/' for top-level nodes (and, as in xenstored, for '@' names). */
export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

/** Last component of an absolute path other than '/'. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

/** xenstore.txt's "child" relation: equal, or below; every tree path is below '/' ('@' names are not). */
export function isSelfOrDescendant(path: string, ancestor: string): boolean {
  if (ancestor === '/') return path.startsWith('/');
  return path === ancestor || (path.startsWith(ancestor) && path[ancestor.length] === '/');
}
