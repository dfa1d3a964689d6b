/**
 * An xl domain configuration file (xl.cfg(5)) for `pvblk xl create`, read as libxlu reads it: the
 * tokens of libxlu_cfg_l.l, the grammar of libxlu_cfg_y.y, the stores and string escapes of
 * libxlu_cfg.c. Settings are `KEY = VALUE` or `KEY += VALUE`, one per line or separated by `;`,
 * comments from `#`. A value is an atom — a quoted string or a number, both kept as their text, as
 * libxlu keeps them — or a bracketed list of values, which may mix strings, numbers and lists.
 *
 * pvblk reads `name` (a single value) and `disk` (a list of strings); the other keys an xl.cfg holds
 * (memory, vcpus, kernel, type, …) are accepted whatever their values and have no effect here, as a
 * pvblk guest is a process. Errors are worded as libxlu's: "<file>:<line>: config parsing error near
 * `<token>': <what>". Where pvblk is laxer than xl: a CR before a newline is allowed (Windows line
 * ends), and a comment on the last line needs no newline; an error at a newline names that newline's
 * line (libxlu names the one before).
 */
import { ownEntry, PvblkError } from '@pvblk/shared';

/** libxlu's XLU_ConfigValue: a string (a quoted string or a NUMBER token's text) or a list. */
export type CfgValue = string | CfgValue[];

export interface XlConfig {
  name: string;
  disk: string[];
  /** Each key's value: the last setting's, as libxlu's lookups find the newest. */
  settings: Map<string, CfgValue>;
}

type Kind = 'IDENT' | 'NUMBER' | 'STRING' | 'NEWLINE' | '=' | '+=' | '[' | ']' | ',' | ';' | 'EOF';

/** `text` is what the file holds (what libxlu quotes as "near"); `value` the atom it means. */
type Tok = { kind: Kind; text: string; value: string; line: number };

const IDENT = /[a-z][._0-9a-z]*/y;
// libxlu's NUMBER: a digit, then hex digits and x — `0x1f`, `512`, also `12ab`; checked when used
const NUMBER = /[0-9][0-9a-fx]*/y;

const SIMPLE_ESCAPES: Record<string, string> = {
  '"': '"',
  "'": "'",
  '\\': '\\',
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
};

/** How many characters of `s` C's strtoul (base 10) reads: blanks, a sign, digits; 0 if no digit. */
function strtoulLength(s: string): number {
  let k = 0;
  while (k < s.length && ' \t\n\v\f\r'.includes(s[k])) k++;
  if (s[k] === '+' || s[k] === '-') k++;
  const digits = k;
  while (k < s.length && s[k] >= '0' && s[k] <= '9') k++;
  return k === digits ? 0 : k;
}

/**
 * xlu__cfgl_dequote(): the same escapes in single and double quotes. `\x` always fails, and an octal
 * escape yields no character: libxlu's numeric escape reads its digits (for `\x`, it skips the
 * character after the x and demands more than two digits of the two it reads; for `\d`, it reads up
 * to three characters after the digit with strtoul in base 10 and demands at least two) but never
 * stores the number. We do the same, so that a file means to pvblk what it means to xl.
 */
function dequote(raw: string, fail: (what: string) => PvblkError): string {
  const inner = raw.slice(1, -1);
  let out = '';
  for (let p = 0; p < inner.length;) {
    const c = inner[p++];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const nc = inner[p++]; // the lexer takes a backslash only with the character after it
    const simple = ownEntry(SIMPLE_ESCAPES, nc);
    if (simple !== undefined) out += simple;
    else if (nc === 'x')
      throw fail('invalid digit after backslash hexnumerical character escape in quoted string');
    else if (nc >= '0' && nc <= '7') {
      const n = strtoulLength(inner.slice(p, p + 3));
      if (n <= 1)
        throw fail('invalid digit after backslash octalnumerical character escape in quoted string');
      p += n;
    } else throw fail('invalid character after backslash in quoted string');
  }
  return out;
}

/** libxlu_cfg_l.l's lexer, one token per call. */
function lexer(text: string, file: string): () => Tok {
  let i = 0;
  let line = 1;
  const tok = (kind: Kind, raw: string, value = raw): Tok => ({ kind, text: raw, value, line });
  const lexErr = (near: string, what: string) =>
    new PvblkError('EINVAL', `${file}:${line}: config parsing error near \`${near}': ${what}`);
  const match = (re: RegExp) => {
    re.lastIndex = i;
    return re.exec(text)?.[0];
  };
  return () => {
    for (;;) {
      // the end of the file is on its last line, not on the empty one after its last newline
      if (i >= text.length) return { ...tok('EOF', ''), line: text.endsWith('\n') ? line - 1 : line };
      const c = text[i];
      if (c === ' ' || c === '\t' || (c === '\r' && text[i + 1] === '\n')) {
        i++;
        continue;
      }
      if (c === '\n' || c === '#') {
        // a comment ends its line: the comment and the newline are one NEWLINE token
        let end = text.indexOf('\n', i);
        if (end < 0) end = text.length;
        const t = tok('NEWLINE', text.slice(i, end).trimEnd() || '\n');
        i = end + 1;
        if (end < text.length) line++;
        return t;
      }
      const word = match(IDENT) ?? match(NUMBER);
      if (word !== undefined) {
        i += word.length;
        return tok(/^[0-9]/.test(word) ? 'NUMBER' : 'IDENT', word);
      }
      if (text.startsWith('+=', i)) {
        i += 2;
        return tok('+=', '+=');
      }
      if (c === '=' || c === '[' || c === ']' || c === ',' || c === ';') {
        i++;
        return tok(c, c);
      }
      if (c === '"' || c === "'") {
        // a backslash takes the character after it (a quote too), but not a newline
        let j = i + 1;
        while (j < text.length && text[j] !== c && text[j] !== '\n')
          j += text[j] === '\\' && text[j + 1] !== '\n' && j + 1 < text.length ? 2 : 1;
        if (text[j] !== c) {
          const eol = text.indexOf('\n', i);
          throw lexErr(text.slice(i, eol < 0 ? text.length : eol).trimEnd(), 'unterminated string');
        }
        const raw = text.slice(i, j + 1);
        const t = tok(
          'STRING',
          raw,
          dequote(raw, (what) => lexErr(raw, what)),
        );
        i = j + 1;
        return t;
      }
      // anything else (an upper-case letter, `_`, `-`, `(`, …): libxlu quotes it with the rest of its word
      let end = i + 1;
      while (end < text.length && !' \t\n'.includes(text[end])) end++;
      throw lexErr(text.slice(i, end).trimEnd(), 'lexical error');
    }
  };
}

/** bison's names for the tokens, as its "unexpected …" messages say them. */
const kindName = (t: Tok) =>
  t.kind === 'EOF' ? 'end of file' : t.kind === '+=' || /^[A-Z]/.test(t.kind) ? t.kind : `'${t.kind}'`;

/** The parser's stack may hold this many entries: bison's YYMAXDEPTH, libxlu's limit on nesting. */
const YYMAXDEPTH = 10000;

export function parseXlConfig(text: string, file: string): XlConfig {
  const next = lexer(text, file);
  const settings = new Map<string, CfgValue>();
  const lines = new Map<string, number>();
  const err = (t: Tok, what: string) => {
    const near = t.kind === 'EOF' ? "`end of file'" : t.text === '\n' ? '<newline>' : `\`${t.text}'`;
    return new PvblkError('EINVAL', `${file}:${t.line}: config parsing error near ${near}: ${what}`);
  };
  const syntax = (t: Tok, expecting: string) =>
    err(t, `syntax error, unexpected ${kindName(t)}, expecting ${expecting}`);
  const skipNewlines = () => {
    let t = next();
    while (t.kind === 'NEWLINE') t = next();
    return t;
  };

  /**
   * `value: atom | '[' nlok valuelist ']'`: newlines may follow `[`, a value or a comma, and a
   * trailing comma is allowed. Read with a stack of its own rather than recursion, so that no
   * nesting overflows ours; the nesting is bounded as bison's stack bounds it in xl.
   */
  const value = (first: Tok): { v: CfgValue; last: Tok } => {
    // the lists being read, innermost last; `items`: whether a comma has been read in it
    const open: Array<{ list: CfgValue[]; items: boolean }> = [];
    // bison's stack entries below the value being read: the start state, stmts, IDENT, the
    // operator; then per open list 2 (`[` nlok), or 5 after its first comma (`[` nlok values `,`
    // nlok). A value takes 2 more (value nlok, or valuelist `]`); past YYMAXDEPTH, bison gives up.
    let depth = 4;
    const room = (needed: number, t: Tok) => {
      if (depth + needed > YYMAXDEPTH - 1) throw err(t, 'memory exhausted (lists nested too deeply)');
    };
    const close = () => {
      const { list, items } = open.pop()!;
      depth -= items ? 5 : 2;
      return list;
    };
    let t = first;
    for (;;) {
      let v: CfgValue;
      if (t.kind === 'STRING' || t.kind === 'NUMBER') v = t.value;
      else if (t.kind === '[') {
        room(4, t);
        open.push({ list: [], items: false });
        depth += 2;
        t = skipNewlines();
        if (t.kind !== ']') continue;
        v = close();
      } else throw syntax(t, open.length > 0 ? "STRING or NUMBER or '[' or ']'" : "STRING or NUMBER or '['");
      // the value is complete: add it to its list, and close the lists that end after it
      for (;;) {
        const top = open.at(-1);
        if (!top) return { v, last: t };
        top.list.push(v);
        t = skipNewlines();
        if (t.kind === ',') {
          if (!top.items) depth += 3;
          top.items = true;
          t = skipNewlines();
          room(t.kind === ']' ? 0 : 2, t);
        } else if (t.kind !== ']') throw syntax(t, "',' or ']'");
        if (t.kind !== ']') break;
        v = close();
      }
    }
  };

  for (;;) {
    const key = next();
    if (key.kind === 'EOF') break;
    if (key.kind === 'NEWLINE' || key.kind === ';') continue;
    if (key.kind !== 'IDENT') throw syntax(key, "end of file or IDENT or NEWLINE or ';'");
    const op = next();
    if (op.kind !== '=' && op.kind !== '+=') throw syntax(op, "+= or '='");
    const first = next();
    const read = value(first);
    let v = read.v;
    // xlu__cfg_set_store(): every setting is kept and lookups find the newest, so the last one
    // wins; `+=` appends to the newest earlier setting, or is a plain setting when there is none
    const prev = settings.get(key.value);
    if (op.kind === '+=' && prev !== undefined) {
      if (Array.isArray(prev) !== Array.isArray(v))
        throw err(read.last, `can't add [list] to "string" or vice versa`);
      v = Array.isArray(prev) ? [...prev, ...(v as CfgValue[])] : prev + (v as string);
    }
    settings.set(key.value, v);
    lines.set(key.value, first.line);
    const end = next();
    if (end.kind === 'EOF') break;
    if (end.kind !== 'NEWLINE' && end.kind !== ';') throw syntax(end, "NEWLINE or ';' or end of file");
  }

  // the keys pvblk uses, as xl looks them up (xlu_cfg_replace_string, xlu_cfg_get_list)
  const at = (key: string) => `${file}:${lines.get(key)}`;
  const name = settings.get('name');
  if (Array.isArray(name))
    throw new PvblkError('EINVAL', `${at('name')}: parameter \`name' is a list but should be a single value`);
  if (name === undefined || name === '')
    throw new PvblkError('EINVAL', `${file}: domain name must be specified (name = "…")`);
  const disk = settings.get('disk') ?? [];
  if (!Array.isArray(disk))
    throw new PvblkError('EINVAL', `${at('disk')}: parameter \`disk' is a single value but should be a list`);
  // xl stops reading the disks at an item that is not a string; pvblk says so rather than drop them
  const nested = disk.findIndex((d) => typeof d !== 'string');
  if (nested >= 0)
    throw new PvblkError(
      'EINVAL',
      `${at('disk')}: parameter \`disk': item ${nested + 1} is a list but should be a string (a disk specification)`,
    );
  return { name, disk: disk as string[], settings };
}
