/**
 * Bounds on the sockets of an HTTP server that answers peers before they authenticate (the host's
 * API and dashboard, the hypervisor's /status and WebSockets). Without them a client with no
 * credential opened sockets that sent half a request and waited: 22,000 of them took the host to its
 * file-descriptor limit, and neither the operator nor a booting guest got an answer until they
 * expired (Node's own header timeout is 60 s, checked every 30 s).
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface HttpConnectionLimits {
  /**
   * Sockets open from one address, requests made or not; further ones are closed as they come (no
   * answer: the server's parser would answer a request that arrives on them anyway).
   */
  perAddress: number;
  /** Sockets from one address that have not yet sent a whole request head. */
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

/** Applies the per-address and total bounds to `server`'s sockets. */
export function limitHttpConnections(
  server: Server,
  limits: HttpConnectionLimits = DEFAULT_HTTP_CONNECTION_LIMITS,
): void {
  server.maxConnections = limits.total;
  const open = new Map<string, number>();
  const pending = new Map<string, Set<Socket>>();
  const settled = (s: Socket) => {
    const set = pending.get(s.remoteAddress ?? '?');
    if (set?.delete(s) && set.size === 0) pending.delete(s.remoteAddress ?? '?');
  };
  server.on('connection', (s: Socket) => {
    const addr = s.remoteAddress ?? '?';
    const n = open.get(addr) ?? 0;
    const waiting = pending.get(addr);
    if (n >= limits.perAddress || (waiting?.size ?? 0) >= limits.pendingPerAddress) {
      s.destroy();
      return;
    }
    open.set(addr, n + 1);
    if (waiting) waiting.add(s);
    else pending.set(addr, new Set([s]));
    s.once('close', () => {
      settled(s);
      const left = (open.get(addr) ?? 1) - 1;
      if (left > 0) open.set(addr, left);
      else open.delete(addr);
    });
  });
  // a whole request head arrived (or a WebSocket upgrade): the socket is no longer waiting for one
  server.on('request', (req) => settled(req.socket));
  server.on('upgrade', (req) => settled(req.socket));
}
