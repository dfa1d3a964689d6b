/**
 * blkback's tunables, named and defaulted as Linux's module parameters and constants.
 */
import { blkbackTrace, type BlkbackTrace } from './trace.ts';

export interface BlkbackConfig {
  /** max_ring_page_order: largest ring the backend maps, log2 pages (XENBUS_MAX_RING_GRANT_ORDER). */
  maxRingPageOrder: number;
  /** max_queues: advertised as multi-queue-max-queues (Linux: num_online_cpus()). */
  maxQueues: number;
  /** MAX_INDIRECT_SEGMENTS, advertised as feature-max-indirect-segments; 0 disables indirect. */
  maxIndirectSegments: number;
  /** feature_persistent. */
  persistentGrants: boolean;
  /** max_persistent_grants per ring. */
  maxPersistentGrants: number;
  /**
   * How request data moves: 'map' maps the guest's grants (Linux blkback), 'copy' uses grant copy and
   * never maps data pages (QEMU's qdisk).
   */
  dataPath: 'map' | 'copy';
  /** Offer BLKIF_OP_DISCARD when the device supports it (the toolstack's discard-enable). */
  discard: boolean;
  /** Offer the blkif integrity extension when the device has an integrity profile. */
  integrity: boolean;
  /** Longest a disconnect waits for in-flight I/O before giving up on it. */
  drainTimeoutMs: number;
  /** Trace hooks for `pvblk bench --trace` (trace.ts); null when tracing is off. */
  trace?: BlkbackTrace | null;
}

export const DEFAULT_BLKBACK_CONFIG: Readonly<BlkbackConfig> = Object.freeze({
  maxRingPageOrder: 4,
  maxQueues: 4,
  maxIndirectSegments: 256,
  persistentGrants: true,
  maxPersistentGrants: 1056,
  dataPath: 'map',
  discard: true,
  integrity: true,
  drainTimeoutMs: 10_000,
  trace: blkbackTrace,
});

/** XEN_BLKIF_REQS_PER_PAGE: requests in flight per ring page. */
export const BLKIF_REQS_PER_PAGE = 32;
