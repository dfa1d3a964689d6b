/**
 * Bugs `pvblk chaos` found, reduced to the smallest in-process reproduction. Each names the seed that
 * found it (test/process/chaos.test.ts replays the seed across processes).
 */
import { describe, expect, it } from 'vitest';
import { MemoryKernelLog } from '@pvblk/shared';
import { BlockDeviceCache } from '../../packages/frontend/src/block/page-cache.ts';
import { GuestBlockQueue } from '../../packages/frontend/src/block/queue.ts';
import { FakeDriver, TYPE1_CRC } from '../../packages/frontend/test/block/fake-driver.ts';

describe('seed 14: a buffered write racing fsync on a page under writeback', () => {
  // pwrite() checks for writeback in writeBegin() and copies into the page after `await`ing it: the
  // await always yields, and an fsync that starts writeback then generates PI over the old contents
  // of a page the write is about to change. The disk (here the fake driver, checking PI as a DIF
  // target does) refuses the data, the fsync fails with EIO, and the racing write's data is marked
  // not uptodate — lost. Stable pages (required with integrity) were not stable; pwrite now checks
  // again, with nothing in between, after writeBegin answers.
  it('keeps the page stable: the fsync succeeds and the write is not lost', async () => {
    const driver = new FakeDriver({ integrity: TYPE1_CRC, verifyWrites: true });
    const log = new MemoryKernelLog();
    const cache = new BlockDeviceCache(new GuestBlockQueue(driver, log), log);
    cache.open();
    const first = Buffer.alloc(4096, 1);
    const second = Buffer.alloc(4096, 2);
    expect((await cache.pwrite(first, 0)).ok).toBe(true); // a dirty page
    const [w, f] = await Promise.all([cache.pwrite(second, 0), cache.fsync()]);
    expect(w.ok).toBe(true);
    expect(f).toEqual({ ok: true, n: 0 });
    expect(log.lines()).toEqual([]);
    const back = Buffer.alloc(4096);
    expect(await cache.pread(back, 0)).toEqual({ ok: true, n: 4096 });
    expect(back.equals(second)).toBe(true);
  });
});
