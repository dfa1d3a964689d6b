/**
 * `pvblk host`: Dom0 (the toolstack, blkback and the host's disks) as one process of the stack.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { isPvblkError } from '@pvblk/shared';
import { DEFAULT_HOST_QUOTAS, parseByteSize, runHost } from '@pvblk/backend';
import { watchForShutdown } from '@pvblk/runtime';
import { blkbackOptions, choiceOption, hypervisorOption, intOption } from './options.ts';
import { fromParent } from './from-parent.ts';

const DEFAULT_DISK = process.env.PVBLK_DISK ?? '';

/** A byte size option ("1G", "512M", bytes). */
function sizeOption(name: string) {
  return (raw: string): number => {
    try {
      return parseByteSize(raw);
    } catch (e) {
      throw new InvalidArgumentError(`${name}: ${isPvblkError(e) ? e.detail : (e as Error).message}`);
    }
  };
}

export function registerHost(program: Command, fail: (e: unknown) => never): void {
  blkbackOptions(
    hypervisorOption(
      program
        .command('host')
        .description(
          'run Dom0: the toolstack, blkback and the host disks; needs the Dom0 secret and the operator token (PVBLK_TOOLSTACK_TOKEN)',
        ),
    )
      .option('--data-dir <dir>', 'where disks live', process.env.PVBLK_DATA_DIR ?? '.pvblk/data')
      .option('--memory', 'keep disks in memory')
      .option('--disk <params>', 'scsi_debug parameters of new disks, modprobe-style', DEFAULT_DISK)
      .option('--api-host <addr>', 'management API address', process.env.PVBLK_API_HOST ?? '127.0.0.1')
      .addOption(
        new Option('--api-port <n>', 'management API port')
          .env('PVBLK_API_PORT')
          .argParser(intOption('--api-port', 0, 65535))
          .default(7481),
      ),
  )
    .option(
      '--max-indirect-segments <n>',
      'feature-max-indirect-segments (0 disables indirect)',
      intOption('--max-indirect-segments', 0, 4096),
      256,
    )
    .option('--max-ring-page-order <n>', 'max-ring-page-order', intOption('--max-ring-page-order', 0, 4), 4)
    .option('--max-queues <n>', 'multi-queue-max-queues', intOption('--max-queues', 1, 64), 4)
    // quotas and the SCSI layout (docs/security-host.md); each also read from its PVBLK_ variable
    .addOption(
      new Option('--max-guests <n>', 'guest domains alive at once')
        .env('PVBLK_MAX_GUESTS')
        .argParser(intOption('--max-guests', 0, 1 << 20))
        .default(DEFAULT_HOST_QUOTAS.maxGuests),
    )
    .addOption(
      new Option('--max-disk-size <size>', 'largest disk a guest gets (bytes, or with K, M, G, T)')
        .env('PVBLK_MAX_DISK_SIZE')
        .argParser(sizeOption('--max-disk-size'))
        .default(DEFAULT_HOST_QUOTAS.maxDiskBytes, '1G'),
    )
    .addOption(
      new Option('--max-total-disk <size>', 'capacity of all disks the host keeps together')
        .env('PVBLK_MAX_TOTAL_DISK')
        .argParser(sizeOption('--max-total-disk'))
        .default(DEFAULT_HOST_QUOTAS.maxTotalDiskBytes, '4G'),
    )
    .addOption(
      new Option('--scsi-host <n>', 'SCSI host number of the first disk (9 as in 9:0:0:0)')
        .env('PVBLK_SCSI_HOST')
        .argParser(intOption('--scsi-host', 0, 1 << 20))
        .default(9),
    )
    .addOption(
      new Option('--first-disk <sdX>', "kernel name of the first guest's disk")
        .env('PVBLK_FIRST_DISK')
        .argParser((v) => {
          if (!/^sd[a-z]{1,3}$/.test(v))
            throw new InvalidArgumentError(`--first-disk must look like sdg (got "${v}")`);
          return v;
        })
        .default('sdg'),
    )
    .action(
      (o: {
        maxGuests: number;
        maxDiskSize: number;
        maxTotalDisk: number;
        scsiHost: number;
        firstDisk: string;
        hypervisor: string;
        dataDir: string;
        memory?: boolean;
        disk: string;
        apiHost: string;
        apiPort: number;
        dataPath: string;
        persistent: boolean;
        piInline: boolean;
        maxIndirectSegments: number;
        maxRingPageOrder: number;
        maxQueues: number;
        partitionStart: number;
      }) => {
        watchForShutdown();
        // the hypervisor's address may come from `pvblk up` once the hypervisor listens (from-parent.ts)
        return fromParent('--hypervisor', o.hypervisor)
          .then((hypervisorUrl) =>
            runHost({
              partitionStart: o.partitionStart,
              hypervisorUrl,
              dataDir: o.memory ? null : o.dataDir,
              disk: o.disk,
              apiHost: o.apiHost,
              apiPort: o.apiPort,
              quotas: {
                maxGuests: o.maxGuests,
                maxDiskBytes: o.maxDiskSize,
                maxTotalDiskBytes: o.maxTotalDisk,
              },
              layout: { firstScsiHost: o.scsiHost, firstDisk: o.firstDisk },
              blkback: {
                dataPath: choiceOption('--data-path', ['map', 'copy'] as const)(o.dataPath),
                persistentGrants: o.persistent,
                integrityInline: o.piInline,
                maxIndirectSegments: o.maxIndirectSegments,
                maxRingPageOrder: o.maxRingPageOrder,
                maxQueues: o.maxQueues,
              },
            }),
          )
          .catch(fail);
      },
    );
}
