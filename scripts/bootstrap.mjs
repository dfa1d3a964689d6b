#!/usr/bin/env node
// `npm start` and `npm test` on a fresh clone: install the workspace with pnpm 10 when needed (through
// npx, so nothing has to be installed by hand first), then run pvblk or its test suite.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const PNPM = ['--yes', 'pnpm@10.34.9'];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) {
    console.error(`bootstrap: cannot run ${cmd}: ${r.error.message}`);
    process.exit(1);
  }
  return r.status ?? 1;
}

function installed() {
  const marker = join(root, 'node_modules', '.modules.yaml');
  if (!existsSync(marker)) return false;
  return statSync(marker).mtimeMs >= statSync(join(root, 'pnpm-lock.yaml')).mtimeMs;
}

if (!installed()) {
  console.error('bootstrap: installing dependencies (pnpm 10, frozen lockfile)…');
  const status = run('npx', [...PNPM, 'install', '--frozen-lockfile']);
  if (status !== 0) process.exit(status);
}

const [what, ...rest] = process.argv.slice(2);
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
switch (what) {
  case 'run':
    process.exit(run(process.execPath, [join(root, 'bin', 'pvblk.mjs'), 'run', ...rest]));
    break;
  case 'test':
    process.exit(run(process.execPath, [vitest, 'run', ...rest]));
    break;
  case 'bench':
    process.exit(run(process.execPath, ['--import', 'tsx', join(root, 'bench', 'run-all.ts'), ...rest]));
    break;
  default:
    console.error('usage: bootstrap.mjs run|test|bench [args…]');
    process.exit(2);
}
