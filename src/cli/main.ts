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
import { Command, InvalidArgumentError, Option } from 'commander';
import { isPvblkError } from '@pvblk/shared';
import { runHypervisor } from '@pvblk/hypervisor';
import { DEFAULT_HOST_QUOTAS, parseByteSize, runHost } from '@pvblk/backend';
import { runDomu } from '@pvblk/frontend';
import { logFormatFromEnv, logLevelFromEnv, watchForShutdown } from '@pvblk/runtime';
import { registerDriverDomainCommands } from './driver-domain.ts';
import { registerXl } from './xl.ts';
import { registerXenstore } from './xenstore.ts';
import { join } from 'node:path';
import { hostname } from 'node:os';
import pkg from '../../package.json' with { type: 'json' };
import { blkbackOptions, choiceOption, hypervisorOption, intOption, toolstackOption } from './options.ts';
import { defaultRunDir } from './stack.ts';
import { fsErrorText } from './lock.ts';
import { registerUp } from './up.ts';
import { registerRun } from './run.ts';
import { registerGuest } from './guest.ts';
import { registerManage } from './manage.ts';
import { writeOutNow } from './write-out.ts';

const DEFAULT_DISK = process.env.PVBLK_DISK ?? '';

/** An error as the user reads it: what was wrong, in their terms; EUSAGE exits 2, anything else 1. */
function fail(e: unknown): never {
  let msg: string;
  if (isPvblkError(e)) msg = e.code === 'EUSAGE' ? e.detail : e.message;
  else {
    const n = e as NodeJS.ErrnoException & { address?: string; port?: number };
    const where = n.path ?? (n.address !== undefined ? `${n.address}:${n.port}` : undefined);
    const text: Record<string, string> = {
      EADDRINUSE: 'address already in use',
      EADDRNOTAVAIL: 'address not available on this machine',
      ECONNREFUSED: 'connection refused',
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

// ------------------------------------------------------------------------------------------------
// Options of the stack commands (up, run)

registerUp(program, fail);
registerRun(program, fail);
registerGuest(program, fail);
registerManage(program, fail);

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
      return runHost({
        partitionStart: o.partitionStart,
        hypervisorUrl: o.hypervisor,
        dataDir: o.memory ? null : o.dataDir,
        disk: o.disk,
        apiHost: o.apiHost,
        apiPort: o.apiPort,
        quotas: { maxGuests: o.maxGuests, maxDiskBytes: o.maxDiskSize, maxTotalDiskBytes: o.maxTotalDisk },
        layout: { firstScsiHost: o.scsiHost, firstDisk: o.firstDisk },
        blkback: {
          dataPath: choiceOption('--data-path', ['map', 'copy'] as const)(o.dataPath),
          persistentGrants: o.persistent,
          integrityInline: o.piInline,
          maxIndirectSegments: o.maxIndirectSegments,
          maxRingPageOrder: o.maxRingPageOrder,
          maxQueues: o.maxQueues,
        },
      }).catch(fail);
    },
  );

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
      return runDomu({
        name: o.name === '@hostname' ? hostname() : o.name,
        hypervisorUrl: o.hypervisor,
        toolstackUrl: o.toolstack,
        controlPath: o.control ?? join(defaultRunDir(), `${o.name === '@hostname' ? 'guest' : o.name}.sock`),
        root: o.root ?? null,
        workload: o.run ?? null,
        blkfront: {
          maxRingPageOrder: o.ringPageOrder,
          maxQueues: o.queues,
          maxIndirectSegments: o.indirectSegments,
          persistentGrants: o.persistent,
          ringStartIndex: o.ringStartIndex,
        },
      }).catch(fail);
    },
  );

registerXl(program, fail);
registerXenstore(program, fail);

registerDriverDomainCommands(program, fail);

await import('./bench.ts').then((m) => m.registerBench(program));

(await import('./chaos.ts')).registerChaos(program);

// `pvblk help --help`: the help command has no help of its own, so it is the program's (commander
// would look for a command named `--help` and fail)
const argv = process.argv.slice(2);
if (argv[0] === 'help' && (argv[1] === '--help' || argv[1] === '-h')) argv.splice(0, 2, '--help');
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
