/**
 * A minimal xl domain configuration file (xl.cfg(5)) for `pvblk xl create`: `KEY = VALUE` settings —
 * strings in double or single quotes, numbers, lists in brackets — one per line or separated by
 * `;`, comments from `#`. pvblk reads `name` and `disk`; the other keys an xl.cfg holds (memory,
 * vcpus, kernel, type, …) are accepted and have no effect here, as a pvblk guest is a process.
 * Errors are worded as libxlu's: "<file>:<line>: config parsing error near `<token>': <what>".
 */
import { PvblkError } from '@pvblk/shared';

export type CfgValue = string | number | string[];

export interface XlConfig {
  name: string;
  disk: string[];
  settings: Map<string, CfgValue>;
}

type Tok = { t: 'id' | 'str' | 'num' | '=' | '[' | ']' | ',' | 'sep'; v: string; line: number };

function tokens(text: string, file: string): Tok[] {
  const out: Tok[] = [];
  let line = 1;
  let i = 0;
  const err = (near: string, what: string) =>
    new PvblkError('EINVAL', `${file}:${line}: config parsing error near \`${near}': ${what}`);
  while (i < text.length) {
    const c = text[i];
    if (c === '\n') {
      out.push({ t: 'sep', v: '\n', line });
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') i++;
    else if (c === '#') while (i < text.length && text[i] !== '\n') i++;
    else if (c === ';') {
      out.push({ t: 'sep', v: ';', line });
      i++;
    } else if (c === '=' || c === '[' || c === ']' || c === ',') {
      out.push({ t: c, v: c, line });
      i++;
    } else if (c === '"' || c === "'") {
      let v = '';
      let j = i + 1;
      for (; j < text.length && text[j] !== c; j++) {
        if (text[j] === '\n') throw err(text.slice(i, j), 'unterminated string');
        if (c === '"' && text[j] === '\\' && j + 1 < text.length) {
          const e = text[++j];
          v += e === 'n' ? '\n' : e === 't' ? '\t' : e;
        } else v += text[j];
      }
      if (j >= text.length) throw err(text.slice(i, j), 'unterminated string');
      out.push({ t: 'str', v, line });
      i = j + 1;
    } else {
      const m = /^(?:0x[0-9a-fA-F]+|[0-9]+)(?![A-Za-z_])|^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i));
      if (!m) throw err(c, 'syntax error');
      out.push({ t: /^[0-9]/.test(m[0]) ? 'num' : 'id', v: m[0], line });
      i += m[0].length;
    }
  }
  return out;
}

export function parseXlConfig(text: string, file: string): XlConfig {
  const toks = tokens(text, file);
  const settings = new Map<string, CfgValue>();
  let i = 0;
  const err = (t: Tok | undefined, what: string) =>
    new PvblkError(
      'EINVAL',
      `${file}:${t?.line ?? 'EOF'}: config parsing error near \`${t?.v.replace('\n', '\\n') ?? 'end of file'}': ${what}`,
    );
  while (i < toks.length) {
    if (toks[i].t === 'sep') {
      i++;
      continue;
    }
    const key = toks[i];
    if (key.t !== 'id') throw err(key, 'syntax error');
    if (toks[i + 1]?.t !== '=') throw err(toks[i + 1], 'syntax error');
    i += 2;
    const v = toks[i];
    if (!v) throw err(v, 'syntax error');
    let value: CfgValue;
    if (v.t === 'str') value = v.v;
    else if (v.t === 'num') value = Number(v.v);
    else if (v.t === '[') {
      const list: string[] = [];
      i++;
      for (;;) {
        while (toks[i]?.t === 'sep' && toks[i].v === '\n') i++;
        const e = toks[i];
        if (e?.t === ']') break;
        if (e?.t !== 'str') throw err(e, 'list items must be strings');
        list.push(e.v);
        i++;
        while (toks[i]?.t === 'sep' && toks[i].v === '\n') i++;
        if (toks[i]?.t === ',') i++;
        else if (toks[i]?.t !== ']') throw err(toks[i], 'syntax error');
      }
      value = list;
    } else throw err(v, 'syntax error');
    i++;
    if (i < toks.length && toks[i].t !== 'sep') throw err(toks[i], 'syntax error');
    if (settings.has(key.v)) throw err(key, `${key.v} specified twice`);
    settings.set(key.v, value);
  }
  const name = settings.get('name');
  if (typeof name !== 'string' || name === '')
    throw new PvblkError('EINVAL', `${file}: domain name must be specified (name = "…")`);
  const disk = settings.get('disk') ?? [];
  if (!Array.isArray(disk)) throw new PvblkError('EINVAL', `${file}: disk must be a list of strings`);
  return { name, disk, settings };
}
