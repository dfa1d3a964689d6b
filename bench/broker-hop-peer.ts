/**
 * One domain of the broker-hop benchmark, forked by bench/broker-hop.ts (not run by hand). Role
 * `receiver` is Dom0 (the blkback side): it creates the sender's domain, maps the pages the sender
 * grants, answers requests, and also runs a plain `ws` server for the baseline. Role `sender` is the
 * DomU (the blkfront side): it grants a ring page and WINDOW data pages, issues requests and times
 * them, over the broker and over a direct WebSocket to the receiver.
 *
 * Both paths run the same ring code over a small memory interface, so the only difference measured
 * is the transport: XenClient → broker → XenClient, or one direct WebSocket carrying the same
 * messages (msgpackr frames from @pvblk/shared's encodeFrame, one frame per event-loop turn).
 *
 * Ring layout (one page): req_prod u32 @0 (sender writes), rsp_prod u32 @4 (receiver writes),
 * response slot i (16 bytes) @64 + 16 i. Request i lives in data page i % WINDOW: seq u32 @0,
 * length u32 @4, then payload bytes up to the length.
 */
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type * as WsModule from 'ws';
import { decodeClientFrame, encodeFrame, type ClientMessage } from '@pvblk/shared';
import { connectWs, type Page, type XenClient } from '@pvblk/client';
import { nextTurn, serveRpc, summarize, usSince, wsMaskImplementation, type LatencySummary } from './lib.ts';

/** `ws` is a dependency of the hypervisor package (not of the root): load the same copy it uses. */
const ws = createRequire(new URL('../packages/client/package.json', import.meta.url))(
  'ws',
) as typeof WsModule;

export const WINDOW = 32;
const RSP_OFF = 64;
const RSP_SIZE = 16;
/** Pseudo frame numbers of the baseline's messages (the bare path has no hypervisor to assign them). */
const RING_GFN = 1;
const DATA_GFN = 16;

const u32 = (v: number): Buffer => {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};

// ---------------------------------------------------------------------------------------------
// Memory as each side sees it.

interface SenderMem {
  /** Our view of the ring page (responses arrive here). */
  readonly ring: Buffer;
  writeRing(off: number, data: Buffer): void;
  writeData(slot: number, payload: Buffer): void;
  notify(): void;
  onNotify(cb: () => void): void;
  /** WebSocket frames this side has sent and received so far. */
  frames(): { sent: number; received: number };
}

interface ReceiverMem {
  readonly ring: Buffer;
  data(slot: number): Buffer;
  writeRing(off: number, data: Buffer): void;
  notify(): void;
  onNotify(cb: () => void): void;
}

/**
 * The frontend half of the ring: pushes requests, consumes responses. Requests written in one turn
 * and a notification go out in one frame (XenClient's rule, mirrored by TurnBatcher on the bare path).
 */
class RingSender {
  reqProd = 0;
  rspCons = 0;
  errors = 0;
  notifies = 0;
  private waiters: Array<{ until: number; resolve: () => void }> = [];

  constructor(private readonly mem: SenderMem) {
    mem.onNotify(() => this.consume());
  }

  get inflight(): number {
    return this.reqProd - this.rspCons;
  }

  /** Puts one request in the next slot and publishes req_prod; no notification. */
  push(template: Buffer): void {
    if (this.inflight >= WINDOW) throw new Error('ring full');
    const seq = this.reqProd;
    template.writeUInt32LE(seq >>> 0, 0);
    template.writeUInt32LE(template.length, 4);
    this.mem.writeData(seq % WINDOW, template); // copies, as a page write does
    this.reqProd++;
    this.mem.writeRing(0, u32(this.reqProd));
  }

  notify(): void {
    this.notifies++;
    this.mem.notify();
  }

  frames(): { sent: number; received: number } {
    return this.mem.frames();
  }

  /** Resolves once `count` responses in total have been consumed. */
  until(count: number): Promise<void> {
    if (this.rspCons >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ until: count, resolve }));
  }

  private consume(): void {
    const prod = this.mem.ring.readUInt32LE(4);
    while (this.rspCons !== prod) {
      const slot = this.rspCons % WINDOW;
      if (this.mem.ring.readUInt32LE(RSP_OFF + RSP_SIZE * slot) !== this.rspCons >>> 0) this.errors++;
      this.rspCons++;
    }
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => w.until <= this.rspCons);
    this.waiters = this.waiters.filter((w) => w.until > this.rspCons);
    for (const w of ready) w.resolve();
  }
}

/** The backend half: on each notification, answers every request published since the last one. */
class RingReceiver {
  reqCons = 0;
  errors = 0;
  handled = 0;
  private readonly scratch = Buffer.alloc(4096);
  private readonly reply = Buffer.alloc(RSP_SIZE);

  constructor(private readonly mem: ReceiverMem) {
    mem.onNotify(() => this.serve());
  }

  private serve(): void {
    const prod = this.mem.ring.readUInt32LE(0);
    if (prod === this.reqCons) return;
    while (this.reqCons !== prod) {
      const slot = this.reqCons % WINDOW;
      const page = this.mem.data(slot);
      const seq = page.readUInt32LE(0);
      const len = page.readUInt32LE(4);
      if (seq !== this.reqCons >>> 0 || len < 8 || len > page.length) this.errors++;
      else page.copy(this.scratch, 0, 0, len); // "read it": copy the payload out, as a backend would
      this.reply.writeUInt32LE(seq, 0);
      this.reply.writeUInt32LE(0, 4); // status: BLKIF_RSP_OKAY
      this.reply.writeUInt32LE(len, 8);
      this.reply.writeUInt32LE(this.scratch[len - 1] ?? 0, 12);
      this.mem.writeRing(RSP_OFF + RSP_SIZE * slot, this.reply);
      this.reqCons++;
      this.handled++;
    }
    this.mem.writeRing(4, u32(this.reqCons));
    this.mem.notify();
  }
}

// ---------------------------------------------------------------------------------------------
// The bare path: the same messages, one WebSocket, no broker.

/** What XenClient does with outbound messages: everything queued in one turn → one frame. */
class TurnBatcher {
  frames = 0;
  private q: ClientMessage[] = [];
  private scheduled = false;
  constructor(private readonly socket: WsModule.WebSocket) {}

  push(m: ClientMessage): void {
    // merge a write continuing the previous one to the same page, as XenClient does
    const last = this.q[this.q.length - 1];
    if (
      last &&
      last.t === 'mw' &&
      m.t === 'mw' &&
      last.gfn === m.gfn &&
      last.off + last.data.length === m.off
    ) {
      last.data = Buffer.concat([last.data, m.data]);
      return;
    }
    this.q.push(m);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    const q = this.q;
    this.q = [];
    if (q.length && this.socket.readyState === ws.WebSocket.OPEN) {
      this.frames++;
      this.socket.send(encodeFrame(q));
    }
  }
}

/** Memory over a direct socket: our writes are sent as `mw` messages, the peer's are applied here. */
function bareMemory(socket: WsModule.WebSocket): SenderMem & ReceiverMem {
  const out = new TurnBatcher(socket);
  const ring = Buffer.alloc(4096);
  const pages = Array.from({ length: WINDOW }, () => Buffer.alloc(4096));
  let notifyCb: () => void = () => {};
  let received = 0;
  socket.on('message', (data: Buffer) => {
    received++;
    const d = decodeClientFrame(data); // the same decoding and validation the broker applies
    if (!d.ok) throw new Error(d.error);
    for (const m of d.messages) {
      if (m.t === 'mw') {
        if (m.gfn === RING_GFN) ring.set(m.data, m.off);
        else pages[m.gfn - DATA_GFN].set(m.data, m.off);
      } else if (m.t === 'ev_send') notifyCb();
    }
  });
  return {
    ring,
    data: (slot) => pages[slot],
    writeRing: (off, data) => {
      ring.set(data, off);
      out.push({ t: 'mw', gfn: RING_GFN, off, data: Buffer.from(data) });
    },
    writeData: (slot, payload) => {
      pages[slot].set(payload, 0);
      out.push({ t: 'mw', gfn: DATA_GFN + slot, off: 0, data: Buffer.from(payload) });
    },
    notify: () => out.push({ t: 'ev_send', port: 1 }),
    onNotify: (cb) => (notifyCb = cb),
    frames: () => ({ sent: out.frames, received }),
  };
}

// ---------------------------------------------------------------------------------------------
// Measurements (sender side).

function template(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 131 + 7) & 0xff;
  return b;
}

async function measureRtt(r: RingSender, size: number, n: number): Promise<LatencySummary> {
  const t = template(size);
  const samples: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    r.push(t);
    r.notify();
    await r.until(r.reqProd);
    samples[i] = usSince(t0);
  }
  return summarize(samples);
}

interface Throughput {
  msgsPerSec: number;
  seconds: number;
  /** Requests per notification the sender issued. */
  perNotify: number;
  /** Requests per WebSocket frame the sender sent, and responses per frame it received. */
  perFrameOut: number;
  perFrameIn: number;
}

/**
 * `n` requests with up to WINDOW in flight. Unbatched: each request and its notification in its own
 * event-loop turn (one frame each). Batched: every free slot is filled, then one notification.
 */
async function measureThroughput(
  r: RingSender,
  size: number,
  n: number,
  batched: boolean,
): Promise<Throughput> {
  const t = template(size);
  const start = r.reqProd;
  const end = start + n;
  const notifies0 = r.notifies;
  const frames0 = r.frames();
  const t0 = process.hrtime.bigint();
  if (!batched) {
    while (r.reqProd < end) {
      if (r.inflight >= WINDOW) await r.until(r.rspCons + 1);
      r.push(t);
      r.notify();
      await nextTurn();
    }
  } else {
    while (r.rspCons < end) {
      const free = Math.min(WINDOW - r.inflight, end - r.reqProd);
      if (free > 0) {
        for (let k = 0; k < free; k++) r.push(t);
        r.notify();
      }
      await r.until(r.rspCons + 1);
    }
  }
  await r.until(end);
  const seconds = usSince(t0) / 1e6;
  const frames = r.frames();
  return {
    msgsPerSec: n / seconds,
    seconds,
    perNotify: n / (r.notifies - notifies0),
    perFrameOut: n / (frames.sent - frames0.sent),
    perFrameIn: n / (frames.received - frames0.received),
  };
}

// ---------------------------------------------------------------------------------------------
// Roles.

const role = process.argv[2];
let xc: XenClient | null = null;
let brokerRing: RingSender | null = null;
let bareRing: RingSender | null = null;
let brokerRecv: RingReceiver | null = null;
let bareRecv: RingReceiver | null = null;
/** Receiver only: pages of the sender's grants, kept for the grant-map measurement. */
let senderDomid = -1;
let dataRefs: number[] = [];

const ring = (path: string): RingSender => {
  const r = path === 'broker' ? brokerRing : bareRing;
  if (!r) throw new Error(`${path} path is not set up`);
  return r;
};

if (role === 'receiver') {
  serveRpc({
    /** Connects as Dom0, creates the sender's domain, opens an unbound port, starts the bare server. */
    init: async (a: { url: string; secret: string }) => {
      xc = await connectWs(a.url, { credential: a.secret, retryForMs: 5000 });
      const dom = await xc.domctl.create('bench-sender');
      senderDomid = dom.domid;
      const port = await xc.evtchn.allocUnbound(dom.domid);
      const wss = new ws.WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
      await new Promise<void>((res) => wss.once('listening', () => res()));
      wss.on('connection', (socket) => {
        bareRecv = new RingReceiver(bareMemory(socket));
      });
      const bareUrl = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`;
      return { credential: dom.credential, domid: dom.domid, port, bareUrl, mask: wsMaskImplementation() };
    },
    /** Maps the sender's ring (writable) and data pages (read-only) once: persistent grants. */
    attach: async (a: { ringRef: number; dataRefs: number[]; port: number }) => {
      const c = xc!;
      dataRefs = a.dataRefs;
      const maps = await c.gnttab.map([
        { dom: senderDomid, ref: a.ringRef, readonly: false },
        ...a.dataRefs.map((ref) => ({ dom: senderDomid, ref, readonly: true })),
      ]);
      const bad = maps.findIndex((m) => !m.page);
      if (bad >= 0) throw new Error(`map of grant ${bad} failed with status ${maps[bad].status}`);
      const ringPage = maps[0].page as Page;
      const data = maps.slice(1).map((m) => m.page as Page);
      brokerRecv = new RingReceiver({
        ring: ringPage.buf,
        data: (slot) => data[slot].buf,
        writeRing: (off, bytes) => ringPage.write(off, bytes),
        notify: () => c.evtchn.send(a.port),
        onNotify: (cb) => c.evtchn.onEvent(a.port, cb),
      });
      return null;
    },
    /** A grant map per request instead of a persistent mapping: map a 4 KiB page, unmap later. */
    grantMap: async (a: { n: number }) => {
      const c = xc!;
      const samples: number[] = [];
      for (let i = 0; i < a.n; i++) {
        const ref = dataRefs[i % dataRefs.length];
        const t0 = process.hrtime.bigint();
        const [m] = await c.gnttab.map([{ dom: senderDomid, ref, readonly: true }]);
        samples.push(usSince(t0));
        if (!m.page) throw new Error(`grant map failed with status ${m.status}`);
        c.gnttab.unmapAsync([m.page]); // travels with the next map, as blkback's deferred unmaps do
      }
      return summarize(samples);
    },
    stats: () => ({
      broker: { handled: brokerRecv?.handled ?? 0, errors: brokerRecv?.errors ?? 0 },
      bare: { handled: bareRecv?.handled ?? 0, errors: bareRecv?.errors ?? 0 },
      client: xc?.stats,
    }),
  });
} else if (role === 'sender') {
  serveRpc({
    /** Connects as the DomU, grants the ring and data pages to Dom0, binds the event channel. */
    init: async (a: { url: string; credential: string; remotePort: number }) => {
      const c = (xc = await connectWs(a.url, { credential: a.credential, retryForMs: 5000 }));
      const ringPage = c.allocPage();
      const pages = Array.from({ length: WINDOW }, () => c.allocPage());
      const ringRef = c.gnttab.grantAccess(ringPage, 0, false);
      const refs = pages.map((p) => c.gnttab.grantAccess(p, 0, true));
      const port = await c.evtchn.bindInterdomain(0, a.remotePort);
      brokerRing = new RingSender({
        ring: ringPage.buf,
        writeRing: (off, bytes) => ringPage.write(off, bytes),
        writeData: (slot, payload) => pages[slot].write(0, payload),
        notify: () => c.evtchn.send(port),
        onNotify: (cb) => c.evtchn.onEvent(port, cb),
        frames: () => ({ sent: c.stats.framesSent, received: c.stats.framesReceived }),
      });
      await c.fence(); // the grants are in place before Dom0 is told the refs
      return { ringRef, dataRefs: refs, port, mask: wsMaskImplementation() };
    },
    bareConnect: async (a: { url: string }) => {
      const socket = new ws.WebSocket(a.url, { perMessageDeflate: false });
      socket.binaryType = 'nodebuffer';
      await new Promise<void>((res, rej) => {
        socket.once('open', () => res());
        socket.once('error', rej);
      });
      bareRing = new RingSender(bareMemory(socket));
      return null;
    },
    rtt: (a: { path: string; size: number; n: number }) => measureRtt(ring(a.path), a.size, a.n),
    throughput: (a: { path: string; size: number; n: number; batched: boolean }) =>
      measureThroughput(ring(a.path), a.size, a.n, a.batched),
    fence: async (a: { n: number }) => {
      const samples: number[] = [];
      for (let i = 0; i < a.n; i++) {
        const t0 = process.hrtime.bigint();
        await xc!.fence();
        samples.push(usSince(t0));
      }
      return summarize(samples);
    },
    stats: () => ({
      broker: { errors: brokerRing?.errors ?? 0, completed: brokerRing?.rspCons ?? 0 },
      bare: { errors: bareRing?.errors ?? 0, completed: bareRing?.rspCons ?? 0 },
      client: xc?.stats,
    }),
  });
} else {
  console.error('usage: broker-hop-peer.ts sender|receiver (forked by bench/broker-hop.ts)');
  process.exit(2);
}
