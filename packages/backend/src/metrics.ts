/**
 * The host's Prometheus metrics (`GET /metrics` on the management API, operator token as bearer):
 *
 * - blkback's counters per vbd, as Linux exposes them under
 *   /sys/bus/xen-backend/devices/vbd-<domid>-<devid>/statistics, named by Prometheus conventions:
 *   `pvblk_blkback_{oo,rd,wr,f,ds}_req_total`, `pvblk_blkback_{rd,wr}_sect_total` (labels `domid`,
 *   `devid`), and the ones pvblk adds (errors, notifications, spurious events, grant operations,
 *   persistent grants);
 * - protection-information errors by the layer that caught them: `pvblk_pi_errors_total{layer}` with
 *   `backend` (blkback's check of the guest's PI) and `device` (the disk's check), per vbd, and the
 *   disk's own `dif_errors` per disk;
 * - each ring's indices and occupancy (`pvblk_blkback_ring_occupancy` …), each vbd's XenBus state;
 * - each disk's scsi_debug counters (`pvblk_scsi_debug_*_total{disk}`);
 * - the host process's own metrics (`pvblk_host_process_*`, `pvblk_host_nodejs_*`).
 *
 * Values are read from blkback and the disks at scrape time.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { BlkbackStats } from './blkback/stats.ts';
import type { DiskView, VbdView } from './observe.ts';

export interface HostMetricsSource {
  vbds(): VbdView[];
  disks(): DiskView[];
}

/** blkback's statistics, with the Linux sysfs names first (the issue's `oo_req rd_req …`). */
const BLKBACK_COUNTERS: Array<[keyof BlkbackStats, string, string]> = [
  [
    'oo_req',
    'pvblk_blkback_oo_req_total',
    'Requests that waited for a free pending_req slot (statistics/oo_req)',
  ],
  ['rd_req', 'pvblk_blkback_rd_req_total', 'Read requests (statistics/rd_req)'],
  ['wr_req', 'pvblk_blkback_wr_req_total', 'Write requests (statistics/wr_req)'],
  ['f_req', 'pvblk_blkback_f_req_total', 'Flush and barrier requests (statistics/f_req)'],
  ['ds_req', 'pvblk_blkback_ds_req_total', 'Discard requests (statistics/ds_req)'],
  ['rd_sect', 'pvblk_blkback_rd_sect_total', 'Sectors read (statistics/rd_sect)'],
  ['wr_sect', 'pvblk_blkback_wr_sect_total', 'Sectors written (statistics/wr_sect)'],
  ['errors', 'pvblk_blkback_errors_total', 'Requests answered BLKIF_RSP_ERROR'],
  ['eopnotsupp', 'pvblk_blkback_eopnotsupp_total', 'Requests answered BLKIF_RSP_EOPNOTSUPP'],
  ['notify_received', 'pvblk_blkback_notifications_total', "Upcalls on the rings' event channels"],
  ['spurious_events', 'pvblk_blkback_spurious_events_total', 'Upcalls that found no request (lateeoi)'],
  [
    'jiffies_eoi_delayed',
    'pvblk_blkback_eoi_delayed_milliseconds_total',
    'EOI delay earned by spurious upcalls',
  ],
  ['grant_maps', 'pvblk_blkback_grant_maps_total', 'Grants mapped'],
  ['grant_unmaps', 'pvblk_blkback_grant_unmaps_total', 'Grants unmapped'],
  ['grant_copies', 'pvblk_blkback_grant_copies_total', 'Grant copies'],
  ['persistent_hits', 'pvblk_blkback_persistent_hits_total', 'Segments served from a persistent grant'],
  ['persistent_purged', 'pvblk_blkback_persistent_purged_total', 'Persistent grants unmapped by the LRU'],
  ['pi_tuples', 'pvblk_blkback_pi_tuples_total', 'PI tuples carried by integrity requests'],
];

const SCSI_DEBUG_COUNTERS: Array<[string, string, string]> = [
  ['commands', 'pvblk_scsi_debug_commands_total', 'SCSI commands the disk received'],
  [
    'mediumErrors',
    'pvblk_scsi_debug_medium_errors_total',
    'READs failed with MEDIUM ERROR (opts MEDIUM_ERR)',
  ],
  ['difErrors', 'pvblk_scsi_debug_dif_errors_total', 'PI checks the disk failed (dif_errors)'],
  ['dixReads', 'pvblk_scsi_debug_dix_reads_total', 'Reads that carried PI to the host (dix_reads)'],
  ['dixWrites', 'pvblk_scsi_debug_dix_writes_total', 'Writes that carried PI from the host (dix_writes)'],
  ['timeouts', 'pvblk_scsi_debug_timeouts_total', 'Commands swallowed (TIMEOUT, MAC_TIMEOUT, CMD_ABORT)'],
  ['aborts', 'pvblk_scsi_debug_aborts_total', 'Commands aborted by the host'],
];

const VBD_LABELS = ['domid', 'devid'] as const;
type VbdLabel = (typeof VBD_LABELS)[number];

export function hostMetrics(src: HostMetricsSource): Registry {
  const registry = new Registry();
  let defaults = false;
  // one snapshot per scrape, however many metrics read it
  let vbds: VbdView[] | null = null;
  let disks: DiskView[] | null = null;
  const v = () => (vbds ??= src.vbds());
  const d = () => (disks ??= src.disks());
  const labels = (x: VbdView) => ({ domid: String(x.domid), devid: String(x.devid) });

  for (const [key, name, help] of BLKBACK_COUNTERS) {
    new Counter<VbdLabel>({
      name,
      help,
      labelNames: VBD_LABELS,
      registers: [registry],
      collect() {
        this.reset();
        for (const x of v()) this.inc(labels(x), x.stats[key]);
      },
    });
  }
  new Gauge<VbdLabel>({
    name: 'pvblk_blkback_persistent_grants',
    help: 'Persistent grants blkback holds mapped',
    labelNames: VBD_LABELS,
    registers: [registry],
    collect() {
      this.reset();
      for (const x of v()) this.set(labels(x), x.stats.persistent_grants);
    },
  });
  new Counter<VbdLabel | 'layer'>({
    name: 'pvblk_pi_errors_total',
    help: 'Protection-information check failures of a vbd, by the layer that caught them',
    labelNames: [...VBD_LABELS, 'layer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const x of v()) {
        this.inc({ ...labels(x), layer: 'backend' }, x.stats.pi_caught_backend);
        this.inc({ ...labels(x), layer: 'device' }, x.stats.pi_caught_device);
      }
    },
  });
  new Gauge<VbdLabel | 'state'>({
    name: 'pvblk_vbd_state',
    help: "1 for the backend's XenBus state of each vbd",
    labelNames: [...VBD_LABELS, 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const x of v()) this.set({ ...labels(x), state: x.state }, 1);
    },
  });
  const ring = (name: string, help: string, value: (r: VbdView['rings'][number]) => number) =>
    new Gauge<VbdLabel | 'ring'>({
      name,
      help,
      labelNames: [...VBD_LABELS, 'ring'],
      registers: [registry],
      collect() {
        this.reset();
        for (const x of v())
          for (const r of x.rings) this.set({ ...labels(x), ring: String(r.queue) }, value(r));
      },
    });
  ring('pvblk_blkback_ring_slots', 'Slots of the ring', (r) => r.size);
  ring(
    'pvblk_blkback_ring_occupancy',
    'Requests on the ring not answered yet (req_prod - rsp_prod_pvt)',
    (r) => r.occupancy,
  );
  ring('pvblk_blkback_ring_req_prod', "The frontend's req_prod (shared page)", (r) => r.reqProd);
  ring('pvblk_blkback_ring_req_cons', "blkback's req_cons", (r) => r.reqCons);
  ring('pvblk_blkback_ring_rsp_prod', 'rsp_prod (shared page)', (r) => r.rspProd);

  for (const [key, name, help] of SCSI_DEBUG_COUNTERS) {
    new Counter<'disk'>({
      name,
      help,
      labelNames: ['disk'],
      registers: [registry],
      collect() {
        this.reset();
        for (const x of d()) this.inc({ disk: x.path.slice(5) }, x.stats[key] ?? 0);
      },
    });
  }
  new Gauge<'disk' | 'guest'>({
    name: 'pvblk_disk_sectors',
    help: 'Capacity of each host disk in 512-byte sectors, with the name it belongs to',
    labelNames: ['disk', 'guest'],
    registers: [registry],
    collect() {
      this.reset();
      for (const x of d()) this.set({ disk: x.path.slice(5), guest: x.guest }, x.sectors);
    },
  });

  const metrics = registry.metrics.bind(registry);
  registry.metrics = async () => {
    if (!defaults) {
      defaults = true;
      collectDefaultMetrics({ register: registry, prefix: 'pvblk_host_' });
    }
    vbds = null;
    disks = null;
    try {
      return await metrics();
    } finally {
      vbds = null;
      disks = null;
    }
  };
  return registry;
}
