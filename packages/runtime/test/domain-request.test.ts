import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isPvblkError } from '@pvblk/shared';
import { requestDomain, type DomainRequest } from '../src/domain-request.ts';

/** A logger that keeps what `info` was given, and can wait for its n-th line. */
function recorder() {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  const waiting: { n: number; resolve: () => void }[] = [];
  const info = (obj: Record<string, unknown>, msg: string) => {
    lines.push({ obj, msg });
    for (const w of waiting.filter((x) => lines.length >= x.n)) w.resolve();
  };
  const untilLines = (n: number) =>
    lines.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiting.push({ n, resolve }));
  return { lines, log: { info } as never, untilLines };
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  port = 0,
): Promise<number> {
  const s = createServer(handler);
  servers.push(s);
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve());
  });
  return (s.address() as AddressInfo).port;
}

/** Asks the host at `port` for guest or driver domain `name` (`kind` names the route). */
const ask = (
  port: number,
  kind: 'guest' | 'driver domain',
  name: string,
  log: DomainRequest['log'],
  hint?: DomainRequest['hint'],
) =>
  requestDomain({
    url: `http://127.0.0.1:${port}`,
    path: kind === 'guest' ? '/guests' : '/driver-domains',
    token: 'tok',
    name,
    what: `${kind} ${name}`,
    log,
    hint,
  });

const answer = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

describe('requestDomain', () => {
  it('logs a busy host (429 EAGAIN) in the host’s words, retries, and returns the domain it creates', async () => {
    const asked: { auth?: string; body: string }[] = [];
    let n = 0;
    const port = await listen((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        asked.push({ auth: req.headers.authorization, body });
        if (++n <= 2) answer(res, 429, { error: 'EAGAIN', message: 'driver domain dd1 is not connected' });
        else answer(res, 201, { domid: 7, credential: 'secret-7' });
      });
    });
    const r = recorder();
    const got = await ask(port, 'guest', 'g1', r.log);
    expect(got).toMatchObject({ domid: 7, credential: 'secret-7' });
    expect(asked).toHaveLength(3);
    expect(asked[0]).toEqual({ auth: 'Bearer tok', body: JSON.stringify({ name: 'g1' }) });
    expect(r.lines.map((l) => l.msg)).toEqual([
      'the toolstack cannot create this domain yet; retrying',
      'the toolstack cannot create this domain yet; retrying',
    ]);
    expect(r.lines.map((l) => l.obj.attempt)).toEqual([1, 2]);
    expect(r.lines[0]?.obj.err).toBe('the host is busy (HTTP 429): driver domain dd1 is not connected');
  });

  it('logs an unreachable host as such and gets its domain once the host listens', async () => {
    // a port nothing listens on: taken, then given back
    const port = await listen(() => {});
    await new Promise((r) => servers.pop()!.close(r));
    const r = recorder();
    const pending = ask(port, 'driver domain', 'dd1', r.log);
    await r.untilLines(1);
    await listen((_req, res) => answer(res, 201, { domid: 3, credential: 'c3' }), port);
    await expect(pending).resolves.toMatchObject({ domid: 3, credential: 'c3' });
    expect(r.lines.length).toBeGreaterThanOrEqual(1);
    for (const l of r.lines) expect(l.msg).toBe('toolstack not reachable yet; retrying');
  });

  it('reports a refusal with the errno the host named, and the caller’s hint', async () => {
    const port = await listen((_req, res) =>
      answer(res, 507, { error: 'ENOSPC', message: 'no room for another disk' }),
    );
    const r = recorder();
    const e = await ask(port, 'guest', 'g2', r.log, (status) =>
      status === 507 ? ' (free some space)' : '',
    ).catch((x: unknown) => x);
    expect(isPvblkError(e, 'ENOSPC')).toBe(true);
    expect((e as Error).message).toBe(
      'ENOSPC: the host refused to create guest g2 (HTTP 507): no room for another disk (free some space)',
    );
    expect(r.lines).toEqual([]);
  });
});
