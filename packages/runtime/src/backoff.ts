/**
 * Capped exponential backoff for reaching a peer that may not be up yet (compose starts containers in
 * any order): retries `attempt` until it resolves or the next wait would pass the deadline, then
 * rethrows the last error.
 */
export async function withBackoff<T>(
  attempt: () => Promise<T>,
  opts: {
    retryForMs: number;
    firstDelayMs: number;
    maxDelayMs?: number;
    onRetry?: (n: number, delayMs: number, err: Error) => void;
  },
): Promise<T> {
  const deadline = Date.now() + opts.retryForMs;
  let delay = opts.firstDelayMs;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (e) {
      if (Date.now() + delay > deadline) throw e;
      opts.onRetry?.(n, delay, e as Error);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, opts.maxDelayMs ?? 2000);
    }
  }
}
