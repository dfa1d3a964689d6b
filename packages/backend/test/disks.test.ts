import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isPvblkError, MemoryKernelLog } from '@pvblk/shared';
import { HostDisks, sdDevt, sdIndex, storageError } from '../src/disks.ts';

const MiB = 1 << 20;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pvblk-disks-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const disks = (o: Partial<ConstructorParameters<typeof HostDisks>[0]> = {}) =>
  new HostDisks({ dataDir: dir, klog: new MemoryKernelLog(), ...o });

async function caught(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a refusal');
}

describe('names and numbers as Linux gives them', () => {
  it('sd_format_disk_name inverted, sd_major and first_minor', () => {
    expect(sdIndex('sda')).toBe(0);
    expect(sdIndex('sdg')).toBe(6);
    expect(sdIndex('sdz')).toBe(25);
    expect(sdIndex('sdaa')).toBe(26);
    expect(sdIndex('sdzzz')).toBe(18277);
    expect(sdIndex('hda')).toBeNull();
    expect(sdDevt(6)).toEqual({ major: 8, minor: 96 }); // sdg is 8:96
    expect(sdDevt(16)).toEqual({ major: 65, minor: 0 }); // sdq: SCSI_DISK1_MAJOR
    expect(sdDevt(127)).toEqual({ major: 71, minor: 240 });
    expect(sdDevt(128)).toEqual({ major: 128, minor: 0 }); // SCSI_DISK8_MAJOR
    expect(sdDevt(256)).toEqual({ major: 8, minor: 256 }); // ext minors
  });
});

describe("a guest's disk", () => {
  it('is created once, then reopened with the same data and the parameters it was created with', async () => {
    const a = disks();
    const first = await a.attach('guest1', 'dif=1 dev_size_mb=4');
    expect(first.created).toBe(true);
    expect(first.disk.path).toBe('/dev/sdg');
    expect(first.disk.hctl).toBe('9:0:0:0');
    await first.disk.disk.target.store.write(7, Buffer.alloc(512, 0x5a), null);
    await a.closeAll();

    const b = disks();
    // keys not given keep the disk's values: no dif here, still dif=1 and 4 MiB
    const again = await b.attach('guest1', 'opts=0');
    expect(again.created).toBe(false);
    expect(again.disk.disk.target.params).toMatchObject({ dif: 1, dev_size_mb: 4 });
    expect((await again.disk.disk.target.store.read(7, 1)).data).toEqual(Buffer.alloc(512, 0x5a));
    await b.closeAll();
  });

  it('refuses an explicit load-time parameter that differs, naming both values and how to reset', async () => {
    const a = disks();
    await a.attach('guest', 'dif=1 opts=34');
    const err = await caught(a.attach('guest', 'dif=3 opts=2 dev_size_mb=16'));
    expect(isPvblkError(err, 'EEXIST')).toBe(true);
    expect(err.message).toBe(
      'EEXIST: the disk of guest guest (/dev/sdg) has dev_size_mb=8 dif=1; asked for dev_size_mb=16 dif=3. ' +
        'dev_size_mb, dif are fixed when a disk is created (scsi_debug module parameters): keep them out of --disk, ' +
        'or delete the disk and its data to create it anew (`pvblk disks rm guest`, DELETE /disks?guest=guest, with the guest stopped)',
    );
    // nothing was applied: opts is still 0x22
    expect(a.byGuest('guest')!.disk.target.params.opts).toBe(0x22);
    await a.closeAll();
  });

  it('applies runtime-writable parameters to the live disk and keeps them in the registry', async () => {
    const a = disks();
    const { disk } = await a.attach('guest', 'dif=1 opts=34');
    const r = await a.attach('guest', 'dif=1 opts=2 every_nth=5');
    expect(r.disk).toBe(disk); // the same live disk, not a new one
    expect(r.changes).toEqual([
      { key: 'opts', was: 0x22, now: 2 },
      { key: 'every_nth', was: 0, now: 5 },
    ]);
    expect(disk.disk.target.params).toMatchObject({ opts: 2, every_nth: 5 });
    expect(disk.params).toContain('opts=0x2 every_nth=5');
    const reg = JSON.parse(await readFile(join(dir, 'disks.json'), 'utf8')) as Record<
      string,
      { params: string }
    >;
    expect(reg.guest.params).toContain('opts=0x2 every_nth=5');
    const c = await a.setParam('/dev/sdg', 'delay', '0');
    expect(c).toEqual({ key: 'delay', was: 1, now: 0 });
    await a.closeAll();
    const b = disks();
    const [restored] = await b.restore();
    expect(restored.disk.target.params).toMatchObject({ opts: 2, every_nth: 5, delay: 0, dif: 1 });
    await b.closeAll();
  });

  it('leaves host_name and hctl to the host', async () => {
    const err = await caught(disks().attach('guest', 'host_name=sdb'));
    expect(err.message).toBe(
      'EINVAL: disk parameter "host_name" is the host\'s to choose (pvblk host --first-disk, --scsi-host)',
    );
  });

  it('is refused over the quotas, and nothing is registered for it', async () => {
    const a = disks({ quotas: { maxGuests: 8, maxDiskBytes: 16 * MiB, maxTotalDiskBytes: 24 * MiB } });
    expect((await caught(a.attach('big', 'dev_size_mb=17'))).message).toMatch(/^E2BIG: .*16 MiB per disk/);
    await a.attach('g1', 'dev_size_mb=16');
    expect((await caught(a.attach('g2', 'dev_size_mb=16'))).message).toMatch(
      /^ENOSPC: .*16 MiB of 24 MiB in use/,
    );
    await a.attach('g2', 'dev_size_mb=8');
    expect(a.usedBytes()).toBe(24 * MiB);
    expect(await a.has('big')).toBe(false);
    await a.closeAll();
  });

  it('is refused for a partition it cannot hold, and leaves no data behind', async () => {
    const misaligned = await caught(
      disks({ partitionStart: 9 }).attach('guest', 'sector_size=4096 dev_size_mb=1'),
    );
    expect(misaligned.message).toContain(
      'partition start 9 is not on a logical block (4096-byte blocks: a multiple of 8 sectors) of sdg',
    );
    const past = await caught(disks({ partitionStart: 2048 }).attach('guest', 'dev_size_mb=1'));
    expect(past.message).toContain(
      'partition start 2048 is past the last logical block (2048 sectors, 512-byte blocks) of sdg',
    );
    // the refused disk's image was removed with its entry: a later disk of that guest starts blank
    expect(existsSync(join(dir, 'disks', 'sdg.img'))).toBe(false);
    expect(JSON.parse(await readFile(join(dir, 'disks.json'), 'utf8'))).toEqual({});
    const { disk } = await disks({ partitionStart: 2040 }).attach('guest', 'dev_size_mb=1');
    expect(disk.vbd.startSector).toBe(2040);
  });

  it('is deleted with its data; the name is then free and gets a new, blank disk', async () => {
    const a = disks();
    const { disk } = await a.attach('guest', 'dif=1');
    await disk.disk.target.store.write(0, Buffer.alloc(512, 1), null);
    expect(existsSync(join(dir, 'disks', 'sdg.img'))).toBe(true);
    expect(await a.remove('guest')).toEqual({ path: '/dev/sdg' });
    expect(existsSync(join(dir, 'disks', 'sdg.img'))).toBe(false);
    expect(await a.has('guest')).toBe(false);
    const fresh = await a.attach('guest', 'dif=3');
    expect(fresh.created).toBe(true);
    expect((await fresh.disk.disk.target.store.read(0, 1)).data).toEqual(Buffer.alloc(512));
    expect((await caught(a.remove('nobody'))).message).toBe('ENOENT: guest nobody has no disk on this host');
    await a.closeAll();
  });

  it('starts at the configured SCSI host and disk name, and existing disks keep theirs', async () => {
    const a = disks();
    await a.attach('old', '');
    await a.closeAll();
    const b = disks({ layout: { firstScsiHost: 2, firstDisk: 'sdb' } });
    await b.restore();
    const n = await b.attach('new', '');
    expect(n.disk.path).toBe('/dev/sdb');
    expect(n.disk.hctl).toBe('2:0:0:0');
    expect(n.disk.major).toBe(8);
    expect(n.disk.minor).toBe(16);
    expect(b.byGuest('old')!.path).toBe('/dev/sdg');
    await b.closeAll();
    expect(() => disks({ layout: { firstScsiHost: 9, firstDisk: 'hda' } })).toThrow(
      'the first disk must be named sda … sdzzz (got "hda")',
    );
  });

  it('reads a registry written before the layout was configurable (slots only)', async () => {
    await writeFile(
      join(dir, 'disks.json'),
      JSON.stringify({ a: { slot: 0, params: 'dif=1' }, b: { slot: 2, params: '' } }),
    );
    const a = disks();
    const restored = await a.restore();
    expect(restored.map((d) => [d.guest, d.path, d.hctl])).toEqual([
      ['a', '/dev/sdg', '9:0:0:0'],
      ['b', '/dev/sdi', '11:0:0:0'],
    ]);
    // the next disk takes the free slot between them
    expect((await a.attach('c', '')).disk.path).toBe('/dev/sdh');
    await a.closeAll();
  });

  it('is a guest name like any other when the name is one every object inherits', async () => {
    // valid guest names (A-Z a-z 0-9 _ . -); "constructor" found Object's and failed, "__proto__" set
    // the registry's prototype instead of an entry
    const a = disks();
    expect(await a.has('constructor')).toBe(false);
    const c = await a.attach('constructor', 'dif=1');
    const p = await a.attach('__proto__', '');
    expect([c.created, p.created]).toEqual([true, true]);
    expect([c.disk.path, p.disk.path]).toEqual(['/dev/sdg', '/dev/sdh']);
    expect(await a.has('__proto__')).toBe(true);
    expect(await a.has('toString')).toBe(false);
    await a.closeAll();
    // both are in the file and come back after a restart
    const b = disks();
    expect((await b.restore()).map((d) => [d.guest, d.path])).toEqual([
      ['constructor', '/dev/sdg'],
      ['__proto__', '/dev/sdh'],
    ]);
    expect(await b.remove('__proto__')).toEqual({ path: '/dev/sdh' });
    expect((await caught(b.remove('hasOwnProperty'))).message).toBe(
      'ENOENT: guest hasOwnProperty has no disk on this host',
    );
    await b.closeAll();
  });

  it('keeps every disk of attaches made at once in the registry file', async () => {
    // each attach writes the registry through one temporary file: overlapping writes lost the rename
    const a = disks();
    const names = Array.from({ length: 12 }, (_, i) => `g${i}`);
    const done = await Promise.allSettled(names.map((n) => a.attach(n, 'dev_size_mb=1')));
    expect(done.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(Object.keys(JSON.parse(await readFile(join(dir, 'disks.json'), 'utf8'))).sort()).toEqual(
      [...names].sort(),
    );
    await a.closeAll();
    const b = disks();
    expect((await b.restore()).map((d) => d.guest).sort()).toEqual([...names].sort());
    await b.closeAll();
  });

  it('refuses a corrupt registry instead of handing its disks out again', async () => {
    await writeFile(join(dir, 'disks.json'), '{ not json');
    expect((await caught(disks().attach('g', ''))).message).toMatch(
      /^EINVAL: the disk registry .*disks\.json is not JSON/,
    );
  });
});

describe('storage errors', () => {
  it('a full device: ENOSPC with the path (the registry is written through /dev/full)', async () => {
    // the registry's temporary file (replaceFile: `<path>.tmp`) is the full device
    await symlink('/dev/full', join(dir, 'disks.json.tmp'));
    const err = await caught(disks().attach('g', ''));
    expect(isPvblkError(err, 'ENOSPC')).toBe(true);
    expect(err.message).toBe(
      `ENOSPC: cannot write the disk registry: ${join(dir, 'disks.json')}: no space left on device (ENOSPC)`,
    );
  });

  it('a read-only file system: EROFS with the path; other errors EIO, never a bare Node message', () => {
    const erofs = Object.assign(new Error("EROFS: read-only file system, open '/data/disks/sdg.img'"), {
      code: 'EROFS',
      errno: -30,
      syscall: 'open',
      path: '/data/disks/sdg.img',
    });
    expect((storageError(erofs, 'cannot create the disk of guest g', '/x') as Error).message).toBe(
      'EROFS: cannot create the disk of guest g: /data/disks/sdg.img: read-only file system (EROFS)',
    );
    const perm = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    expect((storageError(perm, 'cannot write the disk registry', '/d/disks.json') as Error).message).toBe(
      'EIO: cannot write the disk registry: /d/disks.json: permission denied (EACCES)',
    );
  });
});

describe('memory disks', () => {
  it('cost only what is written: a 1 GiB disk allocates nothing until a guest writes', async () => {
    const a = new HostDisks({ dataDir: null, klog: new MemoryKernelLog() });
    const { disk } = await a.attach('guest', 'dev_size_mb=1024 dif=1');
    const store = disk.disk.target.store as unknown as { allocatedBytes: number };
    expect(store.allocatedBytes).toBe(0);
    await disk.disk.target.store.write(1000, Buffer.alloc(4096, 7), null);
    expect(store.allocatedBytes).toBeGreaterThan(0);
    expect(store.allocatedBytes).toBeLessThanOrEqual(2 * 64 * 1024);
    await a.remove('guest');
    expect(store.allocatedBytes).toBe(0);
  });
});
