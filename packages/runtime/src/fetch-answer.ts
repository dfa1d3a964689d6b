/**
 * fetch() with a bound on the wait for an answer, for the clients of pvblk's HTTP servers.
 *
 * Needed, not just prudent: Node 20's fetch sometimes never settles when the server closes the socket
 * at once — as the servers do to sockets past their bounds (http-connections.ts) — and nothing then
 * holds the process: a command or a booting domain waiting on nothing else ended with status 0 and no
 * word. `AbortSignal.timeout()` does not help there, its timer holding nothing either; this one's does.
 */
export const HTTP_ANSWER_TIMEOUT_MS = 15_000;

export async function fetchAnswer(
  url: string | URL,
  init: RequestInit = {},
  ms = HTTP_ANSWER_TIMEOUT_MS,
): Promise<Response> {
  const ac = new AbortController();
  const timer = setTimeout(
    () => ac.abort(new DOMException(`no answer in ${ms / 1000} s`, 'TimeoutError')),
    ms,
  );
  try {
    return await fetch(url, { ...init, signal: ac.signal });
  } finally {
    clearTimeout(timer);
  }
}
