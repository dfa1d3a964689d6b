/**
 * The hypervisor's Prometheus metrics (`GET /metrics`, text format 0.0.4, prom-client), operator
 * only like `/status`: the Dom0 secret as a bearer token. Everything `/status` reports per domain —
 * grants, mappings, shared frames and their bytes, event-channel ports, XenStore nodes and watches,
 * messages and events — as gauges and counters labelled `domid` and `name`, the broker's totals, and
 * two things `/status` cannot show:
 *
 * - `pvblk_hypercall_duration_seconds{type}`: a histogram of the time the hypervisor spends serving
 *   each call (its dispatch, not the wire), by message type;
 * - `pvblk_domain_cpu_seconds_total{domid}`: the sum of that time per domain — what `xl list` shows as
 *   Time(s). A pvblk domain's own CPU time belongs to its process, which the hypervisor cannot see;
 *   the time Xen spent on a domain's behalf is the honest equivalent. `/status` carries both too
 *   (`cpuSeconds` of each domain, `hypercalls` with the histogram's buckets).
 *
 * Counters are read from the hypervisor's own tables at scrape time, so a scrape costs nothing between
 * scrapes; the histogram is kept in fixed buckets (a few array increments per message).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { HypercallHistograms, HypervisorStatus } from '@pvblk/shared';
import type { Hypervisor } from './core/hypervisor.ts';
import { requestUrl } from '@pvblk/runtime';

/** Upper bounds of the hypercall histogram, seconds: 1 µs … 100 ms. */
export const HYPERCALL_BUCKETS = [
  1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2, 1e-1,
];

/** A histogram kept in plain arrays, turned into prom-client's values at scrape time. */
class FixedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, { counts: Float64Array; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly label: string,
    private readonly buckets: readonly number[],
  ) {}

  /** `n` observations of `seconds` each (a run of page writes: each is counted, at the run's mean). */
  observe(key: string, seconds: number, n = 1): void {
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = { counts: new Float64Array(this.buckets.length), sum: 0, count: 0 }));
    const b = this.buckets;
    for (let i = 0; i < b.length; i++) if (seconds <= b[i]) s.counts[i] += n;
    s.sum += seconds * n;
    s.count += n;
  }

  reset(): void {
    this.series.clear();
  }

  /** Cumulative counts per bucket, by label value (for /status and the dashboard). */
  snapshot(): HypercallHistograms {
    const byType: Record<string, { counts: number[]; sum: number; count: number }> = {};
    for (const [k, s] of this.series) byType[k] = { counts: [...s.counts], sum: s.sum, count: s.count };
    return { buckets: [...this.buckets], byType };
  }

  get() {
    const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    for (const [key, s] of [...this.series].sort(([a], [b]) => a.localeCompare(b))) {
      this.buckets.forEach((le, i) =>
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { [this.label]: key, le },
          value: s.counts[i],
        }),
      );
      values.push({
        metricName: `${this.name}_bucket`,
        labels: { [this.label]: key, le: '+Inf' },
        value: s.count,
      });
      values.push({ metricName: `${this.name}_sum`, labels: { [this.label]: key }, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: { [this.label]: key }, value: s.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

export interface HypervisorMetrics {
  registry: Registry;
  /** Seconds the hypervisor spent serving each domain's calls. */
  cpuSeconds(domid: number): number;
  /** Answers `GET /metrics`; false for any other request. */
  serve(req: IncomingMessage, res: ServerResponse): boolean;
}

function sameSecret(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(h(a), h(b));
}

/**
 * Instruments `hv` (its call dispatch is timed; its status gains each domain's `cpuSeconds`) and
 * builds the registry. `extra` adds what the server knows (connections per address).
 */
export function instrumentHypervisor(
  hv: Hypervisor,
  dom0Credential: string,
  extra: { connections(): Record<string, { open: number; unauthenticated: number }> },
): HypervisorMetrics {
  const registry = new Registry();
  // the process's own metrics (CPU, memory, event loop), started by the first scrape: a hypervisor
  // nobody scrapes (most of the tests') pays nothing for them
  let defaults = false;
  // seconds each domain's calls took: performance.now() differences (doubles) where hrtime.bigint()
  // allocated BigInts for every message served
  const cpuSec = new Map<number, number>();
  const hist = new FixedHistogram(
    'pvblk_hypercall_duration_seconds',
    'Time the hypervisor spent serving one call of a domain, by message type (page writes that follow each other in a frame are served together and each counted at their mean)',
    'type',
    HYPERCALL_BUCKETS,
  );
  registry.registerMetric(hist as unknown as Metric);

  const handle = hv.handle.bind(hv);
  hv.handle = (d, m) => {
    const t0 = performance.now();
    try {
      handle(d, m);
    } finally {
      const dt = (performance.now() - t0) / 1e3;
      cpuSec.set(d.domid, (cpuSec.get(d.domid) ?? 0) + dt);
      // a run of page writes: each write counted, as the message counters count them, at the run's mean
      if (m.t === 'page_run') hist.observe(m.mapped ? 'gw' : 'mw', dt / m.count, m.count);
      else hist.observe(m.t, dt);
    }
  };
  const cpuSeconds = (domid: number) => cpuSec.get(domid) ?? 0;
  const status = hv.status.bind(hv);
  hv.status = (): HypervisorStatus & { hypercalls: HypercallHistograms } => {
    const s = status();
    // destroyed domains' time goes with them (their domid may be reused)
    for (const id of cpuSec.keys()) if (!hv.domains.has(id)) cpuSec.delete(id);
    return {
      ...s,
      domains: s.domains.map((d) => ({ ...d, cpuSeconds: cpuSeconds(d.domid) })),
      hypercalls: hist.snapshot(),
    };
  };

  let snapshot: HypervisorStatus | null = null;
  const snap = () => (snapshot ??= hv.status());
  const domLabels = ['domid', 'name'] as const;
  type DomainEntry = HypervisorStatus['domains'][number];
  const perDomain = (
    kind: 'gauge' | 'counter',
    name: string,
    help: string,
    value: (d: DomainEntry) => number,
  ) => {
    const collect = function (this: Gauge<(typeof domLabels)[number]> | Counter<(typeof domLabels)[number]>) {
      this.reset();
      for (const d of snap().domains) {
        const labels = { domid: String(d.domid), name: d.name };
        if (this instanceof Gauge) this.set(labels, value(d));
        else this.inc(labels, value(d));
      }
    };
    const cfg = { name, help, labelNames: domLabels, registers: [registry], collect };
    return kind === 'gauge' ? new Gauge(cfg) : new Counter(cfg);
  };
  perDomain(
    'gauge',
    'pvblk_domain_connected',
    '1 while the domain has a connection (0: created, not booted)',
    (d) => (d.connected ? 1 : 0),
  );
  perDomain('gauge', 'pvblk_domain_grants', 'Grant entries the domain has issued', (d) => d.grants);
  perDomain(
    'gauge',
    'pvblk_domain_grants_mapped',
    "The domain's grants that another domain maps now",
    (d) => d.grantsMapped,
  );
  perDomain(
    'gauge',
    'pvblk_domain_mappings',
    'Foreign frames the domain maps now (maptrack entries)',
    (d) => d.mappings,
  );
  perDomain(
    'gauge',
    'pvblk_domain_shared_frames',
    "The domain's frames the hypervisor keeps a copy of",
    (d) => d.sharedFrames,
  );
  perDomain(
    'gauge',
    'pvblk_domain_shared_frame_bytes',
    'Bytes of those copies',
    (d) => d.memory.sharedFrameBytes,
  );
  perDomain(
    'gauge',
    'pvblk_domain_backlog_bytes',
    'Bytes owed to the domain and not read by it yet',
    (d) => d.memory.backlogBytes,
  );
  perDomain(
    'gauge',
    'pvblk_domain_pending_messages',
    'Messages from the domain not served yet',
    (d) => d.memory.pendingInput,
  );
  perDomain('gauge', 'pvblk_domain_evtchn_ports', 'Event-channel ports the domain holds', (d) => d.ports);
  perDomain(
    'gauge',
    'pvblk_domain_xenstore_nodes',
    'XenStore nodes the domain owns',
    (d) => d.xenstore.nodes,
  );
  perDomain(
    'gauge',
    'pvblk_domain_xenstore_watches',
    'XenStore watches the domain holds',
    (d) => d.xenstore.watches,
  );
  perDomain(
    'gauge',
    'pvblk_domain_xenstore_transactions',
    'XenStore transactions the domain has open',
    (d) => d.xenstore.transactions,
  );
  perDomain(
    'counter',
    'pvblk_domain_messages_received_total',
    'Messages (frames records) the domain sent',
    (d) => d.stats.msgsIn,
  );
  perDomain(
    'counter',
    'pvblk_domain_messages_sent_total',
    'Messages delivered to the domain',
    (d) => d.stats.msgsOut,
  );
  perDomain(
    'counter',
    'pvblk_domain_invalid_messages_total',
    'Messages of the domain refused as malformed',
    (d) => d.stats.invalidMessages,
  );
  perDomain(
    'counter',
    'pvblk_domain_events_sent_total',
    'Event-channel notifications the domain sent',
    (d) => d.stats.eventsSent,
  );
  perDomain(
    'counter',
    'pvblk_domain_events_delivered_total',
    'Event-channel upcalls delivered to the domain',
    (d) => d.stats.eventsDelivered,
  );
  perDomain(
    'counter',
    'pvblk_domain_page_writes_total',
    'Writes to shared pages the domain made',
    (d) => d.stats.pageWrites,
  );
  perDomain(
    'counter',
    'pvblk_domain_grant_maps_total',
    'GNTTABOP_map_grant_ref operations of the domain',
    (d) => d.stats.grantMaps,
  );
  perDomain(
    'counter',
    'pvblk_domain_grant_copies_total',
    'GNTTABOP_copy operations of the domain',
    (d) => d.stats.grantCopies,
  );
  perDomain(
    'counter',
    'pvblk_domain_ring_checks_total',
    'Ring notification checks decided for the domain',
    (d) => d.stats.ringChecks,
  );
  perDomain(
    'counter',
    'pvblk_domain_calls_total',
    'Hypercalls the domain made that the broker answered (each a round trip)',
    (d) => d.stats.calls,
  );
  perDomain(
    'counter',
    'pvblk_domain_fences_total',
    'Fences the domain made (a call answered once all it sent before is applied)',
    (d) => d.stats.fences,
  );
  perDomain(
    'counter',
    'pvblk_domain_cpu_seconds_total',
    'Seconds the hypervisor spent serving the domain (xl list Time(s))',
    (d) => cpuSeconds(d.domid),
  );

  const total = (name: string, help: string, value: (s: HypervisorStatus) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(value(snap()));
      },
    });
  total('pvblk_domains', 'Domains that exist, Dom0 included', (s) => s.domains.length);
  total('pvblk_grants_in_use', 'Grant entries mapped by some domain', (s) => s.grantsInUse);
  total('pvblk_evtchn_ports', 'Event-channel ports of every domain', (s) => s.ports);
  total('pvblk_xenstore_nodes', 'XenStore nodes', (s) => s.xenstore.nodes);
  total('pvblk_xenstore_watches', 'XenStore watches', (s) => s.xenstore.watches);
  total('pvblk_xenstore_transactions', 'XenStore transactions open', (s) => s.xenstore.transactions);
  new Counter({
    name: 'pvblk_messages_received_total',
    help: 'Messages the hypervisor received, by type',
    labelNames: ['type'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [t, n] of Object.entries(snap().messages.in)) this.inc({ type: t }, n);
    },
  });
  new Counter({
    name: 'pvblk_messages_sent_total',
    help: 'Messages the hypervisor delivered, by type',
    labelNames: ['type'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [t, n] of Object.entries(snap().messages.out)) this.inc({ type: t }, n);
    },
  });
  new Gauge({
    name: 'pvblk_connections',
    help: 'WebSocket connections open, by remote address and whether they said hello',
    labelNames: ['address', 'authenticated'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [address, c] of Object.entries(extra.connections())) {
        this.set({ address, authenticated: 'true' }, c.open - c.unauthenticated);
        this.set({ address, authenticated: 'false' }, c.unauthenticated);
      }
    },
  });

  const serve = (req: IncomingMessage, res: ServerResponse): boolean => {
    const path = requestUrl(req)?.pathname;
    if (path === undefined) return false; // not a path this serves (the server answers it)
    if (req.method !== 'GET' || path !== '/metrics') return false;
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ') || !sameSecret(auth.slice(7), dom0Credential)) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' }).end(
        JSON.stringify({
          error: 'EACCES',
          message: "/metrics is the operator's: send the Dom0 secret as a bearer token",
        }) + '\n',
      );
      return true;
    }
    if (!defaults) {
      defaults = true;
      collectDefaultMetrics({ register: registry, prefix: 'pvblk_hypervisor_' });
    }
    snapshot = null;
    registry
      .metrics()
      .then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text))
      .catch((e: Error) =>
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${e.message}\n`),
      )
      .finally(() => (snapshot = null));
    return true;
  };
  return { registry, cpuSeconds, serve };
}
