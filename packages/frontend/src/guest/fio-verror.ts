/**
 * A job's error as fio keeps it (td_verror()): the errno's number, and the message naming where fio
 * 3.36 sets it.
 */
import { STRERROR, type Errno } from './vfs.ts';

export const ERRNO_NUM: Readonly<Record<Errno, number>> = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENOTTY: 25,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  ENAMETOOLONG: 36,
  EILSEQ: 84,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
};

/**
 * Where fio 3.36 calls td_verror() for each error a job here can have: the message it keeps
 * (`td->verror`, said in the job's header and its `fio: pid=…, err=` line) names the call's file and
 * line (fio.h's `__td_verror()`: `file:%s:%d, func=%s, error=%s`).
 */
const VERROR_AT = {
  'io_u error': 'io_u.c:1896', // __io_u_log_error(): an I/O's error
  xfer: 'engines/sync.c:126', // fio_io_end(): a synchronous engine's failed call
  io_u_sync_complete: 'io_u.c:2175', // a verify failure, synchronous engine
  io_u_queued_complete: 'io_u.c:2213', // a verify failure, asynchronous engine
  td_io_queue: 'backend.c:288', // fio_io_sync(): a failed fsync
  'td_io_queue engine': 'ioengines.c:405', // td_io_queue(): an error the engine left to it (libaio's inline sync)
  open: 'filesetup.c:794', // file_open(): `open(<file>)`
  'iomem allocation': 'memory.c:334',
  'max latency exceeded': 'io_u.c:1449', // lat_fatal(): max_latency, or a latency target at depth 1
  check_min_rate: 'backend.c:1147', // do_io(): rate_min or rate_iops_min not met
} as const;
export type VerrorFunc = keyof typeof VERROR_AT;

export function verror(func: VerrorFunc, error: string, name: string = func): string {
  return `file:${VERROR_AT[func]}, func=${name}, error=${error}`;
}

/** strerror() of an errno's number, as fio prints a job's first error: 0 is glibc's `Success`. */
export function errnoText(num: number): string {
  if (num === 0) return 'Success';
  const name = (Object.keys(ERRNO_NUM) as Errno[]).find((e) => ERRNO_NUM[e] === num);
  return name ? STRERROR[name] : `Unknown error ${num}`;
}
