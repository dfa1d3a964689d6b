/**
 * fio's per-job logs (`write_lat_log`, `write_bw_log`, `write_iops_log`): the samples a job records
 * as it runs, written to files when it ends, in fio 3.36's text format (iolog.c's flush_samples()):
 *
 *     time (ms since the job's epoch), value, direction (0 read, 1 write), block size[, offset], priority
 *
 * With `log_avg_msec` each direction's samples are averaged over that many milliseconds (stat.c's
 * add_log_sample(): an entry when a sample finds its window over, the window's mean rounded half up,
 * or its maximum with `log_max_value`; block size and offset 0), and what a window holds at the end
 * is written then (finalize_logs()). Without it every sample is an entry.
 *
 * What the values are, as stat.c and io_u.c take them: lat, clat and slat in whole nanoseconds; bw,
 * per I/O, the block's bytes times 10^6 over its clat in ns (whole; 0 for a clat of 0), and over a
 * window whole KiB/s; iops, per I/O, 1, and over a window whole I/Os a second. The engine gives the
 * samples; this file keeps them and says them.
 */
import { DDIRS, type Ddir } from './fio-ddir.ts';
import type { FioJob } from './fio-job.ts';
import { FIO_IO_U_PLAT_NR, platValToIdx } from './fio-stats.ts';
import type { GuestVfs } from './vfs.ts';
import { STRERROR } from './vfs.ts';

export type IoLogKind = 'lat' | 'slat' | 'clat' | 'bw' | 'iops';

/**
 * fio's LOG_MSEC_SLACK: a bw or iops sample up to this much before its window's end closes it (the
 * helper thread that takes them wakes about then); a latency sample never does (inline_log()).
 */
export const LOG_MSEC_SLACK = 1;

/**
 * The most entries the logs of all the guest's jobs keep at once (40 bytes each: 160 MiB). fio grows
 * its logs until an allocation fails, then disables the log (the samples after are dropped, and it
 * says nothing); this guest shares its process with the guest's kernel, so its logs stop at a bound,
 * and a log that reaches it says once on stderr that it is full. A log's entries are given back when
 * it has been written. At 30,000 I/Os a second, a job logging lat, slat and clat of every I/O reaches
 * it in about 45 s; averaged (log_avg_msec) its logs take a few entries a window.
 */
export const MAX_LOG_ENTRIES = 1 << 22;
/** Entries the guest's logs hold now, against MAX_LOG_ENTRIES. */
let entriesInUse = 0;

/** Takes `n` entries of the bound: false when they are not left. */
function takeEntries(n: number): boolean {
  if (entriesInUse + n > MAX_LOG_ENTRIES) return false;
  entriesInUse += n;
  return true;
}

/** What a job's log is to the code that writes it: a file, and its lines. */
export interface LogFile {
  readonly file: string;
  /**
   * log_alternate_epoch: what an entry's time has added as it is stored (the job's epoch on the other
   * clock, ms); its windows still run on the time since the job's epoch, as fio's add_log_sample().
   */
  epochMs: number;
  /** Entries written at a time: a few MB of text at most. */
  readonly entriesPerWrite: number;
  /** Entries (lines) it holds. */
  readonly length: number;
  /** finalize_logs() at the job's end (`ms`): true when that filled the bound. */
  finalize(ms: number): boolean;
  /** Lines `[from, to)`. */
  text(from?: number, to?: number): string;
  /** Gives its entries back to the bound; it is empty from here on. */
  dispose(): void;
}

/** Fields of an entry, in a Float64Array chunk: time, value, direction, block size, offset. */
const FIELDS = 5;
const CHUNK_ENTRIES = 1 << 14;

interface Window {
  n: number;
  mean: number;
  max: number;
}

/** One of a job's logs: fio's struct io_log. */
export class IoLog implements LogFile {
  epochMs = 0;
  readonly entriesPerWrite = 1 << 15;
  private readonly chunks: Float64Array[] = [];
  private entries = 0;
  /** Per direction: the running window of an averaged log, and where it began (avg_last). */
  private readonly windows: Window[] = [
    { n: 0, mean: 0, max: 0 },
    { n: 0, mean: 0, max: 0 },
    { n: 0, mean: 0, max: 0 },
  ];
  private readonly avgLast = [0, 0, 0];
  full = false;

  constructor(
    readonly kind: IoLogKind,
    /** The file's name: fio's gen_log_name(). */
    readonly file: string,
    /** log_avg_msec (for bw and iops, what bwavgtime/iopsavgtime leave of it); 0 = every sample. */
    readonly avgMsec: number,
    readonly logMax: boolean,
    readonly logOffset: boolean,
    readonly logPrio: boolean,
  ) {}

  /** fio's per_unit_log(): an entry per sample, not per window. */
  get perUnit(): boolean {
    return this.avgMsec === 0;
  }

  get length(): number {
    return this.entries;
  }

  /**
   * A sample at `ms` (whole milliseconds since the job's epoch): add_log_sample(). Returns whether
   * this was the entry that filled the log (the caller says so once).
   */
  add(ms: number, value: number, ddir: Ddir, bs: number, offset: number): boolean {
    if (this.avgMsec === 0) return this.push(ms, value, ddir, bs, offset);
    const w = this.windows[ddir];
    w.n++;
    w.mean += (value - w.mean) / w.n;
    if (value > w.max || w.n === 1) w.max = value;
    const last = this.avgLast[ddir];
    if (ms < last) return false;
    const left = this.avgMsec - (ms - last);
    if (left > 0 && (this.inline || left > LOG_MSEC_SLACK)) return false;
    const filled = this.flushWindow(ddir, ms);
    this.avgLast[ddir] = ms - (ms % this.avgMsec);
    return filled;
  }

  /** finalize_logs(): what the windows hold at the job's end, as entries at `ms`. */
  finalize(ms: number): boolean {
    if (this.avgMsec === 0) return false;
    // every window flushed, in fio's order of the directions
    return DDIRS.map((d) => this.flushWindow(d, ms)).some((filled) => filled);
  }

  /** The text of entries `[from, to)`: flush_samples()'s lines. */
  text(from = 0, to = this.entries): string {
    const lines: string[] = [];
    // an entry's priority: the I/O's ioprio (0 here: no job sets one) with log_prio, else whether it
    // was of the real-time class
    const prio = this.logPrio ? '0x0000' : '0';
    for (let i = from; i < Math.min(to, this.entries); i++) {
      const c = this.chunks[Math.floor(i / CHUNK_ENTRIES)];
      const o = (i % CHUNK_ENTRIES) * FIELDS;
      const offset = this.logOffset ? `${c[o + 4]}, ` : '';
      lines.push(`${c[o]}, ${c[o + 1]}, ${c[o + 2]}, ${c[o + 3]}, ${offset}${prio}\n`);
    }
    return lines.join('');
  }

  /** Gives the log's entries back (once written, or never to be): it is empty from here on. */
  dispose(): void {
    entriesInUse -= this.entries;
    this.entries = 0;
    this.chunks.length = 0;
  }

  private get inline(): boolean {
    return this.kind === 'lat' || this.kind === 'clat' || this.kind === 'slat';
  }

  /** __add_stat_to_log(): the window's mean (rounded half up) or maximum, if it had samples. */
  private flushWindow(ddir: Ddir, ms: number): boolean {
    const w = this.windows[ddir];
    let filled = false;
    if (w.n) filled = this.push(ms, this.logMax ? w.max : Math.floor(w.mean + 0.5), ddir, 0, 0);
    w.n = 0;
    w.mean = 0;
    w.max = 0;
    return filled;
  }

  private push(ms: number, value: number, ddir: number, bs: number, offset: number): boolean {
    if (this.full) return false;
    if (!takeEntries(1)) {
      this.full = true;
      return true;
    }
    const ci = Math.floor(this.entries / CHUNK_ENTRIES);
    if (ci === this.chunks.length) this.chunks.push(new Float64Array(CHUNK_ENTRIES * FIELDS));
    const c = this.chunks[ci];
    const o = (this.entries % CHUNK_ENTRIES) * FIELDS;
    c[o] = ms + this.epochMs;
    c[o + 1] = value;
    c[o + 2] = ddir;
    c[o + 3] = bs;
    c[o + 4] = offset;
    this.entries++;
    return false;
  }
}

/** The bound's entries a histogram takes: its buckets, at 8 bytes each, in entries of 40. */
const HIST_ENTRY_COST = Math.ceil(FIO_IO_U_PLAT_NR / FIELDS);

/**
 * fio's clat histogram log (`write_hist_log`, `log_hist_msec`, `log_hist_coarseness`): every
 * `log_hist_msec` of completions in a direction (from its first, as add_clat_sample() starts the
 * window), the histogram of the clat of that window in fio's buckets (stat.c's plat_val_to_idx()),
 * written as iolog.c's flush_hist_samples() does: `time, direction, block size, ` and the buckets,
 * 2^coarseness of them added up a field. Without `log_hist_msec` the file is empty, as fio's is.
 */
export class HistLog implements LogFile {
  epochMs = 0;
  /** A line is up to 1856 fields: 64 of them at a time. */
  readonly entriesPerWrite = 64;
  /** The buckets since the statistics began (td->ts.io_u_plat[FIO_CLAT]), per direction. */
  private readonly cum = DDIRS.map(() => new Float64Array(FIO_IO_U_PLAT_NR));
  /** The buckets at the last entry of each direction (the entry before, that flush subtracts). */
  private readonly before = DDIRS.map(() => new Float64Array(FIO_IO_U_PLAT_NR));
  /** Per direction, where its window began (hist_last; 0: not yet). */
  private readonly last = [0, 0, 0];
  private entries: Array<{ ms: number; ddir: number; bs: number; bins: Float64Array }> = [];
  full = false;

  constructor(
    readonly file: string,
    private readonly msec: number,
    private readonly coarseness: number,
    /** clat_percentiles: fio fills the buckets only then (the log's are all 0 without). */
    private readonly counts: boolean,
  ) {}

  get length(): number {
    return this.entries.length;
  }

  /** A completion's clat (ns) at `ms`: add_clat_sample()'s part for this log. True when that filled the bound. */
  add(ms: number, clatNs: number, d: Ddir, bs: number): boolean {
    if (!this.msec) return false;
    if (this.counts) this.cum[d][platValToIdx(clatNs)]++;
    if (!this.last[d]) this.last[d] = ms;
    const window = ms - this.last[d];
    if (window < this.msec) return false;
    // the next window from where this one should have ended, not from the late sample
    this.last[d] = ms - (window - this.msec);
    if (this.full) return false;
    if (!takeEntries(HIST_ENTRY_COST)) {
      this.full = true;
      return true;
    }
    const bins = new Float64Array(FIO_IO_U_PLAT_NR);
    for (let i = 0; i < FIO_IO_U_PLAT_NR; i++) bins[i] = this.cum[d][i] - this.before[d][i];
    this.before[d].set(this.cum[d]);
    this.entries.push({ ms: ms + this.epochMs, ddir: d, bs, bins });
    return false;
  }

  /** reset_io_stats(): the histograms start again (the ramp's end, a latency target's final window). */
  reset(): void {
    for (const d of DDIRS) {
      this.cum[d].fill(0);
      this.before[d].fill(0);
    }
  }

  finalize(): boolean {
    return false;
  }

  text(from = 0, to = this.entries.length): string {
    const stride = 2 ** this.coarseness;
    const lines: string[] = [];
    for (const e of this.entries.slice(from, to)) {
      const sums: number[] = [];
      const sum = (j: number) => {
        let x = 0;
        for (let k = 0; k < stride; k++) x += e.bins[j + k];
        return x;
      };
      for (let j = 0; j < FIO_IO_U_PLAT_NR - stride; j += stride) sums.push(sum(j));
      sums.push(sum(FIO_IO_U_PLAT_NR - stride));
      lines.push(`${e.ms}, ${e.ddir}, ${e.bs}, ${sums.join(', ')}\n`);
    }
    return lines.join('');
  }

  dispose(): void {
    entriesInUse -= this.entries.length * HIST_ENTRY_COST;
    this.entries = [];
  }
}

/** A job's logs, each null when not asked for. */
export interface JobLogs {
  lat: IoLog | null;
  slat: IoLog | null;
  clat: IoLog | null;
  bw: IoLog | null;
  iops: IoLog | null;
  hist: HistLog | null;
}

/**
 * The logs a job asks for: init.c's add_job(). `threadNumber` is the job's number among all the
 * run's jobs, 1 for the first (fio's td->thread_number), in the name with `per_job_logs` (the default).
 */
export function jobLogs(job: FioJob, threadNumber: number): JobLogs {
  const l = job.logs;
  const make = (kind: IoLogKind, prefix: string | null, avgMsec: number): IoLog | null =>
    prefix === null
      ? null
      : new IoLog(kind, logName(job, prefix, kind, threadNumber), avgMsec, l.maxValue, l.offset, l.prio);
  return {
    // a latency that is not measured has no log (init.c's setup_log() is skipped for it)
    lat: job.disableLat ? null : make('lat', l.lat, l.avgMsec),
    slat: job.disableSlat ? null : make('slat', l.lat, l.avgMsec),
    clat: job.disableClat ? null : make('clat', l.lat, l.avgMsec),
    bw: make('bw', l.bw, bwLogAvg(job)),
    iops: make('iops', l.iops, iopsLogAvg(job)),
    hist:
      l.hist === null
        ? null
        : new HistLog(
            logName(job, l.hist, 'clat_hist', threadNumber),
            l.histMsec,
            l.histCoarseness,
            job.latencyPercentiles.clat,
          ),
  };
}

/** init.c's gen_log_name() with make_log_name(): the option's value, or the job's name for an empty one. */
function logName(job: FioJob, prefix: string, kind: string, threadNumber: number): string {
  const pre = prefix === '' ? job.name : prefix;
  return job.logs.perJob ? `${pre}_${kind}.${threadNumber}.log` : `${pre}_${kind}.log`;
}

/**
 * The files the jobs of a run write, in their order (each job's clones numbered on from the jobs
 * before, as the guest's fio numbers them), each once: jobs with per_job_logs=0 share theirs.
 */
export function logFiles(jobs: readonly FioJob[]): string[] {
  const files = new Set<string>();
  let n = 0;
  for (const j of jobs)
    for (let k = 0; k < j.numjobs; k++)
      for (const log of Object.values(jobLogs(j, ++n))) if (log) files.add(log.file);
  return [...files];
}

/**
 * The averaging of the bw log, and the window the report's bw samples take (fio's bw_avg_time): with
 * `bwavgtime` given, the log averages over the shorter of it and log_avg_msec; without it, a bw log
 * makes log_avg_msec the report's window too (0: a sample per I/O), as add_job() sets it.
 */
function bwLogAvg(job: FioJob): number {
  const l = job.logs;
  return l.bwAvgGiven ? Math.min(l.avgMsec, l.bwAvgTime) : l.avgMsec;
}
function iopsLogAvg(job: FioJob): number {
  const l = job.logs;
  return l.iopsAvgGiven ? Math.min(l.avgMsec, l.iopsAvgTime) : l.avgMsec;
}

/** The windows of the report's bw and iops samples in ms; 0 where they are taken per I/O. */
export function statWindows(job: FioJob): { bw: number; iops: number } {
  const l = job.logs;
  return {
    bw: l.bw !== null && !l.bwAvgGiven ? l.avgMsec : l.bwAvgTime,
    iops: l.iops !== null && !l.iopsAvgGiven ? l.avgMsec : l.iopsAvgTime,
  };
}

/**
 * Writes a log to its file in the guest (td_writeout_logs() at the job's end): truncated, or appended
 * to with `per_job_logs=0`, where the jobs share one file. A file that cannot be opened is said as
 * fio's perror() says it (`fopen log: <strerror>`), and the run goes on; so is a write that fails.
 */
export async function writeLog(
  vfs: GuestVfs,
  log: LogFile,
  append: boolean,
  stderr: (s: string) => void,
): Promise<void> {
  // fio's working directory is the guest's /
  const path = log.file.startsWith('/') ? log.file : `/${log.file}`;
  const f = await vfs.open(path, { read: false, write: true, create: true, truncate: !append });
  if ('errno' in f) {
    stderr(`fopen log: ${STRERROR[f.errno]}\n`);
    log.dispose();
    return;
  }
  try {
    let at = append ? (f.size() ?? 0) : 0;
    const enc = new TextEncoder();
    // a few MB at a time: the text of a whole log is never held at once
    for (let i = 0; i < log.length; i += log.entriesPerWrite) {
      const data = enc.encode(log.text(i, i + log.entriesPerWrite));
      for (let done = 0; done < data.length;) {
        const r = await f.pwrite(data.subarray(done), at);
        if (!r.ok || r.n === 0) {
          stderr(`fio: write log ${log.file}: ${STRERROR[r.ok ? 'ENOSPC' : r.errno]}\n`);
          return;
        }
        done += r.n;
        at += r.n;
      }
    }
  } finally {
    log.dispose();
    await f.close();
  }
}
