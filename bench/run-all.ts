/**
 * Runs every benchmark script in sequence, each in its own process (so one's JIT state, heap and
 * timers cannot skew the next), and prints a summary. `pnpm bench` runs this.
 *
 *   node --import tsx bench/run-all.ts [--quick] [--list] [name…]
 *
 * Scripts are the `.ts` files of bench/ and packages/<pkg>/bench/, except helpers: lib.ts,
 * run-all.ts, `*-peer.ts` (processes a script forks) and `_*.ts`. Names given on the command line
 * select the scripts whose path contains one of them; the other arguments (e.g. --quick) are passed
 * to every script, which ignores what it does not know. Exits non-zero if any script failed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const isHelper = (name: string): boolean =>
  name === 'lib.ts' || name === 'run-all.ts' || name.endsWith('-peer.ts') || name.startsWith('_');

function scriptsIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && !isHelper(e.name))
    .map((e) => join(dir, e.name))
    .sort();
}

function allScripts(): string[] {
  const pkgs = join(ROOT, 'packages');
  const pkgDirs = existsSync(pkgs)
    ? readdirSync(pkgs, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name)
        .sort()
    : [];
  return [...scriptsIn(join(ROOT, 'bench')), ...pkgDirs.flatMap((p) => scriptsIn(join(pkgs, p, 'bench')))];
}

const args = process.argv.slice(2);
const flags = args.filter((a) => a.startsWith('-') && a !== '--list');
const names = args.filter((a) => !a.startsWith('-'));
const scripts = allScripts()
  .map((f) => relative(ROOT, f))
  .filter((f) => names.length === 0 || names.some((n) => f.includes(n)));

if (args.includes('--list')) {
  for (const s of scripts) console.log(s);
  process.exit(0);
}
if (scripts.length === 0) {
  console.error(`no benchmark script matches ${names.join(', ')}`);
  process.exit(2);
}

const results: Array<{ script: string; status: string; seconds: number }> = [];
for (const script of scripts) {
  console.log(`\n=== ${script} ${flags.join(' ')}`.trimEnd());
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', script, ...flags], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  const seconds = (Date.now() - t0) / 1000;
  const status = r.error
    ? `failed to start: ${r.error.message}`
    : r.status === 0
      ? 'ok'
      : `failed (${r.status ?? r.signal})`;
  results.push({ script, status, seconds });
}

console.log('\n=== summary');
for (const r of results)
  console.log(`${r.script.padEnd(40)} ${r.status.padEnd(12)} ${r.seconds.toFixed(1)} s`);
process.exit(results.every((r) => r.status === 'ok') ? 0 : 1);
