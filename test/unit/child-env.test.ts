import { describe, expect, it } from 'vitest';
import { verifyGuestToken } from '@pvblk/runtime';
import { childEnv, stackCredentials } from '../../src/cli/child-env.ts';

const parent = {
  PATH: '/usr/bin',
  HOME: '/home/op',
  TMPDIR: '/tmp/x',
  PVBLK_LOG_LEVEL: 'debug',
  GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=67108864',
  PVBLK_DOM0_SECRET: 'exported-dom0-secret-0123456789',
  PVBLK_TOOLSTACK_TOKEN: 'exported-operator-token-0123',
  PVBLK_MAX_DISK_SIZE: '64M',
  AWS_SECRET_ACCESS_KEY: 'not for children',
  SSH_AUTH_SOCK: '/run/agent',
};

describe('the environment of the children of pvblk up/run', () => {
  const creds = stackCredentials(parent);

  it("takes the operator's exported secrets, or makes fresh ones", () => {
    expect(creds).toEqual({
      dom0Secret: parent.PVBLK_DOM0_SECRET,
      operatorToken: parent.PVBLK_TOOLSTACK_TOKEN,
      enrolToken: null,
    });
    const fresh = stackCredentials({});
    expect(fresh.dom0Secret).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(fresh.operatorToken).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(fresh.operatorToken).not.toBe(fresh.dom0Secret);
  });

  it('gives each role the allowlist and its own secrets, nothing else', () => {
    const base = {
      PATH: '/usr/bin',
      HOME: '/home/op',
      TMPDIR: '/tmp/x',
      PVBLK_LOG_LEVEL: 'debug',
      GLIBC_TUNABLES: parent.GLIBC_TUNABLES,
    };
    expect(childEnv('hypervisor', creds, undefined, parent)).toEqual({
      ...base,
      PVBLK_DOM0_SECRET: parent.PVBLK_DOM0_SECRET,
    });
    expect(childEnv('host', creds, undefined, parent)).toEqual({
      ...base,
      PVBLK_MAX_DISK_SIZE: '64M',
      PVBLK_DOM0_SECRET: parent.PVBLK_DOM0_SECRET,
      PVBLK_TOOLSTACK_TOKEN: parent.PVBLK_TOOLSTACK_TOKEN,
    });
    const guest = childEnv('guest', creds, 'guest2', parent);
    expect(Object.keys(guest).sort()).toEqual([...Object.keys(base), 'PVBLK_GUEST_TOKEN'].sort());
    expect(verifyGuestToken(parent.PVBLK_TOOLSTACK_TOKEN, guest.PVBLK_GUEST_TOKEN)).toBe('guest2');
    for (const env of [guest, childEnv('hypervisor', creds, undefined, parent)])
      expect(Object.values(env)).not.toContain(parent.PVBLK_TOOLSTACK_TOKEN);
    expect(Object.values(guest)).not.toContain(parent.PVBLK_DOM0_SECRET);
  });
});
