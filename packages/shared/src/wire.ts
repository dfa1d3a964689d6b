/**
 * The broker wire protocol: how a domain's process talks to the hypervisor over one WebSocket.
 *
 * A frame is one binary WebSocket message: a version byte, then records, back to back. The records
 * that carry the ring's traffic have fixed binary layouts (little-endian), so the broker routes page
 * contents without decoding or re-encoding them:
 *
 *   0x01 MSG        u32 len, then a MessagePack map of len bytes (calls, replies, XenStore, …)
 *   0x02 PAGE_OWN   u32 gfn, u16 off, u16 len, data     a write to one of the sender's/receiver's own frames
 *   0x03 PAGE_MAP   u32 handle, u16 off, u16 len, data  a write through a grant mapping
 *   0x04 EVENT      u32 port                            to the broker: EVTCHNOP_send; from it: an upcall
 *   0x05 EOI        u32 port                            to the broker: the upcall is handled (lateeoi)
 *   0x06 NOTIFY_IF  u32 port, u8 mapped, u32 page, u16 eventOff, u32 oldProd, u32 newProd
 *
 * NOTIFY_IF is the producer's half of ring.h's full barrier (mb()), decided where the ring is
 * coherent — at the broker, which applies every write in one order — instead of by a round trip: it
 * sends the event iff the event index in the ring page lies in (oldProd, newProd]
 * (RING_PUSH_*_AND_CHECK_NOTIFY). The consumer's half (RING_FINAL_CHECK_FOR_*) needs no record: see
 * @pvblk/client's ring-sync.ts. Version 2 had a FINAL record (0x07) for it, which the broker
 * answered with an event of the sender's own; version 3 dropped it.
 *
 * Records are applied in order; everything a process produces in one event-loop turn travels in one
 * frame when it fits, so "writes before a notification are visible before the notification is
 * handled" holds. Frames are cut between records, never inside one, below WIRE_FRAME_TARGET and
 * at WIRE_MAX_RECORDS records.
 *
 * Everything decoded here is untrusted: `decodeClientFrame` never throws, MessagePack is decoded by a
 * strict decoder (no extensions, no 64-bit integers beyond 2^53), every message is checked field by
 * field, and error texts describe what was found without echoing the peer's bytes.
 */
import { Packr } from 'msgpackr';
import { DEFAULT_MSGPACK_LIMITS, decodeMsgpack, type MsgpackValue } from './msgpack.ts';
import { SpareBuffers } from './spare-buffers.ts';
import {
  arrayBufferOf,
  asBuffer,
  bufferView,
  byteOffsetOf,
  copyBytes,
  copyInto,
  readU16LE,
  readU32LE,
  writeU16LE,
  writeU32LE,
} from './bytes.ts';

export const WIRE_VERSION = 3;
/** Largest frame accepted. */
export const WIRE_MAX_FRAME = 16 * 1024 * 1024;
/** Encoders cut frames at this size (between records), far below what the peer accepts. */
export const WIRE_FRAME_TARGET = 1024 * 1024;
/** Largest single MSG record: a reply carrying page contents stays well below the frame limit. */
export const WIRE_MAX_MESSAGE = 8 * 1024 * 1024;
/**
 * Records in one frame: encoders cut a frame there, decoders refuse a frame with more. Every record
 * of a frame is parsed before any is served (the broker leaves MSG bodies packed, but each record is
 * an entry of its inbox), so this bounds what one frame makes its receiver hold:
 * a guest's 16 MiB frame of 5-byte EOI records was 3.35 million queued messages (900 MiB in the
 * broker) where its input bound pauses reading at 16k.
 */
export const WIRE_MAX_RECORDS = 16 * 1024;
/**
 * Arrays, maps and binary values the MessagePack records of one frame may build together. Each is a
 * heap object made from as little as one input byte: bounded by bytes alone, a 16 MiB frame of empty
 * maps could build ≈ 3 GB and end the broker (V8 out of heap, which nothing catches). What a process
 * sends stays far below: its frames are cut at WIRE_FRAME_TARGET (1 MiB), and the smallest records
 * that build an object (a grant map's op, ≈ 22 bytes) fill 1 MiB with ≈ 48,000.
 */
export const WIRE_MAX_OBJECTS = 128 * 1024;
export const PAGE_SIZE = 4096;

export const REC_MSG = 0x01;
export const REC_PAGE_OWN = 0x02;
export const REC_PAGE_MAP = 0x03;
export const REC_EVENT = 0x04;
export const REC_EOI = 0x05;
export const REC_NOTIFY_IF = 0x06;

// ---------------------------------------------------------------------------------------------
// Message shapes.

export interface GrantMapOp {
  dom: number;
  ref: number;
  readonly: boolean;
}
export interface GrantMapResult {
  status: number;
  handle?: number;
  /** Current page contents; absent when the page is all zeros. */
  data?: Uint8Array;
  /** Set when this domain already maps the same frame under another handle: the two share one page. */
  alias?: number;
}
/** One grant-copy segment, as seen by the broker: the caller's side of a copy stays local. */
export type GrantCopyOp =
  /** Copy `len` bytes out of a frame granted to the caller; the reply carries them. */
  | { dir: 'from'; dom: number; ref: number; off: number; len: number }
  /** Copy bytes into a frame granted to the caller (writable grant required). */
  | { dir: 'to'; dom: number; ref: number; off: number; data: Uint8Array };
export interface GrantCopyResult {
  status: number;
  data?: Uint8Array;
}
export type XsOp =
  | 'read'
  | 'write'
  | 'mkdir'
  | 'rm'
  | 'directory'
  | 'get_perms'
  | 'set_perms'
  | 'watch'
  | 'unwatch'
  | 'tx_start'
  | 'tx_end';

/** Where a ring's header is: one of the sender's own frames (by GFN) or a mapping (by handle). */
export interface RingPageRef {
  mapped: boolean;
  page: number;
}

/** Messages a domain sends to the hypervisor. */
export type ClientMessage =
  // The first message, which authenticates the connection. The WebSocket upgrade before it may name
  // the same credential (`Authorization: Bearer …`): the broker then never gives the connection's
  // place to a newcomer while the hello is on its way.
  | { t: 'hello'; id: number; v: number; credential: string }
  | { t: 'dom_create'; id: number; name: string }
  | { t: 'dom_destroy'; id: number; domid: number }
  | { t: 'dom_list'; id: number }
  | {
      t: 'gnt_grant';
      id: number;
      ref: number;
      domid: number;
      gfn: number;
      readonly: boolean;
      data?: Uint8Array;
    }
  | { t: 'gnt_end'; id: number; refs: number[] }
  | { t: 'gnt_map'; id: number; ops: GrantMapOp[] }
  | { t: 'gnt_unmap'; id: number; handles: number[] }
  | { t: 'gnt_copy'; id: number; ops: GrantCopyOp[] }
  | { t: 'ev_alloc_unbound'; id: number; dom: number; remoteDom: number }
  | { t: 'ev_bind_interdomain'; id: number; remoteDom: number; remotePort: number }
  | { t: 'ev_close'; id: number; port: number }
  | { t: 'ev_status'; id: number; port: number }
  | { t: 'ev_mask'; id: number; port: number }
  | { t: 'ev_unmask'; id: number; port: number }
  | {
      t: 'xs';
      id: number;
      op: XsOp;
      tx: number;
      path?: string;
      value?: string;
      perms?: string[];
      token?: string;
      commit?: boolean;
    }
  | { t: 'fence'; id: number }
  // one-way, binary records
  | { t: 'ev_send'; port: number }
  | { t: 'ev_eoi'; port: number }
  | ({ t: 'ev_notify_if'; port: number; eventOff: number; oldProd: number; newProd: number } & RingPageRef)
  /** The owner writes its own frame (only frames it has granted are propagated). */
  | { t: 'mw'; gfn: number; off: number; data: Uint8Array }
  /** A mapper writes through its mapping handle. */
  | { t: 'gw'; handle: number; off: number; data: Uint8Array };

/** Messages the hypervisor sends to a domain. */
export type HypervisorMessage =
  | { t: 'ok'; id: number; r?: unknown }
  | { t: 'err'; id: number; code: string; message: string }
  | { t: 'ev'; port: number }
  | { t: 'xs_watch'; path: string; token: string }
  | { t: 'mw'; gfn: number; off: number; data: Uint8Array }
  | { t: 'gw'; handle: number; off: number; data: Uint8Array }
  /** Mappings removed because the granting domain went away. */
  | { t: 'unmapped'; handles: number[] };

export type ClientMessageType = ClientMessage['t'];
export type WireMessage = ClientMessage | HypervisorMessage;

/**
 * Page-write records that follow each other in a received frame, all of one kind (PAGE_OWN, or
 * PAGE_MAP when `mapped`): records [at, end) of `frame`, `count` of them, each already checked (its
 * range lies in the page and in the frame). What `decode*Frame` gives with `pageRuns` instead of one
 * message per record: a 128 KiB write is 33 page writes, and a message object, a dispatch and a
 * delivery each made per record cost the broker ≈ 1 µs a record. Read with `forEachPageRecord`.
 */
export interface PageRun {
  t: 'page_run';
  mapped: boolean;
  frame: Buffer;
  at: number;
  end: number;
  count: number;
}

/** Records a page run holds at most: a run is served as one slice of the broker's fair share. */
export const MAX_PAGE_RUN = 64;
/** Bytes of a page write's record before its data: kind, u32 ref, u16 off, u16 len. */
export const PAGE_RECORD_HEADER = 9;

/**
 * Visits a run's page writes in order: `fn(ref, off, start, len)` for each, its bytes being
 * `run.frame[start, start + len)` (no view made: the caller makes one if it keeps them). Stops early
 * when `fn` returns false.
 */
export function forEachPageRecord(
  run: PageRun,
  fn: (ref: number, off: number, start: number, len: number) => boolean | void,
): void {
  const f = run.frame;
  for (let at = run.at; at < run.end;) {
    const len = readU16LE(f, at + 7);
    const start = at + PAGE_RECORD_HEADER;
    if (fn(readU32LE(f, at + 1), readU16LE(f, at + 5), start, len) === false) return;
    at = start + len;
  }
}

/** One page write of a run as a message (error replies, and seams that see messages one by one). */
export function pageWriteMessage(
  mapped: boolean,
  ref: number,
  off: number,
  data: Uint8Array,
): Extract<WireMessage, { t: 'mw' | 'gw' }> {
  return mapped ? { t: 'gw', handle: ref, off, data } : { t: 'mw', gfn: ref, off, data };
}

/**
 * A MSG record left undecoded (`packed` decoding): the MessagePack body is `frame[at, end)`, record
 * `index` of its frame. `unpackClientMessage` decodes and checks it. The broker decodes each message
 * when it serves it rather than the whole frame on arrival: a frame of 8,000 XenStore writes took
 * 30-35 ms to decode, one stall every other domain's traffic waited behind, where the scheduler's
 * slices of the sender's messages are bounded (see the broker's scheduler.ts).
 */
export interface PackedMessage {
  t: 'packed';
  frame: Buffer;
  at: number;
  end: number;
  index: number;
  /** Shared by the records of one frame: the arrays, maps and binary values they have built so far. */
  budget: { objects: number };
}

/**
 * Decoding options: `pageRuns` groups page writes that follow each other (see PageRun); `packed`
 * leaves MSG records undecoded (see PackedMessage) — the frame's structure is checked all the same.
 */
export interface DecodeOptions {
  pageRuns?: boolean;
  packed?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Field checks for MSG records: each returns null when valid, else what was expected.

type Check = (v: MsgpackValue | undefined) => string | null;

const isUint =
  (max: number): Check =>
  (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max ? null : `an integer 0..${max}`;
const u16 = isUint(0xffff);
const u32 = isUint(0xffffffff);
const str =
  (maxLen: number): Check =>
  (v) =>
    typeof v === 'string' && Buffer.byteLength(v) <= maxLen ? null : `a string of at most ${maxLen} bytes`;
const bool: Check = (v) => (typeof v === 'boolean' ? null : 'a boolean');
const bytes =
  (maxLen: number): Check =>
  (v) =>
    v instanceof Uint8Array && v.length <= maxLen ? null : `bytes (at most ${maxLen})`;
const opt =
  (c: Check): Check =>
  (v) =>
    v === undefined || v === null ? null : c(v);
const arrayOf =
  (c: Check, maxLen: number): Check =>
  (v) => {
    if (!Array.isArray(v) || v.length > maxLen) return `an array of at most ${maxLen} items`;
    for (let i = 0; i < v.length; i++) {
      const e = c(v[i]);
      if (e) return `item ${i}: ${e}`;
    }
    return null;
  };
const isMap = (v: MsgpackValue | undefined): v is { [k: string]: MsgpackValue } =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
const obj =
  (fields: Record<string, Check>): Check =>
  (v) => {
    if (!isMap(v)) return 'a map';
    for (const [k, c] of Object.entries(fields)) {
      const e = c(v[k]);
      if (e) return `${k} must be ${e}`;
    }
    return null;
  };
const oneOf =
  (...vals: string[]): Check =>
  (v) =>
    typeof v === 'string' && vals.includes(v) ? null : `one of ${vals.join('|')}`;

/**
 * Batch limits per call, like Xen's: a hypercall does a bounded amount of work before it must be
 * continued, and a reply must fit a frame. Refused beyond them with E2BIG.
 */
export const MAX_MAP_OPS = 1024;
export const MAX_COPY_OPS = 1024;
export const MAX_END_REFS = 4096;

type MsgType = Exclude<ClientMessageType, 'ev_send' | 'ev_eoi' | 'ev_notify_if' | 'mw' | 'gw'>;

const CLIENT_SCHEMAS: Record<MsgType, Record<string, Check>> = {
  hello: { id: u32, v: u32, credential: str(256) },
  dom_create: { id: u32, name: str(64) },
  dom_destroy: { id: u32, domid: u16 },
  dom_list: { id: u32 },
  gnt_grant: { id: u32, ref: u32, domid: u16, gfn: u32, readonly: bool, data: opt(bytes(PAGE_SIZE)) },
  gnt_end: { id: u32, refs: arrayOf(u32, MAX_END_REFS) },
  gnt_map: { id: u32, ops: arrayOf(obj({ dom: u16, ref: u32, readonly: bool }), MAX_MAP_OPS) },
  gnt_unmap: { id: u32, handles: arrayOf(u32, MAX_MAP_OPS) },
  gnt_copy: {
    id: u32,
    ops: arrayOf((v) => {
      const d = obj({ dir: oneOf('from', 'to') })(v);
      if (d) return d;
      return (v as { dir: string }).dir === 'from'
        ? obj({ dom: u16, ref: u32, off: isUint(PAGE_SIZE), len: isUint(PAGE_SIZE) })(v)
        : obj({ dom: u16, ref: u32, off: isUint(PAGE_SIZE), data: bytes(PAGE_SIZE) })(v);
    }, MAX_COPY_OPS),
  },
  ev_alloc_unbound: { id: u32, dom: u16, remoteDom: u16 },
  ev_bind_interdomain: { id: u32, remoteDom: u16, remotePort: u32 },
  ev_close: { id: u32, port: u32 },
  ev_status: { id: u32, port: u32 },
  ev_mask: { id: u32, port: u32 },
  ev_unmask: { id: u32, port: u32 },
  xs: {
    id: u32,
    op: oneOf(
      'read',
      'write',
      'mkdir',
      'rm',
      'directory',
      'get_perms',
      'set_perms',
      'watch',
      'unwatch',
      'tx_start',
      'tx_end',
    ),
    tx: u32,
    path: opt(str(4096)),
    value: opt(str(4096)),
    perms: opt(arrayOf(str(16), 256)),
    token: opt(str(4096)),
    commit: opt(bool),
  },
  fence: { id: u32 },
};

const HYPERVISOR_SCHEMAS: Record<
  Exclude<HypervisorMessage['t'], 'ev' | 'mw' | 'gw'>,
  Record<string, Check>
> = {
  ok: { id: u32 },
  err: { id: u32, code: str(64), message: str(4096) },
  xs_watch: { path: str(4096), token: str(4096) },
  unmapped: { handles: arrayOf(u32, 1 << 20) },
};

/** What a peer sent, described without echoing it (error texts must not carry the peer's bytes). */
function describe(v: MsgpackValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'nil';
  if (typeof v === 'string')
    return /^[a-z_]{1,32}$/.test(v) ? `"${v}"` : `a string of ${Buffer.byteLength(v)} bytes`;
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a float';
  if (typeof v === 'boolean') return 'a boolean';
  if (v instanceof Uint8Array) return `${v.length} bytes of binary`;
  if (Array.isArray(v)) return `an array of ${v.length} items`;
  return 'a map';
}

/** A message that failed validation: `id` is set when the sender can be answered with an `err`. */
export interface InvalidMessage {
  index: number;
  id?: number;
  error: string;
}

function validateMsg<T>(
  raw: MsgpackValue,
  index: number,
  schemas: Record<string, Record<string, Check>>,
): { ok: true; msg: T } | { ok: false; bad: InvalidMessage } {
  if (!isMap(raw))
    return { ok: false, bad: { index, error: `message ${index}: ${describe(raw)}, not a map` } };
  const t = raw.t;
  const id = typeof raw.id === 'number' && u32(raw.id) === null ? raw.id : undefined;
  if (typeof t !== 'string' || !Object.hasOwn(schemas, t)) {
    return { ok: false, bad: { index, id, error: `message ${index}: unknown type ${describe(t)}` } };
  }
  const e = obj(schemas[t])(raw);
  if (e) return { ok: false, bad: { index, id, error: `message ${index} (${t}): ${e}` } };
  return { ok: true, msg: raw as unknown as T };
}

// ---------------------------------------------------------------------------------------------
// Encoding.

const packr = new Packr({
  useRecords: false,
  structuredClone: false,
  mapsAsObjects: true,
  variableMapSize: true,
  encodeUndefinedAsNil: true,
});

/** Messages other than page writes, which FrameWriter.page writes (and extends) itself. */
type RecordMessage = Exclude<WireMessage, { t: 'mw' | 'gw' }>;

/** Size of the record a message becomes, counting a MSG record's body (already packed) as `packed`. */
function recordSize(m: RecordMessage, packed: Uint8Array | null): number {
  switch (m.t) {
    case 'ev':
    case 'ev_send':
    case 'ev_eoi':
      return 5;
    case 'ev_notify_if':
      return 24;
    default:
      return 5 + packed!.length;
  }
}

function isBinary(m: RecordMessage): boolean {
  switch (m.t) {
    case 'ev':
    case 'ev_send':
    case 'ev_eoi':
    case 'ev_notify_if':
      return true;
    default:
      return false;
  }
}

function writeRecord(out: Buffer, at: number, m: RecordMessage, packed: Uint8Array | null): number {
  switch (m.t) {
    case 'ev':
    case 'ev_send':
    case 'ev_eoi':
      out[at] = m.t === 'ev_eoi' ? REC_EOI : REC_EVENT;
      writeU32LE(out, at + 1, m.port);
      return at + 5;
    case 'ev_notify_if':
      out[at] = REC_NOTIFY_IF;
      writeU32LE(out, at + 1, m.port);
      out[at + 5] = m.mapped ? 1 : 0;
      writeU32LE(out, at + 6, m.page);
      writeU16LE(out, at + 10, m.eventOff);
      writeU32LE(out, at + 12, m.oldProd >>> 0);
      writeU32LE(out, at + 16, m.newProd >>> 0);
      writeU32LE(out, at + 20, 0);
      return at + 24;
    default:
      out[at] = REC_MSG;
      writeU32LE(out, at + 1, packed!.length);
      copyInto(out, at + 5, packed!);
      return at + 5 + packed!.length;
  }
}

/**
 * The buffer a frame starts in, sized by the frame before it: a power of two from 8 KiB. Sized by the
 * largest frame so far instead, a writer that once carried a 1 MiB frame allocated 1 MiB for every
 * frame after it, an event's included — memory that V8 counts against its external-memory limit
 * when it decides to collect garbage.
 */
function frameBufferFor(previous: number): number {
  let size = 8192;
  while (size < previous) size *= 2;
  return size;
}

/** How many frames back a writer remembers sizes, to size a frame that outgrows its first buffer. */
const RECENT_FRAMES = 8;
/**
 * Frame buffers a writer keeps for reuse. It keeps any it sized for a frame up to its target (a
 * bigger one held a single record larger than that). Kept only up to 256 KiB, the buffers of the
 * host's frames of 128 KiB reads (three requests' pages, ≈ 400 KiB) and of the broker's frames of
 * them were new each turn: in 5 s of `pvblk bench --rw=read --bs=128k --iodepth=8`, 759 and 960
 * buffers (552 and 638 MB); with this limit, 16 and 19 (5.8 MB each). A writer that has carried
 * frames that big keeps up to 2 MiB of them.
 */
const POOLED_BUFFERS = 2;

/**
 * Frames written as messages are produced: each record is encoded into the frame being built at
 * once (page data copied from the caller's bytes there and then), so a turn's frame needs one
 * allocation and no message objects held until the flush. A page write that continues the previous
 * record's page write (same page, the next bytes) extends that record. Frames are cut between records
 * below `target` bytes; a record larger than the target gets a frame of its own.
 */
export class FrameWriter {
  private buf: Buffer;
  private len = 1;
  /** Records in the current frame (a page write that extends the previous one is not a new record). */
  private records = 0;
  private readonly done: Buffer[] = [];
  private doneBytes = 0;
  /** Offset of the last record in `buf` when it is a page write (so the next one can extend it). */
  private lastPage = -1;
  /** Sizes of the last RECENT_FRAMES frames, oldest overwritten first (see room). */
  private readonly recent = new Array<number>(RECENT_FRAMES).fill(0);
  private recentAt = 0;
  /** Buffers of frames the transport is done with (see recycle), for later frames that fit. */
  private readonly pool: SpareBuffers;

  constructor(
    private readonly target = WIRE_FRAME_TARGET,
    private readonly maxRecords = WIRE_MAX_RECORDS,
  ) {
    this.pool = new SpareBuffers(POOLED_BUFFERS, target + 64);
    this.buf = this.fresh(8192);
  }

  /** A buffer for a frame of up to `size` bytes: the smallest pooled one that fits, else a new one. */
  private fresh(size: number): Buffer {
    const b = this.pool.take(size);
    b[0] = WIRE_VERSION;
    return b;
  }

  /**
   * Gives back a frame `take` returned, once the transport has no use for its bytes any more (ws
   * masks a client's frame into a buffer of its own before `send` returns; a socket has written a
   * server's when its callback runs): its buffer then holds a later frame instead of a new one. A new
   * buffer per frame of a 128 KiB request meant a young-generation collection every few requests in
   * the guest and the broker. At most POOLED_BUFFERS are kept, of at most the target: a buffer kept
   * a while and then dropped has grown old, and costs a full collection instead.
   */
  recycle(frame: Buffer): void {
    // a frame not at its buffer's start shares the buffer; the current one still takes records
    const bytes = arrayBufferOf(frame);
    if (byteOffsetOf(frame) !== 0 || bytes === arrayBufferOf(this.buf)) return;
    this.pool.give(Buffer.from(bytes));
  }

  /** Bytes written and not taken yet. */
  get size(): number {
    return this.doneBytes + (this.len > 1 ? this.len : 0);
  }

  get empty(): boolean {
    return this.len === 1 && this.done.length === 0;
  }

  /**
   * Room for a record of `n` bytes: the current frame is cut when it would pass the target, or hold
   * more than `maxRecords` records.
   */
  private room(n: number): void {
    if (this.len > 1 && (this.len + n > this.target || this.records >= this.maxRecords)) this.cut();
    this.records++;
    if (this.len + n > this.buf.length) {
      // A frame that outgrows its buffer goes straight to the size of the largest recent frame, then
      // doubles: every growth copies what is written so far, and a connection whose big frames
      // alternate with small ones (requests and events to Dom0) built each big one from 8 KiB up,
      // copying up to twice its size on the way.
      const recent = Math.min(frameBufferFor(Math.max(...this.recent)), this.target + 64);
      const size = Math.max(this.len + n, this.buf.length < recent ? recent : this.buf.length * 2);
      const bigger = this.fresh(size);
      this.buf.copy(bigger, 0, 0, this.len);
      this.buf = bigger;
    }
  }

  private cut(): void {
    this.done.push(bufferView(this.buf, 0, this.len));
    this.doneBytes += this.len;
    this.recent[this.recentAt] = this.len;
    this.recentAt = (this.recentAt + 1) % RECENT_FRAMES;
    this.buf = this.fresh(Math.min(frameBufferFor(this.len), this.target + 64));
    this.len = 1;
    this.records = 0;
    this.lastPage = -1;
  }

  /** A page write: `len` bytes of `src` from `srcOff`, for offset `off` of the page. */
  page(mapped: boolean, ref: number, off: number, src: Uint8Array, srcOff: number, len: number): void {
    // a write of nothing is nothing; as a record it would be one the decoder refuses, frame and all
    if (len === 0) return;
    const kind = mapped ? REC_PAGE_MAP : REC_PAGE_OWN;
    const l = this.lastPage;
    const b = this.buf;
    if (l >= 0 && b[l] === kind && readU32LE(b, l + 1) === ref) {
      const lastLen = readU16LE(b, l + 7);
      if (readU16LE(b, l + 5) + lastLen === off && this.len + len <= b.length) {
        copyBytes(b, this.len, src, srcOff, srcOff + len);
        writeU16LE(b, l + 7, lastLen + len);
        this.len += len;
        return;
      }
    }
    this.room(9 + len);
    const at = this.len;
    this.buf[at] = kind;
    writeU32LE(this.buf, at + 1, ref >>> 0);
    writeU16LE(this.buf, at + 5, off);
    writeU16LE(this.buf, at + 7, len);
    copyBytes(this.buf, at + 9, src, srcOff, srcOff + len);
    this.len = at + 9 + len;
    this.lastPage = at;
  }

  /** Any message, as its record. */
  add(m: WireMessage): void {
    if (m.t === 'mw' || m.t === 'gw') {
      this.page(m.t === 'gw', m.t === 'mw' ? m.gfn : m.handle, m.off, m.data, 0, m.data.length);
      return;
    }
    const packed = isBinary(m) ? null : packr.pack(m);
    const n = recordSize(m, packed);
    this.room(n);
    this.len = writeRecord(this.buf, this.len, m, packed);
    this.lastPage = -1;
  }

  /** The frames written so far, in order; the writer starts afresh. */
  take(): Buffer[] {
    if (this.len > 1) this.cut();
    const out = this.done.splice(0);
    this.doneBytes = 0;
    return out;
  }
}

/**
 * Encodes messages into frames, in order, cutting between records so that no frame exceeds
 * `target` bytes (a single record larger than the target gets a frame of its own).
 */
export function encodeFrames(
  msgs: ReadonlyArray<WireMessage>,
  target = WIRE_FRAME_TARGET,
  maxRecords = WIRE_MAX_RECORDS,
): Buffer[] {
  const w = new FrameWriter(target, maxRecords);
  for (const m of msgs) w.add(m);
  return w.take();
}

/** One frame (tests and one-off sends; the message list must fit one). */
export function encodeFrame(msgs: ReadonlyArray<WireMessage>): Buffer {
  const f = encodeFrames(msgs, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  return f[0] ?? Buffer.from([WIRE_VERSION]);
}

// ---------------------------------------------------------------------------------------------
// Decoding.

export type DecodedFrame<T> =
  { ok: true; messages: T[]; invalid: InvalidMessage[] } | { ok: false; error: string };

type Side = 'client' | 'hypervisor';

/**
 * The error for a record of `n` bytes at `at` that runs past the frame, or null. A module-level
 * function rather than a closure in decodeFrameAs: the loader keeps function names, and naming a new
 * closure on every frame cost ≈ 3 µs a frame in each process (V8's profiler, 4 KiB writes at QD1).
 */
function truncated(buf: Buffer, at: number, n: number, index: number, what: string): string | null {
  return buf.length - at < n ? `record ${index} (${what}) at byte ${at} is truncated` : null;
}

/**
 * The frame's records, parsed and checked. A structural error (truncated record, unknown record kind,
 * bad page range) rejects the whole frame; a MSG record that is well-formed MessagePack but not a valid
 * message is listed in `invalid` and the rest of the frame stands.
 */
function decodeFrameAs<T>(frame: Uint8Array, side: Side, runs: boolean, packed = false): DecodedFrame<T> {
  if (frame.length > WIRE_MAX_FRAME)
    return { ok: false, error: `frame of ${frame.length} bytes exceeds ${WIRE_MAX_FRAME}` };
  if (frame.length < 2) return { ok: false, error: `frame of ${frame.length} bytes is too short` };
  if (frame[0] !== WIRE_VERSION)
    return { ok: false, error: `wire version ${frame[0]} is not supported (want ${WIRE_VERSION})` };
  const buf = Buffer.isBuffer(frame) ? frame : asBuffer(frame);
  const messages: T[] = [];
  const invalid: InvalidMessage[] = [];
  const schemas = side === 'client' ? CLIENT_SCHEMAS : HYPERVISOR_SCHEMAS;
  let at = 1;
  let index = 0;
  /** The run the previous record went into, while records of its kind follow it. */
  let run: PageRun | null = null;
  // what is left of the frame's WIRE_MAX_OBJECTS goes to each record in turn
  const budget = { objects: 0 };
  while (at < buf.length) {
    if (index >= WIRE_MAX_RECORDS)
      return { ok: false, error: `a frame of more than ${WIRE_MAX_RECORDS} records` };
    const kind = buf[at];
    let e: string | null = null;
    switch (kind) {
      case REC_MSG: {
        if ((e = truncated(buf, at, 5, index, 'message'))) return { ok: false, error: e };
        const len = readU32LE(buf, at + 1);
        if (len > WIRE_MAX_MESSAGE)
          return {
            ok: false,
            error: `record ${index}: a message of ${len} bytes is over ${WIRE_MAX_MESSAGE}`,
          };
        if ((e = truncated(buf, at, 5 + len, index, 'message'))) return { ok: false, error: e };
        if (packed) {
          messages.push({ t: 'packed', frame: buf, at: at + 5, end: at + 5 + len, index, budget } as T);
          at += 5 + len;
          break;
        }
        const r = decodeMessage<T>(buf, at + 5, at + 5 + len, index, budget, schemas);
        at += 5 + len;
        if (r.ok) messages.push(r.msg);
        else if (r.malformed) return { ok: false, error: r.bad.error };
        else invalid.push(r.bad);
        break;
      }
      case REC_PAGE_OWN:
      case REC_PAGE_MAP: {
        if ((e = truncated(buf, at, 9, index, 'page write'))) return { ok: false, error: e };
        const ref = readU32LE(buf, at + 1);
        const off = readU16LE(buf, at + 5);
        const len = readU16LE(buf, at + 7);
        if (len === 0 || off + len > PAGE_SIZE)
          return {
            ok: false,
            error: `record ${index}: a page write of ${len} bytes at ${off} is outside the page`,
          };
        if ((e = truncated(buf, at, 9 + len, index, 'page write'))) return { ok: false, error: e };
        const start = at;
        at += 9 + len;
        if (runs) {
          const mapped = kind === REC_PAGE_MAP;
          if (run && run.end === start && run.mapped === mapped && run.count < MAX_PAGE_RUN) {
            run.end = at;
            run.count++;
          } else {
            run = { t: 'page_run', mapped, frame: buf, at: start, end: at, count: 1 };
            messages.push(run as T);
          }
          break;
        }
        const data = buf.subarray(start + 9, at);
        messages.push(
          (kind === REC_PAGE_OWN
            ? { t: 'mw', gfn: ref, off, data }
            : { t: 'gw', handle: ref, off, data }) as T,
        );
        break;
      }
      case REC_EVENT:
      case REC_EOI: {
        if ((e = truncated(buf, at, 5, index, 'event'))) return { ok: false, error: e };
        const port = readU32LE(buf, at + 1);
        at += 5;
        if (side === 'hypervisor') {
          if (kind === REC_EOI) return { ok: false, error: `record ${index}: an EOI from the hypervisor` };
          messages.push({ t: 'ev', port } as T);
        } else messages.push({ t: kind === REC_EVENT ? 'ev_send' : 'ev_eoi', port } as T);
        break;
      }
      case REC_NOTIFY_IF: {
        if (side === 'hypervisor')
          return { ok: false, error: `record ${index}: a ring check from the hypervisor` };
        if ((e = truncated(buf, at, 24, index, 'ring check'))) return { ok: false, error: e };
        const port = readU32LE(buf, at + 1);
        const mappedByte = buf[at + 5];
        const page = readU32LE(buf, at + 6);
        const eventOff = readU16LE(buf, at + 10);
        const oldProd = readU32LE(buf, at + 12);
        const newProd = readU32LE(buf, at + 16);
        at += 24;
        if (mappedByte > 1 || eventOff > PAGE_SIZE - 4 || eventOff % 4 !== 0) {
          return { ok: false, error: `record ${index}: a ring check names a bad page or offset` };
        }
        const mapped = mappedByte === 1;
        messages.push({ t: 'ev_notify_if', port, mapped, page, eventOff, oldProd, newProd } as T);
        break;
      }
      default:
        return {
          ok: false,
          error: `record ${index} at byte ${at}: unknown record kind 0x${kind.toString(16)}`,
        };
    }
    index++;
  }
  return { ok: true, messages, invalid };
}

/** Decodes a frame from a domain (untrusted): valid messages plus a list of the invalid ones. Never throws. */
export function decodeClientFrame(frame: Uint8Array): DecodedFrame<ClientMessage>;
export function decodeClientFrame(
  frame: Uint8Array,
  opts: DecodeOptions & { packed: true },
): DecodedFrame<ClientMessage | PageRun | PackedMessage>;
export function decodeClientFrame(
  frame: Uint8Array,
  opts: DecodeOptions & { packed?: false },
): DecodedFrame<ClientMessage | PageRun>;
export function decodeClientFrame(
  frame: Uint8Array,
  opts: DecodeOptions,
): DecodedFrame<ClientMessage | PageRun | PackedMessage>;
export function decodeClientFrame(
  frame: Uint8Array,
  opts: DecodeOptions = {},
): DecodedFrame<ClientMessage | PageRun | PackedMessage> {
  return decodeFrameAs<ClientMessage | PageRun | PackedMessage>(
    frame,
    'client',
    opts.pageRuns === true,
    opts.packed === true,
  );
}

/**
 * A packed MSG record from a domain, decoded and checked as `decodeClientFrame` checks it — but where
 * that refuses the whole frame for a record that is not valid MessagePack, or for records that build
 * more than WIRE_MAX_OBJECTS together, the records before it have been served by now: this record
 * alone is invalid, and so is each after it that builds anything once the frame's budget is spent.
 */
export function unpackClientMessage(
  p: PackedMessage,
): { ok: true; msg: ClientMessage } | { ok: false; bad: InvalidMessage } {
  const r = decodeMessage<ClientMessage>(p.frame, p.at, p.end, p.index, p.budget, CLIENT_SCHEMAS);
  return r.ok ? r : { ok: false, bad: r.bad };
}

/**
 * The MSG record `index` whose body is `buf[start, end)`: decoded (from what is left of its frame's
 * WIRE_MAX_OBJECTS, which it then uses up) and checked. `malformed` when it is not valid MessagePack,
 * or builds more than the frame has left — what refuses a frame decoded whole.
 */
function decodeMessage<T>(
  buf: Buffer,
  start: number,
  end: number,
  index: number,
  budget: { objects: number },
  schemas: Record<string, Record<string, Check>>,
): { ok: true; msg: T } | { ok: false; bad: InvalidMessage; malformed?: true } {
  const left = WIRE_MAX_OBJECTS - budget.objects;
  const limits =
    left >= DEFAULT_MSGPACK_LIMITS.maxObjects
      ? DEFAULT_MSGPACK_LIMITS
      : { ...DEFAULT_MSGPACK_LIMITS, maxObjects: left };
  const d = decodeMsgpack(buf, start, end, limits);
  if (!d.ok) {
    // over the objects left of the frame's budget, not a record's own limit
    const frameBudget = d.overObjects && limits.maxObjects < DEFAULT_MSGPACK_LIMITS.maxObjects;
    const error = frameBudget
      ? `record ${index}: the frame's records build more than ${WIRE_MAX_OBJECTS} arrays, maps and binary values`
      : `record ${index}: not valid MessagePack: ${d.error}`;
    return { ok: false, bad: { index, error }, malformed: true };
  }
  budget.objects += d.objects;
  return validateMsg<T>(d.value, index, schemas);
}

/** Decodes a frame from the hypervisor. Never throws. */
export function decodeHypervisorFrame(frame: Uint8Array): DecodedFrame<HypervisorMessage>;
export function decodeHypervisorFrame(
  frame: Uint8Array,
  opts: DecodeOptions,
): DecodedFrame<HypervisorMessage | PageRun>;
export function decodeHypervisorFrame(
  frame: Uint8Array,
  opts: DecodeOptions = {},
): DecodedFrame<HypervisorMessage | PageRun> {
  return decodeFrameAs<HypervisorMessage | PageRun>(frame, 'hypervisor', opts.pageRuns === true);
}

/** True when a page is all zeros: such pages travel without their contents. */
export function isZeroPage(b: Uint8Array): boolean {
  // word-at-a-time where alignment allows: this runs on every page granted or mapped
  if (b.byteOffset % 4 === 0 && b.length % 4 === 0) {
    const w = new Uint32Array(b.buffer, b.byteOffset, b.length / 4);
    for (let i = 0; i < w.length; i++) if (w[i] !== 0) return false;
    return true;
  }
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
