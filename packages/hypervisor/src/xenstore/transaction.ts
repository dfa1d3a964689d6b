/**
 * A XenStore transaction: a snapshot of the whole tree taken at start (xenstore.txt: "the whole
 * db is copied"), a private overlay of changes, and the set of paths it looked at.
 *
 * Commit fails with EAGAIN when any path the transaction looked at, present or absent, no longer
 * has the version it had in the snapshot. Reads, writes, existence checks, the permission walks up
 * to an existing ancestor and parents whose child lists changed all count, which is xenstored's
 * rule (every node it touches goes through access_node() and is generation-checked).
 */
import type { NodeView, XsNode } from './node.ts';
import { ownerOf } from './perms.ts';

export class Transaction implements NodeView {
  readonly overlay = new Map<string, XsNode | null>();
  readonly accessed = new Set<string>();
  /** Paths whose watches fire at commit; false (subtree match) wins over true (exact). */
  readonly queued = new Map<string, boolean>();
  /** Node ownership changes relative to the snapshot, per domain. */
  private readonly ownedDelta = new Map<number, number>();

  constructor(
    readonly id: number,
    readonly domid: number,
    /** Shared with the store until it next writes (copy-on-write); never mutated. */
    readonly base: ReadonlyMap<string, XsNode>,
    private readonly globalOwned: (domid: number) => number,
  ) {}

  get(path: string): XsNode | undefined {
    this.accessed.add(path);
    const mine = this.overlay.get(path);
    if (mine !== undefined) return mine ?? undefined;
    return this.base.get(path);
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
    // Visibility is judged at commit, against the committed tree and the snapshot's (old) perms.
    this.queued.set(path, (this.queued.get(path) ?? true) && exact);
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

  /** First path whose version differs between the snapshot and `current`, if any. */
  conflict(current: ReadonlyMap<string, XsNode>): string | undefined {
    for (const path of this.accessed) if (this.base.get(path)?.gen !== current.get(path)?.gen) return path;
    return undefined;
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
