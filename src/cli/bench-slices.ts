/**
 * One measured run made of slices (`pvblk bench --baseline-slices N`): what each side did in each
 * slice is added up into the run's figures, as if it had run through — I/Os, bytes, times and
 * histograms add, counters sum — and the slices' own ratios are kept beside, so that the spread a
 * machine put between them can be seen.
 */
import type { DeviceCounters, DiskUtil, JobStats } from '@pvblk/frontend';
import { Samples } from '@pvblk/frontend';
import type { RelayResult } from './bench-relay.ts';

/** What one guest's fio reported for one slice of pvblk's run. */
export interface GuestSlice {
  status: number;
  jobs: JobStats[];
  options: Array<Record<string, string>>;
  disks: DiskUtil[];
  devices: DeviceCounters[];
  stderr: string;
}

/** `b` ran after `a`, in the same guest, with the same jobs. */
export function appendGuestSlice(a: GuestSlice, b: GuestSlice): GuestSlice {
  // a slice whose fio printed nothing holds no jobs: the run's figures start with the next one
  if (a.jobs.length === 0) return { ...b, status: a.status || b.status, stderr: a.stderr + b.stderr };
  const jobs = a.jobs.map((j, i) => {
    const next = b.jobs[i];
    if (next) j.append(next);
    return j;
  });
  return {
    status: a.status || b.status,
    jobs,
    options: a.options.length ? a.options : b.options,
    disks: a.disks.map((d, i) => (b.disks[i] ? sumDisk(d, b.disks[i]) : d)),
    devices: a.devices.map((d, i) => (b.devices[i] ? sumDevice(d, b.devices[i]) : d)),
    stderr: a.stderr + b.stderr,
  };
}

function sumDisk(a: DiskUtil, b: DiskUtil): DiskUtil {
  return {
    name: a.name,
    readIos: a.readIos + b.readIos,
    writeIos: a.writeIos + b.writeIos,
    readSectors: a.readSectors + b.readSectors,
    writeSectors: a.writeSectors + b.writeSectors,
    readTicks: a.readTicks + b.readTicks,
    writeTicks: a.writeTicks + b.writeTicks,
    inQueue: a.inQueue + b.inQueue,
    ioTicks: a.ioTicks + b.ioTicks,
    msec: a.msec + b.msec,
  };
}

function sumDevice(a: DeviceCounters, b: DeviceCounters): DeviceCounters {
  return {
    name: a.name,
    requests: a.requests + b.requests,
    completions: a.completions + b.completions,
    upcalls: a.upcalls + b.upcalls,
    grants: a.grants + b.grants,
  };
}

/** `b` is a relay client's later slice: counts, times and CPU add up, round trips merge. */
export function appendRelayResult(a: RelayResult, b: RelayResult): RelayResult {
  const rtt = Samples.fromRaw(a.rtt);
  rtt.merge(Samples.fromRaw(b.rtt));
  return {
    client: a.client,
    ios: a.ios + b.ios,
    reads: a.reads + b.reads,
    writes: a.writes + b.writes,
    bytes: a.bytes + b.bytes,
    runtimeMs: a.runtimeMs + b.runtimeMs,
    rtt: rtt.toRaw(),
    framesSent: a.framesSent + b.framesSent,
    framesReceived: a.framesReceived + b.framesReceived,
    bytesSent: a.bytesSent + b.bytesSent,
    bytesReceived: a.bytesReceived + b.bytesReceived,
    cpuUserSeconds: a.cpuUserSeconds + b.cpuUserSeconds,
    cpuSystemSeconds: a.cpuSystemSeconds + b.cpuSystemSeconds,
  };
}

/** One side's part of a slice, on the bench's clock (ms since the point started). */
export interface SliceSide {
  startMs: number;
  endMs: number;
  ios: number;
  /** The side's own measured time in the slice (fio's runtime; the relay client's), ms. */
  runtimeMs: number;
}

export interface Slice {
  pvblk: SliceSide;
  relay: SliceSide;
}

/** pvblk's I/O rate over the relay's in one slice (NaN when either did nothing measurable). */
export function sliceRatio(s: Slice): number {
  const rate = (x: SliceSide) => (x.runtimeMs > 0 ? x.ios / x.runtimeMs : NaN);
  const r = rate(s.pvblk) / rate(s.relay);
  return Number.isFinite(r) ? r : NaN;
}
