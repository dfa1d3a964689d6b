/**
 * How a domain's process asks Dom0's toolstack for its domain (a guest: POST /guests; a driver
 * domain: POST /driver-domains): retried while the host is not up yet, and a refusal reported with
 * the errno the host named — one implementation for every kind of domain.
 */
import type { Logger } from 'pino';
import { PvblkError } from '@pvblk/shared';
import { withBackoff } from './backoff.ts';
import { errnoForHttpStatus } from './http-errno.ts';
import { fetchAnswer, type Answer } from './fetch-answer.ts';

export interface DomainRequest {
  /** The toolstack's base URL. */
  url: string;
  /** `/guests` or `/driver-domains`. */
  path: string;
  token: string;
  name: string;
  /** What is created, for messages: `guest g1`, `driver domain dd1`. */
  what: string;
  /** The process's logger: each retry is logged at info, saying whether the host was not reached or
   * answered that the domain cannot be created yet (EAGAIN), with the attempt and the error. */
  log: Pick<Logger, 'info'>;
  /** Words added to a refusal with this status (a likely cause), or ''. */
  hint?: (status: number) => string;
}

/** The host's answer: the domain and its credential, and whatever else it sent (a guest token). */
export type DomainReply = { domid: number; credential: string } & Record<string, unknown>;

/** An answer worth asking again for: the host said EAGAIN (HTTP 429), one request at a time. */
class Busy extends Error {}

export async function requestDomain(r: DomainRequest): Promise<DomainReply> {
  let res: Answer;
  try {
    res = await withBackoff(
      async () => {
        // a socket closed with no answer is an error to retry on, not a wait for ever
        const answer = await fetchAnswer(new URL(r.path, r.url), {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${r.token}` },
          body: JSON.stringify({ name: r.name }),
        });
        if (answer.status !== 429) return answer;
        const said = (await answer.json().catch(() => ({}))) as { message?: unknown };
        throw new Busy(`the host is busy (HTTP 429): ${String(said.message ?? answer.statusText)}`);
      },
      {
        retryForMs: 60_000,
        firstDelayMs: 200,
        onRetry: (attempt, _delay, e) =>
          r.log.info(
            { attempt, err: e.message },
            e instanceof Busy
              ? 'the toolstack cannot create this domain yet; retrying'
              : 'toolstack not reachable yet; retrying',
          ),
      },
    );
  } catch (e) {
    if (e instanceof Busy) throw new PvblkError('EAGAIN', `${r.what}: ${e.message}`);
    throw new PvblkError(
      'ECONNREFUSED',
      `cannot reach the host's toolstack at ${r.url}: ${(e as Error).message}`,
    );
  }
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (res.status !== 201 || typeof body.domid !== 'number' || typeof body.credential !== 'string') {
    // the host names the condition (EROFS, ENOSPC …) in the body; otherwise the status class decides
    const said = body.message ?? body.error ?? res.statusText;
    throw new PvblkError(
      errnoForHttpStatus(res.status, body.error),
      `the host refused to create ${r.what} (HTTP ${res.status}): ${String(said)}${r.hint?.(res.status) ?? ''}`,
    );
  }
  return body as DomainReply;
}
