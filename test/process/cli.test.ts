/**
 * The CLI as a user meets it: its version, errors that name the option or variable and what it
 * accepts (before anything starts), the environment variables it honours, the disks a data dir keeps
 * and how to reset them, and the `up` banner's command, run as printed.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  symlinkSync,
} from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PVBLK, pvblk, startPvblk, stopAll, tempDir, type Running } from './helpers.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let tmp: { path: string; cleanup(): void };
let env: Record<string, string>;
let runDir: string;
const started: Running[] = [];

beforeEach(() => {
  tmp = tempDir('pvblk-cli-');
  env = { TMPDIR: tmp.path };
  runDir = join(tmp.path, 'run');
});
afterEach(async () => {
  await stopAll(started, 'SIGINT');
  tmp.cleanup();
});

describe('the pvblk command', () => {
  it('--version prints the version of the package', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await pvblk(['--version']);
    expect(r.stdout).toBe(`pvblk ${pkg.version}\n`);
    expect(r.code).toBe(0);
  });

  it('prints its help where asked, and says when it could not (a full disk: 1; a reader gone: 141)', async () => {
    const help = await pvblk(['help', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: pvblk \[options\] \[command\]/);
    expect(help.stderr).toBe('');
    const bench = await pvblk(['help', 'bench']);
    expect(bench.stdout).toMatch(/^usage: pvblk bench --name=<job>/);
    expect(bench.stdout).toBe((await pvblk(['bench', '--help'])).stdout);
    /** `pvblk <args>` with stdout on `out`, to its exit. */
    const exit = (args: string[], out: 'pipe' | number) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [PVBLK, ...args], { stdio: ['ignore', out, 'pipe'] });
        // the reader goes away before the child has even loaded (closing the pipe's end is immediate)
        p.stdout?.destroy();
        let stderr = '';
        p.stderr!.on('data', (d) => (stderr += d));
        p.on('close', (code) => resolve({ code, stderr }));
      });
    const full = openSync('/dev/full', 'w');
    try {
      for (const args of [['--help'], ['--version'], ['bench', '--help']]) {
        const r = await exit(args, full);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.stderr).toBe(
          `${args[0] === 'bench' ? 'pvblk bench' : 'pvblk'}: write error: no space left on device\n`,
        );
      }
    } finally {
      closeSync(full);
    }
    for (const args of [['--help'], ['bench', '--help']]) {
      const r = await exit(args, 'pipe');
      expect(r.code, args.join(' ')).toBe(141);
      expect(r.stderr).toBe('');
    }
  });

  it('says so at once when the host API closes every socket unanswered (it ended with status 0 and no word once)', async () => {
    // what the API does to a socket past its bounds, to every socket
    const server = createNetServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (server.address() as AddressInfo).port;
      const r = await pvblk(['xl', '--api', `http://127.0.0.1:${port}/`, 'list'], {
        env: { PVBLK_TOOLSTACK_TOKEN: 'some-operator-token' },
      });
      // at once: Node 20's fetch never settled here (the stranger's attack), and the command waited
      // for its 15 s bound; the client's node:http says the reset
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `pvblk: ECONNREFUSED: the host API at http://127.0.0.1:${port}/ does not answer (ECONNRESET): is the stack still running?\n`,
      );
    } finally {
      server.close();
    }
  }, 60_000);

  it('refuses a run dir others could have made or may write to: it holds the control sockets and the operator token', async () => {
    const open = join(tmp.path, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const link = join(tmp.path, 'link');
    symlinkSync(open, link);
    for (const [dir, problem] of [
      [open, 'may be written by any user (mode 777)'],
      [link, 'is a symbolic link'],
    ]) {
      const r = await pvblk(['run', '--memory', '--run-dir', dir, '--', 'true'], { env });
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        `pvblk: the run dir ${dir} ${problem}: it would hold this stack's control sockets and operator token; choose another with --run-dir or PVBLK_RUN_DIR\n`,
      );
      expect(readdirSync(open)).toEqual([]); // nothing was started or written there
    }
  });

  it('refuses a bad --disk and a bad PVBLK_LOG_LEVEL before anything starts, naming what was wrong', async () => {
    const disk = await pvblk(['run', '--memory', '--run-dir', runDir, '--disk', 'dif=7', '--', 'true'], {
      env,
    });
    expect(disk.stderr).toBe('pvblk: disk parameter "dif": must be 0, 1, 2 or 3 (got 7)\n');
    expect(disk.stdout).toBe(''); // no process was started: none of them logged a line
    expect(disk.code).toBe(2);
    expect(existsSync(runDir)).toBe(false);

    // a partition past the end of the disks it would create: refused before anything starts, too
    const part = await pvblk(
      [
        'run',
        '--memory',
        '--run-dir',
        runDir,
        '--disk',
        'dev_size_mb=4',
        '--partition-start',
        '8192',
        '--',
        'true',
      ],
      { env },
    );
    expect(part.stderr).toBe(
      'pvblk: --partition-start 8192 is past the last logical block (8192 sectors, 512-byte blocks) of --disk "dev_size_mb=4"\n',
    );
    expect(part.stdout).toBe('');
    expect(part.code).toBe(2);
    expect(existsSync(runDir)).toBe(false);

    const level = await pvblk(['run', '--memory', '--run-dir', runDir, '--', 'true'], {
      env: { ...env, PVBLK_LOG_LEVEL: 'bogus' },
    });
    expect(level.stderr).toBe(
      'pvblk: PVBLK_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "bogus")\n',
    );
    expect(level.code).toBe(2);
    const quiet = await pvblk(['run', '--memory', '--run-dir', runDir, '--', 'true'], {
      env: { ...env, PVBLK_LOG_LEVEL: 'warn' },
    });
    expect(quiet.stderr).toBe(
      'pvblk: PVBLK_LOG_LEVEL=warn would hide the records `pvblk run` starts its processes by; use info, debug or trace\n',
    );
    expect(quiet.code).toBe(2);
  });

  it('PVBLK_DATA_DIR is where `pvblk run` keeps disks; --fresh and `pvblk disks rm` reset them', async () => {
    const data = join(tmp.path, 'data');
    const size = (disk: string, extra: string[] = []) =>
      pvblk(
        ['run', '--run-dir', runDir, '--disk', disk, ...extra, '--', 'blockdev', '--getsize64', '/dev/xvda'],
        {
          env: { ...env, PVBLK_DATA_DIR: data },
        },
      );
    const first = await size('dev_size_mb=16');
    expect(first.stdout).toBe('guest | 16777216\n');
    expect(readdirSync(data).sort()).toEqual(['disks', 'disks.json']);
    const ls = await pvblk(['disks', 'ls', '--data-dir', data], { env });
    expect(ls.stdout).toBe('guest\tdev_size_mb=16\n');

    const fresh = await size('dev_size_mb=4', ['--fresh']);
    expect(fresh.stdout).toBe('guest | 4194304\n');
    expect((await pvblk(['disks', 'ls', '--data-dir', data], { env })).stdout).toBe('guest\tdev_size_mb=4\n');

    const two = await pvblk(['run', '--guests', '2', '--run-dir', runDir, '--data-dir', data, '--', 'true'], {
      env,
    });
    expect(two.code).toBe(0);
    const rmOne = await pvblk(['disks', 'rm', '--data-dir', data, 'guest2'], { env });
    expect(rmOne.stdout).toBe('pvblk: removed the disks of guest2\n');
    expect((await pvblk(['disks', 'ls', '--data-dir', data], { env })).stdout).toBe(
      'guest\tdev_size_mb=4\nguest1\t(defaults)\n',
    );
    // guest1 and guest2 were created at once, in either order: two disks (image and header) are left
    expect(readdirSync(join(data, 'disks'))).toHaveLength(4);
    const unknown = await pvblk(['disks', 'rm', '--data-dir', data, 'nobody'], { env });
    expect(unknown.stderr).toBe(`pvblk: ENOENT: no disk for nobody in ${data} (disks: guest, guest1)\n`);
    const rmAll = await pvblk(['disks', 'rm', '--data-dir', data], { env });
    expect(rmAll.stdout).toBe('pvblk: removed the disks of guest, guest1\n');
    expect(readdirSync(data)).toEqual([]);
  });

  it("the `up` banner's command works as printed", async () => {
    const up = startPvblk(['up', '--memory', '--run-dir', runDir], { env, cwd: ROOT });
    started.push(up);
    const banner = await up.line((l) => l.startsWith('pvblk: up. In another terminal: '));
    const cmd = banner.slice('pvblk: up. In another terminal: '.length);
    // `npx pvblk` when this test itself runs under npx, else the entry point by its path
    expect(cmd).toMatch(/^(npx pvblk|node bin\/pvblk\.mjs) guest /);
    expect(cmd.endsWith(` guest --run-dir ${runDir} dd if=/dev/zero of=/dev/xvda bs=4096 count=16`)).toBe(
      true,
    );
    const r = spawnSync('sh', ['-c', cmd], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
    expect(r.stderr.split('\n').slice(0, 2)).toEqual(['16+0 records in', '16+0 records out']);
    expect(r.status).toBe(0);
    const down = await up.line((l) => l.startsWith('pvblk: Ctrl-C here or '));
    const downCmd = /`([^`]+)`/.exec(down)![1];
    expect(spawnSync('sh', ['-c', downCmd], { cwd: ROOT, env: { ...process.env, ...env } }).status).toBe(0);
    expect((await up.exited).code).toBe(0);
  });
});
