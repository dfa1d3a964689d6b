/**
 * Path canonicalisation and permission-string rules, checked directly.
 */
import { describe, expect, it } from 'vitest';
import { PvblkError } from '@pvblk/shared';
import {
  XS_PERM_NONE,
  XS_PERM_OWNER,
  XS_PERM_READ,
  XS_PERM_WRITE,
  accessFor,
  canonicalize,
  formatPerm,
  parsePerm,
  parsePerms,
} from '../src/xenstore/index.ts';

function code(fn: () => unknown): string {
  try {
    fn();
    return 'OK';
  } catch (e) {
    if (e instanceof PvblkError) return e.code;
    throw e;
  }
}

describe('canonicalize', () => {
  it('resolves relative paths against the caller’s home and keeps absolute ones', () => {
    expect(canonicalize(7, 'device/vbd')).toEqual({ path: '/local/domain/7/device/vbd', relative: true });
    expect(canonicalize(7, '/local/domain/0')).toEqual({ path: '/local/domain/0', relative: false });
    expect(canonicalize(0, '/')).toEqual({ path: '/', relative: false });
    expect(canonicalize(0, '/a-b_c@d/E9')).toEqual({ path: '/a-b_c@d/E9', relative: false });
  });

  it('accepts the two special names only where allowed', () => {
    expect(canonicalize(1, '@releaseDomain', { allowSpecial: true })).toEqual({
      path: '@releaseDomain',
      relative: false,
    });
    expect(code(() => canonicalize(1, '@releaseDomain'))).toBe('EINVAL');
    expect(code(() => canonicalize(1, '@other', { allowSpecial: true }))).toBe('EINVAL');
  });

  it.each([
    ['', 'empty'],
    ['/a//b', 'doubled slash'],
    ['a//b', 'doubled slash'],
    ['/a/', 'trailing slash'],
    ['a/', 'trailing slash'],
    ['/a.b', 'dot'],
    ['/a:b', 'colon'],
    ['/a b', 'space'],
    ['/a\nb', 'newline'],
  ])('rejects %j (%s)', (path) => {
    expect(code(() => canonicalize(0, path, { privileged: true }))).toBe('EINVAL');
  });

  it('enforces the length limits', () => {
    expect(code(() => canonicalize(0, '/' + 'a'.repeat(3071), { privileged: true }))).toBe('OK');
    expect(code(() => canonicalize(0, '/' + 'a'.repeat(3072), { privileged: true }))).toBe('EINVAL');
    expect(code(() => canonicalize(0, 'a'.repeat(2048), { privileged: true }))).toBe('OK');
    expect(code(() => canonicalize(0, 'a'.repeat(2049), { privileged: true }))).toBe('EINVAL');
    // Unprivileged: 2048 below /local/domain/<n>/, or 2048 in all elsewhere.
    expect(code(() => canonicalize(3, '/local/domain/12345/' + 'a'.repeat(2048)))).toBe('OK');
    expect(code(() => canonicalize(3, '/local/domain/12345/' + 'a'.repeat(2049)))).toBe('EINVAL');
    expect(code(() => canonicalize(3, '/' + 'a'.repeat(2047)))).toBe('OK');
    expect(code(() => canonicalize(3, '/' + 'a'.repeat(2048)))).toBe('EINVAL');
  });
});

describe('permission strings', () => {
  it('parse and format n/r/w/b with a decimal domid', () => {
    expect(parsePerm('n0')).toEqual({ domid: 0, perm: 'n' });
    expect(parsePerm('r1')).toEqual({ domid: 1, perm: 'r' });
    expect(parsePerm('w65535')).toEqual({ domid: 65535, perm: 'w' });
    expect(parsePerms(['b3', 'r7'])).toEqual([
      { domid: 3, perm: 'b' },
      { domid: 7, perm: 'r' },
    ]);
    expect(formatPerm({ domid: 12, perm: 'b' })).toBe('b12');
  });

  it.each(['', 'r', 'x1', 'R1', 'r-1', 'r01', 'r1 ', ' r1', 'r65536', 'rw1', 'r0x1'])('reject %j', (s) => {
    expect(code(() => parsePerm(s))).toBe('EINVAL');
  });

  it('reject an empty list', () => {
    expect(code(() => parsePerms([]))).toBe('EINVAL');
  });
});

describe('accessFor', () => {
  const ALL = XS_PERM_READ | XS_PERM_WRITE | XS_PERM_OWNER;
  const perms = parsePerms(['r5', 'w2', 'n3', 'b4', 'r2']);
  it.each([
    [0, ALL, 'Dom0 bypasses everything'],
    [5, ALL, 'the owner has full access, whatever its letter'],
    [2, XS_PERM_WRITE, 'the first entry for a domain wins'],
    [3, XS_PERM_NONE, 'an entry can take away the default'],
    [4, XS_PERM_READ | XS_PERM_WRITE, 'b is both'],
    [9, XS_PERM_READ, 'others get the owner entry’s letter'],
  ])('domain %i gets %i: %s', (domid, want) => {
    expect(accessFor(domid, perms)).toBe(want);
  });
});
