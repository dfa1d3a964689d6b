/**
 * A strict MessagePack decoder for input from peers that are not trusted.
 *
 * General-purpose decoders are generous on purpose: msgpackr, for instance, always understands its
 * extensions (BigInt, Error, RegExp, Set, typed arrays, and structured-clone references that can build
 * cycles) and turns 64-bit integers into BigInts. None of that is part of pvblk's wire protocol, and
 * each of it has crashed or stalled a broker that decoded a stranger's frame. This decoder accepts the
 * subset the protocol uses — nil, booleans, integers that fit a JavaScript number exactly, floats,
 * UTF-8 strings, binary, arrays and maps with string keys — and answers anything else with an error
 * that says what was found and where, never with an exception.
 *
 * Binary values are returned as views into the input (no copy); maps are objects without a prototype,
 * so a key such as `__proto__` is just a key. Nesting depth, container sizes and the number of objects
 * built are bounded, and a container can never claim more elements than there are bytes left to hold
 * them.
 */

export type MsgpackValue =
  null | boolean | number | string | Uint8Array | MsgpackValue[] | { [key: string]: MsgpackValue };

export interface MsgpackLimits {
  /** Containers inside containers (the top-level value is depth 1). */
  maxDepth: number;
  /** Elements of one array, or entries of one map. */
  maxItems: number;
  /**
   * Arrays, maps and binary values in all: each is a heap object of 50-200 bytes made from as little
   * as one input byte (an empty map is 0x80), where the element bound alone let a 1 MB record build
   * 180 MB of objects. A caller decoding many values from one input (a frame) passes what is left of
   * its own budget.
   */
  maxObjects: number;
}

export const DEFAULT_MSGPACK_LIMITS: Readonly<MsgpackLimits> = Object.freeze({
  maxDepth: 8,
  maxItems: 65536,
  maxObjects: 65536,
});

/**
 * `objects`: the arrays, maps and binary values the value is made of; `overObjects`: it was refused
 * for having more than maxObjects (see there).
 */
export type MsgpackResult =
  { ok: true; value: MsgpackValue; objects: number } | { ok: false; error: string; overObjects?: true };

const utf8 = new TextDecoder('utf-8', { fatal: true });

class Reader {
  pos: number;
  objects = 0;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
    readonly view: DataView,
  ) {
    this.pos = start;
  }
}

/** Thrown inside the decoder only; `decodeMsgpack` turns it into an error result. */
class Malformed {
  constructor(
    readonly error: string,
    readonly overObjects = false,
  ) {}
}

function need(r: Reader, n: number, what: string): void {
  if (r.end - r.pos < n) {
    throw new Malformed(`${what} at byte ${r.pos} needs ${n} bytes, ${r.end - r.pos} left`);
  }
}

function u8(r: Reader): number {
  need(r, 1, 'a length');
  return r.buf[r.pos++];
}
function u16(r: Reader): number {
  need(r, 2, 'a length');
  const v = r.view.getUint16(r.pos);
  r.pos += 2;
  return v;
}
function u32(r: Reader): number {
  need(r, 4, 'a length');
  const v = r.view.getUint32(r.pos);
  r.pos += 4;
  return v;
}

function str(r: Reader, len: number): string {
  need(r, len, 'a string');
  const bytes = r.buf.subarray(r.pos, r.pos + len);
  r.pos += len;
  try {
    return utf8.decode(bytes);
  } catch {
    throw new Malformed(`a string of ${len} bytes ending at byte ${r.pos} is not valid UTF-8`);
  }
}

/** One more array, map or binary value, within the budget. */
function object(r: Reader, lim: MsgpackLimits): void {
  if (++r.objects > lim.maxObjects)
    throw new Malformed(
      `more than ${lim.maxObjects} arrays, maps and binary values (at byte ${r.pos})`,
      true,
    );
}

function bin(r: Reader, len: number, lim: MsgpackLimits): Uint8Array {
  object(r, lim);
  need(r, len, 'binary data');
  const b = r.buf.subarray(r.pos, r.pos + len);
  r.pos += len;
  return b;
}

function int64(r: Reader, signed: boolean): number {
  need(r, 8, 'a 64-bit integer');
  const at = r.pos;
  const v = signed ? r.view.getBigInt64(at) : r.view.getBigUint64(at);
  r.pos += 8;
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new Malformed(`the 64-bit integer at byte ${at - 1} is outside ±2^53`);
  }
  return Number(v);
}

function array(r: Reader, n: number, depth: number, lim: MsgpackLimits): MsgpackValue[] {
  object(r, lim);
  if (n > lim.maxItems) throw new Malformed(`an array of ${n} items is over the limit of ${lim.maxItems}`);
  // every element takes at least one byte: a claim beyond the bytes left is a lie, refused before allocating
  if (n > r.end - r.pos)
    throw new Malformed(`an array of ${n} items cannot fit in the ${r.end - r.pos} bytes left`);
  const out = new Array<MsgpackValue>(n);
  for (let i = 0; i < n; i++) out[i] = value(r, depth + 1, lim);
  return out;
}

function map(r: Reader, n: number, depth: number, lim: MsgpackLimits): { [key: string]: MsgpackValue } {
  object(r, lim);
  if (n > lim.maxItems) throw new Malformed(`a map of ${n} entries is over the limit of ${lim.maxItems}`);
  if (2 * n > r.end - r.pos)
    throw new Malformed(`a map of ${n} entries cannot fit in the ${r.end - r.pos} bytes left`);
  const out = Object.create(null) as { [key: string]: MsgpackValue };
  for (let i = 0; i < n; i++) {
    const at = r.pos;
    const k = value(r, depth + 1, lim);
    if (typeof k !== 'string') throw new Malformed(`the map key at byte ${at} is not a string`);
    if (Object.hasOwn(out, k)) throw new Malformed(`the map key at byte ${at} appears twice`);
    out[k] = value(r, depth + 1, lim);
  }
  return out;
}

function value(r: Reader, depth: number, lim: MsgpackLimits): MsgpackValue {
  if (depth > lim.maxDepth) throw new Malformed(`nesting deeper than ${lim.maxDepth} at byte ${r.pos}`);
  need(r, 1, 'a value');
  const at = r.pos;
  const b = r.buf[r.pos++];
  if (b <= 0x7f) return b;
  if (b >= 0xe0) return b - 0x100;
  if (b >= 0xa0 && b <= 0xbf) return str(r, b & 0x1f);
  if (b >= 0x90 && b <= 0x9f) return array(r, b & 0x0f, depth, lim);
  if (b >= 0x80 && b <= 0x8f) return map(r, b & 0x0f, depth, lim);
  const v = r.view;
  switch (b) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
      return bin(r, u8(r), lim);
    case 0xc5:
      return bin(r, u16(r), lim);
    case 0xc6:
      return bin(r, u32(r), lim);
    case 0xca: {
      need(r, 4, 'a float');
      const x = v.getFloat32(r.pos);
      r.pos += 4;
      return x;
    }
    case 0xcb: {
      need(r, 8, 'a float');
      const x = v.getFloat64(r.pos);
      r.pos += 8;
      return x;
    }
    case 0xcc:
      return u8(r);
    case 0xcd:
      return u16(r);
    case 0xce:
      return u32(r);
    case 0xcf:
      return int64(r, false);
    case 0xd0: {
      need(r, 1, 'an integer');
      return v.getInt8(r.pos++);
    }
    case 0xd1: {
      need(r, 2, 'an integer');
      const x = v.getInt16(r.pos);
      r.pos += 2;
      return x;
    }
    case 0xd2: {
      need(r, 4, 'an integer');
      const x = v.getInt32(r.pos);
      r.pos += 4;
      return x;
    }
    case 0xd3:
      return int64(r, true);
    case 0xd9:
      return str(r, u8(r));
    case 0xda:
      return str(r, u16(r));
    case 0xdb:
      return str(r, u32(r));
    case 0xdc:
      return array(r, u16(r), depth, lim);
    case 0xdd:
      return array(r, u32(r), depth, lim);
    case 0xde:
      return map(r, u16(r), depth, lim);
    case 0xdf:
      return map(r, u32(r), depth, lim);
    case 0xc7:
    case 0xc8:
    case 0xc9:
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      throw new Malformed(
        `a msgpack extension (0x${b.toString(16)}) at byte ${at}: extensions are not part of the protocol`,
      );
    default:
      throw new Malformed(`byte 0x${b.toString(16)} at ${at} is not a msgpack type`);
  }
}

/**
 * Decodes exactly one value spanning `buf[start, end)`. Never throws: malformed input, trailing
 * bytes, extensions, unsafe integers, bad UTF-8 and limit violations are error results.
 */
export function decodeMsgpack(
  buf: Uint8Array,
  start = 0,
  end = buf.length,
  limits: MsgpackLimits = DEFAULT_MSGPACK_LIMITS,
): MsgpackResult {
  // positions in errors count from `start`: the value's own first byte is byte 0
  const b = buf.subarray(start, end);
  const r = new Reader(b, 0, b.length, new DataView(b.buffer, b.byteOffset, b.byteLength));
  try {
    const v = value(r, 1, limits);
    if (r.pos !== b.length) return { ok: false, error: `${b.length - r.pos} bytes after the value` };
    return { ok: true, value: v, objects: r.objects };
  } catch (e) {
    if (e instanceof Malformed)
      return e.overObjects ? { ok: false, error: e.error, overObjects: true } : { ok: false, error: e.error };
    // a decoder bug, or the engine running out of something: still an answer, never an exception
    return { ok: false, error: `undecodable (${e instanceof Error ? e.name : 'error'})` };
  }
}
