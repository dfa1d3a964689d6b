/**
 * The guest shell's small toolbox. Messages follow the GNU tools of the 2013 era the guest mimics
 * (coreutils 8.13, diffutils 3.2): `tool: NAME: strerror` for file errors, `Try `tool --help' for
 * more information.` after usage errors. The shell (argv splitting) is the caller's; argv[0] is the
 * command name.
 *
 * Standard input is a pipe (`a | b`) when there is one; without it, tools that would read it (no file
 * operands, or `-`) say that this guest has no terminal to read.
 */
import { latin1Text } from '@pvblk/shared';
import { createHash } from 'node:crypto';
import { dd, quote } from './dd.ts';
import { stdinFile } from './stdin.ts';
import { grep, head, tail, wc } from './filters.ts';
import { ls } from './ls.ts';
import {
  STRERROR,
  type CommandIo,
  type Errno,
  type GuestCommand,
  type GuestFile,
  type GuestVfs,
} from './vfs.ts';

const CHUNK = 64 * 1024;
const SIGINT_STATUS = 130;

/** getopt's complaint about an unknown option, then the 8.x "Try" line. */
function badOption(io: CommandIo, prog: string, arg: string): void {
  io.stderr(
    arg.startsWith('--')
      ? `${prog}: unrecognized option '${arg}'\n`
      : `${prog}: invalid option -- '${arg[1]}'\n`,
  );
  io.stderr(`Try \`${prog} --help' for more information.\n`);
}

/** Splits argv into option letters and operands (GNU permutation; `--` ends options). */
function splitArgs(args: string[]): { options: string[]; operands: string[] } {
  const options: string[] = [];
  const operands: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith('-') && a.length > 1) options.push(a);
    else operands.push(a);
  }
  return { options, operands };
}

type ReadOutcome = { ok: true } | { ok: false; message: string } | { ok: 'aborted' };

/**
 * Opens `path` and feeds its content to `sink` in 64 KiB chunks until EOF. Errors come back as the
 * strerror text; an interrupt stops between chunks.
 */
export async function readWhole(
  vfs: GuestVfs,
  path: string,
  io: CommandIo,
  sink: (chunk: Uint8Array) => void | boolean,
): Promise<ReadOutcome> {
  let f: GuestFile | { errno: Errno };
  if (path === '-') {
    if (!io.stdin) return { ok: false, message: NO_STDIN };
    f = stdinFile(io.stdin);
  } else f = await vfs.open(path, { read: true, write: false });
  if ('errno' in f) return { ok: false, message: STRERROR[f.errno] };
  try {
    const buf = new Uint8Array(CHUNK);
    for (let offset = 0; ;) {
      if (io.signal.aborted) return { ok: 'aborted' };
      const r = await f.pread(buf, offset);
      if (!r.ok) return { ok: false, message: STRERROR[r.errno] };
      if (r.n === 0) return { ok: true };
      offset += r.n;
      // A sink returning false has seen enough (cmp -n).
      if (sink(buf.subarray(0, r.n)) === false) return { ok: true };
      await io.drain?.();
    }
  } finally {
    await f.close();
  }
}

const NO_STDIN = 'no standard input here (this guest has no terminal; use a pipe: … | cmd)';

function digestCommand(prog: string, algorithm: 'md5' | 'sha1' | 'sha256'): GuestCommand {
  return async (argv, io, ctx) => {
    const { options, operands } = splitArgs(argv.slice(1));
    let binary = false;
    for (const o of options) {
      if (o === '-b' || o === '--binary') binary = true;
      else if (o === '-t' || o === '--text') binary = false;
      else {
        badOption(io, prog, o);
        return 1;
      }
    }
    const files = operands.length ? operands : ['-'];
    let status = 0;
    for (const path of files) {
      const hash = createHash(algorithm);
      const r = await readWhole(ctx.vfs, path, io, (chunk) => {
        hash.update(chunk);
      });
      if (r.ok === 'aborted') return SIGINT_STATUS;
      if (!r.ok) {
        io.stderr(`${prog}: ${path}: ${r.message}\n`);
        status = 1;
        continue;
      }
      // Names with a backslash or newline are escaped and the line flagged with a leading backslash.
      const escaped = /[\\\n]/.test(path);
      const name = escaped ? path.replace(/\\/g, '\\\\').replace(/\n/g, '\\n') : path;
      io.stdout(`${escaped ? '\\' : ''}${hash.digest('hex')} ${binary ? '*' : ' '}${name}\n`);
    }
    return status;
  };
}

export const md5sum = digestCommand('md5sum', 'md5');
export const sha1sum = digestCommand('sha1sum', 'sha1');
export const sha256sum = digestCommand('sha256sum', 'sha256');

/** A sequential reader for cmp, which walks two files in step. */
class Reader {
  private buf = new Uint8Array(0);
  private pos = 0;
  private offset = 0;
  eof = false;
  constructor(
    readonly name: string,
    private readonly file: GuestFile,
  ) {}

  /** The next available bytes (empty at EOF), or an errno text. */
  async chunk(): Promise<Uint8Array | string> {
    if (this.pos < this.buf.length) return this.buf.subarray(this.pos);
    if (this.eof) return new Uint8Array(0);
    const buf = new Uint8Array(CHUNK);
    const r = await this.file.pread(buf, this.offset);
    if (!r.ok) return STRERROR[r.errno];
    if (r.n === 0) this.eof = true;
    this.offset += r.n;
    this.buf = buf.subarray(0, r.n);
    this.pos = 0;
    return this.buf;
  }

  consume(n: number): void {
    this.pos += n;
  }
}

/** GNU cmp (diffutils 3.2): FILE1 FILE2, with -n LIMIT and -s. */
export const cmp: GuestCommand = async (argv, io, ctx) => {
  const args = argv.slice(1);
  const operands: string[] = [];
  let limit = Infinity;
  let silent = false;
  const usage = (msg: string): number => {
    io.stderr(`cmp: ${msg}\ncmp: Try \`cmp --help' for more information.\n`);
    return 2;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      operands.push(...args.slice(i + 1));
      break;
    }
    let limitText: string | undefined;
    if (a === '-n' || a === '--bytes') {
      if (i + 1 >= args.length) {
        io.stderr(
          a === '-n'
            ? "cmp: option requires an argument -- 'n'\n"
            : `cmp: option '${a}' requires an argument\n`,
        );
        io.stderr("cmp: Try `cmp --help' for more information.\n");
        return 2;
      }
      limitText = args[++i];
    } else if (a.startsWith('--bytes=')) limitText = a.slice('--bytes='.length);
    else if (a.startsWith('-n')) limitText = a.slice(2);
    else if (a === '-s' || a === '--quiet' || a === '--silent') silent = true;
    else if (a.startsWith('-') && a.length > 1) {
      io.stderr(
        a.startsWith('--') ? `cmp: unrecognized option '${a}'\n` : `cmp: invalid option -- '${a[1]}'\n`,
      );
      io.stderr("cmp: Try `cmp --help' for more information.\n");
      return 2;
    } else operands.push(a);
    if (limitText !== undefined) {
      if (!/^\d+$/.test(limitText)) return usage(`invalid --bytes value ${quote(limitText)}`);
      limit = Number(limitText);
    }
  }
  if (operands.length === 0) return usage("missing operand after `cmp'");
  if (operands.length === 1 || operands.includes('-')) {
    io.stderr(`cmp: -: ${NO_STDIN}\n`);
    return 2;
  }
  if (operands.length > 2) return usage(`extra operand ${quote(operands[2])}`);

  const files: GuestFile[] = [];
  try {
    for (const path of operands) {
      const f = await ctx.vfs.open(path, { read: true, write: false });
      if ('errno' in f) {
        io.stderr(`cmp: ${path}: ${STRERROR[f.errno]}\n`);
        return 2;
      }
      files.push(f);
    }
    const a = new Reader(operands[0], files[0]);
    const b = new Reader(operands[1], files[1]);
    let byte = 0; // bytes found equal so far
    let line = 1;
    while (byte < limit) {
      if (io.signal.aborted) return SIGINT_STATUS;
      const ca = await a.chunk();
      const cb = await b.chunk();
      for (const [r, c] of [
        [a, ca],
        [b, cb],
      ] as const) {
        if (typeof c === 'string') {
          io.stderr(`cmp: ${r.name}: ${c}\n`);
          return 2;
        }
      }
      const da = ca as Uint8Array;
      const db = cb as Uint8Array;
      if (da.length === 0 || db.length === 0) {
        if (da.length === db.length) return 0;
        if (!silent) io.stderr(`cmp: EOF on ${da.length === 0 ? a.name : b.name}\n`);
        return 1;
      }
      const n = Math.min(da.length, db.length, limit - byte);
      for (let i = 0; i < n; i++) {
        if (da[i] !== db[i]) {
          if (!silent) io.stdout(`${a.name} ${b.name} differ: byte ${byte + i + 1}, line ${line}\n`);
          return 1;
        }
        if (da[i] === 0x0a) line++;
      }
      byte += n;
      a.consume(n);
      b.consume(n);
    }
    return 0;
  } finally {
    for (const f of files) await f.close();
  }
};

/** cat FILE...: the bytes, as latin1 text on stdout. */
export const cat: GuestCommand = async (argv, io, ctx) => {
  const { options, operands } = splitArgs(argv.slice(1));
  if (options.length) {
    badOption(io, 'cat', options[0]);
    return 1;
  }
  let status = 0;
  for (const path of operands.length ? operands : ['-']) {
    const r = await readWhole(ctx.vfs, path, io, (chunk) => {
      io.stdout(latin1Text(chunk));
    });
    if (r.ok === 'aborted') return SIGINT_STATUS;
    if (!r.ok) {
      io.stderr(`cat: ${path}: ${r.message}\n`);
      status = 1;
    }
  }
  return status;
};

/** Interprets echo -e backslash escapes; returns the text and whether `\c` cut the output short. */
function echoEscapes(s: string): { text: string; stop: boolean } {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch !== '\\' || i + 1 >= s.length) {
      out += ch;
      continue;
    }
    const c = s[++i];
    const simple: Record<string, string> = {
      a: '\x07',
      b: '\b',
      e: '\x1b',
      f: '\f',
      n: '\n',
      r: '\r',
      t: '\t',
      v: '\v',
      '\\': '\\',
    };
    if (c in simple) out += simple[c];
    else if (c === 'c') return { text: out, stop: true };
    else if (c === 'x' && /[0-9a-fA-F]/.test(s[i + 1] ?? '')) {
      let hex = s[++i];
      if (/[0-9a-fA-F]/.test(s[i + 1] ?? '')) hex += s[++i];
      out += String.fromCharCode(parseInt(hex, 16));
    } else if (c >= '0' && c <= '7') {
      // \0NNN (up to three digits after the 0) and \NNN both denote octal bytes.
      let digits = c === '0' ? '' : c;
      while (digits.length < 3 && s[i + 1] >= '0' && s[i + 1] <= '7') digits += s[++i];
      out += String.fromCharCode(parseInt(digits || '0', 8) & 0xff);
    } else out += `\\${c}`;
  }
  return { text: out, stop: false };
}

/** GNU echo: leading -n/-e/-E words (only of those letters) are options. */
export const echo: GuestCommand = async (argv, io) => {
  const args = argv.slice(1);
  let newline = true;
  let escapes = false;
  let i = 0;
  for (; i < args.length && /^-[neE]+$/.test(args[i]); i++) {
    for (const c of args[i].slice(1)) {
      if (c === 'n') newline = false;
      else escapes = c === 'e';
    }
  }
  let text = args.slice(i).join(' ');
  if (escapes) {
    const r = echoEscapes(text);
    text = r.text;
    if (r.stop) newline = false;
  }
  io.stdout(newline ? `${text}\n` : text);
  return 0;
};

/** Accepted and successful; the lead wires the real flush of the guest's dirty pages. */
export const sync: GuestCommand = async () => 0;

export const trueCommand: GuestCommand = async () => 0;
export const falseCommand: GuestCommand = async () => 1;

/** sleep NUMBER[smhd]...: the sum of the operands, in real time; Ctrl-C ends it with status 130. */
export const sleep: GuestCommand = async (argv, io) => {
  const args = argv.slice(1);
  const tryHelp = "Try `sleep --help' for more information.\n";
  if (args.length === 0) {
    io.stderr(`sleep: missing operand\n${tryHelp}`);
    return 1;
  }
  const units: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 };
  let seconds = 0;
  for (const a of args) {
    const m = /^\s*\+?((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([smhd]?)$/.exec(a);
    if (!m) {
      io.stderr(`sleep: invalid time interval ${quote(a)}\n${tryHelp}`);
      return 1;
    }
    seconds += Number(m[1]) * units[m[2]];
  }
  if (io.signal.aborted) return SIGINT_STATUS;
  const completed = await new Promise<boolean>((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    // setTimeout caps at 2^31-1 ms; a longer sleep simply waits for an interrupt.
    const ms = Math.min(seconds * 1000, 2 ** 31 - 1);
    const timer = setTimeout(() => {
      io.signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    io.signal.addEventListener('abort', onAbort, { once: true });
  });
  return completed ? 0 : SIGINT_STATUS;
};

export const COMMANDS: Record<string, GuestCommand> = {
  dd,
  md5sum,
  sha1sum,
  sha256sum,
  cmp,
  cat,
  echo,
  sync,
  true: trueCommand,
  false: falseCommand,
  sleep,
  head,
  tail,
  wc,
  grep,
  ls,
};
