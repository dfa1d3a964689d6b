/** The table of pvblk's commands, for main.ts: which module defines which command. */
import type { Command } from 'commander';

/** The xenstore-* tools, one command each (xenstore.ts registers them). */
const XENSTORE_COMMANDS = ['read', 'write', 'rm', 'exists', 'list', 'ls', 'chmod', 'watch'].map(
  (m) => `xenstore-${m}`,
);

/** How a command module adds its command(s) to the program. */
export type Register = (program: Command, fail: (e: unknown) => never) => void;

/**
 * Every command, by the module that defines it, in the order `pvblk --help` lists them. A command's
 * module is loaded only when that command runs: `pvblk hypervisor` loads the broker's package and not
 * Dom0's or the guest's, `pvblk guest` neither (the whole tree takes about a second of CPU to load
 * through tsx, and `pvblk up` starts three processes, a test or a script runs `pvblk guest` many
 * times). Help, `help <command>`, a bad command name and a bare `pvblk` load them all, so commander
 * lists, finds and suggests every command as before (main.ts). test/unit/cli-commands.test.ts checks
 * that each entry names exactly the commands its module registers.
 */
export const COMMANDS: ReadonlyArray<readonly [names: readonly string[], load: () => Promise<Register>]> = [
  [['up'], async () => (await import('./up.ts')).registerUp],
  [['run'], async () => (await import('./run.ts')).registerRun],
  [['guest'], async () => (await import('./guest.ts')).registerGuest],
  [['status', 'down', 'disks'], async () => (await import('./manage.ts')).registerManage],
  [['hypervisor'], async () => (await import('./hypervisor.ts')).registerHypervisor],
  [['host'], async () => (await import('./host.ts')).registerHost],
  [['domu'], async () => (await import('./domu.ts')).registerDomu],
  [['xl', 'dashboard'], async () => (await import('./xl.ts')).registerXl],
  [XENSTORE_COMMANDS, async () => (await import('./xenstore.ts')).registerXenstore],
  [['driver-domain', 'token'], async () => (await import('./driver-domain.ts')).registerDriverDomainCommands],
  [['bench'], async () => (await import('./bench.ts')).registerBench],
  [['chaos'], async () => (await import('./chaos.ts')).registerChaos],
];
