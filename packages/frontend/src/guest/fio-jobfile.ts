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
import type { SplitOption } from './fio-cmdline.ts';

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
  /** The line as written, blanks and comment stripped: what fio's messages quote. */
  line: string;
}

export interface JobFileSource {
  /** A job file's text (`-`: standard input), or null when it cannot be read. */
  read(path: string): Promise<string | null>;
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

/** An error in a job file: fio's lines for it; the run does not start. */
export class JobFileError extends Error {
  constructor(readonly lines: string[]) {
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

/** options.c's fio_option_dup_subs(): `${VAR}` by the environment's value, or nothing. */
function substituteEnv(opt: string, env: JobFileSource['env']): string {
  return opt.replace(/\$\{([^}]+)\}/g, (_m, name: string) => env(name) ?? '');
}

/**
 * bc, as options.c's bc_calc() runs it on a value with a keyword in it: integer arithmetic (`scale=0`
 * truncates toward zero) with + - * / % and parentheses; null where bc would print nothing (a syntax
 * error, a division by zero).
 */
export function bcInteger(expr: string): bigint | null {
  const tokens = expr.match(/\d+|[-+*/%^()]|\S/g) ?? [];
  let at = 0;
  const peek = () => tokens[at];
  const primary = (): bigint | null => {
    const t = tokens[at++];
    if (t === undefined) return null;
    if (t === '(') {
      const v = sum();
      return v !== null && tokens[at++] === ')' ? v : null;
    }
    if (t === '-') {
      const v = primary();
      return v === null ? null : -v;
    }
    return /^\d+$/.test(t) ? BigInt(t) : null;
  };
  // bc's ^: an integer power, right-associative, above * / %
  const power = (): bigint | null => {
    const base = primary();
    if (base === null || peek() !== '^') return base;
    at++;
    const exp = power();
    // bc raises to a negative power as 1 / base^n: 0 at scale 0 unless the base is ±1
    if (exp === null || exp > 4096n) return null;
    if (exp < 0n) return base === 0n ? null : base === 1n ? 1n : base === -1n ? (-exp % 2n ? -1n : 1n) : 0n;
    return base ** exp;
  };
  const product = (): bigint | null => {
    let v = power();
    while (v !== null && (peek() === '*' || peek() === '/' || peek() === '%')) {
      const op = tokens[at++];
      const r = power();
      if (r === null || (op !== '*' && r === 0n)) return null;
      v = op === '*' ? v * r : op === '/' ? v / r : v % r;
    }
    return v;
  };
  const sum = (): bigint | null => {
    let v = product();
    while (v !== null && (peek() === '+' || peek() === '-')) {
      const op = tokens[at++];
      const r = product();
      if (r === null) return null;
      v = op === '+' ? v + r : v - r;
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
  const counted = (path: string, text: string): string[] => {
    bytes += text.length;
    if (bytes > JOB_FILE_MAX_BYTES)
      throw new JobFileError([
        `fio: ${path}: job files of more than ${JOB_FILE_MAX_BYTES} bytes (with what they include) are refused`,
      ]);
    return text.split('\n');
  };
  for (const [index, file] of files.entries()) {
    let stonewall = index > 0;
    let section: { name: string; index: number; options: SplitOption[] } | null = null;
    // options.c's sort_options(): a section's options are parsed by their priority, and of those
    // this fio takes only filename has one (-1: after the others, which keep their order)
    const flush = () => {
      if (!section) return;
      const o = section.options;
      out.push(...o.filter((x) => x.name !== 'filename'), ...o.filter((x) => x.name === 'filename'));
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
          const global = name.startsWith('global');
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
          // relative to the including file when it is not found as given
          const name = line.slice('include'.length + 1);
          const slash = path.lastIndexOf('/');
          let text = await src.read(name);
          const tried = text === null && slash >= 0 ? path.slice(0, slash + 1) + name : name;
          if (tried !== name) text = await src.read(tried);
          if (text === null)
            throw new JobFileError([
              `fio: unable to open '${tried}' job file`,
              `Error 1 while parsing include file ${tried}`,
            ]);
          // fio recurses without end on a file that includes itself
          if (nested >= MAX_INCLUDE_DEPTH)
            throw new JobFileError([
              `fio: ${tried}: includes nested more than ${MAX_INCLUDE_DEPTH} deep are refused`,
            ]);
          await sectionLines(tried, counted(tried, text), nested + 1);
          continue;
        }
        const from: JobFileLine = { section: section.name, sectionIndex: section.index, line };
        const dropped = `fio: job ${section.name} dropped`;
        if (line.length + 1 > OPT_LEN_MAX)
          throw new JobFileError([`OPT_LEN_MAX (${OPT_LEN_MAX}) is too small`, dropped]);
        const subbed = replaceKeywords(
          substituteEnv(line, (n) => src.env(n)),
          src.keywords,
        );
        if (subbed === null) throw new JobFileError([`fio: failed parsing ${line}`, dropped]);
        section.options.push(optionOf(subbed, from));
      }
    };
    const text = await src.read(file);
    if (text === null) throw new JobFileError([`fio: unable to open '${file}' job file`]);
    const first = out.length;
    await sectionLines(file, counted(file, text), 0);
    flush();
    const o = out[first];
    if (index > 0 && o?.from) o.from = { ...o.from, newFile: true };
  }
  return out;
}
