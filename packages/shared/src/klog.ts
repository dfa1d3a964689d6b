/**
 * Kernel-style log lines. Drivers in pvblk speak like Linux drivers: they print lines such as
 * `end_request: I/O error, dev xvda, sector 4656` at a printk level, and the line is shown with a
 * dmesg timestamp (`[  107.298247] …`, seconds since the domain booted). This module is the pure
 * part: levels, the sink interface drivers depend on, and the exact line format.
 */

/** printk levels (include/linux/kern_levels.h). */
export const KERN_EMERG = 0;
export const KERN_ALERT = 1;
export const KERN_CRIT = 2;
export const KERN_ERR = 3;
export const KERN_WARNING = 4;
export const KERN_NOTICE = 5;
export const KERN_INFO = 6;
export const KERN_DEBUG = 7;
export type KernLevel = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;

/** Linux's default console_loglevel is 7 but distributions boot with `quiet` (4): errors reach the console. */
export const DEFAULT_CONSOLE_LOGLEVEL = 4;

export interface KernelMessage {
  level: KernLevel;
  /** Seconds since the domain booted, microsecond resolution. */
  ts: number;
  text: string;
}

/** What drivers log through. The implementation timestamps, keeps a dmesg ring and forwards to pino. */
export interface KernelLog {
  printk(level: KernLevel, text: string): void;
}

/**
 * Control characters in a message as `\xNN`, as the kernel's /dev/kmsg and util-linux's dmesg show
 * them. A message can carry words a guest chose (a `protocol` node blkback names in its complaint, a
 * state it rejects): raw, a newline there forged a whole line on the operator's console, and an escape
 * sequence drove the terminal. C0 controls but tab, DEL and the C1 controls (U+0080-U+009F, which
 * some terminals take as escapes too) are replaced; everything else is shown as it is. With
 * `keepNewlines`, for a rendering whose own layout has several lines, newlines are left alone.
 */
export function escapeKmsgText(text: string, keepNewlines = false): string {
  return text.replace(
    keepNewlines ? CONTROLS_BUT_NEWLINE : CONTROLS,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;
// eslint-disable-next-line no-control-regex
const CONTROLS_BUT_NEWLINE = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/** `[%5lu.%06lu] text`, as printk/dmesg print it (control characters escaped: escapeKmsgText). */
export function formatKmsg(ts: number, text: string): string {
  const micros = Math.max(0, Math.round(ts * 1e6));
  const secs = Math.floor(micros / 1e6);
  const frac = String(micros % 1e6).padStart(6, '0');
  return `[${String(secs).padStart(5, ' ')}.${frac}] ${escapeKmsgText(text)}`;
}

/** A KernelLog that keeps messages in memory; used by unit tests of drivers. */
export class MemoryKernelLog implements KernelLog {
  readonly messages: KernelMessage[] = [];
  private readonly t0 = Date.now();
  printk(level: KernLevel, text: string): void {
    this.messages.push({ level, ts: (Date.now() - this.t0) / 1000, text });
  }
  lines(maxLevel: KernLevel = KERN_DEBUG): string[] {
    return this.messages.filter((m) => m.level <= maxLevel).map((m) => m.text);
  }
}
