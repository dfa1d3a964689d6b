/**
 * One virtual block device as the backend sees it: the XenBus half of blkback (xenbus.c) — probe,
 * backend_changed, frontend_changed, connect_ring, connect, disconnect, and xen_vbd_resize — driving
 * the BlkifRings that do the I/O.
 *
 * State changes are handled one at a time in order (Linux runs them on the xenwatch thread). Values
 * read from the frontend's directory are untrusted: a bad one is a xenbus_dev_fatal (logged, written
 * to XenStore under error/, device to Closing), never an exception that takes the backend down.
 *
 * A blkback that starts under a live frontend (the previous instance crashed) re-attaches to the rings
 * the frontend still has, at rsp_prod, as Linux's connect path does: the frontend sees nothing. Only
 * when what this instance offers no longer covers what the frontend negotiated with the previous one
 * (fewer indirect segments, persistent grants switched, the integrity extension withdrawn) does it ask
 * the frontend to go through the handshake again (Closing), which pvblk's blkfront survives.
 */
import {
  BlkifKey,
  blkifRingSize,
  GNTST,
  gntstName,
  KERN_ERR,
  KERN_INFO,
  parseXenbusState,
  parseXsBool,
  parseXsUint,
  queueDir,
  ringRefKey,
  VDISK_CDROM,
  VDISK_READONLY,
  VDISK_REMOVABLE,
  XEN_IO_PROTO_ABI_X86_32,
  XEN_IO_PROTO_ABI_X86_64,
  XenbusState,
  xenbusStateName,
  type KernelLog,
  IntegrityKey,
  SRING_REQ_PROD,
  SRING_RSP_PROD,
  domainPath,
} from '@pvblk/shared';
import { oneEventPending, xenbusSwitchState, type Page, type Watch, type Hypercalls } from '@pvblk/client';
import type { HostBlockDevice, IntegrityProfile } from '../block-device.ts';
import type { BlkbackConfig } from './config.ts';
import { BlkifRing } from './ring.ts';
import { PersistentGrants, type MapBudget } from './segments.ts';
import { addStats, newStats, type BlkbackStats } from './stats.ts';

export interface VbdContext {
  xc: Hypercalls;
  klog: KernelLog;
  config: BlkbackConfig;
  device: HostBlockDevice;
  /** MKDEV(major, minor) of the physical device. */
  pdevice: number;
  /** First sector of the vbd on the device (a partition); 0 for a whole disk. */
  startSector: number;
  frontDomid: number;
  /** The frontend domain's budget of transient mappings, shared by all its disks (MapBudget). */
  mapBudget: MapBudget;
  devid: number;
  /** /local/domain/0/backend/vbd/<domid>/<devid> */
  bePath: string;
  /** Structured log sink (pino-shaped). */
  log: (level: 'info' | 'warn' | 'error' | 'debug', obj: Record<string, unknown>, msg: string) => void;
}

/** Thrown inside the state machine to abort with xenbus_dev_fatal semantics. */
class XenbusFatal extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

const EINVAL = 22;
const EIO = 5;
const ENOSYS = 38;
const ENOENT = 2;
const EBUSY = 16;

export class VbdBackend {
  state: XenbusState = XenbusState.Unknown;
  fePath = '';
  rings: BlkifRing[] = [];
  private ringPages: Page[] = [];
  private ports: number[] = [];
  private watch: Watch | null = null;
  private serial: Promise<void> = Promise.resolve();
  private removed = false;
  private readonly ringStats: BlkbackStats[] = [];
  /** Statistics of rings from earlier connections of this device. */
  private readonly pastStats = newStats();
  /** feature_gnt_persistent: both sides offered persistent grants (connect_ring). */
  persistent = false;
  integrity: IntegrityProfile | null = null;
  nrQueues = 0;
  ringOrder = 0;
  /** vbd->readonly: `mode` has no 'w'. */
  readOnly = false;
  /** vbd->type: VDISK_CDROM / VDISK_REMOVABLE. */
  type = 0;
  /** vbd->size: the size last published in `sectors`, compared with the device's at every ring wake. */
  size = 0;
  private resizing = false;
  /** The frontend's `protocol` key (null: absent, which means the native ABI). */
  protocol: string | null = null;

  constructor(private readonly ctx: VbdContext) {}

  get name(): string {
    return `vbd-${this.ctx.frontDomid}-${this.ctx.devid}`;
  }

  /** The xenbus device's nodename as Linux prints it (relative to the backend domain's home). */
  get nodename(): string {
    return `backend/vbd/${this.ctx.frontDomid}/${this.ctx.devid}`;
  }

  stats(): BlkbackStats {
    const s = newStats();
    addStats(s, this.pastStats);
    for (const r of this.ringStats) addStats(s, r);
    s.timers = this.liveTimers;
    return s;
  }

  /** Timers held by this device's rings (none once it is disconnected). */
  get liveTimers(): number {
    return this.rings.reduce((n, r) => n + r.liveTimers, 0);
  }

  private get xs() {
    return this.ctx.xc.xs;
  }

  /**
   * xen_blkbk_probe + backend_changed: read the toolstack's keys, publish what we can do, then wait
   * for the frontend (InitWait) — or, under a frontend that is already up, re-attach to it.
   */
  async probe(): Promise<void> {
    const { bePath, config } = this.ctx;
    const fe = await this.xs.tryRead(`${bePath}/${BlkifKey.frontend}`);
    if (!fe) throw new Error(`${bePath} has no frontend key`);
    this.fePath = fe;
    // backend_changed: mode 'r' makes a read-only vbd; a cdrom is what the frontend's device-type says
    const mode = await this.xs.tryRead(`${bePath}/${BlkifKey.mode}`);
    if (mode === null) throw new Error(`${bePath}: reading mode: no such key`);
    this.readOnly = !mode.includes('w') || this.ctx.device.readOnly;
    const feType = await this.xs.tryRead(`${fe}/${BlkifKey.deviceType}`);
    const removable = parseXsBool(await this.xs.tryRead(`${bePath}/${BlkifKey.removable}`), 'removable');
    this.type =
      (feType === 'cdrom' ? VDISK_CDROM : 0) | (removable.ok && removable.value ? VDISK_REMOVABLE : 0);

    const feState = parseXenbusState(await this.xs.tryRead(`${fe}/state`));
    const live =
      feState.ok && (feState.value === XenbusState.Initialised || feState.value === XenbusState.Connected);
    // what the previous instance offered, read before this one overwrites it
    const changed = live ? await this.offerChangedUnder(fe) : null;

    // the toolstack may have taken the device away while we read it (its domain died at once): then
    // nothing is written, or the writes would bring back part of a directory nobody owns any more
    const present = await this.xs.transaction(async (tx) => {
      if (this.removed || (await this.xs.tryRead(`${bePath}/${BlkifKey.frontend}`, tx)) === null)
        return false;
      if (config.maxIndirectSegments > 0) {
        await this.xs.write(
          `${bePath}/${BlkifKey.featureMaxIndirectSegments}`,
          String(config.maxIndirectSegments),
          tx,
        );
      } else {
        await this.xs.rm(`${bePath}/${BlkifKey.featureMaxIndirectSegments}`, tx).catch(() => {});
      }
      await this.xs.write(`${bePath}/${BlkifKey.multiQueueMaxQueues}`, String(config.maxQueues), tx);
      await this.xs.write(`${bePath}/${BlkifKey.maxRingPageOrder}`, String(config.maxRingPageOrder), tx);
      // the integrity extension (docs/blkif-integrity.md): offered when the host can carry PI (DIX)
      // and indirect pages exist to hold the descriptors
      const prof = this.offeredIntegrity();
      if (prof) {
        const w = (k: string, v: string | number) => this.xs.write(`${bePath}/${k}`, String(v), tx);
        await w(IntegrityKey.feature, 1);
        await w(IntegrityKey.type, prof.type);
        await w(IntegrityKey.guard, prof.guard);
        await w(IntegrityKey.interval, prof.interval);
        await w(IntegrityKey.tupleSize, prof.tupleSize);
        await w(IntegrityKey.tagSize, prof.tagSize);
        await w(IntegrityKey.device, prof.deviceCapable ? 1 : 0);
        if (config.integrityInline) await w(IntegrityKey.inline, 1);
        else await this.xs.rm(`${bePath}/${IntegrityKey.inline}`, tx).catch(() => {});
      } else {
        // an earlier backend may have offered it: take the offer back, or the frontend opts in to nothing
        for (const k of Object.values(IntegrityKey)) await this.xs.rm(`${bePath}/${k}`, tx).catch(() => {});
      }
      return true;
    });
    if (!present) return;
    if (changed) {
      this.ctx.klog.printk(
        KERN_INFO,
        `xen-blkback: ${this.name}: frontend is ${xenbusStateName(feState.ok ? feState.value : 0)} but ${changed}; restarting the handshake`,
      );
      await this.switchState(XenbusState.Closing);
    } else {
      if (live) {
        this.ctx.klog.printk(
          KERN_INFO,
          `xen-blkback: ${this.name}: frontend is ${xenbusStateName(feState.ok ? feState.value : 0)}; re-attaching to its rings`,
        );
      }
      await this.switchState(XenbusState.InitWait);
    }
    // the watch fires at once: a live frontend is connected to straight away (frontend_changed)
    // one event pending at most (frontend_will_handle): the guest owns `state` and may write nodes
    // under it as fast as it likes, and every such write fires this watch
    const events = oneEventPending(
      () => this.frontendChanged(),
      (run) => this.enqueue(run),
    );
    const watch = await this.xs.watch(`${fe}/state`, events.fire);
    // removed while the watch was being set up: it must not outlive the device
    if (this.removed) await watch.unwatch().catch(() => {});
    else this.watch = watch;
  }

  /** The integrity profile this backend offers, or null. */
  private offeredIntegrity(): IntegrityProfile | null {
    const prof = this.ctx.device.integrity;
    return prof && this.ctx.config.maxIndirectSegments > 0 && this.ctx.config.integrity ? prof : null;
  }

  /**
   * Why the rings of a live frontend cannot be taken over as they are, or null when they can: the
   * frontend negotiated with the previous instance, whose offer is still in our directory.
   */
  private async offerChangedUnder(fe: string): Promise<string | null> {
    const { bePath, config } = this.ctx;
    const old = async (k: string) => this.xs.tryRead(`${bePath}/${k}`);
    const oldIndirect = parseXsUint(await old(BlkifKey.featureMaxIndirectSegments), 'indirect');
    if (oldIndirect.ok && oldIndirect.value > config.maxIndirectSegments) {
      return `feature-max-indirect-segments went from ${oldIndirect.value} to ${config.maxIndirectSegments}`;
    }
    const rawPersistent = await old(BlkifKey.featurePersistent);
    const oldPersistent = parseXsBool(rawPersistent, 'persistent');
    if (rawPersistent !== null && oldPersistent.ok && oldPersistent.value !== config.persistentGrants) {
      return `feature-persistent went from ${oldPersistent.value ? 1 : 0} to ${config.persistentGrants ? 1 : 0}`;
    }
    const optedIn = parseXsBool(await this.xs.tryRead(`${fe}/${IntegrityKey.feature}`), 'integrity');
    if (optedIn.ok && optedIn.value) {
      const prof = this.offeredIntegrity();
      if (!prof) return 'the integrity extension is no longer offered';
      const same =
        (await old(IntegrityKey.type)) === String(prof.type) &&
        (await old(IntegrityKey.guard)) === prof.guard &&
        (await old(IntegrityKey.interval)) === String(prof.interval);
      if (!same) return 'the integrity format changed';
      // a frontend that was offered inline requests may send them: they would now be refused
      const oldInline = parseXsBool(await old(IntegrityKey.inline), IntegrityKey.inline);
      if (oldInline.ok && oldInline.value && !config.integrityInline)
        return 'feature-integrity-inline is no longer offered';
    }
    return null;
  }

  private enqueue(fn: () => Promise<void>): void {
    this.serial = this.serial.then(fn).catch((e: Error) => this.fatalFromError(e));
  }

  private async fatalFromError(e: Error): Promise<void> {
    if (e instanceof XenbusFatal) {
      await this.devFatal(e.errno, e.message);
      return;
    }
    this.ctx.log('error', { vbd: this.name, err: e.stack ?? String(e) }, 'blkback state machine error');
    await this.devFatal(EIO, e.message).catch(() => {});
  }

  /** xenbus_dev_fatal: log, record under error/, and move to Closing. */
  private async devFatal(errno: number, msg: string): Promise<void> {
    if (this.removed) return;
    this.ctx.klog.printk(KERN_ERR, `vbd ${this.name}: ${errno} ${msg}`);
    const home = domainPath(this.ctx.xc.domid);
    const errPath = `${home}/error${this.ctx.bePath.replace(home, '')}/error`;
    await this.xs.write(errPath, `${errno} ${msg}`).catch(() => {});
    await this.disconnect();
    await this.switchState(XenbusState.Closing).catch(() => {});
  }

  /** xenbus_switch_state: no-op when unchanged; never recreates a removed directory. */
  private async switchState(s: XenbusState): Promise<void> {
    if (this.state === s || this.removed) return;
    await xenbusSwitchState(this.xs, this.ctx.bePath, s);
    this.ctx.log('debug', { vbd: this.name, state: xenbusStateName(s) }, 'backend state');
    this.state = s;
  }

  /** frontend_changed() */
  private async frontendChanged(): Promise<void> {
    if (this.removed) return;
    const raw = await this.xs.tryRead(`${this.fePath}/state`);
    if (raw === null) {
      // the frontend directory is gone (domain destroyed); the toolstack removes ours
      await this.disconnect();
      return;
    }
    const st = parseXenbusState(raw, `${this.fePath}/state`);
    if (!st.ok) throw new XenbusFatal(EINVAL, `saw bad state at frontend: ${st.error}`);
    switch (st.value) {
      case XenbusState.Initialising:
        if (this.state === XenbusState.Closed) {
          this.ctx.klog.printk(KERN_INFO, `xen-blkback: ${this.nodename}: prepare for reconnect`);
          await this.switchState(XenbusState.InitWait);
        }
        return;
      case XenbusState.InitWait:
        return;
      case XenbusState.Initialised:
      case XenbusState.Connected:
        // Closing: we asked the frontend to go away (restart, or a fatal error); wait for its Closed
        if (this.state === XenbusState.Connected || this.state === XenbusState.Closing) return;
        if (!(await this.disconnect())) throw new XenbusFatal(EBUSY, 'pending I/O');
        await this.connectRing();
        await this.connect();
        return;
      case XenbusState.Closing:
        await this.switchState(XenbusState.Closing);
        return;
      case XenbusState.Closed: {
        await this.disconnect();
        await this.switchState(XenbusState.Closed);
        // xenbus_dev_is_online: without online=1 the device goes away with the frontend
        const online = parseXsUint(await this.xs.tryRead(`${this.ctx.bePath}/${BlkifKey.online}`), 'online');
        if (!(online.ok && online.value !== 0)) await this.remove();
        return;
      }
      case XenbusState.Unknown:
        await this.remove();
        return;
      default:
        throw new XenbusFatal(EINVAL, `saw state ${st.value} at frontend`);
    }
  }

  private async readKey(dir: string, key: string, max?: number): Promise<number> {
    const v = parseXsUint(await this.xs.tryRead(`${dir}/${key}`), `${dir}/${key}`, max);
    if (!v.ok) throw new XenbusFatal(ENOENT, `reading ${dir}/${key}: ${v.error}`);
    return v.value;
  }

  /** connect_ring(): read the frontend's transport parameters, map the rings, bind the channels. */
  private async connectRing(): Promise<void> {
    const { xc, config, frontDomid } = this.ctx;
    const fe = this.fePath;
    // blkif.h: an absent protocol is the native ABI, which for this backend is x86_64
    const protocol = await this.xs.tryRead(`${fe}/${BlkifKey.protocol}`);
    this.protocol = protocol;
    if (protocol === XEN_IO_PROTO_ABI_X86_32) {
      throw new XenbusFatal(
        ENOSYS,
        `unsupported fe protocol ${protocol} (this backend implements ${XEN_IO_PROTO_ABI_X86_64} only)`,
      );
    }
    if (protocol !== null && protocol !== XEN_IO_PROTO_ABI_X86_64) {
      throw new XenbusFatal(ENOSYS, `unknown fe protocol ${protocol}`);
    }
    const fePersistent = parseXsBool(
      await this.xs.tryRead(`${fe}/${BlkifKey.featurePersistent}`),
      'feature-persistent',
    );
    this.persistent = config.persistentGrants && fePersistent.ok && fePersistent.value;
    const feIntegrity = parseXsBool(
      await this.xs.tryRead(`${fe}/${IntegrityKey.feature}`),
      IntegrityKey.feature,
    );
    const offered = this.offeredIntegrity();
    this.integrity = offered && feIntegrity.ok && feIntegrity.value ? offered : null;
    const rawQueues = await this.xs.tryRead(`${fe}/${BlkifKey.multiQueueNumQueues}`);
    let nrQueues = 1;
    if (rawQueues !== null) {
      const q = parseXsUint(rawQueues, 'multi-queue-num-queues');
      if (!q.ok || q.value === 0 || q.value > config.maxQueues) {
        throw new XenbusFatal(
          ENOSYS,
          `guest requested ${rawQueues} queues, exceeding the maximum of ${config.maxQueues}.`,
        );
      }
      nrQueues = q.value;
    }
    // a ring-page-order key, even "0", means the refs are ring-ref0..N-1 (Linux multi_ref, QEMU too)
    const rawOrder = await this.xs.tryRead(`${fe}/${BlkifKey.ringPageOrder}`);
    let order = 0;
    const multiRef = rawOrder !== null;
    if (rawOrder !== null) {
      const o = parseXsUint(rawOrder, 'ring-page-order');
      if (!o.ok || o.value > config.maxRingPageOrder) {
        throw new XenbusFatal(
          EINVAL,
          `requested ring page order ${rawOrder} exceed max:${config.maxRingPageOrder}`,
        );
      }
      order = o.value;
    }
    const nrPages = 1 << order;
    const size = blkifRingSize(order);
    this.nrQueues = nrQueues;
    this.ringOrder = order;

    for (let q = 0; q < nrQueues; q++) {
      const dir = nrQueues === 1 ? fe : `${fe}/${queueDir(q)}`;
      const port = await this.readKey(dir, BlkifKey.eventChannel);
      const refs: number[] = [];
      for (let i = 0; i < nrPages; i++) refs.push(await this.readKey(dir, ringRefKey(multiRef, i)));
      const mapped = await xc.gnttab.map(refs.map((ref) => ({ dom: frontDomid, ref, readonly: false })));
      const pages = mapped.map((m) => m.page).filter((p): p is Page => p !== undefined);
      this.ringPages.push(...pages);
      const bad = mapped.findIndex((m) => m.status !== GNTST.okay);
      if (bad >= 0) {
        throw new XenbusFatal(
          EINVAL,
          `mapping ring-ref ${refs[bad]} of domain ${frontDomid} failed (${gntstName(mapped[bad].status)})`,
        );
      }
      // xen_blkif_map: refuse a ring whose producer is already more than a ring ahead
      const reqProd = pages[0].buf.readUInt32LE(SRING_REQ_PROD);
      const rspProd = pages[0].buf.readUInt32LE(SRING_RSP_PROD);
      if ((reqProd - rspProd) >>> 0 > size) {
        throw new XenbusFatal(
          EIO,
          `ring ${q}: req_prod ${reqProd} is more than ${size} ahead of rsp_prod ${rspProd}`,
        );
      }
      const localPort = await xc.evtchn.bindInterdomain(frontDomid, port).catch((e: Error) => {
        throw new XenbusFatal(EINVAL, `binding event-channel ${port}: ${e.message}`);
      });
      this.ports.push(localPort);
      const stats = newStats();
      this.ringStats.push(stats);
      this.rings.push(
        new BlkifRing(
          {
            xc,
            klog: this.ctx.klog,
            frontDomid,
            devid: this.ctx.devid,
            pdevice: this.ctx.pdevice,
            device: this.ctx.device,
            maxIndirectSegments: config.maxIndirectSegments,
            readOnly: this.readOnly,
            flushSupport: this.ctx.device.writeCache,
            dataPath: config.dataPath,
            persistent: this.persistent
              ? new PersistentGrants(config.maxPersistentGrants, config.persistentGrantUnusedMs)
              : null,
            mapBudget: this.ctx.mapBudget,
            stats,
            integrity: this.integrity,
            integrityInline: this.integrity !== null && config.integrityInline,
            startSector: this.ctx.startSector,
            lruIntervalMs: config.lruIntervalMs,
            withdrawFeature: (key) => {
              this.xs.write(`${this.ctx.bePath}/${key}`, '0').catch(() => {});
            },
            checkResize: () => this.checkResize(),
            trace: config.trace?.ring(frontDomid, q, localPort, xc.domid) ?? null,
          },
          q,
          pages,
          size,
          localPort,
        ),
      );
    }
  }

  /** connect(): publish the disk's properties, switch to Connected, start the rings. */
  private async connect(): Promise<void> {
    const { bePath, device, config } = this.ctx;
    const discardEnable = parseXsBool(
      await this.xs.tryRead(`${bePath}/${BlkifKey.discardEnable}`),
      'discard-enable',
      true,
    );
    this.size = device.sectors;
    await this.xs.transaction(async (tx) => {
      const w = (k: string, v: string | number) => this.xs.write(`${bePath}/${k}`, String(v), tx);
      const flush = device.writeCache ? 1 : 0;
      if (config.advertiseFlushCache) await w(BlkifKey.featureFlushCache, flush);
      else await this.xs.rm(`${bePath}/${BlkifKey.featureFlushCache}`, tx).catch(() => {});
      // xen_blkbk_discard: nothing at all is written when the toolstack said discard-enable=0
      if (!discardEnable.ok || discardEnable.value) {
        if (device.discard) {
          await w(BlkifKey.discardGranularity, device.discard.granularity);
          await w(BlkifKey.discardAlignment, device.discard.alignment);
          await w(BlkifKey.discardSecure, device.discard.secure ? 1 : 0);
          await w(BlkifKey.featureDiscard, 1);
        } else {
          await w(BlkifKey.featureDiscard, 0);
        }
      } else {
        for (const k of [
          BlkifKey.featureDiscard,
          BlkifKey.discardGranularity,
          BlkifKey.discardAlignment,
          BlkifKey.discardSecure,
        ])
          await this.xs.rm(`${bePath}/${k}`, tx).catch(() => {});
      }
      await w(BlkifKey.featureBarrier, flush);
      await w(BlkifKey.featurePersistent, config.persistentGrants ? 1 : 0);
      await w(BlkifKey.sectors, this.size);
      await w(BlkifKey.info, this.type | (this.readOnly ? VDISK_READONLY : 0));
      await w(BlkifKey.sectorSize, device.logicalBlockSize);
      await w(BlkifKey.physicalSectorSize, device.physicalBlockSize);
    });
    await this.switchState(XenbusState.Connected);
    for (const r of this.rings) r.start();
    this.ctx.log(
      'info',
      {
        vbd: this.name,
        queues: this.nrQueues,
        ringPageOrder: this.ringOrder,
        persistent: this.persistent,
        integrity: this.integrity?.name ?? 'none',
        dataPath: this.ctx.config.dataPath,
        sectors: this.size,
        readOnly: this.readOnly,
        protocol: this.protocol ?? 'unspecified, assuming default',
        rspProd: this.rings.map((r) => r.back.rspProdPvt),
      },
      `${this.name} connected to ${this.ctx.device.name}`,
    );
  }

  /** Called whenever a ring wakes (xen_blkif_schedule's `vbd->size != vbd_sz(vbd)` test). */
  checkResize(): void {
    if (this.resizing || this.state !== XenbusState.Connected) return;
    if (this.ctx.device.sectors === this.size) return;
    this.resizing = true;
    this.enqueue(() => this.resize().finally(() => (this.resizing = false)));
  }

  /** xen_vbd_resize: publish the new size and rewrite `state`, so the frontend's watch fires. */
  private async resize(): Promise<void> {
    if (this.state !== XenbusState.Connected || this.removed) return;
    const size = this.ctx.device.sectors;
    if (size === this.size) return;
    const major = Math.floor(this.ctx.pdevice / 2 ** 20);
    const minor = this.ctx.pdevice & 0xfffff;
    this.ctx.klog.printk(
      KERN_INFO,
      `xen-blkback: VBD Resize: Domid: ${this.ctx.frontDomid}, Device: (${major}, ${minor})`,
    );
    this.ctx.klog.printk(KERN_INFO, `xen-blkback: VBD Resize: new size ${size}`);
    this.size = size;
    await this.xs.transaction(async (tx) => {
      await this.xs.write(`${this.ctx.bePath}/${BlkifKey.sectors}`, String(size), tx);
      await this.xs.write(`${this.ctx.bePath}/state`, String(this.state), tx);
    });
  }

  /**
   * xen_blkif_disconnect(): idempotent. Stops the rings and waits a while for the I/O in flight; then
   * drops rings, grants and channels and returns true. With I/O still in flight after the wait it keeps
   * them all and returns false (Linux's -EBUSY): its completions are answered on the rings they came
   * from, and no new connection may start while they are owed — a write abandoned here had landed on
   * the disk after a newer write of the same blocks that the next connection had acknowledged.
   */
  async disconnect(): Promise<boolean> {
    const drained = await Promise.all(this.rings.map((r) => r.stop(this.ctx.config.drainTimeoutMs)));
    if (drained.includes(false)) {
      this.ctx.klog.printk(
        KERN_ERR,
        `xen-blkback: ${this.name}: pending I/O did not finish; the rings stay until it does`,
      );
      return false;
    }
    const rings = this.rings;
    this.rings = [];
    for (const r of rings) r.releasePersistent();
    for (const s of this.ringStats.splice(0)) addStats(this.pastStats, s);
    const pages = this.ringPages.splice(0);
    const ports = this.ports.splice(0);
    if (!this.ctx.xc.connected) return true;
    if (pages.length) await this.ctx.xc.gnttab.unmap(pages).catch(() => {});
    for (const p of ports) await this.ctx.xc.evtchn.close(p).catch(() => {});
    return true;
  }

  /** The device is going away (frontend Unknown, offline and Closed, or the toolstack removed it). */
  async remove(): Promise<void> {
    if (this.removed) return;
    const released = await this.disconnect();
    this.removed = true;
    await this.watch?.unwatch().catch(() => {});
    this.watch = null;
    // rings whose I/O is still in flight go once it completes (Linux frees them with the last
    // reference the requests hold)
    if (!released) void Promise.all(this.rings.map((r) => r.stop(null))).then(() => this.disconnect());
  }

  /** Arms a fault on every ring of this device; false when it is not connected. */
  injectFault(f: Partial<import('./ring.ts').BackFaults>): boolean {
    if (this.rings.length === 0) return false;
    for (const r of this.rings) Object.assign(r.faults, f);
    return true;
  }

  /** Waits until queued state changes have been handled (tests). */
  settled(): Promise<void> {
    return this.serial;
  }
}
