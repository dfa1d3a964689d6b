/**
 * The fuzzing campaigns, seed after seed, with a summary (figures from a run are kept in
 * docs/security.md) and the reports in bench/results/fuzz-campaign.json:
 * - hostile wire frames against a real hypervisor process (test/fuzz/broker-fuzzer.ts);
 * - a hostile frontend's requests against blkback (test/fuzz/blkback-fuzzer.ts);
 * - a hostile backend's answers against blkfront (test/fuzz/blkfront-fuzzer.ts).
 *
 *   node --import tsx scripts/fuzz-campaign.ts [--frames N] [--requests N] [--frontends N] [--seeds K] [--first-seed S]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { fuzzBroker, type BrokerFuzzReport } from '../test/fuzz/broker-fuzzer.ts';
import { fuzzBlkback, type BlkbackFuzzReport } from '../test/fuzz/blkback-fuzzer.ts';
import { fuzzBlkfront, type BlkfrontFuzzReport } from '../test/fuzz/blkfront-fuzzer.ts';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(v) || v < 1) {
    console.error(`fuzz-campaign: ${name} must be a positive integer (got ${process.argv[i + 1]})`);
    process.exit(2);
  }
  return v;
}

const frames = arg('--frames', 100_000);
const requests = arg('--requests', 100_000);
const frontends = arg('--frontends', 2000);
const seeds = arg('--seeds', 4);
const firstSeed = arg('--first-seed', 1);
const secret = `fuzz-campaign-${process.pid}-secret`;
const bin = fileURLToPath(new URL('../bin/pvblk.mjs', import.meta.url));

const hv = spawn(process.execPath, [bin, 'hypervisor', '--port', '0'], {
  env: { ...process.env, PVBLK_DOM0_SECRET: secret, PVBLK_LOG_FORMAT: 'json', PVBLK_LOG_LEVEL: 'info' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
let exited: number | null = null;
hv.on('exit', (code, sig) => (exited = code ?? (sig ? 128 : -1)));
const url = await new Promise<string>((resolve, reject) => {
  createInterface({ input: hv.stdout! }).on('line', (l) => {
    try {
      const r = JSON.parse(l) as { event?: string; url?: string };
      if (r.event === 'ready' && r.url) resolve(r.url);
    } catch {
      /* not a record */
    }
  });
  hv.on('exit', () => reject(new Error('the hypervisor exited before it was ready')));
});

const perSeed = Math.ceil(frames / seeds);
const reports: BrokerFuzzReport[] = [];
const t0 = Date.now();
for (let k = 0; k < seeds; k++) {
  const seed = firstSeed + k;
  const r = await fuzzBroker({
    url,
    dom0Secret: secret,
    frames: perSeed,
    seed,
    onProgress: (n) =>
      process.stderr.write(
        `\rseed ${seed}: ${n}/${perSeed} frames, ${((Date.now() - t0) / 1000).toFixed(0)} s elapsed   `,
      ),
  });
  process.stderr.write('\n');
  reports.push(r);
}
const sum = (k: keyof BrokerFuzzReport) => reports.reduce((n, r) => n + (r[k] as number), 0);
const summary = {
  frames: sum('framesSent'),
  framesPreAuth: sum('framesPreAuth'),
  framesAuthenticated: sum('framesAuthenticated'),
  errorsAnswered: sum('errorsAnswered'),
  connectionsClosedByBroker: sum('connectionsClosedByBroker'),
  attackerDomains: sum('attackerDomainsCreated'),
  victimChecks: sum('victimChecks'),
  victimFailures: sum('victimFailures'),
  hypervisorDown: sum('hypervisorDown'),
  hypervisorExited: exited !== null,
  leaks: reports.flatMap((r) => r.leaks.map((l) => `seed ${r.seed}: ${l}`)),
  seconds: (Date.now() - t0) / 1000,
};
hv.kill('SIGTERM');

// a hostile frontend against blkback: batches of up to 32 requests (about 16 on average)
const backRuns: BlkbackFuzzReport[] = [];
let sentToBack = 0;
for (let k = 0; sentToBack < requests; k++) {
  const r = await fuzzBlkback({
    seed: firstSeed + k,
    batches: 500,
    onProgress: (n) =>
      process.stderr.write(`\rblkback seed ${firstSeed + k}: ${sentToBack + n}/${requests} requests   `),
  });
  sentToBack += r.requests;
  backRuns.push(r);
}
process.stderr.write('\n');
// a hostile backend against blkfront: one device per seed (a detected lie ends it, as on Linux)
const frontRuns: BlkfrontFuzzReport[] = [];
for (let k = 0; k < frontends; k++) {
  frontRuns.push(await fuzzBlkfront({ seed: firstSeed + k, requests: 100 }));
  if (k % 50 === 0) process.stderr.write(`\rblkfront: ${k}/${frontends} hostile backends   `);
}
process.stderr.write('\n');
const statuses: Record<string, number> = {};
for (const r of backRuns)
  for (const [s, n] of Object.entries(r.byStatus)) statuses[s] = (statuses[s] ?? 0) + n;
const settled: Record<string, number> = {};
for (const r of frontRuns) for (const [s, n] of Object.entries(r.settled)) settled[s] = (settled[s] ?? 0) + n;
const all = {
  broker: summary,
  blkback: {
    requests: sentToBack,
    runs: backRuns.length,
    byStatus: statuses,
    violations: backRuns.flatMap((r) => r.violations.map((v) => `seed ${r.seed}: ${v}`)),
    victimFailures: backRuns.reduce((n, r) => n + r.victimFailures, 0),
    leaks: backRuns.flatMap((r) => r.leaks.map((l) => `seed ${r.seed}: ${l}`)),
  },
  blkfront: {
    backends: frontRuns.length,
    requests: frontRuns.reduce((n, r) => n + r.requests, 0),
    lies: frontRuns.reduce((n, r) => n + r.lies, 0),
    settled,
    violations: frontRuns.flatMap((r) => r.violations.map((v) => `seed ${r.seed}: ${v}`)),
  },
  seconds: (Date.now() - t0) / 1000,
};
console.log(JSON.stringify(all, null, 2));
mkdirSync(fileURLToPath(new URL('../bench/results', import.meta.url)), { recursive: true });
writeFileSync(
  fileURLToPath(new URL('../bench/results/fuzz-campaign.json', import.meta.url)),
  JSON.stringify({ summary: all, broker: reports, blkback: backRuns }, null, 2) + '\n',
);
const failed =
  summary.victimFailures +
  summary.hypervisorDown +
  summary.leaks.length +
  (summary.hypervisorExited ? 1 : 0) +
  all.blkback.violations.length +
  all.blkback.victimFailures +
  all.blkback.leaks.length +
  all.blkfront.violations.length;
process.exit(failed ? 1 : 0);
