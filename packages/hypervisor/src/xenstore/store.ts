/**
 * An in-memory xenstored: the tree, permissions, watches, transactions and per-domain quotas,
 * with the semantics of xen-project/xen tools/xenstored (core.c, watch.c, transaction.c,
 * domain.c). Pure: no I/O and no timers; the broker owns connections and calls in with the
 * authenticated domid of each one, and receives watch events through `onWatchEvent`.
 */
import { PvblkError } from '@pvblk/shared';
import { type NodeView, type XsNode, withChild, withoutChild } from './node.ts';
import {
  baseName,
  canonicalize,
  type CanonicalPath,
  childPath,
  domainPath,
  isSpecialPath,
  parentOf,
  SPECIAL_PATHS,
} from './path.ts';
import {
  accessFor,
  assertDomid,
  DOM0,
  formatPerms,
  hasAccess,
  inheritPerms,
  isPrivileged,
  ownerOf,
  type PermEntry,
  validatePerms,
  XS_PERM_OWNER,
  XS_PERM_READ,
  XS_PERM_WRITE,
} from './perms.ts';
import { resolveQuota, type XenStoreQuota } from './quota.ts';
import { Transaction } from './transaction.ts';
import { eventPathFor, WatchTable } from './watch.ts';

export interface XenStoreOptions {
  quota?: Partial<XenStoreQuota>;
}

export interface XenStoreStats {
  nodes: number;
  watches: number;
  transactions: number;
}

export interface DumpEntry {
  path: string;
  value: string;
  perms: string[];
}

export type WatchEventHandler = (domid: number, path: string, token: string) => void;

/** A change waiting to be delivered, with every permission set that lets a watcher see it. */
interface PendingEvent {
  path: string;
  exact: boolean;
  visibleWith: ReadonlyArray<readonly PermEntry[]>;
}

/** Transaction ids are u32 on the wire and 0 means "none". */
const TX_ID_MAX = 0xffffffff;

const DOM0_ONLY: readonly PermEntry[] = Object.freeze([Object.freeze({ domid: DOM0, perm: 'n' as const })]);

export class XenStore {
  /** Set by the broker; called synchronously, after the change that caused it is complete. */
  onWatchEvent: WatchEventHandler = () => {};

  private readonly quota: XenStoreQuota;
  /** The live tree by absolute path, plus the two '@' nodes (which carry only permissions). One map
   * for the store's lifetime: transactions read it. */
  private readonly nodes = new Map<string, XsNode>();
  private generation = 0;
  private readonly ownedCount = new Map<number, number>();
  private readonly watches = new WatchTable();
  private readonly transactions = new Map<number, Transaction>();
  private nextTxId = 1;
  /**
   * Each domain introduced and not released, with the generation it was introduced at. A permission
   * entry beyond the owner's counts only for a domain that exists, and only if it existed when the
   * entry was written: entries naming any other domid are dropped — when they are set (xenstored's
   * `domain_alloc_permrefs` marks them ignored), when their domain is released (`domain_adjust_node_perms`),
   * and when a transaction that wrote them before its domain came (again) commits
   * (`chk_domain_generation`). So a domain that reuses an id inherits nothing, however it is reached.
   */
  private readonly introduced = new Map<number, number>();

  constructor(opts: XenStoreOptions = {}) {
    this.quota = resolveQuota(opts.quota);
    // xenstored's setup_structure(): everything starts owned by Dom0 with no access for others.
    this.setLive('/', this.newNode('', DOM0_ONLY, ['tool']));
    this.setLive('/tool', this.newNode('', DOM0_ONLY, ['xenstored']));
    this.setLive('/tool/xenstored', this.newNode('', DOM0_ONLY, []));
    for (const special of SPECIAL_PATHS) this.setLive(special, this.newNode('', DOM0_ONLY, []));
  }

  // ---- node operations -------------------------------------------------------------------

  read(caller: number, tx: number, path: string): string {
    const p = this.canon(caller, path).path;
    return this.withView(caller, tx, (v) => this.lookup(v, caller, p, XS_PERM_READ, 'read').value);
  }

  write(caller: number, tx: number, path: string, value: string): void {
    const p = this.canon(caller, path).path;
    if (typeof value !== 'string') throw new PvblkError('EINVAL', `value for ${p} must be a string`);
    const bytes = Buffer.byteLength(value);
    if (!isPrivileged(caller) && bytes > this.quota.maxValueBytes)
      throw new PvblkError(
        'E2BIG',
        `domain ${caller} may not write a ${bytes}-byte value to ${p}: the limit is ${this.quota.maxValueBytes}`,
      );
    this.withView(caller, tx, (v) => {
      const node = v.get(p);
      if (!node) return this.create(v, caller, p, value);
      if (!hasAccess(caller, node.perms, XS_PERM_WRITE)) throw this.denied(caller, 'write', p);
      v.put(p, { ...node, value, gen: this.nextGen() });
      v.changed(p, false);
    });
  }

  mkdir(caller: number, tx: number, path: string): void {
    const p = this.canon(caller, path).path;
    this.withView(caller, tx, (v) => {
      const node = v.get(p);
      if (!node) return this.create(v, caller, p, '');
      // xenstored asks for write access even when there is nothing to do.
      if (!hasAccess(caller, node.perms, XS_PERM_WRITE)) throw this.denied(caller, 'mkdir', p);
    });
  }

  rm(caller: number, tx: number, path: string): void {
    const p = this.canon(caller, path).path;
    this.withView(caller, tx, (v) => {
      const node = v.get(p);
      if (!node) {
        const err = this.absent(v, caller, p, XS_PERM_WRITE, 'remove');
        if (err.code === 'EACCES') throw err;
        if (v.get(parentOf(p))) return; // already gone: fine while the parent exists
        throw new PvblkError('ENOENT', `cannot remove ${p}: neither it nor its parent exists`);
      }
      if (!hasAccess(caller, node.perms, XS_PERM_WRITE)) throw this.denied(caller, 'remove', p);
      if (p === '/') throw new PvblkError('EINVAL', 'the root node cannot be removed');
      this.removeTree(v, p);
    });
  }

  directory(caller: number, tx: number, path: string): string[] {
    const p = this.canon(caller, path).path;
    return this.withView(caller, tx, (v) => [...this.lookup(v, caller, p, XS_PERM_READ, 'list').children]);
  }

  getPerms(caller: number, tx: number, path: string): PermEntry[] {
    const p = this.canon(caller, path, true).path;
    return this.withView(caller, tx, (v) =>
      this.lookup(v, caller, p, XS_PERM_READ, 'get permissions of').perms.map((e) => ({ ...e })),
    );
  }

  setPerms(caller: number, tx: number, path: string, perms: PermEntry[]): void {
    const p = this.canon(caller, path, true).path;
    const list = validatePerms(perms);
    if (!isPrivileged(caller) && list.length > this.quota.maxPermsPerNode)
      throw new PvblkError(
        'ENOSPC',
        `domain ${caller} may not set ${list.length} permission entries on ${p}: the limit is ${this.quota.maxPermsPerNode}`,
      );
    this.withView(caller, tx, (v) => {
      const node = v.get(p);
      if (!node) throw this.absent(v, caller, p, XS_PERM_WRITE | XS_PERM_OWNER, 'set permissions on');
      if (!hasAccess(caller, node.perms, XS_PERM_WRITE | XS_PERM_OWNER))
        throw new PvblkError(
          'EACCES',
          `domain ${caller} may not set permissions on ${p}: it is owned by domain ${ownerOf(node.perms)}`,
        );
      if (!isPrivileged(caller) && list[0].domid !== ownerOf(node.perms))
        throw new PvblkError(
          'EPERM',
          `domain ${caller} may not hand ${p} to domain ${list[0].domid}: only Dom0 may change an owner`,
        );
      v.put(p, { ...node, perms: this.existingOnly(list, this.generation), gen: this.nextGen() });
      // Old readers hear about it too: losing access is a change they need to see.
      v.changed(p, isSpecialPath(p), node.perms);
    });
  }

  /** Whether a node exists in the live tree. No permission check: for the broker and tests. */
  exists(path: string): boolean {
    return this.nodes.has(this.canonAsDom0(path));
  }

  // ---- transactions ----------------------------------------------------------------------

  transactionStart(caller: number): number {
    assertDomid(caller, 'caller');
    if (!isPrivileged(caller) && this.countTransactions(caller) >= this.quota.maxTransactionsPerDomain)
      throw new PvblkError(
        'ENOSPC',
        `domain ${caller} already has ${this.quota.maxTransactionsPerDomain} transactions open`,
      );
    const id = this.allocTxId();
    const maxNodes = isPrivileged(caller) ? Infinity : this.quota.maxTransactionNodes;
    this.transactions.set(
      id,
      new Transaction(id, caller, this.nodes, (d) => this.owned(d), maxNodes, this.generation),
    );
    return id;
  }

  transactionEnd(caller: number, tx: number, commit: boolean): void {
    assertDomid(caller, 'caller');
    const t = this.lookupTx(caller, tx);
    // The id is dead whatever happens next (xenstore.txt): a failed commit must be restarted.
    this.transactions.delete(tx);
    if (!commit) return;
    if (t.failed !== null)
      throw new PvblkError('ENOMEM', `transaction ${tx} of domain ${caller} cannot commit: ${t.failed}`);
    const clash = t.conflict(this.nodes);
    if (clash !== undefined)
      throw new PvblkError(
        'EAGAIN',
        `transaction ${tx} of domain ${caller} conflicts: ${clash} changed since the transaction started`,
      );
    if (!isPrivileged(caller)) {
      const growth = t.ownedChangeOnto(this.nodes, caller);
      if (growth > 0 && this.owned(caller) + growth > this.quota.maxNodesPerDomain)
        throw new PvblkError(
          'ENOSPC',
          `transaction ${tx} would give domain ${caller} more than ${this.quota.maxNodesPerDomain} nodes`,
        );
    }
    for (const [path, node] of t.overlay)
      this.setLive(
        path,
        node ? { ...node, perms: this.existingOnly(node.perms, t.startGen), gen: this.nextGen() } : undefined,
      );
    const pending: PendingEvent[] = [];
    for (const [path, exact] of t.queued) pending.push(this.pendingEvent(path, exact, t.before(path)?.perms));
    this.deliver(pending);
  }

  // ---- watches ---------------------------------------------------------------------------

  watch(caller: number, path: string, token: string): void {
    const { path: p, relative } = this.canon(caller, path, true);
    this.checkToken(caller, token);
    if (this.watches.find(caller, p, token))
      throw new PvblkError(
        'EEXIST',
        `domain ${caller} already watches ${p} with token ${JSON.stringify(token)}`,
      );
    if (!isPrivileged(caller) && this.watches.count(caller) >= this.quota.maxWatchesPerDomain)
      throw new PvblkError('E2BIG', `domain ${caller} already has ${this.quota.maxWatchesPerDomain} watches`);
    const w = this.watches.add(caller, p, token, relative);
    // Every watch fires once straight away, readable or not, so clients need no special start-up.
    const shown = eventPathFor(w, p);
    if (shown !== undefined) this.onWatchEvent(caller, shown, token);
  }

  unwatch(caller: number, path: string, token: string): void {
    const p = this.canon(caller, path, true).path;
    this.checkToken(caller, token);
    const w = this.watches.find(caller, p, token);
    if (!w)
      throw new PvblkError(
        'ENOENT',
        `domain ${caller} has no watch on ${p} with token ${JSON.stringify(token)}`,
      );
    this.watches.delete(w);
  }

  // ---- domains ---------------------------------------------------------------------------

  introduceDomain(domid: number): void {
    assertDomid(domid, 'domain');
    if (this.introduced.has(domid)) return; // re-introduction rebinds in xenstored; no new event
    this.introduced.set(domid, this.nextGen());
    this.fireSpecial('@introduceDomain');
  }

  /**
   * The domain's connection went away but the domain lives on (Dom0 when its toolstack process
   * restarts): its watches and open transactions die with the connection, its nodes stay.
   */
  releaseConnection(domid: number): void {
    assertDomid(domid, 'domain');
    this.watches.deleteDomain(domid);
    for (const [id, t] of this.transactions) if (t.domid === domid) this.transactions.delete(id);
  }

  releaseDomain(domid: number): void {
    assertDomid(domid, 'domain');
    if (isPrivileged(domid)) throw new PvblkError('EINVAL', 'Dom0 cannot be released');
    // Its watches go first so that it is not told about its own teardown (do_release).
    this.watches.deleteDomain(domid);
    for (const [id, t] of this.transactions) if (t.domid === domid) this.transactions.delete(id);
    this.introduced.delete(domid);

    const pending: PendingEvent[] = [];
    const live = this.liveView(pending);
    const home = domainPath(domid);
    if (this.nodes.has(home)) this.removeTree(live, home);
    // Then everything else it owns, children included, wherever it is (domain_tree_remove).
    for (const p of this.ownedSubtreeRoots(domid)) if (this.nodes.has(p)) this.removeTree(live, p);
    this.ownedCount.delete(domid);

    for (const [path, node] of this.nodes) {
      const kept = this.existingOnly(node.perms, this.generation);
      // Not a change anybody can observe or conflict with, so the generation stays (a transaction
      // that wrote the node commits its own copy through existingOnly, which drops the entry too).
      if (kept !== node.perms) this.setLive(path, { ...node, perms: kept });
    }
    this.deliver(pending);
    this.fireSpecial('@releaseDomain');
  }

  // ---- introspection ---------------------------------------------------------------------

  nodeCount(): number {
    return this.nodes.size - SPECIAL_PATHS.length;
  }

  stats(): XenStoreStats {
    return { nodes: this.nodeCount(), watches: this.watches.size, transactions: this.transactions.size };
  }

  /** What one domain holds, against its quota. */
  domainStats(domid: number): XenStoreStats {
    return {
      nodes: this.owned(domid),
      watches: this.watches.count(domid),
      transactions: this.countTransactions(domid),
    };
  }

  /** The subtree at `path` (default: everything), parents before children. No permission check. */
  dump(path = '/'): DumpEntry[] {
    const out: DumpEntry[] = [];
    const walk = (p: string): void => {
      const node = this.nodes.get(p);
      if (!node) return;
      out.push({ path: p, value: node.value, perms: formatPerms(node.perms) });
      for (const c of node.children) walk(childPath(p, c));
    };
    walk(this.canonAsDom0(path));
    return out;
  }

  // ---- internals -------------------------------------------------------------------------

  private canon(caller: number, path: string, allowSpecial = false): CanonicalPath {
    assertDomid(caller, 'caller');
    return canonicalize(caller, path, { allowSpecial, privileged: isPrivileged(caller) });
  }

  private canonAsDom0(path: string): string {
    return canonicalize(DOM0, path, { allowSpecial: true, privileged: true }).path;
  }

  private checkToken(caller: number, token: string): void {
    // The token travels NUL-terminated, so it cannot contain a NUL.
    if (typeof token !== 'string' || token.includes('\0'))
      throw new PvblkError('EINVAL', `bad watch token from domain ${caller}: must be a string without NUL`);
  }

  private nextGen(): number {
    return ++this.generation;
  }

  private newNode(value: string, perms: readonly PermEntry[], children: string[]): XsNode {
    return { value, perms, children, gen: this.nextGen() };
  }

  private owned(domid: number): number {
    return this.ownedCount.get(domid) ?? 0;
  }

  private countTransactions(domid: number): number {
    let n = 0;
    for (const t of this.transactions.values()) if (t.domid === domid) n++;
    return n;
  }

  private allocTxId(): number {
    for (;;) {
      const id = this.nextTxId;
      this.nextTxId = id >= TX_ID_MAX ? 1 : id + 1;
      if (!this.transactions.has(id)) return id;
    }
  }

  private lookupTx(caller: number, tx: number): Transaction {
    if (!Number.isInteger(tx) || tx < 0 || tx > TX_ID_MAX)
      throw new PvblkError('EINVAL', `bad transaction id ${String(tx)} from domain ${caller}`);
    const t = this.transactions.get(tx);
    // Another domain's transaction is as unknown to the caller as a finished one.
    if (!t || t.domid !== caller) throw new PvblkError('ENOENT', `domain ${caller} has no transaction ${tx}`);
    return t;
  }

  /** Runs `op` on the live tree (tx 0) or the caller's transaction; live changes are reported
   * once `op` has finished, so watchers never observe a half-done operation. */
  private withView<T>(caller: number, tx: number, op: (view: NodeView) => T): T {
    if (tx !== 0) return op(this.lookupTx(caller, tx));
    const pending: PendingEvent[] = [];
    const result = op(this.liveView(pending));
    this.deliver(pending);
    return result;
  }

  private liveView(pending: PendingEvent[]): NodeView {
    return {
      get: (p) => this.nodes.get(p),
      put: (p, n) => this.setLive(p, n),
      remove: (p) => this.setLive(p, undefined),
      owned: (d) => this.owned(d),
      changed: (p, exact, oldPerms) => pending.push(this.pendingEvent(p, exact, oldPerms)),
    };
  }

  /** The only place the live tree changes: keeps ownership counts right. */
  private setLive(path: string, node: XsNode | undefined): void {
    const before = this.nodes.get(path);
    if (!path.startsWith('@')) {
      if (before) this.countOwner(ownerOf(before.perms), -1);
      if (node) this.countOwner(ownerOf(node.perms), 1);
    }
    if (node) this.nodes.set(path, node);
    else this.nodes.delete(path);
  }

  private countOwner(domid: number, by: number): void {
    const n = this.owned(domid) + by;
    if (n > 0) this.ownedCount.set(domid, n);
    else this.ownedCount.delete(domid);
  }

  /** An existing node the caller has `want` access to; otherwise EACCES or ENOENT. */
  private lookup(v: NodeView, caller: number, path: string, want: number, verb: string): XsNode {
    const node = v.get(path);
    if (!node) throw this.absent(v, caller, path, want, verb);
    if (!hasAccess(caller, node.perms, want)) throw this.denied(caller, verb, path);
    return node;
  }

  /** The error for a missing node (errno_from_parents): only a domain with some of the wanted
   * access to the nearest existing ancestor may learn that it is missing; others get EACCES. */
  private absent(v: NodeView, caller: number, path: string, want: number, verb: string): PvblkError {
    let p = path;
    let ancestor: XsNode | undefined;
    do {
      p = parentOf(p);
      ancestor = v.get(p);
    } while (!ancestor && p !== '/');
    if (ancestor && (accessFor(caller, ancestor.perms) & want) !== 0)
      return new PvblkError('ENOENT', `${path} does not exist`);
    return new PvblkError('EACCES', `domain ${caller} may not ${verb} ${path} (no access to ${p})`);
  }

  private denied(caller: number, verb: string, path: string): PvblkError {
    return new PvblkError('EACCES', `domain ${caller} may not ${verb} ${path}`);
  }

  /** Creates `path` and its missing parents (construct_node/create_node). */
  private create(v: NodeView, caller: number, path: string, value: string): void {
    const missing: string[] = [];
    let p = path;
    let ancestor = v.get(p);
    while (!ancestor) {
      missing.push(p);
      p = parentOf(p);
      ancestor = v.get(p);
    }
    if ((accessFor(caller, ancestor.perms) & XS_PERM_WRITE) === 0)
      throw new PvblkError('EACCES', `domain ${caller} may not create ${path} (no write access to ${p})`);
    if (!isPrivileged(caller) && v.owned(caller) + missing.length > this.quota.maxNodesPerDomain)
      throw new PvblkError(
        'ENOSPC',
        `domain ${caller} may not create ${path}: it owns ${v.owned(caller)} nodes, ` +
          `needs ${missing.length} more, and the limit is ${this.quota.maxNodesPerDomain}`,
      );
    const perms = inheritPerms(ancestor.perms, caller);
    for (let i = missing.length - 1; i >= 0; i--) {
      const q = missing[i];
      const parent = parentOf(q);
      v.put(parent, withChild(v.get(parent) as XsNode, baseName(q), this.nextGen()));
      v.put(q, this.newNode(i === 0 ? value : '', perms, []));
    }
    v.changed(path, false);
  }

  /** Removes `root` and its subtree. Children go first, each reported while it and its parent
   * still exist so that readers of either may see it (delnode_sub). Watches on the root and above
   * see the root's path; watches on nodes below see their own path. */
  private removeTree(v: NodeView, root: string): void {
    const visit = (p: string): void => {
      const node = v.get(p);
      if (!node) return;
      for (const c of node.children) visit(childPath(p, c));
      v.changed(p, p !== root);
      v.remove(p);
    };
    visit(root);
    const parent = parentOf(root);
    v.put(parent, withoutChild(v.get(parent) as XsNode, baseName(root), this.nextGen()));
  }

  /** Topmost nodes owned by `domid` (their subtrees go with them), never '/' itself. */
  private ownedSubtreeRoots(domid: number): string[] {
    const roots: string[] = [];
    const walk = (p: string): void => {
      const node = this.nodes.get(p);
      if (!node) return;
      if (p !== '/' && ownerOf(node.perms) === domid) {
        roots.push(p);
        return;
      }
      for (const c of node.children) walk(childPath(p, c));
    };
    walk('/');
    return roots;
  }

  /**
   * `perms` without the entries (beyond the owner's) naming a domain that does not exist, or that
   * was introduced after generation `writtenAt`, when they were written (see `introduced`). Dom0's
   * entries always stay.
   */
  private existingOnly(perms: readonly PermEntry[], writtenAt: number): readonly PermEntry[] {
    const counts = (e: PermEntry, i: number) => {
      if (i === 0 || isPrivileged(e.domid)) return true;
      const since = this.introduced.get(e.domid);
      return since !== undefined && since <= writtenAt;
    };
    return perms.every(counts) ? perms : perms.filter(counts);
  }

  private pendingEvent(path: string, exact: boolean, oldPerms?: readonly PermEntry[]): PendingEvent {
    // watch_permitted(): the node's old perms, else the node itself and then its parent; a node
    // that is gone with no old perms to go by is seen by nobody.
    const visibleWith: Array<readonly PermEntry[]> = [];
    if (oldPerms) visibleWith.push(oldPerms);
    const node = this.nodes.get(path);
    if (node) {
      visibleWith.push(node.perms);
      const parent = this.nodes.get(parentOf(path));
      if (parent) visibleWith.push(parent.perms);
    }
    return { path, exact, visibleWith };
  }

  private fireSpecial(name: string): void {
    this.deliver([this.pendingEvent(name, true)]);
  }

  private deliver(pending: readonly PendingEvent[]): void {
    let failure: { error: unknown } | undefined;
    for (const ev of pending) {
      for (const w of this.watches.matching(ev.path, ev.exact)) {
        if (!ev.visibleWith.some((perms) => hasAccess(w.domid, perms, XS_PERM_READ))) continue;
        const shown = eventPathFor(w, ev.path);
        if (shown === undefined) continue;
        // One broken subscriber must not starve the others; its error surfaces afterwards.
        try {
          this.onWatchEvent(w.domid, shown, w.token);
        } catch (error) {
          failure ??= { error };
        }
      }
    }
    if (failure) throw failure.error;
  }
}
