/**
 * The per-stage breakdown of `pvblk bench --trace`: collects every process's trace stamps
 * (@pvblk/runtime's trace.ts), puts them on the hypervisor's clock, joins them per request and
 * splits each request's life into stages.
 *
 * Collection: SIGUSR2 to the guests and the host first (each probes its clock with fences, then writes
 * its stamps), then to the hypervisor (whose stamps include those fences). Clocks: each process's
 * offset to the hypervisor is the probe with the smallest round trip, offset = T - (t0 + t1) / 2,
 * within ± (t1 - t0) / 2. Join: a request is (guest domid, queue, ring index); the broker's stamps
 * are mapped to it through the ports the drivers noted and the producer-index range of each NOTIFY_IF
 * (responses through the response index blkback noted when it pushed).
 */
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeStamps, STAMP, type TraceDump } from '@pvblk/runtime';
import { Samples } from '@pvblk/frontend';

export interface TraceTarget {
  name: string;
  pid: number;
  role: 'hypervisor' | 'host' | 'guest';
}

async function waitForFile(path: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      await stat(path);
      return;
    } catch {
      if (Date.now() > until) throw new Error(`no trace dump at ${path} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

async function dumpOne(t: TraceTarget, dir: string): Promise<TraceDump> {
  const file = join(dir, `${t.pid}.json`);
  await rm(file, { force: true });
  process.kill(t.pid, 'SIGUSR2');
  await waitForFile(file, 30_000);
  const d = JSON.parse(await readFile(file, 'utf8')) as TraceDump;
  await rm(file, { force: true });
  return d;
}

/** Dumps (and so empties) every process's recorder: domains first, then the hypervisor. */
export async function collectTraces(
  targets: TraceTarget[],
  dir: string,
): Promise<Map<TraceTarget, TraceDump>> {
  const out = new Map<TraceTarget, TraceDump>();
  const domains = targets.filter((t) => t.role !== 'hypervisor');
  const dumps = await Promise.all(domains.map((t) => dumpOne(t, dir)));
  domains.forEach((t, i) => out.set(t, dumps[i]));
  for (const t of targets.filter((x) => x.role === 'hypervisor')) out.set(t, await dumpOne(t, dir));
  return out;
}

export const STAGES = [
  'guest: submit → ring push',
  'guest → broker',
  'broker (request)',
  'broker → blkback',
  'blkback: consume → disk',
  'disk',
  'blkback: disk → response',
  'blkback: response → push',
  'blkback → broker',
  'broker (response)',
  'broker → guest completion',
] as const;

export interface ClockOffset {
  name: string;
  domid: number;
  /** Add to this process's stamps to get the hypervisor's clock, ms. */
  offsetMs: number;
  /** How far the true offset can be from offsetMs, µs. */
  uncertaintyUs: number;
  /** The NTP-style estimate alone: half the round trip of the best probe, µs. */
  probeUncertaintyUs: number;
  probes: number;
  /** Whether the causal bounds narrowed the probe's window (false: they contradicted it, kept as is). */
  narrowed: boolean;
}

export interface StageBreakdown {
  method: string;
  clocks: ClockOffset[];
  /** Requests with every stamp. */
  requests: number;
  /** Requests seen by the guests that could not be joined completely. */
  incomplete: number;
  /** Stamps a recorder had to overwrite (its ring was full). */
  dropped: Record<string, number>;
  /** Per stage: its durations, and how many came out negative (clamped to 0: clock error beyond the estimate). */
  stages: Array<{ name: string; ns: Samples; negative: number }>;
  total: Samples;
}

export const CLOCK_METHOD =
  "offsets to the hypervisor's clock measured NTP-style over each process's own hypervisor connection (a fence stamped when sent and answered there, t0 and t1, and when handled at the hypervisor, T: offset = T - (t0+t1)/2 ± (t1-t0)/2, best of 16), then narrowed by causality (a push precedes its frame's arrival at the broker, the broker's send precedes the consumer seeing it)";

/**
 * Narrows each domain's offset with the order the protocol guarantees: a guest pushed a request
 * before the broker received the frame, and consumed a response after the broker sent it; blkback
 * consumed a request after the broker sent it, and pushed a response before the broker received it.
 * Every joined request bounds the offset from both sides; the estimate moves to the middle of the
 * tightest interval that agrees with the probe's window (or stays, when they disagree).
 */
function narrowClocks(reqs: Map<string, Times>, clocks: ClockOffset[], targets: TraceTarget[]): void {
  for (const c of clocks) {
    const target = targets.find((t) => t.name === c.name);
    if (!target) continue;
    const guest = target.role === 'guest';
    let lo = -c.probeUncertaintyUs / 1000;
    let hi = c.probeUncertaintyUs / 1000;
    const mine: Times[] = [];
    for (const [k, v] of reqs) {
      if (guest && Number(k.split(':')[0]) >>> 16 !== c.domid) continue;
      mine.push(v);
      if (guest) {
        if (!Number.isNaN(v[F.bInReq] - v[F.push])) hi = Math.min(hi, v[F.bInReq] - v[F.push]);
        if (!Number.isNaN(v[F.bOutRsp] - v[F.done])) lo = Math.max(lo, v[F.bOutRsp] - v[F.done]);
      } else {
        if (!Number.isNaN(v[F.bOutReq] - v[F.consume])) lo = Math.max(lo, v[F.bOutReq] - v[F.consume]);
        if (!Number.isNaN(v[F.bInRsp] - v[F.bpush])) hi = Math.min(hi, v[F.bInRsp] - v[F.bpush]);
      }
    }
    if (lo > hi) continue;
    const delta = (lo + hi) / 2;
    const fields = guest
      ? [F.submit, F.push, F.done]
      : [F.consume, F.diskStart, F.diskDone, F.respond, F.bpush];
    for (const v of mine) for (const f of fields) v[f] += delta;
    c.offsetMs += delta;
    c.uncertaintyUs = ((hi - lo) / 2) * 1000;
    c.narrowed = true;
  }
}

const ring = (domid: number, queue: number) => ((domid << 16) | queue) >>> 0;

type Times = Float64Array;
/** Field positions in a request's time vector. */
const F = {
  submit: 0,
  push: 1,
  bInReq: 2,
  bOutReq: 3,
  consume: 4,
  diskStart: 5,
  diskDone: 6,
  respond: 7,
  bpush: 8,
  bInRsp: 9,
  bOutRsp: 10,
  done: 11,
} as const;
const NF = 12;

export function joinTraces(dumps: Map<TraceTarget, TraceDump>): StageBreakdown | { error: string } {
  const hv = [...dumps.entries()].find(([t]) => t.role === 'hypervisor');
  if (!hv) return { error: 'no hypervisor trace' };
  const hs = decodeStamps(hv[1]);
  const fences = new Map<string, number>();
  for (let i = 0; i < hs.kind.length; i++)
    if (hs.kind[i] === STAMP.fence) fences.set(`${hs.a[i]}:${hs.b[i]}`, hs.t[i]);

  const clocks: ClockOffset[] = [];
  const offsetOf = new Map<TraceTarget, number>();
  offsetOf.set(hv[0], 0);
  for (const [t, d] of dumps) {
    if (t.role === 'hypervisor') continue;
    let best: { off: number; half: number } | null = null;
    let n = 0;
    let domid = -1;
    for (const p of d.probes) {
      const T = fences.get(`${p.domid}:${p.id}`);
      if (T === undefined) continue;
      n++;
      domid = p.domid;
      const half = (p.t1 - p.t0) / 2;
      if (!best || half < best.half) best = { off: T - (p.t0 + p.t1) / 2, half };
    }
    if (!best) return { error: `no clock probe of ${t.name} reached the hypervisor's trace` };
    offsetOf.set(t, best.off);
    clocks.push({
      name: t.name,
      domid,
      offsetMs: best.off,
      uncertaintyUs: best.half * 1000,
      probeUncertaintyUs: best.half * 1000,
      probes: n,
      narrowed: false,
    });
  }

  const reqs = new Map<string, Times>();
  const get = (key: number, idx: number): Times => {
    const k = `${key}:${idx >>> 0}`;
    let v = reqs.get(k);
    if (!v) reqs.set(k, (v = new Float64Array(NF).fill(NaN)));
    return v;
  };
  const portToRing = new Map<number, number>();
  const rspToReq = new Map<string, number>();
  const dropped: Record<string, number> = {};
  for (const [t, d] of dumps) {
    dropped[t.name] = d.dropped;
    for (const m of d.meta) {
      if (m.side === 'front')
        portToRing.set(ring(Number(m.domid), Number(m.port)), ring(Number(m.domid), Number(m.queue)));
      if (m.side === 'back')
        portToRing.set(ring(Number(m.domid), Number(m.port)), ring(Number(m.frontDomid), Number(m.queue)));
    }
  }
  // domains first: their stamps name the requests; the broker's are matched to them afterwards
  const set = (v: Times, f: number, t: number) => {
    if (Number.isNaN(v[f])) v[f] = t;
  };
  let guestRequests = 0;
  for (const [t, d] of dumps) {
    if (t.role === 'hypervisor') continue;
    const off = offsetOf.get(t)!;
    const s = decodeStamps(d);
    for (let i = 0; i < s.kind.length; i++) {
      const tt = s.t[i] + off;
      const v = () => get(s.a[i], s.b[i]);
      switch (s.kind[i]) {
        case STAMP.guestSubmit:
          guestRequests++;
          set(v(), F.submit, tt);
          break;
        case STAMP.guestPush:
          set(v(), F.push, tt);
          break;
        case STAMP.guestDone:
          set(v(), F.done, tt);
          break;
        case STAMP.backendConsume:
          set(v(), F.consume, tt);
          break;
        case STAMP.diskStart:
          set(v(), F.diskStart, tt);
          break;
        case STAMP.diskDone:
          set(v(), F.diskDone, tt);
          break;
        case STAMP.backendRespond:
          set(v(), F.respond, tt);
          break;
        case STAMP.backendPush:
          set(v(), F.bpush, tt);
          rspToReq.set(`${s.a[i]}:${s.c[i]}`, s.b[i]);
          break;
      }
    }
  }
  const front = new Set<number>();
  for (const d of dumps.values())
    for (const m of d.meta) if (m.side === 'front') front.add(ring(Number(m.domid), Number(m.port)));
  for (let i = 0; i < hs.kind.length; i++) {
    const k = hs.kind[i];
    if (k !== STAMP.brokerIn && k !== STAMP.brokerOut) continue;
    const rk = portToRing.get(hs.a[i]);
    if (rk === undefined) continue;
    const isReq = front.has(hs.a[i]);
    const newProd = hs.b[i];
    const oldProd = hs.c[i];
    const n = (newProd - oldProd) >>> 0;
    if (n > 4096) continue;
    for (let j = 0; j < n; j++) {
      const idx = (oldProd + j) >>> 0;
      if (isReq) {
        set(get(rk, idx), k === STAMP.brokerIn ? F.bInReq : F.bOutReq, hs.t[i]);
      } else {
        const req = rspToReq.get(`${rk}:${idx}`);
        if (req !== undefined) set(get(rk, req), k === STAMP.brokerIn ? F.bInRsp : F.bOutRsp, hs.t[i]);
      }
    }
  }
  narrowClocks(reqs, clocks, [...dumps.keys()]);
  const stages = STAGES.map((name) => ({ name, ns: new Samples(), negative: 0 }));
  const total = new Samples();
  let complete = 0;
  for (const v of reqs.values()) {
    if (v.some((x) => Number.isNaN(x))) continue;
    complete++;
    for (let f = 0; f < NF - 1; f++) {
      const d = (v[f + 1] - v[f]) * 1e6;
      if (d < 0) stages[f].negative++;
      stages[f].ns.add(Math.max(0, d));
    }
    total.add((v[F.done] - v[F.submit]) * 1e6);
  }
  return {
    method: CLOCK_METHOD,
    clocks,
    requests: complete,
    incomplete: Math.max(0, guestRequests - complete),
    dropped,
    stages,
    total,
  };
}
