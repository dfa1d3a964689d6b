/**
 * The experiments of docs/experiments.md: effects published for real Xen blkfront/blkback, measured
 * here as ratios between the points of one `pvblk bench --sweep` (same stack shape otherwise, same
 * run). Each experiment prints its command, its points and its ratio; plots go to
 * bench/results/experiment-<id>.svg and everything to bench/results/experiments.json.
 *
 *   node --import tsx bench/experiments.ts [--quick] [id…]     (≈ 10 min; --quick ≈ 4 min)
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  figures,
  machineInfo,
  points,
  printTable,
  pvblkBench,
  quick,
  RESULTS_DIR,
  writeResults,
} from './lib.ts';

const runtime = quick ? '2' : '6';
const base = ['--direct=1', '--time_based', `--runtime=${runtime}`, '--warmup=1s'];

interface Experiment {
  id: string;
  title: string;
  args: string[];
  /** The figure the ratio is taken of … */
  figure: 'iops' | 'mibps' | 'clatP50us' | 'notifyPerRequest';
  /** … of which point over which (point labels as `key=value …`; default: last over first). */
  compare?: [string, string];
}

export const EXPERIMENTS: Experiment[] = [
  {
    id: 'persistent',
    title: 'persistent grants vs a grant map per request (4 KiB randwrite QD32)',
    args: [
      '--name=pg',
      '--rw=randwrite',
      '--bs=4k',
      '--iodepth=32',
      '--disk',
      'delay=0',
      '--sweep',
      'persistent=1,0',
    ],
    figure: 'iops',
  },
  {
    id: 'persistent-4guests',
    title: 'persistent grants vs a grant map per request, 4 guests at once',
    args: [
      '--name=pg4',
      '--rw=randwrite',
      '--bs=4k',
      '--iodepth=16',
      '--guests=4',
      '--disk',
      'delay=0',
      '--sweep',
      'persistent=1,0',
    ],
    figure: 'iops',
  },
  {
    id: 'ring-order',
    title: 'ring of 1 page (32 slots) vs 16 pages (512) on a deep, slow disk (ndelay 20 ms, QD256)',
    args: [
      '--name=deep',
      '--rw=randread',
      '--bs=4k',
      '--iodepth=256',
      '--disk',
      'ndelay=20000000',
      '--sweep',
      'ring-page-order=0,4',
    ],
    figure: 'iops',
  },
  {
    id: 'indirect',
    title: 'indirect descriptors vs 11-segment requests, 128 KiB reads QD8',
    args: [
      '--name=ind',
      '--rw=read',
      '--bs=128k',
      '--iodepth=8',
      '--disk',
      'delay=0',
      '--sweep',
      'indirect-segments=0,32',
    ],
    figure: 'mibps',
  },
  {
    id: 'queues',
    title:
      '1 vs 4 queues while CPU-bound (4 KiB randread, 4 jobs × QD16), also against one ring of as many slots',
    args: [
      '--name=mq',
      '--rw=randread',
      '--bs=4k',
      '--iodepth=16',
      '--numjobs=4',
      '--group_reporting',
      '--disk',
      'delay=0',
      '--sweep',
      'queues=1,4',
      '--sweep',
      'ring-page-order=0,2',
    ],
    figure: 'iops',
    // four rings of one page against one ring of four pages: the same 128 slots
    compare: ['queues=4 ring-page-order=0', 'queues=1 ring-page-order=2'],
  },
  {
    id: 'notify',
    title: 'notification suppression: notifications per request against depth (4 KiB randwrite)',
    args: ['--name=ev', '--rw=randwrite', '--bs=4k', '--disk', 'delay=0', '--sweep', 'iodepth=1,2,4,8,16,32'],
    figure: 'notifyPerRequest',
  },
  {
    id: 'copy-vs-map',
    title: 'grant copy vs grant map, without persistent grants (4 KiB randread QD32)',
    args: [
      '--name=cm',
      '--rw=randread',
      '--bs=4k',
      '--iodepth=32',
      '--no-persistent',
      '--disk',
      'delay=0',
      '--sweep',
      'data-path=map,copy',
    ],
    figure: 'iops',
  },
  {
    id: 'pi',
    title: 'the cost of PI (4 KiB randwrite QD32, dif=1 dix=1 and the integrity extension)',
    args: [
      '--name=pi',
      '--rw=randwrite',
      '--bs=4k',
      '--iodepth=32',
      '--disk',
      'delay=0',
      '--sweep',
      'pi=0,1',
    ],
    figure: 'iops',
  },
  {
    id: 'pi-inline',
    title: 'PI inline in the ring slot vs descriptor and PI pages (4 KiB randwrite QD32, dif=1 dix=1)',
    args: [
      '--name=pii',
      '--rw=randwrite',
      '--bs=4k',
      '--iodepth=32',
      '--pi',
      '--disk',
      'delay=0',
      '--sweep',
      'pi-inline=0,1',
    ],
    figure: 'iops',
  },
  {
    id: 'load',
    title: 'latency against offered load: rate_iops held, then none (4 KiB randwrite QD32)',
    args: [
      '--name=ol',
      '--rw=randwrite',
      '--bs=4k',
      '--iodepth=32',
      '--disk',
      'delay=0',
      '--sweep',
      'rate_iops=1000,4000,16000,0',
    ],
    figure: 'clatP50us',
  },
];

const only = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const chosen = EXPERIMENTS.filter((e) => only.length === 0 || only.includes(e.id));
mkdirSync(RESULTS_DIR, { recursive: true });
const out: Array<Record<string, unknown>> = [];
const load0 = loadavg();
for (const e of chosen) {
  const plot = fileURLToPath(new URL(`experiment-${e.id}.svg`, RESULTS_DIR));
  const args = [...e.args, ...base, `--plot=${plot}`];
  console.log(
    `\n## ${e.title}\npvblk bench ${args.join(' ').replace(plot, `bench/results/experiment-${e.id}.svg`)}`,
  );
  let j;
  try {
    j = await pvblkBench(args);
  } catch (err) {
    console.log(`failed: ${(err as Error).message}`);
    out.push({ id: e.id, title: e.title, args, error: (err as Error).message });
    continue;
  }
  const ps = points(j).map((p) => ({ point: p.pvblk.point, ...figures(p) }));
  printTable(
    [
      'point',
      'IOPS',
      'MiB/s',
      'clat p50 µs',
      'clat p99 µs',
      'notify/req (both ways)',
      'req/io',
      'grant ops/req',
    ],
    ps.map((p) => [
      Object.entries(p.point)
        .map(([k, v]) => `${k}=${v}`)
        .join(' '),
      p.iops.toFixed(0),
      p.mibps.toFixed(1),
      p.clatP50us.toFixed(0),
      p.clatP99us.toFixed(0),
      p.notifyPerRequest.toFixed(3),
      p.requestsPerIo.toFixed(2),
      p.grantOpsPerRequest.toFixed(3),
    ]),
  );
  const label = (p: (typeof ps)[number]) =>
    Object.entries(p.point)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
  const [x, y] = e.compare
    ? e.compare.map((l) => ps.find((p) => label(p) === l)!)
    : [ps[ps.length - 1], ps[0]];
  const r = x[e.figure] / y[e.figure];
  console.log(`${e.figure}: ${label(x)} / ${label(y)} = ${r.toFixed(2)}×`);
  out.push({
    id: e.id,
    title: e.title,
    args,
    figure: e.figure,
    compared: [label(x), label(y)],
    ratio: r,
    points: ps,
    runs: points(j),
  });
}
const load1 = loadavg();
const m = machineInfo();
// running some experiments updates those in the results file and keeps the others
let kept: Array<Record<string, unknown>> = [];
try {
  const prev = JSON.parse(readFileSync(new URL('experiments.json', RESULTS_DIR), 'utf8')) as {
    experiments?: Array<Record<string, unknown>>;
  };
  kept = (prev.experiments ?? []).filter((x) => !out.some((o) => o.id === x.id));
} catch {
  kept = [];
}
console.log(
  `\n${m.cores} cores (${m.cpu}), Node ${m.node}; load average ${load0[0].toFixed(2)} before, ${load1[0].toFixed(2)} after`,
);
console.log(
  `results: ${writeResults('experiments', { machine: m, runtimeSeconds: Number(runtime), loadavg: { before: load0, after: load1 }, experiments: [...kept, ...out] })}`,
);
