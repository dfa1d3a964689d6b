/**
 * GuestFs: block devices through the page cache, character devices, host files confined to the
 * guest root, the sysfs subset — and the seed transcript with the real dd on top of the real
 * block layer (fake driver below).
 */
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryKernelLog } from '@pvblk/shared';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlockDeviceCache } from '../src/block/page-cache.ts';
import { GuestBlockQueue } from '../src/block/queue.ts';
import { dd } from '../src/guest/dd.ts';
import { GuestFs } from '../src/guest/guest-vfs.ts';
import type { GuestFile, GuestVfs, IoResult, OpenFlags } from '../src/guest/vfs.ts';
import { FakeDriver, TYPE1_CRC, type FakeDriverOptions } from './block/fake-driver.ts';

let root: string;

beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'pvblk-guestfs-'));
  await fsp.mkdir(path.join(root, 'tmp'));
});

afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

function setup(opts: FakeDriverOptions = {}): {
  vfs: GuestFs;
  driver: FakeDriver;
  log: MemoryKernelLog;
  q: GuestBlockQueue;
} {
  const driver = new FakeDriver(opts);
  const log = new MemoryKernelLog();
  const q = new GuestBlockQueue(driver, log);
  const vfs = new GuestFs(root);
  vfs.registerBlockDevice('xvda', q, new BlockDeviceCache(q, log));
  return { vfs, driver, log, q };
}

async function open(vfs: GuestVfs, p: string, flags: OpenFlags): Promise<GuestFile> {
  const f = await vfs.open(p, flags);
  if ('errno' in f) throw new Error(`open ${p}: ${f.errno}`);
  return f;
}

async function readAll(vfs: GuestVfs, p: string): Promise<string> {
  const f = await open(vfs, p, { read: true, write: false });
  const buf = Buffer.alloc(4096);
  const r = await f.pread(buf, 0);
  await f.close();
  if (!r.ok) throw new Error(`read ${p}: ${r.errno}`);
  return buf.subarray(0, r.n).toString('latin1');
}

async function writeStr(vfs: GuestVfs, p: string, s: string): Promise<IoResult> {
  const f = await open(vfs, p, { read: false, write: true });
  const r = await f.pwrite(Buffer.from(s, 'latin1'), 0);
  await f.close();
  return r;
}

const RW: OpenFlags = { read: true, write: true };

describe('seed scenario through GuestFs', () => {
  it('dd if=/dev/zero of=/dev/xvda: EIO at sector 4656, exactly one end_request line', async () => {
    const { vfs, driver, log } = setup({ capacity: 16384 });
    driver.failWhen({ op: 'read', from: 4660, to: 4669, status: 'ioerr' });
    const T0 = 5_000_000_000n;
    const times = [T0, T0 + 76_786_600_000n];
    let i = 0;
    let stdout = '';
    let stderr = '';
    const status = await dd(
      ['dd', 'if=/dev/zero', 'of=/dev/xvda'],
      { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), signal: new AbortController().signal },
      { vfs, now: () => times[Math.min(i++, times.length - 1)] },
    );
    expect({ status, stdout, stderr }).toEqual({
      status: 1,
      stdout: '',
      stderr:
        "dd: writing to `/dev/xvda': Input/output error\n" +
        '4657+0 records in\n' +
        '4656+0 records out\n' +
        '2383872 bytes (2.4 MB) copied, 76.7866 s, 31.0 kB/s\n',
    });
    expect(log.lines()).toEqual(['end_request: I/O error, dev xvda, sector 4656']);
    // dd's close was the last one: the 4656 good sectors were written back.
    expect(driver.ranges('write').reduce((n, [, s]) => n + s, 0)).toBe(4656);
    expect(driver.requests.some((r) => r.op === 'write' && r.sector + r.nrSectors > 4656)).toBe(false);
  });

  it('the same with pwrite calls: 4656 writes succeed, the 4657th fails with EIO', async () => {
    const { vfs, driver, log } = setup({ capacity: 16384 });
    driver.failWhen({ op: 'read', from: 4660, to: 4669, status: 'ioerr' });
    const f = await open(vfs, '/dev/xvda', { read: false, write: true, create: true, truncate: true });
    expect(f.kind).toBe('blockdev');
    expect(f.size()).toBe(8 * 1024 * 1024);
    const zeros = Buffer.alloc(512);
    for (let k = 0; k < 4656; k++) {
      const r = await f.pwrite(zeros, k * 512);
      if (!r.ok) throw new Error(`write ${k}: ${r.errno}`);
    }
    expect(await f.pwrite(zeros, 4656 * 512)).toEqual({ ok: false, errno: 'EIO' });
    expect(log.lines()).toEqual(['end_request: I/O error, dev xvda, sector 4656']);
    expect(await f.close()).toEqual({ ok: true, n: 0 });
  });
});

describe('block devices', () => {
  it('O_DIRECT needs aligned offsets and lengths; O_SYNC writes are flushed', async () => {
    const { vfs, driver } = setup();
    const d = await open(vfs, '/dev/xvda', { read: true, write: true, direct: true });
    expect(await d.pwrite(Buffer.alloc(100), 0)).toEqual({ ok: false, errno: 'EINVAL' });
    expect(await d.pwrite(Buffer.alloc(512, 3), 512)).toEqual({ ok: true, n: 512 });
    expect(driver.ranges('write')).toEqual([[1, 1]]);
    await d.close();
    const s = await open(vfs, '/dev/xvda', { read: false, write: true, sync: true });
    expect(await s.pwrite(Buffer.alloc(4096, 4), 8192)).toEqual({ ok: true, n: 4096 });
    expect(driver.ranges('write')).toEqual([
      [1, 1],
      [16, 8],
    ]);
    expect(driver.ranges('flush')).toEqual([[0, 0]]);
    await s.close();
  });

  it('a read-only open cannot write, a closed file is EBADF', async () => {
    const { vfs } = setup();
    const f = await open(vfs, '/dev/xvda', { read: true, write: false });
    expect(await f.pwrite(Buffer.alloc(512), 0)).toEqual({ ok: false, errno: 'EBADF' });
    await f.close();
    expect(await f.pread(Buffer.alloc(512), 0)).toEqual({ ok: false, errno: 'EBADF' });
    expect(await f.close()).toEqual({ ok: false, errno: 'EBADF' });
  });

  it('close(2) succeeds even when the last-close writeback fails (blkdev_close returns 0)', async () => {
    const { vfs, driver, log } = setup();
    driver.failWhen({ op: 'write', from: 0, to: 7, status: 'ioerr' });
    const f = await open(vfs, '/dev/xvda', RW);
    await f.pwrite(Buffer.alloc(4096, 1), 0);
    expect(await f.close()).toEqual({ ok: true, n: 0 });
    expect(log.lines()).toContain('lost page write due to I/O error on xvda');
  });

  it('unknown devices do not exist', async () => {
    const { vfs } = setup();
    expect(await vfs.open('/dev/xvdb', RW)).toEqual({ errno: 'ENOENT' });
    expect(await vfs.open('/dev', RW)).toEqual({ errno: 'EISDIR' });
    // names every object inherits are not devices
    const RO = { read: true, write: false };
    for (const name of ['constructor', 'toString', '__proto__']) {
      expect(await vfs.open(`/dev/${name}`, RO)).toEqual({ errno: 'ENOENT' });
      expect(await vfs.open(`/dev/${name}/x`, RO)).toEqual({ errno: 'ENOENT' });
    }
  });
});

describe('character devices', () => {
  it('/dev/zero, /dev/null, /dev/full, /dev/urandom', async () => {
    const { vfs } = setup();
    const buf = Buffer.alloc(64, 9);
    const zero = await open(vfs, '/dev/zero', RW);
    expect(zero.kind).toBe('chardev');
    expect(zero.size()).toBeNull();
    expect(await zero.pread(buf, 0)).toEqual({ ok: true, n: 64 });
    expect(buf.every((b) => b === 0)).toBe(true);
    expect(await zero.pwrite(buf, 0)).toEqual({ ok: true, n: 64 });
    expect(await zero.fsync()).toEqual({ ok: false, errno: 'EINVAL' });
    const nul = await open(vfs, '/dev/null', RW);
    expect(await nul.pread(buf, 0)).toEqual({ ok: true, n: 0 });
    expect(await nul.pwrite(buf, 0)).toEqual({ ok: true, n: 64 });
    const full = await open(vfs, '/dev/full', RW);
    expect(await full.pwrite(buf, 0)).toEqual({ ok: false, errno: 'ENOSPC' });
    buf.fill(1);
    expect(await full.pread(buf, 0)).toEqual({ ok: true, n: 64 });
    expect(buf.every((b) => b === 0)).toBe(true);
    const rnd = await open(vfs, '/dev/urandom', { read: true, write: false });
    await rnd.pread(buf, 0);
    expect(buf.some((b) => b !== 0)).toBe(true);
    expect(await vfs.open('/dev/zero', { read: true, write: false, direct: true })).toEqual({
      errno: 'EINVAL',
    });
  });
});

describe('ordinary files under the guest root', () => {
  it('create, write, read back, truncate', async () => {
    const { vfs } = setup();
    expect(await vfs.open('/tmp/a', RW)).toEqual({ errno: 'ENOENT' });
    const f = await open(vfs, '/tmp/a', { ...RW, create: true });
    expect(f.kind).toBe('file');
    expect(await f.pwrite(Buffer.from('hello'), 0)).toEqual({ ok: true, n: 5 });
    expect(f.size()).toBe(5);
    await f.close();
    expect(await fsp.readFile(path.join(root, 'tmp/a'), 'latin1')).toBe('hello');
    expect(await readAll(vfs, '/tmp/a')).toBe('hello');
    const t = await open(vfs, '/tmp/a', { read: false, write: true, truncate: true });
    expect(t.size()).toBe(0);
    await t.close();
    expect(await vfs.open('/nodir/a', { ...RW, create: true })).toEqual({ errno: 'ENOENT' });
  });

  it('.. cannot leave the root, nor can a symlink', async () => {
    const { vfs } = setup();
    const f = await open(vfs, '/../../tmp/b', { ...RW, create: true });
    await f.close();
    expect((await fsp.stat(path.join(root, 'tmp/b'))).isFile()).toBe(true);
    await fsp.symlink(os.tmpdir(), path.join(root, 'escape'));
    expect(await vfs.open('/escape/x', { ...RW, create: true })).toEqual({ errno: 'EACCES' });
  });

  it("dd's seek= truncates with ftruncate: a file grows with a hole and is cut without being read", async () => {
    const vfs = new GuestFs(root);
    const run = async (line: string) => {
      let err = '';
      const status = await dd(
        line.split(' '),
        { stdout: () => {}, stderr: (t) => (err += t), signal: new AbortController().signal },
        { vfs, now: () => 0n },
      );
      return { status, err };
    };
    // ten GiB and a byte: it put 10 GiB of zeros on the host's disk, and seek=1P 80 GB, before
    expect((await run('dd if=/dev/zero of=/tmp/s bs=1 count=1 seek=10G status=none')).status).toBe(0);
    const st = await fsp.stat(path.join(root, 'tmp/s'));
    expect(st.size).toBe(10 * 1024 ** 3 + 1);
    expect(st.blocks * 512).toBeLessThan(1024 * 1024);
    // cut to 1 MiB: no read of the part kept (it read all of it into one buffer)
    expect((await run('dd if=/dev/zero of=/tmp/s bs=1M count=0 seek=1 status=none')).status).toBe(0);
    expect((await fsp.stat(path.join(root, 'tmp/s'))).size).toBe(1024 * 1024);
    // 1 PiB: a hole where the host's file system allows one (tmpfs, xfs), its own error where it
    // does not (ext4's 16 TiB: EFBIG), as dd says on Linux — never data written
    const big = await run('dd if=/dev/zero of=/tmp/p bs=1 count=1 seek=1P status=none');
    if (big.status === 0) {
      expect((await fsp.stat(path.join(root, 'tmp/p'))).blocks * 512).toBeLessThan(1024 * 1024);
    } else {
      expect(big.err).toBe(
        "dd: failed to truncate to 1125899906842624 bytes in output file `/tmp/p': File too large\n",
      );
    }
  });

  it("the guest's files take at most their bound of the host's disk: past it writes fail with ENOSPC", async () => {
    const MiB = 1024 * 1024;
    const vfs = new GuestFs(root, 4 * MiB);
    let err = '';
    const status = await dd(
      ['dd', 'if=/dev/zero', 'of=/tmp/big', 'bs=1M', 'count=64'],
      { stdout: () => {}, stderr: (t) => (err += t), signal: new AbortController().signal },
      { vfs, now: () => 0n },
    );
    expect(status).toBe(1);
    expect(err).toMatch(/^dd: writing `\/tmp\/big': No space left on device\n/);
    // measured after each MiB a handle writes: over by at most one write
    const used = await vfs.space.used();
    expect(used).toBeGreaterThanOrEqual(3 * MiB);
    expect(used).toBeLessThanOrEqual(5 * MiB + 64 * 1024);
    // removing the file gives the space back
    await fsp.rm(path.join(root, 'tmp/big'));
    const f = await open(vfs, '/tmp/small', { ...RW, create: true });
    expect(await f.pwrite(Buffer.alloc(MiB), 0)).toEqual({ ok: true, n: MiB });
    await f.close();
  });

  it('directories: EISDIR for writing and for reading', async () => {
    const { vfs } = setup();
    expect(await vfs.open('/tmp', RW)).toEqual({ errno: 'EISDIR' });
    const d = await open(vfs, '/tmp', { read: true, write: false });
    expect(await d.pread(Buffer.alloc(1), 0)).toEqual({ ok: false, errno: 'EISDIR' });
    await fsp.writeFile(path.join(root, 'tmp/f'), 'x');
    expect(await vfs.open('/tmp/f/', { read: true, write: false })).toEqual({ errno: 'ENOTDIR' });
  });
});

describe('sysfs', () => {
  it('geometry and queue limits', async () => {
    const { vfs } = setup({ capacity: 16384 });
    expect(await readAll(vfs, '/sys/block/xvda/size')).toBe('16384\n');
    expect(await readAll(vfs, '/sys/block/xvda/ro')).toBe('0\n');
    expect(await readAll(vfs, '/sys/block/xvda/queue/logical_block_size')).toBe('512\n');
    expect(await readAll(vfs, '/sys/block/xvda/queue/physical_block_size')).toBe('512\n');
    expect(await readAll(vfs, '/sys/block/xvda/queue/max_hw_sectors_kb')).toBe('44\n');
    expect(await readAll(vfs, '/sys/block/xvda/queue/max_segments')).toBe('11\n');
    expect(await readAll(vfs, '/sys/block/xvda/queue/max_sectors_kb')).toBe('44\n');
    expect(await writeStr(vfs, '/sys/block/xvda/queue/max_sectors_kb', '8\n')).toEqual({ ok: true, n: 2 });
    expect(await readAll(vfs, '/sys/block/xvda/queue/max_sectors_kb')).toBe('8\n');
    expect(await writeStr(vfs, '/sys/block/xvda/queue/max_sectors_kb', '64')).toEqual({
      ok: false,
      errno: 'EINVAL',
    });
    expect((await readAll(vfs, '/sys/block/xvda/stat')).split(/\s+/).filter((x) => x).length).toBe(11);
  });

  it('integrity files without a profile', async () => {
    const { vfs } = setup();
    expect(await readAll(vfs, '/sys/block/xvda/integrity/format')).toBe('none\n');
    expect(await readAll(vfs, '/sys/block/xvda/integrity/tag_size')).toBe('0\n');
    expect(await readAll(vfs, '/sys/block/xvda/integrity/protection_interval_bytes')).toBe('0\n');
    expect(await readAll(vfs, '/sys/block/xvda/integrity/device_is_integrity_capable')).toBe('0\n');
  });

  it('integrity files with a profile; read_verify/write_generate switch the queue', async () => {
    const { vfs, q } = setup({ integrity: TYPE1_CRC });
    expect(await readAll(vfs, '/sys/block/xvda/integrity/format')).toBe('T10-DIF-TYPE1-CRC\n');
    expect(await readAll(vfs, '/sys/block/xvda/integrity/protection_interval_bytes')).toBe('512\n');
    expect(await readAll(vfs, '/sys/block/xvda/integrity/device_is_integrity_capable')).toBe('1\n');
    expect(await readAll(vfs, '/sys/block/xvda/integrity/read_verify')).toBe('1\n');
    expect(await writeStr(vfs, '/sys/block/xvda/integrity/read_verify', '0\n')).toEqual({ ok: true, n: 2 });
    expect(q.readVerify).toBe(false);
    expect(await readAll(vfs, '/sys/block/xvda/integrity/read_verify')).toBe('0\n');
    expect(await writeStr(vfs, '/sys/block/xvda/integrity/write_generate', '0')).toEqual({ ok: true, n: 1 });
    expect(q.writeGenerate).toBe(false);
    expect(await writeStr(vfs, '/sys/block/xvda/integrity/write_generate', '2')).toEqual({ ok: true, n: 1 });
    expect(q.writeGenerate).toBe(true);
    expect(await writeStr(vfs, '/sys/block/xvda/integrity/write_generate', 'yes')).toEqual({
      ok: false,
      errno: 'EINVAL',
    });
    expect(q.writeGenerate).toBe(true);
  });

  it('read-only attributes refuse write opens; directories and unknown names', async () => {
    const { vfs } = setup();
    expect(await vfs.open('/sys/block/xvda/integrity/format', RW)).toEqual({ errno: 'EACCES' });
    expect(await vfs.open('/sys/block/xvda/size', { read: false, write: true })).toEqual({ errno: 'EACCES' });
    expect(await vfs.open('/sys/block/xvda/queue', RW)).toEqual({ errno: 'EISDIR' });
    expect(await vfs.open('/sys/block/xvda/nope', RW)).toEqual({ errno: 'ENOENT' });
    for (const name of ['constructor', 'toString', '__proto__'])
      expect(await vfs.open(`/sys/block/xvda/${name}`, { read: true, write: false })).toEqual({
        errno: 'ENOENT',
      });
    expect(await vfs.open('/sys/block/xvdz/size', { read: true, write: false })).toEqual({ errno: 'ENOENT' });
  });
});
