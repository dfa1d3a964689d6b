/**
 * The chaos workload's block contents and their judgement: a block's contents are a pure function of
 * (seed, block, write id), and a read is classified as one candidate, a torn mix of candidates
 * (sector by sector), or a corruption with the number of bits it differs by.
 */
import { describe, expect, it } from 'vitest';
import { chaosPattern, checkOp, judgeBlock } from '../src/guest/chaos-io.ts';

describe('chaos-io block contents', () => {
  it('are deterministic, distinct per block and write id, and name themselves in every sector', () => {
    expect(chaosPattern(1, 5, 3).equals(chaosPattern(1, 5, 3))).toBe(true);
    expect(chaosPattern(1, 5, 3).equals(chaosPattern(1, 5, 4))).toBe(false);
    expect(chaosPattern(1, 5, 3).equals(chaosPattern(1, 6, 3))).toBe(false);
    expect(chaosPattern(1, 5, 3).equals(chaosPattern(2, 5, 3))).toBe(false);
    expect(chaosPattern(1, 5, 0).equals(Buffer.alloc(4096))).toBe(true);
    const p = chaosPattern(9, 5, 3);
    for (let s = 0; s < 8; s++) {
      expect(p.readUInt32LE(s * 512)).toBe(3);
      expect(p.readUInt32LE(s * 512 + 4)).toBe(5 * 8 + s);
    }
  });

  it('are judged: a candidate, a torn write, or a corruption with its bit count', () => {
    expect(judgeBlock(1, 5, chaosPattern(1, 5, 3), [2, 3])).toBe(3);
    expect(judgeBlock(1, 5, Buffer.alloc(4096), [0, 3])).toBe(0);
    const torn = Buffer.concat([
      chaosPattern(1, 5, 2).subarray(0, 1024),
      chaosPattern(1, 5, 3).subarray(1024),
    ]);
    expect(judgeBlock(1, 5, torn, [2, 3])).toEqual({ t: [2, 2, 3, 3, 3, 3, 3, 3] });
    const flipped = chaosPattern(1, 5, 3);
    flipped[700] ^= 0x10;
    expect(judgeBlock(1, 5, flipped, [2, 3])).toEqual({ x: 1, near: 3 });
    // a block holding another block's write: every sector differs from the candidates
    const v = judgeBlock(1, 5, chaosPattern(1, 6, 3), [3]) as { x: number };
    expect(v.x).toBeGreaterThan(1000);
  });
});

describe('chaos-io operations from the control socket', () => {
  it('are checked before they run, naming what is wrong', () => {
    const blocks = 64;
    expect(checkOp({ k: 'w', b: 0, n: 1, w: 5, d: 1 }, blocks)).toBeNull();
    expect(checkOp({ k: 'r', b: 2, n: 2, c: [[0, 5], [7]] }, blocks)).toBeNull();
    expect(checkOp({ k: 'f' }, blocks)).toBeNull();
    expect(checkOp({ k: 'x' }, blocks)).toMatch(/unknown operation kind "x"/);
    expect(checkOp({ k: 'r', b: 63, n: 2 }, blocks)).toMatch(/outside the device/);
    expect(checkOp({ k: 'w', b: 0, n: 1, w: 2 ** 32 }, blocks)).toMatch(/write id w, 1-4294967295/);
    expect(checkOp({ k: 'w', b: 0, n: 1, w: 1, d: 7 }, blocks)).toMatch(/d must be 0 .* or 1/);
    expect(checkOp({ k: 'r', b: 0, n: 1, c: [5] }, blocks)).toMatch(/each entry of c must be a list/);
    expect(checkOp({ k: 'r', b: 0, n: 1, c: [[null, {}]] }, blocks)).toMatch(/each entry of c/);
    expect(checkOp({ k: 'r', b: 0, n: 2, c: [[1]] }, blocks)).toMatch(/candidates of every block/);
  });
});
