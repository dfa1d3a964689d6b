/**
 * The number formatting dd's statistics line depends on, ported so that every byte matches a real
 * 2013-era GNU dd:
 *
 * - `humanReadable` follows gnulib lib/human.c `human_readable()` (read: coreutils/gnulib lib/human.c,
 *   the 2006 revision, whose algorithm is unchanged in the copies bundled with coreutils 8.13-8.23 and
 *   in today's gnulib). The C code computes the floating path in x87 `long double`; JS has only
 *   doubles, so that path is done in exact rational arithmetic, rounding to a 64-bit significand at
 *   every step where the C code rounds, which reproduces the long double results bit for bit.
 * - `formatG` / `formatFixed` reproduce glibc printf `%g` / `%.Nf` of a double: the exact binary
 *   value is rounded to decimal (ties to even), which `Number#toPrecision` does not guarantee.
 *
 * Worked examples, derived by hand from the C code and checked by the unit tests:
 * - 2383872 B, integer path (from = to = 1): 2383872 -> 2383.872 k -> 2.383872 M; amt = 2 < 10 keeps
 *   one decimal, rounded to nearest -> "2.4 MB". 83886080 -> amt 83 >= 10 -> no decimal -> "84 MB".
 * - rate 2383872 B in 76.7866 s: from = 1e9, to = 76786600000 ns; neither divides the other, so the
 *   floating path: 31045.57... -> 31.04557 k -> "%.1Lf" = "31.0". The fallback to "%.0Lf" happens
 *   only when strlen("31.0") > 1 + 2 + !base_1024 = 4 for SI units, i.e. the float path keeps one
 *   decimal for values below 100 (below 10 for base 1024) -> "31.0 kB". The integer path, by
 *   contrast, keeps a decimal only below 10, so 8388608 B in exactly 0.5 s (1e9 % 5e8 == 0 -> integer
 *   path, amt 16.777216 M) prints "17 MB" while 0.5000001 s (float path) prints "16.8 MB".
 */

/** Option bits, as in gnulib human.h. */
export const human_ceiling = 0;
export const human_round_to_nearest = 1;
export const human_floor = 2;
export const human_group_digits = 4;
export const human_suppress_point_zero = 8;
export const human_autoscale = 16;
export const human_base_1024 = 32;
export const human_space_before_unit = 64;
export const human_SI = 128;
export const human_B = 256;

/** The options dd's print_stats passes for both the size and the rate. */
export const DD_HUMAN_OPTS =
  human_autoscale | human_round_to_nearest | human_space_before_unit | human_SI | human_B;

const UINTMAX = (1n << 64n) - 1n;
const POWER_LETTER = ['', 'K', 'M', 'G', 'T', 'P', 'E', 'Z', 'Y'];
const EXPONENT_MAX = POWER_LETTER.length - 1;

/** A nonnegative exact rational; every long double and double value is one. */
interface Rat {
  num: bigint;
  den: bigint;
}

const rat = (num: bigint, den = 1n): Rat => ({ num, den });
const mul = (a: Rat, b: Rat): Rat => ({ num: a.num * b.num, den: a.den * b.den });
const div = (a: Rat, b: Rat): Rat => ({ num: a.num * b.den, den: a.den * b.num });
/** a <= b */
const le = (a: Rat, b: Rat): boolean => a.num * b.den <= b.num * a.den;

function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

/** Rounds to nearest, ties to even, at `bits` significant bits: what an FPU does after each operation. */
function roundBinary(x: Rat, bits: number): Rat {
  if (x.num === 0n) return rat(0n);
  // Choose k with 2^(bits-1) <= x * 2^k < 2^bits, then round the scaled value to an integer.
  let k = bits - (bitLength(x.num) - bitLength(x.den));
  const scaled = (kk: number): Rat =>
    kk >= 0 ? rat(x.num << BigInt(kk), x.den) : rat(x.num, x.den << BigInt(-kk));
  let s = scaled(k);
  const lo = 1n << BigInt(bits - 1);
  const hi = 1n << BigInt(bits);
  while (s.num < lo * s.den) s = scaled(++k);
  while (s.num >= hi * s.den) s = scaled(--k);
  let q = s.num / s.den;
  const twiceRem = 2n * (s.num - q * s.den);
  if (twiceRem > s.den || (twiceRem === s.den && (q & 1n) === 1n)) q += 1n;
  return k >= 0 ? rat(q, 1n << BigInt(k)) : rat(q << BigInt(-k));
}

/** x87 extended precision (64-bit significand), what `long double` is on the x86 guests we mimic. */
const ld = (x: Rat): Rat => roundBinary(x, 64);

/** Rounds x to an integer, ties to even (the FE_TONEAREST behaviour of printf). */
function roundHalfEven(x: Rat): bigint {
  const q = x.num / x.den;
  const twiceRem = 2n * (x.num - q * x.den);
  if (twiceRem > x.den || (twiceRem === x.den && (q & 1n) === 1n)) return q + 1n;
  return q;
}

/** printf("%.Nf") of an exact nonnegative rational. */
function fixedRat(x: Rat, precision: number): string {
  const scale = 10n ** BigInt(precision);
  const digits = roundHalfEven(mul(x, rat(scale))).toString();
  if (precision === 0) return digits;
  const padded = digits.padStart(precision + 1, '0');
  return `${padded.slice(0, -precision)}.${padded.slice(-precision)}`;
}

/** human.c adjust_value(): floor/ceiling applied to a long double (round-to-nearest leaves it alone). */
function adjustValue(inexactStyle: number, value: Rat): Rat {
  if (inexactStyle !== human_round_to_nearest && value.num < UINTMAX * value.den) {
    const u = value.num / value.den;
    const exact = u * value.den === value.num;
    return rat(u + (inexactStyle === human_ceiling && !exact ? 1n : 0n));
  }
  return value;
}

/**
 * human_readable(n, buf, opts, from_block_size, to_block_size) in the C locale (decimal point ".",
 * no thousands grouping). `n` is in units of `fromBlockSize`; the result is in units of
 * `toBlockSize`, or autoscaled with an SI prefix when `opts & human_autoscale`.
 */
export function humanReadable(n: bigint, opts: number, fromBlockSize: bigint, toBlockSize: bigint): string {
  const inexactStyle = opts & (human_round_to_nearest | human_floor | human_ceiling);
  const base = opts & human_base_1024 ? 1024n : 1000n;
  let exponent = -1;
  let number: string;

  // Exact integer arithmetic when one block size divides the other; uintmax_t wraps at 2^64.
  let integer: { amt: bigint; tenths: bigint; rounding: bigint } | null = null;
  if (toBlockSize <= fromBlockSize) {
    if (fromBlockSize % toBlockSize === 0n) {
      const multiplier = fromBlockSize / toBlockSize;
      const amt = (n * multiplier) & UINTMAX;
      if (amt / multiplier === n) integer = { amt, tenths: 0n, rounding: 0n };
    }
  } else if (fromBlockSize !== 0n && toBlockSize % fromBlockSize === 0n) {
    const divisor = toBlockSize / fromBlockSize;
    const r10 = (n % divisor) * 10n;
    const r2 = (r10 % divisor) * 2n;
    const rounding = r2 < divisor ? (0n < r2 ? 1n : 0n) : 2n + (divisor < r2 ? 1n : 0n);
    integer = { amt: n / divisor, tenths: r10 / divisor, rounding };
  }

  if (integer === null) {
    // Floating point fallback, evaluated as the C code does in long double.
    let damt = ld(mul(rat(n), ld(div(rat(fromBlockSize), rat(toBlockSize)))));
    if (!(opts & human_autoscale)) {
      number = fixedRat(adjustValue(inexactStyle, damt), 0);
    } else {
      let e = rat(1n);
      exponent = 0;
      do {
        e = mul(e, rat(base));
        exponent++;
      } while (le(mul(e, rat(base)), damt) && exponent < EXPONENT_MAX);
      damt = ld(div(damt, e));
      number = fixedRat(adjustValue(inexactStyle, damt), 1);
      const nonIntegerLen = 2; // decimal point + one digit
      if (
        1 + nonIntegerLen + (opts & human_base_1024 ? 0 : 1) < number.length ||
        (opts & human_suppress_point_zero && number.endsWith('0'))
      ) {
        const tenfold = adjustValue(inexactStyle, ld(mul(damt, rat(10n))));
        number = fixedRat(ld(div(tenfold, rat(10n))), 0);
      }
    }
  } else {
    let { amt, tenths, rounding } = integer;
    let fraction = '';
    if (opts & human_autoscale) {
      exponent = 0;
      if (base <= amt) {
        do {
          const r10 = (amt % base) * 10n + tenths;
          const r2 = (r10 % base) * 2n + (rounding >> 1n);
          amt /= base;
          tenths = r10 / base;
          rounding = r2 < base ? (r2 + rounding !== 0n ? 1n : 0n) : 2n + (base < r2 + rounding ? 1n : 0n);
          exponent++;
        } while (base <= amt && exponent < EXPONENT_MAX);

        if (amt < 10n) {
          const bump =
            inexactStyle === human_round_to_nearest
              ? 2n < rounding + (tenths & 1n)
              : inexactStyle === human_ceiling && 0n < rounding;
          if (bump) {
            tenths++;
            rounding = 0n;
            if (tenths === 10n) {
              amt++;
              tenths = 0n;
            }
          }
          if (amt < 10n && (tenths !== 0n || !(opts & human_suppress_point_zero))) {
            fraction = `.${tenths}`;
            tenths = rounding = 0n;
          }
        }
      }
    }

    const bump =
      inexactStyle === human_round_to_nearest
        ? 5n < tenths + (0n < rounding + (amt & 1n) ? 1n : 0n)
        : inexactStyle === human_ceiling && 0n < tenths + rounding;
    if (bump) {
      amt++;
      if (opts & human_autoscale && amt === base && exponent < EXPONENT_MAX) {
        exponent++;
        // 999.96 k becomes "1.0 M": the C code writes the ".0" before the digits.
        fraction = opts & human_suppress_point_zero ? '' : '.0';
        amt = 1n;
      }
    }
    number = `${amt}${fraction}`;
  }

  let suffix = '';
  if (opts & human_SI) {
    if (exponent < 0) {
      exponent = 0;
      for (let power = 1n; power < toBlockSize; power *= base) if (++exponent === EXPONENT_MAX) break;
    }
    if ((exponent || opts & human_B) && opts & human_space_before_unit) suffix += ' ';
    if (exponent) suffix += !(opts & human_base_1024) && exponent === 1 ? 'k' : POWER_LETTER[exponent];
    if (opts & human_B) {
      if (opts & human_base_1024 && exponent) suffix += 'i';
      suffix += 'B';
    }
  }
  return number + suffix;
}

/** The "(2.4 MB)" in dd's statistics line. */
export function ddSize(bytes: bigint): string {
  return humanReadable(bytes, DD_HUMAN_OPTS, 1n, 1n);
}

/** The "31.0 kB" of dd's "31.0 kB/s": bytes over an elapsed time in nanoseconds (> 0). */
export function ddRate(bytes: bigint, elapsedNs: bigint): string {
  return humanReadable(bytes, DD_HUMAN_OPTS, 1_000_000_000n, elapsedNs);
}

/** The exact value of a finite double. */
function doubleToRat(x: number): Rat {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  let mantissa = bits & ((1n << 52n) - 1n);
  let exp: number;
  if (biased === 0) exp = -1074;
  else {
    mantissa |= 1n << 52n;
    exp = biased - 1075;
  }
  return exp >= 0 ? rat(mantissa << BigInt(exp)) : rat(mantissa, 1n << BigInt(-exp));
}

function pow10(e: number): Rat {
  return e >= 0 ? rat(10n ** BigInt(e)) : rat(1n, 10n ** BigInt(-e));
}

/** printf("%.Nf", x) for a finite double x >= 0. */
export function formatFixed(x: number, precision: number): string {
  return fixedRat(doubleToRat(x), precision);
}

/** printf("%g", x) (precision 6) for a finite double x >= 0, as glibc prints it. */
export function formatG(x: number, precision = 6): string {
  const p = Math.max(precision, 1);
  const v = doubleToRat(x);
  if (v.num === 0n) return '0';
  // x0 with 10^x0 <= v < 10^(x0+1), then round to p significant digits.
  let x0 = Math.floor(Math.log10(x));
  while (!le(pow10(x0), v)) x0--;
  while (le(pow10(x0 + 1), v)) x0++;
  let m = roundHalfEven(div(v, pow10(x0 - p + 1)));
  let exp10 = x0;
  if (m === 10n ** BigInt(p)) {
    m = 10n ** BigInt(p - 1);
    exp10++;
  }
  const digits = m.toString(); // exactly p digits
  const stripZeros = (s: string): string => (s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s);
  if (exp10 < -4 || exp10 >= p) {
    const mant = stripZeros(p > 1 ? `${digits[0]}.${digits.slice(1)}` : digits);
    const sign = exp10 < 0 ? '-' : '+';
    return `${mant}e${sign}${String(Math.abs(exp10)).padStart(2, '0')}`;
  }
  let s: string;
  if (exp10 >= 0) {
    const intPart = digits.slice(0, exp10 + 1);
    const frac = digits.slice(exp10 + 1);
    s = frac ? `${intPart}.${frac}` : intPart;
  } else {
    s = `0.${'0'.repeat(-exp10 - 1)}${digits}`;
  }
  return stripZeros(s);
}
