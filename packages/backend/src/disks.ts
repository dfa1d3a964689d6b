/**
 * The host's disks: one scsi_debug-like disk per guest, brought up like `modprobe scsi_debug` adds a
 * host, and named as Linux names them (sdg, sdh, … on hosts 9, 10, …). Blkback finds a vbd's disk by
 * the `params` the toolstack wrote (/dev/sdg). A registry file in the data directory keeps each guest on
 * the same disk across backend restarts, so its data survives.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { diskLetters, PvblkError, type KernelLog } from '@pvblk/shared';
import type { HostBlockDevice } from './block-device.ts';
import { PartitionDevice } from './partition.ts';
import { DmStack } from './dm/stack.ts';
import type { DeviceResolver } from './blkback/driver.ts';
import { openScsiDebugDisk, parseScsiDebugParams, formatScsiDebugParams, type SdDisk } from './scsi/index.ts';

/** sd's major number and the minors of its disks (16 per disk). */
export const SCSI_DISK0_MAJOR = 8;
/** The first disk pvblk creates is sdg on host 9, as in the seed transcript. */
const FIRST_DISK_INDEX = 6;
const FIRST_HOST = 9;

export interface HostDisk {
  guest: string;
  path: string;
  major: number;
  minor: number;
  hctl: string;
  params: string;
  disk: SdDisk;
  /** The vbd's view: the whole disk, or its first partition starting at `partitionStart`, under its device-mapper stack. */
  vbd: { path: string; device: DmStack; startSector: number };
}

function diskName(index: number): string {
  return `sd${diskLetters(index)}`;
}

export class HostDisks implements DeviceResolver {
  private readonly byPath = new Map<string, HostDisk>();
  private readonly byVbd = new Map<string, HostDisk>();
  private registry: Record<string, { slot: number; params: string }> = {};
  private loaded = false;

  constructor(
    /** null: disks live in memory and vanish with the process. */
    private readonly dataDir: string | null,
    private readonly klog: KernelLog,
    /** Serve guests a partition starting at this sector (ref tags are then remapped); 0: the whole disk. */
    private readonly partitionStart = 0,
  ) {}

  private async load(): Promise<void> {
    if (this.loaded) return;
    this.loaded = true;
    if (!this.dataDir) return;
    await mkdir(this.dataDir, { recursive: true });
    try {
      this.registry = JSON.parse(await readFile(join(this.dataDir, 'disks.json'), 'utf8')) as Record<
        string,
        { slot: number; params: string }
      >;
    } catch {
      this.registry = {};
    }
  }

  /** The disk of a guest: created on first use, reopened (same data) afterwards. */
  async forGuest(guest: string, params: string): Promise<HostDisk> {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(guest)) throw new PvblkError('EUSAGE', `bad guest name "${guest}"`);
    await this.load();
    const existing = [...this.byPath.values()].find((d) => d.guest === guest);
    if (existing) return existing;
    let entry = this.registry[guest];
    if (entry === undefined) {
      const used = new Set(Object.values(this.registry).map((e) => e.slot));
      let slot = 0;
      while (used.has(slot)) slot++;
      entry = this.registry[guest] = { slot, params };
    } else {
      entry.params = params;
    }
    if (this.dataDir)
      await writeFile(join(this.dataDir, 'disks.json'), JSON.stringify(this.registry, null, 2) + '\n');
    const slot = entry.slot;
    const name = diskName(FIRST_DISK_INDEX + slot);
    const hctl = `${FIRST_HOST + slot}:0:0:0`;
    const parsed = parseScsiDebugParams(params);
    const full = { ...parsed, host_name: name, hctl };
    const disk = await openScsiDebugDisk({
      dataDir: this.dataDir ? join(this.dataDir, 'disks') : undefined,
      params: full,
      log: this.klog,
    });
    const d: HostDisk = {
      guest,
      path: `/dev/${name}`,
      major: SCSI_DISK0_MAJOR,
      minor: 16 * (FIRST_DISK_INDEX + slot),
      hctl,
      params: formatScsiDebugParams(full),
      disk,
      vbd:
        this.partitionStart > 0
          ? {
              path: `/dev/${name}1`,
              device: this.dm(
                new PartitionDevice(disk, this.partitionStart, `${name}1`),
                `/dev/${name}1`,
                slot,
                1,
              ),
              startSector: this.partitionStart,
            }
          : { path: `/dev/${name}`, device: this.dm(disk, `/dev/${name}`, slot, 0), startSector: 0 },
    };
    if (this.partitionStart > 0 && this.partitionStart >= disk.sectors) {
      throw new PvblkError(
        'EUSAGE',
        `partition start ${this.partitionStart} is beyond ${name} (${disk.sectors} sectors)`,
      );
    }
    this.byPath.set(d.path, d);
    this.byVbd.set(d.vbd.path, d);
    return d;
  }

  /** The device-mapper stack a vbd's device sits under (tables name it by path or major:minor). */
  private dm(dev: HostBlockDevice, path: string, slot: number, part: number): DmStack {
    return new DmStack(
      dev,
      [path, `${SCSI_DISK0_MAJOR}:${16 * (FIRST_DISK_INDEX + slot) + part}`],
      this.klog,
    );
  }

  /**
   * Brings back every disk of the registry, with the parameters it last had: a restarted backend
   * must find the disks its vbds name before it re-attaches to the guests.
   */
  async restore(): Promise<HostDisk[]> {
    await this.load();
    const out: HostDisk[] = [];
    for (const [guest, e] of Object.entries(this.registry)) out.push(await this.forGuest(guest, e.params));
    return out;
  }

  open(params: string): { device: HostBlockDevice; pdevice: number; startSector: number } | null {
    const d = this.byVbd.get(params);
    if (!d) return null;
    const part = d.vbd.startSector > 0 ? 1 : 0;
    // MKDEV as the kernel encodes it internally (major << 20 | minor), what blkback prints as dev=%04x
    return {
      device: d.vbd.device,
      pdevice: (d.major << 20) | (d.minor + part),
      startSector: d.vbd.startSector,
    };
  }

  list(): HostDisk[] {
    return [...this.byPath.values()];
  }

  get(path: string): HostDisk | undefined {
    return this.byPath.get(path);
  }

  async closeAll(): Promise<void> {
    for (const d of this.byPath.values()) await d.disk.close().catch(() => {});
    this.byPath.clear();
    this.byVbd.clear();
  }
}
