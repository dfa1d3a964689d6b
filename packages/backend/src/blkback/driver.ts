/**
 * The xen-backend bus for vbds: watches /local/domain/<self>/backend/vbd and instantiates a VbdBackend
 * for each <frontend-domid>/<devid> directory the toolstack creates, and removes it when the directory
 * goes away — as xenbus_backend's watch on "backend" does in Linux.
 */
import { vbdBackendDir, type KernelLog } from '@pvblk/shared';
import type { Watch, Hypercalls } from '@pvblk/client';
import type { HostBlockDevice } from '../block-device.ts';
import { DEFAULT_BLKBACK_CONFIG, type BlkbackConfig } from './config.ts';
import { VbdBackend, type VbdContext } from './vbd.ts';
import { MapBudget } from './segments.ts';
import type { BlkbackStats } from './stats.ts';

export interface DeviceResolver {
  /** Opens the host device a vbd's `params` names (e.g. /dev/sdg); null when unknown. */
  open(params: string): { device: HostBlockDevice; pdevice: number; startSector?: number } | null;
}

export interface BlkbackOptions {
  xc: Hypercalls;
  klog: KernelLog;
  devices: DeviceResolver;
  config?: Partial<BlkbackConfig>;
  log?: VbdContext['log'];
}

export class BlkbackDriver {
  readonly vbds = new Map<string, VbdBackend>();
  /** Each frontend domain's budget of transient mappings, kept while it has a vbd here. */
  private readonly mapBudgets = new Map<number, MapBudget>();
  private watch: Watch | null = null;
  private scanning: Promise<void> = Promise.resolve();
  readonly config: BlkbackConfig;
  private readonly root: string;

  constructor(private readonly opts: BlkbackOptions) {
    this.config = { ...DEFAULT_BLKBACK_CONFIG, ...opts.config };
    this.root = vbdBackendDir(opts.xc.domid);
  }

  private log(level: 'info' | 'warn' | 'error' | 'debug', obj: Record<string, unknown>, msg: string): void {
    this.opts.log?.(level, obj, msg);
  }

  async start(): Promise<void> {
    this.watch = await this.opts.xc.xs.watch(this.root, () => {
      this.scanning = this.scanning
        .then(() => this.scan())
        .catch((e: Error) => this.log('error', { err: e.message }, 'vbd scan failed'));
    });
  }

  /** Reconciles instantiated devices with the directories present. */
  private async scan(): Promise<void> {
    const xs = this.opts.xc.xs;
    const present = new Set<string>();
    let domids: string[] = [];
    try {
      domids = await xs.directory(this.root);
    } catch {
      domids = [];
    }
    for (const dom of domids) {
      let devids: string[] = [];
      try {
        devids = await xs.directory(`${this.root}/${dom}`);
      } catch {
        continue;
      }
      for (const dev of devids) {
        const key = `${dom}/${dev}`;
        const bePath = `${this.root}/${key}`;
        present.add(key);
        if (this.vbds.has(key)) continue;
        // the toolstack writes the directory in one transaction; wait for its frontend key, and (as
        // backend_changed does) for physical-device, which the hotplug script writes once the device
        // is there: at once in Dom0, later in a driver domain (docs/driver-domains.md)
        // (the three reads go out together: one round trip between seeing the directory and probing)
        const [params, fe, pdev] = await Promise.all([
          xs.tryRead(`${bePath}/params`),
          xs.tryRead(`${bePath}/frontend`),
          xs.tryRead(`${bePath}/physical-device`),
        ]);
        if (params === null || fe === null || pdev === null) continue;
        const opened = this.opts.devices.open(params);
        if (!opened) {
          this.log('error', { vbd: key, params }, 'no such host device; leaving the vbd unconnected');
          continue;
        }
        const vbd = new VbdBackend({
          xc: this.opts.xc,
          klog: this.opts.klog,
          config: this.config,
          device: opened.device,
          pdevice: opened.pdevice,
          startSector: opened.startSector ?? 0,
          frontDomid: Number(dom),
          mapBudget: this.mapBudgetOf(Number(dom)),
          devid: Number(dev),
          bePath,
          log: (l, o, m) => this.log(l, o, m),
        });
        this.vbds.set(key, vbd);
        try {
          await vbd.probe();
        } catch (e) {
          this.log('error', { vbd: key, err: (e as Error).message }, 'probe failed');
          this.vbds.delete(key);
        }
      }
    }
    for (const [key, vbd] of this.vbds) {
      if (!present.has(key)) {
        this.vbds.delete(key);
        await vbd.remove();
        this.log('info', { vbd: key }, 'vbd removed');
      }
    }
    this.dropUnusedBudgets();
  }

  private mapBudgetOf(domid: number): MapBudget {
    let b = this.mapBudgets.get(domid);
    if (!b) this.mapBudgets.set(domid, (b = new MapBudget(this.config.maxTransientMaps)));
    return b;
  }

  /** Drops the budgets of domains with no vbd left (their rings' in-flight requests keep theirs). */
  private dropUnusedBudgets(): void {
    const inUse = new Set([...this.vbds.keys()].map((k) => Number(k.split('/')[0])));
    for (const domid of this.mapBudgets.keys()) if (!inUse.has(domid)) this.mapBudgets.delete(domid);
  }

  /** Waits for pending scans and state changes (tests and shutdown). */
  async settled(): Promise<void> {
    await this.scanning;
    await Promise.all([...this.vbds.values()].map((v) => v.settled()));
  }

  stats(): Record<string, BlkbackStats> {
    const out: Record<string, BlkbackStats> = {};
    for (const [k, v] of this.vbds) out[k] = v.stats();
    return out;
  }

  /** Timers held by every ring of every device (tests: none may outlive a disconnect). */
  liveTimers(): number {
    let n = 0;
    for (const v of this.vbds.values()) n += v.liveTimers;
    return n;
  }

  async stop(): Promise<void> {
    await this.watch?.unwatch().catch(() => {});
    for (const v of this.vbds.values()) await v.remove();
    this.vbds.clear();
    this.mapBudgets.clear();
  }
}
