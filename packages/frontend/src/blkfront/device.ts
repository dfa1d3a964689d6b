/**
 * blkfront: the guest's paravirtual disk driver (drivers/block/xen-blkfront.c), as a BlockDriver.
 *
 * Handshake: wait for the backend's InitWait, size and allocate the rings, grant them, allocate event
 * channels, write the transport keys in one transaction, go Initialised; when the backend is
 * Connected, read the disk's geometry and features and go Connected.
 *
 * Reconnect: when the backend goes away (Closing/Closed under a live device — a restarted backend asks
 * for exactly this), the requests in flight are taken off the old ring and kept; the frontend closes,
 * re-initialises, runs the handshake again, and re-issues them on the new ring (blkif_recover). The
 * block layer never sees the interruption: an acknowledged write stays acknowledged, an
 * unacknowledged one is sent again.
 *
 * Hot-unplug: when the toolstack takes the device away (the backend's `online` is 0 when it goes
 * Closing — libxl writes both in one transaction), blkfront closes for good instead (6.x
 * blkfront_closing): nothing more goes on the ring, the disk is marked dead ("detected capacity
 * change from N to 0"), the requests on the ring stay there and complete as the backend answers them
 * (blkback drains before it disconnects), and the frontend goes Closed. When the device's directory
 * then goes away, `remove()` (blkfront_remove) fails whatever was never answered.
 */
import {
  BLKIF_MAX_SEGMENTS_PER_REQUEST,
  BLKIF_OP_FLUSH_DISKCACHE,
  BLKIF_OP_WRITE_BARRIER,
  BLKIF_RSP_EOPNOTSUPP,
  BLKIF_RSP_ERROR,
  BLKIF_RSP_OKAY,
  BlkifKey,
  blkifRingSize,
  KERN_ALERT,
  KERN_ERR,
  KERN_INFO,
  KERN_WARNING,
  parseXenbusState,
  parseXsBool,
  parseXsUint,
  queueDir,
  ringRefKey,
  VDISK_READONLY,
  XEN_IO_PROTO_ABI_X86_64,
  XenbusState,
  xenbusStateName,
  type KernelLog,
  BLKIF_RSP_EPROTECTION,
  SECTOR_SIZE,
  IntegrityKey,
  type IntegrityResponseInfo,
  XENBUS_MAX_RING_GRANT_ORDER,
  XEN_PAGE_SIZE,
} from '@pvblk/shared';
import { xenbusSwitchState, type Page, type Watch, type Hypercalls } from '@pvblk/client';
import type { BlockDriver, BlockRequest, BlockResult, DeviceIntegrity, QueueLimits } from '../block/types.ts';
import { requestSectors } from '../block/queue.ts';
import { FrontQueue, type PageAllocator, type Submission } from './queue.ts';
import { splitToLimits } from './split.ts';
import { blkfrontTrace, type BlkfrontTrace } from './trace.ts';

/**
 * Requests queued on a ring before they are published, however many arrive in one turn. Linux pushes
 * at the end of each plug, and a plug holds at most BLK_MAX_REQUEST_COUNT requests (16 until 5.15,
 * 32 since; blk_add_rq_to_plug flushes when it is reached). With 16, a QD32 burst reaches blkback in
 * two halves, and — the client sending each push's frame at once — Dom0 starts on the first half
 * while the guest still builds the second: 4 KiB randwrite QD32 with PI rose from ≈ 14.0k to ≈ 16.0k
 * IOPS on 2 cores (`pvblk bench`, alternating runs), at ≤ 2 notifications per 32 requests.
 */
export const MAX_REQUESTS_PER_PUSH = 16;

/**
 * The largest `sectors` a backend may announce: 2^44 - 1 (8 PiB), the last size whose every byte
 * offset is an exact integer in a JavaScript number (2^53). The guest's tools and page cache address
 * bytes with numbers, so beyond it two offsets a byte apart are the same number — a dd seek of
 * 2^61 + 300 bytes reached the ring as a different sector. Linux takes any 64-bit size; refusing a
 * larger one, as a malformed value, is a deliberate difference (docs/interop.md).
 */
export const MAX_DISK_SECTORS = Math.floor(Number.MAX_SAFE_INTEGER / 512);

/**
 * A request this big is published at once rather than held for the rest of the turn's requests:
 * Linux's BLK_PLUG_FLUSH_SIZE (blk_add_rq_to_plug flushes the plug when its last request is at least
 * 128 KiB — "holding such request makes no sense"). Without it a QD8 stream of 128 KiB writes moved in
 * lockstep, eight requests each way per notification, and Dom0 sat idle while the guest filled the
 * next eight.
 */
export const PLUG_FLUSH_BYTES = 128 * 1024;

export interface BlkfrontOptions {
  /** max_ring_page_order module parameter (Linux default 0: a one-page ring). */
  maxRingPageOrder: number;
  /** max_queues module parameter. */
  maxQueues: number;
  /** max_indirect_segments module parameter (Linux default 32). */
  maxIndirectSegments: number;
  /** feature_persistent module parameter. */
  persistentGrants: boolean;
  /** Initial ring index (tests start near 2^32 to cross the wrap in a live run). */
  ringStartIndex: number;
  /** Opt in to the blkif integrity extension when the backend offers it. */
  integrity: boolean;
  /**
   * The `trusted` module parameter: false treats every backend as untrusted. A backend is also
   * untrusted when the toolstack wrote `trusted` = 0 in the frontend's directory. Untrusted backends
   * get bounce buffers (XSA-403).
   */
  trusted: boolean;
  /** Trace hooks for `pvblk bench --trace` (trace.ts); null when tracing is off. */
  trace?: BlkfrontTrace | null;
}

export const DEFAULT_BLKFRONT_OPTIONS: Readonly<BlkfrontOptions> = Object.freeze({
  maxRingPageOrder: 0,
  maxQueues: 1,
  maxIndirectSegments: 32,
  persistentGrants: true,
  ringStartIndex: 0,
  integrity: true,
  trusted: true,
  trace: blkfrontTrace,
});

export interface BlkfrontStats {
  requests: number;
  /** Pushes that published requests (RING_PUSH_REQUESTS_AND_CHECK_NOTIFY): a plug's end, or a full one's. */
  pushes: number;
  completions: number;
  errors: number;
  requeued: number;
  reconnects: number;
  upcalls: number;
  grants: number;
  /** Upcalls that found no response, and the EOI delay they earned (lateeoi, XSA-391). */
  spuriousEvents: number;
  eoiDelayedMs: number;
}

/** blkfront_gather_backend_features' result, named as Linux's blkfront_info fields. */
interface Features {
  /** feature_flush: the device has a write cache to flush (feature-flush-cache or feature-barrier). */
  flush: boolean;
  /** feature_fua: only feature-barrier was offered, so a flush goes out as WRITE_BARRIER. */
  fua: boolean;
  discard: { granularity: number; alignment: number; secure: boolean } | null;
  /** feature_persistent: both sides offered persistent grants. */
  persistent: boolean;
  /** bounce: data travels in pages of ours (persistent grants, or an untrusted backend). */
  bounce: boolean;
  maxIndirect: number;
}

type Log = (level: 'info' | 'warn' | 'error' | 'debug', obj: Record<string, unknown>, msg: string) => void;

export class Blkfront implements BlockDriver {
  readonly name: string;
  state: XenbusState = XenbusState.Initialising;
  private backendPath = '';
  private backendId = 0;
  private queues: FrontQueue[] = [];
  private pending: Submission[] = [];
  private rr = 0;
  private watch: Watch | null = null;
  private serial: Promise<void> = Promise.resolve();
  private sectors = 0;
  private sectorSize = 512;
  private physicalSectorSize = 512;
  private info = 0;
  private features: Features = {
    flush: false,
    fua: false,
    discard: null,
    persistent: false,
    bounce: false,
    maxIndirect: 0,
  };
  /** The device's handle: its virtual-device number, the last component of its XenStore node. */
  readonly handle: number;
  /** Pages taken from the domain's allocator by blkfront and the block layer above it, not yet given back. */
  private pagesInUse = 0;
  private readonly pageAllocator: PageAllocator = {
    alloc: () => {
      this.pagesInUse++;
      return this.xc.allocPage();
    },
    free: (p) => {
      // a page still granted cannot go back: the backend may still reach it
      if (p.grantCount > 0) return;
      this.xc.freePage(p);
      this.pagesInUse--;
    },
  };
  /** The device failed for good (a hostile or broken backend). */
  failed = false;
  /** Requests were taken off a dead ring and wait for the next connection. */
  private recovering = false;
  /** The toolstack took the device away (hot-unplug): no new requests, no reconnect. */
  private unplugged = false;
  private connectedOnce = false;
  private pushScheduled = false;
  private readonly connectedWaiters: Array<() => void> = [];
  readonly stats: BlkfrontStats = {
    requests: 0,
    pushes: 0,
    completions: 0,
    errors: 0,
    requeued: 0,
    reconnects: 0,
    upcalls: 0,
    grants: 0,
    spuriousEvents: 0,
    eoiDelayedMs: 0,
  };

  constructor(
    private readonly xc: Hypercalls,
    private readonly klog: KernelLog,
    /** /local/domain/<me>/device/vbd/<devid> */
    readonly nodename: string,
    name: string,
    private readonly opts: BlkfrontOptions = DEFAULT_BLKFRONT_OPTIONS,
    private readonly log: Log = () => {},
  ) {
    this.name = name;
    this.handle = Number(nodename.slice(nodename.lastIndexOf('/') + 1)) || 0;
  }

  // ---------------------------------------------------------------------------------------------
  // BlockDriver

  capacity(): number {
    return this.sectors;
  }

  get readOnly(): boolean {
    return (this.info & VDISK_READONLY) !== 0;
  }

  /** blkif_set_queue_limits */
  limits(): QueueLimits {
    const segments = this.features.maxIndirect || BLKIF_MAX_SEGMENTS_PER_REQUEST;
    const d = this.features.discard;
    return {
      maxHwSectors: (segments * 4096) / 512,
      maxSegments: segments,
      maxSegmentSize: 4096,
      logicalBlockSize: this.sectorSize,
      physicalBlockSize: this.physicalSectorSize,
      discard: d
        ? {
            maxSectors: this.sectors,
            granularity: d.granularity || this.physicalSectorSize,
            alignment: d.alignment,
            secure: d.secure,
          }
        : null,
    };
  }

  flushSupported(): boolean {
    return this.features.flush;
  }

  /** The PI format negotiated with the backend (blkif integrity extension), or null. */
  integrity(): DeviceIntegrity | null {
    return this.integrityFormat;
  }

  private integrityFormat: DeviceIntegrity | null = null;
  /** The backend takes integrity requests inline (feature-integrity-inline). */
  private integrityInline = false;
  /** The backend is not trusted (`trusted` = 0, or the module parameter): data is bounced. */
  private untrusted = false;

  allocPage(): Page {
    return this.pageAllocator.alloc();
  }

  freePage(p: Page): void {
    this.pageAllocator.free(p);
  }

  /** The operation a flush goes out as (blkif_queue_rw_req): a barrier when that is all there is. */
  private flushOperation(): number {
    return this.features.fua ? BLKIF_OP_WRITE_BARRIER : BLKIF_OP_FLUSH_DISKCACHE;
  }

  submit(req: BlockRequest): Promise<BlockResult> {
    // a dead disk (blk_mark_disk_dead) fails new I/O before it reaches the driver
    if (this.failed || this.unplugged) return Promise.resolve({ status: 'ioerr' });
    this.opts.trace?.submitted(req);
    // blkif_queue_rq: the backend may withdraw flush support at any time; a flush then completes at
    // once with success (there is no cache left to flush)
    if (req.op === 'flush' && !this.features.flush) return Promise.resolve({ status: 'ok' });
    if (req.op === 'discard' && !this.features.discard) return Promise.resolve({ status: 'notsupp' });
    return new Promise<BlockResult>((resolve) => {
      const sub: Submission = {
        req,
        done: (status, info, piDropped) => {
          this.stats.completions++;
          const r = this.toResult(req, status, info, sub.sentAs);
          resolve(piDropped ? { ...r, piDropped: true } : r);
        },
      };
      this.pending.push(sub);
      this.schedulePush();
    });
  }

  /**
   * blkif_interrupt's completion rules: what the block layer is told for each status. A flush or
   * barrier the backend cannot do (EOPNOTSUPP, or an empty one answered ERROR) is reported as success
   * with flushing disabled for good (feature_flush = feature_fua = 0) — Linux's BLK_STS_NOTSUPP →
   * BLK_STS_OK; a failing discard disables discard and reports BLK_STS_NOTSUPP.
   */
  private toResult(
    req: BlockRequest,
    status: number | null,
    info?: IntegrityResponseInfo,
    sentAs?: number,
  ): BlockResult {
    if (status === BLKIF_RSP_OKAY) return { status: 'ok' };
    this.stats.errors++;
    if (status === BLKIF_RSP_EPROTECTION && info) {
      const check = info.check ?? 'guard';
      const where = info.caughtBy === 'device' ? 'the device' : 'the backend';
      this.klog.printk(
        KERN_ERR,
        `blkfront: ${this.name}: ${check === 'app' ? 'application' : check === 'ref' ? 'reference' : 'guard'} tag check failed at sector ${req.sector + info.sectorOffset} (caught by ${where})`,
      );
      return {
        status: 'protection',
        pi: {
          check: info.check ?? 'guard',
          sector: req.sector + info.sectorOffset,
          caughtBy: info.caughtBy ?? 'backend',
        },
      };
    }
    if (req.op === 'discard' && status === BLKIF_RSP_EOPNOTSUPP) {
      this.klog.printk(KERN_WARNING, `blkfront: ${this.name}: discard op failed`);
      this.features.discard = null;
      return { status: 'notsupp' };
    }
    if (req.op === 'flush' && status !== null) {
      const name = sentAs === BLKIF_OP_WRITE_BARRIER ? 'barrier' : 'flush';
      let notsupp = false;
      if (status === BLKIF_RSP_EOPNOTSUPP) {
        this.klog.printk(KERN_WARNING, `blkfront: ${this.name}: ${name} op failed`);
        notsupp = true;
      }
      if (status === BLKIF_RSP_ERROR && req.segments.length === 0) {
        this.klog.printk(KERN_WARNING, `blkfront: ${this.name}: empty ${name} op failed`);
        notsupp = true;
      }
      this.features.flush = this.features.fua = false;
      return notsupp ? { status: 'ok' } : { status: 'ioerr' };
    }
    return { status: 'ioerr' };
  }

  /**
   * The end of a plug: what was submitted since is published now (blkif_queue_rq()'s push at
   * `bd->last`) — rather than at the end of the turn, which would join it to what the next plug adds.
   */
  unplug(): void {
    if (this.pending.length) this.pump();
  }

  /**
   * What is submitted in one event-loop turn is published with one push (and at most one notify) per
   * MAX_REQUESTS_PER_PUSH requests — as Linux publishes at the end of each plug.
   */
  private schedulePush(): void {
    if (this.pushScheduled) return;
    this.pushScheduled = true;
    queueMicrotask(() => {
      this.pushScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.state !== XenbusState.Connected || this.failed) return;
    // requests queued on each ring since its last push
    const touched = new Map<FrontQueue, number>();
    const maxSegments = this.limits().maxSegments;
    while (this.pending.length > 0) {
      const q = this.pickQueue();
      if (!q) break;
      const sub = this.pending.shift()!;
      // a request from before a reconnect may be bigger than this connection allows (blkif_recover
      // re-submits through the block layer, which splits to the new limits)
      const parts = splitToLimits(sub, maxSegments);
      if (parts.length > 1) {
        this.pending.unshift(...parts);
        continue;
      }
      q.queue(sub);
      const n = (touched.get(q) ?? 0) + 1;
      touched.set(q, n);
      // blk_rq_bytes: what a read or write carries, the range of a discard, 0 for a flush
      if (n >= MAX_REQUESTS_PER_PUSH || requestSectors(sub.req) * SECTOR_SIZE >= PLUG_FLUSH_BYTES) {
        q.push();
        touched.set(q, 0);
      }
    }
    for (const [q, n] of touched) if (n > 0) q.push();
  }

  private pickQueue(): FrontQueue | null {
    for (let i = 0; i < this.queues.length; i++) {
      const q = this.queues[(this.rr + i) % this.queues.length];
      if (q.hasRoom()) {
        this.rr = (this.rr + i + 1) % this.queues.length;
        return q;
      }
    }
    return null;
  }

  // ---------------------------------------------------------------------------------------------
  // XenBus

  /** Resolves once the device is Connected (the first time, or again after a reconnect). */
  whenConnected(): Promise<void> {
    if (this.state === XenbusState.Connected) return Promise.resolve();
    return new Promise((r) => this.connectedWaiters.push(r));
  }

  async start(): Promise<void> {
    const be = await this.xc.xs.read(`${this.nodename}/${BlkifKey.backend}`);
    const id = parseXsUint(
      await this.xc.xs.tryRead(`${this.nodename}/${BlkifKey.backendId}`),
      'backend-id',
      0x7fef,
    );
    if (!id.ok) throw new Error(`${this.nodename}: ${id.error}`);
    this.backendPath = be;
    this.backendId = id.value;
    this.watch = await this.xc.xs.watch(`${be}/state`, () => this.enqueue(() => this.backendChanged()));
  }

  private enqueue(fn: () => Promise<void>): void {
    this.serial = this.serial.then(fn).catch((e: Error) => {
      this.log('error', { dev: this.name, err: e.stack ?? String(e) }, 'blkfront state machine error');
    });
  }

  private async switchState(s: XenbusState): Promise<void> {
    if (this.state === s) return;
    await xenbusSwitchState(this.xc.xs, this.nodename, s);
    this.log('debug', { dev: this.name, state: xenbusStateName(s) }, 'frontend state');
    this.state = s;
    if (s === XenbusState.Connected) for (const w of this.connectedWaiters.splice(0)) w();
  }

  /** blkback_changed() */
  private async backendChanged(): Promise<void> {
    const raw = await this.xc.xs.tryRead(`${this.backendPath}/state`);
    if (raw === null) return;
    const st = parseXenbusState(raw, `${this.backendPath}/state`);
    if (!st.ok) {
      this.log('warn', { dev: this.name, err: st.error }, 'bad backend state');
      return;
    }
    // Linux: dev_dbg "blkfront:blkback_changed to state %d."
    this.log('debug', { dev: this.name, state: xenbusStateName(st.value) }, 'backend changed');
    switch (st.value) {
      case XenbusState.InitWait:
        if (this.unplugged) return;
        if (this.state !== XenbusState.Initialising && this.state !== XenbusState.Closed) return;
        if (this.state === XenbusState.Closed) await this.switchState(XenbusState.Initialising);
        await this.talkToBlkback();
        return;
      case XenbusState.Connected:
        if (this.state === XenbusState.Connected) {
          await this.readGeometry(true); // online resize: the backend rewrote sectors
          return;
        }
        if (this.state !== XenbusState.Initialised) return;
        await this.connect();
        return;
      case XenbusState.Closing:
      case XenbusState.Closed:
        if (this.unplugged || (await this.backendOffline())) {
          await this.closing();
          return;
        }
        if (this.state === XenbusState.Connected || this.state === XenbusState.Initialised) {
          await this.suspend();
          await this.switchState(XenbusState.Closed);
        }
        if (
          st.value === XenbusState.Closed &&
          this.state === XenbusState.Closed &&
          !this.failed &&
          !this.unplugged
        ) {
          // come back: Initialising makes the backend prepare for a reconnect
          await this.switchState(XenbusState.Initialising);
        }
        return;
      default:
        return;
    }
  }

  /** The toolstack set the backend's `online` to 0: the device is being taken away, not restarted. */
  private async backendOffline(): Promise<boolean> {
    const raw = await this.xc.xs.tryRead(`${this.backendPath}/${BlkifKey.online}`);
    return raw === '0';
  }

  /**
   * blkfront_closing() (6.x): stop the queues, mark the disk dead (blk_mark_disk_dead →
   * set_capacity_and_notify prints the capacity change), and go Closed (xenbus_frontend_closed). The
   * requests already on the ring keep their slots: their answers still arrive and complete them.
   */
  private async closing(): Promise<void> {
    if (this.state === XenbusState.Closed && this.unplugged) return;
    this.unplugged = true;
    this.markDead();
    // waiting in the block layer, never sent: the disk is dead, they fail
    for (const s of this.pending.splice(0)) s.done(BLKIF_RSP_ERROR);
    await this.switchState(XenbusState.Closed);
    this.log('info', { dev: this.name, inflight: this.inflight }, `${this.name}: closed by the toolstack`);
  }

  private markDead(): void {
    if (this.sectors !== 0 && this.connectedOnce)
      this.klog.printk(KERN_INFO, `${this.name}: detected capacity change from ${this.sectors} to 0`);
    this.sectors = 0;
  }

  /**
   * blkfront_remove(): the device's directory is gone. Anything still waiting or on the ring fails
   * (a backend that answered everything leaves nothing here), the rings and grants are released.
   * Returns how many requests failed so.
   */
  async remove(): Promise<number> {
    this.unplugged = true;
    this.markDead();
    const subs = this.pending.splice(0);
    for (const q of this.queues) subs.push(...q.takeInflight());
    for (const s of subs) s.done(BLKIF_RSP_ERROR);
    await this.stop();
    return subs.length;
  }

  /** talk_to_blkback() */
  private async talkToBlkback(): Promise<void> {
    const xs = this.xc.xs;
    const be = this.backendPath;
    const order = await this.readBackendUint(BlkifKey.maxRingPageOrder, 0);
    const maxQueues = await this.readBackendUint(BlkifKey.multiQueueMaxQueues, 1);
    const ringOrder = Math.min(this.opts.maxRingPageOrder, order, XENBUS_MAX_RING_GRANT_ORDER);
    const nrQueues = Math.max(1, Math.min(this.opts.maxQueues, maxQueues));
    const beIndirect = await this.readBackendUint(BlkifKey.featureMaxIndirectSegments, 0);
    const indirect = Math.min(
      beIndirect,
      Math.max(this.opts.maxIndirectSegments, BLKIF_MAX_SEGMENTS_PER_REQUEST),
    );
    const maxIndirect = indirect <= BLKIF_MAX_SEGMENTS_PER_REQUEST ? 0 : indirect;
    const size = blkifRingSize(ringOrder);
    this.integrityFormat = beIndirect > 0 && this.opts.integrity ? await this.readIntegrityOffer() : null;
    const inline = parseXsBool(
      await xs.tryRead(`${this.backendPath}/${IntegrityKey.inline}`),
      IntegrityKey.inline,
    );
    this.integrityInline = this.integrityFormat !== null && inline.ok && inline.value;
    // info->bounce: the module parameter, or trusted = 0 in our own directory (talk_to_blkback)
    const trusted = parseXsBool(await xs.tryRead(`${this.nodename}/${BlkifKey.trusted}`), 'trusted', true);
    this.untrusted = !this.opts.trusted || !trusted.ok || !trusted.value;

    this.queues = [];
    for (let q = 0; q < nrQueues; q++) {
      const fq = new FrontQueue({
        xc: this.xc,
        pages: this.pageAllocator,
        backendId: this.backendId,
        handle: this.handle,
        order: ringOrder,
        size,
        maxIndirect,
        flushOperation: () => this.flushOperation(),
        integrity: this.integrityFormat !== null,
        integrityInline: this.integrityInline,
        startIndex: this.opts.ringStartIndex,
        onFatal: (msg) => this.fail(msg),
        stats: this.stats,
      });
      await fq.setup();
      fq.trace = this.opts.trace?.ring(this.xc.domid, q, fq.port) ?? null;
      fq.onSpace = () => this.schedulePush();
      this.queues.push(fq);
    }
    await xs.transaction(async (tx) => {
      const w = (k: string, v: string | number) => xs.write(`${this.nodename}/${k}`, String(v), tx);
      for (const [q, fq] of this.queues.entries()) {
        const dir = nrQueues === 1 ? '' : `${queueDir(q)}/`;
        for (let i = 0; i < fq.ringRefs.length; i++)
          await w(`${dir}${ringRefKey(ringOrder > 0, i)}`, fq.ringRefs[i]);
        await w(`${dir}${BlkifKey.eventChannel}`, fq.port);
      }
      if (ringOrder > 0) await w(BlkifKey.ringPageOrder, ringOrder);
      if (nrQueues > 1) await w(BlkifKey.multiQueueNumQueues, nrQueues);
      await w(BlkifKey.protocol, XEN_IO_PROTO_ABI_X86_64);
      await w(BlkifKey.featurePersistent, this.opts.persistentGrants ? 1 : 0);
      if (this.integrityFormat) await w(IntegrityKey.feature, 1);
      else await xs.rm(`${this.nodename}/${IntegrityKey.feature}`, tx).catch(() => {});
    });
    this.features.maxIndirect = maxIndirect;
    await this.switchState(XenbusState.Initialised);
    this.log('debug', { dev: this.name, be, ringOrder, nrQueues, maxIndirect }, 'rings set up');
  }

  /** The backend's integrity offer, if it makes one we understand (else plain blkif). */
  private async readIntegrityOffer(): Promise<DeviceIntegrity | null> {
    const xs = this.xc.xs;
    const be = this.backendPath;
    const offered = parseXsBool(await xs.tryRead(`${be}/${IntegrityKey.feature}`), IntegrityKey.feature);
    if (!offered.ok || !offered.value) return null;
    const type = await this.readBackendUint(IntegrityKey.type, 0);
    const interval = await this.readBackendUint(IntegrityKey.interval, 0);
    const tuple = await this.readBackendUint(IntegrityKey.tupleSize, 0);
    const tagSize = await this.readBackendUint(IntegrityKey.tagSize, 0);
    const guard = await xs.tryRead(`${be}/${IntegrityKey.guard}`);
    if (
      (type !== 1 && type !== 2 && type !== 3) ||
      (guard !== 'crc' && guard !== 'ip') ||
      tuple !== 8 ||
      (interval !== 512 && interval !== 4096)
    ) {
      this.log(
        'warn',
        { dev: this.name, type, guard, interval, tuple },
        'ignoring an integrity offer we do not understand',
      );
      return null;
    }
    return {
      type,
      guard,
      interval,
      tagSize,
      name: `T10-DIF-TYPE${type === 3 ? 3 : 1}-${guard.toUpperCase()}`,
    };
  }

  private async readBackendUint(key: string, dflt: number): Promise<number> {
    const raw = await this.xc.xs.tryRead(`${this.backendPath}/${key}`);
    if (raw === null) return dflt;
    const v = parseXsUint(raw, key);
    if (!v.ok) {
      this.log('warn', { dev: this.name, err: v.error }, 'ignoring a bad backend value');
      return dflt;
    }
    return v.value;
  }

  /**
   * blkfront_connect()'s reads of the disk's geometry. An online resize (Connected again) reads
   * `sectors` alone, as Linux does: the block sizes of a live disk never change. At connect the
   * block layer's limits apply (blk_validate_limits): a logical block size that is a power of two
   * from 512 to PAGE_SIZE, and a physical one that is a power of two, raised to the logical one.
   */
  private async readGeometry(resize: boolean): Promise<boolean> {
    const xs = this.xc.xs;
    const be = this.backendPath;
    const sectors = parseXsUint(await xs.tryRead(`${be}/${BlkifKey.sectors}`), 'sectors', MAX_DISK_SECTORS);
    const refuse = (why: string) => {
      this.klog.printk(KERN_WARNING, `blkfront: ${this.name}: reading backend fields at ${be}: ${why}`);
      return false;
    };
    if (resize) {
      if (!sectors.ok) return refuse(sectors.error);
      if (sectors.value !== this.sectors) this.klog.printk(KERN_INFO, `Setting capacity to ${sectors.value}`);
      this.sectors = sectors.value;
      return true;
    }
    const info = parseXsUint(await xs.tryRead(`${be}/${BlkifKey.info}`), 'info');
    const ss = parseXsUint(await xs.tryRead(`${be}/${BlkifKey.sectorSize}`), 'sector-size');
    if (!sectors.ok || !info.ok || !ss.ok) {
      const why = [sectors, info, ss].filter((r) => !r.ok).map((r) => (r as { error: string }).error);
      return refuse(why.join('; '));
    }
    const size = ss.value;
    if (size < 512 || size > XEN_PAGE_SIZE || !Number.isInteger(Math.log2(size)))
      return refuse(`sector-size ${size} is not a power of two from 512 to ${XEN_PAGE_SIZE}`);
    const physical = await this.readBackendUint(BlkifKey.physicalSectorSize, size);
    if (physical !== 0 && !Number.isInteger(Math.log2(physical)))
      return refuse(`physical-sector-size ${physical} is not a power of two`);
    this.sectors = sectors.value;
    this.info = info.value;
    this.sectorSize = size;
    this.physicalSectorSize = Math.max(physical, size);
    return true;
  }

  /** blkfront_connect(): read the backend's properties, go Connected, and re-issue what was in flight. */
  private async connect(): Promise<void> {
    if (!(await this.readGeometry(false))) return;
    const xs = this.xc.xs;
    const be = this.backendPath;
    const flag = async (k: string) => {
      const v = parseXsBool(await xs.tryRead(`${be}/${k}`), k);
      return v.ok && v.value;
    };
    // blkfront_gather_backend_features: a barrier-only backend gets WRITE_BARRIER (flush + fua);
    // feature-flush-cache wins when both are offered
    this.features.flush = this.features.fua = false;
    if (await flag(BlkifKey.featureBarrier)) this.features.flush = this.features.fua = true;
    if (await flag(BlkifKey.featureFlushCache)) {
      this.features.flush = true;
      this.features.fua = false;
    }
    this.features.discard = (await flag(BlkifKey.featureDiscard))
      ? {
          granularity: await this.readBackendUint(BlkifKey.discardGranularity, 0),
          alignment: await this.readBackendUint(BlkifKey.discardAlignment, 0),
          secure: await flag(BlkifKey.discardSecure),
        }
      : null;
    this.features.persistent = this.opts.persistentGrants && (await flag(BlkifKey.featurePersistent));
    this.features.bounce = this.untrusted || this.features.persistent;
    for (const q of this.queues) {
      q.persistent = this.features.persistent;
      q.bounce = this.features.bounce;
    }
    await this.switchState(XenbusState.Connected);
    this.logCapabilities();
    if (this.connectedOnce) this.stats.reconnects++;
    this.connectedOnce = true;
    this.log(
      'info',
      {
        dev: this.name,
        sectors: this.sectors,
        sectorSize: this.sectorSize,
        queues: this.queues.length,
        ring: this.queues[0]?.ring.size,
      },
      `${this.name}: connected (${this.sectors} sectors)`,
    );
    if (this.recovering) {
      this.recovering = false;
      this.log(
        'info',
        { dev: this.name, requeued: this.pending.length },
        'blkif_recover: re-issuing requests',
      );
    }
    this.schedulePush();
  }

  /** The capability line xlvbd_flush prints. */
  private logCapabilities(): void {
    const flush =
      this.features.flush && this.features.fua
        ? 'barrier: enabled;'
        : this.features.flush
          ? 'flush diskcache: enabled;'
          : 'barrier or flush: disabled;';
    const persistent = this.features.persistent ? 'enabled;' : 'disabled;';
    const indirect = this.features.maxIndirect > 0 ? 'enabled;' : 'disabled;';
    const bounce = this.features.bounce ? 'enabled' : 'disabled;';
    if (this.integrityFormat) {
      this.klog.printk(
        KERN_INFO,
        `blkfront: ${this.name}: integrity: ${this.integrityFormat.name}, interval ${this.integrityFormat.interval}, tag size ${this.integrityFormat.tagSize}`,
      );
    }
    this.klog.printk(
      KERN_INFO,
      `blkfront: ${this.name}: ${flush} persistent grants: ${persistent} indirect descriptors: ${indirect} bounce buffer: ${bounce}`,
    );
  }

  /** blkfront_resume's first half: keep what was in flight, drop the rings. */
  private async suspend(): Promise<void> {
    const inflight: Submission[] = [];
    for (const q of this.queues) inflight.push(...q.takeInflight());
    if (inflight.length) {
      this.stats.requeued += inflight.length;
      this.pending.unshift(...inflight);
      this.recovering = true;
    }
    const qs = this.queues;
    this.queues = [];
    for (const q of qs) await q.free();
    this.log(
      'info',
      { dev: this.name, inflight: inflight.length },
      'backend went away; requests kept for the next connection',
    );
  }

  /** A protocol violation by the backend: the device is failed, not the guest. */
  private fail(msg: string): void {
    if (this.failed) return;
    this.failed = true;
    this.klog.printk(KERN_ALERT, `${this.name}: ${msg}`);
    this.klog.printk(KERN_ALERT, `${this.name} disabled for further use`);
    const subs = this.pending.splice(0);
    for (const q of this.queues) subs.push(...q.takeInflight());
    for (const s of subs) s.done(null);
  }

  /** Arms a fault on every queue's next request or push (see FrontFaults). */
  injectFault(f: Partial<import('./queue.ts').FrontFaults>): boolean {
    if (this.queues.length === 0) return false;
    for (const q of this.queues) Object.assign(q.faults, f);
    return true;
  }

  get inflight(): number {
    return this.queues.reduce((n, q) => n + q.inflight, 0);
  }

  /** Ring geometry for status output. */
  describe(): Record<string, unknown> {
    return {
      name: this.name,
      state: xenbusStateName(this.state),
      sectors: this.sectors,
      sectorSize: this.sectorSize,
      queues: this.queues.map((q) => ({
        ringSize: q.ring.size,
        reqProd: q.ring.reqProdPvt,
        rspCons: q.ring.rspCons,
        inflight: q.inflight,
      })),
      features: { ...this.features },
      handle: this.handle,
      pages: this.pagesInUse,
      failed: this.failed,
      stats: { ...this.stats },
    };
  }

  async stop(): Promise<void> {
    await this.watch?.unwatch().catch(() => {});
    for (const q of this.queues) await q.free();
    this.queues = [];
  }

  settled(): Promise<void> {
    return this.serial;
  }
}
