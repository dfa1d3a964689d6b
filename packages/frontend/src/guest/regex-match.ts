/**
 * How the guest's tools run a regular expression without stopping the guest. Its tools, its block
 * layer and blkfront share one thread, so a match that backtracks for a minute is a guest whose disk
 * driver stops for that minute: `echo aaa…a | grep '\(a*\)*\1b'` on 32 characters froze a guest,
 * Ctrl-C included, for 61 s, and `grep -E '(a|a)*b'` on 26 for 11 s.
 *
 * - A pattern without back-references is as regular as GNU grep's DFA takes it to be: V8 runs it by
 *   backtracking until that backtracks too much, then again on its linear-time engine (V8's
 *   `--enable-experimental-regexp-engine-on-excessive-backtracks`, set once here). `(a|a)*b` on 28
 *   characters: 16 s before, 2 ms now.
 * - A pattern with back-references is not regular, and no engine matches every such pattern in
 *   bounded time (GNU's can take exponential time on them too, or fail with "memory exhausted"). Its
 *   matches run in a V8 context with a time limit (MATCH_LIMIT_MS); one that reaches it stops the
 *   command with an error naming the line, where GNU grep would go on for as long as it takes.
 */
import { setFlagsFromString } from 'node:v8';
import { Script, createContext } from 'node:vm';

setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');

/** How long one line's match of a pattern with back-references may take. */
export const MATCH_LIMIT_MS = 500;

/** A JavaScript regular expression source with a back-reference (\1 … \9) outside a class. */
export function hasBackReference(source: string): boolean {
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') {
      if (!inClass && /[1-9]/.test(source[i + 1] ?? '')) return true;
      i++;
    } else if (c === '[') inClass = true;
    else if (c === ']') inClass = false;
  }
  return false;
}

/** Thrown by a matcher whose match of one line ran past MATCH_LIMIT_MS. */
export class MatchTooCostly extends Error {
  constructor() {
    super(`matching took more than ${MATCH_LIMIT_MS / 1000} s`);
  }
}

/** `re.test(line)`, bounded in time when `re` has back-references (MatchTooCostly past the bound). */
export function lineMatcher(re: RegExp): (line: string) => boolean {
  if (!hasBackReference(re.source)) return (line) => re.test(line);
  const ctx = createContext({ re, line: '' });
  const script = new Script('re.test(line)');
  return (line) => {
    ctx.line = line;
    try {
      return script.runInContext(ctx, { timeout: MATCH_LIMIT_MS }) as boolean;
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw new MatchTooCostly();
      throw e;
    }
  };
}
