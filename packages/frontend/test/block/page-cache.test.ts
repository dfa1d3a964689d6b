/**
 * The block device page cache against the fake driver: block size, read-modify-write, writeback
 * merging, fsync/FLUSH, the end of the device, O_DIRECT, concurrency, dirty throttling, eviction,
 * last close — and the seed scenario at this level.
 */
import { KERN_ERR, KERN_WARNING, MemoryKernelLog, SECTOR_SIZE } from '@pvblk/shared';
import { describe, expect, it } from 'vitest';
import { BlockDeviceCache, type BlockDeviceCacheOptions } from '../../src/block/page-cache.ts';
import { GuestBlockQueue } from '../../src/block/queue.ts';
import { FileReadahead, initRaSize, nextRaSize } from '../../src/block/readahead.ts';
import { BLKFRONT_LIMITS, FakeDriver, TYPE1_CRC, type FakeDriverOptions } from './fake-driver.ts';

const KiB = 1024;
const MiB = 1024 * 1024;

function setup(
  opts: FakeDriverOptions = {},
  cacheOpts: BlockDeviceCacheOptions = {},
): { driver: FakeDriver; log: MemoryKernelLog; q: GuestBlockQueue; cache: BlockDeviceCache } {
  const driver = new FakeDriver(opts);
  const log = new MemoryKernelLog();
  const q = new GuestBlockQueue(driver, log);
  const cache = new BlockDeviceCache(q, log, cacheOpts);
  cache.open();
  return { driver, log, q, cache };
}

function pattern(n: number, seed = 7): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('block size (set_init_blocksize)', () => {
  it.each([
    [16384, 512, 4096], // 8 MiB
    [16385, 512, 512], // 8 MiB + 512: bit 512 set
    [16386, 512, 1024], // 8 MiB + 1 KiB
    [16388, 512, 2048], // 8 MiB + 2 KiB
    [16392, 512, 4096], // 8 MiB + 4 KiB
    [16392, 4096, 4096], // a 4Kn device
  ])('capacity %i sectors, logical block %i -> %i', (capacity, lbs, want) => {
    const { cache } = setup({ capacity, limits: { logicalBlockSize: lbs, physicalBlockSize: lbs } });
    expect(cache.blockSize).toBe(want);
  });
});

describe('buffered writes', () => {
  it('a 512-byte write at sector 4656 first READs the 4 KiB block 4656..4663, and writes it back at fsync', async () => {
    const { driver, cache } = setup();
    const r = await cache.pwrite(Buffer.alloc(512, 0xaa), 4656 * SECTOR_SIZE);
    expect(r).toEqual({ ok: true, n: 512 });
    expect(driver.requests.map((x) => [x.op, x.sector, x.nrSectors])).toEqual([['read', 4656, 8]]);
    expect(await cache.fsync()).toEqual({ ok: true, n: 0 });
    expect(driver.requests.map((x) => [x.op, x.sector, x.nrSectors])).toEqual([
      ['read', 4656, 8],
      ['write', 4656, 8],
      ['flush', 0, 0],
    ]);
    expect(driver.data[4656 * 512]).toBe(0xaa);
    expect(driver.data[4657 * 512]).toBe(0);
  });

  it('a write covering whole blocks needs no read', async () => {
    const { driver, cache } = setup();
    await cache.pwrite(pattern(8192), 8192);
    expect(driver.requests).toEqual([]);
  });

  it('with 512-byte blocks only the partly covered 512-byte blocks are read', async () => {
    const { driver, cache } = setup({ capacity: 16385 });
    expect(cache.blockSize).toBe(512);
    // Bytes 256..1280: block 0 partly, block 1 wholly, block 2 partly -> reads of blocks 0 and 2 only.
    await cache.pwrite(Buffer.alloc(1024, 1), 256);
    expect(driver.ranges('read')).toEqual([
      [0, 1],
      [2, 1],
    ]);
  });

  it('a failing read-modify-write fails the write with EIO and copies nothing', async () => {
    const { driver, log, cache } = setup();
    driver.failWhen({ op: 'read', from: 4660, to: 4669, status: 'ioerr' });
    expect(await cache.pwrite(Buffer.alloc(512), 4656 * 512)).toEqual({ ok: false, errno: 'EIO' });
    expect(cache.dirtyBytes()).toBe(0);
    expect(log.lines()).toEqual(['end_request: I/O error, dev xvda, sector 4656']);
    // A write spanning a good page and then the bad one returns the good part.
    const r = await cache.pwrite(Buffer.alloc(4096 + 512), 4648 * 512 + 0);
    expect(r).toEqual({ ok: true, n: 4096 });
  });

  it('writes up to the end of the device, then ENOSPC', async () => {
    const { cache } = setup({ capacity: 64 });
    const size = 64 * 512;
    expect(await cache.pwrite(Buffer.alloc(1024, 1), size - 512)).toEqual({ ok: true, n: 512 });
    expect(await cache.pwrite(Buffer.alloc(512), size)).toEqual({ ok: false, errno: 'ENOSPC' });
    expect(await cache.pwrite(Buffer.alloc(0), size)).toEqual({ ok: true, n: 0 });
    expect(await cache.pwrite(Buffer.alloc(0), size + 512)).toEqual({ ok: false, errno: 'ENOSPC' });
  });

  it('a read-only device refuses writes', async () => {
    const { cache } = setup({ readOnly: true });
    expect(await cache.pwrite(Buffer.alloc(512), 0)).toEqual({ ok: false, errno: 'EROFS' });
  });
});

describe('writeback', () => {
  it('merges contiguous dirty blocks across pages and splits them at the queue limits', async () => {
    const { driver, cache } = setup();
    for (let off = 0; off < MiB; off += 4096) await cache.pwrite(pattern(4096, off), off);
    await cache.pwrite(pattern(4096), 2 * MiB);
    expect(driver.requests).toEqual([]);
    await cache.fsync();
    const writes = driver.ranges('write');
    // 1 MiB = 2048 sectors = 23 requests of 88 + one of 24, then the separate page at 2 MiB.
    expect(writes.length).toBe(25);
    expect(writes.slice(0, 2)).toEqual([
      [0, 88],
      [88, 88],
    ]);
    expect(writes[23]).toEqual([2024, 24]);
    expect(writes[24]).toEqual([4096, 8]);
    expect(driver.requests.filter((r) => r.op === 'write').every((r) => r.nrSegments <= 11)).toBe(true);
    expect(driver.data.subarray(4096, 8192)).toEqual(pattern(4096, 4096));
    expect(driver.ranges('flush')).toEqual([[0, 0]]);
  });

  it('fsync issues no flush to a device without a write cache', async () => {
    const { driver, cache } = setup({ flush: false });
    await cache.pwrite(pattern(4096), 0);
    expect(await cache.fsync()).toEqual({ ok: true, n: 0 });
    expect(driver.ranges('flush')).toEqual([]);
  });

  it('a failed writeback loses the blocks, logs them, and the next fsync reports EIO once', async () => {
    const { driver, log, cache } = setup();
    driver.failWhen({ op: 'write', from: 8, to: 8, status: 'ioerr' });
    await cache.pwrite(pattern(3 * 4096), 0);
    expect(await cache.fsync()).toEqual({ ok: false, errno: 'EIO' });
    expect(driver.ranges('flush')).toEqual([]); // blkdev_fsync stops at the writeback error
    expect(log.messages.map((m) => [m.level, m.text])).toEqual([
      [KERN_ERR, 'end_request: I/O error, dev xvda, sector 0'],
      [KERN_ERR, 'Buffer I/O error on device xvda, logical block 0'],
      [KERN_WARNING, 'lost page write due to I/O error on xvda'],
      [KERN_ERR, 'Buffer I/O error on device xvda, logical block 1'],
      [KERN_WARNING, 'lost page write due to I/O error on xvda'],
      [KERN_ERR, 'Buffer I/O error on device xvda, logical block 2'],
      [KERN_WARNING, 'lost page write due to I/O error on xvda'],
    ]);
    expect(await cache.fsync()).toEqual({ ok: true, n: 0 });
    // The lost blocks are no longer uptodate: a read goes to the device.
    const before = driver.requests.length;
    await cache.pread(Buffer.alloc(512), 0);
    expect(driver.requests.length).toBe(before + 1);
  });

  it('a failed flush makes fsync fail with EIO', async () => {
    const { driver, cache } = setup();
    driver.failWhen({ op: 'flush', from: 0, to: 0, status: 'ioerr' });
    expect(await cache.fsync()).toEqual({ ok: false, errno: 'EIO' });
  });

  it('writes back in the writer when dirty data passes the threshold (balance_dirty_pages)', async () => {
    const { driver, cache } = setup({}, { dirtyThresholdBytes: 64 * KiB });
    for (let off = 0; off < 64 * KiB; off += 4096) await cache.pwrite(pattern(4096), off);
    expect(driver.requests).toEqual([]);
    await cache.pwrite(pattern(4096), 64 * KiB);
    expect(cache.dirtyBytes()).toBe(0);
    expect(driver.ranges('write').reduce((n, [, s]) => n + s, 0)).toBe(136);
  });

  it('last close writes back and drops the cache', async () => {
    const { driver, cache } = setup();
    cache.open(); // a second opener
    await cache.pwrite(pattern(4096), 0);
    expect(await cache.close()).toEqual({ ok: true, n: 0 });
    expect(driver.ranges('write')).toEqual([]);
    expect(await cache.close()).toEqual({ ok: true, n: 0 });
    expect(driver.ranges('write')).toEqual([[0, 8]]);
    expect(driver.ranges('flush')).toEqual([]);
    expect(cache.cachedBytes()).toBe(0);
    expect(driver.livePages.size).toBe(0);
  });
});

describe('buffered reads', () => {
  it('reads the missing blocks of a range in one bio and serves cached blocks from memory', async () => {
    const { driver, cache } = setup();
    pattern(64 * KiB).copy(driver.data);
    const buf = Buffer.alloc(10000);
    expect(await cache.pread(buf, 100)).toEqual({ ok: true, n: 10000 });
    expect(buf).toEqual(driver.data.subarray(100, 10100));
    expect(driver.ranges('read')).toEqual([[0, 24]]);
    await cache.pread(Buffer.alloc(20000), 0);
    expect(driver.ranges('read')).toEqual([
      [0, 24],
      [24, 16],
    ]);
  });

  it('at the end of the device: short read, then 0', async () => {
    const { cache } = setup({ capacity: 64 });
    expect(await cache.pread(Buffer.alloc(4096), 30 * KiB)).toEqual({ ok: true, n: 2048 });
    expect(await cache.pread(Buffer.alloc(4096), 32 * KiB)).toEqual({ ok: true, n: 0 });
  });

  it('a failing page after good ones: the bio is retried page by page, the read is short, then EIO', async () => {
    const { driver, log, cache } = setup();
    driver.failWhen({ op: 'read', from: 4660, to: 4669, status: 'ioerr' });
    const buf = Buffer.alloc(4 * 4096);
    const r = await cache.pread(buf, 4640 * 512);
    expect(r).toEqual({ ok: true, n: 2 * 4096 });
    expect(driver.ranges('read')).toEqual([
      [4640, 32],
      [4640, 8],
      [4648, 8],
      [4656, 8],
    ]);
    expect(log.lines()).toEqual([
      'end_request: I/O error, dev xvda, sector 4640',
      'end_request: I/O error, dev xvda, sector 4656',
      'Buffer I/O error on device xvda, logical block 582',
    ]);
    expect(await cache.pread(buf, 4656 * 512)).toEqual({ ok: false, errno: 'EIO' });
  });

  it('a PI verify failure is EIO to a buffered reader', async () => {
    const { driver, log, cache } = setup({ integrity: TYPE1_CRC });
    await cache.pwrite(pattern(4096), 0);
    await cache.close();
    cache.open();
    driver.data[5] ^= 1;
    expect(await cache.pread(Buffer.alloc(512), 0)).toEqual({ ok: false, errno: 'EIO' });
    expect(log.lines()).toEqual([
      expect.stringMatching(/^xvda: guard tag error at sector 0 /),
      'Buffer I/O error on device xvda, logical block 0',
    ]);
  });
});

describe('concurrency', () => {
  it('concurrent readers of the same blocks share one read', async () => {
    const { driver, cache } = setup();
    pattern(8192).copy(driver.data);
    const a = Buffer.alloc(8192);
    const b = Buffer.alloc(4096);
    const [ra, rb] = await Promise.all([cache.pread(a, 0), cache.pread(b, 4096)]);
    expect([ra, rb]).toEqual([
      { ok: true, n: 8192 },
      { ok: true, n: 4096 },
    ]);
    expect(driver.ranges('read')).toEqual([[0, 16]]);
    expect(b).toEqual(driver.data.subarray(4096, 8192));
  });

  it('concurrent partial writers to one block: one read-modify-write, both writes kept', async () => {
    const { driver, cache } = setup();
    await Promise.all([cache.pwrite(Buffer.alloc(512, 1), 0), cache.pwrite(Buffer.alloc(512, 2), 1024)]);
    expect(driver.ranges('read')).toEqual([[0, 8]]);
    await cache.fsync();
    expect(driver.data[0]).toBe(1);
    expect(driver.data[1024]).toBe(2);
    expect(driver.data[512]).toBe(0);
  });

  it('a write to a page under writeback waits for it (stable pages)', async () => {
    const { driver, cache } = setup();
    await cache.pwrite(Buffer.alloc(4096, 1), 0);
    let open!: () => void;
    driver.gate = new Promise((r) => (open = r));
    const sync = cache.fsync();
    await new Promise((r) => setImmediate(r));
    const w = cache.pwrite(Buffer.alloc(4096, 2), 0);
    await new Promise((r) => setTimeout(r, 5));
    expect(driver.requests.find((r) => r.op === 'write')!.data![0]).toBe(1);
    open();
    driver.gate = null;
    await Promise.all([sync, w]);
    expect(driver.data[0]).toBe(1);
    await cache.fsync();
    expect(driver.data[0]).toBe(2);
  });
});

describe('eviction', () => {
  it('keeps the cache under its limit by dropping clean pages, least recently used first', async () => {
    const { driver, cache } = setup({}, { cacheLimitBytes: 64 * KiB });
    const buf = Buffer.alloc(4096);
    for (let off = 0; off < 256 * KiB; off += 4096) await cache.pread(buf, off);
    expect(cache.cachedBytes()).toBe(64 * KiB);
    expect(driver.livePages.size).toBe(16);
    const reads = driver.requests.length;
    await cache.pread(buf, 252 * KiB); // still cached
    expect(driver.requests.length).toBe(reads);
    await cache.pread(buf, 0); // evicted long ago
    expect(driver.requests.length).toBe(reads + 1);
  });

  it('never evicts dirty pages', async () => {
    const { cache } = setup({}, { cacheLimitBytes: 16 * KiB });
    for (let off = 0; off < 64 * KiB; off += 4096) await cache.pwrite(pattern(4096), off);
    expect(cache.dirtyBytes()).toBe(64 * KiB);
    expect(cache.cachedBytes()).toBe(64 * KiB);
  });
});

describe('O_DIRECT', () => {
  it('requires alignment to the logical block size', async () => {
    const { cache } = setup();
    expect(await cache.directRead(Buffer.alloc(512), 256)).toEqual({ ok: false, errno: 'EINVAL' });
    expect(await cache.directWrite(Buffer.alloc(1000), 0)).toEqual({ ok: false, errno: 'EINVAL' });
    const k4 = setup({ limits: { logicalBlockSize: 4096, physicalBlockSize: 4096 } }).cache;
    expect(await k4.directWrite(Buffer.alloc(512), 0)).toEqual({ ok: false, errno: 'EINVAL' });
  });

  it('bypasses the cache with temporary pages, freed afterwards', async () => {
    const { driver, cache } = setup();
    const data = pattern(1536);
    expect(await cache.directWrite(data, 512)).toEqual({ ok: true, n: 1536 });
    expect(driver.ranges('write')).toEqual([[1, 3]]);
    expect(driver.data.subarray(512, 2048)).toEqual(data);
    const back = Buffer.alloc(1536);
    expect(await cache.directRead(back, 512)).toEqual({ ok: true, n: 1536 });
    expect(back).toEqual(data);
    expect(driver.livePages.size).toBe(0);
    expect(cache.cachedBytes()).toBe(0);
  });

  it('writes back dirty cached data before a direct read of the range', async () => {
    const { driver, cache } = setup();
    await cache.pwrite(Buffer.alloc(4096, 9), 0);
    const back = Buffer.alloc(4096);
    await cache.directRead(back, 0);
    expect(driver.ranges('write')).toEqual([[0, 8]]);
    expect(back[0]).toBe(9);
  });

  it('invalidates overlapping cached pages on a direct write', async () => {
    const { driver, cache } = setup();
    const buf = Buffer.alloc(4096);
    await cache.pread(buf, 0);
    await cache.directWrite(Buffer.alloc(512, 5), 1024);
    expect(cache.cachedBytes()).toBe(0);
    await cache.pread(buf, 0);
    expect(buf[1024]).toBe(5);
    expect(driver.ranges('read')).toEqual([
      [0, 8],
      [0, 8],
    ]);
  });

  it('returns blk_status_to_errno of a failed bio: EILSEQ for protection, EIO for ioerr', async () => {
    const { driver, cache } = setup({ integrity: TYPE1_CRC });
    await cache.directWrite(pattern(4096), 0);
    driver.data[100] ^= 1;
    expect(await cache.directRead(Buffer.alloc(4096), 0)).toEqual({ ok: false, errno: 'EILSEQ' });
    driver.failWhen({ op: 'read', from: 16, to: 16, status: 'ioerr' });
    expect(await cache.directRead(Buffer.alloc(4096), 8192)).toEqual({ ok: false, errno: 'EIO' });
    expect(driver.livePages.size).toBe(0);
  });

  it('at the end of the device: short, then ENOSPC for writes and 0 for reads', async () => {
    const { cache } = setup({ capacity: 64 });
    expect(await cache.directWrite(Buffer.alloc(2048), 31 * KiB)).toEqual({ ok: true, n: 1024 });
    expect(await cache.directWrite(Buffer.alloc(512), 32 * KiB)).toEqual({ ok: false, errno: 'ENOSPC' });
    expect(await cache.directRead(Buffer.alloc(512), 32 * KiB)).toEqual({ ok: true, n: 0 });
  });
});

describe('seed scenario: dd if=/dev/zero of=/dev/xvda on a disk whose reads of 4660..4669 fail', () => {
  it('fails the write at byte 4656*512 with EIO after 4656 good writes, with one end_request line', async () => {
    const { driver, log, cache } = setup({ capacity: 16384 });
    driver.failWhen({ op: 'read', from: 4660, to: 4669, status: 'ioerr' });
    const zeros = Buffer.alloc(512);
    let records = 0;
    let last: unknown = null;
    for (let off = 0; off < 16384 * 512; off += 512) {
      const r = await cache.pwrite(zeros, off);
      if (!r.ok) {
        last = r;
        break;
      }
      records++;
    }
    expect(records).toBe(4656);
    expect(last).toEqual({ ok: false, errno: 'EIO' });
    expect(log.lines()).toEqual(['end_request: I/O error, dev xvda, sector 4656']);
    // Every 4 KiB block was read once before its first partial write; nothing was written yet.
    expect(driver.ranges('read').length).toBe(583);
    expect(driver.ranges('write')).toEqual([]);
    expect(await cache.close()).toEqual({ ok: true, n: 0 });
    const written = driver.ranges('write').reduce((n, [, s]) => n + s, 0);
    expect(written).toBe(4656);
  });
});

describe('readahead (mm/readahead.c, through an open file)', () => {
  // indirect-sized requests, so that each readahead window is one request and can be told apart
  const wide = { limits: { maxHwSectors: 1024, maxSegments: 256 } };
  const sequential = async (cache: BlockDeviceCache, ra: FileReadahead, pages: number, bs = 4096) => {
    const buf = Buffer.alloc(bs);
    for (let off = 0; off < pages * PAGE; off += bs) expect((await cache.pread(buf, off, ra)).ok).toBe(true);
  };
  const PAGE = 4096;
  /** A file's readahead on the wide device: requests of 128 pages, windows of `limitPages` at most. */
  const file = (readAheadKb: number, limitPages: number, ioPages = 128) =>
    new FileReadahead(readAheadKb, { ioPages, limitPages });
  /** [first page, pages] of each read request. */
  const windows = (driver: FakeDriver) =>
    driver.ranges('read').map(([s, n]) => [(s * SECTOR_SIZE) / PAGE, (n * SECTOR_SIZE) / PAGE]);

  it("sizes windows as get_init_ra_size() and get_next_ra_size() do (the kernel's table for a 128 KiB maximum)", () => {
    // "1-2 page = 16k, 3-4 page 32k, 5-8 page = 64k, > 8 page = 128k initial"
    expect([1, 2, 3, 4, 5, 8, 9, 32].map((n) => initRaSize(n, 32))).toEqual([4, 4, 8, 8, 16, 16, 32, 32]);
    // ×4 below max/16 (2 pages), ×2 from there, never past max
    expect([1, 2, 4, 8, 16, 32].map((n) => nextRaSize(n, 32))).toEqual([4, 4, 8, 16, 32, 32]);
  });

  it('a sequential reader of 4 KiB pages reads ahead in windows of 4, 8, 16 and then 32 pages, each started at its marker', async () => {
    const { driver, cache } = setup(wide);
    const ra = file(128, 8192);
    await sequential(cache, ra, 40);
    // the first read misses page 0: 4 pages, the marker on page 1 (size - async = 4 - 3); page 1
    // starts pages 4-11, page 4 pages 12-27, page 12 pages 28-59, page 28 pages 60-91
    expect(windows(driver)).toEqual([
      [0, 4],
      [4, 8],
      [12, 16],
      [28, 32],
      [60, 32],
    ]);
  });

  it('POSIX_FADV_SEQUENTIAL doubles the largest window; read_ahead_kb=0 reads only what is asked', async () => {
    const seq = setup(wide);
    const ra = file(128, 8192);
    ra.fadvise('sequential', 128);
    await sequential(seq.cache, ra, 100);
    expect(windows(seq.driver).map(([, n]) => n)).toEqual([4, 8, 16, 32, 64, 64]);

    const off = setup(wide);
    await sequential(off.cache, file(0, 8192), 3);
    expect(windows(off.driver)).toEqual([
      [0, 1],
      [1, 1],
      [2, 1],
    ]);
  });

  it('bounds a window by the sane maximum, whatever read_ahead_kb says (max_sane_readahead())', async () => {
    const { driver, cache } = setup(wide);
    // read_ahead_kb takes any number: 2^40 KiB, with room for windows of 16 pages
    await sequential(cache, file(2 ** 40, 16), 40);
    expect(Math.max(...windows(driver).map(([, n]) => n))).toBe(16);
    const rnd = setup(wide);
    const r = file(128, 16);
    r.fadvise('random', 128);
    expect((await rnd.cache.pread(Buffer.alloc(40 * PAGE), 0, r)).ok).toBe(true);
    // 16 pages forced at a time: the read's loop forces again at each page it finds missing
    expect(windows(rnd.driver)).toEqual([
      [0, 16],
      [16, 16],
      [32, 8],
    ]);
  });

  it("lets a read larger than the window read up to the device's largest request (io_pages, 4.10)", async () => {
    const big = setup(wide);
    expect((await big.cache.pread(Buffer.alloc(64 * PAGE), 0, file(128, 8192, 128))).ok).toBe(true);
    // one window the size of the read, its marker half-way (4.10's cap on the merged window), where
    // the read itself starts the next
    expect(windows(big.driver)).toEqual([
      [0, 64],
      [64, 32],
    ]);
    // a device whose requests are no larger than the window: read_ahead_kb's windows, each started
    // at the marker of the one before
    const small = setup(wide);
    expect((await small.cache.pread(Buffer.alloc(64 * PAGE), 0, file(128, 8192, 32))).ok).toBe(true);
    expect(windows(small.driver)).toEqual([
      [0, 32],
      [32, 32],
      [64, 32],
    ]);
  });

  it('POSIX_FADV_RANDOM reads just the request; a lone random read leaves the window alone', async () => {
    const rnd = setup(wide);
    const r = file(128, 8192);
    r.fadvise('random', 128);
    const buf = Buffer.alloc(4096);
    await rnd.cache.pread(buf, 100 * PAGE, r);
    await rnd.cache.pread(buf, 101 * PAGE, r);
    await rnd.cache.pread(Buffer.alloc(3 * PAGE), 200 * PAGE, r);
    expect(windows(rnd.driver)).toEqual([
      [100, 1],
      [101, 1],
      [200, 3],
    ]);

    const normal = setup(wide);
    const n = file(128, 8192);
    await normal.cache.pread(buf, 100 * PAGE, n);
    // the page after the last one read is a sequential miss: a first window from there
    await normal.cache.pread(buf, 101 * PAGE, n);
    // a step back is not
    await normal.cache.pread(buf, 50 * PAGE, n);
    expect(windows(normal.driver)).toEqual([
      [100, 1],
      [101, 4],
      [50, 1],
    ]);
  });

  it("another reader's cached pages before a miss start a window, if more than it asks (try_context_readahead)", async () => {
    const { driver, cache } = setup(wide);
    // pages 50-53 and 300 cached by a reader without readahead
    await cache.pread(Buffer.alloc(4 * PAGE), 50 * PAGE);
    await cache.pread(Buffer.alloc(PAGE), 300 * PAGE);
    const ra = file(128, 8192);
    // 4 pages of history before a 1-page miss: as many again and the page asked, the marker on the
    // first page after it (3.12's conservative rule: before, 48 pages)
    await cache.pread(Buffer.alloc(PAGE), 54 * PAGE, file(128, 8192));
    // 1 page of history for 1 asked is no stream: the page alone
    await cache.pread(Buffer.alloc(PAGE), 301 * PAGE, ra);
    expect(windows(driver)).toEqual([
      [50, 4],
      [300, 1],
      [54, 5],
      [301, 1],
    ]);
  });

  it('stops at the end of the device, and a read after it returns the data the window read', async () => {
    const { driver, cache } = setup({ ...wide, capacity: 64 }); // 32 KiB: 8 pages
    driver.data.fill(0x5a);
    const ra = file(128, 8192);
    const buf = Buffer.alloc(PAGE);
    for (let p = 0; p < 8; p++) {
      buf.fill(0);
      expect(await cache.pread(buf, p * PAGE, ra)).toEqual({ ok: true, n: PAGE });
      expect(buf.every((b) => b === 0x5a)).toBe(true);
    }
    // pages 0-3 by the first window, 4-7 by the one its marker started: none past page 7
    expect(windows(driver)).toEqual([
      [0, 4],
      [4, 4],
    ]);
  });

  it('a window whose read fails leaves its pages to be read alone: the bad one fails, the others read', async () => {
    const { driver, log, cache } = setup(wide);
    // page 6's first sector (48) is bad: the window of pages 4-11 fails as a whole
    driver.failWhen({ op: 'read', from: 48, to: 48, status: 'ioerr' });
    const ra = file(128, 8192);
    const buf = Buffer.alloc(PAGE);
    const got = [];
    for (let p = 0; p < 8; p++) got.push((await cache.pread(buf, p * PAGE, ra)).ok);
    expect(got).toEqual([true, true, true, true, true, true, false, true]);
    expect(log.lines(KERN_ERR)).toContain('Buffer I/O error on device xvda, logical block 6');
    // and every page goes back to the driver when the cache is dropped
    await cache.close();
    expect(driver.livePages.size).toBe(0);
  });

  it('the last close waits for a window nobody waited for, and drops it; BLKFLSBUF keeps a dirty page', async () => {
    const { driver, cache } = setup(wide);
    const ra = file(128, 8192);
    await cache.pread(Buffer.alloc(PAGE), 0, ra);
    // page 1's marker starts pages 4-11, still in flight when the read returns
    await cache.pread(Buffer.alloc(PAGE), PAGE, ra);
    expect(await cache.close()).toEqual({ ok: true, n: 0 });
    expect(cache.cachedBytes()).toBe(0);
    expect(driver.livePages.size).toBe(0);

    const other = setup(wide);
    other.cache.open();
    await other.cache.pwrite(Buffer.alloc(PAGE, 0x22), 10 * PAGE);
    // invalidate_mapping_pages() skips a dirty page: its data is nowhere else
    other.cache.invalidateAll();
    const back = Buffer.alloc(PAGE);
    await other.cache.pread(back, 10 * PAGE);
    expect(back[0]).toBe(0x22);
    expect(other.driver.ranges('read')).toEqual([]);
  });

  it('BLKFLSBUF writes back without a device flush; a reader without readahead leaves the marker', async () => {
    const { driver, cache } = setup(wide);
    await cache.pwrite(Buffer.alloc(PAGE, 1), 20 * PAGE);
    await cache.flushBuffers();
    expect(driver.requests.map((r) => r.op)).toEqual(['write']);
    expect(cache.cachedBytes()).toBe(0);

    const two = setup(wide);
    const a = file(128, 8192);
    await two.cache.pread(Buffer.alloc(PAGE), 0, a);
    // another file with read_ahead_kb 0 reads the marked page 1: page_cache_async_readahead() returns
    // before it clears the mark
    await two.cache.pread(Buffer.alloc(PAGE), PAGE, file(0, 8192));
    await two.cache.pread(Buffer.alloc(PAGE), PAGE, a);
    expect(windows(two.driver)).toEqual([
      [0, 4],
      [4, 8],
    ]);
  });

  it("a discard drops its range's pages once a readahead in flight there is done, and no others", async () => {
    const { driver, cache } = setup(wide);
    driver.data.fill(0x77);
    const ra = file(128, 8192);
    await cache.pread(Buffer.alloc(PAGE), 0, ra);
    // page 1's marker starts pages 4-11, in flight when the read returns
    await cache.pread(Buffer.alloc(PAGE), PAGE, ra);
    await cache.discardRange(4 * PAGE, 12 * PAGE);
    // pages 0-3 stay; the window's were read, then dropped (truncate_inode_pages_range())
    expect(cache.cachedBytes()).toBe(4 * PAGE);
    driver.data.fill(0, 4 * PAGE, 12 * PAGE);
    const back = Buffer.alloc(PAGE, 1);
    await cache.pread(back, 5 * PAGE);
    expect(back.every((b) => b === 0)).toBe(true);
  });
});

describe('BLKDISCARD (blk_ioctl_discard())', () => {
  const discarding = { granularity: 512, alignment: 0, secure: false, maxSectors: 1 << 20 };
  const limits = { ...BLKFRONT_LIMITS, discard: discarding };

  it('refuses in the kernel order: no discard, read-only, then an empty, unaligned or too long range', async () => {
    expect(await setup().cache.discard(0, 4096)).toEqual({ ok: false, errno: 'EOPNOTSUPP' });
    // no discard is said before read-only, and read-only before a bad range
    expect(await setup({ readOnly: true }).cache.discard(0, 0)).toEqual({ ok: false, errno: 'EOPNOTSUPP' });
    const ro = setup({ readOnly: true, limits });
    expect(await ro.cache.discard(0, 0)).toEqual({ ok: false, errno: 'EPERM' });
    const { driver, cache } = setup({ limits });
    expect(await cache.discard(0, 4096, { readOnly: true })).toEqual({ ok: false, errno: 'EPERM' });
    // BLKSECDISCARD on a device without secure discard
    expect(await cache.discard(0, 4096, { secure: true })).toEqual({ ok: false, errno: 'EOPNOTSUPP' });
    const end = 16384 * SECTOR_SIZE;
    for (const [start, len] of [
      [0, 0],
      [0, 1000],
      [100, 4096],
      [end - 4096, 8192],
      [end, 512],
    ])
      expect(await cache.discard(start, len), `${start}+${len}`).toEqual({ ok: false, errno: 'EINVAL' });
    expect(driver.requests).toEqual([]);
    expect(await cache.discard(512, 512)).toEqual({ ok: true, n: 512 });
    expect(await cache.discard(end - 4096, 4096)).toEqual({ ok: true, n: 4096 });
    expect(driver.requests.map((x) => [x.op, x.sector, x.nrSectors])).toEqual([
      ['discard', 1, 1],
      ['discard', end / SECTOR_SIZE - 8, 8],
    ]);
  });

  it('keeps what a page holds beside a range that covers it in part: zeroed in the range, a block inside no longer dirty', async () => {
    // 4 KiB blocks: the block is partly in the range, stays dirty, and is written back with the range zeroed
    const four = setup({ limits });
    await four.cache.pwrite(Buffer.alloc(4096, 0xaa), 0);
    expect(await four.cache.discard(1024, 512)).toEqual({ ok: true, n: 512 });
    expect(four.cache.cachedBytes()).toBe(4096);
    await four.cache.fsync();
    const page = four.driver.data.subarray(0, 4096);
    expect(page.subarray(1024, 1536).every((b) => b === 0)).toBe(true);
    expect([...page.subarray(0, 1024), ...page.subarray(1536)].every((b) => b === 0xaa)).toBe(true);
    // 512-byte blocks (a capacity with bit 512 set): the block inside the range is not written back
    const small = setup({ limits, capacity: 16385 });
    expect(small.cache.blockSize).toBe(512);
    await small.cache.pwrite(Buffer.alloc(4096, 0xbb), 0);
    expect(await small.cache.discard(1024, 512)).toEqual({ ok: true, n: 512 });
    await small.cache.fsync();
    const written = small.driver.requests.filter((x) => x.op === 'write').map((x) => [x.sector, x.nrSectors]);
    expect(written).toEqual([
      [0, 2],
      [3, 5],
    ]);
  });

  it('keeps no block a read brought in while the discard waited: the invalidate lock Linux holds', async () => {
    const { driver, cache } = setup({ limits });
    driver.data.fill(0x77);
    await cache.pwrite(Buffer.alloc(4096, 0xaa), 0);
    const wb = cache.writebackAll();
    // the discard waits for page 0's writeback; page 1 is read from the disk meanwhile, before it
    const d = cache.discard(0, 8192);
    const r = cache.pread(Buffer.alloc(4096), 4096);
    await Promise.all([wb, d, r]);
    const after = Buffer.alloc(4096, 1);
    await cache.pread(after, 4096);
    expect(after.every((b) => b === 0)).toBe(true);
    expect(driver.requests.map((x) => [x.op, x.sector, x.nrSectors])).toEqual([
      ['write', 0, 8],
      ['read', 8, 8],
      ['discard', 0, 16],
      ['read', 8, 8],
    ]);
  });

  it("drops the range's cached pages, dirty ones too, before the discard goes down", async () => {
    const { driver, cache } = setup({ limits });
    await cache.pwrite(Buffer.alloc(3 * 4096, 0xaa), 0);
    expect(await cache.discard(4096, 4096)).toEqual({ ok: true, n: 4096 });
    // the middle page's dirty data is gone (truncate_bdev_range()); its neighbours are written back
    expect(cache.cachedBytes()).toBe(2 * 4096);
    await cache.fsync();
    expect(driver.requests.filter((x) => x.op !== 'flush').map((x) => [x.op, x.sector, x.nrSectors])).toEqual(
      [
        ['discard', 8, 8],
        ['write', 0, 8],
        ['write', 16, 8],
      ],
    );
  });
});
