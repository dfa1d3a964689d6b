/**
 * What `pvblk chaos` prints: the campaign's progress bar, the summary of a set of schedules (as text and
 * as the `summary` object of --output-format json), and a violation with the command that replays it.
 */
import type { FaultKind } from './chaos-schedule.ts';
import type { Corruptions, ScheduleResult } from './chaos-run.ts';

export interface Summary {
  schedules: number;
  seeds: { first: number; last: number } | null;
  pi: boolean;
  guests: number;
  steps: number;
  faults: Partial<Record<FaultKind, number>>;
  violations: { pvblk: number; harness: number; fault: number; byKind: Record<string, number> };
  corruptions: Corruptions;
  writesLostToDrop: number;
  ops: number;
  seconds: number;
  /** Set when the campaign was interrupted: the first seed not run. */
  resumeSeed: number | null;
}

export function summarize(
  results: ScheduleResult[],
  o: { pi: boolean; guests: number; steps: number; resumeSeed: number | null },
): Summary {
  const s: Summary = {
    schedules: results.length,
    seeds: results.length ? { first: results[0].seed, last: results[results.length - 1].seed } : null,
    pi: o.pi,
    guests: o.guests,
    steps: o.steps,
    faults: {},
    violations: { pvblk: 0, harness: 0, fault: 0, byKind: {} },
    corruptions: { injected: 0, detected: 0, silent: 0, by: { guest: 0, backend: 0, device: 0 } },
    writesLostToDrop: 0,
    ops: 0,
    seconds: 0,
    resumeSeed: o.resumeSeed,
  };
  for (const r of results) {
    for (const [k, n] of Object.entries(r.faults))
      s.faults[k as FaultKind] = (s.faults[k as FaultKind] ?? 0) + n!;
    for (const v of r.violations) {
      const who = v.cause.startsWith('fault:') ? 'fault' : (v.cause as 'pvblk' | 'harness');
      s.violations[who]++;
      const key = `${v.kind} (${v.cause})`;
      s.violations.byKind[key] = (s.violations.byKind[key] ?? 0) + 1;
    }
    s.corruptions.injected += r.corruptions.injected;
    s.corruptions.detected += r.corruptions.detected;
    s.corruptions.silent += r.corruptions.silent;
    for (const k of ['guest', 'backend', 'device'] as const) s.corruptions.by[k] += r.corruptions.by[k];
    s.writesLostToDrop += r.stats.writesLostToDrop;
    s.ops += r.stats.ops;
    s.seconds += r.stats.seconds;
  }
  s.seconds = Math.round(s.seconds * 10) / 10;
  return s;
}

export function formatSummary(s: Summary): string {
  const lines: string[] = [];
  const seeds = s.seeds ? `seeds ${s.seeds.first}-${s.seeds.last}` : 'no seed';
  lines.push(
    `pvblk chaos: ${s.schedules} schedule(s), ${seeds}, PI ${s.pi ? 'on' : 'off'}, ${s.guests} guest(s), ${s.steps} steps each, ${s.ops} operations, ${s.seconds}s`,
  );
  const faults = Object.entries(s.faults).sort((a, b) => b[1]! - a[1]!);
  const total = faults.reduce((n, [, c]) => n + c!, 0);
  lines.push(`  faults injected: ${total}`);
  for (let i = 0; i < faults.length; i += 4)
    lines.push(
      '    ' +
        faults
          .slice(i, i + 4)
          .map(([k, n]) => `${k} ${n}`.padEnd(26))
          .join(''),
    );
  const c = s.corruptions;
  lines.push(
    `  corruptions: injected ${c.injected}, detected ${c.detected} (guest ${c.by.guest}, backend ${c.by.backend}, device ${c.by.device}), silent ${c.silent}`,
  );
  if (s.writesLostToDrop)
    lines.push(`  acknowledged writes lost to drop_writes (the fault's doing): ${s.writesLostToDrop}`);
  lines.push(
    `  violations: ${s.violations.pvblk} attributable to pvblk, ${s.violations.harness} to the harness, ${s.violations.fault} to injected faults`,
  );
  for (const [k, n] of Object.entries(s.violations.byKind).sort((a, b) => b[1] - a[1]))
    lines.push(`    ${k}: ${n}`);
  if (s.resumeSeed !== null) lines.push(`  interrupted: resume with --seed ${s.resumeSeed}`);
  return lines.join('\n');
}

/** `[#####.....] 41/100 seed 140 violations 0 eta 2m10s` (one line, for \r redraws). */
export function progressBar(
  done: number,
  total: number,
  seed: number,
  violations: number,
  elapsedS: number,
): string {
  const width = 30;
  const fill = total ? Math.round((done / total) * width) : 0;
  const eta = done ? Math.round((elapsedS / done) * (total - done)) : 0;
  const fmt = (t: number) =>
    t >= 60 ? `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s` : `${t}s`;
  return `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${total}  seed ${seed}  violations ${violations}  eta ${fmt(eta)}`;
}
