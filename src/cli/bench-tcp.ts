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
 * 128 KiB writes at QD8 ran at 0.68-0.70× the relay under bbr (rounds 0.57-0.85×) and at 0.83-0.85×
 * under cubic (Linux's default; rounds 0.80-0.86×), the broker spending 70 µs a write in the kernel
 * under bbr and 42 under cubic in one run each. Node's sockets cannot choose their own (no
 * setsockopt): the bench says which it was, and what TCP did (below).
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

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

/**
 * What TCP did in this network namespace over a window (/proc/net/snmp's `Tcp` and
 * /proc/net/netstat's `TcpExt` lines): segments sent, resent, and why. On the 2-core Xeon host, 128 KiB
 * writes under bbr had segments arrive out of order on loopback (112 queued out of order by receivers
 * in 6 s), the senders take them for lost — 123 recoveries on SACK information and 132 segments
 * resent — and the duplicates they then heard of (DSACKs) undo it; under cubic nothing arrived out of
 * order and 17 segments were resent, by loss probes. Our reading of where the disorder comes from:
 * with pacing, part of a flow leaves from the pacing timer on whichever CPU it fires, and loopback
 * delivers each CPU's packets from that CPU's own backlog. The counters are the namespace's, other
 * traffic included, as the machine's CPU line is the machine's.
 */
export interface TcpCounters {
  /** Segments sent (Tcp OutSegs; retransmissions excluded). */
  outSegs: number;
  /** Segments retransmitted (Tcp RetransSegs). */
  retransSegs: number;
  /** Recoveries entered on SACK information (TcpExt TCPSackRecovery). */
  sackRecovery: number;
  /** DSACKs received: the peer had the data already (TcpExt TCPDSACKRecv). */
  dsackRecv: number;
  /** Tail loss probes sent (TcpExt TCPLossProbes). */
  lossProbes: number;
  /** Segments a receiver queued because they came out of order (TcpExt TCPOFOQueue). */
  ofoQueue: number;
}

/** The named fields of a /proc/net table's `prefix:` header-and-values line pair; null without it. */
function procNetFields(text: string, prefix: string): Map<string, number> | null {
  const lines = text.split('\n').filter((l) => l.startsWith(`${prefix}:`));
  if (lines.length < 2) return null;
  const names = lines[0].split(/\s+/).slice(1);
  const values = lines[1].split(/\s+/).slice(1).map(Number);
  if (names.length !== values.length || values.some((v) => !Number.isSafeInteger(v))) return null;
  return new Map(names.map((n, i) => [n, values[i]]));
}

/** The counters in the texts of /proc/net/snmp and /proc/net/netstat; null when one is missing. */
export function parseTcpCounters(snmp: string, netstat: string): TcpCounters | null {
  const tcp = procNetFields(snmp, 'Tcp');
  const ext = procNetFields(netstat, 'TcpExt');
  const get = (m: Map<string, number> | null, k: string) => m?.get(k) ?? null;
  const c = {
    outSegs: get(tcp, 'OutSegs'),
    retransSegs: get(tcp, 'RetransSegs'),
    sackRecovery: get(ext, 'TCPSackRecovery'),
    dsackRecv: get(ext, 'TCPDSACKRecv'),
    lossProbes: get(ext, 'TCPLossProbes'),
    ofoQueue: get(ext, 'TCPOFOQueue'),
  };
  if (Object.values(c).some((v) => v === null || v < 0)) return null;
  return c as TcpCounters;
}

/** This namespace's counters now; null where they cannot be read. */
export async function tcpCounters(dir = '/proc/net'): Promise<TcpCounters | null> {
  try {
    const [snmp, netstat] = await Promise.all([
      readFile(`${dir}/snmp`, 'utf8'),
      readFile(`${dir}/netstat`, 'utf8'),
    ]);
    return parseTcpCounters(snmp, netstat);
  } catch {
    return null;
  }
}

const TCP_KEYS = ['outSegs', 'retransSegs', 'sackRecovery', 'dsackRecv', 'lossProbes', 'ofoQueue'] as const;

/** The counts between two readings; null when either is missing or a counter went backwards. */
export function tcpBetween(a: TcpCounters | null, b: TcpCounters | null): TcpCounters | null {
  if (!a || !b) return null;
  const d = Object.fromEntries(TCP_KEYS.map((k) => [k, b[k] - a[k]])) as unknown as TcpCounters;
  return TCP_KEYS.every((k) => d[k] >= 0) ? d : null;
}

/** Two windows' counts added up (null if either is unknown). */
export function tcpSum(a: TcpCounters | null, b: TcpCounters | null): TcpCounters | null {
  if (!a || !b) return null;
  return Object.fromEntries(TCP_KEYS.map((k) => [k, a[k] + b[k]])) as unknown as TcpCounters;
}

/** No segments yet: where the windows of a side start adding up. */
export const NO_TCP: TcpCounters = {
  outSegs: 0,
  retransSegs: 0,
  sackRecovery: 0,
  dsackRecv: 0,
  lossProbes: 0,
  ofoQueue: 0,
};

/** The report's line on what TCP did while each side ran (null when neither could be read). */
export function tcpCountersLine(pvblk: TcpCounters | null, relay: TcpCounters | null): string | null {
  const side = (c: TcpCounters) =>
    `${c.outSegs} segments sent, ${c.ofoQueue} out of order, ${c.retransSegs} retransmitted, ` +
    `${c.sackRecovery} SACK recoveries, ${c.dsackRecv} DSACKs, ${c.lossProbes} loss probes`;
  if (!pvblk && !relay) return null;
  const mine = `  TCP (/proc/net, this namespace): ${pvblk ? side(pvblk) : 'unknown'} while pvblk ran`;
  return relay ? `${mine}; ${side(relay)} while the relay ran` : mine;
}
