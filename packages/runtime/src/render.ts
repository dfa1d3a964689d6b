/**
 * Turns a pino record into the line a human reads: kernel messages as dmesg prints them, everything
 * else as `LEVEL message key=value …` (through pino-pretty's formatter, without colours so the lines
 * are stable in files and CI logs).
 */
import { prettyFactory } from 'pino-pretty';
import { formatKmsg } from '@pvblk/shared';

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

/** One human line for a record; null for records that carry nothing to show. */
export function renderRecord(r: Record<string, unknown>): string | null {
  if (isKmsgRecord(r)) return formatKmsg(r.ts, r.msg);
  // a guest's console output (its workload): the text as the command printed it
  if (r.console === true && typeof r.msg === 'string') return r.msg;
  const s = pretty(r).trimEnd();
  return s.length > 0 ? s : null;
}
