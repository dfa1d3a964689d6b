/** Event channels (xen/include/public/event_channel.h, xen.h): statuses and limits. */

export const DOMID_SELF = 0x7ff0;
/** The first domain id that is not a real domain (DOMID_FIRST_RESERVED). */
export const DOMID_FIRST_RESERVED = 0x7ff0;

export const EVTCHNSTAT_closed = 0;
export const EVTCHNSTAT_unbound = 1;
export const EVTCHNSTAT_interdomain = 2;
export const EVTCHNSTAT_pirq = 3;
export const EVTCHNSTAT_virq = 4;
export const EVTCHNSTAT_ipi = 5;

export type EvtchnStatus = 0 | 1 | 2 | 3 | 4 | 5;

export const EVTCHNSTAT_NAMES = ['closed', 'unbound', 'interdomain', 'pirq', 'virq', 'ipi'] as const;

/** EVTCHN_2L_NR_CHANNELS on 64-bit: sizeof(xen_ulong_t)^2 × 64 = 4096 ports per domain. */
export const EVTCHN_2L_NR_CHANNELS = 4096;
