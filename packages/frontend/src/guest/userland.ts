/**
 * A guest's userland over its block devices: the filesystem (a host directory, with /dev and /sys
 * entries for every vbd), the commands of the toolbox, and the shell that runs a command line. The
 * guest process serves it on its control socket; `bench/drivers.ts` runs it in-process.
 */
import { GuestFs, xenDevNumbers } from './guest-vfs.ts';
import { guestCommands, type GuestDisk, type GuestRuntime } from './toolbox.ts';
import { runCommandLine } from './shell.ts';
import type { CommandIo, GuestCommand, GuestCommandContext } from './vfs.ts';

export class GuestUserland {
  readonly vfs: GuestFs;
  private readonly commands: Record<string, GuestCommand>;
  private readonly ctx: GuestCommandContext;

  /** `disks` is the live list: vbds hot-plugged later are added to it and passed to `plug`. */
  constructor(klog: GuestRuntime['klog'], disks: GuestDisk[], root: string) {
    this.vfs = new GuestFs(root);
    for (const d of disks) this.plug(d);
    this.commands = guestCommands({ klog, disks, vfs: this.vfs });
    this.ctx = { vfs: this.vfs, now: () => process.hrtime.bigint() };
  }

  /** A vbd's device node appears (blkfront never sees VDISK_REMOVABLE or VDISK_CDROM from pvblk's backend). */
  plug(d: GuestDisk): void {
    this.vfs.registerBlockDevice(d.name, d.queue, d.cache, { ...xenDevNumbers(d.devid), removable: false });
  }

  unplug(d: GuestDisk): void {
    this.vfs.unregisterBlockDevice(d.name);
  }

  /** Runs one command line as the guest's shell would; resolves to its exit status. */
  run(line: string, io: CommandIo): Promise<number> {
    return runCommandLine(line, io, this.ctx, this.commands);
  }
}
