/**
 * The fio logs of a bench's jobs (`write_lat_log`, `write_bw_log`, `write_iops_log`). Each guest's fio
 * writes them among its own files, as fio does on the machine that runs the job; after the measured
 * run the bench brings each one here as `<log file>.<guest>`, the name fio's client gives a server's
 * logs (`fio --client`: the log's name, a dot, the server's host name), and in a sweep with the
 * point's values after it (`.iodepth=4`), so that no point's logs overwrite another's. The guest's
 * copy is removed, so that a job with per_job_logs=0, which appends, starts the next point afresh.
 * As fio's client writes a server's log, the file is written over if it exists (through a symbolic
 * link too: fopen(3) follows it), and one that cannot be written is said and left out.
 */
import { copyFile, lstat, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { logFiles, type FioJob } from '@pvblk/frontend';
import { strerrorText } from './lock.ts';

/**
 * Copies the logs of `jobs` from each guest's files (`roots`: guest name → the host directory that is
 * its `/`) to this machine, relative to the working directory as the options gave them. Returns the
 * files written; one that is missing or cannot be written is said through `warn`, and the rest go on.
 */
export async function collectLogs(
  jobs: readonly FioJob[],
  roots: ReadonlyArray<{ guest: string; root: string }>,
  label: Record<string, string>,
  warn: (line: string) => void,
): Promise<string[]> {
  const point = Object.entries(label)
    .map(([k, v]) => `.${k}=${v}`.replaceAll('/', '_'))
    .join('');
  const written: string[] = [];
  for (const file of logFiles(jobs)) {
    for (const { guest, root } of roots) {
      // the guest resolves its paths against its `/`, and `..` never climbs above it
      const from = join(root, posix.normalize(`/${file}`));
      const to = `${file}.${guest}${point}`;
      const st = await lstat(from).catch(() => null);
      if (!st?.isFile()) {
        // the guest's fio said why on its stderr (fopen log: …)
        warn(`pvblk bench: ${guest} wrote no ${file}`);
        continue;
      }
      try {
        await copyFile(from, to);
        written.push(to);
      } catch (e) {
        // fio's client's words, with strerror's text (Node's message also names the guest's file)
        warn(`fio: fopen log ${to} : ${strerrorText(e)}`);
      } finally {
        await rm(from, { force: true });
      }
    }
  }
  return written;
}
