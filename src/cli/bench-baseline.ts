/**
 * The relay's side of a `pvblk bench --baseline` point: its three kinds of process (bench-relay.ts)
 * started, warmed up, run for one or more measured slices, and stopped.
 *
 * With one slice (the default) the relay runs once, after pvblk's run, as long as it did (or as many
 * I/Os). With `--baseline-slices N` the measured time is cut into N slices and the two sides take
 * turns — pvblk's slice, then the relay's, N times — so that a spell of the machine (another
 * tenant of the host, a stolen vCPU) that lasts seconds falls on both sides of the ratio instead of
 * on whichever happened to run through it. Each relay client stays up between its slices, warm,
 * and starts the next one when the bench says so over its IPC channel.
 */
import { rwBlockSize } from '@pvblk/frontend';
import { anyExit, Supervisor, type StackChild } from './stack.ts';
import { RELAY_GO, type RelayClientSpec, type RelayResult } from './bench-relay.ts';
import { sliceRuntimeMs, type BenchOptions, type BenchPoint } from './bench-options.ts';
import type { ProcessCpu } from './bench-report.ts';
import { cpuFields, CpuWindows, type MachineCpu } from './bench-rss.ts';
import { baseEnv } from './child-env.ts';
import type { TcpCounters } from './bench-tcp.ts';
import { appendRelayResult } from './bench-slices.ts';

export interface Baseline {
  results: Map<string, RelayResult>;
  cpu: ProcessCpu[];
  /** The machine's CPU over the relay's measured slices. */
  machine: MachineCpu | null;
  /** What TCP did in this namespace over the relay's measured slices. */
  tcp: TcpCounters | null;
}

/** A guest of the point, as the relay is shaped after it: one relay client per guest. */
export interface BaselineGuest {
  name: string;
  /** The I/Os its jobs did (what a job bounded by size, not time, makes the relay do). */
  ios: number;
}

/** One measured slice of the relay: when it ran on the bench's clock, and what it did. */
export interface RelaySlice {
  startMs: number;
  endMs: number;
  ios: number;
  /** The longest of the clients' measured runs, ms. */
  runtimeMs: number;
}

/** How long a client that exited is waited for its last result record before it counts as lost. */
const RESULT_GRACE_MS = 1000;

/**
 * The relay's stop order (the supervisor stops higher tiers first, each once the one before has
 * exited): the clients, then the server, then the router — a router or server that went first would
 * leave the others waiting for answers that never come.
 */
export const RELAY_TIER = { router: 0, server: 1, client: 2 } as const;

export class RelayBaseline {
  private readonly results = new Map<string, RelayResult>();
  /** The result each client owes for the slice running now. */
  private readonly waiting = new Map<string, (r: RelayResult) => void>();
  private readonly warm = new Map<string, () => void>();
  private routers: Array<{ name: string; pid: number }> = [];
  /** The relay's and the server's CPU time over the slices (the clients count their own). */
  private routerCpu = new CpuWindows([]);
  private clients: Array<{ guest: string; child: StackChild; died: Promise<never> }> = [];
  private routerGone: Promise<never> = new Promise(() => {});
  private slicesRun = 0;

  private constructor(
    private readonly sup: Supervisor,
    private readonly slices: number,
    private readonly live: Map<Supervisor, string | null>,
  ) {}

  /**
   * Starts the relay, its server and one client per guest, and waits until every client has warmed
   * up. The supervisor is in `live` while it lives (the bench stops what is there on Ctrl-C). An
   * abort of `signal` (a signal that ends the bench's run) stops what has started, and the start fails.
   */
  static async start(
    p: BenchPoint,
    o: BenchOptions,
    guests: BaselineGuest[],
    live: Map<Supervisor, string | null>,
    signal?: AbortSignal,
  ): Promise<RelayBaseline> {
    const sup = new Supervisor({
      // records come from processes that `launch` starts, after `started` exists
      onRecord: (name, r) => started.record(name, r as { event?: unknown; result?: unknown }),
      onText: (n, l) => process.stderr.write(`${n} | ${l}\n`),
    });
    const started = new RelayBaseline(sup, o.baselineSlices, live);
    live.set(sup, null);
    // its processes exit, and whatever the start waits for fails with them
    const stop = () => void started.stop();
    signal?.addEventListener('abort', stop);
    try {
      if (signal?.aborted) throw new Error('relay baseline: stopped before it started');
      await started.launch(p, o, guests, signal);
    } catch (e) {
      await started.stop();
      throw e;
    } finally {
      signal?.removeEventListener('abort', stop);
    }
    return started;
  }

  private record(name: string, r: { event?: unknown; result?: unknown }): void {
    if (r.event === 'warm') this.warm.get(name)?.();
    if (r.event === 'result') {
      const w = this.waiting.get(name);
      this.waiting.delete(name);
      w?.(r.result as RelayResult);
    }
  }

  private async launch(
    p: BenchPoint,
    o: BenchOptions,
    guests: BaselineGuest[],
    signal?: AbortSignal,
  ): Promise<void> {
    // a process the supervisor started after its stop would outlive the baseline
    const go = () => {
      if (signal?.aborted) throw new Error('relay baseline: stopped while it started');
    };
    // The relay's processes get what pvblk's get from the allowlist (child-env.ts), so that a setting
    // made for a measurement (GLIBC_TUNABLES, NODE_OPTIONS) applies to both sides of a ratio; they are
    // no stack of pvblk: no secrets, and no tracing there.
    const env = { ...baseEnv(null), PVBLK_TRACE: '' };
    const spawn = (name: string, args: string[], tier: number) =>
      this.sup.start({ name, args: ['bench', ...args], env, tier });
    const relay = spawn('relay', ['--relay-role=relay'], RELAY_TIER.router);
    const url = String((await relay.ready).url);
    go();
    const server = spawn('relay-server', ['--relay-role=server', `--relay-url=${url}`], RELAY_TIER.server);
    await server.ready;
    go();
    this.routers = [relay, server].map((c) => ({ name: c.name, pid: c.proc.pid! }));
    this.routerCpu = new CpuWindows(this.routers.map((x) => x.pid));
    // the router and the server live until the clients are done: one that goes first leaves the
    // clients waiting for answers that will never come, so its end is the baseline's
    this.routerGone = anyExit([relay, server]);
    const job = p.cl.jobs[0];
    const depth = p.cl.jobs.reduce((a, j) => a + j.iodepth * j.numjobs, 0);
    const readPct =
      job.rw === 'read' || job.rw === 'randread'
        ? 100
        : job.rw === 'write' || job.rw === 'randwrite'
          ? 0
          : job.rwmixread;
    await Promise.all(
      guests.map((g, i) => {
        const spec: RelayClientSpec = {
          url,
          client: i,
          // one size: checked with the options
          bs: rwBlockSize(job)!,
          depth,
          readPct,
          runtimeMs: job.timeBased ? sliceRuntimeMs(p.cl, this.slices) : null,
          ios: job.timeBased ? null : Math.max(1, g.ios),
          warmupMs: o.warmupMs,
          seed: job.randseed + i,
          slices: this.slices,
        };
        const name = `relay-client${i}`;
        const warm = new Promise<void>((resolve) => this.warm.set(name, resolve));
        const child = spawn(
          name,
          ['--relay-role=client', `--relay-spec=${JSON.stringify(spec)}`],
          RELAY_TIER.client,
        );
        // the result record may be read just after the exit: give it a moment before giving up
        const died = child.exited.then(
          () =>
            new Promise<never>((_, reject) =>
              setTimeout(() => reject(new Error(`${name} exited without a result`)), RESULT_GRACE_MS).unref(),
            ),
        );
        died.catch(() => {});
        this.clients.push({ guest: g.name, child, died });
        return Promise.race([warm, died, this.routerGone]);
      }),
    );
  }

  /** Runs the next measured slice of every client at once; `now` is the bench's clock. */
  async slice(now: () => number): Promise<RelaySlice> {
    if (this.slicesRun >= this.slices) throw new Error('relay baseline: no slice left');
    this.slicesRun++;
    const startMs = now();
    await this.routerCpu.begin();
    const got = await Promise.all(
      this.clients.map(({ guest, child, died }) => {
        const name = child.name;
        const r = new Promise<RelayResult>((resolve) => this.waiting.set(name, resolve));
        child.proc.send({ type: RELAY_GO });
        return Promise.race([r, died, this.routerGone]).then((x) => ({ guest, r: x }));
      }),
    );
    await this.routerCpu.end();
    const endMs = now();
    for (const { guest, r } of got) {
      const had = this.results.get(guest);
      this.results.set(guest, had ? appendRelayResult(had, r) : r);
    }
    return {
      startMs,
      endMs,
      ios: got.reduce((a, x) => a + x.r.ios, 0),
      runtimeMs: Math.max(...got.map((x) => x.r.runtimeMs)),
    };
  }

  /** Every slice's results, with the CPU the relay's processes used in them. */
  finish(): Baseline {
    const routers = this.routerCpu.seconds();
    const cpu: ProcessCpu[] = this.routers.map((x, i) => ({ name: x.name, ...cpuFields(routers[i]) }));
    for (const [name, r] of this.results)
      cpu.push({
        name: `relay-client (${name})`,
        ...cpuFields({ user: r.cpuUserSeconds, system: r.cpuSystemSeconds }),
      });
    return {
      results: this.results,
      cpu,
      machine: this.routerCpu.machineCpu(),
      tcp: this.routerCpu.tcpCounters(),
    };
  }

  private stopped = false;

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.sup.stopAll();
    this.live.delete(this.sup);
  }
}
