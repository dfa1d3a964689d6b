/** Runs a guest command line as a test would read it back: its status and what it printed on each stream. */
import { runCommandLine } from '../src/guest/shell.ts';

type Vfs = Parameters<typeof runCommandLine>[2]['vfs'];
type Commands = Parameters<typeof runCommandLine>[3];

export async function runCaptured(
  line: string,
  vfs: Vfs,
  commands: Commands,
): Promise<{ status: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const status = await runCommandLine(
    line,
    { stdout: (t) => (out += t), stderr: (t) => (err += t), signal: new AbortController().signal },
    { vfs, now: () => 0n },
    commands,
  );
  return { status, out, err };
}
