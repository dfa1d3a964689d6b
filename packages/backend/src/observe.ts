/**
 * What the operator's tools read of the running system, gathered in one place for `xl list`, the
 * dashboard and `/metrics`:
 *
 * - domains as libxl_dominfo describes them (xl list's columns), from the hypervisor's `/status`,
 *   which the host reads with the Dom0 secret it already holds;
 * - each vbd's backend: its XenBus state, blkback's counters, and each ring's indices and occupancy;
 * - each host disk: its scsi_debug counters and parameters.
 *
 * Ring indices come from the shared page (req_prod is the frontend's: shown, never trusted) and from
 * blkback's private copies (req_cons, rsp_prod_pvt).
 */
import { fetchAnswer } from '@pvblk/runtime';
import { xenbusStateName, xvdName, type HypervisorStatus } from '@pvblk/shared';
import type { BlkbackDriver } from './blkback/driver.ts';
import type { BlkbackStats } from './blkback/stats.ts';
import type { HostDisks } from './disks.ts';

/** libxl_dominfo, as much of it as `xl list` prints. */
export interface DomInfo {
  domid: number;
  name: string;
  /** current_memkb: what the hypervisor holds for the domain (frame copies, unread output). */
  memKb: number;
  vcpus: number;
  running: boolean;
  blocked: boolean;
  paused: boolean;
  shutdown: boolean;
  dying: boolean;
  /** shutdown_reason when `shutdown` (letters "-rscwS"); pvblk's domains do not shut down yet. */
  shutdownReason?: number;
  /** cpu_time in seconds: the hypervisor's time serving the domain. */
  cpuSeconds: number;
}

/** Reads the hypervisor's /status with the Dom0 secret; the URL is the hypervisor's ws:// address. */
export function hypervisorStatusReader(
  hypervisorUrl: string,
  dom0Secret: string,
): () => Promise<HypervisorStatus> {
  const url = new URL('/status', hypervisorUrl.replace(/^ws(s?):/, 'http$1:'));
  return async () => {
    const res = await fetchAnswer(url, { headers: { authorization: `Bearer ${dom0Secret}` } });
    if (!res.ok) throw new Error(`the hypervisor's /status answered ${res.status}`);
    return (await res.json()) as HypervisorStatus;
  };
}

/**
 * The domains with xl list's state letters: a pvblk domain runs as long as its connection; one
 * created and not connected yet is paused (libxl creates domains paused); a connected one is running
 * while the hypervisor holds unserved calls of it, blocked (idle) otherwise. Dom0 is running: it is
 * answering this.
 */
export function domInfos(s: HypervisorStatus): DomInfo[] {
  return s.domains.map((d) => {
    const running = d.privileged || (d.connected && d.memory.pendingInput > 0);
    return {
      domid: d.domid,
      name: d.name,
      memKb: Math.floor((d.memory.sharedFrameBytes + d.memory.backlogBytes) / 1024),
      vcpus: 1,
      running,
      blocked: d.connected && !running,
      paused: !d.connected && !d.privileged,
      shutdown: false,
      dying: false,
      cpuSeconds: d.cpuSeconds ?? 0,
    };
  });
}

export interface RingView {
  queue: number;
  size: number;
  /** Shared indices (written by the frontend / by blkback) and blkback's private consumer index. */
  reqProd: number;
  reqCons: number;
  rspProd: number;
  rspProdPvt: number;
  reqEvent: number;
  rspEvent: number;
  /** Requests on the ring not answered yet: req_prod - rsp_prod_pvt (mod 2^32). */
  occupancy: number;
}

export interface VbdView {
  domid: number;
  devid: number;
  vdev: string;
  state: string;
  readOnly: boolean;
  persistent: boolean;
  integrity: string | null;
  stats: BlkbackStats;
  rings: RingView[];
}

export function vbdViews(blkback: BlkbackDriver): VbdView[] {
  return [...blkback.vbds.entries()]
    .map(([key, v]) => {
      const [domid, devid] = key.split('/').map(Number);
      return {
        domid,
        devid,
        vdev: xvdName(devid) ?? String(devid),
        state: xenbusStateName(v.state),
        readOnly: v.readOnly,
        persistent: v.persistent,
        integrity: v.integrity?.name ?? null,
        stats: v.stats(),
        rings: v.rings.map((r) => {
          const b = r.back;
          return {
            queue: r.queue,
            size: b.size,
            reqProd: b.reqProd,
            reqCons: b.reqCons >>> 0,
            rspProd: b.rspProd,
            rspProdPvt: b.rspProdPvt >>> 0,
            reqEvent: b.reqEvent,
            rspEvent: b.rspEvent,
            occupancy: (b.reqProd - b.rspProdPvt) >>> 0,
          };
        }),
      };
    })
    .sort((a, b) => a.domid - b.domid || a.devid - b.devid);
}

export interface DiskView {
  path: string;
  guest: string;
  hctl: string;
  params: string;
  sectors: number;
  stats: Record<string, number>;
}

export function diskViews(disks: HostDisks): DiskView[] {
  return disks
    .list()
    .map((d) => ({
      path: d.path,
      guest: d.guest,
      hctl: d.hctl,
      params: d.params,
      sectors: d.disk.sectors,
      stats: { ...d.disk.target.stats() },
    }))
    .sort((a, b) => a.path.localeCompare(b.path));
}
