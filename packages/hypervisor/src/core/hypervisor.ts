/**
 * The hypervisor proper: domains, grant tables, event channels and XenStore behind one message
 * dispatcher. It knows nothing about sockets: a transport authenticates a connection (`attach`),
 * feeds it decoded messages (`handle`) and delivers what comes back through the Session.
 *
 * Every message the hypervisor sends to a domain — call replies, forwarded page writes, event
 * upcalls, watch events — goes through `deliver`, the one place where a fault injector or a tracer
 * will sit (see `Interposer`); handlers never talk to sessions directly.
 */
import {
  DOMID_FIRST_RESERVED,
  notifyNeeded,
  PAGE_SIZE,
  PvblkError,
  isPvblkError,
  bytesView,
  forEachPageRecord,
  pageWriteMessage,
  type ClientMessage,
  type HypervisorMessage,
  type HypervisorStatus,
  type PageRun,
} from '@pvblk/shared';
import { Domain, hashCredential, newCredential, type Session } from './domain.ts';
import { DEFAULT_MAX_EVTCHN_PORT, EventChannels } from './evtchn.ts';
import { GrantTables, grantFlags, type GrantLimits } from './gnttab.ts';
import { XenStore } from '../xenstore/store.ts';
import type { XenStoreQuota } from '../xenstore/quota.ts';
import { formatPerms, parsePerms } from '../xenstore/perms.ts';
import { brokerTrace } from '../trace.ts';

/**
 * Whether a domain whose messages were being served from `session` may not be served further: it is
 * dying, or that session was closed or replaced (runSlice stops there too).
 */
function cutOff(d: Domain, session: Session | null): boolean {
  return d.dying || d.session !== session || session?.closed === true;
}

/** What passes through the delivery seam. */
export interface Envelope {
  to: Domain;
  msg: HypervisorMessage;
  /** For a reply (`ok`/`err`): the call it answers (a map or copy reply carries page contents). */
  re?: ClientMessage;
}

/**
 * The seam for the fault injector and tracer: called for every delivery with the envelope and the
 * function that performs it. None is installed by default: deliveries then take the direct path. An
 * interposer may delay, drop, duplicate or alter deliveries; handlers are unaware of it.
 */
export type Interposer = (env: Envelope, next: (env: Envelope) => void) => void;

/** The inbound seam (a paused domain's messages are held): called with each message a domain sent. */
export type InboundInterposer = (
  from: Domain,
  m: ClientMessage,
  next: (from: Domain, m: ClientMessage) => void,
) => void;

export interface HypervisorOptions {
  /** Credential of Dom0, the privileged control domain (kept only as a hash). */
  dom0Credential: string;
  /** Receives structured events for logging (domain created, session lost, protocol errors...). */
  log?: (level: 'info' | 'warn' | 'error' | 'debug', obj: Record<string, unknown>, msg: string) => void;
  interposer?: Interposer;
  /** Grant-table and shared-memory limits per domain. */
  grants?: Partial<GrantLimits>;
  /** Highest event-channel port a guest may use (xl's max_event_channels - 1). */
  maxGuestEvtchnPort?: number;
  /** XenStore quotas (xenstored's). */
  xenstoreQuota?: Partial<XenStoreQuota>;
  /** Domains that may exist at once, Dom0 included. */
  maxDomains?: number;
}

/** Longest error text sent back: a reply must stay valid however long the offending input was. */
const MAX_ERROR_TEXT = 1024;

export class Hypervisor {
  readonly domains = new Map<number, Domain>();
  readonly xenstore: XenStore;
  readonly gnttab: GrantTables;
  readonly evtchn: EventChannels;
  interposer: Interposer | null = null;
  inbound: InboundInterposer | null = null;
  private nextDomid = 1;
  private readonly started = Date.now();
  /** Messages by type for /status (Maps: a keyed increment of a dictionary object per message cost more). */
  private readonly msgsIn = new Map<string, number>();
  private readonly msgsOut = new Map<string, number>();
  private readonly log: NonNullable<HypervisorOptions['log']>;
  private readonly maxDomains: number;

  constructor(opts: HypervisorOptions) {
    this.log = opts.log ?? (() => {});
    if (opts.interposer) this.interposer = opts.interposer;
    this.maxDomains = opts.maxDomains ?? DOMID_FIRST_RESERVED;
    this.xenstore = new XenStore({ quota: opts.xenstoreQuota });
    const lookup = (domid: number) => this.domains.get(domid);
    this.gnttab = new GrantTables(
      {
        ownerWrite: (to, gfn, off, data) => this.deliverPage(to, false, gfn, off, data),
        mapperWrite: (to, handle, off, data) => this.deliverPage(to, true, handle, off, data),
        unmapped: (to, handles) => this.deliver(to, { t: 'unmapped', handles }),
      },
      lookup,
      opts.grants,
    );
    this.evtchn = new EventChannels(
      { upcall: (to, port) => this.deliver(to, { t: 'ev', port }) },
      lookup,
      opts.maxGuestEvtchnPort ?? DEFAULT_MAX_EVTCHN_PORT,
    );
    this.xenstore.onWatchEvent = (domid, path, token) => {
      const d = this.domains.get(domid);
      if (d) this.deliver(d, { t: 'xs_watch', path, token });
    };
    this.domains.set(0, new Domain(0, 'Domain-0', true, hashCredential(opts.dom0Credential)));
    this.xenstore.introduceDomain(0);
  }

  /** Deliveries to the calling domain made while its call runs; sent after the reply, as Xen returns first. */
  private deferred: { d: Domain; msgs: HypervisorMessage[] } | null = null;

  /** The only way out to a domain. */
  private deliver(to: Domain, msg: HypervisorMessage, re?: ClientMessage): void {
    if (this.deferred && this.deferred.d === to) {
      this.deferred.msgs.push(msg);
      return;
    }
    if (this.interposer) this.interposer({ to, msg, re }, this.send);
    else this.send({ to, msg });
  }

  /**
   * A forwarded page write: straight into the receiver's outbox when nothing stands in between (no
   * interposer, no reply being built for that domain), else as a message through `deliver`.
   */
  private deliverPage(to: Domain, mapped: boolean, ref: number, off: number, data: Uint8Array): void {
    const s = to.session;
    if (this.interposer || this.deferred?.d === to || !s?.sendPage) {
      this.deliver(to, mapped ? { t: 'gw', handle: ref, off, data } : { t: 'mw', gfn: ref, off, data });
      return;
    }
    const kind = mapped ? 'gw' : 'mw';
    to.stats.msgsOut++;
    this.msgsOut.set(kind, (this.msgsOut.get(kind) ?? 0) + 1);
    s.sendPage(mapped, ref, off, data);
  }

  private readonly send = (env: Envelope): void => {
    const s = env.to.session;
    if (!s) return;
    env.to.stats.msgsOut++;
    this.msgsOut.set(env.msg.t, (this.msgsOut.get(env.msg.t) ?? 0) + 1);
    s.send(env.msg);
  };

  /**
   * The domain (not dying) that has this credential, or null: the broker asks it of a WebSocket
   * upgrade that names one, before any hello, to know the connection is not a stranger's.
   */
  domidOfCredential(credential: string): number | null {
    const h = hashCredential(credential);
    for (const d of this.domains.values()) if (!d.dying && d.accepts(h)) return d.domid;
    return null;
  }

  /**
   * Binds a connection to the domain whose credential it presented. Returns the domain, or throws
   * EACCES (no domain has that credential) / EBUSY (the domain is already connected).
   */
  attach(session: Session, credential: string): Domain {
    const h = hashCredential(credential);
    for (const d of this.domains.values()) {
      if (!d.dying && d.accepts(h)) {
        if (d.session) {
          throw new PvblkError(
            'EBUSY',
            `domain ${d.domid} (${d.name}) is already connected from ${d.session.peer}`,
          );
        }
        d.session = session;
        this.log('info', { domid: d.domid, name: d.name, peer: session.peer }, 'domain connected');
        return d;
      }
    }
    throw new PvblkError('EACCES', 'no domain has that credential');
  }

  /**
   * The connection of a domain went away. A DomU whose connection is lost is destroyed (its process is
   * its existence). Dom0 survives — a restarted backend reconnects as the same domain — but loses all
   * session state: its mappings, ports, watches and transactions.
   */
  detach(session: Session): void {
    for (const d of this.domains.values()) {
      if (d.session !== session) continue;
      d.session = null;
      if (d.privileged) {
        this.log(
          'warn',
          { domid: d.domid, peer: session.peer },
          'control domain disconnected; releasing its session state',
        );
        this.gnttab.releaseAll(d);
        this.evtchn.closeAll(d);
        (this.xenstore as unknown as { releaseConnection?: (d: number) => void }).releaseConnection?.(
          d.domid,
        );
      } else {
        this.log('warn', { domid: d.domid, name: d.name }, 'domain connection lost; destroying it');
        this.destroyDomain(d.domid);
      }
    }
  }

  createDomain(name: string): { domid: number; credential: string } {
    if (this.domains.size >= Math.min(this.maxDomains, DOMID_FIRST_RESERVED - 1))
      throw new PvblkError(
        'ENOSPC',
        `${this.domains.size} domains exist, the limit (max domains ${this.maxDomains})`,
      );
    while (this.domains.has(this.nextDomid) || this.nextDomid >= DOMID_FIRST_RESERVED) {
      this.nextDomid = this.nextDomid >= DOMID_FIRST_RESERVED ? 1 : this.nextDomid + 1;
    }
    const domid = this.nextDomid++;
    const credential = newCredential();
    this.domains.set(domid, new Domain(domid, name, false, hashCredential(credential)));
    this.xenstore.introduceDomain(domid);
    this.log('info', { domid, name }, 'domain created');
    return { domid, credential };
  }

  /** Revokes grants, removes mappings, closes ports, removes XenStore nodes, fires watches. */
  destroyDomain(domid: number): void {
    const d = this.domains.get(domid);
    if (!d) throw new PvblkError('ESRCH', `no domain ${domid}`);
    if (d.privileged) throw new PvblkError('EINVAL', `domain ${domid} is the control domain`);
    d.dying = true;
    this.gnttab.releaseAll(d);
    this.evtchn.closeAll(d);
    this.domains.delete(domid);
    this.xenstore.releaseDomain(domid);
    const s = d.session;
    d.session = null;
    s?.close(4000, `domain ${domid} destroyed`);
    this.log('info', { domid, name: d.name }, 'domain destroyed');
  }

  /** Dispatches one message (or run of page writes) from an authenticated domain. Never throws. */
  handle(d: Domain, m: ClientMessage | PageRun): void {
    if (m.t === 'page_run') {
      if (!this.inbound) return this.serveRun(d, m);
      // the inbound seam sees messages one by one, as they were sent — and may cut the connection
      // (or be removed) between two of them: then the rest is not served, as runSlice stops
      const s = d.session;
      forEachPageRecord(m, (ref, off, start, len) => {
        if (cutOff(d, s)) return false;
        const one = pageWriteMessage(m.mapped, ref, off, m.frame.subarray(start, start + len));
        if (this.inbound) this.inbound(d, one, this.serve);
        else this.serve(d, one);
      });
      return;
    }
    if (this.inbound) this.inbound(d, m, this.serve);
    else this.serve(d, m);
  }

  /**
   * Page writes as they came, record by record, as `serve` would serve each: the same checks, counts
   * and replies (a refused one is answered as a failed call), without a message object per record.
   */
  private serveRun(d: Domain, run: PageRun): void {
    const kind = run.mapped ? 'gw' : 'mw';
    const s = d.session;
    let served = 0;
    forEachPageRecord(run, (ref, off, start, len) => {
      // a reply can cut the sender off (a peer that does not read): stop where serve would
      if (cutOff(d, s)) return false;
      served++;
      const data = bytesView(run.frame, start, len);
      try {
        if (run.mapped) this.gnttab.mapperWrite(d, ref, off, data);
        else this.gnttab.ownerWrite(d, ref, off, data);
      } catch (e) {
        const m = pageWriteMessage(run.mapped, ref, off, data);
        this.deliver(d, this.failure(d, m, e), m);
      }
    });
    d.stats.msgsIn += served;
    this.msgsIn.set(kind, (this.msgsIn.get(kind) ?? 0) + served);
  }

  private readonly serve = (d: Domain, m: ClientMessage): void => {
    if (d.dying) return;
    d.stats.msgsIn++;
    this.msgsIn.set(m.t, (this.msgsIn.get(m.t) ?? 0) + 1);
    // A one-way message (a page write — most of what domains send, 33 for a 128 KiB write — an
    // event, a ring check) has no reply for its other output to follow: it is served without the
    // envelope below. A refused one (a gw through a read-only or unknown mapping, say) is answered as
    // any failed call is.
    if (!('id' in m)) {
      try {
        this.dispatch(d, m);
      } catch (e) {
        this.deliver(d, this.failure(d, m, e), m);
      }
      return;
    }
    const id = m.id;
    d.stats.calls++;
    // A watch fires at once and a bind sets the new port pending: the caller hears the reply first.
    const deferred = (this.deferred = { d, msgs: [] as HypervisorMessage[] });
    let reply: HypervisorMessage;
    try {
      const r = this.dispatch(d, m);
      reply = r === undefined ? { t: 'ok', id } : { t: 'ok', id, r };
    } catch (e) {
      reply = this.failure(d, m, e);
    } finally {
      this.deferred = null;
    }
    this.deliver(d, reply, m);
    for (const msg of deferred.msgs) this.deliver(d, msg);
  };

  /** The error reply to a call that threw: its code and words, prefixed with the call's type. */
  private failure(d: Domain, m: ClientMessage, e: unknown): HypervisorMessage {
    const code = isPvblkError(e) ? e.code : 'EINVAL';
    const message = (isPvblkError(e) ? e.detail : String(e)).slice(0, MAX_ERROR_TEXT);
    if (!isPvblkError(e)) {
      this.log(
        'error',
        { domid: d.domid, type: m.t, err: String((e as Error)?.stack ?? e) },
        'hypercall handler failed',
      );
    }
    return { t: 'err', id: 'id' in m ? m.id : 0, code, message: `${m.t}: ${message}` };
  }

  /** A message that failed validation: answered with EPROTO so the sender learns what was wrong. */
  reject(d: Domain, id: number | undefined, error: string): void {
    d.stats.invalidMessages++;
    // every one is answered and counted; the log says ten in five seconds at most, and how many it left out
    const say = (n: number) =>
      this.log('warn', { domid: d.domid, suppressed: n }, `invalid message: ${n} suppressed`);
    if (d.invalidLog.allows(performance.now(), say))
      this.log('warn', { domid: d.domid, error }, 'invalid message');
    this.deliver(d, { t: 'err', id: id ?? 0, code: 'EPROTO', message: error });
  }

  private privileged(d: Domain, what: string): void {
    if (!d.privileged)
      throw new PvblkError('EPERM', `${what} is a privileged operation; domain ${d.domid} is not privileged`);
  }

  private dispatch(d: Domain, m: ClientMessage): unknown {
    switch (m.t) {
      case 'hello':
        throw new PvblkError('EISCONN', `already authenticated as domain ${d.domid}`);
      case 'dom_create':
        this.privileged(d, 'domain creation');
        return this.createDomain(m.name);
      case 'dom_destroy':
        this.privileged(d, 'domain destruction');
        this.destroyDomain(m.domid);
        return undefined;
      case 'dom_list':
        // XEN_DOMCTL_getdomaininfo is the control domain's: a guest learns nothing of the others
        this.privileged(d, 'listing domains');
        return [...this.domains.values()].map((x) => ({
          domid: x.domid,
          name: x.name,
          connected: x.session !== null,
          privileged: x.privileged,
        }));
      case 'gnt_grant':
        this.gnttab.grant(d, m.ref, m.domid, m.gfn, m.readonly, m.data);
        return undefined;
      case 'gnt_end':
        return m.refs.map((ref) => this.gnttab.endAccess(d, ref));
      case 'gnt_map':
        return this.gnttab.map(d, m.ops);
      case 'gnt_unmap':
        return this.gnttab.unmap(d, m.handles);
      case 'gnt_copy':
        return this.gnttab.copy(d, m.ops);
      case 'ev_alloc_unbound':
        return this.evtchn.allocUnbound(d, m.dom, m.remoteDom);
      case 'ev_bind_interdomain':
        return this.evtchn.bindInterdomain(d, m.remoteDom, m.remotePort);
      case 'ev_close':
        this.evtchn.close(d, m.port);
        return undefined;
      case 'ev_status':
        return this.evtchn.status(d, m.port);
      case 'ev_mask':
        this.evtchn.mask(d, m.port);
        return undefined;
      case 'ev_unmask':
        this.evtchn.unmask(d, m.port);
        return undefined;
      case 'ev_send':
        this.evtchn.send(d, m.port);
        return undefined;
      case 'ev_eoi':
        this.evtchn.eoi(d, m.port);
        return undefined;
      case 'ev_notify_if': {
        // RING_PUSH_*_AND_CHECK_NOTIFY's mb() and test, where every write is already applied in order
        const event = this.gnttab.ringFrame(d, m.mapped, m.page).data.readUInt32LE(m.eventOff);
        d.stats.ringChecks++;
        if (notifyNeeded(m.oldProd, m.newProd, event)) this.evtchn.send(d, m.port);
        brokerTrace?.routed(d.domid, m.port, m.oldProd, m.newProd, d.ports.get(m.port)?.remoteDomid ?? -1);
        return undefined;
      }
      case 'mw':
        this.gnttab.ownerWrite(d, m.gfn, m.off, m.data);
        return undefined;
      case 'gw':
        this.gnttab.mapperWrite(d, m.handle, m.off, m.data);
        return undefined;
      case 'fence':
        // Everything this domain sent before the fence has been applied, and everything forwarded
        // to it before now is queued ahead of this reply: the reply is a full barrier.
        d.stats.fences++;
        brokerTrace?.fence(d.domid, m.id);
        return undefined;
      case 'xs':
        return this.xs(d, m);
    }
  }

  private xs(d: Domain, m: Extract<ClientMessage, { t: 'xs' }>): unknown {
    const xs = this.xenstore;
    const path = (): string => {
      if (m.path === undefined || m.path === null)
        throw new PvblkError('EINVAL', `xs ${m.op}: path is required`);
      return m.path;
    };
    switch (m.op) {
      case 'read':
        return xs.read(d.domid, m.tx, path());
      case 'write':
        xs.write(d.domid, m.tx, path(), m.value ?? '');
        return undefined;
      case 'mkdir':
        xs.mkdir(d.domid, m.tx, path());
        return undefined;
      case 'rm':
        xs.rm(d.domid, m.tx, path());
        return undefined;
      case 'directory':
        return xs.directory(d.domid, m.tx, path());
      case 'get_perms':
        return formatPerms(xs.getPerms(d.domid, m.tx, path()));
      case 'set_perms':
        xs.setPerms(d.domid, m.tx, path(), parsePerms(m.perms ?? []));
        return undefined;
      case 'watch':
        xs.watch(d.domid, path(), m.token ?? '');
        return undefined;
      case 'unwatch':
        xs.unwatch(d.domid, path(), m.token ?? '');
        return undefined;
      case 'tx_start':
        return xs.transactionStart(d.domid);
      case 'tx_end':
        xs.transactionEnd(d.domid, m.tx, m.commit ?? false);
        return undefined;
    }
  }

  status(): HypervisorStatus {
    let grantsInUse = 0;
    let ports = 0;
    const domains = [...this.domains.values()].map((d) => {
      const mapped = [...d.grants.values()].filter((e) => e.mapCount > 0).length;
      grantsInUse += mapped;
      ports += d.ports.size;
      return {
        domid: d.domid,
        name: d.name,
        privileged: d.privileged,
        connected: d.session !== null,
        grants: d.grants.size,
        grantsMapped: mapped,
        mappings: d.maptrack.size,
        sharedFrames: d.frames.size,
        ports: d.ports.size,
        stats: { ...d.stats },
        memory: {
          sharedFrameBytes: d.frames.size * PAGE_SIZE,
          backlogBytes: d.session?.backlog ?? 0,
          pendingInput: d.session?.pendingInput ?? 0,
        },
        xenstore: this.xenstore.domainStats(d.domid),
      };
    });
    return {
      uptimeSeconds: (Date.now() - this.started) / 1000,
      domains,
      grantsInUse,
      ports,
      xenstore: this.xenstore.stats(),
      messages: { in: Object.fromEntries(this.msgsIn), out: Object.fromEntries(this.msgsOut) },
      limits: {
        maxDomains: this.maxDomains,
        ...this.gnttab.limits,
        maxGuestEvtchnPort: this.evtchn.maxGuestPort,
      },
    };
  }

  /** Grant-table flags of one entry as the granter would read them (for tests and debugging). */
  grantEntryFlags(domid: number, ref: number): number | null {
    const e = this.domains.get(domid)?.grants.get(ref);
    return e ? grantFlags(e) : null;
  }
}
