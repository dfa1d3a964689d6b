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
  disks: DiskUtil[];
  devices: DeviceCounters[];
  /** The errors of the guest's jobs that no report lists (stats=0): said and counted all the same. */
  unreported: Array<{ error: number; verror: string }>;
}

/** `b` ran after `a`, in the same guest, with the same jobs. */
export function appendGuestSlice(a: GuestSlice, b: GuestSlice): GuestSlice {
  // a slice whose fio printed nothing holds no jobs: the run's figures start with the next one
  if (a.jobs.length === 0)
    return {
      ...b,
      status: a.status || b.status,
      unreported: [...a.unreported, ...b.unreported],
    };
  const jobs = a.jobs.map((j, i) => {
    const next = b.jobs[i];
    if (next) j.append(next);
    return j;
  });
  return {
    status: a.status || b.status,
    jobs,
    disks: a.disks.map((d, i) => (b.disks[i] ? addCounters(d, b.disks[i]) : d)),
    devices: a.devices.map((d, i) => (b.devices[i] ? addCounters(d, b.devices[i]) : d)),
    unreported: [...a.unreported, ...b.unreported],
  };
}

/**
 * Counters of two stretches of one run added up: every number of `b` added to `a`'s, everything else
 * (a name, a histogram) kept as `a` has it.
 */
function addCounters<T extends object>(a: T, b: T): T {
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  const more = b as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(a))
    if (typeof v === 'number' && typeof more[k] === 'number') out[k] = v + (more[k] as number);
  return out as T;
}

/** `b` is a relay client's later slice: counts, times and CPU add up, round trips merge. */
export function appendRelayResult(a: RelayResult, b: RelayResult): RelayResult {
  const rtt = Samples.fromRaw(a.rtt);
  rtt.merge(Samples.fromRaw(b.rtt));
  // the client number is a name, not a count
  return { ...addCounters(a, b), client: a.client, rtt: rtt.toRaw() };
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
