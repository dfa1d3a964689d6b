/**
 * Frame buffers are given back to their FrameWriter (to carry later frames) only when the transport
 * no longer refers to their bytes. Checked where that matters: with the reader not reading, so that
 * the socket backs up and keeps what it could not write. Each side sends 300 frames of 24 page
 * records (≈ 98 KiB) into a paused peer, then the peer reads them all and checks every byte.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { decodeClientFrame, decodeHypervisorFrame, FrameWriter, type WireMessage } from '@pvblk/shared';
import { wsTransport, WIRE_CLIENT_OPTIONS } from '@pvblk/client';
import { wsFrameTransport } from '@pvblk/hypervisor';

const FRAMES = 300;
const PAGES = 24;

/** The bytes of record k of frame i: its own, so a record overwritten by a later frame shows. */
function bytesOf(i: number, k: number): Buffer {
  const b = Buffer.alloc(4096);
  for (let o = 0; o < 4096; o += 4) b.writeUInt32LE(((i * PAGES + k) * 4096 + o) >>> 0, o);
  return b;
}

function frameRecords(w: FrameWriter, i: number, kind: 'mw' | 'gw'): void {
  for (let k = 0; k < PAGES; k++) {
    const data = bytesOf(i, k);
    const m: WireMessage =
      kind === 'mw'
        ? { t: 'mw', gfn: i * PAGES + k, off: 0, data }
        : { t: 'gw', handle: i * PAGES + k, off: 0, data };
    w.add(m);
  }
}

/** Every record of every frame, as sent: the number of records whose bytes differ. */
function corrupted(
  frames: Buffer[],
  decode: typeof decodeClientFrame | typeof decodeHypervisorFrame,
): number {
  let bad = 0;
  let seen = 0;
  for (const f of frames) {
    const d = decode(f);
    if (!d.ok) throw new Error(d.error);
    for (const m of d.messages as WireMessage[]) {
      if (m.t !== 'mw' && m.t !== 'gw') continue;
      const n = m.t === 'mw' ? m.gfn : m.handle;
      if (!Buffer.from(m.data).equals(bytesOf(Math.floor(n / PAGES), n % PAGES))) bad++;
      seen++;
    }
  }
  expect(seen).toBe(FRAMES * PAGES);
  return bad;
}

const open: Array<{ close(): void }> = [];
afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

async function pair(): Promise<{ server: WebSocket; client: WebSocket }> {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: false,
    maxPayload: 1 << 24,
  });
  open.push(wss);
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const { port } = wss.address() as { port: number };
  const server = new Promise<WebSocket>((r) => wss.once('connection', (ws) => r(ws)));
  // the domains' own options: with their all-zero mask ws sends the caller's frame itself
  const client = new WebSocket(`ws://127.0.0.1:${port}`, WIRE_CLIENT_OPTIONS);
  open.push(client);
  await new Promise<void>((r, j) => {
    client.once('open', () => r());
    client.once('error', j);
  });
  return { server: await server, client };
}

function collect(ws: WebSocket): Promise<Buffer[]> {
  const got: Buffer[] = [];
  return new Promise((resolve) =>
    ws.on('message', (data: Buffer) => {
      got.push(data);
      if (got.length === FRAMES) resolve(got);
    }),
  );
}

describe('frame buffers given back under backpressure', () => {
  it("a client's frame only once the socket has taken all of it", async () => {
    const { server, client } = await pair();
    server.pause(); // the broker's side stops reading: the client's socket fills
    const t = wsTransport(client, 'test');
    const w = new FrameWriter();
    for (let i = 0; i < FRAMES; i++) {
      frameRecords(w, i, 'mw');
      for (const f of w.take()) if (t.send(f)) w.recycle(f);
    }
    expect(client.bufferedAmount).toBeGreaterThan(0); // the socket did back up
    const frames = collect(server);
    server.resume();
    expect(corrupted(await frames, decodeClientFrame)).toBe(0);
  });

  it("the broker's frame only once its write has called back", async () => {
    const { server, client } = await pair();
    client.pause(); // the domain stops reading: the broker's socket fills
    const t = wsFrameTransport(server, 'test');
    expect(t.releasesFrames).toBe(true);
    const w = new FrameWriter();
    for (let i = 0; i < FRAMES; i++) {
      frameRecords(w, i, 'gw');
      for (const f of w.take()) t.sendFrame(f, () => w.recycle(f));
    }
    expect(server.bufferedAmount).toBeGreaterThan(0); // writes were still waiting on the socket
    const frames = collect(client);
    client.resume();
    expect(corrupted(await frames, decodeHypervisorFrame)).toBe(0);
  });
});
