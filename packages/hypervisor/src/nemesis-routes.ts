/**
 * The nemesis's HTTP face on the hypervisor, for the operator only (bearer = the Dom0 secret, as for
 * /status): a domain's credential opens nothing here.
 *
 *   GET    /nemesis                         rules with their counters, paused domains, held messages, timers
 *   GET    /nemesis/log?since=N             injections after sequence number N
 *   GET    /nemesis/rings                   every frontend ring's shared indices, read from the frames
 *   GET    /nemesis/xenstore?path=P         the children of a XenStore node (404 when absent): for the
 *                                           leak checks of a chaos run
 *   POST   /nemesis/rules                   add a rule: {"action":"delay","domain":1,"kind":"ev","delay_ms":20,
 *                                           "probability":50,"times":-1}  → 201 {"id": n}
 *   DELETE /nemesis/rules[/<id>]            remove one rule, or all
 *   POST   /nemesis/seed                    {"seed": n}: the generator of rules added from now on
 *   POST   /nemesis/reset                   no rules, every domain resumed, everything held delivered
 *   POST   /nemesis/domains/<domid>/pause   {"ms": n} (optional): hold its traffic both ways
 *   POST   /nemesis/domains/<domid>/resume
 *   POST   /nemesis/domains/<domid>/cut     close its connection
 *
 * Bad input is answered 400 with a message naming what was wrong (an unknown action or message kind,
 * a filter naming no domain, a probability outside 0-100, …).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PvblkError } from '@pvblk/shared';
import { errorReply, readJsonBody, requestUrl } from '@pvblk/runtime';
import type { Hypervisor, HypervisorOptions } from './core/hypervisor.ts';
import { Nemesis } from './nemesis.ts';

const nemeses = new WeakMap<Hypervisor, Nemesis>();

/** The hypervisor's nemesis (created on first use; it installs itself only when it has work). */
export function nemesisOf(hv: Hypervisor, log?: HypervisorOptions['log']): Nemesis {
  let n = nemeses.get(hv);
  if (!n) nemeses.set(hv, (n = new Nemesis(hv, log)));
  return n;
}

/**
 * Serves the request if its path is under /nemesis; false otherwise. `operator` says whether a
 * bearer token is the operator's.
 */
export function handleNemesisRoute(
  hv: Hypervisor,
  req: IncomingMessage,
  res: ServerResponse,
  operator: (token: string) => boolean,
  log?: HypervisorOptions['log'],
): boolean {
  const url = requestUrl(req);
  if (!url) return false; // not a path: the server answers 400
  if (url.pathname !== '/nemesis' && !url.pathname.startsWith('/nemesis/')) return false;
  const send = (code: number, v: unknown): void => {
    res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(v, null, 2) + '\n');
  };
  const auth = req.headers.authorization ?? '';
  if (!auth.startsWith('Bearer ') || !operator(auth.slice(7))) {
    res.setHeader('www-authenticate', 'Bearer');
    send(401, {
      error: 'EACCES',
      message: "/nemesis is the operator's: send the Dom0 secret as a bearer token",
    });
    return true;
  }
  const n = nemesisOf(hv, log);
  const route = async (): Promise<void> => {
    const p = url.pathname;
    const m = req.method;
    const rule = /^\/nemesis\/rules\/(\d+)$/.exec(p);
    const dom = /^\/nemesis\/domains\/(\d+)\/(pause|resume|cut)$/.exec(p);
    if (m === 'GET' && p === '/nemesis') return send(200, n.status());
    if (m === 'GET' && p === '/nemesis/log') {
      const since = Number(url.searchParams.get('since') ?? 0);
      if (!Number.isInteger(since) || since < 0)
        throw new PvblkError('EINVAL', 'since must be a non-negative integer');
      return send(200, { injections: n.injections(since) });
    }
    if (m === 'GET' && p === '/nemesis/rings') return send(200, { rings: n.tracer.indices() });
    if (m === 'GET' && p === '/nemesis/xenstore') {
      const path = url.searchParams.get('path') ?? '/';
      return send(200, { path, children: hv.xenstore.directory(0, 0, path) });
    }
    if (m === 'POST' && p === '/nemesis/rules') return send(201, { id: n.addRule(await readJsonBody(req)) });
    if (m === 'DELETE' && p === '/nemesis/rules') {
      n.clearRules();
      return send(200, { rules: 0 });
    }
    if (m === 'DELETE' && rule) {
      n.removeRule(Number(rule[1]));
      return send(200, { removed: Number(rule[1]) });
    }
    if (m === 'POST' && p === '/nemesis/seed') {
      const b = await readJsonBody(req);
      n.setSeed(b.seed as number);
      return send(200, { seed: b.seed });
    }
    if (m === 'POST' && p === '/nemesis/reset') {
      n.reset();
      return send(200, n.status());
    }
    if (m === 'POST' && dom) {
      const domid = Number(dom[1]);
      if (dom[2] === 'pause') {
        const b = await readJsonBody(req);
        n.pause(domid, b.ms as number | undefined);
      } else if (dom[2] === 'resume') n.resume(domid);
      else n.cut(domid);
      return send(200, { domid, [dom[2]]: true });
    }
    send(404, { error: 'ENOENT', message: `no route ${m} ${p}` });
  };
  route().catch((e: unknown) => {
    const r = errorReply(e);
    send(r.status, r.body);
  });
  return true;
}
