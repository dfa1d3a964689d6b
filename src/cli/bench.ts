/**
 * `pvblk bench`: fio-shaped latency experiments on a stack of its own.
 *
 * For each point (one, or one per --sweep value) it starts — or keeps, when only job options change —
 * a hypervisor, a host and N guests exactly as `pvblk run` does (startStack/Supervisor), warms up, then
 * runs the job in every guest with the guest's own `fio` (the same parser, engine and statistics as
 * `pvblk guest fio`), while it samples every process's RSS and, around the run, reads the host-side
 * counters (the hypervisor's /status with the Dom0 secret, blkback's statistics from the host's API
 * with the operator token). With --trace it collects and joins every process's trace stamps, with
 * --baseline it runs the relay (bench-relay.ts) with the same job shape right after, and prints fio's
 * report with pvblk's figures (bench-report.ts); --plot draws them (bench-plot.ts).
 */
import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { closeSync, openSync, writeSync } from 'node:fs';
import { strerrorText } from './lock.ts';
import { setMaxListeners } from 'node:events';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import {
  etaBare,
  etaLine,
  etaPercentage,
  rateLimit,
  type EtaStatus,
  etaRedraw,
  fioExitStatus,
  jobErrorLine,
  parseEtaLine,
  FioUsageError,
  FIO_VERSION,
  fioJsonText,
  JobStats,
  sayLines,
  setupLines,
  startNotes,
  outputCount,
  startBanner,
  runInGuest,
  type DeviceCounters,
  type DiskUtil,
  type RawJob,
  showCommandLines,
} from '@pvblk/frontend';
import {
  BENCH_USAGE,
  benchPoints,
  diskParams,
  fioArgv,
  benchJobFileCount,
  benchJobFiles,
  parseBenchArgs,
  sameStack,
  sliceRuntimeMs,
  type BenchOptions,
  type BenchPoint,
  type StackShape,
} from './bench-options.ts';
import { runRelay, runRelayClient, runRelayServer, type RelayClientSpec } from './bench-relay.ts';
import { RelayBaseline, type Baseline, type BaselineGuest } from './bench-baseline.ts';
import { appendGuestSlice, type GuestSlice, type Slice, type SliceSide } from './bench-slices.ts';
import {
  pointLabel,
  LineSayer,
  renderPointJson,
  renderPointNormal,
  renderPointTerse,
  pointDescription,
  sweepTable,
  type BlkbackCounters,
  type BrokerCounters,
  type GuestRun,
  type JobClone,
  type PointResult,
} from './bench-report.ts';
import { CpuWindows, RssSampler, type RssSeries } from './bench-rss.ts';
import { collectLogs } from './bench-logs.ts';
import { makeBenchDir, sweepStaleBenchDirs } from './bench-dirs.ts';
import { collectTraces, joinTraces, type TraceTarget } from './bench-trace.ts';
import { fetchAnswer, watchForShutdown } from '@pvblk/runtime';
import { guestNames } from './options.ts';
import { writeOutNow } from './write-out.ts';
import { tcpCongestionControl } from './bench-tcp.ts';
import {
  anyExit,
  startStack,
  Supervisor,
  type LogRecord,
  type RunningStack,
  type StackChild,
} from './stack.ts';

interface LiveStack {
  shape: StackShape;
  sup: Supervisor;
  running: RunningStack;
  dom0Secret: string;
  token: string;
  guests: Array<{ name: string; socket: string; domid: number; pid: number }>;
  children: StackChild[];
  /** Rejects when a process of the stack ends before the stack is stopped (see anyExit). */
  died: Promise<never>;
  traceDir: string | null;
  tmp: string;
}

const write = (s: string) => process.stdout.write(s);

/** The directory of the guests' own files in a bench's directory: each guest's `/` is a directory in it. */
const workDirOf = (tmp: string) => join(tmp, 'work');

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(
      "fio-shaped latency experiments: start a stack, run fio jobs in the guests, report with pvblk's counters (pvblk bench --help)",
    )
    .helpOption(false)
    // `pvblk help bench` prints the bench's own usage, as `pvblk bench --help` does
    .configureHelp({ formatHelp: () => BENCH_USAGE })
    .allowUnknownOption()
    .allowExcessArguments()
    .passThroughOptions()
    .argument('[options...]', 'fio job options and pvblk options')
    .action(async (args: string[]) => {
      process.exit(await runBench(args));
    });
}

/**
 * The supervisors of this bench's processes while they live — a stack starting or running, the relay
 * baseline's — with the directory each owns: Ctrl-C stops them all, wherever the bench is.
 */
const live = new Map<Supervisor, string | null>();

/**
 * Ctrl-C or SIGTERM during a point's measured run (pvblk's jobs, its relay baseline), or at any moment
 * once a point has reported, is taken as fio's sig_int (backend.c) takes it: `fio: terminating on
 * signal N` at once, the guests' jobs end where they are (each guest's fio is interrupted and reports
 * what it did), the relay and a stack still starting are stopped, no further point starts, and the
 * reports cover what ran, with fio's exit status 128. `stopRun` is aborted then, with the signal's
 * name as its reason. Before the first measured run (its stack starting, its warm-up), where nothing
 * could be reported, or a second time, the signal stops everything at once: `interrupted`, no
 * report, 130.
 */
const stopRun = new AbortController();
// every guest's command listens to it while it runs (64 guests at most) and the relay as it starts
setMaxListeners(0, stopRun.signal);

/** The signal that cut the run short, as fio names it in its message (`stopRun` is aborted by it). */
let stoppedBy: NodeJS.Signals | null = null;

/** Set by a signal that stops the bench outright: from then on it only stops (no report, no next point). */
let interrupted = false;

/** True from the start of pvblk's measured jobs to the point's result: a signal then ends the run with a report. */
let measuring = false;

/** True while a stack starts for a point: a signal that ends the run stops it too. */
let starting = false;

/** True once the bench's processes have all stopped and only its report is left to print. */
let finishing = false;

/** How long an interrupted bench waits for the run in progress to unwind before it exits anyway. */
const SIGNAL_GRACE_MS = 5000;

/** How long a run cut short by a signal may take to report before the bench stops as a second signal would. */
const STOP_REPORT_MS = 20_000;

/**
 * Each tier's grace to exit on SIGTERM when the bench stops everything outright (a second signal, one
 * before anything could be reported, a run that did not report in time), before SIGKILL.
 */
const STOP_NOW_GRACE_MS = 1000;

/** Thrown where a run cut short by a signal has nothing to report (no slice of pvblk's jobs had run). */
class RunStopped extends Error {
  constructor() {
    super('the run was stopped before its measured part');
  }
}

async function stopLive(graceMs?: number): Promise<void> {
  await Promise.all(
    [...live].map(async ([sup, dir]) => {
      await sup.stopAll(graceMs);
      if (dir) await rm(dir, { recursive: true, force: true });
    }),
  );
}

async function startBenchStack(shape: StackShape, o: BenchOptions): Promise<LiveStack> {
  const tmp = await makeBenchDir();
  // the stack's secrets: the children read them from the environment, the bench needs them for
  // /status and the host's API
  const dom0Secret = (process.env.PVBLK_DOM0_SECRET ??= randomBytes(24).toString('base64url'));
  const token = (process.env.PVBLK_TOOLSTACK_TOKEN ??= randomBytes(24).toString('base64url'));
  let traceDir: string | null = null;
  if (o.trace) {
    traceDir = join(tmp, 'trace');
    await mkdir(traceDir, { recursive: true });
    process.env.PVBLK_TRACE = traceDir;
  } else {
    delete process.env.PVBLK_TRACE;
  }
  const errors: string[] = [];
  const sup = new Supervisor({
    onRecord: (name: string, r: LogRecord) => {
      if ((r.level ?? 0) >= 50) errors.push(`${name} | ${String(r.msg)}`);
    },
    onText: (name: string, line: string) => process.stderr.write(`${name} | ${line}\n`),
  });
  live.set(sup, tmp);
  const persistent = shape.persistent ? [] : ['--no-persistent'];
  const cfg = {
    guests: guestNames(shape.guests),
    disk: diskParams(shape),
    dataDir: null,
    runDir: join(tmp, 'run'),
    workDir: workDirOf(tmp),
    host: '127.0.0.1',
    port: 0,
    hostArgs: [
      '--data-path',
      shape.dataPath,
      '--max-queues',
      String(Math.max(4, shape.queues)),
      ...persistent,
      ...(shape.piInline ? [] : ['--no-pi-inline']),
    ],
    guestArgs: [
      '--ring-page-order',
      String(shape.ringPageOrder),
      '--queues',
      String(shape.queues),
      '--indirect-segments',
      String(shape.indirectSegments),
      ...persistent,
    ],
  };
  let running: RunningStack;
  try {
    running = await startStack(sup, cfg);
  } catch (e) {
    await sup.stopAll();
    await rm(tmp, { recursive: true, force: true });
    live.delete(sup);
    throw new Error(
      `the stack did not start: ${(e as Error).message}${errors.length ? `\n${errors.join('\n')}` : ''}`,
    );
  }
  const guests = cfg.guests.map((name) => {
    const child = sup.children.find((c) => c.name === name)!;
    const rec = child.records.find((r) => r.event === 'ready');
    return {
      name,
      socket: running.sockets.get(name)!,
      domid: Number(rec?.domid ?? -1),
      pid: child.proc.pid!,
    };
  });
  const children = [...sup.children];
  return { shape, sup, running, dom0Secret, token, guests, children, died: anyExit(children), traceDir, tmp };
}

/** How long a failed run waits for a stack process's exit to be reported before naming the failure. */
const DEATH_GRACE_MS = 2000;

/** How a stack process ended, if one has ended or ends within `ms`; else null. */
async function deathOf(s: LiveStack, ms: number): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  try {
    return await Promise.race([
      s.died.then(
        () => null,
        (e: Error) => e.message,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function stopBenchStack(s: LiveStack): Promise<void> {
  await s.sup.stopAll();
  await rm(s.tmp, { recursive: true, force: true });
  live.delete(s.sup);
  delete process.env.PVBLK_TRACE;
}

async function getJson(url: string, bearer: string): Promise<unknown> {
  const res = await fetchAnswer(url, { headers: { authorization: `Bearer ${bearer}` } });
  if (!res.ok) throw new Error(`${url}: ${res.status} ${res.statusText}`);
  return res.json();
}

interface Counters {
  broker: Map<number, BrokerCounters>;
  vbds: Map<number, BlkbackCounters>;
}

/**
 * The broker's and blkback's counters. The host answers `/guests` with a hypercall of its own (the
 * domain list), so the broker is read after it at the start of a run and before it at the end: the
 * window counts none of the bench's own calls.
 */
async function readCounters(s: LiveStack, at: 'start' | 'end'): Promise<Counters> {
  const statusUrl = s.running.hypervisorUrl.replace(/^ws/, 'http').replace(/\/?$/, '/status');
  const readStatus = async () =>
    (await getJson(statusUrl, s.dom0Secret)) as { domains: Array<{ domid: number; stats: BrokerCounters }> };
  const readGuests = async () =>
    (await getJson(new URL('/guests', s.running.apiUrl).href, s.token)) as {
      vbds: Record<string, BlkbackCounters>;
    };
  const early = at === 'start' ? await readGuests() : null;
  const status = await readStatus();
  const guests = early ?? (await readGuests());
  const broker = new Map(status.domains.map((d) => [d.domid, d.stats]));
  const vbds = new Map<number, BlkbackCounters>();
  for (const [key, st] of Object.entries(guests.vbds ?? {})) {
    const domid = Number(key.split('/')[0]);
    const acc = vbds.get(domid) ?? {};
    for (const [k, v] of Object.entries(st)) if (typeof v === 'number') acc[k] = (acc[k] ?? 0) + v;
    vbds.set(domid, acc);
  }
  return { broker, vbds };
}

function diff<T extends object>(a: T | undefined, b: T | undefined): T | null {
  if (!b) return null;
  const out: Record<string, number> = {};
  const before = (a ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(b))
    if (typeof v === 'number') out[k] = v - ((before[k] as number) ?? 0);
  return out as T;
}

interface GuestOutput {
  status: number;
  stdout: string;
  /** What fio said on stderr, when it was kept rather than said as it came (the warm-up's). */
  stderr: string;
}

/** The guests' rate limits, summed as calc_thread_status() sums its jobs' (a byte rate over an I/O one). */
function sumLimits(limits: EtaStatus['limit'][]): EtaStatus['limit'] {
  const sum = (kind: 'bw' | 'iops', end: 'min' | 'max') =>
    limits.reduce((a, l) => a + (l?.kind === kind ? l[end] : 0), 0);
  return rateLimit({
    bwMin: sum('bw', 'min'),
    bw: sum('bw', 'max'),
    iopsMin: sum('iops', 'min'),
    iops: sum('iops', 'max'),
  });
}

/**
 * Runs `fio …` in every guest at once; ETA lines (when asked for) are summed and redrawn here.
 * `reported` is called once every guest has printed its JSON report or ended: the guests' fio write
 * their logs after it (see the guest's runFio()), outside what the bench measures. With `say`, what
 * each guest's fio says on stderr is said on the bench's stderr as it comes (a verify failure when
 * the block is read, as fio says it), a line at a time, each line prefixed with the guest's name
 * when there are several; without, it is kept for the caller.
 */
async function runInGuests(
  s: LiveStack,
  argv: string[],
  eta: boolean,
  say: boolean,
  reported: () => void = () => {},
): Promise<GuestOutput[]> {
  let left = s.guests.length;
  const done = () => {
    if (--left === 0) reported();
  };
  const latest = new Map<string, string>();
  const redrawn = etaRedraw();
  const percentage = etaPercentage();
  const redraw = () => {
    const parsed = [...latest.values()].map(parseEtaLine).filter((x): x is NonNullable<typeof x> => !!x);
    if (!parsed.length) return;
    // the largest of the guests' ETAs, and the percentage display_thread_status() makes of it. fio's
    // genesis is its start: the bench's, stack start-up and all (the JSON `elapsed` counts it too)
    const etaSec = Math.max(0, ...parsed.map((p) => p.eta ?? 0));
    const running = parsed.reduce((a, p) => a + p.running, 0);
    const states = parsed.flatMap((p) => p.states);
    const bare = etaBare(performance.now(), running);
    const line = etaLine(
      {
        running,
        states,
        done: percentage(performance.now(), etaSec, { bare, running, states }),
        eta: etaSec,
        limit: sumLimits(parsed.map((p) => p.limit ?? null)),
        rB: parsed.reduce((a, p) => a + p.rB, 0),
        wB: parsed.reduce((a, p) => a + p.wB, 0),
        rI: parsed.reduce((a, p) => a + p.rI, 0),
        wI: parsed.reduce((a, p) => a + p.wI, 0),
        tB: parsed.reduce((a, p) => a + (p.tB ?? 0), 0),
        tI: parsed.reduce((a, p) => a + (p.tI ?? 0), 0),
      },
      bare,
    );
    write(redrawn(line));
  };
  const outs = await Promise.all(
    s.guests.map(async (g) => {
      let stdout = '';
      let stderr = '';
      // once the bench stops everything, a guest's complaint that its stack went is no news
      const sayer = say
        ? new LineSayer(s.guests.length > 1 ? `${g.name}: ` : '', (t) => {
            if (!interrupted) process.stderr.write(t);
          })
        : null;
      // what fio says on stderr and is not said is kept, up to GUEST_STDERR_KEEP bytes: a job that
      // says a line per I/O (error_dump, ignore_error=110) would grow it without end
      let stderrKept = 0;
      let stderrDropped = 0;
      let pending = '';
      let hasReported = false;
      // the report is one JSON text, said last: complete with the brace that closes it, at the start
      // of a line (the braces inside are indented), and the new line after it
      const lookForReport = () => {
        if (hasReported || !stdout.endsWith('\n}\n')) return;
        const at = stdout.indexOf('{');
        try {
          JSON.parse(stdout.slice(at));
        } catch {
          return;
        }
        hasReported = true;
        done();
      };
      const status = await runInGuest(
        g.socket,
        { argv },
        {
          stdout: (t) => {
            if (!eta) {
              stdout += t;
              lookForReport();
              return;
            }
            pending += t;
            let cr: number;
            while ((cr = pending.indexOf('\r')) >= 0) {
              latest.set(g.name, pending.slice(0, cr));
              pending = pending.slice(cr + 1);
              redraw();
            }
            if (pending.startsWith('\n')) pending = pending.slice(1);
            if (pending.includes('{')) {
              stdout += pending;
              pending = '';
              lookForReport();
            }
          },
          stderr: (t) => {
            if (sayer) return sayer.push(t);
            const n = Buffer.byteLength(t);
            if (!stderrDropped && stderrKept + n <= GUEST_STDERR_KEEP) {
              stderr += t;
              stderrKept += n;
            } else stderrDropped += n;
          },
          kmsg: () => {},
        },
        // a signal to the bench interrupts the guests' fio, which end their jobs and report
        stopRun.signal,
      ).catch((e: Error) => {
        // on a line of its own, after what fio said
        sayer?.flush();
        if (sayer) sayer.push(`pvblk: ${e.message}\n`);
        else stderr += `pvblk: ${e.message}\n`;
        return 1;
      });
      sayer?.flush();
      if (!hasReported) {
        hasReported = true;
        done();
      }
      if (stderrDropped)
        stderr += `pvblk bench: ${stderrDropped} more bytes of fio's stderr not kept (${GUEST_STDERR_KEEP} at most a run)\n`;
      return { status, stdout: stdout + pending, stderr };
    }),
  );
  if (eta) write('\n');
  return outs;
}

/** Bytes of a guest's fio stderr a bench run keeps when it does not say it (see runInGuests()). */
const GUEST_STDERR_KEEP = 1 << 20;

interface GuestJson {
  jobs: Array<{ jobname: string; 'job options': Record<string, string>; pvblk?: { raw?: RawJob } }>;
  disk_util: Array<Record<string, number | string>>;
  pvblk?: {
    devices?: Array<Record<string, number | string>>;
    unreported?: Array<{ error: number; verror: string }>;
  };
}

function parseGuestJson(text: string): GuestJson | null {
  const at = text.indexOf('{');
  if (at < 0) return null;
  try {
    return JSON.parse(text.slice(at)) as GuestJson;
  } catch {
    return null;
  }
}

/** The relay's results, and the CPU its relay and server processes used over the measured run. */
async function runPoint(s: LiveStack, p: BenchPoint, o: BenchOptions, eta: boolean): Promise<PointResult> {
  // warm-up: the same jobs, untimed, without verify (JIT, pools, persistent grants)
  if (o.warmupMs > 0) {
    const outs = await runInGuests(
      s,
      fioArgv(
        p.cl,
        {
          time_based: '1',
          runtime: `${Math.round(o.warmupMs)}ms`,
          ramp_time: null,
          verify: 'none',
          verify_only: null,
          // the measured run's logs only, every job from the start (--baseline refuses jobs that
          // wait for others, so its warm-up has none)
          startdelay: null,
          write_lat_log: null,
          write_bw_log: null,
          write_iops_log: null,
          write_hist_log: null,
        },
        ['--output-format=json'],
      ),
      false,
      false,
    );
    if (stopRun.signal.aborted) throw new RunStopped();
    // a warm-up that failed would leave the measured run cold, and its figures wrong without a word
    outs.forEach((out, k) => {
      if (out.status !== 0)
        throw new Error(
          `the warm-up failed in ${s.guests[k].name} (fio exited ${out.status}): ${out.stderr.trim().split('\n')[0] || 'no message'}`,
        );
    });
  }
  const slices = o.baseline ? o.baselineSlices : 1;
  // with slices, the relay is up and warm before pvblk's first slice, and the two take turns
  const relayError: { message: string | null } = { message: null };
  // the relay running now, stopped where it is by a signal that cuts the run short (it is left out)
  let relayNow: RelayBaseline | null = null;
  const stopRelay = () => void relayNow?.stop();
  stopRun.signal.addEventListener('abort', stopRelay);
  const relay =
    slices > 1
      ? await startRelay(
          p,
          o,
          s.guests.map((g) => ({ name: g.name, ios: 0 })),
          relayError,
        )
      : null;
  relayNow = relay;
  const procs = s.children.map((c) => ({ name: c.name, pid: c.proc.pid! }));
  const targets: TraceTarget[] = s.children.map((c) => ({
    name: c.name,
    pid: c.proc.pid!,
    role: c.name === 'hypervisor' ? 'hypervisor' : c.name === 'host' ? 'host' : 'guest',
  }));
  try {
    if (s.traceDir) await collectTraces(targets, s.traceDir); // empties the recorders: only the run remains
    const before = await readCounters(s, 'start');
    const rss = new RssSampler(procs, o.rssIntervalMs);
    const t0 = performance.now();
    const now = () => performance.now() - t0;
    rss.start();
    // the measured run ends with the guests' reports: what they do after (write fio's logs) is not in
    // its CPU and memory figures
    let rssStopped: Promise<RssSeries[]> | null = null;
    const cl = p.cl;
    const sliceMs = sliceRuntimeMs(cl, slices);
    let runs: GuestSlice[] | null = null;
    /** Whether a signal ended pvblk's run before its end (a slice cut, or slices not run). */
    let cut = false;
    let slicesRun = 0;
    const timeline: Slice[] = [];
    // with slices, each process of the stack is charged only with pvblk's slices
    const pvCpu = slices > 1 ? new CpuWindows(procs.map((x) => x.pid)) : null;
    const pvblkSlice = async (i: number): Promise<SliceSide> => {
      // each slice a fresh seed, so that the slices do not replay one another's offsets
      const args: Record<string, string> = slices > 1 ? { runtime: `${sliceMs}ms` } : {};
      if (i > 0) args.randseed = String(cl.jobs[0].randseed + i);
      const startMs = now();
      await pvCpu?.begin();
      // from pvblk's first measured jobs on, a signal ends the run with a report of them
      measuring = true;
      const outs = await runInGuests(
        s,
        fioArgv(cl, args, [
          '--output-format=json',
          '--pvblk_raw',
          ...(eta && slices === 1 ? ['--pvblk_eta'] : []),
        ]),
        eta && slices === 1,
        true,
        () => {
          if (slices === 1) rssStopped = rss.stop();
        },
      );
      await pvCpu?.end();
      const endMs = now();
      // the guests' jobs were still running when the signal came: their fio says so with 128 (129)
      if (stopRun.signal.aborted && outs.some((x) => x.status === 128 || x.status === 129)) cut = true;
      const these = s.guests.map((g, k) => guestSlice(g.name, outs[k]));
      runs = runs ? runs.map((r, k) => appendGuestSlice(r, these[k])) : these;
      const dirMs = (j: JobStats) => Math.max(...j.dirs.map((d) => d.runtimeMs));
      return {
        startMs,
        endMs,
        ios: these.reduce((a, g) => a + g.jobs.reduce((x, j) => x + j.totalIos, 0), 0),
        runtimeMs: Math.max(0, ...these.flatMap((g) => g.jobs.map(dirMs))),
      };
    };
    const relaySlice = async (): Promise<SliceSide | null> => {
      if (!relay || relayError.message || stopRun.signal.aborted) return null;
      try {
        return await relay.slice(now);
      } catch (e) {
        // the rest of the relay stops now: its clients must not run on beside pvblk's next slice
        if (!stopRun.signal.aborted) relayError.message = (e as Error).message;
        await relay.stop();
        return null;
      }
    };
    for (let i = 0; i < slices && !stopRun.signal.aborted; i++) {
      if (interrupted) throw new Error('interrupted');
      // in turn, and every other pair the other way round: a machine that speeds up or slows down
      // through the run then favours neither side
      if (i % 2 === 0) {
        const pv = await pvblkSlice(i);
        slicesRun++;
        const rel = await relaySlice();
        if (rel) timeline.push({ pvblk: pv, relay: rel });
      } else {
        const rel = await relaySlice();
        if (stopRun.signal.aborted) break;
        const pv = await pvblkSlice(i);
        slicesRun++;
        if (rel) timeline.push({ pvblk: pv, relay: rel });
      }
    }
    // cut short before pvblk's first slice ran (the relay was warming up): nothing to report
    if (!runs) throw new RunStopped();
    if (slicesRun < slices) cut = true;
    const series = await (rssStopped ?? rss.stop());
    if (pvCpu) {
      const cpu = pvCpu.seconds();
      series.forEach((x, i) => (x.cpu = cpu[i]));
    }
    const after = await readCounters(s, 'end');
    await collectLogs(
      p.cl.jobs,
      s.guests.map((g) => ({ guest: g.name, root: join(workDirOf(s.tmp), g.name) })),
      o.sweeps.length ? p.label : {},
      (line) => process.stderr.write(line + '\n'),
    );
    let stages: PointResult['stages'] = null;
    if (s.traceDir) {
      try {
        stages = joinTraces(await collectTraces(targets, s.traceDir));
      } catch (e) {
        stages = { error: (e as Error).message };
      }
    }
    const guests: GuestRun[] = s.guests.map((g, i) => ({
      name: g.name,
      domid: g.domid,
      pid: g.pid,
      ...runs![i],
      broker: diff(before.broker.get(g.domid), after.broker.get(g.domid)),
      blkback: diff(before.vbds.get(g.domid), after.vbds.get(g.domid)),
    }));
    let baseline: Baseline | null = null;
    if (stopRun.signal.aborted) {
      // a run cut short has no baseline: the relay would have to run as long as pvblk happened to
    } else if (relay && !relayError.message) {
      baseline = relay.finish();
    } else if (o.baseline && slices === 1) {
      const ios = guests.map((g) => ({ name: g.name, ios: g.jobs.reduce((a, j) => a + j.totalIos, 0) }));
      const one = await startRelay(p, o, ios, relayError);
      relayNow = one;
      if (stopRun.signal.aborted) {
        // a signal while it started: its start stopped what had started, and its failure is no error
        await one?.stop();
        relayError.message = null;
      } else if (one) {
        try {
          await one.slice(now);
          baseline = stopRun.signal.aborted ? null : one.finish();
        } catch (e) {
          if (!stopRun.signal.aborted) relayError.message = (e as Error).message;
        } finally {
          await one.stop();
        }
      }
    }
    return {
      label: p.label,
      stack: p.stack,
      guests,
      dom0Broker: diff(before.broker.get(0), after.broker.get(0)),
      rss: series,
      rssIntervalMs: o.rssIntervalMs,
      stages,
      relay: baseline?.results ?? null,
      relayCpu: baseline?.cpu ?? null,
      machine: { pvblk: pvCpu ? pvCpu.machineCpu() : rss.machineCpu(), relay: baseline?.machine ?? null },
      relayError: relayError.message,
      stopped:
        stopRun.signal.aborted && stoppedBy
          ? { signal: stoppedBy, runCut: cut, baselineLeftOut: o.baseline && !baseline }
          : null,
      tcpCongestionControl: tcpCongestionControl(),
      tcp: { pvblk: pvCpu ? pvCpu.tcpCounters() : rss.tcpCounters(), relay: baseline?.tcp ?? null },
      slices: slices > 1 && !stopRun.signal.aborted ? timeline : null,
      // the guests' reports leave out the jobs with stats=0
      jobClones: p.cl.jobs.flatMap((j, i) =>
        new Array<JobClone>(j.statsEnabled ? j.numjobs : 0).fill({
          options: p.cl.given[i],
          iodepth: j.iodepth,
          latencyTarget: j.latencyTarget,
          description: pointDescription(j.description, p.label),
          groupReporting: j.groupReporting,
          percentiles: j.percentileList,
          percentilePrecision: j.percentilePrecision,
          latencyPercentiles: j.latencyPercentiles,
        }),
      ),
      globalOptions: p.cl.globalGiven,
    };
  } finally {
    stopRun.signal.removeEventListener('abort', stopRelay);
    await relay?.stop();
  }
}

/** The relay baseline started for a point, or null with the reason in `error` (the run goes on without). */
async function startRelay(
  p: BenchPoint,
  o: BenchOptions,
  guests: BaselineGuest[],
  error: { message: string | null },
): Promise<RelayBaseline | null> {
  try {
    return await RelayBaseline.start(p, o, guests, live, stopRun.signal);
  } catch (e) {
    error.message = (e as Error).message;
    return null;
  }
}

/** The first slice's `job options` as the whole run's: its runtime was the slice's. */
/** One guest's fio output for one slice of the run, parsed. */
function guestSlice(name: string, out: GuestOutput): GuestSlice {
  const json = parseGuestJson(out.stdout);
  const jobs = (json?.jobs ?? []).map((j) =>
    j.pvblk?.raw ? JobStats.fromRaw(j.pvblk.raw) : new JobStats(j.jobname),
  );
  const devices: DeviceCounters[] = (json?.pvblk?.devices ?? []).map((d) => ({
    name: String(d.name),
    requests: Number(d.ring_requests),
    completions: Number(d.completions),
    upcalls: Number(d.notifications_received),
    grants: Number(d.grant_operations),
  }));
  const disks: DiskUtil[] = (json?.disk_util ?? []).map((d) => ({
    name: String(d.name),
    readIos: Number(d.read_ios),
    writeIos: Number(d.write_ios),
    readSectors: Number(d.read_sectors),
    writeSectors: Number(d.write_sectors),
    readTicks: Number(d.read_ticks),
    writeTicks: Number(d.write_ticks),
    inQueue: Number(d.in_queue),
    ioTicks: (Number(d.util) / 100) * Math.max(...jobs.map((j) => j.totalRunMs), 1),
    msec: Math.max(...jobs.map((j) => j.totalRunMs), 1),
  }));
  if (!json && out.status === 0) process.stderr.write(`pvblk: ${name}: fio printed no JSON\n`);
  return {
    status: json ? out.status : out.status || 1,
    jobs,
    disks,
    devices,
    unreported: (json?.pvblk?.unreported ?? []).map((u) => ({
      error: Number(u.error),
      verror: String(u.verror),
    })),
  };
}

/** The hidden roles of the relay baseline's processes. */
async function runRelayRole(argv: string[]): Promise<number> {
  const get = (k: string) => argv.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3);
  const role = get('relay-role');
  if (role === 'relay') await runRelay();
  else if (role === 'server') await runRelayServer(get('relay-url') ?? '');
  else if (role === 'client') {
    // a client ends with its run; with the bench gone (its IPC channel closed) nobody reads its result
    watchForShutdown();
    await runRelayClient(JSON.parse(get('relay-spec') ?? '{}') as RelayClientSpec);
  } else {
    process.stderr.write(`pvblk bench: unknown relay role ${role}\n`);
    return 2;
  }
  return 0;
}

/**
 * What the bench does when its output cannot be written: the reader went away (`pvblk bench … | head
 * -1`: EPIPE) — everything stops and the bench exits 141, as a process SIGPIPE killed — or the file is
 * full (one line on stderr, 1). Set once the run can be stopped; before, the bench just exits.
 */
let onOutputLost: (code: number) => void = (code) => process.exit(code);

export async function runBench(argv: string[]): Promise<number> {
  // the relay's processes, which the bench starts with their role as the first argument, and nothing else
  if (argv[0]?.startsWith('--relay-role=')) return runRelayRole(argv);
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') process.stderr.write(`pvblk bench: stdout: ${e.message}\n`);
    onOutputLost(e.code === 'EPIPE' ? 141 : 1);
  });
  let o: BenchOptions | 'help' | 'version';
  try {
    o = parseBenchArgs(argv, await benchJobFiles(argv));
  } catch (e) {
    if (e instanceof FioUsageError) {
      sayLines(
        e.said,
        (t) => process.stderr.write(t),
        (t) => writeOutNow(t, 'pvblk bench'),
      );
      if (e.out.length) writeOutNow(e.out.join('\n') + '\n', 'pvblk bench');
      process.stderr.write(e.lines.join('\n') + '\n');
      return 1;
    }
    throw e;
  }
  if (o === 'help') {
    writeOutNow(BENCH_USAGE, 'pvblk bench');
    return 0;
  }
  // the version of fio whose options and reports the bench takes and prints, as `fio --version`
  if (o === 'version') {
    writeOutNow(`${FIO_VERSION}\n`, 'pvblk bench');
    return 0;
  }
  // --parse-only and --showcmd, as fio's: the jobs parsed (and the job files shown), nothing run
  if (o.cl.global.showcmd)
    writeOutNow(showCommandLines(o.cl.options, benchJobFileCount(argv)), 'pvblk bench');
  if (o.cl.global.showcmd || o.cl.global.parseOnly) return 0;
  if (o.plot) {
    try {
      const { checkPlotting } = await import('./bench-plot.ts');
      await checkPlotting(o.plot);
    } catch (e) {
      process.stderr.write(`pvblk bench: --plot ${o.plot}: ${(e as Error).message}\n`);
      return 1;
    }
  }
  const fmt = o.cl.global.outputFormat;
  // --output: the reports (what fio says with log_info()) go to the file, made or emptied now as
  // fio's init.c opens it; the ETA line stays on the terminal
  let out = write;
  let outFd: number | null = null;
  if (o.cl.global.output !== null) {
    let fd: number;
    try {
      fd = openSync(o.cl.global.output, 'w+');
    } catch (e) {
      process.stderr.write(`fio: output file open error: ${strerrorText(e)}\n`);
      return 1;
    }
    outFd = fd;
    out = (text: string) => {
      try {
        writeSync(fd, text);
      } catch (e) {
        process.stderr.write(`pvblk bench: --output ${o.cl.global.output}: ${strerrorText(e)}\n`);
        onOutputLost(1);
      }
      return true;
    };
  }
  // one report is printed as each point ends; several wait for the end and follow fio's order
  const atEnd = outputCount(fmt) > 1;
  const eta = o.cl.global.eta === 'always' || (o.cl.global.eta === 'auto' && process.stdout.isTTY === true);
  const points = benchPoints(o);
  const results: PointResult[] = [];
  let stack: LiveStack | null = null;
  // no signal is handled before this turn ends, so the handler below always finds the run it cuts
  const main = runPoints(o);
  // "at once": each tier of processes has STOP_NOW_GRACE_MS to go on SIGTERM (a guest whose disk
  // no longer answers would hold a clean shutdown for ever), not the supervisor's default 5 s
  const stopNow = (code = 130) => {
    // Stops whatever runs now — a stack starting or running, the relay's processes — and exits as a
    // shell reports an interrupt. The run in progress fails once its processes are gone; it notices
    // `interrupted` and prints nothing, starts nothing and leaves the exit to this. A stack cut off
    // while starting removes its directory when its start has failed (a step still under way could
    // create it again after a removal here): that is waited for, boundedly, then what is left goes.
    if (interrupted) return;
    interrupted = true;
    void (async () => {
      await stopLive(STOP_NOW_GRACE_MS);
      await Promise.race([main.catch(() => 0), new Promise((r) => setTimeout(r, SIGNAL_GRACE_MS))]);
      await stopLive(STOP_NOW_GRACE_MS);
      process.exit(code);
    })();
  };
  onOutputLost = stopNow;
  const onSignal = (name: NodeJS.Signals) => {
    // once a point has reported there is something to give, whatever the bench is doing now
    if (stopRun.signal.aborted || (!measuring && !results.length)) return stopNow();
    stoppedBy = name;
    // on stdout, as fio's log_info puts it: before a JSON report too (fio does the same)
    out(`\nfio: terminating on signal ${osConstants.signals[name]}\n`);
    stopRun.abort(name);
    // a stack starting for the next point would only be stopped again: it goes now
    if (starting) void stopLive();
    // a run that cannot end (a guest that does not answer) is stopped as a second signal would stop it
    setTimeout(() => {
      process.stderr.write(
        `pvblk bench: the run did not end within ${STOP_REPORT_MS / 1000} s of ${name}: stopping everything, without a report\n`,
      );
      stopNow();
    }, STOP_REPORT_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // its terminal gone: nobody is left to read a report (fio itself would just die), and the stack's
  // processes must not outlive the bench: everything stops, 129 as `pvblk run` has it
  process.on('SIGHUP', () => {
    if (!finishing) stopNow(129);
  });
  const code = await main;
  if (outFd !== null) closeSync(outFd);
  // interrupted: the exit is stopNow's, once every process has stopped
  return interrupted ? new Promise<number>(() => {}) : code;

  async function runPoints(o: BenchOptions): Promise<number> {
    // what benches killed outright left behind (bench-dirs.ts): once, whatever number of stacks follow
    await sweepStaleBenchDirs();
    try {
      for (const p of points) {
        if (interrupted) return 130;
        if (stopRun.signal.aborted) break;
        if (!stack || !sameStack(stack.shape, p.stack)) {
          if (stack) await stopBenchStack(stack);
          stack = null;
          if (interrupted) return 130;
          if (stopRun.signal.aborted) break;
          starting = true;
          try {
            stack = await startBenchStack(p.stack, o);
          } catch (e) {
            // stopped by the signal that ended the run: the points before it report
            if (stopRun.signal.aborted && !interrupted) break;
            throw e;
          } finally {
            starting = false;
          }
          if (interrupted) return 130;
          if (stopRun.signal.aborted) break;
        }
        if (fmt.normal && points.length > 1) out(`\n=== ${pointLabel(p)}\n`);
        // what fio says as it reads its jobs, in its order: the guests' fio leave it to the bench (raw),
        // which says it once, as each point starts
        sayLines(setupLines(p.cl), (t) => process.stderr.write(t), out);
        if (fmt.normal) {
          const banner = startBanner(p.cl.jobs);
          if (p.stack.guests > 1) banner[banner.length - 1] += ` in each of ${p.stack.guests} guests`;
          out(banner.join('\n') + '\n');
        }
        // fio says these as its jobs start, whatever its output format
        for (const note of startNotes(p.cl.jobs)) out(note + '\n');
        // a stack process that ends on its own ends the run: the guests' jobs would wait for it forever
        let r: PointResult;
        try {
          r = await Promise.race([runPoint(stack, p, o, eta && fmt.normal), stack.died]);
        } catch (e) {
          if (e instanceof RunStopped) break;
          throw e;
        } finally {
          measuring = false;
        }
        if (interrupted) return 130;
        results.push(r);
        // as each guest's fio said them on its stdout (its JSON's), in the process the job ran in
        for (const g of r.guests)
          for (const j of [...g.jobs, ...g.unreported])
            if (j.error) out(jobErrorLine(g.pid, j.error, j.verror) + '\n');
        if (atEnd) continue;
        // fio ends a run with one new line before its report: the one that ended the ETA line, if drawn
        if (fmt.normal) out((eta && out === write ? '' : '\n') + renderPointNormal(r));
        else if (fmt.terse) out(renderPointTerse(r));
      }
    } catch (e) {
      if (interrupted) return 130;
      // a stack process that died is the cause of what failed after it (a guest's fio that lost its
      // disk, a counter read from a dead host's API): the socket can tell first, so its exit is waited
      // for a moment before the error is named
      const death = stack ? await deathOf(stack, DEATH_GRACE_MS) : null;
      process.stderr.write(`pvblk bench: ${death ?? (e as Error).message}\n`);
      if (stack) await stopBenchStack(stack);
      return 1;
    }
    if (stack) await stopBenchStack(stack);
    if (interrupted) return 130;
    // every process has stopped: what is left is the report, which a SIGHUP no longer cuts short
    finishing = true;
    // cut short before any point's measured run ended: nothing to report
    if (!results.length) return 130;
    if (atEnd && fmt.terse) for (const r of results) out(renderPointTerse(r));
    if (fmt.json) {
      const docs = results.map((r) => renderPointJson(r, fmt.jsonPlus));
      out(
        fioJsonText(
          // a sweep keeps its shape when a signal ended it after its first point
          points.length === 1
            ? docs[0]
            : { 'fio version': docs[0]['fio version'], sweep: docs, stopped_by: stoppedBy },
        ) + '\n',
      );
    }
    if (atEnd && fmt.normal) {
      results.forEach((r) => {
        if (results.length > 1) out(`\n=== ${pointLabel(r)}\n`);
        out('\n' + renderPointNormal(r));
      });
    }
    if (fmt.normal && results.length > 1) out(sweepTable(results));
    // a plot of a run cut short would draw a partial point, or a sweep's few points, as whole ones
    if (o.plot && stoppedBy)
      process.stderr.write(`pvblk bench: --plot ${o.plot}: not drawn, the run was stopped by ${stoppedBy}\n`);
    else if (o.plot) {
      try {
        const { writePlot } = await import('./bench-plot.ts');
        await writePlot(o.plot, results, o);
        if (fmt.normal) out(`plot: ${o.plot}\n`);
      } catch (e) {
        process.stderr.write(`pvblk bench: --plot ${o.plot}: ${(e as Error).message}\n`);
        return 1;
      }
    }
    // fio's exit_value: 128 when the bench's signal ended the run, one more for each failed job; a
    // guest's fio interrupted by anything else (its guest shutting down) had its run cut: one more
    let failed = 0;
    for (const r of results)
      for (const g of r.guests) {
        const jobs = g.jobs.filter((j) => j.error).length + g.unreported.filter((j) => j.error).length;
        failed += jobs || (g.status !== 0 && !(g.status >= 128 && stoppedBy) ? 1 : 0);
      }
    return fioExitStatus(stoppedBy !== null, failed);
  }
}
