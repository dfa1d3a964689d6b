/**
 * The kernel log of a simulated domain: printk with levels, dmesg timestamps counted from the domain's
 * boot, a ring buffer that `dmesg` reads, and forwarding to the process's pino logger.
 */
import type { Logger } from 'pino';
import type { KernLevel, KernelLog, KernelMessage } from '@pvblk/shared';

const PINO_LEVEL: Record<KernLevel, 'fatal' | 'error' | 'warn' | 'info' | 'debug'> = {
  0: 'fatal',
  1: 'fatal',
  2: 'error',
  3: 'error',
  4: 'warn',
  5: 'info',
  6: 'info',
  7: 'debug',
};

export class DomainKernelLog implements KernelLog {
  private readonly ring: KernelMessage[] = [];
  private readonly listeners = new Set<(m: KernelMessage) => void>();

  constructor(
    private readonly logger: Logger | null,
    /** performance.now() at boot. */
    private readonly bootMs: number = performance.now(),
    private readonly capacity = 4096,
  ) {}

  printk(level: KernLevel, text: string): void {
    const m: KernelMessage = { level, ts: (performance.now() - this.bootMs) / 1000, text };
    this.ring.push(m);
    if (this.ring.length > this.capacity) this.ring.shift();
    this.logger?.[PINO_LEVEL[level]]({ kmsg: true, klevel: level, ts: Number(m.ts.toFixed(6)) }, text);
    for (const l of this.listeners) l(m);
  }

  /** Messages in the ring, oldest first. */
  messages(): readonly KernelMessage[] {
    return this.ring;
  }

  /** Follows new messages (a console); returns the unsubscribe function. */
  subscribe(fn: (m: KernelMessage) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}
