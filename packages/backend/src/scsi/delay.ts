/**
 * The disk's response delay with sub-millisecond precision: scsi_debug completes a command from an
 * hrtimer `ndelay` nanoseconds after it was queued, and a Node timer cannot do that — `setTimeout`
 * fires on a millisecond grid, and never earlier than 1 ms (`setTimeout(0)` is 1 ms too).
 *
 * Every waiting command joins one queue ordered by deadline (performance.now(), microseconds). The
 * queue sleeps with setTimeout while its nearest deadline is more than a millisecond and a half away,
 * then polls the clock once per event-loop turn (setImmediate) until the deadline passes: other work
 * of the process (other commands, the hypervisor connection) runs between polls, but a process with
 * a command waiting less than 1.5 ms spends its idle time polling. A deadline is never met early; it
 * is met late by at most one event-loop turn.
 */

interface Waiter {
  at: number;
  resolve: () => void;
}

/** How far ahead the queue switches from sleeping to polling. */
const POLL_WINDOW_MS = 1.5;

const waiters: Waiter[] = [];
let timer: NodeJS.Timeout | null = null;
let polling = false;

function run(): void {
  timer = null;
  polling = false;
  const now = performance.now();
  // due waiters, earliest first (the list is kept sorted by deadline)
  let n = 0;
  while (n < waiters.length && waiters[n].at <= now) n++;
  for (const w of waiters.splice(0, n)) w.resolve();
  arm();
}

function arm(): void {
  if (waiters.length === 0 || polling) return;
  const wait = waiters[0].at - performance.now();
  if (wait > POLL_WINDOW_MS) {
    if (timer) clearTimeout(timer);
    timer = setTimeout(run, Math.floor(wait - 1));
    return;
  }
  if (timer) {
    clearTimeout(timer);
    timer = null;
  }
  polling = true;
  setImmediate(run);
}

/** Resolves `ns` nanoseconds from now (at the earliest). */
export function delayNs(ns: number): Promise<void> {
  if (ns <= 0) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const at = performance.now() + ns / 1e6;
    let i = waiters.length;
    while (i > 0 && waiters[i - 1].at > at) i--;
    waiters.splice(i, 0, { at, resolve });
    if (i === 0 && !polling) arm();
  });
}
