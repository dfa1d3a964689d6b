import { describe, expect, it } from 'vitest';
import { renderRecord } from '../src/render.ts';

describe('renderRecord', () => {
  it('renders a kernel message as dmesg does, its control characters escaped', () => {
    const r = {
      level: 50,
      kmsg: true,
      klevel: 3,
      ts: 561.299591,
      msg: 'unknown fe protocol x\nFAKE \u001b[2J',
    };
    expect(renderRecord(r)).toBe('[  561.299591] unknown fe protocol x\\x0aFAKE \\x1b[2J');
  });

  it('keeps a record’s message on one line and out of the terminal’s control', () => {
    const r = { level: 30, time: 1, name: 'host', msg: 'saw state "4\nINFO: forged \u001b[31m"' };
    expect(renderRecord(r)).toBe('INFO: saw state "4\\x0aINFO: forged \\x1b[31m"');
  });

  it('lays an error out on its lines, with no escape sequence in them', () => {
    const r = {
      level: 50,
      time: 1,
      name: 'host',
      msg: 'failed',
      err: { type: 'Error', message: 'bad \u001b[31m', stack: 'Error: bad \u001b[31m\n    at f (x.ts:1)' },
    };
    const s = renderRecord(r)!;
    expect(s.split('\n').length).toBeGreaterThan(1);
    expect(s).toContain('at f (x.ts:1)');
    expect(s).not.toContain('\u001b');
  });

  it('passes a guest’s console output as it is', () => {
    expect(renderRecord({ level: 30, console: true, msg: '\u001b[1mbold\u001b[0m' })).toBe(
      '\u001b[1mbold\u001b[0m',
    );
  });
});
