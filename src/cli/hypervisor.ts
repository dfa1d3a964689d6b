/**
 * `pvblk hypervisor`: the broker that plays Xen, as one process of the stack (what `pvblk up` and
 * docker compose start).
 */
import { Option, type Command } from 'commander';
import { runHypervisor } from '@pvblk/hypervisor';
import { watchForShutdown } from '@pvblk/runtime';
import { intOption } from './options.ts';

export function registerHypervisor(program: Command, fail: (e: unknown) => never): void {
  program
    .command('hypervisor')
    .description(
      'run the hypervisor (the broker that plays Xen); needs PVBLK_DOM0_SECRET or PVBLK_DOM0_SECRET_FILE',
    )
    .option('--host <addr>', 'listen address', process.env.PVBLK_HYPERVISOR_HOST ?? '127.0.0.1')
    // the environment's values go through the same parser as the option's: a bad one stops the start
    .addOption(
      new Option('--port <n>', 'listen port (0 picks a free one)')
        .env('PVBLK_HYPERVISOR_PORT')
        .argParser(intOption('--port', 0, 65535))
        .default(7480),
    )
    .addOption(
      new Option('--max-domains <n>', 'domains that may exist at once, Dom0 included')
        .env('PVBLK_MAX_DOMAINS')
        .argParser(intOption('--max-domains', 2, 32752))
        .default(256),
    )
    .option(
      '--max-grant-frames <n>',
      "grant-table frames per domain (Xen's max_grant_frames; 512 refs each)",
      intOption('--max-grant-frames', 1, 4096),
      64,
    )
    .option(
      '--max-shared-pages <n>',
      'pages of one guest the hypervisor keeps a copy of (its memory per guest is 4 KiB times this)',
      intOption('--max-shared-pages', 16, 1 << 22),
      16384,
    )
    .option(
      '--max-evtchn-port <n>',
      "highest event-channel port of a guest (xl's max_event_channels - 1)",
      intOption('--max-evtchn-port', 1, 4095),
      1023,
    )
    .option(
      '--max-connections-per-address <n>',
      'WebSocket connections one remote address may hold',
      intOption('--max-connections-per-address', 1, 65535),
      256,
    )
    .action(
      (o: {
        host: string;
        port: number;
        maxDomains: number;
        maxGrantFrames: number;
        maxSharedPages: number;
        maxEvtchnPort: number;
        maxConnectionsPerAddress: number;
      }) => {
        watchForShutdown();
        return runHypervisor({
          host: o.host,
          port: o.port,
          limits: {
            maxDomains: o.maxDomains,
            grants: { maxGrantFrames: o.maxGrantFrames, maxSharedFrames: o.maxSharedPages },
            maxGuestEvtchnPort: o.maxEvtchnPort,
            maxConnectionsPerAddress: o.maxConnectionsPerAddress,
          },
        }).catch(fail);
      },
    );
}
