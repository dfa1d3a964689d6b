/**
 * A small POSIX-ish shell for guest command lines: words with '…', "…" and \ quoting; `$?`, `$NAME`
 * and `${NAME}` expanded as sh does (unquoted expansions split into fields, quoted ones not);
 * `NAME=value` assignments; pipelines with `|`; lists with `;`, `&&` and `||`; `>`/`>>` redirection
 * of standard output — enough for
 * `echo 0 > /sys/block/xvda/integrity/read_verify && dd if=/dev/xvda bs=4096 count=1 | md5sum`.
 *
 * A pipeline's commands run at once, each reading what the one before writes. When a reader ends,
 * the writer before it is interrupted, as SIGPIPE would (its status is 141); the pipeline's status is
 * the last command's.
 */
import type { CommandIo, GuestCommand, GuestCommandContext, GuestInput } from './vfs.ts';
import { STRERROR } from './vfs.ts';
import { ownEntry } from '@pvblk/shared';

type Op = ';' | '&&' | '||';

/** A piece of a word: literal text, or a parameter to expand; `quoted` text is never split. */
type Part = { lit: string; quoted: boolean } | { param: string; quoted: boolean };

export interface Word {
  parts: Part[];
}

export interface SimpleCommand {
  assigns: Array<{ name: string; value: Word }>;
  words: Word[];
  redirect: { path: Word; append: boolean } | null;
}

export interface Pipeline {
  commands: SimpleCommand[];
}

export type ParsedLine =
  { ok: true; list: Array<{ pipeline: Pipeline; next: Op | null }> } | { ok: false; error: string };

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function parseCommandLine(line: string): ParsedLine {
  const list: Array<{ pipeline: Pipeline; next: Op | null }> = [];
  let commands: SimpleCommand[] = [];
  let cmd: SimpleCommand = { assigns: [], words: [], redirect: null };
  let pendingRedirect: { append: boolean } | null = null;
  let word: Part[] = [];
  let inWord = false;
  const lit = (text: string, quoted: boolean) => {
    const last = word[word.length - 1];
    if (last && 'lit' in last && last.quoted === quoted) last.lit += text;
    else word.push({ lit: text, quoted });
    inWord = true;
  };
  const endWord = () => {
    if (!inWord) return;
    const w: Word = { parts: word };
    word = [];
    inWord = false;
    if (pendingRedirect) {
      cmd.redirect = { path: w, append: pendingRedirect.append };
      pendingRedirect = null;
      return;
    }
    // NAME=value before the command name is an assignment
    const first = w.parts[0];
    if (cmd.words.length === 0 && first && 'lit' in first && !first.quoted) {
      const eq = first.lit.indexOf('=');
      if (eq > 0 && NAME.test(first.lit.slice(0, eq))) {
        const rest: Part[] =
          first.lit.length > eq + 1 ? [{ lit: first.lit.slice(eq + 1), quoted: false }] : [];
        cmd.assigns.push({ name: first.lit.slice(0, eq), value: { parts: [...rest, ...w.parts.slice(1)] } });
        return;
      }
    }
    cmd.words.push(w);
  };
  const unexpected = (tok: string) => `syntax error near unexpected token \`${tok}'`;
  /** Ends the current simple command; `tok` is the operator that ended it, for the error message. */
  const endCommand = (tok: string): string | null => {
    endWord();
    if (pendingRedirect) return unexpected(tok);
    if (cmd.words.length === 0 && cmd.assigns.length === 0) {
      if (cmd.redirect || tok !== 'newline' || commands.length > 0) return unexpected(tok);
      return null;
    }
    commands.push(cmd);
    cmd = { assigns: [], words: [], redirect: null };
    return null;
  };
  const endPipeline = (op: Op | null, tok: string): string | null => {
    const e = endCommand(tok);
    if (e) return e;
    if (commands.length === 0) return op === null ? null : unexpected(tok);
    list.push({ pipeline: { commands }, next: op });
    commands = [];
    return null;
  };
  /**
   * `$…` at i: a parameter part; returns the index of its last character, or -1 for an expansion
   * this shell does not have (`$(…)`, `${X:-…}`, `$$`, `$1`…): sh would expand it, and taking it for
   * text would run the command with other arguments than the user wrote.
   */
  const dollar = (i: number, quoted: boolean): number => {
    const rest = line.slice(i + 1);
    const braced = /^\{([A-Za-z_][A-Za-z0-9_]*|\?)\}/.exec(rest);
    const plain = /^(\?|[A-Za-z_][A-Za-z0-9_]*)/.exec(rest);
    const m = braced ?? plain;
    if (!m) {
      if (/^[({$#!@*0-9-]/.test(rest)) return -1;
      lit('$', quoted);
      return i;
    }
    word.push({ param: m[1], quoted });
    inWord = true;
    return i + m[0].length;
  };
  const unsupported = (what: string): ParsedLine => ({
    ok: false,
    error: `syntax error: '${what}' is not supported by this shell`,
  });
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && i + 1 < line.length) {
      lit(line[++i], true);
    } else if (c === "'") {
      const j = line.indexOf("'", i + 1);
      if (j < 0) return { ok: false, error: 'syntax error: unterminated quoted string' };
      lit(line.slice(i + 1, j), true);
      i = j;
    } else if (c === '"') {
      let j = i + 1;
      lit('', true);
      while (j < line.length && line[j] !== '"') {
        if (line[j] === '\\' && j + 1 < line.length && '"\\$`'.includes(line[j + 1])) {
          lit(line[j + 1], true);
          j += 2;
        } else if (line[j] === '$') {
          const end = dollar(j, true);
          if (end < 0) return unsupported(line.slice(j, j + 2));
          j = end + 1;
        } else if (line[j] === '`') {
          return unsupported('`');
        } else lit(line[j++], true);
      }
      if (j >= line.length) return { ok: false, error: 'syntax error: unterminated quoted string' };
      i = j;
    } else if (c === '$') {
      const end = dollar(i, false);
      if (end < 0) return unsupported(line.slice(i, i + 2));
      i = end;
    } else if (c === '`' || c === '(' || c === ')') {
      return unsupported(c);
    } else if (
      c === '!' &&
      !inWord &&
      cmd.words.length === 0 &&
      cmd.assigns.length === 0 &&
      (i + 1 === line.length || ' \t'.includes(line[i + 1]))
    ) {
      // the reserved word that negates a pipeline's status
      return unsupported('!');
    } else if (c === ' ' || c === '\t') {
      endWord();
    } else if (c === ';' || c === '\n') {
      const e = endPipeline(';', c === ';' ? ';' : 'newline');
      if (e) return { ok: false, error: e };
    } else if (c === '&' && line[i + 1] === '&') {
      const e = endPipeline('&&', '&&');
      if (e) return { ok: false, error: e };
      i++;
    } else if (c === '|' && line[i + 1] === '|') {
      const e = endPipeline('||', '||');
      if (e) return { ok: false, error: e };
      i++;
    } else if (c === '|') {
      const e = endCommand('|');
      if (e) return { ok: false, error: e };
      if (commands.length === 0) return { ok: false, error: unexpected('|') };
    } else if (c === '&' || c === '<') {
      return { ok: false, error: `syntax error: '${c}' is not supported by this shell` };
    } else if (c === '>') {
      // digits right before it are a file descriptor (`2>err`): only standard output is redirected
      // here, and taking `2` for an argument would write it, with stdout, to the file
      const last = word[word.length - 1];
      if (inWord && word.length === 1 && last && 'lit' in last && !last.quoted && /^\d+$/.test(last.lit)) {
        if (Number(last.lit) !== 1) return unsupported(`${last.lit}>`);
        word = [];
        inWord = false;
      }
      endWord();
      if (pendingRedirect) return { ok: false, error: unexpected('>') };
      const append = line[i + 1] === '>';
      if (append) i++;
      pendingRedirect = { append };
    } else {
      lit(c, false);
    }
  }
  if (cmd.words.length === 0 && cmd.assigns.length === 0 && !cmd.redirect && !pendingRedirect && !inWord) {
    // the line ends after an operator: `a |` and `a &&` are incomplete, `a ;` is fine
    if (commands.length > 0) return { ok: false, error: 'syntax error: unexpected end of file' };
    const last = list[list.length - 1];
    if (last && last.next !== ';') return { ok: false, error: 'syntax error: unexpected end of file' };
    if (last) last.next = null;
    return { ok: true, list };
  }
  const e = endPipeline(null, 'newline');
  if (e) return { ok: false, error: e };
  return { ok: true, list };
}

/** The shell's parameters: variables and the status of the last pipeline (`$?`). */
export interface ShellState {
  vars: Map<string, string>;
  status: number;
}

/** Expands a word into fields: unquoted parameter values split at blanks; a word of nothing vanishes. */
function expand(w: Word, sh: ShellState): string[] {
  const fields: string[] = [];
  let cur = '';
  let has = false;
  for (const p of w.parts) {
    if ('lit' in p) {
      cur += p.lit;
      has ||= p.lit.length > 0 || p.quoted;
      continue;
    }
    const v = p.param === '?' ? String(sh.status) : (sh.vars.get(p.param) ?? '');
    if (p.quoted) {
      cur += v;
      has = true;
      continue;
    }
    const pieces = v.split(/[ \t\n]+/);
    for (let k = 0; k < pieces.length; k++) {
      if (k > 0 && (has || cur)) {
        fields.push(cur);
        cur = '';
        has = false;
      }
      cur += pieces[k];
      has ||= pieces[k].length > 0;
    }
  }
  if (has || cur) fields.push(cur);
  return fields;
}

/** An assignment's value or a redirection's target: expanded, not split. */
function expandOne(w: Word, sh: ShellState): string {
  return w.parts
    .map((p) => ('lit' in p ? p.lit : p.param === '?' ? String(sh.status) : (sh.vars.get(p.param) ?? '')))
    .join('');
}

/** Linux's pipe capacity (16 pages): beyond it a writer waits for the reader. */
export const PIPE_BUF_MAX = 64 * 1024;

/** The write end and read end of a pipe between two commands of a pipeline. */
class Pipe implements GuestInput {
  private readonly chunks: Uint8Array[] = [];
  private wake: ((c: Uint8Array | null) => void) | null = null;
  private ended = false;
  private readerGone = false;
  /** Bytes written and not read yet, and the writer waiting for them to go below PIPE_BUF_MAX. */
  private buffered = 0;
  private roomWaiter: (() => void) | null = null;

  constructor(private readonly onReaderGone: () => void) {}

  write(text: string): void {
    if (this.readerGone || this.ended) return;
    const chunk = Uint8Array.from(Buffer.from(text, 'latin1'));
    if (this.wake) {
      const w = this.wake;
      this.wake = null;
      w(chunk);
    } else {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
  }

  /** The writer's side of a full pipe: resolves when there is room, or nobody will read. */
  drain(): Promise<void> {
    if (this.buffered < PIPE_BUF_MAX || this.readerGone) return Promise.resolve();
    return new Promise((r) => (this.roomWaiter = r));
  }

  private room(): void {
    if (this.roomWaiter && (this.buffered < PIPE_BUF_MAX || this.readerGone)) {
      const r = this.roomWaiter;
      this.roomWaiter = null;
      r();
    }
  }

  end(): void {
    this.ended = true;
    if (this.wake) {
      const w = this.wake;
      this.wake = null;
      w(null);
    }
  }

  read(): Promise<Uint8Array | null> {
    const c = this.chunks.shift();
    if (c) {
      this.buffered -= c.length;
      this.room();
      return Promise.resolve(c);
    }
    if (this.ended || this.readerGone) return Promise.resolve(null);
    return new Promise((r) => (this.wake = r));
  }

  /** The reader finished: what is written from now on goes nowhere, and the writer is told. */
  closeRead(): void {
    if (this.readerGone) return;
    this.readerGone = true;
    this.chunks.length = 0;
    this.buffered = 0;
    this.room();
    if (!this.ended) this.onReaderGone();
  }
}

/** 128 + SIGPIPE: the status of a writer whose reader went away. */
const SIGPIPE_STATUS = 141;

/** Runs one simple command, with its stdout redirected to a file when asked. */
async function runSimple(
  cmd: SimpleCommand,
  io: CommandIo,
  ctx: GuestCommandContext,
  commands: Record<string, GuestCommand>,
  sh: ShellState,
): Promise<number> {
  const argv = cmd.words.flatMap((w) => expand(w, sh));
  if (argv.length === 0) {
    // assignments alone set shell variables (with a command they would be its environment only)
    for (const a of cmd.assigns) sh.vars.set(a.name, expandOne(a.value, sh));
    if (!cmd.redirect) return 0;
  }
  const name = argv[0];
  const fn = name === undefined ? async () => 0 : ownEntry(commands, name);
  if (!fn) {
    io.stderr(`sh: ${name}: command not found\n`);
    return 127;
  }
  if (!cmd.redirect) return fn(argv, io, ctx);
  const target = expandOne(cmd.redirect.path, sh);
  const f = await ctx.vfs.open(target, {
    read: false,
    write: true,
    create: true,
    truncate: !cmd.redirect.append,
  });
  if ('errno' in f) {
    io.stderr(`sh: ${target}: ${STRERROR[f.errno]}\n`);
    return 1;
  }
  let pos = cmd.redirect.append ? (f.size() ?? 0) : 0;
  let failed: string | null = null;
  const writes: Promise<void>[] = [];
  const out = (text: string) => {
    const b = Buffer.from(text, 'latin1');
    const at = pos;
    pos += b.length;
    writes.push(
      f.pwrite(b, at).then((r) => {
        if (!r.ok) failed ??= STRERROR[r.errno];
      }),
    );
  };
  // a writer that never stops (cat /dev/zero > f) waits for its writes now and then
  const drain = async () => {
    if (writes.length >= 64) await Promise.all(writes.splice(0));
  };
  const status = await fn(argv, { ...io, stdout: out, drain }, ctx);
  await Promise.all(writes);
  const c = await f.close();
  if (!c.ok) failed ??= STRERROR[c.errno];
  if (failed) {
    io.stderr(`sh: write error: ${failed}\n`);
    return 1;
  }
  return status;
}

async function runPipeline(
  p: Pipeline,
  io: CommandIo,
  ctx: GuestCommandContext,
  commands: Record<string, GuestCommand>,
  sh: ShellState,
): Promise<number> {
  const n = p.commands.length;
  if (n === 1) return runSimple(p.commands[0], io, ctx, commands, sh);
  // every stage can be interrupted on its own (its reader went away) or with the rest (Ctrl-C)
  const stops = p.commands.map(() => new AbortController());
  const onAbort = () => stops.forEach((s) => s.abort(io.signal.reason));
  io.signal.addEventListener('abort', onAbort);
  const sigpiped = new Set<number>();
  const pipes = p.commands.slice(1).map(
    (_, i) =>
      new Pipe(() => {
        sigpiped.add(i);
        stops[i].abort();
      }),
  );
  try {
    const statuses = await Promise.all(
      p.commands.map(async (cmd, i) => {
        const stageIo: CommandIo = {
          stdout: i < n - 1 ? (t) => pipes[i].write(t) : io.stdout,
          drain: i < n - 1 ? () => pipes[i].drain() : io.drain,
          stderr: io.stderr,
          stderrDrain: io.stderrDrain,
          stdin: i > 0 ? pipes[i - 1] : io.stdin,
          signal: stops[i].signal,
        };
        // each stage has its own variables, as each runs in a subshell
        const status = await runSimple(cmd, stageIo, ctx, commands, {
          vars: new Map(sh.vars),
          status: sh.status,
        });
        if (i < n - 1) pipes[i].end();
        if (i > 0) pipes[i - 1].closeRead();
        return sigpiped.has(i) ? SIGPIPE_STATUS : status;
      }),
    );
    return statuses[n - 1];
  } finally {
    io.signal.removeEventListener('abort', onAbort);
  }
}

/** Runs a command line; returns the status of the last pipeline run. */
export async function runCommandLine(
  line: string,
  io: CommandIo,
  ctx: GuestCommandContext,
  commands: Record<string, GuestCommand>,
  sh: ShellState = { vars: new Map(), status: 0 },
): Promise<number> {
  // a command's text is Latin-1 here (one byte a character, as dd and cat hand bytes on); a character
  // beyond it would be cut to its low byte on the way to a pipe or a file
  const wide = /[\u0100-\u{10ffff}]/u.exec(line);
  if (wide) {
    const code = wide[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    io.stderr(`sh: ${JSON.stringify(wide[0])} (U+${code}): this shell takes Latin-1 text only\n`);
    return 2;
  }
  const parsed = parseCommandLine(line);
  if (!parsed.ok) {
    io.stderr(`sh: ${parsed.error}\n`);
    return 2;
  }
  let prev: Op | null = null;
  for (const { pipeline, next } of parsed.list) {
    const skip = (prev === '&&' && sh.status !== 0) || (prev === '||' && sh.status === 0);
    if (!skip) {
      if (io.signal.aborted) return 130;
      sh.status = await runPipeline(pipeline, io, ctx, commands, sh);
    }
    prev = next;
  }
  return sh.status;
}

/** Quotes argv words so that parseCommandLine gives them back unchanged. */
export function quoteArgv(argv: string[]): string {
  return argv
    .map((a) => (/^[A-Za-z0-9_./=:,+%@-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}
