/**
 * A local stack as `pvblk up` and `pvblk run` live with it: options checked before anything starts,
 * the run and data directories locked, an optional reset of the disks, a control socket for
 * `pvblk status`/`down`, the processes started and, at the end, stopped in order with nothing left
 * behind — no process, no control socket, no temporary directory, no lock.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Server } from 'node:net';
import { Option, type Command } from 'commander';
import { partitionProblem } from '@pvblk/backend/partition';
import { capacityBlocks, parseScsiDebugParams } from '@pvblk/backend/scsi-params';
import { logLevelFromEnv } from '@pvblk/runtime';
import { PvblkError, XENBUS_MAX_RING_GRANT_ORDER } from '@pvblk/shared';
import { guestNames, intOption } from './options.ts';
import { StackLock, type StackInfo } from './lock.ts';
import { defaultRunDir } from './shell.ts';
import { registry, removeDisks } from './disks.ts';
import { serveStackControl } from './stack-control.ts';
import { startStack, type RunningStack, type StackOptions, type Supervisor } from './stack.ts';

export function defaultDataDir(): string {
  return process.env.PVBLK_DATA_DIR ?? '.pvblk/data';
}

/** The options of `up` and `run`. */
export function stackOptions(cmd: Command): Command {
  return cmd
    .option(
      '--disk <params>',
      'scsi_debug parameters of each guest\'s disk, modprobe-style, e.g. "dif=1 opts=34"',
      process.env.PVBLK_DISK ?? '',
    )
    .option('--guests <n>', 'number of guests', intOption('--guests', 1, 64), 1)
    .option('--data-dir <dir>', 'where disks are kept between runs ($PVBLK_DATA_DIR)', defaultDataDir())
    .option('--memory', 'keep disks in memory instead (nothing survives the run)')
    .option('--fresh', "remove the data dir's disks first: new disks with --disk's parameters")
    .option('--run-dir <dir>', 'where control sockets and the lock are ($PVBLK_RUN_DIR)', defaultRunDir())
    .option('--host <addr>', 'address the hypervisor listens on', '127.0.0.1')
    .option('--port <n>', 'hypervisor port (0 picks a free one)', intOption('--port', 0, 65535), 0)
    .addOption(
      new Option('--data-path <how>', 'how blkback moves data').choices(['map', 'copy']).default('map'),
    )
    .option('--no-persistent', 'do not use persistent grants')
    .option('--no-pi-inline', 'integrity requests always in indirect pages (no feature-integrity-inline)')
    .option(
      '--ring-page-order <n>',
      `blkfront ring size: 2^n pages (blkback allows up to ${XENBUS_MAX_RING_GRANT_ORDER})`,
      intOption('--ring-page-order', 0, XENBUS_MAX_RING_GRANT_ORDER),
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

export interface StackCli {
  disk: string;
  guests: number;
  dataDir: string;
  memory?: boolean;
  fresh?: boolean;
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
  piInline: boolean;
}

function stackConfig(o: StackCli): Omit<StackOptions, 'workDir'> {
  const persistent = o.persistent ? [] : ['--no-persistent'];
  return {
    guests: guestNames(o.guests),
    disk: o.disk,
    dataDir: o.memory ? null : resolve(o.dataDir),
    runDir: resolve(o.runDir),
    host: o.host,
    port: o.port,
    hostArgs: [
      '--data-path',
      o.dataPath,
      '--partition-start',
      String(o.partitionStart),
      ...persistent,
      ...(o.piInline ? [] : ['--no-pi-inline']),
    ],
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

export class LocalStack {
  stack: RunningStack | null = null;
  /** Called when `pvblk down` asks this stack to stop. */
  onDown: () => void = () => {};
  private stopped: Promise<void> | null = null;

  private constructor(
    readonly config: Omit<StackOptions, 'workDir'>,
    readonly supervisor: Supervisor,
    private readonly lock: StackLock,
    private readonly workDir: string,
    private readonly control: Server,
  ) {}

  /** Checks the options, takes the locks, resets disks with --fresh; starts nothing yet. */
  static async open(command: 'up' | 'run', o: StackCli, sup: Supervisor): Promise<LocalStack> {
    const config = stackConfig(o);
    const asked = parseScsiDebugParams(config.disk); // a bad --disk is refused before anything starts
    // a partition the guests' disks cannot hold (past the end, off a logical block) is refused now,
    // rather than by the host once everything runs: each guest's disk as the data dir keeps it, or
    // as --disk will create it
    if (o.partitionStart > 0) {
      const kept = config.dataDir && !o.fresh ? await registry(config.dataDir) : {};
      for (const guest of config.guests) {
        const entry = Object.hasOwn(kept, guest) ? kept[guest] : undefined;
        const params = entry ? parseScsiDebugParams(entry.params) : asked;
        const sectors = (capacityBlocks(params) * params.sector_size) / 512;
        const why = partitionProblem(o.partitionStart, sectors, params.sector_size);
        const disk = entry
          ? `the disk of ${guest} in the data dir`
          : config.disk
            ? `--disk "${config.disk}"`
            : 'the default --disk';
        if (why) throw new PvblkError('EUSAGE', `--partition-start ${o.partitionStart} is ${why} of ${disk}`);
      }
    }
    // the processes tell their readiness in info records: a quieter level would hide them
    const level = logLevelFromEnv();
    if (['fatal', 'error', 'warn', 'silent'].includes(level))
      throw new PvblkError(
        'EUSAGE',
        `PVBLK_LOG_LEVEL=${level} would hide the records \`pvblk ${command}\` starts its processes by; use info, debug or trace`,
      );
    const lock = await StackLock.acquire({ command, runDir: config.runDir, dataDir: config.dataDir });
    // the guests' own files, under the run dir: what a stack killed outright left there goes now
    const workDir = join(config.runDir, 'files');
    try {
      if (o.fresh && config.dataDir) await removeDisks(config.dataDir, []);
      await rm(workDir, { recursive: true, force: true });
      await mkdir(workDir);
      let self: LocalStack | null = null;
      const control = await serveStackControl(lock.stack.control, {
        status: () => self?.status() ?? lock.stack,
        down: () => self?.onDown(),
      });
      self = new LocalStack(config, sup, lock, workDir, control);
      return self;
    } catch (e) {
      await rm(workDir, { recursive: true, force: true });
      await lock.release();
      throw e;
    }
  }

  async start(): Promise<RunningStack> {
    this.stack = await startStack(this.supervisor, { ...this.config, workDir: this.workDir });
    const guests = await Promise.all(
      this.config.guests.map(async (name) => {
        const child = this.supervisor.children.find((c) => c.name === name)!;
        const ready = await child.ready;
        return {
          name,
          socket: this.stack!.sockets.get(name)!,
          domid: Number(ready.domid),
          disks: (ready.disks as string[] | undefined) ?? [],
        };
      }),
    );
    await this.lock.update({
      hypervisor: this.stack.hypervisorUrl,
      api: this.stack.apiUrl,
      processes: this.supervisor.children.map((c) => ({ name: c.name, pid: c.proc.pid ?? 0 })),
      guests,
    });
    return this.stack;
  }

  status(): StackInfo & { running: Array<{ name: string; pid: number; running: boolean }> } {
    return {
      ...this.lock.stack,
      running: this.supervisor.children.map((c) => ({
        name: c.name,
        pid: c.proc.pid ?? 0,
        running: c.proc.exitCode === null && c.proc.signalCode === null,
      })),
    };
  }

  /** Stops every process in order and removes what the stack made. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      await this.supervisor.stopAll();
      // a guest that died without its own cleanup leaves its socket behind
      for (const name of this.config.guests)
        await rm(join(this.config.runDir, `${name}.sock`), { force: true });
      await rm(this.workDir, { recursive: true, force: true });
      this.control.close();
      await rm(this.lock.stack.control, { force: true });
      await this.lock.release();
    })();
    return this.stopped;
  }
}
