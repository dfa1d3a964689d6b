/**
 * `pvblk bench`'s stack options as parsed (the runs themselves are test/process/bench.test.ts):
 * --pi-inline / --no-pi-inline and its sweep.
 */
import { describe, expect, it } from 'vitest';
import { FioUsageError } from '@pvblk/frontend';
import { benchPoints, parseBenchArgs, type BenchOptions } from '../../src/cli/bench-options.ts';

const parse = (...args: string[]) => parseBenchArgs(['--name=t', ...args]) as BenchOptions;

describe('pvblk bench: inline integrity requests', () => {
  it('are on by default, and --no-pi-inline or --pi-inline=0 turns them off', () => {
    expect(parse('--pi').stack.piInline).toBe(true);
    expect(parse('--pi', '--no-pi-inline').stack.piInline).toBe(false);
    expect(parse('--pi', '--pi-inline=0').stack.piInline).toBe(false);
    expect(parse('--pi', '--no-pi-inline', '--pi-inline').stack.piInline).toBe(true);
  });

  it('can be swept: one stack each', () => {
    const points = benchPoints(parse('--pi', '--sweep', 'pi-inline=1,0'));
    expect(points.map((p) => p.stack.piInline)).toEqual([true, false]);
    expect(points.map((p) => p.stack.pi)).toEqual([true, true]);
  });

  it('refuses a value for --no-pi-inline and a word for --pi-inline, naming the option', () => {
    expect(() => parse('--no-pi-inline=1')).toThrow(FioUsageError);
    expect(() => parse('--no-pi-inline=1')).toThrow("option '--no-pi-inline' takes no value");
    expect(() => parse('--pi-inline=maybe')).toThrow(/pi-inline/);
  });
});
