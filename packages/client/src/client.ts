/**
 * The hypercall client the backend and the frontend are written against. It speaks the wire protocol
 * over any `ClientTransport` — a WebSocket to the hypervisor process, or an in-process pipe to a
 * `LocalHypervisor` in unit tests — so drivers run unchanged over both.
 *
 * Outbound messages produced in one event-loop turn go out as one frame; consecutive writes to
 * adjacent bytes of the same page are merged. Replies, upcalls, watch events and page writes are
 * handled in arrival order, so a page write forwarded before an event is applied before that event's
 * handler runs.
 */
import {
  decodeHypervisorFrame,
  DOMID_SELF,
  encodeFrame,
  forEachPageRecord,
  FrameWriter,
  GNTTAB_NR_RESERVED_ENTRIES,
  GNTST,
  isZeroPage,
  PvblkError,
  WIRE_VERSION,
  type ClientMessage,
  type ErrorCode,
  type GrantCopyResult,
  type GrantMapResult,
  type HypervisorMessage,
  type PageRun,
} from '@pvblk/shared';
import { processTrace } from '@pvblk/runtime';
import { Page, type PageWriteSink } from './memory.ts';
import type { DomainInfo, EventHandler, Hypercalls, Watch } from './hypercalls.ts';

export interface ClientTransport {
  readonly peer: string;
  /**
   * Hands a frame over; true when nothing refers to its bytes any more once this returns (the socket
   * has taken them all), so that the frame's buffer may carry a later frame.
   */
  send(frame: Buffer): boolean;
  close(): void;
  onFrame(cb: (frame: Uint8Array) => void): void;
  onClose(cb: (code: number, reason: string) => void): void;
}

/**
 * One-way messages that send the frame at once (see enqueue): a notification of the peer — an event
 * (EVTCHNOP_send) or a ring push's NOTIFY_IF. EOI concerns this domain's own port and waits for the
 * end of the turn: sent at once too, it cost a frame each (with the FINAL record of wire version 2,
 * Dom0 sent 3 frames per request at QD1 instead of 1, for 415-474 instead of 332-357 us of CPU per
 * I/O over the three processes).
 */
const DOORBELLS: ReadonlySet<string> = new Set(['ev_send', 'ev_notify_if']);

type OneWay = 'ev_send' | 'ev_eoi' | 'ev_notify_if' | 'mw' | 'gw';
type Call = Exclude<ClientMessage, { t: OneWay }>;
type CallWithoutId = Call extends infer M ? (M extends { id: number } ? Omit<M, 'id'> : never) : never;

/** Grant refs per domain (Xen's default 64 grant frames). */
const MAX_REFS = 64 * 512;

export class XenClient implements Hypercalls, PageWriteSink {
  readonly domid: number;
  readonly name: string;
  readonly privileged: boolean;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (r: unknown) => void; reject: (e: Error) => void; t: string }
  >();
  private flushScheduled = false;
  private closed = false;
  private closeReason = '';
  private readonly closeListeners: Array<(code: number, reason: string) => void> = [];
  private readonly errorListeners: Array<(err: PvblkError) => void> = [];

  // memory
  private nextGfn = 0x1000;
  private readonly localPages = new Map<number, Page>();
  private readonly mappedPages = new Map<number, Page>();
  private readonly freeRefs: number[] = [];
  private nextRef = GNTTAB_NR_RESERVED_ENTRIES;
  private readonly refPage = new Map<number, Page>();

  // events
  private readonly handlers = new Map<number, EventHandler>();
  /** Upcalls that arrived before a handler was registered (bind sets the new port pending). */
  private readonly undelivered = new Set<number>();

  // xenstore watches: token → callback
  private readonly watches = new Map<string, (path: string, token: string) => void>();
  private nextWatch = 1;

  /** Counters for drivers' statistics. */
  readonly stats = { callsSent: 0, framesSent: 0, framesReceived: 0, eventsSent: 0, eventsReceived: 0 };

  private constructor(
    private readonly transport: ClientTransport,
    info: { domid: number; name: string; privileged: boolean },
  ) {
    this.domid = info.domid;
    this.name = info.name;
    this.privileged = info.privileged;
  }

  /** Authenticates over a fresh transport; rejects with the hypervisor's error (EACCES, EBUSY...). */
  static async connect(transport: ClientTransport, credential: string): Promise<XenClient> {
    const info = await new Promise<{ domid: number; name: string; privileged: boolean }>(
      (resolve, reject) => {
        transport.onFrame((frame) => {
          const d = decodeHypervisorFrame(frame);
          if (!d.ok) return reject(new PvblkError('EPROTO', d.error));
          const first = d.messages[0];
          if (first?.t === 'ok' && first.id === 1)
            resolve(first.r as { domid: number; name: string; privileged: boolean });
          else if (first?.t === 'err') reject(new PvblkError(first.code as ErrorCode, first.message));
          else reject(new PvblkError('EPROTO', 'unexpected reply to hello'));
        });
        transport.onClose((code, reason) =>
          reject(new PvblkError('ECONNRESET', `connection closed during hello (${code} ${reason})`)),
        );
        transport.send(encodeFrame([{ t: 'hello', id: 1, v: WIRE_VERSION, credential }]));
      },
    );
    const c = new XenClient(transport, info);
    c.nextId = 2;
    transport.onFrame((f) => c.onFrame(f));
    transport.onClose((code, reason) => c.onTransportClose(code, reason));
    processTrace?.addClock(() => c.clockProbe());
    return c;
  }

  // -------------------------------------------------------------------------------------------
  // plumbing

  /** The frame this turn's messages are written into (sent at the end of the turn, or at a doorbell). */
  private readonly out = new FrameWriter();

  private enqueue(m: ClientMessage): void {
    if (!this.writable(m)) return;
    this.out.add(m);
    // A notification of the peer is a doorbell: it goes out at once, with everything written before
    // it, rather than after whatever else this turn still does (fio's accounting, the next requests'
    // set-up), so the peer starts on the request that much sooner, and a QD32 burst pushed in two
    // halves overlaps across the processes. Page writes, calls and the rest wait for the end of the
    // turn (or the next doorbell).
    if (DOORBELLS.has(m.t)) this.sendOwed();
    else this.scheduleFlush();
  }

  /** False for one-way traffic of a dead connection (nowhere to go); a call on one throws ENOTCONN. */
  private writable(m: { t: string }): boolean {
    if (!this.closed) return true;
    if (!('id' in m)) return false;
    throw new PvblkError('ENOTCONN', `not connected to the hypervisor (${this.closeReason})`);
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Bound once: scheduled in every turn that writes anything. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    this.sendOwed();
  };

  /**
   * Sends everything owed now. A flush already scheduled for the end of the turn stays scheduled: it
   * sends what is queued after this.
   */
  private sendOwed(): void {
    if (this.closed || this.out.empty) return;
    for (const f of this.out.take()) {
      this.stats.framesSent++;
      if (this.transport.send(f)) this.out.recycle(f);
    }
  }

  private call<T>(m: CallWithoutId): Promise<T> {
    const id = this.nextId++;
    this.stats.callsSent++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (r: unknown) => void, reject, t: m.t });
      try {
        // id first: V8 gives `{ ...m, id }` (a key added after a spread) a hidden class of its own
        // every time; this way each kind of call keeps one
        this.enqueue({ id, ...m } as ClientMessage);
      } catch (e) {
        this.pending.delete(id);
        reject(e as Error);
      }
    });
  }

  private onFrame(frame: Uint8Array): void {
    this.stats.framesReceived++;
    const d = decodeHypervisorFrame(frame, { pageRuns: true });
    if (!d.ok) {
      this.emitError(new PvblkError('EPROTO', `malformed frame from the hypervisor: ${d.error}`));
      return;
    }
    for (const bad of d.invalid) this.emitError(new PvblkError('EPROTO', bad.error));
    for (const m of d.messages) this.dispatch(m);
  }

  private dispatch(m: HypervisorMessage | PageRun): void {
    switch (m.t) {
      case 'page_run': {
        // others' writes to pages we see, record by record, copied from the frame
        const pages = m.mapped ? this.mappedPages : this.localPages;
        forEachPageRecord(m, (ref, off, start, len) => {
          pages.get(ref)?.applyRemoteBytes(off, m.frame, start, start + len);
        });
        return;
      }
      case 'ok': {
        const p = this.pending.get(m.id);
        if (p) {
          this.pending.delete(m.id);
          p.resolve(m.r);
        }
        return;
      }
      case 'err': {
        const p = this.pending.get(m.id);
        if (p) {
          this.pending.delete(m.id);
          p.reject(new PvblkError(m.code as ErrorCode, m.message));
        } else {
          this.emitError(new PvblkError(m.code as ErrorCode, m.message));
        }
        return;
      }
      case 'ev':
        this.stats.eventsReceived++;
        this.upcall(m.port);
        return;
      case 'xs_watch':
        this.watches.get(m.token)?.(m.path, m.token);
        return;
      case 'mw':
        this.localPages.get(m.gfn)?.applyRemoteWrite(m.off, m.data);
        return;
      case 'gw':
        this.mappedPages.get(m.handle)?.applyRemoteWrite(m.off, m.data);
        return;
      case 'unmapped':
        for (const h of m.handles) {
          const p = this.mappedPages.get(h);
          if (p) {
            p.revoked = true;
            this.mappedPages.delete(h);
          }
        }
        return;
    }
  }

  private upcall(port: number): void {
    const h = this.handlers.get(port);
    if (!h) {
      this.undelivered.add(port);
      return;
    }
    const eoi = () => {
      if (!this.closed && this.handlers.has(port)) this.enqueue({ t: 'ev_eoi', port });
    };
    let r: void | Promise<void>;
    try {
      r = h();
    } catch (e) {
      this.emitError(
        new PvblkError('EFAULT', `event handler for port ${port} threw: ${(e as Error).message}`),
      );
      eoi();
      return;
    }
    if (r instanceof Promise) {
      r.catch((e: Error) =>
        this.emitError(new PvblkError('EFAULT', `event handler for port ${port} failed: ${e.message}`)),
      ).finally(eoi);
    } else {
      eoi();
    }
  }

  private onTransportClose(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = `${code} ${reason}`.trim();
    for (const p of this.pending.values())
      p.reject(new PvblkError('ENOTCONN', `connection to the hypervisor closed (${this.closeReason})`));
    this.pending.clear();
    for (const l of this.closeListeners) l(code, reason);
  }

  private emitError(e: PvblkError): void {
    if (this.errorListeners.length === 0) return;
    for (const l of this.errorListeners) l(e);
  }

  get connected(): boolean {
    return !this.closed;
  }

  onClose(cb: (code: number, reason: string) => void): void {
    this.closeListeners.push(cb);
  }

  /** Errors that belong to no call: rejected one-way messages, protocol errors. */
  onError(cb: (err: PvblkError) => void): void {
    this.errorListeners.push(cb);
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.transport.close();
  }

  /** mb(): resolves once everything sent before it is applied and everything forwarded to us has arrived. */
  fence(): Promise<void> {
    return this.call({ t: 'fence' });
  }

  /**
   * One clock probe for tracing (@pvblk/runtime's trace.ts): a fence, with our clock when it was
   * queued and when it was answered; the hypervisor stamps the fence's id with its own clock.
   */
  async clockProbe(): Promise<{ domid: number; id: number; t0: number; t1: number }> {
    const id = this.nextId;
    const t0 = performance.now();
    await this.fence();
    return { domid: this.domid, id, t0, t1: performance.now() };
  }

  pageWrite(page: Page, off: number, len: number): void {
    // the bytes are copied into this turn's frame now, in this write's place in the order: the page
    // may change again before the frame is sent, and the peer must see each write where it was made
    // (a write continuing the previous one to the same page extends its record)
    if (this.closed) return; // one-way traffic of a dead connection has nowhere to go
    this.out.page(page.mapped, page.wireRef, off, page.buf, off, len);
    this.scheduleFlush();
  }

  // -------------------------------------------------------------------------------------------
  // domains (privileged)

  readonly domctl = {
    create: (name: string) => this.call<{ domid: number; credential: string }>({ t: 'dom_create', name }),
    destroy: (domid: number) => this.call<void>({ t: 'dom_destroy', domid }),
    list: () => this.call<DomainInfo[]>({ t: 'dom_list' }),
  };

  // -------------------------------------------------------------------------------------------
  // memory and grants

  /** Allocates one of our own 4 KiB frames (zeroed, as Linux hands out pages for sharing: XSA-403). */
  allocPage(): Page {
    const gfn = this.nextGfn++;
    const p = new Page(this, { kind: 'local', gfn });
    this.localPages.set(gfn, p);
    return p;
  }

  /** Returns a frame to the allocator; it must not be granted any more. */
  freePage(p: Page): void {
    if (p.grantCount > 0) throw new PvblkError('EBUSY', `page ${p.gfn} is still granted`);
    this.localPages.delete(p.gfn);
  }

  readonly gnttab = {
    /**
     * gnttab_grant_foreign_access: fills in one of our grant entries and returns its ref at once. The
     * hypervisor applies it before anything we send afterwards, so the ref can go straight onto a ring.
     */
    grantAccess: (page: Page, domid: number, readonly: boolean): number => {
      if (page.origin.kind !== 'local') throw new PvblkError('EINVAL', 'only our own pages can be granted');
      const ref = this.freeRefs.pop() ?? this.nextRef++;
      if (ref >= MAX_REFS) throw new PvblkError('ENOSPC', `grant table full (${MAX_REFS} entries)`);
      const data = isZeroPage(page.buf) ? undefined : Buffer.from(page.buf);
      page.grantCount++;
      this.refPage.set(ref, page);
      this.call<void>({ t: 'gnt_grant', ref, domid, gfn: page.gfn, readonly, data }).catch((e: Error) =>
        this.emitError(new PvblkError('EFAULT', `grant of ref ${ref} failed: ${e.message}`)),
      );
      return ref;
    },
    /** gnttab_try_end_foreign_access for each ref: 'busy' while the grantee still maps it. */
    endForeignAccess: async (refs: number[]): Promise<Array<'ok' | 'busy' | 'invalid'>> => {
      if (refs.length === 0) return [];
      const r = await this.call<Array<'ok' | 'busy' | 'invalid'>>({ t: 'gnt_end', refs });
      refs.forEach((ref, i) => {
        if (r[i] === 'busy') return;
        const p = this.refPage.get(ref);
        if (p) p.grantCount--;
        this.refPage.delete(ref);
        this.freeRefs.push(ref);
      });
      return r;
    },
    /** GNTTABOP_map_grant_ref, batched: one round trip for all ops. */
    map: async (
      ops: Array<{ dom: number; ref: number; readonly: boolean }>,
    ): Promise<Array<{ status: number; page?: Page }>> => {
      if (ops.length === 0) return [];
      const rs = await this.call<GrantMapResult[]>({ t: 'gnt_map', ops });
      return rs.map((r, i) => {
        if (r.status !== GNTST.okay || r.handle === undefined) return { status: r.status };
        const op = ops[i];
        // a second mapping of a frame we already map shares its page (the broker says which); the
        // broker answers in order, so the page it names is still ours (unmap forgets a page only
        // once its answer is back). Naming another would hand out zeros for the frame's contents.
        const shared = r.alias !== undefined ? this.mappedPages.get(r.alias) : undefined;
        if (r.alias !== undefined && !shared) {
          this.emitError(
            new PvblkError(
              'EFAULT',
              `map of ref ${op.ref}: handle ${r.handle} aliases ${r.alias}, which is not mapped`,
            ),
          );
          this.call<number[]>({ t: 'gnt_unmap', handles: [r.handle] }).catch(() => {});
          return { status: GNTST.general_error };
        }
        const page = new Page(
          this,
          { kind: 'mapped', handle: r.handle, granter: op.dom, ref: op.ref, readonly: op.readonly },
          shared ? undefined : r.data,
          shared,
        );
        this.mappedPages.set(r.handle, page);
        return { status: r.status, page };
      });
    },
    unmap: async (pages: Page[]): Promise<number[]> => {
      if (pages.length === 0) return [];
      const handles = pages.map((p) => p.handle);
      // forgotten only once the hypervisor has applied the unmap: a map it answered before that may
      // name one of these pages as the one it shares (a guest page in two requests in flight)
      const st = await this.call<number[]>({ t: 'gnt_unmap', handles });
      for (const h of handles) this.mappedPages.delete(h);
      return st;
    },
    /**
     * Unmaps without waiting for the answer: the hypervisor applies it before anything we send
     * afterwards (a response and its notification), which is all the frontend can observe.
     */
    unmapAsync: (pages: Page[]): void => {
      if (pages.length === 0) return;
      this.gnttab.unmap(pages).then(
        (st) =>
          st.forEach(
            (s, i) =>
              s !== GNTST.okay &&
              this.emitError(new PvblkError('EFAULT', `unmap of handle ${pages[i].handle} failed (${s})`)),
          ),
        (e: Error) => this.emitError(new PvblkError('EFAULT', `unmap failed: ${e.message}`)),
      );
    },
    /** GNTTABOP_copy out of frames granted to us, returning the bytes (no local page involved). */
    copyFrom: async (
      ops: Array<{ dom: number; ref: number; off: number; len: number }>,
    ): Promise<GrantCopyResult[]> => {
      if (ops.length === 0) return [];
      return this.call<GrantCopyResult[]>({
        t: 'gnt_copy',
        ops: ops.map((o) => ({ dir: 'from' as const, ...o })),
      });
    },
    /** GNTTABOP_copy into frames granted to us (writable grants). */
    copyTo: async (
      ops: Array<{ dom: number; ref: number; off: number; data: Uint8Array }>,
    ): Promise<number[]> => {
      if (ops.length === 0) return [];
      const rs = await this.call<GrantCopyResult[]>({
        t: 'gnt_copy',
        ops: ops.map((o) => ({ dir: 'to' as const, ...o })),
      });
      return rs.map((r) => r.status);
    },
    /**
     * GNTTABOP_copy between our pages and frames granted to us. Each op copies `len` bytes; the local
     * side is a Page of ours. Returns a GNTST status per op.
     */
    copy: async (
      ops: Array<
        | { from: { dom: number; ref: number; off: number }; to: { page: Page; off: number }; len: number }
        | { from: { page: Page; off: number }; to: { dom: number; ref: number; off: number }; len: number }
      >,
    ): Promise<number[]> => {
      if (ops.length === 0) return [];
      const wire = ops.map((op) =>
        'page' in op.to
          ? {
              dir: 'from' as const,
              dom: (op.from as { dom: number }).dom,
              ref: (op.from as { ref: number }).ref,
              off: op.from.off,
              len: op.len,
            }
          : {
              dir: 'to' as const,
              dom: op.to.dom,
              ref: op.to.ref,
              off: op.to.off,
              data: (op.from as { page: Page }).page.read(op.from.off, op.len),
            },
      );
      const rs = await this.call<GrantCopyResult[]>({ t: 'gnt_copy', ops: wire });
      return rs.map((r, i) => {
        const op = ops[i];
        if (r.status === GNTST.okay && 'page' in op.to && r.data) op.to.page.write(op.to.off, r.data);
        return r.status;
      });
    },
  };

  // -------------------------------------------------------------------------------------------
  // event channels

  readonly evtchn = {
    allocUnbound: (remoteDom: number, dom: number = DOMID_SELF) =>
      this.call<number>({ t: 'ev_alloc_unbound', dom, remoteDom }),
    bindInterdomain: (remoteDom: number, remotePort: number) =>
      this.call<number>({ t: 'ev_bind_interdomain', remoteDom, remotePort }),
    /** Registers the upcall handler; a pending upcall that arrived earlier is delivered now. */
    onEvent: (port: number, handler: EventHandler): void => {
      this.handlers.set(port, handler);
      if (this.undelivered.delete(port)) queueMicrotask(() => this.upcall(port));
    },
    send: (port: number): void => {
      this.stats.eventsSent++;
      this.enqueue({ t: 'ev_send', port });
    },
    notifyIf: (port: number, header: Page, eventOff: number, oldProd: number, newProd: number): void => {
      const { mapped, wireRef: page } = header;
      this.enqueue({ t: 'ev_notify_if', port, mapped, page, eventOff, oldProd, newProd });
    },
    close: async (port: number): Promise<void> => {
      this.handlers.delete(port);
      this.undelivered.delete(port);
      await this.call<void>({ t: 'ev_close', port });
    },
    mask: (port: number) => this.call<void>({ t: 'ev_mask', port }),
    unmask: (port: number) => this.call<void>({ t: 'ev_unmask', port }),
    status: (port: number) =>
      this.call<{ status: number; remoteDomid: number; remotePort: number | null }>({ t: 'ev_status', port }),
  };

  // -------------------------------------------------------------------------------------------
  // xenstore

  readonly xs = {
    read: (path: string, tx = 0) => this.call<string>({ t: 'xs', op: 'read', tx, path }),
    /** Like read, but ENOENT gives null. */
    tryRead: async (path: string, tx = 0): Promise<string | null> => {
      try {
        return await this.xs.read(path, tx);
      } catch (e) {
        if (e instanceof PvblkError && e.code === 'ENOENT') return null;
        throw e;
      }
    },
    write: (path: string, value: string, tx = 0) =>
      this.call<void>({ t: 'xs', op: 'write', tx, path, value }),
    mkdir: (path: string, tx = 0) => this.call<void>({ t: 'xs', op: 'mkdir', tx, path }),
    rm: (path: string, tx = 0) => this.call<void>({ t: 'xs', op: 'rm', tx, path }),
    directory: (path: string, tx = 0) => this.call<string[]>({ t: 'xs', op: 'directory', tx, path }),
    getPerms: (path: string, tx = 0) => this.call<string[]>({ t: 'xs', op: 'get_perms', tx, path }),
    setPerms: (path: string, perms: string[], tx = 0) =>
      this.call<void>({ t: 'xs', op: 'set_perms', tx, path, perms }),
    /** Registers a watch; the callback fires once at once (as xenstored does) and on every change below. */
    watch: async (path: string, cb: (path: string, token: string) => void): Promise<Watch> => {
      const token = `w${this.nextWatch++}`;
      this.watches.set(token, cb);
      try {
        await this.call<void>({ t: 'xs', op: 'watch', tx: 0, path, token });
      } catch (e) {
        this.watches.delete(token);
        throw e;
      }
      return {
        path,
        token,
        unwatch: async () => {
          this.watches.delete(token);
          if (!this.closed) await this.call<void>({ t: 'xs', op: 'unwatch', tx: 0, path, token });
        },
      };
    },
    transactionStart: () => this.call<number>({ t: 'xs', op: 'tx_start', tx: 0 }),
    transactionEnd: (tx: number, commit: boolean) => this.call<void>({ t: 'xs', op: 'tx_end', tx, commit }),
    /**
     * Runs `fn` in a transaction and commits it, restarting the whole sequence on EAGAIN as Linux's
     * xenbus callers do. An exception from `fn` aborts the transaction.
     */
    transaction: async <T>(fn: (tx: number) => Promise<T>, maxAttempts = 64): Promise<T> => {
      for (let attempt = 1; ; attempt++) {
        const tx = await this.xs.transactionStart();
        let result: T;
        try {
          result = await fn(tx);
        } catch (e) {
          await this.xs.transactionEnd(tx, false).catch(() => {});
          throw e;
        }
        try {
          await this.xs.transactionEnd(tx, true);
          return result;
        } catch (e) {
          if (!(e instanceof PvblkError && e.code === 'EAGAIN') || attempt >= maxAttempts) throw e;
        }
      }
    },
  };
}
