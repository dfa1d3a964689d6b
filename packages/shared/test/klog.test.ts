import { describe, expect, it } from 'vitest';
import { escapeKmsgText, formatKmsg } from '../src/klog.ts';

describe('formatKmsg', () => {
  it('prints the dmesg timestamp and the text', () => {
    expect(formatKmsg(2.023833, 'end_request: I/O error, dev xvda, sector 4656')).toBe(
      '[    2.023833] end_request: I/O error, dev xvda, sector 4656',
    );
  });

  it('shows a guest’s control characters as \\xNN: no forged line, no escape sequence', () => {
    // what blkback says of a frontend `protocol` node a guest set to forge a line and colour the console
    const said = 'vbd vbd-24-51712: 38 unknown fe protocol x\n[    9.999999] FAKE \u001b[31mRED\u001b[2J';
    const line = formatKmsg(1.5, said);
    expect(line).toBe(
      '[    1.500000] vbd vbd-24-51712: 38 unknown fe protocol x\\x0a[    9.999999] FAKE \\x1b[31mRED\\x1b[2J',
    );
    expect(
      [...line].filter((c) => c.charCodeAt(0) < 0x20 || (c.charCodeAt(0) >= 0x7f && c.charCodeAt(0) <= 0x9f)),
    ).toEqual([]);
  });
});

describe('escapeKmsgText', () => {
  it('escapes C0 controls but tab, DEL and the C1 controls; leaves other text alone', () => {
    expect(escapeKmsgText('a\u0000b\rc\u007fd\u009be\tf é ✓')).toBe('a\\x00b\\x0dc\\x7fd\\x9be\tf é ✓');
  });

  it('keeps newlines when asked to', () => {
    expect(escapeKmsgText('one\ntwo\u001b[0m', true)).toBe('one\ntwo\\x1b[0m');
  });
});
