/**
 * The live dashboard, served by the host next to its API: a static page (`/dashboard`, plain HTML, JS
 * and CSS from packages/backend/dashboard, no build step, no framework) and a WebSocket
 * (`/dashboard/ws`) that pushes what the operator watches:
 *
 *   {"type":"snapshot", ...}   every `intervalMs` (domains as xl list sees them, the hypervisor's
 *                              per-domain grants, mappings, ports, events and its hypercall
 *                              histogram, each vbd's state, counters and rings, each disk)
 *   {"type":"xenstore", nodes} the XenStore tree with values and permissions, when it changed
 *                              (a Dom0 watch on "/" marks it dirty; sent at most every `intervalMs`,
 *                              and less often as it grows: see treeGap)
 *
 * Operator only. The page itself holds no data and is public; the socket carries a token, either with
 * its upgrade (subprotocols `pvblk-dashboard` and `pvblk-token.<the token's UTF-8 in hex>`, as the page
 * opens it) or as its first message, {"token": <the operator token>}, within 5 s; else it is closed:
 * 4401 without a valid token, 4403 for a guest or enrolment token (the API's 401 and 403). The page
 * gets the token from the URL's fragment (`/dashboard#token=…`, never sent to a server); its controls call the API's
 * own routes with it (fault injection, disk parameters: `GET /controls` lists them, so new ones show
 * up without a change here).
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { XenStoreOps, Watch } from '@pvblk/client';
import { authenticate, type ApiCredentials } from './api.ts';
import { runXsRequest } from './xenstore-ops.ts';
import { addressGroup, closeWebSocket, refuseUpgrade, requestUrl } from '@pvblk/runtime';
import { ownEntry } from '@pvblk/shared';

export interface DashboardOptions {
  creds: ApiCredentials;
  snapshot(): Promise<Record<string, unknown>>;
  xenstore: XenStoreOps;
  log: (level: 'info' | 'warn' | 'error', obj: Record<string, unknown>, msg: string) => void;
  intervalMs?: number;
  /** Sockets open at once. */
  maxClients?: number;
}

const ASSETS: Record<string, string> = {
  '': 'index.html',
  'app.js': 'app.js',
  'style.css': 'style.css',
};
const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};
/** Where the files are: beside src/ in the repository, beside the bundle in the container image. */
const ASSET_DIRS = [new URL('../dashboard/', import.meta.url), new URL('./dashboard/', import.meta.url)];

/**
 * The page's files, read once when the dashboard starts. They are answered at once from memory: read
 * per request, each answer came a turn later, after Node had parsed every request of the read, so
 * Node's pause of a socket whose answers are not read never came (20,000 pipelined requests on one
 * socket took the host from 152 to 554 MB).
 */
function readAssets(): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const file of Object.values(ASSETS)) {
    for (const dir of ASSET_DIRS) {
      try {
        out.set(file, readFileSync(new URL(file, dir)));
        break;
      } catch {
        // not in this directory: the next one
      }
    }
  }
  return out;
}

export interface Dashboard {
  /** Answers the static page's requests; false for any other path. */
  serveStatic(req: IncomingMessage, res: ServerResponse, url: URL): boolean;
  /** Takes the WebSocket upgrades of `/dashboard/ws` on the API's server. */
  attach(server: Server): void;
  close(): Promise<void>;
}

/**
 * Sockets that have not sent a valid token yet, per remote address and in all: each is held up to
 * 5 s with up to 64 KiB of input, and anyone who reaches the API may open them (the hypervisor
 * bounds its own unauthenticated connections the same way). A newcomer past a bound takes the place
 * of the oldest.
 */
export const DASHBOARD_PENDING_PER_ADDRESS = 4;
export const DASHBOARD_PENDING_MAX = 32;
/** Refused sockets left to answer their close, in all (the oldest is destroyed past it). */
export const DASHBOARD_CLOSING_MAX = 32;

/** The dashboard's WebSocket subprotocol; the page offers `pvblk-token.<hex of its token>` beside it. */
export const DASHBOARD_PROTOCOL = 'pvblk-dashboard';
const TOKEN_PROTOCOL = /^pvblk-token\.((?:[0-9a-f]{2}){1,2048})$/i;
const TOKEN_PROTOCOL_PREFIX = /^pvblk-token\./i;

/** What an upgrade offers as its token: one, one that is not hex of a token, or none. */
export type OfferedToken = { token: string } | { malformed: string } | null;

/**
 * The token an upgrade offers as a subprotocol (`pvblk-token.<hex of its UTF-8>`, either case), or
 * null when it offers none. Hex, because a subprotocol is an HTTP token and an operator's token may
 * hold any character. One that is not such hex is said so at once: left to wait among the sockets
 * with no token, its page heard only `send {"token": …} first`, 5 s later.
 */
export function offeredToken(header: string | string[] | undefined): OfferedToken {
  if (typeof header !== 'string') return null;
  for (const p of header.split(',')) {
    const m = TOKEN_PROTOCOL.exec(p.trim());
    if (m) return { token: Buffer.from(m[1], 'hex').toString('utf8') };
    if (TOKEN_PROTOCOL_PREFIX.test(p.trim()))
      return { malformed: 'the subprotocol pvblk-token.<…> must be the hex of a token, 2 to 4096 digits' };
  }
  return null;
}

/** The XenStore tree is listed for the dashboards at most at this rate, in bytes of its listing. */
export const DASHBOARD_TREE_BYTES_PER_SECOND = 512 * 1024;
/** … and listing it takes at most this share of the time. */
export const DASHBOARD_TREE_DUTY = 0.1;

/**
 * How long after a listing of the tree the next may start: `intervalMs` for a small tree, longer for a
 * large or slow one. A listing reads every node, its value and its permissions through the broker,
 * and every open dashboard is sent all of it. A guest that filled its XenStore quota (≈ 1,000 nodes of
 * 4 KiB) and rewrote one node every 20 ms kept the tree dirty: re-listed every 500 ms, it was 33 MB
 * sent to one dashboard in 7 s and 3 s of Dom0's CPU, and another guest's I/O slowed by half.
 */
export function treeGap(intervalMs: number, bytes: number, listingMs: number): number {
  return Math.max(
    intervalMs,
    (bytes / DASHBOARD_TREE_BYTES_PER_SECOND) * 1000,
    listingMs / DASHBOARD_TREE_DUTY,
  );
}

export function startDashboard(o: DashboardOptions): Dashboard {
  const interval = o.intervalMs ?? 500;
  const maxClients = o.maxClients ?? 8;
  const assets = readAssets();
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: 64 * 1024,
    // the subprotocol the page asks for; its token rides beside it and is never echoed back
    handleProtocols: (offers) => (offers.has(DASHBOARD_PROTOCOL) ? DASHBOARD_PROTOCOL : false),
  });
  const clients = new Set<WebSocket>();
  /** Sockets that have sent no token yet, with their remote address. */
  const pending = new Map<WebSocket, string>();
  let timer: NodeJS.Timeout | null = null;
  let watch: Watch | null = null;
  let treeDirty = true;
  let lastTree = '';
  /** performance.now() before which the tree is not listed again (treeGap). */
  let treeNotBefore = 0;
  let busy = false;

  const broadcast = (msg: string) => {
    for (const c of clients) if (c.readyState === c.OPEN && c.bufferedAmount < 4 << 20) c.send(msg);
  };
  const tick = async () => {
    if (busy || clients.size === 0) return;
    busy = true;
    try {
      broadcast(JSON.stringify({ type: 'snapshot', ...(await o.snapshot()) }));
      if (treeDirty && performance.now() >= treeNotBefore) {
        treeDirty = false;
        const t0 = performance.now();
        const r = await runXsRequest(o.xenstore, { mode: 'ls', path: '/', perms: true });
        const text = JSON.stringify({ type: 'xenstore', nodes: r.mode === 'ls' ? r.nodes : [] });
        const now = performance.now();
        treeNotBefore = now + treeGap(interval, text.length, now - t0);
        if (text !== lastTree) {
          lastTree = text;
          broadcast(text);
        }
      }
    } catch (e) {
      o.log('warn', { err: (e as Error).message }, 'dashboard update failed');
    } finally {
      busy = false;
    }
  };
  const startUpdates = async () => {
    if (timer) return;
    timer = setInterval(() => void tick(), interval);
    const w = await o.xenstore
      .watch('/', () => {
        treeDirty = true;
      })
      .catch(() => null);
    // the last dashboard may have gone while the watch was being set (stopUpdates found none to
    // remove), or a later start may have set its own: this one is not needed
    if (timer === null || watch !== null) await w?.unwatch().catch(() => {});
    else watch = w;
  };
  const stopUpdates = async () => {
    if (timer) clearInterval(timer);
    timer = null;
    await watch?.unwatch().catch(() => {});
    watch = null;
  };

  /**
   * Closes a socket that is refused. Its peer has 2 s to answer the close, and may send 64 KiB
   * (`CLOSE_ANSWER_BYTES_MAX`) meanwhile, but at most DASHBOARD_CLOSING_MAX such sockets wait for it:
   * past that the oldest is destroyed, so a stranger sending wrong tokens as fast as it can does not
   * fill the address's sockets with them.
   */
  const closing = new Set<WebSocket>();
  /** The socket under each WebSocket: what its peer sends after a refusal is counted on it. */
  const socketOf = new WeakMap<WebSocket, Duplex>();
  const refuse = (ws: WebSocket, code: number, reason: string) => {
    closing.add(ws);
    ws.once('close', () => closing.delete(ws));
    closeWebSocket(ws, code, reason, socketOf.get(ws));
    if (closing.size > DASHBOARD_CLOSING_MAX) {
      const oldest = closing.values().next().value!;
      closing.delete(oldest);
      oldest.terminate();
    }
  };
  /** Takes a socket's token: the operator's makes it a dashboard, anything else closes it. */
  const admit = (ws: WebSocket, token: unknown) => {
    const who = typeof token === 'string' ? authenticate(`Bearer ${token}`, o.creds) : null;
    if (!who) return refuse(ws, 4401, 'a valid token is required');
    if (who.role !== 'operator') return refuse(ws, 4403, "the dashboard is the operator's");
    if (clients.size >= maxClients) return refuse(ws, 4429, `${maxClients} dashboards are open already`);
    clients.add(ws);
    ws.send(JSON.stringify({ type: 'hello', intervalMs: interval }));
    treeDirty = true;
    lastTree = '';
    // a page that just opened gets the tree at once, whatever the others were last sent
    treeNotBefore = 0;
    void startUpdates().then(() => tick());
  };

  wss.on('connection', (ws: WebSocket, req: IncomingMessage, offered: OfferedToken) => {
    socketOf.set(ws, req.socket);
    ws.on('close', () => {
      pending.delete(ws);
      clients.delete(ws);
      if (clients.size === 0) void stopUpdates();
    });
    ws.on('error', () => {});
    if (offered !== null)
      return 'token' in offered ? admit(ws, offered.token) : refuse(ws, 4401, offered.malformed);
    let answered = false;
    pending.set(ws, addressGroup(req.socket.remoteAddress));
    const hello = setTimeout(() => refuse(ws, 4401, 'send {"token": "<operator token>"} first'), 5000);
    ws.once('close', () => clearTimeout(hello));
    ws.on('message', (data: Buffer) => {
      if (answered) return; // the page only listens after its token
      answered = true;
      clearTimeout(hello);
      pending.delete(ws);
      let token: unknown;
      try {
        token = (JSON.parse(data.toString('utf8')) as { token?: unknown }).token;
      } catch {
        token = null;
      }
      admit(ws, token);
    });
  });

  return {
    serveStatic(req, res, url) {
      const m = /^\/dashboard(?:\/([a-z.]*))?$/.exec(url.pathname);
      if (!m || req.method !== 'GET') return false;
      const file = ownEntry(ASSETS, m[1] ?? '');
      if (file === undefined) return false;
      const data = assets.get(file);
      if (!data) {
        res
          .writeHead(404, { 'content-type': 'text/plain' })
          .end(`the dashboard's ${file} is not in this build\n`);
        return true;
      }
      res
        .writeHead(200, {
          'content-type': TYPES[file.split('.').pop() ?? ''] ?? 'application/octet-stream',
          'cache-control': 'no-store',
          // the page talks to this origin only
          'content-security-policy': "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self'",
        })
        .end(data);
      return true;
    },
    attach(server: Server) {
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        const path = requestUrl(req)?.pathname ?? '';
        if (path !== '/dashboard/ws') {
          refuseUpgrade(socket, 404);
          return;
        }
        // The page offers its token with the upgrade, as a subprotocol: such a socket is answered at
        // once and never waits among the pending. A stranger opening thousands of sockets a second
        // from the operator's address dropped the page's in the moment between its upgrade and its
        // first message.
        const offered = offeredToken(req.headers['sec-websocket-protocol']);
        if (offered !== null) {
          wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req, offered));
          return;
        }
        // past a bound, the newcomer takes the place of the socket that has waited longest without a
        // token (of its address, or of all): refused instead, four silent sockets a stranger kept
        // reopening shut the operator out of the dashboard
        const addr = addressGroup(req.socket.remoteAddress);
        const mine = [...pending].filter(([, a]) => a === addr);
        const oldest =
          mine.length >= DASHBOARD_PENDING_PER_ADDRESS
            ? mine[0][0]
            : pending.size >= DASHBOARD_PENDING_MAX
              ? pending.keys().next().value
              : undefined;
        if (oldest) {
          pending.delete(oldest);
          oldest.terminate();
        }
        wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req, null));
      });
    },
    async close() {
      await stopUpdates();
      for (const c of clients) c.terminate();
      wss.close();
    },
  };
}
