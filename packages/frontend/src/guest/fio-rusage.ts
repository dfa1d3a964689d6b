/**
 * What the guest process uses, for a job's CPU and fault figures (fio's rusage: usr, sys, ctx, majf,
 * minf), from Node's process.cpuUsage() and process.resourceUsage().
 */

/** What the guest process used over a span (its CPU times in µs, context switches and page faults). */
export interface ProcessUsage {
  user: number;
  system: number;
  ctx: number;
  majf: number;
  minf: number;
}

export function usageNow(): ProcessUsage {
  const cpu = process.cpuUsage();
  const ru = process.resourceUsage();
  return {
    user: cpu.user,
    system: cpu.system,
    ctx: ru.voluntaryContextSwitches + ru.involuntaryContextSwitches,
    majf: ru.majorPageFault,
    minf: ru.minorPageFault,
  };
}

/** What the guest process used since `u0` (usageNow() then). */
export function usageSince(u0: ProcessUsage): ProcessUsage {
  const u = usageNow();
  return {
    user: u.user - u0.user,
    system: u.system - u0.system,
    ctx: u.ctx - u0.ctx,
    majf: u.majf - u0.majf,
    minf: u.minf - u0.minf,
  };
}
