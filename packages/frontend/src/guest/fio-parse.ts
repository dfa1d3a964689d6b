/**
 * fio's option values, as its parse.c reads them: sizes (`4k`), times (`30s`, `500ms`), integers
 * within bounds, its booleans, a choice from a table, a value per direction (`rate=1m,500k`) — each
 * refused in parse.c's words, as a FioUsageError: the lines fio would print, then exit status 1. And
 * parse.c's distance between two names, for fio's "Did you mean" hint.
 */
import { PvblkError } from '@pvblk/shared';
import { fixed } from './printf.ts';

/** A line fio says: log_err's, on stderr, or log_info's, on stdout. */
export interface SaidLine {
  readonly stderr: boolean;
  readonly line: string;
}

/** Says `lines` in their order, each on the stream fio says it on. */
export function sayLines(
  lines: readonly SaidLine[],
  stderr: (text: string) => void,
  stdout: (text: string) => void,
): void {
  for (const l of lines) (l.stderr ? stderr : stdout)(l.line + '\n');
}

/** A command-line mistake: the lines fio would print, then exit status 1. */
export class FioUsageError extends PvblkError {
  /**
   * `lines` go to stderr (fio's log_err); `out`, printed before them, to stdout, where fio's log_info
   * puts what it says beside an error (a choice's table of valid values); `said`, printed first, is
   * what fio said in its order as it read the jobs before the one that failed.
   */
  constructor(
    readonly lines: string[],
    readonly out: string[] = [],
    readonly said: readonly SaidLine[] = [],
  ) {
    super('EUSAGE', [...said.map((l) => l.line), ...out, ...lines].join('\n'));
  }
}

export function fail(...lines: string[]): never {
  throw new FioUsageError(lines);
}

/** What the parse under way has said and gone on from (parse.c's log_err of a value it skipped). */
let warnings: string[] | null = null;

/** Says `line` on stderr, as fio does while it parses, and goes on (kept for the parse under way). */
export function warn(line: string): void {
  warnings?.push(line);
}

/** What the parse under way has said so far (warn()). */
export function saidSoFar(): readonly string[] {
  return warnings ?? [];
}

/**
 * Runs a parse, with what it says and goes on from (warn()): its result and those lines, or, when
 * it fails, its FioUsageError with them before its own lines, in the order fio says them.
 */
export function withWarnings<T>(parse: () => T): { value: T; warnings: string[] } {
  const outer = warnings;
  const mine: string[] = [];
  warnings = mine;
  try {
    return { value: parse(), warnings: mine };
  } catch (e) {
    // an error that says what fio said before it, in its order (`said`), has these among them
    if (e instanceof FioUsageError && mine.length && !e.said.length)
      throw new FioUsageError([...mine, ...e.lines], e.out);
    throw e;
  } finally {
    warnings = outer;
  }
}
export function failedParsing(opt: string, val: string, why?: string): never {
  return why ? fail(why, `fio: failed parsing ${opt}=${val}`) : fail(`fio: failed parsing ${opt}=${val}`);
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  p: 1024 ** 5,
};

/**
 * fio's number syntax for sizes and integer options alike (parse.c's str_to_decimal with kb_base=1024):
 * `4096`, `0x1000`, `4k`, `4K`, `4KiB`, `128kb`, `1m`, `2g`.
 */
export function parseSize(opt: string, raw: string): number {
  const m = /^(?:0[xX]([0-9a-fA-F]+)|([0-9]+)(?:([kmgtpKMGTP])(?:[iI]?[bB])?|[bB])?)$/.exec(raw.trim());
  if (!m) return failedParsing(opt, raw);
  // get_mult_bytes() looks for the unit after the leading digits: behind a leading blank (a job
  // file's `size = 512k`) it finds none, and the value is in bytes
  const unit = leadingBlank(raw) ? '' : (m[3] ?? '').toLowerCase();
  const v = m[1] !== undefined ? Number.parseInt(m[1], 16) : Number(m[2]) * SIZE_UNITS[unit];
  if (!Number.isSafeInteger(v)) return failedParsing(opt, raw, `${opt}: value out of range: ${raw}`);
  return v;
}

const TIME_UNITS: Record<string, number> = {
  us: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** fio's time syntax, seconds by default: `60`, `30s`, `500ms`, `2m`, `1h`. Returns milliseconds. */
export function parseTime(opt: string, raw: string, unit: keyof typeof TIME_UNITS = 's'): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h|d)?$/.exec(raw.trim());
  if (!m) return failedParsing(opt, raw);
  // get_mult_time(), as get_mult_bytes(): behind a leading blank the unit is the default one
  return Number(m[1]) * TIME_UNITS[leadingBlank(raw) ? unit : (m[2] ?? unit)];
}

/**
 * fio's time values (parse.c's str_to_decimal() with get_mult_time()): the leading integer (hex when
 * `0x` is anywhere in the value, as fio asks strtoll()), times a unit read from the value's start past
 * its digits and signs — `us…` and `ms…` by their first two letters (`usec`, `msec`), `s`, `m`, `h`,
 * `d` exactly, and any other word a microsecond, as fio reads it (`2sec` is 2 µs, `1ns` 1 µs); where
 * no letter follows the digits (`30`, `1.5s`, a leading blank) the option's own unit. A negative
 * value is refused. Returns milliseconds.
 */
export function fioTime(opt: string, raw: string, unit: 's' | 'us' = 's'): number {
  const hex = /0[xX]/.test(raw);
  const m = (hex ? /^\s*([+-]?)(?:0[xX])?([0-9a-fA-F]+)/ : /^\s*([+-]?)([0-9]+)/).exec(raw);
  if (!m || m[1] === '-') return failedParsing(opt, raw);
  const v = Number.parseInt(m[2], hex ? 16 : 10);
  const word = raw.slice(/^[0-9+-]*/.exec(raw)![0].length).toLowerCase();
  let us: number;
  if (!/^[a-z]/.test(word)) us = unit === 's' ? 1e6 : 1;
  else if (word.startsWith('us')) us = 1;
  else if (word.startsWith('ms')) us = 1000;
  else us = { s: 1e6, m: 60e6, h: 3600e6, d: 86400e6 }[word] ?? 1;
  return (v * us) / 1000;
}

/** Whether a value begins with a blank, which strtoll() skips and parse.c's unit lookups do not. */
function leadingBlank(raw: string): boolean {
  return /^\s/.test(raw);
}

/**
 * A time option fio keeps in an unsigned int of microseconds (`unit` without one), in ms. parse.c
 * takes a value past 2^32 µs and the unsigned int keeps what is left of it (`thinktime=5000s` is
 * 705 s), so this does too.
 */
export function parseMicros(opt: string, raw: string, unit: 'us' | 's' = 'us'): number {
  const us = Math.round(fioTime(opt, raw, unit) * 1000);
  return (us % 2 ** 32) / 1000;
}

/**
 * An integer option in fio's number syntax (parseSize's: `1k` is 1024, `0x10` is 16) within fio's
 * bounds for it, refused in parse.c's words. `limit` is a bound of this tool's where fio has none: it
 * is refused in words that say so, not in fio's.
 */
export function parseIntOption(
  opt: string,
  raw: string,
  min: number,
  max: number,
  limit?: { max: number; why: string },
): number {
  const t = raw.trim();
  // a leading blank is kept for parseSize(), which then finds no unit, as parse.c does
  const lead = leadingBlank(raw) ? ' ' : '';
  const v = t.startsWith('-') ? -parseSize(opt, lead + t.slice(1)) : parseSize(opt, lead + t);
  if (v < min) return failedParsing(opt, raw, `${opt}: min value out of range: ${v} (${min} min)`);
  if (v > max) return failedParsing(opt, raw, `${opt}: max value out of range: ${v} (${max} max)`);
  if (limit && v > limit.max) return failedParsing(opt, raw, `${opt}: ${v} is more than ${limit.why}`);
  return v;
}

/** A yes/no option of pvblk's own (`--pi=1`, `--baseline=true`). */
export function parseBool(opt: string, raw: string): boolean {
  if (raw === '1' || raw === 'true' || raw === 'on' || raw === 'yes') return true;
  if (raw === '0' || raw === 'false' || raw === 'off' || raw === 'no') return false;
  return failedParsing(opt, raw, `${opt}: not a boolean: ${raw} (0 or 1)`);
}

/**
 * glibc's strtoul() of base 10, or of base 16 with an optional `0x` (sscanf()'s `%x`): blanks, a sign
 * and the digits. Its unsigned long — ULONG_MAX past it (`erange`) whatever the sign, negated after a
 * `-` otherwise — and where it stopped; null when no digit leads.
 */
function strtoul(p: string, hex: boolean): { value: bigint; erange: boolean; end: number } | null {
  const m = (hex ? /^[ \t\n\v\f\r]*([+-]?)(?:0[xX])?([0-9a-fA-F]+)/ : /^[ \t\n\v\f\r]*([+-]?)([0-9]+)/).exec(
    p,
  );
  if (!m) return null;
  const v = BigInt(hex ? `0x${m[2]}` : m[2]);
  if (v >= 2n ** 64n) return { value: 2n ** 64n - 1n, erange: true, end: m[0].length };
  return { value: m[1] === '-' ? BigInt.asUintN(64, -v) : v, erange: false, end: m[0].length };
}

/**
 * parse.c's check_int(): sscanf()'s `%x` when `0x` is anywhere in the text, else `%u` — blanks, a
 * sign, the digits, and whatever follows them left unread (`1z`, `1.5` and ` 1` are 1) — into an int:
 * strtoul()'s unsigned long, its low 32 bits, signed. Null when no digit leads.
 */
function checkInt(p: string): number | null {
  const r = strtoul(p, /0[xX]/.test(p));
  return r ? Number(BigInt.asIntN(32, r.value)) : null;
}

/**
 * fio's boolean options (FIO_OPT_BOOL: `direct`, `do_verify`, …), bounded to 0..1 by its option
 * table, and its set-only ones (FIO_OPT_STR_SET: `time_based`, `group_reporting`, …), set by any
 * integer but 0: check_int() of each round handle_option() reads (optionRounds(), each to the value's
 * end), the first round's value the option's. A later round out of the bounds is said and the option
 * stands (`direct=1,5`: `max value out of range: 5 (1 max)`, direct on), as in fio. Deliberate
 * difference: when the first round fails and a later one parses (`direct=x,1`, `direct=5,1`), fio
 * keeps the option as it was (after the words of the bound, if any); this fails it.
 */
export function fioBool(opt: string, raw: string, kind: 'bool' | 'set'): boolean {
  let value: number | null = null;
  const said: string[] = [];
  optionRounds(raw).forEach(({ tail }, curr) => {
    const il = tail === '' ? null : checkInt(tail);
    if (il === null) return;
    if (kind === 'bool' && il > 1) said.push(`max value out of range: ${il} (1 max)`);
    else if (curr === 0) value = il;
  });
  if (value === null) fail(...said, `fio: failed parsing ${opt}=${raw}`);
  for (const line of said) warn(line);
  return value !== 0;
}

export function parseChoice<T extends string>(
  opt: string,
  raw: string,
  values: ReadonlyArray<readonly [T, string]>,
  /** what is matched, when not the whole value (fioChoice()) */
  key: string = raw,
): T {
  const hit = values.find(([v]) => v === key);
  if (hit) return hit[0];
  // parse.c's show_option_values() says the table with log_info, on stdout; the failure on stderr
  const table = values.map(([v, help], i) =>
    `${(i === 0 ? 'valid values' : '').padStart(20)}: ${v.padEnd(10)} ${help}`.trimEnd(),
  );
  throw new FioUsageError([`fio: failed parsing ${opt}=${raw}`], [...table, '']);
}

/**
 * A choice of one of fio's options (FIO_OPT_STR): parse.c matches the value up to its first `,`, else
 * its first `:` (opt_len()), so `continue_on_error=io,verify` is `io`.
 */
export function fioChoice<T extends string>(
  opt: string,
  raw: string,
  values: ReadonlyArray<readonly [T, string]>,
): T {
  const comma = raw.indexOf(',');
  const cut = comma >= 0 ? comma : raw.indexOf(':');
  return parseChoice(opt, raw, values, cut < 0 ? raw : raw.slice(0, cut));
}

/** A value per direction, as fio keeps those options (off1, off2, off3): reads, writes, trims. */
export type PerDirection = [read: number, write: number, trim: number];

/**
 * The rounds of parse.c's handle_option(): the value split at `,` (else `:`, else `-`), each round the
 * text up to its separator and whether another round follows. A round that begins with the `-` it
 * is split at is a negative number, as fio's strtoll() reads the rest of the string (`-5` is -5,
 * then 5).
 */
export function optionRounds(raw: string): Array<{ value: string; more: boolean; tail: string }> {
  const rounds: Array<{ value: string; more: boolean; tail: string }> = [];
  let rest = raw;
  for (;;) {
    let at = rest.indexOf(',');
    if (at < 0) at = rest.indexOf(':');
    if (at < 0) at = rest.indexOf('-');
    if (at < 0) {
      rounds.push({ value: rest, more: false, tail: rest });
      return rounds;
    }
    let value = rest.slice(0, at);
    if (at === 0 && rest[0] === '-') value = '-' + (/^[^,:-]*/.exec(rest.slice(1))?.[0] ?? '');
    rounds.push({ value, more: true, tail: rest });
    rest = rest.slice(at + 1);
  }
}

/**
 * parse.c's __handle_option() before it reads a number: a value ending in `z` is a count of zones
 * for the options that take one (FIO_OPT_STR_VAL_ZONE: `size=2z`, `zoned`), and refused for any other
 * number (`bs: 'z' suffix isn't applicable`). It looks at each round's text to the value's end (its
 * `tail`), so each round says it: `bs=4k,8z` twice, as fio 3.36 does; handle_option() cuts a `,` that
 * ends the value first (`bs=8z,` is refused, `size=2z,` a count). A count is strtoul()'s: blanks, a
 * sign and digits, `z` right after them (`1zz` is one zone); a round that is none says so, and the
 * value is a count if any round is one (`size=1,2z` says `size: unexpected zone value '1,2z'` and is
 * a count, as in fio). Returns whether the value is a count of zones.
 */
export function zoneSuffix(opt: string, raw: string, zoned: boolean): boolean {
  const value = raw.endsWith(',') ? raw.slice(0, -1) : raw;
  if (!value.endsWith('z')) return false;
  const said: string[] = [];
  let counts = false;
  for (const { tail } of optionRounds(value)) {
    // parse.c: strtoul() without ERANGE, stopped at a `z`
    const r = zoned ? strtoul(tail, false) : null;
    if (r && !r.erange && tail[r.end] === 'z') counts = true;
    else said.push(zoned ? `${opt}: unexpected zone value '${tail}'` : `${opt}: 'z' suffix isn't applicable`);
  }
  if (!counts) fail(...said, `fio: failed parsing ${opt}=${raw}`);
  for (const line of said) warn(line);
  return true;
}

/**
 * One round's value of an unsigned option: a negative one kept as fio's unsigned integer keeps it,
 * `wrap` (2^32 for an int, 2^64 for an unsigned long long) less its magnitude.
 */
function unsignedValue(value: string, parse: (v: string) => number, wrap: number): number {
  if (!value.startsWith('-')) return parse(value);
  const n = parse(value.slice(1));
  return n ? wrap - n : 0;
}

/**
 * An option with a value per direction, as parse.c's handle_option() takes it: values split at `,`
 * (else at `:`, else at `-`), the first the reads', the second the writes', the third the trims'; the
 * last value given sets the directions after it too (`rate=1m` is all three, `rate=1m,500k` trims at
 * 500k), unless the list ends with a separator (`rate=1m,`: writes and trims as they were). A value
 * that does not parse leaves its direction as it was (`--rate=,500k`: reads unlimited), what was
 * wrong with it said (warn(): `bs=4k,0` says `bs: min value out of range: 0 (1 min)`), and the
 * option fails only when none parses — with that value's own words. A negative value wraps as fio's
 * unsigned one does (`rate_iops=-5`: reads at 4294967291, writes and trims at 5). Values past the
 * third are parsed and kept nowhere. Directions keep `prev` (a global section's, the defaults) where
 * not set.
 */
export function perDirection(
  opt: string,
  raw: string,
  parse: (v: string) => number,
  wrap: number,
  prev: PerDirection,
): PerDirection {
  const out: PerDirection = [...prev];
  let firstError: unknown = null;
  let parsed = false;
  const said: string[] = [];
  optionRounds(raw).forEach(({ value, more }, curr) => {
    try {
      const v = unsignedValue(value, parse, wrap);
      parsed = true;
      if (curr < 3) out[curr] = v;
      if (!more) for (let d = curr + 1; d < 3; d++) out[d] = v;
    } catch (e) {
      if (!(e instanceof FioUsageError)) throw e;
      firstError ??= e;
      // __handle_option() says what was wrong with a value (an empty one has no words of its own)
      said.push(...e.lines.filter((l) => !l.startsWith('fio: failed parsing')));
    }
  });
  if (parsed) for (const line of said) warn(line);
  if (!parsed) {
    // the words of the value that failed first; said of the option as given
    const lines = (firstError as FioUsageError).lines.filter((l) => !l.startsWith('fio: failed parsing'));
    fail(...lines, `fio: failed parsing ${opt}=${raw}`);
  }
  return out;
}

/** An unsigned int of fio's (FIO_OPT_INT without bounds). */
export function parseUint32(opt: string, raw: string): number {
  return parseIntOption(opt, raw, 0, 0xffffffff);
}

/** A latency fio takes in µs without a unit (`200`, `2ms`), in ns. */
export function latencyNs(opt: string, raw: string): number {
  return Math.round(fioTime(opt, raw, 'us') * 1e6);
}

/** A single floating-point value within bounds, refused in parse.c's words for a float list. */
export function parseFloatOption(opt: string, raw: string, min: number, max: number): number {
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v)) failedParsing(opt, raw, `not a floating point value: ${raw}`);
  if (v > max) failedParsing(opt, raw, `value out of range: ${fixed(v, 6)} (range max: ${fixed(max, 6)})`);
  if (v < min) failedParsing(opt, raw, `value out of range: ${fixed(v, 6)} (range min: ${fixed(min, 6)})`);
  return v;
}

/** Levenshtein distance, for fio's "Did you mean" hint. */
export function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}
