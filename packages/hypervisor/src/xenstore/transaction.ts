/**
 * A XenStore transaction as xenstored keeps one (tools/xenstored/transaction.c since Xen 4.9): no
 * copy of the tree, but every node it touches — read, written, listed, checked on a permission walk
 * or found missing — recorded the first time with its generation, and a private overlay of its
 * changes. Later reads in the transaction see that record or its own changes.
 *
 * Commit fails with EAGAIN when a recorded node no longer has the generation it had when first
 * touched. A guest's transaction may touch at most `maxNodes` nodes (xenstored's transaction-nodes
 * quota): beyond, the request is refused with ENOSPC and the transaction is doomed, as xenstored
 * marks it failed — its commit answers ENOMEM. Before, a transaction held a snapshot of the whole
 * tree, which every live write then had to copy: a guest could make each write cost the whole tree
 * by opening transactions, and fill the hypervisor's memory with one that read many missing paths.
 */
import { PvblkError } from '@pvblk/shared';
import type { NodeView, XsNode } from './node.ts';
import { ownerOf } from './perms.ts';

export class Transaction implements NodeView {
  readonly overlay = new Map<string, XsNode | null>();
  /** Paths whose watches fire at commit; false (subtree match) wins over true (exact). */
  readonly queued = new Map<string, boolean>();
  /** Why the transaction can no longer commit, once something in it was refused for its size. */
  failed: string | null = null;
  /** Every node touched, as it was when first touched (undefined: it did not exist). */
  private readonly seen = new Map<string, XsNode | undefined>();
  /** Node ownership changes relative to the live tree, per domain. */
  private readonly ownedDelta = new Map<number, number>();

  constructor(
    readonly id: number,
    readonly domid: number,
    /** The store's live tree (the same map for the store's lifetime); only read here. */
    private readonly live: ReadonlyMap<string, XsNode>,
    private readonly globalOwned: (domid: number) => number,
    private readonly maxNodes: number,
    /** The store's generation when the transaction started: what it writes was written then. */
    readonly startGen: number,
  ) {}

  get(path: string): XsNode | undefined {
    const mine = this.overlay.get(path);
    if (mine !== undefined) return mine ?? undefined;
    return this.touch(path);
  }

  put(path: string, node: XsNode): void {
    this.account(path, this.get(path), node);
    this.overlay.set(path, node);
  }

  remove(path: string): void {
    this.account(path, this.get(path), undefined);
    this.overlay.set(path, null);
  }

  owned(domid: number): number {
    return this.globalOwned(domid) + (this.ownedDelta.get(domid) ?? 0);
  }

  changed(path: string, exact: boolean): void {
    // Visibility is judged at commit, against the committed tree and the perms first seen.
    this.queued.set(path, (this.queued.get(path) ?? true) && exact);
  }

  /** The node as the transaction first saw it: its permissions decide who hears of the change. */
  before(path: string): XsNode | undefined {
    return this.seen.get(path);
  }

  /** Nodes this transaction would add to `domid`'s count if committed onto `current`. */
  ownedChangeOnto(current: ReadonlyMap<string, XsNode>, domid: number): number {
    let delta = 0;
    for (const [path, node] of this.overlay) {
      if (path.startsWith('@')) continue;
      const now = current.get(path);
      if (now && ownerOf(now.perms) === domid) delta--;
      if (node && ownerOf(node.perms) === domid) delta++;
    }
    return delta;
  }

  /** First path whose generation differs between its first touch and `current`, if any. */
  conflict(current: ReadonlyMap<string, XsNode>): string | undefined {
    for (const [path, node] of this.seen) if (node?.gen !== current.get(path)?.gen) return path;
    return undefined;
  }

  /** access_node(): the node as first seen, recorded now if it was not touched before. */
  private touch(path: string): XsNode | undefined {
    if (this.seen.has(path)) return this.seen.get(path);
    if (this.seen.size >= this.maxNodes) {
      this.failed = `it touched more than ${this.maxNodes} nodes`;
      throw new PvblkError(
        'ENOSPC',
        `transaction ${this.id} of domain ${this.domid} may touch at most ${this.maxNodes} nodes (${path} would be one more)`,
      );
    }
    const node = this.live.get(path);
    this.seen.set(path, node);
    return node;
  }

  private account(path: string, before: XsNode | undefined, after: XsNode | undefined): void {
    if (path.startsWith('@')) return;
    if (before) this.bump(ownerOf(before.perms), -1);
    if (after) this.bump(ownerOf(after.perms), 1);
  }

  private bump(domid: number, by: number): void {
    this.ownedDelta.set(domid, (this.ownedDelta.get(domid) ?? 0) + by);
  }
}
