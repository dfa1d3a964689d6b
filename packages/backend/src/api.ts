/**
 * The host's management API over HTTP: what `xl` is to a Xen host. Two roles, as Xen separates the
 * control domain's toolstack from a guest's view of itself (docs/security-host.md):
 *
 *   operator  PVBLK_TOOLSTACK_TOKEN: everything — create, list and destroy any guest, disk parameters,
 *             disk removal, fault injection, issuing guest tokens.
 *   guest     its guest token (pvblk-guest.<name>.<mac>): create or boot its own domain, read its own
 *             state, destroy its own domain; nothing about any other guest, no disk parameters.
 *   enrol     PVBLK_ENROL_TOKEN (compose guests): create a guest under a name nobody holds yet, and
 *             receive that name's guest token once.
 *   group     a group token (swarm services, packages/runtime/src/group-tokens.ts): kind guest boots
 *             any guest <prefix>… as that guest's own token would; kind driver-domain has Dom0 create
 *             the driver domain <prefix>…. Nothing else.
 *
 * The API never sees Dom0's credential. A request without a valid credential gets 401; a valid
 * credential asking for something its role may not do gets 403. Errors carry the errno name and a
 * message; the HTTP status follows the errno (E2BIG 413, EAGAIN 429, ENOSPC 507, …).
 *
 * The operator's tools (docs/tools.md) have routes of their own, all operator only: `GET /domains`
 * (xl list), `GET|POST /guests/<domid>/vbds`, `DELETE /guests/<domid>/vbds/<vdev>` (block-list,
 * block-attach, block-detach), `POST /xenstore` and `GET /xenstore/watch` (xenstore-*), `GET
 * /metrics` (Prometheus), `GET /controls` (what the dashboard offers to change). The dashboard's page
 * (`/dashboard`) is static and public; every datum it shows comes over its WebSocket, which asks for
 * the operator token first.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual, createHash } from 'node:crypto';
import { isPvblkError, PvblkError } from '@pvblk/shared';
import {
  checkGuestName,
  errorReply,
  httpServerOptions,
  inGroup,
  HTTP_STATUS,
  limitHttpConnections,
  readJsonBody,
  requestUrl,
  verifyGroupToken,
  verifyGuestToken,
  type GroupKind,
} from '@pvblk/runtime';
import { parseXsRequest, type XsRequest, type XsResult, MAX_WATCH_STREAMS } from './xenstore-ops.ts';
import { OPERATOR_ROUTE } from './operator-api.ts';
import { OneAtATime } from './one-at-a-time.ts';

export type Principal =
  | { role: 'operator' }
  | { role: 'guest'; name: string }
  | { role: 'enrol' }
  | { role: 'group'; kind: GroupKind; prefix: string };

export interface ApiCredentials {
  operatorToken: string;
  /** null: this host offers no enrolment. */
  enrolToken: string | null;
}

export interface ApiHandlers {
  /**
   * Who may ask for which name is checked here; whether the name is free, by the handler. `vbds`
   * (operator: xl create's disk list) adds vbds after xvda; the domain then waits, paused, for its
   * process to boot with the name's guest token.
   */
  createGuest(who: Principal, body: { name: string; disk?: string; vbds?: string[][] }): Promise<unknown>;
  /** Domains, disks and vbds; only those of guest `name` when given. */
  listGuests(name?: string): Promise<unknown>;
  /** A guest may destroy only its own domain: the handler knows which domain is whose. */
  destroyGuest(who: Principal, domid: number): Promise<void>;
  setDiskParam(disk: string, key: string, value: string): Promise<unknown>;
  /**
   * `/sys/block/<sdX>/device/timeout` of the host's SCSI disk, in seconds: read it (value undefined) or
   * write it (sdev_store_timeout); commands issued from then on use it. Not kept across host restarts,
   * as sysfs is not.
   */
  diskTimeout?(disk: string, value?: string): Promise<unknown>;
  /** Deletes a disk and its data, by disk name (sdg) or by guest name. */
  removeDisk(which: { disk: string } | { guest: string }): Promise<unknown>;
  /** Arms a blkback fault on a vbd (testing frontends against a hostile backend). */
  injectFault(domid: number, devid: number, fault: string): Promise<unknown>;
  /** Routes with their own (operator) authorization, tried first: true when one served the request. */
  operatorRoutes?(req: IncomingMessage, res: ServerResponse): boolean;
  /** The guest token of `name`, for an operator handing it to a guest started elsewhere. */
  issueGuestToken(name: string): Promise<unknown>;
  /** Creates driver domain `name` (a DomU that runs blkback and its own disks); its domid and credential. */
  createDriverDomain?(who: Principal, name: string): Promise<unknown>;
  // The operator tools' routes; a host without them (a test Dom0) answers 404 there.
  /** xl list: every domain with its libxl_dominfo fields. */
  listDomains?(): Promise<unknown>;
  /** xl block-list, block-attach, block-detach. */
  listVbds?(domid: number): Promise<unknown>;
  attachVbd?(domid: number, spec: string[]): Promise<unknown>;
  detachVbd?(domid: number, vdev: string, force: boolean): Promise<unknown>;
  /** One xenstore-* invocation as Dom0. */
  xenstore?(req: XsRequest): Promise<XsResult>;
  /** xenstore-watch: calls `onEvent` with each fired path until the returned function is called. */
  watchXenstore?(paths: string[], onEvent: (path: string) => void): Promise<() => Promise<void>>;
  /** Prometheus text format. */
  metrics?(): Promise<{ contentType: string; text: string }>;
  /** The controls the dashboard offers (faults, runtime disk parameters), as data. */
  controls?(): Promise<unknown>;
}

function sameToken(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

/** The principal a bearer token proves; null when it proves nothing. */
export function authenticate(header: string | undefined, creds: ApiCredentials): Principal | null {
  if (!header?.startsWith('Bearer ')) return null;
  const token = header.slice(7).trim();
  if (sameToken(token, creds.operatorToken)) return { role: 'operator' };
  if (creds.enrolToken !== null && sameToken(token, creds.enrolToken)) return { role: 'enrol' };
  const group = verifyGroupToken(creds.operatorToken, token);
  if (group !== null) return { role: 'group', ...group };
  const name = verifyGuestToken(creds.operatorToken, token);
  return name === null ? null : { role: 'guest', name };
}

export function describePrincipal(who: Principal): string {
  return who.role === 'guest'
    ? `guest ${who.name}`
    : who.role === 'enrol'
      ? 'an enrolment token'
      : who.role === 'group'
        ? `the ${who.kind} group ${who.prefix}*`
        : 'the operator';
}

function forbidden(who: Principal, what: string): PvblkError {
  return new PvblkError('EACCES', `${describePrincipal(who)} may not ${what}: that is the operator's`);
}

export { HTTP_STATUS };

/** Requests answered before any credential is asked for (the dashboard's static page). */
export type PublicRoute = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean;

/** Domain ids are 16 bits (domid_t); a longer number in a path names no domain (404, as given). */
function pathDomid(text: string): number {
  const n = Number(text);
  if (text.length > 5 || n > 0xffff) throw new PvblkError('ESRCH', `domain ${text} does not exist`);
  return n;
}

/** A vbd's device id in a path: a virtual-device number, below 2^28 (xvd's extended encoding). */
function pathDevid(domid: string, text: string): number {
  const n = Number(text);
  if (text.length > 9 || n >= 1 << 28) throw new PvblkError('ENOENT', `no connected vbd ${domid}/${text}`);
  return n;
}

/**
 * Bytes of watch events a `/xenstore/watch` client may leave unread before its stream is closed:
 * it is not reading, and what fires would otherwise pile up in Dom0 (xenstored bounds the events it
 * keeps for a connection too). The client sees the stream end and can watch again and re-read.
 */
export const WATCH_STREAM_MAX_OWED = 1 << 20;

export async function startApi(
  host: string,
  port: number,
  creds: ApiCredentials,
  h: ApiHandlers,
  onInternalError: (route: string, err: unknown) => void = () => {},
  publicRoute: PublicRoute = () => false,
): Promise<{ server: Server; url: string }> {
  let watchStreams = 0;
  // Principals other than the operator with a request body on its way: one each. The body comes
  // before the one-at-a-time bound of the guest's operations (it names what the request acts on),
  // and a guest's token sending 512 bodies a byte every 5 s held every socket its address may have.
  const sendingBody = new OneAtATime();
  const server = createServer(httpServerOptions(), (req: IncomingMessage, res: ServerResponse) => {
    const send = (code: number, body: unknown, headers: Record<string, string> = {}) => {
      res
        .writeHead(code, { 'content-type': 'application/json', ...headers })
        .end(JSON.stringify(body, null, 2) + '\n');
    };
    const url = requestUrl(req);
    if (!url) return send(400, { error: 'EINVAL', message: 'the request target is not a valid path' });
    if (url.pathname === '/healthz')
      return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    if (publicRoute(req, res, url)) return;
    const who = authenticate(req.headers.authorization, creds);
    // the operator's fault-injection routes (/dm, /blkback) check their own bearer (the operator token
    // or the Dom0 secret); another valid credential is known, and refused as not the operator's
    if (who && who.role !== 'operator' && OPERATOR_ROUTE.test(url.pathname)) {
      const r = errorReply(forbidden(who, `use ${url.pathname.split('/').slice(0, 2).join('/')}`));
      return send(r.status, r.body);
    }
    if (h.operatorRoutes?.(req, res)) return;
    if (!who) {
      return send(
        401,
        {
          error: 'EACCES',
          message:
            'a valid token is required (Authorization: Bearer <the operator token, a guest token or the enrolment token>)',
        },
        { 'www-authenticate': 'Bearer realm="pvblk toolstack"' },
      );
    }
    const need = <F>(fn: F | undefined): F => {
      if (fn === undefined)
        throw new PvblkError('ENOENT', `no route ${req.method} ${url.pathname} on this host`);
      return fn;
    };
    const operatorOnly = (what: string) => {
      if (who.role !== 'operator') throw forbidden(who, what);
    };
    const body = () =>
      who.role === 'operator'
        ? readJsonBody(req)
        : sendingBody.run(
            JSON.stringify(who),
            `${describePrincipal(who)} is sending a request body already: one at a time`,
            () => readJsonBody(req),
          );
    const route = async (): Promise<void> => {
      const m = /^\/guests\/(\d+)$/.exec(url.pathname);
      const d = /^\/disks\/(sd[a-z]+)\/params$/.exec(url.pathname);
      const dt = /^\/disks\/(sd[a-z]+)\/device\/timeout$/.exec(url.pathname);
      const dr = /^\/disks(?:\/(sd[a-z]+))?$/.exec(url.pathname);
      const f = /^\/vbds\/(\d+)\/(\d+)\/fault$/.exec(url.pathname);
      const vl = /^\/guests\/(\d+)\/vbds$/.exec(url.pathname);
      const vd = /^\/guests\/(\d+)\/vbds\/([A-Za-z0-9]+)$/.exec(url.pathname);
      if (
        vl ||
        vd ||
        ['/domains', '/xenstore', '/xenstore/watch', '/metrics', '/controls'].includes(url.pathname)
      )
        operatorOnly('use the operator tools (xl, xenstore-*, metrics, the dashboard)');
      if (req.method === 'GET' && url.pathname === '/domains') return send(200, await need(h.listDomains)());
      if (req.method === 'GET' && vl) return send(200, await need(h.listVbds)(pathDomid(vl[1])));
      if (req.method === 'POST' && vl) {
        const b = await body();
        if (!Array.isArray(b.spec) || b.spec.length === 0 || b.spec.some((x) => typeof x !== 'string'))
          throw new PvblkError('EINVAL', 'body.spec must be a non-empty array of disk specification strings');
        return send(201, await need(h.attachVbd)(pathDomid(vl[1]), b.spec as string[]));
      }
      if (req.method === 'DELETE' && vd) {
        const force = url.searchParams.get('force');
        return send(200, await need(h.detachVbd)(pathDomid(vd[1]), vd[2], force === '1' || force === 'true'));
      }
      if (req.method === 'POST' && url.pathname === '/xenstore')
        return send(200, await need(h.xenstore)(parseXsRequest(await body())));
      if (req.method === 'GET' && url.pathname === '/xenstore/watch') {
        // a path given twice is one watch (each would fire for every change: twice the lines)
        const paths = [...new Set(url.searchParams.getAll('path'))];
        if (paths.length === 0 || paths.length > 64 || paths.some((p) => p.length === 0 || p.length > 3072))
          throw new PvblkError('EINVAL', 'watch needs 1 to 64 path= parameters');
        if (watchStreams >= MAX_WATCH_STREAMS)
          throw new PvblkError('EAGAIN', `${MAX_WATCH_STREAMS} xenstore watches are streaming already`);
        watchStreams++;
        let stop: (() => Promise<void>) | null = null;
        const end = () => {
          if (stop === null) return;
          const s = stop;
          stop = null;
          watchStreams--;
          void s();
        };
        res.on('close', end);
        // the watch fires at once, before the answer's headers are out: early events wait for them
        let early: string[] | null = [];
        // a client that stops reading is cut off rather than owed without end (Dom0's memory)
        const line = (p: string) => {
          if (res.destroyed) return;
          res.write(p + '\n');
          if (res.writableLength > WATCH_STREAM_MAX_OWED) res.destroy();
        };
        try {
          stop = await need(h.watchXenstore)(paths, (p) => {
            if (early) early.push(p);
            else line(p);
          });
        } catch (e) {
          watchStreams--;
          throw e;
        }
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
        for (const p of early) line(p);
        early = null;
        res.flushHeaders();
        if (res.destroyed) end();
        return;
      }
      if (req.method === 'GET' && url.pathname === '/metrics') {
        const m = await need(h.metrics)();
        return void res.writeHead(200, { 'content-type': m.contentType }).end(m.text);
      }
      if (req.method === 'GET' && url.pathname === '/controls') return send(200, await need(h.controls)());
      if (req.method === 'POST' && url.pathname === '/guests') {
        const b = await body();
        if (typeof b.name !== 'string') throw new PvblkError('EINVAL', 'body.name must be a string');
        checkGuestName(b.name);
        if (b.disk !== undefined && typeof b.disk !== 'string')
          throw new PvblkError('EINVAL', 'body.disk must be a string');
        if (who.role === 'guest' && b.name !== who.name)
          throw new PvblkError('EACCES', `guest ${who.name}'s token may create only guest ${who.name}`);
        if (b.disk !== undefined) operatorOnly('choose disk parameters (body.disk)');
        let vbds: string[][] | undefined;
        if (b.vbds !== undefined) {
          operatorOnly('add vbds (body.vbds)');
          if (
            !Array.isArray(b.vbds) ||
            b.vbds.length > 64 ||
            b.vbds.some((v) => !Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== 'string'))
          )
            throw new PvblkError(
              'EINVAL',
              'body.vbds must be an array (at most 64) of disk specifications, each an array of strings',
            );
          vbds = b.vbds as string[][];
        }
        // a guest group's token boots a guest of the group as that guest's own token would
        if (who.role === 'group' && (who.kind !== 'guest' || !inGroup(who.prefix, b.name)))
          throw new PvblkError('EACCES', `${describePrincipal(who)} may not create guest ${b.name}`);
        const as: Principal = who.role === 'group' ? { role: 'guest', name: b.name } : who;
        return send(201, await h.createGuest(as, { name: b.name, disk: b.disk as string | undefined, vbds }));
      }
      if (req.method === 'POST' && url.pathname === '/driver-domains' && h.createDriverDomain) {
        const b = await body();
        if (typeof b.name !== 'string') throw new PvblkError('EINVAL', 'body.name must be a string');
        checkGuestName(b.name);
        if (
          who.role !== 'operator' &&
          !(who.role === 'group' && who.kind === 'driver-domain' && inGroup(who.prefix, b.name))
        )
          throw new PvblkError('EACCES', `${describePrincipal(who)} may not create driver domain ${b.name}`);
        return send(201, await h.createDriverDomain(who, b.name));
      }
      if (req.method === 'GET' && url.pathname === '/guests') {
        const name = url.searchParams.get('name') ?? undefined;
        if (who.role === 'enrol' || who.role === 'group') throw forbidden(who, 'read guests');
        if (who.role === 'guest') {
          if (name !== undefined && name !== who.name) throw forbidden(who, `read guest ${name}`);
          return send(200, await h.listGuests(who.name));
        }
        return send(200, await h.listGuests(name));
      }
      if (req.method === 'DELETE' && m) {
        if (who.role === 'enrol' || who.role === 'group') throw forbidden(who, 'destroy domains');
        const domid = pathDomid(m[1]);
        await h.destroyGuest(who, domid);
        return send(200, { destroyed: domid });
      }
      if (req.method === 'POST' && url.pathname === '/tokens') {
        operatorOnly('issue guest tokens');
        const b = await body();
        if (typeof b.name !== 'string') throw new PvblkError('EINVAL', 'body.name must be a string');
        return send(201, await h.issueGuestToken(checkGuestName(b.name)));
      }
      if (req.method === 'POST' && d) {
        operatorOnly('change disk parameters');
        const b = await body();
        if (typeof b.key !== 'string' || typeof b.value !== 'string')
          throw new PvblkError('EINVAL', 'body needs key and value strings');
        return send(200, await h.setDiskParam(d[1], b.key, b.value));
      }
      if (dt && (req.method === 'GET' || req.method === 'PUT')) {
        operatorOnly("read or set a disk's command timeout");
        if (req.method === 'GET') return send(200, await need(h.diskTimeout)(dt[1]));
        const b = await body();
        if (typeof b.value !== 'string' && typeof b.value !== 'number')
          throw new PvblkError('EINVAL', 'body.value must be the timeout in seconds (a string or a number)');
        return send(200, await need(h.diskTimeout)(dt[1], String(b.value)));
      }
      if (req.method === 'DELETE' && dr) {
        operatorOnly('delete disks');
        const guest = url.searchParams.get('guest');
        if (dr[1]) return send(200, await h.removeDisk({ disk: dr[1] }));
        if (guest === null)
          throw new PvblkError('EINVAL', 'DELETE /disks needs /disks/<sdX> or ?guest=<name>');
        return send(200, await h.removeDisk({ guest: checkGuestName(guest) }));
      }
      if (req.method === 'POST' && f) {
        operatorOnly('arm faults');
        const b = await body();
        if (typeof b.fault !== 'string') throw new PvblkError('EINVAL', 'body.fault must be a string');
        return send(200, await h.injectFault(pathDomid(f[1]), pathDevid(f[1], f[2]), b.fault));
      }
      send(404, { error: 'ENOENT', message: `no route ${req.method} ${url.pathname}` });
    };
    route().catch((e: unknown) => {
      // an answer already under way (a watch stream) cannot carry an error any more: cut it
      if (res.headersSent) {
        if (!isPvblkError(e)) onInternalError(`${req.method} ${url.pathname}`, e);
        return void res.destroy();
      }
      if (isPvblkError(e)) {
        const r = errorReply(e);
        return send(r.status, r.body);
      }
      // a bug, not a refusal: the details go to the host's log, not to the caller
      onInternalError(`${req.method} ${url.pathname}`, e);
      send(500, {
        error: 'EIO',
        message: `the host failed on ${req.method} ${url.pathname} (internal error; the host's log has the details)`,
      });
    });
  });
  limitHttpConnections(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  const shown = host.includes(':') ? `[${host}]` : host;
  return { server, url: `http://${shown}:${a.port}` };
}
