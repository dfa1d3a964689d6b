/**
 * Where a process's log lines go: its stdout, written without ever waiting for whoever reads it.
 *
 * A pvblk process's stdout is a socket or pipe read by `pvblk up`/`run` or by docker. When that
 * reader stops (`pvblk up` stopped with Ctrl-Z or `kill -STOP`, or blocked on a terminal the operator
 * paused with Ctrl-S), a blocking write stops the process that logs: Dom0 stopped serving every guest
 * until the console read again. Linux does not let a slow console hold up printk either: messages go
 * to the kernel's ring buffer, and a console that falls behind misses some, told so by a line
 * "** N printk messages dropped **" where they were.
 *
 * So each line is written with one non-blocking write(2). What the reader does not take at once is
 * held, in order, and written as it takes more (tried every `retryMs`, and only then: a write that
 * would fail with EAGAIN costs Node an exception). Once `holdBytes` are held, new lines are dropped
 * and counted until everything held is out; then `droppedLine(n)` is written where they would have
 * been. A line the reader must see (`writeKept`: the answer to the supervisor's flush, which it
 * waits for) is held past the bound instead. Nothing is ever in flight between the process and the
 * kernel — every write is a synchronous call that takes what it can — so at exit what is held is
 * written there and then, waiting up to `exitWaitMs` for the reader: 2 s, under the 5 s that `pvblk
 * up` and compose give a process to stop before SIGKILL. (pino's own asynchronous destination, tried
 * for this, lost the chunk it had in flight when the process exited: a process's last words.) Lines
 * written after that, by later 'exit' listeners, are written the same way at once.
 *
 * The descriptor has to be non-blocking for any of this. Node makes a pipe's or socket's stdout
 * non-blocking when it wraps it as `process.stdout` (libuv's `uv_pipe_open` sets O_NONBLOCK); in
 * pvblk's processes, started with the TypeScript loader, the flag is already set before any of
 * pvblk's code runs (`/proc/self/fdinfo/1`), and it is not without a loader. A terminal Node keeps
 * blocking. So a pipe or terminal is opened again through /proc/self/fd with O_NONBLOCK, a description
 * of the sink's own that depends on neither (a terminal the operator paused with Ctrl-S no longer
 * holds the process either). A socket cannot be opened so: for one, or without /proc, the sink
 * touches `process.stdout` and has Node set the flag. A file never makes anyone wait and is written
 * as it is.
 */
import { constants, fstatSync, openSync, writeSync, writevSync } from 'node:fs';

export interface LogSinkOptions {
  /** Bytes held for a reader that is behind before lines are dropped (default 4 MiB). */
  holdBytes?: number;
  /** How often held lines are tried again (default 10 ms). */
  retryMs?: number;
  /** How long an exiting process waits for its reader to take what is held (default 2 s). */
  exitWaitMs?: number;
}

export const DEFAULT_LOG_HOLD_BYTES = 4 * 1024 * 1024;

/** The line written in place of `n` dropped ones (a JSON record unless the logger renders them). */
export type DroppedLine = (n: number) => string;

/** The record that stands where `n` lines were dropped (`name`: the process's logger name). */
export function droppedRecord(n: number, name?: string): Record<string, unknown> {
  return {
    level: 40,
    time: Date.now(),
    ...(name === undefined ? {} : { name }),
    event: 'log-dropped',
    dropped: n,
    msg: `** ${n} log records dropped: stdout was not being read **`,
  };
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Errors that mean nobody will ever read what is written: the sink stops writing. */
const READER_GONE = new Set(['EPIPE', 'ECONNRESET', 'ENOTCONN', 'EBADF']);

export class LogSink {
  private readonly held: Buffer[] = [];
  private heldBytes = 0;
  /** Lines dropped since the last one written or held; counting goes on until nothing is held. */
  private dropped = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The reader is gone for good (EPIPE, a closed descriptor): nothing more is written. */
  private gone = false;
  private readonly holdBytes: number;
  private readonly retryMs: number;
  private readonly exitWaitMs: number;
  droppedLine: DroppedLine = (n) => JSON.stringify(droppedRecord(n)) + '\n';

  private readonly fd: number;
  /** The process is exiting: what is written is written at once, waiting for the reader. */
  private exiting = false;

  constructor(fd: number, opts: LogSinkOptions = {}) {
    this.fd = nonBlocking(fd);
    this.holdBytes = opts.holdBytes ?? DEFAULT_LOG_HOLD_BYTES;
    this.retryMs = opts.retryMs ?? 10;
    this.exitWaitMs = opts.exitWaitMs ?? 2_000;
    process.on('exit', () => this.flushNow());
  }

  /** Bytes waiting for the reader. */
  get pending(): number {
    return this.heldBytes;
  }

  /** One or more whole lines (pino calls this with each record); dropped when too much is held. */
  write(text: string): boolean {
    if (this.gone) return true;
    if (this.heldBytes === 0) {
      // the common case: the reader keeps up and the line goes at once
      const n = this.tryWrite(text);
      if (!this.gone && n < Buffer.byteLength(text)) this.hold(Buffer.from(text).subarray(n));
    } else if (this.dropped > 0 || this.heldBytes + Buffer.byteLength(text) > this.holdBytes) {
      this.dropped++;
    } else {
      this.hold(Buffer.from(text));
    }
    this.after();
    return true;
  }

  /** Lines the reader must get, held past the bound if need be (after the notice of any dropped). */
  writeKept(text: string): void {
    if (this.gone) return;
    if (this.heldBytes === 0) {
      this.write(text);
      return;
    }
    if (this.dropped > 0) {
      this.hold(Buffer.from(this.droppedLine(this.dropped)));
      this.dropped = 0;
    }
    this.hold(Buffer.from(text));
    this.after();
  }

  /**
   * Writes everything held, waiting up to `exitWaitMs` for the reader; from then on every line is
   * written so. Run at 'exit', and by whoever ends the process another way (a signal re-raised).
   */
  flushNow(): void {
    this.exiting = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const deadline = Date.now() + this.exitWaitMs;
    for (;;) {
      this.drain();
      if (this.gone || (this.heldBytes === 0 && this.dropped === 0) || Date.now() >= deadline) return;
      Atomics.wait(sleeper, 0, 0, 5);
    }
  }

  private after(): void {
    if (this.exiting) this.flushNow();
    else this.schedule();
  }

  private hold(buf: Buffer): void {
    this.held.push(buf);
    this.heldBytes += buf.length;
  }

  /** Bytes of `text` the descriptor took (0 when it would block or the reader is gone). */
  private tryWrite(text: string): number {
    try {
      return writeSync(this.fd, text);
    } catch (e) {
      return this.failed(e);
    }
  }

  private tryWritev(bufs: Buffer[]): number {
    try {
      return writevSync(this.fd, bufs);
    } catch (e) {
      return this.failed(e);
    }
  }

  private failed(e: unknown): number {
    // EAGAIN: the reader is behind; ENOSPC, EIO, …: a file that may take more later. Held, tried again.
    if (!READER_GONE.has(String((e as NodeJS.ErrnoException).code))) return 0;
    this.gone = true;
    this.held.length = 0;
    this.heldBytes = 0;
    return 0;
  }

  /** Writes what the reader takes now, and the dropped-lines notice once all that was held is out. */
  private drain(): void {
    while (!this.gone) {
      if (this.heldBytes === 0) {
        this.held.length = 0;
        if (this.dropped === 0) return;
        this.hold(Buffer.from(this.droppedLine(this.dropped)));
        this.dropped = 0;
      }
      // up to 64 held lines in one writev(2): a reader that is behind gets them in few calls
      const batch = this.held.slice(0, 64);
      const want = batch.reduce((sum, b) => sum + b.length, 0);
      const n = this.tryWritev(batch);
      if (this.gone) return;
      this.heldBytes -= n;
      let took = n;
      let whole = 0;
      while (whole < batch.length && took >= batch[whole].length) took -= batch[whole++].length;
      if (whole < batch.length && took > 0) this.held[whole] = batch[whole].subarray(took);
      this.held.splice(0, whole);
      if (n < want) return;
    }
  }

  private schedule(): void {
    if (this.timer || this.gone || (this.heldBytes === 0 && this.dropped === 0)) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.drain();
      this.schedule();
    }, this.retryMs);
    // held lines do not keep a process alive: its exit writes them (flushNow)
    this.timer.unref();
  }
}

let stdout: LogSink | null = null;

/**
 * The process's one sink for fd 1: its logger and the supervisor's flush answers share it, in order.
 * `opts` apply when the first call makes it.
 */
export function stdoutSink(opts?: LogSinkOptions): LogSink {
  stdout ??= new LogSink(1, opts);
  return stdout;
}

/** Writes what the process's stdout sink holds, if it has one: before it ends other than by exit(). */
export function flushStdoutSink(): void {
  stdout?.flushNow();
}

/** `fd`, non-blocking, or a non-blocking descriptor of our own for the same pipe or terminal (see above). */
function nonBlocking(fd: number): number {
  let st;
  try {
    st = fstatSync(fd);
  } catch {
    return fd; // closed: the first write says so (EBADF), and the sink stops
  }
  if (st.isFIFO() || st.isCharacterDevice()) {
    try {
      return openSync(`/proc/self/fd/${fd}`, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch {
      // no /proc (not Linux), or a pipe with no reader left (ENXIO): as for a socket
    }
  }
  if (st.isFIFO() || st.isSocket()) {
    if (fd === 1) void process.stdout;
    else if (fd === 2) void process.stderr;
  }
  return fd;
}
