/**
 * fio's `verify_pattern` (lib/pattern.c's parse_and_fill_pattern()): a run of elements, each a
 * double-quoted string (no escapes), a hexadecimal number of any length (`0x…`, its bytes in the
 * order written, an odd digit count taking one digit for its first byte), a decimal number in
 * [INT_MIN, INT_MAX] (its bytes little-endian, no more than it needs; 0 is one byte), or `%o`, the
 * block's offset as 8 little-endian bytes. `"ab"%o-12` is 61 62, eight offset bytes, f4 ff ff ff.
 * fio's `'file'` element (the pattern read from a file) is not taken: a guest's fio has no such
 * file to hand, and it is refused like any other element fio cannot parse.
 */

/** The longest pattern fio takes (MAX_PATTERN_SIZE). */
export const MAX_PATTERN_SIZE = 512;
/** The most `%o` a pattern holds (the size of fio's verify_fmt[]). */
const MAX_PATTERN_FORMATS = 8;

export interface VerifyPattern {
  /** The pattern's bytes, each `%o`'s eight zero. */
  bytes: Buffer;
  /** Where each `%o` goes in `bytes`. */
  offsets: number[];
}

const HEX = /0[xX]([0-9a-fA-F]+)/y;
const DECIMAL = /[ \t]*[+-]?[0-9]+/y;

/** Parses `s`, or returns null where fio's parser fails (the caller says fio's words). */
export function parseVerifyPattern(s: string): VerifyPattern | null {
  const out: number[] = [];
  const offsets: number[] = [];
  let i = 0;
  if (s.length === 0) return null;
  while (i < s.length) {
    const c = s[i];
    if (c === '"') {
      const end = s.indexOf('"', i + 1);
      if (end < 0 || end - i - 1 > MAX_PATTERN_SIZE) return null;
      // the argument's bytes, as the shell handed them to fio
      for (const b of Buffer.from(s.slice(i + 1, end), 'utf8')) out.push(b);
      // fio asserts something was filled: an empty string is no element
      if (end === i + 1) return null;
      i = end + 1;
    } else if (c === '%') {
      // fio keeps eight formats at most (verify_fmt[8])
      if (s.slice(i, i + 2) !== '%o' || offsets.length === MAX_PATTERN_FORMATS) return null;
      offsets.push(out.length);
      for (let k = 0; k < 8; k++) out.push(0);
      i += 2;
    } else {
      HEX.lastIndex = i;
      const hex = HEX.exec(s);
      if (hex) {
        let digits = hex[1];
        // "0xff0x14" is two numbers: the 0 before the next x is not a digit of this one
        const next = s[i + 2 + digits.length];
        if ((next === 'x' || next === 'X') && digits.endsWith('0')) digits = digits.slice(0, -1);
        if (digits.length > 2 * MAX_PATTERN_SIZE) return null;
        // an odd count: the first byte takes one digit, as fio's "%1hhx" does ("0xabc" is 0a bc)
        const odd = digits.length % 2;
        if (odd) out.push(Number.parseInt(digits[0], 16));
        for (let k = odd; k < digits.length; k += 2) out.push(Number.parseInt(digits.slice(k, k + 2), 16));
        i += 2 + digits.length;
      } else {
        // strtol, but only up to a "0x" (fio looks ahead for one): in a run of digits that can only
        // be its last 0, before an x ("100x5" is 10, then 0x5)
        DECIMAL.lastIndex = i;
        const m = DECIMAL.exec(s);
        if (!m) return null;
        let tok = m[0];
        const next = s[i + tok.length];
        if ((next === 'x' || next === 'X') && tok.endsWith('0')) tok = tok.slice(0, -1);
        if (!/[0-9]/.test(tok)) return null;
        const v = Number(tok.trim());
        if (v > 0x7fffffff || v < -0x80000000) return null;
        let u = v >>> 0;
        if (u === 0) out.push(0);
        for (; u !== 0; u >>>= 8) out.push(u & 0xff);
        i += tok.length;
      }
    }
    if (out.length > MAX_PATTERN_SIZE) return null;
  }
  return { bytes: Buffer.from(out), offsets };
}

/** The pattern with each `%o` replaced by `offset` (paste_blockoff()). */
export function patternAt(p: VerifyPattern, offset: number): Buffer {
  if (p.offsets.length === 0) return p.bytes;
  const b = Buffer.from(p.bytes);
  for (const at of p.offsets) b.writeBigUInt64LE(BigInt(offset), at);
  return b;
}

/** Fills `buf` with the pattern repeated from its first byte (cpy_pattern()). */
export function fillPattern(buf: Uint8Array, pattern: Uint8Array): void {
  if (!buf.length) return;
  buf.set(pattern.subarray(0, buf.length));
  // what is filled is copied after itself, doubling: a one-byte pattern over a block is a few copies
  for (let done = Math.min(pattern.length, buf.length); done < buf.length; done *= 2)
    buf.copyWithin(done, 0, Math.min(done, buf.length - done));
}
