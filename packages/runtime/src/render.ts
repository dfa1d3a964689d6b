/**
 * Turns a pino record into the line a human reads: kernel messages as dmesg prints them, everything
 * else as `LEVEL message key=value …` (through pino-pretty's formatter, without colours so the lines
 * are stable in files and CI logs).
 */
import { prettyFactory } from 'pino-pretty';
import { escapeKmsgText, formatKmsg } from '@pvblk/shared';

const pretty = prettyFactory({
  colorize: false,
  ignore: 'pid,hostname,name,time',
  singleLine: true,
  translateTime: false,
});

export interface KmsgRecord {
  kmsg: true;
  klevel: number;
  ts: number;
  msg: string;
}

export function isKmsgRecord(r: Record<string, unknown>): r is Record<string, unknown> & KmsgRecord {
  return r.kmsg === true && typeof r.ts === 'number' && typeof r.msg === 'string';
}

/**
 * One human line for a record; null for records that carry nothing to show. Control characters in a
 * kernel message or a record are shown escaped (escapeKmsgText); a guest's console output is its own
 * and passes as it is, as `xl console` passes a guest's.
 */
export function renderRecord(r: Record<string, unknown>): string | null {
  if (isKmsgRecord(r)) return formatKmsg(r.ts, r.msg);
  // a guest's console output (its workload): the text as the command printed it
  if (r.console === true && typeof r.msg === 'string') return r.msg;
  // a record's words can carry a peer's (a XenStore value, a guest's name for something): its message
  // is one line whatever it holds, and no escape sequence reaches the operator's terminal (an error's
  // stack keeps the lines pino-pretty lays it out on)
  const msg = typeof r.msg === 'string' ? { ...r, msg: escapeKmsgText(r.msg) } : r;
  const s = escapeKmsgText(pretty(msg).trimEnd(), true);
  return s.length > 0 ? s : null;
}
