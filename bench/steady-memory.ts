/**
 * Steady memory: a long QD32 run (60 s; --quick 15 s) with every process's RSS sampled once a second
 * from /proc, to check that nothing grows with the number of requests served. A process whose RSS
 * still rises in the second half of the run (the slope, least squares) holds on to something per
 * request.
 *
 *   node --import tsx bench/steady-memory.ts [--quick]
 */
import { loadavg } from 'node:os';
import { figures, machineInfo, points, printTable, pvblkBench, quick, writeResults } from './lib.ts';

const runtime = quick ? '15' : '60';
const args = [
  '--name=steady',
  '--rw=randwrite',
  '--bs=4k',
  '--iodepth=32',
  '--direct=1',
  '--time_based',
  `--runtime=${runtime}`,
];
const extra = ['--disk', 'delay=0', '--rss-interval=1s', '--warmup=2s'];
console.log(`pvblk bench ${[...args, ...extra].join(' ')}`);
const load0 = loadavg();
const j = await pvblkBench([...args, ...extra]);
const load1 = loadavg();
const p = points(j)[0];
const f = figures(p);
const mib = (b: number) => (b / 1048576).toFixed(1);
// each half's range: a process that holds on to something per request has a second half that keeps rising
const halves = (s: Array<[number, number]>) => {
  const h = Math.floor(s.length / 2);
  const r = (xs: Array<[number, number]>) =>
    `${mib(Math.min(...xs.map((x) => x[1])))}-${mib(Math.max(...xs.map((x) => x[1])))}`;
  return [r(s.slice(0, h)), r(s.slice(h))];
};
printTable(
  [
    'process',
    'first MiB',
    'last MiB',
    'max MiB',
    '1st half MiB',
    '2nd half MiB',
    'slope 2nd half (MiB/min)',
    'samples',
  ],
  p.pvblk.memory.map((m) => [
    m.name,
    mib(m.firstBytes),
    mib(m.lastBytes),
    mib(m.maxBytes),
    ...halves(m.series),
    m.slopeMiBPerMin === null ? '–' : m.slopeMiBPerMin.toFixed(2),
    String(m.samples),
  ]),
);
const ios = p.jobs.reduce((a, x) => a + x.write.total_ios, 0);
console.log(`\n${ios} writes in ${runtime} s (${f.iops.toFixed(0)} IOPS)`);
const m = machineInfo();
console.log(
  `${m.cores} cores (${m.cpu}), Node ${m.node}; load average ${load0[0].toFixed(2)} before, ${load1[0].toFixed(2)} after`,
);
console.log(
  `results: ${writeResults('steady-memory', { machine: m, runtimeSeconds: Number(runtime), ios, iops: f.iops, memory: p.pvblk.memory, loadavg: { before: load0, after: load1 } })}`,
);
