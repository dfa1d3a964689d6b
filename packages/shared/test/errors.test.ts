import { describe, expect, it } from 'vitest';
import { PvblkError, isPvblkError, isXsErrorName } from '../src/errors.ts';

describe('PvblkError', () => {
  it('carries a stable code and prefixes the message with it', () => {
    const e = new PvblkError('EACCES', 'domain 1 may not read /local/domain/0');
    expect(e.code).toBe('EACCES');
    expect(e.message).toBe('EACCES: domain 1 may not read /local/domain/0');
    expect(isPvblkError(e, 'EACCES')).toBe(true);
    expect(isPvblkError(e, 'ENOENT')).toBe(false);
    expect(isPvblkError(new Error('x'))).toBe(false);
  });
  it('knows the xenstore error names', () => {
    expect(isXsErrorName('EAGAIN')).toBe(true);
    expect(isXsErrorName('EWHATEVER')).toBe(false);
  });
});
