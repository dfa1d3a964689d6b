/**
 * One XenStore node, and the view of the tree an operation works on.
 *
 * Nodes are immutable: a change replaces the object and stamps a fresh generation. That is what
 * lets a transaction keep each node it touches by reference, and lets commit detect conflicts by
 * comparing generations (the scheme of xenstored's transaction.c).
 */
import type { PermEntry } from './perms.ts';

export interface XsNode {
  readonly value: string;
  readonly perms: readonly PermEntry[];
  /** Child names, kept sorted so that directory listings are deterministic. */
  readonly children: readonly string[];
  /** Unique stamp of this version of the node. */
  readonly gen: number;
}

/** Where an operation reads and writes: the live tree, or a transaction's nodes and changes. */
export interface NodeView {
  get(path: string): XsNode | undefined;
  put(path: string, node: XsNode): void;
  remove(path: string): void;
  /** Nodes `domid` owns as seen through this view (for the node quota). */
  owned(domid: number): number;
  /** Reports a change to watchers. Who may see it is judged as xenstored's `watch_permitted`
   * does: readers of the node (as it is when this is called), of its parent, or of `oldPerms`. */
  changed(path: string, exact: boolean, oldPerms?: readonly PermEntry[]): void;
}

export function withChild(node: XsNode, name: string, gen: number): XsNode {
  const children = [...node.children];
  let lo = 0;
  let hi = children.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (children[mid] < name) lo = mid + 1;
    else hi = mid;
  }
  if (children[lo] !== name) children.splice(lo, 0, name);
  return { ...node, children, gen };
}

export function withoutChild(node: XsNode, name: string, gen: number): XsNode {
  return { ...node, children: node.children.filter((c) => c !== name), gen };
}
