/**
 * The benchmark scripts' `--help`: their header comment, printed before any benchmark starts (it used
 * to start the script's full run, whatever the argument).
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { scriptUsage } from '../../bench/lib.ts';

describe('bench scripts: --help', () => {
  it("is the script's header comment, without its comment markers", () => {
    const u = scriptUsage('bench/steady-memory.ts');
    expect(u).toMatch(/^Steady memory: /);
    expect(u).toContain('  node --import tsx bench/steady-memory.ts [--quick]\n');
    expect(u).not.toMatch(/^ ?\*/m);
  });

  it('prints it and exits 0 before the script runs', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/steady-memory.ts', '--help'], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(scriptUsage('bench/steady-memory.ts'));
    // nothing of the benchmark: it would print the pvblk bench command it runs
    expect(r.stdout + r.stderr).not.toContain('pvblk bench');
  });
});
