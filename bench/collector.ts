/**
 * What V8's collector does in each process under 128 KiB I/O, with each set of node flags in turn:
 * `pvblk bench --rw=read --bs=128k --iodepth=8 --baseline --baseline-slices=5` (5 s, `--disk
 * delay=0`), its processes started with the set's flags (PVBLK_NODE_FLAGS) and `--trace-gc`. For each
 * run: the mark-compacts and scavenges of every process (counted from its `--trace-gc` lines), the
 * CPU per I/O of each of pvblk's processes and of the relay's, and both sides' MiB/s. Sliced runs,
 * because taking turns is what brought the broker's collector state on most often
 * (docs/performance.md).
 *
 *   node --import tsx bench/collector.ts [--runs N] [--quick]   (≈ 40 s a run; --quick: 2 runs each)
 *
 * Sets, run in turn: "pvblk" (the flags pvblk starts its processes with: CHILD_NODE_FLAGS) and
 * "before" (the flags before the collector state was found: --min-semi-space-size=16 alone). Writes
 * bench/results/collector.json.
 */
import { CHILD_NODE_FLAGS } from '../src/cli/stack.ts';
import {
  figures,
  intArg,
  machineInfo,
  median,
  printTable,
  pvblkBenchRun,
  type ProcessCpuJson,
  quick,
  writeResults,
} from './lib.ts';

const runs = intArg('runs', quick ? 2 : 4, 20);
const sets: Array<{ id: string; flags: string[] }> = [
  { id: 'pvblk', flags: [...CHILD_NODE_FLAGS] },
  // the flags before the collector state was found: incremental marking, V8's own growing factor
  { id: 'before', flags: ['--min-semi-space-size=16'] },
];
const args = [
  '--name=collector',
  '--rw=read',
  '--bs=128k',
  '--iodepth=8',
  '--direct=1',
  '--time_based',
  '--runtime=5',
  '--disk',
  'delay=0',
  '--baseline',
  '--baseline-slices=5',
];
/** Each process: its name in the console, and in the bench's CPU figures. */
const PROCESSES: Array<{ name: string; cpu: string }> = [
  { name: 'hypervisor', cpu: 'hypervisor' },
  { name: 'host', cpu: 'host' },
  { name: 'guest', cpu: 'guest' },
  { name: 'relay', cpu: 'relay' },
  { name: 'relay-server', cpu: 'relay-server' },
  { name: 'relay-client0', cpu: 'relay-client (guest)' },
];

interface RunRecord {
  set: string;
  flags: string[];
  markCompacts: Record<string, number>;
  scavenges: Record<string, number>;
  /** CPU per I/O (µs) of each process, its user-mode part in brackets: pvblk's over its I/Os, the relay's over its. */
  cpuPerIoUs: Record<string, { us: number; userUs: number } | null>;
  mibps: number;
  relayMibps: number | null;
}

/** Lines of `name`'s console that `--trace-gc` printed for a collection of `kind`. */
function collections(console: string, name: string, kind: 'Mark-Compact' | 'Scavenge'): number {
  // process names are letters, digits and '-': nothing to escape
  const re = new RegExp(`^${name} +\\| \\[\\d+:0x[0-9a-f]+\\] +\\d+ ms: ${kind}`, 'gm');
  return console.match(re)?.length ?? 0;
}

const records: RunRecord[] = [];
console.log(`pvblk bench ${args.join(' ')}, ${runs} runs a set, sets in turn`);
for (let i = 0; i < runs; i++) {
  for (const set of sets) {
    const flags = [...set.flags, '--trace-gc'];
    const { json, console: text } = await pvblkBenchRun(args, { PVBLK_NODE_FLAGS: flags.join(' ') });
    if ('sweep' in json) throw new Error('a sweep where one point was asked for');
    const f = figures(json);
    const ios = json.jobs.reduce((a, j) => a + j.read.total_ios + j.write.total_ios, 0);
    const relayIos = json.pvblk.relay?.guest?.ios ?? 0;
    const cpuPerIoUs: RunRecord['cpuPerIoUs'] = {};
    const per = (c: ProcessCpuJson, n: number) =>
      c.cpuSeconds === null || c.cpuUserSeconds === null || n === 0
        ? null
        : { us: (c.cpuSeconds * 1e6) / n, userUs: (c.cpuUserSeconds * 1e6) / n };
    for (const c of json.pvblk.memory) cpuPerIoUs[c.name] = per(c, ios);
    for (const c of json.pvblk.relay_cpu ?? []) cpuPerIoUs[c.name] = per(c, relayIos);
    const rec: RunRecord = {
      set: set.id,
      flags,
      markCompacts: Object.fromEntries(
        PROCESSES.map((p) => [p.name, collections(text, p.name, 'Mark-Compact')]),
      ),
      scavenges: Object.fromEntries(PROCESSES.map((p) => [p.name, collections(text, p.name, 'Scavenge')])),
      cpuPerIoUs,
      mibps: f.mibps,
      relayMibps: f.relayMibps,
    };
    records.push(rec);
    const mc = PROCESSES.map((p) => `${p.name} ${rec.markCompacts[p.name]}`).join(', ');
    const hv = cpuPerIoUs.hypervisor;
    console.log(
      `run ${i + 1} ${set.id.padEnd(11)} mark-compacts: ${mc}; hypervisor ${hv ? hv.us.toFixed(0) : '-'} µs/IO; ` +
        `${f.mibps.toFixed(1)} MiB/s, relay ${f.relayMibps?.toFixed(1) ?? '-'}`,
    );
  }
}

const fmt = (xs: number[]) =>
  xs.length ? `${median(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)})` : '-';
const rows: string[][] = [];
for (const set of sets) {
  const mine = records.filter((r) => r.set === set.id);
  for (const p of PROCESSES) {
    const cpu = mine.map((r) => r.cpuPerIoUs[p.cpu]).filter((c) => c);
    rows.push([
      set.id,
      p.name,
      fmt(mine.map((r) => r.markCompacts[p.name])),
      fmt(mine.map((r) => r.scavenges[p.name])),
      fmt(cpu.map((c) => c!.us)),
      fmt(cpu.map((c) => c!.userUs)),
    ]);
  }
}
console.log();
printTable(['set', 'process', 'mark-compacts', 'scavenges', 'CPU µs/IO', 'user µs/IO'], rows);
console.log('(medians over the runs, with their range)');
const file = writeResults('collector', { machine: machineInfo(), args, runs, sets, records });
console.log(`\nwrote ${file}`);
