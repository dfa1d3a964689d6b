/**
 * strerror(3)'s texts as glibc prints them, by errno name: one table for the guest's tools, the CLI's
 * file errors and XenStore's answers (EQUOTA is XenStore's name for EDQUOT).
 */
export const GLIBC_STRERROR = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  E2BIG: 'Argument list too long',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  ENOTTY: 'Inappropriate ioctl for device',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  ENAMETOOLONG: 'File name too long',
  ENOSYS: 'Function not implemented',
  ENOTEMPTY: 'Directory not empty',
  ELOOP: 'Too many levels of symbolic links',
  EILSEQ: 'Invalid or incomplete multibyte or wide character',
  EOPNOTSUPP: 'Operation not supported',
  ETIMEDOUT: 'Connection timed out',
  EDQUOT: 'Disk quota exceeded',
  EQUOTA: 'Disk quota exceeded',
} as const;

/** The text of an errno name, or undefined for one the table does not have. */
export function strerror(name: string): string | undefined {
  return Object.hasOwn(GLIBC_STRERROR, name)
    ? GLIBC_STRERROR[name as keyof typeof GLIBC_STRERROR]
    : undefined;
}
