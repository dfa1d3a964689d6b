/**
 * A job's stderr, in fio's order, with verify_dump's files (verify.c's dump_buf()): fio writes each
 * file where it says `… data dumped as <file>`, inline, and goes on once it has. Here the guest's
 * file system is asynchronous, so the lines of a failure with files wait for them, whatever the job
 * says after waits behind those lines, and the job issues nothing while files are being written
 * (`busy`). A job writes MAX_DUMP_FILES at most (fio has no bound: a 1 MiB block of 128-byte
 * intervals that all fail is 16,384 files), and a stopped job writes no more. What is said waits for
 * the command's reader as fio's write(2) to a full terminal or pipe would (`drain`): a job that says
 * a line per I/O (error_dump, ignore_error=110) issues nothing while its reader lags, instead of
 * piling its output up in the guest.
 */
import { STRERROR, type CommandIo, type GuestVfs } from './vfs.ts';
import type { VerifyDump } from './fio-verify.ts';

/** verify_dump's files a job writes at most. */
export const MAX_DUMP_FILES = 256;

export class JobStderr {
  /** verify_dump's files being written. */
  private writing = 0;
  /** verify_dump's files the job may still write. */
  dumpsLeft = MAX_DUMP_FILES;
  /** The job stopped: the files not yet written are not. */
  private abandoned = false;
  /** What is still to be said after those files, in order (null: nothing pending). */
  private tail: Promise<void> | null = null;
  private saidBound = false;
  /** Waiting for the reader to take what was said. */
  private draining = false;

  constructor(
    private readonly io: CommandIo,
    /** The guest's file system: the files go in its `/`, fio's working directory. */
    private readonly vfs: GuestVfs,
    /** Called once a failure's files are written and its lines said, or the reader has caught up. */
    private readonly drained: () => void,
  ) {}

  /**
   * Whether verify_dump's files are being written, or the reader has yet to take what was said: the
   * job issues nothing meanwhile.
   */
  get busy(): boolean {
    return this.writing > 0 || this.draining;
  }

  /** Says `text` after what is still to be said. */
  say(text: string): void {
    if (this.tail) this.tail = this.tail.then(() => this.io.stderr(text)).catch(() => {});
    else this.io.stderr(text);
    this.waitForReader();
  }

  private waitForReader(): void {
    if (this.draining || !this.io.stderrDrain) return;
    this.draining = true;
    void this.io
      .stderrDrain()
      .catch(() => {})
      .then(() => {
        this.draining = false;
        this.drained();
      });
  }

  /**
   * A failure's `lines`, once its `dumps` are written: each file's line says so, or what fio says
   * instead (its perror()) when the file could not be made or written. `dropped`: files past the
   * bound, said once.
   */
  sayWithDumps(lines: string[], dumps: readonly VerifyDump[], dropped: number): void {
    this.dumpsLeft -= dumps.length;
    const said: Array<string | null> = [...lines];
    if (dropped && this.dumpsLeft === 0 && !this.saidBound) {
      this.saidBound = true;
      said.push(`fio: verify_dump: ${MAX_DUMP_FILES} files written, the job writes no more`);
    }
    if (!dumps.length) {
      this.say(said.join('\n') + '\n');
      return;
    }
    this.writing++;
    const tail = (this.tail ?? Promise.resolve()).then(async () => {
      for (const d of dumps) {
        if (this.abandoned) said[d.line] = null;
        else {
          // a file system that throws (a bug of its) is said as a failed write, never left pending:
          // the job waits on these files
          const instead = await this.dumpFile(d.name, d.data).catch(
            (e: unknown) => `write verify buf file: ${e instanceof Error ? e.message : String(e)}`,
          );
          if (instead) said[d.line] = instead;
        }
      }
      this.io.stderr(said.filter((l) => l !== null).join('\n') + '\n');
      await this.io.stderrDrain?.();
    });
    // whatever happened, the job goes on: the chain after it, the count, the wake-up
    this.tail = tail.catch(() => {});
    const mine = this.tail;
    void mine.then(() => {
      this.writing--;
      if (this.tail === mine) this.tail = null;
      this.drained();
    });
  }

  /** The job stopped: what is queued is said, without the files not yet written. */
  abandon(): void {
    this.abandoned = true;
  }

  /** Resolves once everything said so far is out. */
  async flushed(): Promise<void> {
    if (this.tail) await this.tail;
  }

  private async dumpFile(name: string, data: Buffer): Promise<string | null> {
    const f = await this.vfs
      .open(`/${name}`, { read: false, write: true, create: true, truncate: true })
      .catch(() => ({ errno: 'EIO' as const }));
    if ('errno' in f) return `open verify buf file: ${STRERROR[f.errno]}`;
    try {
      for (let at = 0; at < data.length;) {
        const r = await f.pwrite(data.subarray(at), at);
        // dump_buf(): a write of nothing ends the file quietly, a failed one says so first
        if (r.ok && r.n === 0) break;
        if (!r.ok)
          return `write verify buf file: ${STRERROR[r.errno]}\n       ${name.split('.').pop()} data dumped as ${name}`;
        at += r.n;
      }
      return null;
    } finally {
      await f.close();
    }
  }
}
