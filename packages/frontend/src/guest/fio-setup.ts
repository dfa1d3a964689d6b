/**
 * What fio says as it reads its jobs, before it runs them: init.c adds each job once its section has
 * ended, and fixup_options() says what it changed or doubts on stderr and stdout; the normal output
 * then shows the job's line. `fio` in a guest says it, and `pvblk bench` for its guests.
 */
import { num2str } from './fio-report.ts';
import { FIO_VERSION } from './fio-options.ts';
import { openDirect, rwKinds, verifiesWrites, type FioJob } from './fio-job.ts';
import { alignTurnsOffMap, blockSizes, bsHeader, fixedBlockSize } from './fio-block-size.ts';
import type { SaidLine } from './fio-parse.ts';

/** fio's job line at startup, for the normal output. */
export function jobBanner(job: FioJob): string {
  const sizes = bsHeader(job, (n) => num2str(n, 4, true, 'byte'));
  return `${job.name}: (g=${job.groupid}): rw=${job.rw}, bs=${sizes}, ioengine=${job.ioengine}, iodepth=${job.iodepth}`;
}

/**
 * What fio's fixup_options() (init.c) says of a job on stderr (log_err). A numjobs `clone` is a copy of
 * the job as its own fixup_options() left it.
 */
export function fixupErrors(j: FioJob, clone: boolean): string[] {
  const out: string[] = [];
  // blockalign sets norandommap (the job's, so a clone has it), before the look at verify
  const alignOff = rwKinds(j.rw).random && alignTurnsOffMap(j);
  if (alignOff && !j.norandommap && !clone) out.push('fio: Any use of blockalign= turns off randommap');
  if ((j.norandommap || alignOff) && j.verify !== 'none' && !fixedBlockSize(blockSizes(j)))
    out.push('fio: norandommap given for variable block sizes, verify limited');
  if (j.bsUnaligned && openDirect(j)) out.push('fio: bs_unaligned may not work with raw io');
  return out;
}

/**
 * What fio's fixup_options() says of a job on stdout (log_info). The second is fio's own words for a
 * time_based writer with verify: true of the synchronous engines, while an asynchronous one verifies
 * each pass it completes. A numjobs `clone` has numjobs=1 (add_job() clears it on its clones).
 */
export function fixupNotes(j: FioJob, clone: boolean): string[] {
  const k = rwKinds(j.rw);
  if (!verifiesWrites(j)) return [];
  const out: string[] = [];
  // with no filename each clone has its own file ($jobname.$jobnum.$filenum), so fio says nothing
  if (!clone && j.numjobs > 1 && j.filename !== null)
    out.push(
      'fio: multiple writers may overwrite blocks that belong to other jobs. This can cause verification failures.',
    );
  if (j.runtime !== null && j.timeBased && !k.read && !j.verifyBacklog)
    out.push('fio: verification read phase will never start because write phase uses all of runtime');
  return out;
}

/**
 * What fio says as it reads its jobs, in its order. init.c adds a job once its section has ended (the
 * next one starts, or the options end): what parsing the options said before that (parse.c, stderr),
 * then add_job(): fixup_options()'s errors and notes, the job's line (jobLines), then each
 * numjobs clone's fixup_options() and, after the last clone's, `...`. `upTo`: the jobs added before
 * the one that failed, whose own parse lines end what is said.
 */
export function setupLines(
  cl: {
    jobs: readonly FioJob[];
    warnings: readonly string[];
    warnedAt: readonly number[];
    jobLines: readonly boolean[];
  },
  upTo = cl.jobs.length,
): SaidLine[] {
  const out: SaidLine[] = [];
  const err = (line: string) => out.push({ stderr: true, line });
  const info = (line: string) => out.push({ stderr: false, line });
  // warnedAt never decreases: one walk over the warnings says each in its place
  let said = 0;
  const parsed = (closed: number) => {
    while (said < cl.warnings.length && cl.warnedAt[said] <= closed) err(cl.warnings[said++]);
  };
  for (let i = 0; i < upTo; i++) {
    parsed(i);
    const j = cl.jobs[i];
    for (let k = 0; k < j.numjobs; k++) {
      fixupErrors(j, k > 0).forEach(err);
      fixupNotes(j, k > 0).forEach(info);
      if (cl.jobLines[i] && k === 0) info(jobBanner(j));
    }
    if (cl.jobLines[i] && j.numjobs > 1) info('...');
  }
  // what a section after the last job said (a job file's trailing global section)
  parsed(upTo);
  return out;
}

/** What fio's normal output says as the run starts, after the jobs' lines (setupLines()). */
export function startBanner(jobs: FioJob[]): string[] {
  const n = jobs.reduce((a, j) => a + j.numjobs, 0);
  return [FIO_VERSION, `Starting ${n} process${n === 1 ? '' : 'es'}`];
}
