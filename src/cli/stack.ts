/**
 * Starting the whole system locally, as real processes: the hypervisor, the host (Dom0) and N guests,
 * each a child `pvblk <role>` process. Their structured logs arrive on stdout as pino records; the
 * supervisor recognises readiness from them, renders them for humans with a `name |` prefix, and stops
 * everything on Ctrl-C or when the job is done.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { renderRecord } from '@pvblk/runtime';
import { PvblkError } from '@pvblk/shared';
import { baseEnv, childEnv, stackCredentials } from './child-env.ts';
import { shellStatus } from './shell.ts';
import { FROM_PARENT, PARENT_GIVES_VALUES } from './from-parent.ts';
import { publishOperatorAccess } from './xl-access.ts';

// children run the same entry point as this process (bin/pvblk.mjs in a checkout, the bundle in an image)
const PVBLK_BIN = process.argv[1] ?? fileURLToPath(new URL('../../bin/pvblk.mjs', import.meta.url));

/**
 * V8 flags every child runs with (the relay's too; docker/Dockerfile's `pvblk` wrapper passes the same):
 *
 * - `--min-semi-space-size=16`: a young generation that starts at 16 MiB per semi-space instead of
 *   V8's 1 MiB. Under load the broker holds a turn's messages and views of page data while Buffers of
 *   ≈ 135 KiB (a QD32 frame) come and go; from the small default, some runs settled into promoting
 *   those objects and a full mark-compact every 40-90 ms (`pvblk bench` 4 KiB randwrite QD32: 3 of 5
 *   runs slow without the flag, 9 of 9 fast with it). Costs ≈ 30 MiB of RSS per process.
 * - `--no-incremental-marking`: V8 counts the ArrayBuffers allocated since its last mark-compact
 *   against the old generation's limit, and a process that moves 128 KiB frames allocates them fast
 *   and briefly (one per socket read, one per ws message that spans reads); they die young, but only a
 *   scavenge frees them, and a process that allocates little else scavenges rarely. Some runs
 *   settled into starting an incremental marking on that count every 30-160 ms, each ending in a
 *   mark-compact that found the old generation as it was (15.5 → 15.1 MB): the broker then spent 3-4×
 *   its usual CPU per 128 KiB I/O. Without incremental marking V8 collects the old generation only
 *   when it is full (bench/collector.ts: the runs and counts are in docs/performance.md).
 * - `--heap-growing-percent=50`: the old generation's limit after a collection is 1.5× what survived
 *   it. Without incremental marking, V8's own factor let the broker's old generation grow from 15 to
 *   59 MB before its second full collection, 100 s into a 4 KiB QD32 run: in four 60 s runs its RSS
 *   rose 14-27 MiB (second-half slopes of 11-35 MiB/min). With the fixed factor it was collected about
 *   twice a minute, and flat (second-half slopes of 0.01-2.15 MiB/min in four runs).
 *
 * `PVBLK_NODE_FLAGS` (space-separated) replaces the list, for experiments with the collector.
 */
export const CHILD_NODE_FLAGS: readonly string[] = [
  '--min-semi-space-size=16',
  '--no-incremental-marking',
  '--heap-growing-percent=50',
];

/** The flags children get: CHILD_NODE_FLAGS, or `PVBLK_NODE_FLAGS` when the environment sets it. */
export function childNodeFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = env.PVBLK_NODE_FLAGS;
  if (raw === undefined) return [...CHILD_NODE_FLAGS];
  const flags = raw.split(/\s+/).filter((f) => f.length > 0);
  for (const f of flags)
    if (!/^--[a-z][a-z0-9_-]*(=\S+)?$/i.test(f))
      throw new PvblkError(
        'EINVAL',
        `PVBLK_NODE_FLAGS: "${f}" is not a node option (--name or --name=value)`,
      );
  return flags;
}

export type LogRecord = Record<string, unknown> & { level?: number; msg?: string };

export interface ChildSpec {
  name: string;
  args: string[];
  env?: Record<string, string>;
  /** Stop order when it is not the role's (`tierOf`): the relay baseline's clients, server, router. */
  tier?: number;
  /**
   * The values of its `@parent` options, by option name, once they are known (from-parent.ts): given
   * when the child asks for them. Never given when this rejects (the stack then stops).
   */
  values?: Promise<Record<string, string>>;
}

/** How a child ended, as a shell reports it: its exit code, or 128 + the number of the signal. */
export interface ChildExit {
  status: number;
  signal: NodeJS.Signals | null;
}

export interface StackChild {
  name: string;
  /** Stop order: higher tiers stop first. */
  tier: number;
  proc: ChildProcess;
  ready: Promise<LogRecord>;
  /** Resolves once the child has exited and everything it wrote has been read. */
  exited: Promise<ChildExit>;
  /** Every record the child logged, in order (for diagnostics when startup fails). */
  records: LogRecord[];
}

export interface SupervisorOptions {
  /** Called with every record of every child. */
  onRecord(child: string, r: LogRecord): void;
  /** Non-JSON output of a child (a crash trace). */
  onText(child: string, line: string): void;
}

/** Answers a child's `values?` with its `@parent` options' values, once they are known (from-parent.ts). */
function giveValues(proc: ChildProcess, values: Promise<Record<string, string>>): void {
  let asked = false;
  let known: Record<string, string> | null = null;
  const give = () => {
    if (asked && known && proc.connected)
      proc.send({ type: 'values', values: known }, undefined, undefined, () => {});
  };
  proc.on('message', (m: unknown) => {
    if ((m as { type?: unknown } | null)?.type !== 'values?') return;
    asked = true;
    give();
  });
  values.then(
    (v) => {
      known = v;
      give();
    },
    () => {},
  );
}

/** "exited with status 1", "was killed by SIGKILL (status 137)". */
export function describeExit(e: ChildExit): string {
  return e.signal ? `was killed by ${e.signal} (status ${e.status})` : `exited with status ${e.status}`;
}

/**
 * The children of `pvblk up`/`run`. Each runs in its own session (a terminal's Ctrl-C reaches only
 * this process, which stops them in order) with an IPC channel it watches: if this process dies,
 * however it dies, they see the channel close and shut down on their own.
 */
export class Supervisor {
  readonly children: StackChild[] = [];
  private stopping: Promise<void> | null = null;
  private flushSeq = 0;
  private readonly flushWaiters = new Map<number, () => void>();

  private readonly nodeFlags: string[];

  constructor(private readonly opts: SupervisorOptions) {
    this.nodeFlags = childNodeFlags();
  }

  start(spec: ChildSpec): StackChild {
    if (this.stopping) throw new Error(`not starting ${spec.name}: the stack is stopping`);
    const proc = spawn(process.execPath, [...this.nodeFlags, PVBLK_BIN, ...spec.args], {
      // an explicit environment, never a copy of ours (child-env.ts)
      env: {
        ...(spec.env ?? baseEnv(null)),
        PVBLK_LOG_FORMAT: 'json',
        ...(spec.values ? { [PARENT_GIVES_VALUES]: '1' } : {}),
      },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      detached: true,
    });
    // A child that is gone cannot take a message: the error is the `exited` path's business.
    proc.on('error', () => {});
    if (spec.values) giveValues(proc, spec.values);
    const records: LogRecord[] = [];
    let markReady!: (r: LogRecord) => void;
    let failReady!: (e: Error) => void;
    const ready = new Promise<LogRecord>((res, rej) => {
      markReady = res;
      failReady = rej;
    });
    ready.catch(() => {});
    const handleLine = (line: string) => {
      if (line.length === 0) return;
      let r: LogRecord | null = null;
      if (line.startsWith('{')) {
        try {
          r = JSON.parse(line) as LogRecord;
        } catch {
          r = null;
        }
      }
      if (!r) return this.opts.onText(spec.name, line);
      if (r.event === 'flushed' && typeof r.id === 'number') {
        this.flushWaiters.get(r.id)?.();
        return;
      }
      records.push(r);
      if (r.event === 'ready') markReady(r);
      this.opts.onRecord(spec.name, r);
    };
    createInterface({ input: proc.stdout! }).on('line', handleLine);
    createInterface({ input: proc.stderr! }).on('line', (l) => this.opts.onText(spec.name, l));
    // 'close' comes after 'exit' and after the child's stdout and stderr have been read to the end
    const exited = new Promise<ChildExit>((res) => {
      proc.on('close', (code, signal) => {
        const e = { status: shellStatus(code, signal), signal };
        failReady(new Error(`${spec.name} ${describeExit(e)} before it was ready`));
        res(e);
      });
    });
    const child: StackChild = {
      name: spec.name,
      tier: spec.tier ?? tierOf(spec.args[0]),
      proc,
      ready,
      exited,
      records,
    };
    this.children.push(child);
    return child;
  }

  /**
   * Waits until everything `child` logged so far has been read: it answers a flush request on the IPC
   * channel with a record that follows all of its earlier records on its stdout.
   */
  async flush(child: StackChild): Promise<void> {
    if (!child.proc.connected) return;
    const id = ++this.flushSeq;
    const answered = new Promise<void>((res) => this.flushWaiters.set(id, res));
    child.proc.send({ type: 'flush', id });
    await Promise.race([answered, child.exited]);
    this.flushWaiters.delete(id);
  }

  /**
   * SIGTERM by tiers, highest first — the guests shut down (flush, close their vbds) while the host
   * and the hypervisor are still there — and SIGKILL what is left after the grace period.
   */
  stopAll(graceMs = 5000): Promise<void> {
    this.stopping ??= (async () => {
      const tiers = [...new Set(this.children.map((c) => c.tier))].sort((a, b) => b - a);
      for (const tier of tiers) {
        await Promise.all(
          this.children
            .filter((c) => c.tier === tier)
            .map(async (c) => {
              if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGTERM');
              const t = setTimeout(() => c.proc.kill('SIGKILL'), graceMs);
              await c.exited;
              clearTimeout(t);
            }),
        );
      }
    })();
    return this.stopping;
  }
}

export interface StackOptions {
  guests: string[];
  disk: string;
  dataDir: string | null;
  runDir: string;
  host: string;
  port: number;
  hostArgs: string[];
  guestArgs: string[];
  /** A directory of this stack's own: each guest's files (its `/tmp`, …) live in `<workDir>/<name>`. */
  workDir: string;
}

export interface RunningStack {
  supervisor: Supervisor;
  hypervisorUrl: string;
  apiUrl: string;
  sockets: Map<string, string>;
}

/**
 * Stop order by role (the child's first argument): guests first, every one at once, then the host,
 * then the hypervisor.
 */
function tierOf(role: string | undefined): number {
  return role === 'hypervisor' ? 0 : role === 'host' ? 1 : 2;
}

/**
 * Starts the hypervisor, the host and the guests, all at once: each loads its code while the others
 * do. The host gets the hypervisor's address once the hypervisor is ready, each guest the host's API
 * once the host is (from-parent.ts), so they come up in that order as before. Resolves when every
 * guest is ready; on a rejection the caller stops what was started (`Supervisor.stopAll`).
 */
export async function startStack(sup: Supervisor, o: StackOptions): Promise<RunningStack> {
  const creds = stackCredentials();
  await mkdir(o.runDir, { recursive: true });
  const hv = sup.start({
    name: 'hypervisor',
    args: ['hypervisor', '--host', o.host, '--port', String(o.port)],
    env: childEnv('hypervisor', creds),
  });
  const hypervisorUrl = hv.ready.then((r) => String(r.url));
  const hostArgs = ['host', '--hypervisor', FROM_PARENT, '--disk', o.disk, '--api-port', '0', ...o.hostArgs];
  if (o.dataDir) hostArgs.push('--data-dir', resolve(o.dataDir));
  else hostArgs.push('--memory');
  const host = sup.start({
    name: 'host',
    args: hostArgs,
    env: childEnv('host', creds),
    values: hypervisorUrl.then((u) => ({ '--hypervisor': u })),
  });
  const apiUrl = host.ready.then((r) => String(r.api));
  const addresses = Promise.all([hypervisorUrl, apiUrl]);
  const sockets = new Map<string, string>();
  const guests = o.guests.map((name) => {
    const sock = join(o.runDir, `${name}.sock`);
    sockets.set(name, sock);
    return sup.start({
      name,
      args: [
        'domu',
        '--name',
        name,
        '--hypervisor',
        FROM_PARENT,
        '--toolstack',
        FROM_PARENT,
        '--control',
        sock,
        '--root',
        join(o.workDir, name),
        ...o.guestArgs,
      ],
      env: childEnv('guest', creds, name),
      values: addresses.then(([h, a]) => ({ '--hypervisor': h, '--toolstack': a })),
    });
  });
  const guestsReady = Promise.all(guests.map((g) => g.ready));
  guestsReady.catch(() => {});
  // no guest is ready before the addresses are known; one that dies while it waits for them is
  // reported then, not once the hypervisor and the host are ready
  const [hvAddress, api] = await Promise.race([addresses, guestsReady.then(() => addresses)]);
  publishOperatorAccess(o.runDir, { api, hypervisor: hvAddress, token: creds.operatorToken });
  await guestsReady;
  return { supervisor: sup, hypervisorUrl: hvAddress, apiUrl: api, sockets };
}

/** A renderer that prefixes each line with the process name padded to a common width. */
export function prefixer(names: string[]): (name: string, text: string) => string {
  const width = Math.max(...names.map((n) => n.length));
  return (name, text) => `${name.padEnd(width)} | ${text}`;
}

export { renderRecord };

/**
 * Rejects, naming the child and how it ended, when any of `children` exits: for processes that must
 * outlive what is being waited for. Never settles otherwise; a rejection nobody races is ignored
 * (the stop at the end of a run makes them all exit).
 */
export function anyExit(children: StackChild[]): Promise<never> {
  const gone = Promise.race(
    children.map((c) =>
      c.exited.then((e) => Promise.reject(new Error(`${c.name} ${describeExit(e)} during the run`))),
    ),
  );
  gone.catch(() => {});
  return gone;
}
