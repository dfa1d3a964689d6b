/** The socket bounds of an HTTP server that answers before authentication, on a real loopback server. */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  addressGroup,
  httpServerOptions,
  limitHttpConnections,
  type HttpConnectionLimits,
} from '../src/http-connections.ts';

const limits: HttpConnectionLimits = {
  perAddress: 6,
  pendingPerAddress: 3,
  total: 100,
  headersTimeoutMs: 300,
  answersOwedPerSocket: 4,
  answerTimeoutMs: 60_000,
};
let server: Server | null = null;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const r of held.splice(0)) r.end('late');
  for (const s of sockets.splice(0)) s.destroy();
  accepted.length = 0;
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = null;
});

/** The answer to /big: more than loopback's socket buffers hold, so an unread one stays queued. */
const BIG = Buffer.alloc(16 << 20, 0x61);
/** The answer to /huge: one a slow reader is still reading long after the server has looked twice. */
const HUGE = Buffer.alloc(64 << 20, 0x62);
/** The server's end of each socket it accepted. */
const accepted: Socket[] = [];
/** The server's end of `sock` (a peer that reads nothing never hears that the server closed it). */
const serverEnd = (sock: Socket): Socket => {
  const s = accepted.find((a) => a.remotePort === sock.localPort);
  if (!s) throw new Error(`the server accepted no socket from port ${sock.localPort}`);
  return s;
};
/** Requests for /hold wait here until the test answers them; anything else is answered at once. */
const held: ServerResponse[] = [];

async function start(): Promise<number> {
  server = createServer(httpServerOptions(limits), (req, res) => {
    if (req.url === '/hold') held.push(res);
    else if (req.url === '/big') res.end(BIG);
    else if (req.url === '/huge') res.end(HUGE);
    else res.end('ok');
  });
  limitHttpConnections(server, limits);
  server.on('connection', (s: Socket) => accepted.push(s));
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return (server.address() as AddressInfo).port;
}

/** A socket that sent `text`, and everything it got back until it closed. */
function open(port: number, text: string, localAddress?: string): { sock: Socket; got: Promise<string> } {
  const sock = connect({ port, host: '127.0.0.1', localAddress });
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

const until = async (cond: () => boolean, what: string, tries = 400) => {
  for (let i = 0; i < tries && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
};

describe('limitHttpConnections', () => {
  it('gives the place of the oldest half-sent request to a newcomer, and times the others out', async () => {
    const port = await start();
    const half = [0, 1, 2].map(() => open(port, 'GET / HTTP/1.1\r\nHost: x\r\n'));
    await until(() => half.every((h) => h.sock.readyState === 'open'), 'the half-sent requests');
    // a stranger holding the address's places must not shut its next client out
    const next = open(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(await next.got).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/);
    expect(await half[0].got).toBe(''); // the oldest, closed unanswered
    // the others end at the header timeout (Node answers 408)
    for (const h of half.slice(1)) expect(await h.got).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('past the bound of an address, closes its oldest idle socket for a newcomer', async () => {
    const port = await start();
    // six keep-alive sockets that were answered: the address's bound, none waiting for a request head
    const answered = [0, 1, 2, 3, 4, 5].map(() => open(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const replies = answered.map(() => '');
    answered.forEach((a, i) => a.sock.on('data', (d) => (replies[i] += d.toString('latin1'))));
    await until(() => replies.every((r) => r.endsWith('ok')), 'the answers');
    const seventh = open(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(await seventh.got).toMatch(/^HTTP\/1\.1 200 OK/);
    await answered[0].got; // closed for it
    expect(answered.slice(1).every((a) => !a.sock.destroyed && a.sock.readyState === 'open')).toBe(true);
  });

  it('refuses a newcomer only when every socket of the address is in the middle of a request', async () => {
    const port = await start();
    const busy = [0, 1, 2, 3, 4, 5].map(() => open(port, 'GET /hold HTTP/1.1\r\nHost: x\r\n\r\n'));
    await until(() => held.length === 6, 'six requests in progress');
    const seventh = open(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await seventh.got).toBe('');
    // nothing in progress was cut for it
    expect(busy.every((b) => !b.sock.destroyed)).toBe(true);
    for (const r of held.splice(0)) r.end('done');
    const replies = busy.map(() => '');
    busy.forEach((b, i) => b.sock.on('data', (d) => (replies[i] += d.toString('latin1'))));
    await until(() => replies.every((r) => r.endsWith('done')), 'the held answers');
  });

  it('counts every loopback address as one: half-sent requests spread over 127.0.0.0/8 make room in turn', async () => {
    const port = await start();
    const half = [2, 3, 4].map((n) => open(port, 'GET / HTTP/1.1\r\nHost: x\r\n', `127.0.9.${n}`));
    await until(() => half.every((h) => h.sock.readyState === 'open'), 'the half-sent requests');
    const next = open(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', '127.0.9.5');
    expect(await next.got).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(await half[0].got).toBe(''); // the oldest of the group, closed unanswered
  });

  it('past the total, closes the oldest socket that only waits, of any address', async () => {
    limits.total = 4;
    try {
      const port = await start();
      const answered = [0, 1, 2, 3].map(() => open(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      const replies = answered.map(() => '');
      answered.forEach((a, i) => a.sock.on('data', (d) => (replies[i] += d.toString('latin1'))));
      await until(() => replies.every((r) => r.endsWith('ok')), 'the answers');
      const fifth = open(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(await fifth.got).toMatch(/^HTTP\/1\.1 200 OK/);
      await answered[0].got; // closed for it
      expect(answered.slice(1).every((a) => a.sock.readyState === 'open')).toBe(true);
    } finally {
      limits.total = 100;
    }
  });

  it('keeps a socket busy while a pipelined request waits for its answer, after the first was answered', async () => {
    limits.perAddress = 2;
    try {
      const port = await start();
      // two requests in one write: the first answered at once, the second held
      const piped = open(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /hold HTTP/1.1\r\nHost: x\r\n\r\n');
      let pipedGot = '';
      piped.sock.on('data', (d) => (pipedGot += d.toString('latin1')));
      await until(
        () => held.length === 1 && pipedGot.endsWith('ok'),
        'the first answer and the held request',
      );
      const idle = open(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      let idleGot = '';
      idle.sock.on('data', (d) => (idleGot += d.toString('latin1')));
      await until(() => idleGot.endsWith('ok'), 'the idle socket answered');
      // the address is full: the newcomer takes the idle socket's place, not the busy one's
      const third = open(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(await third.got).toMatch(/^HTTP\/1\.1 200 OK/);
      await idle.got;
      expect(piped.sock.readyState).toBe('open');
      held.splice(0)[0].end('done');
      await until(() => pipedGot.endsWith('done'), 'the held answer');
    } finally {
      limits.perAddress = 6;
    }
  });
});

describe('limitHttpConnections: answers owed to a peer', () => {
  const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;

  it('answers as many pipelined requests as a socket may be owed, and closes one that sends more', async () => {
    const port = await start();
    const within = open(port, GET('/hold').repeat(limits.answersOwedPerSocket));
    let withinGot = '';
    within.sock.on('data', (d) => (withinGot += d.toString('latin1')));
    await until(() => held.length === limits.answersOwedPerSocket, 'the pipelined requests held');
    for (const r of held.splice(0)) r.end('done');
    await until(() => withinGot.split('done').length - 1 === limits.answersOwedPerSocket, 'every answer');
    expect(within.sock.readyState).toBe('open');
    // more than it may be owed, never read: closed, with the answers it was owed unsent, and the
    // requests after the one too many in the same read never reach the server's handler
    const over = open(port, GET('/hold').repeat(1000));
    let overClosed = false;
    over.sock.on('close', () => (overClosed = true));
    await until(() => overClosed, 'the socket that pipelined one request too many closed');
    expect(await over.got).toBe('');
    expect(held.length).toBe(limits.answersOwedPerSocket + 1);
    expect(within.sock.readyState).toBe('open');
  });

  /** Reads 1 MiB of `sock`'s answer every 250 ms: the kernel takes more of it between every two looks. */
  const readSlowly = (sock: Socket) => {
    let burst = 0;
    sock.on('data', (d: Buffer) => {
      burst += d.length;
      if (burst >= 1 << 20) {
        burst = 0;
        sock.pause();
        setTimeout(() => sock.resume(), 250);
      }
    });
  };

  for (const peer of ['reads none of it', 'reads it slowly'] as const) {
    it(`makes room for a newcomer with a socket whose peer ${peer}, before the answer's time is up`, async () => {
      limits.perAddress = 2;
      try {
        const port = await start();
        const slow = open(port, GET('/huge'));
        if (peer === 'reads none of it') slow.sock.pause();
        else readSlowly(slow.sock);
        const waiting = open(port, GET('/hold'));
        await until(() => held.length === 1, 'the held request');
        const slowEnd = serverEnd(slow.sock);
        // both sockets are in a request; the slow one is seen to wait on its peer at its second look
        let answered = '';
        for (let i = 0; i < 100 && !answered; i++) {
          answered = await open(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n').got;
          if (!answered) await new Promise((r) => setTimeout(r, 50));
        }
        expect(answered).toMatch(/^HTTP\/1\.1 200 OK/);
        expect(slowEnd.destroyed).toBe(true);
        expect(serverEnd(waiting.sock).destroyed).toBe(false);
      } finally {
        limits.perAddress = 6;
      }
    });
  }

  it('closes a socket when no byte of its answer leaves in the time, not a peer that reads it slowly', async () => {
    limits.answerTimeoutMs = 1000;
    try {
      const port = await start();
      const t0 = Date.now();
      const stalled = open(port, GET('/big'));
      stalled.sock.pause();
      await until(() => accepted.length === 1, 'the socket accepted');
      const stalledEnd = serverEnd(stalled.sock);
      await until(() => stalledEnd.destroyed, 'the unread socket closed', 1000);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
      // read slowly, the whole answer takes longer than the time, but the kernel takes more of it every
      // two bursts or so (about 500 ms: it wakes the writer in steps of MiBs)
      const t1 = Date.now();
      const slow = open(port, GET('/big'));
      let bytes = 0;
      slow.sock.on('data', (d: Buffer) => (bytes += d.length));
      readSlowly(slow.sock);
      await until(() => bytes >= BIG.length || slow.sock.readyState === 'closed', 'the slow answer', 2000);
      expect(Date.now() - t1).toBeGreaterThan(1000);
      expect(bytes).toBeGreaterThanOrEqual(BIG.length);
      expect(slow.sock.readyState).toBe('open');
    } finally {
      limits.answerTimeoutMs = 60_000;
    }
  });
});

describe('addressGroup', () => {
  it('groups loopback, IPv6 by /64, IPv4-mapped as IPv4, and keeps other IPv4 addresses apart', () => {
    expect(addressGroup('127.0.0.1')).toBe('127.0.0.0/8');
    expect(addressGroup('127.3.9.200')).toBe('127.0.0.0/8');
    expect(addressGroup('::ffff:127.0.0.5')).toBe('127.0.0.0/8');
    expect(addressGroup('::1')).toBe('127.0.0.0/8');
    expect(addressGroup('0:0:0:0:0:0:0:1')).toBe('127.0.0.0/8');
    expect(addressGroup('172.18.0.3')).toBe('172.18.0.3');
    expect(addressGroup('::ffff:10.0.0.7')).toBe('10.0.0.7');
    expect(addressGroup('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressGroup('2001:DB8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(addressGroup('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressGroup('::')).toBe('0:0:0:0::/64');
    expect(addressGroup(undefined)).toBe('?');
  });
});
