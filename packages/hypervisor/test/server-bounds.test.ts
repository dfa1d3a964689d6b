/**
 * The broker's bound on connections that have not said hello, over all addresses (a stranger with an
 * IPv6 /64 or a network of its own has as many addresses as it likes), on a real loopback server.
 */
import { afterEach, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { connectWs } from '@pvblk/client';
import { startHypervisorServer, type RunningHypervisor } from '../src/server.ts';

const DOM0_SECRET = 'server-bounds-dom0-secret';
let running: RunningHypervisor | null = null;
const opened: WebSocket[] = [];
afterEach(async () => {
  for (const ws of opened.splice(0)) ws.terminate();
  await running?.close();
  running = null;
});

it('holds the newest connections without a hello over all addresses, dropping the oldest; a domain saying hello still gets in', async () => {
  running = await startHypervisorServer({
    host: '127.0.0.1',
    port: 0,
    dom0Credential: DOM0_SECRET,
    maxUnauthenticatedPerAddress: 16,
    maxUnauthenticated: 4,
  });
  const closes: Array<Promise<{ code: number; reason: string }>> = [];
  // one after the other, so that their order is known
  for (let i = 0; i < 6; i++) {
    const ws = new WebSocket(running.url);
    opened.push(ws);
    ws.on('error', () => {});
    closes.push(new Promise((resolve) => ws.on('close', (code, r) => resolve({ code, reason: String(r) }))));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`refused: ${res.statusCode}`)));
    });
  }
  const dropped = { code: 4401, reason: 'no hello yet, and a newer connection needs the place' };
  expect(await Promise.all(closes.slice(0, 2))).toEqual([dropped, dropped]);
  expect(opened.slice(2).every((ws) => ws.readyState === WebSocket.OPEN)).toBe(true);
  expect(running.connections()['127.0.0.0/8']).toEqual({ open: 4, unauthenticated: 4 });
  const dom0 = await connectWs(running.url, { credential: DOM0_SECRET, retryForMs: 0 });
  expect((await dom0.domctl.list()).map((d) => d.domid)).toEqual([0]);
  dom0.close();
});
