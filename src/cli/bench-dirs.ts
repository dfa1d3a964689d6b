/**
 * The directory a bench's stack lives in (its run dir, work dirs and traces), under the system's
 * temporary directory. A bench removes its own when it ends, however it ends — unless it is killed
 * outright (SIGKILL, the OOM killer): its processes then see its IPC channel close and end on their
 * own, but nobody is left to remove the directory. So each directory names its bench's pid, and a
 * bench that starts removes those of benches that no longer run.
 */
import { lstat, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processRuns } from './lock.ts';

const PREFIX = 'pvblk-bench-';
/** The file in a bench's directory that holds the bench's pid. */
const OWNER_FILE = 'bench.pid';

/** A new directory for a bench's stack (mode 0700, as mkdtemp makes it), naming this process. */
export async function makeBenchDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), PREFIX));
  await writeFile(join(dir, OWNER_FILE), `${process.pid}\n`);
  return dir;
}

/**
 * Removes the directories of benches that ended without removing them. Only real directories of
 * this user are looked at (not a symlink someone else planted under the name), and only those
 * whose pid file holds a pid that no longer runs: a directory without one yet is a bench still
 * starting, and a reused pid keeps a directory until a later sweep. Returns what it removed.
 */
export async function sweepStaleBenchDirs(): Promise<string[]> {
  const base = tmpdir();
  const uid = process.getuid?.();
  let names: string[];
  try {
    names = await readdir(base);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = join(base, name);
    try {
      const st = await lstat(dir);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
      const text = await readFile(join(dir, OWNER_FILE), 'utf8');
      if (!/^[1-9]\d{0,9}\n?$/.test(text)) continue;
      if (processRuns(Number(text.trim()))) continue;
      await rm(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      // gone meanwhile, or no pid file: not a directory this sweep may remove
    }
  }
  return removed;
}
