/** The socket bounds of an HTTP server that answers before authentication, on a real loopback server. */
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  httpServerOptions,
  limitHttpConnections,
  type HttpConnectionLimits,
} from '../src/http-connections.ts';

const limits: HttpConnectionLimits = {
  perAddress: 6,
  pendingPerAddress: 3,
  total: 100,
  headersTimeoutMs: 300,
};
let server: Server | null = null;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = null;
});

async function start(): Promise<number> {
  server = createServer(httpServerOptions(limits), (_req, res) => res.end('ok'));
  limitHttpConnections(server, limits);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return (server.address() as AddressInfo).port;
}

/** A socket that sent `text`, and everything it got back until it closed. */
function open(port: number, text: string): { sock: Socket; got: Promise<string> } {
  const sock = connect(port, '127.0.0.1');
  sockets.push(sock);
  let got = '';
  const done = new Promise<string>((resolve) => {
    sock.on('data', (d) => (got += d.toString('latin1')));
    sock.on('close', () => resolve(got));
    sock.on('error', () => {});
  });
  sock.write(text);
  return { sock, got: done };
}

const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
};

describe('limitHttpConnections', () => {
  it('refuses a socket past the half-sent requests one address may hold, and times those out', async () => {
    const port = await start();
    const half = [0, 1, 2].map(() => open(port, 'GET / HTTP/1.1\r\nHost: x\r\n'));
    const refused = open(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await refused.got).toBe(''); // closed unanswered
    // the half-sent requests end at the header timeout (Node answers 408); then a request is served
    for (const h of half) expect(await h.got).toMatch(/^HTTP\/1\.1 408 /);
    const ok = open(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(await ok.got).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/);
  });

  it('does not count a socket that sent a whole request as waiting; bounds all of one address', async () => {
    const port = await start();
    // three keep-alive sockets that were answered: open, but not waiting for a request head
    const answered = [0, 1, 2].map(() => open(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const replies = answered.map(() => '');
    answered.forEach((a, i) => a.sock.on('data', (d) => (replies[i] += d.toString('latin1'))));
    await until(() => replies.every((r) => r.endsWith('ok')), 'the answers');
    // so three half-sent requests are taken (each ends at the header timeout, not refused) …
    const half = [0, 1, 2].map(() => open(port, 'GET / HTTP/1.1\r\nHost: x\r\n'));
    // … and a seventh socket from the address is one too many
    const seventh = open(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await seventh.got).toBe('');
    for (const h of half) expect(await h.got).toMatch(/^HTTP\/1\.1 408 /);
  });
});
