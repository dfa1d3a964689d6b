/**
 * Prometheus /metrics of the hypervisor and the host, parsed by a Prometheus text-format parser
 * (parse-prometheus-text-format) and cross-checked against what the same processes report elsewhere:
 * the hypervisor's /status, the host's GET /guests. Operator only: the Dom0 secret at the hypervisor,
 * the operator token at the host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error the parser ships no type declarations
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { deriveGuestToken } from '@pvblk/runtime';
import type { BlkbackStats } from '@pvblk/backend';
import { SECRETS, startSystem } from './helpers.ts';
import { api, sh } from './blkif-peers.ts';

interface Family {
  name: string;
  type: string;
  metrics: Array<{
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }>;
}
const parse = (text: string) => parsePrometheusTextFormat(text) as Family[];

type System = Awaited<ReturnType<typeof startSystem>>;
let sys: System;
let domid: number;
let hvHttp: string;

const get = (url: string, token?: string) =>
  fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });

beforeAll(async () => {
  sys = await startSystem();
  const g = await sys.guest('guest');
  domid = Number((await g.waitFor((r) => r.event === 'ready')).domid);
  hvHttp = new URL(sys.url.replace(/^ws:/, 'http:')).origin;
  // traffic of every kind: writes, reads, a flush
  const io = await sh(
    g.socket,
    'dd if=/dev/urandom of=/dev/xvda bs=4096 count=64 oflag=direct status=none && dd if=/dev/xvda of=/dev/null bs=4096 count=32 iflag=direct status=none && sync',
  );
  expect(io.code).toBe(0);
});
afterAll(async () => {
  await sys?.stop();
});

const family = (fams: Family[], name: string) => {
  const f = fams.find((x) => x.name === name);
  if (!f) throw new Error(`no metric ${name}`);
  return f;
};
const valueOf = (fams: Family[], name: string, labels: Record<string, string>) => {
  const m = family(fams, name).metrics.find((x) =>
    Object.entries(labels).every(([k, v]) => x.labels?.[k] === v),
  );
  if (!m) throw new Error(`no ${name}${JSON.stringify(labels)}`);
  return Number(m.value);
};

describe("the hypervisor's /metrics", () => {
  it('needs the Dom0 secret: 401 without it, with the operator token, with a guest token', async () => {
    expect((await get(`${hvHttp}/metrics`)).status).toBe(401);
    expect((await get(`${hvHttp}/metrics`, SECRETS.PVBLK_TOOLSTACK_TOKEN)).status).toBe(401);
    expect(
      (await get(`${hvHttp}/metrics`, deriveGuestToken(SECRETS.PVBLK_TOOLSTACK_TOKEN, 'guest'))).status,
    ).toBe(401);
  });

  it('parses; per-domain gauges equal /status; the hypercall histogram counts what the message counters count', async () => {
    const res = await get(`${hvHttp}/metrics`, SECRETS.PVBLK_DOM0_SECRET);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    const fams = parse(text);
    const status = (await (await get(`${hvHttp}/status`, SECRETS.PVBLK_DOM0_SECRET)).json()) as {
      domains: Array<{
        domid: number;
        name: string;
        grants: number;
        mappings: number;
        sharedFrames: number;
        ports: number;
        xenstore: { nodes: number; watches: number };
        memory: { sharedFrameBytes: number };
        cpuSeconds: number;
        stats: { calls: number; fences: number };
      }>;
      xenstore: { nodes: number };
    };
    expect(valueOf(fams, 'pvblk_domains', {})).toBe(status.domains.length);
    expect(valueOf(fams, 'pvblk_xenstore_nodes', {})).toBe(status.xenstore.nodes);
    for (const d of status.domains) {
      const l = { domid: String(d.domid), name: d.name };
      expect(valueOf(fams, 'pvblk_domain_grants', l)).toBe(d.grants);
      expect(valueOf(fams, 'pvblk_domain_mappings', l)).toBe(d.mappings);
      expect(valueOf(fams, 'pvblk_domain_shared_frames', l)).toBe(d.sharedFrames);
      expect(valueOf(fams, 'pvblk_domain_shared_frame_bytes', l)).toBe(d.memory.sharedFrameBytes);
      expect(valueOf(fams, 'pvblk_domain_evtchn_ports', l)).toBe(d.ports);
      expect(valueOf(fams, 'pvblk_domain_xenstore_nodes', l)).toBe(d.xenstore.nodes);
      // /status came after the scrape: the time can only have grown
      expect(d.cpuSeconds).toBeGreaterThanOrEqual(valueOf(fams, 'pvblk_domain_cpu_seconds_total', l));
      // so can the calls it answered (the guest is idle; Dom0's toolstack may not be)
      expect(d.stats.calls).toBeGreaterThanOrEqual(valueOf(fams, 'pvblk_domain_calls_total', l));
      expect(d.stats.fences).toBeGreaterThanOrEqual(valueOf(fams, 'pvblk_domain_fences_total', l));
    }
    // every domain got here by hypercalls: hello's answer aside, at least its XenStore reads
    expect(
      valueOf(fams, 'pvblk_domain_calls_total', { domid: String(domid), name: 'guest' }),
    ).toBeGreaterThan(0);
    // the guest is up with its ring granted and mapped by Dom0
    const guest = { domid: String(domid), name: 'guest' };
    expect(valueOf(fams, 'pvblk_domain_grants', guest)).toBeGreaterThan(0);
    expect(valueOf(fams, 'pvblk_domain_mappings', { domid: '0', name: 'Domain-0' })).toBeGreaterThan(0);
    // one scrape is one snapshot: each type's histogram count is that type's message count. The
    // parser folds a histogram into one series (prom2json's shape), so each series is checked on its
    // own, and the labelled samples are read as plain samples
    const hist = family(fams, 'pvblk_hypercall_duration_seconds');
    expect(hist.type).toBe('HISTOGRAM');
    const raw = parse(
      text.replace(
        '# TYPE pvblk_hypercall_duration_seconds histogram',
        '# TYPE pvblk_hypercall_duration_seconds untyped',
      ),
    );
    // (each labelled series comes out as a family of its own name, once per series)
    const counts = raw
      .filter((f) => f.name === 'pvblk_hypercall_duration_seconds_count')
      .flatMap((f) => f.metrics);
    expect(counts.length).toBeGreaterThan(3);
    for (const c of counts) {
      const type = c.labels!.type;
      expect(Number(c.value)).toBe(valueOf(fams, 'pvblk_messages_received_total', { type }));
      // that type's series alone, without its label: the shape the parser reads as a histogram
      const series = text
        .split('\n')
        .filter((l) => l.includes(`{type="${type}"`))
        .map((l) => l.replace(`{type="${type}",`, '{').replace(`{type="${type}"}`, ''));
      const one = family(
        parse(['# TYPE pvblk_hypercall_duration_seconds histogram', ...series, ''].join('\n')),
        'pvblk_hypercall_duration_seconds',
      );
      expect(one.type).toBe('HISTOGRAM');
      const m = one.metrics[0];
      expect(m.count).toBe(c.value);
      expect(m.buckets!['+Inf']).toBe(c.value);
      const cumulative = Object.values(m.buckets!).map(Number);
      expect([...cumulative].sort((a, b) => a - b)).toEqual(cumulative);
    }
    for (const f of fams) {
      expect(f.name).toMatch(/^pvblk_[a-z0-9_]+$/);
      if (f.type === 'COUNTER') expect(f.name).toMatch(/_total$/);
    }
  });
});

describe("the host's /metrics", () => {
  it('operator only: 401 without a token, 403 with a guest token', async () => {
    expect((await get(`${sys.api}/metrics`)).status).toBe(401);
    expect(
      (await get(`${sys.api}/metrics`, deriveGuestToken(SECRETS.PVBLK_TOOLSTACK_TOKEN, 'guest'))).status,
    ).toBe(403);
  });

  it("blkback's counters per vbd equal GET /guests; PI errors by layer; the ring's occupancy and size", async () => {
    const res = await get(`${sys.api}/metrics`, SECRETS.PVBLK_TOOLSTACK_TOKEN);
    expect(res.status).toBe(200);
    const fams = parse(await res.text());
    const guests = await api<{ vbds: Record<string, BlkbackStats> }>(sys.api, 'GET', '/guests');
    const stats = guests.vbds[`${domid}/51712`];
    const l = { domid: String(domid), devid: '51712' };
    for (const k of ['oo_req', 'rd_req', 'wr_req', 'f_req', 'ds_req', 'rd_sect', 'wr_sect'] as const) {
      const f = family(fams, `pvblk_blkback_${k}_total`);
      expect(f.type).toBe('COUNTER');
      expect(valueOf(fams, f.name, l)).toBe(stats[k]);
    }
    expect(stats.wr_req).toBeGreaterThanOrEqual(64);
    expect(stats.wr_sect).toBeGreaterThanOrEqual(64 * 8);
    expect(stats.rd_req).toBeGreaterThanOrEqual(32);
    expect(valueOf(fams, 'pvblk_pi_errors_total', { ...l, layer: 'backend' })).toBe(stats.pi_caught_backend);
    expect(valueOf(fams, 'pvblk_pi_errors_total', { ...l, layer: 'device' })).toBe(stats.pi_caught_device);
    expect(valueOf(fams, 'pvblk_blkback_ring_slots', { ...l, ring: '0' })).toBe(32);
    expect(valueOf(fams, 'pvblk_blkback_ring_occupancy', { ...l, ring: '0' })).toBe(0); // idle: all answered
    expect(valueOf(fams, 'pvblk_vbd_state', { ...l, state: 'Connected' })).toBe(1);
    expect(valueOf(fams, 'pvblk_scsi_debug_commands_total', { disk: 'sdg' })).toBeGreaterThan(0);
    expect(valueOf(fams, 'pvblk_disk_sectors', { disk: 'sdg', guest: 'guest' })).toBe(16384);
    for (const f of fams.filter((x) => x.name.startsWith('pvblk_') && !x.name.startsWith('pvblk_host_'))) {
      if (f.type === 'COUNTER') expect(f.name).toMatch(/_total$/);
    }
    expect(fams.some((f) => f.name === 'pvblk_host_process_cpu_seconds_total')).toBe(true);
  });
});

describe("the operator tools' routes refuse a guest", () => {
  it('every one answers 403 to a guest token and 401 without a token; nothing is attached or written', async () => {
    const guestToken = deriveGuestToken(SECRETS.PVBLK_TOOLSTACK_TOKEN, 'guest');
    const routes: Array<[string, string, unknown?]> = [
      ['GET', '/domains'],
      ['GET', `/guests/${domid}/vbds`],
      ['POST', `/guests/${domid}/vbds`, { spec: ['vdev=xvdb, target=scsi_debug:'] }],
      ['DELETE', `/guests/${domid}/vbds/xvda`],
      ['POST', '/xenstore', { mode: 'write', pairs: [['/tool/by-guest', '1']] }],
      ['POST', '/xenstore', { mode: 'ls', path: '/' }],
      ['GET', '/xenstore/watch?path=/tool'],
      ['GET', '/metrics'],
      ['GET', '/controls'],
      ['POST', '/guests', { name: 'guest', vbds: [['vdev=xvdb, target=scsi_debug:']] }],
    ];
    for (const [method, path, body] of routes) {
      const call = (token?: string) =>
        fetch(`${sys.api}${path}`, {
          method,
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            'content-type': 'application/json',
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      const asGuest = await call(guestToken);
      expect([method, path, asGuest.status]).toEqual([method, path, 403]);
      expect(((await asGuest.json()) as { error: string }).error).toBe('EACCES');
      expect([method, path, (await call()).status]).toEqual([method, path, 401]);
    }
    const ops = await api<{ mode: string; failed?: unknown }>(sys.api, 'POST', '/xenstore', {
      mode: 'exists',
      paths: ['/tool/by-guest'],
    });
    expect(ops.failed).toBeDefined();
    const vbds = await api<Array<{ devid: number }>>(sys.api, 'GET', `/guests/${domid}/vbds`);
    expect(vbds.map((v) => v.devid)).toEqual([51712]);
  });
});
