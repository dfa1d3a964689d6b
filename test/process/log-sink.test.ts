import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';

const FIXTURE = fileURLToPath(new URL('./fixtures/log-sink-child.ts', import.meta.url));
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** The child, its stdout left unread (paused) until the test reads it. */
function start(mode: 'stall' | 'exit', count: number, holdBytes: number) {
  const proc = spawn(process.execPath, ['--import', 'tsx', FIXTURE, mode, String(count), String(holdBytes)], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  children.push(proc);
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const closed = new Promise<number | null>((res) => proc.on('close', (code) => res(code)));
  /** Reads the rest of stdout, from now on, to its end; `seen` tells when some text has come. */
  let text = '';
  const readers: Array<() => void> = [];
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
  const seen = (needle: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => (text.includes(needle) ? resolve() : undefined);
      readers.push(check);
      void closed.then((code) => reject(new Error(`ended (${code}) before writing ${needle}`)));
      check();
    });
  // bounded: a child whose writes wait for the reader never gets this far, and says nothing
  const message = <T>(what: string): Promise<T> =>
    Promise.race([
      once(proc, 'message').then(([m]) => m as T),
      closed.then((code) => {
        throw new Error(`the child ended (${code}) before ${what}; stderr: ${stderr}`);
      }),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`no word from the child in 15 s that ${what}`)), 15_000).unref(),
      ),
    ]);
  return { proc, closed, readAll, seen, message, stderr: () => stderr };
}

describe("a process's log when its stdout stops being read", () => {
  it('goes on without waiting for the reader, holds up to its bound, and counts what it dropped where it was', async () => {
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
    const records = c.readAll();
    // once the reader is back, what was held goes out, then the notice of what was dropped
    await c.seen('"event":"log-dropped"');
    c.proc.send('last');
    const got = await records;
    expect(await c.closed).toBe(0);

    const notices = got.filter((r) => r.event === 'log-dropped');
    expect(notices).toHaveLength(1);
    const gap = got.indexOf(notices[0]);
    const before = got.slice(0, gap).map((r) => r.seq as number);
    const after = got.slice(gap + 1).map((r) => r.seq as number);
    const dropped = notices[0].dropped as number;
    expect(dropped).toBeGreaterThan(0);
    expect(notices[0]).toMatchObject({ level: 40, name: 'child' });
    expect(notices[0].msg).toBe(`** ${dropped} log records dropped: stdout was not being read **`);
    // what was written before the gap is every record from the first, in order; what follows it
    // takes up exactly where the dropped ones end, and the last record comes last
    expect(before).toEqual(Array.from({ length: before.length }, (_, i) => i));
    expect(after).toEqual(
      Array.from({ length: count + 1 - before.length - dropped }, (_, i) => before.length + dropped + i),
    );
    expect(after.at(-1)).toBe(count);
  });

  it('writes every record it holds before the process exits, however it exits', async () => {
    const count = 3_000; // about 840 KB: more than the socket holds, less than the 4 MiB bound
    const c = start('exit', count, 4 * 1024 * 1024);
    // the child has logged everything and called process.exit with the records still held
    await new Promise<void>((resolve, reject) => {
      const check = () => (c.stderr().includes('exiting') ? resolve() : undefined);
      c.proc.stderr!.on('data', check);
      void c.closed.then((code) => reject(new Error(`ended (${code}) before saying so: ${c.stderr()}`)));
      setTimeout(() => reject(new Error('the child did not get to its exit in 15 s')), 15_000).unref();
      check();
    });
    const got = await c.readAll();
    expect(await c.closed).toBe(3);
    expect(got.map((r) => r.seq)).toEqual(Array.from({ length: count }, (_, i) => i));
  });

  it('stops writing, and lives on, when the reader has gone', async () => {
    const c = start('stall', 10_000, 256 * 1024);
    c.proc.stdout!.destroy();
    const logged = await c.message<{ logged: number; pending: number }>('it had logged');
    expect(logged.logged).toBe(10_000);
    expect(logged.pending).toBe(0);
    c.proc.send('last');
    expect(await c.closed).toBe(0);
    expect(c.stderr()).toBe('');
  });
});
