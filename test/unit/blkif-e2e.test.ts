import { afterEach, describe, expect, it } from 'vitest';
import { BLKIF_REQUEST_SIZE, KERN_DEBUG, KERN_INFO } from '@pvblk/shared';
import { BlkbackDriver } from '@pvblk/backend';
import { MAX_REQUESTS_PER_PUSH, PLUG_FLUSH_BYTES } from '@pvblk/frontend';
import type { XenClient } from '@pvblk/client';
import { gather, pattern, rwRequest, startStack, until, type Stack } from './stack.ts';

let stack: Stack | null = null;

/** Every ring push's NOTIFY_IF from `xc`, and whether its frame had left by the time the call returned. */
function recordPushes(xc: XenClient): Array<{ oldProd: number; newProd: number; sentAtOnce: boolean }> {
  const pushes: Array<{ oldProd: number; newProd: number; sentAtOnce: boolean }> = [];
  const notifyIf = xc.evtchn.notifyIf.bind(xc.evtchn);
  xc.evtchn.notifyIf = (port, header, eventOff, oldProd, newProd) => {
    const before = xc.stats.framesSent;
    notifyIf(port, header, eventOff, oldProd, newProd);
    pushes.push({ oldProd, newProd, sentAtOnce: xc.stats.framesSent > before });
  };
  return pushes;
}
afterEach(async () => {
  await stack?.close();
  stack = null;
});

describe.each([
  { name: 'map, persistent', blkback: { dataPath: 'map' as const }, front: { persistentGrants: true } },
  { name: 'map, no persistent', blkback: { dataPath: 'map' as const }, front: { persistentGrants: false } },
  {
    name: 'grant copy',
    blkback: { dataPath: 'copy' as const, persistentGrants: false },
    front: { persistentGrants: false },
  },
])('blkfront ↔ blkback in process ($name)', ({ blkback, front }) => {
  it.each([
    { order: 0, indirect: 32, pages: 1 },
    { order: 0, indirect: 0, pages: 11 },
    { order: 4, indirect: 32, pages: 32 },
  ])(
    'writes and reads back (ring order $order, indirect $indirect, $pages pages)',
    async ({ order, indirect, pages }) => {
      stack = await startStack({ blkback });
      const g = await stack.addGuest({
        front: { ...front, maxRingPageOrder: order, maxIndirectSegments: indirect },
      });
      expect(g.front.limits().maxSegments).toBe(indirect || 11);
      const data = pattern(pages * 4096, 7);
      const w = await g.front.submit(rwRequest(g.xc, 'write', 2048, data));
      expect(w).toEqual({ status: 'ok' });
      expect(g.disk.data.subarray(2048 * 512, 2048 * 512 + data.length).equals(data)).toBe(true);
      const rreq = rwRequest(g.xc, 'read', 2048, Buffer.alloc(data.length));
      expect(await g.front.submit(rreq)).toEqual({ status: 'ok' });
      expect(gather(rreq).equals(data)).toBe(true);
      const st = stack.blkback.stats()[`${g.domid}/51712`];
      expect(st.wr_req).toBe(1);
      expect(st.rd_req).toBe(1);
      expect(st.wr_sect).toBe(pages * 8);
    },
  );
});

describe('blkfront ↔ blkback in process', () => {
  it('prints the capability line and connects with the negotiated ring', async () => {
    stack = await startStack();
    const g = await stack.addGuest({ front: { maxRingPageOrder: 2 } });
    expect(g.klog.lines(KERN_INFO)).toContain(
      'blkfront: xvda: flush diskcache: enabled; persistent grants: enabled; indirect descriptors: enabled; bounce buffer: enabled',
    );
    expect(g.front.describe().queues).toEqual([{ ringSize: 128, reqProd: 0, rspCons: 0, inflight: 0 }]);
    expect(g.front.capacity()).toBe(16384);
  });

  it('one guest page in many writes in flight reaches the disk every time (grants mapped per request)', async () => {
    // blkback maps the page once per request; the broker answers a second mapping of a frame
    // blkback already maps with "it aliases handle N" — which an unmap sent meanwhile must not have
    // made Dom0 forget, or the new mapping got a zero page and the disk zeros, answered OKAY
    stack = await startStack();
    const g = await stack.addGuest({ front: { persistentGrants: false } });
    const page = g.xc.allocPage();
    page.write(0, Buffer.alloc(4096, 0x5a));
    const writes: Array<Promise<{ status: string }>> = [];
    for (let i = 0; i < 48; i++) {
      writes.push(g.front.submit({ op: 'write', sector: 8 * i, segments: [{ page, off: 0, len: 4096 }] }));
      // let some requests finish (and unmap) while the next ones are mapped
      if (i % 5 === 4) await new Promise((r) => setImmediate(r));
    }
    expect((await Promise.all(writes)).map((r) => r.status)).toEqual(Array(48).fill('ok'));
    for (let i = 0; i < 48; i++)
      expect(
        g.disk.data.subarray(i * 4096, (i + 1) * 4096).equals(Buffer.alloc(4096, 0x5a)),
        `sector ${8 * i}`,
      ).toBe(true);
  });

  it('gathers each multi-segment write in flight into a buffer of its own, and reuses them once done', async () => {
    // no LRU pass in the test's time: an idle pass drops the ring's spare buffers
    stack = await startStack({ blkback: { lruIntervalMs: 3_600_000 } });
    const g = await stack.addGuest({ front: { maxIndirectSegments: 32 } });
    const write = g.disk.write.bind(g.disk);
    const held: Array<() => void> = [];
    let seen: ArrayBufferLike[] = [];
    g.disk.write = async (sector, data) => {
      seen.push(data.buffer);
      await new Promise<void>((r) => held.push(r));
      return write(sector, data);
    };
    const rounds: ArrayBufferLike[][] = [];
    for (let r = 0; r < 3; r++) {
      seen = [];
      const datas = Array.from({ length: 8 }, (_, i) => pattern(32 * 4096, 100 * r + i));
      const done = Promise.all(
        datas.map((d, i) => g.front.submit(rwRequest(g.xc, 'write', (8 * r + i) * 256, d))),
      );
      try {
        await until(() => held.length === 8, 'eight 128 KiB writes at the disk at once');
        expect(new Set(seen).size).toBe(8);
      } finally {
        for (const release of held.splice(0)) release();
      }
      expect(await done).toEqual(Array(8).fill({ status: 'ok' }));
      datas.forEach((d, i) => {
        const at = (8 * r + i) * 256 * 512;
        expect(g.disk.data.subarray(at, at + d.length).equals(d), `round ${r} write ${i}`).toBe(true);
      });
      rounds.push(seen);
    }
    expect(rounds[2].filter((b) => rounds[0].includes(b)).length).toBeGreaterThan(0);
  });

  it('flushes and discards', async () => {
    stack = await startStack();
    const g = await stack.addGuest();
    g.disk.data.fill(0xee, 0, 8 * 4096);
    expect(await g.front.submit({ op: 'flush', sector: 0, segments: [] })).toEqual({ status: 'ok' });
    expect(g.disk.flushes).toBe(1);
    expect(await g.front.submit({ op: 'discard', sector: 8, segments: [], nrSectors: 16 })).toEqual({
      status: 'ok',
    });
    expect(g.disk.data.subarray(8 * 512, 24 * 512).every((b) => b === 0)).toBe(true);
    expect(g.disk.data[7 * 512]).toBe(0xee);
  });

  it('publishes a burst in pushes of 16 requests, each frame sent at once with its doorbell', async () => {
    stack = await startStack();
    const g = await stack.addGuest();
    const pushes = recordPushes(g.xc);
    // 40 requests submitted in one turn: two pushes of MAX_REQUESTS_PER_PUSH, then the rest
    const reqs = Array.from({ length: 40 }, (_, i) => rwRequest(g.xc, 'write', i * 8, pattern(4096, i)));
    const rs = await Promise.all(reqs.map((r) => g.front.submit(r)));
    expect(rs.every((r) => r.status === 'ok')).toBe(true);
    expect(MAX_REQUESTS_PER_PUSH).toBe(16);
    expect(pushes.map((p) => p.newProd - p.oldProd)).toEqual([16, 16, 8]);
    for (let i = 1; i < pushes.length; i++) expect(pushes[i].oldProd).toBe(pushes[i - 1].newProd);
    expect(pushes.every((p) => p.sentAtOnce)).toBe(true);
    for (let i = 0; i < 40; i++)
      expect(g.disk.data.subarray(i * 4096, (i + 1) * 4096).equals(pattern(4096, i))).toBe(true);
  });

  it("writes a push's slots to the ring together, so they reach the hypervisor as one page write", async () => {
    stack = await startStack();
    const g = await stack.addGuest({ front: { persistentGrants: true } });
    const pushes = recordPushes(g.xc);
    const guest = stack.lh.hv.domains.get(g.domid)!;
    // every store the guest makes to a page the hypervisor must see, in order
    const stores: Array<{ page: object; off: number; len: number }> = [];
    const pageWrite = g.xc.pageWrite.bind(g.xc);
    g.xc.pageWrite = (page, off, len) => {
      stores.push({ page, off, len });
      pageWrite(page, off, len);
    };
    // warm the persistent pool, so that the measured push grants nothing
    const warm = Array.from({ length: 16 }, (_, i) => rwRequest(g.xc, 'write', i * 8, pattern(4096, i)));
    expect((await Promise.all(warm.map((r) => g.front.submit(r)))).every((r) => r.status === 'ok')).toBe(
      true,
    );
    await g.xc.fence();
    const before = guest.stats.pageWrites;
    pushes.length = 0;
    stores.length = 0;
    const reqs = Array.from({ length: 16 }, (_, i) =>
      rwRequest(g.xc, 'write', i * 8, pattern(4096, 100 + i)),
    );
    expect((await Promise.all(reqs.map((r) => g.front.submit(r)))).every((r) => r.status === 'ok')).toBe(
      true,
    );
    await g.xc.fence();
    expect(pushes.map((p) => p.newProd - p.oldProd)).toEqual([16]);
    // the 16 slots are stored one after the other, each where the previous one ended
    const slots = stores.flatMap((s, i) => (s.len === BLKIF_REQUEST_SIZE ? [i] : []));
    expect(slots).toHaveLength(16);
    for (let k = 1; k < 16; k++) {
      const [a, b] = [stores[slots[k - 1]], stores[slots[k]]];
      expect([slots[k] - slots[k - 1], b.page === a.page, b.off]).toEqual([1, true, a.off + a.len]);
    }
    // and reach the hypervisor as one record: a store continuing the previous one extends its record
    const records = stores.filter((s, i) => {
      const p = stores[i - 1];
      return !(p && p.page === s.page && p.off + p.len === s.off);
    }).length;
    expect(records).toBe(stores.length - 15);
    expect(guest.stats.pageWrites - before).toBe(records);
    for (let i = 0; i < 16; i++)
      expect(g.disk.data.subarray(i * 4096, (i + 1) * 4096).equals(pattern(4096, 100 + i))).toBe(true);
  });

  it('publishes a request of 128 KiB or more at once, with the smaller ones queued before it (BLK_PLUG_FLUSH_SIZE)', async () => {
    stack = await startStack();
    const g = await stack.addGuest();
    const pushes = recordPushes(g.xc);
    // one turn: 3 × 4 KiB, 128 KiB, 2 × 4 KiB, 64 KiB, 128 KiB, 4 KiB
    const sizes = [4, 4, 4, 128, 4, 4, 64, 128, 4].map((k) => k * 1024);
    const datas = sizes.map((n, i) => pattern(n, 500 + i));
    let sector = 0;
    const reqs = datas.map((d) => {
      const r = rwRequest(g.xc, 'write', sector, d);
      sector += d.length / 512;
      return r;
    });
    const rs = await Promise.all(reqs.map((r) => g.front.submit(r)));
    expect(rs.every((r) => r.status === 'ok')).toBe(true);
    expect(PLUG_FLUSH_BYTES).toBe(128 * 1024);
    // a push ends at each 128 KiB request; a 64 KiB one waits for the rest of the turn
    expect(pushes.map((p) => p.newProd - p.oldProd)).toEqual([4, 4, 1]);
    expect(g.disk.data.subarray(0, sector * 512).equals(Buffer.concat(datas))).toBe(true);
  });

  it('runs many concurrent requests across the 2^32 index wrap, with multiple queues', async () => {
    stack = await startStack();
    const g = await stack.addGuest({ front: { ringStartIndex: 0xffffff80, maxQueues: 2 } });
    const n = 600;
    const reqs = Array.from({ length: n }, (_, i) => rwRequest(g.xc, 'write', i * 8, pattern(4096, i)));
    const rs = await Promise.all(reqs.map((r) => g.front.submit(r)));
    expect(rs.every((r) => r.status === 'ok')).toBe(true);
    const q = g.front.describe().queues as Array<{ reqProd: number }>;
    expect(q).toHaveLength(2);
    for (const x of q) expect(x.reqProd).toBeLessThan(0xffffff80); // wrapped past 2^32
    for (let i = 0; i < n; i++)
      expect(g.disk.data.subarray(i * 4096, (i + 1) * 4096).equals(pattern(4096, i))).toBe(true);
    // event-index suppression: far fewer notifications than requests, each way (counted where they arrive)
    const be = Object.values(stack.blkback.stats());
    expect(be.reduce((k, s) => k + s.notify_received, 0)).toBeLessThan(n);
    expect(g.front.stats.upcalls).toBeLessThan(n);
  });

  it('fails a request outside the disk and one to a read-only disk, and keeps working', async () => {
    stack = await startStack();
    const g = await stack.addGuest();
    expect(await g.front.submit(rwRequest(g.xc, 'write', 16384, Buffer.alloc(4096)))).toEqual({
      status: 'ioerr',
    });
    expect(
      stack.hostKlog
        .lines(KERN_DEBUG)
        .includes('xen-blkback: access denied: write of [16384,16392] on dev=800060'),
    ).toBe(true);
    expect(await g.front.submit(rwRequest(g.xc, 'write', 0, Buffer.alloc(4096, 1)))).toEqual({
      status: 'ok',
    });
    const ro = await stack.addGuest({ disk: { readOnly: true } });
    expect(ro.front.readOnly).toBe(true); // VDISK_READONLY in the backend's info
    expect(await ro.front.submit(rwRequest(ro.xc, 'write', 0, Buffer.alloc(4096)))).toEqual({
      status: 'ioerr',
    });
  });

  it('passes disk errors up as an I/O error for that request only', async () => {
    stack = await startStack();
    const g = await stack.addGuest();
    g.disk.failWhen = (op, sector, count) =>
      op === 'read' && sector <= 4660 && 4660 < sector + count ? { kind: 'medium', sector: 4660 } : null;
    expect(await g.front.submit(rwRequest(g.xc, 'read', 4656, Buffer.alloc(4096)))).toEqual({
      status: 'ioerr',
    });
    expect(await g.front.submit(rwRequest(g.xc, 'read', 4648, Buffer.alloc(4096)))).toEqual({ status: 'ok' });
  });

  it('survives blkback dying mid-stream: the new blkback re-attaches at rsp_prod and the guest sees nothing', async () => {
    stack = await startStack();
    const g = await stack.addGuest();
    g.disk.delayMs = 20;
    const writes = Array.from({ length: 20 }, (_, i) =>
      g.front.submit(rwRequest(g.xc, 'write', i * 8, pattern(4096, 100 + i))),
    );
    await until(() => g.front.inflight > 0, 'requests in flight');
    // Dom0's connection drops as if its process were killed: mappings, ports and watches go with it
    stack.dom0.close();
    await until(() => !stack!.lh.hv.domains.get(0)!.session, 'the hypervisor to notice');
    const dom0 = await stack.lh.connectDom0();
    const again = new BlkbackDriver({
      xc: dom0,
      klog: stack.hostKlog,
      devices: {
        open: (p) => (stack!.disks.get(p) ? { device: stack!.disks.get(p)!, pdevice: 0x800060 } : null),
      },
    });
    await again.start();
    const rs = await Promise.all(writes);
    expect(rs.every((r) => r.status === 'ok')).toBe(true);
    for (let i = 0; i < 20; i++)
      expect(g.disk.data.subarray(i * 4096, (i + 1) * 4096).equals(pattern(4096, 100 + i))).toBe(true);
    // Linux's connect path: the frontend never left Connected, nothing was re-issued by it
    expect(g.front.stats.reconnects).toBe(0);
    expect(g.front.stats.requeued).toBe(0);
    expect(g.front.stats.errors).toBe(0);
    expect(stack.hostKlog.lines(KERN_INFO)).toContain(
      `xen-blkback: vbd-${g.domid}-51712: frontend is Connected; re-attaching to its rings`,
    );
    // and the device keeps working on the new connection
    const r = rwRequest(g.xc, 'read', 0, Buffer.alloc(4096));
    expect(await g.front.submit(r)).toEqual({ status: 'ok' });
    expect(gather(r).equals(pattern(4096, 100))).toBe(true);
    await again.stop();
    dom0.close();
  });
});
