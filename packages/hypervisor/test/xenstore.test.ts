/**
 * XenStore access rules as a table, in the style of ocaml-xenstore's server_test: each row is
 * [caller, op, path, args, expected] and the rows of one table run in order against one store,
 * so later rows depend on what earlier rows did. Expected errno names follow C xenstored.
 */
import { describe, expect, it } from 'vitest';
import { PvblkError } from '@pvblk/shared';
import { XenStore, formatPerms, parsePerms } from '../src/xenstore/index.ts';

type Op =
  'read' | 'write' | 'mkdir' | 'rm' | 'directory' | 'getPerms' | 'setPerms' | 'watch' | 'unwatch' | 'txStart';

/** What a row expects: an errno name, OK (success, result ignored), or an exact result. */
type Expect = string | { value: string } | { list: string[] } | { perms: string[] };
type Row = [caller: number, op: Op, path: string, args: string[], expected: Expect];

const OK = 'OK';
const value = (v: string): Expect => ({ value: v });
const list = (l: string[]): Expect => ({ list: l });
const perms = (p: string[]): Expect => ({ perms: p });

function apply(xs: XenStore, [caller, op, path, args]: Row): Expect {
  try {
    switch (op) {
      case 'read':
        return value(xs.read(caller, 0, path));
      case 'write':
        xs.write(caller, 0, path, args[0]);
        return OK;
      case 'mkdir':
        xs.mkdir(caller, 0, path);
        return OK;
      case 'rm':
        xs.rm(caller, 0, path);
        return OK;
      case 'directory':
        return list(xs.directory(caller, 0, path));
      case 'getPerms':
        return perms(formatPerms(xs.getPerms(caller, 0, path)));
      case 'setPerms':
        xs.setPerms(caller, 0, path, parsePerms(args));
        return OK;
      case 'watch':
        xs.watch(caller, path, args[0]);
        return OK;
      case 'unwatch':
        xs.unwatch(caller, path, args[0]);
        return OK;
      case 'txStart':
        xs.transactionStart(caller);
        return OK;
    }
  } catch (e) {
    if (e instanceof PvblkError) return e.code;
    throw e;
  }
}

/**
 * The store with guests 1-9 introduced, as the hypervisor introduces a domain when it creates it: a
 * permission entry naming a domain that does not exist is dropped.
 */
function withDomains(xs: XenStore): XenStore {
  for (let d = 1; d <= 9; d++) xs.introduceDomain(d);
  return xs;
}

function run(xs: XenStore, rows: Row[]): void {
  rows.forEach((row, i) => {
    const [caller, op, path, args, expected] = row;
    const label = `row ${i}: dom${caller} ${op} ${path.length > 60 ? path.slice(0, 60) + '…' : path} ${args
      .map((a) => (a.length > 20 ? `<${a.length} bytes>` : a))
      .join(' ')}`;
    const got = apply(xs, row);
    // A row expecting plain success accepts any result; all other rows compare exactly.
    if (expected === OK && typeof got !== 'string') return;
    expect(got, label).toEqual(expected);
  });
}

const FE = '/local/domain/1/device/vbd/51712';
const BE = '/local/domain/0/backend/vbd/1/51712';

describe('xenstore permission table', () => {
  it('Dom0, guests, ownership, inheritance and the libxl vbd layout', () => {
    const xs = withDomains(new XenStore());
    run(xs, [
      // Dom0 creates a node in a guest's home that does not exist yet: everything inherits "/" = n0.
      [0, 'write', '/local/domain/1/x', ['hello'], OK],
      [0, 'getPerms', '/local/domain/1', [], perms(['n0'])],
      [1, 'read', '/local/domain/1/x', [], 'EACCES'],
      [0, 'setPerms', '/local/domain/1/x', ['n0', 'r1'], OK],
      [1, 'read', '/local/domain/1/x', [], value('hello')],
      [1, 'write', '/local/domain/1/x', ['bye'], 'EACCES'],
      [2, 'read', '/local/domain/1/x', [], 'EACCES'],
      // Missing nodes: only those who can read the nearest ancestor learn that they are missing.
      [1, 'read', '/local/domain/1/nope', [], 'EACCES'],
      [0, 'read', '/local/domain/1/nope', [], 'ENOENT'],
      [0, 'read', '/nothing/here', [], 'ENOENT'],

      // The toolstack hands out homes.
      [0, 'mkdir', '/local/domain/1', [], OK],
      [0, 'setPerms', '/local/domain/1', ['n1'], OK],
      [0, 'mkdir', '/local/domain/2', [], OK],
      [0, 'setPerms', '/local/domain/2', ['n2'], OK],
      [0, 'write', '/local/domain/0/name', ['Domain-0'], OK],
      [1, 'read', '/local/domain/1/nope', [], 'ENOENT'],

      // A guest owns what it creates (its id replaces the inherited owner).
      [1, 'write', 'data/a', ['1'], OK],
      [1, 'read', '/local/domain/1/data/a', [], value('1')],
      [1, 'getPerms', 'data', [], perms(['n1'])],
      [1, 'getPerms', 'data/a', [], perms(['n1'])],
      [1, 'directory', '/local/domain/1', [], list(['data', 'x'])],
      [2, 'read', '/local/domain/1/data/a', [], 'EACCES'],
      [2, 'write', '/local/domain/1/data/b', ['x'], 'EACCES'],
      [2, 'mkdir', '/local/domain/1/data', [], 'EACCES'],
      [2, 'directory', '/local/domain/1', [], 'EACCES'],

      // Nothing under Dom0's home for a guest.
      [1, 'write', '/local/domain/0/evil', ['x'], 'EACCES'],
      [1, 'mkdir', '/local/domain/0/backend', [], 'EACCES'],
      [1, 'read', '/local/domain/0/name', [], 'EACCES'],
      [1, 'write', '/local/domain/0/name', ['pwned'], 'EACCES'],
      [1, 'write', '/toplevel', ['x'], 'EACCES'],
      [0, 'read', '/local/domain/0/name', [], value('Domain-0')],

      // Only the owner (or Dom0) sets perms; only Dom0 changes the owner.
      [1, 'setPerms', '/local/domain/1/x', ['n1'], 'EACCES'],
      [1, 'setPerms', 'data/a', ['n1', 'r2'], OK],
      [2, 'read', '/local/domain/1/data/a', [], value('1')],
      [2, 'read', '/local/domain/1/data', [], 'EACCES'],
      [2, 'setPerms', '/local/domain/1/data/a', ['n2'], 'EACCES'],
      [1, 'setPerms', 'data/a', ['n2'], 'EPERM'],
      [1, 'getPerms', 'data/a', [], perms(['n1', 'r2'])],
      [0, 'setPerms', '/local/domain/1/data/a', ['b2'], OK],
      // Now owned by 2 with "both" as the default: 2 writes it, 1 and 3 may read and write too.
      [2, 'write', '/local/domain/1/data/a', ['2'], OK],
      [2, 'getPerms', '/local/domain/1/data/a', [], perms(['b2'])],
      [1, 'read', 'data/a', [], value('2')],
      [3, 'write', '/local/domain/1/data/a', ['3'], OK],
      [3, 'setPerms', '/local/domain/1/data/a', ['b3'], 'EACCES'],
      [1, 'setPerms', 'data/a', ['n1'], 'EACCES'],
      // A later entry overrides the default for its domain only.
      [0, 'setPerms', '/local/domain/1/data/a', ['r2', 'n3'], OK],
      [3, 'read', '/local/domain/1/data/a', [], 'EACCES'],
      [1, 'read', '/local/domain/1/data/a', [], value('3')],
      [1, 'write', '/local/domain/1/data/a', ['4'], 'EACCES'],

      // libxl vbd layout with Dom0 as the backend: frontend dir owned by the frontend with read
      // for the backend, backend dir owned by the backend with read for the frontend.
      [0, 'mkdir', FE, [], OK],
      // Dom0 creating inside domain 1's home keeps domain 1 as the owner.
      [0, 'getPerms', FE, [], perms(['n1'])],
      [0, 'setPerms', FE, ['n1', 'r0'], OK],
      [0, 'write', `${FE}/backend`, [BE], OK],
      [0, 'write', `${FE}/state`, ['1'], OK],
      [0, 'getPerms', `${FE}/state`, [], perms(['n1', 'r0'])],
      [0, 'mkdir', BE, [], OK],
      [0, 'setPerms', BE, ['n0', 'r1'], OK],
      [0, 'write', `${BE}/frontend`, [FE], OK],
      [0, 'write', `${BE}/state`, ['1'], OK],
      [0, 'getPerms', `${BE}/state`, [], perms(['n0', 'r1'])],
      [1, 'read', `${BE}/frontend`, [], value(FE)],
      [1, 'directory', BE, [], list(['frontend', 'state'])],
      [1, 'write', `${BE}/state`, ['5'], 'EACCES'],
      [1, 'rm', `${BE}/state`, [], 'EACCES'],
      [1, 'write', `${BE}/new-key`, ['x'], 'EACCES'],
      [1, 'directory', '/local/domain/0/backend/vbd/1', [], 'EACCES'],
      [1, 'write', `${FE}/state`, ['3'], OK],
      [1, 'write', `${FE}/ring-ref`, ['8'], OK],
      [1, 'getPerms', `${FE}/ring-ref`, [], perms(['n1', 'r0'])],
      [0, 'read', `${FE}/ring-ref`, [], value('8')],
      [2, 'read', `${FE}/state`, [], 'EACCES'],
      [2, 'read', `${BE}/state`, [], 'EACCES'],
      [2, 'directory', BE, [], 'EACCES'],
      [0, 'directory', FE, [], list(['backend', 'ring-ref', 'state'])],
    ]);
  });

  it('a driver domain backend and its frontend can each read, but not write, the other side', () => {
    const be = '/local/domain/2/backend/vbd/3/51712';
    const fe = '/local/domain/3/device/vbd/51712';
    const xs = withDomains(new XenStore());
    run(xs, [
      [0, 'mkdir', '/local/domain/2', [], OK],
      [0, 'setPerms', '/local/domain/2', ['n2'], OK],
      [0, 'mkdir', '/local/domain/3', [], OK],
      [0, 'setPerms', '/local/domain/3', ['n3'], OK],
      [0, 'mkdir', fe, [], OK],
      [0, 'setPerms', fe, ['n3', 'r2'], OK],
      [0, 'mkdir', be, [], OK],
      [0, 'setPerms', be, ['n2', 'r3'], OK],
      [2, 'write', `${be}/state`, ['2'], OK],
      [3, 'write', `${fe}/ring-ref`, ['9'], OK],
      [2, 'read', `${fe}/ring-ref`, [], value('9')],
      [3, 'read', `${be}/state`, [], value('2')],
      [2, 'write', `${fe}/state`, ['4'], 'EACCES'],
      [3, 'write', `${be}/state`, ['4'], 'EACCES'],
      [2, 'setPerms', fe, ['n3', 'b2'], 'EACCES'],
      [3, 'setPerms', fe, ['n3', 'b2'], OK],
      [2, 'write', `${fe}/state`, ['4'], OK],
      // 2 created it inside 3's directory, so 2 owns it.
      [2, 'getPerms', `${fe}/state`, [], perms(['n2', 'b2'])],
      [4, 'read', `${be}/state`, [], 'EACCES'],
    ]);
  });

  it('relative paths resolve against the caller’s own home', () => {
    const xs = withDomains(new XenStore());
    run(xs, [
      [0, 'mkdir', '/local/domain/1', [], OK],
      [0, 'setPerms', '/local/domain/1', ['n1'], OK],
      [0, 'mkdir', '/local/domain/2', [], OK],
      [0, 'setPerms', '/local/domain/2', ['n2'], OK],
      [0, 'write', 'name', ['Domain-0'], OK],
      [0, 'read', '/local/domain/0/name', [], value('Domain-0')],
      [1, 'write', 'rel/key', ['v'], OK],
      [0, 'read', '/local/domain/1/rel/key', [], value('v')],
      [1, 'read', 'rel/key', [], value('v')],
      [1, 'directory', 'rel', [], list(['key'])],
      // The same relative path names domain 2's own (empty) home, never domain 1's.
      [2, 'read', 'rel/key', [], 'ENOENT'],
      [2, 'write', 'rel/key', ['w'], OK],
      [1, 'read', 'rel/key', [], value('v')],
      [1, 'read', 'name', [], 'ENOENT'],
    ]);
  });

  it('bad paths are EINVAL', () => {
    const xs = withDomains(new XenStore());
    const long = (n: number): string => 'x'.repeat(n);
    run(xs, [
      [0, 'read', '', [], 'EINVAL'],
      [0, 'read', '/a//b', [], 'EINVAL'],
      [0, 'read', '/a/', [], 'EINVAL'],
      [0, 'write', '/a b', ['v'], 'EINVAL'],
      [0, 'write', '/a/b$', ['v'], 'EINVAL'],
      [0, 'write', '/a/\u00e9', ['v'], 'EINVAL'],
      [0, 'write', '/a\0b', ['v'], 'EINVAL'],
      [0, 'read', '@introduceDomain', [], 'EINVAL'],
      [0, 'write', '@releaseDomain', ['v'], 'EINVAL'],
      [0, 'directory', '@releaseDomain', [], 'EINVAL'],
      [0, 'watch', '@somethingElse', ['t'], 'EINVAL'],
      [0, 'watch', '/a//b', ['t'], 'EINVAL'],
      [0, 'watch', '@releaseDomain', ['t'], OK],
      [0, 'getPerms', '@releaseDomain', [], perms(['n0'])],
      // Relative paths up to 2048 bytes, absolute ones up to 3072.
      [0, 'write', long(2049), ['v'], 'EINVAL'],
      [0, 'write', long(2048), ['v'], OK],
      [0, 'write', '/' + long(3072), ['v'], 'EINVAL'],
      [0, 'write', '/' + long(3071), ['v'], OK],
      // Guests are held to 2048 bytes below /local/domain/<n>/ (xenstored's path-max quota).
      [0, 'mkdir', '/local/domain/1', [], OK],
      [0, 'setPerms', '/local/domain/1', ['n1'], OK],
      [1, 'write', '/local/domain/1/' + long(2049), ['v'], 'EINVAL'],
      [1, 'write', long(2048), ['v'], OK],
      [0, 'write', '/local/domain/1/' + long(2049), ['v'], OK],
      [1, 'read', '/' + long(2049), [], 'EINVAL'],
    ]);
  });

  it('rm: subtree, absent node, absent parent, root, and permission on the node only', () => {
    const xs = withDomains(new XenStore());
    run(xs, [
      [0, 'rm', '/nonexistent', [], OK],
      [0, 'rm', '/nonexistent/child', [], 'ENOENT'],
      [0, 'rm', '/', [], 'EINVAL'],
      [1, 'rm', '/', [], 'EACCES'],
      [0, 'mkdir', '/local/domain/1', [], OK],
      [0, 'setPerms', '/local/domain/1', ['n1'], OK],
      [1, 'write', 'data/a/b', ['1'], OK],
      [1, 'write', 'data/c', ['2'], OK],
      [0, 'setPerms', '/local/domain/1/data/a', ['n2'], OK],
      [1, 'rm', 'missing', [], OK],
      [1, 'rm', 'missing/child', [], 'ENOENT'],
      [2, 'rm', '/local/domain/1/missing', [], 'EACCES'],
      [2, 'rm', '/local/domain/1/data/c', [], 'EACCES'],
      [2, 'rm', '/local/domain/1', [], 'EACCES'],
      [1, 'rm', '/local/domain/0', [], 'EACCES'],
      // Write access to the node itself is enough, even for children owned by others.
      [1, 'rm', 'data/a/b', [], OK],
      [1, 'read', 'data/a/b', [], 'EACCES'],
      [1, 'rm', 'data', [], OK],
      [0, 'read', '/local/domain/1/data/a', [], 'ENOENT'],
      [0, 'read', '/local/domain/1/data', [], 'ENOENT'],
      [1, 'directory', '/local/domain/1', [], list([])],
      [0, 'rm', '/local/domain', [], OK],
      [0, 'directory', '/local', [], list([])],
    ]);
  });

  it('values over 4096 bytes are E2BIG for guests; Dom0 is exempt', () => {
    const xs = withDomains(new XenStore());
    run(xs, [
      [0, 'mkdir', '/local/domain/1', [], OK],
      [0, 'setPerms', '/local/domain/1', ['n1'], OK],
      [1, 'write', 'big', ['x'.repeat(4097)], 'E2BIG'],
      [1, 'read', 'big', [], 'ENOENT'],
      [1, 'write', 'big', ['x'.repeat(4096)], OK],
      // The limit counts bytes, not UTF-16 units.
      [1, 'write', 'big', ['\u00e9'.repeat(2049)], 'E2BIG'],
      [0, 'write', '/local/domain/0/big', ['x'.repeat(5000)], OK],
    ]);
    expect(xs.read(1, 0, 'big')).toHaveLength(4096);
  });

  it('quotas: nodes (owner counts), watches, transactions, value size, perms per node', () => {
    const xs = withDomains(
      new XenStore({
        quota: {
          maxNodesPerDomain: 6,
          maxWatchesPerDomain: 2,
          maxTransactionsPerDomain: 2,
          maxValueBytes: 8,
        },
      }),
    );
    run(xs, [
      [0, 'mkdir', '/local/domain/1', [], OK],
      [0, 'setPerms', '/local/domain/1', ['n1'], OK], // domain 1 owns 1
      [1, 'write', 'a', ['1'], OK], // 2
      [1, 'write', 'b/c', ['1'], OK], // 4
      [1, 'write', 'd/e/f', ['1'], 'ENOSPC'], // would be 7: nothing is created
      [1, 'read', 'd', [], 'ENOENT'],
      [1, 'write', 'd/e', ['1'], OK], // 6
      [1, 'write', 'g', ['1'], 'ENOSPC'],
      [1, 'mkdir', 'g', [], 'ENOSPC'],
      [1, 'write', 'a', ['2'], OK], // rewriting creates nothing
      // Dom0 is exempt, but what it creates in domain 1's home is owned by, and counted for, 1.
      [0, 'write', '/local/domain/1/h', ['x'], OK], // 7
      [1, 'rm', 'h', [], OK], // 6
      [1, 'write', 'g', ['1'], 'ENOSPC'],
      [1, 'rm', 'b', [], OK], // 4
      [1, 'write', 'g', ['1'], OK], // 5
      [0, 'mkdir', '/pool', [], OK],
      [0, 'setPerms', '/pool', ['n0', 'w1'], OK],
      [1, 'write', '/pool/p', ['1'], OK], // 6: nodes anywhere count for their owner
      [1, 'write', '/pool/q', ['1'], 'ENOSPC'],
      [0, 'write', '/pool/q', ['1'], OK], // owned by 0: does not count for 1
      [0, 'setPerms', '/pool/q', ['n1'], OK], // Dom0 gives it to 1: now 7, over quota
      [1, 'rm', '/pool/p', [], OK], // 6
      [1, 'write', '/pool/r', ['1'], 'ENOSPC'],
      [0, 'setPerms', '/pool/q', ['n0'], OK], // 5
      [1, 'write', '/pool/r', ['1'], OK], // 6

      [1, 'write', 'a', ['123456789'], 'E2BIG'],
      [1, 'write', 'a', ['12345678'], OK],
      [0, 'write', '/local/domain/1/a', ['123456789'], OK],

      [1, 'watch', 'a', ['t1'], OK],
      [1, 'watch', 'a', ['t2'], OK],
      [1, 'watch', 'a', ['t1'], 'EEXIST'],
      [1, 'watch', 'a', ['t3'], 'E2BIG'],
      [1, 'unwatch', 'a', ['nope'], 'ENOENT'],
      [1, 'unwatch', '/local/domain/1/a', ['t1'], OK], // same watch, named absolutely
      [1, 'watch', 'g', ['t3'], OK],
      [0, 'watch', '/', ['a'], OK],
      [0, 'watch', '/', ['b'], OK],
      [0, 'watch', '/', ['c'], OK],

      [1, 'txStart', '', [], OK],
      [1, 'txStart', '', [], OK],
      [1, 'txStart', '', [], 'ENOSPC'],
      [2, 'txStart', '', [], OK],
      [0, 'txStart', '', [], OK],
      [0, 'txStart', '', [], OK],
      [0, 'txStart', '', [], OK],

      [1, 'setPerms', 'a', ['n1', 'r2', 'r3', 'r4', 'r5', 'r6'], 'ENOSPC'],
      [1, 'setPerms', 'a', ['n1', 'r2', 'r3', 'r4', 'r5'], OK],
      [0, 'setPerms', 'name', ['n0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6'], 'ENOENT'],
      [0, 'setPerms', '/pool', ['n0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6'], OK],
      [1, 'setPerms', 'a', [], 'EINVAL'],
      [1, 'setPerms', 'a', ['x1'], 'EINVAL'],
      [1, 'setPerms', 'a', ['r'], 'EINVAL'],
      [1, 'setPerms', 'a', ['r65536'], 'EINVAL'],
    ]);
    expect(xs.stats()).toEqual({ nodes: xs.dump().length, watches: 5, transactions: 6 });
  });
});

describe('xenstore store API', () => {
  it('starts with the xenstored skeleton owned by Dom0', () => {
    const xs = withDomains(new XenStore());
    expect(xs.dump()).toEqual([
      { path: '/', value: '', perms: ['n0'] },
      { path: '/tool', value: '', perms: ['n0'] },
      { path: '/tool/xenstored', value: '', perms: ['n0'] },
    ]);
    expect(xs.nodeCount()).toBe(3);
    expect(xs.stats()).toEqual({ nodes: 3, watches: 0, transactions: 0 });
    expect(xs.exists('/tool')).toBe(true);
    expect(xs.exists('/local')).toBe(false);
  });

  it('write creates parents with empty values and mkdir leaves existing values alone', () => {
    const xs = withDomains(new XenStore());
    xs.write(0, 0, '/a/b/c', 'v');
    xs.mkdir(0, 0, '/a/b');
    xs.mkdir(0, 0, '/a/b/c');
    expect(xs.dump('/a')).toEqual([
      { path: '/a', value: '', perms: ['n0'] },
      { path: '/a/b', value: '', perms: ['n0'] },
      { path: '/a/b/c', value: 'v', perms: ['n0'] },
    ]);
    expect(xs.nodeCount()).toBe(6);
    expect(xs.dump('/nope')).toEqual([]);
  });

  it('lists children sorted', () => {
    const xs = withDomains(new XenStore());
    for (const k of ['zeta', 'alpha', '10', '9', 'Beta']) xs.write(0, 0, `/d/${k}`, '');
    expect(xs.directory(0, 0, '/d')).toEqual(['10', '9', 'Beta', 'alpha', 'zeta']);
  });

  it('returns copies that callers cannot use to modify the store', () => {
    const xs = withDomains(new XenStore());
    xs.write(0, 0, '/a/b', '');
    xs.directory(0, 0, '/a').push('evil');
    const p = xs.getPerms(0, 0, '/a');
    p[0].perm = 'b';
    const mine = [{ domid: 0, perm: 'r' as const }];
    xs.setPerms(0, 0, '/a', mine);
    mine[0].domid = 5;
    expect(xs.directory(0, 0, '/a')).toEqual(['b']);
    expect(formatPerms(xs.getPerms(0, 0, '/a'))).toEqual(['r0']);
  });

  it('rejects callers that are not domain ids and bad perm entries', () => {
    const xs = withDomains(new XenStore());
    const code = (fn: () => unknown): string => {
      try {
        fn();
        return 'OK';
      } catch (e) {
        return e instanceof PvblkError ? e.code : 'not a PvblkError';
      }
    };
    expect(code(() => xs.read(-1, 0, '/'))).toBe('EINVAL');
    expect(code(() => xs.read(1.5, 0, '/'))).toBe('EINVAL');
    expect(code(() => xs.read(0x7ff0, 0, '/'))).toBe('EINVAL');
    expect(code(() => xs.transactionStart(NaN))).toBe('EINVAL');
    expect(code(() => xs.setPerms(0, 0, '/', [{ domid: -1, perm: 'r' }]))).toBe('EINVAL');
    expect(code(() => xs.setPerms(0, 0, '/', [{ domid: 1, perm: 'x' as 'r' }]))).toBe('EINVAL');
    expect(code(() => xs.watch(0, '/', 'a\0b'))).toBe('EINVAL');
    expect(code(() => new XenStore({ quota: { maxNodesPerDomain: -1 } }))).toBe('EINVAL');
    expect(code(() => xs.releaseDomain(0))).toBe('EINVAL');
  });

  it('error messages name the path and the domain', () => {
    const xs = withDomains(new XenStore());
    xs.write(0, 0, '/secret', 's');
    expect(() => xs.read(7, 0, '/secret')).toThrow('EACCES: domain 7 may not read /secret');
    expect(() => xs.read(0, 0, '/gone')).toThrow('ENOENT: /gone does not exist');
    expect(() => xs.read(7, 0, 'a//b')).toThrow(/EINVAL: invalid xenstore path "a\/\/b" from domain 7/);
  });
});
