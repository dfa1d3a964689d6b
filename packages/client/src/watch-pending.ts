/**
 * A watch's events kept to one pending at a time, as Linux's xenbus keeps them for a watch on nodes a
 * peer owns: since XSA-349 a `xenbus_watch` counts its queued events (`nr_pending`, decremented when
 * the xenwatch thread takes one, before its callback runs), and the backend bus's watch on a
 * frontend's `state` drops an event while one is pending (`frontend_will_handle`). A watch fires for
 * its node and every node under it, and a guest may create nodes under its own `state`: queuing a
 * handler per event let one guest's writes grow Dom0 without bound (pvblk's Dom0 reached its heap
 * limit at 4 GB). What the handler does reads the store when it runs, so the one event left waiting
 * covers every write before it.
 */

/** Runs each queued handler after those before it; the caller's own queue, or one of the watch's own. */
export type WatchQueue = (run: () => Promise<void>) => void;

export interface PendingWatch {
  /** The watch callback. */
  readonly fire: () => void;
  /** Events dropped because one was already pending. */
  readonly dropped: () => number;
}

/**
 * A watch callback that queues `handler` on `queue` unless a run of it is already queued and not yet
 * started. Without `queue`, the runs go one after another on a queue of their own; a run that throws
 * does not stop the ones after it (a handler says its own errors).
 */
export function oneEventPending(handler: () => Promise<void>, queue?: WatchQueue): PendingWatch {
  let pending = false;
  let dropped = 0;
  let chain: Promise<void> = Promise.resolve();
  const enqueue: WatchQueue =
    queue ??
    ((run) => {
      chain = chain.then(run).catch(() => {});
    });
  return {
    fire: () => {
      if (pending) {
        dropped++;
        return;
      }
      pending = true;
      enqueue(() => {
        // taken off the queue: a later event is queued again (xenwatch_thread's nr_pending--)
        pending = false;
        return handler();
      });
    },
    dropped: () => dropped,
  };
}
