/**
 * Bounds on the sockets of an HTTP server that answers peers before they authenticate (the host's
 * API and dashboard, the hypervisor's /status and WebSockets). Without them a client with no
 * credential opened sockets that sent half a request and waited: 22,000 of them took the host to its
 * file-descriptor limit, and neither the operator nor a booting guest got an answer until they
 * expired (Node's own header timeout is 60 s, checked every 30 s).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface HttpConnectionLimits {
  /**
   * Sockets open from one address, requests made or not. A further one takes the place of the
   * oldest that only waits (closed with no answer: the server's parser would answer a request that
   * arrives on it anyway).
   */
  perAddress: number;
  /** Sockets from one address that have not yet sent a whole request head (the oldest makes room). */
  pendingPerAddress: number;
  /** Sockets open in all (Node's maxConnections: further ones are closed as they come). */
  total: number;
  /** Time to send a request head (ms). */
  headersTimeoutMs: number;
}

/**
 * Generous for one address: a local stack's guests all come from 127.0.0.1 and provision at once, and
 * the limits a server sets on its own (the hypervisor's 16 unauthenticated WebSockets an address,
 * answered 429) come first; these are the backstop for sockets that never finish a request.
 */
export const DEFAULT_HTTP_CONNECTION_LIMITS: HttpConnectionLimits = {
  perAddress: 512,
  pendingPerAddress: 64,
  total: 4096,
  headersTimeoutMs: 10_000,
};

/**
 * The `createServer` options that make the header timeout bite when it says (Node checks it only
 * every `connectionsCheckingInterval`, 30 s by default).
 */
export function httpServerOptions(limits: HttpConnectionLimits = DEFAULT_HTTP_CONNECTION_LIMITS): {
  headersTimeout: number;
  requestTimeout: number;
  connectionsCheckingInterval: number;
} {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: Math.max(limits.headersTimeoutMs, 60_000),
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
  };
}

/**
 * Applies the per-address and total bounds to `server`'s sockets. Past an address's bound a newcomer
 * takes the place of that address's oldest socket that is only waiting — for a request head, or idle
 * between requests — which is closed: a stranger holding sockets must not shut out everyone else on
 * its address (a local stack's guests, Dom0 and the operator all come from 127.0.0.1). Only when
 * every socket of the address is in the middle of a request is the newcomer closed instead.
 */
export function limitHttpConnections(
  server: Server,
  limits: HttpConnectionLimits = DEFAULT_HTTP_CONNECTION_LIMITS,
): void {
  server.maxConnections = limits.total;
  const open = new Map<string, number>();
  // per address, in the order they began to wait: sockets without a whole request head yet, and
  // sockets idle between requests (a set keeps insertion order: the first has waited longest)
  const pending = new Map<string, Set<Socket>>();
  const idle = new Map<string, Set<Socket>>();
  const enter = (m: Map<string, Set<Socket>>, addr: string, s: Socket) => {
    const set = m.get(addr);
    if (set) set.add(s);
    else m.set(addr, new Set([s]));
  };
  const leave = (m: Map<string, Set<Socket>>, addr: string, s: Socket) => {
    const set = m.get(addr);
    if (set?.delete(s) && set.size === 0) m.delete(addr);
  };
  const first = (set: Set<Socket> | undefined) => set?.values().next().value;
  server.on('connection', (s: Socket) => {
    const addr = s.remoteAddress ?? '?';
    const n = open.get(addr) ?? 0;
    if ((pending.get(addr)?.size ?? 0) >= limits.pendingPerAddress) {
      first(pending.get(addr))!.destroy();
    } else if (n >= limits.perAddress) {
      const oldest = first(pending.get(addr)) ?? first(idle.get(addr));
      if (!oldest) {
        s.destroy();
        return;
      }
      oldest.destroy();
    }
    // destroyed above or not, the count is settled by each socket's own 'close'
    open.set(addr, (open.get(addr) ?? 0) + 1);
    enter(pending, addr, s);
    s.once('close', () => {
      leave(pending, addr, s);
      leave(idle, addr, s);
      const left = (open.get(addr) ?? 1) - 1;
      if (left > 0) open.set(addr, left);
      else open.delete(addr);
    });
  });
  // a whole request head arrived: the socket is busy until its answer has gone, then idle
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const s = req.socket;
    const addr = s.remoteAddress ?? '?';
    leave(pending, addr, s);
    leave(idle, addr, s);
    res.once('finish', () => {
      if (!s.destroyed) enter(idle, addr, s);
    });
  });
  // a WebSocket upgrade: the socket is the WebSocket server's now, with bounds of its own
  server.on('upgrade', (req: IncomingMessage) => leave(pending, req.socket.remoteAddress ?? '?', req.socket));
}
