/**
 * The toolstack, as `xl create` and libxl do it: create a guest domain, lay out its XenStore home, add
 * its vbds (frontend and backend directories with libxl's owners and permissions, in one
 * transaction), remove them again as libxl's device removal does (online = 0 and Closing, wait for the
 * backend's Closed, then both directories go), describe them as `xl block-list` does, and clean up
 * the backend side when a domain goes away.
 */
import {
  backendPath,
  frontendPath,
  parseXenbusState,
  PvblkError,
  XenbusState,
  XEN_IO_PROTO_ABI_X86_64,
  xvdName,
  domainPath,
  vbdBackendDir,
} from '@pvblk/shared';
import { oneEventPending, type Watch, type Hypercalls } from '@pvblk/client';

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
  /** The frontend's `trusted` (xl's trusted/untrusted); default 1. */
  trusted?: boolean;
  /** The frontend's `device-type` (xl's devtype=cdrom); default disk. */
  deviceType?: 'disk' | 'cdrom';
}

/** libxl_diskinfo: what `xl block-list` prints of one vbd (-1 where the frontend has no such key). */
export interface VbdInfo {
  devid: number;
  backendId: number;
  frontendId: number;
  /** The frontend's state (libxl_device_disk_getinfo reads the frontend's). */
  state: number;
  evtch: number;
  ringRef: number;
  backend: string;
  /** The backend's own state, and the host device it serves (for the dashboard and checks). */
  backendState: number;
  params: string | null;
  mode: string | null;
}

/** LIBXL_INIT_TIMEOUT, LIBXL_DESTROY_TIMEOUT: how long libxl waits for a backend (seconds). */
export const LIBXL_INIT_TIMEOUT_MS = 10_000;
export const LIBXL_DESTROY_TIMEOUT_MS = 10_000;

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
    const home = domainPath(domid);
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
      await f('device-type', spec.deviceType ?? 'disk');
      await f('trusted', spec.trusted === false ? 0 : 1);
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
      await b('device-type', spec.deviceType ?? 'disk');
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

  /**
   * libxl__ev_devstate_wait: resolves with the state at `path` once `want` holds, or null when it did
   * not within `timeoutMs` (or the node is gone, for waits that need it).
   */
  async waitState(
    path: string,
    want: (s: number | null) => boolean,
    timeoutMs: number,
  ): Promise<number | null> {
    let done!: (v: number | null) => void;
    const result = new Promise<number | null>((r) => (done = r));
    let seen: number | null = null;
    const check = async () => {
      const raw = await this.xc.xs.tryRead(path).catch(() => null);
      const st = raw === null ? null : parseXenbusState(raw);
      seen = st && st.ok ? st.value : null;
      if (want(seen)) done(seen);
    };
    // one check at a time, one event pending (a driver domain owns its backend's `state`, and may
    // write under it as fast as it likes while Dom0 waits)
    const w = await this.xc.xs.watch(path, oneEventPending(check).fire);
    const timer = setTimeout(() => done(null), timeoutMs);
    try {
      return await result;
    } finally {
      clearTimeout(timer);
      await w.unwatch().catch(() => {});
    }
  }

  /** Whether a vbd directory (frontend or backend) of `devid` exists for the domain. */
  async vbdExists(domid: number, devid: number): Promise<boolean> {
    const fe = await this.xc.xs.tryRead(frontendPath(domid, devid));
    const be = await this.xc.xs.tryRead(backendPath(this.xc.domid, domid, devid));
    return fe !== null || be !== null;
  }

  /**
   * libxl_device_disk_add's wait (libxl__wait_device_connection): the backend reaches InitWait within
   * LIBXL_INIT_TIMEOUT, or the device is taken away again and the call fails.
   */
  async waitBackendReady(domid: number, devid: number, timeoutMs = LIBXL_INIT_TIMEOUT_MS): Promise<void> {
    const be = backendPath(this.xc.domid, domid, devid);
    const st = await this.waitState(`${be}/state`, (s) => s !== null && s >= XenbusState.InitWait, timeoutMs);
    if (st === null) {
      await this.destroyVbd(domid, devid);
      throw new PvblkError(
        'ETIMEDOUT',
        `unable to initialize device ${be}: the backend did not reach InitWait`,
      );
    }
  }

  /**
   * libxl__initiate_device_generic_remove + device_hotplug_done: `online` = 0 and `state` = Closing
   * (unless already Closed) in one transaction, wait for the backend's Closed, then remove both
   * directories. `force` (xl block-detach -f, libxl_device_disk_destroy) removes the frontend's
   * directory first and both directories even when the backend does not close in time; without it a
   * backend that does not close leaves the device as it is and the call fails with ETIMEDOUT.
   */
  async removeVbd(
    domid: number,
    devid: number,
    o: { force?: boolean; timeoutMs?: number } = {},
  ): Promise<{ closed: boolean }> {
    const be = backendPath(this.xc.domid, domid, devid);
    const fe = frontendPath(domid, devid);
    const present = await this.xc.xs.transaction(async (tx) => {
      const xs = this.xc.xs;
      if (o.force) await xs.rm(fe, tx).catch(() => {});
      const state = await xs.tryRead(`${be}/state`, tx);
      if (state === null) return false; // the backend is gone: clean up the frontend only
      await xs.write(`${be}/online`, '0', tx);
      if (state !== String(XenbusState.Closed))
        await xs.write(`${be}/state`, String(XenbusState.Closing), tx);
      return true;
    });
    let closed = true;
    if (present) {
      const st = await this.waitState(
        `${be}/state`,
        (s) => s === null || s === XenbusState.Closed,
        o.timeoutMs ?? LIBXL_DESTROY_TIMEOUT_MS,
      );
      closed = st !== null;
      if (!closed && !o.force) {
        this.log('error', { domid, devid, be }, `unable to remove device with path ${be}`);
        throw new PvblkError(
          'ETIMEDOUT',
          `unable to remove device with path ${be}: the backend did not reach Closed within ${(o.timeoutMs ?? LIBXL_DESTROY_TIMEOUT_MS) / 1000} s (the frontend did not close; block-detach -f removes it anyway)`,
        );
      }
    }
    await this.destroyVbd(domid, devid);
    this.log(
      'info',
      { domid, devid, force: o.force === true, closed },
      `removed vbd ${devid} of domain ${domid}`,
    );
    return { closed };
  }

  /** libxl__device_destroy: both directories go, in one transaction. */
  private async destroyVbd(domid: number, devid: number): Promise<void> {
    await this.xc.xs.transaction(async (tx) => {
      await this.xc.xs.rm(frontendPath(domid, devid), tx).catch(() => {});
      await this.xc.xs.rm(backendPath(this.xc.domid, domid, devid), tx).catch(() => {});
    });
  }

  /**
   * libxl_device_disk_list + libxl_device_disk_getinfo for `xl block-list`: every vbd of the domain
   * the toolstack added (the backend directories are Dom0's; the frontend's keys are read as the
   * guest wrote them, numbers only).
   */
  async listVbds(domid: number): Promise<VbdInfo[]> {
    const xs = this.xc.xs;
    const root = `${vbdBackendDir(this.xc.domid)}/${domid}`;
    const devids = ((await xs.directory(root).catch(() => [])) as string[])
      .filter((d) => /^[0-9]+$/.test(d))
      .map(Number)
      .sort((a, b) => a - b);
    const num = (raw: string | null) => (raw !== null && /^[0-9]+$/.test(raw) ? Number(raw) : -1);
    const out: VbdInfo[] = [];
    for (const devid of devids) {
      const fe = frontendPath(domid, devid);
      const be = backendPath(this.xc.domid, domid, devid);
      out.push({
        devid,
        backendId: this.xc.domid,
        frontendId: domid,
        state: num(await xs.tryRead(`${fe}/state`).catch(() => null)),
        evtch: num(await xs.tryRead(`${fe}/event-channel`).catch(() => null)),
        ringRef: num(await xs.tryRead(`${fe}/ring-ref`).catch(() => null)),
        backend: be,
        backendState: num(await xs.tryRead(`${be}/state`).catch(() => null)),
        params: await xs.tryRead(`${be}/params`).catch(() => null),
        mode: await xs.tryRead(`${be}/mode`).catch(() => null),
      });
    }
    return out;
  }

  /** xl destroy. */
  async destroyDomain(domid: number): Promise<void> {
    await this.xc.domctl.destroy(domid);
    await this.reap();
  }

  /** The vbds ("<domid>/<devid>") whose backend directory names host device `params`. */
  async vbdsUsing(params: string): Promise<string[]> {
    return (await this.vbdUsers(params)).map((u) => `${u.domid}/${u.devid}`);
  }

  /** The vbds using host device `params`, with their mode (the block script's check_sharing reads it). */
  async vbdUsers(params: string): Promise<Array<{ domid: number; devid: number; mode: string }>> {
    const root = vbdBackendDir(this.xc.domid);
    const out: Array<{ domid: number; devid: number; mode: string }> = [];
    for (const d of (await this.xc.xs.directory(root).catch(() => [])) as string[]) {
      for (const v of (await this.xc.xs.directory(`${root}/${d}`).catch(() => [])) as string[]) {
        if ((await this.xc.xs.tryRead(`${root}/${d}/${v}/params`)) !== params) continue;
        const mode = (await this.xc.xs.tryRead(`${root}/${d}/${v}/mode`)) ?? 'w';
        out.push({ domid: Number(d), devid: Number(v), mode });
      }
    }
    return out;
  }

  /** Removes backend directories whose frontend domain no longer exists. */
  async reap(): Promise<void> {
    const live = new Set((await this.xc.domctl.list()).map((d) => String(d.domid)));
    const root = vbdBackendDir(this.xc.domid);
    // blkback's xenbus_dev_fatal records land under error/<backend path>: they go with the domain too,
    // or every guest that ever misbehaved would leave nodes behind in Dom0's tree
    const errors = `${domainPath(this.xc.domid)}/error/backend/vbd`;
    const doms = (await this.xc.xs.directory(root).catch(() => [])) as string[];
    const erred = (await this.xc.xs.directory(errors).catch(() => [])) as string[];
    for (const d of new Set([...doms, ...erred])) {
      if (live.has(d)) continue;
      await this.xc.xs.rm(`${root}/${d}`).catch(() => {});
      await this.pathCleanup(`${errors}/${d}`, domainPath(this.xc.domid)).catch(() => {});
      this.log('info', { domid: Number(d) }, `removed the vbds of dead domain ${d}`);
    }
  }

  /**
   * libxl__xs_path_cleanup: removes `path`, then each parent left empty, up to (not including)
   * `stopAt`, in one transaction. The error records' `error/backend/vbd` stayed behind once the last
   * of them had gone: three nodes in Dom0's tree for good after one guest's xenbus_dev_fatal.
   */
  private async pathCleanup(path: string, stopAt: string): Promise<void> {
    const xs = this.xc.xs;
    await xs.transaction(async (tx) => {
      await xs.rm(path, tx).catch(() => {});
      const parent = (p: string) => p.slice(0, p.lastIndexOf('/'));
      for (let p = parent(path); p.startsWith(`${stopAt}/`); p = parent(p)) {
        const left = await xs.directory(p, tx).catch(() => null);
        if (left === null || left.length > 0) break;
        await xs.rm(p, tx);
      }
    });
  }
}
