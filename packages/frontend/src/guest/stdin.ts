/**
 * A command's standard input as a file it can read like any other: the read end of a pipe. Reads
 * are sequential (a pipe has no offsets: the offset argument is ignored), EOF once the writer has
 * finished; writing, seeking back or syncing it fails as on a pipe.
 */
import type { GuestFile, GuestInput, IoResult } from './vfs.ts';

export function stdinFile(input: GuestInput): GuestFile {
  let pending: Uint8Array = new Uint8Array(0);
  let eof = false;
  let closed = false;
  return {
    path: 'standard input',
    kind: 'chardev',
    size: () => null,
    async pread(buf: Uint8Array): Promise<IoResult> {
      if (closed) return { ok: false, errno: 'EBADF' };
      while (pending.length === 0 && !eof) {
        const c = await input.read();
        if (c === null) eof = true;
        else pending = c;
      }
      const n = Math.min(buf.length, pending.length);
      buf.set(pending.subarray(0, n));
      pending = pending.subarray(n);
      return { ok: true, n };
    },
    async pwrite(): Promise<IoResult> {
      return { ok: false, errno: 'EBADF' };
    },
    async fsync(): Promise<IoResult> {
      return { ok: false, errno: 'EINVAL' };
    },
    async close(): Promise<IoResult> {
      closed = true;
      return { ok: true, n: 0 };
    },
  };
}
