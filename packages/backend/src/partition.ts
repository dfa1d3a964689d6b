/**
 * A partition of a host disk (/dev/sdg1): the vbd sees sector 0 where the disk has `start`. Blkback
 * serves it like a whole disk but must remap PI reference tags by `start`, as Linux remaps them for a
 * partition (blk_integrity_prepare), so it is told `startSector` too.
 */
import type { HostBlockDevice, IoResult, PiBuffer, ReadResult } from './block-device.ts';

export class PartitionDevice implements HostBlockDevice {
  readonly sectors: number;

  constructor(
    readonly disk: HostBlockDevice,
    readonly start: number,
    readonly name: string,
  ) {
    this.sectors = disk.sectors - start;
  }

  get logicalBlockSize() {
    return this.disk.logicalBlockSize;
  }
  get physicalBlockSize() {
    return this.disk.physicalBlockSize;
  }
  get readOnly() {
    return this.disk.readOnly;
  }
  get integrity() {
    return this.disk.integrity;
  }
  get writeCache() {
    return this.disk.writeCache;
  }
  get discard() {
    return this.disk.discard;
  }

  read(sector: number, count: number, pi?: { checks: PiBuffer['checks'] }): Promise<ReadResult> {
    return this.disk.read(this.start + sector, count, pi);
  }
  write(sector: number, data: Buffer, pi?: PiBuffer): Promise<IoResult> {
    return this.disk.write(this.start + sector, data, pi);
  }
  flush(): Promise<IoResult> {
    return this.disk.flush();
  }
  discardRange(sector: number, count: number, secure: boolean): Promise<IoResult> {
    return this.disk.discardRange(this.start + sector, count, secure);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * What is wrong with a partition starting at `start` (512-byte sectors) on a disk of `sectors` with
 * `sectorSize`-byte logical blocks, or null: it must start on a logical block and hold one at least,
 * or every request to it fails (a misaligned start, a device smaller than a block).
 */
export function partitionProblem(start: number, sectors: number, sectorSize: number): string | null {
  if (start <= 0) return null;
  const per = sectorSize / 512;
  if (start % per !== 0)
    return `not on a logical block (${sectorSize}-byte blocks: a multiple of ${per} sectors)`;
  if (start + per > sectors)
    return `past the last logical block (${sectors} sectors, ${sectorSize}-byte blocks)`;
  return null;
}
