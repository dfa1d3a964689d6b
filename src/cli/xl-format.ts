/**
 * What `xl list` and `xl block-list` print, with xl's own format strings (tools/xl/xl_info.c
 * list_domains(), tools/xl/xl_block.c main_blocklist()), so that scripts written for xl parse
 * pvblk's output unchanged.
 */
import type { DomInfo, VbdInfo } from '@pvblk/backend';

/** C's printf for the few conversions xl uses: %-Ns, %Ns, %Nd, %-Nd, %N.1f. */
const padLeft = (s: string, n: number) => s.padStart(n);
const padRight = (s: string, n: number) => s.padEnd(n);

/** The header: tabs before State and Time(s), as xl prints it. */
export const XL_LIST_HEADER = 'Name                                        ID   Mem VCPUs\tState\tTime(s)';

const SHUTDOWN_REASON_LETTERS = '-rscwS';

/** printf("%-40s %5d %5lu %5d     %c%c%c%c%c%c  %8.1f", …) */
export function formatListRow(d: DomInfo): string {
  const reason = d.shutdown ? (d.shutdownReason ?? 0) : 0;
  const state =
    (d.running ? 'r' : '-') +
    (d.blocked ? 'b' : '-') +
    (d.paused ? 'p' : '-') +
    (d.shutdown ? 's' : '-') +
    (reason >= 0 && reason < SHUTDOWN_REASON_LETTERS.length ? SHUTDOWN_REASON_LETTERS[reason] : '?') +
    (d.dying ? 'd' : '-');
  return (
    `${padRight(d.name, 40)} ${padLeft(String(d.domid), 5)} ${padLeft(String(Math.floor(d.memKb / 1024)), 5)} ` +
    `${padLeft(String(d.vcpus), 5)}     ${state}  ${padLeft(d.cpuSeconds.toFixed(1), 8)}`
  );
}

export function formatList(domains: DomInfo[]): string[] {
  return [XL_LIST_HEADER, ...domains.map(formatListRow)];
}

/** What `xl block-list` prints of a vbd (libxl_diskinfo, as the host's API answers it). */
export type DiskInfoRow = Pick<
  VbdInfo,
  'devid' | 'backendId' | 'frontendId' | 'state' | 'evtch' | 'ringRef' | 'backend'
>;

/** printf("%-5s %-3s %-6s %-5s %-6s %-8s %-30s\n", "Vdev", "BE", "handle", "state", "evt-ch", "ring-ref", "BE-path") */
export const XL_BLOCK_LIST_HEADER = [
  padRight('Vdev', 5),
  padRight('BE', 3),
  padRight('handle', 6),
  padRight('state', 5),
  padRight('evt-ch', 6),
  padRight('ring-ref', 8),
  padRight('BE-path', 30),
].join(' ');

/** printf("%-5d %-3d %-6d %-5d %-6d %-8d %-30s\n", devid, backend_id, frontend_id, state, evtch, rref, backend) */
export function formatBlockRow(d: DiskInfoRow): string {
  return [
    padRight(String(d.devid), 5),
    padRight(String(d.backendId), 3),
    padRight(String(d.frontendId), 6),
    padRight(String(d.state), 5),
    padRight(String(d.evtch), 6),
    padRight(String(d.ringRef), 8),
    padRight(d.backend, 30),
  ].join(' ');
}
