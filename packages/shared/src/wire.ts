/**
 * The broker wire protocol: how a domain's process talks to the hypervisor over one WebSocket.
 *
 * A frame is one binary WebSocket message: a version byte, then a msgpack array of messages. All the
 * messages a process produces in one event-loop turn travel in one frame (a ring push followed by its
 * notification maps naturally onto that), and the receiver handles them in order — which is what makes
 * "writes before a notification are visible before the notification is handled" hold.
 *
 * Calls carry an `id` and get exactly one `ok`/`err` reply with the same id. Page writes, event sends
 * and EOIs are one-way. Everything decoded here is untrusted: `decodeFrame` never throws, and each
 * message is checked field by field against its schema, with errors that name the message, the field
 * and what was expected.
 */
import { Packr } from 'msgpackr';

export const WIRE_VERSION = 1;
/** Largest frame accepted: a map of 256 indirect segments returns 1 MiB of page contents. */
export const WIRE_MAX_FRAME = 16 * 1024 * 1024;
export const PAGE_SIZE = 4096;

// ---------------------------------------------------------------------------------------------
// Field checks: each returns null when valid, else what was expected.
type Check = (v: unknown) => string | null;

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
const obj =
  (fields: Record<string, Check>): Check =>
  (v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return 'a map';
    for (const [k, c] of Object.entries(fields)) {
      const e = c((v as Record<string, unknown>)[k]);
      if (e) return `${k} must be ${e}`;
    }
    return null;
  };
const oneOf =
  (...vals: string[]): Check =>
  (v) =>
    typeof v === 'string' && vals.includes(v) ? null : `one of ${vals.join('|')}`;

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

/** Messages a domain sends to the hypervisor. */
export type ClientMessage =
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
  // one-way
  | { t: 'ev_send'; port: number }
  | { t: 'ev_eoi'; port: number }
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

const CLIENT_SCHEMAS: Record<ClientMessageType, Record<string, Check>> = {
  hello: { id: u32, v: u32, credential: str(256) },
  dom_create: { id: u32, name: str(64) },
  dom_destroy: { id: u32, domid: u16 },
  dom_list: { id: u32 },
  gnt_grant: { id: u32, ref: u32, domid: u16, gfn: u32, readonly: bool, data: opt(bytes(PAGE_SIZE)) },
  gnt_end: { id: u32, refs: arrayOf(u32, 4096) },
  gnt_map: { id: u32, ops: arrayOf(obj({ dom: u16, ref: u32, readonly: bool }), 4096) },
  gnt_unmap: { id: u32, handles: arrayOf(u32, 4096) },
  gnt_copy: {
    id: u32,
    ops: arrayOf((v) => {
      const d = obj({ dir: oneOf('from', 'to') })(v);
      if (d) return d;
      return (v as { dir: string }).dir === 'from'
        ? obj({ dom: u16, ref: u32, off: isUint(PAGE_SIZE), len: isUint(PAGE_SIZE) })(v)
        : obj({ dom: u16, ref: u32, off: isUint(PAGE_SIZE), data: bytes(PAGE_SIZE) })(v);
    }, 4096),
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
  ev_send: { port: u32 },
  ev_eoi: { port: u32 },
  mw: { gfn: u32, off: isUint(PAGE_SIZE - 1), data: bytes(PAGE_SIZE) },
  gw: { handle: u32, off: isUint(PAGE_SIZE - 1), data: bytes(PAGE_SIZE) },
};

const HYPERVISOR_SCHEMAS: Record<HypervisorMessage['t'], Record<string, Check>> = {
  ok: { id: u32 },
  err: { id: u32, code: str(64), message: str(4096) },
  ev: { port: u32 },
  xs_watch: { path: str(4096), token: str(4096) },
  mw: { gfn: u32, off: isUint(PAGE_SIZE - 1), data: bytes(PAGE_SIZE) },
  gw: { handle: u32, off: isUint(PAGE_SIZE - 1), data: bytes(PAGE_SIZE) },
  unmapped: { handles: arrayOf(u32, 1 << 20) },
};

/** A message that failed validation: `id` is set when the sender can be answered with an `err`. */
export interface InvalidMessage {
  index: number;
  id?: number;
  error: string;
}

function validate<T extends { t: string }>(
  raw: unknown,
  index: number,
  schemas: Record<string, Record<string, Check>>,
): { ok: true; msg: T } | { ok: false; bad: InvalidMessage } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, bad: { index, error: `message ${index}: not a map` } };
  }
  const m = raw as Record<string, unknown>;
  const t = m.t;
  const id = typeof m.id === 'number' && u32(m.id) === null ? m.id : undefined;
  if (typeof t !== 'string' || !Object.hasOwn(schemas, t)) {
    return { ok: false, bad: { index, id, error: `message ${index}: unknown type ${JSON.stringify(t)}` } };
  }
  const e = obj(schemas[t])(m);
  if (e) return { ok: false, bad: { index, id, error: `message ${index} (${t}): ${e}` } };
  // segment offsets must stay within the page (GNTST_bad_copy_arg is for semantic checks; this is shape)
  if ((t === 'mw' || t === 'gw') && (m.off as number) + (m.data as Uint8Array).length > PAGE_SIZE) {
    return {
      ok: false,
      bad: { index, id, error: `message ${index} (${t}): off + data.length exceeds the page` },
    };
  }
  return { ok: true, msg: m as unknown as T };
}

// ---------------------------------------------------------------------------------------------
// Frames.

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

export function encodeFrame(msgs: ReadonlyArray<ClientMessage | HypervisorMessage>): Buffer {
  const body = packr.pack(msgs);
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = WIRE_VERSION;
  body.copy(out, 1);
  return out;
}

export type DecodedFrame<T> =
  { ok: true; messages: T[]; invalid: InvalidMessage[] } | { ok: false; error: string };

function decodeRaw(frame: Uint8Array): { ok: true; items: unknown[] } | { ok: false; error: string } {
  if (frame.length > WIRE_MAX_FRAME)
    return { ok: false, error: `frame of ${frame.length} bytes exceeds ${WIRE_MAX_FRAME}` };
  if (frame.length < 2) return { ok: false, error: `frame of ${frame.length} bytes is too short` };
  if (frame[0] !== WIRE_VERSION)
    return { ok: false, error: `wire version ${frame[0]} is not supported (want ${WIRE_VERSION})` };
  let items: unknown;
  try {
    items = packr.unpack(frame.subarray(1));
  } catch (e) {
    return { ok: false, error: `frame is not valid msgpack: ${(e as Error).message}` };
  }
  if (!Array.isArray(items)) return { ok: false, error: 'frame body is not an array of messages' };
  return { ok: true, items };
}

function decodeWith<T extends { t: string }>(
  frame: Uint8Array,
  schemas: Record<string, Record<string, Check>>,
): DecodedFrame<T> {
  const raw = decodeRaw(frame);
  if (!raw.ok) return raw;
  const messages: T[] = [];
  const invalid: InvalidMessage[] = [];
  raw.items.forEach((item, i) => {
    const r = validate<T>(item, i, schemas);
    if (r.ok) messages.push(r.msg);
    else invalid.push(r.bad);
  });
  return { ok: true, messages, invalid };
}

/** Decodes a frame from a domain (untrusted): valid messages plus a list of the invalid ones. */
export function decodeClientFrame(frame: Uint8Array): DecodedFrame<ClientMessage> {
  return decodeWith<ClientMessage>(frame, CLIENT_SCHEMAS);
}

/** Decodes a frame from the hypervisor. */
export function decodeHypervisorFrame(frame: Uint8Array): DecodedFrame<HypervisorMessage> {
  return decodeWith<HypervisorMessage>(frame, HYPERVISOR_SCHEMAS);
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
