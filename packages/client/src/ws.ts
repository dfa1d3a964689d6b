/**
 * The client's WebSocket transport, with retry and backoff for the initial connection: in compose the
 * hypervisor may come up after the host or the guests, and clients must not care about the order.
 */
import { WebSocket } from 'ws';
import { PvblkError, WIRE_MAX_FRAME } from '@pvblk/shared';
import { XenClient, type ClientTransport } from './client.ts';
import { withBackoff } from '@pvblk/runtime';

/**
 * The options every WebSocket client of pvblk's wire opens with (the domains' and the relay baseline's
 * alike, so that a ratio between them compares like with like): no compression, the wire's frame
 * bound, and an all-zero masking key.
 *
 * Why the zero key, a deliberate deviation from RFC 6455 5.3 (a fresh unpredictable key per frame):
 * ws masks a client's frame into a new buffer of its own unless the key is zero, when it sends the
 * frame itself. That copy is a fresh allocation per frame; a 4 KiB QD32 burst's frame is 68-132 KiB,
 * so each one faulted in new pages, and on a VM where page faults are dear the relay's client spent
 * five to six times the CPU per I/O with it (docs/performance.md, *The masking copy*). Masking exists to
 * keep script in a browser from steering the bytes a proxy between it and the server sees (RFC 6455
 * 10.3); these clients are pvblk's own processes, which talk to the broker directly (loopback or a
 * container network).
 * The browser's connection to the dashboard is not one of these and keeps the browser's own masking.
 */
export const WIRE_CLIENT_OPTIONS = {
  perMessageDeflate: false,
  maxPayload: WIRE_MAX_FRAME,
  generateMask: (mask: Buffer): void => void mask.fill(0),
} as const;

/**
 * Opens the socket. The upgrade request names the credential the hello will present: the broker then
 * knows the connection for a domain's before the hello, and never drops it to make room for a
 * stranger's sockets from the same address (its hello still authenticates it).
 */
function openSocket(url: string, credential: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      ...WIRE_CLIENT_OPTIONS,
      // a credential no header can carry goes in the hello alone, which refuses it by name
      headers: /^[\x21-\x7e]{1,512}$/.test(credential) ? { authorization: `Bearer ${credential}` } : {},
    });
    ws.binaryType = 'nodebuffer';
    const onError = (e: Error) => {
      ws.removeAllListeners();
      ws.terminate();
      reject(e);
    };
    ws.once('error', onError);
    ws.once('open', () => {
      ws.off('error', onError);
      resolve(ws);
    });
  });
}

export function wsTransport(ws: WebSocket, peer: string): ClientTransport {
  let frameCb: (f: Uint8Array) => void = () => {};
  let closeCb: (code: number, reason: string) => void = () => {};
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) frameCb(data);
  });
  ws.on('close', (code, reason) => closeCb(code, reason.toString()));
  ws.on('error', () => {
    /* 'close' follows */
  });
  return {
    peer,
    send: (f) => {
      if (ws.readyState !== WebSocket.OPEN) return true;
      ws.send(f, { binary: true });
      // Nothing buffered: the socket took every byte. With the zero key (WIRE_CLIENT_OPTIONS) ws sends
      // the frame itself, so bytes a full socket still holds may be the frame's.
      return ws.bufferedAmount === 0;
    },
    close: () => ws.close(1000, 'client closed'),
    onFrame: (cb) => (frameCb = cb),
    onClose: (cb) => (closeCb = cb),
  };
}

export interface ConnectOptions {
  credential: string;
  /** Keep retrying refused connections for this long (default 30 s). */
  retryForMs?: number;
  onRetry?: (attempt: number, delayMs: number, err: Error) => void;
}

/** Connects and authenticates; retries with capped exponential backoff while the hypervisor is not there. */
export async function connectWs(url: string, opts: ConnectOptions): Promise<XenClient> {
  let ws: WebSocket;
  try {
    ws = await withBackoff(() => openSocket(url, opts.credential), {
      retryForMs: opts.retryForMs ?? 30_000,
      firstDelayMs: 100,
      onRetry: opts.onRetry,
    });
  } catch (e) {
    throw new PvblkError('ECONNREFUSED', `cannot reach the hypervisor at ${url}: ${(e as Error).message}`);
  }
  return XenClient.connect(wsTransport(ws, url), opts.credential);
}
