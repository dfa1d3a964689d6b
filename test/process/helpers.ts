/**
 * Helpers for cross-process tests: run the real `pvblk` command, or start individual processes
 * (hypervisor, host, guest) the way `pvblk up` does, each a child process talking over real sockets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
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
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [PVBLK, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
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
  const proc = spawn(process.execPath, [PVBLK, ...args], {
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
        void exited.then((code) =>
          reject(new Error(`${name} exited (${code}) while waited on; stderr: ${stderr.slice(-2000)}`)),
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
        ['domu', '--name', name, '--hypervisor', url, '--toolstack', api, '--control', socket, ...args],
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
