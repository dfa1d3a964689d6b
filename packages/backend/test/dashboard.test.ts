/**
 * The dashboard's WebSocket against clients that do not follow the page's script: sockets without a
 * token are bounded per address (they are held 5 s each; a newcomer takes the oldest one's place), and a page that leaves while the XenStore
 * watch is still being set leaves no watch behind.
 */
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { XenStoreOps } from '@pvblk/client';
import {
  DASHBOARD_CLOSING_MAX,
  DASHBOARD_PENDING_PER_ADDRESS,
  DASHBOARD_PROTOCOL,
  offeredToken,
  startDashboard,
  treeGap,
  type Dashboard,
} from '../src/dashboard.ts';

const OP = 'operator-token-for-the-dashboard-test';

let server: Server;
let url: string;
let dash: Dashboard | null = null;

beforeEach(async () => {
  server = createServer((_req, res) => res.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/dashboard/ws`;
});
afterEach(async () => {
  await dash?.close();
  dash = null;
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

/** A XenStore whose watch is set when the test says so; counts the watches in place. */
function slowWatches() {
  let release!: () => void;
  const set = new Promise<void>((r) => (release = r));
  const state = { active: 0, asked: 0, returned: 0 };
  const xenstore = {
    watch: async () => {
      state.asked++;
      await set;
      state.active++;
      state.returned++;
      return { unwatch: async () => void state.active-- };
    },
    directory: async () => [],
    tryRead: async () => null,
    getPerms: async () => [],
  } as unknown as XenStoreOps;
  return { xenstore, state, release };
}

function start(xenstore: XenStoreOps, intervalMs?: number): Dashboard {
  const d = startDashboard({
    creds: { operatorToken: OP, enrolToken: null } as never,
    snapshot: async () => ({}),
    xenstore,
    log: () => {},
    intervalMs,
  });
  d.attach(server);
  return d;
}

/** Opens a socket (with these subprotocols): 'open', or the HTTP status it was refused with. */
function open(
  protocols: string[] = [],
  messages: string[] = [],
): Promise<{ ws: WebSocket; outcome: string }> {
  const ws = new WebSocket(url, protocols);
  ws.on('message', (m) => messages.push(String(m)));
  return new Promise((resolve) => {
    ws.once('open', () => resolve({ ws, outcome: 'open' }));
    ws.once('unexpected-response', (_req, res) => resolve({ ws, outcome: String(res.statusCode) }));
    ws.once('error', () => resolve({ ws, outcome: 'error' }));
  });
}

describe('the dashboard socket', () => {
  it(`holds the newest ${DASHBOARD_PENDING_PER_ADDRESS} sockets without a token per address: a stranger's cannot shut the operator out`, async () => {
    dash = start(slowWatches().xenstore);
    const N = DASHBOARD_PENDING_PER_ADDRESS;
    const gone = (ws: WebSocket) =>
      ws.readyState === WebSocket.CLOSED ? Promise.resolve() : new Promise((r) => ws.once('close', r));
    // one after the other, so that their order is known
    const silent: Array<{ ws: WebSocket; outcome: string }> = [];
    for (let i = 0; i < N + 3; i++) silent.push(await open());
    expect(silent.map((s) => s.outcome)).toEqual(Array(N + 3).fill('open'));
    // each newcomer past the bound took the place of the oldest
    await Promise.all(silent.slice(0, 3).map((s) => gone(s.ws)));
    expect(silent.slice(3).every((s) => s.ws.readyState === WebSocket.OPEN)).toBe(true);
    // the operator, while the address's places are all held: in, and answered
    const op = await open();
    expect(op.outcome).toBe('open');
    const hello = new Promise((r) => op.ws.once('message', r));
    op.ws.send(JSON.stringify({ token: OP }));
    await hello;
    await gone(silent[3].ws);
    // a token frees the place: the next newcomer pushes no one out
    const next = await open();
    expect(next.outcome).toBe('open');
    expect(silent.slice(4).every((s) => s.ws.readyState === WebSocket.OPEN)).toBe(true);
    for (const s of [...silent, op, next]) s.ws.terminate();
  });

  it("a token offered with the upgrade, as the page offers it, is answered at once and never waits among the pending: a stranger's newcomers cannot take its place", async () => {
    dash = start(slowWatches().xenstore);
    const hex = (t: string) => `pvblk-token.${Buffer.from(t, 'utf8').toString('hex')}`;
    expect(offeredToken(`${DASHBOARD_PROTOCOL}, ${hex('é, x')}`)).toEqual({ token: 'é, x' });
    expect(offeredToken(`${DASHBOARD_PROTOCOL}, pvblk-token.C3A9`)).toEqual({ token: 'é' });
    expect(offeredToken(DASHBOARD_PROTOCOL)).toBe(null);
    const malformed = {
      malformed: 'the subprotocol pvblk-token.<…> must be the hex of a token, 2 to 4096 digits',
    };
    for (const p of ['pvblk-token.zz', 'pvblk-token.abc', 'pvblk-token.', `pvblk-token.${'ab'.repeat(2049)}`])
      expect(offeredToken(`${DASHBOARD_PROTOCOL}, ${p}`)).toEqual(malformed);
    const messages: string[] = [];
    const op = await open([DASHBOARD_PROTOCOL, hex(OP)], messages);
    expect(op.outcome).toBe('open');
    // the token itself is not echoed: the server chose the dashboard's protocol
    expect(op.ws.protocol).toBe(DASHBOARD_PROTOCOL);
    for (let i = 0; i < 100 && messages.length === 0; i++) await new Promise((r) => setImmediate(r));
    expect(JSON.parse(messages[0]) as unknown).toMatchObject({ type: 'hello' });
    // a stranger's twice the address's bound of silent sockets: the operator's stays
    const silent: Array<{ ws: WebSocket; outcome: string }> = [];
    for (let i = 0; i < 2 * DASHBOARD_PENDING_PER_ADDRESS; i++) silent.push(await open());
    expect(silent.every((x) => x.outcome === 'open')).toBe(true);
    expect(op.ws.readyState).toBe(WebSocket.OPEN);
    // a wrong token offered so is closed at once: 4401
    const bad = await open([DASHBOARD_PROTOCOL, hex('guessed')]);
    const code = await new Promise<number>((r) => bad.ws.once('close', (c) => r(c)));
    expect(code).toBe(4401);
    // and one that is not hex of a token is told so at once, not left to wait for a token message
    const odd = await open([DASHBOARD_PROTOCOL, 'pvblk-token.zz']);
    const closed = await new Promise<[number, string]>((r) =>
      odd.ws.once('close', (c, why) => r([c, String(why)])),
    );
    expect(closed).toEqual([4401, malformed.malformed]);
    for (const x of [...silent, op]) x.ws.terminate();
  });

  it(`leaves at most ${DASHBOARD_CLOSING_MAX} refused sockets to answer their close: a stranger's wrong tokens do not pile up`, async () => {
    dash = start(slowWatches().xenstore);
    const port = (server.address() as { port: number }).port;
    const n = DASHBOARD_CLOSING_MAX + 8;
    // raw sockets offering a wrong token, that read the close frame and never answer it
    const sockets = await Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<Socket>((resolve) => {
            const s = connect(port, '127.0.0.1', () =>
              s.write(
                'GET /dashboard/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
                  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
                  `Sec-WebSocket-Protocol: ${DASHBOARD_PROTOCOL}, pvblk-token.${Buffer.from('guessed').toString('hex')}\r\n\r\n`,
              ),
            );
            s.on('error', () => {});
            let seen = Buffer.alloc(0);
            const done = () => resolve(s);
            s.on('data', (d: Buffer) => {
              seen = Buffer.concat([seen, d]);
              // the 101, then the close frame (opcode 8)
              const body = seen.indexOf('\r\n\r\n');
              if (body >= 0 && seen.length > body + 4 && (seen[body + 4] & 0x0f) === 8) done();
            });
            s.on('close', done);
          }),
      ),
    );
    const connections = () => new Promise<number>((r) => server.getConnections((_e, k) => r(k)));
    for (let i = 0; i < 200 && (await connections()) > DASHBOARD_CLOSING_MAX; i++)
      await new Promise((r) => setImmediate(r));
    expect(await connections()).toBeLessThanOrEqual(DASHBOARD_CLOSING_MAX);
    for (const s of sockets) s.destroy();
  });

  it('destroys a refused socket once its peer sends 64 KiB more instead of answering the close', async () => {
    dash = start(slowWatches().xenstore);
    const port = (server.address() as { port: number }).port;
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    s.write(
      'GET /dashboard/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
        `Sec-WebSocket-Protocol: ${DASHBOARD_PROTOCOL}, pvblk-token.${Buffer.from('guessed').toString('hex')}\r\n\r\n`,
    );
    // the 101, then the close frame (4401)
    let seen = Buffer.alloc(0);
    await new Promise<void>((resolve) => {
      const onData = (d: Buffer) => {
        seen = Buffer.concat([seen, d]);
        const body = seen.indexOf('\r\n\r\n');
        if (body >= 0 && seen.length > body + 4 && (seen[body + 4] & 0x0f) === 8) {
          s.off('data', onData);
          resolve();
        }
      };
      s.on('data', onData);
    });
    // masked binary frames of 60 KiB each, under the socket's 64 KiB maxPayload, for up to 2 s of
    // the wait for the close's answer; ws would read them all
    const payload = 60 * 1024;
    const frame = Buffer.alloc(8 + payload, 7);
    frame[0] = 0x82;
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(payload, 2);
    frame.writeUInt32BE(0, 4);
    let written = 0;
    while (written < 32 && !s.destroyed) {
      written++;
      if (!s.write(frame)) await Promise.race([new Promise((r) => s.once('drain', r)), closed]);
      await new Promise((r) => setImmediate(r));
    }
    await closed;
    expect(written).toBeLessThan(32);
  });

  it('removes the watch of a page that left before the watch was set', async () => {
    const xs = slowWatches();
    dash = start(xs.xenstore);
    const { ws } = await open();
    const hello = new Promise((r) => ws.once('message', r));
    ws.send(JSON.stringify({ token: OP }));
    await hello;
    const closed = new Promise((r) => ws.once('close', r));
    ws.close();
    await closed;
    // and the server has let go of the socket (so its page is gone there too)
    const connections = () => new Promise<number>((r) => server.getConnections((_e, n) => r(n)));
    for (let i = 0; i < 200 && (await connections()) > 0; i++) await new Promise((r) => setImmediate(r));
    expect(await connections()).toBe(0);
    await new Promise((r) => setImmediate(r));
    // the server has seen the close when its watch is asked for no more: wait on the ask, then let it land
    for (let i = 0; i < 100 && xs.state.asked === 0; i++) await new Promise((r) => setImmediate(r));
    expect(xs.state.asked).toBe(1);
    xs.release();
    for (let i = 0; i < 100 && xs.state.returned === 0; i++) await new Promise((r) => setImmediate(r));
    expect(xs.state.returned).toBe(1);
    // the dashboard has had its turn with the watch it got
    await new Promise((r) => setImmediate(r));
    expect(xs.state.active).toBe(0);
  });

  it('lists a large XenStore tree kept dirty by a guest less often than a small one: at most at the rate treeGap allows', async () => {
    // a guest's quota of big nodes, one of them rewritten all the time (the watch fires at every tick)
    const nodes = Array.from({ length: 64 }, (_, i) => `n${i}`);
    const listings: number[] = [];
    let fire: (() => void) | null = null;
    let writes = 0;
    const xenstore = {
      watch: async (_path: string, cb: () => void) => {
        fire = cb;
        return { unwatch: async () => void (fire = null) };
      },
      directory: async (path: string) => {
        if (path !== '/') return [];
        listings.push(performance.now());
        return nodes;
      },
      tryRead: async (path: string) => `${path}:${writes}:`.padEnd(4096, 'x'),
      getPerms: async () => ['n1'],
    } as unknown as XenStoreOps;
    const intervalMs = 10;
    dash = start(xenstore, intervalMs);
    const messages: string[] = [];
    const { ws } = await open([], messages);
    ws.on('message', () => {
      writes++;
      fire?.();
    });
    ws.send(JSON.stringify({ token: OP }));
    for (let i = 0; i < 2000 && listings.length < 3; i++) await new Promise((r) => setTimeout(r, 5));
    expect(listings.length).toBeGreaterThanOrEqual(3);
    const tree = messages.find((m) => m.startsWith('{"type":"xenstore"'))!;
    expect(tree.length).toBeGreaterThan(64 * 4096);
    const gap = treeGap(intervalMs, tree.length, 0);
    expect(gap).toBeGreaterThan(20 * intervalMs);
    expect(listings[1] - listings[0]).toBeGreaterThanOrEqual(gap);
    expect(listings[2] - listings[1]).toBeGreaterThanOrEqual(gap);
    // the snapshots still came every tick meanwhile
    expect(messages.filter((m) => m.startsWith('{"type":"snapshot"')).length).toBeGreaterThan(10);
    ws.close();
  });
});
