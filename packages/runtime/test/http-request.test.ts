/** A request's JSON body as pvblk's routes read it: its limits and its deadline. */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readJsonBody } from '../src/http-request.ts';

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
