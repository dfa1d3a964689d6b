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
   * Sockets open from one address (its `addressGroup`), requests made or not. A further one takes the
   * place of the oldest that only waits (closed with no answer: the server's parser would answer a
   * request that arrives on it anyway).
   */
  perAddress: number;
  /** Sockets from one address that have not yet sent a whole request head (the oldest makes room). */
  pendingPerAddress: number;
  /**
   * Sockets open in all. Past it a newcomer takes the place of the oldest socket of any address that
   * only waits, as past an address's bound; it is closed only when every socket is in a request.
   */
  total: number;
  /** Time to send a request head (ms). */
  headersTimeoutMs: number;
  /**
   * Requests one socket may have waiting for their answers (pipelined). One more and the socket is
   * closed: Node parses every request a read brings and keeps each one's answer until the answers
   * before it have gone, so a stranger that pipelined 20,000 requests for a public page on one socket
   * and never read took the host from 152 to 554 MB, and 100 such sockets to 943 MB.
   */
  answersOwedPerSocket: number;
  /**
   * Time an answer may wait on a peer that reads none of it (ms): no byte of it has left in that
   * time, and the socket is closed (nginx's `send_timeout`, 60 s, is the same rule). A socket whose
   * answer has bytes still to go at two looks in a row (a second apart) only waits on its peer, read
   * it slowly or not at all: it makes room for a newcomer, after the sockets waiting for a request or
   * idle.
   */
  answerTimeoutMs: number;
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
  // no client of pvblk's pipelines (fetch and browsers send one request a socket at a time)
  answersOwedPerSocket: 16,
  answerTimeoutMs: 60_000,
};

/**
 * The group of addresses one peer can use as it likes, which the per-address bounds count as one:
 * every address of 127.0.0.0/8 and ::1 (any local process can bind any of them: a stranger that spread
 * its sockets over 70 of them had 70 times the bounds, filled the server's 4,096 and shut out the
 * operator and every guest), an IPv6 address by its /64 (a host is routinely given a whole one), and
 * another IPv4 address alone. An IPv4-mapped IPv6 address is its IPv4 address.
 */
export function addressGroup(address: string | undefined): string {
  if (address === undefined) return '?';
  let a = address.toLowerCase();
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  if (a.startsWith('::ffff:') && a.includes('.')) a = a.slice(7);
  if (a.includes('.')) return a.startsWith('127.') ? LOOPBACK_GROUP : a;
  const halves = a.split('::');
  if (halves.length > 2) return a; // not an address this function knows: itself
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const groups = [...head, ...Array<string>(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail];
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return a;
  const words = groups.map((g) => parseInt(g, 16));
  if (words.slice(0, 7).every((w) => w === 0) && words[7] === 1) return LOOPBACK_GROUP;
  return `${words
    .slice(0, 4)
    .map((w) => w.toString(16))
    .join(':')}::/64`;
}

/** The loopback addresses, as one group. */
export const LOOPBACK_GROUP = '127.0.0.0/8';

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
 * Sockets that wait in one way (for a request head, idle, on a slow peer), per address group and in
 * all; a set keeps insertion order, so the first has waited longest.
 */
class Waiting {
  private readonly byAddress = new Map<string, Set<Socket>>();
  private readonly all = new Set<Socket>();

  add(addr: string, s: Socket): void {
    const set = this.byAddress.get(addr);
    if (set) set.add(s);
    else this.byAddress.set(addr, new Set([s]));
    this.all.add(s);
  }

  delete(addr: string, s: Socket): void {
    const set = this.byAddress.get(addr);
    if (set?.delete(s) && set.size === 0) this.byAddress.delete(addr);
    this.all.delete(s);
  }

  has(s: Socket): boolean {
    return this.all.has(s);
  }

  count(addr: string): number {
    return this.byAddress.get(addr)?.size ?? 0;
  }

  /** The one that has waited longest, of `addr` or of all. */
  oldest(addr?: string): Socket | undefined {
    return (addr === undefined ? this.all : this.byAddress.get(addr))?.values().next().value;
  }
}

/**
 * Applies the per-address and total bounds to `server`'s sockets. Past an address's bound a newcomer
 * takes the place of that address's oldest socket that is only waiting — for a request head, idle
 * between requests, or with answers its peer reads slowly or not at all — which is closed: a
 * stranger holding sockets must not shut out everyone else on its address (a local stack's guests,
 * Dom0 and the operator all come from 127.0.0.1). Only when every socket of the address is in the middle of a
 * request is the newcomer closed instead. Past the total, the same with the oldest waiting socket of
 * any address. A socket is also closed when it pipelines more requests than `answersOwedPerSocket`,
 * or when no byte of an answer to it leaves in `answerTimeoutMs`.
 */
export function limitHttpConnections(
  server: Server,
  limits: HttpConnectionLimits = DEFAULT_HTTP_CONNECTION_LIMITS,
): void {
  // Node's own bound is only the backstop: a socket closed to make room is counted by Node until its
  // 'close', a turn later, and this function's bounds are settled before that
  server.maxConnections = limits.total + limits.pendingPerAddress;
  const open = new Map<string, number>();
  let openTotal = 0;
  // sockets without a whole request head yet, sockets idle between requests, and sockets whose
  // answers their peer reads slowly or not at all
  const pending = new Waiting();
  const idle = new Waiting();
  const unread = new Waiting();
  // the group of each socket still counted (a socket closed to make room is not, before its 'close')
  const groupOf = new WeakMap<Socket, string>();
  // the sockets in a request with how many answers each is owed, and what had gone of a socket's
  // answers at the last look that found bytes of them still to go
  const owed = new Map<Socket, number>();
  const written = new WeakMap<Socket, { done: number; queued: number; since: number }>();
  const unwait = (s: Socket, addr: string) => {
    pending.delete(addr, s);
    idle.delete(addr, s);
    unread.delete(addr, s);
  };
  /** Takes `s` out of every count now (its 'close' comes later), once. */
  const uncount = (s: Socket) => {
    const addr = groupOf.get(s);
    if (addr === undefined) return;
    groupOf.delete(s);
    unwait(s, addr);
    owed.delete(s);
    openTotal--;
    const left = (open.get(addr) ?? 1) - 1;
    if (left > 0) open.set(addr, left);
    else open.delete(addr);
  };
  const drop = (s: Socket) => {
    uncount(s);
    s.destroy();
  };
  /**
   * Stops Node's parser of `s` at the next request head of the read it is parsing. Node parses every
   * request a read brings before it looks at the socket again, destroyed or not: 2,323 requests of
   * one read reached a server's handler after their socket was closed, and 100 strangers pipelining
   * them, reconnecting as they were closed, kept the host from answering anyone for 25 s while it
   * grew to 3.5 GB. The parser's `onIncoming` answering 2 is llhttp's "no body, and pause" (as for an
   * upgrade): parsing ends there. `parser` is Node's own, set per connection and cleared when the
   * socket goes, hence the guard.
   */
  const stopParsing = (s: Socket) => {
    const parser = (s as unknown as { parser?: { onIncoming?: unknown } | null }).parser;
    if (parser && typeof parser.onIncoming === 'function') parser.onIncoming = () => 2;
  };
  server.on('connection', (s: Socket) => {
    const addr = addressGroup(s.remoteAddress);
    if (pending.count(addr) >= limits.pendingPerAddress) {
      drop(pending.oldest(addr)!);
    } else if ((open.get(addr) ?? 0) >= limits.perAddress) {
      const oldest = pending.oldest(addr) ?? idle.oldest(addr) ?? unread.oldest(addr);
      if (!oldest) {
        s.destroy();
        return;
      }
      drop(oldest);
    }
    if (openTotal >= limits.total) {
      const oldest = pending.oldest() ?? idle.oldest() ?? unread.oldest();
      if (!oldest) {
        s.destroy();
        return;
      }
      drop(oldest);
    }
    groupOf.set(s, addr);
    openTotal++;
    open.set(addr, (open.get(addr) ?? 0) + 1);
    pending.add(addr, s);
    s.once('close', () => uncount(s));
  });
  // a whole request head arrived: the socket is busy until the answers to all its requests have gone
  // (pipelined ones are answered in turn: the first answer's end is not the socket's), then idle
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const s = req.socket;
    const addr = groupOf.get(s);
    if (addr === undefined) return;
    const n = (owed.get(s) ?? 0) + 1;
    if (n > limits.answersOwedPerSocket) {
      stopParsing(s);
      return drop(s);
    }
    unwait(s, addr);
    owed.set(s, n);
    res.once('close', () => {
      const left = (owed.get(s) ?? 1) - 1;
      if (left > 0) return void owed.set(s, left);
      // what its last answer left behind is not measured against the next one
      owed.delete(s);
      written.delete(s);
      if (!s.destroyed && groupOf.has(s)) {
        unread.delete(addr, s);
        idle.add(addr, s);
      }
    });
  });
  // A busy socket with bytes of an answer still to go at two looks in a row has a peer slower than
  // the server: it only waits on that peer, so it may make room for a newcomer (a peer reading a
  // little every second, just enough to be seen to read, would otherwise hold its place as long as it
  // liked). One that has not taken a byte of it for the answer's time is closed. Node's own timeouts
  // end once a request has arrived, so nothing else ever closed one: a peer that never read its
  // answers held its place among its address's sockets for good. A write is counted in
  // `writableLength` until all of it has gone; libuv's queue (`writeQueueSize` of the socket's
  // handle) shrinks with each part the kernel takes, so a peer reading a large answer slowly is seen
  // to read.
  const look = () => {
    const now = Date.now();
    for (const s of owed.keys()) {
      const addr = groupOf.get(s);
      if (addr === undefined) continue;
      if (s.writableLength === 0) {
        written.delete(s);
        unread.delete(addr, s);
        continue;
      }
      const done = s.bytesWritten - s.writableLength;
      const queued = (s as unknown as { _handle?: { writeQueueSize?: number } })._handle?.writeQueueSize ?? 0;
      const w = written.get(s);
      if (w === undefined) {
        written.set(s, { done, queued, since: now });
        continue;
      }
      if (w.done !== done || w.queued !== queued) written.set(s, { done, queued, since: now });
      else if (now - w.since >= limits.answerTimeoutMs) {
        drop(s);
        continue;
      }
      if (!unread.has(s)) unread.add(addr, s);
    }
  };
  const timer = setInterval(look, Math.min(1000, limits.answerTimeoutMs / 4));
  timer.unref();
  server.once('close', () => clearInterval(timer));
  // a WebSocket upgrade: the socket is the WebSocket server's now, with bounds of its own
  server.on('upgrade', (req: IncomingMessage) => {
    const addr = groupOf.get(req.socket);
    if (addr !== undefined) unwait(req.socket, addr);
  });
}
