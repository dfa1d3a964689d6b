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
import { latin1Text, ownEntry, PAGE_SIZE } from '@pvblk/shared';
import type { BlockDeviceCache } from '../block/page-cache.ts';
import type { GuestBlockQueue } from '../block/queue.ts';
import { FileReadahead, type FadviseAdvice } from '../block/readahead.ts';
import type {
  BlockIoctl,
  Dirent,
  Errno,
  GuestFile,
  GuestVfs,
  IoctlResult,
  IoResult,
  OpenFlags,
} from './vfs.ts';

const ok = (n: number): IoResult => ({ ok: true, n });
const fail = (errno: Errno): IoResult => ({ ok: false, errno });

/** What a guest block device is beyond its queue and cache: the device number and its settings. */
export interface BlockDeviceInfo {
  major: number;
  minor: number;
  /** GENHD_FL_REMOVABLE (blkfront: VDISK_REMOVABLE or a cdrom). */
  removable: boolean;
}

interface BlockDevice extends BlockDeviceInfo {
  queue: GuestBlockQueue;
  cache: BlockDeviceCache;
  /** The disk's read-only policy: set_disk_ro() at probe (VDISK_READONLY), then BLKROSET. */
  ro: boolean;
  /**
   * Queue settings shown and stored as Linux does. pvblk's block layer has no elevator and no
   * request limit: scheduler, nr_requests, rotational, read_ahead_kb and write_cache change nothing
   * else. io_timeout is blk-mq's (5.x): blkfront has no timeout handler, so an expired request is
   * only re-armed — a guest waits for its backend.
   */
  nrRequests: number;
  scheduler: string;
  rotational: boolean;
  readAheadKb: number;
  writeCache: boolean;
  ioTimeoutMs: number;
}

/**
 * The device number blkfront gives a vbd (xlvbd_alloc_gendisk): for xvd vdevs the major and minor
 * encoded in the number (202:0 for 51712, 202:16 for xvdb), for extended ones XENVBD_MAJOR with the
 * disk and partition as minor.
 */
export function xenDevNumbers(devid: number): { major: number; minor: number } {
  if (devid < 1 << 28) return { major: devid >> 8, minor: devid & 0xff };
  return { major: 202, minor: devid & ((1 << 28) - 1) };
}

/** 3.x's elevators, in the order `queue/scheduler` lists them; cfq is CONFIG_DEFAULT_IOSCHED. */
const ELEVATORS = ['noop', 'deadline', 'cfq'];
/** BLKDEV_MIN_RQ and BLKDEV_MAX_RQ (the default nr_requests of a request_fn queue). */
const BLKDEV_MIN_RQ = 4;
const BLKDEV_MAX_RQ = 128;

/** A sysfs attribute: `show` renders the file, `store` (writable attributes only) parses a write. */
interface Attribute {
  show(): string;
  store?(text: string): Errno | null;
}

type SysNode = { kind: 'dir' } | { kind: 'attr'; attr: Attribute };

/**
 * Bytes the guest's ordinary files may take on the host, in blocks allocated (holes are free, as on
 * any file system). A guest's /tmp is its own memory or disk under Xen; here it is a directory of the
 * host, which a guest writing `dd if=/dev/zero of=/tmp/big bs=1M count=3000` filled at 0.5 GB/s.
 */
export const GUEST_FILES_MAX_BYTES = 1024 * 1024 * 1024;

/** Bytes a file handle may write between two measurements of the guest's files. */
const SPACE_CHECK_BYTES = 1024 * 1024;

/** The bound on the guest's ordinary files, measured as `du` measures them. */
export class GuestSpace {
  constructor(
    private readonly root: () => Promise<string>,
    readonly maxBytes = GUEST_FILES_MAX_BYTES,
  ) {}

  /** Whether `n` more bytes fit: the blocks every file under the root holds now, plus `n`. */
  async roomFor(n: number): Promise<boolean> {
    return (await this.used()) + n <= this.maxBytes;
  }

  /** Blocks allocated under the root, in bytes (st_blocks × 512), each inode once. */
  async used(): Promise<number> {
    const seen = new Set<string>();
    let total = 0;
    const walk = async (dir: string): Promise<void> => {
      const names = await fsp.readdir(dir).catch(() => [] as string[]);
      for (const name of names) {
        const p = path.join(dir, name);
        const st = await fsp.lstat(p).catch(() => null);
        if (!st) continue;
        const ino = `${st.dev}:${st.ino}`;
        if (seen.has(ino)) continue;
        seen.add(ino);
        total += st.blocks * 512;
        if (st.isDirectory()) await walk(p);
      }
    };
    await walk(await this.root());
    return total;
  }
}

export class GuestFs implements GuestVfs {
  private readonly disks = new Map<string, BlockDevice>();
  private realRoot: string | null = null;
  readonly space: GuestSpace;

  /** `root`: the host directory that is the guest's `/` for ordinary files. */
  constructor(
    readonly root: string,
    filesMaxBytes = GUEST_FILES_MAX_BYTES,
  ) {
    this.space = new GuestSpace(() => this.rootDir(), filesMaxBytes);
  }

  registerBlockDevice(
    name: string,
    queue: GuestBlockQueue,
    cache: BlockDeviceCache,
    info: BlockDeviceInfo = { major: 202, minor: 16 * this.disks.size, removable: false },
  ): void {
    this.disks.set(name, {
      ...info,
      queue,
      cache,
      ro: queue.driver.readOnly,
      nrRequests: BLKDEV_MAX_RQ,
      scheduler: 'cfq',
      rotational: false, // blkfront marks its queue QUEUE_FLAG_VIRT, which is QUEUE_FLAG_NONROT
      readAheadKb: 128,
      writeCache: queue.driver.flushSupported(),
      ioTimeoutMs: 30_000,
    });
  }

  async readdir(guestPath: string): Promise<Dirent[] | { errno: Errno }> {
    const p = path.posix.resolve('/', guestPath);
    const sorted = (names: Array<[string, Dirent['kind']]>) =>
      names.map(([name, kind]) => ({ name, kind })).sort((a, b) => (a.name < b.name ? -1 : 1));
    if (p === '/dev') {
      return sorted([
        ...[...this.disks.keys()].map((n): [string, Dirent['kind']] => [n, 'blockdev']),
        ...Object.keys(CHAR_DEVICES).map((n): [string, Dirent['kind']] => [n, 'chardev']),
      ]);
    }
    if (p === '/dev' || p.startsWith('/dev/'))
      return {
        errno:
          this.disks.has(p.slice(5)) || ownEntry(CHAR_DEVICES, p.slice(5)) !== undefined
            ? 'ENOTDIR'
            : 'ENOENT',
      };
    if (p === '/sys' || p.startsWith('/sys/')) {
      const node = this.sysNode(p);
      if (!node) return { errno: 'ENOENT' };
      if (node.kind !== 'dir') return { errno: 'ENOTDIR' };
      return sorted(this.sysChildren(p));
    }
    const host = await this.readHostDir(p);
    if ('errno' in host) return host;
    if (p === '/') {
      const names = new Set(host.map((d) => d.name));
      for (const n of ['dev', 'sys']) if (!names.has(n)) host.push({ name: n, kind: 'dir' });
    }
    return host.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  private async readHostDir(p: string): Promise<Dirent[] | { errno: Errno }> {
    try {
      const root = await this.rootDir();
      const real = await fsp.realpath(path.join(root, p));
      if (real !== root && !real.startsWith(root + path.sep)) return { errno: 'EACCES' };
      const entries = await fsp.readdir(real, { withFileTypes: true });
      return entries.map((e) => ({
        name: e.name,
        kind: e.isDirectory()
          ? 'dir'
          : e.isFile()
            ? 'file'
            : e.isSymbolicLink()
              ? 'symlink'
              : e.isSocket()
                ? 'socket'
                : 'other',
      }));
    } catch (e) {
      return { errno: toErrno(e) };
    }
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
    const kind = ownEntry(CHAR_DEVICES, name);
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
    if (rest === '' || SYS_DISK_DIRS.includes(rest)) return { kind: 'dir' };
    const attr = ownEntry(diskAttributes(disk), rest);
    return attr ? { kind: 'attr', attr } : null;
  }

  /** The entries of a sysfs directory (which sysNode() says exists). */
  private sysChildren(p: string): Array<[string, Dirent['kind']]> {
    const parts = p.split('/').filter((x) => x);
    if (parts.length === 1) return [['block', 'dir']];
    if (parts.length === 2) return [...this.disks.keys()].map((n) => [n, 'dir']);
    const prefix = parts.slice(3).join('/');
    const attrs = Object.keys(diskAttributes(this.disks.get(parts[2])!));
    const out: Array<[string, Dirent['kind']]> = [];
    if (prefix === '') for (const d of SYS_DISK_DIRS) out.push([d, 'dir']);
    for (const a of attrs) {
      const slash = a.lastIndexOf('/');
      if ((slash < 0 ? '' : a.slice(0, slash)) === prefix) out.push([a.slice(slash + 1), 'file']);
    }
    return out;
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
      return new HostFile(p, fh, st.size, flags, this.space);
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

const SYS_DISK_DIRS = ['queue', 'integrity'];

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
  /** queue_var_store(): an unsigned long, then the setter's own check. */
  const number = (get: () => number, set: (v: number) => boolean): Attribute => ({
    show: () => `${get()}\n`,
    store: (text) => {
      const v = kstrtoul(text);
      return v !== null && v <= BigInt(Number.MAX_SAFE_INTEGER) && set(Number(v)) ? null : 'EINVAL';
    },
  });
  const bi = (): ReturnType<GuestBlockQueue['integrity']> => q.integrity();
  return {
    size: ro(() => q.capacity()),
    ro: ro(() => (d.ro ? 1 : 0)),
    removable: ro(() => (d.removable ? 1 : 0)),
    dev: ro(() => `${d.major}:${d.minor}`),
    stat: { show: () => q.statLine() },
    // part_inflight_show(): reads and writes in flight, "%8u %8u"
    inflight: {
      show: () => q.stats.inFlightRw.map((n) => String(n).padStart(8, ' ')).join(' ') + '\n',
    },
    alignment_offset: ro(() => 0),
    discard_alignment: ro(() => 0),
    'queue/logical_block_size': ro(() => q.limits().logicalBlockSize),
    'queue/physical_block_size': ro(() => q.limits().physicalBlockSize),
    'queue/hw_sector_size': ro(() => q.limits().logicalBlockSize),
    // blk_queue_physical_block_size() raises io_min to the physical block size; nothing sets io_opt
    'queue/minimum_io_size': ro(() => q.limits().physicalBlockSize),
    'queue/optimal_io_size': ro(() => 0),
    'queue/max_hw_sectors_kb': ro(() => q.limits().maxHwSectors >> 1),
    'queue/max_sectors_kb': number(
      () => q.maxSectors >> 1,
      (v) => q.setMaxSectorsKb(v),
    ),
    'queue/max_segments': ro(() => q.limits().maxSegments),
    'queue/max_segment_size': ro(() => q.limits().maxSegmentSize),
    'queue/discard_max_bytes': ro(() => (q.limits().discard?.maxSectors ?? 0) * 512),
    'queue/discard_granularity': ro(() => q.limits().discard?.granularity ?? 0),
    'queue/discard_zeroes_data': ro(() => 0),
    // queue_requests_store(): anything below BLKDEV_MIN_RQ becomes BLKDEV_MIN_RQ
    'queue/nr_requests': number(
      () => d.nrRequests,
      (v) => ((d.nrRequests = Math.max(v, BLKDEV_MIN_RQ)), true),
    ),
    // elv_iosched_show(): every elevator, the current one in brackets
    'queue/scheduler': {
      show: () => ELEVATORS.map((e) => (e === d.scheduler ? `[${e}]` : e)).join(' ') + '\n',
      store: (text) => {
        const name = text.trim();
        if (!ELEVATORS.includes(name)) return 'EINVAL';
        d.scheduler = name;
        return null;
      },
    },
    'queue/rotational': flag(
      () => d.rotational,
      (v) => (d.rotational = v),
    ),
    'queue/read_ahead_kb': number(
      () => d.readAheadKb,
      (v) => ((d.readAheadKb = v), true),
    ),
    // queue_wc_show()/queue_wc_store() (4.7)
    'queue/write_cache': {
      show: () => (d.writeCache ? 'write back\n' : 'write through\n'),
      store: (text) => {
        if (text.startsWith('write back')) d.writeCache = true;
        else if (text.startsWith('write through') || text.startsWith('none')) d.writeCache = false;
        else return 'EINVAL';
        return null;
      },
    },
    // blk-mq's io_timeout (5.0): milliseconds, 0 refused
    'queue/io_timeout': number(
      () => d.ioTimeoutMs,
      (v) => v > 0 && v <= 0xffffffff && ((d.ioTimeoutMs = v), true),
    ),
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
  /** The file's readahead state, sized by the device's read_ahead_kb at open (file_ra_state_init()). */
  private readonly ra: FileReadahead;

  constructor(
    p: string,
    private readonly disk: BlockDevice,
    flags: OpenFlags,
  ) {
    super(p, flags);
    // no window larger than half the cache, the guest's stand-in for free memory
    this.ra = new FileReadahead(disk.readAheadKb, {
      ioPages: Math.floor((disk.queue.limits().maxHwSectors * 512) / PAGE_SIZE),
      limitPages: Math.floor(disk.cache.cacheLimitBytes / PAGE_SIZE / 2),
    });
  }

  fadvise(advice: FadviseAdvice): IoResult {
    if (this.closed) return fail('EBADF');
    this.ra.fadvise(advice, this.disk.readAheadKb);
    return ok(0);
  }

  size(): number {
    return this.disk.cache.size();
  }

  protected doRead(buf: Uint8Array, offset: number): Promise<IoResult> {
    return this.flags.direct
      ? this.disk.cache.directRead(buf, offset)
      : this.disk.cache.pread(buf, offset, this.ra);
  }

  protected async doWrite(buf: Uint8Array, offset: number): Promise<IoResult> {
    // generic_write_checks(): a block device set read-only refuses writes
    if (this.disk.ro) return fail('EPERM');
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

  /** BLKDISCARD (blk_ioctl_discard()): the file must be open for writing; see BlockDeviceCache.discard(). */
  discard(start: number, len: number): Promise<IoResult> {
    if (this.closed || !this.flags.write) return Promise.resolve(fail('EBADF'));
    return this.disk.cache.discard(start, len, { readOnly: this.disk.ro });
  }

  /** blkdev_ioctl() for what blockdev(8) asks. */
  async ioctl(cmd: BlockIoctl, arg = 0): Promise<IoctlResult> {
    if (this.closed) return { ok: false, errno: 'EBADF' };
    const d = this.disk;
    const l = d.queue.limits();
    const value = (v: number): IoctlResult => ({ ok: true, value: v });
    switch (cmd) {
      case 'BLKROSET':
        d.ro = arg !== 0;
        return value(0);
      case 'BLKROGET':
        return value(d.ro ? 1 : 0);
      case 'BLKGETSIZE':
        return value(d.queue.capacity());
      case 'BLKGETSIZE64':
        return value(d.queue.capacity() * 512);
      case 'BLKSSZGET':
        return value(l.logicalBlockSize);
      case 'BLKPBSZGET':
        return value(l.physicalBlockSize);
      case 'BLKBSZGET':
        return value(d.cache.blockSize);
      case 'BLKFLSBUF':
        await d.cache.flushBuffers();
        return value(0);
      case 'BLKRRPART':
        // rescan_partitions(): the vbd carries no partition table, so there is nothing to add
        return value(0);
    }
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

/** Bytes read from /dev/zero or /dev/urandom between two turns of the event loop. */
export const CHARDEV_YIELD_BYTES = 1 << 20;

class CharDevFile extends OpenFile {
  readonly kind = 'chardev' as const;
  /** Those reads resolve at once: a reader that never stops would hold the process (blkfront, the
   * control socket, Ctrl-C, the shutdown's writeback) without this. */
  private sinceYield = 0;

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
    if (this.dev !== 'null' && (this.sinceYield += buf.length) >= CHARDEV_YIELD_BYTES) {
      this.sinceYield = 0;
      await new Promise((r) => setImmediate(r));
    }
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
    const errno = this.attr.store(latin1Text(buf));
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

  /** Bytes written since the guest's files were last measured (the first write measures). */
  private unmeasured = SPACE_CHECK_BYTES;

  constructor(
    p: string,
    private readonly fh: fsp.FileHandle,
    private length: number,
    flags: OpenFlags,
    private readonly space: GuestSpace,
  ) {
    super(p, flags);
  }

  size(): number {
    return this.length;
  }

  async ftruncate(size: number): Promise<IoResult> {
    if (this.closed || !this.flags.write) return fail('EBADF');
    if (size < 0) return fail('EINVAL');
    try {
      await this.fh.truncate(size);
      this.length = size;
      return ok(0);
    } catch (e) {
      return fail(toErrno(e));
    }
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
      // measured again after every MiB this handle writes: a guest past its bound gets ENOSPC, as
      // from a full file system, having overshot by at most that much per open file
      this.unmeasured += buf.length;
      if (this.unmeasured >= SPACE_CHECK_BYTES) {
        if (!(await this.space.roomFor(buf.length))) return fail('ENOSPC');
        this.unmeasured = 0;
      }
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
  'EFBIG',
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
  'ENAMETOOLONG',
]);

/** A host error as the guest sees it; anything without a guest equivalent is an I/O error. */
function toErrno(e: unknown): Errno {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code === 'EPERM') return 'EACCES';
  if (code && HOST_ERRNOS.has(code)) return code as Errno;
  if (code === undefined) throw e; // not an I/O error: a bug
  return 'EIO';
}
