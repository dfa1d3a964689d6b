/**
 * The environment of each process `pvblk up`/`run` starts: built from an allowlist, never a copy of
 * ours. What the operator exported (PVBLK_DOM0_SECRET, cloud keys, anything) stays here; each role gets
 * the plain process variables, the configuration it reads, and its own secrets only:
 *
 *   hypervisor  the Dom0 secret
 *   host        the Dom0 secret and the operator token (and the enrolment token if one is set)
 *   guest       its own guest token, derived from the operator token — nothing that opens another door
 */
import { randomBytes } from 'node:crypto';
import { deriveGuestToken, resolveDom0Secret, resolveEnrolToken, resolveOperatorToken } from '@pvblk/runtime';

type Env = Record<string, string | undefined>;

/** What any process needs to run, and pvblk's logging settings. */
const COMMON = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'TMPDIR',
  'LANG',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
  'NODE_OPTIONS',
  'NODE_V8_COVERAGE',
  // glibc's malloc settings, for whoever measures with them (docs/performance.md: with its default
  // trimming, the heap of a process moving 64-128 KiB buffers goes back to the kernel and comes back
  // page fault by page fault, in some runs and not others — the relay's processes as much as pvblk's)
  'GLIBC_TUNABLES',
  'PVBLK_LOG_LEVEL',
  'PVBLK_LOG_FORMAT',
  // `pvblk bench --trace`: where each process dumps its trace stamps
  'PVBLK_TRACE',
];

/** Configuration each role reads from the environment that `up` does not pass as options. */
const CONFIG: Record<ChildRole, string[]> = {
  hypervisor: [],
  host: [
    'PVBLK_MAX_GUESTS',
    'PVBLK_MAX_DISK_SIZE',
    'PVBLK_MAX_TOTAL_DISK',
    'PVBLK_SCSI_HOST',
    'PVBLK_FIRST_DISK',
  ],
  guest: [],
};

export type ChildRole = 'hypervisor' | 'host' | 'guest';

export interface StackCredentials {
  dom0Secret: string;
  operatorToken: string;
  enrolToken: string | null;
}

/** The stack's secrets: the operator's if exported (variable or _FILE), else fresh random ones. */
export function stackCredentials(env: Env = process.env): StackCredentials {
  const fresh = () => randomBytes(24).toString('base64url');
  const has = (name: string) => Boolean(env[name] || env[`${name}_FILE`]);
  return {
    dom0Secret: has('PVBLK_DOM0_SECRET') ? resolveDom0Secret({}, env) : fresh(),
    operatorToken: has('PVBLK_TOOLSTACK_TOKEN') ? resolveOperatorToken(env) : fresh(),
    enrolToken: resolveEnrolToken(env),
  };
}

/** The allowlisted variables of `env`, with no secret in them. */
export function baseEnv(role: ChildRole | null, env: Env = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of [...COMMON, ...(role ? CONFIG[role] : [])]) {
    const v = env[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** The whole environment of one child: allowlist plus that role's secrets. */
export function childEnv(
  role: ChildRole,
  creds: StackCredentials,
  guestName?: string,
  env: Env = process.env,
): Record<string, string> {
  const out = baseEnv(role, env);
  if (role === 'hypervisor') out.PVBLK_DOM0_SECRET = creds.dom0Secret;
  if (role === 'host') {
    out.PVBLK_DOM0_SECRET = creds.dom0Secret;
    out.PVBLK_TOOLSTACK_TOKEN = creds.operatorToken;
    if (creds.enrolToken) out.PVBLK_ENROL_TOKEN = creds.enrolToken;
  }
  if (role === 'guest') {
    if (guestName === undefined) throw new Error('a guest environment needs the guest name');
    out.PVBLK_GUEST_TOKEN = deriveGuestToken(creds.operatorToken, guestName);
  }
  return out;
}
