/**
 * The client's WebSocket transport, with retry and backoff for the initial connection: in compose the
 * hypervisor may come up after the host or the guests, and clients must not care about the order.
 */
import { WebSocket } from 'ws';
import { PvblkError, WIRE_MAX_FRAME } from '@pvblk/shared';
import { XenClient, type ClientTransport } from './client.ts';

function openSocket(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: WIRE_MAX_FRAME });
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
      if (ws.readyState === WebSocket.OPEN) ws.send(f, { binary: true });
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
  const deadline = Date.now() + (opts.retryForMs ?? 30_000);
  let delay = 100;
  for (let attempt = 1; ; attempt++) {
    let ws: WebSocket;
    try {
      ws = await openSocket(url);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (Date.now() + delay > deadline) {
        throw new PvblkError('ECONNREFUSED', `cannot reach the hypervisor at ${url}: ${err.message}`);
      }
      opts.onRetry?.(attempt, delay, err);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 2000);
      continue;
    }
    return XenClient.connect(wsTransport(ws, url), opts.credential);
  }
}
