/**
 * The baseline of `pvblk bench --baseline`: a plain relay of the same bytes over the same three
 * process hops and the same codec, measured in the same run — what the transport alone costs.
 *
 *   client (guest's place) ──ws──▶ relay (broker's place) ──ws──▶ server (Dom0's place)
 *
 * All three are `pvblk bench --relay-role=…` processes on loopback, frames are the broker's wire
 * frames (@pvblk/shared's FrameWriter / decode*Frame: a version byte and binary records), and every
 * process sends what it produced in one event-loop turn as one frame, as XenClient and the broker do.
 * A request is a 16-byte descriptor write, the payload's page writes (writes: bs bytes in 4 KiB
 * records), and an event; the server copies the payload out, answers with the payload (reads) and a
 * 16-byte response, and an event. The relay decodes each frame, re-addresses its records (client
 * number in the top byte of the frame or port, as the broker maps grants and ports) and re-encodes
 * them for the other side: the routing a broker cannot avoid, and nothing else — no grant table, no
 * ring, no notification suppression, no XenStore. The client keeps `iodepth` requests in flight and
 * refills them once per burst of completions, as the guest's fio does.
 */
import { WebSocket, WebSocketServer } from 'ws';
import {
  decodeClientFrame,
  decodeHypervisorFrame,
  FrameWriter,
  mulberry32,
  WIRE_MAX_FRAME,
  type ClientMessage,
  type HypervisorMessage,
  type WireMessage,
} from '@pvblk/shared';
import { Samples, type RawSamples } from '@pvblk/frontend';
import { wsTransport, WIRE_CLIENT_OPTIONS, type ClientTransport } from '@pvblk/client';
import { onShutdown } from '@pvblk/runtime';
import { wsFrameTransport } from '@pvblk/hypervisor';

const PAGE = 4096;
const DESC = 16;
/** Data frames of a slot start here (descriptor frames are the slot numbers). */
const DATA_BASE = 1 << 16;
const CLIENT_SHIFT = 24;
const LOW = (1 << CLIENT_SHIFT) - 1;
/** Client numbers fit in the top byte of a frame number, below the sign bit. */
const MAX_CLIENT = (1 << (31 - CLIENT_SHIFT)) - 1;
/** A slot's data frames are 256 apart: the largest request the relay carries. */
export const RELAY_MAX_BS = 256 * PAGE;

export interface RelayClientSpec {
  url: string;
  client: number;
  bs: number;
  /** Requests in flight (iodepth × numjobs of the pvblk job). */
  depth: number;
  /** Percentage of reads. */
  readPct: number;
  /** Run this long (ms; each slice, with several) … */
  runtimeMs: number | null;
  /** … or this many requests. */
  ios: number | null;
  warmupMs: number;
  seed: number;
  /**
   * Measured runs, each started by a `relay-go` message from the bench (`--baseline-slices`): after
   * its warm-up the client says `warm` and waits; the bench runs pvblk's slices between the relay's.
   */
  slices: number;
}

/** What the bench sends a relay client to start its next measured slice. */
export const RELAY_GO = 'relay-go';

export interface RelayResult {
  client: number;
  ios: number;
  reads: number;
  writes: number;
  bytes: number;
  runtimeMs: number;
  /** Issue → response event, ns. */
  rtt: RawSamples;
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** CPU seconds this client used over the measured run, in user mode and in the kernel. */
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
}

/** Hands a frame to the socket and says when its buffer may carry a later frame. */
type Put = (frame: Buffer, reusable: () => void) => void;

/** A client's side, through pvblk's client transport: the buffer is free if the socket took it all. */
function clientPut(t: ClientTransport): Put {
  return (f, reusable) => {
    if (t.send(f)) reusable();
  };
}

/** The relay's side of a connection, through the broker's transport: free once the write calls back. */
function relayPut(ws: WebSocket): Put {
  const t = wsFrameTransport(ws, 'relay');
  return (f, reusable) =>
    t.sendFrame(f, () => {
      if (t.releasesFrames) reusable();
    });
}

/**
 * A WebSocket whose outbound messages of one turn become one frame (or a few, below the target size),
 * sent through the transports XenClient and the broker use, so that frame buffers are reused as theirs.
 */
class Sender {
  private readonly out = new FrameWriter();
  private scheduled = false;
  frames = 0;
  bytes = 0;

  constructor(private readonly put: Put) {}

  queue(m: WireMessage): void {
    this.out.add(m);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    for (const f of this.out.take()) {
      this.frames++;
      this.bytes += f.length;
      this.put(f, () => this.out.recycle(f));
    }
  }
}

/**
 * Hands the end of the relay or its server to the runtime's shutdown, as pvblk's own processes do:
 * SIGTERM from the bench, Ctrl-C, a hang-up, or the bench itself gone — its IPC channel closes
 * however it died (SIGKILL too), and a process waiting for SIGTERM alone would run on with nobody
 * left to send it. `close` runs, then the process exits.
 */
function endOnShutdown(close: () => void): Promise<never> {
  onShutdown(async () => close());
  return new Promise<never>(() => {});
}

function ready(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), ...o }) + '\n');
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    // the domains' own client options: the same frames, unmasked copies and all
    const ws = new WebSocket(url, WIRE_CLIENT_OPTIONS);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** The relay: decode, re-address, re-encode. */
export async function runRelay(): Promise<void> {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: false,
    maxPayload: WIRE_MAX_FRAME,
  });
  let server: Sender | null = null;
  const clients = new Map<number, Sender>();
  wss.on('connection', (ws, req) => {
    const url = req.url ?? '';
    if (url === '/server') {
      const s = new Sender(relayPut(ws));
      server = s;
      ws.on('message', (data: Buffer) => {
        const d = decodeClientFrame(data);
        if (!d.ok) return;
        for (const m of d.messages) {
          if (m.t === 'mw')
            clients
              .get(m.gfn >>> CLIENT_SHIFT)
              ?.queue({ t: 'mw', gfn: m.gfn & LOW, off: m.off, data: m.data });
          else if (m.t === 'ev_send')
            clients.get(m.port >>> CLIENT_SHIFT)?.queue({ t: 'ev', port: m.port & LOW });
        }
      });
      return;
    }
    const n = Number(/^\/client\/(\d+)$/.exec(url)?.[1] ?? NaN);
    if (!Number.isInteger(n) || n > MAX_CLIENT) return ws.close(4400, 'unknown path');
    if (clients.has(n)) return ws.close(4409, `client ${n} is connected already`);
    const sender = new Sender(relayPut(ws));
    clients.set(n, sender);
    ws.on('close', () => {
      if (clients.get(n) === sender) clients.delete(n);
    });
    ws.on('message', (data: Buffer) => {
      const d = decodeClientFrame(data);
      if (!d.ok || !server) return;
      // a client's frame numbers stay in its own range: the top byte is the router's
      for (const m of d.messages) {
        if (m.t === 'mw')
          server.queue({ t: 'gw', handle: (n << CLIENT_SHIFT) | (m.gfn & LOW), off: m.off, data: m.data });
        else if (m.t === 'ev_send') server.queue({ t: 'ev', port: (n << CLIENT_SHIFT) | (m.port & LOW) });
      }
    });
  });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const addr = wss.address() as { port: number };
  ready({ event: 'ready', url: `ws://127.0.0.1:${addr.port}`, msg: 'relay listening' });
  await endOnShutdown(() => wss.close());
}

/** The server: takes the payload, answers. */
export async function runRelayServer(relayUrl: string): Promise<void> {
  const ws = await open(`${relayUrl}/server`);
  const t = wsTransport(ws, 'relay');
  const out = new Sender(clientPut(t));
  const desc = new Map<number, Buffer>();
  const scratch = Buffer.alloc(PAGE);
  const payload = Buffer.alloc(PAGE, 0x5a);
  const rsp = Buffer.alloc(DESC);
  t.onFrame((data) => {
    const d = decodeHypervisorFrame(data);
    if (!d.ok) return;
    for (const m of d.messages as HypervisorMessage[]) {
      if (m.t === 'gw') {
        const low = m.handle & LOW;
        // the descriptor is kept; payload is copied out, as a backend reads it
        if (low < DATA_BASE) desc.set(m.handle, Buffer.from(m.data));
        else if (m.data.length <= PAGE) scratch.set(m.data);
      } else if (m.t === 'ev') {
        const dsc = desc.get(m.port);
        if (!dsc) continue;
        const read = dsc[0] === 0;
        const len = dsc.readUInt32LE(4);
        const client = m.port & ~LOW;
        const slot = m.port & LOW;
        if (read) {
          const pages = Math.ceil(len / PAGE);
          for (let k = 0; k < pages; k++) {
            const gfn = (client | (DATA_BASE + slot * 256 + k)) >>> 0;
            out.queue({ t: 'mw', gfn, off: 0, data: payload.subarray(0, Math.min(PAGE, len - k * PAGE)) });
          }
        }
        dsc.copy(rsp, 0, 0, DESC);
        out.queue({ t: 'mw', gfn: m.port >>> 0, off: 0, data: Buffer.from(rsp) });
        out.queue({ t: 'ev_send', port: m.port >>> 0 });
      }
    }
  });
  ready({ event: 'ready', msg: 'relay server connected' });
  await endOnShutdown(() => ws.close());
}

/**
 * The client: keeps `depth` requests in flight and times each; after its warm-up, runs one measured
 * slice per `relay-go` from the bench, printing a result record for each, then exits.
 */
export async function runRelayClient(spec: RelayClientSpec): Promise<void> {
  if (spec.depth * 256 + DATA_BASE > LOW) throw new Error('relay: too many requests in flight');
  if (spec.bs > RELAY_MAX_BS) throw new Error(`relay: bs ${spec.bs} is above ${RELAY_MAX_BS} bytes`);
  if (!Number.isInteger(spec.client) || spec.client < 0 || spec.client > MAX_CLIENT)
    throw new Error(`relay: bad client number ${spec.client}`);
  if (!Number.isInteger(spec.slices) || spec.slices < 1)
    throw new Error(`relay: bad slice count ${spec.slices}`);
  const ws = await open(`${spec.url}/client/${spec.client}`);
  const t = wsTransport(ws, 'relay');
  const out = new Sender(clientPut(t));
  const rand = mulberry32(spec.seed);
  const pages = Math.ceil(spec.bs / PAGE);
  const bufs = Array.from({ length: spec.depth }, () => {
    const b = Buffer.alloc(spec.bs);
    for (let i = 0; i + 4 <= b.length; i += 4) b.writeUInt32LE((rand() * 2 ** 32) >>> 0, i);
    return b;
  });
  const readBuf = Buffer.alloc(spec.bs);
  const issuedAt = new Float64Array(spec.depth);
  const isRead = new Uint8Array(spec.depth);
  const free: number[] = [];
  for (let s = spec.depth - 1; s >= 0; s--) free.push(s);
  let rtt = new Samples();
  let measuring = false;
  let stopAt = Infinity;
  let target = Infinity;
  let ios = 0;
  let reads = 0;
  let writes = 0;
  let bytes = 0;
  let inflight = 0;
  let framesReceived = 0;
  let bytesReceived = 0;
  let pumpQueued = false;
  let onIdle: (() => void) | null = null;
  let issuedMeasured = 0;
  let tMeasure = 0;

  const issue = (slot: number, t: number) => {
    const read = rand() * 100 < spec.readPct;
    isRead[slot] = read ? 1 : 0;
    const dsc = Buffer.alloc(DESC);
    dsc[0] = read ? 0 : 1;
    dsc.writeUInt32LE(spec.bs, 4);
    dsc.writeUInt32LE(slot, 8);
    out.queue({ t: 'mw', gfn: slot, off: 0, data: dsc });
    if (!read) {
      for (let k = 0; k < pages; k++) {
        const data = bufs[slot].subarray(k * PAGE, Math.min(spec.bs, (k + 1) * PAGE));
        out.queue({ t: 'mw', gfn: DATA_BASE + slot * 256 + k, off: 0, data });
      }
    }
    out.queue({ t: 'ev_send', port: slot } as ClientMessage);
    issuedAt[slot] = t;
    inflight++;
    if (measuring) issuedMeasured++;
  };
  const pump = () => {
    pumpQueued = false;
    const t = performance.now();
    while (free.length && t < stopAt && issuedMeasured < target) issue(free.pop()!, t);
    if (inflight === 0 && onIdle) onIdle();
  };
  t.onFrame((data) => {
    framesReceived++;
    bytesReceived += data.length;
    const d = decodeHypervisorFrame(data);
    if (!d.ok) return;
    const t = performance.now();
    for (const m of d.messages) {
      if (m.t === 'mw' && m.gfn >= DATA_BASE) {
        const k = (m.gfn - DATA_BASE) % 256;
        readBuf.set(m.data, k * PAGE);
      } else if (m.t === 'ev') {
        const slot = m.port;
        inflight--;
        free.push(slot);
        if (measuring && issuedAt[slot] >= tMeasure) {
          rtt.add((t - issuedAt[slot]) * 1e6);
          ios++;
          bytes += spec.bs;
          if (isRead[slot]) reads++;
          else writes++;
        }
        if (!pumpQueued) {
          pumpQueued = true;
          process.nextTick(pump);
        }
      }
    }
  });
  const phase = (ms: number | null, n: number | null) =>
    new Promise<void>((resolve) => {
      stopAt = ms !== null ? performance.now() + ms : Infinity;
      target = n ?? Infinity;
      issuedMeasured = 0;
      onIdle = () => {
        onIdle = null;
        resolve();
      };
      pump();
    });
  await phase(spec.warmupMs, null);
  // the bench starts each slice: one message per slice, queued if it comes before we wait for it
  const gos: Array<() => void> = [];
  let owed = 0;
  process.on('message', (m: unknown) => {
    if ((m as { type?: unknown } | null)?.type !== RELAY_GO) return;
    const w = gos.shift();
    if (w) w();
    else owed++;
  });
  const go = () =>
    new Promise<void>((resolve) => {
      if (owed > 0) {
        owed--;
        resolve();
      } else gos.push(resolve);
    });
  ready({ event: 'warm' });
  for (let slice = 0; slice < spec.slices; slice++) {
    await go();
    rtt = new Samples();
    ios = reads = writes = bytes = 0;
    const sent0 = { frames: out.frames, bytes: out.bytes };
    const recv0 = { frames: framesReceived, bytes: bytesReceived };
    measuring = true;
    tMeasure = performance.now();
    const cpu0 = process.cpuUsage();
    await phase(spec.runtimeMs, spec.ios);
    const runtimeMs = performance.now() - tMeasure;
    const cpu = process.cpuUsage(cpu0);
    measuring = false;
    const result: RelayResult = {
      client: spec.client,
      ios,
      reads,
      writes,
      bytes,
      runtimeMs,
      rtt: rtt.toRaw(),
      framesSent: out.frames - sent0.frames,
      framesReceived: framesReceived - recv0.frames,
      bytesSent: out.bytes - sent0.bytes,
      bytesReceived: bytesReceived - recv0.bytes,
      cpuUserSeconds: cpu.user / 1e6,
      cpuSystemSeconds: cpu.system / 1e6,
    };
    ready({ event: 'result', slice, result });
  }
  ws.close();
}
