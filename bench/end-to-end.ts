/**
 * End-to-end figures of the data path against the transport's limit, measured in the same run: each
 * configuration is one `pvblk bench --baseline` (a stack of its own, the job in the guest, then the
 * relay — client → relay → server over ws with the broker's frames — with the same job shape).
 *
 *   node --import tsx bench/end-to-end.ts [--quick]      (≈ 2 min; --quick ≈ 1 min)
 *
 * Prints pvblk, relay and pvblk/relay for the four figures issue 10 sets goals for, and writes
 * bench/results/end-to-end.json with every point's full JSON.
 */
import { loadavg } from 'node:os';
import { figures, machineInfo, points, printTable, pvblkBench, quick, ratio, writeResults } from './lib.ts';

const runtime = quick ? '3' : '10';
const common = [
  '--direct=1',
  '--time_based',
  `--runtime=${runtime}`,
  '--disk',
  'delay=0',
  '--baseline',
  '--warmup=1s',
];

const configs: Array<{ id: string; what: string; args: string[] }> = [
  {
    id: 'qd1',
    what: '4 KiB randwrite QD1',
    args: ['--name=qd1', '--rw=randwrite', '--bs=4k', '--iodepth=1'],
  },
  {
    id: 'qd32',
    what: '4 KiB randwrite QD32',
    args: ['--name=qd32', '--rw=randwrite', '--bs=4k', '--iodepth=32'],
  },
  {
    id: 'qd32pi',
    what: '4 KiB randwrite QD32, PI',
    args: ['--name=qd32pi', '--rw=randwrite', '--bs=4k', '--iodepth=32', '--pi'],
  },
  {
    id: 'seq128w',
    what: '128 KiB write QD8',
    args: ['--name=seqw', '--rw=write', '--bs=128k', '--iodepth=8'],
  },
  { id: 'seq128r', what: '128 KiB read QD8', args: ['--name=seqr', '--rw=read', '--bs=128k', '--iodepth=8'] },
];

const results: Record<string, unknown> = {};
const figs: Record<string, ReturnType<typeof figures>> = {};
const load0 = loadavg();
for (const c of configs) {
  process.stderr.write(`end-to-end: ${c.what} …\n`);
  const j = await pvblkBench([...c.args, ...common]);
  results[c.id] = j;
  figs[c.id] = figures(points(j)[0]);
}
const load1 = loadavg();

const f = (v: number, d = 1) => v.toFixed(d);
const rows: string[][] = [];
const add = (what: string, a: number, b: number | null, goal: string, d = 1) =>
  rows.push([what, f(a, d), b === null ? '–' : f(b, d), ratio(a, b), goal]);
add(
  '4 KiB randwrite QD1: clat p50 (µs) vs relay RTT p50',
  figs.qd1.clatP50us,
  figs.qd1.relayRttP50us,
  '≤ 1.3×',
);
add('4 KiB randwrite QD1: IOPS', figs.qd1.iops, figs.qd1.relayIops, '', 0);
add('4 KiB randwrite QD32: IOPS', figs.qd32.iops, figs.qd32.relayIops, '', 0);
add('4 KiB randwrite QD32 with PI: IOPS', figs.qd32pi.iops, figs.qd32pi.relayIops, '≥ 0.8×', 0);
add('128 KiB write QD8: MiB/s', figs.seq128w.mibps, figs.seq128w.relayMibps, '≥ 0.8×');
add('128 KiB read QD8: MiB/s', figs.seq128r.mibps, figs.seq128r.relayMibps, '≥ 0.8×');
printTable(['figure', 'pvblk', 'relay', 'pvblk/relay', 'goal'], rows);
console.log('');
printTable(
  ['configuration', 'notify→be/req', 'notify→fe/req', 'req/io', 'grant ops/req'],
  configs.map((c) => [
    c.what,
    f(figs[c.id].notifyToBackend, 3),
    f(figs[c.id].notifyToGuest, 3),
    f(figs[c.id].requestsPerIo, 2),
    f(figs[c.id].grantOpsPerRequest, 3),
  ]),
);
const machine = machineInfo();
console.log(
  `\n${machine.cores} cores (${machine.cpu}), Node ${machine.node}; runtime ${runtime} s per run; load average ${load0[0].toFixed(2)} before, ${load1[0].toFixed(2)} after (this machine is shared: read the ratios)`,
);
console.log(
  `results: ${writeResults('end-to-end', { machine, runtimeSeconds: Number(runtime), loadavg: { before: load0, after: load1 }, figures: figs, runs: results })}`,
);
