/**
 * The errno a client reports for an HTTP answer of the host's management API: the one place where a
 * status becomes an error name, so a refused request reads `ENOSPC: …` or `EINVAL: …`, never
 * `EACCES` for everything.
 *
 * The API's error bodies carry the errno the host hit (`{"error": "EROFS", "message": …}`); a POSIX
 * errno name there is the most precise answer and wins. Otherwise the status class decides.
 */
import { isXsErrorName, type ErrorCode } from '@pvblk/shared';

const BY_STATUS: Record<number, ErrorCode> = {
  400: 'EINVAL',
  401: 'EACCES',
  403: 'EACCES',
  404: 'ENOENT',
  405: 'EINVAL',
  408: 'ETIMEDOUT',
  409: 'EEXIST',
  413: 'E2BIG',
  422: 'EINVAL',
  423: 'EBUSY',
  429: 'EAGAIN',
  503: 'EAGAIN',
  504: 'ETIMEDOUT',
  507: 'ENOSPC',
};

export function errnoForHttpStatus(status: number, bodyError?: unknown): ErrorCode {
  if (typeof bodyError === 'string' && isXsErrorName(bodyError)) return bodyError;
  return BY_STATUS[status] ?? (status >= 500 ? 'EIO' : status >= 400 ? 'EINVAL' : 'EPROTO');
}
