/**
 * The block hotplug script, as `xl devd` runs it inside a driver domain (tools/hotplug/Linux/block):
 * for each vbd the toolstack puts under this domain's backend directory, open the disk its `params`
 * names and write `physical-device` (which blkback waits for, as backend_changed does) and
 * `hotplug-status` (which the toolstack waits for); on failure `hotplug-error` and
 * `hotplug-status=error`, as the script's fatal() does.
 *
 * In a driver domain `params` is the disk's name there — the guest it belongs to — and
 * `pvblk-scsi-debug` the scsi_debug parameters asked for it: the driver domain keeps its own disks
 * (HostDisks, with its own data directory and the same rules as Dom0's).
 */
import { isPvblkError, vbdBackendDir } from '@pvblk/shared';
import type { Hypercalls, Watch } from '@pvblk/client';
import type { HostDisks } from './disks.ts';
import type { DeviceResolver } from './blkback/driver.ts';

type Log = (level: 'info' | 'warn' | 'error', obj: Record<string, unknown>, msg: string) => void;

export class BlockHotplug {
  private watch: Watch | null = null;
  private serial: Promise<void> = Promise.resolve();
  private readonly root: string;

  constructor(
    private readonly xc: Hypercalls,
    private readonly disks: HostDisks,
    private readonly log: Log = () => {},
  ) {
    this.root = vbdBackendDir(xc.domid);
  }

  /** blkback's view of this domain's disks: `params` names a guest's disk. */
  get resolver(): DeviceResolver {
    return {
      open: (params) => {
        const d = this.disks.byGuest(params);
        return d ? this.disks.open(d.vbd.path) : null;
      },
    };
  }

  async start(): Promise<void> {
    this.watch = await this.xc.xs.watch(this.root, () => {
      this.serial = this.serial
        .then(() => this.scan())
        .catch((e: Error) => this.log('error', { err: e.message }, 'hotplug scan failed'));
    });
  }

  async stop(): Promise<void> {
    await this.watch?.unwatch().catch(() => {});
    await this.serial;
  }

  /** Waits for the hotplug work queued so far (tests). */
  settled(): Promise<void> {
    return this.serial;
  }

  private async scan(): Promise<void> {
    const xs = this.xc.xs;
    for (const fe of (await xs.directory(this.root).catch(() => [])) as string[]) {
      for (const dev of (await xs.directory(`${this.root}/${fe}`).catch(() => [])) as string[]) {
        const be = `${this.root}/${fe}/${dev}`;
        if ((await xs.tryRead(`${be}/hotplug-status`)) !== null) continue;
        const params = await xs.tryRead(`${be}/params`);
        if (params === null) continue;
        await this.add(be, params, (await xs.tryRead(`${be}/pvblk-scsi-debug`)) ?? '');
      }
    }
  }

  /** `block add`: the disk, then the keys; an error is the script's fatal(). */
  private async add(be: string, guest: string, diskParams: string): Promise<void> {
    const xs = this.xc.xs;
    try {
      const { disk, created, changes } = await this.disks.attach(guest, diskParams);
      const minor = disk.minor + (disk.vbd.startSector > 0 ? 1 : 0);
      await xs.transaction(async (tx) => {
        await xs.write(`${be}/physical-device`, `${disk.major.toString(16)}:${minor.toString(16)}`, tx);
        await xs.write(`${be}/physical-device-path`, disk.vbd.path, tx);
        await xs.write(`${be}/hotplug-status`, 'connected', tx);
      });
      this.log(
        'info',
        { guest, disk: disk.path, params: disk.params, created, vbd: be },
        `${created ? 'created' : 'reusing'} disk ${disk.path} of ${guest}${changes.length ? ` (${changes.map((c) => `${c.key}=${c.now}`).join(' ')})` : ''}`,
      );
    } catch (e) {
      const text = isPvblkError(e) ? e.message : `EIO: ${(e as Error).message}`;
      this.log('error', { guest, vbd: be, err: text }, `hotplug of ${be} failed: ${text}`);
      await xs
        .transaction(async (tx) => {
          await xs.write(`${be}/hotplug-error`, text, tx);
          await xs.write(`${be}/hotplug-status`, 'error', tx);
        })
        .catch(() => {});
    }
  }
}
