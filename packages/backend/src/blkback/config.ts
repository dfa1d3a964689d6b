/**
 * blkback's tunables, named and defaulted as Linux's module parameters and constants.
 */
import { XENBUS_MAX_RING_GRANT_ORDER } from '@pvblk/shared';
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
   * Grants of one guest that blkback keeps mapped at once for its requests beyond the persistent ones
   * (data segments and indirect pages, all its rings and disks together); a request that would pass it
   * moves its data by grant copy instead. Not a Linux parameter: see MapBudget (segments.ts).
   */
  maxTransientMaps: number;
  /**
   * persistent_grant_unused_seconds, in milliseconds here: a persistent grant idle this long is
   * unmapped by the next LRU pass (purge_persistent_gnt). 0 keeps idle grants for ever.
   */
  persistentGrantUnusedMs: number;
  /** LRU_INTERVAL: how often a connected ring wakes to purge persistent grants and notice a resize. */
  lruIntervalMs: number;
  /**
   * How request data moves: 'map' maps the guest's grants (Linux blkback), 'copy' uses grant copy and
   * never maps data pages (QEMU's qdisk).
   */
  dataPath: 'map' | 'copy';
  /**
   * Write feature-flush-cache at connect (Linux always does). false stands in for a backend older than
   * that key (Linux before 2.6.37), which offers only feature-barrier — for testing frontends.
   */
  advertiseFlushCache: boolean;
  /** Offer the blkif integrity extension when the device has an integrity profile. */
  integrity: boolean;
  /** With it, offer feature-integrity-inline: descriptors, and a small write's tuples, in the slot. */
  integrityInline: boolean;
  /** Longest a disconnect waits for in-flight I/O before giving up on it. */
  drainTimeoutMs: number;
  /** Trace hooks for `pvblk bench --trace` (trace.ts); null when tracing is off. */
  trace?: BlkbackTrace | null;
}

export const DEFAULT_BLKBACK_CONFIG: Readonly<BlkbackConfig> = Object.freeze({
  maxRingPageOrder: XENBUS_MAX_RING_GRANT_ORDER,
  maxQueues: 4,
  maxIndirectSegments: 256,
  persistentGrants: true,
  maxPersistentGrants: 1056,
  maxTransientMaps: 2048,
  persistentGrantUnusedMs: 60_000,
  lruIntervalMs: 100,
  dataPath: 'map',
  advertiseFlushCache: true,
  integrity: true,
  integrityInline: true,
  drainTimeoutMs: 10_000,
  trace: blkbackTrace,
});

/** XEN_BLKIF_REQS_PER_PAGE: requests in flight per ring page. */
export const BLKIF_REQS_PER_PAGE = 32;

/** LRU_PERCENT_CLEAN: share of max_persistent_grants a full tree gives back per purge. */
export const LRU_PERCENT_CLEAN = 5;
