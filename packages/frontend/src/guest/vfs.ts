/**
 * What guest tools (dd, md5sum, cat, ...) see: a tiny VFS with Linux semantics. Paths are guest
 * paths (`/dev/xvda`, `/dev/zero`, `/tmp/x`); the implementation maps device nodes to the guest's
 * block layer and character devices, and ordinary files into the guest's root directory.
 *
 * Errors are data: an errno name, as a syscall would return it. Nothing here throws for an I/O
 * error; a thrown exception means a bug.
 */
import { GLIBC_STRERROR } from '@pvblk/shared';
import type { FadviseAdvice } from '../block/readahead.ts';

export type Errno =
  | 'EIO'
  | 'ENOSPC'
  | 'ENOENT'
  | 'EACCES'
  | 'EINVAL'
  | 'EISDIR'
  | 'ENOTDIR'
  | 'EROFS'
  | 'EBADF'
  | 'EEXIST'
  | 'EILSEQ' // what a read gets when PI verification fails (BLK_STS_PROTECTION)
  | 'EOPNOTSUPP'
  | 'ENODEV'
  | 'ENXIO'
  | 'EPERM' // a write to a block device set read-only (BLKROSET), as generic_write_checks() answers
  | 'ENOTTY' // an ioctl the file does not know
  | 'EBUSY'
  | 'EFBIG' // ftruncate(2) past the host file system's largest file
  | 'ETIMEDOUT' // fio's max_latency and latency target (lat_fatal())
  | 'ENAMETOOLONG';

/** strerror(3) texts, as glibc prints them. */
export const STRERROR: Readonly<Record<Errno, string>> = GLIBC_STRERROR;

export type IoResult = { ok: true; n: number } | { ok: false; errno: Errno };

export interface OpenFlags {
  read: boolean;
  write: boolean;
  /** O_CREAT */
  create?: boolean;
  /** O_TRUNC */
  truncate?: boolean;
  /** O_DIRECT: bypass the page cache; offsets and lengths must be aligned to the logical block size. */
  direct?: boolean;
  /** O_SYNC / O_DSYNC: each write is durable before it returns. */
  sync?: boolean;
}

export interface GuestFile {
  readonly path: string;
  readonly kind: 'blockdev' | 'chardev' | 'file';
  /** Size in bytes for block devices and files; null for character devices. */
  size(): number | null;
  /** Reads up to buf.length bytes at offset; n = 0 at end of file/device. */
  pread(buf: Uint8Array, offset: number): Promise<IoResult>;
  /** Writes buf at offset; at the end of a block device returns a short count, then ENOSPC. */
  pwrite(buf: Uint8Array, offset: number): Promise<IoResult>;
  /** Writes back dirty data and flushes the device cache. */
  fsync(): Promise<IoResult>;
  /**
   * ftruncate(2) of an ordinary file opened for writing: its length becomes `size`, growing with a
   * hole (no data is written) or cutting; absent where Linux's ftruncate fails (devices).
   */
  ftruncate?(size: number): Promise<IoResult>;
  /** Releases the file; for a block device, writes back dirty pages first (last close), like blkdev_release. */
  close(): Promise<IoResult>;
  /** ioctl(2) on a block device (what blockdev(8) uses); other files answer ENOTTY. */
  ioctl?(cmd: BlockIoctl, arg?: number): Promise<IoctlResult>;
  /** BLKDISCARD of `len` bytes at `start` on a block device; absent where Linux answers ENOTTY. */
  discard?(start: number, len: number): Promise<IoResult>;
  /** posix_fadvise(2) over the whole file, for the advice that changes its readahead; absent where none. */
  fadvise?(advice: FadviseAdvice): IoResult;
}

/** The block device ioctls of <linux/fs.h> the guest's tools use. */
export type BlockIoctl =
  | 'BLKROSET'
  | 'BLKROGET'
  | 'BLKGETSIZE'
  | 'BLKGETSIZE64'
  | 'BLKSSZGET'
  | 'BLKPBSZGET'
  | 'BLKBSZGET'
  | 'BLKFLSBUF'
  | 'BLKRRPART';

export type IoctlResult = { ok: true; value: number } | { ok: false; errno: Errno };

export type DirentKind = 'dir' | 'file' | 'blockdev' | 'chardev' | 'socket' | 'symlink' | 'other';

export interface Dirent {
  name: string;
  kind: DirentKind;
}

export interface GuestVfs {
  open(path: string, flags: OpenFlags): Promise<GuestFile | { errno: Errno }>;
  /** The entries of a directory (without `.` and `..`), or ENOENT/ENOTDIR/EACCES. */
  readdir(path: string): Promise<Dirent[] | { errno: Errno }>;
}

/** A command's standard input: the read end of a pipe. */
export interface GuestInput {
  /** The next bytes written into the pipe; null once the writer has finished and all was read. */
  read(): Promise<Uint8Array | null>;
}

/**
 * The signals a user can interrupt a guest command with, by number: the control socket carries their
 * names (`pvblk guest` and `pvblk run` forward Ctrl-C, SIGTERM and SIGHUP), and the command's
 * `signal` is aborted with the name as its reason.
 */
export const COMMAND_SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
export type CommandSignal = keyof typeof COMMAND_SIGNALS;

/** The signal an abort reason names; Ctrl-C's for any other reason (an abort without one). */
export function commandSignal(reason: unknown): CommandSignal {
  return typeof reason === 'string' && Object.hasOwn(COMMAND_SIGNALS, reason)
    ? (reason as CommandSignal)
    : 'SIGINT';
}

/** Output channels of a guest command; text is written as-is (commands add their own newlines). */
export interface CommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Standard input when the command reads a pipe (`a | b`); absent otherwise (no terminal here). */
  stdin?: GuestInput;
  /**
   * Aborted when the user interrupts the command (Ctrl-C on `pvblk guest`; the reason names the
   * signal, see COMMAND_SIGNALS), or when the command writes into a pipe whose reader has finished
   * (SIGPIPE).
   */
  signal: AbortSignal;
  /**
   * Resolves once what was written to stdout has room to go: a pipe's reader has taken all but
   * PIPE_BUF_MAX of it, a redirection's writes have caught up. A command that may write without end
   * (cat, dd) waits on it after each write, as a writer blocks on a full pipe.
   */
  drain?: () => Promise<void>;
  /**
   * The same for stderr: what was said there has room to go (the console's client has taken all
   * but CONTROL_OUTPUT_HIGH of it). A command that may say a line per I/O (fio) waits on it.
   */
  stderrDrain?: () => Promise<void>;
}

export interface GuestCommandContext {
  vfs: GuestVfs;
  /** Monotonic clock in nanoseconds, injectable so tests can fix the durations dd prints. */
  now(): bigint;
}

/** A guest command: argv[0] is the command name; resolves to the exit status. */
export type GuestCommand = (argv: string[], io: CommandIo, ctx: GuestCommandContext) => Promise<number>;
