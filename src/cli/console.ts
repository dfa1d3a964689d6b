/**
 * The terminal of `pvblk up`/`run`: lines of several processes, each behind a `name |` prefix.
 *
 * A guest's output is a byte stream as a terminal would get it: `\r` goes back to the start of the
 * line — here to just after the prefix, so `dd status=progress` rewrites its line and keeps
 * `guest |` in front of it. A partial line of one stream is ended before another stream writes.
 *
 * When the reader goes away (`pvblk run … | head -1`: EPIPE) nothing more is written and `onGone`
 * runs once, so the caller can stop cleanly instead of dying on an unhandled 'error' event.
 */
import { prefixer } from './stack.ts';

export class PrefixedConsole {
  private readonly pre: (name: string, text: string) => string;
  /** The stream whose line is open (written without its newline yet), and whether a `\r` is pending. */
  private open: { key: string; carriage: boolean } | null = null;
  private gone = false;
  onGone: () => void = () => {};

  constructor(names: string[]) {
    this.pre = prefixer(names);
    for (const s of [process.stdout, process.stderr]) {
      // EPIPE (the reader is gone) or any other write error: nowhere left to print to
      s.on('error', () => {
        if (this.gone) return;
        this.gone = true;
        this.onGone();
      });
    }
  }

  get closed(): boolean {
    return this.gone;
  }

  private write(text: string): void {
    if (!this.gone) process.stdout.write(text);
  }

  private endOpenLine(): void {
    if (this.open) this.write('\n');
    this.open = null;
  }

  /** A whole line of `name`. */
  line(name: string, text: string): void {
    this.endOpenLine();
    this.write(this.pre(name, text) + '\n');
  }

  /** Raw text of one output stream of `name` (`key` tells its streams apart). */
  stream(name: string, key: string, text: string): void {
    for (const part of text.split(/(\r|\n)/)) {
      if (part === '') continue;
      const mine = this.open?.key === key;
      if (part === '\n') {
        if (mine) {
          this.write('\n');
          this.open = null;
        } else this.line(name, '');
      } else if (part === '\r') {
        if (mine) this.open!.carriage = true;
        else {
          this.endOpenLine();
          this.write(this.pre(name, ''));
          this.open = { key, carriage: false };
        }
      } else if (mine) {
        this.write(this.open!.carriage ? '\r' + this.pre(name, part) : part);
        this.open!.carriage = false;
      } else {
        this.endOpenLine();
        this.write(this.pre(name, part));
        this.open = { key, carriage: false };
      }
    }
  }

  /** Ends an open line (before the process exits or prints something else). */
  finish(): void {
    this.endOpenLine();
  }

  /** A message of pvblk itself for the user, on stdout with the logs. */
  note(text: string): void {
    this.endOpenLine();
    this.write(`pvblk: ${text}\n`);
  }

  /** A message of pvblk itself, on stderr. */
  error(text: string): void {
    this.endOpenLine();
    if (!this.gone) process.stderr.write(`pvblk: ${text}\n`);
  }
}
