/**
 * fio's non-fatal errors (td_error.c, and options.c's `continue_on_error` and `ignore_error`): which
 * errors a job counts and goes on after instead of stopping. An error is of one kind — a read's, a
 * write's, or a verify failure's (EILSEQ, whatever the direction: a PI error on a read is one too) —
 * and is non-fatal when the job continues on that kind and the kind's list holds its errno.
 */
import { failedParsing, fioChoice } from './fio-parse.ts';

/** td_error.h's error_type_bit. */
export type ErrorKind = 0 | 1 | 2;
export const ERROR_READ: ErrorKind = 0;
export const ERROR_WRITE: ErrorKind = 1;
export const ERROR_VERIFY: ErrorKind = 2;

/** EILSEQ: fio's verify failures, and what a block layer returns for a protection-information error. */
const EILSEQ = 84;

/** td_error.c's __NON_FATAL_ERR: a kind's list when `ignore_error` gives it none. */
const NON_FATAL_DEFAULT: readonly number[] = [5, EILSEQ];

/** td_error_type(): a verify failure is its own kind; any other error is its direction's. */
export function errorKind(write: boolean, errno: number): ErrorKind {
  if (errno === EILSEQ) return ERROR_VERIFY;
  return write ? ERROR_WRITE : ERROR_READ;
}

export interface ErrorPolicy {
  continueOnError: number;
  ignoreError: readonly [read: number[] | null, write: number[] | null, verify: number[] | null];
}

/** td_non_fatal_error(): whether the job counts `errno` of `kind` and goes on. */
export function nonFatal(p: ErrorPolicy, kind: ErrorKind, errno: number): boolean {
  if (!(p.continueOnError & (1 << kind))) return false;
  return (p.ignoreError[kind] ?? NON_FATAL_DEFAULT).includes(errno);
}

/** options.c's `continue_on_error` values, in its order. */
const CONTINUE_VALUES = [
  ['none', 'Exit when an error is encountered'],
  ['read', 'Continue on read errors only'],
  ['write', 'Continue on write errors only'],
  ['io', 'Continue on any IO errors'],
  ['verify', 'Continue on verify errors only'],
  ['all', 'Continue on all io and verify errors'],
  ['0', "Alias for 'none'"],
  ['1', "Alias for 'all'"],
] as const;
const CONTINUE_BITS: Record<(typeof CONTINUE_VALUES)[number][0], number> = {
  none: 0,
  read: 1,
  write: 2,
  io: 3,
  verify: 4,
  all: 0xffff,
  '0': 0,
  '1': 0xffff,
};

export function parseContinueOnError(raw: string): number {
  return CONTINUE_BITS[fioChoice('continue_on_error', raw, CONTINUE_VALUES)];
}

/** options.c's str2error(): the names `ignore_error` knows, errno 1 to 34 in order. */
const ERROR_NAMES = [
  'EPERM',
  'ENOENT',
  'ESRCH',
  'EINTR',
  'EIO',
  'ENXIO',
  'E2BIG',
  'ENOEXEC',
  'EBADF',
  'ECHILD',
  'EAGAIN',
  'ENOMEM',
  'EACCES',
  'EFAULT',
  'ENOTBLK',
  'EBUSY',
  'EEXIST',
  'EXDEV',
  'ENODEV',
  'ENOTDIR',
  'EISDIR',
  'EINVAL',
  'ENFILE',
  'EMFILE',
  'ENOTTY',
  'ETXTBSY',
  'EFBIG',
  'ENOSPC',
  'ESPIPE',
  'EROFS',
  'EMLINK',
  'EPIPE',
  'EDOM',
  'ERANGE',
];

/**
 * glibc's atoi(): (int) strtol() — leading blanks, a sign, then digits as far as they go (0 for
 * none), clamped to a 64-bit long and then cut to an int, so that 4294967301 is 5.
 */
function atoi(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?)([0-9]*)/.exec(s)!;
  let v = m[2] ? BigInt(m[2]) : 0n;
  if (m[1] === '-') v = -v;
  const long = v > 2n ** 63n - 1n ? 2n ** 63n - 1n : v < -(2n ** 63n) ? -(2n ** 63n) : v;
  return Number(BigInt.asIntN(32, long));
}

/**
 * `ignore_error=READ,WRITE,VERIFY` (str_ignore_error_cb()): per kind, errors separated by `:`, each a
 * name str2error() knows or a number (its absolute value, as atoi() reads it). A list ends at an empty
 * entry; a kind with a list is continued on (its bit set in `continue_on_error`), one without keeps
 * fio's default list.
 */
export function applyIgnoreError(p: ErrorPolicy, raw: string): void {
  // strip_blank_end() cuts the value; fio strips its front too but splits the string from where it
  // began, so a leading blank stays (and makes a name unknown)
  const value = raw.replace(/[ \t\r\n]+$/, '');
  const lists = [...p.ignoreError] as [number[] | null, number[] | null, number[] | null];
  value.split(',').forEach((text, kind) => {
    if (kind > ERROR_VERIFY) failedParsing('ignore_error', raw, 'Illegal error type');
    const errors: number[] = [];
    for (const name of text.split(':')) {
      if (!name) break;
      const errno = name[0] === 'E' ? ERROR_NAMES.indexOf(name) + 1 : Math.abs(atoi(name));
      if (!errno) failedParsing('ignore_error', raw, `Unknown error ${name}, please use number value`);
      errors.push(errno);
    }
    if (errors.length) {
      lists[kind] = errors;
      p.continueOnError |= 1 << kind;
      // an empty list leaves fio's default where none was given, and empties one given before
    } else if (lists[kind]) lists[kind] = [];
  });
  p.ignoreError = lists;
}

/** What becomes of an I/O's error (io_completed(), io_queue_event(), break_on_this_error()). */
export interface IoErrorOutcome {
  /** Counted and cleared, and the job goes on. */
  goesOn: boolean;
  /** fio's `fio: io_u error on file …` line is said. */
  said: boolean;
  /** The call that sets td->verror (never over an error the job already has), or none. */
  verror: 'io_u error' | 'xfer' | null;
  /** Counted although it ends the job: break_on_this_error()'s fatal branch, for its kind. */
  countedFatal: boolean;
}

/**
 * The rule for an I/O that failed with `errno`. A non-fatal one goes on; __io_u_log_error() says it
 * only with error_dump and then sets td->verror, else a synchronous engine's fio_io_end() sets it
 * ("xfer") and an asynchronous engine's nothing. A synchronous engine's errors reach
 * break_on_this_error(), which counts even a fatal one when the job continues on its kind — but not
 * in its verify phase, where io_queue_event() returns first and do_verify() stops on any error.
 */
export function ioErrorOutcome(
  p: ErrorPolicy & { errorDump: boolean },
  io: { write: boolean; errno: number; synchronous: boolean; verifyPhase: boolean },
): IoErrorOutcome {
  const kind = errorKind(io.write, io.errno);
  const dumped = p.errorDump ? ('io_u error' as const) : null;
  if (nonFatal(p, kind, io.errno)) {
    if (io.synchronous && io.verifyPhase)
      return { goesOn: false, said: p.errorDump, verror: dumped ?? 'xfer', countedFatal: false };
    return {
      goesOn: true,
      said: p.errorDump,
      verror: dumped ?? (io.synchronous ? 'xfer' : null),
      countedFatal: false,
    };
  }
  return {
    goesOn: false,
    said: true,
    verror: 'io_u error',
    countedFatal: countsFatal(p, io.synchronous && !io.verifyPhase, io.write, io.errno),
  };
}

/**
 * break_on_this_error()'s count of an error that ends the job, which only a synchronous engine's
 * errors reach: when the job continues on its kind. A verify failure or a latency over its bound
 * reaches it as errno 1 (io_u_sync_complete()'s -1 taken for an errno), of the I/O's direction.
 */
export function countsFatal(p: ErrorPolicy, synchronous: boolean, write: boolean, errno: number): boolean {
  return synchronous && (p.continueOnError & (1 << errorKind(write, errno))) !== 0;
}
