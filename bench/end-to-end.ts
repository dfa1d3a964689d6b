/**
 * End-to-end figures of the data path against the transport's limit, measured in the same run: each
 * configuration is one `pvblk bench --baseline` (a stack of its own, the job in the guest, then the
 * relay — client → relay → server over ws with the broker's frames — with the same job shape).
 *
 *   node --import tsx bench/end-to-end.ts [--quick] [--repeat N] [--slices N]
 *   (≈ 4 min a round; --quick ≈ 1.5)
 *
 * Prints pvblk, relay and pvblk/relay for the figures issue 10 sets goals for (and QD1's lat p50, the
 * span of the relay's round trip, beside the clat p50 the goal is stated on), and the CPU per I/O
 * of all pvblk's processes against all the relay's; writes bench/results/end-to-end.json with every
 * run's full JSON. With `--repeat N` the configurations are run N times in rounds (so a change in the
 * machine's load touches every configuration alike) and each ratio is the median of its N same-run
 * ratios, with their range. With `--slices N`, pvblk and the relay take turns within each run in N
 * slices (`pvblk bench --baseline-slices`), so that a slow spell of a shared machine falls on both
 * sides of a ratio — at a cost to pvblk that docs/performance.md measures: by default each side runs
 * once, through, as the issue's goals are about a steady stream.
 */
import { loadavg } from 'node:os';
import {
  figures,
  GOAL_CONFIGS,
  goalJobArgs,
  intArg,
  machineInfo,
  median,
  points,
  printTable,
  pvblkBench,
  quick,
  writeResults,
} from './lib.ts';

const repeat = intArg('repeat', 1, 20);
const runtime = quick ? '3' : '10';
// slices of at least 200 ms (pvblk bench's own limit)
const slices = intArg('slices', 1, Number(runtime) * 5);
const common = [
  '--direct=1',
  '--time_based',
  `--runtime=${runtime}`,
  '--disk',
  'delay=0',
  '--baseline',
  `--baseline-slices=${slices}`,
  '--warmup=1s',
];

const configs = GOAL_CONFIGS;

type Figures = ReturnType<typeof figures>;
const results: Record<string, unknown[]> = {};
const runs: Record<string, Figures[]> = {};
const load0 = loadavg();
for (let round = 1; round <= repeat; round++) {
  for (const c of configs) {
    process.stderr.write(`end-to-end: ${c.what}${repeat > 1 ? ` (round ${round} of ${repeat})` : ''} …\n`);
    const j = await pvblkBench([...goalJobArgs(c), ...common]);
    (results[c.id] ??= []).push(j);
    (runs[c.id] ??= []).push(figures(points(j)[0]));
  }
}
const load1 = loadavg();

const f = (v: number, d = 1) => v.toFixed(d);
/** pvblk, relay (medians over the runs), the median of the same-run ratios, and their range. */
const row = (
  id: string,
  mine: (x: Figures) => number | null,
  theirs: (x: Figures) => number | null,
  d = 1,
) => {
  const rs = runs[id];
  const a = rs.map(mine).filter((v): v is number => v !== null);
  const b = rs.map(theirs).filter((v): v is number => v !== null);
  const ratios = rs
    .map((x) => [mine(x), theirs(x)])
    .filter((p): p is [number, number] => p[0] !== null && p[1] !== null && p[1] > 0)
    .map(([x, y]) => x / y);
  return [
    a.length ? f(median(a), d) : '–',
    b.length ? f(median(b), d) : '–',
    ratios.length ? `${median(ratios).toFixed(2)}×` : '–',
    ratios.length > 1 ? `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}×` : '',
  ];
};
const goals: Array<
  [string, string, (x: Figures) => number | null, (x: Figures) => number | null, string, number]
> = [
  [
    '4 KiB randwrite QD1: clat p50 (µs) vs relay RTT p50',
    'qd1',
    (x) => x.clatP50us,
    (x) => x.relayRttP50us,
    '≤ 1.3×',
    1,
  ],
  // the same span as the relay's round trip: the guest's submission (fio's slat) counted in
  [
    '4 KiB randwrite QD1: lat p50 (µs) vs relay RTT p50',
    'qd1',
    (x) => x.latP50us,
    (x) => x.relayRttP50us,
    '',
    1,
  ],
  ['4 KiB randwrite QD1: IOPS', 'qd1', (x) => x.iops, (x) => x.relayIops, '', 0],
  ['4 KiB randwrite QD32: IOPS', 'qd32', (x) => x.iops, (x) => x.relayIops, '', 0],
  ['4 KiB randwrite QD32 with PI: IOPS', 'qd32pi', (x) => x.iops, (x) => x.relayIops, '≥ 0.8×', 0],
  ['128 KiB write QD8: MiB/s', 'seq128w', (x) => x.mibps, (x) => x.relayMibps, '≥ 0.8×', 1],
  ['128 KiB read QD8: MiB/s', 'seq128r', (x) => x.mibps, (x) => x.relayMibps, '≥ 0.8×', 1],
];
const ratioHeads = repeat > 1 ? [`pvblk/relay (median of ${repeat})`, 'range'] : ['pvblk/relay', ''];
printTable(
  ['figure', 'pvblk', 'relay', ...ratioHeads, 'goal'],
  goals.map(([what, id, a, b, goal, d]) => [what, ...row(id, a, b, d), goal]),
);
console.log('');
// in all, then split: user mode (the processes' own code) and kernel (socket calls, wake-ups)
const cpuTables: Array<[string, (x: Figures) => number | null, (x: Figures) => number | null]> = [
  ['CPU per I/O, all processes (µs)', (x) => x.cpuPerIoUs, (x) => x.relayCpuPerIoUs],
  ['… of it in user mode (µs)', (x) => x.cpuUserPerIoUs, (x) => x.relayCpuUserPerIoUs],
  ['… of it in the kernel (µs)', (x) => x.cpuSystemPerIoUs, (x) => x.relayCpuSystemPerIoUs],
];
for (const [head, mine, theirs] of cpuTables) {
  printTable(
    [head, 'pvblk', 'relay', ...ratioHeads],
    configs.map((c) => [c.what, ...row(c.id, mine, theirs, 1)]),
  );
  console.log('');
}
printTable(
  ['configuration', 'notify→be/req', 'notify→fe/req', 'req/io', 'grant ops/req', 'round trips/req'],
  configs.map((c) => {
    const m = (k: keyof Figures) => median(runs[c.id].map((x) => x[k] as number));
    return [
      c.what,
      f(m('notifyToBackend'), 3),
      f(m('notifyToGuest'), 3),
      f(m('requestsPerIo'), 2),
      f(m('grantOpsPerRequest'), 3),
      f(m('roundTripsPerRequest'), 3),
    ];
  }),
);
console.log('');
// the namespace's TCP while each side ran: under bbr, segments arriving out of order on loopback and
// resent (docs/performance.md, "TCP congestion control")
printTable(
  ['TCP per 1000 I/Os', 'out of order: pvblk', 'relay', 'retransmitted: pvblk', 'relay'],
  configs.map((c) => {
    const m = (k: keyof Figures) => {
      const v = runs[c.id].map((x) => x[k] as number | null).filter((x): x is number => x !== null);
      return v.length ? f(median(v), 2) : '–';
    };
    return [c.what, m('ofoPerKio'), m('relayOfoPerKio'), m('retransPerKio'), m('relayRetransPerKio')];
  }),
);
console.log('');
// each round's ratio beside the CPU the hypervisor under this machine stole while each side ran: a
// round in which one side lost a fifth of its time to another tenant measured the host, not pvblk
printTable(
  [
    'figure with a goal',
    ...Array.from({ length: repeat }, (_, i) => `round ${i + 1}: ratio (steal pvblk/relay)`),
  ],
  goals
    .filter(([, , , , goal]) => goal !== '')
    .map(([what, id, a, b]) => [
      what,
      ...runs[id].map((x) => {
        const mine = a(x);
        const theirs = b(x);
        const r = mine !== null && theirs ? `${(mine / theirs).toFixed(2)}×` : '–';
        const st = (v: number | null) => (v === null ? '–' : v.toFixed(1));
        return `${r} (${st(x.stealPct)}/${st(x.relayStealPct)} %)`;
      }),
    ]),
);
const machine = machineInfo();
console.log(
  `\n${machine.cores} cores (${machine.cpu}), Node ${machine.node}, TCP congestion control ${machine.tcpCongestionControl ?? 'unknown'}; runtime ${runtime} s per run${slices > 1 ? ` in ${slices} slices a side` : ''}; load average ${load0[0].toFixed(2)} before, ${load1[0].toFixed(2)} after (this machine is shared: read the ratios)`,
);
console.log(
  `results: ${writeResults('end-to-end', { machine, runtimeSeconds: Number(runtime), slices, repeat, loadavg: { before: load0, after: load1 }, figures: runs, runs: results })}`,
);
