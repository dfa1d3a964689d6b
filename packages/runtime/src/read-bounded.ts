/**
 * A file a process is told to read whole (an xl config, a chaos schedule, a `*_FILE` secret), read up
 * to a bound: the name may be a device or a pipe that never ends — `xl create /dev/zero` grew to 3.2
 * GB before Node's buffer limit stopped it, and `PVBLK_DOM0_SECRET_FILE=/dev/zero pvblk hypervisor`
 * to 5.3 GB, saying nothing.
 */
import { closeSync, openSync, readSync } from 'node:fs';

/** Thrown when the file holds more than the bound; `code` is EFBIG, as for a file too large. */
export class FileTooLarge extends Error {
  readonly code = 'EFBIG';
  constructor(readonly max: number) {
    super(`more than ${max} bytes`);
  }
}

/** The file's bytes, at most `max` of them (FileTooLarge beyond); fs errors are thrown as they come. */
export function readBounded(path: string, max: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.allocUnsafe(64 * 1024);
    const parts: Buffer[] = [];
    let total = 0;
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) return Buffer.concat(parts, total);
      total += n;
      if (total > max) throw new FileTooLarge(max);
      parts.push(Buffer.from(chunk.subarray(0, n)));
    }
  } finally {
    closeSync(fd);
  }
}
