/**
 * The kernel's TCP congestion control under a bench's connections, printed and recorded with every
 * run: every byte pvblk and its relay baseline move crosses TCP on loopback, and the algorithm changes
 * what that costs — to pvblk more than to the relay.
 *
 * Linux picks it per network namespace (net.ipv4.tcp_congestion_control; a route's `congctl` can
 * override it). With bbr the kernel paces every flow: BBR asks for pacing, and a device without the
 * fq qdisc (loopback has none) gets TCP's own, which holds back whatever exceeds the flow's pacing rate
 * and sends it from a high-resolution timer. The rate follows the delivery rate BBR measured on that
 * flow, so a flow that delivers less is paced lower. On the 2-core Xeon host of docs/performance.md,
 * 128 KiB writes at QD8 ran at 0.68× the relay under bbr (rounds 0.57-0.85×) and at 0.85× under cubic
 * (Linux's default; 0.84-0.86×), the broker spending 70 µs a write in the kernel under bbr and 42
 * under cubic in one run each. Node's sockets cannot choose their own (no setsockopt): say it instead.
 */
import { readFileSync } from 'node:fs';

/** Where this network namespace's default congestion control is read from. */
export const TCP_CONGESTION_CONTROL_PATH = '/proc/sys/net/ipv4/tcp_congestion_control';

/** The name in the sysctl's text, or null when it is not one (names are short lower-case words). */
export function parseCongestionControl(text: string): string | null {
  const name = text.trim();
  return /^[a-z0-9_]{1,16}$/.test(name) ? name : null;
}

/** This namespace's TCP congestion control; null where it cannot be read (no /proc, not Linux). */
export function tcpCongestionControl(path = TCP_CONGESTION_CONTROL_PATH): string | null {
  try {
    return parseCongestionControl(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

/** The report's line on it: what it is, and for bbr what that does to the figures. */
export function tcpLine(name: string | null): string {
  if (name === null) return 'TCP congestion control: unknown (net.ipv4.tcp_congestion_control not readable)';
  const line = `TCP congestion control: ${name} (net.ipv4.tcp_congestion_control)`;
  if (name !== 'bbr') return line;
  return (
    `${line}: the kernel paces every flow, which costs pvblk more than the ` +
    'relay at 128 KiB; docs/performance.md, "TCP congestion control"'
  );
}
