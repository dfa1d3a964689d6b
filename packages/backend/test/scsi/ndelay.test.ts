import { describe, expect, it } from 'vitest';
import { MemoryKernelLog, isPvblkError } from '@pvblk/shared';
import {
  MemoryStore,
  ScsiDebugTarget,
  applyRuntimeParam,
  encodeRw,
  parseScsiDebugParams,
  storeFormatFor,
} from '../../src/scsi/index.ts';
import { delayNs } from '../../src/scsi/delay.ts';

function usageError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isPvblkError(e)) return `${e.code}: ${e.message.replace(/^[A-Z]+: /, '')}`;
    throw e;
  }
  return 'no error';
}

describe('scsi_debug ndelay', () => {
  it('is a parameter in nanoseconds below one second', () => {
    expect(parseScsiDebugParams('').ndelay).toBe(0);
    expect(parseScsiDebugParams('ndelay=250000').ndelay).toBe(250_000);
    expect(usageError(() => parseScsiDebugParams('ndelay=1000000000'))).toBe(
      'EUSAGE: disk parameter "ndelay": must be 0 to 999999999 nanoseconds (got 1000000000)',
    );
    expect(usageError(() => parseScsiDebugParams('ndelay=-1'))).toBe(
      'EUSAGE: disk parameter "ndelay": must be 0 to 999999999 nanoseconds (got -1)',
    );
  });

  it('overrides delay and is writable at runtime, as delay_store/ndelay_store have it', () => {
    const p = parseScsiDebugParams('delay=5');
    const n = applyRuntimeParam(p, 'ndelay', '100000');
    expect(n).toMatchObject({ ndelay: 100_000, delay: 5 });
    // writing delay clears ndelay; writing ndelay=0 puts the default jiffy back
    expect(applyRuntimeParam(n, 'delay', '2')).toMatchObject({ ndelay: 0, delay: 2 });
    expect(applyRuntimeParam(n, 'ndelay', '0')).toMatchObject({ ndelay: 0, delay: 1 });
  });

  it('never answers a command before ndelay has passed', async () => {
    const p = parseScsiDebugParams('ndelay=400000 delay=50');
    const t = new ScsiDebugTarget({
      params: p,
      store: new MemoryStore(storeFormatFor(p)),
      log: new MemoryKernelLog(),
    });
    const cdb = encodeRw({ write: false, size: 10, lba: 0, blocks: 1, protect: 0 });
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const r = await t.queueCommand({ cdb });
      const ms = performance.now() - t0;
      expect(r.status).toBe('GOOD');
      expect(ms).toBeGreaterThanOrEqual(0.4);
      // delay=50 (jiffies) is overridden: a 50 ms wait would mean ndelay was ignored
      expect(ms).toBeLessThan(50);
    }
  });

  it('resolves waiters in deadline order, none early', async () => {
    const order: number[] = [];
    const late: number[] = [];
    const ns = [900_000, 50_000, 2_500_000, 300_000, 0, 1_200_000];
    await Promise.all(
      ns.map((d, i) => {
        const t0 = performance.now();
        return delayNs(d).then(() => {
          if (performance.now() - t0 < d / 1e6) late.push(i);
          order.push(d);
        });
      }),
    );
    expect(late).toEqual([]);
    expect(order).toEqual([...ns].sort((a, b) => a - b));
  });
});
