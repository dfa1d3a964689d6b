/**
 * Linux's printk rate limit (lib/ratelimit.c, `___ratelimit`), for messages a peer can make us log:
 * at most `burst` in each `intervalMs` (DEFAULT_RATELIMIT_BURST, 10, per DEFAULT_RATELIMIT_INTERVAL,
 * 5 s), the rest counted as missed and reported once, by the first call of a later interval ("…
 * callbacks suppressed"). Without it, a guest sending invalid records as fast as it could had the
 * hypervisor write 589,197 warnings in 15 s, and lose its own log records among them.
 */
export const DEFAULT_RATELIMIT_INTERVAL_MS = 5000;
export const DEFAULT_RATELIMIT_BURST = 10;

export interface RateLimitVerdict {
  /** This one may be said. */
  ok: boolean;
  /** How many were not said in the interval that just ended: say so once, before this one. */
  suppressed: number;
}

export class RateLimit {
  private begin: number | null = null;
  private printed = 0;
  private missed = 0;

  constructor(
    readonly intervalMs = DEFAULT_RATELIMIT_INTERVAL_MS,
    readonly burst = DEFAULT_RATELIMIT_BURST,
  ) {}

  /** One more message at `nowMs` (a monotonic clock in milliseconds). */
  take(nowMs: number): RateLimitVerdict {
    let suppressed = 0;
    if (this.begin === null) this.begin = nowMs;
    if (nowMs - this.begin > this.intervalMs) {
      suppressed = this.missed;
      this.missed = 0;
      this.begin = nowMs;
      this.printed = 0;
    }
    if (this.printed < this.burst) {
      this.printed++;
      return { ok: true, suppressed };
    }
    this.missed++;
    return { ok: false, suppressed };
  }

  /**
   * take() for a logger: `sayMissed(n)` is called with the number left out once a later interval
   * begins; true when this message may be said.
   */
  allows(nowMs: number, sayMissed: (n: number) => void): boolean {
    const v = this.take(nowMs);
    if (v.suppressed > 0) sayMissed(v.suppressed);
    return v.ok;
  }
}
