export {
  createLogger,
  logFormatFromEnv,
  logLevelFromEnv,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
} from './logger.ts';
export { stdoutSink } from './log-sink.ts';
export { renderRecord, isKmsgRecord, type KmsgRecord } from './render.ts';
export { DomainKernelLog } from './kernel-log.ts';
export { onShutdown, watchForShutdown, supervised } from './shutdown.ts';
export {
  resolveDom0Secret,
  resolveOperatorToken,
  resolveEnrolToken,
  resolveDriverDomainToken,
  resolveGuestCredential,
  deriveGuestToken,
  verifyGuestToken,
  guestTokenName,
  checkGuestName,
  GUEST_NAME_RE,
  MIN_SECRET_LENGTH,
  type GuestCredential,
} from './secrets.ts';
export { withBackoff } from './backoff.ts';
export { FileTooLarge, readBounded } from './read-bounded.ts';
export {
  limitHttpConnections,
  httpServerOptions,
  addressGroup,
  DEFAULT_HTTP_CONNECTION_LIMITS,
  type HttpConnectionLimits,
} from './http-connections.ts';
export { errnoForHttpStatus } from './http-errno.ts';
export {
  AnswerError,
  fetchAnswer,
  HTTP_ANSWER_MAX_BYTES,
  HTTP_ANSWER_TIMEOUT_MS,
  type Answer,
  type AnswerRequest,
} from './fetch-answer.ts';
export { requestDomain, type DomainReply, type DomainRequest } from './domain-request.ts';
export {
  requestUrl,
  readJsonBody,
  refuseUpgrade,
  closeWebSocket,
  CLOSE_ANSWER_MS,
  CLOSE_ANSWER_BYTES_MAX,
  type ClosableWebSocket,
  MAX_JSON_BODY,
  HTTP_STATUS,
  errorReply,
} from './http-request.ts';
export {
  processTrace,
  decodeStamps,
  STAMP,
  TraceRecorder,
  TRACE_CAPACITY,
  type ClockProbe,
  type TraceDump,
} from './trace.ts';
export {
  deriveGroupToken,
  verifyGroupToken,
  checkGroupPrefix,
  inGroup,
  GROUP_KINDS,
  type GroupKind,
} from './group-tokens.ts';
export { replaceFile, nodeReplaceFileSystem, type ReplaceFileSystem } from './replace-file.ts';
