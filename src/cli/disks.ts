/**
 * `pvblk disks ls|rm`: the disks a data directory keeps between runs — one per guest name, with the
 * scsi_debug parameters it was created with — and removing them (all, or a guest's), which is what
 * `rmmod scsi_debug` + `modprobe` with new parameters is on Linux: the next run formats new disks.
 * Refused while a stack uses the directory.
 */
import { readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  DEFAULT_SCSI_DEBUG_PARAMS,
  formatScsiDebugParams,
  parseScsiDebugParams,
} from '@pvblk/backend/scsi-params';
import { PvblkError, type KernelLog } from '@pvblk/shared';
import { LOCK_FILE, pvblkProcessAlive, fsErrorText, type StackInfo } from './lock.ts';

/** The registry HostDisks keeps in the data directory: guest name → its disk slot and parameters. */
const REGISTRY = 'disks.json';
const DISK_FILES = 'disks';

const quietLog: KernelLog = { printk: () => {} };

async function refuseIfInUse(dataDir: string): Promise<void> {
  let held: StackInfo | null = null;
  try {
    held = JSON.parse(await readFile(join(dataDir, LOCK_FILE), 'utf8')) as StackInfo;
  } catch {
    return;
  }
  if (held && held.pid !== process.pid && pvblkProcessAlive(held.pid)) {
    throw new PvblkError(
      'EBUSY',
      `a pvblk stack (pid ${held.pid}) is using the data dir ${dataDir}; stop it first (pvblk down --run-dir ${held.runDir})`,
    );
  }
}

/** The data dir's disks by guest name (none when it has no registry yet). */
export async function registry(dataDir: string): Promise<Record<string, { params: string }>> {
  try {
    return JSON.parse(await readFile(join(dataDir, REGISTRY), 'utf8')) as Record<string, { params: string }>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new PvblkError('EUSAGE', `cannot read ${join(dataDir, REGISTRY)}: ${fsErrorText(e)}`);
  }
}

/** One line per disk: guest, parameters. */
export async function listDisks(dir: string): Promise<string[]> {
  const dataDir = resolve(dir);
  const reg = await registry(dataDir);
  // what was asked for: the parameters that differ from scsi_debug's defaults (not the host's naming)
  return Object.entries(reg).map(([guest, e]) => {
    const p = parseScsiDebugParams(e.params);
    const shown = formatScsiDebugParams(
      { ...p, host_name: DEFAULT_SCSI_DEBUG_PARAMS.host_name, hctl: DEFAULT_SCSI_DEBUG_PARAMS.hctl },
      { onlyChanged: true },
    );
    return `${guest}\t${shown || '(defaults)'}`;
  });
}

/** Removes the disks of `guests` (every disk when empty); returns what was removed. */
export async function removeDisks(dir: string, guests: string[]): Promise<string[]> {
  const dataDir = resolve(dir);
  await refuseIfInUse(dataDir);
  const reg = await registry(dataDir);
  const unknown = guests.filter((g) => !(g in reg));
  if (unknown.length)
    throw new PvblkError(
      'ENOENT',
      `no disk for ${unknown.join(', ')} in ${dataDir} (disks: ${Object.keys(reg).join(', ') || 'none'})`,
    );
  try {
    if (guests.length === 0) {
      await rm(join(dataDir, DISK_FILES), { recursive: true, force: true });
      await rm(join(dataDir, REGISTRY), { force: true });
      return Object.keys(reg);
    }
    // the files of a guest's disk are named by the host (sdg, sdh, …): HostDisks knows them. Dom0's
    // disk code is loaded here only: `pvblk up` and `run` read the registry on every start, and no more
    const { HostDisks } = await import('@pvblk/backend');
    const disks = new HostDisks({ dataDir, klog: quietLog });
    for (const g of guests) await disks.remove(g);
    return guests;
  } catch (e) {
    if (e instanceof PvblkError) throw e;
    throw new PvblkError('EUSAGE', `cannot remove disks in ${dataDir}: ${fsErrorText(e)}`);
  }
}
