/**
 * Process logging. Every pvblk process logs structured pino records (NDJSON on stdout) — machines and
 * the `pvblk` supervisor read those. With PVBLK_LOG_FORMAT=pretty a process renders its own records
 * for humans instead (what `docker compose up` shows).
 *
 * Lines go out through the process's stdout sink (log-sink.ts), which never waits for a reader that
 * has stopped: it holds what the reader has not taken, drops and counts past a bound, and writes what
 * it holds when the process exits.
 *
 * Kernel-style messages (`end_request: I/O error, dev xvda, sector 4656`) are records with `kmsg: true`,
 * the printk level and the dmesg timestamp: the renderer prints them exactly as dmesg would.
 */
import pino, { type Logger } from 'pino';
import { PvblkError } from '@pvblk/shared';
import { renderRecord } from './render.ts';
import { droppedRecord, stdoutSink } from './log-sink.ts';

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

export function createLogger(name: string, opts: { format?: LogFormat; level?: LogLevel } = {}): Logger {
  const format = opts.format ?? logFormatFromEnv();
  const level = opts.level ?? logLevelFromEnv();
  const sink = stdoutSink();
  const base = { name };
  if (format === 'json') {
    sink.droppedLine = (n) => JSON.stringify(droppedRecord(n, name)) + '\n';
    return pino({ level, base, timestamp: pino.stdTimeFunctions.epochTime }, sink);
  }
  sink.droppedLine = (n) => (renderRecord(droppedRecord(n, name)) ?? '') + '\n';
  const out = {
    write(line: string) {
      const text = renderRecord(JSON.parse(line) as Record<string, unknown>);
      if (text !== null) sink.write(text + '\n');
    },
  };
  return pino({ level, base, timestamp: pino.stdTimeFunctions.epochTime }, out);
}
