import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';

const FIXTURE = fileURLToPath(new URL('./fixtures/log-sink-child.ts', import.meta.url));
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

type Mode = 'stall' | 'exit' | 'signal' | 'plain';
const LIMIT_MS = 15_000;

/**
 * The child, its stdout a socket left unread (paused) until the test reads it; `viaPipe` puts a
 * shell pipe (`| cat`) between the child's stdout and the test instead.
 */
function start(mode: Mode, count: number, holdBytes: number, viaPipe = false) {
  const argv = ['--import', 'tsx', FIXTURE, mode, String(count), String(holdBytes)];
  const quoted = [process.execPath, ...argv].map((a) => `'${a}'`).join(' ');
  const proc = viaPipe
    ? spawn('/bin/sh', ['-c', `${quoted} | cat`], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  children.push(proc);
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    proc.on('close', (code, signal) => res({ code, signal })),
  );
  const failAfter = (what: string) =>
    new Promise<never>((_, reject) => {
      setTimeout(
        () => reject(new Error(`no word from the child in ${LIMIT_MS} ms that ${what}`)),
        LIMIT_MS,
      ).unref();
    });
  const endedBefore = (what: string) =>
    closed.then(({ code, signal }) => {
      throw new Error(`the child ended (${code ?? signal}) before ${what}; stderr: ${stderr}`);
    });
  let text = '';
  const readers: Array<() => void> = [];
  /** Reads the rest of stdout, from now on, to its end. */
  const readAll = async (): Promise<Record<string, unknown>[]> => {
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      text += d;
      for (const r of readers) r();
    });
    await closed;
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  };
  /** Resolves once `needle` has been read from stdout (or said on stderr). */
  const seen = (needle: string, on: 'stdout' | 'stderr' = 'stdout') =>
    Promise.race([
      new Promise<void>((resolve) => {
        const check = () => ((on === 'stdout' ? text : stderr).includes(needle) ? resolve() : undefined);
        if (on === 'stdout') readers.push(check);
        else proc.stderr!.on('data', check);
        check();
      }),
      endedBefore(`writing ${needle}`),
      failAfter(`it wrote ${needle}`),
    ]);
  // bounded: a child whose writes wait for the reader never gets this far, and says nothing
  const message = <T>(what: string): Promise<T> =>
    Promise.race([once(proc, 'message').then(([m]) => m as T), endedBefore(what), failAfter(what)]);
  return { proc, closed, readAll, seen, message, stderr: () => stderr };
}

const seqs = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe("a process's log when its stdout stops being read", () => {
  it('goes on without waiting for the reader, holds up to its bound, counts what it dropped where it was, and never drops the answer to a flush', async () => {
    const count = 10_000; // about 2.8 MB of records, far more than the socket holds
    const holdBytes = 256 * 1024;
    const c = start('stall', count, holdBytes);
    // all of it logged while nothing read: the writes did not wait for the reader
    const logged = await c.message<{ logged: number; pending: number }>('it had logged');
    expect(logged.logged).toBe(count);
    expect(logged.pending).toBeGreaterThan(0);
    expect(logged.pending).toBeLessThanOrEqual(holdBytes + 1024);
    // and its event loop runs
    c.proc.send('ping');
    expect(await c.message<string>('it answered a ping')).toBe('pong');
    // the supervisor's flush (shutdown.ts), asked while records are being dropped: it waits for the answer
    c.proc.send({ type: 'flush', id: 7 });
    c.proc.send('ping');
    expect(await c.message<string>('it answered a second ping')).toBe('pong');
    const records = c.readAll();
    await c.seen('"event":"flushed"');
    c.proc.send('last');
    const got = await records;
    expect((await c.closed).code).toBe(0);

    const notice = got.findIndex((r) => r.event === 'log-dropped');
    expect(notice).toBeGreaterThan(0);
    const dropped = got[notice].dropped as number;
    expect(got[notice]).toMatchObject({ level: 40, name: 'child' });
    expect(got[notice].msg).toBe(`** ${dropped} log records dropped: stdout was not being read **`);
    // every record from the first, in order, up to the gap; the notice where it is; the flush's
    // answer next; then the last record: nothing else was lost, nothing came twice
    expect(got.slice(0, notice).map((r) => r.seq)).toEqual(seqs(0, notice));
    expect(notice + dropped).toBe(count);
    expect(got.slice(notice + 1)).toMatchObject([
      { event: 'flushed', id: 7 },
      { seq: count, msg: 'last' },
    ]);
  });

  it('writes every record it holds before the process exits', async () => {
    const count = 3_000; // about 840 KB: more than the socket holds, less than the 4 MiB bound
    const c = start('exit', count, 4 * 1024 * 1024);
    // the child has logged everything and called process.exit with the records still held
    await c.seen('exiting', 'stderr');
    const got = await c.readAll();
    expect((await c.closed).code).toBe(3);
    expect(got.map((r) => r.seq)).toEqual(seqs(0, count));
  });

  it('writes every record it holds before a signal ends it, with no cleanup registered yet', async () => {
    const count = 3_000;
    const c = start('signal', count, 4 * 1024 * 1024);
    await c.seen('logged', 'stderr');
    c.proc.kill('SIGTERM');
    const got = await c.readAll();
    expect((await c.closed).signal).toBe('SIGTERM');
    expect(got.map((r) => r.seq)).toEqual(seqs(0, count));
  });

  it('stops writing, and lives on, when the reader has gone', async () => {
    const c = start('stall', 10_000, 256 * 1024);
    c.proc.stdout!.destroy();
    const logged = await c.message<{ logged: number; pending: number }>('it had logged');
    expect(logged.logged).toBe(10_000);
    expect(logged.pending).toBe(0);
    c.proc.send('last');
    expect((await c.closed).code).toBe(0);
    expect(c.stderr()).toBe('');
  });

  it('writes through a shell pipe (a FIFO, which it opens again non-blocking) as through a socket', async () => {
    const c = start('plain', 100, 4 * 1024 * 1024, true);
    const got = await c.readAll();
    expect((await c.closed).code).toBe(0);
    expect(c.stderr()).toBe('');
    expect(got.map((r) => r.seq)).toEqual(seqs(0, 100));
  });
});
