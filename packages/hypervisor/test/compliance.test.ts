/**
 * One compliance suite for both implementations of the hypervisor interface: in-process
 * (LocalHypervisor, no sockets) and over a real WebSocket server. Drivers depend on both behaving
 * the same, so every behaviour is asserted against both.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  encodeFrame,
  EVTCHNSTAT_interdomain,
  EVTCHNSTAT_unbound,
  GNTST,
  GTF_permit_access,
  GTF_readonly,
  GTF_reading,
  GTF_writing,
  WIRE_MAX_RECORDS,
  WIRE_VERSION,
  decodeHypervisorFrame,
  DOMID_SELF,
  SRING_REQ_PROD,
  SRING_RSP_EVENT,
  type ClientMessage,
  type HypervisorMessage,
} from '@pvblk/shared';
import { PRE_HELLO_BYTES_MAX, PRE_HELLO_FRAME_MAX } from '../src/connection.ts';
import { LocalHypervisor } from '../src/local.ts';
import { startHypervisorServer, type RunningHypervisor } from '../src/server.ts';
import { connectWs, RingEvents, type XenClient } from '@pvblk/client';
import type { Hypervisor } from '../src/core/hypervisor.ts';
import { GRANT_PIN_MAX } from '../src/core/gnttab.ts';

const DOM0_SECRET = 'compliance-dom0-secret';
/** Small limits, so that the quota tests reach them quickly (the same for both implementations). */
const LIMITS = { maxDomains: 8, maxGuestEvtchnPort: 16, grants: { maxSharedFrames: 64 } };

interface RawResult {
  msgs: HypervisorMessage[];
  closed: number | null;
}

/** Collects a raw connection's replies until `done`, or fails after `ms`. */
function collector(done: (r: RawResult) => boolean, ms = 5000) {
  const r: RawResult = { msgs: [], closed: null };
  let resolve!: (r: RawResult) => void;
  let reject!: (e: Error) => void;
  const p = new Promise<RawResult>((res, rej) => ((resolve = res), (reject = rej)));
  const t = setTimeout(
    () =>
      reject(new Error(`raw connection: no expected reply within ${ms} ms (got ${JSON.stringify(r.msgs)})`)),
    ms,
  );
  const check = () => {
    if (done(r)) {
      clearTimeout(t);
      resolve(r);
    } else if (r.closed !== null) {
      clearTimeout(t);
      reject(
        new Error(
          `raw connection closed (${r.closed}) before the expected replies: ${JSON.stringify(r.msgs)}`,
        ),
      );
    }
  };
  return {
    promise: p,
    frame(f: Uint8Array) {
      const d = decodeHypervisorFrame(f);
      if (d.ok) r.msgs.push(...d.messages);
      check();
    },
    close(code: number) {
      r.closed = code;
      check();
    },
  };
}

interface Setup {
  hv: Hypervisor;
  connect(credential: string): Promise<XenClient>;
  /**
   * Sends raw bytes, one frame each, and collects what comes back until `done` says enough (checked
   * on every frame and at close); a reply that never comes fails the test rather than passing it.
   */
  raw(frames: Uint8Array[], done: (r: RawResult) => boolean): Promise<RawResult>;
  close(): Promise<void>;
}

async function localSetup(): Promise<Setup> {
  const lh = new LocalHypervisor({ dom0Credential: DOM0_SECRET, ...LIMITS });
  return {
    hv: lh.hv,
    connect: (c) => lh.connect(c),
    raw: (frames, done) => {
      const c = collector(done);
      const t = lh.rawTransport('raw');
      t.onFrame((f) => c.frame(f));
      t.onClose((code) => c.close(code));
      for (const f of frames) t.send(Buffer.from(f));
      return c.promise.finally(() => t.close());
    },
    close: async () => {},
  };
}

async function wsSetup(): Promise<Setup> {
  const running: RunningHypervisor = await startHypervisorServer({
    host: '127.0.0.1',
    port: 0,
    dom0Credential: DOM0_SECRET,
    ...LIMITS,
  });
  const clients: XenClient[] = [];
  return {
    hv: running.hv,
    connect: async (c) => {
      const cl = await connectWs(running.url, { credential: c, retryForMs: 0 });
      clients.push(cl);
      return cl;
    },
    raw: (frames, done) => {
      const c = collector(done);
      const ws = new WebSocket(running.url);
      ws.on('message', (data: Buffer) => c.frame(data));
      ws.on('close', (code) => c.close(code));
      ws.on('open', () => {
        for (const f of frames) ws.send(f, { binary: true });
      });
      return c.promise.finally(() => ws.terminate());
    },
    close: async () => {
      for (const c of clients) c.close();
      await running.close();
    },
  };
}

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await tick(5);
  }
}

describe.each([
  ['in-process', localSetup],
  ['websocket', wsSetup],
] as const)('hypervisor compliance (%s)', (_name, makeSetup) => {
  let s: Setup;
  let dom0: XenClient;
  beforeEach(async () => {
    s = await makeSetup();
    dom0 = await s.connect(DOM0_SECRET);
  });
  afterEach(async () => {
    await s.close();
  });

  async function newGuest(name = 'guest'): Promise<XenClient> {
    const { credential } = await dom0.domctl.create(name);
    return s.connect(credential);
  }

  /** A new guest's page, granted to Dom0 writable and mapped there. */
  async function sharedWithDom0() {
    const g = await newGuest();
    const page = g.allocPage();
    const ref = g.gnttab.grantAccess(page, 0, false);
    await g.fence(); // granted before another connection uses the ref
    const [m] = await dom0.gnttab.map([{ dom: g.domid, ref, readonly: false }]);
    return { g, page, ref, theirs: m.page! };
  }

  describe('domains and credentials', () => {
    it('authenticates Dom0 as domain 0 and a created guest as the domid it was given', async () => {
      expect(dom0.domid).toBe(0);
      expect(dom0.privileged).toBe(true);
      const { domid, credential } = await dom0.domctl.create('alpha');
      const g = await s.connect(credential);
      expect(g.domid).toBe(domid);
      expect(g.privileged).toBe(false);
      expect((await dom0.domctl.list()).map((d) => [d.domid, d.name, d.connected])).toEqual([
        [0, 'Domain-0', true],
        [domid, 'alpha', true],
      ]);
    });

    it('refuses a wrong credential and a second connection of a connected domain', async () => {
      await expect(s.connect('not-a-credential')).rejects.toMatchObject({ code: 'EACCES' });
      await expect(s.connect(DOM0_SECRET)).rejects.toMatchObject({ code: 'EBUSY' });
    });

    it("counts a domain's answered calls and its fences, and nothing one-way among them", async () => {
      const { g, page, theirs } = await sharedWithDom0();
      const guest = s.hv.domains.get(g.domid)!;
      const before = { ...guest.stats };
      page.write(0, Buffer.from('one way'));
      const port = await g.evtchn.allocUnbound(0);
      g.evtchn.send(port); // one-way as well
      await g.fence();
      await g.fence();
      await expect(g.domctl.list()).rejects.toMatchObject({ code: 'EPERM' }); // refused: still answered
      expect(theirs.read(0, 7).toString()).toBe('one way');
      expect([guest.stats.calls - before.calls, guest.stats.fences - before.fences]).toEqual([4, 2]);
    });

    it('refuses privileged calls from a guest with EPERM', async () => {
      const g = await newGuest();
      await expect(g.domctl.create('evil')).rejects.toMatchObject({ code: 'EPERM' });
      await expect(g.domctl.destroy(0)).rejects.toMatchObject({ code: 'EPERM' });
    });

    it('refuses a connection whose first message is not hello, and closes it', async () => {
      const r = await s.raw([encodeFrame([{ t: 'dom_list', id: 7 }])], (x) => x.closed !== null);
      expect(r.msgs[0]).toMatchObject({ t: 'err', code: 'EACCES' });
      expect(r.closed).toBe(4401);
    });

    it('refuses an oversized frame before hello without decoding it, and closes the connection', async () => {
      // a hello followed by a megabyte of event sends: one frame, 1 + 2^18 records
      const sends = Array.from({ length: 1 << 18 }, () => ({ t: 'ev_send' as const, port: 1 }));
      const big = encodeFrame([{ t: 'hello', id: 1, v: WIRE_VERSION, credential: DOM0_SECRET }, ...sends]);
      expect(big.length).toBeGreaterThan(PRE_HELLO_FRAME_MAX);
      const r = await s.raw([big], (x) => x.closed !== null);
      // over a socket the broker does not wait for the frame's end: it stops at the bytes a frame
      // before hello may take, counted as they are read (ws would buffer the whole 16 MiB a frame
      // may announce first, for each of a stranger's sockets)
      const message =
        _name === 'websocket'
          ? expect.stringMatching(
              new RegExp(`^\\d+ bytes before hello \\(at most ${PRE_HELLO_BYTES_MAX}\\)$`),
            )
          : `a frame of ${big.length} bytes before hello (at most ${PRE_HELLO_FRAME_MAX})`;
      expect(r.msgs).toEqual([{ t: 'err', id: 0, code: 'EPROTO', message }]);
      expect(r.closed).toBe(4400);
      // Dom0 (whose credential that was) is still connected and served
      expect((await dom0.domctl.list()).map((d) => d.domid)).toEqual([0]);
    });

    it('refuses a hello of another wire version', async () => {
      const r = await s.raw(
        [encodeFrame([{ t: 'hello', id: 1, v: WIRE_VERSION + 1, credential: DOM0_SECRET + 'x' }])],
        (x) => x.closed !== null,
      );
      expect(r.msgs[0]).toMatchObject({ t: 'err', code: 'EPROTO' });
      expect((r.msgs[0] as { message: string }).message).toContain(
        `wire version ${WIRE_VERSION + 1} is not supported`,
      );
    });
  });

  describe('malformed input', () => {
    it('refuses a frame of more records than a frame may hold, unserved, and goes on serving the domain', async () => {
      const { credential } = await dom0.domctl.create('many-records');
      // EOIs of a port it does not have are handled silently: a frame of them queued millions of
      // messages in the broker before it was refused (16 MiB of 5-byte records)
      const eois = Array.from({ length: WIRE_MAX_RECORDS + 1 }, () => ({ t: 'ev_eoi' as const, port: 9 }));
      const r = await s.raw(
        [
          encodeFrame([{ t: 'hello', id: 1, v: WIRE_VERSION, credential }]),
          encodeFrame(eois),
          encodeFrame([{ t: 'fence', id: 9 }]),
        ],
        (x) => x.msgs.some((m) => 'id' in m && m.id === 9),
      );
      expect(r.msgs.slice(1)).toEqual([
        {
          t: 'err',
          id: 0,
          code: 'EPROTO',
          message: `malformed frame: a frame of more than ${WIRE_MAX_RECORDS} records`,
        },
        { t: 'ok', id: 9 },
      ]);
      expect(r.closed).toBeNull();
    });

    it('answers a page write through a mapping the domain does not hold with an error naming the call', async () => {
      const { domid, credential } = await dom0.domctl.create('raw-pages');
      const r = await s.raw(
        [
          encodeFrame([{ t: 'hello', id: 1, v: WIRE_VERSION, credential }]),
          // a write to a frame it does not own is dropped (it has no such frame); one through a
          // mapping it does not hold is refused; the fence after them is still answered
          encodeFrame([
            { t: 'mw', gfn: 0x7fff_0000, off: 0, data: Buffer.from('x') },
            { t: 'gw', handle: 77, off: 8, data: Buffer.from('y') },
            { t: 'fence', id: 9 },
          ]),
        ],
        (x) => x.msgs.some((m) => m.t === 'ok' && m.id === 9),
      );
      const after = r.msgs.slice(r.msgs.findIndex((m) => m.t === 'ok' && m.id === 1) + 1);
      expect(after).toEqual([
        {
          t: 'err',
          id: 0,
          code: 'GNTST_bad_handle',
          message: `gw: domain ${domid} holds no mapping with handle 77`,
        },
        { t: 'ok', id: 9 },
      ]);
    });

    it('serves page writes that follow each other record by record: a refused one and an invalid message are answered in their places', async () => {
      const g = await newGuest('granter');
      const { domid, credential } = await dom0.domctl.create('raw-mapper');
      const pages = [g.allocPage(), g.allocPage(), g.allocPage()];
      const refs = pages.map((p) => g.gnttab.grantAccess(p, domid, false));
      await g.fence();
      const gw = (handle: number, text: string): ClientMessage => ({
        t: 'gw',
        handle,
        off: 16,
        data: Buffer.from(text),
      });
      const r = await s.raw(
        [
          encodeFrame([{ t: 'hello', id: 1, v: WIRE_VERSION, credential }]),
          encodeFrame([
            { t: 'gnt_map', id: 2, ops: refs.map((ref) => ({ dom: g.domid, ref, readonly: false })) },
          ]),
          // a fresh domain's mappings get handles 1, 2, 3 (checked below); 77 is none of its
          encodeFrame([
            gw(1, 'one'),
            gw(77, 'bad'),
            gw(2, 'two'),
            { t: 'no_such_call', id: 6 } as never,
            gw(3, 'three'),
            { t: 'fence', id: 9 },
          ]),
        ],
        (x) => x.msgs.some((m) => m.t === 'ok' && m.id === 9),
      );
      const mapReply = r.msgs.find((m) => m.t === 'ok' && m.id === 2) as { r: Array<{ handle: number }> };
      expect(mapReply.r.map((x) => x.handle)).toEqual([1, 2, 3]);
      const after = r.msgs.slice(r.msgs.indexOf(mapReply as HypervisorMessage) + 1);
      expect(after).toMatchObject([
        {
          t: 'err',
          id: 0,
          code: 'GNTST_bad_handle',
          message: `gw: domain ${domid} holds no mapping with handle 77`,
        },
        { t: 'err', id: 6, code: 'EPROTO' },
        { t: 'ok', id: 9 },
      ]);
      await g.fence();
      expect(pages.map((p) => p.read(16, 5).toString())).toEqual(['one\0\0', 'two\0\0', 'three']);
    });

    it('answers garbage frames with EPROTO and a reason, without crashing', async () => {
      const g = await newGuest();
      const errors: string[] = [];
      g.onError((e) => errors.push(`${e.code} ${e.message}`));
      const { credential } = await dom0.domctl.create('raw');
      const errsOf = (x: RawResult) =>
        x.msgs.filter((m) => m.t === 'err') as Array<{ id: number; message: string }>;
      const r = await s.raw(
        [
          encodeFrame([{ t: 'hello', id: 1, v: WIRE_VERSION, credential }]),
          Buffer.from([9, 1, 2, 3]),
          Buffer.from([WIRE_VERSION, 0xc1]),
          encodeFrame([{ t: 'gnt_map', id: 5, ops: [{ dom: 0, ref: -1, readonly: true }] } as never]),
          encodeFrame([{ t: 'no_such_call', id: 6 } as never]),
        ],
        (x) => errsOf(x).length >= 4,
      );
      const errs = errsOf(r);
      expect(errs.map((e) => e.message)).toEqual([
        `malformed frame: wire version 9 is not supported (want ${WIRE_VERSION})`,
        'malformed frame: record 0 at byte 1: unknown record kind 0xc1',
        'message 0 (gnt_map): ops must be item 0: ref must be an integer 0..4294967295',
        'message 0: unknown type "no_such_call"',
      ]);
      expect(errs[2].id).toBe(5);
      // the hypervisor still serves everyone
      expect((await dom0.domctl.list()).length).toBeGreaterThanOrEqual(2);
    });
  });

  describe('grants and shared pages', () => {
    it('a refused re-grant of a ref leaves its grant as it was: the grantee keeps its access', async () => {
      const g = await newGuest('g');
      const d = s.hv.domains.get(g.domid)!;
      const page = g.allocPage();
      page.write(0, Buffer.from('still here'));
      const ref = g.gnttab.grantAccess(page, 0, true);
      g.gnttab.grantAccess(page, 0, true); // a second ref: the frame stays shared without the first
      const solos: number[] = [];
      for (let i = 2; i < 65; i++) solos.push(g.gnttab.grantAccess(g.allocPage(), 0, true));
      await g.fence();
      expect(d.frames.size).toBe(64);
      // re-granting ref onto a 65th frame is refused for the limit, before anything changed …
      expect(() => s.hv.gnttab.grant(d, ref, 0, 0x7ff0_0000, false)).toThrow(
        /^ENOMEM: domain \d+ already shares 64 frames, its limit/,
      );
      const [m] = await dom0.gnttab.map([{ dom: g.domid, ref, readonly: true }]);
      expect(m.status).toBe(GNTST.okay);
      expect(m.page!.read(0, 10).toString()).toBe('still here');
      // … while a re-grant that gives back the only frame its ref used fits at the limit
      s.hv.gnttab.grant(d, solos[0], 0, 0x7ff0_0001, false);
      expect(d.frames.size).toBe(64);
      expect(d.frames.has(0x7ff0_0001)).toBe(true);
    });

    it('lets the grantee map a grant read-only, refuses a writable map and other domains', async () => {
      const g = await newGuest('g');
      const other = await newGuest('other');
      const page = g.allocPage();
      page.write(0, Buffer.from('hello from the guest'));
      const ref = g.gnttab.grantAccess(page, 0, true);
      await g.fence(); // granted before another connection uses the ref

      const [rw] = await dom0.gnttab.map([{ dom: g.domid, ref, readonly: false }]);
      expect(rw.status).toBe(GNTST.permission_denied);
      const [ro] = await dom0.gnttab.map([{ dom: g.domid, ref, readonly: true }]);
      expect(ro.status).toBe(GNTST.okay);
      expect(ro.page!.read(0, 20).toString()).toBe('hello from the guest');
      const [stranger] = await other.gnttab.map([{ dom: g.domid, ref, readonly: true }]);
      expect(stranger.status).toBe(GNTST.permission_denied);
      const [bad] = await dom0.gnttab.map([{ dom: g.domid, ref: 1 << 20, readonly: true }]);
      expect(bad.status).toBe(GNTST.bad_gntref);
      const [nodom] = await dom0.gnttab.map([{ dom: 4242, ref, readonly: true }]);
      expect(nodom.status).toBe(GNTST.bad_domain);

      expect(s.hv.grantEntryFlags(g.domid, ref)).toBe(GTF_permit_access | GTF_readonly | GTF_reading);
      expect(() => ro.page!.write(0, Buffer.from('x'))).toThrow(/read-only/);
    });

    it('propagates writes both ways, and orders them before a following event', async () => {
      const { g, page, ref, theirs } = await sharedWithDom0();
      const mapped = theirs;
      expect(s.hv.grantEntryFlags(g.domid, ref)).toBe(GTF_permit_access | GTF_reading | GTF_writing);

      // guest → dom0: 200 writes then one event; the handler must see all of them
      const port = await g.evtchn.allocUnbound(0);
      const bport = await dom0.evtchn.bindInterdomain(g.domid, port);
      let seen = -1;
      let upcalls = 0;
      dom0.evtchn.onEvent(bport, () => {
        upcalls++;
        seen = mapped.readU32LE(400);
      });
      await until(() => upcalls === 1, 'the upcall that bind sets pending');
      for (let i = 1; i <= 200; i++) page.writeU32LE(400, i);
      g.evtchn.send(port);
      await until(() => upcalls === 2, 'the event');
      expect(seen).toBe(200);

      // dom0 → guest through the mapping
      mapped.write(100, Buffer.from('response'));
      await dom0.fence();
      await g.fence();
      expect(page.read(100, 8).toString()).toBe('response');
    });

    it('carries page writes intact both ways while frame buffers are reused', async () => {
      // Each turn sends four frames of 10 pages (40 KiB) and an event: on websockets every sender's
      // frame buffers go back to its writer once the socket has taken them, and carry the frames
      // after — a buffer reused too early would show here as another frame's bytes (in process, the
      // receiver is handed the frame itself and nothing is reused; test/unit/frame-recycling.test.ts
      // backs a socket up).
      const g = await newGuest();
      const pages = Array.from({ length: 40 }, () => g.allocPage());
      const refs = pages.map((p) => g.gnttab.grantAccess(p, 0, false));
      await g.fence();
      const maps = await dom0.gnttab.map(refs.map((ref) => ({ dom: g.domid, ref, readonly: false })));
      const mapped = maps.map((m) => m.page!);
      const gport = await g.evtchn.allocUnbound(0);
      const dport = await dom0.evtchn.bindInterdomain(g.domid, gport);
      const fill = (round: number, i: number) => {
        const b = Buffer.alloc(4096);
        for (let k = 0; k < 4096; k += 4) b.writeUInt32LE(((round * 40 + i) * 4096 + k) >>> 0, k);
        return b;
      };
      for (let round = 0; round < 6; round++) {
        const guestWrites = round % 2 === 0;
        const [from, to] = guestWrites ? [pages, mapped] : [mapped, pages];
        const [writer, reader] = guestWrites ? [g, dom0] : [dom0, g];
        for (let k = 0; k < 4; k++) {
          for (let i = k * 10; i < k * 10 + 10; i++) from[i].write(0, fill(round, i));
          writer.evtchn.send(guestWrites ? gport : dport); // a doorbell: this frame goes now
        }
        await writer.fence();
        await reader.fence();
        to.forEach((p, i) =>
          expect(p.read(0, 4096).equals(fill(round, i)), `round ${round} page ${i}`).toBe(true),
        );
      }
    });

    it('refuses to end access while mapped, and allows it after unmap', async () => {
      const { g, ref, theirs } = await sharedWithDom0();
      expect(await g.gnttab.endForeignAccess([ref])).toEqual(['busy']);
      expect(await dom0.gnttab.unmap([theirs])).toEqual([GNTST.okay]);
      expect(await dom0.gnttab.unmap([theirs])).toEqual([GNTST.bad_handle]);
      expect(await g.gnttab.endForeignAccess([ref])).toEqual(['ok']);
      const [after] = await dom0.gnttab.map([{ dom: g.domid, ref, readonly: false }]);
      expect(after.status).toBe(GNTST.permission_denied);
      expect(s.hv.status().domains.find((d) => d.domid === g.domid)!.sharedFrames).toBe(0);
    });

    it('copies to and from granted frames, checking permissions and page bounds (grant copy)', async () => {
      const g = await newGuest();
      const src = g.allocPage();
      src.write(0, Buffer.alloc(4096, 0x5a));
      const dst = g.allocPage();
      const refSrc = g.gnttab.grantAccess(src, 0, true);
      const refDst = g.gnttab.grantAccess(dst, 0, false);
      await g.fence(); // granted before another connection uses the ref
      const local = dom0.allocPage();
      local.write(0, Buffer.alloc(4096, 0xa5));
      const st = await dom0.gnttab.copy([
        { from: { dom: g.domid, ref: refSrc, off: 0 }, to: { page: local, off: 512 }, len: 1024 },
        { from: { page: local, off: 0 }, to: { dom: g.domid, ref: refDst, off: 0 }, len: 4096 },
        { from: { page: local, off: 0 }, to: { dom: g.domid, ref: refSrc, off: 0 }, len: 16 },
        { from: { dom: g.domid, ref: refSrc, off: 4000 }, to: { page: local, off: 0 }, len: 200 },
      ]);
      expect(st).toEqual([GNTST.okay, GNTST.okay, GNTST.permission_denied, GNTST.bad_copy_arg]);
      expect(local.read(500, 40).toString('hex')).toBe('a5'.repeat(12) + '5a'.repeat(28));
      await g.fence();
      // the second op read `local` when the batch was built, before the first op's result landed
      expect(dst.read(0, 4096).equals(Buffer.alloc(4096, 0xa5))).toBe(true);
      expect(s.hv.grantEntryFlags(g.domid, refSrc)).toBe(GTF_permit_access | GTF_readonly); // copies leave no busy bits
    });
  });

  describe('limits and amplification (a guest must not make the broker work or hold memory for it unboundedly)', () => {
    it('maps a frame granted under two refs as one page: views cannot diverge and writes come once', async () => {
      const g = await newGuest('g');
      const page = g.allocPage();
      const refs = [g.gnttab.grantAccess(page, 0, false), g.gnttab.grantAccess(page, 0, false)];
      await g.fence();
      const [a, b] = await dom0.gnttab.map(refs.map((ref) => ({ dom: g.domid, ref, readonly: false })));
      expect(a.status).toBe(GNTST.okay);
      expect(b.status).toBe(GNTST.okay);
      a.page!.write(0, Buffer.from('through a'));
      expect(b.page!.read(0, 9).toString()).toBe('through a');
      await dom0.fence();
      expect(page.read(0, 9).toString()).toBe('through a');
    });

    it('forwards a write to a frame mapped under 1001 refs once, not 1001 times (finding 3)', async () => {
      const g = await newGuest('g');
      const page = g.allocPage();
      const refs = Array.from({ length: 1001 }, () => g.gnttab.grantAccess(page, 0, false));
      await g.fence(); // the grants are in the table before Dom0 (another connection) maps them
      const maps = await dom0.gnttab.map(refs.map((ref) => ({ dom: g.domid, ref, readonly: false })));
      expect([...new Set(maps.map((m) => m.status))]).toEqual([GNTST.okay]);
      const out0 = s.hv.domains.get(0)!.stats.msgsOut;
      for (let i = 0; i < 1000; i++) page.write(i, Buffer.from([i & 0xff]));
      await g.fence();
      await dom0.fence();
      // the writes arrive as one joined write (adjacent bytes), plus the fence reply
      expect(s.hv.domains.get(0)!.stats.msgsOut - out0).toBeLessThanOrEqual(2);
      expect(maps[1000].page!.read(999, 1)[0]).toBe(999 & 0xff);
      await dom0.gnttab.unmap(maps.map((m) => m.page!));
    });

    it(`maps one grant at most ${GRANT_PIN_MAX} times of each kind, as Xen's 8-bit pin counts allow`, async () => {
      // a guest mapping its own grant 65,536 times made each write of the frame visit every mapping
      const g = await newGuest('g');
      const page = g.allocPage();
      const ref = g.gnttab.grantAccess(page, g.domid, false);
      await g.fence();
      const op = (readonly: boolean) => ({ dom: g.domid, ref, readonly });
      const rw = await g.gnttab.map(Array.from({ length: GRANT_PIN_MAX + 1 }, () => op(false)));
      expect(rw.slice(0, GRANT_PIN_MAX).every((m) => m.status === GNTST.okay)).toBe(true);
      expect(rw[GRANT_PIN_MAX].status).toBe(GNTST.general_error);
      // read-only mappings have a count of their own
      const ro = await g.gnttab.map(Array.from({ length: GRANT_PIN_MAX + 1 }, () => op(true)));
      expect(ro.slice(0, GRANT_PIN_MAX).every((m) => m.status === GNTST.okay)).toBe(true);
      expect(ro[GRANT_PIN_MAX].status).toBe(GNTST.general_error);
      // one unmapped, one more may be mapped; a write through any view reaches the others
      await g.gnttab.unmap([rw[0].page!]);
      const [again] = await g.gnttab.map([op(false)]);
      expect(again.status).toBe(GNTST.okay);
      again.page!.write(0, Buffer.from('seen'));
      await g.fence();
      expect(page.read(0, 4).toString()).toBe('seen');
      expect(ro[5].page!.read(0, 4).toString()).toBe('seen');
      await g.gnttab.unmap(
        [...rw.slice(1, GRANT_PIN_MAX), ...ro.slice(0, GRANT_PIN_MAX), again].map((m) => m.page!),
      );
    });

    it('bounds grant copies per call with E2BIG, and answers within the limit', async () => {
      const g = await newGuest('g');
      const page = g.allocPage();
      page.fill(7);
      const ref = g.gnttab.grantAccess(page, 0, true);
      await g.fence(); // granted before another connection uses the ref
      const op = { dom: g.domid, ref, off: 0, len: 4096 };
      await expect(dom0.gnttab.copyFrom(Array.from({ length: 1024 }, () => op))).rejects.toMatchObject({
        code: 'E2BIG',
      });
      const r = await dom0.gnttab.copyFrom(Array.from({ length: 512 }, () => op));
      expect(r.every((x) => x.status === GNTST.okay && x.data![4095] === 7)).toBe(true);
    });

    it("keeps a guest's shared frames, ports and the domain count under their limits, with Xen's errors", async () => {
      const g = await newGuest('g');
      const errors: string[] = [];
      g.onError((e) => errors.push(e.code));
      for (let i = 0; i < 65; i++) g.gnttab.grantAccess(g.allocPage(), 0, true);
      await g.fence();
      expect(errors).toEqual(['EFAULT']); // the 65th grant: ENOMEM from the broker, surfaced as a failed grant
      expect(s.hv.domains.get(g.domid)!.frames.size).toBe(64);
      const ports: number[] = [];
      for (let i = 0; i < 16; i++) ports.push(await g.evtchn.allocUnbound(0));
      expect(Math.max(...ports)).toBe(16);
      await expect(g.evtchn.allocUnbound(0)).rejects.toMatchObject({ code: 'ENOSPC' });
      for (let i = s.hv.domains.size; i < 8; i++) await dom0.domctl.create(`filler${i}`);
      await expect(dom0.domctl.create('one-too-many')).rejects.toMatchObject({ code: 'ENOSPC' });
    });

    it('does not let a guest list the domains (XEN_DOMCTL_getdomaininfo is privileged)', async () => {
      const g = await newGuest('g');
      await expect(g.domctl.list()).rejects.toMatchObject({ code: 'EPERM' });
    });
  });

  describe('event channels', () => {
    it('binds, delivers, coalesces sends made before the upcall is handled, and closes', async () => {
      const g = await newGuest();
      const gport = await g.evtchn.allocUnbound(0);
      expect(await g.evtchn.status(gport)).toMatchObject({ status: EVTCHNSTAT_unbound, remoteDomid: 0 });
      const bport = await dom0.evtchn.bindInterdomain(g.domid, gport);
      expect(await g.evtchn.status(gport)).toMatchObject({
        status: EVTCHNSTAT_interdomain,
        remoteDomid: 0,
        remotePort: bport,
      });

      let upcalls = 0;
      let release!: () => void;
      dom0.evtchn.onEvent(bport, () => {
        upcalls++;
        if (upcalls === 2) return new Promise<void>((r) => (release = r));
      });
      await until(() => upcalls === 1, 'bind upcall');
      g.evtchn.send(gport);
      await until(() => upcalls === 2, 'first event');
      // the handler is still running: these five sends collapse into one pending bit
      for (let i = 0; i < 5; i++) g.evtchn.send(gport);
      // the sends are applied once g's fence returns; anything they raised for Dom0 reaches it before
      // the reply to a fence Dom0 sends afterwards
      await g.fence();
      await dom0.fence();
      expect(upcalls).toBe(2);
      release();
      await until(() => upcalls === 3, 'the coalesced upcall');
      await dom0.fence();
      expect(upcalls).toBe(3);

      await dom0.evtchn.close(bport);
      expect(await g.evtchn.status(gport)).toMatchObject({ status: EVTCHNSTAT_unbound, remoteDomid: 0 });
      g.evtchn.send(gport); // silently dropped on an unbound port
      await g.fence();
    });

    it('holds events while masked and delivers one on unmask', async () => {
      const g = await newGuest();
      const gport = await g.evtchn.allocUnbound(0);
      const bport = await dom0.evtchn.bindInterdomain(g.domid, gport);
      let upcalls = 0;
      dom0.evtchn.onEvent(bport, () => void upcalls++);
      await until(() => upcalls === 1, 'bind upcall');
      await dom0.evtchn.mask(bport);
      g.evtchn.send(gport);
      g.evtchn.send(gport);
      await g.fence();
      await dom0.fence();
      expect(upcalls).toBe(1);
      await dom0.evtchn.unmask(bport);
      await until(() => upcalls === 2, 'unmask delivery');
    });

    it('refuses a guest allocating in another domain, and binding a port not offered to it', async () => {
      const g = await newGuest('g');
      const h = await newGuest('h');
      await expect(g.evtchn.allocUnbound(0, 0)).rejects.toMatchObject({ code: 'EPERM' });
      const port = await g.evtchn.allocUnbound(0);
      await expect(h.evtchn.bindInterdomain(g.domid, port)).rejects.toMatchObject({ code: 'EINVAL' });
      await expect(h.evtchn.bindInterdomain(999, port)).rejects.toMatchObject({ code: 'ESRCH' });
    });
  });

  describe('pages granted twice, granted to oneself; ports for another domain', () => {
    it('a second grant of a mapped page does not change its contents behind the mapper', async () => {
      const { g, page, theirs } = await sharedWithDom0();
      // a hostile guest grants the same frame again with a body that says req_prod = 5; the
      // broker's copy (on which wire version 2's FINAL checks were decided) kept it, Dom0's did not
      // see it, and each of Dom0's idle checks then woke Dom0 again
      // (its page changed without the write going out, then a grant of it carries the bytes)
      page.buf.writeUInt32LE(5, 0);
      g.gnttab.grantAccess(page, 0, true);
      await g.fence();
      await dom0.fence();
      expect(theirs.readU32LE(0)).toBe(0);
      expect(s.hv.domains.get(g.domid)!.frames.get(page.gfn)!.data.readUInt32LE(0)).toBe(0);
      // a write through the page reaches both, as before
      page.writeU32LE(0, 7);
      await g.fence();
      await dom0.fence();
      expect(theirs.readU32LE(0)).toBe(7);
    });

    it('a page mapped by the domain that granted it: each view sees the writes made through the other', async () => {
      const g = await newGuest();
      const page = g.allocPage();
      const ref = g.gnttab.grantAccess(page, g.domid, false);
      await g.fence();
      const [m] = await g.gnttab.map([{ dom: g.domid, ref, readonly: false }]);
      expect(m.status).toBe(GNTST.okay);
      page.write(0, Buffer.from('own'));
      await g.fence();
      await until(
        () => m.page!.read(0, 3).toString() === 'own',
        'the write through the frame, in the mapping',
      );
      m.page!.write(10, Buffer.from('mapped'));
      await g.fence();
      await until(
        () => page.read(10, 6).toString() === 'mapped',
        'the write through the mapping, in the frame',
      );
    });

    it('EVTCHNOP_alloc_unbound: DOMID_SELF as the remote end is the caller (Dom0 allocating in a guest)', async () => {
      const g = await newGuest();
      const port = await dom0.evtchn.allocUnbound(DOMID_SELF, g.domid);
      expect(await g.evtchn.status(port)).toMatchObject({ status: EVTCHNSTAT_unbound, remoteDomid: 0 });
      const local = await dom0.evtchn.bindInterdomain(g.domid, port);
      expect(await g.evtchn.status(port)).toMatchObject({
        status: EVTCHNSTAT_interdomain,
        remoteDomid: 0,
        remotePort: local,
      });
    });
  });

  describe('xenstore through the client', () => {
    it('enforces permissions by the connection identity', async () => {
      const g = await newGuest();
      await dom0.xs.write('/local/domain/0/secret', 's3cret');
      await expect(g.xs.read('/local/domain/0/secret')).rejects.toMatchObject({ code: 'EACCES' });
      await dom0.xs.write(`/local/domain/${g.domid}/device/x`, 'v');
      await dom0.xs.setPerms(`/local/domain/${g.domid}/device/x`, [`n${g.domid}`, 'r0']);
      expect(await g.xs.read('device/x')).toBe('v');
      expect(await g.xs.getPerms('device/x')).toEqual([`n${g.domid}`, 'r0']);
    });

    it("delivers every event another domain's writes cause, however many in one turn", async () => {
      // a guest renames 900 of its nodes in two transactions (one per directory, so that they do not
      // conflict) committed in one frame: 1800 events for Dom0's watch in one turn, where more than
      // 1024 were dropped — another guest's state change in that turn with them
      const g = await newGuest('flood');
      const data = `/local/domain/${g.domid}/data`;
      await dom0.xs.mkdir(data);
      await dom0.xs.setPerms(data, [`n${g.domid}`]);
      const node = (i: number, name: string) => `${data}/${i < 450 ? 'a' : 'b'}/${name}${i}`;
      await Promise.all(Array.from({ length: 900 }, (_, i) => g.xs.write(node(i, 'n'), 'x')));
      const seen = new Set<string>();
      await dom0.xs.watch(data, (p) => seen.add(p));
      await until(() => seen.size === 1, 'the watch firing once when set');
      const tx = [await g.xs.transactionStart(), await g.xs.transactionStart()];
      await Promise.all(
        Array.from({ length: 900 }, (_, i) => {
          const t = tx[i < 450 ? 0 : 1];
          return Promise.all([g.xs.rm(node(i, 'n'), t), g.xs.write(node(i, 'm'), 'y', t)]);
        }),
      );
      await Promise.all(tx.map((t) => g.xs.transactionEnd(t, true)));
      await until(() => seen.size === 1 + 1800, `1800 events (${seen.size - 1} so far)`);
      for (let i = 0; i < 900; i++) {
        expect(seen.has(node(i, 'n'))).toBe(true);
        expect(seen.has(node(i, 'm'))).toBe(true);
      }
    });

    it('fires watches and retries transactions on EAGAIN', async () => {
      const events: string[] = [];
      const w = await dom0.xs.watch('/local/domain/0/w', (p) => events.push(p));
      await dom0.xs.write('/local/domain/0/w/a', '1');
      await until(() => events.length >= 2, 'watch events');
      expect(events.slice(0, 2)).toEqual(['/local/domain/0/w', '/local/domain/0/w/a']);
      await w.unwatch();

      let attempts = 0;
      await dom0.xs.transaction(async (tx) => {
        attempts++;
        const v = await dom0.xs.read('/local/domain/0/w/a', tx);
        if (attempts === 1) await dom0.xs.write('/local/domain/0/w/a', 'conflict'); // outside the tx
        await dom0.xs.write('/local/domain/0/w/a', v + '+', tx);
      });
      expect(attempts).toBe(2);
      expect(await dom0.xs.read('/local/domain/0/w/a')).toBe('conflict+');
    });
  });

  describe('domain destruction leaves nothing behind', () => {
    it('revokes grants and mappings, closes ports, removes nodes and fires @releaseDomain', async () => {
      const g = await newGuest();
      const h = await newGuest('h');
      // the guest grants a page to dom0, maps one of h's, binds a channel, owns nodes
      const gp = g.allocPage();
      const ref = g.gnttab.grantAccess(gp, 0, false);
      const [m] = await dom0.gnttab.map([{ dom: g.domid, ref, readonly: false }]);
      const hp = h.allocPage();
      const href = h.gnttab.grantAccess(hp, g.domid, true);
      await h.fence(); // granted before another connection uses the ref
      expect((await g.gnttab.map([{ dom: h.domid, ref: href, readonly: true }]))[0].status).toBe(GNTST.okay);
      const gport = await g.evtchn.allocUnbound(0);
      const bport = await dom0.evtchn.bindInterdomain(g.domid, gport);
      await dom0.xs.mkdir(`/local/domain/${g.domid}`);
      await dom0.xs.setPerms(`/local/domain/${g.domid}`, [`n${g.domid}`]);
      await g.xs.write('data/x', '1');
      const released: string[] = [];
      await dom0.xs.watch('@releaseDomain', (p) => released.push(p));
      let closed = false;
      g.onClose(() => (closed = true));

      await dom0.domctl.destroy(g.domid);
      await until(() => closed, 'the guest connection to close');
      await until(() => released.length >= 2, '@releaseDomain');

      expect(m.page!.revoked).toBe(true);
      expect(s.hv.domains.has(g.domid)).toBe(false);
      expect(await h.gnttab.endForeignAccess([href])).toEqual(['ok']); // g's mapping of h's page is gone
      expect(await dom0.evtchn.status(bport)).toMatchObject({ status: EVTCHNSTAT_unbound });
      expect(s.hv.xenstore.exists(`/local/domain/${g.domid}`)).toBe(false);
      const st = s.hv.status();
      expect(st.grantsInUse).toBe(0);
      expect(st.domains.find((d) => d.domid === 0)!.mappings).toBe(0);
    });

    it('destroys a guest whose connection drops', async () => {
      const g = await newGuest();
      const domid = g.domid;
      g.close();
      await until(() => !s.hv.domains.has(domid), 'the domain to be destroyed');
    });
  });

  describe("the final check's wake (ring-sync.ts): the consumer's half of the ring barrier", () => {
    it('runs a consumer that found nothing once, at the next forwarded write that moves the producer index', async () => {
      const { g, page, theirs } = await sharedWithDom0();
      let wakes = 0;
      // Dom0 consumes requests, as blkback does: the guest produces req_prod
      const events = new RingEvents(
        dom0,
        theirs,
        'responder',
        () => 0,
        () => wakes++,
      );
      const settled = async () => {
        await g.fence(); // the guest's writes are applied and forwarded to Dom0 ahead of …
        await dom0.fence(); // … this reply, so Dom0 has applied them
        await tick(0); // and a wake they fired has run
      };
      expect(events.finalCheck(() => theirs.readU32LE(SRING_REQ_PROD) !== 0, 0)).toBe(false);
      // writes elsewhere in the page, even next to the index, do not wake it
      page.writeU32LE(SRING_REQ_PROD + 4, 9);
      page.writeU32LE(SRING_RSP_EVENT, 1);
      page.write(64, Buffer.alloc(112, 1));
      await settled();
      expect(wakes).toBe(0);
      // the push that arrives after the check is the one a lost wake-up would miss
      page.writeU32LE(SRING_REQ_PROD, 1);
      await until(() => wakes === 1, 'the wake');
      // once: a consumer that goes idle again arms it again
      page.writeU32LE(SRING_REQ_PROD, 2);
      await settled();
      expect(wakes).toBe(1);
      // a check that sees work already there arms nothing and says go on
      expect(events.finalCheck(() => theirs.readU32LE(SRING_REQ_PROD) !== 0, 0)).toBe(true);
      page.writeU32LE(SRING_REQ_PROD, 3);
      await settled();
      expect(wakes).toBe(1);
      // a guest rewriting the index the consumer saw buys no pass of its loop, however often
      expect(events.finalCheck(() => theirs.readU32LE(SRING_REQ_PROD) !== 3, 3)).toBe(false);
      for (let i = 0; i < 50; i++) page.writeU32LE(SRING_REQ_PROD, 3);
      await settled();
      expect(wakes).toBe(1);
      // nor does one that moves it and puts it back within a frame: the wake looks once the frame is applied
      for (let i = 0; i < 50; i++) {
        page.writeU32LE(SRING_REQ_PROD, 4);
        page.writeU32LE(SRING_REQ_PROD, 3);
      }
      await settled();
      expect(wakes).toBe(1);
      // a byte-wide write into the index wakes it too
      page.write(SRING_REQ_PROD + 3, Buffer.from([1]));
      await until(() => wakes === 2, 'the wake of a one-byte write');
    });

    it('wakes a consumer armed on the second of two mappings of one frame (the broker forwards through the first)', async () => {
      const g = await newGuest();
      const page = g.allocPage();
      const refs = [g.gnttab.grantAccess(page, 0, false), g.gnttab.grantAccess(page, 0, false)];
      await g.fence();
      const [, second] = await dom0.gnttab.map(refs.map((ref) => ({ dom: g.domid, ref, readonly: false })));
      let wakes = 0;
      const events = new RingEvents(
        dom0,
        second.page!,
        'responder',
        () => 0,
        () => wakes++,
      );
      expect(events.finalCheck(() => false, 0)).toBe(false);
      page.writeU32LE(SRING_REQ_PROD, 1);
      await until(() => wakes === 1, 'the wake through the other mapping');
    });
  });

  describe('fence is a full barrier (the Dekker pattern the ring relies on)', () => {
    it('never lets both sides miss each other', async () => {
      const { g, page, theirs } = await sharedWithDom0();
      for (let round = 1; round <= 30; round++) {
        // each side writes its flag, fences, then reads the other's flag
        const a = (async () => {
          page.writeU32LE(0, round);
          await g.fence();
          return page.readU32LE(4);
        })();
        const b = (async () => {
          theirs.writeU32LE(4, round);
          await dom0.fence();
          return theirs.readU32LE(0);
        })();
        const [sawB, sawA] = await Promise.all([a, b]);
        expect(sawB === round || sawA === round).toBe(true);
      }
    });
  });
});
