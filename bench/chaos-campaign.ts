/**
 * The chaos campaign: `pvblk chaos` over many seeds, with PI on and with PI off, and the figures
 * docs/faults.md reports — schedules, faults injected by kind, violations (attributable to pvblk, to
 * the harness, to the injected faults), corruptions injected / detected (by layer) / silent.
 *
 *   node --import tsx bench/chaos-campaign.ts [--runs N] [--seed S] [--jobs J] [--quick]
 *
 * N schedules per PI mode (default 500: a campaign of 1000), seeds S … S+N-1 in both modes (the same
 * schedules, PI on and off). --quick: 10 per mode. Each mode is one `pvblk chaos --output-format json`
 * process, exactly as a user runs it; its JSON is kept in bench/results/chaos-campaign.json with the
 * machine's description. It prints figures; it asserts nothing (a violation is a finding, listed with
 * its seed and the command that replays it).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { intArg, machineInfo, printTable, quick, writeResults } from './lib.ts';

const PVBLK = fileURLToPath(new URL('../bin/pvblk.mjs', import.meta.url));

const runs = intArg('runs', quick ? 10 : 500);
const seed = intArg('seed', 1);
const jobs = intArg('jobs', 1);

interface ChaosJson {
  summary: {
    schedules: number;
    faults: Record<string, number>;
    violations: { pvblk: number; harness: number; fault: number; byKind: Record<string, number> };
    corruptions: { injected: number; detected: number; silent: number; by: Record<string, number> };
    writesLostToDrop: number;
    ops: number;
    seconds: number;
  };
  schedules: Array<{
    seed: number;
    digest: string;
    violations: Array<{ kind: string; cause: string; step: number | null; message: string }>;
  }>;
}

function campaign(pi: boolean): Promise<{ json: ChaosJson; wallSeconds: number }> {
  const t0 = Date.now();
  const args = ['chaos', '--seed', String(seed), '--runs', String(runs), '--jobs', String(jobs)];
  args.push(pi ? '--pi' : '--no-pi', '--output-format', 'json');
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [PVBLK, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    // 'close', not 'exit': the child's stdout may still hold data when it has exited
    p.on('close', (code) => {
      try {
        resolve({ json: JSON.parse(out) as ChaosJson, wallSeconds: (Date.now() - t0) / 1000 });
      } catch (e) {
        // keep what came, to see why
        const raw = writeResults(`chaos-campaign-${pi ? 'pi' : 'nopi'}-stdout`, { stdout: out });
        reject(
          new Error(
            `pvblk chaos (${pi ? 'PI on' : 'PI off'}) exited ${code} without a JSON result (${out.length} bytes: ${(e as Error).message}; kept in ${raw})`,
          ),
        );
      }
    });
  });
}

const modes: Array<{ pi: boolean; json: ChaosJson; wallSeconds: number }> = [];
const save = () =>
  writeResults('chaos-campaign', {
    machine: machineInfo(),
    runs,
    seed,
    jobs,
    modes: modes.map((m) => ({ pi: m.pi, wallSeconds: m.wallSeconds, ...m.json })),
  });
for (const pi of [true, false]) {
  console.log(`chaos campaign: ${runs} schedules, seeds ${seed}-${seed + runs - 1}, PI ${pi ? 'on' : 'off'}`);
  modes.push({ pi, ...(await campaign(pi)) });
  save(); // a mode's results are kept as soon as they exist
}

console.log('');
printTable(
  ['', 'PI on', 'PI off'],
  [
    ['schedules', ...modes.map((m) => String(m.json.summary.schedules))],
    ['operations', ...modes.map((m) => String(m.json.summary.ops))],
    [
      'faults injected',
      ...modes.map((m) => String(Object.values(m.json.summary.faults).reduce((a, b) => a + b, 0))),
    ],
    ['violations (pvblk)', ...modes.map((m) => String(m.json.summary.violations.pvblk))],
    ['violations (harness)', ...modes.map((m) => String(m.json.summary.violations.harness))],
    ['violations (injected faults)', ...modes.map((m) => String(m.json.summary.violations.fault))],
    ['corruptions injected', ...modes.map((m) => String(m.json.summary.corruptions.injected))],
    ['  detected', ...modes.map((m) => String(m.json.summary.corruptions.detected))],
    ['    by the guest', ...modes.map((m) => String(m.json.summary.corruptions.by.guest))],
    ['    by the backend', ...modes.map((m) => String(m.json.summary.corruptions.by.backend))],
    ['    by the device', ...modes.map((m) => String(m.json.summary.corruptions.by.device))],
    ['  silent', ...modes.map((m) => String(m.json.summary.corruptions.silent))],
    ['writes lost to drop_writes', ...modes.map((m) => String(m.json.summary.writesLostToDrop))],
    ['wall time (s)', ...modes.map((m) => m.wallSeconds.toFixed(0))],
  ],
);
console.log('');
const kinds = [...new Set(modes.flatMap((m) => Object.keys(m.json.summary.faults)))].sort();
printTable(
  ['fault', 'PI on', 'PI off'],
  kinds.map((k) => [k, ...modes.map((m) => String(m.json.summary.faults[k] ?? 0))]),
);
for (const m of modes) {
  const kindsSeen = Object.entries(m.json.summary.violations.byKind);
  if (kindsSeen.length === 0) continue;
  console.log(`\nviolations, PI ${m.pi ? 'on' : 'off'}:`);
  for (const [k, n] of kindsSeen.sort((a, b) => b[1] - a[1])) console.log(`  ${k}: ${n}`);
  for (const s of m.json.schedules)
    for (const v of s.violations.filter((x) => !x.cause.startsWith('fault:')))
      console.log(`  seed ${s.seed} step ${v.step}: ${v.kind}: ${v.message}`);
}
console.log(`\nresults: ${save()}`);
