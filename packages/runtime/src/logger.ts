/**
 * Process logging. Every pvblk process logs structured pino records (NDJSON on stdout, written
 * asynchronously: see LOG_BUFFER_BYTES) — machines and the `pvblk` supervisor read those. With PVBLK_LOG_FORMAT=pretty a process renders its own records
 * for humans instead (what `docker compose up` shows).
 *
 * Kernel-style messages (`end_request: I/O error, dev xvda, sector 4656`) are records with `kmsg: true`,
 * the printk level and the dmesg timestamp: the renderer prints them exactly as dmesg would.
 */
import pino, { type Logger } from 'pino';
import { PvblkError } from '@pvblk/shared';
import { renderRecord } from './render.ts';

export type LogFormat = 'json' | 'pretty';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function logFormatFromEnv(env: NodeJS.ProcessEnv = process.env): LogFormat {
  const v = env.PVBLK_LOG_FORMAT ?? 'json';
  if (v !== 'json' && v !== 'pretty') {
    throw new PvblkError('EUSAGE', `PVBLK_LOG_FORMAT must be json or pretty (got "${v}")`);
  }
  return v;
}

export function logLevelFromEnv(env: NodeJS.ProcessEnv = process.env): LogLevel {
  const v = env.PVBLK_LOG_LEVEL ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(v)) {
    throw new PvblkError('EUSAGE', `PVBLK_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${v}")`);
  }
  return v as LogLevel;
}

/**
 * Records a process holds for a stdout that is not being read, in bytes; past them new records are
 * dropped, counted, and the count logged once the reader catches up — as printk's ring buffer and
 * its "** N printk messages dropped **". Written synchronously, a log line waited for the reader:
 * with the operator's console stopped (Ctrl-S, a stopped `pvblk up`), the first write that did not
 * fit stopped Dom0 and the broker, every guest's I/O with them, until the console read again — and
 * a guest could fill that console in a moment with lines Dom0 logs about it. Records still leave in
 * order, and at exit whatever is held is written out first (pino's exit handler).
 */
export const LOG_BUFFER_BYTES = 4 * 1024 * 1024;

export function createLogger(name: string, opts: { format?: LogFormat; level?: LogLevel } = {}): Logger {
  const format = opts.format ?? logFormatFromEnv();
  const level = opts.level ?? logLevelFromEnv();
  const base = { name };
  if (format === 'json') {
    const dest = pino.destination({ dest: 1, sync: false, maxLength: LOG_BUFFER_BYTES });
    const log = pino({ level, base, timestamp: pino.stdTimeFunctions.epochTime }, dest);
    let dropped = 0;
    dest.on('drop', () => void dropped++);
    // the reader is reading again (a write went out): say how many records it missed, once
    dest.on('write', () => {
      if (dropped === 0) return;
      const n = dropped;
      dropped = 0;
      log.warn({ dropped: n }, `** ${n} log records dropped **`);
    });
    return log;
  }
  const out = {
    write(line: string) {
      const text = renderRecord(JSON.parse(line) as Record<string, unknown>);
      if (text !== null) process.stdout.write(text + '\n');
    },
  };
  return pino({ level, base, timestamp: pino.stdTimeFunctions.epochTime }, out);
}
