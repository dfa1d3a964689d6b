import { fork } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { environOf, PVBLK, pvblk, startPvblk, tempDir, waitUntil } from './helpers.ts';

/** The pids of the processes whose environment has TMPDIR=`tmp` (`pvblk up` passes its own on). */
function processesOf(tmp: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (environOf(Number(d)).TMPDIR === tmp) pids.push(Number(d));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

function argvOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** A stack process's role: the argument after pvblk's entry point, when it is one of the three. */
function roleOf(argv: string[]): string | null {
  const i = argv.findIndex((a) => a.endsWith('bin/pvblk.mjs'));
  const r = i >= 0 ? argv[i + 1] : undefined;
  return r === 'hypervisor' || r === 'host' || r === 'domu' ? r : null;
}

/** The roles of the stack processes running with TMPDIR=`tmp`, sorted. */
const rolesOf = (tmp: string) =>
  processesOf(tmp)
    .flatMap((p) => roleOf(argvOf(p)) ?? [])
    .sort();

describe('the stack starts its processes at once; Dom0 and the guests get the addresses when they are known', () => {
  const tmp = tempDir('pvblk-start-');
  afterAll(() => tmp.cleanup());

  it('`ps` shows every option of each process, an address not yet known as @parent', async () => {
    const runDir = join(tmp.path, 'run');
    const up = startPvblk(['up', '--memory', '--run-dir', runDir], { env: { TMPDIR: tmp.path } });
    try {
      await up.line((l) => l.startsWith('pvblk: up.'), 60_000);
      const argv = processesOf(tmp.path).map(argvOf);
      const role = (r: string) => argv.find((a) => roleOf(a) === r)!;
      expect(role('hypervisor')).toEqual(expect.arrayContaining(['--port', '0']));
      const host = role('host');
      expect(host[host.indexOf('--hypervisor') + 1]).toBe('@parent');
      expect(host).toEqual(expect.arrayContaining(['--memory', '--api-port', '0']));
      const guest = role('domu');
      for (const o of ['--hypervisor', '--toolstack']) expect(guest[guest.indexOf(o) + 1]).toBe('@parent');
      expect(guest[guest.indexOf('--control') + 1]).toBe(join(runDir, 'guest.sock'));
      // and the values reached them: the stack does I/O (dd reports on stderr, as coreutils' does)
      const dd = await pvblk(
        [
          'guest',
          '--run-dir',
          runDir,
          'dd',
          'if=/dev/zero',
          'of=/dev/xvda',
          'bs=4096',
          'count=4',
          'oflag=direct',
        ],
        { env: { TMPDIR: tmp.path } },
      );
      expect(dd.code, dd.stderr).toBe(0);
      expect(dd.stderr).toContain('4+0 records out');
    } finally {
      up.proc.kill('SIGINT');
      await up.exited;
    }
  });

  it('a hypervisor that cannot listen: the stack does not start, and the host and guest already running are stopped', async () => {
    const taken: Server = createServer();
    await new Promise<void>((res) => taken.listen(0, '127.0.0.1', res));
    const port = (taken.address() as { port: number }).port;
    const dir = join(tmp.path, 'taken');
    try {
      const up = startPvblk(['up', '--memory', '--run-dir', join(dir, 'run'), '--port', String(port)], {
        env: { TMPDIR: dir },
      });
      // the host and the guest run (waiting for their addresses) before the hypervisor fails
      await waitUntil(() => rolesOf(dir).length === 3, 30_000, 'the three processes of the stack run');
      expect(rolesOf(dir)).toEqual(['domu', 'host', 'hypervisor']);
      const exit = await up.exited;
      expect(exit.code).toBe(1);
      const out = up.out.join('\n');
      expect(out).toContain('the stack did not start: hypervisor exited with status 1 before it was ready');
      expect(out).toContain('address already in use');
      await waitUntil(() => processesOf(dir).length === 0, 10_000, 'every process of the stack ends');
    } finally {
      taken.close();
    }
  });

  it('SIGKILL of `pvblk up` while its processes start: every one of them ends, waiting for its address or not', async () => {
    const dir = join(tmp.path, 'killed');
    const up = startPvblk(['up', '--memory', '--run-dir', join(dir, 'run')], { env: { TMPDIR: dir } });
    await waitUntil(() => rolesOf(dir).length === 3, 30_000, 'the three processes of the stack run');
    up.proc.kill('SIGKILL');
    await up.exited;
    await waitUntil(() => processesOf(dir).length === 0, 10_000, 'every process of the stack ends');
  });

  it('`@parent` under a parent with an IPC channel that is not pvblk (a Node fork) is refused, not waited on', async () => {
    const child = fork(PVBLK, ['host', '--memory', '--hypervisor', '@parent'], {
      env: { ...process.env, PVBLK_DOM0_SECRET: 'x'.repeat(16), PVBLK_TOOLSTACK_TOKEN: 'y'.repeat(16) },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    expect(code).toBe(2);
    expect(stderr).toBe(
      'pvblk: --hypervisor @parent: only the pvblk up, run or bench that started this process gives that value\n',
    );
  });

  it('`@parent` given by hand (no pvblk up to give it) is refused, naming the option', async () => {
    const r = await pvblk(['host', '--memory', '--hypervisor', '@parent'], {
      env: { PVBLK_DOM0_SECRET: 'x', PVBLK_TOOLSTACK_TOKEN: 'y' },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'pvblk: --hypervisor @parent: only the pvblk up, run or bench that started this process gives that value\n',
    );
  });
});
