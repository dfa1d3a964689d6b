/**
 * The nemesis in the broker's delivery path, in process: fault_attr semantics, the direct path when
 * idle, each action's effect on what a domain observes (order kept or broken, events lost or doubled,
 * traffic paused), bit flips confined to the bytes a blkif request moves — and caught by PI — and bad
 * rules refused by name.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BlkifKey, frontendPath, GNTST, PvblkError, xvdDevid } from '@pvblk/shared';
import {
  FaultAttr,
  LocalHypervisor,
  MAX_HELD_INBOUND,
  MAX_HELD_OUTBOUND,
  Nemesis,
  Prng,
  parseFaultAttr,
} from '@pvblk/hypervisor';
import type { XenClient, Page } from '@pvblk/client';
import { startStack, rwRequest, gather, pattern, until, type Stack } from './stack.ts';

describe('fault_attr', () => {
  it('follows should_fail(): probability 0 never, times counts down, space is a budget, interval thins', () => {
    const rng = new Prng(7);
    const never = new FaultAttr({ ...parseFaultAttr({ probability: 0, times: -1 }) }, rng);
    expect(Array.from({ length: 50 }, () => never.shouldFail(1)).some(Boolean)).toBe(false);

    const twice = new FaultAttr(parseFaultAttr({ times: 2 }), rng);
    expect([1, 2, 3, 4].map(() => twice.shouldFail(1))).toEqual([true, true, false, false]);

    // space 10: opportunities of size 4 pass while space > size (10 → 6 → 2), then fail
    const budget = new FaultAttr(parseFaultAttr({ space: 10, times: -1 }), rng);
    expect([4, 4, 4, 4].map((s) => budget.shouldFail(s))).toEqual([false, false, true, true]);

    const third = new FaultAttr(parseFaultAttr({ interval: 3, times: -1 }), rng);
    expect(Array.from({ length: 7 }, () => third.shouldFail(1))).toEqual([
      false,
      false,
      true,
      false,
      false,
      true,
      false,
    ]);
    const lines: string[] = [];
    const one = new FaultAttr(parseFaultAttr({ times: 3, verbose: 1 }), rng, 'nemesis/1-drop');
    one.shouldFail(1, (l) => lines.push(l));
    expect(lines).toEqual([
      'FAULT_INJECTION: forcing a failure. name nemesis/1-drop, interval 1, probability 100, space 0, times 3',
    ]);
  });

  it('probability is drawn from the seed: the same seed fails the same opportunities', () => {
    const run = (seed: number) => {
      const a = new FaultAttr(parseFaultAttr({ probability: 30, times: -1 }), new Prng(seed));
      return Array.from({ length: 200 }, () => a.shouldFail(1));
    };
    expect(run(42)).toEqual(run(42));
    expect(run(42)).not.toEqual(run(43));
    const hits = run(42).filter(Boolean).length;
    expect(hits).toBeGreaterThan(30);
    expect(hits).toBeLessThan(90);
  });

  it('refuses knobs out of range, naming them', () => {
    expect(() => parseFaultAttr({ probability: 101 })).toThrow(
      /probability must be an integer 0-100 \(got 101\)/,
    );
    expect(() => parseFaultAttr({ probability: -1 })).toThrow(/probability/);
    expect(() => parseFaultAttr({ times: -2 })).toThrow(/times must be an integer -1-/);
    expect(() => parseFaultAttr({ interval: 0 })).toThrow(/interval/);
    expect(() => parseFaultAttr({ verbose: 3 })).toThrow(/verbose/);
  });
});

// ---------------------------------------------------------------------------------------------
// two raw domains: a guest that grants a page and an event channel to Dom0

interface Pair {
  lh: LocalHypervisor;
  nem: Nemesis;
  dom0: XenClient;
  guest: XenClient;
  page: Page;
  mapped: Page;
  guestPort: number;
  dom0Port: number;
  events: number[];
}

async function pair(): Promise<Pair> {
  const lh = new LocalHypervisor();
  const dom0 = await lh.connectDom0();
  const { credential } = await dom0.domctl.create('g');
  const guest = await lh.connect(credential);
  const page = guest.allocPage();
  const ref = guest.gnttab.grantAccess(page, 0, false);
  const [m] = await dom0.gnttab.map([{ dom: guest.domid, ref, readonly: false }]);
  expect(m.status).toBe(GNTST.okay);
  const guestPort = await guest.evtchn.allocUnbound(0);
  const dom0Port = await dom0.evtchn.bindInterdomain(guest.domid, guestPort);
  const events: number[] = [];
  // what Dom0 sees in the page when the event arrives
  dom0.evtchn.onEvent(dom0Port, () => void events.push(m.page!.buf[0]));
  await until(() => events.length === 1, 'the bind event');
  events.length = 0;
  return { lh, nem: new Nemesis(lh.hv), dom0, guest, page, mapped: m.page!, guestPort, dom0Port, events };
}

describe('the nemesis in the delivery path', () => {
  it('is not installed without work: the hypervisor delivers directly', async () => {
    const p = await pair();
    expect(p.lh.hv.interposer).toBeNull();
    const id = p.nem.addRule({ action: 'duplicate', kind: 'ev', times: 1 });
    expect(p.lh.hv.interposer).not.toBeNull();
    p.nem.removeRule(id);
    expect(p.lh.hv.interposer).toBeNull();
    expect(p.lh.hv.inbound).toBeNull();
  });

  it('delay keeps the stream in order: the page write is visible when the event arrives', async () => {
    const p = await pair();
    p.nem.addRule({ action: 'delay', domain: 0, kind: 'gw', delay_ms: 40, times: 1 });
    const t0 = Date.now();
    p.page.write(0, Buffer.from([7]));
    p.guest.evtchn.send(p.guestPort);
    await until(() => p.events.length === 1, 'the event');
    expect(p.events).toEqual([7]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(35);
    await until(() => p.nem.status().timers === 0, 'the nemesis idle');
  });

  it('reorder lets the event overtake the page write: a memory-ordering violation the peer observes', async () => {
    const p = await pair();
    p.nem.addRule({ action: 'reorder', domain: 0, kind: 'gw', delay_ms: 40, times: 1 });
    p.page.write(0, Buffer.from([9]));
    p.guest.evtchn.send(p.guestPort);
    await until(() => p.events.length === 1, 'the event');
    expect(p.events).toEqual([0]); // the old contents: the write is still in transit
    await until(() => p.mapped.buf[0] === 9, 'the late write');
    expect(p.nem.injections().map((i) => [i.action, i.kind])).toEqual([['reorder', 'gw']]);
  });

  it('drop loses an upcall for good (lateeoi: the port waits for an EOI that never comes); duplicate doubles one', async () => {
    const p = await pair();
    p.nem.addRule({ action: 'duplicate', domain: 0, kind: 'ev', times: 1 });
    p.guest.evtchn.send(p.guestPort);
    await until(() => p.events.length === 2, 'two upcalls');
    await p.dom0.fence();
    p.nem.clearRules();
    p.events.length = 0;
    p.nem.addRule({ action: 'drop', domain: 0, kind: 'ev', port: p.dom0Port, times: 1 });
    p.guest.evtchn.send(p.guestPort);
    await p.guest.fence();
    await p.dom0.fence();
    p.guest.evtchn.send(p.guestPort);
    await p.guest.fence();
    await p.dom0.fence();
    expect(p.events).toEqual([]);
    expect(p.nem.status().rules[0]).toMatchObject({ fired: 1 });
  });

  it("pause holds a domain's traffic both ways until resume", async () => {
    const p = await pair();
    p.nem.pause(0);
    p.guest.evtchn.send(p.guestPort);
    const sent = p.dom0.xs.directory('/').then(() => 'answered');
    await p.guest.fence();
    await new Promise((r) => setImmediate(r));
    expect(p.events).toEqual([]);
    expect(p.nem.status().held[0]).toEqual({ out: 1, in: 1 });
    p.nem.resume(0);
    expect(await sent).toBe('answered');
    await until(() => p.events.length === 1, 'the held upcall');
    expect(p.lh.hv.interposer).toBeNull();
  });

  it('bounds what it holds: a paused guest that keeps sending is cut; a receiver held too long gets it all, in order', async () => {
    const p = await pair();
    p.nem.pause(p.guest.domid);
    const closed = new Promise<number>((r) => p.guest.onClose((code) => r(code)));
    for (let i = 0; i <= MAX_HELD_INBOUND; i++) p.guest.evtchn.send(p.guestPort);
    expect(await closed).toBe(4600);
    await until(() => !p.lh.hv.domains.has(p.guest.domid), 'the domain destroyed');
    expect(p.nem.status().held).toEqual({});

    const q = await pair();
    // ten minutes for the first message to Dom0 and all behind it: Dom0's own replies pile up
    q.nem.addRule({ action: 'delay', domain: 0, delay_ms: 600_000, times: 1 });
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: MAX_HELD_OUTBOUND + 1 }, (_, i) => q.dom0.fence().then(() => order.push(i))),
    );
    expect(order.every((v, i) => v === i)).toBe(true);
    expect(q.nem.status()).toMatchObject({ timers: 0 });
  });

  it.each([
    { rules: 'no other rule', extraRule: false },
    { rules: 'another rule installed', extraRule: true },
  ])(
    'a paused guest cut off in the middle of a run of page writes ($rules): the broker carries on and applies nothing after the cut',
    async ({ extraRule }) => {
      const errors: unknown[] = [];
      const onErr = (e: unknown) => errors.push(e);
      process.on('uncaughtException', onErr);
      try {
        const p = await pair();
        // a rule that never fires keeps the seams installed after the pause is dropped
        if (extraRule) p.nem.addRule({ action: 'drop', kind: ['xs_watch'], domain: 0, probability: 0 });
        p.nem.pause(p.guest.domid);
        const closed = new Promise<number>((r) => p.guest.onClose((code) => r(code)));
        // one-byte writes two bytes apart: separate records, all in one run per frame
        for (let i = 0; i <= MAX_HELD_INBOUND + 10; i++)
          p.page.write((i * 2) % 4000, Buffer.from([(i & 0x7f) | 1]));
        expect(await closed).toBe(4600);
        await until(() => !p.lh.hv.domains.has(p.guest.domid), 'the guest destroyed');
        await p.dom0.fence();
        expect(p.mapped.buf.filter((b) => b !== 0).length).toBe(0);
        expect(errors).toEqual([]);
        // the broker still serves the others
        expect((await p.dom0.domctl.list()).map((d) => d.domid)).toEqual([0]);
      } finally {
        process.off('uncaughtException', onErr);
      }
    },
  );

  it("cut closes a domain's connection: a guest is destroyed", async () => {
    const p = await pair();
    const closed = new Promise<number>((r) => p.guest.onClose((code) => r(code)));
    p.nem.cut(p.guest.domid);
    expect(await closed).toBe(4600);
    await until(() => !p.lh.hv.domains.has(p.guest.domid), 'the domain destroyed');
  });

  it('refuses bad rules with a message naming what is wrong', async () => {
    const p = await pair();
    const err = (raw: unknown) => {
      try {
        p.nem.addRule(raw);
      } catch (e) {
        return (e as PvblkError).message;
      }
      return 'accepted';
    };
    expect(err({ action: 'explode' })).toMatch(/unknown fault action "explode" \(known: delay, reorder/);
    expect(err({ action: 'drop', domain: 77 })).toMatch(
      /the filter names no domain: domain 77 does not exist/,
    );
    expect(err({ action: 'drop', probability: 150 })).toMatch(
      /probability must be an integer 0-100 \(got 150\)/,
    );
    expect(err({ action: 'drop', kind: 'page' })).toMatch(/unknown message kind "page"/);
    expect(err({ action: 'delay' })).toMatch(/delay needs delay_ms/);
    expect(err({ action: 'corrupt', kind: 'ev' })).toMatch(/kind ev carries none/);
    expect(err({ action: 'drop', domain: 0, port: 999 })).toMatch(/domain 0 has no event-channel port 999/);
    expect(err({ action: 'drop', colour: 'red' })).toMatch(/unknown rule field "colour"/);
    expect(p.nem.status().rules).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// bit flips in data pages, through blkfront and blkback

describe('corrupt: a bit flipped in a data page in transit', () => {
  let s: Stack | null = null;
  afterEach(async () => {
    await s?.close();
    s = null;
  });

  for (const persistent of [true, false]) {
    it(`on a write, reaches only the backend's copy: the disk gets one flipped bit, the guest and the broker keep the data (persistent grants ${persistent ? 'on' : 'off'})`, async () => {
      s = await startStack({ blkback: { persistentGrants: persistent } });
      const g = await s.addGuest({ front: { persistentGrants: persistent } });
      const nem = new Nemesis(s.lh.hv, () => {}, 5);
      nem.addRule({ action: 'corrupt', domain: 0, times: 1 });
      const data = pattern(8192, 3);
      const req = rwRequest(g.xc, 'write', 16, data);
      expect((await g.front.submit(req)).status).toBe('ok');
      const onDisk = (await g.disk.read(16, 16)) as { ok: true; data: Buffer };
      const diff = bitsDiffering(onDisk.data, data);
      expect(diff.length).toBe(1);
      expect(gather(req).equals(data)).toBe(true); // the sender's buffer
      const [inj] = nem.injections();
      expect(inj).toMatchObject({ action: 'corrupt', to: 0, role: 'data', op: 'write', granter: g.domid });
      // the broker's authoritative frame has the right bytes (a persistent grant outlives the request)
      if (persistent) {
        const f = s.lh.hv.domains.get(g.domid)!.grants.get(inj.ref!)!.frame.data;
        expect(f.equals(data.subarray(0, 4096)) || f.equals(data.subarray(4096))).toBe(true);
      }
      expect(nem.status().rules[0]).toMatchObject({ fired: 1 });
    });
  }

  it('on a read, reaches only the guest: the disk keeps the data', async () => {
    s = await startStack();
    const g = await s.addGuest();
    const data = pattern(4096, 11);
    expect((await g.front.submit(rwRequest(g.xc, 'write', 8, data))).status).toBe('ok');
    const nem = new Nemesis(s.lh.hv, () => {}, 9);
    nem.addRule({ action: 'corrupt', domain: g.domid, times: 1 });
    const rd = rwRequest(g.xc, 'read', 8, Buffer.alloc(4096));
    expect((await g.front.submit(rd)).status).toBe('ok');
    expect(bitsDiffering(gather(rd), data).length).toBe(1);
    const onDisk = (await g.disk.read(8, 8)) as { ok: true; data: Buffer };
    expect(onDisk.data.equals(data)).toBe(true);
    expect(nem.injections()[0]).toMatchObject({ role: 'data', op: 'read', to: g.domid });
  });

  it("never lands in a ring slot or a read request's outgoing page", async () => {
    s = await startStack();
    const g = await s.addGuest();
    const nem = new Nemesis(s.lh.hv, () => {}, 1);
    // armed for the backend: reads carry no data towards it, flushes none at all
    nem.addRule({ action: 'corrupt', domain: 0, times: -1 });
    for (let i = 0; i < 4; i++) {
      const rd = rwRequest(g.xc, 'read', 8 * i, Buffer.alloc(4096));
      expect((await g.front.submit(rd)).status).toBe('ok');
    }
    expect((await g.front.submit({ op: 'flush', sector: 0, segments: [] })).status).toBe('ok');
    expect(nem.injections()).toEqual([]);
    expect(nem.status().requestsDecoded).toBe(5);
  });
});

function bitsDiffering(a: Buffer, b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i] ^ b[i];
    for (let k = 0; k < 8; k++) if (x & (1 << k)) out.push(i * 8 + k);
  }
  return out;
}

describe("the blkif tracer: a frontend's rings as blkback reads them", () => {
  let s: Stack | null = null;
  afterEach(async () => {
    await s?.close();
    s = null;
  });

  it('reads the queue count and ring page order as decimal numbers in range, or leaves the device out', async () => {
    s = await startStack();
    const g = await s.addGuest();
    const nem = new Nemesis(s.lh.hv, () => {}, 5);
    const rings = () => nem.tracer.indices().filter((r) => r.domid === g.domid).length;
    expect(rings()).toBe(1);
    const key = `${frontendPath(g.domid, xvdDevid(0))}/${BlkifKey.multiQueueNumQueues}`;
    await g.xc.xs.write(key, '1');
    expect(rings()).toBe(1);
    // what Number() took for 1, and blkback's parseXsUint refuses: not a ring to learn requests from
    for (const bad of [' 1', '0x1', '1.0', '', '65']) {
      await g.xc.xs.write(key, bad);
      expect(rings(), JSON.stringify(bad)).toBe(0);
    }
    await g.xc.xs.write(key, '1');
    expect(rings()).toBe(1);
  });
});

describe('reset', () => {
  it('resumes paused domains (also one destroyed meanwhile), delivers what is held and uninstalls itself', async () => {
    const p = await pair();
    p.nem.pause(0);
    p.nem.pause(p.guest.domid);
    p.nem.addRule({ action: 'reorder', domain: 0, kind: 'ev', delay_ms: 60_000, times: -1 });
    p.guest.evtchn.send(p.guestPort);
    // the guest is paused: what it sent waits at the broker's door
    await until(() => (p.nem.status().held[p.guest.domid]?.in ?? 0) > 0, 'the send to be held');
    p.lh.hv.destroyDomain(p.guest.domid);
    p.nem.reset();
    expect(p.nem.status()).toMatchObject({ rules: [], paused: [], held: {}, timers: 0, installed: false });
    expect(p.lh.hv.interposer).toBeNull();
  });
});
