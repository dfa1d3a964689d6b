/**
 * The `pvblk` command line.
 *
 *   pvblk up                      hypervisor + host + guest(s), logs prefixed by name, Ctrl-C stops
 *   pvblk run [opts] -- <cmd…>    start the stack, run one command in the guest(s), print the consoles
 *   pvblk guest <cmd…>            run a command in an already running guest
 *   pvblk hypervisor|host|domu    one process of the system (what `up` and docker compose start)
 */
import { Command, Option } from 'commander';
import { formatKmsg, isPvblkError, DEFAULT_CONSOLE_LOGLEVEL, type KernelMessage } from '@pvblk/shared';
import { runHypervisor } from '@pvblk/hypervisor';
import { runHost } from '@pvblk/backend';
import { runDomu, runInGuest } from '@pvblk/frontend';
import { choiceOption, guestNames, intOption } from './options.ts';
import {
  defaultRunDir,
  prefixer,
  renderRecord,
  startStack,
  Supervisor,
  type LogRecord,
  type RunningStack,
} from './stack.ts';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';

const DEFAULT_DISK = process.env.PVBLK_DISK ?? '';

function fail(e: unknown): never {
  const msg = isPvblkError(e) ? e.message : e instanceof Error ? e.message : String(e);
  process.stderr.write(`pvblk: ${msg}\n`);
  process.exit(isPvblkError(e) && e.code === 'EUSAGE' ? 2 : 1);
}

const program = new Command('pvblk')
  .description('The Xen PV block protocol (blkfront/blkback) with T10 DIF/DIX, as a multi-process simulation')
  .enablePositionalOptions()
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `pvblk: ${s}` : s) });

// ------------------------------------------------------------------------------------------------
// Options of the stack commands (up, run)

function stackOptions(cmd: Command): Command {
  return cmd
    .option(
      '--disk <params>',
      'scsi_debug parameters of each guest\'s disk, modprobe-style, e.g. "dif=1 opts=34"',
      DEFAULT_DISK,
    )
    .option('--guests <n>', 'number of guests', intOption('--guests', 1, 64), 1)
    .option('--data-dir <dir>', 'where disks are kept between runs', '.pvblk/data')
    .option('--memory', 'keep disks in memory instead (nothing survives the run)')
    .option('--run-dir <dir>', 'where guests put their control sockets', defaultRunDir())
    .option('--host <addr>', 'address the hypervisor listens on', '127.0.0.1')
    .option('--port <n>', 'hypervisor port (0 picks a free one)', intOption('--port', 0, 65535), 0)
    .addOption(
      new Option('--data-path <how>', 'how blkback moves data').choices(['map', 'copy']).default('map'),
    )
    .option('--no-persistent', 'do not use persistent grants')
    .option(
      '--ring-page-order <n>',
      'blkfront ring size: 2^n pages (blkback allows up to 4)',
      intOption('--ring-page-order', 0, 4),
      0,
    )
    .option('--queues <n>', 'blkfront queues (rings) per device', intOption('--queues', 1, 16), 1)
    .option(
      '--indirect-segments <n>',
      'blkfront max_indirect_segments (0: no indirect requests)',
      intOption('--indirect-segments', 0, 4096),
      32,
    )
    .option(
      '--partition-start <sectors>',
      'serve each guest a partition of its disk starting here (PI ref tags are remapped)',
      intOption('--partition-start', 0, 1 << 30),
      0,
    )
    .option(
      '--ring-start-index <n>',
      'start the ring indices here, e.g. 0xffffff00 to cross 2^32 early',
      intOption('--ring-start-index', 0, 0xffffffff),
      0,
    );
}

interface StackCli {
  disk: string;
  guests: number;
  dataDir: string;
  memory?: boolean;
  runDir: string;
  host: string;
  port: number;
  dataPath: 'map' | 'copy';
  persistent: boolean;
  ringPageOrder: number;
  queues: number;
  indirectSegments: number;
  ringStartIndex: number;
  partitionStart: number;
}

function stackConfig(o: StackCli) {
  const persistent = o.persistent ? [] : ['--no-persistent'];
  return {
    guests: guestNames(o.guests),
    disk: o.disk,
    dataDir: o.memory ? null : o.dataDir,
    runDir: o.runDir,
    host: o.host,
    port: o.port,
    hostArgs: ['--data-path', o.dataPath, '--partition-start', String(o.partitionStart), ...persistent],
    guestArgs: [
      '--ring-page-order',
      String(o.ringPageOrder),
      '--queues',
      String(o.queues),
      '--indirect-segments',
      String(o.indirectSegments),
      '--ring-start-index',
      String(o.ringStartIndex),
      ...persistent,
    ],
  };
}

stackOptions(
  program
    .command('up')
    .description(
      'start the hypervisor, the host and the guest(s) locally and show their logs; Ctrl-C stops them',
    ),
).action(async (o: StackCli) => {
  const cfg = stackConfig(o);
  const names = ['hypervisor', 'host', ...cfg.guests];
  const pre = prefixer(names);
  const sup = new Supervisor({
    onRecord: (name, r) => {
      const line = renderRecord(r);
      if (line !== null) process.stdout.write(pre(name, line) + '\n');
    },
    onText: (name, line) => process.stdout.write(pre(name, line) + '\n'),
  });
  let stack: RunningStack | null = null;
  let stopping = false;
  const stop = async (code: number) => {
    stopping = true;
    await sup.stopAll();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  try {
    stack = await startStack(sup, cfg);
  } catch (e) {
    process.stderr.write(`pvblk: the stack did not start: ${(e as Error).message}\n`);
    await stop(1);
  }
  const first = [...stack!.sockets.keys()][0];
  process.stdout.write(
    `pvblk: up. In another terminal: pvblk guest${o.guests > 1 || o.runDir !== defaultRunDir() ? ` --name ${first}${o.runDir !== defaultRunDir() ? ` --run-dir ${o.runDir}` : ''}` : ''} dd if=/dev/zero of=/dev/xvda bs=4096 count=16 — Ctrl-C stops everything.\n`,
  );
  // a child dying on its own takes the stack down
  for (const c of sup.children) {
    void c.exited.then((code) => {
      if (stopping) return;
      process.stderr.write(`pvblk: ${c.name} exited (${code}); stopping\n`);
      void stop(1);
    });
  }
});

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
  const cfg = stackConfig(o);
  const argv = command.length ? command : ['demo'];
  const names = [...cfg.guests, 'host', ...(o.verbose ? ['hypervisor'] : [])];
  const pre = prefixer(names);
  const print = (name: string, text: string) => process.stdout.write(pre(name, text) + '\n');
  const hostConsole: string[] = [];
  let capturing = false;
  const sup = new Supervisor({
    onRecord: (name, r: LogRecord) => {
      const isKmsg = r.kmsg === true && typeof r.klevel === 'number';
      if (o.verbose) {
        const line = renderRecord(r);
        if (line !== null) print(name, line);
        return;
      }
      if (capturing && name === 'host' && isKmsg && (r.klevel as number) < o.loglevel) {
        hostConsole.push(formatKmsg(r.ts as number, String(r.msg)));
      }
    },
    onText: (name, line) => print(name, line),
  });
  process.on('SIGINT', () => void sup.stopAll().then(() => process.exit(130)));
  let stack: RunningStack;
  try {
    stack = await startStack(sup, cfg);
  } catch (e) {
    process.stderr.write(`pvblk: the stack did not start: ${(e as Error).message}\n`);
    for (const c of sup.children)
      for (const r of c.records.slice(-20)) process.stderr.write(pre(c.name, renderRecord(r) ?? '') + '\n');
    await sup.stopAll();
    process.exit(1);
  }
  capturing = true;
  const statuses = await Promise.all(
    cfg.guests.map((name) => {
      const lines = { out: '', err: '' };
      const emit = (key: 'out' | 'err', text: string) => {
        lines[key] += text;
        let nl: number;
        while ((nl = lines[key].indexOf('\n')) >= 0) {
          print(name, lines[key].slice(0, nl));
          lines[key] = lines[key].slice(nl + 1);
        }
      };
      return runInGuest(
        stack.sockets.get(name)!,
        { argv },
        {
          stdout: (t) => emit('out', t),
          stderr: (t) => emit('err', t),
          kmsg: (m: KernelMessage) => {
            if (m.level < o.loglevel) print(name, formatKmsg(m.ts, m.text));
          },
        },
      )
        .catch((e: Error) => {
          print(name, `pvblk: ${e.message}`);
          return 1;
        })
        .finally(() => {
          if (lines.out) print(name, lines.out);
          if (lines.err) print(name, lines.err);
        });
    }),
  );
  // let the host's last log records arrive before printing its console
  await new Promise((r) => setTimeout(r, 100));
  capturing = false;
  for (const l of hostConsole) print('host', l);
  await sup.stopAll();
  process.exit(Math.max(...statuses));
});

program
  .command('guest')
  .description('run a command in a running guest (started by `pvblk up` or docker compose)')
  .option('--name <name>', 'which guest (default: the only one running)')
  .option('--run-dir <dir>', "where the guests' control sockets are", defaultRunDir())
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
      let socks: string[] = [];
      try {
        socks = readdirSync(o.runDir).filter((f) => f.endsWith('.sock'));
      } catch {
        socks = [];
      }
      if (socks.length === 1) name = socks[0].slice(0, -5);
      else if (socks.length === 0)
        fail(`no running guest has a control socket in ${o.runDir} (start one with \`pvblk up\`)`);
      else
        fail(
          `several guests are running (${socks.map((s) => s.slice(0, -5)).join(', ')}): choose one with --name`,
        );
    }
    const ac = new AbortController();
    process.on('SIGINT', () => ac.abort());
    try {
      const code = await runInGuest(
        join(o.runDir, `${name}.sock`),
        command.length === 1 && /[;&|>]/.test(command[0]) ? { line: command[0] } : { argv: command },
        {
          stdout: (t) => process.stdout.write(t),
          stderr: (t) => process.stderr.write(t),
          kmsg: (m) => {
            if (m.level < o.loglevel) process.stdout.write(formatKmsg(m.ts, m.text) + '\n');
          },
        },
        ac.signal,
      );
      process.exit(code);
    } catch (e) {
      fail(e);
    }
  });

program
  .command('hypervisor')
  .description(
    'run the hypervisor (the broker that plays Xen); needs PVBLK_DOM0_SECRET or PVBLK_DOM0_SECRET_FILE',
  )
  .option('--host <addr>', 'listen address', process.env.PVBLK_HYPERVISOR_HOST ?? '127.0.0.1')
  .option(
    '--port <n>',
    'listen port (0 picks a free one)',
    intOption('--port', 0, 65535),
    Number(process.env.PVBLK_HYPERVISOR_PORT ?? 7480),
  )
  .option(
    '--max-domains <n>',
    'domains that may exist at once, Dom0 included',
    intOption('--max-domains', 2, 32752),
    Number(process.env.PVBLK_MAX_DOMAINS ?? 256),
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
    }) =>
      runHypervisor({
        host: o.host,
        port: o.port,
        limits: {
          maxDomains: o.maxDomains,
          grants: { maxGrantFrames: o.maxGrantFrames, maxSharedFrames: o.maxSharedPages },
          maxGuestEvtchnPort: o.maxEvtchnPort,
          maxConnectionsPerAddress: o.maxConnectionsPerAddress,
        },
      }).catch(fail),
  );

program
  .command('host')
  .description(
    'run Dom0: the toolstack, blkback and the host disks; needs the Dom0 secret and PVBLK_TOOLSTACK_TOKEN',
  )
  .option(
    '--hypervisor <url>',
    "the hypervisor's WebSocket URL",
    process.env.PVBLK_HYPERVISOR_URL ?? 'ws://127.0.0.1:7480/',
  )
  .option('--data-dir <dir>', 'where disks live', process.env.PVBLK_DATA_DIR ?? '.pvblk/data')
  .option('--memory', 'keep disks in memory')
  .option('--disk <params>', 'scsi_debug parameters of new disks, modprobe-style', DEFAULT_DISK)
  .option('--api-host <addr>', 'management API address', process.env.PVBLK_API_HOST ?? '127.0.0.1')
  .option(
    '--api-port <n>',
    'management API port',
    intOption('--api-port', 0, 65535),
    Number(process.env.PVBLK_API_PORT ?? 7481),
  )
  .addOption(
    new Option('--data-path <how>', 'how blkback moves data: map grants, or grant copy')
      .choices(['map', 'copy'])
      .default(process.env.PVBLK_DATA_PATH ?? 'map'),
  )
  .option('--no-persistent', 'do not offer persistent grants')
  .option(
    '--partition-start <sectors>',
    'serve guests a partition of their disk starting at this sector (PI ref tags are remapped)',
    intOption('--partition-start', 0, 1 << 30),
    Number(process.env.PVBLK_PARTITION_START ?? 0),
  )
  .option(
    '--max-indirect-segments <n>',
    'feature-max-indirect-segments (0 disables indirect)',
    intOption('--max-indirect-segments', 0, 4096),
    256,
  )
  .option('--max-ring-page-order <n>', 'max-ring-page-order', intOption('--max-ring-page-order', 0, 4), 4)
  .option('--max-queues <n>', 'multi-queue-max-queues', intOption('--max-queues', 1, 64), 4)
  .action(
    (o: {
      hypervisor: string;
      dataDir: string;
      memory?: boolean;
      disk: string;
      apiHost: string;
      apiPort: number;
      dataPath: string;
      persistent: boolean;
      maxIndirectSegments: number;
      maxRingPageOrder: number;
      maxQueues: number;
      partitionStart: number;
    }) =>
      runHost({
        partitionStart: o.partitionStart,
        hypervisorUrl: o.hypervisor,
        dataDir: o.memory ? null : o.dataDir,
        disk: o.disk,
        apiHost: o.apiHost,
        apiPort: o.apiPort,
        blkback: {
          dataPath: choiceOption('--data-path', ['map', 'copy'] as const)(o.dataPath),
          persistentGrants: o.persistent,
          maxIndirectSegments: o.maxIndirectSegments,
          maxRingPageOrder: o.maxRingPageOrder,
          maxQueues: o.maxQueues,
        },
      }).catch(fail),
  );

program
  .command('domu')
  .description(
    'run a guest domain: asks the host to create it, attaches its disks with blkfront, serves guest commands',
  )
  .option(
    '--name <name>',
    'guest name; @hostname uses the host name (one per container with --scale)',
    process.env.PVBLK_GUEST_NAME ?? 'guest',
  )
  .option(
    '--hypervisor <url>',
    "the hypervisor's WebSocket URL",
    process.env.PVBLK_HYPERVISOR_URL ?? 'ws://127.0.0.1:7480/',
  )
  .option(
    '--toolstack <url>',
    "the host's management API",
    process.env.PVBLK_TOOLSTACK_URL ?? 'http://127.0.0.1:7481',
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
    }) =>
      runDomu({
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
      }).catch(fail),
  );

(await import('./chaos.ts')).registerChaos(program);

program.parseAsync(process.argv).catch(fail);
