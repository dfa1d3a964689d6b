/**
 * Starting the whole system locally, as real processes: the hypervisor, the host (Dom0) and N guests,
 * each a child `pvblk <role>` process. Their structured logs arrive on stdout as pino records; the
 * supervisor recognises readiness from them, renders them for humans with a `name |` prefix, and stops
 * everything on Ctrl-C or when the job is done.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { renderRecord } from '@pvblk/runtime';
import { baseEnv, childEnv, stackCredentials } from './child-env.ts';
import { publishOperatorAccess } from './xl-access.ts';

// children run the same entry point as this process (bin/pvblk.mjs in a checkout, the bundle in an image)
const PVBLK_BIN = process.argv[1] ?? fileURLToPath(new URL('../../bin/pvblk.mjs', import.meta.url));

export type LogRecord = Record<string, unknown> & { level?: number; msg?: string };

export interface ChildSpec {
  name: string;
  args: string[];
  env?: Record<string, string>;
}

export interface StackChild {
  name: string;
  proc: ChildProcess;
  ready: Promise<LogRecord>;
  exited: Promise<number | null>;
  /** Every record the child logged, in order (for diagnostics when startup fails). */
  records: LogRecord[];
}

export interface SupervisorOptions {
  /** Called with every record of every child. */
  onRecord(child: string, r: LogRecord): void;
  /** Non-JSON output of a child (a crash trace). */
  onText(child: string, line: string): void;
}

export function defaultRunDir(): string {
  return process.env.PVBLK_RUN_DIR ?? join(tmpdir(), `pvblk-${process.getuid?.() ?? 'user'}`);
}

export class Supervisor {
  readonly children: StackChild[] = [];
  private stopping = false;

  constructor(private readonly opts: SupervisorOptions) {}

  start(spec: ChildSpec): StackChild {
    const proc = spawn(process.execPath, [PVBLK_BIN, ...spec.args], {
      // an explicit environment, never a copy of ours (child-env.ts)
      env: { ...(spec.env ?? baseEnv(null)), PVBLK_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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
      records.push(r);
      if (r.event === 'ready') markReady(r);
      this.opts.onRecord(spec.name, r);
    };
    createInterface({ input: proc.stdout! }).on('line', handleLine);
    createInterface({ input: proc.stderr! }).on('line', (l) => this.opts.onText(spec.name, l));
    const exited = new Promise<number | null>((res) => {
      proc.on('exit', (code, signal) => {
        failReady(new Error(`${spec.name} exited (${code ?? signal}) before it was ready`));
        res(code ?? (signal ? 128 : null));
      });
    });
    const child = { name: spec.name, proc, ready, exited, records };
    this.children.push(child);
    return child;
  }

  /** SIGTERM everything (newest first), then SIGKILL what is left after the grace period. */
  async stopAll(graceMs = 5000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const c of [...this.children].reverse()) {
      if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGTERM');
      const t = setTimeout(() => c.proc.kill('SIGKILL'), graceMs);
      await c.exited;
      clearTimeout(t);
    }
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
}

export interface RunningStack {
  supervisor: Supervisor;
  hypervisorUrl: string;
  apiUrl: string;
  sockets: Map<string, string>;
}

/** Starts hypervisor, host and guests in order, each once the one before is ready. */
export async function startStack(sup: Supervisor, o: StackOptions): Promise<RunningStack> {
  const creds = stackCredentials();
  await mkdir(o.runDir, { recursive: true });
  const hv = sup.start({
    name: 'hypervisor',
    args: ['hypervisor', '--host', o.host, '--port', String(o.port)],
    env: childEnv('hypervisor', creds),
  });
  const hvReady = await hv.ready;
  const hypervisorUrl = String(hvReady.url);
  const hostArgs = [
    'host',
    '--hypervisor',
    hypervisorUrl,
    '--disk',
    o.disk,
    '--api-port',
    '0',
    ...o.hostArgs,
  ];
  if (o.dataDir) hostArgs.push('--data-dir', resolve(o.dataDir));
  else hostArgs.push('--memory');
  const host = sup.start({ name: 'host', args: hostArgs, env: childEnv('host', creds) });
  const apiUrl = String((await host.ready).api);
  publishOperatorAccess(o.runDir, { api: apiUrl, hypervisor: hypervisorUrl, token: creds.operatorToken });
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
        hypervisorUrl,
        '--toolstack',
        apiUrl,
        '--control',
        sock,
        ...o.guestArgs,
      ],
      env: childEnv('guest', creds, name),
    });
  });
  await Promise.all(guests.map((g) => g.ready));
  return { supervisor: sup, hypervisorUrl, apiUrl, sockets };
}

/** A renderer that prefixes each line with the process name padded to a common width. */
export function prefixer(names: string[]): (name: string, text: string) => string {
  const width = Math.max(...names.map((n) => n.length));
  return (name, text) => `${name.padEnd(width)} | ${text}`;
}

export { renderRecord };
