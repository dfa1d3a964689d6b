/**
 * The broker's bounds on connections that have not said hello, on a real loopback server: over all
 * addresses (a stranger with an IPv6 /64 or a network of its own has as many addresses as it likes),
 * and on what a connection it has closed may still send.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { connectWs } from '@pvblk/client';
import { DEFAULT_HTTP_CONNECTION_LIMITS } from '@pvblk/runtime';
import { startHypervisorServer, type RunningHypervisor } from '../src/server.ts';

const DOM0_SECRET = 'server-bounds-dom0-secret';
let running: RunningHypervisor | null = null;
const opened: WebSocket[] = [];
afterEach(async () => {
  for (const ws of opened.splice(0)) ws.terminate();
  await running?.close();
  running = null;
});

/** A WebSocket upgrade request, written by hand. */
const UPGRADE =
  'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

/** A raw TCP socket to the server's port, its errors caught (the server resets some). */
function rawSocket(server: RunningHypervisor): Socket {
  const sock = connect({ host: '127.0.0.1', port: Number(new URL(server.url).port) });
  sock.on('error', () => {});
  return sock;
}

it('holds the newest connections without a hello over all addresses, dropping the oldest; a domain saying hello still gets in', async () => {
  running = await startHypervisorServer({
    host: '127.0.0.1',
    port: 0,
    dom0Credential: DOM0_SECRET,
    maxUnauthenticatedPerAddress: 16,
    maxUnauthenticated: 4,
  });
  const closes: Array<Promise<{ code: number; reason: string }>> = [];
  // one after the other, so that their order is known
  for (let i = 0; i < 6; i++) {
    const ws = new WebSocket(running.url);
    opened.push(ws);
    ws.on('error', () => {});
    closes.push(new Promise((resolve) => ws.on('close', (code, r) => resolve({ code, reason: String(r) }))));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`refused: ${res.statusCode}`)));
    });
  }
  const dropped = { code: 4401, reason: 'no hello yet, and a newer connection needs the place' };
  expect(await Promise.all(closes.slice(0, 2))).toEqual([dropped, dropped]);
  expect(opened.slice(2).every((ws) => ws.readyState === WebSocket.OPEN)).toBe(true);
  expect(running.connections()['127.0.0.0/8']).toEqual({ open: 4, unauthenticated: 4, closing: 0 });
  const dom0 = await connectWs(running.url, { credential: DOM0_SECRET, retryForMs: 0 });
  expect((await dom0.domctl.list()).map((d) => d.domid)).toEqual([0]);
  dom0.close();
});

it("destroys a closed connection's socket once its peer sends more than a close answer, instead of reading a 16 MiB frame", async () => {
  running = await startHypervisorServer({ host: '127.0.0.1', port: 0, dom0Credential: DOM0_SECRET });
  const sock = rawSocket(running);
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  // the upgrade, then a masked binary frame of one byte: too short for a frame, so the broker closes
  // the connection (4400) and waits for the answer
  sock.write(Buffer.concat([Buffer.from(UPGRADE), Buffer.from([0x82, 0x81, 0, 0, 0, 0, 7])]));
  // the broker's close frame (opcode 8) has come
  let got = Buffer.alloc(0);
  await new Promise<void>((resolve) => {
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      const at = got.indexOf('\r\n\r\n');
      if (at >= 0 && got.subarray(at + 4).includes(0x88)) {
        sock.off('data', onData);
        resolve();
      }
    };
    sock.on('data', onData);
  });
  expect(got.toString('latin1')).toContain('frame of 1 bytes is too short');
  // no answer to the close: a frame announcing 16 MiB instead, sent as fast as the socket takes it
  const frame = Buffer.alloc(14);
  frame[0] = 0x82;
  frame[1] = 0x80 | 127;
  frame.writeBigUInt64BE(16n << 20n, 2);
  sock.write(frame);
  const chunk = Buffer.alloc(1 << 20, 9);
  let written = 0;
  while (written < 16 && !sock.destroyed) {
    written++;
    if (!sock.write(chunk)) {
      await Promise.race([new Promise((resolve) => sock.once('drain', resolve)), closed]);
    }
  }
  await closed;
  // the broker stopped reading at a close answer's bytes: the socket went before the frame did
  // (with ws reading the whole frame in the wait, every MiB was taken and the socket closed after)
  expect(written).toBeLessThan(16);
});

it('closes a socket that pipelines more requests than it may be owed answers; /healthz still answers', async () => {
  running = await startHypervisorServer({ host: '127.0.0.1', port: 0, dom0Credential: DOM0_SECRET });
  const sock = rawSocket(running);
  let got = '';
  sock.on('data', (d) => (got += d.toString('latin1')));
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  // every answer is read: the socket is closed for what it asks, not for leaving answers unread
  sock.write(
    'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(
      DEFAULT_HTTP_CONNECTION_LIMITS.answersOwedPerSocket * 64,
    ),
  );
  await closed;
  expect(got.split('HTTP/1.1 200 OK').length - 1).toBeLessThan(
    DEFAULT_HTTP_CONNECTION_LIMITS.answersOwedPerSocket * 64,
  );
  const res = await fetch(new URL('/healthz', running.url.replace(/^ws/, 'http')));
  expect(res.status).toBe(200);
  expect(await res.text()).toBe('ok\n');
});

it('counts a connection it has closed as closing, not as open and unauthenticated, while it waits for the answer', async () => {
  running = await startHypervisorServer({ host: '127.0.0.1', port: 0, dom0Credential: DOM0_SECRET });
  const sock = rawSocket(running);
  const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  sock.write(UPGRADE);
  let got = Buffer.alloc(0);
  await new Promise<void>((resolve) => {
    sock.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.includes('\r\n\r\n')) resolve();
    });
  });
  expect(running.connections()['127.0.0.0/8']).toEqual({ open: 1, unauthenticated: 1, closing: 0 });
  // a frame of one byte: the broker closes the connection (4400) and waits for the close's answer
  sock.write(Buffer.from([0x82, 0x81, 0, 0, 0, 0, 7]));
  await new Promise<void>((resolve) => {
    const check = () => (got.subarray(got.indexOf('\r\n\r\n') + 4).includes(0x88) ? resolve() : undefined);
    sock.on('data', check);
    check();
  });
  expect(running.connections()['127.0.0.0/8']).toEqual({ open: 0, unauthenticated: 0, closing: 1 });
  sock.destroy();
  await closed;
  for (let i = 0; i < 200 && running.connections()['127.0.0.0/8']; i++)
    await new Promise((r) => setTimeout(r, 5));
  expect(running.connections()).toEqual({});
});
