/**
 * `pvblk guest <command…>`: run a command in a running guest through its control socket, with the
 * command's output, the guest's console lines and its exit status. Ctrl-C interrupts the command in
 * the guest (a second one gives up waiting); a closed output (`| head`) interrupts it too.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_CONSOLE_LOGLEVEL, formatKmsg, PvblkError } from '@pvblk/shared';
import { controlSocketAnswers, runInGuest } from '@pvblk/frontend/control';
import { checkGuestName } from '@pvblk/runtime/secrets';
import { InvalidArgumentError, type Command } from 'commander';
import { intOption } from './options.ts';
import { cliCommand, defaultRunDir, shellStatus } from './shell.ts';

/** The guests whose control sockets in `runDir` answer; sockets left by dead guests are skipped. */
export async function liveGuests(runDir: string): Promise<string[]> {
  let files: string[];
  try {
    files = (await readdir(runDir)).filter((f) => f.endsWith('.sock')).sort();
  } catch {
    return [];
  }
  const live = await Promise.all(files.map((f) => controlSocketAnswers(join(runDir, f))));
  return files.filter((_, i) => live[i]).map((f) => f.slice(0, -'.sock'.length));
}

export function registerGuest(program: Command, fail: (e: unknown) => never): void {
  program
    .command('guest')
    .description('run a command in a running guest (started by `pvblk up` or docker compose)')
    .option('--name <name>', 'which guest (default: the only one running)', (v: string) => {
      // the name makes a path in the run dir: `--name ../../etc` named /tmp/etc.sock
      try {
        return checkGuestName(v);
      } catch (e) {
        throw new InvalidArgumentError((e as Error).message.replace(/^EINVAL: /, ''));
      }
    })
    .option('--run-dir <dir>', "where the guests' control sockets are ($PVBLK_RUN_DIR)", defaultRunDir())
    .option(
      '--loglevel <n>',
      'console loglevel for kernel messages',
      intOption('--loglevel', 1, 8),
      DEFAULT_CONSOLE_LOGLEVEL,
    )
    .argument('<command...>', 'the command, e.g. dd if=/dev/zero of=/dev/xvda bs=4096 count=1')
    .passThroughOptions()
    .action(async (command: string[], o: { name?: string; runDir: string; loglevel: number }) => {
      let name = o.name;
      if (!name) {
        const live = await liveGuests(o.runDir);
        if (live.length === 0)
          fail(
            new PvblkError(
              'ENOENT',
              `no guest is running with a control socket in ${o.runDir} (start one with \`${cliCommand()} up\`)`,
            ),
          );
        if (live.length > 1)
          fail(
            new PvblkError(
              'EUSAGE',
              `several guests are running (${live.join(', ')}): choose one with --name`,
            ),
          );
        name = live[0];
      }
      const ac = new AbortController();
      let interrupts = 0;
      const interrupt = (s: NodeJS.Signals) => {
        if (++interrupts > 1) process.exit(shellStatus(null, s));
        ac.abort(s);
      };
      for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => interrupt(s));
      let gone = false;
      for (const out of [process.stdout, process.stderr])
        out.on('error', () => {
          gone = true;
          ac.abort();
        });
      const write = (out: NodeJS.WriteStream, t: string) => {
        if (!gone) out.write(t);
      };
      try {
        const code = await runInGuest(
          join(o.runDir, `${name}.sock`),
          command.length === 1 && /[;&|>$]/.test(command[0]) ? { line: command[0] } : { argv: command },
          {
            stdout: (t) => write(process.stdout, t),
            stderr: (t) => write(process.stderr, t),
            kmsg: (m) => {
              if (m.level < o.loglevel) write(process.stdout, formatKmsg(m.ts, m.text) + '\n');
            },
          },
          ac.signal,
        );
        process.exit(gone ? shellStatus(null, 'SIGPIPE') : code);
      } catch (e) {
        fail(e);
      }
    });
}
