/**
 * What the Docker tests share: finding an engine (and compose), running docker commands with a
 * deadline, the Node base image, waiting on conditions, and the seed transcript.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { processRuns } from '../../src/cli/lock.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function ok(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 20_000 });
  return r.status === 0;
}

/** Why there is no usable Docker engine here, or null when there is one. */
export function noEngine(): string | null {
  if (!ok('docker', ['--version'])) return 'the docker command is not installed';
  if (!ok('docker', ['info', '--format', '{{.ServerVersion}}']))
    return '`docker info` fails: no running Docker engine (run docker/ci-prepare.sh)';
  return null;
}

/** `docker compose` (v2) if present, else docker-compose (1.x); null with the reason when neither works. */
export function detectCompose(): { compose: string[] | null; reason: string | null } {
  const e = noEngine();
  if (e) return { compose: null, reason: e };
  if (ok('docker', ['compose', 'version'])) return { compose: ['docker', 'compose'], reason: null };
  if (ok('docker-compose', ['version', '--short'])) return { compose: ['docker-compose'], reason: null };
  return { compose: null, reason: 'neither `docker compose` nor docker-compose is installed' };
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv = {},
  input?: string,
): Promise<Result> {
  const started = Date.now();
  return new Promise((res) => {
    const child = execFile(
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
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

export async function runOk(
  cmd: string,
  args: string[],
  timeoutMs = 60_000,
  env: NodeJS.ProcessEnv = {},
): Promise<Result> {
  const r = await run(cmd, args, timeoutMs, env);
  if (r.code !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')} exited ${r.code}:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`,
    );
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls until check() returns a value (not undefined) or the deadline passes. On a timeout the error
 * carries what `explain` says about the state left (for a wait that failed only in a loaded run, the
 * state is all there is to go on afterwards).
 */
export async function until<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
  explain?: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) {
      const state = explain ? `\n${await explain().catch((e: Error) => `(cannot tell: ${e.message})`)}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${state}`);
    }
    await sleep(1000);
  }
}

/**
 * Where this test run's pids mean something: this boot of this machine's kernel and this pid
 * namespace, as 8 hex digits. The Docker tests put it into the names they make beside their pid, so
 * a run never judges a name made by a run in another pid namespace that shares the engine (a CI job
 * in a container with the host's socket, a second machine using the same engine) — there, the pid
 * says nothing about whether that run is alive. Without /proc (not Linux), the host name stands in.
 */
export function runHost(): string {
  let where: string;
  try {
    // the boot id tells machines (and boots) apart; the namespace's inode tells namespaces apart on
    // one boot (the initial namespace has the same inode on every machine, hence both)
    where = `${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()} ${readlinkSync('/proc/self/ns/pid')}`;
  } catch {
    where = hostname();
  }
  return createHash('sha256').update(where).digest('hex').slice(0, 8);
}

/**
 * The names matching `pattern` (its groups: the pid of the test run that made them, then the
 * runHost() it ran in) whose run is gone: a test run killed outright (a CI run cut short, SIGKILL)
 * cannot tear its stack down, and a stack left running — a hypervisor container and its health check
 * every few seconds — skews every later benchmark on the machine. Only names made where this run is
 * (`host`) are judged; this run's own pid is never stale; nor is a pid that runs again.
 */
export function staleRuns(names: Iterable<string>, pattern: RegExp, host = runHost()): string[] {
  const out = new Set<string>();
  for (const name of names) {
    const m = pattern.exec(name);
    if (!m || m[2] !== host) continue;
    const pid = Number(m[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || processRuns(pid)) continue;
    out.add(name);
  }
  return [...out];
}

/** The compose projects that own containers or volumes on this engine. */
export async function composeProjects(): Promise<string[]> {
  const label = '{{.Label "com.docker.compose.project"}}';
  const [ps, vol] = await Promise.all([
    run('docker', ['ps', '-a', '--filter', 'label=com.docker.compose.project', '--format', label], 30_000),
    run(
      'docker',
      ['volume', 'ls', '--filter', 'label=com.docker.compose.project', '--format', label],
      30_000,
    ),
  ]);
  return [...ps.stdout.split('\n'), ...vol.stdout.split('\n')].map((l) => l.trim()).filter(Boolean);
}

/** The Node base image: what docker/ci-prepare.sh chose, else node:22-slim, else a local one. */
export async function nodeImage(): Promise<string> {
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

/** The seed transcript: what the guest's dd prints, and the host's console lines for the same error. */
export const GUEST_SEED = [
  'end_request: I/O error, dev xvda, sector 4656',
  "dd: writing to `/dev/xvda': Input/output error",
  '4657+0 records in',
  '4656+0 records out',
  '2383872 bytes (2.4 MB) copied',
];
export const HOST_SEED = [
  'Sense Key : Medium Error [current]',
  'Info fld=0x1234',
  'sd 9:0:0:0 [sdg]',
  'Add. Sense: Unrecovered read error',
  'sd 9:0:0:0 [sdg] CDB:',
  'Read(10): 28 20 00 00 12 30 00 00 08 00',
  'end_request: critical target error, dev sdg, sector 4656',
];

/** Asserts the lines appear in this order (each after the previous one). */
export function expectInOrder(text: string, lines: string[]): void {
  let at = 0;
  for (const l of lines) {
    const i = text.indexOf(l, at);
    expect(i, `"${l}" after offset ${at} in:\n${text}`).toBeGreaterThanOrEqual(0);
    at = i + l.length;
  }
}

/** The host's console lines, each as dmesg prints it: [    t.tttttt] text. */
export function expectKernelFormat(text: string, lines: string[]): void {
  for (const l of lines)
    expect(text).toMatch(new RegExp(`\\[\\s*\\d+\\.\\d{6}\\] ${l.replace(/[[\]().*+?^$\\|]/g, '\\$&')}`));
}

/** Splits a guest command as a user types it: separate arguments, or one line when it has ; & | >. */
export function guestArgv(line: string): string[] {
  return /[;&|>]/.test(line) ? [line] : line.split(/\s+/);
}
