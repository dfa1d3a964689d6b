/** The CLI's bounded read of a file named on its command line. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileTooLarge, readBounded } from '@pvblk/runtime';

describe('readBounded', () => {
  it('reads a file whole up to the bound, refuses one past it, and an endless device stops at it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pvblk-read-bounded-'));
    try {
      const f = join(dir, 'cfg');
      writeFileSync(f, Buffer.alloc(200_000, 0x61));
      expect(readBounded(f, 200_000).equals(Buffer.alloc(200_000, 0x61))).toBe(true);
      expect(() => readBounded(f, 199_999)).toThrow(new FileTooLarge(199_999));
      expect(() => readBounded('/dev/zero', 1 << 20)).toThrow('more than 1048576 bytes');
      expect(readBounded('/dev/null', 10).length).toBe(0);
      expect(() => readBounded(join(dir, 'missing'), 10)).toThrow(
        expect.objectContaining({ code: 'ENOENT' }),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
