/**
 * Driver domains, on Dom0's side: what libxl does for a disk whose backend is not Dom0 (xl's
 * `backend=` key of a disk spec). A driver domain is a DomU that Dom0's toolstack creates like any
 * other, with the XenStore directories libxl gives a domain built with `driver_domain=1`; it runs
 * blkback and its own disks, and no toolstack (`pvblk driver-domain`, driver-domain.ts). For a guest
 * placed on it, the toolstack writes the vbd's backend directory under the driver domain's home,
 * owned by the driver domain, and the frontend's `backend-id` names it, so the guest grants its pages
 * to the driver domain; the driver domain's hotplug (xl devd's `block add`) opens the disk and writes
 * `physical-device` and `hotplug-status`, which the toolstack waits for.
 *
 * Which backend serves a new guest is the placement policy (PVBLK_PLACEMENT): `dom0` (every disk in
 * Dom0), `spread` (the backend domain — Dom0 or a running driver domain — with the fewest disks), or
 * `driver-domains` (the running driver domain with the fewest disks). A guest stays where its disk is:
 * Dom0's disks are in Dom0's disk registry, and the guests placed on driver domains in placement.json
 * in the data directory (written only once a driver domain serves a guest). See docs/driver-domains.md.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  domainPath,
  isPvblkError,
  parseXsUint,
  PvblkError,
  vbdBackendDir,
  vbdFrontendDir,
  type ErrorCode,
} from '@pvblk/shared';
import { oneEventPending, type Hypercalls, type Watch } from '@pvblk/client';
import type { Toolstack, VbdSpec } from './toolstack.ts';
import { RegistryFile } from './disks.ts';

export type Placement = 'dom0' | 'spread' | 'driver-domains';
export const PLACEMENTS: readonly Placement[] = ['dom0', 'spread', 'driver-domains'];

/** Dom0's name in the placement registry and in listings. */
export const DOM0_BACKEND = 'Domain-0';

/** The marker of a driver domain's home: libxl makes `libxl` (and `device-model`) for driver_domain=1. */
const DRIVER_DOMAIN_DIRS = ['libxl', 'device-model', 'error', 'backend'];

/** How long the toolstack waits for a driver domain's hotplug (libxl's LIBXL_HOTPLUG_TIMEOUT). */
export const HOTPLUG_TIMEOUT_MS = 40_000;

/** PVBLK_PLACEMENT, checked: dom0 when unset. */
export function placementFromEnv(env: Record<string, string | undefined> = process.env): Placement {
  const v = env.PVBLK_PLACEMENT ?? 'dom0';
  if (!(PLACEMENTS as readonly string[]).includes(v))
    throw new PvblkError('EUSAGE', `PVBLK_PLACEMENT="${v}" is not one of ${PLACEMENTS.join(', ')}`);
  return v as Placement;
}

type Log = (level: 'info' | 'warn' | 'error', obj: Record<string, unknown>, msg: string) => void;

export interface DriverDomainsOptions {
  xc: Hypercalls;
  toolstack: Toolstack;
  /** Where placement.json lives; null: in memory. */
  dataDir: string | null;
  placement: Placement;
  /** Whether Dom0 keeps a disk for this guest already (it is served there). */
  hasDom0Disk(guest: string): Promise<boolean>;
  /** The guests whose disks Dom0 keeps. */
  dom0Guests(): string[];
  log?: Log;
  hotplugTimeoutMs?: number;
}

export interface Backend {
  name: string;
  /** 0 for Dom0. */
  domid: number;
}

export class DriverDomains {
  /** guest name → the name of the driver domain that keeps its disk (a Map: names are the guests'). */
  private readonly registry = new Map<string, string>();
  private loaded = false;
  private registryFile: RegistryFile | null = null;
  private watch: Watch | null = null;
  private reaping: Promise<void> = Promise.resolve();
  private readonly log: Log;

  constructor(private readonly o: DriverDomainsOptions) {
    this.log = o.log ?? (() => {});
  }

  get placement(): Placement {
    return this.o.placement;
  }

  private get xs() {
    return this.o.xc.xs;
  }

  private get registryPath(): string | null {
    return this.o.dataDir ? join(this.o.dataDir, 'placement.json') : null;
  }

  private async load(): Promise<void> {
    if (this.loaded) return;
    const path = this.registryPath;
    if (path) {
      try {
        const v = JSON.parse(await readFile(path, 'utf8')) as unknown;
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
        for (const [g, b] of Object.entries(v as Record<string, unknown>)) {
          if (typeof b !== 'string') throw new Error(`guest ${g}: backend is not a string`);
          this.registry.set(g, b);
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
          throw new PvblkError('EIO', `cannot read the placement registry ${path}: ${(e as Error).message}`);
      }
    }
    this.loaded = true;
  }

  private save(): Promise<void> {
    const path = this.registryPath;
    if (!path) return Promise.resolve();
    this.registryFile ??= new RegistryFile(path, 'the placement registry');
    return this.registryFile.save(() => Object.fromEntries(this.registry));
  }

  /** Reaps backends of dead domains, and guests whose driver domain died, as domains go away. */
  async start(): Promise<void> {
    await this.load();
    this.watch = await this.xs.watch('@releaseDomain', () => {
      this.reaping = this.reaping
        .then(() => this.reap())
        .catch((e: Error) => this.log('error', { err: e.message }, 'reaping driver domain backends failed'));
    });
  }

  async stop(): Promise<void> {
    await this.watch?.unwatch().catch(() => {});
  }

  /** The running driver domains: domains whose home has the driver-domain directories. */
  async running(): Promise<Array<Backend & { connected: boolean }>> {
    const out: Array<Backend & { connected: boolean }> = [];
    for (const d of await this.o.xc.domctl.list()) {
      if (d.privileged) continue;
      if ((await this.xs.tryRead(`${domainPath(d.domid)}/libxl`)) === null) continue;
      out.push({ name: d.name, domid: d.domid, connected: d.connected });
    }
    return out;
  }

  async isDriverDomainName(name: string): Promise<boolean> {
    return (await this.running()).some((d) => d.name === name);
  }

  /**
   * libxl__domain_make for a domain built with driver_domain=1: the domain, its home, and the
   * directories it writes itself (rwperm): libxl, device-model, error (xenbus_dev_error's), backend
   * (under which the toolstack puts the vbds it serves).
   */
  async create(name: string, by = 'operator'): Promise<{ domid: number; credential: string }> {
    await this.load();
    const dds = await this.running();
    const guestDomain = (await this.o.xc.domctl.list()).some(
      (d) => d.name === name && !d.privileged && !dds.some((x) => x.domid === d.domid),
    );
    if (this.registry.has(name) || guestDomain || (await this.o.hasDom0Disk(name)))
      throw new PvblkError(
        'EEXIST',
        `${name} is a guest's name on this host; a driver domain needs a name of its own`,
      );
    for (const d of dds) {
      if (d.name !== name) continue;
      if (d.connected)
        throw new PvblkError('EEXIST', `driver domain ${name} is running as domain ${d.domid}`);
      await this.o.toolstack.destroyDomain(d.domid); // created but never connected: replace it
    }
    const { domid, credential } = await this.o.toolstack.createDomain(name);
    await this.xs.transaction(async (tx) => {
      for (const dir of DRIVER_DOMAIN_DIRS) {
        await this.xs.mkdir(`${domainPath(domid)}/${dir}`, tx);
        await this.xs.setPerms(`${domainPath(domid)}/${dir}`, [`n${domid}`], tx);
      }
    });
    this.log('info', { domid, driverDomain: name, by }, `created driver domain ${name} as domain ${domid}`);
    return { domid, credential };
  }

  /**
   * Where a guest's disk is served: where it already is (the registry, or a disk Dom0 keeps), else
   * where the placement policy puts a new disk. A guest whose driver domain is not running now has
   * to wait for it (EAGAIN): its disk is there.
   */
  async place(guest: string): Promise<Backend> {
    await this.load();
    const running = (await this.running()).filter((d) => d.connected);
    const kept = this.registry.get(guest) ?? ((await this.o.hasDom0Disk(guest)) ? DOM0_BACKEND : undefined);
    if (kept === DOM0_BACKEND) return { name: DOM0_BACKEND, domid: 0 };
    if (kept !== undefined) {
      const d = running.find((x) => x.name === kept);
      if (!d)
        throw new PvblkError(
          'EAGAIN',
          `the disk of guest ${guest} is in driver domain ${kept}, which is not running; start it (pvblk driver-domain --name ${kept}) and boot the guest again`,
        );
      return { name: d.name, domid: d.domid };
    }
    const candidates: Backend[] = [
      ...(this.o.placement === 'driver-domains' ? [] : [{ name: DOM0_BACKEND, domid: 0 }]),
      ...(this.o.placement === 'dom0' ? [] : running.map((d) => ({ name: d.name, domid: d.domid }))),
    ];
    if (candidates.length === 0)
      throw new PvblkError(
        'EAGAIN',
        `placement "driver-domains" and no driver domain is running: start one (pvblk driver-domain)`,
      );
    const load = (b: Backend) =>
      b.domid === 0
        ? this.o.dom0Guests().length
        : [...this.registry.values()].filter((x) => x === b.name).length;
    // the fewest disks; on a tie, Dom0, then driver domains by domid (the order they came up)
    return candidates.reduce((best, b) => (load(b) < load(best) ? b : best));
  }

  /** Records where a guest's disk is (kept across host restarts); Dom0's disk registry has its own. */
  async remember(guest: string, backend: Backend): Promise<void> {
    await this.load();
    if (backend.domid === 0 || this.registry.get(guest) === backend.name) return;
    this.registry.set(guest, backend.name);
    await this.save();
  }

  /** Forgets a guest whose Dom0 disk was deleted. */
  async forget(guest: string): Promise<void> {
    await this.load();
    if (!this.registry.delete(guest)) return;
    await this.save();
  }

  /** The backend of every guest that has a disk: Dom0's, then those on driver domains. */
  async placements(): Promise<Map<string, string>> {
    await this.load();
    const out = new Map<string, string>();
    for (const g of this.o.dom0Guests()) out.set(g, DOM0_BACKEND);
    for (const [g, b] of this.registry) out.set(g, b);
    return out;
  }

  /**
   * xl block-attach with backend=<driver domain>: the vbd in the driver domain's tree, then the
   * driver domain's hotplug, waited for (libxl__wait_device_connection): `hotplug-status` connected,
   * or error with `hotplug-error` ("<errno>: text") — refused with that errno, the vbd removed.
   */
  async addVbd(
    domid: number,
    backend: Backend,
    guest: string,
    spec: Omit<VbdSpec, 'params' | 'major' | 'minor' | 'backendDomid' | 'backendKeys'>,
    diskParams: string,
  ): Promise<{ backend: string; physicalDevicePath: string }> {
    const { backend: be } = await this.o.toolstack.addVbd(domid, {
      ...spec,
      // the disk's name in the driver domain (xl's target=): the guest it belongs to
      params: guest,
      backendDomid: backend.domid,
      backendKeys: { 'pvblk-scsi-debug': diskParams },
    });
    const status = await this.waitHotplug(be, backend);
    if (status.ok) return { backend: be, physicalDevicePath: status.path };
    await this.xs.rm(be).catch(() => {});
    throw status.error;
  }

  private async waitHotplug(
    be: string,
    backend: Backend,
  ): Promise<{ ok: true; path: string } | { ok: false; error: PvblkError }> {
    const timeout = this.o.hotplugTimeoutMs ?? HOTPLUG_TIMEOUT_MS;
    let watch: Watch | null = null;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise((resolve) => {
        const check = async () => {
          const s = await this.xs.tryRead(`${be}/hotplug-status`);
          if (s === 'connected') {
            resolve({ ok: true, path: (await this.xs.tryRead(`${be}/physical-device-path`)) ?? '' });
          } else if (s === 'error') {
            const text = (await this.xs.tryRead(`${be}/hotplug-error`)) ?? 'hotplug failed';
            const m = /^([A-Z][A-Z0-9_]+): (.*)$/s.exec(text);
            const code = (m ? m[1] : 'EIO') as ErrorCode;
            resolve({
              ok: false,
              error: new PvblkError(code, `driver domain ${backend.name}: ${m ? m[2] : text}`),
            });
          }
        };
        timer = setTimeout(
          () =>
            resolve({
              ok: false,
              error: new PvblkError(
                'ETIMEDOUT',
                `driver domain ${backend.name} (domain ${backend.domid}) did not run the hotplug of ${be} within ${timeout / 1000} s`,
              ),
            }),
          timeout,
        );
        void this.xs
          // one check at a time, one event pending: the driver domain writes these nodes
          .watch(`${be}/hotplug-status`, oneEventPending(() => check().catch(() => {})).fire)
          .then((w) => (watch = w));
      });
    } finally {
      clearTimeout(timer);
      await (watch as Watch | null)?.unwatch().catch(() => {});
    }
  }

  /**
   * What libxl__devices_destroy does for vbds served by a driver domain, and what a dead driver
   * domain means: the backend directories of dead frontends are removed from every driver domain's
   * tree, and a guest whose vbd names a driver domain that is gone is destroyed (its disk went with
   * it; the guest's process exits and boots again once the driver domain is back).
   */
  async reap(): Promise<void> {
    const domains = await this.o.xc.domctl.list();
    const live = new Set(domains.map((d) => d.domid));
    const dds = await this.running();
    for (const dd of dds) {
      const root = vbdBackendDir(dd.domid);
      for (const fe of (await this.xs.directory(root).catch(() => [])) as string[]) {
        if (live.has(Number(fe))) continue;
        await this.xs.rm(`${root}/${fe}`).catch(() => {});
        this.log(
          'info',
          { domid: Number(fe), driverDomain: dd.name },
          `removed the vbds of dead domain ${fe} from driver domain ${dd.name}`,
        );
      }
    }
    const ddIds = new Set(dds.map((d) => d.domid));
    for (const d of domains) {
      if (d.privileged || ddIds.has(d.domid)) continue;
      const vbds = (await this.xs.directory(vbdFrontendDir(d.domid)).catch(() => [])) as string[];
      for (const v of vbds) {
        // the guest can write its own frontend directory: a value that is no domid is not one
        const parsed = parseXsUint(
          await this.xs.tryRead(`${vbdFrontendDir(d.domid)}/${v}/backend-id`),
          'backend-id',
        );
        if (!parsed.ok) continue;
        const id = parsed.value;
        if (id === 0 || live.has(id)) continue;
        this.log(
          'warn',
          { domid: d.domid, guest: d.name, backend: id },
          `the driver domain (domain ${id}) that served vbd ${v} of ${d.name} is gone; destroying domain ${d.domid} (${d.name})`,
        );
        await this.o.toolstack.destroyDomain(d.domid).catch((e: unknown) => {
          if (!isPvblkError(e, 'ESRCH')) throw e;
        });
        break;
      }
    }
  }
}
