/**
 * The dashboard's WebSocket against clients that do not follow the page's script: sockets without a
 * token are bounded per address (they are held 5 s each), and a page that leaves while the XenStore
 * watch is still being set leaves no watch behind.
 */
import { createServer, type Server } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { XenStoreOps } from '@pvblk/client';
import { DASHBOARD_PENDING_PER_ADDRESS, startDashboard, type Dashboard } from '../src/dashboard.ts';

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

function start(xenstore: XenStoreOps): Dashboard {
  const d = startDashboard({
    creds: { operatorToken: OP, enrolToken: null } as never,
    snapshot: async () => ({}),
    xenstore,
    log: () => {},
  });
  d.attach(server);
  return d;
}

/** Opens a socket: 'open', or the HTTP status it was refused with. */
function open(): Promise<{ ws: WebSocket; outcome: string }> {
  const ws = new WebSocket(url);
  return new Promise((resolve) => {
    ws.once('open', () => resolve({ ws, outcome: 'open' }));
    ws.once('unexpected-response', (_req, res) => resolve({ ws, outcome: String(res.statusCode) }));
    ws.once('error', () => resolve({ ws, outcome: 'error' }));
  });
}

describe('the dashboard socket', () => {
  it(`holds at most ${DASHBOARD_PENDING_PER_ADDRESS} sockets without a token per address; a token frees the place`, async () => {
    dash = start(slowWatches().xenstore);
    const first = await Promise.all(Array.from({ length: DASHBOARD_PENDING_PER_ADDRESS + 3 }, open));
    expect(first.map((s) => s.outcome).sort()).toEqual([
      ...Array(3).fill('429'),
      ...Array(DASHBOARD_PENDING_PER_ADDRESS).fill('open'),
    ]);
    // one of them sends the operator's token and is answered: it no longer counts as waiting
    const authed = first.find((s) => s.outcome === 'open')!.ws;
    const hello = new Promise((r) => authed.once('message', r));
    authed.send(JSON.stringify({ token: OP }));
    await hello;
    expect((await open()).outcome).toBe('open');
    expect((await open()).outcome).toBe('429');
    for (const s of first) s.ws.terminate();
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
});
