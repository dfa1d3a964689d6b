/**
 * The one error type of pvblk. Every failure that crosses a module boundary carries a stable
 * `code` named after the Xen/Linux name of the condition, so tests and users can match on it
 * without parsing prose. Guest-visible I/O errors are *not* thrown: they travel as statuses
 * (BLKIF_RSP_*, sense data, errno values in results). This type is for API misuse, protocol
 * violations, refused hypercalls and bad configuration.
 */

/** XenStore errors travel as errno names (xs_wire.h table order; new names only ever appended). */
export const XS_ERRORS = [
  'EINVAL',
  'EACCES',
  'EEXIST',
  'EISDIR',
  'ENOENT',
  'ENOMEM',
  'ENOSPC',
  'EIO',
  'ENOTEMPTY',
  'ENOSYS',
  'EROFS',
  'EBUSY',
  'EAGAIN',
  'EISCONN',
  'E2BIG',
  'EPERM',
] as const;
export type XsErrorName = (typeof XS_ERRORS)[number];

export type ErrorCode =
  | XsErrorName
  // grant table statuses (grant_table.h GNTST_*), used when a whole hypercall fails
  | 'GNTST_general_error'
  | 'GNTST_bad_domain'
  | 'GNTST_bad_gntref'
  | 'GNTST_bad_handle'
  | 'GNTST_permission_denied'
  | 'GNTST_bad_copy_arg'
  | 'GNTST_no_space'
  // blkif response statuses when surfaced as an exception by a convenience API
  | 'BLKIF_RSP_ERROR'
  | 'BLKIF_RSP_EOPNOTSUPP'
  // transport and process-level conditions
  | 'EPROTO' // malformed wire frame or message
  | 'EMSGSIZE' // frame over the size limit
  | 'ECONNREFUSED'
  | 'ECONNRESET'
  | 'ETIMEDOUT'
  | 'ESRCH' // no such domain
  | 'ENODEV'
  | 'EBADF'
  | 'ENOTCONN'
  | 'EUSAGE' // bad CLI arguments or configuration
  | 'EFAULT'; // a hostile or broken peer violated the protocol

export class PvblkError extends Error {
  readonly code: ErrorCode;
  /** The message without its code: for a caller that words the error its own way. */
  readonly detail: string;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'PvblkError';
    this.code = code;
    this.detail = message;
  }
}

export function isPvblkError(e: unknown, code?: ErrorCode): e is PvblkError {
  return e instanceof PvblkError && (code === undefined || e.code === code);
}

export function isXsErrorName(s: string): s is XsErrorName {
  return (XS_ERRORS as readonly string[]).includes(s);
}
