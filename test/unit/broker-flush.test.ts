/**
 * The broker cuts what it owes a domain in a turn into frames below BROKER_FRAME_TARGET, and hands
 * them to the kernel in one write: the cut is for the receiver's reassembly, not a reason for a
 * system call per frame (on this project's VMs a socket write that wakes the peer is the costliest
 * thing the broker does). Checked on a real socket: the kernel writes the server's socket is asked
 * for, and the frames the peer receives, byte for byte.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Socket } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { decodeHypervisorFrame } from '@pvblk/shared';
import { Connection, Hypervisor, wsFrameTransport } from '@pvblk/hypervisor';
import { BROKER_FRAME_TARGET } from '../../packages/hypervisor/src/connection.ts';
import { FairScheduler } from '../../packages/hypervisor/src/scheduler.ts';

const PAGES = 12; // ≈ 49 KiB of page writes: four frames at the broker's cut

const open: Array<{ close(): void }> = [];
afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

async function pair(): Promise<{ server: WebSocket; socket: Socket; client: WebSocket }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  open.push(wss);
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const { port } = wss.address() as { port: number };
  const accepted = new Promise<{ server: WebSocket; socket: Socket }>((r) =>
    wss.once('connection', (ws, req) => r({ server: ws, socket: req.socket })),
  );
  const client = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
  open.push(client);
  await new Promise<void>((r, j) => {
    client.once('open', () => r());
    client.once('error', j);
  });
  return { ...(await accepted), client };
}

/** Counts the writes the socket hands to the kernel (one per `_write` or `_writev` call). */
function countWrites(socket: Socket): { writes: number } {
  const s = socket as unknown as {
    _write: (...a: unknown[]) => void;
    _writev: (...a: unknown[]) => void;
  };
  const n = { writes: 0 };
  const w = s._write.bind(socket);
  const wv = s._writev.bind(socket);
  s._write = (...a) => {
    n.writes++;
    w(...a);
  };
  s._writev = (...a) => {
    n.writes++;
    wv(...a);
  };
  return n;
}

function pageBytes(k: number): Buffer {
  return Buffer.alloc(4096, k + 1);
}

/** Queues PAGES page writes on a connection over `transport`; resolves with the frames the peer got. */
async function sendTurn(withSocket: boolean): Promise<{ writes: number; frames: Buffer[] }> {
  const { server, socket, client } = await pair();
  const counter = countWrites(socket);
  const transport = wsFrameTransport(server, 'test', withSocket ? socket : undefined);
  const hv = new Hypervisor({ dom0Credential: 'dom0-test' });
  const conn = new Connection(hv, new FairScheduler(), transport, () => {});
  open.push({ close: () => conn.close(1000, 'done') });
  const frames: Buffer[] = [];
  let records = 0;
  const all = new Promise<void>((resolve) =>
    client.on('message', (data: Buffer) => {
      frames.push(data);
      const d = decodeHypervisorFrame(data);
      if (!d.ok) throw new Error(d.error);
      records += d.messages.length;
      if (records === PAGES) resolve();
    }),
  );
  for (let k = 0; k < PAGES; k++) conn.sendPage(true, 100 + k, 0, pageBytes(k));
  await all;
  return { writes: counter.writes, frames };
}

describe("the broker's output of a turn", () => {
  it('leaves in one kernel write, in frames below the cut, every byte intact', async () => {
    const { writes, frames } = await sendTurn(true);
    expect(frames.length).toBeGreaterThanOrEqual(4);
    for (const f of frames) expect(f.length).toBeLessThanOrEqual(BROKER_FRAME_TARGET);
    expect(writes).toBe(1);
    let k = 0;
    for (const f of frames) {
      const d = decodeHypervisorFrame(f);
      if (!d.ok) throw new Error(d.error);
      for (const m of d.messages) {
        expect(m).toMatchObject({ t: 'gw', handle: 100 + k, off: 0 });
        expect(Buffer.from((m as { data: Uint8Array }).data).equals(pageBytes(k))).toBe(true);
        k++;
      }
    }
    expect(k).toBe(PAGES);
  });

  it('without the socket to hold, each frame is a write of its own (what the hold saves)', async () => {
    const { writes, frames } = await sendTurn(false);
    expect(writes).toBe(frames.length);
  });
});
