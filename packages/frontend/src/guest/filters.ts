/**
 * The text filters a pipeline needs at its end — `dmesg | grep xvda`, `cat /sys/block/xvda/stat | wc -w`,
 * `dd … | head -c 16` — as GNU coreutils 8.13 and grep print them (grep's pattern errors in the
 * words of grep 3.x, which are glibc's regerror() texts). Each reads its FILE operands, or standard
 * input (the pipe) without any or for `-`, chunk by chunk: an input may be larger than any string
 * (a disk) or endless (/dev/zero).
 */
import { asBuffer, latin1Text } from '@pvblk/shared';
import { constants as bufferConstants } from 'node:buffer';
import { breToJs } from './bre.ts';
import { lineMatcher, MATCH_LIMIT_MS, MatchTooCostly } from './regex-match.ts';
import { stdinFile } from './stdin.ts';
import {
  STRERROR,
  type CommandIo,
  type GuestCommand,
  type GuestCommandContext,
  type GuestFile,
} from './vfs.ts';

const CHUNK = 64 * 1024;
/**
 * What a tool may hold back in memory (a line for grep, the lines or bytes `head -n -N` must not
 * print yet): the longest string V8 builds. Past it GNU's tools would grow until malloc fails,
 * and say so (xalloc_die: "memory exhausted"); so do these, instead of throwing.
 */
const HOLD_MAX = bufferConstants.MAX_STRING_LENGTH;
const NL = 0x0a;

/** Opens an operand (`-` is standard input); an error comes back as its strerror text. */
async function openInput(path: string, io: CommandIo, ctx: GuestCommandContext): Promise<GuestFile | string> {
  if (path === '-') return io.stdin ? stdinFile(io.stdin) : 'no standard input here (use a pipe: … | cmd)';
  const f = await ctx.vfs.open(path, { read: true, write: false });
  return 'errno' in f ? STRERROR[f.errno] : f;
}

/** How a read ended: at the end of the input (or of the range), `take` having seen enough, ^C, an error. */
type ReadEnd = 'eof' | 'stopped' | 'interrupted' | { error: string };

/**
 * Hands an input to `take` chunk by chunk (the chunk's memory is reused: copy what is kept) until
 * its end, `to` if given, `take` returning false, an interrupt or an error; closes the input. An
 * endless input that answers at once (/dev/zero) lets the event loop turn by itself (guest-vfs.ts).
 */
async function readChunks(
  f: GuestFile,
  io: CommandIo,
  take: (chunk: Uint8Array) => boolean | void,
  range: { to?: number } = {},
): Promise<ReadEnd> {
  const buf = new Uint8Array(CHUNK);
  try {
    for (let off = 0; ;) {
      if (io.signal.aborted) return 'interrupted';
      const want = range.to === undefined ? CHUNK : Math.min(CHUNK, range.to - off);
      if (want <= 0) return 'eof';
      const r = await f.pread(buf.subarray(0, want), off);
      if (!r.ok) return { error: STRERROR[r.errno] };
      if (r.n === 0) return 'eof';
      off += r.n;
      if (take(buf.subarray(0, r.n)) === false) return 'stopped';
      // what `take` wrote waits for its reader, as a writer blocks on a full pipe: `head -c 20000000
      // /dev/zero` outran a control client that read all along and had its session cut at 64 MiB owed
      await io.drain?.();
    }
  } finally {
    await f.close();
  }
}

/** Reads a whole input as latin1 text (tail needs all of it). */
async function readText(
  f: GuestFile,
  io: CommandIo,
): Promise<{ text: string } | { error: string } | 'interrupted' | 'exhausted'> {
  const parts: string[] = [];
  let length = 0;
  const r = await readChunks(f, io, (chunk) => {
    length += chunk.length;
    if (length > HOLD_MAX) return false;
    parts.push(latin1Text(chunk));
  });
  if (r === 'stopped') return 'exhausted';
  if (r === 'interrupted' || typeof r === 'object') return r;
  return { text: parts.join('') };
}

interface CountOptions {
  lines: boolean;
  count: number;
  /** tail -n +N: from line (byte) N on. */
  fromStart: boolean;
  /** head -n -N: all but the last N lines (bytes). */
  elide: boolean;
  files: string[];
  quiet: boolean;
}

/** The operands, options aside: `-n 5`, `-n5`, `-5`, `-c 16`, and head's `-n -5`. */
function countOption(prog: string, args: string[], io: CommandIo): CountOptions | null {
  let lines = true;
  let count = 10;
  let fromStart = false;
  let elide = false;
  let quiet = false;
  const files: string[] = [];
  const parse = (v: string | undefined, what: string): boolean => {
    const m = /^([+-]?)(\d+)$/.exec(v ?? '');
    if (!m) {
      io.stderr(`${prog}: ${v ?? ''}: invalid number of ${what}\n`);
      return false;
    }
    count = Number(m[2]);
    // tail reads a leading '-' as no sign at all; head as "all but the last N" (--lines=[-]NUM)
    fromStart = prog === 'tail' && m[1] === '+';
    elide = prog === 'head' && m[1] === '-';
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
    } else if (/^-\d+$/.test(a)) {
      count = Number(a.slice(1));
      elide = fromStart = false;
    } else if (a === '-q') quiet = true;
    else if (a.startsWith('-') && a !== '-') {
      io.stderr(`${prog}: invalid option -- '${a[1]}'\nTry \`${prog} --help' for more information.\n`);
      return null;
    } else files.push(a);
  }
  return { lines, count, fromStart, elide, files: files.length ? files : ['-'], quiet };
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
      let r: ReadEnd | 'exhausted';
      if (prog === 'head') r = await headOne(f, io, o);
      else {
        const t = await readText(f, io);
        if (typeof t === 'object' && 'text' in t) {
          io.stdout(o.lines ? pickLines(t.text, o.count, o.fromStart) : pickBytes(t.text, o));
          r = 'eof';
        } else r = t;
      }
      if (r === 'interrupted') return 130;
      if (r === 'exhausted') {
        io.stderr(`${prog}: memory exhausted\n`);
        return 1;
      }
      if (typeof r === 'object') {
        io.stderr(`${prog}: error reading \`${path}': ${r.error}\n`);
        status = 1;
      }
    }
    return status;
  };
}

/** head on one input, printing as it reads: the first N lines (bytes), or all but the last N. */
async function headOne(f: GuestFile, io: CommandIo, o: CountOptions): Promise<ReadEnd | 'exhausted'> {
  const out = (b: Uint8Array) => {
    if (b.length) io.stdout(latin1Text(b));
  };
  if (!o.elide) {
    let left = o.count;
    if (left === 0) {
      // head_lines()/head_bytes() do not read at all for a count of 0
      await f.close();
      return 'eof';
    }
    return readChunks(f, io, (chunk) => {
      let end = chunk.length;
      if (!o.lines) {
        end = Math.min(left, end);
        left -= end;
      } else {
        const b = asBuffer(chunk);
        for (let nl = b.indexOf(NL); nl >= 0 && left > 0; nl = b.indexOf(NL, nl + 1)) {
          if (--left === 0) end = nl + 1;
        }
      }
      out(chunk.subarray(0, end));
      return left > 0;
    });
  }
  if (o.count === 0) return readChunks(f, io, out);
  // As elide_tail_bytes_file()/elide_tail_lines_seekable(): a file whose size is known is cut where
  // its size says, holding nothing back; a small one may be a sysfs attribute whose size (4096) is
  // not its length, so it is read as a pipe would be (GNU's test is st_size <= st_blksize).
  const size = f.size();
  if (size !== null && size > 4096) {
    if (!o.lines) return readChunks(f, io, out, { to: Math.max(0, size - o.count) });
    const cut = await lineCut(f, io, size, o.count);
    if (typeof cut !== 'number') {
      await f.close();
      return cut;
    }
    return readChunks(f, io, out, { to: cut });
  }
  return elidePipe(f, io, o, out);
}

/**
 * Counts `need` newlines back from the end of `block`: the offset just past the last one counted,
 * or how many are still needed before the block.
 */
function newlinesBack(block: Uint8Array, need: number): { cut: number } | { need: number } {
  const b = asBuffer(block);
  for (let at = b.length - 1; at >= 0;) {
    const nl = b.lastIndexOf(NL, at);
    if (nl < 0) break;
    if (--need === 0) return { cut: nl + 1 };
    at = nl - 1;
  }
  return { need };
}

/**
 * Where `head -n -N` (N > 0) stops in a file of `size` bytes, found reading it backwards from its
 * end: just past the newline that ends the line before the last N. A last line without its
 * newline counts as a line.
 */
async function lineCut(
  f: GuestFile,
  io: CommandIo,
  size: number,
  n: number,
): Promise<number | 'interrupted' | { error: string }> {
  const buf = new Uint8Array(CHUNK);
  let need = n;
  for (let end = size; end > 0;) {
    if (io.signal.aborted) return 'interrupted';
    const start = Math.max(0, end - CHUNK);
    let got = 0;
    while (got < end - start) {
      const r = await f.pread(buf.subarray(got, end - start), start + got);
      if (!r.ok) return { error: STRERROR[r.errno] };
      if (r.n === 0) break; // the file shrank: look at what there is
      got += r.n;
    }
    const block = buf.subarray(0, got);
    if (end === size && block[got - 1] === NL) need++; // the last line's own newline
    const r = newlinesBack(block, need);
    if ('cut' in r) return start + r.cut;
    need = r.need;
    end = start;
  }
  return 0;
}

/**
 * `head -c -N` / `head -n -N` on an input of unknown length (a pipe, a character device): holds
 * back just enough chunks that the last N bytes (lines) are still among them, printing the rest
 * (elide_tail_bytes_pipe()/elide_tail_lines_pipe()).
 */
async function elidePipe(
  f: GuestFile,
  io: CommandIo,
  o: CountOptions,
  out: (b: Uint8Array) => void,
): Promise<ReadEnd | 'exhausted'> {
  const held: Array<{ bytes: Uint8Array; newlines: number }> = [];
  let heldBytes = 0;
  let heldNewlines = 0;
  const newlines = (chunk: Uint8Array) => {
    const b = asBuffer(chunk);
    let k = 0;
    for (let at = b.indexOf(NL); at >= 0; at = b.indexOf(NL, at + 1)) k++;
    return k;
  };
  const r = await readChunks(f, io, (chunk) => {
    const c = { bytes: chunk.slice(), newlines: o.lines ? newlines(chunk) : 0 };
    held.push(c);
    heldBytes += c.bytes.length;
    heldNewlines += c.newlines;
    // The first chunk can go once what follows it still holds the last N bytes, or more than N
    // newlines (the last line may lack its own: N newlines after it could all belong to the last N).
    while (
      held.length > 1 &&
      (o.lines ? heldNewlines - held[0].newlines > o.count : heldBytes - held[0].bytes.length >= o.count)
    ) {
      const first = held.shift()!;
      heldBytes -= first.bytes.length;
      heldNewlines -= first.newlines;
      out(first.bytes);
    }
    return heldBytes <= HOLD_MAX;
  });
  if (r === 'stopped') return 'exhausted';
  if (r !== 'eof') return r;
  let keep = Math.max(0, heldBytes - o.count); // bytes of `held` to print
  if (o.lines) {
    const last = held.length ? held[held.length - 1].bytes : new Uint8Array(0);
    let need = o.count + (last[last.length - 1] === NL ? 1 : 0);
    let base = heldBytes;
    keep = 0;
    for (let k = held.length - 1; k >= 0; k--) {
      base -= held[k].bytes.length;
      const c = newlinesBack(held[k].bytes, need);
      if ('cut' in c) {
        keep = base + c.cut;
        break;
      }
      need = c.need;
    }
  }
  for (const { bytes } of held) {
    if (keep <= 0) break;
    out(bytes.subarray(0, keep));
    keep -= bytes.length;
  }
  return 'eof';
}

function pickLines(text: string, n: number, fromStart: boolean): string {
  // lines keep their newline; a last line without one counts too
  const lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  if (fromStart) return lines.slice(Math.max(0, n - 1)).join('');
  return n === 0 ? '' : lines.slice(-n).join('');
}

function pickBytes(text: string, o: { count: number; fromStart: boolean }): string {
  if (o.fromStart) return text.slice(Math.max(0, o.count - 1));
  return o.count === 0 ? '' : text.slice(-o.count);
}

export const head = headOrTail('head');
export const tail = headOrTail('tail');

/** The bytes wc's C locale counts as white space: they separate words. */
const WC_SPACE = new Uint8Array(256);
for (const c of ' \t\n\r\v\f') WC_SPACE[c.charCodeAt(0)] = 1;

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
    // counted as the chunks come: a word may go on from one chunk into the next
    const n = { l: 0, w: 0, c: 0 };
    let inWord = false;
    const r = await readChunks(f, io, (chunk) => {
      n.c += chunk.length;
      if (which.w) {
        for (let i = 0; i < chunk.length; i++) {
          const b = chunk[i];
          if (WC_SPACE[b]) {
            if (b === NL) n.l++;
            inWord = false;
          } else if (!inWord) {
            inWord = true;
            n.w++;
          }
        }
      } else if (which.l) {
        const b = asBuffer(chunk);
        for (let at = b.indexOf(NL); at >= 0; at = b.indexOf(NL, at + 1)) n.l++;
      }
    });
    if (r === 'interrupted') return 130;
    if (typeof r === 'object') {
      io.stderr(`wc: ${path}: ${r.error}\n`);
      status = 1;
      counts.push(null);
      continue;
    }
    if (kind === 'file' && path !== '-') regularBytes += n.c;
    else pipe = true;
    counts.push({ name: files.length ? path : null, n });
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

const GREP_USAGE = "Usage: grep [OPTION]... PATTERN [FILE]...\nTry `grep --help' for more information.\n";

/**
 * grep [-EFivcnqh] [-e PATTERN]... PATTERN [FILE]...: status 0 when a line matched, 1 when none
 * did, 2 on trouble. Each -e adds a pattern (then every operand is a FILE), as does each line of
 * a pattern; a line matches when any pattern does.
 */
export const grep: GuestCommand = async (argv, io, ctx) => {
  const opt = { E: false, F: false, i: false, v: false, c: false, n: false, q: false, h: false };
  const operands: string[] = [];
  let patterns: string[] | null = null;
  const args = argv.slice(1);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      operands.push(a);
      continue;
    }
    // getopt: a cluster of flags, where `e` takes the rest of it or else the next argument
    for (let k = 1; k < a.length; k++) {
      const ch = a[k];
      if (ch === 'e') {
        let p: string | undefined = a.slice(k + 1);
        if (p === '') p = args[++i];
        if (p === undefined) {
          io.stderr(`grep: option requires an argument -- 'e'\n${GREP_USAGE}`);
          return 2;
        }
        (patterns ??= []).push(p);
        break;
      }
      if (!Object.hasOwn(opt, ch)) {
        io.stderr(`grep: invalid option -- '${ch}'\n${GREP_USAGE}`);
        return 2;
      }
      opt[ch as keyof typeof opt] = true;
    }
  }
  if (patterns === null) {
    if (operands.length === 0) {
      io.stderr(GREP_USAGE);
      return 2;
    }
    patterns = [operands.shift()!];
  }
  const files = operands;
  const res: RegExp[] = [];
  const errors: string[] = [];
  let dfaError: string | null = null;
  for (const pattern of patterns.flatMap((p) => p.split('\n'))) {
    let src: string;
    if (opt.F) src = pattern.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
    else if (opt.E) src = pattern;
    else {
      const c = breToJs(pattern);
      if ('error' in c) {
        if (c.dfa) dfaError ??= c.error;
        else errors.push(c.error);
        continue;
      }
      src = c.source;
    }
    try {
      res.push(new RegExp(src, opt.i ? 'i' : ''));
    } catch {
      errors.push('Invalid regular expression');
    }
  }
  // every pattern is compiled (and its error told) before grep gives up; dfa.c's check comes after
  if (errors.length || dfaError !== null) {
    for (const e of errors.length ? errors : [dfaError]) io.stderr(`grep: ${e}\n`);
    return 2;
  }
  const matchers = res.map(lineMatcher);
  const selected = (l: string) => matchers.some((m) => m(l)) !== opt.v;
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
    const prefix = inputs.length > 1 && !opt.h ? `${path === '-' ? '(standard input)' : path}:` : '';
    let lineNo = 0;
    let count = 0;
    let quit = false;
    let exhausted = false;
    // a line may span chunks: its start waits here (in pieces, so a long one is not copied again
    // with every chunk)
    const pending: string[] = [];
    let pendingLength = 0;
    /** The line whose match ran past its time limit, which stops the command. */
    let costly = 0;
    const onLine = (l: string) => {
      lineNo++;
      let hit: boolean;
      try {
        hit = selected(l);
      } catch (e) {
        if (!(e instanceof MatchTooCostly)) throw e;
        costly = lineNo;
        quit = true;
        return;
      }
      if (!hit) return;
      count++;
      matched = true;
      if (opt.q) quit = true;
      else if (!opt.c) io.stdout(`${prefix}${opt.n ? `${lineNo}:` : ''}${l}\n`);
    };
    const r = await readChunks(f, io, (chunk) => {
      const text = latin1Text(chunk);
      let at = 0;
      for (let nl = text.indexOf('\n'); nl >= 0 && !quit; nl = text.indexOf('\n', at)) {
        if (pendingLength + nl - at > HOLD_MAX) {
          exhausted = true;
          return false;
        }
        const piece = text.slice(at, nl);
        onLine(pending.length ? pending.join('') + piece : piece);
        pending.length = pendingLength = 0;
        at = nl + 1;
      }
      if (quit) return false;
      pendingLength += text.length - at;
      if (pendingLength > HOLD_MAX) {
        exhausted = true;
        return false;
      }
      if (at < text.length) pending.push(text.slice(at));
    });
    if (r === 'interrupted') return 130;
    if (exhausted) {
      io.stderr('grep: memory exhausted\n');
      return 2;
    }
    if (!costly && quit) return 0;
    if (typeof r === 'object') {
      io.stderr(`grep: ${path}: ${r.error}\n`);
      trouble = true;
    } else if (!costly && pending.length) onLine(pending.join('')); // a last line without its newline
    if (costly) {
      const where = path === '-' ? '(standard input)' : path;
      io.stderr(
        `grep: ${where}: line ${costly}: matching took more than ${MATCH_LIMIT_MS / 1000} s; stopped (back-references can take exponential time, and this guest's kernel waits for its tools)\n`,
      );
      return 2;
    }
    if (quit) return 0;
    // grep() returns the lines counted so far even when a read failed, and grepdesc() prints them
    if (opt.c) io.stdout(`${prefix}${count}\n`);
  }
  return trouble ? 2 : matched ? 0 : 1;
};
