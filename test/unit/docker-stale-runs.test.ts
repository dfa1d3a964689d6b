/**
 * The Docker tests remove what a killed run of theirs left on the engine (a compose project
 * `pvblk-test-<pid>`, a swarm stack `pvblkt<pid>`), and nothing else: this checks the choice of names
 * against real processes, without an engine.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { staleRuns } from '../docker/helpers.ts';

/** The pid of a process that has exited (and been reaped), so that no process runs with it. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await once(child, 'exit');
  return child.pid!;
}

describe('staleRuns: what a killed Docker test run left', () => {
  it("names a run whose process is gone, never this run's, a running one, or another name", async () => {
    const gone = await deadPid();
    const pattern = /^pvblk-test-(\d+)$/;
    const names = [
      `pvblk-test-${gone}`,
      `pvblk-test-${gone}`, // a project owns several containers and volumes: listed once
      `pvblk-test-${process.pid}`,
      `pvblk-test-${process.ppid}`,
      'pvblk-test-1', // pid 1 runs (or belongs to another user): not ours to judge
      'pvblk-test-0',
      'pvblk-test-',
      `pvblk-other-${gone}`,
      `pvblk-test-${gone}x`,
      '',
    ];
    expect(staleRuns(names, pattern)).toEqual([`pvblk-test-${gone}`]);
    expect(staleRuns([`pvblkt${gone}`, `pvblkt${process.pid}`], /^pvblkt(\d+)$/)).toEqual([`pvblkt${gone}`]);
  });
});
