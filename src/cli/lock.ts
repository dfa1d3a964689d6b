/**
 * One stack per run directory and per data directory. `pvblk up`/`run` take a lock file in each
 * (`pvblk.lock`, created atomically with link(2), holding the stack's pid); a second stack on the same
 * directories is refused with who holds them. A lock whose process is gone (a stack killed with
 * SIGKILL) is stale and taken over. The run directory's lock also describes the running stack
 * (addresses, processes, guests) for `pvblk status`.
 */
import { readFileSync } from 'node:fs';
import { link, lstat, readFile, rename, rm, writeFile, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PvblkError, strerror } from '@pvblk/shared';

export const LOCK_FILE = 'pvblk.lock';

export interface StackInfo {
  pid: number;
  /** `up` or `run`. */
  command: string;
  runDir: string;
  dataDir: string | null;
  /** The stack's control socket (`pvblk status`, `pvblk down`). */
  control: string;
  /** Date.now() at start. */
  started: number;
  hypervisor?: string;
  api?: string;
  processes?: Array<{ name: string; pid: number }>;
  guests?: Array<{ name: string; socket: string; domid?: number; disks?: string[] }>;
}

/** Text of the errno a file operation failed with, as a user reads it. */
export function fsErrorText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  return strerror(code)?.toLowerCase() ?? (code || String(e));
}

/** strerror(3)'s text of a file system error, as fio says it (`fopen log x : No such file or directory`). */
export function strerrorText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  return strerror(code) ?? (code || String(e));
}

/** True while a process with this pid exists (ours or not: EPERM means it runs as someone else). */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A process that still runs and is a pvblk process (not a pid reused by something else). */
export function pvblkProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('pvblk');
  } catch {
    return true; // no /proc: a live pid is taken as the stack
  }
}

async function readLock(path: string): Promise<StackInfo | null> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as StackInfo;
    return typeof v.pid === 'number' ? v : null;
  } catch {
    return null;
  }
}

/** The stack whose lock is in `runDir`, and whether it still runs; null without a lock. */
export async function readStack(runDir: string): Promise<{ info: StackInfo; alive: boolean } | null> {
  const info = await readLock(join(runDir, LOCK_FILE));
  return info ? { info, alive: pvblkProcessAlive(info.pid) } : null;
}

async function writeAtomically(path: string, content: string, exclusive: boolean): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, content);
  try {
    if (exclusive) await link(tmp, path);
    else await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * The run dir holds the stack's control sockets and its access file (the operator token's place):
 * under a shared /tmp, a directory another user made first — or one anyone may write to — would hand
 * them the stack. So, as tmux checks its socket directory, it must be a directory of ours, not a
 * symbolic link, that others cannot write to.
 */
async function checkPrivate(dir: string, what: string): Promise<void> {
  const st = await lstat(dir);
  const uid = process.getuid?.();
  const problem = st.isSymbolicLink()
    ? 'is a symbolic link'
    : !st.isDirectory()
      ? 'is not a directory'
      : uid !== undefined && st.uid !== uid
        ? `belongs to uid ${st.uid}, not to this user (uid ${uid})`
        : st.mode & 0o002
          ? 'may be written by any user (mode ' + (st.mode & 0o7777).toString(8) + ')'
          : null;
  if (problem)
    throw new PvblkError(
      'EUSAGE',
      `the ${what} ${dir} ${problem}: it would hold this stack's control sockets and operator token; choose another with --run-dir or PVBLK_RUN_DIR`,
    );
}

async function take(
  dir: string,
  what: string,
  hint: string,
  info: StackInfo,
  ownOnly = false,
): Promise<string> {
  try {
    await mkdir(dir, { recursive: true, mode: ownOnly ? 0o700 : 0o777 });
  } catch (e) {
    throw new PvblkError('EUSAGE', `cannot create the ${what} ${dir}: ${fsErrorText(e)}`);
  }
  if (ownOnly) await checkPrivate(dir, what);
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      await writeAtomically(path, JSON.stringify(info, null, 2) + '\n', true);
      return path;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new PvblkError('EUSAGE', `cannot lock the ${what} ${dir}: ${fsErrorText(e)}`);
    }
    const held = await readLock(path);
    if (held && held.pid !== process.pid && pvblkProcessAlive(held.pid)) {
      throw new PvblkError(
        'EBUSY',
        `a pvblk stack (pid ${held.pid}) is already using the ${what} ${dir}; ${hint} or stop it (pvblk down --run-dir ${held.runDir})`,
      );
    }
    if (attempt > 0) throw new PvblkError('EBUSY', `cannot take over the stale lock ${path}`);
    await rm(path, { force: true }); // its stack is gone: the lock is stale
  }
}

export class StackLock {
  private constructor(
    private info: StackInfo,
    private readonly paths: string[],
  ) {}

  /** Locks the run directory and, for disks on disk, the data directory. */
  static async acquire(o: { command: string; runDir: string; dataDir: string | null }): Promise<StackLock> {
    const runDir = resolve(o.runDir);
    const dataDir = o.dataDir === null ? null : resolve(o.dataDir);
    const info: StackInfo = {
      pid: process.pid,
      command: o.command,
      runDir,
      dataDir,
      control: join(runDir, 'stack.ctl'),
      started: Date.now(),
    };
    const paths = [await take(runDir, 'run dir', 'use --run-dir', info, true)];
    if (dataDir) {
      try {
        paths.push(await take(dataDir, 'data dir', 'use --data-dir (or --memory)', info));
      } catch (e) {
        await rm(paths[0], { force: true });
        throw e;
      }
    }
    return new StackLock(info, paths);
  }

  get stack(): StackInfo {
    return this.info;
  }

  /** Adds what `pvblk status` shows once the stack is up. */
  async update(more: Partial<StackInfo>): Promise<void> {
    this.info = { ...this.info, ...more };
    await writeAtomically(this.paths[0], JSON.stringify(this.info, null, 2) + '\n', false);
  }

  async release(): Promise<void> {
    for (const p of this.paths) {
      const held = await readLock(p);
      if (held?.pid === process.pid) await rm(p, { force: true });
    }
  }
}
