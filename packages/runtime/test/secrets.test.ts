import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveDom0Secret, resolveToolstackToken } from '../src/secrets.ts';

describe('secrets from the environment or a file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pvblk-secret-'));
  const file = join(dir, 'token');
  writeFileSync(file, 'from-a-file-0123456789\n');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prefers the variable, then the file, trimmed', () => {
    expect(resolveDom0Secret({}, { PVBLK_DOM0_SECRET: 'a'.repeat(16), PVBLK_DOM0_SECRET_FILE: file })).toBe(
      'a'.repeat(16),
    );
    expect(resolveDom0Secret({}, { PVBLK_DOM0_SECRET_FILE: file })).toBe('from-a-file-0123456789');
    expect(resolveToolstackToken({ PVBLK_TOOLSTACK_TOKEN_FILE: file })).toBe('from-a-file-0123456789');
  });

  it('names what is missing or unreadable', () => {
    expect(() => resolveToolstackToken({})).toThrow(
      'EUSAGE: no provisioning token: set PVBLK_TOOLSTACK_TOKEN or PVBLK_TOOLSTACK_TOKEN_FILE',
    );
    expect(() => resolveDom0Secret({}, {})).toThrow(
      'no Dom0 credential: set PVBLK_DOM0_SECRET or PVBLK_DOM0_SECRET_FILE (pvblk up and docker compose generate one)',
    );
    expect(() => resolveDom0Secret({}, { PVBLK_DOM0_SECRET_FILE: join(dir, 'absent') })).toThrow(
      /^EUSAGE: cannot read the Dom0 credential file .*absent: ENOENT/,
    );
    expect(() => resolveDom0Secret({ dom0Secret: 'short' }, {})).toThrow('at least 16 characters');
  });
});
