import { createConnection, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CONTROL_KMSG_DROP_AT,
  CONTROL_OUTPUT_HIGH,
  runInGuest,
  startControlServer,
  type ControlHandler,
  type ControlServer,
  type ControlServerOptions,
} from '../src/control.ts';
import { commandSignal } from '../src/guest/vfs.ts';

const CHUNK = 'x'.repeat(64 * 1024);

let server: ControlServer | null = null;
const clients: Socket[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await server?.close(100);
  server = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function serve(handler: ControlHandler, opts?: ControlServerOptions): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'pvblk-control-'));
  dirs.push(dir);
  const path = join(dir, 'guest.sock');
  server = await startControlServer(path, handler, opts);
  return path;
}

/** A client that sends `request` (if any) and collects the guest's lines; `paused` reads nothing yet. */
function client(path: string, request: unknown, paused = false) {
  const sock = createConnection(path);
  clients.push(sock);
  if (request !== undefined) sock.write(JSON.stringify(request) + '\n');
  if (paused) sock.pause();
  const lines: Array<Record<string, unknown>> = [];
  let rest = '';
  const ended = new Promise<Array<Record<string, unknown>>>((resolve) => {
    sock.on('data', (d: Buffer) => {
      rest += d.toString('utf8');
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(rest.slice(0, nl)) as Record<string, unknown>);
        rest = rest.slice(nl + 1);
      }
    });
    sock.on('close', () => resolve(lines));
  });
  return { sock, ended };
}

/** A promise and its resolver. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const p = new Promise<T>((r) => (resolve = r));
  return { p, resolve };
}

/** Whether `p` is still pending after the event loop's next turn. */
async function pendingAfterATurn(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void p.then(() => (settled = true));
  await new Promise((r) => setImmediate(r));
  return !settled;
}

describe('the control socket and a client that does not keep up', () => {
  it("holds a command that writes without end at the client's pace: output waits, nothing is lost", async () => {
    const chunks = 200; // 12.5 MiB
    const blocked = deferred<number>();
    const path = await serve(async (_req, s) => {
      let held = false;
      for (let i = 0; i < chunks; i++) {
        s.stdout(CHUNK);
        const room = s.drain();
        if (!held && (await pendingAfterATurn(room))) {
          held = true;
          blocked.resolve((i + 1) * CHUNK.length);
        }
        await room;
      }
      return 0;
    });
    const c = client(path, { argv: ['dd'] }, true);
    // the command stops writing long before its 12.5 MiB: the guest holds about CONTROL_OUTPUT_HIGH
    // (plus what the kernel's socket buffer took) instead of everything
    const writtenWhenHeld = await blocked.p;
    expect(writtenWhenHeld).toBeLessThan((chunks * CHUNK.length) / 2);
    expect(writtenWhenHeld).toBeGreaterThanOrEqual(CONTROL_OUTPUT_HIGH);
    c.sock.resume();
    const lines = await c.ended;
    const out = lines.filter((l) => 'out' in l).map((l) => l.out as string);
    expect(out.join('').length).toBe(chunks * CHUNK.length);
    expect(lines.at(-1)).toEqual({ exit: 0 });
  });

  it('drops kernel messages while the client is far behind, and says how many once it catches up', async () => {
    const emitted = deferred();
    const path = await serve(async (_req, s) => {
      // output nothing waits on, past the point where console messages are dropped
      for (let i = 0; i * CHUNK.length < 2 * CONTROL_KMSG_DROP_AT; i++) s.stdout(CHUNK);
      for (let i = 0; i < 5; i++) s.kmsg({ ts: 1 + i, level: 3, text: `lost ${i}` });
      emitted.resolve();
      await s.drain();
      s.kmsg({ ts: 10, level: 6, text: 'after' });
      return 0;
    });
    const c = client(path, { argv: ['x'] }, true);
    await emitted.p;
    c.sock.resume();
    const kmsgs = (await c.ended).filter((l) => 'kmsg' in l).map((l) => (l.kmsg as { text: string }).text);
    expect(kmsgs).toEqual(['** 5 printk messages dropped **', 'after']);
  });

  it('closes a connection that sends no request in time, saying so', async () => {
    const path = await serve(async () => 0, { requestTimeoutMs: 200 });
    const lines = await client(path, undefined).ended;
    expect(lines).toEqual([{ err: 'control: no request within 0.2 s\n' }, { exit: 2 }]);
  });

  it('the request has a deadline: a client that sends a byte now and then without a request is closed too', async () => {
    const path = await serve(async () => 0, { requestTimeoutMs: 300 });
    const c = client(path, undefined);
    c.sock.write('{');
    // the stimulus, not a wait: a byte every 20 ms until the guest closes the connection
    const drip = setInterval(() => c.sock.writable && c.sock.write(' '), 20);
    try {
      expect(await c.ended).toEqual([{ err: 'control: no request within 0.3 s\n' }, { exit: 2 }]);
    } finally {
      clearInterval(drip);
    }
  });

  it('serves a bounded number of sessions at once; one more is told so', async () => {
    const release = deferred();
    const started: number[] = [];
    const path = await serve(
      async () => {
        started.push(started.length);
        await release.p;
        return 0;
      },
      { maxSessions: 3 },
    );
    const held = [0, 1, 2].map(() => client(path, { argv: ['sleep'] }));
    await expect.poll(() => started.length).toBe(3);
    const extra = await client(path, { argv: ['sleep'] }).ended;
    expect(extra).toEqual([{ err: 'control: the guest serves 3 sessions already\n' }, { exit: 2 }]);
    release.resolve();
    for (const h of held) expect((await h.ended).at(-1)).toEqual({ exit: 0 });
    // the places are given back: a new session is served
    expect((await client(path, { argv: ['sleep'] }).ended).at(-1)).toEqual({ exit: 0 });
  });
});

describe('interrupting a command through the control socket', () => {
  /** Runs a command that waits for its interrupt and prints the signal it was given, by name. */
  async function interrupted(abort: (ac: AbortController) => void, when: 'before' | 'running') {
    const running = deferred();
    const path = await serve(async (_req, io) => {
      running.resolve();
      await new Promise((r) => (io.signal.aborted ? r(null) : io.signal.addEventListener('abort', r)));
      io.stdout(commandSignal(io.signal.reason));
      return 0;
    });
    const ac = new AbortController();
    // asked before the connection is made: the interrupt must still follow the command line
    if (when === 'before') abort(ac);
    let out = '';
    const status = runInGuest(
      path,
      { argv: ['sleep'] },
      { stdout: (t) => (out += t), stderr: () => {}, kmsg: () => {} },
      ac.signal,
    );
    if (when === 'running') {
      await running.p;
      abort(ac);
    }
    expect(await status).toBe(0);
    return out;
  }

  it('carries the name of the signal, and takes Ctrl-C for one it does not know', async () => {
    expect(await interrupted((ac) => ac.abort('SIGTERM'), 'running')).toBe('SIGTERM');
    expect(await interrupted((ac) => ac.abort('SIGHUP'), 'running')).toBe('SIGHUP');
    expect(await interrupted((ac) => ac.abort(), 'running')).toBe('SIGINT');
  });

  it('sends an interrupt asked for before the connection after the command, not in its place', async () => {
    expect(await interrupted((ac) => ac.abort('SIGTERM'), 'before')).toBe('SIGTERM');
  });

  it('reads a hostile interrupt line as Ctrl-C', async () => {
    const path = await serve(async (_req, io) => {
      await new Promise((r) => io.signal.addEventListener('abort', r));
      io.stdout(commandSignal(io.signal.reason));
      return 0;
    });
    for (const line of ['{"signal":"__proto__"}', '{"signal":"SIGKILL"}', '{"signal":', '"signal"']) {
      // the line after the request: the command is running when it is read
      const c = client(path, { argv: ['sleep'] });
      c.sock.write(line + '\n');
      expect(await c.ended, line).toEqual([{ out: 'SIGINT' }, { exit: 0 }]);
    }
  });
});
