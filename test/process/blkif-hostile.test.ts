/**
 * Hostile peers on either side of the ring across real processes (issue 8, driver part), named by
 * what each reproduces and its XSA. A hostile frontend is this test process on its own socket, in
 * front of `pvblk host`; a hostile backend is the test Dom0 process (fixtures/dom0.ts) in front of a
 * real `pvblk domu`. After each attack the processes are alive and another guest's I/O verifies.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  BLKIF_OP_READ,
  BLKIF_OP_WRITE,
  BLKIF_OP_WRITE_BARRIER,
  BLKIF_RSP_ERROR,
  BLKIF_RSP_OKAY,
  encodeRequest,
  SpuriousEventBackoff,
  xvdDevid,
} from '@pvblk/shared';
import type { RawFront } from '../unit/blkif-peers.ts';
import { SECRETS, startSystem } from './helpers.ts';
import { api, blkstat, eventually, rawGuest, sh, startCustomSystem, vbdStats } from './blkif-peers.ts';

const DEVID = xvdDevid(0);
let sys: { stop(): Promise<void> } | null = null;
const raws: RawFront[] = [];
afterEach(async () => {
  for (const r of raws.splice(0)) r.xc.close();
  await sys?.stop();
  sys = null;
});

const rw = (op: 0 | 1, id: number, sector: number, gref: number): Buffer =>
  encodeRequest({
    operation: op,
    nrSegments: 1,
    handle: DEVID,
    id: BigInt(id),
    sectorNumber: BigInt(sector),
    segments: [{ gref, firstSect: 0, lastSect: 7 }],
  });

/** The total delay the lateeoi rule gives `n` spurious EOIs in a row. */
function lateeoiDelay(n: number): number {
  const b = new SpuriousEventBackoff();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += b.eoi(true);
  return sum;
}

const demoPasses = async (socket: string) =>
  expect(
    (
      await sh(
        socket,
        'dd if=/dev/urandom of=/tmp/a bs=4096 count=16 status=none && dd if=/tmp/a of=/dev/xvda bs=4096 oflag=direct status=none && dd if=/dev/xvda of=/tmp/b bs=4096 count=16 iflag=direct status=none && cmp /tmp/a /tmp/b && echo verified',
      )
    ).out,
  ).toBe('verified\n');

/** pvblk's hypervisor and host, a guest `good` and this test's raw frontend `raw`, stopped after the test. */
async function withGoodGuest(raw: string) {
  const s = await startSystem();
  sys = s;
  const good = await s.guest('good');
  const f = await rawGuest(s.url, s.api, raw);
  raws.push(f);
  return { s, good, f };
}

describe('hostile frontend against pvblk host', () => {
  it("a guest that makes Dom0 log while Dom0's console reads nothing: Dom0 keeps serving, and every line comes later", async () => {
    const { s, good, f } = await withGoodGuest('noisy');
    // the console stops reading Dom0's log (a stopped `pvblk up`): what Dom0 writes piles up in its
    // stdout socket, then in Dom0 itself
    s.host.proc.stdout!.pause();
    const seen = s.host.records.length;
    // reads of grants the guest never gave: each is answered ERROR and logged at KERN_DEBUG (these
    // processes log at debug), about 180 bytes a line: 2,048 of them are 360 KB, where the socket and
    // the test's paused stream hold about 350 lines (the old synchronous logger stalled at the 352nd)
    const total = 64 * 32;
    let read = 0;
    try {
      for (let id = 0; id < total; id += 32) {
        f.push(Array.from({ length: 32 }, (_, i) => rw(BLKIF_OP_READ, id + i, 0, 50_000 + i)));
        const rsps = await f.responses(32, `answers to bad reads ${id}..${id + 31}`);
        expect(rsps.every((r) => r.status === BLKIF_RSP_ERROR)).toBe(true);
      }
      // and another guest is served all along
      await demoPasses(good.socket);
      read = s.host.records.length - seen;
    } finally {
      // a Dom0 that did stall would otherwise stay stalled through the test's clean-up
      s.host.proc.stdout!.resume();
    }
    // the test had read few of them; once it reads again, every line Dom0 logged meanwhile comes
    expect(read).toBeLessThan(total / 2);
    const isBadRead = (r: Record<string, unknown>) =>
      r.kmsg === true && String(r.msg).startsWith('xen-blkback:') && r.klevel === 7;
    const badReads = () => s.host.records.slice(seen).filter(isBadRead);
    await eventually(async () => badReads().length >= total, "Dom0's held lines to be read");
    expect(badReads()).toHaveLength(total);
    expect(s.host.records.some((r) => r.event === 'log-dropped')).toBe(false);
  });

  it('XSA-332: a flood of events with no request is backed off by the lateeoi rule; other guests keep being served', async () => {
    const { s, good, f } = await withGoodGuest('flood');
    const sends = 20_000;
    for (let i = 0; i < sends; i++) {
      f.xc.evtchn.send(f.port);
      if (i % 100 === 99) await new Promise((r) => setImmediate(r));
    }
    await demoPasses(good.socket);
    await f.xc.fence();
    // every upcall found nothing (the last one may still be on its way to its EOI)
    let st = (await vbdStats(s.api, f.d.domid))!;
    await eventually(
      async () => (st = (await vbdStats(s.api, f.d.domid))!).spurious_events === st.notify_received,
      'the last upcall to reach its EOI',
    );
    // and each EOI waited as long as the rule says
    expect(st.notify_received).toBeLessThan(sends / 100);
    expect(st.jiffies_eoi_delayed).toBe(lateeoiDelay(st.spurious_events));
    expect(st.jiffies_eoi_delayed).toBeGreaterThan(0);
    // the ring still serves a real request
    const a = f.grant(Buffer.alloc(4096, 1));
    f.push([rw(BLKIF_OP_WRITE, 1, 0, a.ref)]);
    expect((await f.responses(1, 'the write after the flood'))[0].status).toBe(BLKIF_RSP_OKAY);
    expect(s.host.proc.exitCode).toBeNull();
  });

  it('a frontend cannot wedge its ring or leave work in Dom0: [WRITE, WRITE, WRITE_BARRIER, WRITE] + READ, then close and destroy', async () => {
    const s = await startSystem({ disk: 'delay=10' });
    sys = s;
    const good = await s.guest('good');
    const f = await rawGuest(s.url, s.api, 'wedge');
    raws.push(f);
    const a = f.grant(Buffer.alloc(4096, 1));
    const barrier = encodeRequest({
      operation: BLKIF_OP_WRITE_BARRIER,
      nrSegments: 0,
      handle: DEVID,
      id: 3n,
      sectorNumber: 0n,
      segments: [],
    });
    f.push([
      rw(BLKIF_OP_WRITE, 1, 0, a.ref),
      rw(BLKIF_OP_WRITE, 2, 8, a.ref),
      barrier,
      rw(BLKIF_OP_WRITE, 4, 16, a.ref),
      rw(BLKIF_OP_READ, 5, 0, a.ref),
    ]);
    expect((await f.responses(5, 'all five answered')).map((r) => Number(r.id))).toEqual([1, 2, 3, 4, 5]);
    expect((await vbdStats(s.api, f.d.domid))!.timers).toBe(1); // the ring's LRU pass, nothing else
    await f.xc.xs.write(`${f.d.fe}/state`, '6');
    await eventually(async () => (await vbdStats(s.api, f.d.domid))?.timers === 0, 'the ring to stop');
    await api(s.api, 'DELETE', `/guests/${f.d.domid}`);
    await eventually(async () => (await vbdStats(s.api, f.d.domid)) === undefined, 'the vbd to go');
    await demoPasses(good.socket);
    expect(s.host.proc.exitCode).toBeNull();
  });

  it('XSA-349: a guest writing nodes under its own frontend state leaves Dom0 one pending watch event; other guests keep being served', async () => {
    const { s, good, f } = await withGoodGuest('statebomb');
    const hv = new URL(s.url.replace(/^ws:/, 'http:')).origin;
    const dom0Calls = async () => {
      const res = await fetch(`${hv}/status`, {
        headers: { authorization: `Bearer ${SECRETS.PVBLK_DOM0_SECRET}` },
      });
      const st = (await res.json()) as { domains: Array<{ domid: number; stats: { calls: number } }> };
      return st.domains.find((d) => d.domid === 0)!.stats.calls;
    };
    // the guest owns its frontend's `state` and may create nodes under it (500, within its quota of
    // 1,000); a write to any of them fires blkback's watch on `state`. The broker coalesces only a
    // turn's events for one path, so each round of writes to every node is 500 events for Dom0
    const kids = 500;
    const rounds = 40;
    const write = (i: number, v: string) => f.xc.xs.write(`${f.d.fe}/state/k${i}`, v);
    await Promise.all(Array.from({ length: kids }, (_, i) => write(i, '0')));
    const before = await dom0Calls();
    for (let r = 0; r < rounds; r++)
      await Promise.all(Array.from({ length: kids }, (_, i) => write(i, String(r))));
    // a second of another guest's I/O through Dom0 (its watch handlers and blkback share one loop)
    const io = await sh(
      good.socket,
      'fio --name=g --rw=randwrite --bs=4k --direct=1 --runtime=1s --time_based --minimal',
    );
    expect(io.code).toBe(0);
    await demoPasses(good.socket);
    // Dom0's calls over the flood and that second: one read of the frontend's state for each event
    // that found none pending, so as many as the flood's bursts Dom0 catches between them — 66 in one
    // run, 251 to 511 in six of another day (nearly all of them during the flood, one or two in the
    // second). With a handler queued per event Dom0 went on reading after the flood had ended, 20,000
    // times (the in-process test counts them exactly): 2,219 by the end of the second in one run, and
    // a guest that kept going took Dom0 to its heap limit
    expect((await dom0Calls()) - before).toBeLessThan((kids * rounds) / 20);
    // and the watch still works: the frontend closing is answered
    await f.xc.xs.write(`${f.d.fe}/state`, '5');
    await eventually(async () => (await f.xc.xs.tryRead(`${f.d.be}/state`)) === '5', 'blkback to close');
  });

  it('XSA-216: responses carry id, operation and status only; the rest of the slot is what the frontend wrote', async () => {
    const s = await startSystem();
    sys = s;
    const f = await rawGuest(s.url, s.api, 'pad');
    raws.push(f);
    const a = f.grant(Buffer.alloc(4096, 1));
    const slot = rw(BLKIF_OP_WRITE, 9, 0, a.ref);
    slot.fill(0xa5, 32);
    f.push([slot]);
    await f.responses(1);
    const after = f.slot(0);
    expect(after[9]).toBe(slot[9]);
    expect(after.subarray(12).equals(slot.subarray(12))).toBe(true);
  });
});

describe('hostile backend (test Dom0) against pvblk domu', () => {
  it('XSA-391: a backend flooding the frontend with events is backed off; the guest keeps working', async () => {
    const s = await startCustomSystem();
    sys = s;
    const g = await s.guest('victim');
    const domid = Number((await g.waitFor((r) => r.event === 'ready')).domid);
    await api(s.api, 'POST', `/vbds/${domid}/${DEVID}/fault`, { fault: 'event-flood' });
    const st = (await blkstat(g.socket)).stats as {
      spuriousEvents: number;
      eoiDelayedMs: number;
      upcalls: number;
    };
    expect(st.spuriousEvents).toBeGreaterThan(1);
    expect(st.upcalls).toBeLessThan(2000 / 10);
    expect(st.eoiDelayedMs).toBe(lateeoiDelay(st.spuriousEvents));
    await demoPasses(g.socket);
  });

  it('XSA-396: a backend that keeps a request grant mapped fails the device, never completes the request OK', async () => {
    const s = await startCustomSystem({ hostile: 'keep-grants', blkback: { persistentGrants: false } });
    sys = s;
    const g = await s.guest('victim', ['--no-persistent']);
    const r = await sh(g.socket, 'dd if=/dev/zero of=/dev/xvda bs=4096 count=1 oflag=direct');
    expect(r.code).toBe(1);
    expect(r.kmsg[0]).toMatch(/^xvda: backed has not unmapped grant: \d+$/);
    expect(r.kmsg[1]).toBe('xvda disabled for further use');
    expect((await sh(g.socket, 'echo alive')).out).toBe('alive\n');
    expect(g.proc.exitCode).toBeNull();
  });

  it('XSA-403: with trusted=0 from the toolstack the guest bounces its data; I/O verifies', async () => {
    const s = await startCustomSystem({ vbd: { trusted: '0' }, blkback: { persistentGrants: false } });
    sys = s;
    const g = await s.guest('guest', ['--no-persistent']);
    const cap = g.records.find((r) => String(r.msg).startsWith('blkfront: xvda: '));
    expect(String(cap?.msg)).toMatch(/persistent grants: disabled; .* bounce buffer: enabled$/);
    expect((await blkstat(g.socket)).features).toMatchObject({ persistent: false, bounce: true });
    await demoPasses(g.socket);
  });
});
