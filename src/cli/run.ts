/**
 * `pvblk run [options] -- <command…>`: start the stack, run one command in each guest, print the
 * guest consoles as they happen and then the host's console for the run (the two terminals of the
 * seed talk), stop, and exit with the command's status.
 *
 * The host's console is complete when it is printed: the host is asked to flush (a request on its IPC
 * channel) and answers with a record after every record it wrote before — no fixed wait.
 *
 * Ctrl-C interrupts the guest commands as a terminal would (dd prints its statistics, status 130);
 * a second Ctrl-C stops at once. If the output goes away (`| head -1`), the commands are interrupted
 * and the run ends with 141, as a process killed by SIGPIPE.
 */
import type { Command } from 'commander';
import { DEFAULT_CONSOLE_LOGLEVEL, formatKmsg, type KernelMessage } from '@pvblk/shared';
import { renderRecord } from '@pvblk/runtime';
import { runInGuest } from '@pvblk/frontend/control';
import { PrefixedConsole } from './console.ts';
import { LocalStack, stackOptions, type StackCli } from './local.ts';
import { guestNames, intOption } from './options.ts';
import { describeExit, Supervisor, type LogRecord } from './stack.ts';
import { shellStatus } from './shell.ts';

export function registerRun(program: Command, fail: (e: unknown) => never): void {
  stackOptions(
    program
      .command('run')
      .description(
        "start the stack, run one command in each guest, print the guest and host consoles, stop; exits with the command's status",
      )
      .option('-v, --verbose', "also show every process's log records as they happen")
      .option(
        '--loglevel <n>',
        'console loglevel: kernel messages below it are shown (dmesg -n)',
        intOption('--loglevel', 1, 8),
        DEFAULT_CONSOLE_LOGLEVEL,
      )
      .argument('[command...]', 'the guest command (default: demo)'),
  ).action(async (command: string[], o: StackCli & { verbose?: boolean; loglevel: number }) => {
    const guests = guestNames(o.guests);
    const argv = command.length ? command : ['demo'];
    const cons = new PrefixedConsole([...guests, 'host', ...(o.verbose ? ['hypervisor'] : [])]);
    const hostConsole: string[] = [];
    let capturing = false;
    const sup = new Supervisor({
      onRecord: (name, r: LogRecord) => {
        if (o.verbose) {
          const line = renderRecord(r);
          if (line !== null) cons.line(name, line);
          return;
        }
        if (capturing && name === 'host' && r.kmsg === true && typeof r.klevel === 'number') {
          if (r.klevel < o.loglevel) hostConsole.push(formatKmsg(r.ts as number, String(r.msg)));
        }
      },
      onText: (name, line) => cons.line(name, line),
    });
    let local: LocalStack;
    try {
      local = await LocalStack.open('run', o, sup);
    } catch (e) {
      fail(e);
    }

    let stopping = false;
    const finish = async (status: number): Promise<void> => {
      if (stopping) return;
      stopping = true;
      await local.stop();
      cons.finish();
      process.exit(status);
    };
    // The guest commands are interrupted first (Ctrl-C, `pvblk down`, the output gone) and the run ends
    // with their statuses (or `forced`); asked again, the stack stops at once; a third time, SIGKILL.
    const interrupt = new AbortController();
    let commandsRunning = false;
    let forced: number | null = null;
    let asked = 0;
    const stop = (status: number, signal?: NodeJS.Signals) => {
      asked++;
      if (stopping) {
        if (asked > 2) for (const c of sup.children) c.proc.kill('SIGKILL');
        return;
      }
      // the guest's command hears which signal it was (fio names it)
      if (commandsRunning && !interrupt.signal.aborted) return interrupt.abort(signal);
      void finish(forced ?? status);
    };
    // Ctrl-C ends with the command's status (130 for dd); SIGTERM/SIGHUP end the run itself: 128 + N
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
      process.on(s, () => {
        if (s !== 'SIGINT') forced ??= shellStatus(null, s);
        stop(shellStatus(null, s), s);
      });
    local.onDown = () => stop(0);
    cons.onGone = () => {
      forced = shellStatus(null, 'SIGPIPE');
      stop(forced);
    };

    try {
      await local.start();
    } catch (e) {
      if (stopping) return;
      cons.error(`the stack did not start: ${(e as Error).message}`);
      for (const c of sup.children)
        for (const r of c.records.slice(-20)) {
          const line = renderRecord(r);
          if (line !== null) cons.error(`${c.name}: ${line}`);
        }
      return void finish(1);
    }
    for (const c of sup.children) {
      // a process dying under the run ends it: I/O in flight to a dead host would never complete
      void c.exited.then((e) => {
        if (stopping) return;
        cons.error(`${c.name} ${describeExit(e)}; stopping the run`);
        void finish(e.status || 1);
      });
    }

    capturing = true;
    commandsRunning = true;
    const statuses = await Promise.all(
      guests.map((name) =>
        runInGuest(
          local.stack!.sockets.get(name)!,
          { argv },
          {
            stdout: (t) => cons.stream(name, `${name}:out`, t),
            stderr: (t) => cons.stream(name, `${name}:err`, t),
            kmsg: (m: KernelMessage) => {
              if (m.level < o.loglevel) cons.line(name, formatKmsg(m.ts, m.text));
            },
          },
          interrupt.signal,
        ).catch((e: Error) => {
          cons.line(name, `pvblk: ${e.message}`);
          return 1;
        }),
      ),
    );
    commandsRunning = false;
    cons.finish();
    // every host record of the run has been read once the host answers the flush
    const host = sup.children.find((c) => c.name === 'host');
    if (host && forced === null) await sup.flush(host);
    capturing = false;
    for (const l of hostConsole) cons.line('host', l);
    await finish(forced ?? Math.max(...statuses));
  });
}
