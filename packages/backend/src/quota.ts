/**
 * The host's quotas: how many guests it runs and how much disk it hands out, as Xen bounds a host by
 * its memory and a toolstack by its configuration. Every refusal names the limit, what was asked,
 * what is in use, and the option (and variable) that sets it.
 */
import { PvblkError } from '@pvblk/shared';
import type { ScsiDebugParams } from './scsi/index.ts';

export interface HostQuotas {
  /** Guest domains alive at once (created or running). */
  maxGuests: number;
  /** Capacity of one disk, bytes (dev_size_mb × 1 MiB). */
  maxDiskBytes: number;
  /** Capacity of every disk the host keeps, bytes, attached or not. */
  maxTotalDiskBytes: number;
}

const KiB = 1024;
const MiB = KiB * 1024;
const GiB = MiB * 1024;
const TiB = GiB * 1024;

export const DEFAULT_HOST_QUOTAS: Readonly<HostQuotas> = Object.freeze({
  maxGuests: 64,
  maxDiskBytes: 1 * GiB,
  maxTotalDiskBytes: 4 * GiB,
});

/** Where each quota is set, for the refusals. */
export const QUOTA_SETTINGS = {
  maxGuests: '--max-guests / PVBLK_MAX_GUESTS',
  maxDiskBytes: '--max-disk-size / PVBLK_MAX_DISK_SIZE',
  maxTotalDiskBytes: '--max-total-disk / PVBLK_MAX_TOTAL_DISK',
} as const;

const UNITS: Record<string, number> = { '': 1, K: KiB, M: MiB, G: GiB, T: TiB };

/** "1G", "512M", "64k", "1073741824" (binary units, as dd and scsi_debug count) → bytes. */
export function parseByteSize(raw: string): number {
  const m = /^([0-9]+)([KMGT]?)(i?B)?$/i.exec(raw.trim());
  if (!m) throw new PvblkError('EINVAL', `not a size: "${raw}" (a number of bytes, or with K, M, G or T)`);
  const v = Number(m[1]) * UNITS[m[2].toUpperCase()];
  if (!Number.isSafeInteger(v)) throw new PvblkError('EINVAL', `size "${raw}" is too large`);
  return v;
}

/** Bytes for people: "1 GiB", "97.7 GiB", "1040 MiB", "100 bytes". */
export function formatBytes(n: number): string {
  for (const [unit, size] of [
    ['TiB', TiB],
    ['GiB', GiB],
    ['MiB', MiB],
    ['KiB', KiB],
  ] as const) {
    // exact in the largest unit that divides it; rounded only where a tenth is under 1 %
    const v = n / size;
    if (v >= 1 && (Number.isInteger(v) || v >= 10))
      return `${Number.isInteger(v) ? v : v.toFixed(1)} ${unit}`;
  }
  return `${n} bytes`;
}

/** What a disk counts against the quotas: its capacity, as `dev_size_mb` gives it. */
export function diskBytes(p: Pick<ScsiDebugParams, 'dev_size_mb'>): number {
  return p.dev_size_mb * MiB;
}

/** Refuses a new disk of `bytes` for `guest` when it is over either disk quota. */
export function checkNewDisk(q: HostQuotas, guest: string, bytes: number, inUse: number): void {
  const asked = `dev_size_mb=${bytes / MiB} (${formatBytes(bytes)})`;
  if (bytes > q.maxDiskBytes) {
    throw new PvblkError(
      'E2BIG',
      `the disk of guest ${guest}: ${asked} is over the host's limit of ${formatBytes(q.maxDiskBytes)} per disk (${QUOTA_SETTINGS.maxDiskBytes})`,
    );
  }
  if (inUse + bytes > q.maxTotalDiskBytes) {
    throw new PvblkError(
      'ENOSPC',
      `the disk of guest ${guest}: ${asked} does not fit in the host's disk quota: ${formatBytes(inUse)} of ${formatBytes(q.maxTotalDiskBytes)} in use (${QUOTA_SETTINGS.maxTotalDiskBytes}; remove unused disks with DELETE /disks?guest=<name>)`,
    );
  }
}

/** Refuses one more guest domain when `running` are alive already. */
export function checkGuestCount(q: HostQuotas, guest: string, running: number): void {
  if (running >= q.maxGuests) {
    throw new PvblkError(
      'EAGAIN',
      `cannot create guest ${guest}: the host runs ${running} guest${running === 1 ? '' : 's'}, its limit (${QUOTA_SETTINGS.maxGuests})`,
    );
  }
}
