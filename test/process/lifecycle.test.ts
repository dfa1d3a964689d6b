/**
 * Living with a local stack, across real processes: nothing left behind however a stack ends (its
 * output closed, its supervisor killed outright, Ctrl-C under I/O, `pvblk down`), one stack per run
 * dir and data dir, exits reported as a shell reports them. Every test gives the processes a TMPDIR
 * of its own and checks what is left in it.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  processGone,
  pvblk,
  stackInfo,
  startPvblk,
  stopAll,
  tempDir,
  waitUntil,
  type Running,
} from './helpers.ts';

let tmp: { path: string; cleanup(): void };
let env: Record<string, string>;
let runDir: string;
const started: Running[] = [];

function start(args: string[], detached = false): Running {
  const r = startPvblk(args, { env, detached });
  started.push(r);
  return r;
}

/** What the stack's processes left in TMPDIR (tsx's own compile cache aside). */
function leftovers(): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string) => {
    for (const f of readdirSync(dir, { withFileTypes: true })) {
      if (rel === '' && f.name.startsWith('tsx-')) continue;
      out.push(join(rel, f.name));
      if (f.isDirectory()) walk(join(dir, f.name), join(rel, f.name));
    }
  };
  walk(tmp.path, '');
  return out;
}

const pidsOf = (dir: string) => (stackInfo(dir).processes ?? []).map((p) => p.pid);
const ready = (r: Running) => r.line((l) => l.includes('stops everything'));

beforeEach(() => {
  tmp = tempDir('pvblk-life-');
  env = { TMPDIR: tmp.path };
  runDir = join(tmp.path, 'run');
});

afterEach(async () => {
  await stopAll(started, 'SIGKILL');
  tmp.cleanup();
});

describe('a stack leaves nothing behind', () => {
  it('`pvblk run … | head -1`: the run ends with 141 and no stack trace; no process, socket or file is left', async () => {
    const run = start(['run', '--memory', '--run-dir', runDir, '--', 'demo']);
    const first = await run.line((l) => l.startsWith('guest | '));
    expect(first).toBe('guest | + dd if=/dev/urandom of=/tmp/demo.in bs=4096 count=256');
    const pids = pidsOf(runDir);
    expect(pids).toHaveLength(3);
    // what `head -1` does after its line: close the pipe
    run.proc.stdout!.destroy();
    const e = await run.exited;
    expect(e.code).toBe(141);
    expect(run.out.filter((l) => !l.startsWith('guest | '))).toEqual([]);
    expect(pids.filter((p) => !processGone(p))).toEqual([]);
    expect(leftovers()).toEqual(['run']);
  });

  it('SIGKILL of `pvblk up`: every process it started exits within a second; the next stack takes over the stale lock', async () => {
    const up = start(['up', '--memory', '--run-dir', runDir]);
    await ready(up);
    const pids = pidsOf(runDir);
    expect(pids).toHaveLength(3);
    up.proc.kill('SIGKILL');
    await up.exited;
    const ms = await waitUntil(() => pids.every(processGone), 1000, 'every process of the stack has exited');
    expect(ms).toBeLessThan(1000);

    const status = await pvblk(['status', '--run-dir', runDir], { env });
    expect(status.code).toBe(1);
    expect(status.stderr).toBe(
      `pvblk: ENOENT: no pvblk stack is running with run dir ${runDir} (removed the stale lock of pid ${up.proc.pid}, which is gone)\n`,
    );
    const again = await pvblk(['run', '--memory', '--run-dir', runDir, '--', 'echo', 'again'], { env });
    expect(again.stdout).toBe('guest | again\n');
    expect(again.code).toBe(0);
    expect(readdirSync(runDir)).toEqual([]);
  });

  it('Ctrl-C of `pvblk up` under I/O: stops in well under a second, guests first through the XenBus handshake; dd prints its statistics', async () => {
    env.PVBLK_LOG_LEVEL = 'debug';
    const up = start(['up', '--memory', '--disk', 'dev_size_mb=32', '--run-dir', runDir], true);
    await ready(up);
    const pids = pidsOf(runDir);
    const dd = start([
      'guest',
      '--run-dir',
      runDir,
      'dd',
      'if=/dev/zero',
      'of=/dev/xvda',
      'bs=4096',
      'oflag=direct',
      'status=progress',
    ]);
    await dd.line((l) => / copied, 1 s, /.test(l)); // dd has been writing for a second
    const t0 = performance.now();
    process.kill(-up.proc.pid!, 'SIGINT'); // a terminal's Ctrl-C goes to the whole process group
    const e = await up.exited;
    const ms = performance.now() - t0;
    expect(e.code).toBe(130);
    expect(ms).toBeLessThan(1000);
    expect(pids.filter((p) => !processGone(p))).toEqual([]);

    const d = await dd.exited;
    expect(d.code).toBe(130);
    // readline splits at the progress lines' \r too: drop those pieces
    const stats = dd.out.filter((l) => l !== '' && !/copied, \d+ s, /.test(l));
    expect(stats).toHaveLength(3);
    expect(stats[0]).toMatch(/^\d+\+0 records in$/);
    expect(stats[1]).toMatch(/^\d+\+0 records out$/);
    expect(stats[2]).toMatch(/^\d+ bytes \([0-9.]+ [kMG]B\) copied, [0-9.]+ s, [0-9.]+ [kMG]?B\/s$/);

    // the order of a clean stop: the guest closes its vbd (Closing, then Closed on both ends) and
    // exits before the host and the hypervisor stop. Lines of one process keep their order in `up`'s
    // output; lines of two processes do not (each comes through its own pipe), so the handshake is
    // checked within each process: the guest went Closed after it saw the backend Closing, the
    // backend went Closing then Closed. The stops are ordered through `up` itself, which stops the
    // host only once the guest has exited and all it wrote has been read, and the hypervisor after
    // the host.
    const at = (pred: (l: string) => boolean) => up.out.findIndex(pred);
    const feSawClosing = at(
      (l) => l.startsWith('guest ') && l.includes('backend changed') && l.includes('"Closing"'),
    );
    const feClosed = at(
      (l) => l.startsWith('guest ') && l.includes('frontend state') && l.includes('"Closed"'),
    );
    const beClosing = at(
      (l) => l.startsWith('host ') && l.includes('backend state') && l.includes('"Closing"'),
    );
    const beClosed = at(
      (l) => l.startsWith('host ') && l.includes('backend state') && l.includes('"Closed"'),
    );
    const guestStopped = at((l) => l.includes('guest stopped'));
    const hostStops = at((l) => l.includes('host shutting down'));
    const hvStops = at((l) => l.includes('hypervisor shutting down'));
    expect([feSawClosing, beClosing, feClosed, guestStopped, hostStops, hvStops].every((i) => i >= 0)).toBe(
      true,
    );
    expect(feSawClosing).toBeLessThan(feClosed);
    expect(beClosed).toBeGreaterThan(beClosing);
    expect(guestStopped).toBeLessThan(hostStops);
    expect(hostStops).toBeLessThan(hvStops);
    expect(up.out.filter((l) => / (ERROR|FATAL): /.test(l))).toEqual([]);
    expect(leftovers()).toEqual(['run']);
  });

  it("Ctrl-C of `pvblk run` mid-dd prints dd's statistics and exits 130", async () => {
    const run = start(
      [
        'run',
        '--memory',
        '--disk',
        'dev_size_mb=32',
        '--run-dir',
        runDir,
        '--',
        'dd',
        'if=/dev/zero',
        'of=/dev/xvda',
        'bs=4096',
        'oflag=direct',
        'status=progress',
      ],
      true,
    );
    await run.line((l) => / copied, 1 s, /.test(l));
    process.kill(-run.proc.pid!, 'SIGINT');
    const e = await run.exited;
    expect(e.code).toBe(130);
    // status=progress rewrites its line with \r: each rewrite keeps the `guest | ` prefix
    const progress = run.out.filter((l) => /copied, \d+ s, /.test(l));
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.every((l) => /^guest \| \d+ bytes \([0-9.]+ [kMG]B\) copied, \d+ s, /.test(l))).toBe(
      true,
    );
    const tail = run.out.slice(-3);
    expect(tail[0]).toMatch(/^guest \| \d+\+0 records in$/);
    expect(tail[1]).toMatch(/^guest \| \d+\+0 records out$/);
    expect(tail[2]).toMatch(/^guest \| \d+ bytes \([0-9.]+ [kMG]B\) copied, [0-9.]+ s, /);
    expect(run.out.join('\n')).not.toContain('ECONNRESET');
    expect(leftovers()).toEqual(['run']);
  });

  // Ctrl-C: the run ends with fio's status, 128 (its exit_value once a signal ended the jobs, backend.c);
  // SIGTERM ends the run itself (128 + 15), and fio hears which signal it was
  for (const [signal, number, status] of [
    ['SIGINT', 2, 128],
    ['SIGTERM', 15, 143],
  ] as const) {
    it(`${signal} to \`pvblk run\` mid-fio ends the jobs and prints fio's report of what ran (${status})`, async () => {
      const run = start(
        [
          'run',
          '--memory',
          '--disk',
          'delay=0',
          '--run-dir',
          runDir,
          '--',
          'fio',
          '--name=j',
          '--filename=/dev/xvda',
          '--rw=randwrite',
          '--bs=4k',
          '--direct=1',
          '--time_based',
          '--runtime=60',
          '--eta=always',
        ],
        true,
      );
      // the ETA line carries rates once the job has done I/O
      await run.line((l) => l.startsWith('guest | Jobs: 1 ') && l.includes(' IOPS]'));
      process.kill(-run.proc.pid!, signal);
      const e = await run.exited;
      expect(e.code).toBe(status);
      const at = run.out.indexOf(`guest | fio: terminating on signal ${number}`);
      expect(at, run.out.join('\n')).toBeGreaterThan(0);
      const total = run.out
        .map((l) => /^guest \|\s+WRITE: .* run=(\d+)-(\d+)msec$/.exec(l))
        .findIndex((m) => m);
      expect(total).toBeGreaterThan(at);
      const ms = Number(/run=\d+-(\d+)msec/.exec(run.out[total])![1]);
      expect(ms).toBeGreaterThan(0);
      expect(ms).toBeLessThan(60_000);
      expect(leftovers()).toEqual(['run']);
    });
  }

  it('SIGHUP of `pvblk run` (its terminal closed) interrupts the command and stops the stack: 129', async () => {
    const run = start(['run', '--memory', '--run-dir', runDir, '--', 'sh', '-c', 'echo started; sleep 600']);
    await run.line((l) => l === 'guest | started');
    const pids = pidsOf(runDir);
    run.proc.kill('SIGHUP');
    const e = await run.exited;
    expect(e.code).toBe(129);
    expect(pids.filter((p) => !processGone(p))).toEqual([]);
    expect(leftovers()).toEqual(['run']);
  });

  it('a process dying under `pvblk up` stops the stack, reported as the shell does (SIGKILL: 137)', async () => {
    const up = start(['up', '--memory', '--run-dir', runDir]);
    await ready(up);
    const info = stackInfo(runDir);
    const host = info.processes!.find((p) => p.name === 'host')!.pid;
    process.kill(host, 'SIGKILL');
    const e = await up.exited;
    expect(e.code).toBe(137);
    expect(up.out).toContain('pvblk: host was killed by SIGKILL (status 137); stopping the stack');
    expect(info.processes!.filter((p) => !processGone(p.pid))).toEqual([]);
  });
});

describe('a supervisor that dies while its child is still starting', () => {
  it('the child ends as soon as it watches, though the channel closed before anyone listened', async () => {
    // Node emits `disconnect` once, to whoever listens then: a child still loading its modules when
    // its supervisor dies never hears it, and watching afterwards must notice the channel is gone.
    const shutdown = fileURLToPath(new URL('../../packages/runtime/src/shutdown.ts', import.meta.url));
    const child = `
      // the supervisor's pid from its own hand: by the time this runs it may be gone already
      const parent = Number(process.env.SUPERVISOR_PID);
      const poll = setInterval(() => {
        if (process.ppid === parent) return; // still supervised: keep starting
        clearInterval(poll);
        import(${JSON.stringify(pathToFileURL(shutdown).href)}).then((m) => {
          m.watchForShutdown();
          setInterval(() => {}, 1000); // alive until the watch ends it
        });
      }, 20);`;
    const supervisor = `
      const { spawn } = require('node:child_process');
      const c = spawn(process.execPath, ['--import', 'tsx', '-e', ${JSON.stringify(child)}], {
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        detached: true,
        env: { ...process.env, SUPERVISOR_PID: String(process.pid) },
      });
      console.log(c.pid);
      setInterval(() => {}, 1000);`;
    const sup = spawn(process.execPath, ['-e', supervisor], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let childPid = 0;
    try {
      childPid = await new Promise<number>((resolve, reject) => {
        sup.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
        sup.once('exit', () => reject(new Error('the supervisor exited before starting its child')));
      });
      expect(processGone(childPid)).toBe(false);
      sup.kill('SIGKILL');
      await waitUntil(() => processGone(childPid), 20_000, 'the orphaned child ends');
    } finally {
      if (sup.exitCode === null && sup.signalCode === null) sup.kill('SIGKILL');
      if (childPid && !processGone(childPid)) process.kill(childPid, 'SIGKILL');
    }
  });
});

describe('one stack per run dir and data dir', () => {
  it('refuses a second stack on either, names who holds it; status and down find it through the run dir', async () => {
    const data = join(tmp.path, 'data');
    const up = start(['up', '--data-dir', data, '--run-dir', runDir]);
    await ready(up);
    const pid = up.proc.pid!;

    const sameRun = await pvblk(['run', '--memory', '--run-dir', runDir, '--', 'true'], { env });
    expect(sameRun.code).toBe(1);
    expect(sameRun.stderr).toBe(
      `pvblk: EBUSY: a pvblk stack (pid ${pid}) is already using the run dir ${runDir}; use --run-dir or stop it (pvblk down --run-dir ${runDir})\n`,
    );
    const otherRun = join(tmp.path, 'run2');
    const sameData = await pvblk(['run', '--data-dir', data, '--run-dir', otherRun, '--', 'true'], { env });
    expect(sameData.code).toBe(1);
    expect(sameData.stderr).toBe(
      `pvblk: EBUSY: a pvblk stack (pid ${pid}) is already using the data dir ${data}; use --data-dir (or --memory) or stop it (pvblk down --run-dir ${runDir})\n`,
    );
    expect(readdirSync(otherRun)).toEqual([]); // the refused run released the run dir it had locked

    const status = await pvblk(['status', '--run-dir', runDir], { env });
    expect(status.code).toBe(0);
    const lines = status.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^stack +pvblk up, pid ${pid}, up \\d+ s$`));
    expect(lines.slice(1, 3)).toEqual([`run dir     ${runDir}`, `data dir    ${data}`]);
    expect(lines[3]).toMatch(/^hypervisor +ws:\/\/127\.0\.0\.1:\d+\/ \(pid \d+\)$/);
    expect(lines[4]).toMatch(/^host +management API http:\/\/127\.0\.0\.1:\d+ \(pid \d+\)$/);
    expect(lines[5]).toBe(
      `guest       domain 1, /dev/xvda, control socket ${join(runDir, 'guest.sock')} (pid ${stackInfo(runDir).processes![2].pid})`,
    );

    const pids = pidsOf(runDir);
    const down = await pvblk(['down', '--run-dir', runDir], { env });
    expect(down.stdout).toBe(`pvblk: stopped the stack (pid ${pid}) of run dir ${runDir}\n`);
    expect(down.code).toBe(0);
    expect((await up.exited).code).toBe(0);
    expect(pids.filter((p) => !processGone(p))).toEqual([]);
    expect(readdirSync(runDir)).toEqual([]);
    expect(readdirSync(data).sort()).toEqual(['disks', 'disks.json']); // disks kept, lock gone
    const none = await pvblk(['down', '--run-dir', runDir], { env });
    expect(none.stderr).toBe(`pvblk: ENOENT: no pvblk stack is running with run dir ${runDir}\n`);
  });

  it('`pvblk guest` skips a control socket nobody listens on (a guest killed outright)', async () => {
    const up = start(['up', '--memory', '--run-dir', runDir]);
    await ready(up);
    // a socket file whose process died without removing it
    const stale = join(runDir, 'ghost.sock');
    const holder = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('listening'))`,
    ]);
    await new Promise((r) => holder.stdout.once('data', r));
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('close', r));
    expect(existsSync(stale)).toBe(true);

    const r = await pvblk(['guest', '--run-dir', runDir, 'echo', 'live'], { env });
    expect(r.stdout).toBe('live\n');
    expect(r.code).toBe(0);
    const ghost = await pvblk(['guest', '--run-dir', runDir, '--name', 'ghost', 'true'], { env });
    expect(ghost.code).toBe(1);
    expect(ghost.stderr).toBe(
      `pvblk: ECONNREFUSED: cannot reach the guest's control socket ${stale}: nobody listens on it (the guest that made it is gone)\n`,
    );
  });
});
