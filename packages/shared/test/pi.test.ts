import { loadVectors } from './vectors.ts';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc16T10DifBitwise, ipChecksum } from '../src/crc.ts';
import { isPvblkError } from '../src/errors.ts';
import {
  ComputedGuards,
  PI_TUPLE_SIZE,
  computeGuard,
  decodePiTuple,
  encodePiTuple,
  generatePi,
  piBytesFor,
  verifyPi,
  type GuardKind,
  type PiFormat,
  type PiType,
} from '../src/pi.ts';

interface VectorRow {
  pattern: string;
  lba: number;
  type: PiType;
  app_tag: number;
  guard_crc: string;
  tuple_crc_hex: string;
  guard_ip_bytes_hex: string;
  tuple_ip_hex: string;
}
interface VectorFile {
  crc16_t10dif_check_123456789: string;
  sectors: VectorRow[];
  patterns: Record<string, string>;
}

const vectors = loadVectors<VectorFile>('pi-vectors.json');

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const fmt = (type: PiType, guard: GuardKind = 'crc', interval = 512): PiFormat => ({ type, guard, interval });

/** The 512-byte sectors the vector file describes in its "patterns" table, rebuilt from that prose. */
function buildPattern(name: string): Uint8Array {
  const s = new Uint8Array(512);
  switch (name) {
    case 'zeros': // "512 x 0x00"
      return s;
    case 'ones': // "512 x 0xff"
      return s.fill(0xff);
    case 'incrementing': // "byte i = i & 0xff"
      for (let i = 0; i < 512; i++) s[i] = i & 0xff;
      return s;
    case 'pvblk': {
      // "b'pvblk' repeated, cut to 512 bytes"
      const word = new TextEncoder().encode('pvblk');
      for (let i = 0; i < 512; i++) s[i] = word[i % word.length];
      return s;
    }
    case 'lba-4656-stamp': // "the 8-byte little-endian integer 4656, then 504 zero bytes"
      new DataView(s.buffer).setBigUint64(0, 4656n, true);
      return s;
    default:
      throw new Error(`vector file names an unknown pattern ${name}`);
  }
}

/** Random data of 1..maxIntervals intervals with its format. */
const formatArb = fc.record({
  type: fc.constantFrom<PiType>(1, 2, 3),
  guard: fc.constantFrom<GuardKind>('crc', 'ip'),
  interval: fc.constantFrom(512, 4096),
});
const blockArb = (maxIntervals: number) =>
  formatArb.chain((format) =>
    fc
      .integer({ min: 1, max: maxIntervals })
      .chain((n) => fc.uint8Array({ minLength: n * format.interval, maxLength: n * format.interval }))
      .map((data) => ({ format, data })),
  );
const seedArb = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constant(0xffffffff), fc.nat());

describe('the golden vector file', () => {
  it('has the rows and patterns this test rebuilds', () => {
    expect(vectors.crc16_t10dif_check_123456789).toBe('0xd0db');
    expect(vectors.sectors).toHaveLength(20);
    expect(Object.keys(vectors.patterns).sort()).toEqual([
      'incrementing',
      'lba-4656-stamp',
      'ones',
      'pvblk',
      'zeros',
    ]);
    expect(new Set(vectors.sectors.map((r) => r.pattern))).toEqual(new Set(Object.keys(vectors.patterns)));
  });

  it('rebuilt patterns start with the bytes their descriptions say', () => {
    expect(hex(buildPattern('pvblk').subarray(0, 12))).toBe('7076626c6b7076626c6b7076');
    expect(hex(buildPattern('pvblk').subarray(505))).toBe('7076626c6b7076');
    expect(hex(buildPattern('lba-4656-stamp').subarray(0, 10))).toBe('30120000000000000000');
    expect(hex(buildPattern('incrementing').subarray(254, 258))).toBe('feff0001');
  });

  describe.each(
    vectors.sectors.map((r, i) => [`#${i} ${r.pattern} lba=${r.lba} type=${r.type}`, r] as const),
  )('row %s', (_name, row) => {
    const data = buildPattern(row.pattern);
    // Type 3 rows carry ref 0xFFFFFFFF as the file's chosen example, not a rule; ask for it explicitly.
    const gen = { seed: row.lba, appTag: row.app_tag, type3Ref: 0xffffffff };

    it('guard_crc and guard_ip_bytes_hex', () => {
      expect(computeGuard(data, 0, 512, 'crc')).toBe(Number.parseInt(row.guard_crc, 16));
      expect(crc16T10DifBitwise(data)).toBe(Number.parseInt(row.guard_crc, 16));
      const ip = computeGuard(data, 0, 512, 'ip');
      expect(hex(Uint8Array.of(ip >>> 8, ip & 0xff))).toBe(row.guard_ip_bytes_hex);
      expect(ipChecksum(data)).toBe(ip);
    });

    it('tuple_crc_hex: generated, decoded and verified', () => {
      const pi = new Uint8Array(PI_TUPLE_SIZE);
      generatePi(data, pi, { format: fmt(row.type, 'crc'), ...gen });
      expect(hex(pi)).toBe(row.tuple_crc_hex);
      const t = decodePiTuple(fromHex(row.tuple_crc_hex), 0);
      expect(t.guard).toBe(Number.parseInt(row.guard_crc, 16));
      expect(t.appTag).toBe(row.app_tag);
      expect(t.refTag).toBe(row.type === 3 ? 0xffffffff : row.lba % 2 ** 32);
      const checks = { guard: true, app: true, ref: true };
      expect(verifyPi(data, pi, { format: fmt(row.type), seed: row.lba, appTag: row.app_tag, checks })).toBe(
        null,
      );
    });

    it('tuple_ip_hex: generated and verified', () => {
      const pi = new Uint8Array(PI_TUPLE_SIZE);
      generatePi(data, pi, { format: fmt(row.type, 'ip'), ...gen });
      expect(hex(pi)).toBe(row.tuple_ip_hex);
      const checks = { guard: true, app: true, ref: true };
      const opts = { format: fmt(row.type, 'ip'), seed: row.lba, appTag: row.app_tag, checks };
      expect(verifyPi(data, pi, opts)).toBe(null);
    });
  });
});

describe('PI tuple codec', () => {
  it('is big-endian guard, app, ref', () => {
    const buf = new Uint8Array(10).fill(0xee);
    encodePiTuple({ guard: 0xd0db, appTag: 0x1234, refTag: 0x89abcdef }, buf, 1);
    expect(hex(buf)).toBe('eed0db123489abcdefee');
    expect(decodePiTuple(buf, 1)).toEqual({ guard: 0xd0db, appTag: 0x1234, refTag: 0x89abcdef });
    expect(decodePiTuple(fromHex('ffffffffffffffff'), 0)).toEqual({
      guard: 0xffff,
      appTag: 0xffff,
      refTag: 0xffffffff,
    });
  });

  it('round-trips any tuple', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.nat({ max: 8 }),
        (guard, appTag, refTag, off) => {
          const buf = new Uint8Array(16);
          encodePiTuple({ guard, appTag, refTag }, buf, off);
          expect(decodePiTuple(buf, off)).toEqual({ guard, appTag, refTag });
        },
      ),
    );
  });
});

describe('piBytesFor', () => {
  it('is 8 bytes per whole interval', () => {
    expect(piBytesFor(0, 512)).toBe(0);
    expect(piBytesFor(512, 512)).toBe(8);
    expect(piBytesFor(4096, 512)).toBe(64);
    expect(piBytesFor(4096, 4096)).toBe(8);
    expect(piBytesFor(1 << 20, 512)).toBe(16384);
  });
  it('refuses partial intervals and bad intervals with EINVAL', () => {
    expect(() => piBytesFor(100, 512)).toThrow(/^EINVAL: /);
    expect(() => piBytesFor(512, 0)).toThrow(/^EINVAL: /);
    expect(() => piBytesFor(-512, 512)).toThrow(/^EINVAL: /);
  });
});

describe('generatePi', () => {
  it('writes one tuple per interval with ref = seed + i, wrapping mod 2^32', () => {
    const pi = new Uint8Array(24);
    generatePi(new Uint8Array(1536), pi, { format: fmt(1), seed: 0xffffffff, appTag: 0x0102 });
    expect(hex(pi)).toBe('00000102ffffffff' + '0000010200000000' + '0000010200000001');
    generatePi(new Uint8Array(1536), pi, { format: fmt(2), seed: 2 ** 32 + 5 });
    expect(hex(pi)).toBe('0000000000000005' + '0000000000000006' + '0000000000000007');
  });

  it('writes Type 3 ref 0 by default, like Linux, and type3Ref when given', () => {
    const pi = new Uint8Array(16);
    generatePi(new Uint8Array(1024).fill(0xff), pi, { format: fmt(3), seed: 4656 });
    expect(hex(pi)).toBe('e6a1000000000000' + 'e6a1000000000000');
    generatePi(new Uint8Array(1024).fill(0xff), pi, { format: fmt(3), seed: 4656, type3Ref: 0xdeadbeef });
    expect(hex(pi)).toBe('e6a10000deadbeef' + 'e6a10000deadbeef');
  });

  it('covers 4096-byte intervals with one tuple', () => {
    const pi = new Uint8Array(8);
    generatePi(new Uint8Array(4096).fill(0xff), pi, { format: fmt(1, 'ip', 4096), seed: 7 });
    expect(hex(pi)).toBe('0000000000000007');
  });

  it('refuses mismatched buffers and bad options with EINVAL', () => {
    const expectEinval = (f: () => void) => {
      let caught: unknown;
      try {
        f();
      } catch (e) {
        caught = e;
      }
      expect(isPvblkError(caught, 'EINVAL')).toBe(true);
    };
    expectEinval(() => generatePi(new Uint8Array(1024), new Uint8Array(8), { format: fmt(1), seed: 0 }));
    expectEinval(() => generatePi(new Uint8Array(1000), new Uint8Array(8), { format: fmt(1), seed: 0 }));
    expectEinval(() => verifyPi(new Uint8Array(512), new Uint8Array(16), { format: fmt(1), seed: 0 }));
    expectEinval(() =>
      generatePi(new Uint8Array(512), new Uint8Array(8), { format: fmt(0 as PiType), seed: 0 }),
    );
    expectEinval(() =>
      generatePi(new Uint8Array(512), new Uint8Array(8), {
        format: { type: 1, guard: 'md5' as GuardKind, interval: 512 },
        seed: 0,
      }),
    );
    expectEinval(() => generatePi(new Uint8Array(512), new Uint8Array(8), { format: fmt(1), seed: -1 }));
    expectEinval(() =>
      generatePi(new Uint8Array(512), new Uint8Array(8), { format: fmt(1), seed: 0, appTag: 0x10000 }),
    );
  });
});

describe('verifyPi', () => {
  /** Four zero sectors with Type 1 CRC PI seeded at 100 and app tag 0x0a0b. */
  const fixture = () => {
    const data = new Uint8Array(2048);
    const pi = new Uint8Array(32);
    generatePi(data, pi, { format: fmt(1), seed: 100, appTag: 0x0a0b });
    return { data, pi };
  };

  it('reports a guard error with the interval and both values', () => {
    const { data, pi } = fixture();
    data[1024] = 0x01; // first byte of interval 2
    expect(verifyPi(data, pi, { format: fmt(1), seed: 100 })).toEqual({
      check: 'guard',
      interval: 2,
      expected: 0xb45e,
      received: 0x0000,
    });
  });

  it('reports a ref error for a wrong seed on Types 1/2', () => {
    const { data, pi } = fixture();
    expect(verifyPi(data, pi, { format: fmt(1), seed: 101 })).toEqual({
      check: 'ref',
      interval: 0,
      expected: 101,
      received: 100,
    });
    expect(verifyPi(data, pi, { format: fmt(2), seed: 100 })).toBe(null);
    pi[3 * 8 + 7] ^= 0x01; // ref of interval 3 becomes 102
    expect(verifyPi(data, pi, { format: fmt(2), seed: 100 })).toEqual({
      check: 'ref',
      interval: 3,
      expected: 103,
      received: 102,
    });
    expect(verifyPi(data, pi, { format: fmt(1), seed: 100, checks: { ref: false } })).toBe(null);
  });

  it('checks the app tag only when asked, under the mask', () => {
    const { data, pi } = fixture();
    expect(verifyPi(data, pi, { format: fmt(1), seed: 100, appTag: 0x0a0c })).toBe(null);
    expect(verifyPi(data, pi, { format: fmt(1), seed: 100, appTag: 0x0a0c, checks: { app: true } })).toEqual({
      check: 'app',
      interval: 0,
      expected: 0x0a0c,
      received: 0x0a0b,
    });
    const masked = { format: fmt(1), seed: 100, appTag: 0x0a0c, appTagMask: 0xff00, checks: { app: true } };
    expect(verifyPi(data, pi, masked)).toBe(null);
  });

  it('checks guard, then app, then ref within one interval', () => {
    const { data, pi } = fixture();
    data[0] = 0x01;
    const all = { guard: true, app: true, ref: true };
    expect(verifyPi(data, pi, { format: fmt(1), seed: 5, appTag: 1, checks: all })?.check).toBe('guard');
    data[0] = 0;
    expect(verifyPi(data, pi, { format: fmt(1), seed: 5, appTag: 1, checks: all })?.check).toBe('app');
    expect(verifyPi(data, pi, { format: fmt(1), seed: 5, appTag: 0x0a0b, checks: all })?.check).toBe('ref');
    data[0] = 0x01;
    expect(verifyPi(data, pi, { format: fmt(1), seed: 5, checks: { guard: false } })?.check).toBe('ref');
  });

  it('runs the checks in the order asked for: Linux checks ref before guard', () => {
    const { data, pi } = fixture();
    data[0] = 0x01; // interval 0 fails its guard …
    const all = { guard: true, app: true, ref: true };
    // … and, with seed 5, its ref and (with app tag 1) its app tag
    const opts = { format: fmt(1), seed: 5, appTag: 1, checks: all };
    expect(verifyPi(data, pi, opts)?.check).toBe('guard');
    expect(verifyPi(data, pi, { ...opts, order: ['ref', 'guard', 'app'] })?.check).toBe('ref');
    expect(verifyPi(data, pi, { ...opts, order: ['app', 'ref', 'guard'] })?.check).toBe('app');
    // a check left out of the order is not run, whatever `checks` says
    expect(verifyPi(data, pi, { ...opts, order: ['guard', 'ref'], seed: 100 })?.check).toBe('guard');
    data[0] = 0;
    expect(verifyPi(data, pi, { ...opts, order: ['guard', 'ref'], seed: 100 })).toBe(null);
    // the order decides within an interval, not across them: interval 0 is reported first
    pi[2 * 8 + 7] ^= 0x01; // ref of interval 2 wrong
    data[0] = 0x01; // guard of interval 0 wrong
    expect(verifyPi(data, pi, { format: fmt(1), seed: 100, order: ['ref', 'guard'] })).toEqual({
      check: 'guard',
      interval: 0,
      expected: 0xb45e,
      received: 0x0000,
    });
  });

  it("escape 'none' checks every interval: scsi_debug's check of a write", () => {
    const { data, pi } = fixture();
    pi[1 * 8 + 2] = 0xff;
    pi[1 * 8 + 3] = 0xff; // interval 1: app tag 0xFFFF
    data[600] = 0x55; // and corrupt
    expect(verifyPi(data, pi, { format: fmt(1), seed: 100, escape: 'scsi_debug' })).toBe(null);
    expect(verifyPi(data, pi, { format: fmt(1), seed: 100, escape: 'none' })).toMatchObject({
      check: 'guard',
      interval: 1,
    });
  });

  it('never checks the Type 3 ref tag', () => {
    const data = new Uint8Array(1024);
    const pi = new Uint8Array(16);
    generatePi(data, pi, { format: fmt(3), seed: 0, type3Ref: 0x12345678 });
    expect(verifyPi(data, pi, { format: fmt(3), seed: 999, checks: { ref: true } })).toBe(null);
  });

  it('applies the Linux escapes', () => {
    const { data, pi } = fixture();
    data[600] = 0x55; // interval 1 is corrupt
    pi[1 * 8 + 2] = 0xff;
    pi[1 * 8 + 3] = 0xff;
    pi[1 * 8 + 7] = 0x00; // and its ref is wrong too: the escape skips every check
    const all = { guard: true, app: true, ref: true };
    expect(verifyPi(data, pi, { format: fmt(1), seed: 100, appTag: 0x0a0b, checks: all })).toBe(null);
    expect(verifyPi(data, pi, { format: fmt(2), seed: 100, appTag: 0x0a0b, checks: all })).toBe(null);

    // Type 3 needs the ref escape as well.
    const d3 = new Uint8Array(1024);
    const p3 = new Uint8Array(16);
    generatePi(d3, p3, { format: fmt(3), seed: 0, appTag: 0xffff });
    d3[0] = 0x01;
    expect(verifyPi(d3, p3, { format: fmt(3), seed: 0 })).toEqual({
      check: 'guard',
      interval: 0,
      expected: 0xb45e,
      received: 0x0000,
    });
    p3.fill(0xff, 4, 8);
    expect(verifyPi(d3, p3, { format: fmt(3), seed: 0 })).toBe(null);
  });

  it('applies the scsi_debug escape: app 0xFFFF alone, any type', () => {
    const d3 = new Uint8Array(1024);
    const p3 = new Uint8Array(16);
    generatePi(d3, p3, { format: fmt(3), seed: 0, appTag: 0xffff });
    d3[0] = 0x01;
    expect(verifyPi(d3, p3, { format: fmt(3), seed: 0, escape: 'scsi_debug' })).toBe(null);
    // scsi_debug's never-written PI is all 0xFF: reads back unchecked whatever the data.
    const unwritten = new Uint8Array(16).fill(0xff);
    expect(verifyPi(d3, unwritten, { format: fmt(1), seed: 0, escape: 'scsi_debug' })).toBe(null);
    expect(verifyPi(d3, unwritten, { format: fmt(3), seed: 0, escape: 'linux' })).toBe(null);
  });

  it('passes across the 2^32 ref wrap', () => {
    const data = new Uint8Array(1536).fill(0x5a);
    const pi = new Uint8Array(24);
    generatePi(data, pi, { format: fmt(1, 'ip'), seed: 0xffffffff });
    expect(verifyPi(data, pi, { format: fmt(1, 'ip'), seed: 0xffffffff })).toBe(null);
    expect(verifyPi(data, pi, { format: fmt(1, 'ip'), seed: 2 ** 33 - 1 })).toBe(null);
    expect(verifyPi(data, pi, { format: fmt(1, 'ip'), seed: 0 })).toEqual({
      check: 'ref',
      interval: 0,
      expected: 0,
      received: 0xffffffff,
    });
  });
});

describe('ComputedGuards', () => {
  it("fills an empty record with every interval's guard, escapes included", () => {
    const data = new Uint8Array(2048).map((_, i) => i * 7);
    const pi = new Uint8Array(32);
    generatePi(data, pi, { format: fmt(1), seed: 100 });
    pi[3 * 8 + 2] = 0xff; // interval 3: app tag 0xFFFF, an escape Linux does not check
    pi[3 * 8 + 3] = 0xff;
    const record = new ComputedGuards(data, 'crc', 512);
    expect(verifyPi(data, pi, { format: fmt(1), seed: 100, record })).toBeNull();
    // the guards of all four intervals are computed in one pass: the escape's is a true one too
    for (let i = 0; i < 4; i++) {
      expect(record.of(data, i * 512, (i + 1) * 512, 'crc')).toBe(
        crc16T10DifBitwise(data, i * 512, (i + 1) * 512),
      );
    }
  });

  it('is used instead of computing when it holds every guard: the check of the same write after the HBA', () => {
    const data = new Uint8Array(1024).map((_, i) => i * 5);
    const pi = new Uint8Array(16);
    generatePi(data, pi, { format: fmt(1), seed: 9 });
    const record = new ComputedGuards(data, 'crc', 512);
    record.set(0, 0x1111); // poisoned: a record that is read shows through
    record.set(1, 0x2222);
    expect(verifyPi(data, pi, { format: fmt(1), seed: 9, record })).toMatchObject({
      check: 'guard',
      interval: 0,
      expected: 0x1111,
    });
    // with one guard missing, all are computed, and the record's are replaced
    record.forget();
    record.set(0, 0x1111);
    expect(verifyPi(data, pi, { format: fmt(1), seed: 9, record })).toBeNull();
    expect(record.of(data, 0, 512, 'crc')).toBe(crc16T10DifBitwise(data, 0, 512));
  });

  it('keeps nothing when the guard is not checked', () => {
    const data = new Uint8Array(1024).map((_, i) => i * 3);
    const pi = new Uint8Array(16);
    generatePi(data, pi, { format: fmt(1), seed: 5 });
    const record = new ComputedGuards(data, 'crc', 512);
    record.set(0, 0x1111);
    const checks = { guard: false, ref: true };
    expect(verifyPi(data, pi, { format: fmt(1), seed: 5, checks, record })).toBeNull();
    expect(record.of(data, 0, 512, 'crc')).toBe(0x1111);
  });

  it('is read, not recomputed: a poisoned record shows through for the same buffer only', () => {
    const data = new Uint8Array(1024).fill(9);
    const record = new ComputedGuards(data, 'crc', 512);
    record.set(1, 0x1234);
    expect(record.of(data, 512, 1024, 'crc')).toBe(0x1234);
    // another buffer with the same bytes, another guard kind, another range: computed
    expect(record.of(Uint8Array.from(data), 512, 1024, 'crc')).toBe(crc16T10DifBitwise(data, 512, 1024));
    expect(record.of(data, 512, 1024, 'ip')).toBe(ipChecksum(data, 512, 1024));
    expect(record.of(data, 256, 768, 'crc')).toBe(crc16T10DifBitwise(data, 256, 768));
    expect(record.of(data, 0, 512, 'crc')).toBe(crc16T10DifBitwise(data, 0, 512));
    // forgotten, it computes again
    record.forget();
    expect(record.of(data, 512, 1024, 'crc')).toBe(crc16T10DifBitwise(data, 512, 1024));
  });

  it('is not filled by a check of another buffer or format', () => {
    const data = new Uint8Array(512).fill(3);
    const other = Uint8Array.from(data);
    const pi = new Uint8Array(8);
    generatePi(data, pi, { format: fmt(1), seed: 0 });
    const record = new ComputedGuards(data, 'crc', 512);
    record.set(0, 0x4321);
    expect(verifyPi(other, pi, { format: fmt(1), seed: 0, record })).toBeNull();
    expect(record.of(data, 0, 512, 'crc')).toBe(0x4321);
  });
});

describe('PI properties', () => {
  const all = { guard: true, app: true, ref: true };

  it('generate then verify passes for any data, seed, type, guard and interval', () => {
    fc.assert(
      fc.property(
        blockArb(8),
        seedArb,
        fc.integer({ min: 0, max: 0xffff }),
        ({ format, data }, seed, appTag) => {
          const pi = new Uint8Array(piBytesFor(data.length, format.interval));
          generatePi(data, pi, { format, seed, appTag });
          expect(verifyPi(data, pi, { format, seed, appTag, checks: all })).toBe(null);
          for (let i = 0; i < pi.length / PI_TUPLE_SIZE; i++) {
            const t = decodePiTuple(pi, i * PI_TUPLE_SIZE);
            const start = i * format.interval;
            expect(t.guard).toBe(computeGuard(data, start, start + format.interval, format.guard));
            expect(t.refTag).toBe(format.type === 3 ? 0 : (seed + i) % 2 ** 32);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('the CRC guard catches every single-bit flip in the data', () => {
    fc.assert(
      fc.property(
        blockArb(4).map((b) => ({ ...b, format: { ...b.format, guard: 'crc' as const } })),
        fc.nat(),
        seedArb,
        ({ format, data }, bitSeed, seed) => {
          const pi = new Uint8Array(piBytesFor(data.length, format.interval));
          generatePi(data, pi, { format, seed, appTag: 0x1234 });
          const bit = bitSeed % (data.length * 8);
          data[bit >>> 3] ^= 0x80 >>> (bit & 7);
          const err = verifyPi(data, pi, { format, seed });
          expect(err?.check).toBe('guard');
          expect(err?.interval).toBe(Math.floor((bit >>> 3) / format.interval));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('a wrong seed is caught by the ref check for Types 1/2 and not for Type 3', () => {
    fc.assert(
      fc.property(
        blockArb(4),
        seedArb,
        fc.integer({ min: 1, max: 0xffffffff }),
        ({ format, data }, seed, delta) => {
          const pi = new Uint8Array(piBytesFor(data.length, format.interval));
          generatePi(data, pi, { format, seed });
          const wrong = (seed + delta) % 2 ** 32;
          const err = verifyPi(data, pi, { format, seed: wrong });
          if (format.type === 3) expect(err).toBe(null);
          else expect(err).toEqual({ check: 'ref', interval: 0, expected: wrong, received: seed % 2 ** 32 });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('escaped intervals are skipped, the others still checked', () => {
    fc.assert(
      fc.property(
        blockArb(6).filter((b) => b.data.length / b.format.interval >= 2),
        fc.constantFrom<'linux' | 'scsi_debug'>('linux', 'scsi_debug'),
        fc.nat(),
        ({ format, data }, escape, pick) => {
          const n = data.length / format.interval;
          const pi = new Uint8Array(piBytesFor(data.length, format.interval));
          generatePi(data, pi, { format, seed: 1000 });
          const esc = pick % n;
          pi[esc * 8 + 2] = 0xff;
          pi[esc * 8 + 3] = 0xff;
          if (format.type === 3 && escape === 'linux') pi.fill(0xff, esc * 8 + 4, esc * 8 + 8);
          data[esc * format.interval] ^= 0xff; // corrupt the escaped interval: not reported
          expect(verifyPi(data, pi, { format, seed: 1000, escape, checks: all })).toBe(null);
          const other = (esc + 1) % n;
          data[other * format.interval + 1] ^= 0x01; // corrupt another: reported there
          const err = verifyPi(data, pi, { format, seed: 1000, escape, checks: all });
          expect(err?.check).toBe('guard');
          expect(err?.interval).toBe(other);
        },
      ),
      { numRuns: 60 },
    );
  });
});
