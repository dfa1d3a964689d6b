/**
 * The Docker tests remove what a killed run of theirs left on the engine (a compose project
 * `pvblk-test-<pid>-<host>`, a swarm stack `pvblkt<pid>h<host>`), and nothing else: this checks the
 * choice of names against real processes, without an engine.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { runHost, staleRuns } from '../docker/helpers.ts';

/** The pid of a process that has exited (and been reaped), so that no process runs with it. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await once(child, 'exit');
  return child.pid!;
}

/** A new pid namespace needs CAP_SYS_ADMIN (or user namespaces): root on Linux has it. */
const canUnshare = spawnSync('unshare', ['--pid', '--fork', 'true'], { stdio: 'ignore' }).status === 0;

/** runHost() as a child process in a new pid namespace computes it. */
function hostInNewPidNamespace(): Promise<string> {
  const child = spawn(
    'unshare',
    [
      '--pid',
      '--fork',
      process.execPath,
      '--import',
      'tsx',
      '-e',
      "import('./test/docker/helpers.ts').then((h) => console.log(h.runHost()))",
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    // 'close', not 'exit': stdout has been read to its end
    child.on('close', (code) =>
      code === 0 ? resolve(out.trim()) : reject(new Error(`unshare … runHost() exited ${code}`)),
    );
  });
}

describe('staleRuns: what a killed Docker test run left', () => {
  it("names a run whose process is gone, never this run's, a running one, or another name", async () => {
    const gone = await deadPid();
    const host = runHost();
    expect(host).toMatch(/^[0-9a-f]{8}$/);
    expect(runHost()).toBe(host); // the same for every name this run makes
    const pattern = /^pvblk-test-(\d+)-([0-9a-f]{8})$/;
    const names = [
      `pvblk-test-${gone}-${host}`,
      `pvblk-test-${gone}-${host}`, // a project owns several containers and volumes: listed once
      `pvblk-test-${process.pid}-${host}`,
      `pvblk-test-${process.ppid}-${host}`,
      `pvblk-test-1-${host}`, // pid 1 runs (or belongs to another user): not ours to judge
      `pvblk-test-0-${host}`,
      `pvblk-test--${host}`,
      `pvblk-other-${gone}-${host}`,
      `pvblk-test-${gone}x-${host}`,
      `pvblk-test-${gone}`, // no host: made by a run of an older tree, anywhere
      '',
    ];
    expect(staleRuns(names, pattern)).toEqual([`pvblk-test-${gone}-${host}`]);
    expect(
      staleRuns([`pvblkt${gone}h${host}`, `pvblkt${process.pid}h${host}`], /^pvblkt(\d+)h([0-9a-f]{8})$/),
    ).toEqual([`pvblkt${gone}h${host}`]);
  });

  it('leaves the names of runs elsewhere alone, whatever their pid is here', async () => {
    const gone = await deadPid();
    const elsewhere = runHost() === '00000000' ? '00000001' : '00000000';
    const pattern = /^pvblk-test-(\d+)-([0-9a-f]{8})$/;
    expect(staleRuns([`pvblk-test-${gone}-${elsewhere}`], pattern)).toEqual([]);
    // … and judges them where they were made
    expect(staleRuns([`pvblk-test-${gone}-${elsewhere}`], pattern, elsewhere)).toEqual([
      `pvblk-test-${gone}-${elsewhere}`,
    ]);
  });

  it.skipIf(!canUnshare)('tells another pid namespace on this machine from this one', async () => {
    const other = await hostInNewPidNamespace();
    expect(other).toMatch(/^[0-9a-f]{8}$/);
    expect(other).not.toBe(runHost());
  });
});
