import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeMsgpack, type MsgpackValue } from '../src/msgpack.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ok = (b: Uint8Array): MsgpackValue => {
  const r = decodeMsgpack(b);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
const err = (b: Uint8Array): string => {
  const r = decodeMsgpack(b);
  if (r.ok) throw new Error(`decoded ${JSON.stringify(r.value)}`);
  return r.error;
};

describe('strict MessagePack decoding', () => {
  it('decodes every type the protocol uses, byte for byte', () => {
    expect(ok(hex('c0'))).toBe(null);
    expect(ok(hex('c2'))).toBe(false);
    expect(ok(hex('c3'))).toBe(true);
    expect(ok(hex('7f'))).toBe(127);
    expect(ok(hex('e0'))).toBe(-32);
    expect(ok(hex('cc ff'))).toBe(255);
    expect(ok(hex('cd 01 00'))).toBe(256);
    expect(ok(hex('ce ff ff ff ff'))).toBe(0xffffffff);
    expect(ok(hex('cf 00 1f ff ff ff ff ff ff'))).toBe(Number.MAX_SAFE_INTEGER);
    expect(ok(hex('d0 80'))).toBe(-128);
    expect(ok(hex('d1 80 00'))).toBe(-32768);
    expect(ok(hex('d2 80 00 00 00'))).toBe(-(2 ** 31));
    expect(ok(hex('d3 ff e0 00 00 00 00 00 01'))).toBe(Number.MIN_SAFE_INTEGER);
    expect(ok(hex('cb 3f f8 00 00 00 00 00 00'))).toBe(1.5);
    expect(ok(hex('a3 78 65 6e'))).toBe('xen');
    expect(ok(hex('d9 03 78 65 6e'))).toBe('xen');
    expect(Buffer.from(ok(hex('c4 02 ab cd')) as Uint8Array).toString('hex')).toBe('abcd');
    expect(ok(hex('92 01 a1 61'))).toEqual([1, 'a']);
    expect(ok(hex('dc 00 01 c0'))).toEqual([null]);
    expect({ ...(ok(hex('81 a1 74 a2 6f 6b')) as object) }).toEqual({ t: 'ok' });
  });

  it('refuses the frames that crashed the broker: a 64-bit type field, and a cyclic structured clone', () => {
    // {t: 0xffffffffffffffff}: msgpackr would make a BigInt, which JSON.stringify cannot print
    expect(err(hex('81 a1 74 cf ff ff ff ff ff ff ff ff'))).toBe(
      'the 64-bit integer at byte 3 is outside ±2^53',
    );
    // msgpackr's structured-clone extensions (0x69 id, 0x70 pointer) build cycles
    const cyclic: Record<string, unknown> = { t: 'x' };
    cyclic.self = cyclic;
    const bytes = new Packr({ structuredClone: true }).pack(cyclic);
    expect(err(bytes)).toMatch(
      /^a msgpack extension \(0x(d[4-8]|c[7-9])\) at byte \d+: extensions are not part of the protocol$/,
    );
    // BigInt, Date, Set, Error, RegExp: all extensions, all refused
    for (const v of [new Date(0), new Set([1]), new Error('x'), /a+$/, 2n ** 70n]) {
      const b = new Packr({ structuredClone: true, moreTypes: true }).pack(v);
      expect(err(b)).toMatch(/extension|outside ±2\^53/);
    }
  });

  it('refuses truncation, trailing bytes, bad UTF-8, reserved bytes, non-string keys and duplicate keys', () => {
    expect(err(hex('cd 01'))).toMatch(/needs 2 bytes, 1 left/);
    expect(err(hex('a5 61 62'))).toMatch(/a string at byte 1 needs 5 bytes, 2 left/);
    expect(err(hex('01 02'))).toBe('1 bytes after the value');
    expect(err(hex('a2 c3 28'))).toMatch(/not valid UTF-8/);
    expect(err(hex('c1'))).toBe('byte 0xc1 at 0 is not a msgpack type');
    expect(err(hex('81 01 02'))).toBe('the map key at byte 1 is not a string');
    expect(err(hex('82 a1 61 01 a1 61 02'))).toBe('the map key at byte 4 appears twice');
  });

  it('bounds depth and container sizes before allocating', () => {
    expect(err(Buffer.alloc(100, 0x91))).toMatch(/^nesting deeper than 8/);
    // an array claiming 2^32-1 elements in five bytes
    expect(err(hex('dd ff ff ff ff'))).toMatch(/over the limit of 65536/);
    expect(err(hex('dc ff ff 01'))).toMatch(/cannot fit in the 1 bytes left/);
    expect(err(hex('de 00 10 a1 61'))).toMatch(/cannot fit/);
  });

  it('keeps __proto__ a plain key: no prototype is changed', () => {
    const v = ok(hex('81 a9 5f 5f 70 72 6f 74 6f 5f 5f 81 a1 78 01')) as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(null);
    expect(Object.keys(v)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it('decodes whatever msgpackr packs from plain data, identically', () => {
    const packr = new Packr({
      useRecords: false,
      structuredClone: false,
      mapsAsObjects: true,
      variableMapSize: true,
    });
    const plain = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.constant(null),
        fc.boolean(),
        fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.string({ unit: 'grapheme' }),
        fc.uint8Array({ maxLength: 64 }),
        fc.array(tie('value'), { maxLength: 5 }),
        fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 5 }),
      ),
    })).value;
    fc.assert(
      fc.property(plain, (v) => {
        const back = ok(packr.pack(v));
        expect(normalise(back)).toEqual(normalise(v as MsgpackValue));
      }),
      { numRuns: 300 },
    );
  });

  it('bounds the arrays, maps and binary values one value builds, and says how many it built', () => {
    const b = hex('93 80 80 c4 00'); // [{}, {}, <0 bytes>]: four objects from five bytes
    const lim = { maxDepth: 8, maxItems: 16 };
    expect(decodeMsgpack(b, 0, b.length, { ...lim, maxObjects: 4 })).toMatchObject({ ok: true, objects: 4 });
    const r = decodeMsgpack(b, 0, b.length, { ...lim, maxObjects: 3 });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/^more than 3 arrays, maps and binary values \(at byte \d\)$/);
    expect(!r.ok && r.overObjects).toBe(true);
    expect(decodeMsgpack(hex('c1'))).toEqual({ ok: false, error: 'byte 0xc1 at 0 is not a msgpack type' });
  });

  it('answers any bytes at all with a value or an error, never an exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (b) => {
        const r = decodeMsgpack(b);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 3000 },
    );
  });
});

/** Objects without prototypes and Buffers vs Uint8Arrays compare as plain data. */
function normalise(v: MsgpackValue): unknown {
  if (v instanceof Uint8Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(normalise);
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x)]));
  if (typeof v === 'number' && Object.is(v, -0)) return 0;
  return v;
}
