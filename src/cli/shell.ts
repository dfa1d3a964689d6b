/**
 * pvblk as the shell sees it: the name to type to run it again, where a local stack's sockets live,
 * and a process's end as an exit status. Kept apart from the stack's code so that the commands that
 * need only these (`pvblk guest`, the tools) load nothing else.
 */
import { realpathSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { delimiter, join, relative } from 'node:path';

/** Where `pvblk up` keeps its lock and control sockets, unless told: $PVBLK_RUN_DIR, else /tmp/pvblk-<uid>. */
export function defaultRunDir(): string {
  return process.env.PVBLK_RUN_DIR ?? join(tmpdir(), `pvblk-${process.getuid?.() ?? 'user'}`);
}

/** A process's end as a shell reports it: its status, or 128 + the number of the signal that killed it. */
export function shellStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (signal) return 128 + (osConstants.signals[signal] ?? 0);
  return code ?? 0;
}

/**
 * How to run pvblk again, as the user can type it here: `npx pvblk` when started that way from the
 * clone, `pvblk` when that name on PATH is this CLI (npm link), else `node <path of the entry point>`.
 */
export function cliCommand(): string {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return null;
    }
  };
  const bin = real(process.argv[1] ?? '');
  if (!bin) return 'pvblk';
  if (process.env.npm_command === 'exec' && real(join(process.cwd(), 'bin', 'pvblk.mjs')) === bin)
    return 'npx pvblk';
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && real(join(dir, 'pvblk')) === bin) return 'pvblk';
  }
  const rel = relative(process.cwd(), bin);
  return `node ${rel.startsWith('..') ? bin : rel}`;
}
