/**
 * The two things every HTTP route of pvblk reads from a peer it does not trust: the request target
 * and a JSON body. One implementation, so that no route parses them its own way — a target `new URL`
 * cannot parse (`GET // HTTP/1.1`) thrown out of a request listener ends the whole process, before
 * any token is looked at.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { isPvblkError, PvblkError } from '@pvblk/shared';

/**
 * Answers a WebSocket upgrade that is not taken (no such path, too many sockets) and closes it. Once
 * a request is an upgrade Node's HTTP server no longer listens for its socket's errors: a peer that
 * resets the connection on the answer raised an unhandled ECONNRESET and ended the process (Dom0
 * from one stranger's connection). And with the server's half-open sockets the socket is destroyed
 * once the answer has gone, not left to the peer, as ws's own abortHandshake does.
 */
export function refuseUpgrade(socket: Duplex, status: 404 | 429): void {
  socket.on('error', () => {});
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** What `closeWebSocket` needs of a WebSocket (ws's server side). */
export interface ClosableWebSocket {
  close(code: number, reason: string): void;
  terminate(): void;
  once(event: 'close', listener: () => void): unknown;
}

/**
 * How long the peer of a WebSocket a server closes has to answer the close before its socket is
 * destroyed. ws waits 30 s: a stranger that never answers held its place, and its socket, that long —
 * 512 refused dashboard sockets filled the API's bound for an address, and the broker's closed
 * connections counted against theirs.
 */
export const CLOSE_ANSWER_MS = 2_000;

/**
 * Bytes a peer may still send on a WebSocket its server has closed, before the socket is destroyed
 * without waiting for the answer: the answer is a close frame of at most 131 bytes, and nothing else
 * the peer sends is read any more. Without it, ws went on reading a frame of up to its maxPayload in
 * the wait: a stranger closed for a bad first frame (or at the hello timeout) then sent 16 MiB, and
 * 128 such sockets took the hypervisor from 115 MB to 1.35 GB.
 */
export const CLOSE_ANSWER_BYTES_MAX = 64 * 1024;

/** What `closeWebSocket` counts the peer's bytes on: the socket under the WebSocket. */
export interface CountedSocket {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  off(event: 'data', listener: (chunk: Buffer) => void): unknown;
}

/**
 * Closes a WebSocket with `code` and `reason`, and destroys its socket if the peer does not answer
 * within CLOSE_ANSWER_MS, or, given its `socket`, sends more than CLOSE_ANSWER_BYTES_MAX first.
 */
export function closeWebSocket(
  ws: ClosableWebSocket,
  code: number,
  reason: string,
  socket?: CountedSocket,
): void {
  ws.close(code, reason);
  const t = setTimeout(() => ws.terminate(), CLOSE_ANSWER_MS);
  t.unref();
  let read = 0;
  const count = (chunk: Buffer) => {
    read += chunk.length;
    if (read > CLOSE_ANSWER_BYTES_MAX) ws.terminate();
  };
  socket?.on('data', count);
  ws.once('close', () => {
    clearTimeout(t);
    socket?.off('data', count);
  });
}

/** The request's URL, or null when its target is not a path (the caller answers 400). */
export function requestUrl(req: IncomingMessage): URL | null {
  try {
    return new URL(req.url ?? '/', 'http://x');
  } catch {
    return null;
  }
}

/** Bodies larger than this are refused with E2BIG before they are parsed. */
export const MAX_JSON_BODY = 64 * 1024;

/**
 * Time a peer has to send a whole body once its request head is in. Node's own bound is the request
 * timeout (60 s), which let a guest's token hold 512 sockets with bodies sent a byte every 5 s: its
 * address's bound was full of requests in progress and no one else there was answered.
 */
export const JSON_BODY_DEADLINE_MS = 10_000;

/**
 * A request's JSON object body ({} when empty); EINVAL when it is not a JSON object, E2BIG past
 * `limit`, ETIMEDOUT when it has not all come within `deadlineMs` (the rest is then left unread: the
 * server discards it once the answer has gone, as for any body a route does not read).
 */
export function readJsonBody(
  req: Readable,
  limit = MAX_JSON_BODY,
  deadlineMs = JSON_BODY_DEADLINE_MS,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    const onData = (c: Buffer | string) => {
      const b = typeof c === 'string' ? Buffer.from(c) : c;
      size += b.length;
      if (size > limit) return fail(new PvblkError('E2BIG', `request body over ${limit} bytes`));
      chunks.push(b);
    };
    const onError = (e: Error) => fail(new PvblkError('EIO', `reading the request body: ${e.message}`));
    const onClose = () => fail(new PvblkError('EIO', 'the connection closed before the request body ended'));
    const onEnd = () => {
      done();
      if (size === 0) return resolve({});
      let v: unknown;
      try {
        v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        return reject(new PvblkError('EINVAL', `request body is not JSON: ${(e as Error).message}`));
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v))
        return reject(new PvblkError('EINVAL', 'request body must be a JSON object'));
      resolve(v as Record<string, unknown>);
    };
    const timer = setTimeout(
      () =>
        fail(
          new PvblkError('ETIMEDOUT', `the request body did not all arrive within ${deadlineMs / 1000} s`),
        ),
      deadlineMs,
    );
    const done = () => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      // the request's own error listener stays: an error after this must not end the process
    };
    const fail = (e: PvblkError) => {
      done();
      req.pause();
      reject(e);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
    req.on('error', onError);
  });
}

/** HTTP status of each errno pvblk's HTTP routes answer with (anything else: 500). */
export const HTTP_STATUS: Readonly<Record<string, number>> = Object.freeze({
  EINVAL: 400,
  EACCES: 403,
  EPERM: 403,
  ENOENT: 404,
  ESRCH: 404,
  EEXIST: 409,
  EBUSY: 409,
  ENOTCONN: 409,
  E2BIG: 413,
  EAGAIN: 429,
  EROFS: 503,
  ETIMEDOUT: 504,
  ENOSPC: 507,
});

/** A route's failure as the answer says it: its errno, its status, the message without the errno prefix. */
export function errorReply(e: unknown): { status: number; body: { error: string; message: string } } {
  // a bad value in a request is EINVAL, as the API's table has it; EUSAGE is the CLI's name for the
  // same check (scsi_debug's parameters are checked by one parser for both)
  const code = isPvblkError(e) ? (e.code === 'EUSAGE' ? 'EINVAL' : e.code) : 'EIO';
  const message = isPvblkError(e) ? e.detail : String(e);
  return { status: HTTP_STATUS[code] ?? 500, body: { error: code, message } };
}
