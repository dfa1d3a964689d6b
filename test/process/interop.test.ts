/**
 * The interop rules of issue 9 across real processes: the hypervisor, Dom0 (`pvblk host`, or the test
 * Dom0 of fixtures/dom0.ts where `pvblk host` has no switch for what is tested) and guests — real
 * `pvblk domu` processes, or a frontend driven by hand from this process on its own socket.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  BLKIF_OP_READ,
  BLKIF_OP_WRITE,
  BLKIF_OP_WRITE_BARRIER,
  BLKIF_RSP_ERROR,
  BLKIF_RSP_OKAY,
  encodeRequest,
  xvdDevid,
} from '@pvblk/shared';
import type { RawFront } from '../unit/blkif-peers.ts';
import { startSystem } from './helpers.ts';
import { api, blkstat, eventually, rawGuest, sh, startCustomSystem, vbdStats } from './blkif-peers.ts';

const DEVID = xvdDevid(0);
type Stoppable = { stop(): Promise<void> };
let sys: Stoppable | null = null;
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

/** The CDBs scsi_debug logged (opts=1, NOISE), in the order the commands reached the disk. */
function cdbs(records: Array<Record<string, unknown>>): string[] {
  return records
    .map((r) => String(r.msg))
    .filter((m) => m.startsWith('scsi_debug: cmd '))
    .map((m) => m.slice('scsi_debug: cmd '.length, 'scsi_debug: cmd '.length + 2));
}

describe('WRITE_BARRIER at the disk (xen_blk_drain_io), pvblk host', () => {
  it('[WRITE, WRITE, WRITE_BARRIER, WRITE] then a READ: all answered; SYNCHRONIZE CACHE after both writes, the rest after it', async () => {
    const s = await startSystem({ disk: 'delay=20' });
    sys = s;
    const f = await rawGuest(s.url, s.api, 'raw');
    raws.push(f);
    await api(s.api, 'POST', '/disks/sdg/params', { key: 'opts', value: '1' }); // scsi_debug NOISE: log each CDB
    const from = s.host.records.length;
    const a = f.grant(Buffer.alloc(4096, 0xa));
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
    ]);
    f.push([rw(BLKIF_OP_READ, 5, 0, a.ref)]);
    const rs = await f.responses(5, 'all five answered');
    expect(rs.map((r) => [Number(r.id), r.status])).toEqual([1, 2, 3, 4, 5].map((i) => [i, BLKIF_RSP_OKAY]));
    await eventually(async () => cdbs(s.host.records.slice(from)).length >= 5, 'five commands at the disk');
    // WRITE(10) 2a, SYNCHRONIZE CACHE(10) 35, READ(10) 28: the two writes before the flush, the write
    // and the read queued behind the barrier after it, in either order (nothing orders them)
    const seen = cdbs(s.host.records.slice(from));
    expect(seen.slice(0, 3)).toEqual(['2a', '2a', '35']);
    expect(seen.slice(3).sort()).toEqual(['28', '2a']);
  });
});

describe('the flush opcode against a backend that offers only feature-barrier (test Dom0)', () => {
  it('the guest flushes with WRITE_BARRIER: capability line "barrier", the backend counts one flush, no error', async () => {
    const s = await startCustomSystem({ blkback: { advertiseFlushCache: false } });
    sys = s;
    const g = await s.guest('guest');
    const domid = Number((await g.waitFor((r) => r.event === 'ready')).domid);
    const cap = g.records.find((r) => String(r.msg).startsWith('blkfront: xvda: '));
    expect(String(cap?.msg)).toMatch(/^blkfront: xvda: barrier: enabled; persistent grants: enabled;/);
    const st = await blkstat(g.socket);
    expect(st.features).toMatchObject({ flush: true, fua: true });
    const r = await sh(
      g.socket,
      'dd if=/dev/urandom of=/dev/xvda bs=4096 count=8 conv=fsync status=none && echo done',
    );
    expect(r.out).toBe('done\n');
    expect(r.kmsg).toEqual([]);
    expect((await vbdStats(s.api, domid))!.f_req).toBe(1);
  });
});

describe('handshake keys from a frontend driven by hand, pvblk host', () => {
  it('a frontend that writes no protocol key is served as the native ABI', async () => {
    const s = await startSystem();
    sys = s;
    const f = await rawGuest(s.url, s.api, 'noproto', { protocol: null });
    raws.push(f);
    const a = f.grant(Buffer.alloc(4096, 0x42));
    f.push([rw(BLKIF_OP_WRITE, 1, 8, a.ref)]);
    expect((await f.responses(1))[0].status).toBe(BLKIF_RSP_OKAY);
    const b = f.grant();
    f.push([rw(BLKIF_OP_READ, 2, 8, b.ref)]);
    expect((await f.responses(1))[0].status).toBe(BLKIF_RSP_OKAY);
    expect(b.page.buf.equals(Buffer.alloc(4096, 0x42))).toBe(true);
  });

  it('ring-page-order=0 with ring-ref0 connects (the key Linux and QEMU read)', async () => {
    const s = await startSystem();
    sys = s;
    const f = await rawGuest(s.url, s.api, 'order0', { order: 0, writeOrder: true, multiRef: true });
    raws.push(f);
    const a = f.grant(Buffer.alloc(4096, 1));
    f.push([rw(BLKIF_OP_WRITE, 1, 0, a.ref)]);
    expect((await f.responses(1))[0].status).toBe(BLKIF_RSP_OKAY);
  });
});

describe('backend configuration across processes (test Dom0)', () => {
  it('a read-only vbd: the guest sees it read-only, a frontend writing anyway gets BLKIF_RSP_ERROR', async () => {
    const s = await startCustomSystem({ vbd: { mode: 'r' } });
    sys = s;
    const g = await s.guest('guest');
    expect((await sh(g.socket, 'blockdev --getro /dev/xvda')).out).toBe('1\n');
    const w = await sh(g.socket, 'dd if=/dev/zero of=/dev/xvda bs=4096 count=1 oflag=direct');
    expect(w.code).toBe(1);
    // generic_write_checks on a read-only block device: EPERM (3.x), as `blockdev --setro` gives
    expect(w.out).toContain('Operation not permitted');
    expect(
      (await sh(g.socket, 'dd if=/dev/xvda of=/dev/null bs=4096 count=1 iflag=direct status=none && echo ok'))
        .out,
    ).toBe('ok\n');
    const f = await rawGuest(s.url, s.api, 'raw');
    raws.push(f);
    const a = f.grant(Buffer.alloc(4096, 1));
    f.push([rw(BLKIF_OP_WRITE, 1, 0, a.ref), rw(BLKIF_OP_READ, 2, 0, a.ref)]);
    expect((await f.responses(2)).map((r) => [r.operation, r.status])).toEqual([
      [BLKIF_OP_WRITE, BLKIF_RSP_ERROR],
      [BLKIF_OP_READ, BLKIF_RSP_OKAY],
    ]);
  });

  it('resize: virtual_gb raised through the host API, the guest sees the new size while connected', async () => {
    const s = await startSystem({ disk: 'delay=0' });
    sys = s;
    const g = await s.guest('guest');
    expect((await sh(g.socket, 'blockdev --getsz /dev/xvda')).out).toBe('16384\n');
    await api(s.api, 'POST', '/disks/sdg/params', { key: 'virtual_gb', value: '1' });
    await eventually(
      async () => (await sh(g.socket, 'blockdev --getsz /dev/xvda')).out === '2097152\n',
      'the guest to see 1 GiB',
    );
    expect(g.records.some((r) => r.msg === 'Setting capacity to 2097152')).toBe(true);
    expect(s.host.records.some((r) => r.msg === 'xen-blkback: VBD Resize: new size 2097152')).toBe(true);
    // the new end is usable: a block past the old end is written and read back
    const r = await sh(
      g.socket,
      'dd if=/dev/urandom of=/tmp/p bs=4096 count=1 status=none && dd if=/tmp/p of=/dev/xvda bs=4096 seek=100000 count=1 oflag=direct status=none && dd if=/dev/xvda of=/tmp/q bs=4096 skip=100000 count=1 iflag=direct status=none && cmp /tmp/p /tmp/q && echo same',
    );
    expect(r.out).toBe('same\n');
  });
});

describe('guest pages (issue 9 #9), pvblk host', () => {
  it('the guest page count stays flat over 10k --no-persistent O_DIRECT writes', async () => {
    const s = await startSystem({ disk: 'dev_size_mb=40 delay=0' });
    sys = s;
    const g = await s.guest('guest', ['--no-persistent']);
    const before = await blkstat(g.socket);
    expect(before.features).toMatchObject({ persistent: false, bounce: false });
    const r = await sh(
      g.socket,
      'dd if=/dev/zero of=/dev/xvda bs=4096 count=10000 oflag=direct status=none && echo done',
    );
    expect(r.out).toBe('done\n');
    const after = await blkstat(g.socket);
    expect((after.stats as { requests: number }).requests).toBeGreaterThanOrEqual(10000);
    expect(after.pages).toBe(before.pages);
  });
});
