import { describe, expect, it } from 'vitest';
import { isPvblkError } from '@pvblk/shared';
import {
  checkGuestCount,
  checkNewDisk,
  DEFAULT_HOST_QUOTAS,
  diskBytes,
  formatBytes,
  parseByteSize,
} from '../src/quota.ts';

const MiB = 1 << 20;
const GiB = 1 << 30;

describe('sizes', () => {
  it('parses bytes and binary units, case-insensitive, with an optional B or iB', () => {
    expect(parseByteSize('4096')).toBe(4096);
    expect(parseByteSize('64k')).toBe(64 * 1024);
    expect(parseByteSize('512M')).toBe(512 * MiB);
    expect(parseByteSize('1G')).toBe(GiB);
    expect(parseByteSize('1GiB')).toBe(GiB);
    expect(parseByteSize('2T')).toBe(2 * 1024 * GiB);
    expect(parseByteSize(' 8MB ')).toBe(8 * MiB);
  });

  it('refuses what is not a size, or too large to count exactly', () => {
    for (const bad of ['', '1.5G', '-1', '1X', 'G', '0x10'])
      expect(() => parseByteSize(bad), bad).toThrow(`not a size: "${bad}"`);
    expect(() => parseByteSize('99999999T')).toThrow('is too large');
  });

  it('prints sizes as people read them', () => {
    expect(formatBytes(GiB)).toBe('1 GiB');
    expect(formatBytes(100000 * MiB)).toBe('97.7 GiB');
    expect(formatBytes(8 * MiB)).toBe('8 MiB');
    expect(formatBytes(1040 * MiB)).toBe('1040 MiB');
    expect(formatBytes(1536)).toBe('1536 bytes');
    expect(formatBytes(100)).toBe('100 bytes');
  });

  it('counts a disk by its capacity, dev_size_mb MiB', () => {
    expect(diskBytes({ dev_size_mb: 8 })).toBe(8 * MiB);
  });
});

describe('quota arithmetic', () => {
  const q = { maxGuests: 2, maxDiskBytes: 64 * MiB, maxTotalDiskBytes: 100 * MiB };

  it('admits a disk up to the per-disk limit and up to the total, inclusive', () => {
    expect(() => checkNewDisk(q, 'g', 64 * MiB, 36 * MiB)).not.toThrow();
    expect(() => checkNewDisk(q, 'g', 1 * MiB, 99 * MiB)).not.toThrow();
  });

  it('refuses a disk over the per-disk limit with E2BIG, naming the size, the limit and the option', () => {
    let err: unknown;
    try {
      checkNewDisk(q, 'guest1', 65 * MiB, 0);
    } catch (e) {
      err = e;
    }
    expect(isPvblkError(err, 'E2BIG')).toBe(true);
    expect((err as Error).message).toBe(
      "E2BIG: the disk of guest guest1: dev_size_mb=65 (65 MiB) is over the host's limit of 64 MiB per disk (--max-disk-size / PVBLK_MAX_DISK_SIZE)",
    );
  });

  it('refuses a disk that does not fit in the total with ENOSPC, naming what is in use', () => {
    expect(() => checkNewDisk(q, 'guest2', 2 * MiB, 99 * MiB)).toThrow(
      "ENOSPC: the disk of guest guest2: dev_size_mb=2 (2 MiB) does not fit in the host's disk quota: 99 MiB of 100 MiB in use (--max-total-disk / PVBLK_MAX_TOTAL_DISK;",
    );
  });

  it('refuses a guest beyond the count with EAGAIN', () => {
    expect(() => checkGuestCount(q, 'g', 1)).not.toThrow();
    expect(() => checkGuestCount(q, 'g3', 2)).toThrow(
      'EAGAIN: cannot create guest g3: the host runs 2 guests, its limit (--max-guests / PVBLK_MAX_GUESTS)',
    );
  });

  it('refuses a 100000 MiB disk under the defaults, before any memory is touched', () => {
    expect(() => checkNewDisk(DEFAULT_HOST_QUOTAS, 'guest', diskBytes({ dev_size_mb: 100000 }), 0)).toThrow(
      "dev_size_mb=100000 (97.7 GiB) is over the host's limit of 1 GiB per disk",
    );
  });
});
