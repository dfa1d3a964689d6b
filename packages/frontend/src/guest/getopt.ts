/**
 * getopt_long(3) as glibc parses, for guest tools whose reference is a C program that uses it:
 * clustered short options (`-sv`), a short option's argument attached (`-o4M`) or next, long
 * options with `=value` or the next word, unambiguous prefixes of long names (`--off=4M`), operands
 * anywhere (GNU permutation), `--` ending the options. Errors are glibc's texts, for the caller to
 * print before its usage hint.
 */

export interface LongOption {
  name: string;
  /** Takes an argument (required_argument); else no_argument. */
  arg: boolean;
  /** The short option it stands for (what getopt_long returns). */
  val: string;
}

export interface ParsedOption {
  opt: string;
  arg?: string;
}

export type GetoptResult =
  { ok: true; options: ParsedOption[]; operands: string[] } | { ok: false; message: string };

/**
 * Parses `args` (argv without the program name) against `shortopts` (getopt's string: a letter,
 * followed by ':' when it takes an argument) and `longopts`.
 */
export function getoptLong(
  prog: string,
  args: readonly string[],
  shortopts: string,
  longopts: readonly LongOption[],
): GetoptResult {
  const options: ParsedOption[] = [];
  const operands: string[] = [];
  const takesArg = (c: string): boolean | null => {
    const at = shortopts.indexOf(c);
    return c === ':' || at < 0 ? null : shortopts[at + 1] === ':';
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      const exact = longopts.find((o) => o.name === name);
      const matches = exact ? [exact] : longopts.filter((o) => o.name.startsWith(name));
      if (matches.length === 0) return { ok: false, message: `${prog}: unrecognized option '${a}'` };
      if (matches.length > 1) {
        const names = matches.map((o) => `'--${o.name}'`).join(' ');
        return {
          ok: false,
          message: `${prog}: option '${a.slice(0, eq < 0 ? undefined : eq)}' is ambiguous; possibilities: ${names}`,
        };
      }
      const o = matches[0];
      if (!o.arg) {
        if (eq >= 0) return { ok: false, message: `${prog}: option '--${o.name}' doesn't allow an argument` };
        options.push({ opt: o.val });
      } else if (eq >= 0) options.push({ opt: o.val, arg: a.slice(eq + 1) });
      else if (i + 1 < args.length) options.push({ opt: o.val, arg: args[++i] });
      else return { ok: false, message: `${prog}: option '--${o.name}' requires an argument` };
      continue;
    }
    if (!a.startsWith('-') || a === '-') {
      operands.push(a);
      continue;
    }
    for (let k = 1; k < a.length; k++) {
      const c = a[k];
      const needs = takesArg(c);
      if (needs === null) return { ok: false, message: `${prog}: invalid option -- '${c}'` };
      if (!needs) {
        options.push({ opt: c });
        continue;
      }
      if (k + 1 < a.length) options.push({ opt: c, arg: a.slice(k + 1) });
      else if (i + 1 < args.length) options.push({ opt: c, arg: args[++i] });
      else return { ok: false, message: `${prog}: option requires an argument -- '${c}'` };
      break;
    }
  }
  return { ok: true, options, operands };
}
