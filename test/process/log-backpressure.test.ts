/**
 * A pvblk process whose stdout is not being read — the operator's console stopped — keeps running:
 * its logger holds LOG_BUFFER_BYTES of records, drops what does not fit and says how many once the
 * reader reads again (packages/runtime/src/logger.ts). Across a real process boundary: the child's
 * stdout is the socket Node gives it, which this test leaves unread.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { LOG_BUFFER_BYTES } from '@pvblk/runtime';

const REGISTER = fileURLToPath(new URL('../../bin/register.mjs', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/log-flood.ts', import.meta.url));

describe("a process's log when nobody reads it", () => {
  it('does not stop the process: records past LOG_BUFFER_BYTES are dropped, counted and the count logged once read', async () => {
    const count = 10_000; // ≈ 11 MB of records, more than twice the buffer
    const child = spawn(process.execPath, ['--import', REGISTER, FIXTURE, String(count)], {
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    });
    onTestFinished(() => void child.kill('SIGKILL'));
    child.stdout!.pause(); // unread: once its socket and our buffer are full, its writes wait
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const alive = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('the process stalled: no word from it in 20 s')), 20_000);
      child.once('message', (m) => {
        clearTimeout(t);
        resolve(m);
      });
    });
    expect(alive).toEqual({ alive: true });

    // the console reads again
    const records: Record<string, unknown>[] = [];
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (l) => records.push(JSON.parse(l) as Record<string, unknown>));
    const closed = new Promise((r) => lines.once('close', r));
    child.stdout!.resume();
    child.send('exit');
    expect(await exited).toBe(0);
    await closed;

    const kept = records.filter((r) => typeof r.i === 'number').map((r) => r.i as number);
    const report = records.filter((r) => typeof r.dropped === 'number');
    expect(report).toHaveLength(1);
    const dropped = report[0].dropped as number;
    expect(report[0].msg).toBe(`** ${dropped} log records dropped **`);
    expect(report[0].level).toBe(40);
    expect(dropped).toBeGreaterThan(0);
    expect(kept.length + dropped).toBe(count);
    // what was kept is what fitted, first come first kept, in order
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, k) => k));
    expect(kept.length * 1000).toBeLessThanOrEqual(LOG_BUFFER_BYTES);
    expect(records.at(-1)?.msg).toBe('last record');
  });
});
