/**
 * The `pvblk` command line.
 *
 *   pvblk up                      hypervisor + host + guest(s), logs prefixed by name, Ctrl-C stops
 *   pvblk run [opts] -- <cmd…>    start the stack, run one command in the guest(s), print the consoles
 *   pvblk guest <cmd…>            run a command in an already running guest
 *   pvblk status | down           the local stack of a run dir
 *   pvblk disks ls | rm           the disks a data dir keeps
 *   pvblk hypervisor|host|domu    one process of the system (what `up` and docker compose start)
 */
import { Command } from 'commander';
import { isPvblkError } from '@pvblk/shared';
import { logFormatFromEnv, logLevelFromEnv } from '@pvblk/runtime';
import pkg from '../../package.json' with { type: 'json' };
import { fsErrorText } from './lock.ts';
import { writeOutNow } from './write-out.ts';
import { COMMANDS } from './commands.ts';

/** An error as the user reads it: what was wrong, in their terms; EUSAGE exits 2, anything else 1. */
function fail(e: unknown): never {
  let msg: string;
  if (isPvblkError(e)) msg = e.code === 'EUSAGE' ? e.detail : e.message;
  else {
    const n = e as NodeJS.ErrnoException & { address?: string; port?: number; hostname?: string };
    // a listen on a port the system picks has none to name (it said `8.8.8.8:undefined`), and a name
    // that does not resolve is named (it said only `getaddrinfo: ENOTFOUND`)
    const where =
      n.path ??
      n.hostname ??
      (n.address !== undefined ? `${n.address}${n.port ? `:${n.port}` : ''}` : undefined);
    const text: Record<string, string> = {
      EADDRINUSE: 'address already in use',
      EADDRNOTAVAIL: 'address not available on this machine',
      ECONNREFUSED: 'connection refused',
      ENOTFOUND: 'no such host',
      EAI_AGAIN: 'temporary failure in name resolution',
    };
    msg =
      n.code && n.syscall
        ? `${n.syscall} ${where ?? ''}: ${text[n.code] ?? fsErrorText(n)}`.replace(' :', ':')
        : e instanceof Error
          ? e.message
          : String(e);
  }
  process.stderr.write(`pvblk: ${msg}\n`);
  process.exit(isPvblkError(e) && e.code === 'EUSAGE' ? 2 : 1);
}

const program = new Command('pvblk')
  .description('The Xen PV block protocol (blkfront/blkback) with T10 DIF/DIX, as a multi-process simulation')
  .version(`pvblk ${pkg.version}`, '-V, --version', 'print the version')
  .enablePositionalOptions()
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({
    writeOut: (s) => writeOutNow(s),
    writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `pvblk: ${s}` : s),
  })
  // a bad option or value is a usage error, 2 as fail() has it for the checks made after parsing (a
  // bad --disk), not commander's 1; help and version still exit 0
  .exitOverride((e) => process.exit(e.exitCode === 0 ? 0 : 2))
  .hook('preAction', () => {
    // the environment every process reads, checked before anything starts
    try {
      logLevelFromEnv();
      logFormatFromEnv();
    } catch (e) {
      fail(e);
    }
  });

// `pvblk help --help`: the help command has no help of its own, so it is the program's (commander
// would look for a command named `--help` and fail)
const argv = process.argv.slice(2);
if (argv[0] === 'help' && (argv[1] === '--help' || argv[1] === '-h')) argv.splice(0, 2, '--help');
const named = COMMANDS.find(([names]) => names.includes(argv[0] ?? ''));
// loaded together (the loader reads and compiles them in parallel), registered in the table's order
for (const register of await Promise.all((named ? [named] : COMMANDS).map(([, load]) => load())))
  register(program, fail);

let settled = false;
program
  .parseAsync(argv, { from: 'user' })
  .then(() => (settled = true))
  .catch(fail);
// The loop ran dry with the command still waiting: on something that can never happen now (a request
// whose socket was closed with no answer left Node's fetch waiting for ever once). Without this the
// process would end with status 0 and no word, as if the command had done its work.
process.on('beforeExit', () => {
  if (settled) return;
  process.stderr.write('pvblk: internal error: the command stopped waiting on something that never came\n');
  process.exit(70);
});
