/**
 * How much a job does (backend.c's do_io() and keep_running(), io_u.c's io_bytes_exceeded() and
 * exceeds_number_ios()): the bytes of one pass over its region, those its workload issued over all
 * passes, and what `io_size`, `number_ios` and `loops` make of them.
 */
import type { FioJob, RwKinds } from './fio-job.ts';
import { DDIR_READ, DDIR_TRIM, DDIR_WRITE, type Ddir } from './fio-ddir.ts';

export class IoBudget {
  /** Bytes of the workload issued over all passes per direction (td->io_issue_bytes). */
  private readonly issued = [0, 0, 0];
  /** The pass's bytes issued and done (do_io()'s bytes_issued, a failed I/O's too). */
  private passDone = 0;
  /** trimwrite: the pass's writes issued, in bytes (its trims, made inline, are never do_io()'s). */
  private passWrites = 0;
  /** trimwrite trims each block and then writes it: do_io()'s number_ios is twice the job's. */
  private readonly twice: number;

  constructor(
    private readonly job: FioJob,
    /** The job's largest block size (td_max_bs()): keep_running()'s least that is worth a pass. */
    private readonly maxBs: number,
    private readonly kinds: RwKinds,
    /** The bytes of one pass over the region (the eta's total too). */
    readonly passBytes: number,
  ) {
    this.twice = kinds.trimwrite ? 2 : 1;
  }

  /** An I/O of the workload issued in direction `d`, of `len` bytes (a read of the verify list is not one). */
  issue(d: Ddir, len: number): void {
    this.issued[d] += len;
    if (d === DDIR_WRITE) this.passWrites += len;
  }

  /** An I/O of the pass is done, or failed and the job goes on: its bytes count in the pass's. */
  done(len: number): void {
    this.passDone += len;
  }

  /** Whether the pass has done nothing (a pass that ends so finds no room for any I/O). */
  get passEmpty(): boolean {
    return this.passDone === 0;
  }

  /** A pass begins. */
  newPass(): void {
    this.passDone = 0;
    this.passWrites = 0;
  }

  /** Whether the pass has more to issue, with `inflightBytes` in flight (the ramp's I/O included). */
  passLeft(inflightBytes: number): boolean {
    // trimwrite's trims complete in the engine's queue and never count in do_io()'s bytes_issued:
    // its pass ends once its writes are the size (io_issue_bytes_exceeded(), of the writes), or when
    // no trim or write fits
    if (this.kinds.trimwrite) return this.passWrites < this.passBytes;
    return this.passDone + inflightBytes < this.passBytes;
  }

  /**
   * io_issue_bytes_exceeded(): the job's issued bytes over all its passes against io_size (else the
   * pass's) times loops, or number_ios against `ios`, the I/Os completed and in flight. The bytes are
   * those of the job's directions as io_bytes_exceeded() picks them: reads and writes of a mixed job,
   * else the writes (trimwrite's too), the reads, the trims.
   */
  exceeded(ios: number): boolean {
    const k = this.kinds;
    const b = this.issued;
    const bytes =
      k.read && k.write ? b[0] + b[1] : k.write ? b[DDIR_WRITE] : k.read ? b[DDIR_READ] : b[DDIR_TRIM];
    return bytes >= (this.job.ioSize ?? this.passBytes) * this.job.loops || this.exceedsNumberIos(ios);
  }

  /**
   * exceeds_number_ios(): `ios`, the I/Os completed (td->io_blocks) and in flight, against number_ios
   * × loops — twice number_ios for trimwrite, which do_io() doubles.
   */
  exceedsNumberIos(ios: number): boolean {
    const n = this.job.numberIos * this.twice;
    return n > 0 && ios >= n * this.job.loops;
  }

  /**
   * keep_running() once `loops` is used up: with io_size, another pass while what the job has done
   * (`doneBytes`: td->io_bytes, verify reads included) leaves at least the largest block of it — unless
   * number_ios is met.
   */
  ioSizeLeft(doneBytes: number, ios: number): boolean {
    const j = this.job;
    if (j.ioSize === null || this.exceedsNumberIos(ios)) return false;
    return j.ioSize - doneBytes >= this.maxBs;
  }
}
