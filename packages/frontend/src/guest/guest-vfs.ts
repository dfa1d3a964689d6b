/**
 * The guest's VFS: what guest tools see when they open a path.
 *
 * - `/dev/<disk>` for each registered block device: buffered I/O through its BlockDeviceCache,
 *   O_DIRECT through the cache's direct path, O_SYNC as a range fsync after each write. close(2)
 *   returns 0 even when the last-close writeback failed, as blkdev_close() does (the kernel log
 *   has the "lost page write" lines).
 * - `/dev/zero`, `/dev/null`, `/dev/full` (writes fail with ENOSPC), `/dev/urandom`: character
 *   devices; O_DIRECT on them fails with EINVAL at open and fsync with EINVAL, as in Linux.
 * - `/sys/block/<disk>/...`: a small sysfs. Attribute values end with a newline; opening a read-only
 *   attribute for writing fails with EACCES (kernfs_fop_open without ->store); a store that does not
 *   parse fails with EINVAL (kstrtoul).
 * - Every other path is an ordinary file or directory under the guest root directory on the host.
 *   Paths are resolved lexically against `/`, so `..` cannot climb above the root, and a symlink
 *   that leads outside the root is refused with EACCES. O_DIRECT is accepted and ignored there
 *   (host file systems differ in what they allow).
 */
import { randomFillSync } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { BlockDeviceCache } from '../block/page-cache.ts';
import type { GuestBlockQueue } from '../block/queue.ts';
import type { Errno, GuestFile, GuestVfs, IoResult, OpenFlags } from './vfs.ts';

const ok = (n: number): IoResult => ({ ok: true, n });
const fail = (errno: Errno): IoResult => ({ ok: false, errno });

interface BlockDevice {
  queue: GuestBlockQueue;
  cache: BlockDeviceCache;
}

/** A sysfs attribute: `show` renders the file, `store` (writable attributes only) parses a write. */
interface Attribute {
  show(): string;
  store?(text: string): Errno | null;
}

type SysNode = { kind: 'dir' } | { kind: 'attr'; attr: Attribute };

export class GuestFs implements GuestVfs {
  private readonly disks = new Map<string, BlockDevice>();
  private realRoot: string | null = null;

  /** `root`: the host directory that is the guest's `/` for ordinary files. */
  constructor(readonly root: string) {}

  registerBlockDevice(name: string, queue: GuestBlockQueue, cache: BlockDeviceCache): void {
    this.disks.set(name, { queue, cache });
  }

  /** del_gendisk: the device leaves /dev and /sys/block (hot-unplug). */
  unregisterBlockDevice(name: string): void {
    this.disks.delete(name);
  }

  async open(guestPath: string, flags: OpenFlags): Promise<GuestFile | { errno: Errno }> {
    const p = path.posix.resolve('/', guestPath);
    const trailingSlash = guestPath.length > 1 && guestPath.endsWith('/');
    if (p === '/dev' || p.startsWith('/dev/')) return this.openDev(p, flags, trailingSlash);
    if (p === '/sys' || p.startsWith('/sys/')) return this.openSys(p, flags, trailingSlash);
    return this.openHost(p, flags, trailingSlash);
  }

  // --- /dev ------------------------------------------------------------------------------------

  private openDev(p: string, flags: OpenFlags, trailingSlash: boolean): GuestFile | { errno: Errno } {
    if (p === '/dev') return flags.write ? { errno: 'EISDIR' } : new DirectoryFile(p);
    const name = p.slice('/dev/'.length);
    const disk = this.disks.get(name);
    if (disk) {
      if (trailingSlash) return { errno: 'ENOTDIR' };
      disk.cache.open();
      return new BlockDevFile(p, disk, flags);
    }
    const kind = CHAR_DEVICES[name];
    if (!kind) return { errno: 'ENOENT' };
    if (trailingSlash) return { errno: 'ENOTDIR' };
    // No ->direct_IO on a character device: open(O_DIRECT) fails.
    if (flags.direct) return { errno: 'EINVAL' };
    return new CharDevFile(p, kind, flags);
  }

  // --- /sys ------------------------------------------------------------------------------------

  private openSys(p: string, flags: OpenFlags, trailingSlash: boolean): GuestFile | { errno: Errno } {
    const node = this.sysNode(p);
    if (!node) return { errno: 'ENOENT' };
    if (node.kind === 'dir') return flags.write ? { errno: 'EISDIR' } : new DirectoryFile(p);
    if (trailingSlash) return { errno: 'ENOTDIR' };
    if (flags.write && !node.attr.store) return { errno: 'EACCES' };
    return new SysfsFile(p, node.attr, flags);
  }

  private sysNode(p: string): SysNode | null {
    const parts = p.split('/').filter((x) => x);
    if (parts.length <= 2 && parts[0] === 'sys' && (parts.length === 1 || parts[1] === 'block')) {
      return { kind: 'dir' };
    }
    if (parts[1] !== 'block') return null;
    const disk = this.disks.get(parts[2]);
    if (!disk) return null;
    const rest = parts.slice(3).join('/');
    if (rest === '' || rest === 'queue' || rest === 'integrity') return { kind: 'dir' };
    const attr = diskAttributes(disk)[rest];
    return attr ? { kind: 'attr', attr } : null;
  }

  // --- ordinary files --------------------------------------------------------------------------

  private async openHost(
    p: string,
    flags: OpenFlags,
    trailingSlash: boolean,
  ): Promise<GuestFile | { errno: Errno }> {
    try {
      const root = await this.rootDir();
      const host = path.join(root, p);
      let st = await fsp.stat(host).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return null;
        throw e;
      });
      // Confinement: what the path really names (after symlinks) must stay under the root.
      const probe = st ? host : path.dirname(host);
      const real = await fsp.realpath(probe).catch(() => null);
      if (real && real !== root && !real.startsWith(root + path.sep)) return { errno: 'EACCES' };
      if (st?.isDirectory()) return flags.write ? { errno: 'EISDIR' } : new DirectoryFile(p);
      if (st && trailingSlash) return { errno: 'ENOTDIR' };
      if (!st && trailingSlash) return { errno: flags.create ? 'EISDIR' : 'ENOENT' };
      if (!st && !flags.create) return { errno: 'ENOENT' };
      let mode = flags.write ? (flags.read ? fsc.O_RDWR : fsc.O_WRONLY) : fsc.O_RDONLY;
      if (flags.create) mode |= fsc.O_CREAT;
      if (flags.truncate && flags.write) mode |= fsc.O_TRUNC;
      const fh = await fsp.open(host, mode, 0o644);
      st = await fh.stat();
      return new HostFile(p, fh, st.size, flags);
    } catch (e) {
      return { errno: toErrno(e) };
    }
  }

  private async rootDir(): Promise<string> {
    this.realRoot ??= await fsp.realpath(this.root);
    return this.realRoot;
  }
}

// --- sysfs attributes ----------------------------------------------------------------------------

function diskAttributes(d: BlockDevice): Record<string, Attribute> {
  const q = d.queue;
  const ro = (f: () => string | number): Attribute => ({ show: () => `${f()}\n` });
  const flag = (get: () => boolean, set: (v: boolean) => void): Attribute => ({
    show: () => `${get() ? 1 : 0}\n`,
    store: (text) => {
      const v = kstrtoul(text);
      if (v === null) return 'EINVAL';
      set(v !== 0n);
      return null;
    },
  });
  const bi = (): ReturnType<GuestBlockQueue['integrity']> => q.integrity();
  return {
    size: ro(() => q.capacity()),
    ro: ro(() => (q.driver.readOnly ? 1 : 0)),
    stat: { show: () => q.statLine() },
    'queue/logical_block_size': ro(() => q.limits().logicalBlockSize),
    'queue/physical_block_size': ro(() => q.limits().physicalBlockSize),
    'queue/hw_sector_size': ro(() => q.limits().logicalBlockSize),
    'queue/max_hw_sectors_kb': ro(() => q.limits().maxHwSectors >> 1),
    'queue/max_sectors_kb': {
      show: () => `${q.maxSectors >> 1}\n`,
      store: (text) => {
        const v = kstrtoul(text);
        return v !== null && v <= BigInt(Number.MAX_SAFE_INTEGER) && q.setMaxSectorsKb(Number(v))
          ? null
          : 'EINVAL';
      },
    },
    'queue/max_segments': ro(() => q.limits().maxSegments),
    'queue/max_segment_size': ro(() => q.limits().maxSegmentSize),
    'queue/discard_max_bytes': ro(() => (q.limits().discard?.maxSectors ?? 0) * 512),
    'queue/discard_granularity': ro(() => q.limits().discard?.granularity ?? 0),
    // blk-integrity.c: `format` is "none" without a profile (tuple_size 0).
    'integrity/format': ro(() => bi()?.name ?? 'none'),
    'integrity/tag_size': ro(() => bi()?.tagSize ?? 0),
    'integrity/protection_interval_bytes': ro(() => bi()?.interval ?? 0),
    // The contract has no DEVICE_CAPABLE bit: a profile offered by blkfront means the backend
    // stores PI with the data, which is what the flag says.
    'integrity/device_is_integrity_capable': ro(() => (bi() ? 1 : 0)),
    'integrity/read_verify': flag(
      () => q.readVerify,
      (v) => (q.readVerify = v),
    ),
    'integrity/write_generate': flag(
      () => q.writeGenerate,
      (v) => (q.writeGenerate = v),
    ),
  };
}

/** kstrtoul(s, 10): digits with an optional leading '+' and one trailing newline; null if invalid. */
function kstrtoul(text: string): bigint | null {
  const m = /^\+?(\d+)\n?$/.exec(text);
  if (!m) return null;
  const v = BigInt(m[1]);
  return v > (1n << 64n) - 1n ? null : v;
}

// --- files ---------------------------------------------------------------------------------------

abstract class OpenFile implements GuestFile {
  abstract readonly kind: GuestFile['kind'];
  protected closed = false;

  constructor(
    readonly path: string,
    protected readonly flags: OpenFlags,
  ) {}

  abstract size(): number | null;
  protected abstract doRead(buf: Uint8Array, offset: number): Promise<IoResult>;
  protected abstract doWrite(buf: Uint8Array, offset: number): Promise<IoResult>;
  protected abstract doFsync(): Promise<IoResult>;
  protected abstract doClose(): Promise<IoResult>;

  async pread(buf: Uint8Array, offset: number): Promise<IoResult> {
    if (this.closed || !this.readable()) return fail('EBADF');
    if (offset < 0) return fail('EINVAL');
    return this.doRead(buf, offset);
  }

  async pwrite(buf: Uint8Array, offset: number): Promise<IoResult> {
    if (this.closed || !this.flags.write) return fail('EBADF');
    if (offset < 0) return fail('EINVAL');
    return this.doWrite(buf, offset);
  }

  async fsync(): Promise<IoResult> {
    if (this.closed) return fail('EBADF');
    return this.doFsync();
  }

  async close(): Promise<IoResult> {
    if (this.closed) return fail('EBADF');
    this.closed = true;
    return this.doClose();
  }

  /** O_RDONLY is 0: a file opened with neither flag is readable. */
  private readable(): boolean {
    return this.flags.read || !this.flags.write;
  }
}

class BlockDevFile extends OpenFile {
  readonly kind = 'blockdev' as const;

  constructor(
    p: string,
    private readonly disk: BlockDevice,
    flags: OpenFlags,
  ) {
    super(p, flags);
  }

  size(): number {
    return this.disk.cache.size();
  }

  protected doRead(buf: Uint8Array, offset: number): Promise<IoResult> {
    return this.flags.direct ? this.disk.cache.directRead(buf, offset) : this.disk.cache.pread(buf, offset);
  }

  protected async doWrite(buf: Uint8Array, offset: number): Promise<IoResult> {
    const c = this.disk.cache;
    const r = this.flags.direct ? await c.directWrite(buf, offset) : await c.pwrite(buf, offset);
    if (!r.ok || !this.flags.sync || r.n === 0) return r;
    // generic_write_sync(): an O_SYNC write is durable before it returns, or reports why not.
    const s = await c.fsync({ off: offset, len: r.n });
    return s.ok ? r : s;
  }

  protected doFsync(): Promise<IoResult> {
    return this.disk.cache.fsync();
  }

  protected async doClose(): Promise<IoResult> {
    await this.disk.cache.close();
    return ok(0);
  }
}

type CharKind = 'zero' | 'null' | 'full' | 'urandom';
const CHAR_DEVICES: Record<string, CharKind | undefined> = {
  zero: 'zero',
  null: 'null',
  full: 'full',
  urandom: 'urandom',
  random: 'urandom',
};

class CharDevFile extends OpenFile {
  readonly kind = 'chardev' as const;

  constructor(
    p: string,
    private readonly dev: CharKind,
    flags: OpenFlags,
  ) {
    super(p, flags);
  }

  size(): null {
    return null;
  }

  protected async doRead(buf: Uint8Array): Promise<IoResult> {
    switch (this.dev) {
      case 'null':
        return ok(0);
      case 'urandom':
        randomFillSync(buf);
        return ok(buf.length);
      default:
        buf.fill(0);
        return ok(buf.length);
    }
  }

  protected async doWrite(buf: Uint8Array): Promise<IoResult> {
    return this.dev === 'full' ? fail('ENOSPC') : ok(buf.length);
  }

  protected async doFsync(): Promise<IoResult> {
    return fail('EINVAL');
  }

  protected async doClose(): Promise<IoResult> {
    return ok(0);
  }
}

class SysfsFile extends OpenFile {
  readonly kind = 'file' as const;

  constructor(
    p: string,
    private readonly attr: Attribute,
    flags: OpenFlags,
  ) {
    super(p, flags);
  }

  /** stat(2) on a sysfs attribute says 4096. */
  size(): number {
    return 4096;
  }

  protected async doRead(buf: Uint8Array, offset: number): Promise<IoResult> {
    const text = Buffer.from(this.attr.show(), 'latin1');
    if (offset >= text.length) return ok(0);
    const n = Math.min(buf.length, text.length - offset);
    buf.set(text.subarray(offset, offset + n));
    return ok(n);
  }

  protected async doWrite(buf: Uint8Array): Promise<IoResult> {
    if (!this.attr.store) return fail('EACCES');
    const errno = this.attr.store(Buffer.from(buf).toString('latin1'));
    return errno ? fail(errno) : ok(buf.length);
  }

  /** kernfs files have no ->fsync. */
  protected async doFsync(): Promise<IoResult> {
    return fail('EINVAL');
  }

  protected async doClose(): Promise<IoResult> {
    return ok(0);
  }
}

class HostFile extends OpenFile {
  readonly kind = 'file' as const;

  constructor(
    p: string,
    private readonly fh: fsp.FileHandle,
    private length: number,
    flags: OpenFlags,
  ) {
    super(p, flags);
  }

  size(): number {
    return this.length;
  }

  protected async doRead(buf: Uint8Array, offset: number): Promise<IoResult> {
    try {
      const { bytesRead } = await this.fh.read(buf, 0, buf.length, offset);
      return ok(bytesRead);
    } catch (e) {
      return fail(toErrno(e));
    }
  }

  protected async doWrite(buf: Uint8Array, offset: number): Promise<IoResult> {
    try {
      const { bytesWritten } = await this.fh.write(buf, 0, buf.length, offset);
      this.length = Math.max(this.length, offset + bytesWritten);
      if (this.flags.sync) await this.fh.datasync();
      return ok(bytesWritten);
    } catch (e) {
      return fail(toErrno(e));
    }
  }

  protected async doFsync(): Promise<IoResult> {
    try {
      await this.fh.sync();
      return ok(0);
    } catch (e) {
      return fail(toErrno(e));
    }
  }

  protected async doClose(): Promise<IoResult> {
    try {
      await this.fh.close();
      return ok(0);
    } catch (e) {
      return fail(toErrno(e));
    }
  }
}

/** A directory opened read-only: reads fail with EISDIR, as read(2) on a directory does. */
class DirectoryFile implements GuestFile {
  readonly kind = 'file' as const;
  private closed = false;
  constructor(readonly path: string) {}
  size(): number {
    return 4096;
  }
  async pread(): Promise<IoResult> {
    return fail(this.closed ? 'EBADF' : 'EISDIR');
  }
  async pwrite(): Promise<IoResult> {
    return fail('EBADF');
  }
  async fsync(): Promise<IoResult> {
    return this.closed ? fail('EBADF') : ok(0);
  }
  async close(): Promise<IoResult> {
    if (this.closed) return fail('EBADF');
    this.closed = true;
    return ok(0);
  }
}

const HOST_ERRNOS = new Set<string>([
  'EIO',
  'ENOSPC',
  'ENOENT',
  'EACCES',
  'EINVAL',
  'EISDIR',
  'ENOTDIR',
  'EROFS',
  'EBADF',
  'EEXIST',
  'ENODEV',
  'ENXIO',
]);

/** A host error as the guest sees it; anything without a guest equivalent is an I/O error. */
function toErrno(e: unknown): Errno {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code === 'EPERM') return 'EACCES';
  if (code && HOST_ERRNOS.has(code)) return code as Errno;
  if (code === undefined) throw e; // not an I/O error: a bug
  return 'EIO';
}
