import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkGuestName,
  deriveGuestToken,
  guestTokenName,
  resolveDom0Secret,
  resolveEnrolToken,
  resolveGuestCredential,
  resolveOperatorToken,
  verifyGuestToken,
} from '../src/secrets.ts';

const dir = mkdtempSync(join(tmpdir(), 'pvblk-secret-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('secrets from the environment or a file', () => {
  const file = join(dir, 'token');
  writeFileSync(file, 'from-a-file-0123456789\n');

  it('prefers the variable, then the file, trimmed', () => {
    expect(resolveDom0Secret({}, { PVBLK_DOM0_SECRET: 'a'.repeat(16), PVBLK_DOM0_SECRET_FILE: file })).toBe(
      'a'.repeat(16),
    );
    expect(resolveDom0Secret({}, { PVBLK_DOM0_SECRET_FILE: file })).toBe('from-a-file-0123456789');
    expect(resolveOperatorToken({ PVBLK_TOOLSTACK_TOKEN_FILE: file })).toBe('from-a-file-0123456789');
    expect(resolveEnrolToken({ PVBLK_ENROL_TOKEN_FILE: file })).toBe('from-a-file-0123456789');
  });

  it('names what is missing, unreadable or too short', () => {
    expect(() => resolveOperatorToken({})).toThrow(
      'EUSAGE: no operator token: set PVBLK_TOOLSTACK_TOKEN or PVBLK_TOOLSTACK_TOKEN_FILE',
    );
    expect(() => resolveOperatorToken({ PVBLK_TOOLSTACK_TOKEN: 'short' })).toThrow(
      'the operator token (PVBLK_TOOLSTACK_TOKEN) must be at least 16 characters',
    );
    expect(() => resolveDom0Secret({}, {})).toThrow(
      'no Dom0 credential: set PVBLK_DOM0_SECRET or PVBLK_DOM0_SECRET_FILE (pvblk up and docker compose generate one)',
    );
    expect(() => resolveDom0Secret({}, { PVBLK_DOM0_SECRET_FILE: join(dir, 'absent') })).toThrow(
      /^EUSAGE: cannot read the Dom0 credential file .*absent: ENOENT/,
    );
    expect(() => resolveDom0Secret({ dom0Secret: 'short' }, {})).toThrow('at least 16 characters');
    // a device that never ends is read up to 64 KiB, not until the process runs out of memory
    // (/dev/zero took the hypervisor to 5.3 GB, saying nothing)
    expect(() => resolveDom0Secret({}, { PVBLK_DOM0_SECRET_FILE: '/dev/zero' })).toThrow(
      'EUSAGE: cannot read the Dom0 credential file /dev/zero: more than 65536 bytes',
    );
    expect(resolveEnrolToken({})).toBeNull();
  });
});

describe('guest tokens', () => {
  const op = 'operator-token-0123456789';

  it('are HMAC-SHA256 of the name under the operator token, with the name in clear', () => {
    const t = deriveGuestToken(op, 'guest1');
    const mac = createHmac('sha256', op).update('pvblk guest token v1\0guest1').digest('base64url');
    expect(t).toBe(`pvblk-guest.guest1.${mac}`);
    expect(guestTokenName(t)).toBe('guest1');
    expect(verifyGuestToken(op, t)).toBe('guest1');
    // names may contain dots: the MAC is what follows the last one
    expect(verifyGuestToken(op, deriveGuestToken(op, 'a.b.c'))).toBe('a.b.c');
  });

  it('are refused under another operator token, for another name, or altered in any way', () => {
    const t = deriveGuestToken(op, 'guest1');
    expect(verifyGuestToken('another-operator-token', t)).toBeNull();
    // the MAC of guest1 presented for guest2
    expect(verifyGuestToken(op, t.replace('guest1', 'guest2'))).toBeNull();
    // a prefix of the MAC, an empty MAC, a flipped character, no prefix, the operator token itself
    expect(verifyGuestToken(op, t.slice(0, -1))).toBeNull();
    expect(verifyGuestToken(op, 'pvblk-guest.guest1.')).toBeNull();
    const last = t.at(-1) === 'A' ? 'B' : 'A';
    expect(verifyGuestToken(op, t.slice(0, -1) + last)).toBeNull();
    expect(verifyGuestToken(op, t.slice('pvblk-guest.'.length))).toBeNull();
    expect(verifyGuestToken(op, op)).toBeNull();
    // a name the token grammar does not allow never verifies
    expect(verifyGuestToken(op, `pvblk-guest.a/b.${t.split('.').at(-1)}`)).toBeNull();
    expect(guestTokenName('pvblk-guest..abc')).toBeNull();
  });

  it('are issued only for valid guest names', () => {
    expect(() => deriveGuestToken(op, '../x')).toThrow('bad guest name "../x"');
    expect(() => checkGuestName('x'.repeat(65))).toThrow('1-64 characters');
    expect(() => checkGuestName('')).toThrow('bad guest name');
    expect(checkGuestName('guest-1_a.b')).toBe('guest-1_a.b');
  });
});

describe("a guest's credential for the host API", () => {
  it('is its own token first, then enrolment (saving to PVBLK_GUEST_TOKEN_FILE), then the operator', () => {
    const keyFile = join(dir, 'guest1.key');
    const enrol = 'enrolment-token-0123456789';
    expect(
      resolveGuestCredential({ PVBLK_GUEST_TOKEN: 'pvblk-guest.g.x', PVBLK_ENROL_TOKEN: enrol }),
    ).toEqual({
      kind: 'guest',
      token: 'pvblk-guest.g.x',
    });
    // the key file does not exist yet: enrol, and keep the token there
    expect(resolveGuestCredential({ PVBLK_GUEST_TOKEN_FILE: keyFile, PVBLK_ENROL_TOKEN: enrol })).toEqual({
      kind: 'enrol',
      token: enrol,
      saveTo: keyFile,
    });
    writeFileSync(keyFile, 'pvblk-guest.guest1.mac\n');
    expect(resolveGuestCredential({ PVBLK_GUEST_TOKEN_FILE: keyFile, PVBLK_ENROL_TOKEN: enrol })).toEqual({
      kind: 'guest',
      token: 'pvblk-guest.guest1.mac',
    });
    expect(resolveGuestCredential({ PVBLK_TOOLSTACK_TOKEN: 'operator-token-0123456789' })).toEqual({
      kind: 'operator',
      token: 'operator-token-0123456789',
    });
    expect(() => resolveGuestCredential({})).toThrow(
      "EUSAGE: no credential for the host's management API: set PVBLK_GUEST_TOKEN[_FILE]",
    );
  });
});
