/**
 * fio's disk utilization (diskutil.c): the guest block layer's counters of a device, taken before and
 * after the run for the report's "Disk stats", and blkfront's beside them (pvblk's own figures).
 */
import type { GuestDisk } from './toolbox.ts';
import type { DeviceCounters, DiskUtil } from './fio-stats.ts';

/** blkfront's counters of a device (the difference over a command). */
export function frontSnapshot(d: GuestDisk): DeviceCounters {
  const s = d.front.stats;
  return {
    name: d.name,
    requests: s.requests,
    completions: s.completions,
    upcalls: s.upcalls,
    grants: s.grants,
  };
}

export function frontDelta(a: DeviceCounters, b: DeviceCounters): DeviceCounters {
  return {
    name: a.name,
    requests: b.requests - a.requests,
    completions: b.completions - a.completions,
    upcalls: b.upcalls - a.upcalls,
    grants: b.grants - a.grants,
  };
}

/** The block device's counters, for fio's "Disk stats" (the difference over the run). */
export function diskSnapshot(d: GuestDisk): Omit<DiskUtil, 'msec'> & { t: number } {
  const s = d.queue.stats;
  const ioTicks = s.ioTicksMs;
  return {
    name: d.name,
    readIos: s.readIos,
    writeIos: s.writeIos,
    readSectors: s.readSectors,
    writeSectors: s.writeSectors,
    readTicks: s.readTicksMs,
    writeTicks: s.writeTicksMs,
    inQueue: s.timeInQueueMs,
    ioTicks,
    t: performance.now(),
  };
}

export function diskDelta(a: ReturnType<typeof diskSnapshot>, b: ReturnType<typeof diskSnapshot>): DiskUtil {
  return {
    name: a.name,
    readIos: b.readIos - a.readIos,
    writeIos: b.writeIos - a.writeIos,
    readSectors: b.readSectors - a.readSectors,
    writeSectors: b.writeSectors - a.writeSectors,
    readTicks: b.readTicks - a.readTicks,
    writeTicks: b.writeTicks - a.writeTicks,
    inQueue: b.inQueue - a.inQueue,
    ioTicks: b.ioTicks - a.ioTicks,
    msec: b.t - a.t,
  };
}
