/**
 * fio's data directions (io_ddir.h's enum fio_ddir, its first three: DDIR_RWDIR_CNT): the index of
 * every per-direction array of a job — its statistics, rates, counters and log entries.
 */
import type { Placement } from './fio-offsets.ts';

export type Ddir = 0 | 1 | 2;

export const DDIR_READ = 0;
export const DDIR_WRITE = 1;
export const DDIR_TRIM = 2;

/** for_each_rw_ddir(): the directions in fio's order. */
export const DDIRS: readonly Ddir[] = [DDIR_READ, DDIR_WRITE, DDIR_TRIM];

/** io_ddir_name(): "read", "write", "trim" — fio's error lines and its max_latency line say these. */
export function ddirName(d: Ddir): 'read' | 'write' | 'trim' {
  return d === DDIR_READ ? 'read' : d === DDIR_WRITE ? 'write' : 'trim';
}

/**
 * The directions of a job's workload and where each I/O goes: io_u.c's get_rw_ddir() — a mixed job's
 * direction by `rwmixread`, else the job's, the writes' for trimwrite, where td_write() is looked at
 * before td_trim(), and the direction the rate decides on —, then set_rw_ddir(), which has trimwrite
 * trim while its last write started where its last trim did, and write otherwise, whatever
 * get_rw_ddir() and the rate said (so a write rate holds both, a trim rate neither, and a sync due is
 * never made, as in fio 3.33). trimwrite's writes go on from their own last place, at their own
 * sizes (of one size with its trims, they write each range just trimmed); randtrimwrite's write the
 * range the last trim went over (get_next_block(), get_next_buflen()).
 */
export class WorkloadDirections {
  /** Where the last write and the last trim started (f->last_start[]): -1 before the pass's first. */
  private lastStart = [-1, -1];
  /** randtrimwrite's last trim: where its next write goes, and how long it is. */
  private lastTrim: Placement = { offset: 0, len: 0 };
  /** A mixed job's direction (td->rwmix_ddir): the one its I/Os go in until rwmixIssues. */
  private rwmixDdir: Ddir = DDIR_READ;
  /** td->rwmix_issues: the issues of rwmixDdir at which a direction is drawn again. */
  private rwmixIssues = 0;
  constructor(
    private readonly kinds: { read: boolean; write: boolean; trimwrite: boolean; random: boolean },
    private readonly rwmixread: number,
    /** The job's offsets: the next I/O of a direction. */
    private readonly offsets: { place(d: Ddir): Placement | null },
    /**
     * The mixed workload's generator, fio's (td->rwmix_state: seeded again for a pass, so looked up
     * at each draw), and the job's I/Os issued per direction (td->io_issues).
     */
    private readonly mix: {
      rand: () => { between(start: number, end: number): number };
      issues: () => readonly number[];
    },
  ) {}

  /** A pass begins (fio_file_reset()): trimwrite's first I/O is a trim. */
  restart(): void {
    this.lastStart = [-1, -1];
  }

  /** reset_io_counters(), before each pass and each verify phase: a mixed job draws at its next I/O. */
  resetMix(): void {
    this.rwmixIssues = 0;
  }

  /**
   * get_rw_ddir()'s direction, the one the rate decides on. A mixed job keeps a direction for a run of
   * I/Os: once it has issued rwmixIssues in it, a direction is drawn (get_rand_ddir(): 1 to 100 against
   * rwmixread), and on a change the new one's run is set from the old one's issues by the other's
   * share (set_rwmix_bytes()).
   */
  chosen(): Ddir {
    const k = this.kinds;
    if (k.read && k.write) {
      const issues = this.mix.issues();
      if (issues[this.rwmixDdir] >= this.rwmixIssues) {
        const d = this.mix.rand().between(1, 100) <= this.rwmixread ? DDIR_READ : DDIR_WRITE;
        if (d !== this.rwmixDdir) {
          const other = this.rwmixDdir === DDIR_READ ? 100 - this.rwmixread : this.rwmixread;
          this.rwmixIssues = Math.floor((issues[this.rwmixDdir] * other) / 100);
        }
        this.rwmixDdir = d;
      }
      return this.rwmixDdir;
    }
    return k.read ? DDIR_READ : k.write ? DDIR_WRITE : DDIR_TRIM;
  }

  /** What rate_ddir() made of the chosen direction is the mixed job's (td->rwmix_ddir). */
  rated(d: Ddir): void {
    if (this.kinds.read && this.kinds.write) this.rwmixDdir = d;
  }

  /** set_rw_ddir(): the direction the I/O goes in, of the one chosen (and the rate's say on it). */
  turned(d: Ddir): Ddir {
    if (!this.kinds.trimwrite) return d;
    return this.lastStart[0] === this.lastStart[1] ? DDIR_TRIM : DDIR_WRITE;
  }

  /** The next I/O's direction, without a rate. */
  next(): Ddir {
    return this.turned(this.chosen());
  }

  /** Where the next I/O in direction `d` goes (null: none fits). */
  place(d: Ddir): Placement | null {
    if (!this.kinds.trimwrite) return this.offsets.place(d);
    const random = this.kinds.random;
    if (random && d === DDIR_WRITE) {
      this.lastStart[0] = this.lastTrim.offset;
      return { ...this.lastTrim };
    }
    const at = this.offsets.place(d);
    if (!at) return null;
    if (d === DDIR_WRITE) {
      this.lastStart[0] = at.offset;
      return at;
    }
    // get_next_offset(): a random trim where the last one was would leave the starts equal, and the
    // next I/O a trim: the write's start is moved off it, so that the write follows
    if (random && at.offset === this.lastStart[1]) this.lastStart[0]--;
    this.lastStart[1] = at.offset;
    if (random) this.lastTrim = at;
    return at;
  }
}
