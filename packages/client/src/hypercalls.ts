/**
 * The hypercall interface the drivers are written against: what a domain's kernel can ask of Xen —
 * grant tables, event channels, XenStore, its own memory — and nothing about how the request travels.
 *
 * blkfront, blkback and the toolstack take a `Hypercalls` as a parameter (as mirage-block-xen's
 * drivers take their hypervisor, XenStore and disk), so they run unchanged over a WebSocket to the
 * hypervisor process, over an in-process pipe in unit tests, or over anything else that keeps these
 * semantics. `XenClient` is the implementation over the broker's wire protocol.
 */
import type { GrantCopyResult, PvblkError } from '@pvblk/shared';
import type { Page } from './memory.ts';

export type EventHandler = () => void | Promise<void>;

export interface Watch {
  readonly path: string;
  readonly token: string;
  unwatch(): Promise<void>;
}

export interface DomainInfo {
  domid: number;
  name: string;
  connected: boolean;
  privileged: boolean;
}

export type EndAccessResult = 'ok' | 'busy' | 'invalid';

/** Grant tables (GNTTABOP_* and the granting side's gnttab_* helpers). */
export interface GrantTableOps {
  /** gnttab_grant_foreign_access: returns the ref at once; it is applied before anything sent later. */
  grantAccess(page: Page, domid: number, readonly: boolean): number;
  /** gnttab_try_end_foreign_access for each ref: 'busy' while the grantee still maps it. */
  endForeignAccess(refs: number[]): Promise<EndAccessResult[]>;
  /** GNTTABOP_map_grant_ref, batched. */
  map(
    ops: Array<{ dom: number; ref: number; readonly: boolean }>,
  ): Promise<Array<{ status: number; page?: Page }>>;
  /** GNTTABOP_unmap_grant_ref, batched; resolves with a GNTST status per page. */
  unmap(pages: Page[]): Promise<number[]>;
  /** Unmaps without waiting: applied before anything sent afterwards (a response and its notification). */
  unmapAsync(pages: Page[]): void;
  /** GNTTABOP_copy out of frames granted to us. */
  copyFrom(ops: Array<{ dom: number; ref: number; off: number; len: number }>): Promise<GrantCopyResult[]>;
  /** GNTTABOP_copy into frames granted to us (writable grants). */
  copyTo(ops: Array<{ dom: number; ref: number; off: number; data: Uint8Array }>): Promise<number[]>;
}

/** Event channels (EVTCHNOP_*), with Linux's lateeoi delivery. */
export interface EventChannelOps {
  allocUnbound(remoteDom: number, dom?: number): Promise<number>;
  bindInterdomain(remoteDom: number, remotePort: number): Promise<number>;
  /** Registers the upcall handler; the EOI is sent when the handler (or its promise) is done. */
  onEvent(port: number, handler: EventHandler): void;
  send(port: number): void;
  /**
   * The producer half of ring.h's barrier: after publishing a new producer index, send on `port` iff
   * the peer's event index (at `eventOff` of the ring's first page `header`) lies in (oldProd,
   * newProd] — decided where the ring is coherent, so no wake-up is lost and none is spurious.
   */
  notifyIf(port: number, header: Page, eventOff: number, oldProd: number, newProd: number): void;
  close(port: number): Promise<void>;
  mask(port: number): Promise<void>;
  unmask(port: number): Promise<void>;
  status(port: number): Promise<{ status: number; remoteDomid: number; remotePort: number | null }>;
}

/** XenStore (xs_* of libxenstore), transactions with Linux's restart-on-EAGAIN. */
export interface XenStoreOps {
  read(path: string, tx?: number): Promise<string>;
  /** Like read, but ENOENT gives null. */
  tryRead(path: string, tx?: number): Promise<string | null>;
  write(path: string, value: string, tx?: number): Promise<void>;
  mkdir(path: string, tx?: number): Promise<void>;
  rm(path: string, tx?: number): Promise<void>;
  directory(path: string, tx?: number): Promise<string[]>;
  getPerms(path: string, tx?: number): Promise<string[]>;
  setPerms(path: string, perms: string[], tx?: number): Promise<void>;
  /** Fires once at once (as xenstored does) and on every change at or below `path`. */
  watch(path: string, cb: (path: string, token: string) => void): Promise<Watch>;
  transactionStart(): Promise<number>;
  transactionEnd(tx: number, commit: boolean): Promise<void>;
  transaction<T>(fn: (tx: number) => Promise<T>, maxAttempts?: number): Promise<T>;
}

/** Domain control (XEN_DOMCTL_*): the control domain only. */
export interface DomctlOps {
  create(name: string): Promise<{ domid: number; credential: string }>;
  destroy(domid: number): Promise<void>;
  list(): Promise<DomainInfo[]>;
}

export interface Hypercalls {
  readonly domid: number;
  readonly name: string;
  readonly privileged: boolean;
  /** False once the connection to the hypervisor is gone: every call then fails with ENOTCONN. */
  readonly connected: boolean;
  readonly gnttab: GrantTableOps;
  readonly evtchn: EventChannelOps;
  readonly xs: XenStoreOps;
  readonly domctl: DomctlOps;
  /** One of our own 4 KiB frames, zeroed. */
  allocPage(): Page;
  /** Returns a frame to the allocator; it must not be granted any more. */
  freePage(p: Page): void;
  /** mb(): everything we sent is applied, and everything sent to us before it has arrived. */
  fence(): Promise<void>;
  onClose(cb: (code: number, reason: string) => void): void;
  onError(cb: (err: PvblkError) => void): void;
  close(): void;
}
