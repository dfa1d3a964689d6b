/**
 * Helpers for cross-process tests: run the real `pvblk` command, or start individual processes
 * (hypervisor, host, guest) the way `pvblk up` does, each a child process talking over real sockets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { deriveGuestToken } from '@pvblk/runtime';

export const PVBLK = fileURLToPath(new URL('../../bin/pvblk.mjs', import.meta.url));

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `pvblk <args>` to completion. */
export function pvblk(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [PVBLK, ...args], {
      env: { ...process.env, ...opts.env },
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A `pvblk` process followed line by line while it runs. */
export interface Running {
  proc: ChildProcess;
  /** Lines of stdout and stderr so far, in the order they arrived. */
  out: string[];
  /** Resolves with the first line (already seen or future) that matches. */
  line(pred: (l: string) => boolean, ms?: number): Promise<string>;
  /** The exit, as a shell reports it (128 + signal number for a signal). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `pvblk <args>`; `detached` gives it its own process group, so a test can send the group a
 * signal as a terminal's Ctrl-C does (`process.kill(-pid, 'SIGINT')`).
 */
export function startPvblk(
  args: string[],
  opts: { env?: Record<string, string>; detached?: boolean; cwd?: string } = {},
): Running {
  const proc = spawn(process.execPath, [PVBLK, ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.detached ?? false,
    cwd: opts.cwd,
  });
  const out: string[] = [];
  const waiters: Array<{ pred: (l: string) => boolean; resolve: (l: string) => void }> = [];
  const take = (l: string) => {
    out.push(l);
    for (const w of [...waiters])
      if (w.pred(l)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(l);
      }
  };
  createInterface({ input: proc.stdout! }).on('line', take);
  createInterface({ input: proc.stderr! }).on('line', take);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    proc.on('close', (code, signal) => res({ code, signal })),
  );
  return {
    proc,
    out,
    exited,
    line(pred, ms = 60_000) {
      const hit = out.find(pred);
      if (hit !== undefined) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`no such line within ${ms} ms; output so far:\n${out.join('\n')}`)),
          ms,
        );
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(t);
            resolve(l);
          },
        });
        void exited.then(() =>
          setImmediate(() => reject(new Error(`pvblk exited; output:\n${out.join('\n')}`))),
        );
      });
    },
  };
}

/** A process that has exited (a zombie not yet reaped by its new parent counts as gone). */
export function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z';
  } catch {
    return true;
  }
}

/** A process's environment as the kernel holds it (`/proc/<pid>/environ`). */
export function environOf(pid: number): Record<string, string> {
  return Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
}

/** Waits until `cond` holds, checking every few milliseconds; returns how long it took. */
export async function waitUntil(cond: () => boolean, ms: number, what: string): Promise<number> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - t0;
}

/** The stack described by the lock in a run dir (pids of its processes, sockets). */
export function stackInfo(runDir: string): {
  pid: number;
  processes?: Array<{ name: string; pid: number }>;
} {
  return JSON.parse(readFileSync(join(runDir, 'pvblk.lock'), 'utf8')) as {
    pid: number;
    processes?: Array<{ name: string; pid: number }>;
  };
}

/** Lines of one process's output in `pvblk run`, without the `name | ` prefix. */
export function linesOf(stdout: string, name: string): string[] {
  const out: string[] = [];
  for (const l of stdout.split('\n')) {
    const m = /^(\S+)\s*\| (.*)$/.exec(l);
    if (m && m[1] === name) out.push(m[2]);
  }
  return out;
}

/** Replaces dmesg timestamps, dd's time and rate with placeholders so lines compare exactly. */
export function normalise(line: string): string {
  return line
    .replace(/^\[\s*\d+\.\d{6}\] /, '[  …] ')
    .replace(/copied, [0-9.e+-]+ s, [0-9.]+ [kMG]?B\/s$/, 'copied, … s, … kB/s');
}

/** Empties `list`, signalling each process still running, and waits until every one has exited. */
export async function stopAll(list: Running[], signal: NodeJS.Signals): Promise<void> {
  for (const r of list.splice(0)) {
    if (r.proc.exitCode === null && r.proc.signalCode === null) r.proc.kill(signal);
    await r.exited;
  }
}

export function tempDir(prefix: string): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export type LogRecord = Record<string, unknown>;

export interface Proc {
  name: string;
  proc: ChildProcess;
  records: LogRecord[];
  /** Resolves with the first record matching the predicate (already logged or future). */
  waitFor(pred: (r: LogRecord) => boolean, ms?: number): Promise<LogRecord>;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts one `pvblk <role>` process with JSON logs. */
export function startProc(name: string, args: string[], env: Record<string, string> = {}): Proc {
  return watchProc(name, [PVBLK, ...args], env);
}

/** Starts a TypeScript script of the tests (a fixture process) with JSON logs, watched as startProc does. */
export function startScript(
  name: string,
  file: string,
  args: string[],
  env: Record<string, string> = {},
): Proc {
  return watchProc(name, ['--import', 'tsx', file, ...args], env);
}

/** A Node child with JSON logs on stdout: its records, waits on them, its exit. */
function watchProc(name: string, argv: string[], env: Record<string, string>): Proc {
  const proc = spawn(process.execPath, argv, {
    env: { ...process.env, PVBLK_LOG_FORMAT: 'json', PVBLK_LOG_LEVEL: 'debug', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const records: LogRecord[] = [];
  const waiters: Array<{ pred: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }> = [];
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    let r: LogRecord;
    try {
      r = JSON.parse(line) as LogRecord;
    } catch {
      r = { msg: line, text: true };
    }
    records.push(r);
    for (const w of [...waiters]) {
      if (w.pred(r)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(r);
      }
    }
  });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
  // 'exit' can come before the last lines of stdout are read; 'close' comes after the child's streams
  // have ended, when every record it wrote has been seen: a waiter gives up only then
  const closed = new Promise<number | null>((res) => proc.on('close', (code) => res(code)));
  return {
    name,
    proc,
    records,
    exited,
    waitFor(pred, ms = 30_000) {
      const hit = records.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () =>
            reject(new Error(`${name}: timed out waiting for a log record; stderr: ${stderr.slice(-2000)}`)),
          ms,
        );
        waiters.push({
          pred,
          resolve: (r) => {
            clearTimeout(t);
            resolve(r);
          },
        });
        void closed.then((code) =>
          reject(
            new Error(
              `${name} exited (${code}) while waited on; its last records: ${JSON.stringify(records.slice(-3))}; stderr: ${stderr.slice(-2000)}`,
            ),
          ),
        );
      });
    },
    kill(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

export const SECRETS = {
  PVBLK_DOM0_SECRET: 'process-test-dom0-secret',
  PVBLK_TOOLSTACK_TOKEN: 'process-test-toolstack-token',
};

/** Hypervisor + host, started as `pvblk up` does; guests are added with `guest()`. */
export async function startSystem(o: { disk?: string; dataDir?: string; hostArgs?: string[] } = {}) {
  const run = tempDir('pvblk-proc-');
  const hv = startProc('hypervisor', ['hypervisor', '--port', '0'], SECRETS);
  const url = String((await hv.waitFor((r) => r.event === 'ready')).url);
  const hostArgs = [
    'host',
    '--hypervisor',
    url,
    '--api-port',
    '0',
    '--disk',
    o.disk ?? '',
    ...(o.hostArgs ?? []),
  ];
  hostArgs.push(...(o.dataDir ? ['--data-dir', o.dataDir] : ['--memory']));
  let host = startProc('host', hostArgs, SECRETS);
  const api = String((await host.waitFor((r) => r.event === 'ready')).api);
  const procs: Proc[] = [hv, host];
  return {
    url,
    api,
    runDir: run.path,
    hypervisor: hv,
    get host() {
      return host;
    },
    async restartHost(signal: NodeJS.Signals = 'SIGKILL'): Promise<Proc> {
      await host.kill(signal);
      const portArgs = hostArgs.map((a, i) => (hostArgs[i - 1] === '--api-port' ? new URL(api).port : a));
      host = startProc('host', portArgs, SECRETS);
      procs.push(host);
      await host.waitFor((r) => r.event === 'ready');
      return host;
    },
    async guest(name: string, args: string[] = []): Promise<Proc & { socket: string }> {
      const socket = join(run.path, `${name}.sock`);
      const g = startProc(
        name,
        [
          'domu',
          '--name',
          name,
          '--hypervisor',
          url,
          '--toolstack',
          api,
          '--control',
          socket,
          '--root',
          join(run.path, `${name}.root`),
          ...args,
        ],
        // a guest holds its own token only, as under `pvblk up`
        { PVBLK_GUEST_TOKEN: deriveGuestToken(SECRETS.PVBLK_TOOLSTACK_TOKEN, name) },
      );
      procs.push(g);
      await g.waitFor((r) => r.event === 'ready');
      return Object.assign(g, { socket });
    },
    async stop() {
      for (const p of [...procs].reverse()) await p.kill('SIGTERM');
      run.cleanup();
    },
  };
}
