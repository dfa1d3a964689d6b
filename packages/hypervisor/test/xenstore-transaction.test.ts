/**
 * Transactions (xenstore.txt, xenstored transaction.c): each node recorded when first touched,
 * private changes, EAGAIN at commit when anything the transaction touched changed since, watches
 * fired only on a successful commit, nothing at all on abort; a guest's transaction bounded.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { PvblkError } from '@pvblk/shared';
import { formatPerms, parsePerms, XenStore } from '../src/xenstore/index.ts';

type Event = [domid: number, path: string, token: string];

let xs: XenStore;
let events: Event[];

function take(): Event[] {
  return events.splice(0);
}

function code(fn: () => unknown): string {
  try {
    fn();
    return 'OK';
  } catch (e) {
    if (e instanceof PvblkError) return e.code;
    throw e;
  }
}

beforeEach(() => {
  xs = new XenStore();
  // guests the tests name in permissions exist, as the hypervisor introduces a domain it creates
  for (const d of [1, 2]) xs.introduceDomain(d);
  events = [];
  xs.onWatchEvent = (domid, path, token) => events.push([domid, path, token]);
  xs.write(0, 0, '/tx/a', '1');
  xs.write(0, 0, '/tx/b', '1');
});

describe('xenstore transactions', () => {
  it('see each node as it was when they first touched it, and their own changes only', () => {
    const t = xs.transactionStart(0);
    // touched now: this is what t sees of them from here on
    expect(xs.read(0, t, '/tx/a')).toBe('1');
    expect(xs.directory(0, t, '/tx')).toEqual(['a', 'b']);
    xs.write(0, 0, '/tx/a', '2');
    xs.write(0, 0, '/tx/new', 'n');
    expect(xs.read(0, t, '/tx/a')).toBe('1');
    expect(xs.directory(0, t, '/tx')).toEqual(['a', 'b']);
    // a node it had not touched is seen as it is now: xenstored's access_node(), not a snapshot
    expect(xs.read(0, t, '/tx/new')).toBe('n');
    xs.write(0, t, '/tx/b', 'mine');
    xs.write(0, t, '/tx/c/d', 'deep');
    expect(xs.read(0, t, '/tx/b')).toBe('mine');
    expect(xs.directory(0, t, '/tx')).toEqual(['a', 'b', 'c']);
    expect(xs.read(0, 0, '/tx/b')).toBe('1');
    expect(xs.exists('/tx/c')).toBe(false);
    expect(xs.directory(0, 0, '/tx')).toEqual(['a', 'b', 'new']);
    // what it touched has changed since: the commit is refused and changes nothing
    expect(code(() => xs.transactionEnd(0, t, true))).toBe('EAGAIN');
    expect(xs.exists('/tx/c')).toBe(false);
  });

  it("of a guest touch at most maxTransactionNodes nodes: ENOSPC, then the commit fails; Dom0's are not limited", () => {
    const q = new XenStore({ quota: { maxTransactionNodes: 8 } });
    q.mkdir(0, 0, '/local/domain/1');
    q.setPerms(0, 0, '/local/domain/1', [{ domid: 1, perm: 'n' }]);
    const t = q.transactionStart(1);
    // each missing path read is one node touched (and its walk up to /local/domain/1 is shared)
    let refused = -1;
    for (let i = 0; i < 20 && refused < 0; i++)
      if (code(() => q.read(1, t, `m${i}`)) === 'ENOSPC') refused = i;
    expect(refused).toBeGreaterThan(0);
    expect(refused).toBeLessThan(8);
    // touched nodes are still readable; the transaction is doomed
    expect(code(() => q.read(1, t, 'm0'))).toBe('ENOENT');
    expect(code(() => q.transactionEnd(1, t, true))).toBe('ENOMEM');
    // a fresh one starts from nothing, and an abort of a doomed one is fine
    const t2 = q.transactionStart(1);
    q.write(1, t2, 'ok', '1');
    q.transactionEnd(1, t2, true);
    expect(q.read(1, 0, 'ok')).toBe('1');
    const t3 = q.transactionStart(1);
    for (let i = 0; i < 20; i++) code(() => q.read(1, t3, `n${i}`));
    q.transactionEnd(1, t3, false);
    const d = q.transactionStart(0);
    for (let i = 0; i < 100; i++) expect(code(() => q.read(0, d, `/local/domain/1/x${i}`))).toBe('ENOENT');
    q.write(0, d, '/local/domain/1/dom0', '1');
    q.transactionEnd(0, d, true);
    expect(q.read(0, 0, '/local/domain/1/dom0')).toBe('1');
  });

  it('commit makes the changes live', () => {
    const t = xs.transactionStart(0);
    xs.write(0, t, '/tx/b', '2');
    xs.write(0, t, '/tx/c/d', 'deep');
    xs.rm(0, t, '/tx/a');
    xs.setPerms(0, t, '/tx/b', [{ domid: 0, perm: 'r' }]);
    expect(xs.exists('/tx/c/d')).toBe(false);
    xs.transactionEnd(0, t, true);
    expect(xs.dump('/tx')).toEqual([
      { path: '/tx', value: '', perms: ['n0'] },
      { path: '/tx/b', value: '2', perms: ['r0'] },
      { path: '/tx/c', value: '', perms: ['n0'] },
      { path: '/tx/c/d', value: 'deep', perms: ['n0'] },
    ]);
    expect(xs.stats().transactions).toBe(0);
    expect(code(() => xs.read(0, t, '/tx/b'))).toBe('ENOENT');
  });

  it('commit fails with EAGAIN when a node it read changed, and then changes nothing', () => {
    const t = xs.transactionStart(0);
    expect(xs.read(0, t, '/tx/a')).toBe('1');
    xs.write(0, 0, '/tx/a', '2');
    xs.write(0, t, '/tx/b', 'from-tx');
    expect(code(() => xs.transactionEnd(0, t, true))).toBe('EAGAIN');
    expect(xs.read(0, 0, '/tx/b')).toBe('1');
    // The transaction is over either way.
    expect(code(() => xs.transactionEnd(0, t, true))).toBe('ENOENT');
    expect(xs.stats().transactions).toBe(0);
  });

  it('commit fails with EAGAIN when a node it wrote changed', () => {
    const t = xs.transactionStart(0);
    xs.write(0, t, '/tx/a', 'tx');
    xs.write(0, 0, '/tx/a', 'outside');
    expect(code(() => xs.transactionEnd(0, t, true))).toBe('EAGAIN');
    expect(xs.read(0, 0, '/tx/a')).toBe('outside');
  });

  it('commit fails with EAGAIN when a node it found missing was created', () => {
    const t = xs.transactionStart(0);
    expect(code(() => xs.read(0, t, '/tx/ghost'))).toBe('ENOENT');
    xs.write(0, 0, '/tx/ghost', 'boo');
    xs.write(0, t, '/tx/b', '2');
    expect(code(() => xs.transactionEnd(0, t, true))).toBe('EAGAIN');
  });

  it('commit fails with EAGAIN when a node it found was removed', () => {
    const t = xs.transactionStart(0);
    xs.read(0, t, '/tx/a');
    xs.rm(0, 0, '/tx/a');
    expect(code(() => xs.transactionEnd(0, t, true))).toBe('EAGAIN');
  });

  it('commit fails with EAGAIN when a directory it listed gained a child', () => {
    const t = xs.transactionStart(0);
    expect(xs.directory(0, t, '/tx')).toEqual(['a', 'b']);
    xs.write(0, 0, '/tx/z', '');
    expect(code(() => xs.transactionEnd(0, t, true))).toBe('EAGAIN');
  });

  it('commit fails with EAGAIN when permissions of a node it read changed', () => {
    const t = xs.transactionStart(0);
    xs.read(0, t, '/tx/a');
    xs.setPerms(0, 0, '/tx/a', [{ domid: 0, perm: 'r' }]);
    expect(code(() => xs.transactionEnd(0, t, true))).toBe('EAGAIN');
  });

  it('two transactions creating siblings conflict on the shared parent (xenstored, unlike oxenstored)', () => {
    const t1 = xs.transactionStart(0);
    const t2 = xs.transactionStart(0);
    xs.write(0, t1, '/tx/one', '1');
    xs.write(0, t2, '/tx/two', '2');
    xs.transactionEnd(0, t1, true);
    expect(code(() => xs.transactionEnd(0, t2, true))).toBe('EAGAIN');
    expect(xs.directory(0, 0, '/tx')).toEqual(['a', 'b', 'one']);
  });

  it('commit succeeds despite unrelated writes, including new top-level nodes', () => {
    const t = xs.transactionStart(0);
    xs.read(0, t, '/tx/a');
    xs.write(0, t, '/tx/b', 'tx');
    xs.write(0, 0, '/other/q', 'q');
    xs.write(0, 0, '/tx', 'parent value');
    const t2 = xs.transactionStart(0);
    xs.write(0, t2, '/other/q', 'q2');
    xs.transactionEnd(0, t2, true);
    xs.transactionEnd(0, t, true);
    expect(xs.read(0, 0, '/tx/b')).toBe('tx');
    expect(xs.read(0, 0, '/other/q')).toBe('q2');
    expect(xs.read(0, 0, '/tx')).toBe('parent value');
  });

  it('fire watches only at commit, with old readers included', () => {
    xs.setPerms(0, 0, '/tx/a', [
      { domid: 0, perm: 'n' },
      { domid: 1, perm: 'r' },
    ]);
    xs.watch(0, '/tx', 'w');
    xs.watch(1, '/tx/a', 'guest');
    take();
    const t = xs.transactionStart(0);
    xs.write(0, t, '/tx/a', '2');
    xs.write(0, t, '/tx/c', '3');
    xs.setPerms(0, t, '/tx/a', [{ domid: 0, perm: 'n' }]);
    expect(take()).toEqual([]);
    xs.transactionEnd(0, t, true);
    expect(take()).toEqual([
      [0, '/tx/a', 'w'],
      // Domain 1 could read /tx/a when the transaction started: it hears that it lost access.
      [1, '/tx/a', 'guest'],
      [0, '/tx/c', 'w'],
    ]);
  });

  it('report removals at commit, exact below the removed root', () => {
    xs.write(0, 0, '/tx/a/deep', 'x');
    xs.watch(0, '/tx/a/deep', 'deep');
    xs.watch(0, '/tx', 'top');
    take();
    const t = xs.transactionStart(0);
    xs.rm(0, t, '/tx/a');
    expect(xs.exists('/tx/a/deep')).toBe(true);
    expect(take()).toEqual([]);
    xs.transactionEnd(0, t, true);
    expect(take()).toEqual([
      [0, '/tx/a/deep', 'deep'],
      [0, '/tx/a', 'top'],
    ]);
    expect(xs.exists('/tx/a')).toBe(false);
  });

  it('abort changes nothing and fires nothing', () => {
    xs.watch(0, '/tx', 'w');
    take();
    const before = xs.dump();
    const t = xs.transactionStart(0);
    xs.write(0, t, '/tx/a', 'changed');
    xs.write(0, t, '/tx/new/node', 'n');
    xs.rm(0, t, '/tx/b');
    xs.transactionEnd(0, t, false);
    expect(take()).toEqual([]);
    expect(xs.dump()).toEqual(before);
    expect(code(() => xs.transactionEnd(0, t, false))).toBe('ENOENT');
  });

  it('unknown, foreign and zero transaction ids are ENOENT', () => {
    const t = xs.transactionStart(1);
    expect(code(() => xs.transactionEnd(0, 0, true))).toBe('ENOENT');
    expect(code(() => xs.transactionEnd(0, 4242, true))).toBe('ENOENT');
    expect(code(() => xs.read(0, 4242, '/tx/a'))).toBe('ENOENT');
    // Domain 2 cannot use, or end, domain 1's transaction.
    expect(code(() => xs.read(2, t, '/tx/a'))).toBe('ENOENT');
    expect(code(() => xs.transactionEnd(2, t, false))).toBe('ENOENT');
    expect(code(() => xs.transactionEnd(1, -1, false))).toBe('EINVAL');
    xs.transactionEnd(1, t, false);
    expect(new Set([xs.transactionStart(0), xs.transactionStart(0), xs.transactionStart(1)]).size).toBe(3);
  });

  it('check permissions inside transactions too', () => {
    xs.mkdir(0, 0, '/local/domain/1');
    xs.setPerms(0, 0, '/local/domain/1', [{ domid: 1, perm: 'n' }]);
    const t = xs.transactionStart(1);
    expect(code(() => xs.read(1, t, '/tx/a'))).toBe('EACCES');
    expect(code(() => xs.write(1, t, '/tx/a', 'x'))).toBe('EACCES');
    expect(code(() => xs.write(1, t, 'state', '4'))).toBe('OK');
    expect(code(() => xs.setPerms(1, t, 'state', [{ domid: 2, perm: 'n' }]))).toBe('EPERM');
    expect(xs.getPerms(1, t, 'state')).toEqual([{ domid: 1, perm: 'n' }]);
    xs.transactionEnd(1, t, true);
    expect(xs.read(1, 0, 'state')).toBe('4');
  });

  it('count created nodes against the node quota, at write time and again at commit', () => {
    const q = new XenStore({ quota: { maxNodesPerDomain: 5 } });
    q.mkdir(0, 0, '/local/domain/1/d1');
    q.mkdir(0, 0, '/local/domain/1/d2');
    q.setPerms(0, 0, '/local/domain/1', [{ domid: 1, perm: 'n' }]);
    q.setPerms(0, 0, '/local/domain/1/d1', [{ domid: 1, perm: 'n' }]);
    q.setPerms(0, 0, '/local/domain/1/d2', [{ domid: 1, perm: 'n' }]); // domain 1 owns 3
    const t1 = q.transactionStart(1);
    const t2 = q.transactionStart(1);
    q.write(1, t1, 'd1/x', '');
    q.write(1, t1, 'd1/y', ''); // 5 as t1 sees it
    expect(code(() => q.write(1, t1, 'd1/z', ''))).toBe('ENOSPC');
    q.write(1, t2, 'd2/x', '');
    q.write(1, t2, 'd2/y', ''); // 5 as t2 sees it
    q.transactionEnd(1, t1, true); // 5 for real
    // No conflict (different parents), but committing t2 would make 7.
    expect(code(() => q.transactionEnd(1, t2, true))).toBe('ENOSPC');
    expect(q.directory(1, 0, 'd2')).toEqual([]);
    expect(q.directory(1, 0, 'd1')).toEqual(['x', 'y']);
  });

  describe('permission entries for domains that do not exist (a domid reused inherits nothing)', () => {
    /** Domain 1's node /local/domain/1/data, written "mine", with domain 1 owning its home. */
    function guestNode(q: XenStore): string {
      q.mkdir(0, 0, '/local/domain/1');
      q.setPerms(0, 0, '/local/domain/1', parsePerms(['n1']));
      q.write(1, 0, 'data', 'mine');
      return '/local/domain/1/data';
    }

    it('an entry naming a domain not yet created is dropped when set: the domain created later cannot read', () => {
      const node = guestNode(xs);
      // domain 1 names 7, which does not exist (xenstored marks such entries ignored)
      xs.setPerms(1, 0, node, parsePerms(['n1', 'b7', 'r2']));
      expect(formatPerms(xs.getPerms(1, 0, node))).toEqual(['n1', 'r2']);
      xs.introduceDomain(7);
      expect(code(() => xs.read(7, 0, node))).toBe('EACCES');
      expect(code(() => xs.write(7, 0, node, 'theirs'))).toBe('EACCES');
      expect(xs.read(2, 0, node)).toBe('mine');
    });

    it('a transaction that named a domain commits after the domain was released and its id reused: the entry is dropped', () => {
      const node = guestNode(xs);
      const t = xs.transactionStart(1);
      // 2 exists when the transaction writes the entry …
      xs.setPerms(1, t, node, parsePerms(['n1', 'b2']));
      // … then goes, and a new domain takes its id before the commit
      xs.releaseDomain(2);
      xs.introduceDomain(2);
      xs.transactionEnd(1, t, true);
      expect(formatPerms(xs.getPerms(1, 0, node))).toEqual(['n1']);
      expect(code(() => xs.read(2, 0, node))).toBe('EACCES');
      expect(code(() => xs.write(2, 0, node, 'theirs'))).toBe('EACCES');
      expect(xs.read(1, 0, node)).toBe('mine');
    });

    it("a node a transaction creates under a parent naming a domain inherits no entry for the id's next domain", () => {
      xs.mkdir(0, 0, '/pool');
      xs.setPerms(0, 0, '/pool', parsePerms(['n0', 'b2']));
      const t = xs.transactionStart(0);
      xs.write(0, t, '/pool/new', 'x');
      xs.releaseDomain(2);
      xs.introduceDomain(2);
      xs.transactionEnd(0, t, true);
      expect(formatPerms(xs.getPerms(0, 0, '/pool/new'))).toEqual(['n0']);
      expect(code(() => xs.read(2, 0, '/pool/new'))).toBe('EACCES');
    });

    it('entries for domains that existed when the transaction started stay', () => {
      const node = guestNode(xs);
      const t = xs.transactionStart(1);
      xs.setPerms(1, t, node, parsePerms(['n1', 'r2']));
      xs.transactionEnd(1, t, true);
      expect(formatPerms(xs.getPerms(1, 0, node))).toEqual(['n1', 'r2']);
      expect(xs.read(2, 0, node)).toBe('mine');
    });
  });
});
