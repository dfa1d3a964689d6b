import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../src/mulberry32.ts';

describe('mulberry32', () => {
  it('is a function of its seed (fio --verify_only and the relay rely on it), in [0, 1)', () => {
    const draw = (seed: number) => {
      const r = mulberry32(seed);
      return Array.from({ length: 1000 }, () => r());
    };
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
    expect(draw(7).every((x) => x >= 0 && x < 1)).toBe(true);
    // the seed is taken as a 32-bit unsigned integer
    expect(draw(2 ** 32 + 5)).toEqual(draw(5));
  });
});
