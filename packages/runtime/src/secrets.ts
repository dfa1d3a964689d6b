/**
 * The secrets of a pvblk system and the credentials derived from them, read the same way by every
 * process: from `<NAME>` in the environment, or from the file named by `<NAME>_FILE` (compose secrets,
 * a mounted volume). None is ever taken from the command line, where `ps` would show it.
 *
 *   PVBLK_DOM0_SECRET      Dom0's credential at the hypervisor (hypervisor, host)
 *   PVBLK_TOOLSTACK_TOKEN  the operator's token for the host's management API (host, the operator)
 *   PVBLK_GUEST_TOKEN      one guest's token for that API, derived from the operator's (one guest)
 *   PVBLK_ENROL_TOKEN      lets a guest enrol a new name and receive its guest token (compose guests)
 *
 * A guest token names its guest and proves the operator issued it:
 * `pvblk-guest.<name>.<base64url HMAC-SHA256(operator token, "pvblk guest token v1" NUL name)>`.
 * The host verifies it by recomputing the MAC; it stores no guest tokens. See docs/security-host.md.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readBounded } from './read-bounded.ts';
import { PvblkError } from '@pvblk/shared';

type Env = Record<string, string | undefined>;

function readSecret(
  name: string,
  what: string,
  hint: string,
  env: Env,
  value?: string,
  file?: string,
): string {
  const secret = readOptionalSecret(name, what, env, value, file);
  if (!secret) throw new PvblkError('EUSAGE', `no ${what}: set ${name} or ${name}_FILE${hint}`);
  return secret;
}

function readOptionalSecret(
  name: string,
  what: string,
  env: Env,
  value?: string,
  file?: string,
): string | null {
  const path = file ?? env[`${name}_FILE`];
  let secret = value ?? env[name];
  if (!secret && path) {
    try {
      secret = readBounded(path, SECRET_FILE_MAX).toString('utf8').trim();
    } catch (e) {
      throw new PvblkError('EUSAGE', `cannot read the ${what} file ${path}: ${(e as Error).message}`);
    }
  }
  return secret || null;
}

/** Bytes a `*_FILE` secret may hold: a secret is a line, and the name may be a device that never ends. */
const SECRET_FILE_MAX = 64 * 1024;

/** Every secret that keys something is at least this long. */
export const MIN_SECRET_LENGTH = 16;

function checkLength(secret: string, what: string): string {
  if (secret.length < MIN_SECRET_LENGTH)
    throw new PvblkError('EUSAGE', `the ${what} must be at least ${MIN_SECRET_LENGTH} characters`);
  return secret;
}

/** Dom0's credential (PVBLK_DOM0_SECRET[_FILE]), at least 16 characters. */
export function resolveDom0Secret(
  opts: { dom0Secret?: string; dom0SecretFile?: string } = {},
  env: Env = process.env,
): string {
  const secret = readSecret(
    'PVBLK_DOM0_SECRET',
    'Dom0 credential',
    ' (pvblk up and docker compose generate one)',
    env,
    opts.dom0Secret,
    opts.dom0SecretFile,
  );
  return checkLength(secret, 'Dom0 credential');
}

/**
 * The operator's token for the host's management API (PVBLK_TOOLSTACK_TOKEN[_FILE]), at least 16
 * characters: it keys every guest token.
 */
export function resolveOperatorToken(env: Env = process.env): string {
  const token = readSecret(
    'PVBLK_TOOLSTACK_TOKEN',
    'operator token',
    ' (pvblk up and docker compose generate one)',
    env,
  );
  return checkLength(token, 'operator token (PVBLK_TOOLSTACK_TOKEN)');
}

/** The enrolment token (PVBLK_ENROL_TOKEN[_FILE]); null when the host offers no enrolment. */
export function resolveEnrolToken(env: Env = process.env): string | null {
  const token = readOptionalSecret('PVBLK_ENROL_TOKEN', 'enrolment token', env);
  return token === null ? null : checkLength(token, 'enrolment token (PVBLK_ENROL_TOKEN)');
}

/**
 * A driver domain's credential for the host's API (PVBLK_DRIVER_DOMAIN_TOKEN[_FILE]): a group token
 * of kind driver-domain (group-tokens.ts) or the operator's token.
 */
export function resolveDriverDomainToken(env: Env = process.env): string {
  const token = readOptionalSecret('PVBLK_DRIVER_DOMAIN_TOKEN', 'driver domain token', env);
  if (token !== null) return token;
  if (env.PVBLK_TOOLSTACK_TOKEN || env.PVBLK_TOOLSTACK_TOKEN_FILE) return resolveOperatorToken(env);
  throw new PvblkError(
    'EUSAGE',
    "no credential for the host's management API: set PVBLK_DRIVER_DOMAIN_TOKEN[_FILE] (a driver-domain group token: pvblk token --driver-domains <prefix>) or PVBLK_TOOLSTACK_TOKEN[_FILE] (the operator's)",
  );
}

// ------------------------------------------------------------------------------------------------
// Guest names and guest tokens

/** What a guest (domain) may be called: also a file name, a XenStore value and a token field. */
export const GUEST_NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

export function checkGuestName(name: string): string {
  if (!GUEST_NAME_RE.test(name)) {
    throw new PvblkError(
      'EINVAL',
      `bad guest name ${JSON.stringify(name.slice(0, 80))}: 1-64 characters of A-Z a-z 0-9 _ . -`,
    );
  }
  return name;
}

const GUEST_TOKEN_PREFIX = 'pvblk-guest.';
const GUEST_TOKEN_CONTEXT = 'pvblk guest token v1\0';

function guestMac(operatorToken: string, name: string): Buffer {
  return createHmac('sha256', operatorToken)
    .update(GUEST_TOKEN_CONTEXT + name)
    .digest();
}

/** The token of guest `name`, as the operator (or `pvblk up` on its behalf) issues it. */
export function deriveGuestToken(operatorToken: string, name: string): string {
  checkGuestName(name);
  return `${GUEST_TOKEN_PREFIX}${name}.${guestMac(operatorToken, name).toString('base64url')}`;
}

/** The name a token claims to be for, without checking it; null when it is no guest token. */
export function guestTokenName(token: string): string | null {
  if (!token.startsWith(GUEST_TOKEN_PREFIX)) return null;
  const dot = token.lastIndexOf('.');
  const name = token.slice(GUEST_TOKEN_PREFIX.length, dot);
  return dot > GUEST_TOKEN_PREFIX.length && GUEST_NAME_RE.test(name) ? name : null;
}

/** The guest a token was issued for under this operator token; null when it is not a valid one. */
export function verifyGuestToken(operatorToken: string, token: string): string | null {
  const name = guestTokenName(token);
  if (name === null) return null;
  const given = Buffer.from(token.slice(token.lastIndexOf('.') + 1), 'base64url');
  const want = guestMac(operatorToken, name);
  return given.length === want.length && timingSafeEqual(given, want) ? name : null;
}

// ------------------------------------------------------------------------------------------------
// What a guest process presents to the host's API

export type GuestCredential =
  | { kind: 'guest'; token: string }
  /** `saveTo`: where to keep the guest token enrolment returns (PVBLK_GUEST_TOKEN_FILE), if anywhere. */
  | { kind: 'enrol'; token: string; saveTo: string | null }
  | { kind: 'operator'; token: string };

/**
 * A guest's credential for the host's API, in order: its own guest token (PVBLK_GUEST_TOKEN, or the
 * file PVBLK_GUEST_TOKEN_FILE once it exists), the enrolment token, and the operator's token (an
 * operator running a guest by hand).
 */
export function resolveGuestCredential(env: Env = process.env): GuestCredential {
  const file = env.PVBLK_GUEST_TOKEN_FILE;
  if (env.PVBLK_GUEST_TOKEN || (file && existsSync(file))) {
    return { kind: 'guest', token: readSecret('PVBLK_GUEST_TOKEN', 'guest token', '', env) };
  }
  const enrol = resolveEnrolToken(env);
  if (enrol !== null) return { kind: 'enrol', token: enrol, saveTo: file ?? null };
  if (env.PVBLK_TOOLSTACK_TOKEN || env.PVBLK_TOOLSTACK_TOKEN_FILE)
    return { kind: 'operator', token: resolveOperatorToken(env) };
  throw new PvblkError(
    'EUSAGE',
    "no credential for the host's management API: set PVBLK_GUEST_TOKEN[_FILE] (this guest's token), " +
      "PVBLK_ENROL_TOKEN[_FILE] (enrol a new name) or PVBLK_TOOLSTACK_TOKEN[_FILE] (the operator's)",
  );
}
