/**
 * fio's command line (init.c's parse_cmd_line()), as the guest's `fio` and `pvblk bench` take it: argv
 * split into options, each found in fio's getopt table as glibc's getopt_long_only() finds it, and
 * applied to the jobs it defines. Both `--opt=value` and `--opt value` are accepted, except for fio's
 * set-only options (`--time_based`, `--group_reporting`, `--verify_only`), which take a value only with
 * `=`, as fio's getopt table has them.
 *
 * Options before the first `--name` are global, and so are those after `--name=global` (fio's global
 * section, as its parse_cmd_line() takes any name starting with "global"); each other `--name` starts
 * a job that inherits the global options given before it (fio's command-line job sections). A word
 * that is no option is a job file (fio-jobfile.ts), whose options are taken after the command line's
 * by the same parser. Every error names the option, in fio's words, and nothing runs.
 */
import { ownEntry } from '@pvblk/shared';
import { FIO_GETOPT_TABLE, FIO_NUMBER_OPTIONS } from './fio-getopt-table.ts';
import { DEFAULT_JOB, fixupJob, MAX_JOBS, type FioJob } from './fio-job.ts';
import { OPTIONS, parseOutputFormat, type FioGlobal } from './fio-options.ts';
import {
  distance,
  fail,
  FioUsageError,
  saidSoFar,
  warn,
  withWarnings,
  zoneSuffix,
  type SaidLine,
} from './fio-parse.ts';
import { setupLines } from './fio-setup.ts';
import type { JobFileLine } from './fio-jobfile.ts';

export interface FioCommandLine {
  global: FioGlobal;
  jobs: FioJob[];
  /** Options given in the global section (before the first job, or after `--name=global`), as fio's
   * JSON "global options" lists them. */
  globalGiven: Record<string, string>;
  /** Options given in each job's own section, as fio's JSON "job options" lists them. */
  given: Array<Record<string, string>>;
  /** For each job, the global options given before it: what it inherited (a later global section's
   * options are not its). */
  inherited: Array<Record<string, string>>;
  /** fio's options as given, in their order (pvblk's own left out): to parse again with a change. */
  options: SplitOption[];
  /** What fio said of the options as it parsed them and went on (stderr, before anything else). */
  warnings: string[];
  /**
   * For each warning, how many jobs had been read whole when it was said: init.c adds a job (and says
   * what fixup_options() finds, and its line) when the next section starts, or the options end.
   */
  warnedAt: number[];
  /**
   * For each job, whether fio shows its line: whether the output format had `normal` when fio added
   * the job. An --output-format given after a job's section does not hide that job's line.
   */
  jobLines: boolean[];
}

/** fio's getopt table by name: whether getopt takes the value from the next argument. */
const FIO_GETOPT = new Map(FIO_GETOPT_TABLE);
const FIO_GETOPT_NAMES = [...FIO_GETOPT.keys()];
/** The names of fio's job options (fio_options, from `description` on): a job file's options. */
const FIO_JOB_OPTION_NAMES = FIO_GETOPT_NAMES.slice(FIO_GETOPT_NAMES.indexOf('description'));
const FIO_JOB_OPTIONS = new Set(FIO_JOB_OPTION_NAMES);

/**
 * The option a name means, as glibc's getopt_long_only() finds it in fio's table: the name itself,
 * or the one option it is a prefix of; the candidates, in the table's order, when it is a prefix of
 * several; null when it is none.
 */
export function fioOptionName(name: string): string | readonly string[] | null {
  if (ownEntry(OPTIONS, name) || FIO_GETOPT.has(name)) return name;
  const c = FIO_GETOPT_TABLE.filter(([n]) => n.startsWith(name)).map(([n]) => n);
  return c.length === 1 ? c[0] : c.length > 1 ? c : null;
}

/**
 * fio's show_closest_option() (init.c): the first name of its getopt table nearest the argument as
 * written — leading dashes stripped, `=value` and all — if within half the argument's length (parse.c's
 * string_distance_ok()); `extra` names (the bench's own options) come after fio's.
 */
export function closestOption(
  arg: string,
  extra: readonly string[] = [],
  among: readonly string[] = FIO_GETOPT_NAMES,
): string | null {
  const name = arg.replace(/^-+/, '');
  const ok = Math.floor((name.length + 1) / 2);
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of [...among, ...extra]) {
    // the distance is at least the lengths' difference: a name that far off can neither beat the
    // best so far nor be close enough (a 100k-character option took 2.4 s of distance tables)
    const gap = Math.abs(name.length - k.length);
    if (gap >= bestD || gap > ok) continue;
    const dd = distance(name, k);
    if (dd < bestD) {
      bestD = dd;
      best = k;
    }
  }
  return bestD <= ok ? best : null;
}

/**
 * What fio says of an option given without its value: getopt's message, then init.c's for the '?' it
 * returns, with show_closest_option()'s hint (from the argument as written, dashes and all).
 */
function missingArgument(name: string, arg: string): string[] {
  const hint = closestOption(arg);
  return [
    `fio: option '--${name}' requires an argument`,
    `fio: unrecognized option '${arg}'`,
    ...(hint ? [`Did you mean ${hint}?`] : []),
  ];
}

export interface SplitOption {
  name: string;
  value: string | null;
  /** The argument as written, for messages. */
  arg: string;
  /** Where a job file's option came from: its errors are said as fio says a job file's. */
  from?: JobFileLine;
}

/** A command line: its options, and the job files named in it (fio's words that are no option). */
export interface SplitCommandLine {
  options: SplitOption[];
  jobFiles: string[];
}

/**
 * Splits argv into `--name[=value]` options and job files. `takesValue(name)` says whether a value may
 * come from the next argument. As glibc's getopt permutes them, a word that is no option (and every
 * word after `--`) is a job file wherever it stands; fio reads its job files after the command line.
 */
export function splitOptions(
  prog: string,
  argv: readonly string[],
  takesValue: (name: string) => boolean,
): SplitCommandLine {
  const options: SplitOption[] = [];
  const jobFiles: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    // -h is fio's short --help; getopt refuses any other short option it does not know
    if (arg === '-h') {
      options.push({ name: 'help', value: null, arg });
      continue;
    }
    if (arg === '--') {
      jobFiles.push(...argv.slice(i + 1));
      break;
    }
    // `-` alone is a job file: standard input
    if (arg.startsWith('-') && !arg.startsWith('--') && arg !== '-')
      fail(`${prog}: unrecognized option '${arg}'`);
    if (!arg.startsWith('--')) {
      jobFiles.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    let value = eq < 0 ? null : arg.slice(eq + 1);
    if (value === null && takesValue(name)) {
      if (i + 1 >= argv.length) fail(...missingArgument(name, arg));
      value = argv[++i];
    }
    options.push({ name, value, arg });
  }
  return { options, jobFiles };
}

/**
 * Whether the options ask for help (`--help` or `-h` where getopt sees an option, not an option's
 * value); `--help=…` is refused, as getopt refuses an argument to it.
 */
export function helpAsked(prog: string, opts: readonly SplitOption[]): boolean {
  return switchAsked(prog, opts, 'help');
}
/**
 * Whether the options ask for fio's version (`--version`, which fio.c answers with the version string
 * and status 0); `--version=…` is refused, as getopt refuses an argument to it.
 */
export function versionAsked(prog: string, opts: readonly SplitOption[]): boolean {
  return switchAsked(prog, opts, 'version');
}

/** init.c: a section (or a command-line --name) whose name starts with "global" is a global one. */
export function isGlobalSection(name: string): boolean {
  return name.startsWith('global');
}

/** The `--section` names of a command line, which choose among its job files' sections. */
export function sectionsAsked(opts: readonly SplitOption[]): string[] {
  return opts.filter((o) => fioOptionName(o.name) === 'section').map((o) => o.value ?? '');
}

/** Whether a switch that getopt takes with no argument was given; one given a value is refused. */
function switchAsked(prog: string, opts: readonly SplitOption[], name: string): boolean {
  const o = opts.find((x) => fioOptionName(x.name) === name);
  if (o && o.value !== null) fail(`${prog}: option '--${name}' doesn't allow an argument`);
  return o !== undefined;
}
/**
 * Whether a value of `--name` may be the next argument: every option but the set-only ones — fio's
 * own that this fio lacks too, so that `--log_compression 1m` is refused for the option it is.
 */
export function fioTakesValue(name: string): boolean {
  const r = fioOptionName(name);
  if (typeof r !== 'string') return false;
  const o = ownEntry(OPTIONS, r);
  return o ? !o.flag : (FIO_GETOPT.get(r) ?? false);
}

/**
 * Parses fio options into jobs: the command line's, then its job files' (jobFileOptions()). `extra`
 * handles names that are not fio's (pvblk's own options): it returns true when it consumed the option.
 * Unknown names fail with fio's message — a job file's as options.c says them for a file: every bad
 * option of the section, then `fio: job <section> dropped`.
 */
export function parseFioOptions(
  opts: readonly SplitOption[],
  extra: (o: SplitOption) => boolean = () => false,
  knownExtra: readonly string[] = [],
): FioCommandLine {
  const { value, warnings } = withWarnings(() => parseAll(opts, extra, knownExtra));
  return { ...value, warnings };
}

function parseAll(
  opts: readonly SplitOption[],
  extra: (o: SplitOption) => boolean,
  knownExtra: readonly string[],
): Omit<FioCommandLine, 'warnings'> {
  const global: FioGlobal = {
    outputFormat: parseOutputFormat('normal'),
    output: null,
    eta: 'auto',
    sections: [],
    parseOnly: false,
    showcmd: false,
  };
  let defaults: FioJob = { name: '', ...DEFAULT_JOB };
  const globalGiven: Record<string, string> = {};
  const jobs: FioJob[] = [];
  const given: Array<Record<string, string>> = [];
  const inherited: Array<Record<string, string>> = [];
  const options: SplitOption[] = [];
  const warnedAt: number[] = [];
  // for each job whose section has ended (fio has added it): whether its line is shown (jobLines)
  const jobLines: boolean[] = [];
  const close = () => {
    while (jobLines.length < jobs.length) jobLines.push(global.outputFormat.normal);
  };
  let current: FioJob | null = null;
  // a job file's section whose options failed: what fio said of each, until the section ends
  let dropped: {
    section: string;
    index: number;
    lines: string[];
    unknown: string[];
    out: string[];
  } | null = null;
  const endOfSection = (next: SplitOption | null) => {
    if (dropped && next?.from?.sectionIndex !== dropped.index)
      throw new FioUsageError(
        [...dropped.lines, ...dropped.unknown, `fio: job ${dropped.section} dropped`],
        dropped.out,
      );
  };
  const take = (given0: SplitOption) => {
    let def = ownEntry(OPTIONS, given0.name);
    // a line whose substitutions failed (fio_options_parse() gets no copy of it)
    if (given0.from?.failed) fail(...given0.from.failed, `fio: failed parsing ${given0.arg}`);
    if (given0.from) {
      // a file names an option exactly (parse.c's find_option_c()), and the command line's own
      // switches are none of its options
      if (def?.switch || (!def && !FIO_JOB_OPTIONS.has(given0.name))) {
        const hint = closestOption(given0.name, [], FIO_JOB_OPTION_NAMES);
        fail(`Bad option <${given0.arg}>`, ...(hint ? [`Did you mean ${hint}?`] : []));
      }
    } else if (!def && extra(given0)) return;
    // an unambiguous prefix is the option it begins (getopt_long_only()); a file's is exact
    const meant = def || given0.from ? given0.name : fioOptionName(given0.name);
    if (typeof meant !== 'string') {
      const hint = closestOption(given0.arg, knownExtra);
      const said = `fio: unrecognized option '${given0.arg}'`;
      const did = hint ? [`Did you mean ${hint}?`] : [];
      // glibc's getopt names the candidates, then init.c its '?'; an unknown name both say unknown
      if (meant)
        fail(
          `fio: option '${given0.arg}' is ambiguous; possibilities: ${meant.map((n) => `'--${n}'`).join(' ')}`,
          said,
          ...did,
        );
      fail(said, said, ...did);
    }
    const o: SplitOption = { ...given0, name: meant };
    def = ownEntry(OPTIONS, meant);
    if (!def) fail(`fio: option '${o.arg}' is one of fio's, but this fio does not implement it (see --help)`);
    // a switch of fio's command line with no argument (getopt's no_argument): getopt refuses one
    // given with '=', and init.c then calls the option unrecognized
    if (def.switch && def.flag && o.value !== null)
      fail(
        `fio: option '--${o.name}' doesn't allow an argument`,
        `fio: unrecognized option '${o.arg}'`,
        `Did you mean ${o.name}?`,
      );
    const value = o.value ?? (def.flag ? '1' : null);
    if (value === null)
      fail(...(o.from ? [`Option ${o.name} requires an argument`] : missingArgument(o.name, o.arg)));
    // init.c's parse_cmd_line(): a job option of getopt's required_argument given `=` and nothing;
    // in a file, parse.c fails an empty value of any option
    if (value === '' && !o.from && !def.switch && fioTakesValue(o.name))
      fail(`fio: option ${o.name} requires an argument`);
    if (value === '' && o.from && !o.from.header) fail(`fio: failed parsing ${o.arg}`);
    // init.c's parse_options(): each job file after the first starts from fio's defaults again
    // (fill_def_thread()), without the global options given before it, the command line's included
    if (o.from?.newFile) {
      close();
      defaults = { name: '', ...DEFAULT_JOB };
      for (const k of Object.keys(globalGiven)) delete globalGiven[k];
      current = null;
    }
    options.push(o);
    if (o.name === 'name') {
      // a job file's `name=` names the job of its section (its [header] started it); a global
      // section's is listed and names no job (get_new_job() names each after its section)
      if (o.from && !o.from.header) {
        if (current) {
          current.name = value;
          given[given.length - 1].name = value;
        } else globalGiven.name = value;
        return;
      }
      // a new section: the job before it is read whole
      close();
      // init.c's parse_cmd_line(): a section whose name starts with "global" is the global one; with
      // --section, a command-line job of another name is skipped and the options after it are global
      if (
        isGlobalSection(value) ||
        (!o.from && global.sections.length > 0 && !global.sections.includes(value))
      ) {
        current = null;
        return;
      }
      // checked as each job is made: a file of many sections fails before it takes their memory
      if (jobs.length >= MAX_JOBS) tooManyJobs();
      current = { ...defaults, name: value };
      jobs.push(current);
      // a job file's section header is no option: fio's JSON lists no name for its job
      given.push(o.from ? {} : { name: value });
      inherited.push({ ...globalGiven });
      return;
    }
    // the option's own name, an alias's too
    const key = def.aliasOf ?? o.name;
    const apply = () => {
      // parse.c refuses a number ending in `z` before it reads it, by the option's own name
      // (under the name given: asOption() says an alias's lines by its option's name)
      if (FIO_NUMBER_OPTIONS.has(key)) zoneSuffix(o.name, value, false);
      return def.global
        ? def.apply(null, global, value, false)
        : def.apply(current ?? defaults, global, value, current !== null);
    };
    if (def.aliasOf) asOption(o.name, def.aliasOf, apply);
    else apply();
    if (def.switch) return;
    // as fio's add_to_dump_list() keeps it: the option's own name, and no value for a flag given bare
    const shown = o.value ?? '';
    // the stonewall fio sets between job files is no option given (its JSON does not list it)
    if (o.from?.implied) return;
    if (current) given[given.length - 1][key] = shown;
    else globalGiven[key] = shown;
  };
  const tag = () => {
    while (warnedAt.length < saidSoFar().length) warnedAt.push(jobLines.length);
  };
  try {
    for (const o of opts) {
      // what the option before said, with the jobs read whole by then (before this one starts a section)
      tag();
      endOfSection(o);
      if (!o.from) {
        take(o);
        continue;
      }
      try {
        take(o);
      } catch (e) {
        // get_new_job() failing is the run's error, not the section's
        if (!(e instanceof FioUsageError) || e.lines[0] === MAX_JOBS_LINE) throw e;
        // parse.c says a file's value that does not parse with the line as written
        const failed = `fio: failed parsing ${o.name}=${o.value ?? ''}`;
        const lines = e.lines.map((l) => (l === failed ? `fio: failed parsing ${o.arg}` : l));
        if (!lines.includes(`fio: failed parsing ${o.arg}`) && !lines[0].startsWith('Bad option'))
          lines.push(`fio: failed parsing ${o.arg}`);
        dropped ??= {
          section: o.from.section,
          index: o.from.sectionIndex,
          lines: [],
          unknown: [],
          out: [],
        };
        // fio_options_parse() tries the names it does not know again after the others (as the
        // ioengine's options), and says them then
        (lines[0].startsWith('Bad option') ? dropped.unknown : dropped.lines).push(...lines);
        dropped.out.push(...e.out);
      }
    }
    tag();
    endOfSection(null);
  } catch (e) {
    if (!(e instanceof FioUsageError) || !jobLines.length) throw e;
    // the jobs whose sections had ended were added (their lines said) before the option that failed
    tag();
    throw new FioUsageError(
      e.lines,
      e.out,
      readBefore(jobs.slice(0, jobLines.length), saidSoFar(), warnedAt, jobLines),
    );
  }
  if (jobs.length === 0) fail(NO_JOBS_LINE, '', 'give a job with --name=<job name> and its options');
  if (jobs.reduce((n, j) => n + j.numjobs, 0) > MAX_JOBS) tooManyJobs();
  numberGroups(jobs);
  for (const j of jobs) fixupJob(j);
  close();
  return { global, jobs, globalGiven, given, inherited, options, warnedAt, jobLines };
}

/**
 * What fio had said when a later section's option failed: the jobs it had added (fio's add_job() is
 * done with each as the next section starts), with what parsing them said, and what the failing
 * section's options said before the error.
 */
function readBefore(
  added: FioJob[],
  warnings: readonly string[],
  warnedAt: number[],
  jobLines: boolean[],
): SaidLine[] {
  try {
    numberGroups(added);
    for (const j of added) fixupJob(j);
  } catch {
    // an added job's own error is said when the jobs are checked; here only the lines before it count
    return warnings.map((line) => ({ stderr: true, line }));
  }
  return setupLines({ jobs: added, warnings, warnedAt, jobLines });
}

const MAX_JOBS_LINE = 'error: maximum number of jobs reached.';
/** What fio says of a run with no job. */
export const NO_JOBS_LINE = 'No job(s) defined';
function tooManyJobs(): never {
  return fail(
    MAX_JOBS_LINE,
    `fio: this fio runs ${MAX_JOBS} jobs at most in a guest, numjobs clones counted (the command line's and its job files' together)`,
  );
}

/**
 * init.c's add_job(), job by job: a `stonewall` or `new_group` job after others starts a new reporting
 * group (its numjobs clones stay in it: fio clears the option on them); a `wait_for` names one earlier
 * job, not itself, and not a name two jobs have.
 */
function numberGroups(jobs: FioJob[]): void {
  let groupid = 0;
  let groupJobs = 0;
  // the jobs before this one, by name
  const earlier = new Map<string, number>();
  for (const j of jobs) {
    if ((j.stonewall || j.newGroup) && groupJobs) {
      groupJobs = 0;
      groupid++;
    }
    j.groupid = groupid;
    groupJobs += j.numjobs;
    const waitees = earlier.get(j.waitFor) ?? 0;
    earlier.set(j.name, (earlier.get(j.name) ?? 0) + 1);
    if (!j.waitFor) continue;
    if (j.waitFor === j.name) fail(`${j.name}: a job cannot wait for itself (wait_for=${j.waitFor}).`);
    if (!waitees) fail(`${j.name}: waitee job ${j.waitFor} unknown.`);
    if (waitees > 1)
      fail(
        `${j.name}: multiple waitees ${j.waitFor} found,`,
        'please avoid duplicates when using wait_for option.',
      );
  }
}

/**
 * What fio's `--showcmd` prints of job files (init.c's dump_cmdline): for each file, `fio ` at its
 * first section, every global option so far at a global section (the command line's included, as
 * they are all fio's def_thread), `--name=<section>` and the section's own options at a job's, and a
 * new line at the file's end. The command line's own jobs are not printed.
 */
export function showCommandLines(opts: readonly SplitOption[], fileCount: number): string {
  let out = '';
  let globals: string[] = [];
  let jobOptions: string[] | null = null;
  let printed = false;
  let files = 0;
  const dumped = (o: SplitOption): string | null => {
    const def = ownEntry(OPTIONS, o.name);
    // the stonewall between files is set, not parsed: fio's dump has no entry for it; a section's
    // header is printed as its --name, a name= line as an option (dump_print_option())
    if (!def || def.switch || o.from?.implied || (o.name === 'name' && !o.from)) return null;
    const name = def.aliasOf ?? o.name;
    const quote = name === 'description' ? '"' : '';
    return o.value === null ? `--${name} ` : `--${name}=${quote}${o.value}${quote} `;
  };
  // a section's options are printed once they are all read: at the next section or the file's end
  let pending: (() => void) | null = null;
  const flush = () => {
    pending?.();
    pending = null;
  };
  const endFile = () => {
    flush();
    out += '\n';
    files++;
    printed = false;
  };
  for (const o of opts) {
    if (!o.from) {
      // the command line's: its global options are def_thread's, its jobs no file's
      if (o.name === 'name') jobOptions = isGlobalSection(o.value ?? '') ? null : [];
      else if (jobOptions === null) {
        const d = dumped(o);
        if (d) globals.push(d);
      }
      continue;
    }
    // fill_def_thread() before each file after the first
    if (o.from.newFile) {
      endFile();
      globals = [];
    }
    if (o.from.header) {
      flush();
      if (!printed) out += 'fio ';
      printed = true;
      const global = isGlobalSection(o.value ?? '');
      if (global) {
        jobOptions = null;
        pending = () => (out += globals.join(''));
      } else {
        const own: string[] = [];
        jobOptions = own;
        out += `--name=${o.value} `;
        pending = () => (out += own.join(''));
      }
      continue;
    }
    const d = dumped(o);
    if (d) (jobOptions ?? globals).push(d);
  }
  while (files < fileCount) endFile();
  return out;
}

/**
 * An alias's value parsed as its option's: parse.c finds the option's entry under either name, and
 * says what is wrong with a value by the entry's own name (`--blocksize=0`: `bs: min value out of
 * range: 0 (1 min)`), the line that names what failed keeping the name as given (`fio: failed parsing
 * blocksize=0`).
 */
function asOption(alias: string, name: string, apply: () => void): void {
  const own = (l: string) => (l.startsWith(`${alias}: `) ? `${name}: ${l.slice(alias.length + 2)}` : l);
  let said: string[];
  try {
    said = withWarnings(apply).warnings;
  } catch (e) {
    if (e instanceof FioUsageError) throw new FioUsageError(e.lines.map(own), e.out);
    throw e;
  }
  for (const l of said) warn(own(l));
}
