/**
 * What `pvblk bench` prints: fio's report of the jobs of every guest (in fio's reporting groups), then what only the host can see — per ring request: notifications each way,
 * grant operations, frames and bytes through the broker; ring occupancy; the stage breakdown with
 * how the clocks were aligned; every process's memory — and with --baseline the relay measured in
 * the same run, pvblk/relay beside every figure. JSON carries the same in fio's shape plus `pvblk`.
 */
import {
  DEFAULT_PERCENTILES,
  jobDescription,
  JobStats,
  num2str,
  renderJson,
  renderNormal,
  renderTerse,
  reportGroups,
  Samples,
  type FioReport,
  type FioLatencyTarget,
  type FioReportJob,
  type LatencyPercentiles,
} from '@pvblk/frontend';
import type { StackShape } from './bench-options.ts';
import { diskDelayNote, diskParams } from './bench-options.ts';
import type { RelayResult } from './bench-relay.ts';
import { sliceRatio, type GuestSlice, type Slice, type SliceSide } from './bench-slices.ts';
import { summarizeRss, type CpuFields, type MachineCpu, type RssSeries } from './bench-rss.ts';
import type { StageBreakdown } from './bench-trace.ts';
import { tcpCountersLine, tcpLine, type TcpCounters } from './bench-tcp.ts';
import type { DomainStats } from '@pvblk/shared';

/** The hypervisor's per-domain counters (its /status), as a difference over the run. */
export type BrokerCounters = DomainStats;

/** blkback's statistics of a guest's vbd(s), as a difference over the run. */
export type BlkbackCounters = Record<string, number>;

/** A guest's run: its slices added up (one, without --baseline-slices), and the host's counters. */
export interface GuestRun extends GuestSlice {
  name: string;
  domid: number;
  /** The guest's process: where its fio ran, as fio's job line names the job's process. */
  pid: number;
  broker: BrokerCounters | null;
  blkback: BlkbackCounters | null;
}

/** CPU seconds one process used over a measured run; null when it could not be read. */
export interface ProcessCpu extends CpuFields {
  name: string;
}

/** One of a point's job clones (a job × numjobs), as the report needs it. */
export interface JobClone {
  /** The job's own options as given to the bench: its JSON "job options". */
  options: Record<string, string>;
  iodepth: number;
  latencyTarget: FioLatencyTarget;
  /** fio's description of the job: its own, and in a sweep the point's values after it. */
  description: string;
  /** fio's group_reporting, a job option: the job's report joins the one before it (reportGroups()). */
  groupReporting: boolean;
  percentiles: number[];
  percentilePrecision: number;
  latencyPercentiles: LatencyPercentiles;
}

export interface PointResult {
  label: Record<string, string>;
  stack: StackShape;
  guests: GuestRun[];
  dom0Broker: BrokerCounters | null;
  rss: RssSeries[];
  rssIntervalMs: number;
  stages: StageBreakdown | { error: string } | null;
  relay: Map<string, RelayResult> | null;
  /** CPU the relay's processes used over its measured run (null without --baseline). */
  relayCpu: ProcessCpu[] | null;
  /** The whole machine's CPU while each side was measured (null where /proc/stat could not be read). */
  machine: { pvblk: MachineCpu | null; relay: MachineCpu | null };
  relayError: string | null;
  /**
   * A signal that ended the bench's run while this point was under way (fio's `terminating on
   * signal`): whether pvblk's jobs were still running (their figures cover the run until then), and
   * whether a relay baseline that was asked for was left out. Null for a point that ran whole.
   */
  stopped: { signal: NodeJS.Signals; runCut: boolean; baselineLeftOut: boolean } | null;
  /** This network namespace's TCP congestion control (bench-tcp.ts); null where it cannot be read. */
  tcpCongestionControl: string | null;
  /** What TCP did in this namespace while each side was measured (null where it could not be read). */
  tcp: { pvblk: TcpCounters | null; relay: TcpCounters | null };
  /** With --baseline-slices: each slice's part of both runs, in the order they ran. */
  slices: Slice[] | null;
  /** Each job clone, in the order a guest's fio runs them (jobs, then numjobs). */
  jobClones: JobClone[];
  /** The options of the global section, as fio's JSON "global options". */
  globalOptions: Record<string, string>;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** The longest piece of a line LineSayer holds back (characters). */
export const LINE_SAYER_MAX = 64 * 1024;

/**
 * A guest's stderr said as it comes, a whole line at a time, so that the lines of several guests do
 * not cut into each other; `prefix` goes in front of every line that has anything on it (the guest's
 * name, with several). A line longer than LINE_SAYER_MAX is said in pieces of that size, each ended
 * with a new line: a guest that says bytes without one must not grow the bench. `flush()` says what
 * is left of a last line, ended with a new line too.
 */
export class LineSayer {
  private pending = '';
  constructor(
    private readonly prefix: string,
    private readonly say: (text: string) => void,
  ) {}

  push(text: string): void {
    const all = this.pending + text;
    const end = all.lastIndexOf('\n') + 1;
    this.pending = all.slice(end);
    if (end) this.say(this.prefixed(all.slice(0, end)));
    while (this.pending.length >= LINE_SAYER_MAX) {
      this.say(this.prefixed(this.pending.slice(0, LINE_SAYER_MAX) + '\n'));
      this.pending = this.pending.slice(LINE_SAYER_MAX);
    }
  }

  flush(): void {
    if (this.pending) this.say(this.prefixed(this.pending + '\n'));
    this.pending = '';
  }

  private prefixed(lines: string): string {
    return this.prefix ? lines.replace(/^(?=.)/gm, this.prefix) : lines;
  }
}

/** Ring requests of a guest over the run (all its devices). */
function guestRequests(g: GuestRun): number {
  return sum(g.devices.map((d) => d.requests));
}

export interface PerRequest {
  requests: number;
  ios: number;
  requestsPerIo: number;
  notificationsToBackend: number;
  notificationsToGuest: number;
  grantOpsGuest: number;
  grantOpsBackend: number;
  /** Hypercalls the broker answered — round trips through it — and the fences among them. */
  callsGuest: number;
  callsBackend: number;
  fencesGuest: number;
  fencesBackend: number;
  framesGuestToBroker: number;
  framesBrokerToGuest: number;
  bytesGuestToBroker: number;
  bytesBrokerToGuest: number;
  framesDom0ToBroker: number;
  framesBrokerToDom0: number;
  /** Turns in which the broker sent Dom0 anything (each in one or more frames: BROKER_FRAME_TARGET). */
  flushesBrokerToDom0: number;
  flushesBrokerToGuest: number;
  bytesDom0ToBroker: number;
  bytesBrokerToDom0: number;
}

/** Per ring request figures of one guest (Dom0's share: by this guest's part of all requests). */
export function perRequest(g: GuestRun, p: PointResult): PerRequest {
  const r = guestRequests(g) || 1;
  const all = sum(p.guests.map(guestRequests)) || 1;
  const share = guestRequests(g) / all;
  const bk = g.blkback ?? {};
  const br = g.broker;
  const d0 = p.dom0Broker;
  return {
    requests: guestRequests(g),
    ios: sum(g.jobs.map((j) => j.totalIos)),
    requestsPerIo: guestRequests(g) / (sum(g.jobs.map((j) => j.totalIos)) || 1),
    notificationsToBackend: (bk.notify_received ?? 0) / r,
    notificationsToGuest: sum(g.devices.map((d) => d.upcalls)) / r,
    grantOpsGuest: sum(g.devices.map((d) => d.grants)) / r,
    grantOpsBackend: ((bk.grant_maps ?? 0) + (bk.grant_unmaps ?? 0) + (bk.grant_copies ?? 0)) / r,
    callsGuest: (br?.calls ?? 0) / r,
    callsBackend: ((d0?.calls ?? 0) * share) / r,
    fencesGuest: (br?.fences ?? 0) / r,
    fencesBackend: ((d0?.fences ?? 0) * share) / r,
    framesGuestToBroker: (br?.framesIn ?? 0) / r,
    framesBrokerToGuest: (br?.framesOut ?? 0) / r,
    bytesGuestToBroker: (br?.bytesIn ?? 0) / r,
    bytesBrokerToGuest: (br?.bytesOut ?? 0) / r,
    framesDom0ToBroker: ((d0?.framesIn ?? 0) * share) / r,
    framesBrokerToDom0: ((d0?.framesOut ?? 0) * share) / r,
    flushesBrokerToDom0: ((d0?.flushesOut ?? 0) * share) / r,
    flushesBrokerToGuest: (br?.flushesOut ?? 0) / r,
    bytesDom0ToBroker: ((d0?.bytesIn ?? 0) * share) / r,
    bytesBrokerToDom0: ((d0?.bytesOut ?? 0) * share) / r,
  };
}

type BenchReportJob = FioReportJob & { guest: GuestRun };

/**
 * The report's jobs: every guest's, suffixed with the guest when there are several, in groups as fio
 * makes them (reportGroups(): a job with group_reporting joins the report before it in its reporting
 * group), over every guest's jobs in turn, a reporting group after another — as fio's client lists
 * its servers' jobs of one group together.
 */
export function reportJobs(p: PointResult): BenchReportJob[] {
  const many = p.guests.length > 1;
  const jobs: Array<BenchReportJob & { groupReporting: boolean }> = [];
  for (const g of p.guests) {
    g.jobs.forEach((s, i) => {
      if (many) s.name = `${s.name.replace(/@.*$/, '')}@${g.name}`;
      const clone = p.jobClones[i] ?? p.jobClones[0];
      jobs.push({
        stats: s,
        options: clone?.options ?? {},
        iodepth: clone?.iodepth ?? 1,
        latencyTarget: clone?.latencyTarget,
        description: clone?.description ?? '',
        percentiles: clone?.percentiles,
        percentilePrecision: clone?.percentilePrecision,
        latencyPercentiles: clone?.latencyPercentiles,
        groupReporting: clone?.groupReporting ?? false,
        guest: g,
        pid: g.pid,
      });
    });
  }
  // stable: within a reporting group the guests' jobs keep their order
  jobs.sort((a, b) => a.stats.groupid - b.stats.groupid);
  return reportGroups(
    jobs,
    (j) => j.groupReporting,
    (j) => j.stats.groupid,
  ).map((group) => {
    const [first] = group;
    const last = group[group.length - 1];
    const job: BenchReportJob = {
      stats: first.stats,
      options: last.options,
      iodepth: last.iodepth,
      latencyTarget: last.latencyTarget,
      description: first.description,
      percentiles: last.percentiles,
      percentilePrecision: last.percentilePrecision,
      latencyPercentiles: last.latencyPercentiles,
      guest: first.guest,
      pid: first.pid,
    };
    if (group.length > 1) {
      // named after its first job, without the guest where it has several guests' jobs
      const guests = new Set(group.map((j) => j.guest)).size;
      const name = guests > 1 ? first.stats.name.replace(/@.*$/, '') : first.stats.name;
      job.stats = JobStats.merged(
        name,
        group.map((j) => j.stats),
      );
    }
    return job;
  });
}

/** Whether the report is one job made of several: compared as a whole with the relay of every guest. */
function oneOfAll(p: PointResult, jobs: readonly FioReportJob[]): boolean {
  return jobs.length === 1 && sum(p.guests.map((g) => g.jobs.length)) > 1;
}

/** A guest's jobs merged (what its relay client is compared with). */
function guestMerged(g: GuestRun): JobStats {
  return JobStats.merged(g.name, g.jobs);
}

function relayMerged(
  p: PointResult,
  guests: GuestRun[],
): { ios: number; bytes: number; runtimeMs: number; rtt: Samples } | null {
  if (!p.relay) return null;
  const rs = guests.map((g) => p.relay!.get(g.name)).filter((r): r is RelayResult => !!r);
  if (!rs.length) return null;
  const rtt = new Samples();
  for (const r of rs) rtt.merge(Samples.fromRaw(r.rtt));
  return {
    ios: sum(rs.map((r) => r.ios)),
    bytes: sum(rs.map((r) => r.bytes)),
    runtimeMs: Math.max(...rs.map((r) => r.runtimeMs)),
    rtt,
  };
}

const ratio = (a: number, b: number) => (b > 0 ? a / b : NaN);
const fx = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '–');
const us = (ns: number) => (ns / 1000).toFixed(1);

export interface Comparison {
  iops: [number, number];
  mibps: [number, number];
  /** pvblk's clat (submitted, doorbell included → completion) and the relay's round trip, row by row. */
  clat: Array<[string, number, number]>;
  /** pvblk's lat (issue → completion, fio's slat + clat) and the relay's round trip. */
  lat: Array<[string, number, number]>;
}

/**
 * Lat rows printed in the normal output beside every clat row: the spread and the tail, enough to set
 * it against the round trip without doubling the table (the JSON has every row).
 */
const LAT_ROWS = new Set(['min', 'avg', 'stdev', 'p50', 'p99', 'max']);

/**
 * pvblk against the relay, same run. The relay's round trip runs from the issue of a request (before
 * its frame is built) to its response, so it spans what fio's lat does; pvblk's clat starts later,
 * after the guest's submission (the copy into the granted pages, the slots, the push and its
 * notification: fio's slat). Both are set beside it: issue 10 states its QD1 goal on clat, and lat is
 * the like-for-like figure.
 */
export function compare(
  s: JobStats,
  rel: NonNullable<ReturnType<typeof relayMerged>>,
  plist: number[],
): Comparison {
  const d = [s.read, s.write];
  const ios = sum(d.map((x) => x.ios));
  const bytes = sum(d.map((x) => x.bytes));
  const run = Math.max(...d.map((x) => x.runtimeMs)) || 1;
  const rows = (which: 'clat' | 'lat'): Array<[string, number, number]> => {
    const mine = new Samples();
    for (const x of d) mine.merge(x[which]);
    return [
      ['min', mine.min, rel.rtt.min],
      ['avg', mine.mean, rel.rtt.mean],
      ['stdev', mine.stdev, rel.rtt.stdev],
      ...plist.map((p) => [`p${p}`, mine.pct(p), rel.rtt.pct(p)] as [string, number, number]),
      ['max', mine.max, rel.rtt.max],
    ];
  };
  return {
    iops: [(1000 * ios) / run, (1000 * rel.ios) / (rel.runtimeMs || 1)],
    mibps: [(1000 * bytes) / run / 1048576, (1000 * rel.bytes) / (rel.runtimeMs || 1) / 1048576],
    clat: rows('clat'),
    lat: rows('lat'),
  };
}

export function comparisonLines(c: Comparison, what: string): string[] {
  const out = [
    `  pvblk vs relay (${what}; same run: client → relay → server over ws with the same frames; the relay's latencies are its round trips, issue → response):`,
    `    ${'figure'.padEnd(16)} ${'pvblk'.padStart(10)} ${'relay'.padStart(10)} ${'pvblk/relay'.padStart(12)}`,
    `    ${'IOPS'.padEnd(16)} ${num2str(c.iops[0], 4, false, 'none').padStart(10)} ${num2str(c.iops[1], 4, false, 'none').padStart(10)} ${fx(ratio(c.iops[0], c.iops[1])).padStart(12)}`,
    `    ${'BW (MiB/s)'.padEnd(16)} ${c.mibps[0].toFixed(1).padStart(10)} ${c.mibps[1].toFixed(1).padStart(10)} ${fx(ratio(c.mibps[0], c.mibps[1])).padStart(12)}`,
  ];
  const line = (label: string, a: number, b: number) =>
    `    ${label.padEnd(16)} ${us(a).padStart(10)} ${us(b).padStart(10)} ${fx(ratio(a, b)).padStart(12)}`;
  for (const [name, a, b] of c.clat) out.push(line(`clat ${name} (usec)`, a, b));
  for (const [name, a, b] of c.lat) if (LAT_ROWS.has(name)) out.push(line(`lat ${name} (usec)`, a, b));
  return out;
}

function counterLines(p: PointResult): string[] {
  const out = [
    "pvblk counters per ring request (guest: blkfront; backend: blkback's statistics; broker: the hypervisor's /status):",
    `  ${'guest'.padEnd(8)} ${'domid'.padStart(5)} ${'requests'.padStart(9)} ${'req/io'.padStart(7)} ${'notify→be'.padStart(9)} ${'notify→fe'.padStart(9)} ${'grants fe'.padStart(9)} ${'grants be'.padStart(9)} ${'frames fe→hv'.padStart(12)} ${'hv→fe'.padStart(6)} ${'hv→be'.padStart(6)} ${'be→hv'.padStart(6)} ${'KiB fe→hv'.padStart(9)} ${'hv→be'.padStart(6)}`,
  ];
  // each guest's figures, for both tables
  const rows = p.guests.map((g) => ({ g, r: perRequest(g, p) }));
  const f3 = (v: number) => v.toFixed(3);
  for (const { g, r } of rows) {
    out.push(
      `  ${g.name.padEnd(8)} ${String(g.domid).padStart(5)} ${String(r.requests).padStart(9)} ${r.requestsPerIo.toFixed(2).padStart(7)} ${f3(r.notificationsToBackend).padStart(9)} ${f3(r.notificationsToGuest).padStart(9)} ${f3(r.grantOpsGuest).padStart(9)} ${f3(r.grantOpsBackend).padStart(9)} ${f3(r.framesGuestToBroker).padStart(12)} ${f3(r.framesBrokerToGuest).padStart(6)} ${f3(r.framesBrokerToDom0).padStart(6)} ${f3(r.framesDom0ToBroker).padStart(6)} ${(r.bytesGuestToBroker / 1024).toFixed(2).padStart(9)} ${(r.bytesBrokerToDom0 / 1024).toFixed(2).padStart(6)}`,
    );
  }
  out.push(
    "  (notify→be: events blkback received; notify→fe: blkfront upcalls; Dom0's frames shared among guests by requests)",
    `  ${'round trips'.padEnd(14)} ${'calls fe'.padStart(9)} ${'fences fe'.padStart(9)} ${'calls be'.padStart(9)} ${'fences be'.padStart(9)}`,
  );
  for (const { g, r } of rows) {
    out.push(
      `  ${g.name.padEnd(14)} ${f3(r.callsGuest).padStart(9)} ${f3(r.fencesGuest).padStart(9)} ${f3(r.callsBackend).padStart(9)} ${f3(r.fencesBackend).padStart(9)}`,
    );
  }
  out.push(
    "  (hypercalls the broker answered, each a round trip through it, and the fences among them; Dom0's by requests)",
  );
  const occ = p.guests.flatMap((g) => g.jobs).reduce((s, j) => (s.merge(j.ringOccupancy), s), new Samples());
  if (occ.n)
    out.push(
      `ring occupancy (requests on the rings right after each I/O's push): mean ${occ.mean.toFixed(1)}, p50 ${occ.pct(50)}, p99 ${occ.pct(99)}, max ${occ.max}`,
    );
  return out;
}

function stageLines(st: PointResult['stages']): string[] {
  if (!st) return [];
  if ('error' in st) return [`stages: not available (${st.error})`];
  const out = [
    `stages (--trace; ${st.requests} requests with every stamp, ${st.incomplete} without; usec):`,
    `  ${'stage'.padEnd(28)} ${'mean'.padStart(8)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(9)}`,
  ];
  for (const s of [...st.stages, { name: 'total (submit → completion)', ns: st.total, negative: 0 }]) {
    const n = s.ns;
    out.push(
      `  ${s.name.padEnd(28)} ${us(n.mean).padStart(8)} ${us(n.pct(50)).padStart(8)} ${us(n.pct(99)).padStart(8)} ${us(n.max).padStart(9)}${s.negative ? `  (${s.negative} negative, clamped)` : ''}`,
    );
  }
  out.push(`  clocks: ${st.method}`);
  for (const c of st.clocks)
    out.push(
      `    ${c.name} (domid ${c.domid}): ${c.offsetMs >= 0 ? '+' : ''}${c.offsetMs.toFixed(3)} ms ± ${c.uncertaintyUs.toFixed(1)} usec (probes alone: ± ${c.probeUncertaintyUs.toFixed(1)} usec, ${c.probes} probes${c.narrowed ? '' : '; causal bounds disagreed with them, not narrowed'})`,
    );
  const dropped = Object.entries(st.dropped).filter(([, n]) => n > 0);
  if (dropped.length)
    out.push(`  stamps overwritten (recorder full): ${dropped.map(([k, n]) => `${k} ${n}`).join(', ')}`);
  return out;
}

/** CPU per I/O of a group of processes: in all, in user mode and in the kernel (µs). */
export interface CpuPerIo {
  us: number;
  userUs: number;
  systemUs: number;
}

/** CPU per I/O of processes that used `cpu` for `ios` I/Os; null when any of them could not be read. */
export function perIo(cpu: CpuFields[], ios: number): CpuPerIo | null {
  if (!(ios > 0) || !cpu.length) return null;
  let user = 0;
  let system = 0;
  for (const c of cpu) {
    if (c.cpuUserSeconds === null || c.cpuSystemSeconds === null) return null;
    user += c.cpuUserSeconds;
    system += c.cpuSystemSeconds;
  }
  return { us: ((user + system) * 1e6) / ios, userUs: (user * 1e6) / ios, systemUs: (system * 1e6) / ios };
}

/**
 * CPU per I/O of all pvblk's processes together and of all the relay's (same run): where the
 * batched ratios come from on a machine with fewer cores than processes, and — split into user mode
 * and kernel — whether a difference is the processes' own code or the kernel's socket calls and
 * wake-ups, which pvblk and the relay make alike.
 */
export function cpuPerIo(p: PointResult): { pvblk: CpuPerIo | null; relay: CpuPerIo | null } {
  const rel = relayMerged(p, p.guests);
  return {
    pvblk: perIo(p.rss.map(summarizeRss), guestIos(p)),
    relay: rel && p.relayCpu ? perIo(p.relayCpu, rel.ios) : null,
  };
}

/** I/Os completed by every job of every guest. */
function guestIos(p: PointResult): number {
  return sum(p.guests.flatMap((g) => g.jobs.map((j) => j.totalIos)));
}

/** The memory table's CPU columns: seconds, and per I/O in all, user and system ('–' for what could not be read). */
function cpuColumns(c: CpuFields, ios: number): string {
  const per = (x: number | null) => (x === null || !ios ? '–' : `${((x * 1e6) / ios).toFixed(1)}us`);
  const cpu = c.cpuSeconds === null ? '–' : c.cpuSeconds.toFixed(2);
  return `${cpu.padStart(7)} ${per(c.cpuSeconds).padStart(9)} ${per(c.cpuUserSeconds).padStart(9)} ${per(c.cpuSystemSeconds).padStart(9)}`;
}

/** "380.9us (usr 180.2, sys 200.7)". */
function perIoText(c: CpuPerIo): string {
  return `${c.us.toFixed(1)}us (usr ${c.userUs.toFixed(1)}, sys ${c.systemUs.toFixed(1)})`;
}

/** The line under the memory table: pvblk's CPU per I/O, and the relay's and the ratios when measured. */
export function cpuPerIoLine(pvblk: CpuPerIo, relay: CpuPerIo | null): string {
  const mine = `  CPU per I/O, all processes: pvblk ${perIoText(pvblk)}`;
  if (!relay) return mine;
  const r = (a: number, b: number) => fx(ratio(a, b));
  return `${mine}, relay ${perIoText(relay)}, pvblk/relay ${r(pvblk.us, relay.us)} (usr ${r(pvblk.userUs, relay.userUs)}, sys ${r(pvblk.systemUs, relay.systemUs)})`;
}

function memoryLines(p: PointResult): string[] {
  if (!p.rss.length) return [];
  const mib = (b: number) => `${(b / 1048576).toFixed(1)}MiB`;
  const ios = guestIos(p) || 1;
  const out = [
    `memory (VmRSS from /proc/<pid>/status every ${p.rssIntervalMs} ms during the measured run) and CPU (utime and stime from /proc/<pid>/stat: usr, sys${p.slices ? "; each side's over its own slices" : ''}):`,
    `  ${'process'.padEnd(12)} ${'first'.padStart(9)} ${'last'.padStart(9)} ${'max'.padStart(9)} ${'slope, 2nd half'.padStart(16)} samples ${'cpu s'.padStart(7)} ${'cpu/io'.padStart(9)} ${'usr/io'.padStart(9)} ${'sys/io'.padStart(9)}`,
  ];
  for (const s of p.rss.map(summarizeRss)) {
    out.push(
      `  ${s.name.padEnd(12)} ${mib(s.firstBytes).padStart(9)} ${mib(s.lastBytes).padStart(9)} ${mib(s.maxBytes).padStart(9)} ${(s.slopeMiBPerMin === null ? '–' : `${s.slopeMiBPerMin >= 0 ? '+' : ''}${s.slopeMiBPerMin.toFixed(2)} MiB/min`).padStart(16)} ${String(s.samples).padStart(7)} ${cpuColumns(s, ios)}`,
    );
  }
  const rel = relayMerged(p, p.guests);
  if (p.relayCpu && rel) {
    out.push(
      `  the relay's processes over its own run (${rel.ios} I/Os; the columns above are pvblk's only):`,
    );
    for (const c of p.relayCpu) {
      // the CPU columns line up with pvblk's rows above
      const name = `  ${c.name}`.padEnd(12 + 1 + 9 * 3 + 16 + 7 + 4);
      out.push(`  ${name} ${cpuColumns(c, rel.ios)}`);
    }
  }
  const { pvblk, relay } = cpuPerIo(p);
  if (pvblk) out.push(cpuPerIoLine(pvblk, relay));
  const m = machineLine(p.machine);
  if (m) out.push(m);
  const t = tcpCountersLine(p.tcp.pvblk, p.tcp.relay);
  if (t) out.push(t);
  return out;
}

/**
 * The line on the machine's CPU while each side was measured: a ratio taken while one side had a
 * fifth of its CPU stolen (a shared cloud host) says more about the host than about pvblk.
 */
export function machineLine(m: PointResult['machine']): string | null {
  const side = (c: MachineCpu) => `busy ${c.busyPct.toFixed(1)}%, steal ${c.stealPct.toFixed(1)}%`;
  if (!m.pvblk) return null;
  const mine = `  machine (/proc/stat, all CPUs): ${side(m.pvblk)} while pvblk ran`;
  return m.relay ? `${mine}; ${side(m.relay)} while the relay ran` : mine;
}

/** The JSON of a side's TCP counters (the style of the keys around them). */
function tcpJson(c: TcpCounters | null): Record<string, number> | null {
  if (!c) return null;
  return {
    out_segs: c.outSegs,
    retrans_segs: c.retransSegs,
    sack_recovery: c.sackRecovery,
    dsack_recv: c.dsackRecv,
    loss_probes: c.lossProbes,
    ofo_queue: c.ofoQueue,
  };
}

/** The JSON of a machine share (fio's style of keys). */
function machineJson(c: MachineCpu | null): Record<string, number> | null {
  return c ? { cpu_seconds: c.cpuSeconds, busy_pct: c.busyPct, steal_pct: c.stealPct } : null;
}

const sideIops = (x: SliceSide) => (x.runtimeMs > 0 ? (x.ios * 1000) / x.runtimeMs : 0);

/** --baseline-slices: every slice's rates and ratio, and the ratios' spread. */
function sliceLines(slices: Slice[] | null): string[] {
  if (!slices?.length) return [];
  const ratios = slices.map(sliceRatio).filter((r) => Number.isFinite(r));
  const sorted = [...ratios].sort((a, b) => a - b);
  const median = sorted.length
    ? sorted.length % 2
      ? sorted[(sorted.length - 1) / 2]
      : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2
    : NaN;
  const out = [
    `baseline slices (pvblk's run and the relay's in turn, ${slices.length} pairs): IOPS pvblk/relay per slice min ${fx(sorted[0] ?? NaN)}, median ${fx(median)}, max ${fx(sorted[sorted.length - 1] ?? NaN)}`,
    `  ${'slice'.padEnd(5)} ${'at (s)'.padStart(8)} ${'first'.padStart(6)} ${'pvblk IOPS'.padStart(11)} ${'relay IOPS'.padStart(11)} ${'ratio'.padStart(7)}`,
  ];
  slices.forEach((sl, i) => {
    out.push(
      `  ${String(i + 1).padEnd(5)} ${(Math.min(sl.pvblk.startMs, sl.relay.startMs) / 1000).toFixed(2).padStart(8)} ${(sl.pvblk.startMs <= sl.relay.startMs ? 'pvblk' : 'relay').padStart(6)} ${sideIops(sl.pvblk).toFixed(0).padStart(11)} ${sideIops(sl.relay).toFixed(0).padStart(11)} ${fx(sliceRatio(sl)).padStart(7)}`,
    );
  });
  return out;
}

function sliceJson(x: SliceSide): Record<string, number> {
  return { start_ms: x.startMs, end_ms: x.endMs, ios: x.ios, runtime_ms: x.runtimeMs, iops: sideIops(x) };
}

function fioReport(p: PointResult, withExtra: boolean): FioReport {
  const jobs = reportJobs(p);
  const lastOfGuest = new Map<GuestRun, FioReportJob>();
  for (const j of jobs) lastOfGuest.set(j.guest, j);
  return {
    jobs,
    disks: p.guests.flatMap((g) =>
      g.disks.map((d) => ({ ...d, name: p.guests.length > 1 ? `${d.name}@${g.name}` : d.name })),
    ),
    percentiles: DEFAULT_PERCENTILES,
    timestampMs: Date.now(),
    // fio's genesis is its start: the bench's
    elapsedMs: performance.now(),
    globalOptions: p.globalOptions,
    pid: process.pid,
    extraNormal: withExtra
      ? (job) => {
          if (!p.relay) return [];
          const j = job as FioReportJob & { guest: GuestRun };
          if (oneOfAll(p, jobs)) {
            const rel = relayMerged(p, p.guests);
            return rel
              ? comparisonLines(
                  compare(j.stats, rel, j.percentiles ?? DEFAULT_PERCENTILES),
                  `all ${p.guests.length} guests`,
                )
              : [];
          }
          if (lastOfGuest.get(j.guest) !== job) return [];
          const rel = relayMerged(p, [j.guest]);
          return rel
            ? comparisonLines(
                compare(guestMerged(j.guest), rel, j.percentiles ?? DEFAULT_PERCENTILES),
                `${j.guest.name}'s jobs`,
              )
            : [];
        }
      : undefined,
  };
}

export function pointLabel(p: Pick<PointResult, 'label'>): string {
  return Object.entries(p.label)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

/**
 * A job's description at a point: its own, then the point's values, so that every report of a sweep
 * says which point it is of — a terse line in its last field, as fio prints a description — cut as
 * fio cuts a description.
 */
export function pointDescription(own: string, label: Record<string, string>): string {
  return jobDescription([own, pointLabel({ label })].filter((s) => s !== '').join(' '));
}

export function renderPointNormal(p: PointResult): string {
  const out: string[] = [];
  out.push(renderNormal(fioReport(p, true)).trimEnd());
  out.push('');
  out.push(
    `pvblk stack: disk "${diskParams(p.stack)}" (${diskDelayNote(p.stack)}), ${p.stack.guests} guest${p.stack.guests > 1 ? 's' : ''}, ring-page-order ${p.stack.ringPageOrder}, queues ${p.stack.queues}, indirect-segments ${p.stack.indirectSegments}, persistent grants ${p.stack.persistent ? 'on' : 'off'}, data path ${p.stack.dataPath}${p.stack.pi ? `, PI (blkif integrity${p.stack.piInline ? ', inline' : ', no inline'})` : ''}`,
  );
  out.push(tcpLine(p.tcpCongestionControl));
  out.push(...counterLines(p));
  out.push(...stageLines(p.stages));
  out.push(...memoryLines(p));
  out.push(...sliceLines(p.slices));
  if (p.relayError) out.push(`relay baseline: failed (${p.relayError})`);
  if (p.stopped) out.push(stoppedLine(p.stopped));
  return out.join('\n') + '\n';
}

/** What a signal that ended the bench did to a point's figures. */
export function stoppedLine(st: NonNullable<PointResult['stopped']>): string {
  const run = st.runCut
    ? "pvblk's jobs ended where they were: the figures cover the run until the signal"
    : "pvblk's run had ended: the figures cover all of it";
  return `stopped by ${st.signal}: ${run}${st.baselineLeftOut ? '; the relay baseline was left out' : ''}`;
}

export function renderPointTerse(p: PointResult): string {
  return renderTerse(fioReport(p, false));
}

/** fio's JSON of a point, with pvblk's per-job and top-level additions. */
export function renderPointJson(p: PointResult, plus: boolean): Record<string, unknown> {
  const report = fioReport(p, false);
  const json = renderJson(report, plus);
  const jobs = json.jobs as Array<Record<string, unknown>>;
  report.jobs.forEach((job, i) => {
    const j = job as FioReportJob & { guest: GuestRun };
    const occ = j.stats.ringOccupancy;
    const o: Record<string, unknown> = {
      guest: j.guest.name,
      domid: j.guest.domid,
      ring_occupancy: { samples: occ.n, mean: occ.mean, p50: occ.pct(50), p99: occ.pct(99), max: occ.max },
    };
    const rel = p.relay ? relayMerged(p, oneOfAll(p, report.jobs) ? p.guests : [j.guest]) : null;
    if (rel) {
      const c = compare(
        oneOfAll(p, report.jobs) ? j.stats : guestMerged(j.guest),
        rel,
        j.percentiles ?? DEFAULT_PERCENTILES,
      );
      o.relay = {
        compared: oneOfAll(p, report.jobs) ? 'all guests' : `${j.guest.name}'s jobs`,
        iops: c.iops[1],
        bw_bytes: c.mibps[1] * 1048576,
        rtt_ns: Object.fromEntries(c.clat.map(([k, , b]) => [k, b])),
        ratio: {
          iops: ratio(c.iops[0], c.iops[1]),
          bw: ratio(c.mibps[0], c.mibps[1]),
          clat: Object.fromEntries(c.clat.map(([k, a, b]) => [k, ratio(a, b)])),
          lat: Object.fromEntries(c.lat.map(([k, a, b]) => [k, ratio(a, b)])),
        },
      };
    }
    jobs[i].pvblk = o;
  });
  const st = p.stages;
  json.pvblk = {
    point: p.label,
    stack: { ...p.stack, disk: diskParams(p.stack) },
    guests: p.guests.map((g) => ({
      name: g.name,
      domid: g.domid,
      exit_status: g.status,
      devices: g.devices,
      blkback: g.blkback,
      broker: g.broker,
      per_request: perRequest(g, p),
    })),
    dom0_broker: p.dom0Broker,
    memory: p.rss.map((r) => ({ ...summarizeRss(r), series: r.samples })),
    stages:
      st && !('error' in st)
        ? {
            clock_method: st.method,
            clocks: st.clocks,
            requests: st.requests,
            incomplete: st.incomplete,
            dropped: st.dropped,
            stages_ns: [...st.stages, { name: 'total', ns: st.total, negative: 0 }].map((s) => ({
              name: s.name,
              mean: s.ns.mean,
              p50: s.ns.pct(50),
              p99: s.ns.pct(99),
              max: s.ns.max,
              negative: s.negative,
            })),
          }
        : (st ?? null),
    relay: p.relay ? Object.fromEntries([...p.relay.entries()]) : null,
    relay_cpu: p.relayCpu,
    cpu_per_io_us: cpuPerIo(p),
    machine: { pvblk: machineJson(p.machine.pvblk), relay: machineJson(p.machine.relay) },
    relay_error: p.relayError,
    stopped: p.stopped
      ? {
          signal: p.stopped.signal,
          run_cut: p.stopped.runCut,
          baseline_left_out: p.stopped.baselineLeftOut,
        }
      : null,
    tcp_congestion_control: p.tcpCongestionControl,
    tcp: { pvblk: tcpJson(p.tcp.pvblk), relay: tcpJson(p.tcp.relay) },
    slices: p.slices
      ? p.slices.map((sl) => ({
          pvblk: sliceJson(sl.pvblk),
          relay: sliceJson(sl.relay),
          ratio: sliceRatio(sl),
        }))
      : null,
  };
  return json;
}

/** One latency of every job of every guest of a point, all directions (trims too), in one histogram. */
export function mergedLatency(p: PointResult, which: 'clat' | 'lat'): Samples {
  const s = new Samples();
  for (const g of p.guests) for (const j of g.jobs) for (const d of j.dirs) s.merge(d[which]);
  return s;
}

/** A one-line summary of a point for sweep tables. */
export function pointSummary(p: PointResult): {
  iops: number;
  mibps: number;
  clatP50: number;
  clatP99: number;
  /** fio's lat (issue → completion): the span the relay's round trip covers. */
  latP50: number;
  relayIops: number | null;
  relayP50: number | null;
  notifyPerReq: number;
} {
  const jobs = p.guests.flatMap((g) => g.jobs);
  const ios = sum(jobs.map((j) => j.totalIos));
  const bytes = sum(jobs.map((j) => j.totalBytes));
  const run = Math.max(...jobs.map((j) => Math.max(...j.dirs.map((d) => d.runtimeMs)))) || 1;
  const clat = mergedLatency(p, 'clat');
  const rel = relayMerged(p, p.guests);
  const reqs = sum(p.guests.map(guestRequests)) || 1;
  const notify = sum(
    p.guests.map((g) => (g.blkback?.notify_received ?? 0) + sum(g.devices.map((d) => d.upcalls))),
  );
  return {
    iops: (1000 * ios) / run,
    mibps: (1000 * bytes) / run / 1048576,
    clatP50: clat.pct(50),
    clatP99: clat.pct(99),
    latP50: mergedLatency(p, 'lat').pct(50),
    relayIops: rel ? (1000 * rel.ios) / (rel.runtimeMs || 1) : null,
    relayP50: rel ? rel.rtt.pct(50) : null,
    notifyPerReq: notify / reqs,
  };
}

export function sweepTable(points: PointResult[]): string {
  const out = ['', 'Sweep summary:'];
  const hasRelay = points.some((p) => p.relay);
  out.push(
    `  ${'point'.padEnd(32)} ${'IOPS'.padStart(8)} ${'MiB/s'.padStart(8)} ${'clat p50'.padStart(9)} ${'clat p99'.padStart(9)} ${'notify/req'.padStart(10)}${hasRelay ? ` ${'relay IOPS'.padStart(10)} ${'IOPS ratio'.padStart(10)} ${'clat p50 ratio'.padStart(14)} ${'lat p50 ratio'.padStart(13)}` : ''}`,
  );
  for (const p of points) {
    const s = pointSummary(p);
    // a point a signal cut short is marked: its figures are of a shorter run than the others'
    const label = pointLabel(p) + (p.stopped?.runCut ? ' *' : '');
    out.push(
      `  ${label.padEnd(32)} ${num2str(s.iops, 4, false, 'none').padStart(8)} ${s.mibps.toFixed(1).padStart(8)} ${us(s.clatP50).padStart(9)} ${us(s.clatP99).padStart(9)} ${s.notifyPerReq.toFixed(3).padStart(10)}${hasRelay ? ` ${(s.relayIops === null ? '–' : num2str(s.relayIops, 4, false, 'none')).padStart(10)} ${fx(ratio(s.iops, s.relayIops ?? NaN)).padStart(10)} ${fx(ratio(s.clatP50, s.relayP50 ?? NaN)).padStart(14)} ${fx(ratio(s.latP50, s.relayP50 ?? NaN)).padStart(13)}` : ''}`,
    );
  }
  out.push(
    `  (clat in usec; notify/req: notifications each way, summed, per ring request${hasRelay ? "; p50 ratios: pvblk's clat p50, then its lat p50, over the relay's round-trip p50" : ''})`,
  );
  const cut = points.find((p) => p.stopped?.runCut);
  if (cut) out.push(`  (* cut short by ${cut.stopped!.signal}: its jobs ended where they were)`);
  return out.join('\n') + '\n';
}
