/**
 * A job's stderr, in fio's order, with verify_dump's files (verify.c's dump_buf()): fio writes each
 * file where it says `… data dumped as <file>`, inline, and goes on once it has. Here the guest's
 * file system is asynchronous, so the lines of a failure with files wait for them, whatever the job
 * says after waits behind those lines, and the job issues nothing while files are being written
 * (`writing`).
 */
import { STRERROR, type CommandIo, type GuestVfs } from './vfs.ts';
import type { VerifyDump } from './fio-verify.ts';

export class JobStderr {
  /** verify_dump's files being written. */
  private writing = 0;
  /** What is still to be said after those files, in order (null: nothing pending). */
  private tail: Promise<void> | null = null;

  constructor(
    private readonly io: CommandIo,
    /** The guest's file system: the files go in its `/`, fio's working directory. */
    private readonly vfs: GuestVfs,
    /** Called once a failure's files are written and its lines said. */
    private readonly drained: () => void,
  ) {}

  /** Whether verify_dump's files are being written: the job issues nothing meanwhile. */
  get busy(): boolean {
    return this.writing > 0;
  }

  /** Says `text` after what is still to be said. */
  say(text: string): void {
    if (this.tail) this.tail = this.tail.then(() => this.io.stderr(text));
    else this.io.stderr(text);
  }

  /**
   * A failure's `lines`, once its `dumps` are written: each file's line says so, or what fio says
   * instead (its perror()) when the file could not be made or written.
   */
  sayWithDumps(lines: string[], dumps: readonly VerifyDump[]): void {
    this.writing++;
    const tail = (this.tail ?? Promise.resolve()).then(async () => {
      for (const d of dumps) {
        const said = await this.dumpFile(d.name, d.data);
        if (said) lines[d.line] = said;
      }
      this.io.stderr(lines.join('\n') + '\n');
    });
    this.tail = tail;
    void tail.then(() => {
      this.writing--;
      if (this.tail === tail) this.tail = null;
      this.drained();
    });
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
        if (!r.ok || r.n === 0)
          return `write verify buf file: ${STRERROR[r.ok ? 'ENOSPC' : r.errno]}\n       ${name.split('.').pop()} data dumped as ${name}`;
        at += r.n;
      }
      return null;
    } finally {
      await f.close();
    }
  }
}
