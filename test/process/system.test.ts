/**
 * The system as separate processes started one by one: killing the backend mid-stream, and hostile
 * peers on either side of the ring. Guest commands go through the real control socket.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { runInGuest } from '@pvblk/frontend';
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
