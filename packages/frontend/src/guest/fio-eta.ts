/**
 * fio's ETA line (eta.c), what one job makes of it: its letter in the line's run_str, its rates
 * between two lines (calc_rate(), calc_iops()) and its time left (thread_eta()).
 */
import { rwKinds, verifiesWrites, type FioJob } from './fio-job.ts';

export interface Progress {
  /** Per worker: its state character (fio's run_str: R/r/W/w/M/m, / ramping, V verifying). */
  states: string[];
  readBytesPerSec: number;
  writeBytesPerSec: number;
  readIops: number;
  writeIops: number;
  /** 0..1, or null while unknown. */
  done: number | null;
  etaSec: number | null;
}

/** A job's measured counters at one moment (ms; bytes and I/Os of each direction). */
export interface EtaCounters {
  t: number;
  rBytes: number;
  wBytes: number;
  rIos: number;
  wIos: number;
  tBytes?: number;
  tIos?: number;
}

/**
 * The rates of the ETA line between two moments, as fio's calc_rate() and calc_iops() make them: over
 * the whole milliseconds between them, whole KiB/s (returned in bytes, as the line shows them) and
 * whole IOPS — each truncated, never rounded.
 */
export function etaRates(
  was: EtaCounters,
  is: EtaCounters,
): { r: number; w: number; t: number; ri: number; wi: number; ti: number } {
  const ms = Math.floor(is.t - was.t);
  const per = (a: number, b: number) => (ms > 0 ? Math.floor(((a - b) * 1000) / ms) : 0);
  return {
    r: Math.floor(per(is.rBytes, was.rBytes) / 1024) * 1024,
    w: Math.floor(per(is.wBytes, was.wBytes) / 1024) * 1024,
    t: Math.floor(per(is.tBytes ?? 0, was.tBytes ?? 0) / 1024) * 1024,
    ri: per(is.rIos, was.rIos),
    wi: per(is.wIos, was.wIos),
    ti: per(is.tIos ?? 0, was.tIos ?? 0),
  };
}

/**
 * fio's run_str letter of the workload (R/r/W/w/M/m, D/d for trims); a mix all of one kind is that
 * kind's, trimwrite a writer's (eta.c: td_write() holds for it).
 */
export function runLetter(job: FioJob): string {
  const k = rwKinds(job.rw);
  const mix = job.rwmixread;
  const read = k.read && (!k.write || mix === 100);
  const write = k.write && (!k.read || mix === 0);
  const l = read ? 'r' : write ? 'w' : k.read ? 'm' : 'd';
  return k.random ? l : l.toUpperCase();
}

/** What thread_eta() looks at of a job, when the line is drawn. */
export interface EtaJob {
  job: FioJob;
  /** Its state character (fio's run_str: P before it runs, / ramping, F in its final fsync, …). */
  state: string;
  /** Whole milliseconds since its epoch (0 before it has one). */
  sinceEpoch: number;
  /** The bytes of one pass over its region. */
  bytesTarget: number;
  startDelayMs: number;
  /** Whether its ramp_time is over. */
  rampDone: boolean;
  /** td->io_bytes: what completed since the ramp's end, the verify phase's reads included */
  doneBytes: number;
}

/**
 * eta.c's thread_eta(): the job's remaining whole seconds as fio guesses them. Running or verifying,
 * from the share of its bytes done since its epoch (the ramp's end) and the whole seconds since then
 * — for time_based, the share of its runtime if smaller — capped at what its runtime leaves (with
 * `doneSecs`, the seconds of the jobs that have ended, fio's done_secs). Before (opening, in its
 * ramp), its runtime and ramp left. Ending (its final fsync), nothing.
 */
export function threadEta(s: EtaJob, doneSecs: number): number {
  const j = s.job;
  const kinds = rwKinds(j.rw);
  const elapsed = Math.floor((s.sinceEpoch + 999) / 1000);
  // o.timeout is microseconds, divided down to whole seconds
  const timeout = j.runtime !== null ? Math.floor(j.runtime / 1000) : 0;
  if (s.state === 'F') return 0;
  // a writer that verifies afterwards has its size twice to do, a mixed one its write share (50 %
  // without one) more; td->total_io_size is io_size, else the size, times the loops
  let total = (j.ioSize ?? s.bytesTarget) * j.loops;
  if (verifiesWrites(j)) {
    if (kinds.read) total += Math.floor((total * (100 - j.rwmixread || 50)) / 100);
    else total *= 2;
  }
  if (s.state === 'P' || s.state === '/') {
    // not running yet: the runtime (and the ramp left) if there is one, the size at the `rate` if
    // there is one, the smaller of the two if both
    let tEta = 0;
    if (j.runtime !== null) {
      tEta = Math.floor((j.runtime + s.startDelayMs + (s.rampDone ? 0 : j.rampTime)) / 1000);
      if (s.state === '/') {
        const rampLeft = Math.floor((s.sinceEpoch + 999) / 1000);
        if (rampLeft <= tEta) tEta -= rampLeft;
      }
    }
    const rateBytes =
      (kinds.read ? j.rate[0] : 0) + (kinds.write ? j.rate[1] : 0) + (kinds.trim ? j.rate[2] : 0);
    const rEta = rateBytes ? Math.floor(total / rateBytes) + Math.floor(s.startDelayMs / 1000) : 0;
    return rEta && tEta ? Math.min(rEta, tEta) : rEta || tEta;
  }
  const done = s.doneBytes;
  let perc = total ? Math.min(1, done / total) : 0;
  if (j.timeBased) perc = timeout ? Math.min(perc, elapsed / timeout) : 0;
  let eta = perc === 0 ? timeout : Math.floor(elapsed * (1 / perc)) - elapsed;
  // unsigned in fio: a cap below zero wraps and never applies
  const cap = timeout + doneSecs - elapsed;
  if (timeout && cap >= 0 && eta > cap) eta = cap;
  return eta;
}
