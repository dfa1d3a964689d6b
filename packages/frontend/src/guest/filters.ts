/**
 * The text filters a pipeline needs at its end — `dmesg | grep xvda`, `cat /sys/block/xvda/stat | wc -w`,
 * `dd … | head -c 16` — as GNU coreutils 8.13 and grep 2.x print them. Each reads its FILE operands,
 * or standard input (the pipe) without any or for `-`.
 */
import { stdinFile } from './stdin.ts';
import { ownEntry } from '@pvblk/shared';
import {
  STRERROR,
  type CommandIo,
  type GuestCommand,
  type GuestCommandContext,
  type GuestFile,
} from './vfs.ts';

const CHUNK = 64 * 1024;
const latin1 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

/** Opens an operand (`-` is standard input); an error comes back as its strerror text. */
async function openInput(path: string, io: CommandIo, ctx: GuestCommandContext): Promise<GuestFile | string> {
  if (path === '-') return io.stdin ? stdinFile(io.stdin) : 'no standard input here (use a pipe: … | cmd)';
  const f = await ctx.vfs.open(path, { read: true, write: false });
  return 'errno' in f ? STRERROR[f.errno] : f;
}

/** Reads a whole input as latin1 text (stopping early when `enough` says so). */
async function readText(
  f: GuestFile,
  io: CommandIo,
  enough: (text: string) => boolean = () => false,
): Promise<{ text: string } | { error: string } | 'interrupted'> {
  let text = '';
  const buf = new Uint8Array(CHUNK);
  try {
    for (let off = 0; ;) {
      if (io.signal.aborted) return 'interrupted';
      const r = await f.pread(buf, off);
      if (!r.ok) return { error: STRERROR[r.errno] };
      if (r.n === 0) return { text };
      off += r.n;
      text += latin1(buf.subarray(0, r.n));
      if (enough(text)) return { text };
    }
  } finally {
    await f.close();
  }
}

/** The operands, options aside: `-n 5`, `-n5`, `-5`, `-c 16`. */
function countOption(
  prog: string,
  args: string[],
  io: CommandIo,
): { lines: boolean; count: number; fromStart: boolean; files: string[]; quiet: boolean } | null {
  let lines = true;
  let count = 10;
  let fromStart = false;
  let quiet = false;
  const files: string[] = [];
  const parse = (v: string | undefined, what: string): boolean => {
    const m = /^([+-]?)(\d+)$/.exec(v ?? '');
    if (!m) {
      io.stderr(`${prog}: ${v ?? ''}: invalid number of ${what}\n`);
      return false;
    }
    count = Number(m[2]);
    fromStart = prog === 'tail' && m[1] === '+';
    return true;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '-n' || a === '-c') {
      lines = a === '-n';
      if (!parse(args[++i], lines ? 'lines' : 'bytes')) return null;
    } else if (/^-[nc].+/.test(a)) {
      lines = a[1] === 'n';
      if (!parse(a.slice(2), lines ? 'lines' : 'bytes')) return null;
    } else if (/^-\d+$/.test(a)) count = Number(a.slice(1));
    else if (a === '-q') quiet = true;
    else if (a.startsWith('-') && a !== '-') {
      io.stderr(`${prog}: invalid option -- '${a[1]}'\nTry \`${prog} --help' for more information.\n`);
      return null;
    } else files.push(a);
  }
  return { lines, count, fromStart, files: files.length ? files : ['-'], quiet };
}

function headOrTail(prog: 'head' | 'tail'): GuestCommand {
  return async (argv, io, ctx) => {
    const o = countOption(prog, argv.slice(1), io);
    if (!o) return 1;
    let status = 0;
    for (const [k, path] of o.files.entries()) {
      if (o.files.length > 1 && !o.quiet)
        io.stdout(`${k > 0 ? '\n' : ''}==> ${path === '-' ? 'standard input' : path} <==\n`);
      const f = await openInput(path, io, ctx);
      if (typeof f === 'string') {
        io.stderr(`${prog}: cannot open \`${path}' for reading: ${f}\n`);
        status = 1;
        continue;
      }
      const enough =
        prog === 'head'
          ? (t: string) => (o.lines ? t.split('\n').length > o.count : t.length >= o.count)
          : undefined;
      const r = await readText(f, io, enough);
      if (r === 'interrupted') return 130;
      if ('error' in r) {
        io.stderr(`${prog}: error reading \`${path}': ${r.error}\n`);
        status = 1;
        continue;
      }
      io.stdout(o.lines ? pickLines(prog, r.text, o.count, o.fromStart) : pickBytes(prog, r.text, o));
    }
    return status;
  };
}

function pickLines(prog: 'head' | 'tail', text: string, n: number, fromStart: boolean): string {
  // lines keep their newline; a last line without one counts too
  const lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  if (prog === 'head') return lines.slice(0, n).join('');
  if (fromStart) return lines.slice(Math.max(0, n - 1)).join('');
  return n === 0 ? '' : lines.slice(-n).join('');
}

function pickBytes(prog: 'head' | 'tail', text: string, o: { count: number; fromStart: boolean }): string {
  if (prog === 'head') return text.slice(0, o.count);
  if (o.fromStart) return text.slice(Math.max(0, o.count - 1));
  return o.count === 0 ? '' : text.slice(-o.count);
}

export const head = headOrTail('head');
export const tail = headOrTail('tail');

/** wc [-lwc] [FILE]...: lines, words, bytes; widths as coreutils computes them. */
export const wc: GuestCommand = async (argv, io, ctx) => {
  const which = { l: false, w: false, c: false };
  const files: string[] = [];
  for (const a of argv.slice(1)) {
    if (/^-[lwc]+$/.test(a)) for (const ch of a.slice(1)) which[ch as 'l' | 'w' | 'c'] = true;
    else if (a.startsWith('-') && a !== '-') {
      io.stderr(`wc: invalid option -- '${a[1]}'\nTry \`wc --help' for more information.\n`);
      return 1;
    } else files.push(a);
  }
  if (!which.l && !which.w && !which.c) which.l = which.w = which.c = true;
  const shown = (['l', 'w', 'c'] as const).filter((k) => which[k]);
  const inputs = files.length ? files : ['-'];
  const counts: Array<{ name: string | null; n: Record<'l' | 'w' | 'c', number> } | null> = [];
  let status = 0;
  let regularBytes = 0;
  let pipe = false;
  for (const path of inputs) {
    const f = await openInput(path, io, ctx);
    if (typeof f === 'string') {
      io.stderr(`wc: ${path}: ${f}\n`);
      status = 1;
      counts.push(null);
      continue;
    }
    const kind = f.kind;
    const r = await readText(f, io);
    if (r === 'interrupted') return 130;
    if ('error' in r) {
      io.stderr(`wc: ${path}: ${r.error}\n`);
      status = 1;
      counts.push(null);
      continue;
    }
    if (kind === 'file' && path !== '-') regularBytes += r.text.length;
    else pipe = true;
    counts.push({
      name: files.length ? path : null,
      n: {
        l: (r.text.match(/\n/g) ?? []).length,
        w: (r.text.match(/[^ \t\n\r\v\f]+/g) ?? []).length,
        c: r.text.length,
      },
    });
  }
  // compute_number_width(): digits of the regular files' total size, at least 7 for anything else;
  // one count of one input is not padded at all
  let width = 1;
  if (!(inputs.length === 1 && shown.length === 1)) {
    width = Math.max(String(regularBytes).length, pipe ? 7 : 1);
  }
  const line = (n: Record<'l' | 'w' | 'c', number>, name: string | null) =>
    shown.map((k) => String(n[k]).padStart(width)).join(' ') + (name === null ? '' : ` ${name}`) + '\n';
  const total = { l: 0, w: 0, c: 0 };
  for (const c of counts) {
    if (!c) continue;
    io.stdout(line(c.n, c.name));
    for (const k of ['l', 'w', 'c'] as const) total[k] += c.n[k];
  }
  if (inputs.length > 1) io.stdout(line(total, 'total'));
  return status;
};

/** A POSIX basic regular expression as a JavaScript one: \( \) \{ \} are the groups, ( ) { } | + ? plain. */
function breToJs(re: string): string {
  const classes: Record<string, string> = {
    alpha: 'A-Za-z',
    digit: '0-9',
    alnum: '0-9A-Za-z',
    upper: 'A-Z',
    lower: 'a-z',
    space: ' \\t\\n\\r\\f\\v',
    blank: ' \\t',
    xdigit: '0-9A-Fa-f',
    punct: '!-/:-@\\[-`{-~',
  };
  let out = '';
  for (let i = 0; i < re.length; i++) {
    const c = re[i];
    if (c === '\\' && i + 1 < re.length) {
      const n = re[++i];
      out += '(){}|+?'.includes(n) ? n : `\\${n}`;
    } else if (c === '[') {
      const end = re.indexOf(
        ']',
        re[i + 1] === ']' ? i + 2 : re[i + 1] === '^' && re[i + 2] === ']' ? i + 3 : i + 1,
      );
      if (end < 0) return out + '\\[' + re.slice(i + 1).replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
      const body = re
        .slice(i + 1, end)
        .replace(/\[:([a-z]+):\]/g, (_, name: string) => ownEntry(classes, name) ?? '')
        .replace(/\\/g, '\\\\');
      out += `[${body}]`;
      i = end;
    } else out += '(){}|+?'.includes(c) ? `\\${c}` : c;
  }
  return out;
}

/** grep [-EFivcnqh] PATTERN [FILE]...: status 0 when a line matched, 1 when none did, 2 on trouble. */
export const grep: GuestCommand = async (argv, io, ctx) => {
  const opt = { E: false, F: false, i: false, v: false, c: false, n: false, q: false, h: false };
  const operands: string[] = [];
  const args = argv.slice(1);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (a === '-e') operands.unshift(args[++i] ?? '');
    else if (/^-[EFivcnqh]+$/.test(a)) for (const ch of a.slice(1)) opt[ch as keyof typeof opt] = true;
    else if (a.startsWith('-') && a !== '-') {
      io.stderr(
        `grep: invalid option -- '${a[1]}'\nUsage: grep [OPTION]... PATTERN [FILE]...\nTry \`grep --help' for more information.\n`,
      );
      return 2;
    } else operands.push(a);
  }
  if (operands.length === 0) {
    io.stderr("Usage: grep [OPTION]... PATTERN [FILE]...\nTry `grep --help' for more information.\n");
    return 2;
  }
  const [pattern, ...files] = operands;
  let re: RegExp;
  try {
    const src = opt.F ? pattern.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&') : opt.E ? pattern : breToJs(pattern);
    re = new RegExp(src, opt.i ? 'i' : '');
  } catch {
    io.stderr(`grep: Invalid regular expression\n`);
    return 2;
  }
  const inputs = files.length ? files : ['-'];
  let matched = false;
  let trouble = false;
  for (const path of inputs) {
    const f = await openInput(path, io, ctx);
    if (typeof f === 'string') {
      io.stderr(`grep: ${path}: ${f}\n`);
      trouble = true;
      continue;
    }
    const r = await readText(f, io);
    if (r === 'interrupted') return 130;
    if ('error' in r) {
      io.stderr(`grep: ${path}: ${r.error}\n`);
      trouble = true;
      continue;
    }
    const prefix = inputs.length > 1 && !opt.h ? `${path === '-' ? '(standard input)' : path}:` : '';
    const lines = r.text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    let count = 0;
    for (const [k, l] of lines.entries()) {
      if (re.test(l) === opt.v) continue;
      count++;
      matched = true;
      if (opt.q) return 0;
      if (!opt.c) io.stdout(`${prefix}${opt.n ? `${k + 1}:` : ''}${l}\n`);
    }
    if (opt.c) io.stdout(`${prefix}${count}\n`);
  }
  return trouble ? 2 : matched ? 0 : 1;
};
