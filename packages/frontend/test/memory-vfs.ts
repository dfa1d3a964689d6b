/**
 * An in-memory GuestVfs for the guest tool tests, modelling the Linux behaviour the tools' output
 * depends on:
 *
 * - block devices: pread past the end returns 0 (EOF), a read crossing the end is short; pwrite
 *   crossing the end is short and a pwrite at or past the end fails with ENOSPC (generic_write_checks
 *   for S_ISBLK); O_TRUNC is ignored; O_DIRECT requires offset and length aligned to the logical
 *   block size (EINVAL otherwise).
 * - /dev/zero, /dev/null, /dev/urandom: character devices; O_TRUNC ignored; O_DIRECT refused at open
 *   with EINVAL, as for any inode without direct_IO.
 * - ordinary files: created with O_CREAT only in an existing directory, truncated with O_TRUNC,
 *   extended (zero-filled) by writes past the end.
 *
 * Faults are injected per device/file as functions of (offset, length), so a test can say "writes
 * reaching byte X fail with EIO" or "reads covering byte Y fail with EIO".
 */
import type { Dirent, Errno, GuestFile, GuestVfs, IoResult, OpenFlags } from '../src/guest/vfs.ts';
import { CHARDEV_YIELD_BYTES } from '../src/guest/guest-vfs.ts';

export interface Faults {
  /** Consulted before each pread with the clamped range; an errno fails the call. */
  read?: (offset: number, length: number) => Errno | undefined;
  /** Consulted before each pwrite with the clamped range; an errno fails the call. */
  write?: (offset: number, length: number) => Errno | undefined;
  fsync?: () => Errno | undefined;
  close?: () => Errno | undefined;
}

/** Fails every write whose range reaches byte `offset` or beyond. */
export function failWritesFrom(offset: number, errno: Errno = 'EIO'): Faults['write'] {
  return (off, len) => (off + len > offset ? errno : undefined);
}

/** Fails every read whose range contains byte `offset`. */
export function failReadsCovering(offset: number, errno: Errno = 'EIO'): Faults['read'] {
  return (off, len) => (off <= offset && offset < off + len ? errno : undefined);
}

/** Counters a test can assert on. */
export interface NodeStats {
  reads: number;
  writes: number;
  fsyncs: number;
  opens: number;
  closes: number;
}

type NodeKind = 'blockdev' | 'zero' | 'null' | 'urandom' | 'file';

interface Node {
  kind: NodeKind;
  data: Uint8Array;
  /** Bytes in use: a block device's size, a file's length. */
  length: number;
  logicalBlockSize: number;
  faults: Faults;
  stats: NodeStats;
}

const ok = (n: number): IoResult => ({ ok: true, n });
const fail = (errno: Errno): IoResult => ({ ok: false, errno });

function newStats(): NodeStats {
  return { reads: 0, writes: 0, fsyncs: 0, opens: 0, closes: 0 };
}

function parentDir(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export class MemoryVfs implements GuestVfs {
  private readonly nodes = new Map<string, Node>();
  private readonly dirs = new Set<string>(['/', '/dev', '/tmp', '/root', '/mnt']);
  /** State of the deterministic /dev/urandom generator (xorshift32), so tests are reproducible. */
  private rngState = 0x2545f491;

  constructor() {
    for (const [path, kind] of [
      ['/dev/zero', 'zero'],
      ['/dev/null', 'null'],
      ['/dev/urandom', 'urandom'],
    ] as const) {
      this.nodes.set(path, {
        kind,
        data: new Uint8Array(0),
        length: 0,
        logicalBlockSize: 512,
        faults: {},
        stats: newStats(),
      });
    }
  }

  /** Adds a zero-filled block device of `size` bytes (e.g. `/dev/xvda`). */
  addBlockDevice(path: string, size: number, faults: Faults = {}, logicalBlockSize = 512): this {
    this.nodes.set(path, {
      kind: 'blockdev',
      data: new Uint8Array(size),
      length: size,
      logicalBlockSize,
      faults,
      stats: newStats(),
    });
    return this;
  }

  /** Adds (or replaces) an ordinary file; a string is stored as latin1. */
  addFile(path: string, content: Uint8Array | string = new Uint8Array(0), faults: Faults = {}): this {
    const bytes = typeof content === 'string' ? Uint8Array.from(Buffer.from(content, 'latin1')) : content;
    this.nodes.set(path, {
      kind: 'file',
      data: Uint8Array.from(bytes),
      length: bytes.length,
      logicalBlockSize: 512,
      faults,
      stats: newStats(),
    });
    return this;
  }

  addDir(path: string): this {
    this.dirs.add(path);
    return this;
  }

  /** Replaces the fault plan of an existing node (e.g. to fail only later operations). */
  setFaults(path: string, faults: Faults): void {
    this.node(path).faults = faults;
  }

  /** A copy of the current content of a block device or file. */
  contents(path: string): Uint8Array {
    const n = this.node(path);
    return n.data.slice(0, n.length);
  }

  exists(path: string): boolean {
    return this.nodes.has(path);
  }

  stats(path: string): NodeStats {
    return this.node(path).stats;
  }

  private node(path: string): Node {
    const n = this.nodes.get(path);
    if (!n) throw new Error(`MemoryVfs: no node ${path}`);
    return n;
  }

  async readdir(path: string): Promise<Dirent[] | { errno: Errno }> {
    const dir = path.length > 1 ? path.replace(/\/+$/, '') : path;
    if (!this.dirs.has(dir)) return { errno: this.nodes.has(dir) ? 'ENOTDIR' : 'ENOENT' };
    const out: Dirent[] = [];
    for (const d of this.dirs)
      if (d !== '/' && parentDir(d) === dir)
        out.push({ name: d.slice(dir.length + (dir === '/' ? 0 : 1)), kind: 'dir' });
    for (const [p, n] of this.nodes) {
      if (parentDir(p) !== dir) continue;
      const kind = n.kind === 'file' ? 'file' : n.kind === 'blockdev' ? 'blockdev' : 'chardev';
      out.push({ name: p.slice(dir.length + (dir === '/' ? 0 : 1)), kind });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async open(path: string, flags: OpenFlags): Promise<GuestFile | { errno: Errno }> {
    if (this.dirs.has(path)) {
      // Linux opens a directory read-only (reads then fail with EISDIR) but refuses write access.
      return flags.write ? { errno: 'EISDIR' } : new DirectoryFile(path);
    }
    if (path.endsWith('/')) return { errno: 'ENOTDIR' };
    let node = this.nodes.get(path);
    if (!node) {
      if (!flags.create) return { errno: 'ENOENT' };
      if (!this.dirs.has(parentDir(path))) return { errno: 'ENOENT' };
      node = {
        kind: 'file',
        data: new Uint8Array(0),
        length: 0,
        logicalBlockSize: 512,
        faults: {},
        stats: newStats(),
      };
      this.nodes.set(path, node);
    }
    const isChar = node.kind === 'zero' || node.kind === 'null' || node.kind === 'urandom';
    if (flags.direct && isChar) return { errno: 'EINVAL' };
    if (flags.truncate && flags.write && node.kind === 'file') node.length = 0;
    node.stats.opens++;
    return new MemoryFile(this, path, node, flags);
  }

  /** @internal deterministic bytes for /dev/urandom */
  fillRandom(buf: Uint8Array): void {
    let s = this.rngState;
    for (let i = 0; i < buf.length; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      buf[i] = s & 0xff;
    }
    this.rngState = s;
  }
}

class MemoryFile implements GuestFile {
  readonly kind: GuestFile['kind'];
  private closed = false;
  /** As GuestFs's character devices: an endless reader lets the event loop turn every so often. */
  private sinceYield = 0;

  constructor(
    private readonly vfs: MemoryVfs,
    readonly path: string,
    private readonly node: Node,
    private readonly flags: OpenFlags,
  ) {
    this.kind = node.kind === 'blockdev' ? 'blockdev' : node.kind === 'file' ? 'file' : 'chardev';
  }

  size(): number | null {
    return this.kind === 'chardev' ? null : this.node.length;
  }

  private misaligned(offset: number, length: number): boolean {
    const lbs = this.node.logicalBlockSize;
    return !!this.flags.direct && (offset % lbs !== 0 || length % lbs !== 0);
  }

  async pread(buf: Uint8Array, offset: number): Promise<IoResult> {
    if (this.closed) return fail('EBADF');
    if (!this.flags.read) return fail('EBADF');
    const node = this.node;
    node.stats.reads++;
    if (buf.length === 0) return ok(0);
    if (
      (node.kind === 'zero' || node.kind === 'urandom') &&
      (this.sinceYield += buf.length) >= CHARDEV_YIELD_BYTES
    ) {
      this.sinceYield = 0;
      await new Promise((r) => setImmediate(r));
    }
    switch (node.kind) {
      case 'zero':
        buf.fill(0);
        return ok(buf.length);
      case 'null':
        return ok(0);
      case 'urandom':
        this.vfs.fillRandom(buf);
        return ok(buf.length);
      default: {
        if (this.misaligned(offset, buf.length)) return fail('EINVAL');
        if (offset >= node.length) return ok(0);
        const n = Math.min(buf.length, node.length - offset);
        const errno = node.faults.read?.(offset, n);
        if (errno) return fail(errno);
        buf.set(node.data.subarray(offset, offset + n));
        return ok(n);
      }
    }
  }

  async pwrite(buf: Uint8Array, offset: number): Promise<IoResult> {
    if (this.closed) return fail('EBADF');
    if (!this.flags.write) return fail('EBADF');
    const node = this.node;
    node.stats.writes++;
    if (node.kind === 'zero' || node.kind === 'null' || node.kind === 'urandom') return ok(buf.length);
    if (this.misaligned(offset, buf.length)) return fail('EINVAL');
    if (node.kind === 'blockdev') {
      // generic_write_checks() for a block device: nothing fits at or past the end, a write
      // crossing it is cut short.
      if (offset >= node.length) return buf.length === 0 && offset === node.length ? ok(0) : fail('ENOSPC');
      const n = Math.min(buf.length, node.length - offset);
      const errno = node.faults.write?.(offset, n);
      if (errno) return fail(errno);
      node.data.set(buf.subarray(0, n), offset);
      return ok(n);
    }
    const errno = node.faults.write?.(offset, buf.length);
    if (errno) return fail(errno);
    const end = offset + buf.length;
    if (end > node.data.length) {
      const grown = new Uint8Array(Math.max(end, node.data.length * 2));
      grown.set(node.data.subarray(0, node.length));
      node.data = grown;
    }
    if (offset > node.length) node.data.fill(0, node.length, offset);
    node.data.set(buf, offset);
    node.length = Math.max(node.length, end);
    return ok(buf.length);
  }

  async ftruncate(size: number): Promise<IoResult> {
    if (this.closed || !this.flags.write) return fail('EBADF');
    if (this.kind !== 'file' || size < 0) return fail('EINVAL');
    const node = this.node;
    if (size > node.data.length) {
      const grown = new Uint8Array(size);
      grown.set(node.data.subarray(0, node.length));
      node.data = grown;
    }
    if (size > node.length) node.data.fill(0, node.length, size);
    node.length = size;
    return ok(0);
  }

  async fsync(): Promise<IoResult> {
    if (this.closed) return fail('EBADF');
    this.node.stats.fsyncs++;
    if (this.kind === 'chardev') return fail('EINVAL');
    const errno = this.node.faults.fsync?.();
    return errno ? fail(errno) : ok(0);
  }

  async close(): Promise<IoResult> {
    if (this.closed) return fail('EBADF');
    this.closed = true;
    this.node.stats.closes++;
    const errno = this.node.faults.close?.();
    return errno ? fail(errno) : ok(0);
  }
}

/** A directory opened read-only: every read fails, as read(2) does on a directory. */
class DirectoryFile implements GuestFile {
  readonly kind = 'file' as const;
  constructor(readonly path: string) {}
  size(): number | null {
    return 0;
  }
  async pread(): Promise<IoResult> {
    return fail('EISDIR');
  }
  async pwrite(): Promise<IoResult> {
    return fail('EBADF');
  }
  async fsync(): Promise<IoResult> {
    return ok(0);
  }
  async close(): Promise<IoResult> {
    return ok(0);
  }
}
