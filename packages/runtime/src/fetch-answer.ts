/**
 * One HTTP exchange with a bound on the wait for the whole answer, for the clients of pvblk's HTTP
 * servers (the host API, the hypervisor's /status).
 *
 * On node:http, not fetch(): Node 20's fetch never settles when the server closes the first socket
 * of the process at once — as pvblk's servers do to sockets past their bounds (http-connections.ts)
 * — and nothing then holds the process: a command or a booting domain waiting on nothing else ended
 * with status 0 and no word. node:http says `ECONNRESET` at once. The timer still bounds a server
 * that answers nothing, and holds the process while it waits.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

export const HTTP_ANSWER_TIMEOUT_MS = 15_000;

/** The largest answer taken: pvblk's servers answer with a few KiB of JSON. */
export const HTTP_ANSWER_MAX_BYTES = 16 * 1024 * 1024;

export interface AnswerRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

/** An answer read whole, with fetch's Response's names for what the callers use. */
export interface Answer {
  status: number;
  statusText: string;
  ok: boolean;
  headers: IncomingHttpHeaders;
  text(): Promise<string>;
  json(): Promise<unknown>;
}

/**
 * Why an exchange failed: `code` is the socket's errno name (`ECONNREFUSED`, `ECONNRESET`, …),
 * `ETIMEDOUT` when no whole answer came in time, `EFBIG` for one past HTTP_ANSWER_MAX_BYTES.
 */
export class AnswerError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AnswerError';
  }
}

export function fetchAnswer(
  url: string | URL,
  init: AnswerRequest = {},
  ms = HTTP_ANSWER_TIMEOUT_MS,
): Promise<Answer> {
  const u = typeof url === 'string' ? new URL(url) : url;
  const body = init.body === undefined ? undefined : Buffer.from(init.body);
  return new Promise<Answer>((resolve, reject) => {
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, {
      // a socket of its own, closed after the answer: one kept alive for the next call can meet the
      // server's idle close as the call goes out, and fail with ECONNRESET for no fault of either
      agent: false,
      method: init.method ?? 'GET',
      headers: { ...init.headers, ...(body ? { 'content-length': String(body.length) } : {}) },
    });
    const fail = (code: string, message: string) => {
      clearTimeout(timer);
      req.destroy();
      reject(new AnswerError(code, message));
    };
    // a socket's or the parser's error (ECONNRESET, HPE_INVALID_CONSTANT), by its code
    const failed = (e: NodeJS.ErrnoException) => fail(e.code ?? 'EIO', `${e.code ?? 'EIO'}: ${e.message}`);
    const timer = setTimeout(() => fail('ETIMEDOUT', `no answer in ${ms / 1000} s`), ms);
    req.on('error', failed);
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      let n = 0;
      res.on('data', (b: Buffer) => {
        n += b.length;
        if (n > HTTP_ANSWER_MAX_BYTES)
          fail('EFBIG', `the answer is larger than ${HTTP_ANSWER_MAX_BYTES} bytes`);
        else parts.push(b);
      });
      res.on('error', failed);
      // 'aborted' without 'end': the server closed the socket inside the body
      res.on('aborted', () => fail('ECONNRESET', 'ECONNRESET: the answer was cut short'));
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(parts, n).toString('utf8');
        const status = res.statusCode ?? 0;
        resolve({
          status,
          statusText: res.statusMessage ?? '',
          ok: status >= 200 && status < 300,
          headers: res.headers,
          text: () => Promise.resolve(text),
          json: () => Promise.resolve().then(() => JSON.parse(text) as unknown),
        });
      });
    });
    req.end(body);
  });
}
