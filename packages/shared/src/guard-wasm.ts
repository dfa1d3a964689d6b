/**
 * The inner loops of the two PI guard functions (crc.ts) as WebAssembly functions, assembled here
 * byte by byte (no toolchain, no binary in the tree). The CRC's slicing-by-16 step, which V8 ran from
 * JavaScript, is 1.3× faster as WebAssembly on a 512-byte sector and 1.5× on 4 KiB and more
 * (crc.bench.ts): it reads the 16 bytes as two 64-bit loads instead of 16 bounds-checked byte loads,
 * and its table loads need no bounds checks. A guard runs over every sector of every PI-protected I/O
 * in both the guest and the host, which made the CRC the largest single item of either at 4 KiB with
 * PI; the Internet checksum, DIX's cheaper guard, moved with it so that it stays the cheaper one.
 *
 * Memory layout: the 16 CRC lookup tables (u16, little-endian) at 0, then a scratch area the caller
 * copies its bytes into (WebAssembly sees only its own memory).
 *
 * - `crc(p, end, c)` returns the CRC register after feeding memory [p, end) into register `c`.
 * - `ipsum(p, end)` returns the one's-complement sum of memory [p, end) as little-endian 16-bit
 *   words (a trailing odd byte as a word of its own), folded to 16 bits. The Internet checksum's
 *   words are big-endian; a one's-complement sum taken in the other byte order is the byte-swapped
 *   sum (RFC 1071, section 2), so the caller swaps once at the end.
 * - `crcs(p, end, interval, out)` and `ipsums(p, end, interval, out)` run the one or the other over
 *   each `interval` bytes of [p, end) from a zero register, storing the results as u16 at `out`,
 *   `out + 2`, …, and return how many they stored. A PI buffer is checked interval by interval
 *   (512 bytes, eight per 4 KiB): one call for all of them instead of one each saved about a third
 *   of generatePi's time over 4 KiB (crc.bench.ts) — the calls' own cost, not the loop's.
 */

/** Bytes the tables take: 16 tables of 256 u16 entries. */
const CRC_TABLES_BYTES = 16 * 256 * 2;
/** Where the scratch area starts, and how much one call can take. */
export const SCRATCH = CRC_TABLES_BYTES;
export const SCRATCH_BYTES = 64 * 1024;
/** Where `crcs` and `ipsums` store their results: one u16 for each interval of the scratch area. */
export const RESULTS = SCRATCH + SCRATCH_BYTES;
/** Memory in 64 KiB WebAssembly pages: the tables, the scratch area and the results (≥ 1 byte an interval). */
const MEMORY_PAGES = Math.ceil((RESULTS + SCRATCH_BYTES / 2) / 65536);

// The few opcodes the two functions use (WebAssembly core spec, section 5.4).
const BLOCK = 0x02;
const LOOP = 0x03;
const IF = 0x04;
const BR = 0x0c;
const BR_IF = 0x0d;
const END = 0x0b;
const VOID = 0x40;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const I64_LOAD = 0x29;
const I32_LOAD8_U = 0x2d;
const I32_LOAD16_U = 0x2f;
const I32_STORE16 = 0x3b;
const CALL = 0x10;
const I32_CONST = 0x41;
const I64_CONST = 0x42;
const I32_LT_U = 0x49;
const I32_GT_U = 0x4b;
const I32_GE_U = 0x4f;
const I64_LE_U = 0x58;
const I32_ADD = 0x6a;
const I32_SUB = 0x6b;
const I32_AND = 0x71;
const I32_XOR = 0x73;
const I32_SHL = 0x74;
const I32_SHR_U = 0x76;
const I64_ADD = 0x7c;
const I64_AND = 0x83;
const I64_SHR_U = 0x88;
const I32_WRAP_I64 = 0xa7;
const I64_EXTEND_I32_U = 0xad;
const I32 = 0x7f;
const I64 = 0x7e;

// Parameters and locals by index.
const P = 0;
const END_AT = 1;
const C = 2;
const A = 3;
const B = 4;
const STEP_END = 5;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

const i32 = (v: number): number[] => [I32_CONST, ...sleb(v)];
const get = (l: number): number[] => [LOCAL_GET, l];
const set = (l: number): number[] => [LOCAL_SET, l];

/** Byte `k` (0 = lowest, the first in memory) of the 64-bit local `w`, as an i32. */
function byteOf(w: number, k: number): number[] {
  const shifted = k === 0 ? get(w) : [...get(w), I64_CONST, ...sleb(k * 8), I64_SHR_U];
  return [...shifted, I32_WRAP_I64, ...i32(0xff), I32_AND];
}

/** `table[t][index]`, index on the stack: a u16 load at t * 512 + index * 2. */
function lookup(t: number, index: number[]): number[] {
  return [...index, ...i32(1), I32_SHL, I32_LOAD16_U, 1, ...uleb(t * 512)];
}

function crcBody(): number[] {
  // One 16-byte step: byte j of the step (j = 0 first) goes through table 15 - j; the register's
  // high and low bytes fold into the first two (see crc.ts).
  const step: number[] = [];
  for (let j = 0; j < 16; j++) {
    let index = byteOf(j < 8 ? A : B, j % 8);
    if (j === 0) index = [...index, ...get(C), ...i32(8), I32_SHR_U, I32_XOR];
    if (j === 1) index = [...index, ...get(C), ...i32(0xff), I32_AND, I32_XOR];
    step.push(...lookup(15 - j, index));
    if (j > 0) step.push(I32_XOR);
  }
  // prettier-ignore
  const code = [
    // stepEnd = p + ((end - p) & ~15)
    ...get(P), ...get(END_AT), ...get(P), I32_SUB, ...i32(-16), I32_AND, I32_ADD, ...set(STEP_END),
    BLOCK, VOID, LOOP, VOID,
    ...get(P), ...get(STEP_END), I32_GE_U, BR_IF, 1,
    ...get(P), I64_LOAD, 0, 0, ...set(A),
    ...get(P), I64_LOAD, 0, 8, ...set(B),
    ...step, ...set(C),
    ...get(P), ...i32(16), I32_ADD, ...set(P),
    BR, 0, END, END,
    // the tail, a byte at a time through table 0
    BLOCK, VOID, LOOP, VOID,
    ...get(P), ...get(END_AT), I32_GE_U, BR_IF, 1,
    ...get(C), ...i32(8), I32_SHL, ...i32(0xffff), I32_AND,
    ...lookup(0, [...get(C), ...i32(8), I32_SHR_U, ...get(P), I32_LOAD8_U, 0, 0, I32_XOR]),
    I32_XOR, ...set(C),
    ...get(P), ...i32(1), I32_ADD, ...set(P),
    BR, 0, END, END,
    ...get(C), END,
  ];
  // locals: two i64 (the step's two words), one i32 (stepEnd)
  return funcBody([2, 2, I64, 1, I32], code);
}

function ipsumBody(): number[] {
  // parameters p and end as in crc; locals: the i64 sum, the i64 word just read, stepEnd
  const SUM = 2;
  const X = 3;
  const STEP = 4;
  // prettier-ignore
  const code = [
    // stepEnd = p + ((end - p) & ~7): 8 bytes a step, as two 32-bit halves of one 64-bit load (2^16
    // is 1 modulo 0xFFFF, so a 32-bit word adds its two 16-bit words to the sum)
    ...get(P), ...get(END_AT), ...get(P), I32_SUB, ...i32(-8), I32_AND, I32_ADD, ...set(STEP),
    BLOCK, VOID, LOOP, VOID,
    ...get(P), ...get(STEP), I32_GE_U, BR_IF, 1,
    ...get(P), I64_LOAD, 0, 0, ...set(X),
    ...get(SUM), ...get(X), ...i32(-1), I64_EXTEND_I32_U, I64_AND, I64_ADD,
    ...get(X), I64_CONST, ...sleb(32), I64_SHR_U, I64_ADD, ...set(SUM),
    ...get(P), ...i32(8), I32_ADD, ...set(P),
    BR, 0, END, END,
    // the tail: 16-bit words, then a last odd byte (the low byte of its little-endian word)
    BLOCK, VOID, LOOP, VOID,
    ...get(P), ...i32(2), I32_ADD, ...get(END_AT), I32_GT_U, BR_IF, 1,
    ...get(SUM), ...get(P), I32_LOAD16_U, 0, 0, I64_EXTEND_I32_U, I64_ADD, ...set(SUM),
    ...get(P), ...i32(2), I32_ADD, ...set(P),
    BR, 0, END, END,
    ...get(P), ...get(END_AT), I32_LT_U, IF, VOID,
    ...get(SUM), ...get(P), I32_LOAD8_U, 0, 0, I64_EXTEND_I32_U, I64_ADD, ...set(SUM),
    END,
    // fold the carries back in until the sum fits 16 bits (end-around carry)
    BLOCK, VOID, LOOP, VOID,
    ...get(SUM), I64_CONST, ...sleb(0xffff), I64_LE_U, BR_IF, 1,
    ...get(SUM), I64_CONST, ...sleb(0xffff), I64_AND,
    ...get(SUM), I64_CONST, ...sleb(16), I64_SHR_U, I64_ADD, ...set(SUM),
    BR, 0, END, END,
    ...get(SUM), I32_WRAP_I64, END,
  ];
  return funcBody([2, 2, I64, 1, I32], code);
}

/**
 * `crcs` / `ipsums`: calls function `inner` (crc, with a zero register, or ipsum) on each `interval`
 * bytes of [p, end), storing each result as a u16 at out + 2n. The caller passes a whole number of
 * intervals, interval > 0.
 */
function perIntervalBody(inner: number): number[] {
  const INTERVAL = 2;
  const OUT = 3;
  const N = 4;
  const call = inner === 0 ? [...i32(0), CALL, 0] : [CALL, inner];
  // prettier-ignore
  const code = [
    BLOCK, VOID, LOOP, VOID,
    ...get(P), ...get(END_AT), I32_GE_U, BR_IF, 1,
    ...get(OUT), ...get(N), ...i32(1), I32_SHL, I32_ADD,
    ...get(P), ...get(P), ...get(INTERVAL), I32_ADD, ...call,
    I32_STORE16, 1, 0,
    ...get(P), ...get(INTERVAL), I32_ADD, ...set(P),
    ...get(N), ...i32(1), I32_ADD, ...set(N),
    BR, 0, END, END,
    ...get(N), END,
  ];
  return funcBody([1, 1, I32], code);
}

/** A function body: its local declarations (count, then count × type per group) and its code. */
function funcBody(locals: number[], code: number[]): number[] {
  return [...uleb(locals.length + code.length), ...locals, ...code];
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

function name(s: string): number[] {
  return [...uleb(s.length), ...Array.from(s, (ch) => ch.charCodeAt(0))];
}

/** The module's bytes. */
function moduleBytes(): Uint8Array {
  const crc = crcBody();
  const ipsum = ipsumBody();
  const crcs = perIntervalBody(0);
  const ipsums = perIntervalBody(1);
  // prettier-ignore
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [
      3,
      0x60, 3, I32, I32, I32, 1, I32, // type 0: (i32, i32, i32) -> i32
      0x60, 2, I32, I32, 1, I32, // type 1: (i32, i32) -> i32
      0x60, 4, I32, I32, I32, I32, 1, I32, // type 2: (i32, i32, i32, i32) -> i32
    ]),
    // functions 0 (crc), 1 (ipsum), 2 (crcs), 3 (ipsums): their types
    ...section(3, [4, 0, 1, 2, 2]),
    ...section(5, [1, 0x00, ...uleb(MEMORY_PAGES)]), // one memory, no maximum
    ...section(7, [
      5, ...name('memory'), 0x02, 0, ...name('crc'), 0x00, 0, ...name('ipsum'), 0x00, 1,
      ...name('crcs'), 0x00, 2, ...name('ipsums'), 0x00, 3,
    ]),
    ...section(10, [4, ...crc, ...ipsum, ...crcs, ...ipsums]),
  ]);
}

export interface GuardKernel {
  /** The module's memory: tables at 0, scratch at SCRATCH. */
  memory: Uint8Array;
  crc(p: number, end: number, c: number): number;
  ipsum(p: number, end: number): number;
  crcs(p: number, end: number, interval: number, out: number): number;
  ipsums(p: number, end: number, interval: number, out: number): number;
}

/**
 * The part of the WebAssembly JavaScript API used here. The global is in every runtime pvblk runs on
 * (Node, the dashboard's browser), but not in the type libraries the tree compiles with.
 */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (
    module: object,
    imports: object,
  ) => {
    exports: { memory: { buffer: ArrayBuffer } } & Omit<GuardKernel, 'memory'>;
  };
}

/** Instantiates the module and writes `tables` (16 × 256 entries) into its memory. */
export function guardKernel(tables: ReadonlyArray<Uint16Array>): GuardKernel {
  const wasm = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;
  const { exports } = new wasm.Instance(new wasm.Module(moduleBytes()), {});
  // The module never grows its memory, so this view stays valid.
  const memory = new Uint8Array(exports.memory.buffer);
  tables.forEach((t, k) => {
    for (let b = 0; b < 256; b++) {
      memory[k * 512 + b * 2] = t[b] & 0xff;
      memory[k * 512 + b * 2 + 1] = t[b] >>> 8;
    }
  });
  const { crc, ipsum, crcs, ipsums } = exports;
  return { memory, crc, ipsum, crcs, ipsums };
}
