/**
 * The guest's xenbus frontend bus (drivers/xen/xenbus/xenbus_probe_frontend.c): a watch on the
 * domain's `device/vbd` directory, and for every change under it the device's root (`device/vbd/<n>`)
 * is looked at, as xenbus_dev_changed() does — a directory that appeared is probed (blkfront runs
 * the handshake; once Connected the disk is added, as add_disk() makes /dev/xvdb appear), a
 * directory that went away is removed (blkfront_remove: what the backend never answered fails, the
 * disk disappears).
 *
 * The disks present at boot are probed first and waited for (up to 30 s each), so a guest's commands
 * find them; those hot-plugged later appear once connected. `disks` is the live list every guest
 * command reads.
 */
import { vbdFrontendDir, xvdName, type KernelLog } from '@pvblk/shared';
import type { Hypercalls, Watch } from '@pvblk/client';
import { Blkfront, type BlkfrontOptions } from './blkfront/device.ts';
import { GuestBlockQueue } from './block/queue.ts';
import { BlockDeviceCache } from './block/page-cache.ts';
import type { GuestDisk } from './guest/toolbox.ts';

type Log = (level: 'info' | 'warn' | 'error' | 'debug', obj: Record<string, unknown>, msg: string) => void;

export interface XenbusHooks {
  /** A disk connected (boot or hot-plug): register it where the guest finds devices. */
  added(d: GuestDisk): void;
  /** A disk went away. */
  removed(d: GuestDisk): void;
}

/** A boot-time device has this long to connect before the guest gives up on it. */
const BOOT_CONNECT_MS = 30_000;

export class XenbusProbe {
  /** The guest's disks, in the order they connected. */
  readonly disks: GuestDisk[] = [];
  private readonly fronts = new Map<number, Blkfront>();
  private watch: Watch | null = null;
  private serial: Promise<void> = Promise.resolve();
  private hooks: XenbusHooks = { added: () => {}, removed: () => {} };
  private readonly base: string;
  private stopped = false;

  constructor(
    private readonly xc: Hypercalls,
    private readonly klog: KernelLog,
    private readonly opts: BlkfrontOptions,
    private readonly log: Log = () => {},
  ) {
    this.base = vbdFrontendDir(xc.domid);
  }

  /** Boot: every vbd under device/vbd, each waited for (xenbus_probe_devices at boot). */
  async probeAll(): Promise<GuestDisk[]> {
    const devids = await this.xc.xs.directory(this.base).catch(() => [] as string[]);
    for (const d of devids) {
      if (!/^[0-9]+$/.test(d)) continue;
      const front = await this.probe(Number(d));
      if (!front) continue;
      const connected = await Promise.race([
        front.whenConnected().then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), BOOT_CONNECT_MS).unref()),
      ]);
      if (!connected)
        this.log('error', { dev: front.name }, `${front.name}: the backend did not connect within 30 s`);
    }
    return this.disks;
  }

  /** Watches device/vbd from now on; `hooks` hear of disks added and removed. */
  async listen(hooks: XenbusHooks): Promise<void> {
    this.hooks = hooks;
    // the watch fires once at once: anything that changed since probeAll is seen then
    this.watch = await this.xc.xs.watch(this.base, (path) => this.enqueue(() => this.changed(path)));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.watch?.unwatch().catch(() => {});
    this.watch = null;
    await this.serial;
  }

  private enqueue(fn: () => Promise<void>): void {
    this.serial = this.serial.then(fn).catch((e: Error) => {
      this.log('error', { err: e.stack ?? String(e) }, 'xenbus probe error');
    });
  }

  /** xenbus_dev_changed(): the device root the path is under, probed or removed. */
  private async changed(path: string): Promise<void> {
    if (this.stopped) return;
    const rest = path.startsWith(this.base) ? path.slice(this.base.length) : null;
    if (rest === null) return;
    const m = /^\/([0-9]+)(?:\/|$)/.exec(rest);
    const candidates = m
      ? [Number(m[1])]
      : [
          ...new Set([
            ...this.fronts.keys(),
            ...((await this.xc.xs.directory(this.base).catch(() => [])) as string[])
              .filter((d) => /^[0-9]+$/.test(d))
              .map(Number),
          ]),
        ];
    for (const devid of candidates) {
      const exists = (await this.xc.xs.tryRead(`${this.base}/${devid}`).catch(() => null)) !== null;
      if (exists && !this.fronts.has(devid)) await this.probe(devid);
      else if (!exists && this.fronts.has(devid)) await this.remove(devid);
    }
  }

  /** xenbus_probe_node + blkfront_probe: the device starts its handshake; it is a disk once Connected. */
  private async probe(devid: number): Promise<Blkfront | null> {
    const name = xvdName(devid) ?? `xvd-${devid}`;
    const front = new Blkfront(this.xc, this.klog, `${this.base}/${devid}`, name, this.opts, this.log);
    this.fronts.set(devid, front);
    try {
      await front.start();
    } catch (e) {
      this.fronts.delete(devid);
      this.log('error', { dev: name, err: (e as Error).message }, `${name}: probe failed`);
      return null;
    }
    void front.whenConnected().then(() => {
      if (this.fronts.get(devid) !== front || this.disks.some((d) => d.front === front)) return;
      const queue = new GuestBlockQueue(front, this.klog);
      const cache = new BlockDeviceCache(queue, this.klog);
      const disk = { name, devid, front, queue, cache };
      this.disks.push(disk);
      this.hooks.added(disk);
      this.log('info', { dev: name, devid }, `${name}: disk added`);
    });
    return front;
  }

  /** The device's directory is gone: blkfront_remove, and the disk leaves the guest. */
  private async remove(devid: number): Promise<void> {
    const front = this.fronts.get(devid)!;
    this.fronts.delete(devid);
    const unanswered = await front.remove();
    const i = this.disks.findIndex((d) => d.front === front);
    if (i >= 0) {
      const [disk] = this.disks.splice(i, 1);
      this.hooks.removed(disk);
    }
    this.log(
      'info',
      { dev: front.name, devid, unanswered },
      `${front.name}: device removed${unanswered ? ` (${unanswered} requests never answered failed)` : ''}`,
    );
  }
}
