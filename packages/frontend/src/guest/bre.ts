/**
 * GNU grep's basic regular expressions (BRE) as JavaScript ones: glibc's regcomp() rules for what
 * is special where (a leading `*` is a plain star, `^` and `$` anchor only at the ends of a branch,
 * `\<` `\>` `\b` `\w` …, intervals up to RE_DUP_MAX, back-references to closed groups), and its
 * regerror() words for what it refuses, which grep prints.
 */
/** glibc's regerror() texts: GNU grep has each pattern compiled by glibc's regex first, and says these. */
const REG_ERROR = {
  EBRACK: 'Unmatched [, [^, [:, [., or [=',
  ECTYPE: 'Invalid character class name',
  ECOLLATE: 'Invalid collation character',
  ERANGE: 'Invalid range end',
  EPAREN: 'Unmatched ( or \\(',
  ERPAREN: 'Unmatched ) or \\)',
  EBRACE: 'Unmatched \\{',
  BADBR: 'Invalid content of \\{\\}',
  ESIZE: 'Regular expression too big',
  EESCAPE: 'Trailing backslash',
  ESUBREG: 'Invalid back reference',
} as const;

/** RE_DUP_MAX: the largest count an interval may give. */
const RE_DUP_MAX = 0x7fff;

/** The C locale's character classes, as JavaScript class ranges. */
const CHAR_CLASSES: ReadonlyMap<string, string> = new Map([
  ['alpha', 'A-Za-z'],
  ['digit', '0-9'],
  ['alnum', '0-9A-Za-z'],
  ['upper', 'A-Z'],
  ['lower', 'a-z'],
  ['space', '\\x20\\t\\n\\r\\f\\v'],
  ['blank', '\\x20\\t'],
  ['xdigit', '0-9A-Fa-f'],
  ['punct', '\\x21-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7e'],
  ['cntrl', '\\x00-\\x1f\\x7f'],
  ['print', '\\x20-\\x7e'],
  ['graph', '\\x21-\\x7e'],
]);

/** One character as a JavaScript pattern matching just it, in or out of a class. */
function jsChar(ch: string): string {
  if (/^[A-Za-z0-9_ ]$/.test(ch)) return ch;
  const code = ch.charCodeAt(0);
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, '0')}`
    : `\\u${code.toString(16).padStart(4, '0')}`;
}

export type Compiled = { source: string } | { error: string; dfa?: true };

/** dfa.c's complaint about a bracket expression that looks like a misplaced character class. */
const CONFUSING_BRACKETS = 'character class syntax is [[:space:]], not [:space:]';

/**
 * A bracket expression from just after its `[`, as glibc's parse_bracket_exp() reads it: a
 * backslash is itself, `]` first is itself, `-` is a range but first or last, `[:class:]`,
 * `[=c=]` and `[.c.]` (one character each in the C locale). `confusing` is dfa.c's test for
 * `[:space:]` meant as `[[:space:]]`: first and last a colon, something else between, and no
 * class or range.
 */
function bracketToJs(
  re: string,
  i: number,
): { source: string; next: number; confusing: boolean } | { error: string } {
  let negate = false;
  if (re[i] === '^') {
    negate = true;
    i++;
  }
  // dfa.c's colon_warning_state: 1 first is ':', 2 last is ':', 4 another character, 8 a class or range
  let colons = re[i] === ':' ? 1 : 0;
  let body = '';
  type Element = { ch: string; symbol?: 'equiv' | 'coll' } | { cls: string } | { error: string };
  /** One element, `first` allowing a '-' that is not last (parse_bracket_element's accept_hyphen). */
  const element = (first: boolean): Element => {
    const c = re[i];
    const delim = re[i + 1];
    if (c === '[' && i + 1 < re.length && (delim === ':' || delim === '.' || delim === '=')) {
      const close = re.indexOf(`${delim}]`, i + 2);
      if (close < 0) return { error: REG_ERROR.EBRACK };
      const name = re.slice(i + 2, close);
      i = close + 2;
      if (delim === ':') {
        const cls = CHAR_CLASSES.get(name);
        return cls === undefined ? { error: REG_ERROR.ECTYPE } : { cls };
      }
      if (name.length !== 1) return { error: REG_ERROR.ECOLLATE };
      return { ch: name, symbol: delim === '=' ? 'equiv' : 'coll' };
    }
    if (c === '-' && !first && re[i + 1] !== ']') return { error: REG_ERROR.ERANGE };
    i++;
    return { ch: c };
  };
  for (let first = true; ; first = false) {
    if (i >= re.length) return { error: REG_ERROR.EBRACK };
    if (re[i] === ']' && !first) {
      i++;
      break;
    }
    colons &= ~2;
    const start = element(first);
    if ('error' in start) return start;
    if ('cls' in start) {
      colons |= 8;
      body += start.cls;
      continue;
    }
    if (i >= re.length) return { error: REG_ERROR.EBRACK };
    if (start.symbol !== 'equiv' && re[i] === '-' && re[i + 1] !== ']') {
      if (i + 1 >= re.length) return { error: REG_ERROR.EBRACK };
      i++;
      const end = element(true);
      if ('error' in end) return end;
      // a class cannot end a range, and RE_NO_EMPTY_RANGES makes z-a an error rather than nothing
      if ('cls' in end || end.symbol === 'equiv' || end.ch.charCodeAt(0) < start.ch.charCodeAt(0))
        return { error: REG_ERROR.ERANGE };
      colons |= 8;
      body += `${jsChar(start.ch)}-${jsChar(end.ch)}`;
      continue;
    }
    colons |= start.symbol ? 8 : start.ch === ':' ? 2 : 4;
    body += jsChar(start.ch);
  }
  return { source: `[${negate ? '^' : ''}${body}]`, next: i, confusing: colons === 7 };
}

/**
 * An interval from just after its `\{`, as glibc's parse_dup_op() and fetch_number() read it: each
 * number runs to `\}` or `,`; reaching the end of the pattern first is "Unmatched \{", anything
 * else amiss "Invalid content of \{\}"; `\{,n\}` is `\{0,n\}`.
 */
function intervalToJs(re: string, i: number): { quantifier: string; next: number } | { error: string } {
  const number = (): { num: number; by: ',' | '}' | 'end' } => {
    let num = -1;
    for (;;) {
      if (i >= re.length) return { num: -2, by: 'end' };
      if (re.startsWith('\\}', i)) {
        i += 2;
        return { num, by: '}' };
      }
      let ch = re[i++];
      if (ch === '\\' && i < re.length) ch += re[i++];
      if (ch === ',') return { num, by: ',' };
      const d = ch.length === 1 ? '0123456789'.indexOf(ch) : -1;
      num = d < 0 || num === -2 ? -2 : num === -1 ? d : Math.min(RE_DUP_MAX + 1, num * 10 + d);
    }
  };
  const first = number();
  let { by } = first;
  let min = first.num;
  let max = -2;
  if (min === -1) {
    if (by !== ',') return { error: REG_ERROR.BADBR }; // \{\}
    min = 0;
  }
  if (min !== -2) {
    if (by === '}') max = min;
    else ({ num: max, by } = number());
  }
  if (min === -2 || max === -2) return { error: by === 'end' ? REG_ERROR.EBRACE : REG_ERROR.BADBR };
  if ((max !== -1 && min > max) || by !== '}') return { error: REG_ERROR.BADBR };
  if (RE_DUP_MAX < (max === -1 ? min : max)) return { error: REG_ERROR.ESIZE };
  return { quantifier: max === -1 ? `{${min},}` : max === min ? `{${min}}` : `{${min},${max}}`, next: i };
}

/**
 * A GNU basic regular expression as a JavaScript one: `\(` `\)` group, `\|` `\+` `\?` `\{m,n\}`
 * operate, ( ) { } | + ? are plain; `*` (and `\+` `\?` `\{`) with nothing but anchors before it in
 * its group or branch is a plain character; `^` anchors only first in a group or branch and `$`
 * only last; `\<` `\>` `\b` `\B` `\w` `\W` `\s` `\S` `\`` `\'` as GNU's; `\1`–`\9` back-references;
 * any other escaped character is itself. The errors are glibc's (GNU grep 3.x checks every pattern
 * with it), and dfa.c's `[:space:]` one.
 */
export function breToJs(re: string): Compiled {
  interface Item {
    src: string;
    /** An anchor: matches no character (dfa.c's laststart stays true past it). */
    zeroWidth: boolean;
    /** Already followed by a repetition: another one must wrap it, as `a**` means (a*)*. */
    repeated: boolean;
  }
  interface Frame {
    branches: string[];
    items: Item[];
    group: number;
  }
  const stack: Frame[] = [{ branches: [], items: [], group: 0 }];
  const closed = new Set<number>();
  let groups = 0;
  let dfaError: string | null = null;
  const top = () => stack[stack.length - 1];
  const atStart = () => top().items.every((it) => it.zeroWidth);
  const push = (src: string, zeroWidth = false) => top().items.push({ src, zeroWidth, repeated: false });
  const repeat = (q: string) => {
    const last = top().items[top().items.length - 1];
    last.src = last.repeated || last.zeroWidth ? `(?:${last.src})${q}` : `${last.src}${q}`;
    last.repeated = true;
    last.zeroWidth = false;
  };
  const branchEnd = (f: Frame) => f.branches.push(f.items.map((it) => it.src).join(''));

  for (let i = 0; i < re.length;) {
    const c = re[i++];
    if (c === '\\') {
      if (i >= re.length) return { error: REG_ERROR.EESCAPE };
      const n = re[i++];
      if (n === '(') stack.push({ branches: [], items: [], group: ++groups });
      else if (n === ')') {
        if (stack.length === 1) return { error: REG_ERROR.ERPAREN };
        const f = stack.pop()!;
        branchEnd(f);
        closed.add(f.group);
        push(`(${f.branches.join('|')})`);
      } else if (n === '|') {
        branchEnd(top());
        top().items = [];
      } else if (n === '{') {
        if (atStart()) {
          push(jsChar('{'));
          continue;
        }
        const q = intervalToJs(re, i);
        if ('error' in q) return q;
        repeat(q.quantifier);
        i = q.next;
      } else if (n === '+' || n === '?') {
        if (atStart()) push(jsChar(n));
        else repeat(n);
      } else if (n === '<') push('\\b(?=\\w)', true);
      else if (n === '>') push('\\b(?<=\\w)', true);
      else if (n === 'b' || n === 'B') push(`\\${n}`, true);
      else if (n === '`') push('^', true);
      else if (n === "'") push('$', true);
      else if (n === 'w' || n === 'W') push(`\\${n}`);
      else if (n === 's') push('[\\x20\\t\\n\\r\\f\\v]');
      else if (n === 'S') push('[^\\x20\\t\\n\\r\\f\\v]');
      else if (/^[1-9]$/.test(n)) {
        // only a group already closed can be referred to (glibc's completed_bkref_map)
        if (!closed.has(Number(n))) return { error: REG_ERROR.ESUBREG };
        push(`(?:\\${n})`);
      } else push(jsChar(n));
    } else if (c === '[') {
      const b = bracketToJs(re, i);
      if ('error' in b) return b;
      // dfa.c looks only once glibc has accepted every pattern
      if (b.confusing) dfaError ??= CONFUSING_BRACKETS;
      push(b.source);
      i = b.next;
    } else if (c === '*') {
      if (atStart()) push(jsChar('*'));
      else repeat('*');
    } else if (c === '^') {
      push(top().items.length === 0 ? '^' : jsChar('^'), top().items.length === 0);
    } else if (c === '$') {
      const last = i === re.length || re.startsWith('\\)', i) || re.startsWith('\\|', i);
      push(last ? '$' : jsChar('$'), last);
    } else if (c === '.') {
      // any character: JavaScript's '.' would not match a '\r'
      push('[^\\n]');
    } else push(jsChar(c));
  }
  if (stack.length > 1) return { error: REG_ERROR.EPAREN };
  if (dfaError !== null) return { error: dfaError, dfa: true };
  branchEnd(top());
  return { source: top().branches.join('|') };
}
