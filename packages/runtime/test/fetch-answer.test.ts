import { createServer as createHttpServer, type Server } from 'node:http';
import {
  createServer as createNetServer,
  type AddressInfo,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AnswerError, fetchAnswer, HTTP_ANSWER_MAX_BYTES } from '../src/fetch-answer.ts';

const servers: Array<Server | NetServer> = [];
const sockets: Socket[] = [];
afterEach(async () => {
  // a server's own sockets too: one that never reads never sees the client go
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) {
    (s as Server).closeAllConnections?.();
    await new Promise((r) => s.close(r));
  }
});

async function listen<T extends Server | NetServer>(s: T): Promise<string> {
  servers.push(s);
  s.on('connection', (c: Socket) => sockets.push(c));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}/`;
}

async function failure(p: Promise<unknown>): Promise<AnswerError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(AnswerError);
  return e as AnswerError;
}

describe('fetchAnswer', () => {
  it('sends the method, headers and body, and gives the status and the body as text and JSON', async () => {
    const seen: Array<{ method?: string; auth?: string; body: string }> = [];
    const url = await listen(
      createHttpServer((req, res) => {
        let body = '';
        req.on('data', (b: Buffer) => (body += b.toString()));
        req.on('end', () => {
          seen.push({ method: req.method, auth: req.headers.authorization, body });
          res.writeHead(201, 'Made', { 'content-type': 'application/json' });
          res.end(JSON.stringify({ domid: 3 }));
        });
      }),
    );
    const a = await fetchAnswer(new URL('/guests', url), {
      method: 'POST',
      headers: { authorization: 'Bearer t', 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'g' }),
    });
    expect(seen).toEqual([{ method: 'POST', auth: 'Bearer t', body: '{"name":"g"}' }]);
    expect([a.status, a.statusText, a.ok]).toEqual([201, 'Made', true]);
    expect(await a.json()).toEqual({ domid: 3 });
    expect(await a.text()).toBe('{"domid":3}');
    expect(a.headers['content-type']).toBe('application/json');
  });

  it('gives an error status as an answer, not an error', async () => {
    const url = await listen(createHttpServer((_q, res) => res.writeHead(403).end('no')));
    const a = await fetchAnswer(url);
    expect([a.status, a.ok, await a.text()]).toEqual([403, false, 'no']);
    await expect(a.json()).rejects.toThrow(SyntaxError);
  });

  it("says ECONNRESET at once when the server closes the process's first socket unanswered", async () => {
    // the case Node 20's fetch() never settles in: the timer would say ETIMEDOUT after a minute
    const url = await listen(createNetServer((s) => s.destroy()));
    const e = await failure(fetchAnswer(url, {}, 60_000));
    expect(e.code).toBe('ECONNRESET');
    // and again, on a second socket
    expect((await failure(fetchAnswer(url, {}, 60_000))).code).toBe('ECONNRESET');
  });

  it('says ECONNREFUSED where nothing listens', async () => {
    const s = createNetServer();
    const url = await listen(s);
    await new Promise((r) => s.close(r));
    servers.splice(servers.indexOf(s), 1);
    const e = await failure(fetchAnswer(url));
    expect(e.code).toBe('ECONNREFUSED');
    expect(e.message).toMatch(/^ECONNREFUSED: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
  });

  it('says ETIMEDOUT when no whole answer comes in time: none at all, or a body that stops', async () => {
    const silent = await listen(createNetServer(() => {}));
    const e = await failure(fetchAnswer(silent, {}, 300));
    expect([e.code, e.message]).toEqual(['ETIMEDOUT', 'no answer in 0.3 s']);
    const stalls = await listen(
      createHttpServer((_q, res) => {
        res.writeHead(200, { 'content-length': '10' });
        res.write('12345'); // and never the rest
      }),
    );
    expect((await failure(fetchAnswer(stalls, {}, 300))).code).toBe('ETIMEDOUT');
  });

  it('says ECONNRESET when the server closes the socket inside the body', async () => {
    const url = await listen(
      createHttpServer((_q, res) => {
        res.writeHead(200, { 'content-length': '10' });
        res.write('12345', () => res.socket?.destroy());
      }),
    );
    expect((await failure(fetchAnswer(url))).code).toBe('ECONNRESET');
  });

  it('refuses an answer past its bound with EFBIG, and stops reading it', async () => {
    let written = 0;
    const url = await listen(
      createHttpServer((_q, res) => {
        const chunk = Buffer.alloc(1 << 20, 'x');
        const more = () => {
          // bounded: a client that read on for ever would meet the end of this loop, not hang
          while (written < 4 * HTTP_ANSWER_MAX_BYTES) {
            written += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', more);
          }
          res.end();
        };
        more();
      }),
    );
    const e = await failure(fetchAnswer(url));
    expect(e.code).toBe('EFBIG');
    expect(e.message).toBe(`the answer is larger than ${HTTP_ANSWER_MAX_BYTES} bytes`);
    expect(written).toBeLessThan(4 * HTTP_ANSWER_MAX_BYTES);
  });
});
