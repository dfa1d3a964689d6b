/**
 * fio's three outputs, printed from JobStats the way fio 3.x prints them (stat.c, lib/num2str.c):
 * the normal report (job line, IOPS/BW, slat/clat/lat, the clat percentile block, bw/iops samples,
 * latency buckets, cpu, IO depths, issued, the group's run status and the disk stats), JSON with fio's
 * keys (plus a `pvblk` object per job for what fio does not have), and terse version 3.
 *
 * Percentiles come from HDR histograms (3 significant digits) where fio has its own log-linear
 * histogram; min/max/mean/stdev are exact, as in fio.
 */
import { DDIRS, ddirName } from './fio-ddir.ts';
import { FIO_VERSION } from './fio-options.ts';
import type { FioLatencyTarget, LatencyPercentiles } from './fio-job.ts';
import type { DirStats, DiskUtil, JobStats, Samples } from './fio-stats.ts';
import { fixed } from './printf.ts';
import { errnoText } from './fio-verror.ts';

export interface FioReportJob {
  stats: JobStats;
  /** The options given for the job, as fio's "job options". */
  options: Record<string, string>;
  /** pvblk's own figures for the job (counters, ratios against the relay, …). */
  pvblk?: Record<string, unknown>;
  /** The process the job ran in, where that is not the report's own (a guest's, in `pvblk bench`). */
  pid?: number;
  /** The job's iodepth: the `depth` of its latency line (fio's latency_depth) without a latency target. */
  iodepth: number;
  /** The job's latency target (its latency line); none where absent. */
  latencyTarget?: FioLatencyTarget;
  /** fio's `description` of the job ('' or absent: none): a line of the normal report, `desc` in JSON,
   * the last field of a terse line. */
  description?: string;
  /** The job's percentile_list and its precision, where not the report's. */
  percentiles?: number[];
  percentilePrecision?: number;
  /** Whose percentiles the job's report gives; clat's alone where absent. */
  latencyPercentiles?: LatencyPercentiles;
}

const CLAT_ONLY: LatencyPercentiles = { slat: false, clat: true, lat: false };
const NO_LATENCY_TARGET: FioLatencyTarget = { targetNs: 0, windowUs: 0, percentile: 100, run: false };

/** fio's latency_depth: where a latency target settled, else the job's iodepth. */
function latencyDepth(job: FioReportJob): number {
  return job.stats.latencyDepth ?? job.iodepth;
}

/**
 * Which jobs report together, as stat.c's __show_run_stats() sorts them: `group_reporting` is a job
 * option, and a job that has it joins the report before it when both are in one reporting group (a
 * `stonewall` or `new_group` starts another); one without starts a report of its own. A report is
 * named, described and timed after its first job, and has its last job's options, percentiles and
 * latency depth (fio copies each member's over the one before).
 */
export function reportGroups<T>(
  members: readonly T[],
  groupReporting: (m: T) => boolean,
  groupid: (m: T) => number,
): T[][] {
  const groups: T[][] = [];
  for (const m of members) {
    const last = groups[groups.length - 1];
    if (last && groupReporting(m) && groupid(last[last.length - 1]) === groupid(m)) last.push(m);
    else groups.push([m]);
  }
  return groups;
}

export interface FioReport {
  jobs: FioReportJob[];
  disks: DiskUtil[];
  percentiles: number[];
  /** Decimals of the percentiles in the normal report (fio's percentile_precision; 2 when absent). */
  percentilePrecision?: number;
  timestampMs: number;
  /** Milliseconds from the start of the command to the report (fio's `elapsed`, from its genesis). */
  elapsedMs: number;
  /** The options of the global section, as fio's JSON "global options". */
  globalOptions: Record<string, string>;
  pid: number;
  /** Lines printed after a job's normal report (pvblk's comparison with the relay, …). */
  extraNormal?: (job: FioReportJob) => string[];
}

// ------------------------------------------------------------------------------------------------
// lib/num2str.c

type Units = 'none' | 'byte' | 'bytepersec';
const UNIT_STR: Record<Units, string> = { none: '', byte: 'B', bytepersec: 'B/s' };
const SI = ['', 'k', 'M', 'G', 'T', 'P', 'E'];
const IEC = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];

/** fio's num2str(): at most `maxlen` digits, a unit prefix, carry rounding as fio does it. */
export function num2str(num: number, maxlen: number, pow2: boolean, units: Units): string {
  const thousand = pow2 ? 1024 : 1000;
  const prefix = pow2 ? IEC : SI;
  let n = Math.floor(num);
  let post = 0;
  let modulo = -1;
  while (post < SI.length) {
    if (String(n).length <= maxlen) break;
    modulo = n % thousand;
    n = Math.floor(n / thousand);
    post++;
  }
  if (post >= SI.length) post = 0;
  if (modulo === -1) return `${n}${prefix[post]}${UNIT_STR[units]}`;
  const room = maxlen - String(n).length;
  if (room <= 1) {
    if (modulo >= thousand / 2) n++;
    return `${n}${prefix[post]}${UNIT_STR[units]}`;
  }
  const frac = fixed(modulo / thousand, room - 1);
  if (frac[0] === '1') n++;
  return `${n}.${frac.slice(2)}${prefix[post]}${UNIT_STR[units]}`;
}

const f2 = (v: number): string => fixed(v, 2);
const pad = (s: string | number, w: number): string => String(s).padStart(w, ' ');

// ------------------------------------------------------------------------------------------------
// normal output

/** display_lat(): the unit is chosen from min, max and stdev, as nsec_to_usec/nsec_to_msec do. */
function displayLat(name: string, s: Samples): string {
  let min = s.min;
  let max = s.max;
  let mean = s.mean;
  let dev = s.stdev;
  let base = '(nsec)';
  if (min > 2_000_000 && max > 99_999_999 && dev > 1_000_000) {
    min = Math.floor(min / 1e6);
    max = Math.floor(max / 1e6);
    mean /= 1e6;
    dev /= 1e6;
    base = '(msec)';
  } else if (min > 2000 && max > 99_999 && dev > 1000) {
    min = Math.floor(min / 1000);
    max = Math.floor(max / 1000);
    mean /= 1000;
    dev /= 1000;
    base = '(usec)';
  }
  return `    ${name} ${base}: min=${num2str(min, 6, false, 'none')}, max=${num2str(max, 6, false, 'none')}, avg=${pad(f2(mean), 5)}, stdev=${pad(f2(dev), 5)}`;
}

/** show_clat_percentiles(). */
function percentileBlock(pre: string, s: Samples, plist: number[], precision: number): string[] {
  const vals = plist.map((p) => s.pct(p));
  const minv = Math.min(...vals);
  const maxv = Math.max(...vals);
  let scale = 0;
  let unit = 'nsec';
  if (minv > 2_000_000 && maxv > 99_999_999) {
    scale = 2;
    unit = 'msec';
  } else if (minv > 2000 && maxv > 99_999) {
    scale = 1;
    unit = 'usec';
  }
  const divisor = 1000 ** scale;
  const width = Math.max(5, Math.floor(Math.log10(Math.max(1, maxv / divisor))) + 1);
  const perLine = Math.floor((80 - 7) / (precision + 10 + width));
  const out = [`    ${pre} percentiles (${unit}):`];
  let line = '     |';
  vals.forEach((v0, j) => {
    let v = v0;
    for (let i = 0; i < scale; i++) v = Math.floor((v + 999) / 1000);
    const last = j === vals.length - 1;
    line += ` ${pad(fixed(plist[j], precision), precision + 3)}th=[${pad(v, width)}]${last ? '' : ','}`;
    if (last || j % perLine === perLine - 1) {
      out.push(line);
      line = '     |';
    }
  });
  return out;
}

type DirName = ReturnType<typeof ddirName>;

/** The directions in fio's order, as its reports go over them (for_each_rw_ddir()). */
const DIR_NAMES: readonly DirName[] = DDIRS.map(ddirName);

/**
 * stat.c's convert_agg_kbytes_percent(): a job's mean bandwidth (KiB/s, truncated to an integer as fio
 * passes it) as a share of its group's aggregate (B/s), at most 100.
 */
function perOfAgg(meanKiB: number, groupAggBytes: number): number {
  return groupAggBytes > 1024 ? Math.min(100, (Math.floor(meanKiB) * 100) / (groupAggBytes / 1024)) : 100;
}

/**
 * The same share as show_ddir_status_terse() works it out on its own: the mean not truncated, the
 * aggregate in whole KiB (an integer division), any aggregate at all (one under 1 KiB/s divides by 0,
 * which the cap makes 100).
 */
function terseOfAgg(meanKiB: number, groupAggBytes: number): number {
  if (!groupAggBytes) return 100;
  const kib = Math.floor(groupAggBytes / 1024);
  return kib ? Math.min(100, (meanKiB * 100) / kib) : 100;
}

function bwOf(d: DirStats): number {
  return d.runtimeMs ? Math.floor((1000 * d.bytes) / d.runtimeMs) : 0;
}

function iopsOf(d: DirStats): number {
  return d.runtimeMs ? (1000 * d.ios) / d.runtimeMs : 0;
}

function ddirNormal(
  name: DirName,
  d: DirStats,
  plist: number[],
  precision: number,
  groupAgg: number,
  which: LatencyPercentiles,
): string[] {
  const out: string[] = [];
  const bw = bwOf(d);
  const iops = Math.floor(iopsOf(d));
  out.push(
    `  ${name}: IOPS=${num2str(iops, 4, false, 'none')}, BW=${num2str(bw, 4, true, 'bytepersec')} (${num2str(bw, 4, false, 'bytepersec')})(${num2str(d.bytes, 4, true, 'byte')}/${Math.round(d.runtimeMs)}msec)${name === 'write' ? '; 0 zone resets' : ''}`,
  );
  if (d.slat.n) out.push(displayLat('slat', d.slat));
  if (d.clat.n) out.push(displayLat('clat', d.clat));
  if (d.lat.n) out.push(displayLat(' lat', d.lat));
  // show_ddir_status(): each latency whose percentiles the job asked for, in this order
  if (plist.length)
    for (const k of ['slat', 'clat', 'lat'] as const)
      if (which[k] && d[k].n) out.push(...percentileBlock(k, d[k], plist, precision));
  if (d.bw.n) {
    let { min, max } = d.bw;
    let mean = d.bw.mean;
    let dev = d.bw.stdev;
    let unit = 'KiB';
    const perAgg = perOfAgg(d.bw.mean, groupAgg);
    if (mean > 1024 * 1024) {
      min = Math.floor(min / 1024);
      max = Math.floor(max / 1024);
      mean /= 1024;
      dev /= 1024;
      unit = 'MiB';
    }
    out.push(
      `   bw (${pad(unit, 5)}/s): min=${pad(min, 5)}, max=${pad(max, 5)}, per=${f2(perAgg)}%, avg=${pad(f2(mean), 5)}, stdev=${pad(f2(dev), 5)}, samples=${d.bw.n}`,
    );
  }
  if (d.iops.n) {
    out.push(
      `   iops        : min=${pad(d.iops.min, 5)}, max=${pad(d.iops.max, 5)}, avg=${pad(f2(d.iops.mean), 5)}, stdev=${pad(f2(d.iops.stdev), 5)}, samples=${d.iops.n}`,
    );
  }
  return out;
}

const LAT_LABELS = ['2', '4', '10', '20', '50', '100', '250', '500', '750', '1000', '2000', '>=2000'];

/** stat_calc_lat(): percentages of all ios, at least 0.01 when any. */
function latPercents(counts: number[], total: number): number[] {
  return counts.map((c) => {
    if (!total) return 0;
    const p = (c / total) * 100;
    return p < 0.01 && c ? 0.01 : p;
  });
}

function showLat(percents: number[], unit: string): string[] {
  const out: string[] = [];
  let line: string[] = [];
  percents.forEach((p, i) => {
    if (p <= 0) return;
    line.push(`${LAT_LABELS[i]}=${f2(p)}%`);
    if (line.length === 5) {
      out.push(`  lat (${unit})   : ${line.join(', ')}`);
      line = [];
    }
  });
  if (line.length) out.push(`  lat (${unit})   : ${line.join(', ')}`);
  return out;
}

/** stat_calc_dist(): percentages, at least 0.1 when any — the normal report's and the JSON's alike. */
function calcDist(map: number[], total: number): number[] {
  return map.map((c) => {
    if (!total) return 0;
    const p = (c / total) * 100;
    return p < 0.1 && c ? 0.1 : p;
  });
}

function dist(map: number[], total: number): string[] {
  return calcDist(map, total).map((p) => fixed(p, 1));
}

function ctimeOf(ms: number): string {
  // fio prints ctime(3): "Thu Nov 14 12:00:00 2023"
  const d = new Date(ms);
  const day = d.toLocaleString('en-US', { weekday: 'short' });
  const mon = d.toLocaleString('en-US', { month: 'short' });
  const hh = String(d.getHours()).padStart(2, '0');
  const mm = String(d.getMinutes()).padStart(2, '0');
  const ss = String(d.getSeconds()).padStart(2, '0');
  return `${day} ${mon} ${String(d.getDate()).padStart(2, ' ')} ${hh}:${mm}:${ss} ${d.getFullYear()}`;
}

/**
 * stat.c's runstats: a reporting group's aggregates over its jobs, by groupid (every group to the
 * highest, as fio has one for each), which each job's `per=` and the group's run status use.
 */
function runStats(jobs: readonly FioReportJob[]): Array<Record<DirName, ReturnType<typeof groupAgg>>> {
  const groups = Math.max(0, ...jobs.map((j) => j.stats.groupid)) + 1;
  return Array.from({ length: groups }, (_, g) => {
    const members = jobs.filter((j) => j.stats.groupid === g);
    return {
      read: groupAgg(members, 'read'),
      write: groupAgg(members, 'write'),
      trim: groupAgg(members, 'trim'),
    };
  });
}

function groupAgg(
  jobs: FioReportJob[],
  dir: DirName,
): { agg: number; bytes: number; minRun: number; maxRun: number; minBw: number; maxBw: number } {
  let bytes = 0;
  let minRun = Infinity;
  let maxRun = 0;
  let minBw = Infinity;
  let maxBw = 0;
  for (const j of jobs) {
    const d = j.stats[dir];
    if (!d.runtimeMs) continue;
    bytes += d.bytes;
    minRun = Math.min(minRun, d.runtimeMs);
    maxRun = Math.max(maxRun, d.runtimeMs);
    const bw = bwOf(d);
    minBw = Math.min(minBw, bw);
    maxBw = Math.max(maxBw, bw);
  }
  const agg = maxRun ? Math.floor((1000 * bytes) / maxRun) : 0;
  return { agg, bytes, minRun, maxRun, minBw, maxBw };
}

export function renderNormal(r: FioReport): string {
  const out: string[] = [];
  const runstats = runStats(r.jobs);
  for (const job of r.jobs) {
    const ts = job.stats;
    const aggs = runstats[ts.groupid];
    const shown = ts.reported;
    if (!ts.totalIos && ts.dirs.every((d) => !d.bytes) && !shown.error) continue;
    const err = shown.error ? `err=${pad(shown.error, 2)} (${shown.verror})` : `err=${pad(0, 2)}`;
    out.push(
      // show_thread_status_normal() prints the time of the report
      `${ts.name}: (groupid=${ts.groupid}, jobs=${ts.members}): ${err}: pid=${job.pid ?? r.pid}: ${ctimeOf(r.timestampMs)}`,
    );
    if (job.description) out.push(`  Description  : [${job.description}]`);
    for (const dir of DIR_NAMES) {
      if (ts[dir].bytes)
        out.push(
          ...ddirNormal(
            dir,
            ts[dir],
            job.percentiles ?? r.percentiles,
            job.percentilePrecision ?? r.percentilePrecision ?? 2,
            aggs[dir].agg,
            job.latencyPercentiles ?? CLAT_ONLY,
          ),
        );
    }
    const total = ts.totalIos;
    out.push(...showLat(latPercents(ts.latN, total), 'nsec'));
    out.push(...showLat(latPercents(ts.latU, total), 'usec'));
    out.push(...showLat(latPercents(ts.latM, total), 'msec'));
    // show_ddir_status(DDIR_SYNC): after the distribution, with its percentiles whatever was asked
    if (ts.syncLat.n)
      out.push(
        '  fsync/fdatasync/sync_file_range:',
        displayLat('sync', ts.syncLat),
        ...percentileBlock(
          'sync',
          ts.syncLat,
          job.percentiles ?? r.percentiles,
          job.percentilePrecision ?? r.percentilePrecision ?? 2,
        ),
      );
    const run = ts.totalRunMs || 1;
    out.push(
      `  cpu          : usr=${f2((ts.usrMs * 100) / run)}%, sys=${f2((ts.sysMs * 100) / run)}%, ctx=${ts.ctx}, majf=${ts.majf}, minf=${ts.minf}`,
    );
    const io = dist(ts.depthMap, total);
    out.push(
      `  IO depths    : 1=${io[0]}%, 2=${io[1]}%, 4=${io[2]}%, 8=${io[3]}%, 16=${io[4]}%, 32=${io[5]}%, >=64=${io[6]}%`,
    );
    const sub = dist(ts.submitMap, ts.totalSubmit);
    out.push(
      `     submit    : 0=${sub[0]}%, 4=${sub[1]}%, 8=${sub[2]}%, 16=${sub[3]}%, 32=${sub[4]}%, 64=${sub[5]}%, >=64=${sub[6]}%`,
    );
    const com = dist(ts.completeMap, ts.totalComplete);
    out.push(
      `     complete  : 0=${com[0]}%, 4=${com[1]}%, 8=${com[2]}%, 16=${com[3]}%, 32=${com[4]}%, 64=${com[5]}%, >=64=${com[6]}%`,
    );
    out.push(
      `     issued rwts: total=${ts.read.ios},${ts.write.ios},${ts.trim.ios},${ts.syncIos} short=${ts.read.shortIos},${ts.write.shortIos},${ts.trim.shortIos},0 dropped=${ts.read.dropIos},${ts.write.dropIos},${ts.trim.dropIos},0`,
    );
    if (ts.continueOnError)
      out.push(
        `     errors    : total=${ts.totalErr}, first_error=${ts.firstError}/<${errnoText(ts.firstError)}>`,
      );
    const lt = job.latencyTarget ?? NO_LATENCY_TARGET;
    out.push(
      `     latency   : target=${lt.targetNs}, window=${lt.windowUs}, percentile=${fixed(lt.percentile, 2)}%, depth=${latencyDepth(job)}`,
    );
    if (r.extraNormal) out.push(...r.extraNormal(job));
  }
  // fio's show_group_stats() prints "\nRun status group": one blank line there, none between jobs
  for (const [groupid, aggs] of runstats.entries()) {
    out.push('', `Run status group ${groupid} (all jobs):`);
    for (const dir of DIR_NAMES) {
      const g = aggs[dir];
      if (!g.maxRun) continue;
      out.push(
        `${dir.toUpperCase().padStart(7)}: bw=${num2str(g.agg, 4, true, 'bytepersec')} (${num2str(g.agg, 4, false, 'bytepersec')}), ${num2str(g.minBw, 4, true, 'bytepersec')}-${num2str(g.maxBw, 4, true, 'bytepersec')} (${num2str(g.minBw, 4, false, 'bytepersec')}-${num2str(g.maxBw, 4, false, 'bytepersec')}), io=${num2str(g.bytes, 4, true, 'byte')} (${num2str(g.bytes, 4, false, 'byte')}), run=${Math.round(g.minRun)}-${Math.round(g.maxRun)}msec`,
      );
    }
  }
  if (r.disks.length) {
    out.push('', 'Disk stats (read/write):');
    for (const d of r.disks) {
      const util = d.msec ? Math.min(100, (100 * d.ioTicks) / d.msec) : 0;
      out.push(
        `  ${d.name}: ios=${d.readIos}/${d.writeIos}, sectors=${d.readSectors}/${d.writeSectors}, merge=0/0, ticks=${Math.round(d.readTicks)}/${Math.round(d.writeTicks)}, in_queue=${Math.round(d.inQueue)}, util=${f2(util)}%`,
      );
    }
  }
  return out.join('\n') + '\n';
}

// ------------------------------------------------------------------------------------------------
// JSON

/**
 * Options as fio's JSON holds them: a flag given bare is on the dump list with an empty value, and
 * json.c's strdup_escape() refuses an empty string, so the pair is never added.
 */
function dumpedOptions(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== ''));
}

function latJson(s: Samples, plist: number[] | null, plus: boolean): Record<string, unknown> {
  const o: Record<string, unknown> = {
    min: s.n ? s.min : 0,
    max: s.max,
    mean: s.mean,
    stddev: s.stdev,
    N: s.n,
  };
  if (plist && s.n) {
    const p: Record<string, number> = {};
    for (const x of plist) p[fixed(x, 6)] = s.pct(x);
    o.percentile = p;
    if (plus) o.bins = Object.fromEntries(s.fioBins().map(([v, c]) => [String(v), c]));
  }
  return o;
}

function ddirJson(
  d: DirStats,
  plist: number[],
  plus: boolean,
  groupAgg: number,
  which: LatencyPercentiles,
): Record<string, unknown> {
  const bwBytes = bwOf(d);
  const perAgg = d.bw.n ? perOfAgg(d.bw.mean, groupAgg) : 0;
  return {
    io_bytes: d.bytes,
    io_kbytes: Math.floor(d.bytes / 1024),
    bw_bytes: bwBytes,
    bw: Math.floor(bwBytes / 1024),
    iops: iopsOf(d),
    runtime: Math.round(d.runtimeMs),
    total_ios: d.ios,
    short_ios: d.shortIos,
    drop_ios: d.dropIos,
    slat_ns: latJson(d.slat, which.slat ? plist : null, plus),
    clat_ns: latJson(d.clat, which.clat ? plist : null, plus),
    lat_ns: latJson(d.lat, which.lat ? plist : null, plus),
    bw_min: d.bw.n ? d.bw.min : 0,
    bw_max: d.bw.max,
    bw_agg: perAgg,
    bw_mean: d.bw.mean,
    bw_dev: d.bw.stdev,
    bw_samples: d.bw.n,
    iops_min: d.iops.n ? d.iops.min : 0,
    iops_max: d.iops.max,
    iops_mean: d.iops.mean,
    iops_stddev: d.iops.stdev,
    iops_samples: d.iops.n,
  };
}

function emptyDir(): Record<string, unknown> {
  const zero = { min: 0, max: 0, mean: 0, stddev: 0, N: 0 };
  return {
    io_bytes: 0,
    io_kbytes: 0,
    bw_bytes: 0,
    bw: 0,
    iops: 0,
    runtime: 0,
    total_ios: 0,
    short_ios: 0,
    drop_ios: 0,
    slat_ns: zero,
    clat_ns: zero,
    lat_ns: zero,
    bw_min: 0,
    bw_max: 0,
    bw_agg: 0,
    bw_mean: 0,
    bw_dev: 0,
    bw_samples: 0,
    iops_min: 0,
    iops_max: 0,
    iops_mean: 0,
    iops_stddev: 0,
    iops_samples: 0,
  };
}

/** fio's JSON distributions: each bucket's label with its percentage. */
function percentMap(labels: string[], percents: number[]): Record<string, number> {
  return Object.fromEntries(labels.map((l, i) => [l, percents[i]]));
}

export function renderJson(r: FioReport, plus = false): Record<string, unknown> {
  const runstats = runStats(r.jobs);
  const jobs = r.jobs.map((job) => {
    const ts = job.stats;
    const aggs = runstats[ts.groupid];
    const total = ts.totalIos;
    const run = ts.totalRunMs || 1;
    const depthNames = ['1', '2', '4', '8', '16', '32', '>=64'];
    const batchNames = ['0', '4', '8', '16', '32', '64', '>=64'];
    const o: Record<string, unknown> = {
      jobname: ts.name,
      groupid: ts.groupid,
      job_start: Math.round(ts.jobStartMs),
      error: ts.reported.error,
      eta: 0,
      // eta.c: whole seconds since fio started, rounded up
      elapsed: Math.floor((Math.floor(r.elapsedMs) + 999) / 1000),
      'job options': dumpedOptions(job.options),
      read: ts.read.ios
        ? ddirJson(
            ts.read,
            job.percentiles ?? r.percentiles,
            plus,
            aggs.read.agg,
            job.latencyPercentiles ?? CLAT_ONLY,
          )
        : emptyDir(),
      write: ts.write.ios
        ? ddirJson(
            ts.write,
            job.percentiles ?? r.percentiles,
            plus,
            aggs.write.agg,
            job.latencyPercentiles ?? CLAT_ONLY,
          )
        : emptyDir(),
      trim: ts.trim.ios
        ? ddirJson(
            ts.trim,
            job.percentiles ?? r.percentiles,
            plus,
            aggs.trim.agg,
            job.latencyPercentiles ?? CLAT_ONLY,
          )
        : emptyDir(),
      // its percentiles with either clat's or lat's asked for (stat.c's add_ddir_status_json())
      sync: {
        total_ios: ts.syncIos,
        lat_ns: latJson(
          ts.syncLat,
          (job.latencyPercentiles ?? CLAT_ONLY).clat || (job.latencyPercentiles ?? CLAT_ONLY).lat
            ? (job.percentiles ?? r.percentiles)
            : null,
          plus,
        ),
      },
      job_runtime: Math.round(ts.totalRunMs),
      usr_cpu: (ts.usrMs * 100) / run,
      sys_cpu: (ts.sysMs * 100) / run,
      ctx: ts.ctx,
      majf: ts.majf,
      minf: ts.minf,
      iodepth_level: percentMap(depthNames, calcDist(ts.depthMap, total)),
      iodepth_submit: percentMap(batchNames, calcDist(ts.submitMap, ts.totalSubmit)),
      iodepth_complete: percentMap(batchNames, calcDist(ts.completeMap, ts.totalComplete)),
      latency_ns: percentMap(LAT_LABELS.slice(0, 10), latPercents(ts.latN, total)),
      latency_us: percentMap(LAT_LABELS.slice(0, 10), latPercents(ts.latU, total)),
      latency_ms: percentMap(LAT_LABELS, latPercents(ts.latM, total)),
      // stat.c adds these only with continue_on_error
      ...(ts.continueOnError ? { total_err: ts.totalErr, first_error: ts.firstError } : {}),
      latency_depth: latencyDepth(job),
      latency_target: (job.latencyTarget ?? NO_LATENCY_TARGET).targetNs,
      latency_percentile: (job.latencyTarget ?? NO_LATENCY_TARGET).percentile,
      latency_window: (job.latencyTarget ?? NO_LATENCY_TARGET).windowUs,
    };
    // after the latency target's keys, as stat.c adds it
    if (job.description) o.desc = job.description;
    if (job.pvblk) o.pvblk = job.pvblk;
    // stat.c lists the job options only when the job has some (a bare flag counts, and shows as {})
    if (!Object.keys(job.options).length) delete o['job options'];
    return o;
  });
  const d = new Date(r.timestampMs);
  return {
    'fio version': FIO_VERSION,
    timestamp: Math.floor(r.timestampMs / 1000),
    timestamp_ms: Math.round(r.timestampMs),
    time: ctimeOf(d.getTime()),
    // json_add_job_opts() adds nothing for an empty list
    ...(Object.keys(r.globalOptions).length ? { 'global options': dumpedOptions(r.globalOptions) } : {}),
    jobs,
    disk_util: r.disks.map((x) => ({
      name: x.name,
      read_ios: x.readIos,
      write_ios: x.writeIos,
      read_sectors: x.readSectors,
      write_sectors: x.writeSectors,
      read_merges: 0,
      write_merges: 0,
      read_ticks: Math.round(x.readTicks),
      write_ticks: Math.round(x.writeTicks),
      in_queue: Math.round(x.inQueue),
      util: x.msec ? Math.min(100, (100 * x.ioTicks) / x.msec) : 0,
    })),
  };
}

// ------------------------------------------------------------------------------------------------
// terse, version 3

const tf = (v: number): string => fixed(v, 6);

function ddirTerse(d: DirStats, plist: number[], groupAgg: number, which: LatencyPercentiles): string {
  const parts: string[] = [];
  const runt = Math.round(d.runtimeMs);
  const bwKiB = runt ? Math.floor(Math.floor((1000 * d.bytes) / runt) / 1024) : 0;
  const iops = runt ? Math.floor((1000 * d.ios) / runt) : 0;
  parts.push(String(Math.floor(d.bytes / 1024)), String(bwKiB), String(iops), String(runt));
  const lat = (s: Samples) =>
    s.n
      ? [Math.floor(s.min / 1000), Math.floor(s.max / 1000), tf(s.mean / 1000), tf(s.stdev / 1000)].map(
          String,
        )
      : ['0', '0', tf(0), tf(0)];
  parts.push(...lat(d.slat), ...lat(d.clat));
  // lat's percentiles if asked for, else clat's if asked for, else none (show_ddir_status_terse())
  const src = which.lat ? d.lat : which.clat ? d.clat : null;
  const len = src ? plist.length : 0;
  for (let i = 0; i < 20; i++) {
    // calc_clat_percentiles() gives every listed percentile, 0 when the direction has no samples
    if (i < len) parts.push(`${tf(plist[i])}%=${src!.n ? Math.floor(src!.pct(plist[i]) / 1000) : 0}`);
    else parts.push('0%=0');
  }
  parts.push(...lat(d.lat));
  if (d.bw.n) {
    const perAgg = terseOfAgg(d.bw.mean, groupAgg);
    parts.push(String(d.bw.min), String(d.bw.max), `${tf(perAgg)}%`, tf(d.bw.mean), tf(d.bw.stdev));
  } else {
    parts.push('0', '0', `${tf(0)}%`, tf(0), tf(0));
  }
  return parts.join(';');
}

export function renderTerse(r: FioReport): string {
  const runstats = runStats(r.jobs);
  const lines = r.jobs.map((job) => {
    const ts = job.stats;
    const aggs = runstats[ts.groupid];
    const total = ts.totalIos;
    const run = ts.totalRunMs || 1;
    const parts: string[] = [`3;${FIO_VERSION};${ts.name};${ts.groupid};${ts.reported.error}`];
    const which = job.latencyPercentiles ?? CLAT_ONLY;
    parts.push(ddirTerse(ts.read, job.percentiles ?? r.percentiles, aggs.read.agg, which));
    parts.push(ddirTerse(ts.write, job.percentiles ?? r.percentiles, aggs.write.agg, which));
    parts.push(
      [
        `${tf((ts.usrMs * 100) / run)}%`,
        `${tf((ts.sysMs * 100) / run)}%`,
        String(ts.ctx),
        String(ts.majf),
        String(ts.minf),
      ].join(';'),
    );
    parts.push(
      dist(ts.depthMap, total)
        .map((p) => `${p}%`)
        .join(';'),
    );
    // the microsecond row holds the nanosecond buckets in its first one (stat_calc_lat_nu)
    const us = latPercents(ts.latU, total);
    const ns = ts.latN.reduce((a, b) => a + b, 0);
    if (total) us[0] += (100 * ns) / total;
    parts.push(us.map((p) => `${f2(p)}%`).join(';'));
    parts.push(
      latPercents(ts.latM, total)
        .map((p) => `${f2(p)}%`)
        .join(';'),
    );
    for (const d of r.disks) {
      const util = d.msec ? Math.min(100, (100 * d.ioTicks) / d.msec) : 0;
      parts.push(
        `${d.name};${d.readIos};${d.writeIos};0;0;${Math.round(d.readTicks)};${Math.round(d.writeTicks)};${Math.round(d.inQueue)};${f2(util)}%`,
      );
    }
    // with continue_on_error, the errors counted and the first, before the description
    if (ts.continueOnError) parts.push(String(ts.totalErr), String(ts.firstError));
    // the job's description, when it has one, is the line's last field
    if (job.description) parts.push(job.description);
    return parts.join(';');
  });
  // a line a job, nothing without one (stats=0 jobs alone)
  return lines.map((l) => l + '\n').join('');
}
