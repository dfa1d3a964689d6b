/**
 * A domain's WebSocket frames go on the wire with the MASK bit set and an all-zero key
 * (WIRE_CLIENT_OPTIONS in packages/client/src/ws.ts says why), so their payload is the frame as
 * encoded, byte for byte: checked on the bytes a loopback server's socket received from connectWs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { connectWs } from '@pvblk/client';

const open: Array<{ close(): void }> = [];
afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

describe("a domain's frames on the wire", () => {
  it('are masked with the zero key: the payload on the wire is the frame ws hands the server', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
    open.push(wss);
    await new Promise<void>((r) => wss.once('listening', () => r()));
    const { port } = wss.address() as { port: number };
    const raw: Buffer[] = [];
    const hello = new Promise<Buffer>((resolve) =>
      wss.once('connection', (ws, req) => {
        // every byte the client sent after its upgrade request, as the socket received them
        req.socket.on('data', (b: Buffer) => raw.push(b));
        ws.once('message', (data: Buffer) => {
          resolve(data);
          ws.close(1000, 'test done');
        });
      }),
    );
    const connected = connectWs(`ws://127.0.0.1:${port}`, { credential: 'c', retryForMs: 0 }).then(
      () => null,
      (e: Error) => e,
    );
    const payload = await hello;
    await connected; // refused by the test's server: it never answers the hello
    const wire = Buffer.concat(raw);
    expect(wire[0]).toBe(0x82); // FIN, binary
    expect(wire[1] & 0x80).toBe(0x80); // masked, as RFC 6455 requires of a client
    const len = wire[1] & 0x7f;
    expect(len).toBeLessThan(126); // a hello fits the 7-bit length
    expect(len).toBe(payload.length);
    expect([...wire.subarray(2, 6)]).toEqual([0, 0, 0, 0]); // the key
    expect(wire.subarray(6, 6 + len).equals(payload)).toBe(true); // so the payload is as sent
  });
});
