/**
 * The README, run as written: every code block marked `<!-- readme-check: run -->` (optionally
 * `, status N`) is run line by line with sh from the repository's top directory, as a user would
 * type it; the block marked `<!-- readme-check: output -->` right after it is what the last line
 * must print. Timestamps and dd's timing are compared as placeholders, a `…` line stands for any
 * lines, trailing blanks and blank lines around the output are not compared. Each block gets its own TMPDIR, data dir and run dir.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from './helpers.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Check {
  commands: string[];
  status: number;
  output: string[] | null;
}

/** The marked blocks of the README, in order. */
export function readmeChecks(text: string): Check[] {
  const lines = text.split('\n');
  const block = (from: number): { body: string[]; end: number } => {
    let i = from;
    while (i < lines.length && !lines[i].startsWith('```')) i++;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !lines[end].startsWith('```')) end++;
    return { body: lines.slice(start, end), end };
  };
  const checks: Check[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^<!-- readme-check: (run|output)(?:, status (\d+))? -->$/.exec(lines[i]);
    if (!m) continue;
    const { body, end } = block(i + 1);
    if (m[1] === 'run') {
      checks.push({ commands: body.filter((l) => l.trim()), status: Number(m[2] ?? 0), output: null });
    } else {
      const last = checks[checks.length - 1];
      if (!last || last.output) throw new Error(`README line ${i + 1}: an output block without a command`);
      last.output = body;
    }
    i = end;
  }
  return checks;
}

const normalise = (l: string) =>
  l
    .replace(/\[\s*\d+\.\d{6}\]/g, '[…]')
    .replace(/copied, [0-9.e+-]+ s, [0-9.]+ [kMG]?B\/s$/, 'copied, … s, …/s')
    .trimEnd();

/** Whether `actual` is `expected`, a `…` line matching any number of lines. */
function matches(expected: string[], actual: string[]): boolean {
  const e = expected.map(normalise);
  const a = actual.map(normalise);
  const at = (i: number, j: number): boolean => {
    if (i === e.length) return j === a.length;
    if (e[i] === '…') {
      for (let k = j; k <= a.length; k++) if (at(i + 1, k)) return true;
      return false;
    }
    return j < a.length && e[i] === a[j] && at(i + 1, j + 1);
  };
  return at(0, 0);
}

function sh(
  line: string,
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('sh', ['-c', line], { cwd: ROOT, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const checks = readmeChecks(readFileSync(join(ROOT, 'README.md'), 'utf8'));
let tmp: { path: string; cleanup(): void };
beforeEach(() => {
  tmp = tempDir('pvblk-readme-');
});
afterEach(() => tmp.cleanup());

describe('README', () => {
  it('marks the commands it shows for checking, with their outputs', () => {
    const all = checks.flatMap((c) => c.commands);
    expect(all).toContain('npx pvblk --version');
    expect(all.filter((c) => c.startsWith('npx pvblk run ')).length).toBeGreaterThanOrEqual(3);
    expect(checks.every((c) => c.output !== null)).toBe(true);
    expect(matches(['a', '…', 'd'], ['a', 'b', 'c', 'd'])).toBe(true);
    expect(matches(['a', '…', 'd'], ['a', 'b', 'c'])).toBe(false);
  });

  it.each(checks.map((c) => [c.commands.join(' && '), c] as const))('%s', async (_name, c) => {
    const env = {
      TMPDIR: tmp.path,
      PVBLK_DATA_DIR: join(tmp.path, 'data'),
      PVBLK_RUN_DIR: join(tmp.path, 'run'),
    };
    let last = { code: null as number | null, stdout: '', stderr: '' };
    for (const [k, line] of c.commands.entries()) {
      last = await sh(line, env);
      const want = k === c.commands.length - 1 ? c.status : 0;
      expect(last.code, `${line}\n${last.stdout}${last.stderr}`).toBe(want);
    }
    if (c.output) {
      // npm run prints a blank line before its banner: blank lines at either end are not compared
      const got = last.stdout.replace(/^\n+|\n+$/g, '').split('\n');
      expect(matches(c.output, got), `expected:\n${c.output.join('\n')}\ngot:\n${got.join('\n')}`).toBe(true);
    }
  });
});
