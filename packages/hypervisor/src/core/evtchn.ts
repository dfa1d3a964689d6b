/**
 * Interdomain event channels with Xen's semantics: a port is unbound (waiting for one named remote
 * domain) or interdomain (linked to a peer port). `send` marks the peer pending; a pending bit is one
 * bit, so many sends before the receiver handles its upcall yield one upcall. Delivery follows Linux's
 * "lateeoi" discipline (XSA-332/391): after an upcall the port stays quiet until the receiver sends
 * an EOI, and a send that arrived meanwhile re-raises the upcall at EOI time. That ordering matters
 * here: any page write the sender issued before its send is forwarded before the re-raised upcall.
 */
import {
  DOMID_SELF,
  EVTCHN_2L_NR_CHANNELS,
  EVTCHNSTAT_interdomain,
  EVTCHNSTAT_unbound,
  PvblkError,
  type EvtchnStatus,
} from '@pvblk/shared';
import type { Domain } from './domain.ts';

export interface Port {
  port: number;
  domain: Domain;
  state: 'unbound' | 'interdomain';
  /** unbound: the domain allowed to bind; interdomain: the peer's domain. */
  remoteDomid: number;
  remote: Port | null;
  pending: boolean;
  masked: boolean;
  /** An upcall was delivered and its EOI has not come back yet. */
  inUpcall: boolean;
}

export interface EventSink {
  upcall(to: Domain, port: number): void;
}

/** xl's `max_event_channels` default: ports 1..1023 for a guest. The control domain gets the whole 2-level ABI. */
export const DEFAULT_MAX_EVTCHN_PORT = 1023;

export class EventChannels {
  constructor(
    private readonly sink: EventSink,
    private readonly lookup: (domid: number) => Domain | undefined,
    /** Highest port a guest may use (xl.cfg max_event_channels - 1 … as Xen's max_evtchn_port). */
    readonly maxGuestPort = DEFAULT_MAX_EVTCHN_PORT,
  ) {}

  private allocPort(d: Domain): number {
    const limit = d.privileged
      ? EVTCHN_2L_NR_CHANNELS - 1
      : Math.min(this.maxGuestPort, EVTCHN_2L_NR_CHANNELS - 1);
    for (let p = 1; p <= limit; p++) if (!d.ports.has(p)) return p;
    throw new PvblkError('ENOSPC', `domain ${d.domid} has no free event channel port (ports 1..${limit})`);
  }

  private port(d: Domain, port: number): Port {
    const p = d.ports.get(port);
    if (!p) throw new PvblkError('EINVAL', `domain ${d.domid} has no event channel port ${port}`);
    return p;
  }

  /** EVTCHNOP_alloc_unbound: only a privileged caller may allocate in another domain. */
  allocUnbound(caller: Domain, dom: number, remoteDom: number): number {
    const target = dom === DOMID_SELF || dom === caller.domid ? caller : this.lookup(dom);
    if (target !== caller && !caller.privileged) {
      throw new PvblkError(
        'EPERM',
        `domain ${caller.domid} may only allocate ports in itself (asked for ${dom})`,
      );
    }
    if (!target) throw new PvblkError('ESRCH', `no domain ${dom}`);
    // evtchn_alloc_unbound(): DOMID_SELF as the remote end means the caller, not the target
    const remote = remoteDom === DOMID_SELF ? caller.domid : remoteDom;
    const port = this.allocPort(target);
    target.ports.set(port, {
      port,
      domain: target,
      state: 'unbound',
      remoteDomid: remote,
      remote: null,
      pending: false,
      masked: false,
      inUpcall: false,
    });
    return port;
  }

  /** EVTCHNOP_bind_interdomain: the new local port is set pending, so an early send is not lost. */
  bindInterdomain(caller: Domain, remoteDom: number, remotePort: number): number {
    const rd = remoteDom === DOMID_SELF ? caller : this.lookup(remoteDom);
    if (!rd || rd.dying) throw new PvblkError('ESRCH', `no domain ${remoteDom}`);
    const rp = rd.ports.get(remotePort);
    if (!rp || rp.state !== 'unbound' || rp.remoteDomid !== caller.domid) {
      throw new PvblkError(
        'EINVAL',
        `port ${remotePort} of domain ${remoteDom} is not an unbound port accepting domain ${caller.domid}`,
      );
    }
    const port = this.allocPort(caller);
    const lp: Port = {
      port,
      domain: caller,
      state: 'interdomain',
      remoteDomid: rd.domid,
      remote: rp,
      pending: false,
      masked: false,
      inUpcall: false,
    };
    caller.ports.set(port, lp);
    rp.state = 'interdomain';
    rp.remote = lp;
    rp.remoteDomid = caller.domid;
    this.raise(lp);
    return port;
  }

  /** EVTCHNOP_send: sending on an unbound port is silently dropped, as Xen does. */
  send(caller: Domain, port: number): void {
    const p = this.port(caller, port);
    caller.stats.eventsSent++;
    if (p.state === 'interdomain' && p.remote) this.raise(p.remote);
  }

  private raise(p: Port): void {
    if (p.masked || p.inUpcall || p.domain.dying) {
      p.pending = true;
      return;
    }
    p.pending = false;
    p.inUpcall = true;
    p.domain.stats.eventsDelivered++;
    this.sink.upcall(p.domain, p.port);
  }

  /** The receiver finished handling an upcall; a send that came meanwhile is delivered now. */
  eoi(caller: Domain, port: number): void {
    const p = caller.ports.get(port);
    if (!p) return; // closed meanwhile: nothing to acknowledge
    p.inUpcall = false;
    if (p.pending) this.raise(p);
  }

  mask(caller: Domain, port: number): void {
    this.port(caller, port).masked = true;
  }

  unmask(caller: Domain, port: number): void {
    const p = this.port(caller, port);
    p.masked = false;
    if (p.pending) this.raise(p);
  }

  /** EVTCHNOP_close: the peer's end goes back to unbound, accepting this domain again. */
  close(caller: Domain, port: number): void {
    const p = this.port(caller, port);
    this.detach(p);
    caller.ports.delete(port);
  }

  private detach(p: Port): void {
    if (p.state === 'interdomain' && p.remote) {
      const r = p.remote;
      r.state = 'unbound';
      r.remote = null;
      r.remoteDomid = p.domain.domid;
    }
  }

  status(
    caller: Domain,
    port: number,
  ): { status: EvtchnStatus; remoteDomid: number; remotePort: number | null } {
    const p = caller.ports.get(port);
    if (!p) return { status: 0, remoteDomid: 0, remotePort: null };
    return p.state === 'unbound'
      ? { status: EVTCHNSTAT_unbound, remoteDomid: p.remoteDomid, remotePort: null }
      : { status: EVTCHNSTAT_interdomain, remoteDomid: p.remoteDomid, remotePort: p.remote?.port ?? null };
  }

  /** Closes every port of a domain (destruction, or Dom0's connection dropping). */
  closeAll(d: Domain): void {
    for (const p of d.ports.values()) this.detach(p);
    d.ports.clear();
  }
}
