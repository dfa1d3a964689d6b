/**
 * What fio accounts per job and per direction, kept the way fio keeps it so that its three outputs
 * can be printed from it: exact min/max/mean/stdev (Welford, sample stdev as fio's calc_lat()), and
 * the distribution in an HDR histogram (hdr-histogram-js, 3 significant digits) for percentiles —
 * fio's own log-linear histogram has the same relative precision. Everything merges (numjobs with
 * group_reporting, several guests in `pvblk bench`) and travels as JSON (`toRaw`/`fromRaw`), the
 * histograms as HdrHistogram's compressed base64 form.
 */
import * as hdr from 'hdr-histogram-js';
import type { Ddir } from './fio-ddir.ts';

/** fio's latency histogram (stat.h): 29 groups of 2^6 buckets, each group an octave. */
export const FIO_IO_U_PLAT_BITS = 6;
const FIO_IO_U_PLAT_VAL = 1 << FIO_IO_U_PLAT_BITS;
export const FIO_IO_U_PLAT_NR = 29 * FIO_IO_U_PLAT_VAL;

/** The index of fio's bucket for a latency of `v` ns (stat.c's plat_val_to_idx), for v < 2^53. */
export function platValToIdx(v: number): number {
  // below 2^7 a value is its own bucket; above, the top 7 bits pick it (the MSB its group)
  if (v < 2 * FIO_IO_U_PLAT_VAL) return v;
  const msb = v < 2 ** 32 ? 31 - Math.clz32(v) : 63 - Math.clz32(Math.floor(v / 2 ** 32));
  const errorBits = msb - FIO_IO_U_PLAT_BITS;
  const base = (errorBits + 1) << FIO_IO_U_PLAT_BITS;
  const offset = Math.floor(v / 2 ** errorBits) % FIO_IO_U_PLAT_VAL;
  return Math.min(base + offset, FIO_IO_U_PLAT_NR - 1);
}

/** The value fio prints for bucket `idx` (stat.c's plat_idx_to_val): the middle of its range. */
export function platIdxToVal(idx: number): number {
  if (idx < 2 * FIO_IO_U_PLAT_VAL) return idx;
  const errorBits = (idx >> FIO_IO_U_PLAT_BITS) - 1;
  const k = idx % FIO_IO_U_PLAT_VAL;
  return 2 ** (errorBits + FIO_IO_U_PLAT_BITS) + (k + 0.5) * 2 ** errorBits;
}

/** A latency (ns) or rate sample set: exact moments plus an HDR histogram. */
export class Samples {
  n = 0;
  min = Infinity;
  max = 0;
  mean = 0;
  /** Sum of squared deviations from the mean (Welford's M2). */
  m2 = 0;
  readonly hist: hdr.Histogram;

  constructor(hist?: hdr.Histogram) {
    this.hist =
      hist ??
      hdr.build({
        lowestDiscernibleValue: 1,
        highestTrackableValue: 2,
        numberOfSignificantValueDigits: 3,
        autoResize: true,
        bitBucketSize: 32,
        useWebAssembly: false,
      });
  }

  add(v: number): void {
    const x = Math.max(0, Math.round(v));
    this.n++;
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
    const d = x - this.mean;
    this.mean += d / this.n;
    this.m2 += d * (x - this.mean);
    this.hist.recordValue(x);
  }

  merge(o: Samples): void {
    if (o.n === 0) return;
    const n = this.n + o.n;
    const d = o.mean - this.mean;
    this.m2 += o.m2 + (d * d * this.n * o.n) / n;
    this.mean += (d * o.n) / n;
    this.n = n;
    this.min = Math.min(this.min, o.min);
    this.max = Math.max(this.max, o.max);
    this.hist.add(o.hist);
  }

  /**
   * fio's sum_stat() with `pure_sum`, for rates of jobs that ran side by side (group_reporting): their
   * bandwidth or IOPS samples add up — min, max, mean, sample count and M2 alike — so that the group's
   * line shows the group's rate, not one job's average. The histogram pools the samples (no report
   * reads percentiles of a rate).
   */
  sum(o: Samples): void {
    if (o.n === 0) return;
    if (this.n === 0) {
      this.min = o.min;
      this.max = o.max;
    } else {
      this.min += o.min;
      this.max += o.max;
    }
    this.n += o.n;
    this.mean += o.mean;
    this.m2 += o.m2;
    this.hist.add(o.hist);
  }

  /** Forgets every sample. */
  reset(): void {
    this.n = 0;
    this.min = Infinity;
    this.max = 0;
    this.mean = 0;
    this.m2 = 0;
    this.hist.reset();
  }

  /** Sample standard deviation, as fio's calc_lat(). */
  get stdev(): number {
    return this.n > 1 ? Math.sqrt(this.m2 / (this.n - 1)) : 0;
  }

  /** The value at percentile p (0-100), clamped to the exact extremes. */
  pct(p: number): number {
    if (this.n === 0) return 0;
    return Math.min(this.max, Math.max(this.min, this.hist.getValueAtPercentile(p)));
  }

  /**
   * fio's json+ `bins`: (bucket value, count) of every non-empty bucket of fio's own latency
   * histogram, lowest first, keyed as fio keys them (`plat_idx_to_val`, the middle of the bucket), so
   * that a json+ reader that adds or compares bins across runs of fio and pvblk sees one bucket grid.
   * They are folded from the HDR histogram without loss: at 3 significant digits its buckets are
   * powers of two wide and aligned, at most 1/1024 of their octave, and fio's are 1/64 of theirs (1
   * ns below 128), so every HDR bucket lies inside one of fio's.
   */
  fioBins(): Array<[number, number]> {
    const counts = new Map<number, number>();
    for (const [v, c] of this.bins()) {
      const idx = platValToIdx(v);
      counts.set(idx, (counts.get(idx) ?? 0) + c);
    }
    return [...counts].sort((a, b) => a[0] - b[0]).map(([idx, c]) => [platIdxToVal(idx), c]);
  }

  /** (value, count) of every recorded HDR bucket, lowest first (its highest equivalent value): the CDF plots. */
  bins(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    const it = (this.hist as hdr.JsHistogram).recordedValuesIterator;
    it.reset();
    while (it.hasNext()) {
      const v = it.next();
      out.push([v.valueIteratedTo, v.countAtValueIteratedTo]);
    }
    return out;
  }

  toRaw(): RawSamples {
    return {
      n: this.n,
      min: this.n ? this.min : 0,
      max: this.max,
      mean: this.mean,
      m2: this.m2,
      hdr: this.n ? hdr.encodeIntoCompressedBase64(this.hist) : '',
    };
  }

  static fromRaw(r: RawSamples): Samples {
    const h = r.hdr ? hdr.decodeFromCompressedBase64(r.hdr, 32, false) : undefined;
    // a decoded histogram covers only the values it held: let it grow, as a fresh one does, so that
    // a later merge into it (the next slice of a run) may bring larger ones
    if (h) h.autoResize = true;
    const s = new Samples(h);
    s.n = r.n;
    s.min = r.n ? r.min : Infinity;
    s.max = r.max;
    s.mean = r.mean;
    s.m2 = r.m2;
    return s;
  }
}

export interface RawSamples {
  n: number;
  min: number;
  max: number;
  mean: number;
  m2: number;
  hdr: string;
}

/** One direction (read, write or trim) of a job: fio's per-ddir fields. */
export class DirStats {
  ios = 0;
  bytes = 0;
  shortIos = 0;
  dropIos = 0;
  /** Milliseconds this direction ran (fio's ts->runtime[ddir]). */
  runtimeMs = 0;
  readonly slat = new Samples();
  readonly clat = new Samples();
  readonly lat = new Samples();
  /** KiB/s per averaging window (fio's bw_avg_time, 500 ms). */
  readonly bw = new Samples();
  readonly iops = new Samples();

  /**
   * `o` ran beside this (another job of a group, another guest): latencies pool, rates add up (fio's
   * sum_thread_stats). With `rates: 'pool'` rates pool too, for a later stretch of the same job.
   */
  merge(o: DirStats, rates: 'sum' | 'pool' = 'sum'): void {
    this.ios += o.ios;
    this.bytes += o.bytes;
    this.shortIos += o.shortIos;
    this.dropIos += o.dropIos;
    this.runtimeMs = Math.max(this.runtimeMs, o.runtimeMs);
    this.slat.merge(o.slat);
    this.clat.merge(o.clat);
    this.lat.merge(o.lat);
    if (rates === 'sum') {
      this.bw.sum(o.bw);
      this.iops.sum(o.iops);
    } else {
      this.bw.merge(o.bw);
      this.iops.merge(o.iops);
    }
  }

  /**
   * `o` is a later stretch of the same run (a slice of `pvblk bench --baseline-slices`): its time adds
   * to ours, where `merge` (jobs that ran side by side) keeps the longer.
   */
  append(o: DirStats): void {
    const runtimeMs = this.runtimeMs + o.runtimeMs;
    this.merge(o, 'pool');
    this.runtimeMs = runtimeMs;
  }

  toRaw(): RawDir {
    return {
      ios: this.ios,
      bytes: this.bytes,
      shortIos: this.shortIos,
      dropIos: this.dropIos,
      runtimeMs: this.runtimeMs,
      slat: this.slat.toRaw(),
      clat: this.clat.toRaw(),
      lat: this.lat.toRaw(),
      bw: this.bw.toRaw(),
      iops: this.iops.toRaw(),
    };
  }

  static fromRaw(r: RawDir): DirStats {
    const d = new DirStats();
    d.ios = r.ios;
    d.bytes = r.bytes;
    d.shortIos = r.shortIos;
    d.dropIos = r.dropIos;
    d.runtimeMs = r.runtimeMs;
    for (const k of ['slat', 'clat', 'lat', 'bw', 'iops'] as const) d[k].merge(Samples.fromRaw(r[k]));
    return d;
  }
}

export interface RawDir {
  ios: number;
  bytes: number;
  shortIos: number;
  dropIos: number;
  runtimeMs: number;
  slat: RawSamples;
  clat: RawSamples;
  lat: RawSamples;
  bw: RawSamples;
  iops: RawSamples;
}

/** fio's io_u_dist buckets: queue depth at issue (1, 2, 4, 8, 16, 32, >=64). */
export function depthBucket(depth: number): number {
  if (depth <= 1) return 0;
  return Math.min(6, Math.floor(Math.log2(depth)));
}

/** fio's submit/complete buckets: ios per submission or reap (0, 4, 8, 16, 32, 64, >=64). */
export function batchBucket(n: number): number {
  if (n <= 0) return 0;
  if (n <= 4) return 1;
  if (n <= 8) return 2;
  if (n <= 16) return 3;
  if (n <= 32) return 4;
  if (n <= 64) return 5;
  return 6;
}

/** fio's latency buckets (io_u_lat_n/u/m): index of the first range a latency lies below. */
const LAT_EDGES = [2, 4, 10, 20, 50, 100, 250, 500, 750, 1000];
const LAT_EDGES_MS = [...LAT_EDGES, 2000];
export function latBuckets(ns: number): { unit: 'n' | 'u' | 'm'; idx: number } {
  if (ns < 1000) return { unit: 'n', idx: firstAbove(LAT_EDGES, ns) };
  const us = ns / 1000;
  if (us < 1000) return { unit: 'u', idx: firstAbove(LAT_EDGES, us) };
  const m = firstAbove(LAT_EDGES_MS, us / 1000);
  return { unit: 'm', idx: m < 0 ? 11 : m };
}

/** Index of the first edge above `v`, or -1 (a loop: this runs for every I/O). */
function firstAbove(edges: readonly number[], v: number): number {
  for (let i = 0; i < edges.length; i++) if (v < edges[i]) return i;
  return -1;
}

/** blkfront's counters of one device over a whole fio command (pvblk's own, not fio's). */
export interface DeviceCounters {
  name: string;
  /** Ring requests blkfront put on its rings. */
  requests: number;
  completions: number;
  /** Notifications received by the guest (blkfront's upcalls). */
  upcalls: number;
  /** Grant operations by blkfront (grant_foreign_access). */
  grants: number;
}

/** The block device's counters over the job, for fio's "Disk stats" lines. */
export interface DiskUtil {
  name: string;
  readIos: number;
  writeIos: number;
  readSectors: number;
  writeSectors: number;
  readTicks: number;
  writeTicks: number;
  inQueue: number;
  ioTicks: number;
  msec: number;
}

export class JobStats {
  /** fio's td->error: the error that ended the job (0: none, or only non-fatal ones). */
  error = 0;
  /** fio's td->verror: where the last error was set, kept when a non-fatal one is cleared. */
  verror = '';
  /** fio's `continue_on_error` bits, and the non-fatal errors counted (total_err_count, first_error). */
  continueOnError = 0;
  totalErr = 0;
  firstError = 0;
  /** A merged job's reported error, once a member has one (see reported). */
  private mergedError: { error: number; verror: string } | null = null;
  /** The depth a latency target settled on (fio's latency_depth); null without one: the job's iodepth. */
  latencyDepth: number | null = null;
  members = 1;
  jobStartMs = 0;
  /** Wall time of the job, ms (fio's total_run_time). */
  totalRunMs = 0;
  usrMs = 0;
  sysMs = 0;
  ctx = 0;
  majf = 0;
  minf = 0;
  readonly read = new DirStats();
  readonly write = new DirStats();
  readonly trim = new DirStats();
  readonly depthMap = new Array<number>(7).fill(0);
  readonly submitMap = new Array<number>(7).fill(0);
  readonly completeMap = new Array<number>(7).fill(0);
  totalSubmit = 0;
  totalComplete = 0;
  readonly latN = new Array<number>(10).fill(0);
  readonly latU = new Array<number>(10).fill(0);
  readonly latM = new Array<number>(12).fill(0);
  /** Requests on the device's rings right after each I/O was pushed (pvblk's own). */
  readonly ringOccupancy = new Samples();
  /**
   * fsync and fdatasync of `fsync=N`/`fdatasync=N`: how many were issued (total_io_u[DDIR_SYNC]) and
   * their latencies, issue to completion (ts->sync_stat, io_u_sync_plat).
   */
  syncIos = 0;
  readonly syncLat = new Samples();

  constructor(
    public name: string,
    public groupid = 0,
  ) {}

  get totalIos(): number {
    return this.read.ios + this.write.ios + this.trim.ios;
  }

  /** Bytes of all directions (fio's ddir_rw_sum(td->io_bytes)). */
  get totalBytes(): number {
    return this.read.bytes + this.write.bytes + this.trim.bytes;
  }

  /** The directions in fio's order (ts->...[DDIR_READ], [DDIR_WRITE], [DDIR_TRIM]). */
  get dirs(): readonly [DirStats, DirStats, DirStats] {
    return [this.read, this.write, this.trim];
  }

  /** Direction `d`'s statistics. */
  dir(d: Ddir): DirStats {
    return d === 0 ? this.read : d === 1 ? this.write : this.trim;
  }

  /**
   * The error a report gives the job, with its message (__show_run_stats()): the one that ended it,
   * else, with continue_on_error, the first non-fatal one — said with td->verror in both cases, empty
   * when nothing set it (fio 3.33 prints `err=84 ()`). A merged job's is its first member's with one.
   */
  get reported(): { error: number; verror: string } {
    if (this.mergedError) return this.mergedError;
    return { error: this.error || (this.continueOnError ? this.firstError : 0), verror: this.verror };
  }

  /** update_error_count(): a non-fatal error counted. */
  countError(errno: number): void {
    if (++this.totalErr === 1) this.firstError = errno;
  }

  /**
   * fio's reset_io_stats(): at the end of ramp_time, what the ramp's I/O left in the distributions
   * and counts goes (its latencies were never taken); before a latency target's final window, what
   * the search did goes too.
   */
  resetIo(): void {
    for (const m of [this.depthMap, this.submitMap, this.completeMap, this.latN, this.latU, this.latM])
      m.fill(0);
    for (const d of this.dirs) {
      d.ios = 0;
      d.bytes = 0;
      d.shortIos = 0;
      d.dropIos = 0;
      d.runtimeMs = 0;
      for (const x of [d.slat, d.clat, d.lat, d.bw, d.iops]) x.reset();
    }
    this.totalSubmit = 0;
    this.totalComplete = 0;
    this.ringOccupancy.reset();
    this.syncIos = 0;
    this.syncLat.reset();
  }

  markLatency(ns: number): void {
    const b = latBuckets(ns);
    (b.unit === 'n' ? this.latN : b.unit === 'u' ? this.latU : this.latM)[b.idx]++;
  }

  /**
   * Jobs that ran side by side (a group_reporting group, a guest's jobs) as one, named `name`, in the
   * reporting group of the first (stat.c's ts->groupid for a group_reporting report).
   */
  static merged(name: string, jobs: readonly JobStats[]): JobStats {
    const m = new JobStats(name, jobs[0]?.groupid ?? 0);
    m.members = 0;
    for (const j of jobs) m.merge(j);
    return m;
  }

  /** `o` ran beside this job (group_reporting, another guest); `rates` as in DirStats.merge. */
  merge(o: JobStats, rates: 'sum' | 'pool' = 'sum'): void {
    this.members += o.members;
    if (!this.error && o.error) {
      this.error = o.error;
      this.verror = o.verror;
    }
    if (!this.reported.error && o.reported.error) this.mergedError = o.reported;
    // the group's continue_on_error and first_error are its last member's, even a 0, as
    // __show_run_stats() copies each td's over the one before; the counts add up
    this.continueOnError = o.continueOnError;
    this.firstError = o.firstError;
    this.totalErr += o.totalErr;
    // a group's is its last member's, as __show_run_stats() copies each td's over the one before
    if (o.latencyDepth !== null) this.latencyDepth = o.latencyDepth;
    this.jobStartMs = this.jobStartMs ? Math.min(this.jobStartMs, o.jobStartMs) : o.jobStartMs;
    // fio's sum_thread_stats(): a group's run time is its jobs' added up, so that its CPU shares are
    // each job's on average (a later stretch of the same job sets its own: append)
    this.totalRunMs += o.totalRunMs;
    this.usrMs += o.usrMs;
    this.sysMs += o.sysMs;
    this.ctx += o.ctx;
    this.majf += o.majf;
    this.minf += o.minf;
    this.read.merge(o.read, rates);
    this.write.merge(o.write, rates);
    this.trim.merge(o.trim, rates);
    for (let i = 0; i < 7; i++) {
      this.depthMap[i] += o.depthMap[i];
      this.submitMap[i] += o.submitMap[i];
      this.completeMap[i] += o.completeMap[i];
    }
    this.totalSubmit += o.totalSubmit;
    this.totalComplete += o.totalComplete;
    for (let i = 0; i < 10; i++) {
      this.latN[i] += o.latN[i];
      this.latU[i] += o.latU[i];
    }
    for (let i = 0; i < 12; i++) this.latM[i] += o.latM[i];
    this.ringOccupancy.merge(o.ringOccupancy);
    this.syncIos += o.syncIos;
    this.syncLat.merge(o.syncLat);
  }

  /** `o` is a later stretch of the same job (see DirStats.append): times add up, members do not. */
  append(o: JobStats): void {
    const members = this.members;
    const totalRunMs = this.totalRunMs + o.totalRunMs;
    const runtimeMs = this.dirs.map((d, i) => d.runtimeMs + o.dirs[i].runtimeMs);
    const firstError = this.firstError || o.firstError;
    this.merge(o, 'pool');
    this.firstError = firstError;
    this.members = members;
    this.totalRunMs = totalRunMs;
    this.dirs.forEach((d, i) => (d.runtimeMs = runtimeMs[i]));
  }

  toRaw(): RawJob {
    return {
      name: this.name,
      groupid: this.groupid,
      error: this.error,
      verror: this.verror,
      continueOnError: this.continueOnError,
      totalErr: this.totalErr,
      firstError: this.firstError,
      mergedError: this.mergedError,
      latencyDepth: this.latencyDepth,
      members: this.members,
      jobStartMs: this.jobStartMs,
      totalRunMs: this.totalRunMs,
      usrMs: this.usrMs,
      sysMs: this.sysMs,
      ctx: this.ctx,
      majf: this.majf,
      minf: this.minf,
      read: this.read.toRaw(),
      write: this.write.toRaw(),
      trim: this.trim.toRaw(),
      depthMap: [...this.depthMap],
      submitMap: [...this.submitMap],
      completeMap: [...this.completeMap],
      totalSubmit: this.totalSubmit,
      totalComplete: this.totalComplete,
      latN: [...this.latN],
      latU: [...this.latU],
      latM: [...this.latM],
      ringOccupancy: this.ringOccupancy.toRaw(),
      syncIos: this.syncIos,
      syncLat: this.syncLat.toRaw(),
    };
  }

  static fromRaw(r: RawJob): JobStats {
    const j = new JobStats(r.name, r.groupid);
    j.error = r.error;
    j.verror = r.verror;
    j.continueOnError = r.continueOnError;
    j.totalErr = r.totalErr;
    j.firstError = r.firstError;
    j.mergedError = r.mergedError;
    j.latencyDepth = r.latencyDepth;
    j.members = r.members;
    j.jobStartMs = r.jobStartMs;
    j.totalRunMs = r.totalRunMs;
    j.usrMs = r.usrMs;
    j.sysMs = r.sysMs;
    j.ctx = r.ctx;
    j.majf = r.majf;
    j.minf = r.minf;
    j.read.merge(DirStats.fromRaw(r.read));
    j.write.merge(DirStats.fromRaw(r.write));
    j.trim.merge(DirStats.fromRaw(r.trim));
    r.depthMap.forEach((v, i) => (j.depthMap[i] = v));
    r.submitMap.forEach((v, i) => (j.submitMap[i] = v));
    r.completeMap.forEach((v, i) => (j.completeMap[i] = v));
    j.totalSubmit = r.totalSubmit;
    j.totalComplete = r.totalComplete;
    r.latN.forEach((v, i) => (j.latN[i] = v));
    r.latU.forEach((v, i) => (j.latU[i] = v));
    r.latM.forEach((v, i) => (j.latM[i] = v));
    j.ringOccupancy.merge(Samples.fromRaw(r.ringOccupancy));
    j.syncIos = r.syncIos;
    j.syncLat.merge(Samples.fromRaw(r.syncLat));
    return j;
  }
}

export interface RawJob {
  name: string;
  groupid: number;
  error: number;
  verror: string;
  continueOnError: number;
  totalErr: number;
  firstError: number;
  mergedError: { error: number; verror: string } | null;
  latencyDepth: number | null;
  members: number;
  jobStartMs: number;
  totalRunMs: number;
  usrMs: number;
  sysMs: number;
  ctx: number;
  majf: number;
  minf: number;
  read: RawDir;
  write: RawDir;
  trim: RawDir;
  depthMap: number[];
  submitMap: number[];
  completeMap: number[];
  totalSubmit: number;
  totalComplete: number;
  latN: number[];
  latU: number[];
  latM: number[];
  ringOccupancy: RawSamples;
  syncIos: number;
  syncLat: RawSamples;
}
