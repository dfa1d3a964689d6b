/**
 * The client's WebSocket transport, with retry and backoff for the initial connection: in compose the
 * hypervisor may come up after the host or the guests, and clients must not care about the order.
 */
import { WebSocket } from 'ws';
import { PvblkError, WIRE_MAX_FRAME } from '@pvblk/shared';
import { XenClient, type ClientTransport } from './client.ts';
import { withBackoff } from '@pvblk/runtime';

/**
 * Opens the socket. The upgrade request names the credential the hello will present: the broker then
 * knows the connection for a domain's before the hello, and never drops it to make room for a
 * stranger's sockets from the same address (its hello still authenticates it).
 */
function openSocket(url: string, credential: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      maxPayload: WIRE_MAX_FRAME,
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
      // Nothing buffered: the socket took every byte. ws masks a client's frame into a buffer of its
      // own, but with an all-zero mask it sends the frame itself, and bytes a full socket still holds
      // may be the frame's.
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
