/**
 * In-process peers for the driver-rule tests: a host (LocalHypervisor, Dom0 with the toolstack and
 * blkback) whose vbds can carry any of the toolstack's keys, and a frontend driven by hand — every
 * XenStore key and ring slot written by the test — to put blkback in front of exactly what a Linux or
 * a hostile frontend would write.
 */
import {
  BLKIF_REQUEST_SIZE,
  BLKIF_RESPONSE_SIZE,
  blkifRingSize,
  decodeResponse,
  backendPath,
  frontendPath,
  MemoryKernelLog,
  sharedRingInit,
  xvdDevid,
  XEN_IO_PROTO_ABI_X86_64,
  type BlkifResponse,
} from '@pvblk/shared';
import { LocalHypervisor } from '@pvblk/hypervisor';
import { PagesRingMemory, type Page, type XenClient } from '@pvblk/client';
import {
  BlkbackDriver,
  MemoryBlockDevice,
  Toolstack,
  type BlkbackConfig,
  type HostBlockDevice,
  type MemoryDeviceOptions,
} from '@pvblk/backend';
import { Blkfront, DEFAULT_BLKFRONT_OPTIONS, type BlkfrontOptions } from '@pvblk/frontend';
import { until } from './stack.ts';

export const DEVID = xvdDevid(0);

/** Toolstack keys of a vbd beyond what Toolstack.addVbd writes (null removes the key). */
export interface VbdKeys {
  mode?: 'r' | 'w';
  /** Frontend's device-type ('disk', 'cdrom'). */
  deviceType?: string;
  removable?: string;
  discardEnable?: string | null;
  online?: string | null;
  /** Frontend's trusted key. */
  trusted?: string | null;
}

export interface HostDomain {
  domid: number;
  credential: string;
  fe: string;
  be: string;
  disk: HostBlockDevice;
}

export interface Host {
  lh: LocalHypervisor;
  readonly dom0: XenClient;
  klog: MemoryKernelLog;
  readonly toolstack: Toolstack;
  readonly blkback: BlkbackDriver;
  /** A domain with one vbd; blkback sees it with every key already in place. */
  domain(o?: { vbd?: VbdKeys; disk?: MemoryDeviceOptions | HostBlockDevice }): Promise<HostDomain>;
  /** Dom0's connection drops as if its process were killed; a new blkback starts with `config`. */
  restartBackend(config?: Partial<BlkbackConfig>): Promise<void>;
  close(): Promise<void>;
}

/**
 * Toolstack.addVbd's layout of both directories, in one transaction so that blkback sees every key
 * at once, with the extra keys a test asks for (libxl writes them for cdroms, untrusted backends…).
 */
export async function writeVbd(dom0: XenClient, domid: number, params: string, v: VbdKeys): Promise<void> {
  const fe = frontendPath(domid, DEVID);
  const be = backendPath(dom0.domid, domid, DEVID);
  await dom0.xs.transaction(async (tx) => {
    await dom0.xs.rm(fe, tx).catch(() => {});
    await dom0.xs.rm(be, tx).catch(() => {});
    await dom0.xs.mkdir(fe, tx);
    await dom0.xs.setPerms(fe, [`n${domid}`, `r${dom0.domid}`], tx);
    await dom0.xs.mkdir(be, tx);
    await dom0.xs.setPerms(be, [`n${dom0.domid}`, `r${domid}`], tx);
    const f = (k: string, val: string) => dom0.xs.write(`${fe}/${k}`, val, tx);
    const b = (k: string, val: string) => dom0.xs.write(`${be}/${k}`, val, tx);
    await f('backend', be);
    await f('backend-id', String(dom0.domid));
    await f('virtual-device', String(DEVID));
    await f('device-type', v.deviceType ?? 'disk');
    if (v.trusted !== null) await f('trusted', v.trusted ?? '1');
    await f('protocol', XEN_IO_PROTO_ABI_X86_64);
    await f('state', '1');
    await b('frontend', fe);
    await b('frontend-id', String(domid));
    if (v.online !== null) await b('online', v.online ?? '1');
    await b('removable', v.removable ?? '0');
    await b('bootable', '1');
    await b('dev', 'xvda');
    await b('type', 'phy');
    await b('mode', v.mode ?? 'w');
    await b('device-type', v.deviceType ?? 'disk');
    if (v.discardEnable !== null) await b('discard-enable', v.discardEnable ?? '1');
    await b('params', params);
    await b('physical-device', '8:60');
    await b('state', '1');
  });
}

export async function startHost(
  o: { blkback?: Partial<BlkbackConfig>; grants?: { maxMaptrack?: number } } = {},
): Promise<Host> {
  const lh = new LocalHypervisor({ dom0Credential: 'dom0-local', grants: o.grants });
  let dom0 = await lh.connectDom0();
  const klog = new MemoryKernelLog();
  let toolstack = new Toolstack(dom0);
  await toolstack.start();
  const devices = new Map<string, HostBlockDevice>();
  const resolver = {
    open: (params: string) => {
      const d = devices.get(params);
      return d ? { device: d, pdevice: (8 << 20) | (96 + 16 * [...devices.keys()].indexOf(params)) } : null;
    },
  };
  let blkback = new BlkbackDriver({ xc: dom0, klog, config: o.blkback, devices: resolver });
  await blkback.start();
  const old: Array<{ blkback: BlkbackDriver }> = [];
  let n = 0;
  return {
    lh,
    get dom0() {
      return dom0;
    },
    klog,
    get toolstack() {
      return toolstack;
    },
    get blkback() {
      return blkback;
    },
    async domain(d = {}) {
      const params = `/dev/sd${String.fromCharCode(103 + n)}`;
      const disk =
        d.disk && 'read' in d.disk
          ? d.disk
          : new MemoryBlockDevice({ name: params.slice(5), ...(d.disk as MemoryDeviceOptions) });
      devices.set(params, disk);
      const { domid, credential } = await toolstack.createDomain(`guest${++n}`);
      const fe = frontendPath(domid, DEVID);
      const be = backendPath(0, domid, DEVID);
      await writeVbd(dom0, domid, params, d.vbd ?? {});
      await until(() => blkback.vbds.has(`${domid}/${DEVID}`), 'blkback to probe the vbd');
      return { domid, credential, fe, be, disk };
    },
    async restartBackend(config) {
      old.push({ blkback });
      dom0.close();
      await until(() => !lh.hv.domains.get(0)!.session, 'the hypervisor to notice');
      dom0 = await lh.connectDom0();
      toolstack = new Toolstack(dom0);
      await toolstack.start();
      blkback = new BlkbackDriver({ xc: dom0, klog, config, devices: resolver });
      await blkback.start();
    },
    async close() {
      await blkback.stop();
      for (const b of old) await b.blkback.stop().catch(() => {});
      await toolstack.stop().catch(() => {});
      dom0.close();
    },
  };
}

/** Polls an asynchronous condition until it holds (5 s at most). */
export async function waitFor(cond: () => Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A Blkfront on a host domain (the driver the guest runs). */
export async function attachBlkfront(
  host: Host,
  d: HostDomain,
  opts: Partial<BlkfrontOptions> = {},
): Promise<{ xc: XenClient; klog: MemoryKernelLog; front: Blkfront }> {
  const xc = await host.lh.connect(d.credential);
  const klog = new MemoryKernelLog();
  const front = new Blkfront(xc, klog, d.fe, 'xvda', { ...DEFAULT_BLKFRONT_OPTIONS, ...opts });
  await front.start();
  await front.whenConnected();
  return { xc, klog, front };
}

/** What a hand-driven frontend writes in the handshake. */
export interface RawHandshake {
  /** Ring pages = 2^order. */
  order?: number;
  /** Write ring-page-order (Linux does only for order > 0; "0" is legal and means ring-ref0). */
  writeOrder?: boolean;
  /** Name the ring refs ring-ref0.. even for one page (what ring-page-order promises). */
  multiRef?: boolean;
  /** The protocol key; null leaves it out. */
  protocol?: string | null;
  persistent?: boolean;
}

/**
 * A frontend driven by hand: it does the handshake with the keys it is told to write and then puts
 * raw 112-byte slots on the ring. Responses are read back as the bytes the backend wrote.
 */
export class RawFront {
  readonly pages: Page[] = [];
  readonly mem: PagesRingMemory;
  readonly size: number;
  port = 0;
  reqProdPvt = 0;
  rspCons = 0;
  upcalls = 0;

  constructor(
    readonly xc: XenClient,
    readonly d: { domid: number; fe: string; be: string },
    readonly hs: RawHandshake = {},
    /** Reads a node as Dom0 (error nodes are not readable by the guest); null when there is no Dom0 here. */
    private readonly readAsDom0: ((path: string) => Promise<string | null>) | null = null,
  ) {
    const order = hs.order ?? 0;
    for (let i = 0; i < 1 << order; i++) this.pages.push(xc.allocPage());
    this.mem = new PagesRingMemory(this.pages);
    this.size = blkifRingSize(order);
    sharedRingInit(this.mem);
  }

  static async connect(host: Host, d: HostDomain, hs: RawHandshake = {}): Promise<RawFront> {
    const xc = await host.lh.connect(d.credential);
    const f = new RawFront(xc, d, hs, (p) => host.dom0.xs.tryRead(p));
    await f.handshake();
    return f;
  }

  async beState(): Promise<number> {
    return Number(await this.xc.xs.tryRead(`${this.d.be}/state`));
  }

  /** talk_to_blkback by hand, then Initialised; returns once the backend says Connected (or not). */
  async handshake(expectConnected = true): Promise<void> {
    const { xc, d, hs } = this;
    await waitFor(async () => (await this.beState()) === 2, 'the backend to reach InitWait');
    const refs = this.pages.map((p) => xc.gnttab.grantAccess(p, 0, false));
    this.port = await xc.evtchn.allocUnbound(0);
    xc.evtchn.onEvent(this.port, () => {
      this.upcalls++;
    });
    await xc.xs.transaction(async (tx) => {
      const w = (k: string, v: string | number) => xc.xs.write(`${d.fe}/${k}`, String(v), tx);
      const multi = hs.multiRef ?? (hs.order ?? 0) > 0;
      for (let i = 0; i < refs.length; i++) await w(multi ? `ring-ref${i}` : 'ring-ref', refs[i]);
      await w('event-channel', this.port);
      if (hs.writeOrder ?? (hs.order ?? 0) > 0) await w('ring-page-order', hs.order ?? 0);
      if (hs.protocol === null) await xc.xs.rm(`${d.fe}/protocol`, tx).catch(() => {});
      else await w('protocol', hs.protocol ?? XEN_IO_PROTO_ABI_X86_64);
      await w('feature-persistent', hs.persistent ? 1 : 0);
      await w('state', 3);
    });
    if (!expectConnected) return;
    let s = 0;
    await waitFor(async () => (s = await this.beState()) === 4 || s === 5, 'the backend to connect');
    if (s === 5) throw new Error(`backend went Closing: ${await this.error()}`);
  }

  /** The backend's xenbus_dev_fatal message, if any (read as Dom0: the guest may not). */
  async error(): Promise<string | null> {
    return this.readAsDom0?.(`/local/domain/0/error/backend/vbd/${this.d.domid}/${DEVID}/error`) ?? null;
  }

  /** Puts raw request slots on the ring, publishes them and notifies. */
  push(slots: Buffer[], notify = true): void {
    for (const s of slots) {
      const off = 64 + (this.reqProdPvt & (this.size - 1)) * BLKIF_REQUEST_SIZE;
      this.mem.write(off, s);
      this.reqProdPvt = (this.reqProdPvt + 1) >>> 0;
    }
    this.mem.writeU32(0, this.reqProdPvt);
    if (notify) this.xc.evtchn.send(this.port);
  }

  get rspProd(): number {
    return this.mem.readU32(8);
  }

  /** Raw bytes of the slot holding ring index `idx`. */
  slot(idx: number, len = BLKIF_REQUEST_SIZE): Buffer {
    return this.mem.read(64 + (idx & (this.size - 1)) * BLKIF_REQUEST_SIZE, len);
  }

  /** Waits for `n` more responses and returns them, decoded, in ring order. */
  async responses(n: number, what = `${n} responses`): Promise<BlkifResponse[]> {
    await until(() => (this.rspProd - this.rspCons) >>> 0 >= n, what);
    const out: BlkifResponse[] = [];
    for (let i = 0; i < n; i++) {
      out.push(decodeResponse(this.slot(this.rspCons, BLKIF_RESPONSE_SIZE)));
      this.rspCons = (this.rspCons + 1) >>> 0;
    }
    return out;
  }

  /** A page of ours granted to the backend. */
  grant(contents?: Buffer, readonly = false): { page: Page; ref: number } {
    const page = this.xc.allocPage();
    if (contents) page.write(0, contents);
    return { page, ref: this.xc.gnttab.grantAccess(page, 0, readonly) };
  }
}
