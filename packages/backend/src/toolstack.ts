/**
 * The toolstack, as `xl create` and libxl do it: create a guest domain, lay out its XenStore home, add
 * its vbds (frontend and backend directories with libxl's owners and permissions, in one
 * transaction), and clean up the backend side when a domain goes away.
 */
import {
  backendPath,
  frontendPath,
  PvblkError,
  XenbusState,
  XEN_IO_PROTO_ABI_X86_64,
  xvdName,
} from '@pvblk/shared';
import type { Watch, Hypercalls } from '@pvblk/client';

export interface VbdSpec {
  /** virtual-device number, 51712 for xvda. */
  devid: number;
  /** The host device, e.g. /dev/sdg (written as `params`); in a driver domain, the disk it names. */
  params: string;
  /**
   * Major and minor of the host device, for `physical-device` ("8:60", hex), as the block hotplug
   * script writes it once the device is there. Absent for a driver domain's disk: the hotplug runs in
   * the driver domain (xl devd), which writes it (docs/driver-domains.md).
   */
  major?: number;
  minor?: number;
  mode: 'w' | 'r';
  discard: boolean;
  /** The domain that runs the backend (xl's `backend=`): Dom0 when absent, else a driver domain. */
  backendDomid?: number;
  /** More keys for the backend directory (a driver domain's hotplug reads them). */
  backendKeys?: Record<string, string>;
}

export class Toolstack {
  private watch: Watch | null = null;

  constructor(
    private readonly xc: Hypercalls,
    private readonly log: (
      level: 'info' | 'warn' | 'error',
      obj: Record<string, unknown>,
      msg: string,
    ) => void = () => {},
  ) {
    if (!xc.privileged) throw new PvblkError('EPERM', 'the toolstack must run in the control domain');
  }

  /** Starts reaping the backend directories of domains that died. */
  async start(): Promise<void> {
    this.watch = await this.xc.xs.watch('@releaseDomain', () => {
      this.reap().catch((e: Error) =>
        this.log('error', { err: e.message }, 'reaping released domains failed'),
      );
    });
  }

  async stop(): Promise<void> {
    await this.watch?.unwatch().catch(() => {});
  }

  /** libxl__domain_make: the domain and its XenStore home. */
  async createDomain(name: string): Promise<{ domid: number; credential: string }> {
    const { domid, credential } = await this.xc.domctl.create(name);
    const home = `/local/domain/${domid}`;
    await this.xc.xs.transaction(async (tx) => {
      const xs = this.xc.xs;
      await xs.mkdir(home, tx);
      await xs.setPerms(home, ['n0', `r${domid}`], tx);
      for (const dir of ['device', 'data', 'control']) {
        await xs.mkdir(`${home}/${dir}`, tx);
        await xs.setPerms(`${home}/${dir}`, [`n${domid}`], tx);
      }
      await xs.write(`${home}/name`, name, tx);
      await xs.write(`${home}/domid`, String(domid), tx);
    });
    this.log('info', { domid, name }, `created domain ${domid} (${name})`);
    return { domid, credential };
  }

  /** libxl__device_disk_add: both directories of one vbd, in one transaction. */
  async addVbd(domid: number, spec: VbdSpec): Promise<{ frontend: string; backend: string }> {
    const bd = spec.backendDomid ?? this.xc.domid;
    const fe = frontendPath(domid, spec.devid);
    const be = backendPath(bd, domid, spec.devid);
    const dev = xvdName(spec.devid) ?? String(spec.devid);
    await this.xc.xs.transaction(async (tx) => {
      const xs = this.xc.xs;
      // a re-added device starts from a clean directory (absent parents are fine)
      await xs.rm(fe, tx).catch(() => {});
      await xs.rm(be, tx).catch(() => {});
      // libxl__device_generic_add: the frontend owns its directory and the backend domain may read
      // it; the backend domain owns its directory and the frontend may read it
      await xs.mkdir(fe, tx);
      await xs.setPerms(fe, [`n${domid}`, `r${bd}`], tx);
      await xs.mkdir(be, tx);
      await xs.setPerms(be, [`n${bd}`, `r${domid}`], tx);
      const f = (k: string, v: string | number) => xs.write(`${fe}/${k}`, String(v), tx);
      const b = (k: string, v: string | number) => xs.write(`${be}/${k}`, String(v), tx);
      await f('backend', be);
      await f('backend-id', bd);
      await f('virtual-device', spec.devid);
      await f('device-type', 'disk');
      await f('trusted', 1);
      await f('protocol', XEN_IO_PROTO_ABI_X86_64);
      await f('state', XenbusState.Initialising);
      await b('frontend', fe);
      await b('frontend-id', domid);
      await b('online', 1);
      await b('removable', 0);
      await b('bootable', 1);
      await b('dev', dev);
      await b('type', 'phy');
      await b('mode', spec.mode);
      await b('device-type', 'disk');
      await b('discard-enable', spec.discard ? 1 : 0);
      await b('params', spec.params);
      for (const [k, v] of Object.entries(spec.backendKeys ?? {})) await b(k, v);
      // what the block hotplug script writes once the device is there (in Dom0: at once)
      if (spec.major !== undefined && spec.minor !== undefined) {
        await b('physical-device', `${spec.major.toString(16)}:${spec.minor.toString(16)}`);
        await b('physical-device-path', spec.params);
      }
      await b('state', XenbusState.Initialising);
    });
    this.log(
      'info',
      { domid, devid: spec.devid, params: spec.params, backend: bd },
      `added vbd ${dev} of domain ${domid} backed by ${spec.params}${bd === this.xc.domid ? '' : ` in driver domain ${bd}`}`,
    );
    return { frontend: fe, backend: be };
  }

  /** xl destroy. */
  async destroyDomain(domid: number): Promise<void> {
    await this.xc.domctl.destroy(domid);
    await this.reap();
  }

  /** The vbds ("<domid>/<devid>") whose backend directory names host device `params`. */
  async vbdsUsing(params: string): Promise<string[]> {
    const root = `/local/domain/${this.xc.domid}/backend/vbd`;
    const out: string[] = [];
    for (const d of (await this.xc.xs.directory(root).catch(() => [])) as string[]) {
      for (const v of (await this.xc.xs.directory(`${root}/${d}`).catch(() => [])) as string[]) {
        if ((await this.xc.xs.tryRead(`${root}/${d}/${v}/params`)) === params) out.push(`${d}/${v}`);
      }
    }
    return out;
  }

  /** Removes backend directories whose frontend domain no longer exists. */
  async reap(): Promise<void> {
    const live = new Set((await this.xc.domctl.list()).map((d) => String(d.domid)));
    const root = `/local/domain/${this.xc.domid}/backend/vbd`;
    // blkback's xenbus_dev_fatal records land under error/<backend path>: they go with the domain too,
    // or every guest that ever misbehaved would leave nodes behind in Dom0's tree
    const errors = `/local/domain/${this.xc.domid}/error/backend/vbd`;
    const doms = (await this.xc.xs.directory(root).catch(() => [])) as string[];
    const erred = (await this.xc.xs.directory(errors).catch(() => [])) as string[];
    for (const d of new Set([...doms, ...erred])) {
      if (live.has(d)) continue;
      await this.xc.xs.rm(`${root}/${d}`).catch(() => {});
      await this.xc.xs.rm(`${errors}/${d}`).catch(() => {});
      this.log('info', { domid: Number(d) }, `removed the vbds of dead domain ${d}`);
    }
  }
}
