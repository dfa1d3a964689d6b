/**
 * Group tokens: what an orchestrator gives every replica of one service, when it cannot give each
 * replica a secret of its own (a swarm service's secrets are the same for all its tasks) and the
 * replicas cannot keep a key where they run (a task may be rescheduled on any node).
 *
 * A group token covers the names that start with its prefix (`guest` + a swarm task slot: guest1,
 * guest2, …; `dd-` + a node's host name) of one kind of domain, and proves the operator issued it:
 *
 *   pvblk-group.<kind>.<prefix>.<base64url HMAC-SHA256(operator token, "pvblk group token v1" NUL kind NUL prefix)>
 *
 * kind `guest`: may boot (create, or boot again with its disk) any guest of the group, as that guest's
 * own token would. kind `driver-domain`: may have Dom0's toolstack create any driver domain of the
 * group. Nothing else. The replicas of a service are one trust group among themselves — each can act
 * as any other of the group, as compose replicas sharing the guest-keys volume can — and guests
 * against everything outside the group. Like guest tokens, the host keeps no table: it recomputes the
 * MAC, and changing the operator token revokes them all. See docs/swarm.md.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { PvblkError } from '@pvblk/shared';
import { GUEST_NAME_RE } from './secrets.ts';

export type GroupKind = 'guest' | 'driver-domain';
export const GROUP_KINDS: readonly GroupKind[] = ['guest', 'driver-domain'];

const PREFIX = 'pvblk-group.';
const CONTEXT = 'pvblk group token v1\0';
/** A group's prefix: the first characters of its names. */
const GROUP_PREFIX_RE = /^[A-Za-z0-9_.-]{1,55}$/;
const TOKEN_RE = /^pvblk-group\.(guest|driver-domain)\.([A-Za-z0-9_.-]{1,55})\.([A-Za-z0-9_-]{43})$/;

export function checkGroupPrefix(prefix: string): string {
  if (!GROUP_PREFIX_RE.test(prefix))
    throw new PvblkError(
      'EINVAL',
      `bad group prefix ${JSON.stringify(prefix.slice(0, 80))}: 1-55 characters of A-Z a-z 0-9 _ . -`,
    );
  return prefix;
}

function groupMac(operatorToken: string, kind: GroupKind, prefix: string): Buffer {
  return createHmac('sha256', operatorToken).update(`${CONTEXT}${kind}\0${prefix}`).digest();
}

/** The group token of the names starting with `prefix` of one kind, as the operator issues it. */
export function deriveGroupToken(operatorToken: string, kind: GroupKind, prefix: string): string {
  if (!GROUP_KINDS.includes(kind)) throw new PvblkError('EINVAL', `bad group kind ${JSON.stringify(kind)}`);
  checkGroupPrefix(prefix);
  return `${PREFIX}${kind}.${prefix}.${groupMac(operatorToken, kind, prefix).toString('base64url')}`;
}

/** The kind and prefix a token was issued for under this operator token; null when it is not a valid one. */
export function verifyGroupToken(
  operatorToken: string,
  token: string,
): { kind: GroupKind; prefix: string } | null {
  if (!token.startsWith(PREFIX)) return null;
  const m = TOKEN_RE.exec(token);
  if (!m) return null;
  const kind = m[1] as GroupKind;
  const given = Buffer.from(m[3], 'base64url');
  const want = groupMac(operatorToken, kind, m[2]);
  return given.length === want.length && timingSafeEqual(given, want) ? { kind, prefix: m[2] } : null;
}

/** Whether `name` is one of the group's: the prefix and at least one more character. */
export function inGroup(prefix: string, name: string): boolean {
  return name.length > prefix.length && name.startsWith(prefix) && GUEST_NAME_RE.test(name);
}
