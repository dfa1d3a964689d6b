/**
 * Byte access for the data path: fixed-width fields read and written by element, views and copies of
 * a range, without loading a method or accessor from the array.
 *
 * Why: on Node 20 (V8 11.3) optimized code loads a typed array's methods and accessors —
 * `buf.readUInt16LE`, `buf.set`, `buf.subarray`, `buf.copy`, `buf.buffer`, `buf.byteOffset` — with
 * a call of V8's generic LoadIC builtin each time, not inline (a uprobe on `Builtins_LoadIC` counts
 * one call per load in a loop of `b.byteOffset`, for a Buffer and a plain Uint8Array alike). During
 * 128 KiB reads at QD8 each of pvblk's three processes made ≈ 50 such calls per request, 4 KiB PI
 * writes ≈ 100 in all, and `perf` put 7 % of the broker's samples in them. `Buffer#subarray` costs
 * more again: Node's Buffer subclass sends it through the species constructor. Element access
 * (`b[i]`, `b.length`) is compiled inline, and the prototype's functions taken once here and called
 * with `.call` are not looked up at all. docs/performance.md has the before and after.
 */
const typedArray = Object.getPrototypeOf(Uint8Array.prototype) as Uint8Array;
const setInto = typedArray.set as (this: Uint8Array, src: ArrayLike<number>, at?: number) => void;
const fillWith = typedArray.fill as (this: Uint8Array, v: number, start?: number, end?: number) => unknown;
const accessor = (name: string) => Object.getOwnPropertyDescriptor(typedArray, name)!.get!;
const bufferGet = accessor('buffer') as (this: Uint8Array) => ArrayBuffer;
const byteOffsetGet = accessor('byteOffset') as (this: Uint8Array) => number;

// An element past the end reads as undefined and a store there is dropped, where Buffer's readers
// and writers throw: these check, as they do, and refuse a value out of the field's range rather
// than wrap it.

function outside(b: Uint8Array, at: number, n: number): boolean {
  return !(at >= 0 && at + n <= b.length);
}

function outOfBounds(b: Uint8Array, at: number, n: number): RangeError {
  return new RangeError(`${n} bytes at ${at} are not within ${b.length}`);
}

function outOfRange(v: number | bigint, range: string): RangeError {
  return new RangeError(`${v} is out of range for a field of ${range}`);
}

export function readU8(b: Uint8Array, at: number): number {
  if (outside(b, at, 1)) throw outOfBounds(b, at, 1);
  return b[at];
}

export function readU16LE(b: Uint8Array, at: number): number {
  if (outside(b, at, 2)) throw outOfBounds(b, at, 2);
  return b[at] | (b[at + 1] << 8);
}

export function readI16LE(b: Uint8Array, at: number): number {
  const v = readU16LE(b, at);
  return v >= 0x8000 ? v - 0x10000 : v;
}

export function readU32LE(b: Uint8Array, at: number): number {
  if (outside(b, at, 4)) throw outOfBounds(b, at, 4);
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)) + b[at + 3] * 0x1000000;
}

export function readU64LE(b: Uint8Array, at: number): bigint {
  const lo = readU32LE(b, at);
  return BigInt(lo) + (BigInt(readU32LE(b, at + 4)) << 32n);
}

export function writeU8(b: Uint8Array, at: number, v: number): void {
  if (!(v >= 0 && v <= 0xff)) throw outOfRange(v, '0..255');
  if (outside(b, at, 1)) throw outOfBounds(b, at, 1);
  b[at] = v;
}

export function writeU16LE(b: Uint8Array, at: number, v: number): void {
  if (!(v >= 0 && v <= 0xffff)) throw outOfRange(v, '0..65535');
  if (outside(b, at, 2)) throw outOfBounds(b, at, 2);
  b[at] = v;
  b[at + 1] = v >>> 8;
}

export function writeI16LE(b: Uint8Array, at: number, v: number): void {
  if (!(v >= -0x8000 && v <= 0x7fff)) throw outOfRange(v, '-32768..32767');
  writeU16LE(b, at, v & 0xffff);
}

export function writeU32LE(b: Uint8Array, at: number, v: number): void {
  if (!(v >= 0 && v <= 0xffffffff)) throw outOfRange(v, '0..2^32-1');
  if (outside(b, at, 4)) throw outOfBounds(b, at, 4);
  b[at] = v;
  b[at + 1] = v >>> 8;
  b[at + 2] = v >>> 16;
  b[at + 3] = v >>> 24;
}

export function writeU64LE(b: Uint8Array, at: number, v: bigint): void {
  if (!(v >= 0n && v <= 0xffffffffffffffffn)) throw outOfRange(v, '0..2^64-1');
  if (outside(b, at, 8)) throw outOfBounds(b, at, 8);
  writeU32LE(b, at, Number(v & 0xffffffffn));
  writeU32LE(b, at + 4, Number(v >> 32n));
}

/** Sets bytes [start, end) of `b` to `v`: TypedArray's fill, not Buffer's (which also parses strings). */
export function fillBytes(b: Uint8Array, v: number, start = 0, end = b.length): void {
  fillWith.call(b, v, start, end);
}

/**
 * `n` zeroed bytes from Node's pool: `Buffer.alloc` would give each its own ArrayBuffer, which cost
 * ≈ 0.3 µs a request for the ring slots and descriptor pages made per request.
 */
export function zeroedBytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  fillBytes(b, 0);
  return b;
}

/** `b.buffer`. */
export function arrayBufferOf(b: Uint8Array): ArrayBuffer {
  return bufferGet.call(b);
}

/** `b.byteOffset`. */
export function byteOffsetOf(b: Uint8Array): number {
  return byteOffsetGet.call(b);
}

/**
 * A view is checked against `b` itself: made from `b`'s ArrayBuffer, a view past `b`'s end would
 * show the bytes beside it (another buffer of Node's pool, say), where `subarray` clamps to `b`.
 */
function within(b: Uint8Array, start: number, len: number): void {
  if (!(start >= 0 && len >= 0 && start + len <= b.length))
    throw new RangeError(`bytes ${start}..${start + len} are not within ${b.length}`);
}

/** A plain Uint8Array over bytes [start, start + len) of `b`, sharing its memory. */
export function bytesView(b: Uint8Array, start: number, len: number): Uint8Array {
  within(b, start, len);
  return new Uint8Array(bufferGet.call(b), byteOffsetGet.call(b) + start, len);
}

/** The same as a Buffer, for what takes Buffers (a socket's frames, Buffer-typed interfaces). */
export function bufferView(b: Uint8Array, start: number, len: number): Buffer {
  within(b, start, len);
  return Buffer.from(bufferGet.call(b), byteOffsetGet.call(b) + start, len);
}

/** A Buffer over all of `b`. */
export function asBuffer(b: Uint8Array): Buffer {
  return bufferView(b, 0, b.length);
}

/** The bytes of `b` as latin1 text (one character a byte), as the guest's tools print binary data. */
export function latin1Text(b: Uint8Array): string {
  return asBuffer(b).toString('latin1');
}

/** Copies all of `src` into `dst` at `at`; a RangeError if it does not fit. */
export function copyInto(dst: Uint8Array, at: number, src: Uint8Array): void {
  setInto.call(dst, src, at);
}

/** Copies bytes [start, end) of `src` into `dst` at `at`; a RangeError if either range is outside. */
export function copyBytes(dst: Uint8Array, at: number, src: Uint8Array, start: number, end: number): void {
  // all of `src` needs no view (a page write forwarded as it came is one)
  if (start === 0 && end === src.length) setInto.call(dst, src, at);
  else setInto.call(dst, bytesView(src, start, end - start), at);
}
