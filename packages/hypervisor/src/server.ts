/**
 * The hypervisor as a network service: one HTTP server that upgrades WebSocket connections (one per
 * domain) and answers `/healthz` and `/status` (JSON) for humans, healthchecks and dashboards.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { WIRE_MAX_FRAME } from '@pvblk/shared';
import { Connection } from './connection.ts';
import { Hypervisor, type HypervisorOptions } from './core/hypervisor.ts';

export interface HypervisorServerOptions extends HypervisorOptions {
  host: string;
  port: number;
}

export interface RunningHypervisor {
  hv: Hypervisor;
  host: string;
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function startHypervisorServer(opts: HypervisorServerOptions): Promise<RunningHypervisor> {
  const hv = new Hypervisor(opts);
  const log = opts.log ?? (() => {});
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'GET' && url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (req.method === 'GET' && url.pathname === '/status') {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify(hv.status(), null, 2) + '\n');
    } else {
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('not found: try /healthz, /status, or a WebSocket\n');
    }
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: WIRE_MAX_FRAME, perMessageDeflate: false });
  http.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    const peer = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const conn = new Connection(
      hv,
      {
        peer,
        sendFrame: (f) => ws.send(f, { binary: true }),
        close: (code, reason) => ws.close(code, reason),
        bufferedAmount: () => ws.bufferedAmount,
      },
      (level, obj, msg) => log(level, obj, msg),
    );
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        conn.onFrame(Buffer.from([0])); // text frames are not part of the protocol: answered as malformed
        return;
      }
      conn.onFrame(data);
    });
    ws.on('close', () => conn.onClose());
    ws.on('error', (e) => log('warn', { peer, err: e.message }, 'websocket error'));
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(opts.port, opts.host, () => resolve());
  });
  const addr = http.address() as AddressInfo;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    hv,
    host: opts.host,
    port: addr.port,
    url: `ws://${host}:${addr.port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}
