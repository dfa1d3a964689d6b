/**
 * How the operator's tools (`pvblk xl`, `pvblk xenstore-*`, `pvblk dashboard`) find a running stack
 * and prove they are the operator — as `xl` finds /var/run/xenstored and runs as root in Dom0.
 *
 *   the host API's URL   --api URL, else PVBLK_TOOLSTACK_URL, else the run dir of `pvblk up`
 *   the operator token   PVBLK_TOOLSTACK_TOKEN (or _FILE), else the run dir of `pvblk up`
 *
 * `pvblk up` (and `run`) publish both in `<run dir>/toolstack.json`, mode 0600, and remove it when
 * they exit: on one machine the operator's Unix user is what separates the roles (docs/security.md),
 * and a file only that user can read is how Dom0's root-only sockets are separated in Xen. Compose and
 * other hosts give the URL and the token explicitly.
 */
import { chmodSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { PvblkError } from '@pvblk/shared';
import { AnswerError, fetchAnswer, resolveOperatorToken, type Answer } from '@pvblk/runtime';
import { processRuns } from './lock.ts';

export const ACCESS_FILE = 'toolstack.json';

export interface OperatorAccess {
  api: string;
  token: string;
  /** The hypervisor's URL, when known (xl create starts a guest process that needs it). */
  hypervisor: string | null;
  /** The run dir (xl create puts the guest's socket and log there). */
  runDir: string;
}

/** Written by `pvblk up`/`run` once the host is ready; removed when that process exits. */
export function publishOperatorAccess(
  runDir: string,
  a: { api: string; hypervisor: string; token: string },
): void {
  const path = join(runDir, ACCESS_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ pid: process.pid, ...a }, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  process.on('exit', () => {
    try {
      const held = JSON.parse(readFileSync(path, 'utf8')) as { pid?: number };
      if (held.pid === process.pid) rmSync(path, { force: true });
    } catch {
      // gone already
    }
  });
}

/** The stack's URL and the operator token, or an error saying what is missing and how to give it. */
export function resolveOperatorAccess(
  o: { api?: string; runDir: string },
  env = process.env,
): OperatorAccess {
  type Published = { api?: string; hypervisor?: string; token?: string; pid?: number };
  let published: Published | null = null;
  try {
    published = JSON.parse(readFileSync(join(o.runDir, ACCESS_FILE), 'utf8')) as Published;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES')
      throw new PvblkError('EACCES', `${join(o.runDir, ACCESS_FILE)} is not readable: it is the operator's`);
    published = null;
  }
  if (published && typeof published.pid === 'number' && !processRuns(published.pid)) published = null;
  const api = o.api ?? env.PVBLK_TOOLSTACK_URL ?? published?.api;
  if (!api)
    throw new PvblkError(
      'ENOENT',
      `no running stack: ${o.runDir} has no ${ACCESS_FILE} (start one with \`pvblk up\`, or give the host API with --api URL or PVBLK_TOOLSTACK_URL)`,
    );
  let token: string | null = null;
  if (env.PVBLK_TOOLSTACK_TOKEN || env.PVBLK_TOOLSTACK_TOKEN_FILE) token = resolveOperatorToken(env);
  else if (published?.token && published.api === api) token = published.token;
  if (!token)
    throw new PvblkError(
      'EACCES',
      `no operator credential for ${api}: set PVBLK_TOOLSTACK_TOKEN (or PVBLK_TOOLSTACK_TOKEN_FILE) to the host's operator token`,
    );
  return {
    api,
    token,
    hypervisor: env.PVBLK_HYPERVISOR_URL ?? (published?.api === api ? (published?.hypervisor ?? null) : null),
    runDir: o.runDir,
  };
}

/** One call to the host API as the operator; the body is parsed JSON (or text for non-JSON answers). */
export async function operatorCall(
  a: OperatorAccess,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  let res: Answer;
  try {
    res = await fetchAnswer(new URL(path, a.api), {
      method,
      headers: {
        authorization: `Bearer ${a.token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e instanceof AnswerError && (e.code === 'EFBIG' || e.code.startsWith('HPE_')))
      throw new PvblkError(
        'EPROTO',
        `the host API at ${a.api} gave an answer this command cannot read (${e.message})`,
      );
    const timedOut = e instanceof AnswerError && e.code === 'ETIMEDOUT';
    // the errno name of a socket's failure (ECONNRESET), the words of a wait's or of anything else
    const cause = e instanceof AnswerError && !timedOut ? e.code : (e as Error).message;
    throw new PvblkError(
      timedOut ? 'ETIMEDOUT' : 'ECONNREFUSED',
      `the host API at ${a.api} does not answer (${cause}): is the stack still running?`,
    );
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  if (res.status === 401)
    throw new PvblkError('EACCES', `the host at ${a.api} refused the operator credential (HTTP 401)`);
  if (res.status === 403)
    throw new PvblkError(
      'EACCES',
      `the host at ${a.api} refused: this token is not the operator's (HTTP 403: ${(parsed as { message?: string }).message ?? ''})`,
    );
  return { status: res.status, body: parsed };
}

/** The host's refusal as `{error, message}`, or null for a 2xx answer. */
export function refusal(r: { status: number; body: unknown }): { error: string; message: string } | null {
  if (r.status >= 200 && r.status < 300) return null;
  const b = r.body as { error?: string; message?: string };
  return {
    error: b?.error ?? `HTTP ${r.status}`,
    message: b?.message ?? (typeof r.body === 'string' ? r.body : ''),
  };
}
