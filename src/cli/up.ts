/**
 * `pvblk up`: the hypervisor, the host and the guest(s) as local processes, their logs behind
 * `name |` prefixes, until Ctrl-C (or `pvblk down`, or one of them dying) stops them all in order.
 */
import type { Command } from 'commander';
import { renderRecord } from '@pvblk/runtime';
import { PrefixedConsole } from './console.ts';
import { LocalStack, stackOptions, type StackCli } from './local.ts';
import { guestNames } from './options.ts';
import { describeExit, Supervisor } from './stack.ts';
import { cliCommand, shellStatus } from './shell.ts';

/** A word as a POSIX shell reads it back. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_./=:,+%@-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export function registerUp(program: Command, fail: (e: unknown) => never): void {
  stackOptions(
    program
      .command('up')
      .description(
        'start the hypervisor, the host and the guest(s) locally and show their logs; Ctrl-C stops them',
      ),
  ).action(async (o: StackCli) => {
    const guests = guestNames(o.guests);
    const cons = new PrefixedConsole(['hypervisor', 'host', ...guests]);
    const sup = new Supervisor({
      onRecord: (name, r) => {
        const line = renderRecord(r);
        if (line !== null) cons.line(name, line);
      },
      onText: (name, line) => cons.line(name, line),
    });
    let local: LocalStack;
    try {
      local = await LocalStack.open('up', o, sup);
    } catch (e) {
      fail(e);
    }
    let stopping = false;
    const finish = async (status: number) => {
      if (stopping) {
        // asked again while stopping: do not wait for the processes' own shutdown any longer
        for (const c of sup.children) c.proc.kill('SIGKILL');
        return;
      }
      stopping = true;
      await local.stop();
      cons.finish();
      process.exit(status);
    };
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
      process.on(s, () => void finish(shellStatus(null, s)));
    local.onDown = () => void finish(0);
    cons.onGone = () => void finish(shellStatus(null, 'SIGPIPE'));

    try {
      await local.start();
    } catch (e) {
      if (stopping) return;
      cons.error(`the stack did not start: ${(e as Error).message}`);
      return finish(1);
    }
    for (const c of sup.children) {
      void c.exited.then((e) => {
        if (stopping) return;
        cons.error(`${c.name} ${describeExit(e)}; stopping the stack`);
        void finish(e.status || 1);
      });
    }
    const cli = cliCommand();
    const args = [
      ...(guests.length > 1 ? ['--name', guests[0]] : []),
      ...(local.config.runDir !== `/tmp/pvblk-${process.getuid?.() ?? 'user'}`
        ? ['--run-dir', local.config.runDir]
        : []),
    ].map(shellWord);
    const guestCmd = [cli, 'guest', ...args, 'dd if=/dev/zero of=/dev/xvda bs=4096 count=16'].join(' ');
    const downCmd = [cli, 'down', ...(args.includes('--run-dir') ? args.slice(-2) : [])].join(' ');
    cons.note(`up. In another terminal: ${guestCmd}`);
    cons.note(`Ctrl-C here or \`${downCmd}\` stops everything.`);
  });
}
