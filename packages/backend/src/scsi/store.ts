/**
 * The scsi_debug disk's medium: data and protection information of every logical block. The file
 * store keeps them together the way a PI-formatted drive does — each block followed by its tuples
 * (520-byte records for 512-byte blocks; for 4096-byte blocks 4096 + 8 tuples × 8 = 4160 bytes, one
 * tuple per 512-byte protection interval); the memory store keeps them apart within each chunk and
 * shows them interleaved the same way. A disk without PI (dif=0 and dix=0) has plain block-sized
 * records.
 *
 * scsi_debug keeps its store in vmalloc'ed RAM: data zeroed and PI memset to 0xFF at load (so
 * never-written blocks carry the escape app tag 0xFFFF). pvblk keeps it in a file so a backend
 * restart finds the same disk; a JSON sidecar records the format, and parameters that need another
 * format re-create the store, which is what reloading scsi_debug with other parameters does. With
 * `--memory` it lives in memory, allocated as it is written (a disk's size is a quota, not a cost).
 *
 * Records are addressed with positional reads and writes, so requests to different ranges can run
 * concurrently without a lock.
 */
import { open, readFile, rm, mkdir, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { KERN_NOTICE, PI_TUPLE_SIZE, PvblkError, copyBytes, type KernelLog } from '@pvblk/shared';
import { replaceFile } from '@pvblk/runtime';

/** Bytes of data per protection interval: one tuple per 512 bytes whatever the block size. */
export const PI_INTERVAL = 512;

export interface StoreFormat {
  /** Logical block size in bytes. */
  blockSize: number;
  /** Number of logical blocks. */
  blocks: number;
  /** True when every block carries PI tuples after its data. */
  pi: boolean;
}

/** Tuples per logical block (blockSize / 512) when the store has PI, else 0. */
export function tuplesPerBlock(f: StoreFormat): number {
  return f.pi ? f.blockSize / PI_INTERVAL : 0;
}

/** Bytes of one record: the block's data, then its tuples. */
export function recordSize(f: StoreFormat): number {
  return f.blockSize + tuplesPerBlock(f) * PI_TUPLE_SIZE;
}

/** Byte offset of block `lba`'s data in the store file (tests use it to corrupt the medium). */
export function dataOffset(f: StoreFormat, lba: number): number {
  return lba * recordSize(f);
}

/** Byte offset of tuple `interval` (0-based within the block) of block `lba`. */
export function piOffset(f: StoreFormat, lba: number, interval = 0): number {
  return lba * recordSize(f) + f.blockSize + interval * PI_TUPLE_SIZE;
}

export interface StoreRead {
  data: Buffer;
  /** The blocks' tuples, back to back; null when the store has no PI. */
  pi: Buffer | null;
}

export interface BlockStore {
  readonly format: StoreFormat;
  read(lba: number, blocks: number): Promise<StoreRead>;
  /**
   * Write whole blocks. With `pi`, the tuples are stored with the data; without, the blocks' PI is
   * left as it was — what scsi_debug does for a write that carries no protection SGL.
   */
  write(lba: number, data: Buffer, pi?: Buffer | null): Promise<void>;
  /** Make written data durable (fdatasync for the file store). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

function checkRange(f: StoreFormat, lba: number, blocks: number): void {
  if (!Number.isSafeInteger(lba) || !Number.isSafeInteger(blocks) || lba < 0 || blocks < 0) {
    throw new PvblkError(
      'EINVAL',
      `store range must be non-negative integers (lba ${lba}, blocks ${blocks})`,
    );
  }
  if (lba + blocks > f.blocks) {
    throw new PvblkError('EINVAL', `store range ${lba}+${blocks} beyond ${f.blocks} blocks`);
  }
}

function checkWrite(f: StoreFormat, lba: number, data: Buffer, pi: Buffer | null | undefined): number {
  if (data.length % f.blockSize !== 0) {
    throw new PvblkError(
      'EINVAL',
      `store write of ${data.length} bytes is not whole ${f.blockSize}-byte blocks`,
    );
  }
  const blocks = data.length / f.blockSize;
  checkRange(f, lba, blocks);
  if (pi) {
    if (!f.pi) throw new PvblkError('EINVAL', 'store has no PI but a write carried tuples');
    const want = blocks * tuplesPerBlock(f) * PI_TUPLE_SIZE;
    if (pi.length !== want)
      throw new PvblkError('EINVAL', `store write needs ${want} PI bytes, got ${pi.length}`);
  }
  return blocks;
}

/** Interleave data and tuples into records. */
function interleave(f: StoreFormat, data: Buffer, pi: Buffer): Buffer {
  const blocks = data.length / f.blockSize;
  const rs = recordSize(f);
  const piPerBlock = rs - f.blockSize;
  const out = Buffer.allocUnsafe(blocks * rs);
  for (let i = 0; i < blocks; i++) {
    data.copy(out, i * rs, i * f.blockSize, (i + 1) * f.blockSize);
    pi.copy(out, i * rs + f.blockSize, i * piPerBlock, (i + 1) * piPerBlock);
  }
  return out;
}

/** Split records into data and tuples. */
function deinterleave(f: StoreFormat, records: Buffer): StoreRead {
  if (!f.pi) return { data: records, pi: null };
  const rs = recordSize(f);
  const blocks = records.length / rs;
  const piPerBlock = rs - f.blockSize;
  const data = Buffer.allocUnsafe(blocks * f.blockSize);
  const pi = Buffer.allocUnsafe(blocks * piPerBlock);
  for (let i = 0; i < blocks; i++) {
    records.copy(data, i * f.blockSize, i * rs, i * rs + f.blockSize);
    records.copy(pi, i * piPerBlock, i * rs + f.blockSize, (i + 1) * rs);
  }
  return { data, pi };
}

/** A freshly formatted record: zero data, all-ones PI (scsi_debug's memset(dif_storep, 0xff)). */
function blankRecord(f: StoreFormat): Buffer {
  const r = Buffer.alloc(recordSize(f));
  r.fill(0xff, f.blockSize);
  return r;
}

/** Records per chunk of the memory store: 64 KiB of records, at least one. */
function recordsPerChunk(f: StoreFormat): number {
  return Math.max(1, Math.floor(MEMORY_CHUNK / recordSize(f)));
}

/** Bytes of one chunk of the memory store. */
const MEMORY_CHUNK = 64 * 1024;

/** One chunk of the memory store: its blocks' data, and their tuples (empty without PI). */
interface MemoryChunk {
  data: Buffer;
  pi: Buffer;
}

/**
 * The store in memory (`pvblk host --memory`, unit tests); the same semantics as the file store.
 * Allocated on write, as scsi_debug's own store is not: a chunk of blocks comes into being (formatted
 * blank) when a block in it is first written, so a 1 GiB disk costs the host only what its guest
 * wrote, not 1 GiB up front. Never-written ranges read as a freshly formatted medium.
 *
 * Within a chunk, data and tuples are kept apart, as scsi_debug keeps them (its data store and its
 * dif_storep): a write or read is one copy of the data and one of the tuples per chunk, instead of
 * two per 512-byte block (a 4 KiB write with PI was 16 copies, each making a view of its source: ≈
 * 1.5 µs of the host's CPU per write). `raw` and `patch` still show the medium interleaved, as on
 * a PI drive and in the file store.
 */
export class MemoryStore implements BlockStore {
  readonly format: StoreFormat;
  private readonly chunks = new Map<number, MemoryChunk>();
  private readonly perChunk: number;
  /** Bytes of tuples per block (0 without PI). */
  private readonly piPer: number;
  private readonly blank: MemoryChunk;
  private closed = false;

  constructor(format: StoreFormat) {
    this.format = { ...format };
    this.perChunk = recordsPerChunk(format);
    this.piPer = recordSize(format) - format.blockSize;
    this.blank = {
      data: Buffer.alloc(this.perChunk * format.blockSize),
      pi: Buffer.alloc(this.perChunk * this.piPer, 0xff),
    };
  }

  /** Bytes allocated so far (what the store costs the host). */
  get allocatedBytes(): number {
    return this.chunks.size * this.perChunk * recordSize(this.format);
  }

  /** The raw records of `blocks` blocks from `lba`, as the medium holds them (tests corrupt it). */
  raw(lba: number, blocks: number): Buffer {
    const { data, pi } = this.readNow(lba, blocks);
    return pi ? interleave(this.format, data, pi) : data;
  }

  /** Replace raw records (data and tuples interleaved) from `lba`: the tests' way to corrupt the medium. */
  patch(lba: number, records: Buffer): void {
    const rs = recordSize(this.format);
    if (records.length % rs !== 0)
      throw new PvblkError('EINVAL', `a raw patch must be whole ${rs}-byte records (got ${records.length})`);
    this.checkOpen();
    checkRange(this.format, lba, records.length / rs);
    const { data, pi } = deinterleave(this.format, records);
    this.writeNow(lba, data, pi);
  }

  async read(lba: number, blocks: number): Promise<StoreRead> {
    return this.readNow(lba, blocks);
  }

  async write(lba: number, data: Buffer, pi?: Buffer | null): Promise<void> {
    checkWrite(this.format, lba, data, pi);
    this.checkOpen();
    this.writeNow(lba, data, pi ?? null);
  }

  async flush(): Promise<void> {}

  /** Frees every chunk: a removed memory disk gives its memory back. */
  async close(): Promise<void> {
    this.closed = true;
    this.chunks.clear();
  }

  private readNow(lba: number, blocks: number): StoreRead {
    this.checkOpen();
    checkRange(this.format, lba, blocks);
    const bs = this.format.blockSize;
    const piPer = this.piPer;
    const data = Buffer.allocUnsafe(blocks * bs);
    const pi = this.format.pi ? Buffer.allocUnsafe(blocks * piPer) : null;
    let at = 0;
    while (at < blocks) {
      const { chunk, from, count } = this.locate(lba + at, blocks - at);
      const c = this.chunks.get(chunk) ?? this.blank;
      copyBytes(data, at * bs, c.data, from * bs, (from + count) * bs);
      if (pi) copyBytes(pi, at * piPer, c.pi, from * piPer, (from + count) * piPer);
      at += count;
    }
    return { data, pi };
  }

  /** Whole blocks, already checked against the store; without `pi` the blocks' tuples stay as they are. */
  private writeNow(lba: number, data: Buffer, pi: Buffer | null): void {
    const bs = this.format.blockSize;
    const blocks = data.length / bs;
    const piPer = this.piPer;
    let at = 0;
    while (at < blocks) {
      const { chunk, from, count } = this.locate(lba + at, blocks - at);
      const c = this.chunkFor(chunk);
      copyBytes(c.data, from * bs, data, at * bs, (at + count) * bs);
      if (pi) copyBytes(c.pi, from * piPer, pi, at * piPer, (at + count) * piPer);
      at += count;
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new PvblkError('EBADF', 'the memory store is closed');
  }

  private chunkFor(index: number): MemoryChunk {
    let c = this.chunks.get(index);
    if (!c) {
      // one allocation of its own per chunk: a 1 KiB tuple buffer from Node's pool would keep a
      // shared 8 KiB slab alive for as long as the chunk lives
      const bytes = Buffer.allocUnsafeSlow(this.blank.data.length + this.blank.pi.length);
      c = { data: bytes.subarray(0, this.blank.data.length), pi: bytes.subarray(this.blank.data.length) };
      this.blank.data.copy(c.data);
      this.blank.pi.copy(c.pi);
      this.chunks.set(index, c);
    }
    return c;
  }

  /** The chunk block `b` is in, its index there, and how many of `left` blocks that chunk holds. */
  private locate(b: number, left: number): { chunk: number; from: number; count: number } {
    const chunk = Math.floor(b / this.perChunk);
    const from = b - chunk * this.perChunk;
    return { chunk, from, count: Math.min(this.perChunk - from, left) };
  }
}

const HEADER_MAGIC = 'pvblk-scsi-debug-store';
const HEADER_VERSION = 1;

interface StoreHeader {
  magic: string;
  version: number;
  blockSize: number;
  blocks: number;
  pi: boolean;
  piInterval: number;
  tupleSize: number;
  recordSize: number;
}

function headerFor(f: StoreFormat): StoreHeader {
  return {
    magic: HEADER_MAGIC,
    version: HEADER_VERSION,
    blockSize: f.blockSize,
    blocks: f.blocks,
    pi: f.pi,
    piInterval: PI_INTERVAL,
    tupleSize: PI_TUPLE_SIZE,
    recordSize: recordSize(f),
  };
}

function describe(f: StoreFormat): string {
  const rs = recordSize(f);
  return f.pi
    ? `${f.blocks} x ${rs}-byte records (${f.blockSize}-byte blocks + ${tuplesPerBlock(f)} PI tuple${tuplesPerBlock(f) > 1 ? 's' : ''})`
    : `${f.blocks} x ${rs}-byte blocks, no PI`;
}

/** Bytes written per call while formatting: large enough to be fast, small enough to stay cheap. */
const FORMAT_CHUNK = 1 << 20;

export interface FileStoreOptions {
  /** Directory holding `<name>.img` and `<name>.json`; created if missing. */
  dir: string;
  /** Base name of the files; the disk's host name (`sdg`) by default in the sd factory. */
  name: string;
  format: StoreFormat;
  /** Where formatting is reported (the dom0 kernel log). */
  log?: KernelLog;
}

/**
 * The store in `<dir>/<name>.img` (records only, so block `n` starts at `n × recordSize`) with the
 * format in `<dir>/<name>.json`. The sidecar is written last when formatting, so a crash in the
 * middle leaves no header and the next open formats again.
 */
export class FileStore implements BlockStore {
  readonly format: StoreFormat;
  readonly path: string;
  readonly headerPath: string;
  /** True when open() had to create or re-create the store. */
  readonly formatted: boolean;
  private readonly fh: FileHandle;
  private inflight = 0;
  private drained: (() => void) | null = null;
  private closed = false;

  private constructor(
    fh: FileHandle,
    path: string,
    headerPath: string,
    format: StoreFormat,
    formatted: boolean,
  ) {
    this.fh = fh;
    this.path = path;
    this.headerPath = headerPath;
    this.format = { ...format };
    this.formatted = formatted;
  }

  static async open(opts: FileStoreOptions): Promise<FileStore> {
    const { dir, name, format, log } = opts;
    if (!/^[A-Za-z0-9._-]+$/.test(name))
      throw new PvblkError('EUSAGE', `store name must be a plain file name (got "${name}")`);
    if (format.blockSize % PI_INTERVAL !== 0 || format.blocks <= 0) {
      throw new PvblkError('EINVAL', `store format needs a positive block count of 512-byte multiples`);
    }
    await mkdir(dir, { recursive: true });
    const path = join(dir, `${name}.img`);
    const headerPath = join(dir, `${name}.json`);
    const want = headerFor(format);
    const existing = await readHeader(headerPath);
    const size = await stat(path).then(
      (s) => s.size,
      () => -1,
    );
    const reusable =
      existing !== null &&
      JSON.stringify(existing) === JSON.stringify(want) &&
      size === format.blocks * want.recordSize;
    if (reusable) {
      return new FileStore(await open(path, 'r+'), path, headerPath, format, false);
    }
    if (existing !== null) {
      const was: StoreFormat = { blockSize: existing.blockSize, blocks: existing.blocks, pi: existing.pi };
      log?.printk(
        KERN_NOTICE,
        `scsi_debug: re-formatting ${path}: ${describe(format)} (was ${describe(was)})`,
      );
    } else {
      log?.printk(KERN_NOTICE, `scsi_debug: formatting ${path}: ${describe(format)}`);
    }
    await rm(headerPath, { force: true });
    const fh = await open(path, 'w+');
    try {
      await formatFile(fh, format);
      await fh.datasync();
      // the header says the file is formatted: durable before anything is acknowledged on it
      await replaceFile(headerPath, `${JSON.stringify(want, null, 2)}\n`);
    } catch (e) {
      await fh.close();
      throw e;
    }
    return new FileStore(fh, path, headerPath, format, true);
  }

  async read(lba: number, blocks: number): Promise<StoreRead> {
    const f = this.format;
    checkRange(f, lba, blocks);
    const rs = recordSize(f);
    const records = Buffer.alloc(blocks * rs);
    await this.io(() => readFully(this.fh, records, lba * rs));
    return deinterleave(f, records);
  }

  async write(lba: number, data: Buffer, pi?: Buffer | null): Promise<void> {
    const f = this.format;
    const blocks = checkWrite(f, lba, data, pi);
    const rs = recordSize(f);
    if (!f.pi) {
      await this.io(() => writeFully(this.fh, data, lba * rs));
    } else if (pi) {
      const records = interleave(f, data, pi);
      await this.io(() => writeFully(this.fh, records, lba * rs));
    } else {
      // Data only: one positional write per record so the tuples between them stay untouched. All of
      // them are waited for, failed or not, before the write completes: the caller may reuse `data`
      // once it has (blkback's gather buffers), and a write still running would read it.
      await this.io(async () => {
        const done = await Promise.allSettled(
          Array.from({ length: blocks }, (_, i) =>
            writeFully(this.fh, data.subarray(i * f.blockSize, (i + 1) * f.blockSize), (lba + i) * rs),
          ),
        );
        const failed = done.find((r) => r.status === 'rejected');
        if (failed) throw failed.reason;
      });
    }
  }

  async flush(): Promise<void> {
    await this.io(() => this.fh.datasync());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.inflight > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    await this.fh.close();
  }

  private async io<T>(op: () => Promise<T>): Promise<T> {
    if (this.closed) throw new PvblkError('EBADF', `store ${this.path} is closed`);
    this.inflight++;
    try {
      return await op();
    } finally {
      this.inflight--;
      if (this.inflight === 0 && this.drained) this.drained();
    }
  }
}

async function readHeader(path: string): Promise<StoreHeader | null> {
  try {
    const h = JSON.parse(await readFile(path, 'utf8')) as StoreHeader;
    return h && h.magic === HEADER_MAGIC ? h : null;
  } catch {
    return null;
  }
}

async function formatFile(fh: FileHandle, f: StoreFormat): Promise<void> {
  const rs = recordSize(f);
  const total = f.blocks * rs;
  await fh.truncate(0);
  if (!f.pi) {
    // Zero data needs no writes: extending the file reads back as zeroes.
    await fh.truncate(total);
    return;
  }
  const perChunk = Math.max(1, Math.floor(FORMAT_CHUNK / rs));
  const chunk = Buffer.alloc(perChunk * rs);
  const blank = blankRecord(f);
  for (let i = 0; i < perChunk; i++) blank.copy(chunk, i * rs);
  for (let pos = 0; pos < total; pos += chunk.length) {
    const len = Math.min(chunk.length, total - pos);
    await writeFully(fh, chunk.subarray(0, len), pos);
  }
}

async function readFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new PvblkError('EIO', `store file ended at ${position + done}`);
    done += bytesRead;
  }
}

async function writeFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}
