/**
 * The request queue against the fake driver: splitting at blkfront's limits, error reporting in the
 * 3.x wording, flush/discard pass-through, block integrity generate/verify with the t10-pi log lines,
 * the sysfs switches and the two corruption hooks.
 */
import { KERN_ERR, MemoryKernelLog, PI_TUPLE_SIZE, SECTOR_SIZE, verifyPi } from '@pvblk/shared';
import { describe, expect, it } from 'vitest';
import { GuestBlockQueue, type Bio } from '../../src/block/queue.ts';
import { withIntegrity, type BioSegment, type DeviceIntegrity } from '../../src/block/types.ts';
import { FakeDriver, TYPE1_CRC, pageWith } from './fake-driver.ts';

function setup(opts: ConstructorParameters<typeof FakeDriver>[0] = {}): {
  driver: FakeDriver;
  log: MemoryKernelLog;
  q: GuestBlockQueue;
} {
  const driver = new FakeDriver(opts);
  const log = new MemoryKernelLog();
  return { driver, log, q: new GuestBlockQueue(driver, log) };
}

/** A bio of `n` whole pages, page i filled with byte `fill + i`. */
function pages(driver: FakeDriver, n: number, fill = 1): BioSegment[] {
  return Array.from({ length: n }, (_, i) => ({
    page: pageWith(driver, (fill + i) & 0xff),
    off: 0,
    len: 4096,
  }));
}

function write(sector: number, segments: BioSegment[]): Bio {
  return { op: 'write', sector, segments };
}

const TYPE3: DeviceIntegrity = {
  type: 3,
  guard: 'crc',
  interval: 512,
  tagSize: 0,
  name: 'T10-DIF-TYPE3-CRC',
};
const TYPE1_4K: DeviceIntegrity = {
  type: 1,
  guard: 'crc',
  interval: 4096,
  tagSize: 0,
  name: 'T10-DIF-TYPE1-CRC',
};

describe('request splitting (blk_queue_split / blk_rq_map_sg at blkfront limits)', () => {
  it('without indirect descriptors: 11 segments / 88 sectors per request', async () => {
    const { driver, q } = setup();
    const r = await q.submitBio(write(0, pages(driver, 32)));
    expect(r.status).toBe('ok');
    expect(driver.ranges('write')).toEqual([
      [0, 88],
      [88, 88],
      [176, 80],
    ]);
    expect(driver.requests.map((x) => x.nrSegments)).toEqual([11, 11, 10]);
  });

  it('with indirect descriptors: 32 segments of a page (256 sectors)', async () => {
    const { driver, q } = setup({ limits: { maxSegments: 32, maxHwSectors: 256 } });
    await q.submitBio(write(8, pages(driver, 64)));
    expect(driver.ranges('write')).toEqual([
      [8, 256],
      [264, 256],
    ]);
    expect(driver.requests.every((x) => x.nrSegments === 32)).toBe(true);
  });

  it('caps at max_sectors (BLK_DEF_MAX_SECTORS = 1024) and honours max_sectors_kb', async () => {
    const { driver, q } = setup({ limits: { maxSegments: 512, maxHwSectors: 4096 } });
    expect(q.maxSectors).toBe(1024);
    await q.submitBio(write(0, pages(driver, 256)));
    expect(driver.ranges('write')).toEqual([
      [0, 1024],
      [1024, 1024],
    ]);
    expect(q.setMaxSectorsKb(4096)).toBe(false);
    expect(q.setMaxSectorsKb(2)).toBe(false);
    expect(q.setMaxSectorsKb(64)).toBe(true);
    expect(q.maxSectors).toBe(128);
  });

  it('merges contiguous pieces of one page into one segment, never across pages', async () => {
    const { driver, q } = setup();
    const a = pageWith(driver, 1);
    const b = pageWith(driver, 2);
    await q.submitBio(
      write(0, [
        { page: a, off: 0, len: 2048 },
        { page: a, off: 2048, len: 2048 },
        { page: b, off: 0, len: 512 },
        { page: b, off: 1024, len: 512 },
      ]),
    );
    expect(driver.requests[0].segLens).toEqual([4096, 512, 512]);
  });

  it('splits inside a segment when max_sectors falls mid-page', async () => {
    const { driver, q } = setup({ limits: { maxHwSectors: 12 } });
    await q.submitBio(write(0, pages(driver, 3)));
    expect(driver.ranges('write')).toEqual([
      [0, 12],
      [12, 12],
    ]);
    expect(driver.requests.map((r) => r.segLens)).toEqual([
      [4096, 2048],
      [2048, 4096],
    ]);
    // The data is still in order.
    expect(driver.data[6 * 1024]).toBe(2);
    expect(driver.data[8 * 1024]).toBe(3);
  });

  it('keeps request boundaries on the logical block size', async () => {
    const { driver, q } = setup({
      limits: { logicalBlockSize: 4096, physicalBlockSize: 4096, maxSegments: 6 },
    });
    // 1 KiB pieces in distinct pages: 6 segments = 6 KiB is not a whole block, 2 go to the next one.
    const segs = Array.from({ length: 12 }, () => ({ page: pageWith(driver, 7), off: 0, len: 1024 }));
    await q.submitBio(write(0, segs));
    expect(driver.ranges('write')).toEqual([
      [0, 8],
      [8, 8],
      [16, 8],
    ]);
    expect(driver.requests.map((r) => r.nrSegments)).toEqual([4, 4, 4]);
  });

  it('submits the requests of a bio concurrently', async () => {
    const { driver, q } = setup();
    await q.submitBio(write(0, pages(driver, 40)));
    expect(driver.requests.length).toBe(4);
    expect(driver.maxInFlight).toBe(4);
  });
});

describe('errors', () => {
  it('prints the 3.x end_request line for each failed request at its start sector', async () => {
    const { driver, log, q } = setup();
    driver.failWhen({ op: 'read', from: 4660, to: 4669, status: 'ioerr' });
    const segs = pages(driver, 2);
    const r = await q.submitBio({ op: 'read', sector: 4656, segments: segs });
    expect(r.status).toBe('ioerr');
    expect(r.errorSector).toBe(4656);
    expect(log.messages).toEqual([
      expect.objectContaining({ level: KERN_ERR, text: 'end_request: I/O error, dev xvda, sector 4656' }),
    ]);
  });

  it('reports the lowest failing request of a split bio and lists every failure', async () => {
    const { driver, log, q } = setup();
    driver.failWhen({ op: 'write', from: 100, to: 100, status: 'ioerr' });
    driver.failWhen({ op: 'write', from: 200, to: 200, status: 'nospc' });
    const r = await q.submitBio(write(0, pages(driver, 32)));
    expect(r).toMatchObject({ status: 'ioerr', errorSector: 88 });
    expect(r.failed).toEqual([
      { sector: 88, nrSectors: 88, status: 'ioerr' },
      { sector: 176, nrSectors: 80, status: 'nospc' },
    ]);
    // 3.10's switch has no ENOSPC case: "I/O" too.
    expect(log.lines()).toEqual([
      'end_request: I/O error, dev xvda, sector 88',
      'end_request: I/O error, dev xvda, sector 176',
    ]);
    expect(q.stats.errors).toMatchObject({ ioerr: 1, nospc: 1 });
  });

  it('refuses a bio beyond the end of the device without calling the driver', async () => {
    const { driver, log, q } = setup({ capacity: 64 });
    const r = await q.submitBio(write(60, pages(driver, 1)));
    expect(r.status).toBe('ioerr');
    expect(driver.requests).toEqual([]);
    expect(log.lines()).toEqual(['attempt to access beyond end of device', 'xvda: rw=1, want=68, limit=64']);
  });
});

describe('flush and discard', () => {
  it('passes a flush to a driver with a write cache', async () => {
    const { driver, q } = setup();
    expect((await q.submitBio({ op: 'flush', sector: 0, segments: [] })).status).toBe('ok');
    expect(driver.ranges('flush')).toEqual([[0, 0]]);
  });

  it('completes a flush at once when the device has no write cache', async () => {
    const { driver, log, q } = setup({ flush: false });
    expect((await q.submitBio({ op: 'flush', sector: 0, segments: [] })).status).toBe('ok');
    expect(driver.requests).toEqual([]);
    expect(log.lines()).toEqual([]);
  });

  it('answers notsupp for discard without discard support, silently', async () => {
    const { driver, log, q } = setup();
    const r = await q.submitBio({ op: 'discard', sector: 0, segments: [], nrSectors: 8 });
    expect(r.status).toBe('notsupp');
    expect(driver.requests).toEqual([]);
    expect(log.lines()).toEqual([]);
  });

  it('splits a discard at max_discard_sectors on granularity boundaries', async () => {
    const discard = { maxSectors: 100, granularity: 4096, alignment: 0, secure: false };
    const { driver, q } = setup({ limits: { discard } });
    const r = await q.submitBio({ op: 'discard', sector: 4, segments: [], nrSectors: 300 });
    expect(r.status).toBe('ok');
    // Chunks of round_down(100, 8) = 96 sectors, ends moved onto 8-sector boundaries.
    expect(driver.ranges('discard')).toEqual([
      [4, 92],
      [96, 96],
      [192, 96],
      [288, 16],
    ]);
    const sec = await q.submitBio({ op: 'discard', sector: 0, segments: [], nrSectors: 8, secure: true });
    expect(sec.status).toBe('notsupp');
  });
});

describe('block integrity: generate on write', () => {
  it('attaches PI the driver can verify against the request sector', async () => {
    const { driver, q } = setup({ integrity: TYPE1_CRC });
    await q.submitBio(write(1000, pages(driver, 12)));
    expect(driver.requests.length).toBe(2);
    for (const r of driver.requests) {
      const integ = r.integrity!;
      expect(integ.refSeed).toBe(r.sector);
      expect(integ.appTag).toBe(0);
      expect(integ.checks).toEqual({ guard: true, app: false, ref: true });
      expect(integ.tuples.length).toBe(r.nrSectors * PI_TUPLE_SIZE);
      const fmt = { type: 1 as const, guard: 'crc' as const, interval: 512 };
      expect(verifyPi(r.data!, integ.tuples, { format: fmt, seed: r.sector })).toBeNull();
    }
    expect(q.stats.piGenerated).toBe(96);
  });

  it('seeds a 4096-byte interval with sector / 8', async () => {
    const { driver, q } = setup({
      integrity: TYPE1_4K,
      limits: { logicalBlockSize: 4096, physicalBlockSize: 4096 },
    });
    await q.submitBio(write(800, pages(driver, 2)));
    const r = driver.requests[0];
    expect(r.integrity!.refSeed).toBe(100);
    expect(r.integrity!.tuples.length).toBe(16);
    expect(r.integrity!.tuples.readUInt32BE(4)).toBe(100);
    expect(r.integrity!.tuples.readUInt32BE(12)).toBe(101);
  });

  it('Type 3: ref tag 0 and no ref check', async () => {
    const { driver, q } = setup({ integrity: TYPE3 });
    await q.submitBio(write(16, pages(driver, 1)));
    const integ = driver.requests[0].integrity!;
    expect(integ.checks.ref).toBe(false);
    for (let i = 0; i < 8; i++) expect(integ.tuples.readUInt32BE(i * 8 + 4)).toBe(0);
  });

  it('write_generate=0: no PI on writes (the device inserts its own)', async () => {
    const { driver, q } = setup({ integrity: TYPE1_CRC });
    q.writeGenerate = false;
    await q.submitBio(write(0, pages(driver, 1)));
    expect(driver.requests[0].integrity).toBeUndefined();
    expect(q.stats.piGenerated).toBe(0);
  });
});

describe('withIntegrity', () => {
  const integrity = {
    tuples: Buffer.alloc(8),
    refSeed: 7,
    appTag: 0,
    checks: { guard: true, app: false, ref: true },
  };

  it('adds the PI and keeps exactly the fields the request had', () => {
    const segments: BioSegment[] = [];
    const r = withIntegrity({ op: 'write', sector: 56, segments }, integrity);
    expect(Object.keys(r)).toEqual(['op', 'sector', 'segments', 'integrity']);
    expect(r).toEqual({ op: 'write', sector: 56, segments, integrity });
    expect(r.segments).toBe(segments);
    const d = withIntegrity(
      { op: 'discard', sector: 8, segments: [], nrSectors: 16, secure: true },
      undefined,
    );
    expect(d).toEqual({
      op: 'discard',
      sector: 8,
      segments: [],
      nrSectors: 16,
      secure: true,
      integrity: undefined,
    });
  });

  it('replaces PI the request already carried, and leaves the request itself alone', () => {
    const req = { op: 'write' as const, sector: 0, segments: [], integrity: { ...integrity, refSeed: 1 } };
    const r = withIntegrity(req, integrity);
    expect(r.integrity).toBe(integrity);
    expect(req.integrity.refSeed).toBe(1);
  });
});

describe('block integrity: verify on read', () => {
  async function readBack(q: GuestBlockQueue, driver: FakeDriver, sector: number, n = 1) {
    return q.submitBio({ op: 'read', sector, segments: pages(driver, n, 0) });
  }

  it('passes data written through the queue', async () => {
    const { driver, log, q } = setup({ integrity: TYPE1_CRC });
    await q.submitBio(write(64, pages(driver, 4)));
    expect((await readBack(q, driver, 64, 4)).status).toBe('ok');
    expect(q.stats.piVerified).toBe(32);
    expect(log.lines()).toEqual([]);
  });

  it('skips never-written intervals (app tag 0xFFFF escape)', async () => {
    const { driver, q } = setup({ integrity: TYPE1_CRC });
    expect((await readBack(q, driver, 0)).status).toBe('ok');
  });

  it('guard error: t10-pi line, protection at the failing sector, no end_request line', async () => {
    const { driver, log, q } = setup({ integrity: TYPE1_CRC });
    await q.submitBio(write(64, pages(driver, 1, 0x5a)));
    driver.data[67 * SECTOR_SIZE + 10] ^= 0x80; // the medium rots after the write
    const r = await readBack(q, driver, 64);
    expect(r).toMatchObject({ status: 'protection', pi: { check: 'guard', sector: 67, caughtBy: 'guest' } });
    const want = driver.pi!.readUInt16BE(67 * 8);
    const line = log.lines()[0];
    expect(line).toMatch(/^xvda: guard tag error at sector 67 \(rcvd [0-9a-f]{4}, want [0-9a-f]{4}\)$/);
    expect(line).toContain(`rcvd ${want.toString(16).padStart(4, '0')}`);
    expect(log.lines().length).toBe(1);
    expect(q.stats.piVerifyErrors).toEqual({ guard: 1, app: 0, ref: 0 });
  });

  it('ref error: "ref tag error at location" with the expected and received tags', async () => {
    const { driver, log, q } = setup({ integrity: TYPE1_CRC });
    await q.submitBio(write(64, pages(driver, 1)));
    driver.pi!.writeUInt32BE(12345, 65 * 8 + 4);
    const r = await readBack(q, driver, 64);
    expect(r).toMatchObject({ status: 'protection', pi: { check: 'ref', sector: 65, caughtBy: 'guest' } });
    expect(log.lines()).toEqual(['xvda: ref tag error at location 65 (rcvd 12345)']);
  });

  it('checks ref before guard, as blk_verify_pi does', async () => {
    const { driver, log, q } = setup({ integrity: TYPE1_CRC });
    await q.submitBio(write(64, pages(driver, 1)));
    driver.pi!.writeUInt32BE(7, 64 * 8 + 4);
    driver.data[64 * SECTOR_SIZE] ^= 1;
    await readBack(q, driver, 64);
    expect(log.lines()).toEqual(['xvda: ref tag error at location 64 (rcvd 7)']);
  });

  it('app tag: unchecked by default, checked when asked (pvblk extension)', async () => {
    const driver = new FakeDriver({ integrity: TYPE1_CRC });
    const log = new MemoryKernelLog();
    const q = new GuestBlockQueue(driver, log);
    await q.submitBio(write(8, pages(driver, 1)));
    driver.pi!.writeUInt16BE(0x1234, 9 * 8 + 2);
    expect((await q.submitBio({ op: 'read', sector: 8, segments: pages(driver, 1) })).status).toBe('ok');
    const strict = new GuestBlockQueue(driver, log, { checkAppTag: true });
    const r = await strict.submitBio({ op: 'read', sector: 8, segments: pages(driver, 1) });
    expect(r).toMatchObject({ status: 'protection', pi: { check: 'app', sector: 9, caughtBy: 'guest' } });
    expect(log.lines()).toEqual(['xvda: app tag error at sector 9 (rcvd 1234, want 0000)']);
  });

  it('read_verify=0: the read carries no PI and nothing is checked', async () => {
    const { driver, log, q } = setup({ integrity: TYPE1_CRC });
    await q.submitBio(write(64, pages(driver, 1)));
    driver.data[64 * SECTOR_SIZE] ^= 1;
    q.readVerify = false;
    expect((await readBack(q, driver, 64)).status).toBe('ok');
    expect(driver.requests[1].integrity).toBeUndefined();
    expect(log.lines()).toEqual([]);
  });

  it('keeps the pi details of a protection error caught below the guest', async () => {
    const { driver, log, q } = setup({ integrity: TYPE1_CRC });
    driver.failWhen({
      op: 'read',
      from: 10,
      to: 10,
      status: 'protection',
      pi: { check: 'guard', sector: 10, caughtBy: 'backend' },
    });
    const r = await readBack(q, driver, 8);
    expect(r).toMatchObject({
      status: 'protection',
      pi: { check: 'guard', sector: 10, caughtBy: 'backend' },
    });
    expect(log.lines()).toEqual(['end_request: I/O error, dev xvda, sector 8']);
    expect(q.stats.piLowerErrors).toBe(1);
  });
});

describe('fault hooks', () => {
  it('corruptAfterGenerate: the data reaching the driver no longer matches its PI; the read catches it', async () => {
    const { driver, log, q } = setup({ integrity: TYPE1_CRC });
    q.faults.corruptAfterGenerate = { sector: 130 };
    const segs = pages(driver, 1, 0x11);
    const before = driver.livePages.size;
    expect((await q.submitBio(write(128, segs))).status).toBe('ok');
    expect(driver.livePages.size).toBe(before); // the corrupted copy was freed
    expect(segs[0].page.buf[2 * SECTOR_SIZE]).toBe(0x11); // the caller's page is intact
    expect(driver.data[130 * SECTOR_SIZE]).toBe(0x10);
    expect(q.stats.faultHits.corruptAfterGenerate).toBe(1);
    q.faults.corruptAfterGenerate = null;
    const r = await q.submitBio({ op: 'read', sector: 128, segments: pages(driver, 1) });
    expect(r).toMatchObject({ status: 'protection', pi: { check: 'guard', sector: 130 } });
    expect(log.lines()[0]).toMatch(/^xvda: guard tag error at sector 130 /);
  });

  it('corruptAfterGenerate with a checking device: the write itself fails', async () => {
    const { driver, log, q } = setup({ integrity: TYPE1_CRC, verifyWrites: true });
    q.faults.corruptAfterGenerate = { sector: 3 };
    const r = await q.submitBio(write(0, pages(driver, 1)));
    expect(r).toMatchObject({ status: 'protection', pi: { check: 'guard', sector: 3, caughtBy: 'device' } });
    expect(log.lines()).toEqual(['end_request: I/O error, dev xvda, sector 0']);
  });

  it('misdirect: the write lands elsewhere with its original ref tags; reading there fails the ref check', async () => {
    const { driver, log, q } = setup({ integrity: TYPE1_CRC });
    q.faults.misdirect = { fromSector: 200, toSector: 5000 };
    await q.submitBio(write(200, pages(driver, 1, 0x33)));
    expect(driver.ranges('write')).toEqual([[5000, 8]]);
    expect(driver.data[5000 * SECTOR_SIZE]).toBe(0x33);
    expect(driver.data[200 * SECTOR_SIZE]).toBe(0); // the intended place keeps its old data
    q.faults.misdirect = null;
    const r = await q.submitBio({ op: 'read', sector: 5000, segments: pages(driver, 1) });
    expect(r).toMatchObject({ status: 'protection', pi: { check: 'ref', sector: 5000, caughtBy: 'guest' } });
    expect(log.lines()).toEqual(['xvda: ref tag error at location 5000 (rcvd 200)']);
  });
});

describe('stats', () => {
  it('counts ios and sectors and renders the 11-field stat line', async () => {
    let t = 0;
    const driver = new FakeDriver();
    const q = new GuestBlockQueue(driver, new MemoryKernelLog(), { now: () => (t += 5) });
    await q.submitBio(write(0, pages(driver, 32)));
    await q.submitBio({ op: 'read', sector: 0, segments: pages(driver, 1) });
    expect(q.stats).toMatchObject({
      writeIos: 3,
      writeSectors: 256,
      readIos: 1,
      readSectors: 8,
      inFlight: 0,
    });
    const fields = q.statLine().trim().split(/\s+/).map(Number);
    expect(fields.length).toBe(11);
    expect([fields[0], fields[2], fields[4], fields[6], fields[8]]).toEqual([1, 8, 3, 256, 0]);
  });
});
