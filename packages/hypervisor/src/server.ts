/**
 * The hypervisor as a network service: one HTTP server that upgrades WebSocket connections (one per
 * domain), answers `/healthz` for healthchecks, and `/status` (JSON) for the operator.
 *
 * Who may come in: any number of domains, but at most `maxConnectionsPerAddress` connections from one
 * address (its `addressGroup`: all of loopback is one, an IPv6 /64 is one), of which at most
 * `maxUnauthenticatedPerAddress` may still be waiting to say hello (which they must do within
 * `helloTimeoutMs`, sending at most PRE_HELLO_BYTES_MAX bytes first), and `maxUnauthenticated` from
 * all addresses. Past a bound a newcomer takes the place of the oldest connection (of its address,
 * or of all) that has not said hello: refused instead, a stranger holding sockets that never say it
 * shut every guest and a restarting Dom0 on its address out (a real peer says hello within a round
 * trip of its connection, so it is never the oldest for long). `/status` describes every domain, so it takes the operator's
 * credential — the Dom0 secret — as a bearer token; `/healthz` says only "ok".
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { WIRE_MAX_FRAME } from '@pvblk/shared';
import {
  addressGroup,
  DEFAULT_HTTP_CONNECTION_LIMITS,
  httpServerOptions,
  limitHttpConnections,
  closeWebSocket,
  refuseUpgrade,
  requestUrl,
} from '@pvblk/runtime';
import { CLOSE_AUTH_FAILED, Connection, type FrameTransport } from './connection.ts';
import { Hypervisor, type HypervisorOptions } from './core/hypervisor.ts';
import { FairScheduler } from './scheduler.ts';
import { handleNemesisRoute } from './nemesis-routes.ts';
import { instrumentHypervisor } from './metrics.ts';

export interface HypervisorServerOptions extends HypervisorOptions {
  host: string;
  port: number;
  /** Connections one remote address may hold (default 256: a local stack has up to 64 guests and more tools). */
  maxConnectionsPerAddress?: number;
  /** Of those, connections that have not said hello yet (default 16). */
  maxUnauthenticatedPerAddress?: number;
  /**
   * Connections that have not said hello yet, from all addresses (default 1024): past it a newcomer
   * takes the place of the one that has waited longest, whatever its address.
   */
  maxUnauthenticated?: number;
  /** Time a connection has to say hello (default 5 s). */
  helloTimeoutMs?: number;
}

/** One address's connections, as /status shows them. */
export interface ConnectionCounts {
  /** Connections open, with a hello or without. */
  open: number;
  /** Of those, connections that have not said hello yet. */
  unauthenticated: number;
  /** Connections the broker has closed, waiting for their peer to answer the close. */
  closing: number;
}

export interface RunningHypervisor {
  hv: Hypervisor;
  host: string;
  port: number;
  url: string;
  /** Connections per remote address, for /status. */
  connections(): Record<string, ConnectionCounts>;
  close(): Promise<void>;
}

function sameSecret(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(h(a), h(b));
}

/**
 * A domain's connection to the broker over a WebSocket (the server's side). Given the connection's
 * `socket`, the frames of a turn leave in one write (the relay baseline sends one frame a turn).
 */
export function wsFrameTransport(ws: WebSocket, peer: string, socket?: Duplex): FrameTransport {
  return {
    peer,
    sendFrame: (f, written) => ws.send(f, { binary: true }, () => written()),
    cork: socket && (() => socket.cork()),
    uncork: socket && (() => socket.uncork()),
    // ws calls back once the socket has taken the frame's bytes (or is gone): a server's frame is
    // never masked, so until then the socket may still hold the frame itself
    releasesFrames: true,
    // a closed connection's socket is counted until it goes: ws would read a whole frame meanwhile
    close: (code, reason) => closeWebSocket(ws, code, reason, socket),
    pause: () => ws.pause(),
    resume: () => ws.resume(),
  };
}

export async function startHypervisorServer(opts: HypervisorServerOptions): Promise<RunningHypervisor> {
  const hv = new Hypervisor(opts);
  const log = opts.log ?? (() => {});
  const scheduler = new FairScheduler();
  const maxPerAddress = opts.maxConnectionsPerAddress ?? 256;
  const maxUnauthPerAddress = opts.maxUnauthenticatedPerAddress ?? 16;
  const maxUnauth = opts.maxUnauthenticated ?? 1024;
  // connections without a hello that named no credential, in the order they came (entries that said
  // hello or closed since are pruned as they are met)
  const silentAll = new Set<Connection>();
  const byAddress = new Map<string, Set<Connection>>();
  const sockets = new WeakMap<Connection, WebSocket>();

  const connectionsByAddress = () => {
    const out: Record<string, ConnectionCounts> = {};
    for (const [addr, set] of byAddress) {
      const all = [...set];
      // a connection the broker has closed waits up to 2 s for its peer's answer: it is no longer
      // open, nor waiting for a hello (the bounds do not count it either)
      const open = all.filter((c) => !c.closed);
      out[addr] = {
        open: open.length,
        unauthenticated: open.filter((c) => !c.domain).length,
        closing: all.length - open.length,
      };
    }
    return out;
  };

  const metrics = instrumentHypervisor(hv, opts.dom0Credential, { connections: connectionsByAddress });
  const http = createServer(httpServerOptions(), (req: IncomingMessage, res: ServerResponse) => {
    if (metrics.serve(req, res)) return;
    // a request target URL cannot parse ("GET // HTTP/1.1") must not throw out of this listener
    const url = requestUrl(req);
    if (!url) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('bad request target\n');
      return;
    }
    if (handleNemesisRoute(hv, req, res, (token) => sameSecret(token, opts.dom0Credential), log)) return;
    if (req.method === 'GET' && url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (req.method === 'GET' && url.pathname === '/status') {
      const auth = req.headers.authorization ?? '';
      if (!auth.startsWith('Bearer ') || !sameSecret(auth.slice(7), opts.dom0Credential)) {
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' }).end(
          JSON.stringify({
            error: 'EACCES',
            message: "/status is the operator's: send the Dom0 secret as a bearer token",
          }) + '\n',
        );
        return;
      }
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ ...hv.status(), connections: connectionsByAddress() }, null, 2) + '\n');
    } else {
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('not found: try /healthz, /status, or a WebSocket\n');
    }
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: WIRE_MAX_FRAME, perMessageDeflate: false });
  // Connections whose upgrade request named a domain's credential (Authorization: Bearer, as pvblk's
  // client sends it), by domain: they are never taken for a newcomer's place. Without that, a stranger
  // opening 3,400 sockets a second from a guest's address dropped the guest's own connection in the
  // milliseconds between its upgrade and its hello (2 of 3 guests did not boot). The hello remains
  // what authenticates; a credential no domain has only makes the connection an ordinary silent one,
  // so its hello is refused as before (EACCES), with the same message. A domain has one such
  // connection waiting for its hello at most: a newer one takes its place, so a guest cannot hold
  // its address's 256 places with its own credential and refuse everyone else there.
  const introduced = new WeakSet<Connection>();
  const introducedWaiting = new Map<number, Connection>();
  http.on('upgrade', (req, socket, head) => {
    const addr = addressGroup(req.socket.remoteAddress);
    const auth = req.headers.authorization;
    const named =
      typeof auth === 'string' && auth.startsWith('Bearer ') ? hv.domidOfCredential(auth.slice(7)) : null;
    const waiting = (c: Connection) => !c.closed && !c.domain;
    const before = named === null ? undefined : introducedWaiting.get(named);
    if (before && waiting(before)) {
      log(
        'warn',
        { peer: before.peer, domid: named },
        `dropping ${before.peer}, which has not said hello, for a newer connection of domain ${named}`,
      );
      before.close(CLOSE_AUTH_FAILED, 'no hello yet, and a newer connection of this domain takes its place');
      sockets.get(before)?.terminate();
    }
    const set = byAddress.get(addr);
    const all = set ? [...set] : [];
    const open = all.filter((c) => !c.closed);
    const silent = open.filter((c) => waiting(c) && !introduced.has(c));
    // a closed connection whose peer has not answered its close yet: its place goes first, at once
    if (all.length >= maxPerAddress) for (const c of all) if (c.closed) sockets.get(c)?.terminate();
    if (open.length >= maxPerAddress || (named === null && silent.length >= maxUnauthPerAddress)) {
      // insertion order: the first is the one that has waited longest without a hello
      const oldest = silent[0];
      log(
        'warn',
        { peer: addr, open: open.length, unauthenticated: silent.length },
        oldest
          ? `too many connections from this address: dropping ${oldest.peer}, which has not said hello, for a new one`
          : 'refusing a connection: too many from this address',
      );
      if (!oldest) {
        refuseUpgrade(socket, 429);
        return;
      }
      oldest.close(
        CLOSE_AUTH_FAILED,
        'no hello yet, and a newer connection from this address needs the place',
      );
      // at once, not after the close is answered: its place is taken now
      sockets.get(oldest)?.terminate();
    }
    if (named === null) {
      // the bound over all addresses: addresses are cheap to a peer with an IPv6 /64 or a network
      for (const c of silentAll) {
        if (silentAll.size < maxUnauth) break;
        silentAll.delete(c);
        if (!waiting(c)) continue;
        log(
          'warn',
          { peer: c.peer, unauthenticated: maxUnauth },
          `too many connections without a hello: dropping ${c.peer}, the oldest, for a new one`,
        );
        c.close(CLOSE_AUTH_FAILED, 'no hello yet, and a newer connection needs the place');
        sockets.get(c)?.terminate();
      }
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req, named, addr));
  });
  wss.on('connection', (ws: WebSocket, req: IncomingMessage, named: number | null, addr: string) => {
    const peer = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort}`;
    const conn = new Connection(
      hv,
      scheduler,
      wsFrameTransport(ws, peer, req.socket),
      (level, obj, msg) => log(level, obj, msg),
      opts.helloTimeoutMs,
    );
    let set = byAddress.get(addr);
    if (!set) byAddress.set(addr, (set = new Set()));
    set.add(conn);
    sockets.set(conn, ws);
    if (named !== null) {
      introduced.add(conn);
      introducedWaiting.set(named, conn);
    } else silentAll.add(conn);
    // the bytes of a frame before the hello are counted as the socket reads them, after ws has taken
    // them (its listener came first: a chunk that carries the hello has set the domain by now)
    const socket = req.socket;
    const beforeHello = (chunk: Buffer) => {
      if (conn.domain || conn.closed) socket.off('data', beforeHello);
      else if (!conn.readBeforeHello(chunk.length)) ws.terminate();
    };
    socket.on('data', beforeHello);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      // text frames are not part of the protocol: answered as malformed
      conn.onFrame(isBinary ? data : Buffer.from([0]));
    });
    ws.on('close', () => {
      silentAll.delete(conn);
      if (named !== null && introducedWaiting.get(named) === conn) introducedWaiting.delete(named);
      set.delete(conn);
      if (set.size === 0) byAddress.delete(addr);
      conn.onClose();
    });
    ws.on('error', (e) => log('warn', { peer, err: e.message }, 'websocket error'));
  });
  // the sockets under the WebSockets too: half a request holds one as long as a whole connection does
  limitHttpConnections(http, {
    ...DEFAULT_HTTP_CONNECTION_LIMITS,
    perAddress: Math.max(DEFAULT_HTTP_CONNECTION_LIMITS.perAddress, maxPerAddress + 64),
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(opts.port, opts.host, () => resolve());
  });
  const addr = http.address() as AddressInfo;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    hv,
    host: opts.host,
    port: addr.port,
    url: `ws://${host}:${addr.port}/`,
    connections: connectionsByAddress,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}
