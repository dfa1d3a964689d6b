/**
 * Trace stamps for `pvblk bench --trace`: where each request of a ring was when, in every process it
 * passes through, so the bench can break its latency into stages.
 *
 * Off unless the environment variable PVBLK_TRACE names a directory: then `processTrace` is this
 * process's recorder, else it is null and every hook in the drivers is one null test. Nothing is added
 * to any blkif byte layout or to the wire: each process stamps what it already knows — a guest its
 * (domid, ring, producer index), blkback the same key read from the request it consumed, the broker the
 * port and producer indices of the NOTIFY_IF records it routes — and the bench joins them.
 *
 * Clocks: stamps are `performance.now()` of the process (milliseconds since it started), so clocks of
 * different processes differ by seconds and must be measured. Each domain's process measures its
 * offset to the hypervisor with fences over its existing hypervisor connection, NTP-style: it notes
 * when it sent a fence and when the answer came (t0, t1), the hypervisor stamps when it handled that
 * fence (T); offset = T - (t0 + t1) / 2, within ± (t1 - t0) / 2. The bench keeps the sample with the
 * smallest round trip.
 *
 * Storage is a fixed ring of stamps (allocated once, at the first stamp): a long run keeps the latest
 * ones and memory stays flat. `kill -USR2 <pid>` makes the process probe its clock and write its stamps
 * to `<dir>/<pid>.json` (written to a temporary name, then renamed), and empties the recorder: the
 * stamps of a dump are those since the dump before.
 */
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What a stamp marks. Keys: a = ring key (domid << 16 | queue) or (domid << 16 | port), b = index, c = extra. */
export const STAMP = {
  /** Guest: a block request entered blkfront (b = request's ring index, stamped when placed). */
  guestSubmit: 1,
  /** Guest: the ring's producer index covering the request was published. */
  guestPush: 2,
  /** Guest: blkfront consumed the response. */
  guestDone: 3,
  /** Broker: the frame carrying a NOTIFY_IF arrived (a = domid << 16 | port, b = newProd, c = oldProd). */
  brokerIn: 4,
  /** Broker: the frame with what the NOTIFY_IF produced for its peer was handed to the peer's socket. */
  brokerOut: 5,
  /** Backend: blkback copied the request out of the ring. */
  backendConsume: 6,
  /** Backend: the I/O went to the disk … */
  diskStart: 7,
  /** … and came back. */
  diskDone: 8,
  /** Backend: the response was written into the ring (c = response index). */
  backendRespond: 9,
  /** Backend: the response's producer index was published. */
  backendPush: 10,
  /** Broker: a fence was handled (a = domid, b = message id): the hypervisor's half of a clock probe. */
  fence: 11,
} as const;

/** Stamps kept per process (≈ 21 bytes each). */
export const TRACE_CAPACITY = 1 << 19;

export interface ClockProbe {
  domid: number;
  id: number;
  t0: number;
  t1: number;
}

export interface TraceDump {
  pid: number;
  /** How the stamps' clock is defined. */
  clock: string;
  stamps: { kind: string; t: string; a: string; b: string; c: string };
  count: number;
  dropped: number;
  meta: Array<Record<string, number | string>>;
  probes: ClockProbe[];
}

export class TraceRecorder {
  private t: Float64Array | null = null;
  private kind: Uint8Array | null = null;
  private a: Uint32Array | null = null;
  private b: Uint32Array | null = null;
  private c: Uint32Array | null = null;
  private head = 0;
  private count = 0;
  private dropped = 0;
  private readonly meta: Array<Record<string, number | string>> = [];
  private readonly clocks: Array<() => Promise<ClockProbe>> = [];

  constructor(
    readonly dir: string,
    private readonly capacity = TRACE_CAPACITY,
  ) {}

  stamp(kind: number, a: number, b: number, c = 0, t = performance.now()): void {
    if (!this.t) {
      this.t = new Float64Array(this.capacity);
      this.kind = new Uint8Array(this.capacity);
      this.a = new Uint32Array(this.capacity);
      this.b = new Uint32Array(this.capacity);
      this.c = new Uint32Array(this.capacity);
    }
    const i = this.head;
    this.t[i] = t;
    this.kind![i] = kind;
    this.a![i] = a;
    this.b![i] = b;
    this.c![i] = c;
    this.head = (i + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
    else this.dropped++;
  }

  /** A fact the join needs (which port a ring uses, …); kept apart from the stamps, never dropped. */
  note(m: Record<string, number | string>): void {
    this.meta.push(m);
  }

  /** Registers a clock probe (a fence over a hypervisor connection), run before each dump. */
  addClock(probe: () => Promise<ClockProbe>): void {
    this.clocks.push(probe);
  }

  /** Runs the clock probes (`rounds` each, one at a time) and returns the stamps; empties the recorder. */
  async collect(rounds = 16): Promise<TraceDump> {
    const probes: ClockProbe[] = [];
    for (const p of this.clocks) {
      for (let i = 0; i < rounds; i++) {
        try {
          probes.push(await p());
        } catch {
          break; // a connection that went away has no clock to offer
        }
      }
    }
    const n = this.count;
    const start = (this.head - n + this.capacity) % this.capacity;
    const pick = <T extends Float64Array | Uint32Array | Uint8Array>(arr: T | null): string => {
      if (!arr || n === 0) return '';
      const out = new (arr.constructor as { new (len: number): T })(n);
      for (let k = 0; k < n; k++) out[k] = arr[(start + k) % this.capacity];
      return Buffer.from(out.buffer, out.byteOffset, out.byteLength).toString('base64');
    };
    const stamps = {
      kind: pick(this.kind),
      t: pick(this.t),
      a: pick(this.a),
      b: pick(this.b),
      c: pick(this.c),
    };
    const dropped = this.dropped;
    this.head = 0;
    this.count = 0;
    this.dropped = 0;
    return {
      pid: process.pid,
      clock: 'performance.now() of this process, ms since it started',
      stamps,
      count: n,
      dropped,
      meta: [...this.meta],
      probes,
    };
  }

  /** Collects and writes `<dir>/<pid>.json`; returns its path. */
  async dump(): Promise<string> {
    const d = await this.collect();
    const file = join(this.dir, `${process.pid}.json`);
    await writeFile(`${file}.tmp`, JSON.stringify(d));
    await rename(`${file}.tmp`, file);
    return file;
  }
}

/** Decodes a dump's stamps back into arrays. */
export function decodeStamps(d: TraceDump): {
  kind: Uint8Array;
  t: Float64Array;
  a: Uint32Array;
  b: Uint32Array;
  c: Uint32Array;
} {
  const buf = (s: string) => {
    const b = Buffer.from(s, 'base64');
    const copy = new ArrayBuffer(b.length);
    new Uint8Array(copy).set(b);
    return copy;
  };
  return {
    kind: new Uint8Array(buf(d.stamps.kind)),
    t: new Float64Array(buf(d.stamps.t)),
    a: new Uint32Array(buf(d.stamps.a)),
    b: new Uint32Array(buf(d.stamps.b)),
    c: new Uint32Array(buf(d.stamps.c)),
  };
}

function fromEnv(): TraceRecorder | null {
  const dir = process.env.PVBLK_TRACE;
  if (!dir) return null;
  const r = new TraceRecorder(dir);
  process.on('SIGUSR2', () => {
    void r.dump().catch((e: Error) => process.stderr.write(`pvblk: trace dump failed: ${e.message}\n`));
  });
  return r;
}

/** This process's recorder, or null when tracing is off (PVBLK_TRACE unset). */
export const processTrace: TraceRecorder | null = fromEnv();
