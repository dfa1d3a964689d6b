/**
 * `pvblk domu`: a guest domain as one process of the stack: it asks the host to create it, attaches
 * its disks with blkfront and serves guest commands on its control socket.
 */
import { join } from 'node:path';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { runDomu } from '@pvblk/frontend';
import { watchForShutdown } from '@pvblk/runtime';
import { hypervisorOption, intOption, toolstackOption } from './options.ts';
import { defaultRunDir } from './shell.ts';
import { fromParent } from './from-parent.ts';

export function registerDomu(program: Command, fail: (e: unknown) => never): void {
  toolstackOption(
    hypervisorOption(
      program
        .command('domu')
        .description(
          'run a guest domain: asks the host to create it, attaches its disks with blkfront, serves guest commands',
        )
        .option(
          '--name <name>',
          'guest name; @hostname uses the host name (one per container with --scale)',
          process.env.PVBLK_GUEST_NAME ?? 'guest',
        ),
    ),
    "the host's management API",
  )
    .option('--control <path>', 'control socket path', process.env.PVBLK_CONTROL_SOCKET)
    .option('--root <dir>', "directory holding the guest's own files (/tmp, …)", process.env.PVBLK_GUEST_ROOT)
    .option(
      '--run <command line>',
      'a command line to run once the disks are up (its output goes to the log)',
      process.env.PVBLK_WORKLOAD,
    )
    .option('--ring-page-order <n>', 'max_ring_page_order', intOption('--ring-page-order', 0, 4), 0)
    .option('--queues <n>', 'max_queues', intOption('--queues', 1, 16), 1)
    .option('--indirect-segments <n>', 'max_indirect_segments', intOption('--indirect-segments', 0, 4096), 32)
    .option('--no-persistent', 'do not use persistent grants')
    .option(
      '--ring-start-index <n>',
      'start ring indices here (to cross 2^32 early)',
      intOption('--ring-start-index', 0, 0xffffffff),
      0,
    )
    .action(
      (o: {
        name: string;
        hypervisor: string;
        toolstack: string;
        control?: string;
        root?: string;
        run?: string;
        ringPageOrder: number;
        queues: number;
        indirectSegments: number;
        persistent: boolean;
        ringStartIndex: number;
      }) => {
        watchForShutdown();
        // the hypervisor's and Dom0's addresses may come from `pvblk up` once they listen (from-parent.ts)
        return Promise.all([fromParent('--hypervisor', o.hypervisor), fromParent('--toolstack', o.toolstack)])
          .then(([hypervisorUrl, toolstackUrl]) =>
            runDomu({
              name: o.name === '@hostname' ? hostname() : o.name,
              hypervisorUrl,
              toolstackUrl,
              controlPath:
                o.control ?? join(defaultRunDir(), `${o.name === '@hostname' ? 'guest' : o.name}.sock`),
              root: o.root ?? null,
              workload: o.run ?? null,
              blkfront: {
                maxRingPageOrder: o.ringPageOrder,
                maxQueues: o.queues,
                maxIndirectSegments: o.indirectSegments,
                persistentGrants: o.persistent,
                ringStartIndex: o.ringStartIndex,
              },
            }),
          )
          .catch(fail);
      },
    );
}
