/**
 * The disk's delay model: how close a scsi_debug command's response comes to `ndelay` (nanoseconds,
 * kept by a deadline queue that polls the clock for the last 1.5 ms) and to `delay` (jiffies, a
 * setTimeout of 1 ms per jiffy), measured in this process on the target alone (READ(10) of one block,
 * one command at a time, 300 each).
 *
 *   node --import tsx bench/ndelay.ts [--quick]
 */
import { MemoryKernelLog } from '@pvblk/shared';
import {
  MemoryStore,
  ScsiDebugTarget,
  encodeRw,
  parseScsiDebugParams,
  storeFormatFor,
} from '../packages/backend/src/scsi/index.ts';
import { machineInfo, printTable, quantile, quick, writeResults } from './lib.ts';

const n = quick ? 100 : 300;
const cases = [
  'delay=0',
  'ndelay=50000',
  'ndelay=100000',
  'ndelay=250000',
  'ndelay=500000',
  'ndelay=1000000',
  'ndelay=2000000',
  'delay=1',
  'delay=2',
];
const rows: string[][] = [];
const out: Record<string, unknown> = {};
for (const c of cases) {
  const p = parseScsiDebugParams(c);
  const t = new ScsiDebugTarget({
    params: p,
    store: new MemoryStore(storeFormatFor(p)),
    log: new MemoryKernelLog(),
  });
  const cdb = encodeRw({ write: false, size: 10, lba: 0, blocks: 1, protect: 0 });
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await t.queueCommand({ cdb });
    us.push((performance.now() - t0) * 1000);
  }
  const want = p.ndelay > 0 ? p.ndelay / 1000 : p.delay * 1000;
  const q = (x: number) => quantile(us, x);
  rows.push([
    c,
    want.toFixed(0),
    q(0).toFixed(0),
    q(0.5).toFixed(0),
    q(0.99).toFixed(0),
    (q(0.5) - want).toFixed(0),
  ]);
  out[c] = { targetUs: want, minUs: q(0), p50Us: q(0.5), p99Us: q(0.99), maxUs: q(1) };
}
printTable(['parameters', 'target µs', 'min µs', 'p50 µs', 'p99 µs', 'p50 late by µs'], rows);
const m = machineInfo();
console.log(`\n${m.cores} cores (${m.cpu}), Node ${m.node}; ${n} commands each`);
console.log(`results: ${writeResults('ndelay', { machine: m, commands: n, cases: out })}`);
