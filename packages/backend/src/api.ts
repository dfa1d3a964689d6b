/**
 * The host's management API over HTTP: what `xl create` is to a Xen host. A guest process asks it to
 * create its domain and disk (POST /guests) and receives the domid and the credential it will present
 * to the hypervisor. Requests need the provisioning token; the API never sees Dom0's credential.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual, createHash } from 'node:crypto';
import { isPvblkError, PvblkError } from '@pvblk/shared';

export interface ApiHandlers {
  createGuest(body: { name: string; disk?: string }): Promise<unknown>;
  destroyGuest(domid: number): Promise<void>;
  listGuests(): Promise<unknown>;
  setDiskParam(disk: string, key: string, value: string): Promise<unknown>;
  /** Arms a blkback fault on a vbd (testing frontends against a hostile backend). */
  injectFault(domid: number, devid: number, fault: string): Promise<unknown>;
  /** Routes with their own (operator) authorization, tried first: true when one served the request. */
  operatorRoutes?(req: IncomingMessage, res: ServerResponse): boolean;
}

function sameToken(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

async function readJson(req: IncomingMessage, limit = 64 * 1024): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new PvblkError('E2BIG', `request body over ${limit} bytes`);
    chunks.push(c as Buffer);
  }
  if (size === 0) return {};
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new PvblkError('EINVAL', `request body is not a JSON object: ${(e as Error).message}`);
  }
}

const STATUS: Record<string, number> = {
  EINVAL: 400,
  EUSAGE: 400,
  E2BIG: 413,
  EACCES: 403,
  ESRCH: 404,
  ENOENT: 404,
  EEXIST: 409,
};

export async function startApi(
  host: string,
  port: number,
  token: string,
  h: ApiHandlers,
): Promise<{ server: Server; url: string }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (h.operatorRoutes?.(req, res)) return;
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body, null, 2) + '\n');
    };
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/healthz')
      return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ') || !sameToken(auth.slice(7), token)) {
      return send(401, {
        error: 'EACCES',
        message: 'a valid provisioning token is required (Authorization: Bearer …)',
      });
    }
    const route = async (): Promise<void> => {
      const m = /^\/guests\/(\d+)$/.exec(url.pathname);
      const d = /^\/disks\/(sd[a-z]+)\/params$/.exec(url.pathname);
      const f = /^\/vbds\/(\d+)\/(\d+)\/fault$/.exec(url.pathname);
      if (req.method === 'POST' && url.pathname === '/guests') {
        const b = await readJson(req);
        if (typeof b.name !== 'string') throw new PvblkError('EINVAL', 'body.name must be a string');
        if (b.disk !== undefined && typeof b.disk !== 'string')
          throw new PvblkError('EINVAL', 'body.disk must be a string');
        return send(201, await h.createGuest({ name: b.name, disk: b.disk as string | undefined }));
      }
      if (req.method === 'GET' && url.pathname === '/guests') return send(200, await h.listGuests());
      if (req.method === 'DELETE' && m) {
        await h.destroyGuest(Number(m[1]));
        return send(200, { destroyed: Number(m[1]) });
      }
      if (req.method === 'POST' && d) {
        const b = await readJson(req);
        if (typeof b.key !== 'string' || typeof b.value !== 'string')
          throw new PvblkError('EINVAL', 'body needs key and value strings');
        return send(200, await h.setDiskParam(d[1], b.key, b.value));
      }
      if (req.method === 'POST' && f) {
        const b = await readJson(req);
        if (typeof b.fault !== 'string') throw new PvblkError('EINVAL', 'body.fault must be a string');
        return send(200, await h.injectFault(Number(f[1]), Number(f[2]), b.fault));
      }
      send(404, { error: 'ENOENT', message: `no route ${req.method} ${url.pathname}` });
    };
    route().catch((e: unknown) => {
      const code = isPvblkError(e) ? e.code : 'EIO';
      send(STATUS[code] ?? 500, { error: code, message: (e as Error).message });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  const shown = host.includes(':') ? `[${host}]` : host;
  return { server, url: `http://${shown}:${a.port}` };
}
