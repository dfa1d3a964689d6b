import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KERN_NOTICE, MemoryKernelLog, isPvblkError } from '@pvblk/shared';
import {
  FileStore,
  MemoryStore,
  dataOffset,
  piOffset,
  recordSize,
  tuplesPerBlock,
  type BlockStore,
  type StoreFormat,
} from '../../src/scsi/index.ts';

const PI512: StoreFormat = { blockSize: 512, blocks: 64, pi: true };
const PI4K: StoreFormat = { blockSize: 4096, blocks: 16, pi: true };
const PLAIN: StoreFormat = { blockSize: 512, blocks: 64, pi: false };

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

async function exercise(store: BlockStore): Promise<void> {
  const f = store.format;
  const fresh = await store.read(3, 2);
  expect(fresh.data).toEqual(Buffer.alloc(2 * f.blockSize));
  if (f.pi) expect(fresh.pi).toEqual(Buffer.alloc(2 * tuplesPerBlock(f) * 8, 0xff));
  else expect(fresh.pi).toBeNull();

  const data = pattern(2 * f.blockSize, 1);
  const pi = f.pi ? pattern(2 * tuplesPerBlock(f) * 8, 2) : null;
  await store.write(3, data, pi);
  const back = await store.read(2, 4);
  expect(back.data.subarray(f.blockSize, 3 * f.blockSize)).toEqual(data);
  if (pi) expect(back.pi!.subarray(tuplesPerBlock(f) * 8, 3 * tuplesPerBlock(f) * 8)).toEqual(pi);

  // A write without tuples leaves the PI as it was (a WRPROTECT=0 write in scsi_debug).
  const data2 = pattern(2 * f.blockSize, 9);
  await store.write(3, data2);
  const back2 = await store.read(3, 2);
  expect(back2.data).toEqual(data2);
  if (pi) expect(back2.pi).toEqual(pi);
}

describe('record layout', () => {
  it('is 520 bytes per 512-byte block and 4096 + 8 tuples per 4 KiB block', () => {
    expect(recordSize(PI512)).toBe(520);
    expect(recordSize(PI4K)).toBe(4160);
    expect(tuplesPerBlock(PI4K)).toBe(8);
    expect(recordSize(PLAIN)).toBe(512);
    expect(recordSize({ blockSize: 4096, blocks: 1, pi: false })).toBe(4096);
    expect(dataOffset(PI512, 3)).toBe(1560);
    expect(piOffset(PI512, 3)).toBe(1560 + 512);
    expect(piOffset(PI4K, 2, 5)).toBe(2 * 4160 + 4096 + 40);
  });
});

describe('MemoryStore', () => {
  it.each([PI512, PI4K, PLAIN])('stores data and PI (%o)', async (f) => {
    await exercise(new MemoryStore(f));
  });

  it('rejects ranges outside the store and mis-sized buffers', async () => {
    const s = new MemoryStore(PI512);
    await expect(s.read(63, 2)).rejects.toSatisfy((e) => isPvblkError(e, 'EINVAL'));
    await expect(s.write(0, Buffer.alloc(100))).rejects.toSatisfy((e) => isPvblkError(e, 'EINVAL'));
    await expect(s.write(0, Buffer.alloc(512), Buffer.alloc(4))).rejects.toSatisfy((e) =>
      isPvblkError(e, 'EINVAL'),
    );
    await expect(new MemoryStore(PLAIN).write(0, Buffer.alloc(512), Buffer.alloc(8))).rejects.toSatisfy((e) =>
      isPvblkError(e, 'EINVAL'),
    );
  });
});

describe('FileStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pvblk-store-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([PI512, PI4K, PLAIN])('stores data and PI in a file (%o)', async (f) => {
    const s = await FileStore.open({ dir, name: 'sdg', format: f });
    try {
      await exercise(s);
    } finally {
      await s.close();
    }
  });

  it('formats a new store with zero data and all-ones PI, records back to back', async () => {
    const log = new MemoryKernelLog();
    const s = await FileStore.open({ dir, name: 'sdg', format: PI512, log });
    expect(s.formatted).toBe(true);
    expect(log.messages).toEqual([
      expect.objectContaining({
        level: KERN_NOTICE,
        text: `scsi_debug: formatting ${join(dir, 'sdg.img')}: 64 x 520-byte records (512-byte blocks + 1 PI tuple)`,
      }),
    ]);
    await s.write(5, pattern(512, 3), Buffer.from('0102030405060708', 'hex'));
    await s.close();

    const raw = await readFile(join(dir, 'sdg.img'));
    expect(raw.length).toBe(64 * 520);
    expect(raw.subarray(0, 512)).toEqual(Buffer.alloc(512));
    expect(raw.subarray(512, 520)).toEqual(Buffer.alloc(8, 0xff));
    expect(raw.subarray(dataOffset(PI512, 5), dataOffset(PI512, 5) + 512)).toEqual(pattern(512, 3));
    expect(raw.subarray(piOffset(PI512, 5), piOffset(PI512, 5) + 8)).toEqual(
      Buffer.from('0102030405060708', 'hex'),
    );
    expect(JSON.parse(await readFile(join(dir, 'sdg.json'), 'utf8'))).toEqual({
      magic: 'pvblk-scsi-debug-store',
      version: 1,
      blockSize: 512,
      blocks: 64,
      pi: true,
      piInterval: 512,
      tupleSize: 8,
      recordSize: 520,
    });
  });

  it('reopens the same store, and re-formats when the format changes', async () => {
    const s1 = await FileStore.open({ dir, name: 'sdg', format: PI512 });
    await s1.write(1, pattern(512, 4), pattern(8, 5));
    await s1.flush();
    await s1.close();

    const s2 = await FileStore.open({ dir, name: 'sdg', format: PI512 });
    expect(s2.formatted).toBe(false);
    expect(await s2.read(1, 1)).toEqual({ data: pattern(512, 4), pi: pattern(8, 5) });
    await s2.close();

    const log = new MemoryKernelLog();
    const s3 = await FileStore.open({ dir, name: 'sdg', format: PLAIN, log });
    expect(s3.formatted).toBe(true);
    expect(log.lines()).toEqual([
      `scsi_debug: re-formatting ${join(dir, 'sdg.img')}: 64 x 512-byte blocks, no PI (was 64 x 520-byte records (512-byte blocks + 1 PI tuple))`,
    ]);
    expect((await s3.read(1, 1)).data).toEqual(Buffer.alloc(512));
    await s3.close();
    expect((await stat(join(dir, 'sdg.img'))).size).toBe(64 * 512);
  });

  it('re-formats a store whose header is missing or whose file was truncated', async () => {
    const s1 = await FileStore.open({ dir, name: 'sdg', format: PI512 });
    await s1.write(0, pattern(512, 1), pattern(8, 1));
    await s1.close();
    const fh = await open(join(dir, 'sdg.img'), 'r+');
    await fh.truncate(100);
    await fh.close();
    const s2 = await FileStore.open({ dir, name: 'sdg', format: PI512 });
    expect(s2.formatted).toBe(true);
    expect((await s2.read(0, 1)).pi).toEqual(Buffer.alloc(8, 0xff));
    await s2.close();
    await rm(join(dir, 'sdg.json'));
    const s3 = await FileStore.open({ dir, name: 'sdg', format: PI512 });
    expect(s3.formatted).toBe(true);
    await s3.close();
  });

  it('serves concurrent requests to different ranges', async () => {
    const s = await FileStore.open({ dir, name: 'sdg', format: PI4K });
    await Promise.all(
      Array.from({ length: 16 }, (_, i) => s.write(i, pattern(4096, i), pattern(64, 100 + i))),
    );
    const reads = await Promise.all(Array.from({ length: 16 }, (_, i) => s.read(i, 1)));
    reads.forEach((r, i) => {
      expect(r.data).toEqual(pattern(4096, i));
      expect(r.pi).toEqual(pattern(64, 100 + i));
    });
    await s.close();
  });

  it('refuses I/O after close and bad names', async () => {
    const s = await FileStore.open({ dir, name: 'sdg', format: PLAIN });
    await s.close();
    await expect(s.read(0, 1)).rejects.toSatisfy((e) => isPvblkError(e, 'EBADF'));
    await expect(FileStore.open({ dir, name: '../x', format: PLAIN })).rejects.toSatisfy((e) =>
      isPvblkError(e, 'EUSAGE'),
    );
  });
});

describe('MemoryStore allocation', () => {
  it('costs nothing until written: a 1 GiB PI disk reads blank and allocates only the chunks written', async () => {
    const f: StoreFormat = { blockSize: 512, blocks: 2 * 1024 * 1024, pi: true };
    const s = new MemoryStore(f);
    expect(s.allocatedBytes).toBe(0);
    const far = await s.read(f.blocks - 2, 2);
    expect(far.data).toEqual(Buffer.alloc(1024));
    expect(far.pi).toEqual(Buffer.alloc(16, 0xff));
    expect(s.allocatedBytes).toBe(0);
    // a write across a chunk boundary (126 records of 520 bytes per 64 KiB chunk) makes two chunks
    await s.write(125, pattern(1024, 3), pattern(16, 4));
    expect(s.allocatedBytes).toBeGreaterThan(0);
    expect(s.allocatedBytes).toBeLessThanOrEqual(2 * 64 * 1024);
    expect(await s.read(125, 2)).toEqual({ data: pattern(1024, 3), pi: pattern(16, 4) });
    // the rest of both chunks is still a blank medium
    const around = await s.read(0, 1);
    expect(around.pi).toEqual(Buffer.alloc(8, 0xff));
    await s.close();
    expect(s.allocatedBytes).toBe(0);
    await expect(s.read(0, 1)).rejects.toSatisfy((e) => isPvblkError(e, 'EBADF'));
  });

  it('exposes the raw medium for corruption tests, interleaved as on a PI drive', async () => {
    const s = new MemoryStore(PI512);
    await s.write(5, pattern(512, 3), Buffer.from('0102030405060708', 'hex'));
    const raw = s.raw(5, 1);
    expect(raw.subarray(0, 512)).toEqual(pattern(512, 3));
    expect(raw.subarray(512)).toEqual(Buffer.from('0102030405060708', 'hex'));
    raw[512] ^= 0xff;
    s.patch(5, raw);
    expect((await s.read(5, 1)).pi).toEqual(Buffer.from('fe02030405060708', 'hex'));
    expect(() => s.patch(0, Buffer.alloc(100))).toThrow('whole 520-byte records');
  });
});
