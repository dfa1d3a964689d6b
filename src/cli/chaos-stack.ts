/**
 * The processes of one chaos run and the controls on them: start, kill (SIGKILL), stop (SIGSTOP /
 * SIGCONT), restart; the hypervisor's and the host's operator endpoints; running a batch of the
 * workload in a guest through its control socket.
 *
 * Two modes. Local: the controller starts the hypervisor, the host and the guests as child processes
 * (through the stack's Supervisor) in a directory of its own, and owns all of them. Attached: the
 * hypervisor and the host are someone else's (a compose stack); the controller starts only its own
 * guests, reaches the rest over HTTP with the operator's credential, and cannot signal them.
 *
 * A hypervisor restart is a host reboot: the host and every guest lose their connection and exit,
 * and the controller brings everything back (guests find their disks by name). Data acknowledged
 * with O_DIRECT, or fsynced, must survive it; a guest's page cache does not.
 */
import { mkdir, rm, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { runInGuest } from '@pvblk/frontend';
import { PvblkError } from '@pvblk/shared';
import { Supervisor, type LogRecord, type StackChild } from './stack.ts';
import { childEnv, stackCredentials, type StackCredentials } from './child-env.ts';
import { fetchAnswer } from '@pvblk/runtime';

export interface ChaosStackOptions {
  guests: string[];
  /** scsi_debug parameters of the guests' disks. */
  disk: string;
  /** Extra arguments of the host (blkback) and the guests (blkfront). */
  hostArgs: string[];
  guestArgs: string[];
  /** Attach to a running stack instead of starting one. */
  attach?: { hypervisorUrl: string; apiUrl: string; dom0Secret: string; toolstackToken: string };
  /** Every log record of every child (tracing). */
  onRecord?(child: string, r: LogRecord): void;
  onText?(child: string, line: string): void;
}

export interface GuestProc {
  name: string;
  child: StackChild;
  socket: string;
  domid: number;
}

/** What a batch in a guest came back with. */
export type BatchOutcome =
  { kind: 'done'; out: Record<string, unknown> } | { kind: 'interrupted'; why: string } | { kind: 'hung' };

const wait = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` until true or `ms` passed (conditions across processes have no event to wait on). */
export async function until<T>(
  cond: () => Promise<T | null | false>,
  ms: number,
  every = 25,
): Promise<T | null> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond().catch(() => null);
    if (v) return v;
    if (Date.now() > end) return null;
    await wait(every);
  }
}

export class ChaosStack {
  readonly sup: Supervisor;
  private readonly creds: StackCredentials;
  private dir = '';
  hv: StackChild | null = null;
  host: StackChild | null = null;
  hypervisorUrl = '';
  apiUrl = '';
  private hvPort = 0;
  private apiPort = 0;
  readonly guests = new Map<string, GuestProc>();
  /** Children the controller expects to exit (it killed them, or cut their link). */
  private readonly expected = new Set<StackChild>();
  /** Children that exited when nobody expected it. */
  readonly crashes: Array<{ name: string; code: number | null }> = [];

  constructor(private readonly o: ChaosStackOptions) {
    this.sup = new Supervisor({
      onRecord: (c, r) => o.onRecord?.(c, r),
      onText: (c, l) => o.onText?.(c, l),
    });
    // attached: the operator's credentials (a guest's token derives from the operator token)
    this.creds = o.attach
      ? { dom0Secret: o.attach.dom0Secret, operatorToken: o.attach.toolstackToken, enrolToken: null }
      : stackCredentials();
  }

  get attached(): boolean {
    return this.o.attach !== undefined;
  }

  get dom0Secret(): string {
    return this.creds.dom0Secret;
  }

  /** The hypervisor's HTTP base (its WebSocket URL, as http). */
  get hvHttp(): string {
    return this.hypervisorUrl.replace(/^ws/, 'http').replace(/\/$/, '');
  }

  private watch(c: StackChild): StackChild {
    void c.exited.then((e) => {
      if (!this.expected.has(c)) this.crashes.push({ name: c.name, code: e.status });
    });
    return c;
  }

  async start(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'pvblk-chaos-'));
    await mkdir(join(this.dir, 'run'), { recursive: true });
    if (this.o.attach) {
      this.hypervisorUrl = this.o.attach.hypervisorUrl;
      this.apiUrl = this.o.attach.apiUrl.replace(/\/$/, '');
    } else {
      await this.startHypervisor();
      await this.startHost();
    }
  }

  async startHypervisor(): Promise<void> {
    const c = this.watch(
      this.sup.start({
        name: 'hypervisor',
        args: ['hypervisor', '--host', '127.0.0.1', '--port', String(this.hvPort)],
        env: childEnv('hypervisor', this.creds),
      }),
    );
    const r = await c.ready;
    this.hv = c;
    this.hypervisorUrl = String(r.url);
    this.hvPort = Number(r.port);
  }

  async startHost(): Promise<void> {
    const c = this.watch(
      this.sup.start({
        name: 'host',
        args: [
          'host',
          '--hypervisor',
          this.hypervisorUrl,
          '--disk',
          this.o.disk,
          '--api-port',
          String(this.apiPort),
          '--data-dir',
          join(this.dir, 'data'),
          ...this.o.hostArgs,
        ],
        env: childEnv('host', this.creds),
      }),
    );
    const r = await c.ready;
    this.host = c;
    this.apiUrl = String(r.api);
    this.apiPort = Number(new URL(this.apiUrl).port);
  }

  /** Starts a guest and waits until its disk is up; null (and the child killed) if it did not come up. */
  async startGuest(name: string, timeoutMs = 30_000): Promise<GuestProc | null> {
    const socket = join(this.dir, 'run', `${name}.sock`);
    const c = this.watch(
      this.sup.start({
        name,
        args: [
          'domu',
          '--name',
          name,
          '--hypervisor',
          this.hypervisorUrl,
          '--toolstack',
          this.apiUrl,
          '--control',
          socket,
          // the guest's own files live in the run's directory: a killed guest leaves nothing behind
          '--root',
          join(this.dir, 'root', name),
          ...this.o.guestArgs,
        ],
        env: childEnv('guest', this.creds, name),
      }),
    );
    const r = await Promise.race([c.ready.catch(() => null), wait(timeoutMs).then(() => null)]);
    if (!r || !Array.isArray(r.disks) || !(r.disks as unknown[]).includes('xvda')) {
      await this.kill(c, 'SIGKILL');
      return null;
    }
    const g = { name, child: c, socket, domid: Number(r.domid) };
    this.guests.set(name, g);
    return g;
  }

  /** Sends a signal to a child; for SIGKILL/SIGTERM waits for it to exit. */
  async kill(c: StackChild, signal: NodeJS.Signals): Promise<void> {
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
    if (signal === 'SIGKILL' || signal === 'SIGTERM') this.expected.add(c);
    c.proc.kill(signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM') await c.exited;
  }

  /** The child is going to exit because of what the controller did (a cut connection). */
  expectExit(c: StackChild): void {
    this.expected.add(c);
  }

  /** Stops a child for `ms` (SIGSTOP … SIGCONT), as if its vCPUs or its whole machine froze. */
  async freeze(c: StackChild, ms: number): Promise<void> {
    if (c.proc.exitCode !== null) return;
    c.proc.kill('SIGSTOP');
    await wait(ms);
    c.proc.kill('SIGCONT');
  }

  /** Kills (or finds dead) the host and starts a new one on the same API port. */
  async restartHost(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.host) await this.kill(this.host, signal);
    await this.startHost();
  }

  /** The domain of a guest is gone from the hypervisor (so a new one of that name may be created). */
  async domainGone(domid: number, ms = 10_000): Promise<boolean> {
    return (
      (await until(async () => {
        const st = (await this.hvGet('/status')) as { domains: Array<{ domid: number }> };
        return !st.domains.some((d) => d.domid === domid);
      }, ms)) !== null
    );
  }

  /** Kills a guest (if alive) and starts it again, retrying a start that did not come up. */
  async restartGuest(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<GuestProc | null> {
    const g = this.guests.get(name);
    if (g) {
      await this.kill(g.child, signal);
      this.guests.delete(name);
      if (!(await this.domainGone(g.domid))) return null;
    }
    for (let attempt = 0; attempt < 3; attempt++) {
      const n = await this.startGuest(name);
      if (n) return n;
    }
    return null;
  }

  /** A host reboot: the hypervisor dies, everyone else follows; everything is started again. */
  async reboot(): Promise<boolean> {
    if (!this.hv) throw new PvblkError('EINVAL', 'no hypervisor of ours to restart');
    for (const c of [this.host, ...[...this.guests.values()].map((g) => g.child)]) if (c) this.expectExit(c);
    await this.kill(this.hv, 'SIGKILL');
    // they notice the lost link and exit on their own; what has not within 5 s is killed
    for (const c of [this.host, ...[...this.guests.values()].map((g) => g.child)]) {
      if (!c) continue;
      const gone = await Promise.race([c.exited.then(() => true), wait(5000).then(() => false)]);
      if (!gone) await this.kill(c, 'SIGKILL');
    }
    const names = [...this.guests.keys()];
    this.guests.clear();
    await this.startHypervisor();
    await this.startHost();
    for (const n of names) if (!(await this.restartGuest(n))) return false;
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // HTTP

  private async http(
    base: string,
    auth: string,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<unknown> {
    const res = await fetchAnswer(
      base + path,
      {
        method,
        headers: {
          authorization: `Bearer ${auth}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      },
      10_000,
    );
    const text = await res.text();
    let v: unknown = null;
    try {
      v = JSON.parse(text);
    } catch {
      v = text;
    }
    if (!res.ok) {
      const m = (v as { message?: string })?.message ?? text;
      throw new PvblkError('EIO', `${method} ${path}: ${res.status} ${m}`);
    }
    return v;
  }

  hvGet(path: string): Promise<unknown> {
    return this.http(this.hvHttp, this.dom0Secret, 'GET', path);
  }
  hvSend(method: string, path: string, body?: unknown): Promise<unknown> {
    return this.http(this.hvHttp, this.dom0Secret, method, path, body);
  }
  /** The host's operator routes (/dm, /blkback). */
  hostSend(method: string, path: string, body?: unknown): Promise<unknown> {
    return this.http(this.apiUrl, this.dom0Secret, method, path, body);
  }
  /** The host's management API (the operator token): scsi_debug parameters, guests and disks. */
  apiSend(method: string, path: string, body?: unknown): Promise<unknown> {
    return this.http(this.apiUrl, this.creds.operatorToken, method, path, body);
  }

  /** The host disk of a guest (`sdg`), from the management API. */
  async diskOf(name: string): Promise<{ disk: string; sectors: number }> {
    const l = (await this.apiSend('GET', '/guests')) as { disks: Array<{ guest: string; path: string }> };
    const d = l.disks.find((x) => x.guest === name);
    if (!d) throw new PvblkError('ENOENT', `no disk for guest ${name}`);
    const disk = d.path.slice(5);
    const dm = (await this.hostSend('GET', '/dm')) as { disks: Array<{ disk: string; sectors: number }> };
    const s = dm.disks.find((x) => x.disk === disk || x.disk.startsWith(disk));
    if (!s) throw new PvblkError('ENOENT', `no device-mapper stack on ${disk}`);
    return { disk: s.disk, sectors: s.sectors };
  }

  // ---------------------------------------------------------------------------------------------
  // the workload

  /** Runs one chaos-io batch in a guest; `hung` when nothing came back within `timeoutMs`. */
  async batch(name: string, argv: string[], timeoutMs: number): Promise<BatchOutcome> {
    const g = this.guests.get(name);
    if (!g) return { kind: 'interrupted', why: `guest ${name} is not running` };
    let out = '';
    let err = '';
    const run = runInGuest(
      g.socket,
      { argv: ['chaos-io', '/dev/xvda', ...argv] },
      { stdout: (t) => (out += t), stderr: (t) => (err += t), kmsg: () => {} },
    ).then(
      (code): BatchOutcome => {
        if (code !== 0) return { kind: 'interrupted', why: `chaos-io exited ${code}: ${err.trim()}` };
        try {
          return { kind: 'done', out: JSON.parse(out) as Record<string, unknown> };
        } catch {
          return { kind: 'interrupted', why: `chaos-io printed no result: ${out.slice(0, 200)}` };
        }
      },
      (e: Error): BatchOutcome => ({ kind: 'interrupted', why: e.message }),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<BatchOutcome>((r) => {
      timer = setTimeout(() => r({ kind: 'hung' }), timeoutMs);
    });
    try {
      return await Promise.race([run, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops everything of ours (newest first) and removes the run directory. */
  async stop(): Promise<void> {
    for (const c of this.sup.children) this.expected.add(c);
    await this.sup.stopAll(3000);
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  /** Stops children with SIGTERM, in order; returns those that did not exit with 0 (a crash at shutdown). */
  async stopCleanly(
    children: Array<StackChild | null>,
  ): Promise<Array<{ name: string; code: number | null }>> {
    const bad: Array<{ name: string; code: number | null }> = [];
    for (const c of children) {
      if (!c || c.proc.exitCode !== null || c.proc.signalCode !== null) continue;
      this.expected.add(c);
      c.proc.kill('SIGTERM');
      const code = await Promise.race([c.exited.then((e) => e.status), wait(5000).then(() => -1)]);
      if (code !== 0) bad.push({ name: c.name, code });
    }
    return bad;
  }
}
