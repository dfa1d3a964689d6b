/**
 * Per-domain limits that keep one hostile guest from exhausting xenstored for everybody
 * (XSA-326/XSA-349 and friends). Defaults are xenstored's (`hard_quotas` in domain.c). Dom0 is
 * never limited: it is the toolstack and must be able to clean up after any guest.
 */
import { PvblkError } from '@pvblk/shared';

export interface XenStoreQuota {
  /** Nodes a guest may own (ENOSPC beyond). */
  maxNodesPerDomain: number;
  /** Watches a guest may hold (E2BIG beyond, as xenstored answers). */
  maxWatchesPerDomain: number;
  /** Transactions a guest may have open (ENOSPC beyond). */
  maxTransactionsPerDomain: number;
  /** Nodes one transaction of a guest may touch (ENOSPC beyond; xenstored's transaction-nodes). */
  maxTransactionNodes: number;
  /** Bytes in one value (E2BIG beyond): XENSTORE_PAYLOAD_MAX, as oxenstored enforces. */
  maxValueBytes: number;
  /** Entries in one permission list (ENOSPC beyond; xenstored's node-permissions quota). */
  maxPermsPerNode: number;
}

export const DEFAULT_QUOTA: Readonly<XenStoreQuota> = Object.freeze({
  maxNodesPerDomain: 1000,
  maxWatchesPerDomain: 128,
  maxTransactionsPerDomain: 10,
  maxTransactionNodes: 1024,
  maxValueBytes: 4096,
  maxPermsPerNode: 5,
});

export function resolveQuota(overrides: Partial<XenStoreQuota> = {}): XenStoreQuota {
  const q = { ...DEFAULT_QUOTA };
  for (const key of Object.keys(DEFAULT_QUOTA) as Array<keyof XenStoreQuota>) {
    const v = overrides[key];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 0)
      throw new PvblkError(
        'EINVAL',
        `xenstore quota ${key} must be a non-negative integer, got ${String(v)}`,
      );
    q[key] = v;
  }
  return q;
}
