/**
 * End to end through docker compose: the image from docker/Dockerfile, the stack of docker-compose.yml
 * (secrets, hypervisor, host, guest), the seed transcript from the guest's boot workload, `exec` into a
 * guest, scaling, and data that survives `down` + `up`.
 *
 * Skipped (and reported as skipped) when there is no working Docker engine or no compose; on CI,
 * docker/ci-prepare.sh installs and starts both first and picks the Node base image
 * (.ci/out/node-image). Every docker command is bounded by a timeout; the project is torn down with
 * `down -v` whatever happens.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PROJECT = `pvblk-test-${process.pid}`;

/** `docker compose` (v2) if present, else docker-compose (1.x); null with the reason when neither works. */
function detect(): { compose: string[] | null; reason: string | null } {
  const ok = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 20_000 });
    return r.status === 0;
  };
  if (!ok('docker', ['--version'])) return { compose: null, reason: 'the docker command is not installed' };
  if (!ok('docker', ['info', '--format', '{{.ServerVersion}}']))
    return {
      compose: null,
      reason: '`docker info` fails: no running Docker engine (run docker/ci-prepare.sh)',
    };
  if (ok('docker', ['compose', 'version'])) return { compose: ['docker', 'compose'], reason: null };
  if (ok('docker-compose', ['version', '--short'])) return { compose: ['docker-compose'], reason: null };
  return { compose: null, reason: 'neither `docker compose` nor docker-compose is installed' };
}

const { compose, reason } = detect();
if (reason) console.warn(`test/docker/compose.test.ts skipped: ${reason}`);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(cmd: string, args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = {}): Promise<Result> {
  const started = Date.now();
  return new Promise((res) => {
    execFile(
      cmd,
      args,
      {
        cwd: ROOT,
        env: { ...process.env, ...env },
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 124) : 0;
        res({
          code,
          stdout,
          stderr: stderr + (err && err.killed ? `\n(killed after ${timeoutMs} ms)` : ''),
          ms: Date.now() - started,
        });
      },
    );
  });
}

/** The same settings for every compose command of the test: one stack, the seed's disk and workload. */
const ENV: NodeJS.ProcessEnv = {
  PVBLK_DISK: 'dif=1 opts=34',
  PVBLK_WORKLOAD: 'dd if=/dev/zero of=/dev/xvda',
  PVBLK_GUEST_NAME: '@replica',
  COMPOSE_PROJECT_NAME: PROJECT,
};

function dc(args: string[], timeoutMs = 60_000): Promise<Result> {
  return run(compose![0], [...compose!.slice(1), '-p', PROJECT, ...args], timeoutMs, ENV);
}

async function dcOk(args: string[], timeoutMs = 60_000): Promise<Result> {
  const r = await dc(args, timeoutMs);
  if (r.code !== 0) {
    throw new Error(
      `compose ${args.join(' ')} exited ${r.code}:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`,
    );
  }
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until check() returns a value (not undefined) or the deadline passes. */
async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(1000);
  }
}

/** Waits until `count` containers of a service report healthy. */
async function healthy(service: string, count: number, timeoutMs = 90_000): Promise<void> {
  await until(`${count} healthy ${service} container(s)`, timeoutMs, async () => {
    const ids = (await dc(['ps', '-q', service], 30_000)).stdout.split('\n').filter(Boolean);
    if (ids.length !== count) return undefined;
    const r = await run('docker', ['inspect', '--format', '{{.State.Health.Status}}', ...ids], 30_000);
    const states = r.stdout.split('\n').filter(Boolean);
    return states.length === count && states.every((s) => s === 'healthy') ? true : undefined;
  });
}

async function logs(service: string): Promise<string> {
  return (await dcOk(['logs', '--no-color', service], 60_000)).stdout;
}

/**
 * Runs a command in a guest through `pvblk guest`: a simple command as separate arguments (as a user
 * types it), a command line with ; && || > as one argument.
 */
function guest(line: string, index = 1): Promise<Result> {
  const argv = /[;&|>]/.test(line) ? [line] : line.split(/\s+/);
  return dc(['exec', '-T', `--index=${index}`, 'guest', 'pvblk', 'guest', ...argv], 60_000);
}

/** The Node base image: what docker/ci-prepare.sh chose, else node:22-slim, else a local one. */
async function nodeImage(): Promise<string> {
  const file = join(ROOT, '.ci/out/node-image');
  if (existsSync(file)) {
    const tag = readFileSync(file, 'utf8').trim();
    if (tag && (await run('docker', ['image', 'inspect', tag], 30_000)).code === 0) return tag;
  }
  if ((await run('docker', ['image', 'inspect', 'node:22-slim'], 30_000)).code === 0) return 'node:22-slim';
  if ((await run('docker', ['pull', '-q', 'node:22-slim'], 120_000)).code === 0) return 'node:22-slim';
  const local = await run('bash', ['docker/local-base-image.sh'], 300_000);
  const tag = local.stdout.trim().split('\n').at(-1) ?? '';
  if (local.code !== 0 || !tag) throw new Error(`no Node base image: ${local.stderr.slice(-2000)}`);
  return tag;
}

const GUEST_SEED = [
  'end_request: I/O error, dev xvda, sector 4656',
  "dd: writing to `/dev/xvda': Input/output error",
  '4657+0 records in',
  '4656+0 records out',
  '2383872 bytes (2.4 MB) copied',
];
const HOST_SEED = [
  'Sense Key : Medium Error [current]',
  'Info fld=0x1234',
  'sd 9:0:0:0 [sdg]',
  'Add. Sense: Unrecovered read error',
  'sd 9:0:0:0 [sdg] CDB:',
  'Read(10): 28 20 00 00 12 30 00 00 08 00',
  'end_request: critical target error, dev sdg, sector 4656',
];

/** Asserts the lines appear in this order (each after the previous one). */
function expectInOrder(text: string, lines: string[]): void {
  let at = 0;
  for (const l of lines) {
    const i = text.indexOf(l, at);
    expect(i, `"${l}" after offset ${at} in:\n${text}`).toBeGreaterThanOrEqual(0);
    at = i + l.length;
  }
}

describe.skipIf(compose === null)('docker compose: the pvblk stack in containers', () => {
  let torn = false;

  beforeAll(async () => {
    const image = await nodeImage();
    ENV.NODE_IMAGE = image;
    await dc(['down', '-v', '--remove-orphans'], 60_000); // leftovers of a killed run with this pid
    const b = await dcOk(['build'], 600_000);
    console.warn(`docker test: built with NODE_IMAGE=${image} in ${(b.ms / 1000).toFixed(1)} s`);
  }, 900_000);

  afterAll(async () => {
    if (!torn && compose) {
      const r = await dc(['down', '-v', '--remove-orphans', '--timeout', '5'], 90_000);
      if (r.code !== 0) console.warn(`docker test: teardown failed: ${r.stderr.slice(-1000)}`);
    }
  }, 120_000);

  it("boots the stack; the guest's boot workload and the host print the seed transcript", async () => {
    await dcOk(['up', '-d'], 180_000);
    await healthy('guest', 1);
    const guestLog = await until('the guest workload to finish', 90_000, async () => {
      const l = await logs('guest');
      return l.includes('workload finished') ? l : undefined;
    });
    expectInOrder(guestLog, GUEST_SEED);
    // kernel messages are printed as dmesg would: [    t.tttttt] text
    expect(guestLog).toMatch(/\[\s*\d+\.\d{6}\] end_request: I\/O error, dev xvda, sector 4656/);
    const hostLog = await until('the host console lines', 30_000, async () => {
      const l = await logs('host');
      return l.includes(HOST_SEED.at(-1)!) ? l : undefined;
    });
    expectInOrder(hostLog, HOST_SEED);
    for (const l of HOST_SEED)
      expect(hostLog).toMatch(
        new RegExp(`\\[\\s*\\d+\\.\\d{6}\\] ${l.replace(/[[\]().*+?^$\\|]/g, '\\$&')}`),
      );
    // the generated credentials: in their volumes, not in any log; a guest sees only its token
    const hv = await logs('hypervisor');
    expect(hv).toContain('hypervisor listening on ws://0.0.0.0:7480/');
    const secret = (await dcOk(['exec', '-T', 'host', 'cat', '/secrets/dom0/secret'])).stdout.trim();
    expect(secret.length).toBeGreaterThanOrEqual(16);
    for (const l of [hv, hostLog, guestLog]) expect(l).not.toContain(secret);
    const seen = await dc([
      'exec',
      '-T',
      'guest',
      'node',
      '-e',
      "process.exit(require('fs').existsSync('/secrets/dom0/secret') ? 1 : 0)",
    ]);
    expect(seen.code, 'a guest must not see the Dom0 secret').toBe(0);
  });

  it('`exec guest pvblk guest dd …` runs a command in the running guest', async () => {
    const r = await guest('dd if=/dev/zero of=/dev/xvda bs=4096 count=16 oflag=direct');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toContain('16+0 records out');
    expect(r.stdout + r.stderr).toContain('65536 bytes (66 kB) copied');
  });

  it('scales to two guests, each its own domain with its own disk', async () => {
    await dcOk(['up', '-d', '--scale', 'guest=2'], 180_000);
    await healthy('guest', 2);
    const r = await dcOk([
      'exec',
      '-T',
      'hypervisor',
      'node',
      '-e',
      "fetch('http://127.0.0.1:7480/status').then(r => r.json()).then(s => console.log(JSON.stringify(s.domains)))",
    ]);
    const domains = JSON.parse(r.stdout.trim()) as { domid: number; name: string; connected: boolean }[];
    expect(domains.length).toBeGreaterThanOrEqual(3);
    const guests = domains.filter((d) => d.domid !== 0 && d.connected);
    expect(guests.map((d) => d.name).sort()).toEqual(['guest1', 'guest2']);
    const second = await guest('dd if=/dev/zero of=/dev/xvda bs=4096 count=4 oflag=direct', 2);
    expect(second.code, second.stderr).toBe(0);
  });

  it('keeps the disks across `down` and `up` (named volume, stable guest names)', async () => {
    // beyond sector 4656, where the boot workload's dd stops (it runs again at the next boot)
    const where = 'bs=4096 count=16 seek=1500';
    const w = await guest(
      `dd if=/dev/urandom of=/tmp/p bs=4096 count=16 && dd if=/tmp/p of=/dev/xvda ${where} oflag=direct conv=fsync && md5sum /tmp/p`,
    );
    expect(w.code, w.stderr).toBe(0);
    const sum = /^([0-9a-f]{32}) {2}\/tmp\/p$/m.exec(w.stdout)?.[1];
    expect(sum, w.stdout).toBeDefined();
    await dcOk(['down'], 90_000);
    await dcOk(['up', '-d'], 180_000);
    await healthy('guest', 1);
    const r = await guest(
      `dd if=/dev/xvda of=/tmp/p ${where.replace('seek', 'skip')} iflag=direct && md5sum /tmp/p`,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${sum}  /tmp/p`);
  });

  it('`down -v` stops everything quickly', async () => {
    const r = await dcOk(['down', '-v', '--remove-orphans'], 90_000);
    torn = true;
    console.warn(`docker test: down -v took ${(r.ms / 1000).toFixed(1)} s`);
    expect(r.ms).toBeLessThan(15_000);
    const left = await dc(['ps', '-q'], 30_000);
    expect(left.stdout.trim()).toBe('');
  });
});
