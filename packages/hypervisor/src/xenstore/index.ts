export { XenStore } from './store.ts';
export type { DumpEntry, WatchEventHandler, XenStoreOptions, XenStoreStats } from './store.ts';
export type { PermEntry, PermLetter } from './perms.ts';
export {
  accessFor,
  DOM0,
  DOMID_FIRST_RESERVED,
  formatPerm,
  formatPerms,
  hasAccess,
  isPrivileged,
  isValidDomid,
  parsePerm,
  parsePerms,
  XS_PERM_NONE,
  XS_PERM_OWNER,
  XS_PERM_READ,
  XS_PERM_WRITE,
} from './perms.ts';
export {
  canonicalize,
  domainPath,
  isSpecialPath,
  SPECIAL_PATHS,
  XENSTORE_ABS_PATH_MAX,
  XENSTORE_REL_PATH_MAX,
} from './path.ts';
export type { CanonicalPath, SpecialPath } from './path.ts';
export { DEFAULT_QUOTA } from './quota.ts';
export type { XenStoreQuota } from './quota.ts';
