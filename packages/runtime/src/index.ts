export { createLogger, logFormatFromEnv, type LogFormat } from './logger.ts';
export { renderRecord, isKmsgRecord, type KmsgRecord } from './render.ts';
export { DomainKernelLog } from './kernel-log.ts';
export { onShutdown } from './shutdown.ts';
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
export {
  deriveGroupToken,
  verifyGroupToken,
  checkGroupPrefix,
  inGroup,
  GROUP_KINDS,
  type GroupKind,
} from './group-tokens.ts';
