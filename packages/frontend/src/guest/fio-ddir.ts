/**
 * fio's data directions (io_ddir.h's enum fio_ddir, its first three: DDIR_RWDIR_CNT): the index of
 * every per-direction array of a job — its statistics, rates, counters and log entries.
 */
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
