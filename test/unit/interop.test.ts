/**
 * The rules pvblk's blkfront and blkback take from Linux (xen-blkback/{blkback,xenbus}.c,
 * xen-blkfront.c) and QEMU (hw/block/xen-block.c), one by one, in process: blkback in front of a
 * frontend driven by hand (every key and slot chosen by the test), and blkfront in front of blkback.
 * docs/interop.md lists each rule with the test that checks it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  BLKIF_OP_DISCARD,
  BLKIF_OP_FLUSH_DISKCACHE,
  BLKIF_OP_INDIRECT,
  BLKIF_OP_READ,
  BLKIF_OP_WRITE,
  BLKIF_OP_WRITE_BARRIER,
  BLKIF_RSP_EOPNOTSUPP,
  BLKIF_RSP_ERROR,
  BLKIF_RSP_OKAY,
  encodeIndirectSegments,
  encodeRequest,
  KERN_DEBUG,
  KERN_INFO,
  KERN_WARNING,
  MemoryKernelLog,
  VDISK_CDROM,
  VDISK_READONLY,
  VDISK_REMOVABLE,
  type BlkifRequest,
} from '@pvblk/shared';
import { MemoryBlockDevice } from '@pvblk/backend';
import type { Blkfront } from '@pvblk/frontend';
import { openScsiDebugDisk } from '../../packages/backend/src/scsi/sd.ts';
import { GuestBlockQueue } from '../../packages/frontend/src/block/queue.ts';
import { BlockDeviceCache } from '../../packages/frontend/src/block/page-cache.ts';
import {
  attachBlkfront,
  DEVID,
  RawFront,
  startHost,
  waitFor,
  type Host,
  type HostDomain,
} from './blkif-peers.ts';
import { gather, pattern, rwRequest, until } from './stack.ts';

let host: Host | null = null;
afterEach(async () => {
  await host?.close();
  host = null;
});

const W = (id: number, sector: number, gref: number, lastSect = 7): Buffer =>
  encodeRequest({
    operation: BLKIF_OP_WRITE,
    nrSegments: 1,
    handle: DEVID,
    id: BigInt(id),
    sectorNumber: BigInt(sector),
    segments: [{ gref, firstSect: 0, lastSect }],
  });
const R = (id: number, sector: number, gref: number): Buffer =>
  encodeRequest({
    operation: BLKIF_OP_READ,
    nrSegments: 1,
    handle: DEVID,
    id: BigInt(id),
    sectorNumber: BigInt(sector),
    segments: [{ gref, firstSect: 0, lastSect: 7 }],
  });
const F = (op: 2 | 3, id: number, segs: Array<{ gref: number; sector: number }> = []): Buffer =>
  encodeRequest({
    operation: op,
    nrSegments: segs.length,
    handle: DEVID,
    id: BigInt(id),
    sectorNumber: BigInt(segs[0]?.sector ?? 0),
    segments: segs.map((s) => ({ gref: s.gref, firstSect: 0, lastSect: 7 })),
  });

async function be(h: Host, d: { be: string }, key: string): Promise<string | null> {
  return h.dom0.xs.tryRead(`${d.be}/${key}`);
}

/** Captures the slots blkfront puts on the ring from now on (its fault seam, used to look only). */
function captureSlots(front: Blkfront): Buffer[] {
  const slots: Buffer[] = [];
  const arm = () =>
    front.injectFault({
      mutateNextRequest: (slot) => {
        slots.push(Buffer.from(slot));
        arm();
      },
    });
  arm();
  return slots;
}

describe('WRITE_BARRIER waits for every earlier request, then flushes and writes (xen_blk_drain_io)', () => {
  it('[WRITE, WRITE, WRITE_BARRIER (0 segments), WRITE] then a READ: all five answered, the barrier after both writes', async () => {
    host = await startHost();
    const d = await host.domain({ disk: { delayMs: 15 } });
    const disk = d.disk as MemoryBlockDevice;
    const f = await RawFront.connect(host, d);
    const pages = [1, 2, 3, 4].map((i) => f.grant(Buffer.alloc(4096, i)));
    f.push([
      W(1, 0, pages[0].ref),
      W(2, 8, pages[1].ref),
      F(BLKIF_OP_WRITE_BARRIER, 3),
      W(4, 16, pages[2].ref),
    ]);
    f.push([R(5, 0, pages[3].ref)]);
    const rs = await f.responses(5, 'all five answered');
    expect(rs.map((r) => [Number(r.id), r.operation, r.status])).toEqual([
      [1, BLKIF_OP_WRITE, BLKIF_RSP_OKAY],
      [2, BLKIF_OP_WRITE, BLKIF_RSP_OKAY],
      [3, BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_OKAY],
      [4, BLKIF_OP_WRITE, BLKIF_RSP_OKAY],
      [5, BLKIF_OP_READ, BLKIF_RSP_OKAY],
    ]);
    // the device's log is in completion order: both writes before the flush, the rest after it
    const ops = disk.log.map((e) => `${e.op}@${e.sector}`);
    const flush = ops.indexOf('flush@0');
    expect(ops.indexOf('write@0')).toBeLessThan(flush);
    expect(ops.indexOf('write@8')).toBeLessThan(flush);
    expect(ops.indexOf('write@16')).toBeGreaterThan(flush);
    expect(ops.indexOf('read@0')).toBeGreaterThan(flush);
    expect(pages[3].page.buf.equals(Buffer.alloc(4096, 1))).toBe(true);
  });

  it('with one request in flight, the barrier flushes and writes only after it completed', async () => {
    host = await startHost();
    const d = await host.domain({ disk: { delayMs: 20 } });
    const disk = d.disk as MemoryBlockDevice;
    const f = await RawFront.connect(host, d);
    const a = f.grant(Buffer.alloc(4096, 0xa));
    const b = f.grant(Buffer.alloc(4096, 0xb));
    f.push([W(1, 0, a.ref), F(BLKIF_OP_WRITE_BARRIER, 2, [{ gref: b.ref, sector: 100 }])]);
    const rs = await f.responses(2);
    expect(rs.map((r) => r.status)).toEqual([BLKIF_RSP_OKAY, BLKIF_RSP_OKAY]);
    // REQ_PREFLUSH: the earlier write, then the flush, then the barrier's own data
    expect(disk.log.map((e) => `${e.op}@${e.sector}`)).toEqual(['write@0', 'flush@0', 'write@100']);
  });

  it('FLUSH_DISKCACHE with data flushes before it writes (REQ_PREFLUSH) and does not drain the ring', async () => {
    host = await startHost();
    const d = await host.domain({ disk: { delayMs: 10 } });
    const disk = d.disk as MemoryBlockDevice;
    const f = await RawFront.connect(host, d);
    const a = f.grant(Buffer.alloc(4096, 1));
    f.push([F(BLKIF_OP_FLUSH_DISKCACHE, 1, [{ gref: a.ref, sector: 40 }])]);
    expect((await f.responses(1))[0]).toMatchObject({ operation: BLKIF_OP_FLUSH_DISKCACHE, status: 0 });
    expect(disk.log.map((e) => `${e.op}@${e.sector}`)).toEqual(['flush@0', 'write@40']);
  });

  it('a device without a write cache: the flush is stripped — empty ones answered OKAY, one with data is a plain write', async () => {
    host = await startHost();
    const d = await host.domain({ disk: { writeCache: false } });
    const disk = d.disk as MemoryBlockDevice;
    const f = await RawFront.connect(host, d);
    expect(await be(host, d, 'feature-flush-cache')).toBe('0');
    expect(await be(host, d, 'feature-barrier')).toBe('0');
    const a = f.grant(Buffer.alloc(4096, 7));
    f.push([F(BLKIF_OP_FLUSH_DISKCACHE, 1), F(BLKIF_OP_WRITE_BARRIER, 2, [{ gref: a.ref, sector: 8 }])]);
    expect((await f.responses(2)).map((r) => r.status)).toEqual([BLKIF_RSP_OKAY, BLKIF_RSP_OKAY]);
    expect(disk.flushes).toBe(0);
    expect(disk.log.map((e) => e.op)).toEqual(['write']);
    expect(disk.data.subarray(8 * 512, 16 * 512).equals(Buffer.alloc(4096, 7))).toBe(true);
  });

  it('a device that cannot flush: EOPNOTSUPP, and blkback withdraws the feature (writes it 0)', async () => {
    host = await startHost();
    const d = await host.domain();
    (d.disk as MemoryBlockDevice).failWhen = (op) => (op === 'flush' ? { kind: 'notsupp', sector: 0 } : null);
    const f = await RawFront.connect(host, d);
    f.push([F(BLKIF_OP_FLUSH_DISKCACHE, 1)]);
    expect((await f.responses(1))[0].status).toBe(BLKIF_RSP_EOPNOTSUPP);
    await waitFor(async () => (await be(host!, d, 'feature-flush-cache')) === '0', 'feature-flush-cache=0');
    f.push([F(BLKIF_OP_WRITE_BARRIER, 2)]);
    expect((await f.responses(1))[0].status).toBe(BLKIF_RSP_EOPNOTSUPP);
    await waitFor(async () => (await be(host!, d, 'feature-barrier')) === '0', 'feature-barrier=0');
  });

  it('nothing outlives a disconnect: no timer and no waiting barrier once the frontend closes', async () => {
    host = await startHost();
    const d = await host.domain({ disk: { delayMs: 100 } });
    const f = await RawFront.connect(host, d);
    expect(host.blkback.liveTimers()).toBe(1); // the LRU pass of the one ring
    const a = f.grant(Buffer.alloc(4096, 1));
    f.push([W(1, 0, a.ref), F(BLKIF_OP_WRITE_BARRIER, 2), W(3, 8, a.ref)]);
    await until(() => host!.blkback.vbds.get(`${d.domid}/${DEVID}`)!.rings[0].inflight > 0, 'work in flight');
    await f.xc.xs.write(`${d.fe}/state`, '6');
    await waitFor(async () => (await be(host!, d, 'state')) === '6', 'the backend to close');
    await host.blkback.settled();
    expect(host.blkback.liveTimers()).toBe(0);
    expect(host.blkback.vbds.get(`${d.domid}/${DEVID}`)!.rings).toEqual([]);
  });
});

describe('the flush opcode (blkfront_gather_backend_features, blkif_queue_rw_req, blkif_interrupt)', () => {
  it('a backend offering only feature-barrier gets WRITE_BARRIER, and the capability line says barrier', async () => {
    host = await startHost({ blkback: { advertiseFlushCache: false } });
    const d = await host.domain();
    const g = await attachBlkfront(host, d);
    expect(await be(host, d, 'feature-flush-cache')).toBeNull();
    expect(await be(host, d, 'feature-barrier')).toBe('1');
    expect(g.klog.lines(KERN_INFO).some((l) => l.startsWith('blkfront: xvda: barrier: enabled;'))).toBe(true);
    const slots = captureSlots(g.front);
    expect(await g.front.submit({ op: 'flush', sector: 0, segments: [] })).toEqual({ status: 'ok' });
    expect(slots[0][0]).toBe(BLKIF_OP_WRITE_BARRIER);
    expect(host.blkback.stats()[`${d.domid}/${DEVID}`].f_req).toBe(1);
    expect((d.disk as MemoryBlockDevice).flushes).toBe(1);
  });

  it('feature-flush-cache wins over feature-barrier: FLUSH_DISKCACHE', async () => {
    host = await startHost();
    const d = await host.domain();
    const g = await attachBlkfront(host, d);
    expect(
      g.klog.lines(KERN_INFO).some((l) => l.startsWith('blkfront: xvda: flush diskcache: enabled;')),
    ).toBe(true);
    const slots = captureSlots(g.front);
    expect(await g.front.submit({ op: 'flush', sector: 0, segments: [] })).toEqual({ status: 'ok' });
    expect(slots[0][0]).toBe(BLKIF_OP_FLUSH_DISKCACHE);
  });

  it('EOPNOTSUPP on a barrier: reported as success (BLK_STS_NOTSUPP → OK), flushing disabled for good', async () => {
    host = await startHost({ blkback: { advertiseFlushCache: false } });
    const d = await host.domain();
    (d.disk as MemoryBlockDevice).failWhen = (op) => (op === 'flush' ? { kind: 'notsupp', sector: 0 } : null);
    const g = await attachBlkfront(host, d);
    expect(await g.front.submit({ op: 'flush', sector: 0, segments: [] })).toEqual({ status: 'ok' });
    expect(g.klog.lines(KERN_WARNING)).toContain('blkfront: xvda: barrier op failed');
    expect(g.front.flushSupported()).toBe(false);
    // the next flush completes at once (blkif_queue_rq): nothing reaches the ring
    expect(await g.front.submit({ op: 'flush', sector: 0, segments: [] })).toEqual({ status: 'ok' });
    expect(host.blkback.stats()[`${d.domid}/${DEVID}`].f_req).toBe(1);
  });

  it('an empty flush answered ERROR (a read-only vbd refuses it as a write): success, flushing disabled', async () => {
    host = await startHost();
    const d = await host.domain({ vbd: { mode: 'r' } });
    const g = await attachBlkfront(host, d);
    expect(await g.front.submit({ op: 'flush', sector: 0, segments: [] })).toEqual({ status: 'ok' });
    expect(g.klog.lines(KERN_WARNING)).toContain('blkfront: xvda: empty flush op failed');
    expect(g.front.flushSupported()).toBe(false);
  });
});

describe('handshake (connect_ring, read_per_ring_refs)', () => {
  async function roundTrip(f: RawFront): Promise<void> {
    const a = f.grant(pattern(4096, 3));
    const b = f.grant();
    f.push([W(1, 64, a.ref)]);
    expect((await f.responses(1))[0].status).toBe(BLKIF_RSP_OKAY);
    f.push([R(2, 64, b.ref)]); // concurrent requests have no order: read once the write is answered
    expect((await f.responses(1))[0].status).toBe(BLKIF_RSP_OKAY);
    expect(b.page.buf.equals(pattern(4096, 3))).toBe(true);
  }

  it('a frontend that writes no protocol key is the native ABI', async () => {
    host = await startHost();
    const d = await host.domain();
    const f = await RawFront.connect(host, d, { protocol: null });
    await roundTrip(f);
  });

  it('ring-page-order present with value 0: the ref is read from ring-ref0, as Linux and QEMU do', async () => {
    host = await startHost();
    const d = await host.domain();
    const f = await RawFront.connect(host, d, { order: 0, writeOrder: true, multiRef: true });
    await roundTrip(f);
  });

  it('ring-page-order 0 with only ring-ref written: refused, naming the key it looked for', async () => {
    host = await startHost();
    const d = await host.domain();
    const xc = await host.lh.connect(d.credential);
    const f = new RawFront(xc, d, { order: 0, writeOrder: true, multiRef: false }, (p) =>
      host!.dom0.xs.tryRead(p),
    );
    await f.handshake(false);
    await waitFor(async () => (await f.beState()) === 5, 'the backend to go Closing');
    expect(await f.error()).toMatch(
      /^2 reading \/local\/domain\/\d+\/device\/vbd\/51712\/ring-ref0: .*missing$/,
    );
  });

  it.each([
    ['x86_32-abi', 'unsupported fe protocol x86_32-abi (this backend implements x86_64-abi only)'],
    ['sparc-abi', 'unknown fe protocol sparc-abi'],
  ])('protocol %s is refused with ENOSYS: %s', async (protocol, msg) => {
    host = await startHost();
    const d = await host.domain();
    const xc = await host.lh.connect(d.credential);
    const f = new RawFront(xc, d, { protocol }, (p) => host!.dom0.xs.tryRead(p));
    await f.handshake(false);
    await waitFor(async () => (await f.beState()) === 5, 'the backend to go Closing');
    expect(await f.error()).toBe(`38 ${msg}`);
  });

  it('blkback restarted under a live blkfront re-attaches at rsp_prod: no error, no reconnect, data intact', async () => {
    host = await startHost();
    const d = await host.domain({ disk: { delayMs: 15 } });
    const g = await attachBlkfront(host, d);
    const writes = Array.from({ length: 24 }, (_, i) =>
      g.front.submit(rwRequest(g.xc, 'write', i * 8, pattern(4096, 200 + i))),
    );
    await until(() => g.front.inflight > 0, 'requests in flight');
    await host.restartBackend();
    expect((await Promise.all(writes)).every((r) => r.status === 'ok')).toBe(true);
    expect(g.front.stats).toMatchObject({ reconnects: 0, requeued: 0, errors: 0 });
    const disk = d.disk as MemoryBlockDevice;
    for (let i = 0; i < 24; i++)
      expect(disk.data.subarray(i * 4096, (i + 1) * 4096).equals(pattern(4096, 200 + i))).toBe(true);
    // the new instance answered what the old one had not
    expect(host.blkback.stats()[`${d.domid}/${DEVID}`].wr_req).toBeGreaterThan(0);
  });
});

describe('re-attach with requests already on the ring', () => {
  // requests pushed while no backend listened (its process was killed): their notification went to
  // a port nobody had bound, and req_event still asks for the first of them — a later push does not
  // notify either. The new blkback finds them because binding the interdomain channel leaves its
  // port pending (evtchn_bind_interdomain), as Xen does, so its first upcall consumes the ring.
  it('the new blkback serves what the ring already holds, without a notification from the guest', async () => {
    host = await startHost();
    const d = await host.domain();
    const f = await RawFront.connect(host, d);
    const a = f.grant(Buffer.alloc(4096, 5));
    f.push([W(1, 0, a.ref), R(2, 0, a.ref)], false); // the notification is lost
    await host.restartBackend();
    const rs = await f.responses(2, 'the requests pushed before the restart to be answered');
    expect(rs.map((r) => [Number(r.id), r.operation, r.status])).toEqual([
      [1, BLKIF_OP_WRITE, BLKIF_RSP_OKAY],
      [2, BLKIF_OP_READ, BLKIF_RSP_OKAY],
    ]);
    expect((d.disk as MemoryBlockDevice).data[0]).toBe(5);
    expect(host.blkback.stats()[`${d.domid}/${DEVID}`]).toMatchObject({ wr_req: 1, rd_req: 1 });
  });
});

describe('backend configuration (backend_changed, connect, xen_vbd_resize)', () => {
  it('mode "r": info has VDISK_READONLY, writes, discards and flushes are refused with BLKIF_RSP_ERROR, reads work', async () => {
    host = await startHost();
    const d = await host.domain({ vbd: { mode: 'r' } });
    const f = await RawFront.connect(host, d);
    expect(Number(await be(host, d, 'info')) & VDISK_READONLY).toBe(VDISK_READONLY);
    const a = f.grant(Buffer.alloc(4096, 9));
    const discard: BlkifRequest = {
      operation: BLKIF_OP_DISCARD,
      flag: 0,
      handle: DEVID,
      id: 3n,
      sectorNumber: 0n,
      nrSectors: 8n,
    };
    f.push([W(1, 0, a.ref), R(2, 0, a.ref), encodeRequest(discard), F(BLKIF_OP_FLUSH_DISKCACHE, 4)]);
    const rs = await f.responses(4);
    expect(rs.map((r) => [Number(r.id), r.operation, r.status])).toEqual([
      [1, BLKIF_OP_WRITE, BLKIF_RSP_ERROR],
      [2, BLKIF_OP_READ, BLKIF_RSP_OKAY],
      [3, BLKIF_OP_DISCARD, BLKIF_RSP_ERROR],
      [4, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_RSP_ERROR],
    ]);
    expect(host.klog.lines(KERN_DEBUG)).toContain('xen-blkback: access denied: write of [0,8] on dev=800060');
    expect((d.disk as MemoryBlockDevice).data.every((b) => b === 0)).toBe(true);
  });

  it('a discard past the end is refused; a zero-length one anywhere is answered OKAY and touches nothing (xen_vbd_translate)', async () => {
    host = await startHost();
    const d = await host.domain();
    const f = await RawFront.connect(host, d);
    const disk = d.disk as MemoryBlockDevice;
    disk.data.fill(0x5a);
    const end = BigInt(disk.sectors);
    const discard = (id: bigint, sectorNumber: bigint, nrSectors: bigint): Buffer =>
      encodeRequest({ operation: BLKIF_OP_DISCARD, flag: 0, handle: DEVID, id, sectorNumber, nrSectors });
    f.push([discard(1n, end - 8n, 16n), discard(2n, end + 100n, 0n), discard(3n, end - 8n, 8n)]);
    const rs = await f.responses(3);
    expect(rs.map((r) => [Number(r.id), r.status])).toEqual([
      [1, BLKIF_RSP_ERROR],
      [2, BLKIF_RSP_OKAY],
      [3, BLKIF_RSP_OKAY],
    ]);
    expect(host.klog.lines(KERN_WARNING)).toContain(
      `xen-blkback: access denied: DISCARD [${end - 8n}->${end + 8n}] on dev=800060`,
    );
    // only the last discard's 8 sectors went
    const bytes = disk.data.length;
    expect(disk.data.subarray(bytes - 4096).every((b) => b === 0)).toBe(true);
    expect(disk.data.subarray(0, bytes - 4096).every((b) => b === 0x5a)).toBe(true);
    expect(host.blkback.stats()[`${d.domid}/${DEVID}`]).toMatchObject({ ds_req: 2 });
  });

  it('discard-enable=0: no discard key at all; absent: discard offered (the default is 1)', async () => {
    host = await startHost();
    const off = await host.domain({ vbd: { discardEnable: '0' } });
    const on = await host.domain({ vbd: { discardEnable: null } });
    await RawFront.connect(host, off);
    await RawFront.connect(host, on);
    expect(await be(host, off, 'feature-discard')).toBeNull();
    expect(await be(host, on, 'feature-discard')).toBe('1');
  });

  it('info: VDISK_CDROM from the frontend device-type, VDISK_REMOVABLE from removable', async () => {
    host = await startHost();
    const cd = await host.domain({ vbd: { deviceType: 'cdrom', removable: '1' } });
    const disk = await host.domain();
    await RawFront.connect(host, cd);
    await RawFront.connect(host, disk);
    expect(Number(await be(host, cd, 'info'))).toBe(VDISK_CDROM | VDISK_REMOVABLE);
    expect(Number(await be(host, disk, 'info'))).toBe(0);
  });

  it('frontend Closed: with online=1 the device waits for a reconnect, without it the device goes away', async () => {
    host = await startHost();
    const online = await host.domain();
    const offline = await host.domain({ vbd: { online: null } });
    for (const d of [online, offline]) {
      const f = await RawFront.connect(host, d);
      await f.xc.xs.write(`${d.fe}/state`, '6');
      await waitFor(async () => (await f.beState()) === 6, 'backend Closed');
      await f.xc.xs.write(`${d.fe}/state`, '1');
    }
    await waitFor(async () => (await be(host!, online, 'state')) === '2', 'prepare for reconnect');
    expect(host.klog.lines(KERN_INFO)).toContain(
      `xen-blkback: backend/vbd/${online.domid}/51712: prepare for reconnect`,
    );
    await host.blkback.settled();
    expect(await be(host, offline, 'state')).toBe('6'); // removed: it no longer follows the frontend
  });

  it('resize (xen_vbd_resize): scsi_debug virtual_gb grows the disk, blkback rewrites sectors, the guest sees it', async () => {
    host = await startHost({ blkback: { lruIntervalMs: 10 } });
    const sd = await openScsiDebugDisk({ params: 'dev_size_mb=1 delay=0', log: host.klog });
    const d = await host.domain({ disk: sd });
    const g = await attachBlkfront(host, d);
    expect(g.front.capacity()).toBe(2048);
    sd.target.applyRuntimeParam('virtual_gb', 1);
    await until(() => g.front.capacity() === 2097152, 'the guest to see the new size');
    expect(await be(host, d, 'sectors')).toBe('2097152');
    expect(host.klog.lines(KERN_INFO)).toContain('xen-blkback: VBD Resize: new size 2097152');
    expect(g.klog.lines(KERN_INFO)).toContain('Setting capacity to 2097152');
    // beyond the 1 MiB store, accesses wrap around it as scsi_debug's do
    const data = pattern(4096, 77);
    expect(await g.front.submit(rwRequest(g.xc, 'write', 2048 + 16, data))).toEqual({ status: 'ok' });
    const back = rwRequest(g.xc, 'read', 16, Buffer.alloc(4096));
    expect(await g.front.submit(back)).toEqual({ status: 'ok' });
    expect(gather(back).equals(data)).toBe(true);
    await sd.close();
  });
});

describe('error paths', () => {
  const indirect = (id: number, indirectOp: number, nrSegments: number, gref: number): Buffer =>
    encodeRequest({
      operation: BLKIF_OP_INDIRECT,
      indirectOp,
      nrSegments,
      id: BigInt(id),
      sectorNumber: 0n,
      handle: DEVID,
      indirectGrefs: [gref],
    });

  it('a refused indirect request is answered with its indirect_op, as make_response is given req_operation', async () => {
    host = await startHost();
    const d = await host.domain();
    const f = await RawFront.connect(host, d);
    const data = f.grant();
    const desc = Buffer.alloc(4096);
    encodeIndirectSegments(
      [desc],
      Array.from({ length: 12 }, () => ({ gref: data.ref, firstSect: 0, lastSect: 7 })),
    );
    const good = f.grant(desc);
    const badDesc = Buffer.alloc(4096);
    encodeIndirectSegments([badDesc], [{ gref: data.ref, firstSect: 0, lastSect: 8 }]);
    const bad = f.grant(badDesc);
    f.push([
      indirect(1, BLKIF_OP_FLUSH_DISKCACHE, 12, good.ref), // not READ/WRITE
      indirect(2, BLKIF_OP_WRITE, 0, good.ref), // no segments
      indirect(3, BLKIF_OP_READ, 1, bad.ref), // last_sect 8
      indirect(4, BLKIF_OP_READ, 12, good.ref), // fine
    ]);
    const rs = await f.responses(4);
    expect(rs.map((r) => [Number(r.id), r.operation, r.status])).toEqual([
      [1, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_RSP_ERROR],
      [2, BLKIF_OP_WRITE, BLKIF_RSP_ERROR],
      [3, BLKIF_OP_READ, BLKIF_RSP_ERROR],
      [4, BLKIF_OP_READ, BLKIF_RSP_OKAY],
    ]);
  });

  it('an unknown operation is answered EOPNOTSUPP with the id and operation the frontend wrote (dispatch_other_io)', async () => {
    host = await startHost();
    const d = await host.domain();
    const f = await RawFront.connect(host, d);
    const slot = Buffer.alloc(112);
    slot[0] = 9; // no such operation
    slot.writeBigUInt64LE(0x1122334455667788n, 8);
    f.push([slot]);
    expect((await f.responses(1))[0]).toEqual({
      id: 0x1122334455667788n,
      operation: 9,
      status: BLKIF_RSP_EOPNOTSUPP,
    });
  });

  it('misaligned I/O on a 4 KiB-sector disk is refused (sector_number and segment lengths in logical blocks)', async () => {
    host = await startHost();
    const d = await host.domain({ disk: { logicalBlockSize: 4096 } });
    const f = await RawFront.connect(host, d);
    const a = f.grant(Buffer.alloc(4096, 1));
    f.push([W(1, 1, a.ref), W(2, 8, a.ref, 3), W(3, 8, a.ref)]);
    expect((await f.responses(3)).map((r) => r.status)).toEqual([
      BLKIF_RSP_ERROR,
      BLKIF_RSP_ERROR,
      BLKIF_RSP_OKAY,
    ]);
    expect(host.klog.lines(KERN_DEBUG)).toContain(
      `xen-blkback: Misaligned I/O request from domain ${d.domid}`,
    );
  });

  it("refused requests are paced: the ring backs off 1 ms after each (fail_response's msleep(1))", async () => {
    host = await startHost();
    const d = await host.domain();
    const f = await RawFront.connect(host, d);
    const a = f.grant(Buffer.alloc(4096, 1));
    const bad = Array.from({ length: 20 }, (_, i) => W(i, 1 << 30, a.ref)); // beyond the disk
    const t0 = process.hrtime.bigint();
    f.push(bad);
    expect((await f.responses(20)).every((r) => r.status === BLKIF_RSP_ERROR)).toBe(true);
    // a lower bound only (a loaded machine makes it longer, never shorter): 19 pauses of at least 1 ms
    expect(Number(process.hrtime.bigint() - t0) / 1e6).toBeGreaterThanOrEqual(19);
  });

  /** A frontend whose ring's req_prod is 40 before it connects: more than a ring ahead of rsp_prod 0. */
  async function ringAheadAtConnect(): Promise<{ d: HostDomain; f: RawFront }> {
    host = await startHost();
    const d = await host.domain();
    const xc = await host.lh.connect(d.credential);
    const f = new RawFront(xc, d, {}, (p) => host!.dom0.xs.tryRead(p));
    f.mem.writeU32(0, 40);
    await f.handshake(false);
    return { d, f };
  }

  it('a ring whose req_prod is already more than a ring ahead is refused at connect (xen_blkif_map)', async () => {
    const { f } = await ringAheadAtConnect();
    await waitFor(async () => (await f.beState()) === 5, 'the backend to go Closing');
    expect(await f.error()).toBe('5 ring 0: req_prod 40 is more than 32 ahead of rsp_prod 0');
  });

  it("destroying a domain removes blkback's error record of it and the directories it leaves empty (libxl__xs_path_cleanup)", async () => {
    const { d, f } = await ringAheadAtConnect();
    await waitFor(async () => (await f.error()) !== null, 'the error record');
    await host!.toolstack.destroyDomain(d.domid);
    // error/backend/vbd was left behind, empty: three nodes in Dom0's tree for good
    expect(await host!.dom0.xs.tryRead('/local/domain/0/error')).toBeNull();
  });

  it('a discard the backend cannot do: discard disabled, BLK_STS_NOTSUPP (blkif_interrupt)', async () => {
    host = await startHost();
    const d = await host.domain();
    (d.disk as MemoryBlockDevice).failWhen = (op) =>
      op === 'discard' ? { kind: 'notsupp', sector: 0 } : null;
    const g = await attachBlkfront(host, d);
    expect(g.front.limits().discard).not.toBeNull();
    expect(await g.front.submit({ op: 'discard', sector: 0, segments: [], nrSectors: 8 })).toEqual({
      status: 'notsupp',
    });
    expect(g.klog.lines(KERN_WARNING)).toContain('blkfront: xvda: discard op failed');
    expect(g.front.limits().discard).toBeNull();
  });

  it('blkfront requests carry handle = the virtual-device number', async () => {
    host = await startHost();
    const d = await host.domain();
    const g = await attachBlkfront(host, d, { maxIndirectSegments: 32 });
    const slots = captureSlots(g.front);
    expect(await g.front.submit(rwRequest(g.xc, 'write', 0, pattern(4096, 1)))).toEqual({ status: 'ok' });
    expect(await g.front.submit(rwRequest(g.xc, 'write', 0, pattern(16 * 4096, 1)))).toEqual({
      status: 'ok',
    });
    expect(slots[0].readUInt16LE(2)).toBe(51712); // blkif_request_rw.handle
    expect(slots[1][0]).toBe(BLKIF_OP_INDIRECT);
    expect(slots[1].readUInt16LE(24)).toBe(51712); // blkif_request_indirect.handle
  });

  it('requests re-issued after a reconnect are re-split to the new connection limits (blkif_recover)', async () => {
    host = await startHost();
    const d = await host.domain({ disk: { delayMs: 20 } });
    const g = await attachBlkfront(host, d, { maxIndirectSegments: 32 });
    expect(g.front.limits().maxSegments).toBe(32);
    const datas = Array.from({ length: 4 }, (_, i) => pattern(32 * 4096, 50 + i));
    const writes = datas.map((data, i) => g.front.submit(rwRequest(g.xc, 'write', i * 256, data)));
    await until(() => g.front.inflight > 0, 'requests in flight');
    // the new blkback offers no indirect requests: the rings cannot be taken over as they are
    await host.restartBackend({ maxIndirectSegments: 0 });
    expect((await Promise.all(writes)).every((r) => r.status === 'ok')).toBe(true);
    expect(g.front.stats.reconnects).toBe(1);
    expect(g.front.limits().maxSegments).toBe(11);
    const st = host.blkback.stats()[`${d.domid}/${DEVID}`];
    expect(st.errors).toBe(0);
    const disk = d.disk as MemoryBlockDevice;
    for (let i = 0; i < 4; i++)
      expect(disk.data.subarray(i * 256 * 512, (i * 256 + 256) * 512).equals(datas[i])).toBe(true);
  });

  it('persistent grants come from the negotiation: a backend without them gets none, and the line says so', async () => {
    host = await startHost({ blkback: { persistentGrants: false } });
    const d = await host.domain();
    const g = await attachBlkfront(host, d, { persistentGrants: true });
    expect(g.klog.lines(KERN_INFO)).toContain(
      'blkfront: xvda: flush diskcache: enabled; persistent grants: disabled; indirect descriptors: enabled; bounce buffer: disabled;',
    );
    const req = rwRequest(g.xc, 'write', 0, pattern(4096, 5));
    expect(await g.front.submit(req)).toEqual({ status: 'ok' });
    const q = (g.front as unknown as { queues: Array<{ allPersistent: unknown[] }> }).queues[0];
    expect(q.allPersistent).toEqual([]);
    expect(req.segments[0].page.grantCount).toBe(0); // its grant was revoked before completion
    expect(host.blkback.stats()[`${d.domid}/${DEVID}`].persistent_grants).toBe(0);
  });

  it('blkback purges persistent grants idle for persistent_grant_unused_seconds (here 30 ms), LRU pass every 10 ms', async () => {
    host = await startHost({ blkback: { persistentGrantUnusedMs: 30, lruIntervalMs: 10 } });
    const d = await host.domain();
    const g = await attachBlkfront(host, d);
    expect(await g.front.submit(rwRequest(g.xc, 'write', 0, pattern(8 * 4096, 5)))).toEqual({ status: 'ok' });
    const stats = () => host!.blkback.stats()[`${d.domid}/${DEVID}`];
    expect(stats().persistent_grants).toBe(8);
    await until(() => stats().persistent_grants === 0, 'the idle grants to be purged');
    expect(stats().persistent_purged).toBe(8);
    // and they are mapped again on the next use
    const r = rwRequest(g.xc, 'read', 0, Buffer.alloc(8 * 4096));
    expect(await g.front.submit(r)).toEqual({ status: 'ok' });
    expect(gather(r).equals(pattern(8 * 4096, 5))).toBe(true);
  });

  it('the integrity path refuses writes to a read-only vbd, as the read/write path does', async () => {
    host = await startHost();
    const sd = await openScsiDebugDisk({ params: 'dev_size_mb=1 delay=0 dif=1 dix=1', log: host.klog });
    const d = await host.domain({ disk: sd, vbd: { mode: 'r' } });
    const g = await attachBlkfront(host, d);
    expect(g.front.integrity()).not.toBeNull();
    const req = rwRequest(g.xc, 'write', 8, pattern(4096, 1));
    req.integrity = {
      tuples: Buffer.alloc(64),
      refSeed: 8,
      appTag: 0,
      checks: { guard: true, app: false, ref: true },
    };
    expect(await g.front.submit(req)).toEqual({ status: 'ioerr' });
    expect(host.klog.lines(KERN_DEBUG)).toContain(
      'xen-blkback: access denied: write of [8,16] on dev=800060',
    );
    expect(sd.target.stats().commands).toBe(0);
    await sd.close();
  });
});

describe('guest pages (issue 9 #9): no page leaks with --no-persistent O_DIRECT', () => {
  it('the page count is the same before and after 300 O_DIRECT writes and reads', async () => {
    host = await startHost();
    const d = await host.domain();
    const g = await attachBlkfront(host, d, { persistentGrants: false });
    const cache = new BlockDeviceCache(
      new GuestBlockQueue(g.front, new MemoryKernelLog()),
      new MemoryKernelLog(),
    );
    cache.open();
    const pages = () => g.front.describe().pages as number;
    const before = pages();
    const buf = pattern(4096, 1);
    for (let i = 0; i < 300; i++)
      expect(await cache.directWrite(buf, (i % 64) * 4096)).toEqual({ ok: true, n: 4096 });
    const back = Buffer.alloc(4096);
    for (let i = 0; i < 50; i++)
      expect(await cache.directRead(back, i * 4096)).toEqual({ ok: true, n: 4096 });
    expect(pages()).toBe(before);
  });
});
