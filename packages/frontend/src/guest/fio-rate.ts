/**
 * fio's rate control (`rate`, `rate_iops`, `rate_process`): each direction's next I/O has a time,
 * in microseconds since the job's epoch, that the bytes it has issued allow (backend.c's
 * usec_for_io(): linear, or Poisson arrivals at the same mean); an I/O due later waits for it, or
 * goes the other way in a mixed job whose other direction is due (io_u.c's rate_ddir()). The clock
 * and the sleeping are the caller's: this only decides. And the rate a job must keep up
 * (`rate_min`, `rate_iops_min`, `rate_cycle`: backend.c's check_min_rate()).
 */
import type { FioJob } from './fio-job.ts';
import { DDIRS, type Ddir } from './fio-ddir.ts';

export type RateProcess = 'linear' | 'poisson';

/** What rate_ddir() says of the next I/O: issue it (in direction `ddir`) now, after `sleepUs`, or the runtime is over. */
export type RateDecision = { ddir: Ddir; sleepUs: number } | 'timeout';

export class RateControl {
  /** Bytes a second each way (rate_bps[]: `rate`, or `rate_iops` × bs); 0 where unlimited. */
  private readonly bps: readonly number[];
  private next = [0, 0, 0];
  private issuedBytes = [0, 0, 0];
  private lastUsec = [0, 0, 0];

  constructor(
    bps: readonly number[],
    /** Each direction's smallest block size (td->o.min_bs[ddir]). */
    private readonly minBs: readonly number[],
    private readonly process: RateProcess,
    /** The job's mix: both directions, each with a share (td_rw() && rwmix[odir]). */
    private readonly mixShares: { read: number; write: number } | null,
    /** Uniform draws in [0, 1) for the Poisson process (fio's poisson_state). */
    private readonly rand: () => number,
  ) {
    this.bps = bps;
  }

  /** reset_io_counters(): the ramp is over, and the epoch moves to its end. */
  reset(): void {
    this.next = [0, 0, 0];
    this.issuedBytes = [0, 0, 0];
    this.lastUsec = [0, 0, 0];
  }

  /**
   * rate_ddir() for an I/O chosen to go in direction `d` at `nowUs` since the epoch, with the runtime
   * ending at `limitUs` (Infinity without one). Only a job that both reads and writes has another
   * direction to turn to.
   */
  decide(d: Ddir, nowUs: number, limitUs: number): RateDecision {
    if (this.next[d] <= nowUs) return { ddir: d, sleepUs: 0 };
    const o: Ddir = d === 0 ? 1 : 0;
    let dir: Ddir = d;
    let usec: number;
    const otherShare = d !== 2 && this.mixShares && (o === 1 ? this.mixShares.write : this.mixShares.read);
    if (otherShare) {
      // the other direction is behind its rate: it goes instead
      if (this.next[o] <= nowUs) return { ddir: o, sleepUs: 0 };
      // both ahead: sleep to the nearer, in its direction
      if (this.next[d] <= this.next[o]) usec = this.next[d] - nowUs;
      else {
        usec = this.next[o] - nowUs;
        dir = o;
      }
    } else usec = this.next[d] - nowUs;
    if (nowUs + usec > limitUs) {
      if (nowUs > limitUs) return 'timeout';
      usec = limitUs - nowUs;
    }
    return { ddir: dir, sleepUs: usec };
  }

  /**
   * The job thought for `us` after an I/O went in direction `d`, with rate_ignore_thinktime: the bytes it
   * would have issued meanwhile count as issued (but a block, when the thought was longer than one
   * block's time, so that the next goes at once), so that the rate does not catch up after it
   * (handle_thinktime()).
   */
  thought(d: Ddir, us: number): void {
    const bps = this.bps[d];
    if (!us || !bps) return;
    const missed = Math.floor((bps * us) / 1_000_000);
    const bs = this.minBs[d];
    const usPerOp = Math.floor((bs * 1_000_000) / bps);
    this.issuedBytes[d] += missed - (usPerOp <= us ? bs : 0);
    this.lastUsec[d] += us;
  }

  /** An I/O of `len` bytes went in direction `d`: counted, and the direction's next time (usec_for_io()). */
  issued(d: Ddir, len: number): void {
    this.issuedBytes[d] += len;
    const bps = this.bps[d];
    if (this.process === 'poisson' && bps) {
      // a mean gap of 1/iops, exponentially distributed; the mean is whole microseconds, the
      // product truncated, as fio's integer arithmetic has them
      const iops = Math.floor(bps / this.minBs[d]);
      const mean = iops ? Math.floor(1_000_000 / iops) : 0;
      this.lastUsec[d] += Math.floor(mean * -Math.log(1 - this.rand()));
      this.next[d] = this.lastUsec[d];
    } else if (bps) {
      const bytes = this.issuedBytes[d];
      const secs = Math.floor(bytes / bps);
      const rem = bytes - secs * bps;
      this.next[d] = Math.floor((rem * 1_000_000) / bps) + secs * 1_000_000;
    }
  }
}

/** A job's rate_min and rate_iops_min, looked at every rate_cycle ms. */
export class MinRateCheck {
  /** What completed at the min rate's last look (last_rate_check_*), with when. */
  private lastRateCheck = { bytes: [0, 0, 0], blocks: [0, 0, 0], t: [0, 0, 0] };

  constructor(private readonly job: FioJob) {}

  /** reset_io_counters(): the statistics start again. */
  reset(): void {
    this.lastRateCheck = { bytes: [0, 0, 0], blocks: [0, 0, 0], t: [0, 0, 0] };
  }

  /**
   * check_min_rate(): after the first 2 s of the pass (or of the statistics), each direction that has
   * completed I/O is looked at once every rate_cycle ms; one that did less than its rate_min (bytes)
   * or rate_iops_min over it fails the job with EIO, and says so. `thisIo`: what each direction
   * completed since the statistics last started; the lines said of those that missed (none: all kept up).
   */
  missed(t: number, phaseStart: number, thisIo: { bytes: number[]; blocks: number[] }): string[] {
    const j = this.job;
    if (t - phaseStart < 2000) return [];
    const missed: string[] = [];
    for (const d of DDIRS) {
      if (!thisIo.bytes[d] || (!j.rateMin[d] && !j.rateIopsMin[d])) continue;
      const last = this.lastRateCheck;
      if (last.bytes[d] || last.blocks[d]) {
        const spent = Math.floor(t - last.t[d]);
        if (spent < j.rateCycle || spent === 0) continue;
        let line: string | null = null;
        if (j.rateMin[d]) {
          const got = Math.floor(((thisIo.bytes[d] - last.bytes[d]) * 1000) / spent);
          if (got < j.rateMin[d]) line = `${j.name}: rate_min=${j.rateMin[d]}B/s not met, got ${got}B/s`;
        } else {
          const got = Math.floor(((thisIo.blocks[d] - last.blocks[d]) * 1000) / spent);
          if (got < j.rateIopsMin[d])
            line = `${j.name}: rate_iops_min=${j.rateIopsMin[d]} not met, got ${got} IOPS`;
        }
        // check_min_rate() looks at each direction and says each that failed; the job fails once
        if (line) {
          missed.push(line);
          continue;
        }
      }
      last.bytes[d] = thisIo.bytes[d];
      last.blocks[d] = thisIo.blocks[d];
      last.t[d] = t;
    }
    return missed;
  }
}
