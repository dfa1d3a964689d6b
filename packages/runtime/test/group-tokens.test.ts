import { describe, expect, it } from 'vitest';
import {
  deriveGroupToken,
  deriveGuestToken,
  inGroup,
  verifyGroupToken,
  verifyGuestToken,
} from '../src/index.ts';

const OP = 'operator-token-for-tests';

describe('group tokens', () => {
  it('verify under the operator token that issued them, with their kind and prefix', () => {
    const t = deriveGroupToken(OP, 'guest', 'guest');
    expect(t).toMatch(/^pvblk-group\.guest\.guest\.[A-Za-z0-9_-]{43}$/);
    expect(verifyGroupToken(OP, t)).toEqual({ kind: 'guest', prefix: 'guest' });
    expect(verifyGroupToken(OP, deriveGroupToken(OP, 'driver-domain', 'dd'))).toEqual({
      kind: 'driver-domain',
      prefix: 'dd',
    });
    expect(verifyGroupToken('another-operator-token', t)).toBeNull();
  });

  it('a changed kind or prefix, or a guest token, is no group token', () => {
    const t = deriveGroupToken(OP, 'guest', 'guest');
    expect(verifyGroupToken(OP, t.replace('.guest.guest.', '.driver-domain.guest.'))).toBeNull();
    expect(verifyGroupToken(OP, t.replace('.guest.guest.', '.guest.gues.'))).toBeNull();
    expect(verifyGroupToken(OP, deriveGuestToken(OP, 'guest1'))).toBeNull();
    expect(verifyGuestToken(OP, t)).toBeNull();
    expect(verifyGroupToken(OP, `${t}x`)).toBeNull();
  });

  it('covers the names that start with its prefix', () => {
    expect(inGroup('guest', 'guest1')).toBe(true);
    expect(inGroup('guest', 'guest64')).toBe(true);
    expect(inGroup('dd-', 'dd-node-a')).toBe(true);
    expect(inGroup('guest', 'guest')).toBe(false);
    expect(inGroup('guest', 'guestx/1')).toBe(false);
    expect(inGroup('guest', 'Guest1')).toBe(false);
    expect(inGroup('dd', 'guest1')).toBe(false);
  });

  it('refuses bad prefixes', () => {
    expect(() => deriveGroupToken(OP, 'guest', '')).toThrow(/EINVAL: bad group prefix/);
    expect(() => deriveGroupToken(OP, 'guest', 'a/b')).toThrow(/EINVAL/);
  });
});
