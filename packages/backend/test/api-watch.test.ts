import { request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startApi, WATCH_STREAM_MAX_OWED, type ApiHandlers } from '../src/api.ts';

const OPERATOR = 'operator-token-0123456789';

let server: Server | null = null;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = null;
});

/** An API whose only route is the watch: `fire` sends an event to the watches open. */
async function watchApi() {
  const watches = new Set<(p: string) => void>();
  const asked: string[][] = [];
  let stopped = 0;
  const h = {
    watchXenstore: async (paths: string[], onEvent: (p: string) => void) => {
      asked.push(paths);
      watches.add(onEvent);
      return async () => {
        watches.delete(onEvent);
        stopped++;
      };
    },
  } as unknown as ApiHandlers;
  const api = await startApi('127.0.0.1', 0, { operatorToken: OPERATOR, enrolToken: null }, h);
  server = api.server;
  return {
    url: api.url,
    asked,
    fire: (p: string) => {
      for (const w of watches) w(p);
    },
    open: () => watches.size,
    stopped: () => stopped,
  };
}

/** Opens a watch stream; the response is handed over paused (nothing is read until resumed). */
function openWatch(url: string, query: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/xenstore/watch?${query}`, {
      headers: { authorization: `Bearer ${OPERATOR}` },
    });
    req.on('response', (res) => {
      res.pause();
      resolve(res);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('GET /xenstore/watch', () => {
  it('cuts off a client that stops reading instead of keeping what fires for it', async () => {
    const api = await watchApi();
    const res = await openWatch(api.url, 'path=/tool/x');
    res.on('error', () => {});
    const closed = new Promise<void>((r) => res.on('close', () => r()));
    expect(res.statusCode).toBe(200);
    expect(api.open()).toBe(1);
    // events of 3 KiB, fired a turn at a time, never read: bounded by the loop, not by a clock
    const path = '/tool/x/' + 'p'.repeat(3000);
    let firedBytes = 0;
    for (let turn = 0; turn < 2_000 && api.stopped() === 0; turn++) {
      for (let i = 0; i < 16; i++) api.fire(path);
      firedBytes += 16 * (path.length + 1);
      await new Promise((r) => setImmediate(r));
    }
    // the watch is gone: Dom0 kept at most what the socket's buffers and WATCH_STREAM_MAX_OWED hold
    expect(api.stopped()).toBe(1);
    expect(api.open()).toBe(0);
    expect(firedBytes).toBeGreaterThan(WATCH_STREAM_MAX_OWED);
    expect(firedBytes).toBeLessThan(64 * WATCH_STREAM_MAX_OWED);
    res.resume();
    await closed;
  });

  it('keeps a stream that is read, and watches a path given twice once', async () => {
    const api = await watchApi();
    const res = await openWatch(api.url, 'path=/tool/a&path=/tool/a&path=/tool/b');
    expect(api.asked).toEqual([['/tool/a', '/tool/b']]);
    res.setEncoding('utf8');
    let got = '';
    res.on('data', (d: string) => (got += d));
    res.resume();
    const lines = 4096;
    for (let i = 0; i < lines; i++) {
      api.fire(`/tool/a/${i}`);
      if (i % 64 === 63) await new Promise((r) => setImmediate(r));
    }
    await expect.poll(() => got.split('\n').length - 1, { timeout: 10_000 }).toBe(lines);
    expect(api.stopped()).toBe(0);
    expect(got.split('\n')[lines - 1]).toBe(`/tool/a/${lines - 1}`);
  });
});
