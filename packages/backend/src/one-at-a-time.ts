/**
 * One thing at a time for each key: the host API's bound on what a principal other than the operator
 * may have under way (a request body on its way, an operation queued or running). A second one with
 * the same key is refused at once with EAGAIN and `busy`'s message, never queued: a queue per key is
 * what let one token's flood hold everyone else's turn.
 */
import { PvblkError } from '@pvblk/shared';

export class OneAtATime {
  private readonly busy = new Set<string>();

  run<T>(key: string, busy: string, fn: () => Promise<T>): Promise<T> {
    if (this.busy.has(key)) return Promise.reject(new PvblkError('EAGAIN', busy));
    this.busy.add(key);
    return fn().finally(() => this.busy.delete(key));
  }
}
