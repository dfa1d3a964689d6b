export { createLogger, logFormatFromEnv, type LogFormat } from './logger.ts';
export { renderRecord, isKmsgRecord, type KmsgRecord } from './render.ts';
export { DomainKernelLog } from './kernel-log.ts';
export { onShutdown } from './shutdown.ts';
export { resolveDom0Secret, resolveToolstackToken } from './secrets.ts';
export { withBackoff } from './backoff.ts';
export {
  processTrace,
  decodeStamps,
  STAMP,
  TraceRecorder,
  TRACE_CAPACITY,
  type ClockProbe,
  type TraceDump,
} from './trace.ts';
