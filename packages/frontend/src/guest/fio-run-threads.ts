/**
 * When each job starts, as backend.c's run_threads() decides it: in the jobs' order, a job starts once
 * its `startdelay` has passed since the command began (a later job may start before it meanwhile); a
 * `stonewall` job starts only when no job is running, and no job after it starts before it does; a
 * `wait_for` job starts once every earlier job of the name it waits for has ended (fio's
 * waitee_running() looks at later ones too, so that two jobs of one name waiting on each other wait
 * for ever: here a job only ever waits on jobs before it, and the run always ends). A signal stops the jobs
 * that have not started, and so does an `exitall` that names them (fio's td->terminate): they never
 * do.
 */
import { MAX_TIMER_MS } from './fio-samples.ts';

/** What run_threads() looks at in a job (one of numjobs clones counts as a job). */
export interface StartingJob {
  name: string;
  /** Milliseconds after the command's start before which it does not start. */
  startDelayMs: number;
  /** A stonewall: fio clears the option on a job's clones, so only the first of them has it. */
  stonewall: boolean;
  /** The name of the jobs it waits for ('' for none). */
  waitFor: string;
}

/**
 * Starts `jobs` by `start(i)` (which resolves when job i has ended) as run_threads() would; `skip(i)`
 * is told of each job a signal, or `terminated(i)`, stopped before it started. Resolves when every
 * job has ended or been skipped. `elapsedMs()` is the time since the command began.
 */
export function runThreads(
  jobs: readonly StartingJob[],
  elapsedMs: () => number,
  signal: AbortSignal,
  start: (i: number) => Promise<void>,
  skip: (i: number) => void,
  terminated: (i: number) => boolean = () => false,
): Promise<void> {
  const state = jobs.map((): 'waiting' | 'running' | 'ended' => 'waiting');
  let running = 0;
  let timer: NodeJS.Timeout | null = null;
  // once failed (or done), nothing more starts: the caller has moved on
  let settled = false;
  return new Promise<void>((resolve, reject) => {
    const settle = () => {
      settled = true;
      if (timer) clearTimeout(timer);
      signal.removeEventListener('abort', pump);
    };
    const finish = () => {
      settle();
      resolve();
    };
    function pump(): void {
      if (settled) return;
      if (timer) clearTimeout(timer);
      timer = null;
      let nextDue = Infinity;
      for (const [i, j] of jobs.entries()) {
        if (state[i] !== 'waiting') continue;
        if (signal.aborted || terminated(i)) {
          state[i] = 'ended';
          skip(i);
          continue;
        }
        const wait = j.startDelayMs - elapsedMs();
        if (wait > 0) {
          nextDue = Math.min(nextDue, wait);
          continue;
        }
        if (j.stonewall && running > 0) break;
        if (j.waitFor && jobs.some((w, k) => k < i && w.name === j.waitFor && state[k] !== 'ended')) continue;
        state[i] = 'running';
        running++;
        start(i).then(
          () => {
            state[i] = 'ended';
            running--;
            pump();
          },
          // a job's failure is the run's: the promise rejects with it
          (e: unknown) => {
            settle();
            reject(e);
          },
        );
      }
      if (state.every((s) => s === 'ended')) return finish();
      // the next startdelay to pass (a job ending pumps again on its own)
      if (nextDue !== Infinity) timer = setTimeout(pump, Math.min(Math.ceil(nextDue), MAX_TIMER_MS));
    }
    signal.addEventListener('abort', pump);
    pump();
  });
}
