/**
 * The system as separate processes started one by one: killing the backend mid-stream, hostile
 * peers on either side of the ring, and a stranger holding the places of its address. Guest commands go through the real control socket.
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { runInGuest } from '@pvblk/frontend';
import { deriveGuestToken } from '@pvblk/runtime';
import { SECRETS, startSystem, tempDir } from './helpers.ts';
import { blkstat, eventually, vbdStats } from './blkif-peers.ts';

type System = Awaited<ReturnType<typeof startSystem>>;
let sys: System | null = null;
const dirs: Array<{ cleanup(): void }> = [];
afterEach(async () => {
  await sys?.stop();
  sys = null;
  for (const d of dirs.splice(0)) d.cleanup();
});

async function sh(socket: string, line: string): Promise<{ code: number; out: string; kmsg: string[] }> {
  let out = '';
  const kmsg: string[] = [];
  const code = await runInGuest(
    socket,
    { line },
    { stdout: (t) => (out += t), stderr: (t) => (out += t), kmsg: (m) => kmsg.push(m.text) },
  );
  return { code, out, kmsg };
}

describe('backend killed with SIGKILL in the middle of a write stream', () => {
  it('the restarted blkback re-attaches at rsp_prod: the guest sees no error, the stream completes, data verifies', async () => {
    const data = tempDir('pvblk-data-');
    dirs.push(data);
    sys = await startSystem({ dataDir: data.path });
    const g = await sys.guest('guest');
    const domid = Number((await g.waitFor((r) => r.event === 'ready')).domid);
    expect(
      (await sh(g.socket, 'dd if=/dev/urandom of=/tmp/pattern bs=4096 count=1024 status=none')).code,
    ).toBe(0);
    const stream = sh(
      g.socket,
      'dd if=/tmp/pattern of=/dev/xvda bs=4096 oflag=direct status=none && echo stream-done',
    );
    // part of the stream acknowledged (the host's own counters say so), then the backend killed outright
    const api = sys.api;
    await eventually(
      async () => ((await vbdStats(api, domid))?.wr_req ?? 0) >= 256,
      'a quarter of the stream',
    );
    await sys.restartHost('SIGKILL');
    const s = await stream;
    expect(s.out).toBe('stream-done\n');
    expect(s.code).toBe(0);
    expect(s.kmsg).toEqual([]); // no end_request, nothing
    const check = await sh(
      g.socket,
      'dd if=/dev/xvda of=/tmp/back bs=4096 count=1024 iflag=direct status=none && cmp /tmp/pattern /tmp/back && echo intact',
    );
    expect(check.out).toBe('intact\n');
    // Linux's connect path: the new blkback took the rings over; the guest never reconnected
    expect(
      sys.host.records.some((r) =>
        String(r.msg).endsWith('frontend is Connected; re-attaching to its rings'),
      ),
    ).toBe(true);
    expect((await blkstat(g.socket)).stats).toMatchObject({ reconnects: 0, requeued: 0, errors: 0 });
  });
});

describe('hostile peers', () => {
  it('a frontend sending nr_segments = 12 or last_sect = 8 gets an error; nothing crashes, others keep working', async () => {
    sys = await startSystem();
    const evil = await sys.guest('evil');
    const good = await sys.guest('good');
    for (const fault of ['nr_segments=12', 'last_sect=8']) {
      const r = await sh(
        evil.socket,
        `blkfront-fault /dev/xvda ${fault} && dd if=/dev/zero of=/dev/xvda bs=4096 count=1 oflag=direct`,
      );
      expect(r.code).toBe(1);
      expect(r.out).toContain("dd: writing `/dev/xvda': Input/output error"); // coreutils 8.13 wording with bs=
      expect(
        (
          await sh(
            evil.socket,
            'dd if=/dev/zero of=/dev/xvda bs=4096 count=1 oflag=direct status=none && echo ok',
          )
        ).out,
      ).toBe('ok\n');
    }
    const host = sys.host.records.filter((r) => r.kmsg === true).map((r) => String(r.msg));
    expect(host).toContain('xen-blkback: Bad number of segments in request (12) (domain 1, op 1)');
    expect(host.some((l) => l.startsWith('xen-blkback: segment 0: first_sect 0, last_sect 8'))).toBe(true);
    expect((await sh(good.socket, 'demo')).code).toBe(0);
    expect(sys.host.proc.exitCode).toBeNull();
  });

  it('bogus ring indices halt that ring only; the host keeps serving every other guest', async () => {
    sys = await startSystem();
    const evil = await sys.guest('evil');
    const good = await sys.guest('good');
    expect((await sh(evil.socket, 'blkfront-fault /dev/xvda bogus_req_prod=100')).code).toBe(0);
    // this request will never be answered: the backend stops processing that ring
    void sh(evil.socket, 'dd if=/dev/zero of=/dev/xvda bs=4096 count=1 oflag=direct').catch(() => {});
    const halted = await sys.host.waitFor((r) =>
      String(r.msg).startsWith('xen-blkback: Frontend provided bogus ring requests'),
    );
    expect(String(halted.msg)).toMatch(
      /^xen-blkback: Frontend provided bogus ring requests \(101 - 0 = 101\)\. Halting ring processing on dev=800060$/,
    );
    expect((await sh(good.socket, 'demo')).code).toBe(0);
    expect(sys.host.proc.exitCode).toBeNull();
  });

  it('a backend answering with an unknown id fails that device, not the guest', async () => {
    sys = await startSystem();
    const victim = await sys.guest('victim');
    const other = await sys.guest('other');
    const domid = Number((await victim.waitFor((r) => r.event === 'ready')).domid);
    const res = await fetch(`${sys.api}/vbds/${domid}/51712/fault`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${SECRETS.PVBLK_TOOLSTACK_TOKEN}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ fault: 'bad-response-id' }),
    });
    expect(res.status).toBe(200);
    const r = await sh(victim.socket, 'dd if=/dev/zero of=/dev/xvda bs=4096 count=1 oflag=direct');
    expect(r.code).toBe(1);
    expect(r.kmsg).toEqual([
      'xvda: response has incorrect id (3735928559)',
      'xvda disabled for further use',
      'end_request: I/O error, dev xvda, sector 0',
    ]);
    // the device stays failed; the guest process and everyone else carry on
    expect((await sh(victim.socket, 'dd if=/dev/xvda of=/dev/null bs=4096 count=1 iflag=direct')).code).toBe(
      1,
    );
    expect((await sh(victim.socket, 'echo alive')).out).toBe('alive\n');
    expect((await sh(other.socket, 'demo')).code).toBe(0);
  });
});

describe('a stranger on the same address', () => {
  /**
   * Sockets a stranger holds open and reopens as they are closed (each reopening bounded): `count`
   * WebSockets to the hypervisor that never say hello, and `count` sockets to the host API that never
   * finish their request head.
   */
  function holdPlaces(hypervisorUrl: string, apiUrl: string, count: { ws: number; http: number }) {
    let stop = false;
    let reopened = 0;
    const live = new Set<() => void>();
    /** Opens a socket with `open` (given what to do when it closes; it returns how to close it), and again each time it closes. */
    const keep = (open: (onClose: () => void) => () => void) => {
      const close = open(() => {
        live.delete(close);
        if (!stop && reopened++ < 20_000) keep(open);
      });
      live.add(close);
    };
    const openWs = (onClose: () => void) => {
      const ws = new WebSocket(hypervisorUrl);
      ws.on('error', () => {});
      ws.on('close', onClose);
      return () => ws.terminate();
    };
    const api = new URL(apiUrl);
    const openHttp = (onClose: () => void) => {
      const s = connect(Number(api.port), api.hostname, () => s.write('GET /guests HTTP/1.1\r\nHost: x\r\n'));
      s.on('error', () => {});
      s.on('close', onClose);
      return () => s.destroy();
    };
    for (let i = 0; i < count.ws; i++) keep(openWs);
    for (let i = 0; i < count.http; i++) keep(openHttp);
    return {
      get reopened() {
        return reopened;
      },
      release() {
        stop = true;
        for (const close of [...live]) close();
      },
    };
  }

  it("holding the broker's and the host API's places, keeps neither a guest from booting nor Dom0 from coming back", async () => {
    const data = tempDir('pvblk-data-');
    dirs.push(data);
    sys = await startSystem({ dataDir: data.path });
    const hv = sys.url.replace('ws://', 'http://');
    const held = holdPlaces(sys.url, sys.api, { ws: 16, http: 64 });
    try {
      // the broker's sixteen places for connections without a hello are taken
      await eventually(async () => {
        const s = (await (
          await fetch(`${hv}status`, { headers: { authorization: `Bearer ${SECRETS.PVBLK_DOM0_SECRET}` } })
        ).json()) as { connections: Record<string, { unauthenticated: number }> };
        return (s.connections['127.0.0.0/8']?.unauthenticated ?? 0) >= 16;
      }, 'the stranger holds the broker');
      // a guest boots: its POST /guests and its hello both find a place
      const g = await sys.guest('late');
      expect((await sh(g.socket, 'demo')).code).toBe(0);
      // Dom0 killed outright comes back, and serves the guest again
      await sys.restartHost('SIGKILL');
      const after = await sh(g.socket, 'demo');
      expect(after.out).toContain('read back and verified identical');
      expect(after.code).toBe(0);
      // the stranger was there all along, its sockets closed and reopened
      expect(held.reopened).toBeGreaterThan(0);
    } finally {
      held.release();
    }
  });

  it("one guest's token cannot queue more than one request at a time: another guest's boot does not wait behind a flood", async () => {
    sys = await startSystem();
    const post = (name: string) =>
      fetch(`${sys!.api}/guests`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${deriveGuestToken(SECRETS.PVBLK_TOOLSTACK_TOKEN, name)}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({ name }),
      }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as { error?: string; message?: string },
      }));
    const flood = await Promise.all(Array.from({ length: 50 }, () => post('noisy')));
    // each is answered: created, or refused for the one in progress
    for (const r of flood) expect([201, 429]).toContain(r.status);
    const busy = flood.filter((r) => r.status === 429);
    expect(busy.length).toBeGreaterThan(0);
    expect(busy[0].body).toEqual({
      error: 'EAGAIN',
      message: 'guest noisy has a request in progress already: one at a time',
    });
    // nor by naming a different domain in each: the one place is the guest's, not the target's
    const del = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        fetch(`${sys!.api}/guests/${1000 + i}`, {
          method: 'DELETE',
          headers: { authorization: `Bearer ${deriveGuestToken(SECRETS.PVBLK_TOOLSTACK_TOKEN, 'noisy')}` },
        }).then(async (r) => ({ status: r.status, body: (await r.json()) as { error?: string } })),
      ),
    );
    for (const r of del) expect([403, 429]).toContain(r.status);
    expect(del.filter((r) => r.status === 429).length).toBeGreaterThan(0);
    expect(del.filter((r) => r.status === 403).every((r) => r.body.error === 'EACCES')).toBe(true);
    // another guest's token has a place of its own
    const g = await sys.guest('quiet');
    expect((await sh(g.socket, 'demo')).code).toBe(0);
  });
});
