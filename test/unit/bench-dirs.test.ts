import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { makeBenchDir, sweepStaleBenchDirs } from '../../src/cli/bench-dirs.ts';

/** The pid of a process that has run and ended (its pid is free until the system hands it out again). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', ''], { stdio: 'ignore' });
  expect(r.status).toBe(0);
  return r.pid!;
}

describe("a bench's directory, and the sweep of those left by benches killed outright", () => {
  const saved = process.env.TMPDIR;
  let base = '';
  beforeEach(() => {
    base = mkdtempSync(join(saved ?? tmpdir(), 'bench-dirs-'));
    process.env.TMPDIR = base; // os.tmpdir() reads it at each call
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
    rmSync(base, { recursive: true, force: true });
  });

  /** A directory as a bench makes it, its pid file holding `pid` (or `raw` as is). */
  function benchDir(name: string, pid: number | null, raw?: string): string {
    const dir = join(base, `pvblk-bench-${name}`);
    mkdirSync(join(dir, 'run'), { recursive: true });
    if (pid !== null || raw !== undefined) writeFileSync(join(dir, 'bench.pid'), raw ?? `${pid}\n`);
    return dir;
  }

  it('makes a directory that names this process', async () => {
    const dir = await makeBenchDir();
    expect(basename(dir)).toMatch(/^pvblk-bench-/);
    expect(join(dir, '..')).toBe(base);
    expect(readFileSync(join(dir, 'bench.pid'), 'utf8')).toBe(`${process.pid}\n`);
    // its own bench runs: a sweep leaves it
    expect(await sweepStaleBenchDirs()).toEqual([]);
    expect(existsSync(dir)).toBe(true);
  });

  it("removes only this user's real directories whose bench no longer runs", async () => {
    const dead = deadPid();
    const stale = benchDir('stale', dead);
    const live = benchDir('live', process.pid);
    const starting = benchDir('starting', null); // no pid file yet: a bench still starting
    const garbage = benchDir('garbage', null, 'init\n');
    const zero = benchDir('zero', null, '0\n');
    const other = join(base, 'other-stale');
    mkdirSync(other);
    writeFileSync(join(other, 'bench.pid'), `${dead}\n`);
    // a symlink planted under a bench's name, to a directory that looks stale: never followed
    const target = mkdtempSync(join(base, 'target-'));
    writeFileSync(join(target, 'bench.pid'), `${dead}\n`);
    symlinkSync(target, join(base, 'pvblk-bench-link'));

    expect(await sweepStaleBenchDirs()).toEqual([stale]);
    expect(existsSync(stale)).toBe(false);
    for (const kept of [live, starting, garbage, zero, other, target, join(target, 'bench.pid')])
      expect(existsSync(kept)).toBe(true);
    expect(await sweepStaleBenchDirs()).toEqual([]);
  });
});
