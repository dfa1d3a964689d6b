/**
 * The JSON the hypervisor answers on `GET /status` (Dom0's credential only): what it holds for each
 * domain and in all. The broker builds it; the host's tools (`xl list`, the dashboard, `/metrics`)
 * and the CLI's chaos runs read it over HTTP — one shape for both sides, as the ring's layout is.
 */

/** Per domain, counted by the broker since the domain was created. */
export interface DomainStats {
  msgsIn: number;
  msgsOut: number;
  invalidMessages: number;
  eventsSent: number;
  eventsDelivered: number;
  pageWrites: number;
  grantMaps: number;
  grantCopies: number;
  /** NOTIFY_IF ring checks decided here. */
  ringChecks: number;
  /** Hypercalls answered: each one a round trip through the broker (fences among them). */
  calls: number;
  /** Fences (mb() across domains: a call whose reply says everything before it has arrived). */
  fences: number;
  /** WebSocket frames and their bytes, from the domain and to it. */
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  /** Turns in which the broker sent the domain what it owed (in as many frames as it was cut into). */
  flushesOut: number;
}

export interface XenStoreUse {
  nodes: number;
  watches: number;
  transactions: number;
}

export interface DomainStatus {
  domid: number;
  name: string;
  privileged: boolean;
  connected: boolean;
  grants: number;
  grantsMapped: number;
  mappings: number;
  sharedFrames: number;
  ports: number;
  stats: DomainStats;
  /** What the broker holds for this domain: frame copies, unread output, unserved input, XenStore. */
  memory: { sharedFrameBytes: number; backlogBytes: number; pendingInput: number };
  xenstore: XenStoreUse;
  /** The broker's time serving the domain (seconds), where its process measures it. */
  cpuSeconds?: number;
}

/** Hypercall latencies by message type, in fixed buckets (where the broker's process measures them). */
export interface HypercallHistograms {
  buckets: number[];
  byType: Record<string, { counts: number[]; sum: number; count: number }>;
}

export interface HypervisorStatus {
  uptimeSeconds: number;
  domains: DomainStatus[];
  limits: {
    maxDomains: number;
    maxGrantFrames: number;
    maxMaptrack: number;
    maxSharedFrames: number;
    maxCopyBytes: number;
    maxGuestEvtchnPort: number;
  };
  grantsInUse: number;
  ports: number;
  xenstore: XenStoreUse;
  messages: { in: Record<string, number>; out: Record<string, number> };
  hypercalls?: HypercallHistograms;
}
