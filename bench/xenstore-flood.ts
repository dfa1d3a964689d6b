/**
 * One guest's I/O while another guest floods XenStore: what a hostile neighbour costs through the
 * broker, which serves the data path and XenStore on one thread (docs/security.md, *a flood that holds
 * the broker*). A stack of `pvblk up --memory --disk delay=0`; the victim is its guest, running
 * `fio --rw=randwrite --bs=4k --iodepth=1 --direct=1` three times: quiet, during the flood, and quiet
 * again. The flooder is a second guest domain, made through the host's API like any other, that
 * writes 8,000 XenStore nodes of its own a frame (500 nodes under its frontend's `state`, which
 * Dom0's blkback watches), waiting for each frame's replies before the next — as fast as the broker
 * lets it.
 *
 *   node --import tsx bench/xenstore-flood.ts [--quick] [--runtime S]
 *
 * Prints the victim's IOPS and clat percentiles in each phase and the flooded/quiet ratios, the
 * flooder's writes a second, and the CPU each process used in each phase; writes
 * bench/results/xenstore-flood.json.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectWs } from '@pvblk/client';
import { readStack } from '../src/cli/lock.ts';
import { resolveOperatorAccess } from '../src/cli/xl-access.ts';
import { cpuSnapshot, intArg, machineInfo, printTable, quick, writeResults } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'bin/pvblk.mjs');
const runtime = intArg('runtime', quick ? 3 : 8, 600);
/** XenStore writes in each of the flooder's frames, and the nodes they go to. */
const PER_FRAME = 8000;
const NODES = 500;

const runDir = mkdtempSync(join(tmpdir(), 'pvblk-flood-'));
const up = spawn(process.execPath, [CLI, 'up', '--memory', '--disk', 'delay=0', '--run-dir', runDir], {
  stdio: ['ignore', 'ignore', 'inherit'],
});
const stop = () => {
  spawnSync(process.execPath, [CLI, 'down', '--run-dir', runDir], { stdio: 'ignore' });
  rmSync(runDir, { recursive: true, force: true });
};
process.on('exit', stop);

async function waitFor(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (up.exitCode !== null) throw new Error(`pvblk up exited (${up.exitCode}) before ${what}`);
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Clat {
  iops: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

/** The victim's fio, run in the guest through the CLI; its write figures (latencies in µs). */
async function victimFio(): Promise<Clat> {
  const args = [
    CLI,
    'guest',
    '--run-dir',
    runDir,
    'fio',
    '--name=victim',
    '--rw=randwrite',
    '--bs=4k',
    '--iodepth=1',
    '--direct=1',
    '--time_based',
    `--runtime=${runtime}`,
    '--output-format=json',
  ];
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let s = '';
    p.stdout.on('data', (d: Buffer) => (s += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(s) : reject(new Error(`guest fio exited ${code}`))));
  });
  const w = (JSON.parse(out) as { jobs: Array<{ write: FioSide }> }).jobs[0].write;
  const pct = w.clat_ns.percentile;
  return {
    iops: w.iops,
    p50: pct['50.000000'] / 1000,
    p99: pct['99.000000'] / 1000,
    p999: pct['99.900000'] / 1000,
    max: w.clat_ns.max / 1000,
  };
}

interface FioSide {
  iops: number;
  clat_ns: { max: number; percentile: Record<string, number> };
}

/** CPU seconds each stack process used while `phase` ran. */
async function measured<T>(phase: () => Promise<T>): Promise<{ result: T; cpu: Record<string, number> }> {
  const stack = await readStack(runDir);
  const pids = Object.fromEntries((stack?.info.processes ?? []).map((p) => [p.name, p.pid]));
  const before = Object.fromEntries(Object.entries(pids).map(([n, p]) => [n, cpuSnapshot([p]).ownMs]));
  const result = await phase();
  const cpu: Record<string, number> = {};
  for (const [n, p] of Object.entries(pids)) {
    const a = before[n];
    const b = cpuSnapshot([p]).ownMs;
    if (a !== null && b !== null) cpu[n] = (b - a) / 1000;
  }
  return { result, cpu };
}

await waitFor(() => existsSync(join(runDir, 'guest.sock')), 'the guest');
// the stack's own access file, whatever PVBLK_TOOLSTACK_* this shell has
const ts = resolveOperatorAccess({ runDir }, {});
if (!ts.hypervisor) throw new Error(`${runDir}: the stack published no hypervisor URL`);
const made = await fetch(`${ts.api}/guests`, {
  method: 'POST',
  headers: { authorization: `Bearer ${ts.token}`, 'content-type': 'application/json' },
  body: JSON.stringify({ name: 'flooder' }),
});
if (!made.ok) throw new Error(`POST /guests: ${made.status} ${await made.text()}`);
const { domid, credential } = (await made.json()) as { domid: number; credential: string };
const xc = await connectWs(ts.hypervisor, { credential, retryForMs: 10_000 });
const state = `/local/domain/${domid}/device/vbd/51712/state`;
const nodes = Array.from({ length: NODES }, (_, i) => `${state}/c${i}`);
await Promise.all(nodes.map((n) => xc.xs.write(n, '0')));

let flooding = false;
let floodWrites = 0;
async function flood(): Promise<void> {
  let n = 0;
  while (flooding) {
    const frame: Array<Promise<void>> = [];
    for (let i = 0; i < PER_FRAME; i++, n++) frame.push(xc.xs.write(nodes[n % NODES], String(n & 7)));
    await Promise.all(frame);
    floodWrites += PER_FRAME;
  }
}

console.log(
  `victim: fio randwrite 4k QD1, ${runtime} s a phase; flooder: ${PER_FRAME} XenStore writes a frame`,
);
const quiet1 = await measured(victimFio);
flooding = true;
const t0 = performance.now();
const flooder = flood();
const flooded = await measured(victimFio);
flooding = false;
await flooder;
const floodSeconds = (performance.now() - t0) / 1000;
const quiet2 = await measured(victimFio);
xc.close();

const phases = [
  ['quiet', quiet1],
  ['flooded', flooded],
  ['quiet again', quiet2],
] as const;
const f1 = (x: number) => x.toFixed(1);
printTable(
  [
    'phase',
    'IOPS',
    'clat p50 µs',
    'p99 µs',
    'p99.9 µs',
    'max µs',
    ...Object.keys(quiet1.cpu).map((n) => `${n} CPU s`),
  ],
  phases.map(([name, p]) => [
    name,
    p.result.iops.toFixed(0),
    f1(p.result.p50),
    f1(p.result.p99),
    f1(p.result.p999),
    f1(p.result.max),
    ...Object.values(p.cpu).map(f1),
  ]),
);
const quietIops = (quiet1.result.iops + quiet2.result.iops) / 2;
const quietP50 = (quiet1.result.p50 + quiet2.result.p50) / 2;
const ratios = {
  iops: flooded.result.iops / quietIops,
  clatP50: flooded.result.p50 / quietP50,
};
const rate = floodWrites / floodSeconds;
console.log(
  `\nflooded / quiet (mean of the quiet phases): IOPS ${ratios.iops.toFixed(2)}×, clat p50 ${ratios.clatP50.toFixed(2)}×` +
    `\nflooder: ${floodWrites} XenStore writes in ${floodSeconds.toFixed(1)} s (${(rate / 1000).toFixed(1)}k a second)`,
);
const file = writeResults('xenstore-flood', {
  machine: machineInfo(),
  runtime,
  perFrame: PER_FRAME,
  nodes: NODES,
  phases: Object.fromEntries(phases.map(([name, p]) => [name, p])),
  ratios,
  flooder: { writes: floodWrites, seconds: floodSeconds, perSecond: rate },
});
console.log(`wrote ${file}`);
process.exit(0);
