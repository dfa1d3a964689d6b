/**
 * Helpers shared by the benchmark scripts: order statistics, the machine description every result
 * file carries, the CPU other processes used meanwhile, a fixed-width table printer, the JSON writer
 * for bench/results/ (its contents git-ignored), and a runner for `pvblk bench` (the scripts measure through it).
 *
 * Benchmarks are scripts, not tests: they print and record figures, they do not assert on them.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createRequire } from 'node:module';
import { tcpCongestionControl } from '../src/cli/bench-tcp.ts';

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
  /** This network namespace's TCP congestion control: bbr paces every loopback flow (src/cli/bench-tcp.ts). */
  tcpCongestionControl: string | null;
}

export function machineInfo(): MachineInfo {
  const c = cpus();
  return {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    tcpCongestionControl: tcpCongestionControl(),
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
// pvblk bench

const PVBLK = fileURLToPath(new URL('../bin/pvblk.mjs', import.meta.url));

/** Runs `pvblk bench <args> --output-format=json` and returns its parsed JSON (a sweep has `sweep`). */
export async function pvblkBench(args: string[]): Promise<BenchJson> {
  return (await pvblkBenchRun(args)).json;
}

/**
 * `pvblkBench` with variables added to its environment, returning its console (stderr: the stack's
 * processes' lines that are not log records, each after its `name |`) with the JSON.
 */
export function pvblkBenchRun(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ json: BenchJson; console: string }> {
  return new Promise((resolve, reject) => {
    // the format first: fio shows the line of a job added before it (a job is added when the next
    // one's --name comes), which would come before the JSON
    const p = spawn(process.execPath, [PVBLK, 'bench', '--output-format=json', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d));
    p.stderr.on('data', (d: Buffer) => (err += d));
    p.on('exit', (code) => {
      if (code !== 0)
        return reject(new Error(`pvblk bench ${args.join(' ')} exited ${code}: ${err.slice(-2000)}`));
      try {
        resolve({ json: JSON.parse(out) as BenchJson, console: err });
      } catch (e) {
        reject(new Error(`pvblk bench printed no JSON: ${(e as Error).message}; ${err.slice(-500)}`));
      }
    });
  });
}

/** The parts of `pvblk bench`'s JSON the scripts read. */
export interface BenchDir {
  iops: number;
  bw_bytes: number;
  total_ios: number;
  clat_ns: { mean: number; percentile: Record<string, number> };
  lat_ns: { mean: number };
}

export interface BenchJob {
  jobname: string;
  read: BenchDir;
  write: BenchDir;
  pvblk: {
    relay?: {
      iops: number;
      bw_bytes: number;
      rtt_ns: Record<string, number>;
      // lat: absent from JSON written before the bench compared it
      ratio: { iops: number; bw: number; clat: Record<string, number>; lat?: Record<string, number> };
    };
    ring_occupancy: { mean: number; max: number };
  };
}

export interface BenchPointJson {
  jobs: BenchJob[];
  pvblk: {
    point: Record<string, string>;
    guests: Array<{
      per_request: Record<string, number>;
      blkback: Record<string, number> | null;
      broker: Record<string, number> | null;
    }>;
    memory: Array<
      {
        name: string;
        samples: number;
        firstBytes: number;
        lastBytes: number;
        maxBytes: number;
        slopeMiBPerMin: number | null;
        series: Array<[number, number]>;
      } & ProcessCpuJson
    >;
    stages: unknown;
    /** CPU per I/O of all pvblk's processes and (with --baseline) of all the relay's. */
    cpu_per_io_us?: { pvblk: CpuPerIoJson | null; relay: CpuPerIoJson | null };
    /** With --baseline: the relay's processes' CPU, and its client's I/Os. */
    relay_cpu?: ProcessCpuJson[];
    relay?: { guest?: { ios: number } };
    /** The machine's CPU while each side ran (busy, and stolen by the hypervisor under a VM). */
    machine?: { pvblk: MachineJson | null; relay: MachineJson | null };
    /** What TCP did in the namespace while each side ran (src/cli/bench-tcp.ts). */
    tcp?: { pvblk: TcpJson | null; relay: TcpJson | null };
  };
}

/** `pvblk.tcp.*` of `pvblk bench --output-format=json` (the counts a side's run added). */
export interface TcpJson {
  out_segs: number;
  retrans_segs: number;
  ofo_queue: number;
}

/** `pvblk.machine.*` of `pvblk bench --output-format=json`. */
export interface MachineJson {
  cpu_seconds: number;
  busy_pct: number;
  steal_pct: number;
}

/** One process's CPU over its measured run (null when /proc could not be read). */
export interface ProcessCpuJson {
  name: string;
  cpuSeconds: number | null;
  cpuUserSeconds: number | null;
}

/** CPU per I/O (µs): in all, in user mode, in the kernel. */
export interface CpuPerIoJson {
  us: number;
  userUs: number;
  systemUs: number;
}

export type BenchJson = BenchPointJson | { sweep: BenchPointJson[] };

export function points(j: BenchJson): BenchPointJson[] {
  return 'sweep' in j ? j.sweep : [j];
}

/** The relay's round-trip p50 in µs; null without a relay or without a p50 in the percentile list. */
function rttP50us(rel: BenchJob['pvblk']['relay']): number | null {
  const v = rel?.rtt_ns.p50;
  return typeof v === 'number' && Number.isFinite(v) ? v / 1000 : null;
}

/**
 * pvblk's lat p50 in µs from a job's comparison with the relay: fio's JSON has lat percentiles only
 * with lat_percentiles=1, the comparison has the ratio to the round trip.
 */
function latP50us(rel: BenchJob['pvblk']['relay']): number | null {
  const rtt = rttP50us(rel);
  const r = rel?.ratio.lat?.p50;
  return rtt !== null && typeof r === 'number' && Number.isFinite(r) ? r * rtt : null;
}

/** The figures of a point, over all its jobs and both directions. */
export function figures(p: BenchPointJson): {
  iops: number;
  mibps: number;
  clatP50us: number;
  clatP99us: number;
  relayIops: number | null;
  relayMibps: number | null;
  relayRttP50us: number | null;
  /**
   * fio's lat p50 (issue → completion), the span the relay's round trip covers, as the first job's
   * comparison with the relay has it (that guest's jobs merged; all guests' under group_reporting);
   * null without a relay or without a p50 in the percentile list.
   */
  latP50us: number | null;
  notifyPerRequest: number;
  notifyToBackend: number;
  notifyToGuest: number;
  requestsPerIo: number;
  grantOpsPerRequest: number;
  /** Hypercalls answered by the broker (round trips through it) per ring request, both domains. */
  roundTripsPerRequest: number;
  cpuPerIoUs: number | null;
  relayCpuPerIoUs: number | null;
  cpuUserPerIoUs: number | null;
  relayCpuUserPerIoUs: number | null;
  cpuSystemPerIoUs: number | null;
  relayCpuSystemPerIoUs: number | null;
  stealPct: number | null;
  relayStealPct: number | null;
  /** Segments received out of order and segments resent, per 1000 I/Os of the side's run. */
  ofoPerKio: number | null;
  relayOfoPerKio: number | null;
  retransPerKio: number | null;
  relayRetransPerKio: number | null;
} {
  const dirs = p.jobs.flatMap((j) => [j.read, j.write]).filter((d) => d.total_ios > 0);
  const iops = dirs.reduce((a, d) => a + d.iops, 0);
  const bw = dirs.reduce((a, d) => a + d.bw_bytes, 0);
  const w = (k: string) =>
    dirs.reduce((a, d) => a + d.clat_ns.percentile[k] * d.total_ios, 0) /
    dirs.reduce((a, d) => a + d.total_ios, 0);
  const rel = p.jobs.map((j) => j.pvblk.relay).filter((r) => r);
  const g = p.pvblk.guests;
  const cpu = p.pvblk.cpu_per_io_us;
  const tcp = p.pvblk.tcp;
  const ios = dirs.reduce((a, d) => a + d.total_ios, 0);
  const relayIos = p.pvblk.relay?.guest?.ios ?? 0;
  const per = (k: string) =>
    g.reduce((a, x) => a + x.per_request[k] * x.per_request.requests, 0) /
    Math.max(
      1,
      g.reduce((a, x) => a + x.per_request.requests, 0),
    );
  return {
    iops,
    mibps: bw / 1048576,
    clatP50us: w('50.000000') / 1000,
    clatP99us: w('99.000000') / 1000,
    relayIops: rel.length ? rel.reduce((a, r) => a + r!.iops, 0) : null,
    relayMibps: rel.length ? rel.reduce((a, r) => a + r!.bw_bytes, 0) / 1048576 : null,
    relayRttP50us: rttP50us(rel[0]),
    latP50us: latP50us(rel[0]),
    notifyToBackend: per('notificationsToBackend'),
    notifyToGuest: per('notificationsToGuest'),
    notifyPerRequest: per('notificationsToBackend') + per('notificationsToGuest'),
    requestsPerIo: per('requestsPerIo'),
    grantOpsPerRequest: per('grantOpsGuest') + per('grantOpsBackend'),
    roundTripsPerRequest: per('callsGuest') + per('callsBackend'),
    cpuPerIoUs: cpu?.pvblk?.us ?? null,
    relayCpuPerIoUs: cpu?.relay?.us ?? null,
    cpuUserPerIoUs: cpu?.pvblk?.userUs ?? null,
    relayCpuUserPerIoUs: cpu?.relay?.userUs ?? null,
    cpuSystemPerIoUs: cpu?.pvblk?.systemUs ?? null,
    relayCpuSystemPerIoUs: cpu?.relay?.systemUs ?? null,
    stealPct: p.pvblk.machine?.pvblk?.steal_pct ?? null,
    relayStealPct: p.pvblk.machine?.relay?.steal_pct ?? null,
    ofoPerKio: perKio(tcp?.pvblk?.ofo_queue, ios),
    relayOfoPerKio: perKio(tcp?.relay?.ofo_queue, relayIos),
    retransPerKio: perKio(tcp?.pvblk?.retrans_segs, ios),
    relayRetransPerKio: perKio(tcp?.relay?.retrans_segs, relayIos),
  };
}

function perKio(n: number | undefined, ios: number): number | null {
  return n === undefined || ios <= 0 ? null : (1000 * n) / ios;
}

export const quick = process.argv.includes('--quick');

/**
 * The running script's own header comment, which says how it is run: what `--help` prints. Every
 * script imports this module before its own code runs, so `--help` prints and exits before a
 * benchmark starts (it used to start one, whatever the argument).
 */
export function scriptUsage(script: string): string {
  const head = /^\/\*\*\n([\s\S]*?)\n \*\//.exec(readFileSync(script, 'utf8'));
  return head ? head[1].replace(/^ \* ?/gm, '') + '\n' : `${script}: no usage\n`;
}

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(scriptUsage(process.argv[1]));
  process.exit(0);
}

/** One of the job shapes issue 10's goals are set for (bench/end-to-end.ts, bench/drivers.ts). */
export interface GoalConfig {
  /** Key of its figures in the results. */
  id: string;
  what: string;
  /** fio's job name. */
  job: string;
  rw: 'randwrite' | 'write' | 'read';
  bs: string;
  iodepth: number;
  /** With protection information (`--pi`: the disk's dif=1 dix=1 and blkif's integrity requests). */
  pi: boolean;
}

export const GOAL_CONFIGS: readonly GoalConfig[] = [
  { id: 'qd1', what: '4 KiB randwrite QD1', job: 'qd1', rw: 'randwrite', bs: '4k', iodepth: 1, pi: false },
  {
    id: 'qd32',
    what: '4 KiB randwrite QD32',
    job: 'qd32',
    rw: 'randwrite',
    bs: '4k',
    iodepth: 32,
    pi: false,
  },
  {
    id: 'qd32pi',
    what: '4 KiB randwrite QD32, PI',
    job: 'qd32pi',
    rw: 'randwrite',
    bs: '4k',
    iodepth: 32,
    pi: true,
  },
  { id: 'seq128w', what: '128 KiB write QD8', job: 'seqw', rw: 'write', bs: '128k', iodepth: 8, pi: false },
  { id: 'seq128r', what: '128 KiB read QD8', job: 'seqr', rw: 'read', bs: '128k', iodepth: 8, pi: false },
];

/** A configuration's job options for `pvblk bench`. */
export function goalJobArgs(c: GoalConfig): string[] {
  return [
    `--name=${c.job}`,
    `--rw=${c.rw}`,
    `--bs=${c.bs}`,
    `--iodepth=${c.iodepth}`,
    ...(c.pi ? ['--pi'] : []),
  ];
}

/**
 * An integer option of this script (`--name N` or `--name=N`), `dflt` when absent; anything but an
 * integer from 1 to `max` ends the script with a message naming the option (status 2).
 */
export function intArg(name: string, dflt: number, max = Number.MAX_SAFE_INTEGER): number {
  const a = process.argv;
  const i = a.indexOf(`--${name}`);
  const raw = i >= 0 ? a[i + 1] : a.find((x) => x.startsWith(`--${name}=`))?.slice(name.length + 3);
  if (raw === undefined) return dflt;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 1 || v > max) {
    const want = max === Number.MAX_SAFE_INTEGER ? 'a positive integer' : `an integer from 1 to ${max}`;
    process.stderr.write(`--${name} must be ${want} (got ${raw})\n`);
    process.exit(2);
  }
  return v;
}
