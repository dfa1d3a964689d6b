/**
 * BLKIF_OP_INTEGRITY from a hand-driven frontend (RawFront): shapes pvblk's own blkfront never
 * builds but the protocol allows, served by blkback on a scsi_debug disk with DIF and DIX.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  BLKIF_OP_READ,
  BLKIF_OP_WRITE,
  BLKIF_PI_CHECK_GUARD,
  BLKIF_PI_CHECK_REF,
  BLKIF_PI_INLINE,
  BLKIF_RSP_OKAY,
  BLKIF_OP_INTEGRITY,
  encodeIntegrityDescriptors,
  encodeIntegrityRequest,
  generatePi,
  type BlkifPiSegment,
  type BlkifSegment,
} from '@pvblk/shared';
import { openScsiDebugDisk, type SdDisk } from '../../packages/backend/src/scsi/index.ts';
import { RawFront, startHost, type Host } from './blkif-peers.ts';

let host: Host | null = null;
let disk: SdDisk | null = null;
afterEach(async () => {
  await host?.close();
  await disk?.close();
  host = disk = null;
});

async function piFront(): Promise<RawFront> {
  host = await startHost();
  disk = await openScsiDebugDisk({ params: 'dev_size_mb=1 delay=0 dif=1 dix=1', log: host.klog });
  const d = await host.domain({ disk });
  const xc = await host.lh.connect(d.credential);
  const f = new RawFront(xc, d, {}, (p) => host!.dom0.xs.tryRead(p));
  await xc.xs.write(`${d.fe}/feature-integrity`, '1');
  await f.handshake();
  return f;
}

/**
 * An integrity request with its descriptors in the slot (BLKIF_PI_INLINE), or, given the frontend
 * that grants them, in indirect pages.
 */
function integrityRequest(
  op: number,
  id: number,
  sector: number,
  data: BlkifSegment[],
  pi: BlkifPiSegment[],
  indirectVia?: RawFront,
) {
  const pages = indirectVia
    ? Array.from({ length: Math.ceil((data.length + pi.length) / 512) }, () => Buffer.alloc(4096))
    : [Buffer.alloc(76)];
  encodeIntegrityDescriptors(pages, data, pi);
  return encodeIntegrityRequest({
    operation: BLKIF_OP_INTEGRITY,
    integrityOp: op,
    nrSegments: data.length,
    nrPiSegments: pi.length,
    piFlags: BLKIF_PI_CHECK_GUARD | BLKIF_PI_CHECK_REF | (indirectVia ? 0 : BLKIF_PI_INLINE),
    id: BigInt(id),
    sectorNumber: BigInt(sector),
    handle: 0,
    appTag: 0,
    appTagMask: 0xffff,
    refTag: sector,
    indirectGrefs: indirectVia ? pages.map((p) => indirectVia.grant(p).ref) : [],
    ...(indirectVia ? {} : { inline: pages[0] }),
  });
}

/**
 * `pages` data pages of a pattern (`i * step`), granted, with their protection information and each
 * sector's tuple in a page of its own, granted: the descriptors of a write that names many pages.
 */
function tuplePerPage(f: RawFront, pages: number, step: number) {
  const data = Buffer.alloc(pages * 4096);
  for (let i = 0; i < data.length; i++) data[i] = (i * step) & 0xff;
  const tuples = Buffer.alloc(pages * 8 * 8);
  generatePi(data, tuples, { format: { type: 1, guard: 'crc', interval: 512 }, seed: 0 });
  const segs = Array.from({ length: pages }, (_, i) => ({
    gref: f.grant(data.subarray(i * 4096, (i + 1) * 4096)).ref,
    firstSect: 0,
    lastSect: 7,
  }));
  const pis = Array.from({ length: pages * 8 }, (_, i) => {
    const page = Buffer.alloc(4096, 0x77);
    tuples.copy(page, 0, i * 8, i * 8 + 8);
    return { gref: f.grant(page).ref, offset: 0, length: 8 };
  });
  return { data, tuples, segs, pis };
}

describe('integrity requests a guest may build', () => {
  it('a write naming 1,152 pages is mapped in calls the broker answers (it refuses one over 2 MiB of pages)', async () => {
    const f = await piFront();
    // 128 data pages (512 KiB), and each of the 1,024 tuples in a page of its own: one map call was
    // refused (E2BIG), and the request failed
    const { segs, pis } = tuplePerPage(f, 128, 13);
    f.push([integrityRequest(BLKIF_OP_WRITE, 1, 0, segs, pis, f)]);
    // OKAY: every page arrived, the disk having checked each sector's guard against its tuple
    expect((await f.responses(1))[0].status).toBe(BLKIF_RSP_OKAY);
  });

  it("a write and a read of 2,304 pages, past the guest's budget of maps, are copied in calls the broker takes", async () => {
    const f = await piFront();
    // 256 data pages (the whole 1 MiB disk) and each of the 2,048 tuples in a page of its own: past
    // the maps blkback may hold for one guest, so it copies instead — in one call of 2,304 ops, which
    // the wire refuses (1,024 at most), and the request failed "unexpectedly" (BLKIF_RSP_ERROR)
    const { data, tuples, segs, pis } = tuplePerPage(f, 256, 29);
    f.push([integrityRequest(BLKIF_OP_WRITE, 1, 0, segs, pis, f)]);
    expect((await f.responses(1))[0].status).toBe(BLKIF_RSP_OKAY);
    // and back, copied into 2,304 pages: 9 MiB, which one call could not carry either
    const back = Array.from({ length: 256 }, () => f.grant());
    const piBack = Array.from({ length: 2048 }, () => f.grant());
    f.push([
      integrityRequest(
        BLKIF_OP_READ,
        2,
        0,
        back.map((g) => ({ gref: g.ref, firstSect: 0, lastSect: 7 })),
        piBack.map((g) => ({ gref: g.ref, offset: 0, length: 8 })),
        f,
      ),
    ]);
    expect((await f.responses(1))[0].status).toBe(BLKIF_RSP_OKAY);
    expect(Buffer.concat(back.map((g) => Buffer.from(g.page.read(0, 4096)))).equals(data)).toBe(true);
    expect(Buffer.concat(piBack.map((g) => Buffer.from(g.page.read(0, 8)))).equals(tuples)).toBe(true);
    expect(host!.klog.lines().filter((l) => l.includes('failed unexpectedly'))).toEqual([]);
  });

  it('a read whose two PI segments share one page gets the tuples of both', async () => {
    const f = await piFront();
    const data = Buffer.alloc(8192);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    const tuples = Buffer.alloc(128);
    generatePi(data, tuples, { format: { type: 1, guard: 'crc', interval: 512 }, seed: 8 });
    const w = [f.grant(data.subarray(0, 4096)), f.grant(data.subarray(4096))];
    // 16 sectors need 128 bytes of tuples, more than fit inline: a PI page, descriptors inline
    const pw = f.grant(tuples);
    f.push([
      integrityRequest(
        BLKIF_OP_WRITE,
        2,
        8,
        w.map((g) => ({ gref: g.ref, firstSect: 0, lastSect: 7 })),
        [{ gref: pw.ref, offset: 0, length: 128 }],
      ),
    ]);
    expect((await f.responses(1))[0].status).toBe(BLKIF_RSP_OKAY);
    const r = [f.grant(Buffer.alloc(4096)), f.grant(Buffer.alloc(4096))];
    const pi = f.grant(Buffer.alloc(4096, 0xee));
    f.push([
      integrityRequest(
        BLKIF_OP_READ,
        3,
        8,
        r.map((g) => ({ gref: g.ref, firstSect: 0, lastSect: 7 })),
        [
          { gref: pi.ref, offset: 0, length: 64 },
          { gref: pi.ref, offset: 1024, length: 64 },
        ],
      ),
    ]);
    const [read] = await f.responses(1);
    expect(read.status).toBe(BLKIF_RSP_OKAY);
    expect(Buffer.concat(r.map((g) => Buffer.from(g.page.read(0, 4096))))).toEqual(data);
    const page = Buffer.from(pi.page.read(0, 4096));
    expect(page.subarray(0, 64)).toEqual(tuples.subarray(0, 64));
    expect(page.subarray(1024, 1088)).toEqual(tuples.subarray(64));
    // the rest of the page is as the guest left it
    expect(page.subarray(64, 1024).every((b) => b === 0xee)).toBe(true);
    expect(page.subarray(1088).every((b) => b === 0xee)).toBe(true);
  });
});
