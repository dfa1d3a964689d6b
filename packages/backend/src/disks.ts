/**
 * The host's disks: one scsi_debug-like disk per guest identity, brought up like `modprobe scsi_debug`
 * adds a host, and named as Linux names them (sdg, sdh, … on hosts 9, 10, … by default; `pvblk host
 * --first-disk/--scsi-host` move the start). Blkback finds a vbd's disk by the `params` the toolstack
 * wrote (/dev/sdg). A registry file in the data directory keeps each guest on the same disk, with the
 * parameters it was created with, across backend restarts, so its data survives.
 *
 * A disk belongs to its guest's name, and the name to whoever holds that guest's token: the API
 * decides who may ask for a name; this file keeps the disk's parameters honest. As with scsi_debug,
 * the parameters fixed at module load (dev_size_mb, sector_size, dif, dix, guard, ato, lbp*) are a
 * property of the disk: asking an existing disk for another value is refused, naming both values and
 * how to start over; the runtime-writable ones (opts, every_nth, delay, …) are applied to the live disk.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  diskIndex,
  diskLetters,
  isPvblkError,
  PvblkError,
  type ErrorCode,
  type KernelLog,
} from '@pvblk/shared';
import { checkGuestName, replaceFile } from '@pvblk/runtime';
import type { HostBlockDevice } from './block-device.ts';
import { PartitionDevice, partitionProblem } from './partition.ts';
import { DmStack } from './dm/stack.ts';
import type { DeviceResolver } from './blkback/driver.ts';
import {
  openScsiDebugDisk,
  parseScsiDebugParams,
  formatScsiDebugParams,
  RUNTIME_WRITABLE_PARAMS,
  SCSI_DEBUG_PARAM_NAMES,
  type ScsiDebugParamName,
  type ScsiDebugParams,
  type SdDisk,
} from './scsi/index.ts';
import { checkNewDisk, DEFAULT_HOST_QUOTAS, diskBytes, type HostQuotas } from './quota.ts';

/** Where the host's disks start: SCSI host number and the first disk's kernel name. */
export interface DiskLayout {
  firstScsiHost: number;
  firstDisk: string;
}

/** The seed machine's: scsi_debug came up as host 9 and its disk as sdg. */
export const DEFAULT_DISK_LAYOUT: Readonly<DiskLayout> = Object.freeze({
  firstScsiHost: 9,
  firstDisk: 'sdg',
});

/** sd's majors (major.h): SCSI_DISK0_MAJOR, SCSI_DISK1_MAJOR … 7, SCSI_DISK8_MAJOR … 15. */
export const SCSI_DISK0_MAJOR = 8;
const SCSI_DISK1_MAJOR = 65;
const SCSI_DISK8_MAJOR = 128;
/** Disks sd numbers (sd_probe's ida): sdzzz is the last name with four letters or fewer that we allow. */
const MAX_DISK_INDEX = 18277;

/** sd_major() and sd_probe()'s first_minor: 16 minors per disk, 16 disks per major. */
export function sdDevt(index: number): { major: number; minor: number } {
  const majorIdx = (index & 0xf0) >> 4;
  const major =
    majorIdx === 0
      ? SCSI_DISK0_MAJOR
      : majorIdx < 8
        ? SCSI_DISK1_MAJOR + majorIdx - 1
        : SCSI_DISK8_MAJOR + majorIdx - 8;
  return { major, minor: ((index & 0xf) << 4) | (index & 0xfff00) };
}

/** "sdg" → 6, the inverse of sd_format_disk_name(); null for names that are not sdX. */
export function sdIndex(name: string): number | null {
  const m = /^sd([a-z]{1,3})$/.exec(name);
  return m ? diskIndex(m[1]) : null;
}

function diskName(index: number): string {
  return `sd${diskLetters(index)}`;
}

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

/** One parameter changed on a live disk. */
export interface ParamChange {
  key: ScsiDebugParamName;
  was: string | number;
  now: string | number;
}

interface RegistryEntry {
  disk: string;
  hctl: string;
  params: string;
}

/** Keys written in a modprobe-style string, in order (validity is parseScsiDebugParams's job). */
function explicitKeys(s: string): ScsiDebugParamName[] {
  return s
    .split(/\s+/)
    .filter((t) => t.length > 0)
    .map((t) => t.slice(0, t.includes('=') ? t.indexOf('=') : undefined) as ScsiDebugParamName);
}

const show = (key: ScsiDebugParamName, v: string | number) =>
  key === 'opts' && typeof v === 'number' && v >= 0 ? `${key}=0x${v.toString(16)}` : `${key}=${v}`;

/**
 * A Node file-system error as the API reports it: the condition by its errno name, the path, and what
 * was being done; EROFS and ENOSPC keep their names, anything else is EIO.
 */
export function storageError(e: unknown, what: string, path: string): unknown {
  const err = e as NodeJS.ErrnoException;
  if (isPvblkError(e) || !(e instanceof Error) || typeof err.code !== 'string') return e;
  const words: Record<string, string> = {
    EROFS: 'read-only file system',
    ENOSPC: 'no space left on device',
    EDQUOT: 'disk quota exceeded',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    ENOTDIR: 'not a directory',
    EIO: 'input/output error',
  };
  const code: ErrorCode =
    err.code === 'EROFS' ? 'EROFS' : err.code === 'ENOSPC' || err.code === 'EDQUOT' ? 'ENOSPC' : 'EIO';
  const text = words[err.code] ?? err.message.replace(/^[A-Z]+: /, '');
  return new PvblkError(code, `${what}: ${err.path ?? path}: ${text} (${err.code})`, { cause: e });
}

/**
 * A registry the host keeps as one JSON file (the disks', the driver-domain placements), written
 * whole and durably by replaceFile: a reader never sees half of it, and writes run one at a time
 * (overlapping writes of the one temporary file had interleaved, and the second rename found it
 * gone: ENOENT). Each takes the value as it is when it reaches replaceFile, so the last write holds
 * the latest value.
 */
export class RegistryFile {
  constructor(
    readonly path: string,
    /** What it is, for errors: "the disk registry". */
    private readonly what: string,
  ) {}

  async save(value: () => unknown): Promise<void> {
    try {
      await mkdir(dirname(this.path), { recursive: true });
      await replaceFile(this.path, JSON.stringify(value(), null, 2) + '\n');
    } catch (e) {
      throw storageError(e, `cannot write ${this.what}`, this.path);
    }
  }
}

export interface HostDisksOptions {
  /** null: disks live in memory and vanish with the process. */
  dataDir: string | null;
  klog: KernelLog;
  /** Serve guests a partition starting at this sector (ref tags are then remapped); 0: the whole disk. */
  partitionStart?: number;
  layout?: DiskLayout;
  quotas?: HostQuotas;
}

export class HostDisks implements DeviceResolver {
  private readonly byPath = new Map<string, HostDisk>();
  private readonly byVbd = new Map<string, HostDisk>();
  /** guest name → its disk (a Map: the names are the guests' own, `__proto__` included). */
  private registry = new Map<string, RegistryEntry>();
  private registryFile: RegistryFile | null = null;
  private loaded = false;
  private readonly dataDir: string | null;
  private readonly klog: KernelLog;
  private readonly partitionStart: number;
  private readonly firstIndex: number;
  private readonly firstHost: number;
  readonly quotas: HostQuotas;

  constructor(o: HostDisksOptions) {
    this.dataDir = o.dataDir;
    this.klog = o.klog;
    this.partitionStart = o.partitionStart ?? 0;
    this.quotas = o.quotas ?? { ...DEFAULT_HOST_QUOTAS };
    const layout = o.layout ?? DEFAULT_DISK_LAYOUT;
    const index = sdIndex(layout.firstDisk);
    if (index === null || index > MAX_DISK_INDEX)
      throw new PvblkError('EUSAGE', `the first disk must be named sda … sdzzz (got "${layout.firstDisk}")`);
    if (!Number.isInteger(layout.firstScsiHost) || layout.firstScsiHost < 0)
      throw new PvblkError(
        'EUSAGE',
        `the first SCSI host must be a number >= 0 (got ${layout.firstScsiHost})`,
      );
    this.firstIndex = index;
    this.firstHost = layout.firstScsiHost;
  }

  private get registryPath(): string {
    return join(this.dataDir!, 'disks.json');
  }

  private async load(): Promise<void> {
    if (this.loaded) return;
    if (this.dataDir) {
      await mkdir(this.dataDir, { recursive: true }).catch((e: unknown) => {
        throw storageError(e, 'cannot create the data directory', this.dataDir!);
      });
      let text: string | null = null;
      try {
        text = await readFile(this.registryPath, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
          throw storageError(e, 'cannot read the disk registry', this.registryPath);
      }
      if (text !== null) this.registry = this.parseRegistry(text);
    }
    this.loaded = true;
  }

  private parseRegistry(text: string): Map<string, RegistryEntry> {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new PvblkError(
        'EINVAL',
        `the disk registry ${this.registryPath} is not JSON: ${(e as Error).message}`,
      );
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw new PvblkError('EINVAL', `the disk registry ${this.registryPath} is not a JSON object`);
    const out = new Map<string, RegistryEntry>();
    for (const [guest, v] of Object.entries(
      raw as Record<string, Partial<RegistryEntry & { slot: number }>>,
    )) {
      if (typeof v?.params !== 'string')
        throw new PvblkError(
          'EINVAL',
          `the disk registry ${this.registryPath}: entry ${guest} has no params`,
        );
      // registries before the layout was configurable held only a slot: sdg + slot on host 9 + slot
      const slot = typeof v.slot === 'number' ? v.slot : 0;
      out.set(guest, {
        disk: v.disk ?? diskName(6 + slot),
        hctl: v.hctl ?? `${9 + slot}:0:0:0`,
        params: v.params,
      });
    }
    return out;
  }

  private saveRegistry(): Promise<void> {
    if (!this.dataDir) return Promise.resolve();
    this.registryFile ??= new RegistryFile(this.registryPath, 'the disk registry');
    return this.registryFile.save(() => Object.fromEntries(this.registry));
  }

  /** True when `guest` owns a disk on this host (its name is taken). */
  async has(guest: string): Promise<boolean> {
    await this.load();
    return this.registry.has(guest);
  }

  /** Bytes of capacity of every disk the host keeps, for the total quota. */
  usedBytes(): number {
    return [...this.registry.values()].reduce((n, e) => n + diskBytes(parseScsiDebugParams(e.params)), 0);
  }

  /**
   * The disk of a guest with the parameters asked for: created (within the quotas) on first use,
   * reopened (same data) afterwards. Keys given in `requested` must agree with an existing disk's
   * load-time parameters; runtime-writable ones are applied; keys not given keep the disk's values.
   */
  async attach(
    guest: string,
    requested: string,
  ): Promise<{ disk: HostDisk; created: boolean; changes: ParamChange[] }> {
    checkGuestName(guest);
    const asked = parseScsiDebugParams(requested); // refuses unknown keys and bad values
    const keys = explicitKeys(requested);
    const naming = keys.filter((k) => k === 'host_name' || k === 'hctl');
    if (naming.length > 0) {
      throw new PvblkError(
        'EINVAL',
        `disk parameter "${naming[0]}" is the host's to choose (pvblk host --first-disk, --scsi-host)`,
      );
    }
    await this.load();
    const entry = this.registry.get(guest);
    if (entry === undefined) {
      checkNewDisk(this.quotas, guest, diskBytes(asked), this.usedBytes());
      const slot = this.freeSlot();
      this.registry.set(guest, {
        ...slot,
        params: formatScsiDebugParams({ ...asked, host_name: slot.disk, hctl: slot.hctl }),
      });
      try {
        await this.saveRegistry();
        return { disk: await this.bringUp(guest), created: true, changes: [] };
      } catch (e) {
        this.registry.delete(guest);
        await this.saveRegistry().catch(() => {});
        // a disk that could not come up (a partition it cannot hold) leaves no data behind
        if (this.dataDir)
          for (const f of diskFiles(this.dataDir, slot.disk)) await rm(f, { force: true }).catch(() => {});
        throw e;
      }
    }
    const stored = parseScsiDebugParams(entry.params);
    const differ = SCSI_DEBUG_PARAM_NAMES.filter((k) => keys.includes(k) && asked[k] !== stored[k]);
    const fixed = differ.filter((k) => !RUNTIME_WRITABLE_PARAMS.includes(k));
    if (fixed.length > 0) {
      const path = `/dev/${entry.disk}`;
      throw new PvblkError(
        'EEXIST',
        `the disk of guest ${guest} (${path}) has ${fixed.map((k) => show(k, stored[k])).join(' ')}; ` +
          `asked for ${fixed.map((k) => show(k, asked[k])).join(' ')}. ` +
          `${fixed.join(', ')} ${fixed.length > 1 ? 'are' : 'is'} fixed when a disk is created (scsi_debug module parameters): ` +
          `keep ${fixed.length > 1 ? 'them' : 'it'} out of --disk, or delete the disk and its data to create it anew ` +
          `(\`pvblk disks rm ${guest}\`, DELETE /disks?guest=${guest}, with the guest stopped)`,
      );
    }
    const d = this.byGuest(guest) ?? (await this.bringUp(guest));
    const changes: ParamChange[] = [];
    for (const key of differ) {
      d.disk.target.applyRuntimeParam(key, asked[key]);
      changes.push({ key, was: stored[key], now: asked[key] });
    }
    if (changes.length > 0) await this.persistParams(d);
    return { disk: d, created: false, changes };
  }

  /** The lowest slot whose disk name and SCSI host number are both free. */
  private freeSlot(): { disk: string; hctl: string } {
    const names = new Set([...this.registry.values()].map((e) => e.disk));
    const hosts = new Set([...this.registry.values()].map((e) => e.hctl.split(':')[0]));
    for (let k = 0; this.firstIndex + k <= MAX_DISK_INDEX; k++) {
      const disk = diskName(this.firstIndex + k);
      const host = String(this.firstHost + k);
      if (!names.has(disk) && !hosts.has(host)) return { disk, hctl: `${host}:0:0:0` };
    }
    throw new PvblkError('ENOSPC', `no disk name left after ${diskName(this.firstIndex)}`);
  }

  /** `modprobe scsi_debug` with the registry's parameters: the store, the target and sd. */
  private async bringUp(guest: string): Promise<HostDisk> {
    const entry = this.registry.get(guest)!;
    const params: ScsiDebugParams = {
      ...parseScsiDebugParams(entry.params),
      host_name: entry.disk,
      hctl: entry.hctl,
    };
    const dir = this.dataDir ? join(this.dataDir, 'disks') : undefined;
    const index = sdIndex(entry.disk);
    if (index === null) throw new PvblkError('EINVAL', `the disk registry names a bad disk "${entry.disk}"`);
    const disk = await openScsiDebugDisk({ dataDir: dir, params, log: this.klog }).catch((e: unknown) => {
      throw storageError(e, `cannot create the disk of guest ${guest}`, join(dir ?? '', `${entry.disk}.img`));
    });
    const why = partitionProblem(this.partitionStart, disk.sectors, params.sector_size);
    if (why) {
      await disk.close().catch(() => {});
      throw new PvblkError('EINVAL', `partition start ${this.partitionStart} is ${why} of ${entry.disk}`);
    }
    const { major, minor } = sdDevt(index);
    const d: HostDisk = {
      guest,
      path: `/dev/${entry.disk}`,
      major,
      minor,
      hctl: entry.hctl,
      params: formatScsiDebugParams(params),
      disk,
      vbd:
        this.partitionStart > 0
          ? {
              path: `/dev/${entry.disk}1`,
              device: this.dm(
                new PartitionDevice(disk, this.partitionStart, `${entry.disk}1`),
                `/dev/${entry.disk}1`,
                `${major}:${minor + 1}`,
              ),
              startSector: this.partitionStart,
            }
          : {
              path: `/dev/${entry.disk}`,
              device: this.dm(disk, `/dev/${entry.disk}`, `${major}:${minor}`),
              startSector: 0,
            },
    };
    this.byPath.set(d.path, d);
    this.byVbd.set(d.vbd.path, d);
    return d;
  }

  /** The device-mapper stack a vbd's device sits under (tables name it by path or major:minor). */
  private dm(dev: HostBlockDevice, path: string, devt: string): DmStack {
    return new DmStack(dev, [path, devt], this.klog);
  }

  private async persistParams(d: HostDisk): Promise<void> {
    d.params = formatScsiDebugParams(d.disk.target.params);
    this.registry.get(d.guest)!.params = d.params;
    await this.saveRegistry();
  }

  /** `echo value > /sys/bus/pseudo/drivers/scsi_debug/<key>` on one disk; kept in the registry. */
  async setParam(path: string, key: string, value: string): Promise<ParamChange> {
    const d = this.byPath.get(path);
    if (!d) throw new PvblkError('ENOENT', `no disk ${path}`);
    if (!(SCSI_DEBUG_PARAM_NAMES as readonly string[]).includes(key))
      throw new PvblkError(
        'EINVAL',
        `unknown disk parameter "${key}" (known: ${SCSI_DEBUG_PARAM_NAMES.join(', ')})`,
      );
    const k = key as ScsiDebugParamName;
    const was = d.disk.target.params[k];
    d.disk.target.applyRuntimeParam(k, value);
    await this.persistParams(d);
    return { key: k, was, now: d.disk.target.params[k] };
  }

  /**
   * Brings back every disk of the registry, with the parameters it last had: a restarted backend
   * must find the disks its vbds name before it re-attaches to the guests.
   */
  async restore(): Promise<HostDisk[]> {
    await this.load();
    const out: HostDisk[] = [];
    for (const guest of [...this.registry.keys()])
      out.push(this.byGuest(guest) ?? (await this.bringUp(guest)));
    return out;
  }

  /** Deletes a guest's disk and its data (`rmmod scsi_debug` and the store with it); the name is free again. */
  async remove(guest: string): Promise<{ path: string }> {
    await this.load();
    const entry = this.registry.get(guest);
    if (!entry) throw new PvblkError('ENOENT', `guest ${guest} has no disk on this host`);
    const d = this.byGuest(guest);
    if (d) {
      await d.disk.close().catch(() => {});
      this.byPath.delete(d.path);
      this.byVbd.delete(d.vbd.path);
    }
    // the data first, then the name: a host that stops in between keeps the guest's entry (its disk
    // comes back blank) rather than an unlisted file that the next disk of that name would open
    if (this.dataDir) {
      for (const f of diskFiles(this.dataDir, entry.disk))
        await rm(f, { force: true }).catch((e: unknown) => {
          throw storageError(e, `cannot delete the disk of guest ${guest}`, f);
        });
    }
    this.registry.delete(guest);
    await this.saveRegistry();
    return { path: `/dev/${entry.disk}` };
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

  byGuest(guest: string): HostDisk | undefined {
    return [...this.byPath.values()].find((d) => d.guest === guest);
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

/** The files of a disk in a data dir: its store and its header (scsi/store.ts). */
function diskFiles(dataDir: string, disk: string): string[] {
  const base = join(dataDir, 'disks', disk);
  return [`${base}.img`, `${base}.json`];
}
