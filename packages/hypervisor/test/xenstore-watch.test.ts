/**
 * Watch semantics of xenstored (watch.c, core.c, domain.c): immediate firing, subtree matching,
 * token echo, relative event paths, read-permission filtering, removal events, and the special
 * @introduceDomain/@releaseDomain events.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { XenStore, formatPerms } from '../src/xenstore/index.ts';

type Event = [domid: number, path: string, token: string];

let xs: XenStore;
let events: Event[];

/** Events since the last call. */
function take(): Event[] {
  return events.splice(0);
}

/** A toolstack-style home for `domid`, owned by it. */
function home(domid: number): void {
  xs.mkdir(0, 0, `/local/domain/${domid}`);
  xs.setPerms(0, 0, `/local/domain/${domid}`, [{ domid, perm: 'n' }]);
}

beforeEach(() => {
  xs = new XenStore();
  // guests the tests name in permissions exist, as the hypervisor introduces a domain it creates
  for (const d of [1, 2]) xs.introduceDomain(d);
  events = [];
  xs.onWatchEvent = (domid, path, token) => events.push([domid, path, token]);
});

describe('xenstore watches', () => {
  it('fire once straight away, even on missing or unreadable nodes', () => {
    xs.write(0, 0, '/secret', 's');
    xs.watch(1, '/secret', 'tok');
    xs.watch(1, '/does/not/exist', 'tok2');
    expect(take()).toEqual([
      [1, '/secret', 'tok'],
      [1, '/does/not/exist', 'tok2'],
    ]);
    expect(xs.stats().watches).toBe(2);
  });

  it('fire for the node and its descendants, with the changed path, not for siblings or parents', () => {
    xs.watch(0, '/local/domain/1', 'w');
    take();
    xs.write(0, 0, '/local/domain/1/a/b', 'x');
    xs.write(0, 0, '/local/domain/10/a', 'x');
    xs.write(0, 0, '/local/domain/1', 'v');
    xs.write(0, 0, '/local/domain', 'v');
    xs.mkdir(0, 0, '/local/domain/1/a'); // exists: no change, no event
    xs.mkdir(0, 0, '/local/domain/1/c');
    xs.read(0, 0, '/local/domain/1/a/b'); // reads never fire
    xs.setPerms(0, 0, '/local/domain/1/c', [{ domid: 0, perm: 'r' }]);
    expect(take()).toEqual([
      [0, '/local/domain/1/a/b', 'w'],
      [0, '/local/domain/1', 'w'],
      [0, '/local/domain/1/c', 'w'],
      [0, '/local/domain/1/c', 'w'],
    ]);
  });

  it('echo each watch’s own token, and a watch on / sees everything', () => {
    xs.watch(0, '/a', 'first');
    xs.watch(0, '/a', 'second');
    xs.watch(2, '/', 'root');
    take();
    xs.setPerms(0, 0, '/', [{ domid: 0, perm: 'r' }]);
    take();
    xs.write(0, 0, '/a', '1');
    expect(take()).toEqual([
      [0, '/a', 'first'],
      [0, '/a', 'second'],
      [2, '/a', 'root'],
    ]);
    xs.unwatch(0, '/a', 'first');
    xs.write(0, 0, '/a', '2');
    expect(take()).toEqual([
      [0, '/a', 'second'],
      [2, '/a', 'root'],
    ]);
  });

  it('report relative paths for relative watches', () => {
    home(1);
    xs.watch(1, 'device', 'fe');
    xs.watch(1, '/local/domain/1/device', 'abs');
    expect(take()).toEqual([
      [1, 'device', 'fe'],
      [1, '/local/domain/1/device', 'abs'],
    ]);
    xs.write(0, 0, '/local/domain/1/device/vbd/51712/state', '1');
    expect(take()).toEqual([
      [1, 'device/vbd/51712/state', 'fe'],
      [1, '/local/domain/1/device/vbd/51712/state', 'abs'],
    ]);
    // Dom0's relative paths are relative to /local/domain/0.
    xs.watch(0, 'backend', 'be');
    expect(take()).toEqual([[0, 'backend', 'be']]);
    xs.write(0, 0, '/local/domain/0/backend/vbd/1/51712/state', '1');
    expect(take()).toEqual([[0, 'backend/vbd/1/51712/state', 'be']]);
  });

  it('are suppressed unless the watcher can read the node or its parent', () => {
    xs.watch(2, '/local/domain/1', 'w');
    take();
    xs.write(0, 0, '/local/domain/1/secret', 's');
    expect(take()).toEqual([]);
    // Granting read is itself a change the new reader sees.
    xs.setPerms(0, 0, '/local/domain/1/secret', [
      { domid: 0, perm: 'n' },
      { domid: 2, perm: 'r' },
    ]);
    expect(take()).toEqual([[2, '/local/domain/1/secret', 'w']]);
    xs.write(0, 0, '/local/domain/1/secret', 't');
    expect(take()).toEqual([[2, '/local/domain/1/secret', 'w']]);
    // A node 2 cannot read, under a parent it can: seen (watch_permitted checks the parent).
    xs.write(0, 0, '/local/domain/1/secret/hidden', 'h');
    xs.setPerms(0, 0, '/local/domain/1/secret/hidden', [{ domid: 0, perm: 'n' }]);
    take();
    xs.write(0, 0, '/local/domain/1/secret/hidden', 'h2');
    expect(take()).toEqual([[2, '/local/domain/1/secret/hidden', 'w']]);
    // Neither the node nor its parent readable: not seen.
    xs.write(0, 0, '/local/domain/1/secret/hidden/deeper', 'd');
    expect(take()).toEqual([]);
    // Losing read access is still reported (old perms count), later changes are not.
    xs.setPerms(0, 0, '/local/domain/1/secret', [{ domid: 0, perm: 'n' }]);
    expect(take()).toEqual([[2, '/local/domain/1/secret', 'w']]);
    xs.write(0, 0, '/local/domain/1/secret', 'u');
    expect(take()).toEqual([]);
    // Dom0 sees everything.
    xs.watch(0, '/local/domain/1', 'd0');
    take();
    xs.write(0, 0, '/local/domain/1/secret/hidden/deeper', 'e');
    expect(take()).toEqual([[0, '/local/domain/1/secret/hidden/deeper', 'd0']]);
  });

  it('on rm: watches on and above the removed node see its path, watches below see their own', () => {
    xs.write(0, 0, '/t/a/b/c', 'x');
    xs.watch(0, '/t', 'above');
    xs.watch(0, '/t/a', 'on');
    xs.watch(0, '/t/a/b/c', 'below');
    xs.watch(0, '/t/a/b/c/missing', 'missing');
    xs.watch(0, '/t/other', 'sibling');
    take();
    xs.rm(0, 0, '/t/a');
    expect(take()).toEqual([
      [0, '/t/a/b/c', 'below'],
      [0, '/t/a', 'above'],
      [0, '/t/a', 'on'],
    ]);
    xs.rm(0, 0, '/t/a'); // already gone: nothing changes, nothing fires
    expect(take()).toEqual([]);
    expect(xs.exists('/t/a')).toBe(false);
    expect(xs.directory(0, 0, '/t')).toEqual([]);
  });

  it('on rm: a guest that could read a removed node hears about it', () => {
    home(1);
    xs.write(1, 0, 'dev/state', '1');
    xs.watch(1, 'dev/state', 'st');
    xs.watch(2, '/local/domain/1', 'peer');
    take();
    xs.rm(0, 0, '/local/domain/1/dev');
    expect(take()).toEqual([[1, 'dev/state', 'st']]);
  });

  it('do not fire for failed operations', () => {
    xs.watch(0, '/', 'all');
    take();
    expect(() => xs.write(1, 0, '/x', 'v')).toThrow(/EACCES/);
    expect(() => xs.rm(0, 0, '/')).toThrow(/EINVAL/);
    expect(() => xs.setPerms(1, 0, '/', [{ domid: 1, perm: 'n' }])).toThrow(/EACCES/);
    expect(take()).toEqual([]);
  });

  it('drop events too long for one message, as xenstored does', () => {
    const token = 't'.repeat(4096 - '/a'.length - 2);
    xs.watch(0, '/a', token);
    xs.watch(0, '/a', token + 'x');
    expect(take()).toEqual([[0, '/a', token]]);
  });

  it('@introduceDomain and @releaseDomain fire on introduce and release, for readers only', () => {
    xs.watch(0, '@introduceDomain', 'intro');
    xs.watch(0, '@releaseDomain', 'rel');
    xs.watch(1, '@releaseDomain', 'guest-rel');
    xs.watch(0, '/', 'root');
    expect(take()).toEqual([
      [0, '@introduceDomain', 'intro'],
      [0, '@releaseDomain', 'rel'],
      [1, '@releaseDomain', 'guest-rel'],
      [0, '/', 'root'],
    ]);
    xs.introduceDomain(5);
    expect(take()).toEqual([[0, '@introduceDomain', 'intro']]);
    xs.introduceDomain(5); // already introduced
    expect(take()).toEqual([]);
    xs.releaseDomain(5);
    // The special nodes are Dom0's with no access for others: domain 1 is not told.
    expect(take()).toEqual([[0, '@releaseDomain', 'rel']]);
    xs.setPerms(0, 0, '@releaseDomain', [
      { domid: 0, perm: 'n' },
      { domid: 1, perm: 'r' },
    ]);
    expect(take()).toEqual([
      [0, '@releaseDomain', 'rel'],
      [1, '@releaseDomain', 'guest-rel'],
    ]);
    expect(formatPerms(xs.getPerms(1, 0, '@releaseDomain'))).toEqual(['n0', 'r1']);
    xs.introduceDomain(6);
    xs.releaseDomain(6);
    expect(take()).toEqual([
      [0, '@introduceDomain', 'intro'],
      [0, '@releaseDomain', 'rel'],
      [1, '@releaseDomain', 'guest-rel'],
    ]);
    xs.unwatch(1, '@releaseDomain', 'guest-rel');
    expect(xs.stats().watches).toBe(3);
  });

  it('releaseDomain removes the home and everything the domain owns, fires, and forgets the domain', () => {
    home(3);
    xs.introduceDomain(3);
    xs.write(3, 0, 'device/vbd/51712/state', '3');
    xs.mkdir(0, 0, '/pool');
    xs.setPerms(0, 0, '/pool', [
      { domid: 0, perm: 'n' },
      { domid: 3, perm: 'b' },
    ]);
    xs.write(3, 0, '/pool/item/sub', 'mine');
    xs.write(0, 0, '/pool/keep', 'dom0');
    const be = '/local/domain/0/backend/vbd/3/51712';
    xs.mkdir(0, 0, be);
    xs.setPerms(0, 0, be, [
      { domid: 0, perm: 'n' },
      { domid: 3, perm: 'r' },
    ]);
    xs.watch(3, 'device', 'own');
    const tx = xs.transactionStart(3);
    xs.watch(0, '/local/domain/3', 'home');
    xs.watch(0, '/local/domain/3/device/vbd/51712/state', 'state');
    xs.watch(0, '/pool', 'pool');
    xs.watch(0, '@releaseDomain', 'rel');
    xs.watch(1, '@releaseDomain', 'not-allowed');
    const before = xs.nodeCount();
    take();

    xs.releaseDomain(3);
    expect(take()).toEqual([
      [0, '/local/domain/3/device/vbd/51712/state', 'state'],
      [0, '/local/domain/3', 'home'],
      [0, '/pool/item', 'pool'],
      [0, '@releaseDomain', 'rel'],
    ]);
    expect(xs.exists('/local/domain/3')).toBe(false);
    expect(xs.exists('/pool/item')).toBe(false);
    expect(xs.directory(0, 0, '/pool')).toEqual(['keep']);
    // home, device, vbd, 51712, state, item, sub
    expect(xs.nodeCount()).toBe(before - 7);
    expect(xs.stats()).toEqual({ nodes: before - 7, watches: 5, transactions: 0 });
    expect(() => xs.transactionEnd(3, tx, true)).toThrow(/ENOENT/);
    // Its permission entries are gone, so a new domain 3 inherits no access.
    expect(formatPerms(xs.getPerms(0, 0, be))).toEqual(['n0']);
    expect(formatPerms(xs.getPerms(0, 0, '/pool'))).toEqual(['n0']);
    xs.introduceDomain(3);
    expect(() => xs.read(3, 0, be)).toThrow(/EACCES/);
    expect(() => xs.write(3, 0, '/pool/again', 'x')).toThrow(/EACCES/);
    // Releasing a domain with nothing left still reports the release.
    take();
    xs.releaseDomain(3);
    expect(take()).toEqual([[0, '@releaseDomain', 'rel']]);
  });

  it('a throwing subscriber does not starve the others', () => {
    xs.watch(0, '/a', 'one');
    xs.watch(0, '/a', 'two');
    const seen: string[] = [];
    xs.onWatchEvent = (_d, _p, token) => {
      seen.push(token);
      if (token === 'one') throw new Error('broken subscriber');
    };
    expect(() => xs.write(0, 0, '/a', 'v')).toThrow('broken subscriber');
    expect(seen).toEqual(['one', 'two']);
    expect(xs.read(0, 0, '/a')).toBe('v');
  });
});

describe('releaseConnection', () => {
  it('drops the watches and transactions of a domain but keeps its nodes', () => {
    const xs = new XenStore();
    const events: string[] = [];
    xs.onWatchEvent = (d, p) => events.push(`${d}:${p}`);
    xs.write(0, 0, '/local/domain/0/backend/x', '1');
    xs.watch(0, '/local/domain/0/backend', 't');
    const tx = xs.transactionStart(0);
    xs.releaseConnection(0);
    events.length = 0;
    xs.write(0, 0, '/local/domain/0/backend/x', '2');
    expect(events).toEqual([]);
    expect(xs.read(0, 0, '/local/domain/0/backend/x')).toBe('2');
    expect(() => xs.transactionEnd(0, tx, true)).toThrow(/ENOENT/);
  });
});
