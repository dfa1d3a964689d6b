/**
 * Helpers shared by the benchmark scripts: order statistics, the machine description every result
 * file carries, a fixed-width table printer, the JSON writer for bench/results/ (git-ignored), and a
 * tiny request/response layer over a child process's IPC channel for multi-process benchmarks.
 *
 * Benchmarks are scripts, not tests: they print and record figures, they do not assert on them.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createRequire } from 'node:module';

// ---------------------------------------------------------------------------------------------
// statistics

/** The q-quantile (0..1) of `xs` by nearest rank; NaN for an empty list. Does not modify `xs`. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[rank];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export interface LatencySummary {
  n: number;
  p50: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** Summary of latency samples (any unit; the benchmarks use microseconds). */
export function summarize(samples: readonly number[]): LatencySummary {
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const x of samples) {
    sum += x;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  return {
    n: samples.length,
    p50: quantile(samples, 0.5),
    p99: quantile(samples, 0.99),
    mean: samples.length ? sum / samples.length : NaN,
    min,
    max,
  };
}

/** Microseconds elapsed since `t0` (a `process.hrtime.bigint()` reading). */
export function usSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1000;
}

/** Resolves in the check phase of the next event-loop turn. */
export const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

// ---------------------------------------------------------------------------------------------
// environment

export interface MachineInfo {
  node: string;
  platform: string;
  cpu: string;
  cores: number;
}

export function machineInfo(): MachineInfo {
  const c = cpus();
  return {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
  };
}

/**
 * Which masking implementation the `ws` package in this process uses. Client-to-server frames are
 * masked and every received client frame is unmasked; without a native helper ws does it in JS.
 * Call after `ws` has been loaded (it decides when lib/buffer-util.js is first required).
 */
export function wsMaskImplementation(): string {
  const req = createRequire(import.meta.url);
  const loaded = Object.keys(req.cache);
  if (!loaded.some((k) => /[\\/]ws[\\/]lib[\\/]buffer-util\.js$/.test(k))) return 'unknown (ws not loaded)';
  const http = req('node:http') as { websocketMask?: unknown };
  if (typeof http.websocketMask === 'function') return "native (node:http's websocketMask)";
  if (loaded.some((k) => /bufferutil[\\/].*\.node$/.test(k))) return 'bufferutil (native addon)';
  if (loaded.some((k) => /bufferutil[\\/]fallback\.js$/.test(k))) return 'bufferutil JS fallback (no addon)';
  if (process.env.WS_NO_BUFFER_UTIL) return 'JS (WS_NO_BUFFER_UTIL set)';
  return 'JS (bufferutil not installed)';
}

/** CPU time used so far by the whole machine and by the given processes (Linux; own = null elsewhere). */
export interface CpuSnapshot {
  at: number;
  machineBusyMs: number;
  ownMs: number | null;
}

export function cpuSnapshot(pids: number[]): CpuSnapshot {
  let machineBusyMs = 0;
  for (const c of cpus()) machineBusyMs += c.times.user + c.times.nice + c.times.sys + c.times.irq;
  let ownMs: number | null = 0;
  for (const pid of pids) {
    try {
      // fields after the parenthesised command name; utime and stime are fields 14 and 15 (in ticks)
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ownMs += ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
    } catch {
      ownMs = null;
      break;
    }
  }
  return { at: performance.now(), machineBusyMs, ownMs };
}

/** USER_HZ: 100 on every mainstream Linux configuration. */
const CLOCK_TICKS = 100;

/**
 * How much CPU other processes used between two snapshots, in cores (1.0 = one core fully busy).
 * Benchmarks here are sensitive to it: a number well above 0.1 means the figures are disturbed.
 */
export function foreignCores(a: CpuSnapshot, b: CpuSnapshot): number | null {
  if (a.ownMs === null || b.ownMs === null) return null;
  const wall = b.at - a.at;
  if (wall <= 0) return null;
  return Math.max(0, b.machineBusyMs - a.machineBusyMs - (b.ownMs - a.ownMs)) / wall;
}

// ---------------------------------------------------------------------------------------------
// output

/** Repository root's bench/results/, wherever the script is run from. */
export const RESULTS_DIR = new URL('./results/', import.meta.url);

/** Writes `bench/results/<name>.json` and returns its path. */
export function writeResults(name: string, report: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = new URL(`${name}.json`, RESULTS_DIR);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  return file.pathname;
}

/** Prints rows as a fixed-width table; the first column is left-aligned, the others right-aligned. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

export const sizeLabel = (n: number): string =>
  n >= 1024 * 1024 ? `${n / 1024 / 1024} MiB` : n >= 1024 ? `${n / 1024} KiB` : `${n} B`;

/** Formats a rate like 12345 as "12.3k". */
export const kilo = (x: number): string => (x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0));

// ---------------------------------------------------------------------------------------------
// IPC request/response between a benchmark driver and the child processes it forks

interface RpcRequest {
  rpc: number;
  cmd: string;
  args: unknown;
}
interface RpcReply {
  rpc: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

export interface RpcPeer {
  call<T>(cmd: string, args?: unknown, timeoutMs?: number): Promise<T>;
}

/** Driver side: calls commands served by `serveRpc` in a child forked with an IPC channel. */
export function rpcPeer(child: ChildProcess, name: string): RpcPeer {
  let next = 1;
  const pending = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>();
  child.on('message', (m: RpcReply) => {
    const p = pending.get(m.rpc);
    if (!p) return;
    pending.delete(m.rpc);
    if (m.ok) p.resolve(m.result);
    else p.reject(new Error(`${name}: ${m.error}`));
  });
  child.on('exit', (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`${name} exited (${code ?? signal})`));
    pending.clear();
  });
  return {
    call: <T>(cmd: string, args: unknown = {}, timeoutMs = 60_000) =>
      new Promise<T>((resolve, reject) => {
        const rpc = next++;
        const timer = setTimeout(() => {
          pending.delete(rpc);
          reject(new Error(`${name}: ${cmd} did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(rpc, {
          resolve: (r) => {
            clearTimeout(timer);
            resolve(r as T);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        child.send({ rpc, cmd, args } satisfies RpcRequest);
      }),
  };
}

/** Child side: answers the driver's calls; the process exits when the driver goes away. */
export function serveRpc(handlers: Record<string, (args: never) => unknown>): void {
  if (!process.send) throw new Error('this script is started by a benchmark driver (no IPC channel)');
  process.on('message', async (m: RpcRequest) => {
    const h = handlers[m.cmd];
    let reply: RpcReply;
    try {
      if (!h) throw new Error(`unknown command ${m.cmd}`);
      reply = { rpc: m.rpc, ok: true, result: await h(m.args as never) };
    } catch (e) {
      reply = { rpc: m.rpc, ok: false, error: (e as Error)?.stack ?? String(e) };
    }
    process.send!(reply);
  });
  process.on('disconnect', () => process.exit(0));
}
