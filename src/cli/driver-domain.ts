/**
 * `pvblk driver-domain` (a storage driver domain: blkback and its own disks in a DomU) and
 * `pvblk token` (the tokens an operator hands to guests and driver domains started elsewhere, e.g.
 * as swarm secrets). Registered on the program by main.ts.
 */
import { Option, type Command } from 'commander';
import { runDriverDomain } from '@pvblk/backend';
import { deriveGroupToken, deriveGuestToken, resolveOperatorToken, watchForShutdown } from '@pvblk/runtime';
import { blkbackOptions, choiceOption, hypervisorOption, intOption, toolstackOption } from './options.ts';

export function registerDriverDomainCommands(program: Command, fail: (e: unknown) => never): void {
  const dd = program
    .command('driver-domain')
    .description(
      "run a storage driver domain: Dom0's toolstack creates it (PVBLK_DRIVER_DOMAIN_TOKEN), it serves the disks of the guests placed on it (PVBLK_PLACEMENT on the host)",
    )
    .addOption(
      new Option('--name <name>', 'its domain name (the backend= guests are placed on)')
        .env('PVBLK_DRIVER_DOMAIN_NAME')
        .default('dd1'),
    );
  blkbackOptions(
    toolstackOption(hypervisorOption(dd), "Dom0's management API")
      .option(
        '--data-dir <dir>',
        "where this driver domain's disks live",
        process.env.PVBLK_DATA_DIR ?? '.pvblk/dd',
      )
      .option('--memory', 'keep disks in memory'),
  )
    .addOption(
      new Option('--scsi-host <n>', 'SCSI host number of its first disk')
        .env('PVBLK_SCSI_HOST')
        .argParser(intOption('--scsi-host', 0, 1 << 20))
        .default(9),
    )
    .action(
      (o: {
        name: string;
        hypervisor: string;
        toolstack: string;
        dataDir: string;
        memory?: boolean;
        dataPath: string;
        persistent: boolean;
        piInline: boolean;
        partitionStart: number;
        scsiHost: number;
      }) => {
        watchForShutdown();
        return runDriverDomain({
          name: o.name,
          hypervisorUrl: o.hypervisor,
          toolstackUrl: o.toolstack,
          dataDir: o.memory ? null : o.dataDir,
          partitionStart: o.partitionStart,
          layout: { firstScsiHost: o.scsiHost },
          blkback: {
            dataPath: choiceOption('--data-path', ['map', 'copy'] as const)(o.dataPath),
            persistentGrants: o.persistent,
            integrityInline: o.piInline,
          },
        }).catch(fail);
      },
    );

  program
    .command('token')
    .description(
      "print a token derived from the operator token (PVBLK_TOOLSTACK_TOKEN[_FILE]): one guest's, or a group token for the replicas of a service (docs/swarm.md)",
    )
    .option('--guest <name>', "guest <name>'s own token")
    .option(
      '--guests <prefix>',
      'a group token: boots any guest whose name starts with <prefix> (guest1, guest2, …)',
    )
    .option(
      '--driver-domains <prefix>',
      'a group token: has Dom0 create any driver domain whose name starts with <prefix>',
    )
    .action((o: { guest?: string; guests?: string; driverDomains?: string }) => {
      try {
        const given = [o.guest, o.guests, o.driverDomains].filter((v) => v !== undefined);
        if (given.length !== 1) {
          process.stderr.write('pvblk: token needs exactly one of --guest, --guests, --driver-domains\n');
          process.exit(2);
        }
        const op = resolveOperatorToken();
        const token =
          o.guest !== undefined
            ? deriveGuestToken(op, o.guest)
            : o.guests !== undefined
              ? deriveGroupToken(op, 'guest', o.guests)
              : deriveGroupToken(op, 'driver-domain', o.driverDomains!);
        process.stdout.write(token + '\n');
      } catch (e) {
        fail(e);
      }
    });
}
