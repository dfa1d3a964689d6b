/**
 * Process logging. Every pvblk process logs structured pino records (NDJSON on stdout) — machines and
 * the `pvblk` supervisor read those. With PVBLK_LOG_FORMAT=pretty a process renders its own records
 * for humans instead (what `docker compose up` shows).
 *
 * Kernel-style messages (`end_request: I/O error, dev xvda, sector 4656`) are records with `kmsg: true`,
 * the printk level and the dmesg timestamp: the renderer prints them exactly as dmesg would.
 */
import pino, { type Logger } from 'pino';
import { renderRecord } from './render.ts';

export type LogFormat = 'json' | 'pretty';

export function logFormatFromEnv(env: NodeJS.ProcessEnv = process.env): LogFormat {
  const v = env.PVBLK_LOG_FORMAT ?? 'json';
  if (v !== 'json' && v !== 'pretty') {
    throw new Error(`PVBLK_LOG_FORMAT must be "json" or "pretty" (got "${v}")`);
  }
  return v;
}

export function createLogger(name: string, opts: { format?: LogFormat; level?: string } = {}): Logger {
  const format = opts.format ?? logFormatFromEnv();
  const level = opts.level ?? process.env.PVBLK_LOG_LEVEL ?? 'info';
  const base = { name };
  if (format === 'json') {
    return pino(
      { level, base, timestamp: pino.stdTimeFunctions.epochTime },
      pino.destination({ dest: 1, sync: true }),
    );
  }
  const out = {
    write(line: string) {
      const text = renderRecord(JSON.parse(line) as Record<string, unknown>);
      if (text !== null) process.stdout.write(text + '\n');
    },
  };
  return pino({ level, base, timestamp: pino.stdTimeFunctions.epochTime }, out);
}
