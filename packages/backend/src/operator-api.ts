/**
 * The host's operator routes, beside the management API but behind the operator's credential (the
 * Dom0 secret or the operator token as a bearer token — never a guest's token): run-time fault
 * injection under the guests' disks, and blkback's private ring state for the chaos status line.
 *
 *   GET    /dm                              every disk's device-mapper stack (dmsetup ls --tree; table; status)
 *   POST   /dm/<sdX>                        {"name": "d1", "table": "0 16384 dust /dev/sdg 0 4096"}  (dmsetup create)
 *   PUT    /dm/<sdX>/<name>                 {"table": "…"}                                           (dmsetup reload + resume)
 *   POST   /dm/<sdX>/<name>/message         {"message": "addbadblock 60"}                            (dmsetup message)
 *   DELETE /dm/<sdX>/<name>                 dmsetup remove (the top layer only)
 *   DELETE /dm/<sdX>                        every layer
 *   GET    /blkback/rings                   per vbd and ring: req_prod/req_cons/rsp_prod(_pvt), in flight
 *
 * scsi_debug's own run-time parameters (opts, every_nth, …) stay on the management API
 * (POST /disks/<sdX>/params).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PvblkError, xenbusStateName } from '@pvblk/shared';
import { errorReply, readJsonBody, requestUrl } from '@pvblk/runtime';
import type { BlkbackDriver } from './blkback/driver.ts';
import type { HostDisks, HostDisk } from './disks.ts';

export interface OperatorContext {
  disks: HostDisks;
  blkback: BlkbackDriver;
  /** Whether a bearer token is the operator's. */
  operator(token: string): boolean;
}

/** The operator's check: a constant-time comparison with the Dom0 secret. */
export function operatorCheck(secret: string): (token: string) => boolean {
  const h = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  const want = h(secret);
  return (token) => timingSafeEqual(h(token), want);
}

function str(b: Record<string, unknown>, key: string): string {
  const v = b[key];
  if (typeof v !== 'string') throw new PvblkError('EINVAL', `body.${key} must be a string`);
  return v;
}

function diskNamed(disks: HostDisks, name: string): HostDisk {
  const d = disks.list().find((x) => x.path === `/dev/${name}` || x.vbd.path === `/dev/${name}`);
  if (!d) throw new PvblkError('ENOENT', `no disk ${name}`);
  return d;
}

/** The paths of the operator's fault-injection routes. */
export const OPERATOR_ROUTE = /^\/(dm|blkback)(\/|$)/;

/** Serves /dm and /blkback requests; false for any other path. */
export function handleOperatorRoute(
  ctx: OperatorContext,
  req: IncomingMessage,
  res: ServerResponse,
): boolean {
  const url = requestUrl(req);
  if (!url) return false; // not a path: the API answers 400
  const p = url.pathname;
  if (!OPERATOR_ROUTE.test(p)) return false;
  const send = (code: number, v: unknown): void => {
    res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(v, null, 2) + '\n');
  };
  const auth = req.headers.authorization ?? '';
  if (!auth.startsWith('Bearer ') || !ctx.operator(auth.slice(7))) {
    res.setHeader('www-authenticate', 'Bearer');
    send(401, {
      error: 'EACCES',
      message: `${p.split('/').slice(0, 2).join('/')} is the operator's: send the operator token or the Dom0 secret as a bearer token`,
    });
    return true;
  }
  const m = req.method;
  const disk = /^\/dm\/(sd[a-z]+[0-9]*)$/.exec(p);
  const layer = /^\/dm\/(sd[a-z]+[0-9]*)\/([^/]+)$/.exec(p);
  const msg = /^\/dm\/(sd[a-z]+[0-9]*)\/([^/]+)\/message$/.exec(p);
  const route = async (): Promise<void> => {
    if (m === 'GET' && p === '/dm')
      return send(200, {
        disks: ctx.disks.list().map((d) => ({
          disk: d.vbd.path.slice(5),
          sectors: d.vbd.device.sectors,
          layers: d.vbd.device.list(),
        })),
      });
    if (m === 'POST' && disk) {
      const b = await readJsonBody(req);
      return send(201, diskNamed(ctx.disks, disk[1]).vbd.device.create(str(b, 'name'), str(b, 'table')));
    }
    if (m === 'PUT' && layer) {
      const b = await readJsonBody(req);
      return send(200, diskNamed(ctx.disks, layer[1]).vbd.device.reload(layer[2], str(b, 'table')));
    }
    if (m === 'POST' && msg) {
      const b = await readJsonBody(req);
      return send(200, {
        output: diskNamed(ctx.disks, msg[1]).vbd.device.message(msg[2], str(b, 'message')),
      });
    }
    if (m === 'DELETE' && layer) {
      diskNamed(ctx.disks, layer[1]).vbd.device.remove(layer[2]);
      return send(200, { removed: layer[2] });
    }
    if (m === 'DELETE' && disk) {
      diskNamed(ctx.disks, disk[1]).vbd.device.clear();
      return send(200, { cleared: disk[1] });
    }
    if (m === 'GET' && p === '/blkback/rings') {
      const vbds = [...ctx.blkback.vbds.entries()].map(([key, v]) => ({
        vbd: key,
        state: xenbusStateName(v.state),
        rings: v.rings.map((r) => ({
          queue: r.queue,
          size: r.back.size,
          req_prod: r.back.reqProd,
          req_cons: r.back.reqCons,
          rsp_prod: r.back.rspProd,
          rsp_prod_pvt: r.back.rspProdPvt,
          inflight: r.inflight,
          halted: r.halted,
        })),
      }));
      return send(200, { vbds });
    }
    send(404, { error: 'ENOENT', message: `no route ${m} ${p}` });
  };
  route().catch((e: unknown) => {
    const r = errorReply(e);
    send(r.status, r.body);
  });
  return true;
}
