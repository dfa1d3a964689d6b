/**
 * What a command prints just before it exits (its help, its version): written at once, so that a
 * write that fails is known before the exit and not lost with it. A reader gone (`pvblk --help | head
 * -1`: EPIPE) ends the process as SIGPIPE would, 141, silently; any other failure (`> /dev/full`) is
 * one line on stderr and status 1, as coreutils' "write error".
 */
import { writeSync } from 'node:fs';
import { fsErrorText } from './lock.ts';

export function writeOutNow(text: string, who = 'pvblk'): void {
  const buf = Buffer.from(text);
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(1, buf, off);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // a non-blocking stdout that is full: the stream queues the rest and Node writes it before exit
      if (code === 'EAGAIN') {
        process.stdout.write(buf.subarray(off));
        return;
      }
      if (code === 'EPIPE') process.exit(141);
      process.stderr.write(`${who}: write error: ${fsErrorText(e)}\n`);
      process.exit(1);
    }
  }
}
