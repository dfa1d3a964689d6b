/**
 * `chaos-io`: the verifying workload of `pvblk chaos`, run inside the guest against its block layer.
 * The controller (outside the guest, where its shadow of acknowledged data survives a guest crash)
 * sends one batch of operations at a time and gets one JSON line back:
 *
 *   chaos-io /dev/xvda <seed> '<ops>' [--seq]       ops run concurrently (in order with --seq)
 *   chaos-io /dev/xvda status                       blkfront's rings and the block layer's counters
 *
 * An operation, in 4 KiB blocks:
 *   {"k":"w","b":40,"n":2,"w":17,"d":1}   write blocks 40-41 with write ids 17 and 18 (d 1: O_DIRECT
 *                                         through the block layer; d 0: buffered, through the page cache)
 *   {"k":"r","b":40,"n":2,"d":1,"c":[[17,0],[18]]}
 *                                         read them; `c` lists, per block, the write ids it may hold
 *   {"k":"f"}                             fsync: write back the page cache, then FLUSH
 *   {"k":"t","b":8,"n":4}                 discard (BLKDISCARD, direct region only)
 *
 * Block contents are a pure function of (seed, block, write id) — write id 0 is a zero block — so
 * nothing but ids crosses the control socket. Every 512-byte sector starts with its write id, block and
 * sector number, so a block holding another block's data (a misdirected write) can be named. A read
 * reports, per block: the write id it holds, or for a block matching no candidate whole, `{"t":[…]}`
 * when each sector holds some candidate's sector (a torn write), else `{"x": bits, "near": id}` — the
 * fewest bits by which it differs from a candidate, and which one.
 */
import { SECTOR_SIZE } from '@pvblk/shared';
import type { BioSegment, BlockResult } from '../block/types.ts';
import type { GuestDisk } from './toolbox.ts';
import type { GuestCommand } from './vfs.ts';

export const CHAOS_BLOCK = 4096;
const SECTORS_PER_BLOCK = CHAOS_BLOCK / SECTOR_SIZE;

export interface ChaosOp {
  k: 'w' | 'r' | 'f' | 't';
  b?: number;
  n?: number;
  w?: number;
  d?: 0 | 1;
  c?: number[][];
}

/** Per block of a read: a write id, a torn block (ids per sector, -1 none), or a corrupt one. */
export type BlockVerdict = number | { t: number[] } | { x: number; near: number };

export interface ChaosOpResult {
  /** ok, or a block status (ioerr, protection, notsupp, nospc), or an errno for buffered I/O. */
  s: string;
  /** Which PI check failed and the layer that caught it. */
  pi?: { check: string; by: string };
  blocks?: BlockVerdict[];
  /** Milliseconds the operation took. */
  ms: number;
}

/** The contents of `block` after write `wid` (0: zeros). Deterministic, cheap (xorshift32). */
export function chaosPattern(seed: number, block: number, wid: number): Buffer {
  const out = Buffer.alloc(CHAOS_BLOCK);
  if (wid === 0) return out;
  let x = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(block + 1, 0xc2b2ae35) ^ wid) >>> 0 || 1;
  for (let i = 0; i < CHAOS_BLOCK; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  for (let s = 0; s < SECTORS_PER_BLOCK; s++) {
    out.writeUInt32LE(wid >>> 0, s * SECTOR_SIZE);
    out.writeUInt32LE((block * SECTORS_PER_BLOCK + s) >>> 0, s * SECTOR_SIZE + 4);
    out.writeUInt32LE(seed >>> 0, s * SECTOR_SIZE + 8);
  }
  return out;
}

function popcount(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/** What one block read back holds, judged against the write ids it may hold. */
export function judgeBlock(seed: number, block: number, data: Buffer, candidates: number[]): BlockVerdict {
  const pats = candidates.map((w) => ({ w, p: chaosPattern(seed, block, w) }));
  for (const { w, p } of pats) if (p.equals(data)) return w;
  const perSector: number[] = [];
  for (let s = 0; s < SECTORS_PER_BLOCK; s++) {
    const a = data.subarray(s * SECTOR_SIZE, (s + 1) * SECTOR_SIZE);
    const hit = pats.find(({ p }) => p.subarray(s * SECTOR_SIZE, (s + 1) * SECTOR_SIZE).equals(a));
    perSector.push(hit ? hit.w : -1);
  }
  if (!perSector.includes(-1)) return { t: perSector };
  let best = { x: Infinity, near: candidates[0] ?? 0 };
  for (const { w, p } of pats.length ? pats : [{ w: 0, p: chaosPattern(seed, block, 0) }]) {
    let bits = 0;
    for (let i = 0; i < CHAOS_BLOCK; i += 4)
      bits += popcount((p.readUInt32LE(i) ^ data.readUInt32LE(i)) >>> 0);
    if (bits < best.x) best = { x: bits, near: w };
  }
  return best;
}

function findDisk(disks: GuestDisk[], path: string): GuestDisk | undefined {
  return disks.find((d) => `/dev/${d.name}` === path || d.name === path);
}

/** Why a control-socket operation cannot run (null: it can): the controller is a peer, not trusted. */
export function checkOp(o: unknown, blocks: number): string | null {
  if (typeof o !== 'object' || o === null) return 'an operation is an object';
  const op = o as Record<string, unknown>;
  if (!['w', 'r', 'f', 't'].includes(op.k as string)) return `unknown operation kind ${JSON.stringify(op.k)}`;
  if (op.k === 'f') return null;
  const b = op.b as number;
  const n = op.n as number;
  if (!Number.isInteger(b) || !Number.isInteger(n) || b < 0 || n < 1 || b + n > blocks)
    return `blocks ${b}+${n} are outside the device (${blocks} blocks of 4 KiB)`;
  // write ids are stamped into 32-bit sector headers
  const id = (v: unknown) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 0xffffffff;
  if (op.k === 'w' && !id(op.w)) return 'a write needs a write id w, 1-4294967295';
  if (op.d !== undefined && op.d !== 0 && op.d !== 1) return 'd must be 0 (page cache) or 1 (O_DIRECT)';
  if (op.k === 'r' && op.c !== undefined) {
    if (!Array.isArray(op.c) || op.c.length !== n) return 'c must list the candidates of every block read';
    for (const list of op.c as unknown[])
      if (!Array.isArray(list) || !list.every((w) => w === 0 || id(w)))
        return 'each entry of c must be a list of write ids (0: never written)';
  }
  return null;
}

/** Runs one operation; never throws for an I/O error (errors are results). */
async function runOp(disk: GuestDisk, seed: number, op: ChaosOp): Promise<ChaosOpResult> {
  const t0 = performance.now();
  const done = (r: Omit<ChaosOpResult, 'ms'>): ChaosOpResult => ({
    ...r,
    ms: Math.round(performance.now() - t0),
  });
  const fromBlock = (res: BlockResult): Omit<ChaosOpResult, 'ms'> => ({
    s: res.status,
    ...(res.pi ? { pi: { check: res.pi.check, by: res.pi.caughtBy } } : {}),
  });
  if (op.k === 'f') {
    const r = await disk.cache.fsync();
    return done({ s: r.ok ? 'ok' : r.errno });
  }
  const b = op.b!;
  const n = op.n!;
  const sector = b * SECTORS_PER_BLOCK;
  if (op.k === 't') {
    const r = await disk.queue.submitBio({
      op: 'discard',
      sector,
      segments: [],
      nrSectors: n * SECTORS_PER_BLOCK,
    });
    return done(fromBlock(r));
  }
  if (op.d === 0) {
    // buffered: the page cache of /dev/xvda
    const buf = Buffer.alloc(n * CHAOS_BLOCK);
    if (op.k === 'w') {
      for (let i = 0; i < n; i++) chaosPattern(seed, b + i, op.w! + i).copy(buf, i * CHAOS_BLOCK);
      const r = await disk.cache.pwrite(buf, b * CHAOS_BLOCK);
      return done({ s: r.ok ? (r.n === buf.length ? 'ok' : 'short') : r.errno });
    }
    const r = await disk.cache.pread(buf, b * CHAOS_BLOCK);
    if (!r.ok) return done({ s: r.errno });
    // read(2) stops short at a page that cannot be read: an error for the blocks it did not return
    if (r.n < buf.length) return done({ s: 'short' });
    return done({ s: 'ok', blocks: judge(seed, b, n, buf, op.c) });
  }
  // O_DIRECT through the block layer: its result says which layer caught a PI error
  const driver = disk.queue.driver;
  const segments: BioSegment[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const page = driver.allocPage();
      if (op.k === 'w') page.write(0, chaosPattern(seed, b + i, op.w! + i));
      segments.push({ page, off: 0, len: CHAOS_BLOCK });
    }
    const r = await disk.queue.submitBio({ op: op.k === 'w' ? 'write' : 'read', sector, segments });
    if (op.k === 'w' || r.status !== 'ok') return done(fromBlock(r));
    const buf = Buffer.concat(segments.map((s) => s.page.buf));
    return done({ ...fromBlock(r), blocks: judge(seed, b, n, buf, op.c) });
  } finally {
    for (const s of segments) driver.freePage(s.page);
  }
}

function judge(seed: number, b: number, n: number, buf: Buffer, c: number[][] | undefined): BlockVerdict[] {
  const out: BlockVerdict[] = [];
  for (let i = 0; i < n; i++)
    out.push(judgeBlock(seed, b + i, buf.subarray(i * CHAOS_BLOCK, (i + 1) * CHAOS_BLOCK), c?.[i] ?? [0]));
  return out;
}

export function chaosIoCommand(disks: GuestDisk[]): GuestCommand {
  return async (argv, io) => {
    const usage = () => {
      io.stderr("usage: chaos-io /dev/xvdX <seed> '<ops json>' [--seq] | chaos-io /dev/xvdX status\n");
      return 2;
    };
    const disk = argv[1] ? findDisk(disks, argv[1]) : undefined;
    if (!disk) return usage();
    const status = () => ({
      ring: disk.front.describe(),
      queue: {
        inFlight: disk.queue.stats.inFlight,
        errors: disk.queue.stats.errors,
        piVerified: disk.queue.stats.piVerified,
      },
    });
    if (argv[2] === 'status' && argv.length === 3) {
      io.stdout(JSON.stringify(status()) + '\n');
      return 0;
    }
    const seed = Number(argv[2]);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff || argv.length < 4 || argv.length > 5)
      return usage();
    const seq = argv[4] === '--seq';
    if (argv[4] !== undefined && !seq) return usage();
    let ops: unknown;
    try {
      ops = JSON.parse(argv[3]);
    } catch (e) {
      io.stderr(`chaos-io: the operations are not JSON: ${(e as Error).message}\n`);
      return 2;
    }
    const blocks = Math.floor((disk.queue.capacity() * SECTOR_SIZE) / CHAOS_BLOCK);
    if (!Array.isArray(ops)) {
      io.stderr('chaos-io: the operations must be a JSON array\n');
      return 2;
    }
    for (const [i, o] of ops.entries()) {
      const bad = checkOp(o, blocks);
      if (bad) {
        io.stderr(`chaos-io: operation ${i}: ${bad}\n`);
        return 2;
      }
    }
    const list = ops as ChaosOp[];
    let results: ChaosOpResult[];
    if (seq) {
      results = [];
      for (const o of list) results.push(await runOp(disk, seed, o));
    } else {
      results = await Promise.all(list.map((o) => runOp(disk, seed, o)));
    }
    io.stdout(JSON.stringify({ r: results, ...status() }) + '\n');
    return 0;
  };
}
