/**
 * A very small POSIX-ish shell for guest command lines: words with '…', "…" and \ quoting, lists with
 * `;`, `&&` and `||`, and `>`/`>>` redirection of standard output — enough for
 * `echo 0 > /sys/block/xvda/integrity/read_verify && dd if=/dev/xvda of=/dev/null`.
 */
import type { CommandIo, GuestCommand, GuestCommandContext } from './vfs.ts';
import { STRERROR } from './vfs.ts';

type Op = ';' | '&&' | '||';

export interface SimpleCommand {
  argv: string[];
  redirect: { path: string; append: boolean } | null;
}

export type ParsedLine =
  { ok: true; list: Array<{ cmd: SimpleCommand; next: Op | null }> } | { ok: false; error: string };

export function parseCommandLine(line: string): ParsedLine {
  const list: Array<{ cmd: SimpleCommand; next: Op | null }> = [];
  let argv: string[] = [];
  let redirect: SimpleCommand['redirect'] = null;
  let pendingRedirect: { append: boolean } | null = null;
  let word = '';
  let inWord = false;
  const endWord = () => {
    if (!inWord) return;
    if (pendingRedirect) {
      redirect = { path: word, append: pendingRedirect.append };
      pendingRedirect = null;
    } else {
      argv.push(word);
    }
    word = '';
    inWord = false;
  };
  const endCommand = (op: Op | null): string | null => {
    endWord();
    if (pendingRedirect) return 'syntax error: redirection without a file name';
    if (argv.length === 0) {
      if (op !== null || redirect) return `syntax error near unexpected token \`${op ?? 'newline'}'`;
      return null;
    }
    list.push({ cmd: { argv, redirect }, next: op });
    argv = [];
    redirect = null;
    return null;
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (c === "'") {
      const j = line.indexOf("'", i + 1);
      if (j < 0) return { ok: false, error: 'syntax error: unterminated quoted string' };
      word += line.slice(i + 1, j);
      inWord = true;
      i = j;
    } else if (c === '"') {
      let j = i + 1;
      let s = '';
      while (j < line.length && line[j] !== '"') {
        if (line[j] === '\\' && j + 1 < line.length && '"\\$`'.includes(line[j + 1])) j++;
        s += line[j++];
      }
      if (j >= line.length) return { ok: false, error: 'syntax error: unterminated quoted string' };
      word += s;
      inWord = true;
      i = j;
    } else if (c === ' ' || c === '\t' || c === '\n') {
      endWord();
    } else if (c === ';') {
      const e = endCommand(';');
      if (e) return { ok: false, error: e };
    } else if (c === '&' && line[i + 1] === '&') {
      const e = endCommand('&&');
      if (e) return { ok: false, error: e };
      i++;
    } else if (c === '|' && line[i + 1] === '|') {
      const e = endCommand('||');
      if (e) return { ok: false, error: e };
      i++;
    } else if (c === '|' || c === '&' || c === '<') {
      return { ok: false, error: `syntax error: '${c}' is not supported by this shell` };
    } else if (c === '>') {
      endWord();
      const append = line[i + 1] === '>';
      if (append) i++;
      pendingRedirect = { append };
    } else {
      word += c;
      inWord = true;
    }
  }
  const e = endCommand(null);
  if (e) return { ok: false, error: e };
  if (list.length > 0 && list[list.length - 1].next !== null && list[list.length - 1].next !== ';') {
    return { ok: false, error: 'syntax error: unexpected end of file' };
  }
  return { ok: true, list };
}

/** Runs one simple command, with its stdout redirected to a file when asked. */
async function runSimple(
  cmd: SimpleCommand,
  io: CommandIo,
  ctx: GuestCommandContext,
  commands: Record<string, GuestCommand>,
): Promise<number> {
  const name = cmd.argv[0];
  const fn = commands[name];
  if (!fn) {
    io.stderr(`sh: ${name}: command not found\n`);
    return 127;
  }
  if (!cmd.redirect) return fn(cmd.argv, io, ctx);
  const f = await ctx.vfs.open(cmd.redirect.path, {
    read: false,
    write: true,
    create: true,
    truncate: !cmd.redirect.append,
  });
  if ('errno' in f) {
    io.stderr(`sh: ${cmd.redirect.path}: ${STRERROR[f.errno]}\n`);
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
  const status = await fn(cmd.argv, { stdout: out, stderr: io.stderr, signal: io.signal }, ctx);
  await Promise.all(writes);
  const c = await f.close();
  if (!c.ok) failed ??= STRERROR[c.errno];
  if (failed) {
    io.stderr(`sh: write error: ${failed}\n`);
    return 1;
  }
  return status;
}

/** Runs a command line; returns the status of the last command run. */
export async function runCommandLine(
  line: string,
  io: CommandIo,
  ctx: GuestCommandContext,
  commands: Record<string, GuestCommand>,
): Promise<number> {
  const parsed = parseCommandLine(line);
  if (!parsed.ok) {
    io.stderr(`sh: ${parsed.error}\n`);
    return 2;
  }
  let status = 0;
  let prev: Op | null = null;
  for (const { cmd, next } of parsed.list) {
    const skip = (prev === '&&' && status !== 0) || (prev === '||' && status === 0);
    if (!skip) {
      if (io.signal.aborted) return 130;
      status = await runSimple(cmd, io, ctx, commands);
    }
    prev = next;
  }
  return status;
}

/** Quotes argv words so that parseCommandLine gives them back unchanged. */
export function quoteArgv(argv: string[]): string {
  return argv
    .map((a) => (/^[A-Za-z0-9_./=:,+%@-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}
