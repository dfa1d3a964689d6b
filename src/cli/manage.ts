/**
 * Local stacks from the outside: `pvblk status` and `pvblk down` find the stack through the lock and
 * control socket in its run directory; `pvblk disks ls|rm` look after the disks of a data directory.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { PvblkError } from '@pvblk/shared';
import { defaultRunDir } from './shell.ts';
import { defaultDataDir } from './local.ts';
import { LOCK_FILE, readStack, type StackInfo } from './lock.ts';
import { askStack } from './stack-control.ts';
import { listDisks, removeDisks } from './disks.ts';

async function runningStack(runDir: string): Promise<StackInfo> {
  const found = await readStack(runDir);
  if (!found) throw new PvblkError('ENOENT', `no pvblk stack is running with run dir ${runDir}`);
  if (!found.alive) {
    await rm(join(runDir, LOCK_FILE), { force: true });
    throw new PvblkError(
      'ENOENT',
      `no pvblk stack is running with run dir ${runDir} (removed the stale lock of pid ${found.info.pid}, which is gone)`,
    );
  }
  return found.info;
}

function describe(
  info: StackInfo,
  running?: Array<{ name: string; pid: number; running: boolean }>,
): string[] {
  const age = Math.round((Date.now() - info.started) / 1000);
  const pidOf = (name: string) => {
    const r = running?.find((p) => p.name === name);
    const pid = r?.pid ?? info.processes?.find((p) => p.name === name)?.pid;
    return pid ? `pid ${pid}${r && !r.running ? ', exited' : ''}` : 'starting';
  };
  const lines = [
    `stack       pvblk ${info.command}, pid ${info.pid}, up ${age} s`,
    `run dir     ${info.runDir}`,
    `data dir    ${info.dataDir ?? '(disks in memory)'}`,
  ];
  if (!info.hypervisor) return [...lines, '(starting)'];
  lines.push(`hypervisor  ${info.hypervisor} (${pidOf('hypervisor')})`);
  lines.push(`host        management API ${info.api} (${pidOf('host')})`);
  for (const g of info.guests ?? []) {
    const disks = g.disks?.length ? ` ${g.disks.map((d) => `/dev/${d}`).join(' ')},` : '';
    lines.push(
      `${g.name.padEnd(11)} domain ${g.domid},${disks} control socket ${g.socket} (${pidOf(g.name)})`,
    );
  }
  return lines;
}

export function registerManage(program: Command, fail: (e: unknown) => never): void {
  const runDirOption = (c: Command) =>
    c.option('--run-dir <dir>', 'the run dir of the stack ($PVBLK_RUN_DIR)', defaultRunDir());

  runDirOption(
    program.command('status').description('show the local stack started by `pvblk up` or `run`'),
  ).action(async (o: { runDir: string }) => {
    try {
      const info = await runningStack(o.runDir);
      const answer = await askStack(info.control, 'status').catch(() => null);
      const live = answer?.status as (StackInfo & { running?: [] }) | undefined;
      process.stdout.write(describe(live ?? info, live?.running).join('\n') + '\n');
    } catch (e) {
      fail(e);
    }
  });

  runDirOption(
    program
      .command('down')
      .description('stop the local stack started by `pvblk up` or `run`, and wait for it'),
  ).action(async (o: { runDir: string }) => {
    try {
      const info = await runningStack(o.runDir);
      await askStack(info.control, 'down');
      process.stdout.write(`pvblk: stopped the stack (pid ${info.pid}) of run dir ${info.runDir}\n`);
    } catch (e) {
      fail(e);
    }
  });

  const disks = program
    .command('disks')
    .description('list or remove the disks a data dir keeps between runs');
  disks
    .command('ls')
    .description('list the disks: guest name and scsi_debug parameters')
    .option('--data-dir <dir>', 'the data dir ($PVBLK_DATA_DIR)', defaultDataDir())
    .action(async (o: { dataDir: string }) => {
      try {
        const lines = await listDisks(o.dataDir);
        process.stdout.write(lines.length ? lines.join('\n') + '\n' : '');
      } catch (e) {
        fail(e);
      }
    });
  disks
    .command('rm')
    .description('remove the disks of the named guests, or every disk: the next run makes new ones')
    .option('--data-dir <dir>', 'the data dir ($PVBLK_DATA_DIR)', defaultDataDir())
    .argument('[guest...]', 'guest names (default: all)')
    .action(async (guests: string[], o: { dataDir: string }) => {
      try {
        const removed = await removeDisks(o.dataDir, guests);
        process.stdout.write(
          removed.length
            ? `pvblk: removed the disks of ${removed.join(', ')}\n`
            : 'pvblk: no disks to remove\n',
        );
      } catch (e) {
        fail(e);
      }
    });
}
