/**
 * A request's JSON body as pvblk's routes read it: its limits and its deadline. A WebSocket a server
 * closes: what its peer may still send.
 */
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CLOSE_ANSWER_BYTES_MAX, closeWebSocket, readJsonBody } from '../src/http-request.ts';

describe('readJsonBody', () => {
  it('reads a JSON object, and an empty body as {}', async () => {
    const a = new PassThrough();
    const got = readJsonBody(a);
    a.write('{"name":');
    a.end('"g1"}');
    expect(await got).toEqual({ name: 'g1' });
    const b = new PassThrough();
    const empty = readJsonBody(b);
    b.end();
    expect(await empty).toEqual({});
  });

  it('names what is wrong: not JSON, not an object, over the limit', async () => {
    for (const [text, code, message] of [
      ['{"a":', 'EINVAL', /^request body is not JSON: /],
      ['[1,2]', 'EINVAL', /^request body must be a JSON object$/],
      ['x'.repeat(33), 'E2BIG', /^request body over 32 bytes$/],
    ] as const) {
      const s = new PassThrough();
      const got = readJsonBody(s, 32);
      s.end(text);
      await expect(got).rejects.toMatchObject({ code, detail: expect.stringMatching(message) });
    }
  });

  it('gives a body that does not all come within the deadline ETIMEDOUT, and stops reading it', async () => {
    const s = new PassThrough();
    const got = readJsonBody(s, 1024, 50);
    s.write('{"name": "slow');
    await expect(got).rejects.toMatchObject({
      code: 'ETIMEDOUT',
      detail: 'the request body did not all arrive within 0.05 s',
    });
    expect(s.isPaused()).toBe(true);
    expect(s.listenerCount('data')).toBe(0);
  });

  it('a connection that closes before the body ends is EIO, not a hang', async () => {
    const s = new PassThrough();
    const got = readJsonBody(s, 1024, 60_000);
    s.write('{"na');
    s.destroy();
    await expect(got).rejects.toMatchObject({ code: 'EIO' });
  });
});

describe('closeWebSocket', () => {
  /** A WebSocket that records what is done to it, and the socket under it. */
  function pair() {
    const ws = new EventEmitter() as EventEmitter & {
      closed: Array<[number, string]>;
      terminated: number;
      close(code: number, reason: string): void;
      terminate(): void;
    };
    ws.closed = [];
    ws.terminated = 0;
    ws.close = (code, reason) => void ws.closed.push([code, reason]);
    ws.terminate = () => void ws.terminated++;
    return { ws, socket: new EventEmitter() };
  }

  it('destroys the socket once the peer sends more than the close answer may take, not before', () => {
    const { ws, socket } = pair();
    closeWebSocket(ws, 4400, 'bad frame', socket);
    expect(ws.closed).toEqual([[4400, 'bad frame']]);
    socket.emit('data', Buffer.alloc(CLOSE_ANSWER_BYTES_MAX - 1));
    socket.emit('data', Buffer.alloc(1));
    expect(ws.terminated).toBe(0);
    socket.emit('data', Buffer.alloc(1));
    expect(ws.terminated).toBe(1);
    ws.emit('close');
    expect(socket.listenerCount('data')).toBe(0);
  });

  it('stops counting at the close', () => {
    const { ws, socket } = pair();
    closeWebSocket(ws, 1000, 'bye', socket);
    ws.emit('close');
    socket.emit('data', Buffer.alloc(CLOSE_ANSWER_BYTES_MAX + 1));
    expect(ws.terminated).toBe(0);
  });
});
