/**
 * fio's job files, as init.c's __parse_jobs_ini() reads them: `[section]` lines, one option a line
 * (`key=value`, or `key` for a set-only option), `;` and `#` comments (whole lines, or the rest of a
 * line), `include <file>` inside a section, `${VAR}` from the environment and fio's keywords
 * (`$pagesize`, `$mb_memory`, `$ncpus`, with bc's integer arithmetic when one was replaced), and
 * `--section` choosing which sections run. Each job file after the first starts with a stonewall
 * (fio separates job files so).
 *
 * A file becomes the options of fio's command line — `[global]` is `--name=global`, `[j]` is
 * `--name=j` — each kept with the line it came from, so that one parser takes both and an error in a
 * file is said in fio's words for files (`Bad option <…>`, `fio: failed parsing <line>`, `fio: job j
 * dropped`). No I/O here: the caller reads the files.
 */
import { isGlobalSection, type SplitOption } from './fio-cmdline.ts';

/** Where an option of a job file came from. */
export interface JobFileLine {
  /** The section it is in (`global` for a global one). */
  section: string;
  /** Which section of the run's job files, counted from 0 (two may have one name). */
  sectionIndex: number;
  /** The section's `[header]`, which starts its job as the command line's --name does. */
  header?: true;
  /** The first option of a job file after the first: fio starts it from its defaults again. */
  newFile?: true;
  /** An option no line gave: the stonewall fio sets between job files. */
  implied?: true;
  /** What fio says of a line it could not take (its substitutions failed): the parser says it, in order. */
  failed?: string[];
  /** The line as written, blanks and comment stripped: what fio's messages quote. */
  line: string;
}

/** Why a job file could not be read. */
export interface JobFileUnread {
  /** It is not there (an include is then looked for beside the file that includes it). */
  missing?: boolean;
  /** It holds more than JOB_FILE_MAX_BYTES: it was not read whole. */
  tooBig?: boolean;
  /** A signal stopped the read: the command ends. */
  aborted?: boolean;
  /** What to say after fio's line, if anything (`-` with no pipe). */
  reason?: string;
}

export interface JobFileSource {
  /** A job file's bytes (`-`: standard input), at most JOB_FILE_MAX_BYTES, or why not. */
  read(path: string): Promise<Uint8Array | JobFileUnread>;
  /** The environment `${VAR}` is taken from (unset: replaced by nothing, as fio). */
  env(name: string): string | undefined;
  /** fio's keywords: the system's page size, memory in MiB and CPUs. */
  keywords: { pagesize: number; mb_memory: number; ncpus: number };
  /** `--section` names: only those sections (and global ones) run; none given, all. */
  sections: readonly string[];
}

/** fio's OPT_LEN_MAX: an option line, after substitution, is at most this long. */
const OPT_LEN_MAX = 8192;
/** A job file's size at most, with what it includes: a bound on what a run reads and holds. */
export const JOB_FILE_MAX_BYTES = 1 << 20;
/** How deep includes may nest. */
const MAX_INCLUDE_DEPTH = 16;

/** An error in a job file: fio's lines for it; the run does not start. `aborted`: a signal's. */
export class JobFileError extends Error {
  constructor(
    readonly lines: string[],
    readonly aborted = false,
  ) {
    super(lines.join('\n'));
  }
}

/** init.c's is_empty_or_comment(): nothing but blanks before the end or a `;`/`#`. */
function emptyOrComment(line: string): boolean {
  for (const c of line) {
    if (c === ';' || c === '#') return true;
    // isspace() or iscntrl(): blanks and the C0 controls and DEL
    const code = c.charCodeAt(0);
    if (!/\s/.test(c) && code > 0x1f && code !== 0x7f) return false;
  }
  return true;
}

/** parse.c's strip_blank_end(): the line ends at a `;` or `#`, and loses its trailing blanks. */
function stripBlankEnd(line: string): string {
  let end = line.length;
  for (const c of [';', '#']) {
    const at = line.indexOf(c);
    if (at >= 0 && at < end) end = at;
  }
  return line.slice(0, end).replace(/\s+$/, '');
}

/**
 * options.c's fio_option_dup_subs(): `${VAR}` by the environment's value, or nothing, into at most
 * OPT_LEN_MAX characters: a value that does not fit in what is left is dropped, and the copy stops
 * when the room is used up.
 */
function substituteEnv(opt: string, env: JobFileSource['env']): string {
  let out = '';
  let room = OPT_LEN_MAX;
  for (let i = 0; i < opt.length && room > 0;) {
    // `${}` too: fio's test is only that the `}` comes after the `{`
    const close = opt.startsWith('${', i) ? opt.indexOf('}', i) : -1;
    if (close > i + 1) {
      const value = env(opt.slice(i + 2, close)) ?? '';
      if (value.length <= room) {
        out += value;
        room -= value.length;
      }
      i = close + 1;
      continue;
    }
    out += opt[i++];
    room--;
  }
  return out;
}

/** bc's results at most this many bits (fio keeps its values in 64), and parentheses this deep. */
const BC_MAX_BITS = 128;
const BC_MAX_DEPTH = 64;

/**
 * bc, as options.c's bc_calc() runs it on a value with a keyword in it: integer arithmetic (`scale=0`
 * truncates toward zero) with + - * / % and parentheses; null where bc would print nothing (a syntax
 * error, a division by zero).
 */
export function bcInteger(expr: string): bigint | null {
  const tokens = expr.match(/\d+|[-+*/%^()]|\S/g) ?? [];
  let at = 0;
  let depth = 0;
  const peek = () => tokens[at];
  // fio's values are 64-bit: a result past BC_MAX_BITS is refused before it is made
  const fits = (v: bigint | null): bigint | null =>
    v !== null && (v < 0n ? -v : v).toString(2).length <= BC_MAX_BITS ? v : null;
  const primary = (): bigint | null => {
    const t = tokens[at++];
    if (t === undefined || depth > BC_MAX_DEPTH) return null;
    if (t === '(' || t === '-') {
      depth++;
      const v = t === '(' ? sum() : primary();
      depth--;
      if (t === '-') return v === null ? null : -v;
      return v !== null && tokens[at++] === ')' ? v : null;
    }
    return /^\d+$/.test(t) ? fits(BigInt(t)) : null;
  };
  // bc's ^: an integer power, right-associative, above * / %
  const power = (): bigint | null => {
    const base = primary();
    if (base === null || peek() !== '^') return base;
    at++;
    const exp = power();
    // bc raises to a negative power as 1 / base^n: 0 at scale 0 unless the base is ±1
    if (exp === null) return null;
    if (exp < 0n) return base === 0n ? null : base === 1n ? 1n : base === -1n ? (-exp % 2n ? -1n : 1n) : 0n;
    const bits = BigInt((base < 0n ? -base : base).toString(2).length);
    if (base > 1n || base < -1n ? bits * exp > BigInt(BC_MAX_BITS) + exp : false) return null;
    return fits(base ** exp);
  };
  const product = (): bigint | null => {
    let v = power();
    while (v !== null && (peek() === '*' || peek() === '/' || peek() === '%')) {
      const op = tokens[at++];
      const r = power();
      if (r === null || (op !== '*' && r === 0n)) return null;
      v = fits(op === '*' ? v * r : op === '/' ? v / r : v % r);
    }
    return v;
  };
  const sum = (): bigint | null => {
    let v = product();
    while (v !== null && (peek() === '+' || peek() === '-')) {
      const op = tokens[at++];
      const r = product();
      if (r === null) return null;
      v = fits(op === '+' ? v + r : v - r);
    }
    return v;
  };
  const v = sum();
  return v !== null && at === tokens.length ? v : null;
}

/**
 * options.c's fio_keyword_replace(): fio's keywords by their values, then, when one was replaced and
 * the value has arithmetic in it, the value by what bc makes of it; null where bc gave nothing.
 */
function replaceKeywords(opt: string, kw: JobFileSource['keywords']): string | null {
  let replaced = false;
  for (const [word, value] of [
    ['$pagesize', kw.pagesize],
    ['$mb_memory', kw.mb_memory],
    ['$ncpus', kw.ncpus],
  ] as const) {
    if (!opt.includes(word)) continue;
    opt = opt.split(word).join(String(value));
    replaced = true;
  }
  if (!replaced || !/[-+*/]/.test(opt) || opt.includes("'")) return opt;
  const eq = opt.indexOf('=');
  // bc_calc() leaves a long option as it is
  if (eq < 0 || opt.length >= 128 || opt.length - eq - 1 > 100) return opt;
  const v = bcInteger(opt.slice(eq + 1));
  return v === null ? null : `${opt.slice(0, eq + 1)}${v}`;
}

/** One option line as fio's parser sees it: split at the first `=`, the name's trailing blanks gone. */
function optionOf(text: string, from: JobFileLine): SplitOption {
  const eq = text.indexOf('=');
  const name = (eq < 0 ? text : text.slice(0, eq)).replace(/\s+$/, '');
  return { name, value: eq < 0 ? null : text.slice(eq + 1), arg: from.line, from };
}

/**
 * The options of fio's command line that `files` amount to, in order: fio parses them after the
 * command line's own. Throws JobFileError with fio's lines.
 */
export async function jobFileOptions(files: readonly string[], src: JobFileSource): Promise<SplitOption[]> {
  const out: SplitOption[] = [];
  let bytes = 0;
  let sections = 0;
  // the file's lines, or fio's words for why it could not be read; the files' bytes count together
  const counted = (path: string, got: Uint8Array | JobFileUnread, after: string[] = []): string[] => {
    const tooBig = () =>
      new JobFileError([
        `fio: ${path}: job files of more than ${JOB_FILE_MAX_BYTES} bytes (with what they include) are refused`,
      ]);
    if (!(got instanceof Uint8Array)) {
      if (got.aborted) throw new JobFileError([], true);
      if (got.tooBig) throw tooBig();
      const why = got.reason ? ` (${got.reason})` : '';
      throw new JobFileError([`fio: unable to open '${path}' job file${why}`, ...after]);
    }
    bytes += got.length;
    if (bytes > JOB_FILE_MAX_BYTES) throw tooBig();
    return Buffer.from(got.buffer, got.byteOffset, got.length).toString('utf8').split('\n');
  };
  for (const [index, file] of files.entries()) {
    let stonewall = index > 0;
    let section: { name: string; index: number; options: SplitOption[] } | null = null;
    // options.c's sort_options(): a section's options are parsed by their priority, and of those
    // this fio takes only filename has one (-1: after the others, which keep their order)
    const flush = () => {
      if (!section) return;
      const o = section.options;
      // a loop: a section may have more options than a call takes arguments
      for (const x of o) if (x.name !== 'filename') out.push(x);
      for (const x of o) if (x.name === 'filename') out.push(x);
      section.options = [];
    };
    let skipping = false;
    const sectionLines = async (path: string, lines: string[], nested: number): Promise<void> => {
      for (const raw of lines) {
        if (emptyOrComment(raw)) continue;
        const line = stripBlankEnd(raw.replace(/^\s+/, ''));
        if (line.startsWith('[')) {
          if (nested)
            throw new JobFileError([
              'No new sections in included files',
              `Error 1 while parsing include file ${path}`,
            ]);
          if (line.length < 2) throw new JobFileError([`fio: option <${line}> outside of [] job section`]);
          flush();
          // sscanf("[%255[^\n]]"), then the last character dropped: the `]`, where there is one
          const name = line.slice(1, 256).slice(0, -1);
          const global = isGlobalSection(name);
          // fio forgets the --section names once its first job file is read: they choose in it alone
          skipping = !global && index === 0 && src.sections.length > 0 && !src.sections.includes(name);
          if (skipping) continue;
          // the header starts the section's job as the command line's --name does
          section = { name, index: sections++, options: [] };
          out.push({
            name: 'name',
            value: name,
            arg: line,
            from: { section: name, sectionIndex: section.index, line, header: true },
          });
          // a stonewall between job files: on the first job of each after the first
          if (!global && stonewall) {
            out.push({
              name: 'stonewall',
              value: null,
              arg: 'stonewall',
              from: { section: name, sectionIndex: section.index, line, implied: true },
            });
            stonewall = false;
          }
          continue;
        }
        if (skipping) continue;
        if (section === null) throw new JobFileError([`fio: option <${line}> outside of [] job section`]);
        if (line.startsWith('include')) {
          // relative to the including file when it is not there as given (access(F_OK) fails)
          const name = line.slice('include'.length + 1);
          const slash = path.lastIndexOf('/');
          let got = await src.read(name);
          let tried = name;
          // an absolute name too: fio joins it as `dir//name`
          if (!(got instanceof Uint8Array) && got.missing && slash >= 0) {
            tried = path.slice(0, slash + 1) + name;
            got = await src.read(tried);
          }
          // a section-less file that includes itself has fio recurse until it runs out of files
          if (nested >= MAX_INCLUDE_DEPTH)
            throw new JobFileError([
              `fio: ${tried}: includes nested more than ${MAX_INCLUDE_DEPTH} deep are refused`,
            ]);
          await sectionLines(
            tried,
            counted(tried, got, [`Error 1 while parsing include file ${tried}`]),
            nested + 1,
          );
          continue;
        }
        const from: JobFileLine = { section: section.name, sectionIndex: section.index, line };
        if (line.length + 1 > OPT_LEN_MAX) {
          section.options.push(
            optionOf(line, { ...from, failed: [`OPT_LEN_MAX (${OPT_LEN_MAX}) is too small`] }),
          );
          continue;
        }
        const subbed = replaceKeywords(
          substituteEnv(line, (n) => src.env(n)),
          src.keywords,
        );
        section.options.push(
          subbed === null ? optionOf(line, { ...from, failed: [] }) : optionOf(subbed, from),
        );
      }
    };
    const first = out.length;
    await sectionLines(file, counted(file, await src.read(file)), 0);
    flush();
    const o = out[first];
    if (index > 0 && o?.from) o.from = { ...o.from, newFile: true };
  }
  return out;
}
