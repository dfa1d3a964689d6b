/**
 * The hypervisor as a real process, with two domains as real processes around it: Dom0 here in the
 * test runner and a guest in a child process. Grants, shared-page writes and events cross two sockets.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { connectWs, type XenClient } from '@pvblk/client';
import { GNTST } from '@pvblk/shared';
import { SECRETS, startProc, type Proc } from './helpers.ts';

const PEER = fileURLToPath(new URL('./fixtures/guest-peer.ts', import.meta.url));
let hv: Proc;
let url: string;
let http: string;
let dom0: XenClient;
const operator = { authorization: `Bearer ${SECRETS.PVBLK_DOM0_SECRET}` };

beforeAll(async () => {
  hv = startProc('hypervisor', ['hypervisor', '--port', '0'], SECRETS);
  const ready = await hv.waitFor((r) => r.event === 'ready');
  url = String(ready.url);
  http = url.replace('ws://', 'http://');
  dom0 = await connectWs(url, { credential: SECRETS.PVBLK_DOM0_SECRET });
});
afterAll(async () => {
  dom0?.close();
  await hv?.kill('SIGTERM');
});

describe('hypervisor process', () => {
  it('serves /healthz to anyone and a JSON /status to the operator only', async () => {
    const h = await fetch(`${http}healthz`);
    expect(h.status).toBe(200);
    expect(await h.text()).toBe('ok\n');
    const anon = await fetch(`${http}status`);
    expect(anon.status).toBe(401);
    expect(((await anon.json()) as { error: string }).error).toBe('EACCES');
    const wrong = await fetch(`${http}status`, { headers: { authorization: 'Bearer guessed' } });
    expect(wrong.status).toBe(401);
    const s = (await (await fetch(`${http}status`, { headers: operator })).json()) as {
      domains: Array<{ domid: number; connected: boolean }>;
    };
    expect(s.domains.find((d) => d.domid === 0)).toMatchObject({ connected: true });
  });

  it('refuses a wrong credential and closes the connection', async () => {
    await expect(connectWs(url, { credential: 'not the right one', retryForMs: 0 })).rejects.toMatchObject({
      code: 'EACCES',
    });
    const closed = await new Promise<number>((resolve) => {
      const ws = new WebSocket(url);
      ws.on('open', () => ws.send(Buffer.from([2, 0xc0])));
      ws.on('close', (code) => resolve(code));
    });
    expect(closed).toBe(4400); // a malformed first frame: protocol error, connection dropped
  });

  it('carries grants, page writes and events between two client processes, and destroys a guest whose process dies', async () => {
    const { domid, credential } = await dom0.domctl.create('peer');
    const child = spawn(process.execPath, ['--import', 'tsx', PEER, url, credential], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout! });
    const next = () =>
      new Promise<Record<string, unknown>>((r) => lines.once('line', (l) => r(JSON.parse(l))));
    const hello = await next();
    expect(hello.domid).toBe(domid);
    const [m] = await dom0.gnttab.map([{ dom: domid, ref: Number(hello.ref), readonly: false }]);
    expect(m.status).toBe(GNTST.okay);
    expect(m.page!.read(0, 28).toString()).toBe('written by the guest process');
    const port = await dom0.evtchn.bindInterdomain(domid, Number(hello.port));
    let seen = '';
    const got = new Promise<void>((resolve) =>
      dom0.evtchn.onEvent(port, () => {
        seen = m.page!.read(32, 12).toString();
        if (seen === 'second write') resolve();
      }),
    );
    child.stdin!.write('go\n');
    expect(await next()).toEqual({ sent: true });
    await got;
    // Dom0 answers through the mapping; the guest sees it before the event that follows it
    m.page!.write(64, Buffer.from('hello from dom0'));
    dom0.evtchn.send(port);
    expect(await next()).toEqual({ reply: 'hello from dom0', replies: 1 });

    child.kill('SIGKILL');
    for (let i = 0; i < 100; i++) {
      const s = (await (await fetch(`${http}status`, { headers: operator })).json()) as {
        domains: Array<{ domid: number }>;
        grantsInUse: number;
      };
      if (!s.domains.some((d) => d.domid === domid)) {
        expect(s.grantsInUse).toBe(0);
        // the broker told Dom0 its mapping is gone before it answered /status; Dom0's own connection
        // carries that notice, and a fence's reply comes after it
        await dom0.fence();
        expect(m.page!.revoked).toBe(true);
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('the dead guest was not destroyed');
  });
});
