/**
 * `pvblk chaos`: fault injection across the process boundaries of a real pvblk stack, driven by seeds.
 *
 *   pvblk chaos --seed 1 --runs 20                 twenty schedules (seeds 1-20), progress bar, summary
 *   pvblk chaos --seed 7                           one schedule, one status line per fault
 *   pvblk chaos --replay 7                         the same schedule again, fully traced: same digest
 *   pvblk chaos --seed 1 --runs 500 --no-pi --output-format json
 *   pvblk chaos --schedule my.json                 a schedule written by hand (or by --print-schedule)
 *   pvblk chaos --attach                           against a running stack (docker compose): nemesis
 *                                                  and disk faults, and faults on its own guests
 *
 * Every schedule starts its own hypervisor, host and guests (in a temporary directory), runs the
 * verifying workload under the faults the seed draws, checks the invariants, tears down and checks
 * that nothing leaked. A violation prints its seed and the command that replays it. Ctrl-C stops the
 * campaign after printing the summary so far and the seed to resume from.
 */
import { Command, Option } from 'commander';
import { isPvblkError, PvblkError } from '@pvblk/shared';
import { resolveDom0Secret, resolveOperatorToken } from '@pvblk/runtime';
import { hypervisorOption, intOption, toolstackOption } from './options.ts';
import {
  DEFAULT_WORKLOAD,
  FAULT_KINDS,
  formatWorkload,
  generateSchedule,
  parseFaultList,
  parseWorkload,
  STEPS_PER_SECOND,
  validateSchedule,
  type FaultKind,
  type Schedule,
} from './chaos-schedule.ts';
import { runSchedule, type ScheduleResult } from './chaos-run.ts';
import { formatSummary, progressBar, summarize } from './chaos-report.ts';
import { readBounded } from '@pvblk/runtime';

/** The largest schedule read (100,000 steps of events fit). */
const SCHEDULE_MAX = 16 * 1024 * 1024;

/** Faults that need the controller to own the host's or the hypervisor's process. */
const OWNS_HOST: readonly FaultKind[] = [
  'kill-host',
  'stop-host',
  'kill-host-handshake',
  'reboot',
  'cut-host',
];

interface ChaosCli {
  seed: number;
  runs: number;
  duration: number;
  faults: string;
  pi: boolean;
  guests: number;
  workload: string;
  dataPath: 'map' | 'copy' | 'seed';
  persistent: 'on' | 'off' | 'seed';
  timeout: number;
  jobs: number;
  replay?: number;
  schedule?: string;
  printSchedule?: boolean;
  outputFormat: 'text' | 'json';
  attach?: boolean;
  hypervisor: string;
  toolstack: string;
  verbose?: boolean;
}

function fail(e: unknown): never {
  const msg = isPvblkError(e)
    ? e.message.replace(/^EUSAGE: /, '')
    : e instanceof Error
      ? e.message
      : String(e);
  process.stderr.write(`pvblk chaos: ${msg}\n`);
  process.exit(isPvblkError(e) && e.code === 'EUSAGE' ? 2 : 1);
}

/** The options that shape a schedule, as a command line (for the replay hint). */
function shapeArgs(o: ChaosCli): string {
  const a: string[] = [o.pi ? '--pi' : '--no-pi'];
  if (o.guests !== 1) a.push(`--guests ${o.guests}`);
  if (o.duration !== 2) a.push(`--duration ${o.duration}`);
  if (o.workload !== 'default') a.push(`--workload ${o.workload}`);
  if (o.faults !== 'all') a.push(`--faults ${o.faults}`);
  if (o.dataPath !== 'seed') a.push(`--data-path ${o.dataPath}`);
  if (o.persistent !== 'seed') a.push(`--persistent ${o.persistent}`);
  return a.join(' ');
}

/** A default from the environment (compose: PVBLK_CHAOS_SEED=7 docker compose run --rm chaos), checked like the option. */
function envDefault(name: string, option: string, min: number, max: number, dflt: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  try {
    return intOption(option, min, max)(raw);
  } catch (e) {
    process.stderr.write(`pvblk chaos: ${name}: ${(e as Error).message}\n`);
    process.exit(2);
  }
}

export function registerChaos(program: Command): void {
  const cmd = program
    .command('chaos')
    .description(
      'fault injection across process boundaries: seeded schedules of broker, process and disk faults under a verifying workload, with an invariant checker',
    )
    .option(
      '--seed <n>',
      'first seed of the campaign (env PVBLK_CHAOS_SEED)',
      intOption('--seed', 0, 0xffffffff),
      envDefault('PVBLK_CHAOS_SEED', '--seed', 0, 0xffffffff, 1),
    )
    .option(
      '--runs <m>',
      'schedules to run: seeds n … n+m-1 (env PVBLK_CHAOS_RUNS)',
      intOption('--runs', 1, 1_000_000),
      envDefault('PVBLK_CHAOS_RUNS', '--runs', 1, 1_000_000, 1),
    )
    .option(
      '--duration <s>',
      `length of each schedule, in nominal seconds of workload (${STEPS_PER_SECOND} steps per second)`,
      intOption('--duration', 1, 3600),
      2,
    )
    .option(
      '--faults <list>',
      `fault kinds or groups (nemesis, process, disk, all, none): ${FAULT_KINDS.join(', ')} (env PVBLK_CHAOS_FAULTS)`,
      process.env.PVBLK_CHAOS_FAULTS || 'all',
    )
    .option('--pi', 'disks with T10 PI (dif=1 dix=1), carried end to end (default)', true)
    .option('--no-pi', 'disks without PI: corruptions go undetected and are counted as silent')
    .option('--guests <n>', 'guests per schedule', intOption('--guests', 1, 8), 1)
    .option(
      '--workload <spec>',
      `operation weights and shape: ${formatWorkload(DEFAULT_WORKLOAD)}`,
      'default',
    )
    .addOption(
      new Option('--data-path <how>', 'how blkback moves data; seed: drawn from the seed')
        .choices(['map', 'copy', 'seed'])
        .default('seed'),
    )
    .addOption(
      new Option('--persistent <on|off|seed>', 'persistent grants; seed: drawn from the seed')
        .choices(['on', 'off', 'seed'])
        .default('seed'),
    )
    .option(
      '--timeout <ms>',
      'a batch not answered by then has hung requests',
      intOption('--timeout', 1000, 600_000),
      15_000,
    )
    .option('--jobs <n>', 'schedules run at once (each its own stack)', intOption('--jobs', 1, 16), 1)
    .option('--replay <seed>', 're-run one schedule with full tracing', intOption('--replay', 0, 0xffffffff))
    .option('--schedule <file>', 'run the schedule in this JSON file (see --print-schedule)')
    .option('--print-schedule', 'print the schedules as JSON and run nothing')
    .addOption(
      new Option('--output-format <fmt>', 'text, or one JSON document')
        .choices(['text', 'json'])
        .default('text'),
    )
    .option('--attach', 'run against a running stack (docker compose) instead of starting one');
  toolstackOption(hypervisorOption(cmd, 'with --attach: the hypervisor'), "with --attach: the host's API")
    .option('-v, --verbose', 'status lines for every schedule of a campaign')
    .action((o: ChaosCli) => chaos(o).catch(fail));
}

async function chaos(o: ChaosCli): Promise<void> {
  const json = o.outputFormat === 'json';
  let faults = parseFaultList(o.faults);
  const workload = o.workload === 'default' ? { ...DEFAULT_WORKLOAD } : parseWorkload(o.workload);
  let attach: Parameters<typeof runSchedule>[1]['attach'];
  if (o.attach) {
    // a kind named on its own that cannot run is refused; a group (all, nemesis, process, …) keeps
    // what can run here
    const named = o.faults.split(',').map((x) => x.trim());
    const asked = faults.filter((k) => OWNS_HOST.includes(k) && named.includes(k));
    if (asked.length)
      throw new PvblkError(
        'EUSAGE',
        `--attach: ${asked.join(', ')} need(s) the host's processes, which are not ours`,
      );
    faults = faults.filter((k) => !OWNS_HOST.includes(k));
    attach = {
      hypervisorUrl: o.hypervisor,
      apiUrl: o.toolstack,
      dom0Secret: resolveDom0Secret(),
      toolstackToken: resolveOperatorToken(),
    };
  }
  const steps = o.duration * STEPS_PER_SECOND;
  const backend = {
    ...(o.dataPath !== 'seed' ? { dataPath: o.dataPath } : {}),
    ...(o.persistent !== 'seed' ? { persistent: o.persistent === 'on' } : {}),
  };
  const scheduleOf = (seed: number): Schedule =>
    generateSchedule({ seed, pi: o.pi, guests: o.guests, steps, workload, faults, backend });

  let seeds: number[];
  let fixed: Schedule | null = null;
  if (o.schedule) {
    let raw: unknown;
    try {
      raw = JSON.parse(readBounded(o.schedule, SCHEDULE_MAX).toString('utf8'));
    } catch (e) {
      throw new PvblkError('EUSAGE', `cannot read the schedule ${o.schedule}: ${(e as Error).message}`);
    }
    fixed = validateSchedule(raw, faults);
    seeds = [fixed.seed];
  } else if (o.replay !== undefined) {
    seeds = [o.replay];
  } else {
    seeds = Array.from({ length: o.runs }, (_, i) => o.seed + i);
  }
  if (o.printSchedule) {
    const list = seeds.map((s) => fixed ?? scheduleOf(s));
    process.stdout.write(JSON.stringify(list.length === 1 ? list[0] : list, null, 2) + '\n');
    return;
  }

  const single = seeds.length === 1;
  const trace = o.replay !== undefined;
  const printLines = !json && (single || o.verbose === true);
  const ac = new AbortController();
  let interrupted = false;
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\npvblk chaos: interrupted; stopping the running schedule(s)…\n');
    ac.abort();
  });

  const results = new Map<number, ScheduleResult>();
  const t0 = Date.now();
  let violations = 0;
  const tty = process.stderr.isTTY === true;
  let lastPct = -1;
  const progress = (seed: number) => {
    if (single) return;
    const line = progressBar(
      results.size,
      seeds.length,
      seed,
      violations,
      Math.round((Date.now() - t0) / 1000),
    );
    if (tty) process.stderr.write(`\r${line}`);
    else {
      const pct = Math.floor((results.size * 10) / seeds.length);
      if (pct !== lastPct) {
        lastPct = pct;
        process.stderr.write(line + '\n');
      }
    }
  };
  // a schedule read from a file is replayed from that file, not regenerated from its seed
  const replayHint = (seed: number) =>
    o.schedule ? `pvblk chaos --schedule ${o.schedule} -v` : `pvblk chaos --replay ${seed} ${shapeArgs(o)}`;

  const runOne = async (seed: number): Promise<void> => {
    const s = fixed ?? scheduleOf(seed);
    if (printLines)
      process.stdout.write(
        `pvblk chaos: seed ${seed}: ${s.steps} steps, ${s.guests} guest(s), PI ${s.pi ? 'on' : 'off'}, data path ${s.backend.dataPath}, persistent grants ${s.backend.persistent ? 'on' : 'off'}, faults: ${s.events.map((e) => `${e.kind}@${e.at}`).join(' ') || 'none'}\n`,
      );
    const r = await runSchedule(s, {
      timeoutMs: o.timeout,
      trace,
      print: printLines ? (l) => process.stdout.write(`seed ${seed} ${l}\n`) : null,
      attach,
      signal: ac.signal,
    });
    results.set(seed, r);
    const own = r.violations.filter((v) => !v.cause.startsWith('fault:'));
    violations += own.length;
    if (own.length && !json) {
      if (tty && !single) process.stderr.write('\n');
      for (const v of own)
        process.stderr.write(
          `pvblk chaos: VIOLATION seed ${seed} step ${v.step ?? '-'} (${v.cause}) ${v.kind}: ${v.message}\n`,
        );
      process.stderr.write(`  replay: ${replayHint(seed)}\n`);
    }
    if (printLines) process.stdout.write(`seed ${seed}: digest ${r.digest}\n`);
    progress(seed);
  };

  // a pool of --jobs schedules at a time
  let next = 0;
  const worker = async () => {
    while (!ac.signal.aborted && next < seeds.length) {
      const seed = seeds[next++];
      try {
        await runOne(seed);
      } catch (e) {
        if (!ac.signal.aborted) throw e;
      }
    }
  };
  progress(seeds[0]);
  await Promise.all(Array.from({ length: Math.min(o.jobs, seeds.length) }, worker));
  if (tty && !single && !json) process.stderr.write('\n');

  const done = seeds.filter((s) => results.has(s)).map((s) => results.get(s)!);
  const firstMissing = seeds.find((s) => !results.has(s));
  const summary = summarize(done, {
    pi: fixed?.pi ?? o.pi,
    guests: fixed?.guests ?? o.guests,
    steps: fixed?.steps ?? steps,
    resumeSeed: interrupted && firstMissing !== undefined ? firstMissing : null,
  });
  if (json) {
    process.stdout.write(
      JSON.stringify(
        {
          summary,
          schedules: done.map((r) => ({
            seed: r.seed,
            digest: r.digest,
            faults: r.faults,
            violations: r.violations,
            corruptions: r.corruptions,
            stats: r.stats,
            ...(trace || single ? { schedule: r.schedule } : {}),
          })),
        },
        null,
        2,
      ) + '\n',
    );
  } else {
    process.stdout.write(formatSummary(summary) + '\n');
    if (single && done[0])
      process.stdout.write(`digest ${done[0].digest}  (replay: ${replayHint(done[0].seed)})\n`);
  }
  // stdout to a pipe is written asynchronously: exit once everything above has been handed over
  // (a campaign's JSON is megabytes; exiting at once cut it short)
  const code = interrupted ? 130 : summary.violations.pvblk + summary.violations.harness > 0 ? 1 : 0;
  process.stdout.write('', () => process.exit(code));
}
