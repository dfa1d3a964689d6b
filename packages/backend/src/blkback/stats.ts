/**
 * What Linux blkback exposes under /sys/bus/xen-backend/devices/vbd-<domid>-<devid>/statistics, plus
 * the counters a simulation makes cheap to keep: notifications and grant operations.
 */
export interface BlkbackStats {
  /** Requests that found no free pending_req slot and had to wait. */
  oo_req: number;
  rd_req: number;
  wr_req: number;
  f_req: number;
  ds_req: number;
  rd_sect: number;
  wr_sect: number;
  /** Requests answered BLKIF_RSP_ERROR / EOPNOTSUPP. */
  errors: number;
  eopnotsupp: number;
  /** Notifications from the frontend (upcalls on the ring's port); whether one is sent is decided at the hypervisor. */
  notify_received: number;
  /** Events that found no request (xenbus `spurious_events`), and the EOI delay they earned, in ms. */
  spurious_events: number;
  jiffies_eoi_delayed: number;
  grant_maps: number;
  grant_unmaps: number;
  grant_copies: number;
  persistent_hits: number;
  persistent_grants: number;
  /** Persistent grants unmapped by the LRU (idle too long, or the tree was full). */
  persistent_purged: number;
  /** PI tuples moved by integrity requests, and their failures by where they were caught. */
  pi_tuples: number;
  pi_errors: number;
  pi_caught_backend: number;
  pi_caught_device: number;
  /** Gauge, not a counter: timers the device's rings hold now (0 once it is disconnected). */
  timers: number;
}

export function newStats(): BlkbackStats {
  return {
    oo_req: 0,
    rd_req: 0,
    wr_req: 0,
    f_req: 0,
    ds_req: 0,
    rd_sect: 0,
    wr_sect: 0,
    errors: 0,
    eopnotsupp: 0,
    notify_received: 0,
    spurious_events: 0,
    jiffies_eoi_delayed: 0,
    grant_maps: 0,
    grant_unmaps: 0,
    grant_copies: 0,
    persistent_hits: 0,
    persistent_grants: 0,
    persistent_purged: 0,
    pi_tuples: 0,
    pi_errors: 0,
    pi_caught_backend: 0,
    pi_caught_device: 0,
    timers: 0,
  };
}

export function addStats(into: BlkbackStats, s: BlkbackStats): void {
  for (const k of Object.keys(into) as Array<keyof BlkbackStats>) into[k] += s[k];
}
