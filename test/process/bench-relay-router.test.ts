/**
 * The relay baseline's router, a real process, against clients that do not follow its layout: a
 * client number past what fits in the frame numbers' top byte is refused (it wrapped into another
 * client's range before), a second connection under a number in use is refused, and the number is
 * free again once its client has gone.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { PVBLK } from './helpers.ts';

let router: ReturnType<typeof spawn>;
let url: string;

beforeAll(async () => {
  router = spawn(process.execPath, [PVBLK, 'bench', '--relay-role=relay'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: router.stdout! });
  for await (const line of lines) {
    const r = JSON.parse(line) as { event?: string; url?: string };
    if (r.event === 'ready') {
      url = r.url!;
      break;
    }
  }
});

afterAll(() => {
  router?.kill('SIGTERM');
});

/** Opens `path`; resolves with the close code if the router closes it, or the open socket. */
function connect(path: string): Promise<{ closed: number } | { ws: WebSocket }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}${path}`);
    ws.once('error', reject);
    ws.once('close', (code) => resolve({ closed: code }));
    // the router refuses right after the handshake; one that accepts answers nothing, so a ping tells
    ws.once('open', () => {
      ws.ping();
      ws.once('pong', () => {
        ws.removeAllListeners('close');
        resolve({ ws });
      });
    });
  });
}

describe('the relay router', () => {
  it('refuses client numbers that do not fit, and a number already connected; frees it on close', async () => {
    expect(await connect('/client/128')).toEqual({ closed: 4400 });
    expect(await connect('/client/x')).toEqual({ closed: 4400 });
    const first = await connect('/client/127');
    expect('ws' in first).toBe(true);
    expect(await connect('/client/127')).toEqual({ closed: 4409 });
    const ws = (first as { ws: WebSocket }).ws;
    const gone = new Promise((r) => ws.once('close', r));
    ws.close();
    await gone;
    // the router sees the close after the client does: ask until the number is free (bounded)
    let again: { closed: number } | { ws: WebSocket } = { closed: 0 };
    for (let i = 0; i < 50 && !('ws' in again); i++) again = await connect('/client/127');
    expect('ws' in again).toBe(true);
    (again as { ws: WebSocket }).ws.close();
  });
});
