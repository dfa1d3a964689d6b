/**
 * The isolation table: every path from one guest to another domain's memory, event channels,
 * XenStore nodes, disk and the management API, tried for real against running processes (the
 * hypervisor, the host, a victim guest booted by `pvblk domu`), with the error each must give. The
 * attacker is a guest domain created by the toolstack like any other, holding only what a guest holds:
 * its domain credential and its own guest token.
 *
 * The same rows, in the same words, are the isolation table of docs/security.md; a test below keeps
 * the two in step.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectWs, type XenClient } from '@pvblk/client';
import { deriveGuestToken } from '@pvblk/runtime';
import { SECRETS, startSystem } from './helpers.ts';

type System = Awaited<ReturnType<typeof startSystem>>;

interface Ctx {
  sys: System;
  me: XenClient;
  victimDomid: number;
  victimToken: string;
  myToken: string;
  api(path: string, init?: { method?: string; token?: string | null; body?: unknown }): Promise<number>;
}

/** What an attempt came to: the error code of a refused call, a GNTST name, an HTTP status, or "allowed". */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'allowed';
  } catch (e) {
    return String((e as { code?: string }).code ?? e);
  }
}
const GNTST_NAMES: Record<number, string> = {
  [-2]: 'GNTST_bad_domain',
  [-3]: 'GNTST_bad_gntref',
  [-4]: 'GNTST_bad_handle',
  [-8]: 'GNTST_permission_denied',
};
const gntst = (s: number) => (s === 0 ? 'allowed' : (GNTST_NAMES[s] ?? `GNTST ${s}`));

export interface Row {
  area: 'memory' | 'events' | 'xenstore' | 'domains' | 'disks and API';
  what: string;
  expected: string;
  attempt(c: Ctx): Promise<string>;
}

const vbd = (c: Ctx) => `/local/domain/${c.victimDomid}/device/vbd/51712`;

export const ROWS: Row[] = [
  // ---- memory
  {
    area: 'memory',
    what: "map the victim's ring page (granted to Dom0)",
    expected: 'GNTST_permission_denied',
    attempt: async (c) =>
      gntst((await c.me.gnttab.map([{ dom: c.victimDomid, ref: 8, readonly: true }]))[0].status),
  },
  {
    area: 'memory',
    what: "map the victim's grant refs 8-519, read-only",
    expected: 'GNTST_permission_denied',
    attempt: async (c) => {
      const r = await c.me.gnttab.map(
        Array.from({ length: 512 }, (_, i) => ({ dom: c.victimDomid, ref: 8 + i, readonly: true })),
      );
      return [...new Set(r.map((x) => gntst(x.status)))].join(',');
    },
  },
  {
    area: 'memory',
    what: "copy out of the victim's ring page",
    expected: 'GNTST_permission_denied',
    attempt: async (c) =>
      gntst((await c.me.gnttab.copyFrom([{ dom: c.victimDomid, ref: 8, off: 0, len: 64 }]))[0].status),
  },
  {
    area: 'memory',
    what: "copy into the victim's ring page",
    expected: 'GNTST_permission_denied',
    attempt: async (c) =>
      gntst((await c.me.gnttab.copyTo([{ dom: c.victimDomid, ref: 8, off: 0, data: Buffer.alloc(8) }]))[0]),
  },
  {
    area: 'memory',
    what: "map a grant of Dom0's",
    expected: 'GNTST_permission_denied',
    attempt: async (c) => gntst((await c.me.gnttab.map([{ dom: 0, ref: 8, readonly: true }]))[0].status),
  },
  {
    area: 'memory',
    what: 'map from a domain that does not exist',
    expected: 'GNTST_bad_domain',
    attempt: async (c) => gntst((await c.me.gnttab.map([{ dom: 0x7fef, ref: 8, readonly: true }]))[0].status),
  },
  {
    area: 'memory',
    what: 'unmap a handle it was never given (the victim backend mappings)',
    expected: 'GNTST_bad_handle',
    attempt: async (c) => {
      const fake = { handle: 1, origin: { kind: 'mapped' } } as never;
      return gntst((await c.me.gnttab.unmap([fake]))[0]);
    },
  },
  {
    area: 'memory',
    what: "end access to the victim's grant refs (its own table has none of them)",
    expected: 'invalid',
    attempt: async (c) => [...new Set(await c.me.gnttab.endForeignAccess([8, 9, 10]))].join(','),
  },
  // ---- events
  {
    area: 'events',
    what: "allocate a port in the victim's domain",
    expected: 'EPERM',
    attempt: (c) => outcome(c.me.evtchn.allocUnbound(0, c.victimDomid)),
  },
  {
    area: 'events',
    what: "bind the victim's event channel (offered to Dom0)",
    expected: 'EINVAL',
    attempt: (c) => outcome(c.me.evtchn.bindInterdomain(c.victimDomid, 1)),
  },
  {
    area: 'events',
    what: 'close, mask or query a port number the victim uses (each domain has its own ports)',
    expected: 'EINVAL,EINVAL,closed',
    attempt: async (c) =>
      [
        await outcome(c.me.evtchn.close(1)),
        await outcome(c.me.evtchn.mask(1)),
        (await c.me.evtchn.status(1)).status === 0 ? 'closed' : 'open',
      ].join(','),
  },
  // ---- xenstore
  {
    area: 'xenstore',
    what: "read the victim's frontend directory",
    expected: 'EACCES',
    attempt: (c) => outcome(c.me.xs.read(`${vbd(c)}/ring-ref`)),
  },
  {
    area: 'xenstore',
    what: "write the victim's frontend state",
    expected: 'EACCES',
    attempt: (c) => outcome(c.me.xs.write(`${vbd(c)}/state`, '6')),
  },
  {
    area: 'xenstore',
    what: "remove or change the permissions of the victim's nodes",
    expected: 'EACCES,EACCES',
    attempt: async (c) =>
      [await outcome(c.me.xs.rm(vbd(c))), await outcome(c.me.xs.setPerms(vbd(c), [`n${c.me.domid}`]))].join(
        ',',
      ),
  },
  {
    area: 'xenstore',
    what: "read the victim's backend directory in Dom0's tree",
    expected: 'EACCES',
    attempt: (c) => outcome(c.me.xs.read(`/local/domain/0/backend/vbd/${c.victimDomid}/51712/params`)),
  },
  // ---- domains
  {
    area: 'domains',
    what: 'create, destroy or list domains',
    expected: 'EPERM,EPERM,EPERM',
    attempt: async (c) =>
      [
        await outcome(c.me.domctl.create('mine')),
        await outcome(c.me.domctl.destroy(c.victimDomid)),
        await outcome(c.me.domctl.list()),
      ].join(','),
  },
  {
    area: 'domains',
    what: 'connect with a guessed credential',
    expected: 'EACCES',
    attempt: async (c) => outcome(connectWs(c.sys.url, { credential: 'guessed-credential', retryForMs: 0 })),
  },
  // ---- disks and the API
  {
    area: 'disks and API',
    what: 'destroy the victim through the host API with its own guest token',
    expected: '403',
    attempt: async (c) => String(await c.api(`/guests/${c.victimDomid}`, { method: 'DELETE' })),
  },
  {
    area: 'disks and API',
    what: "change the victim's disk parameters",
    expected: '403',
    attempt: async (c) =>
      String(await c.api('/disks/sdg/params', { method: 'POST', body: { key: 'opts', value: '2' } })),
  },
  {
    area: 'disks and API',
    what: "arm a backend fault on the victim's vbd",
    expected: '403',
    attempt: async (c) =>
      String(
        await c.api(`/vbds/${c.victimDomid}/51712/fault`, {
          method: 'POST',
          body: { fault: 'bad-response-id' },
        }),
      ),
  },
  {
    area: 'disks and API',
    what: "boot a guest under the victim's name (and so reach its disk)",
    expected: '403',
    attempt: async (c) => String(await c.api('/guests', { method: 'POST', body: { name: 'victim' } })),
  },
  {
    area: 'disks and API',
    what: "delete the victim's disk",
    expected: '403',
    attempt: async (c) => String(await c.api('/disks?guest=victim', { method: 'DELETE' })),
  },
  {
    area: 'disks and API',
    what: "read the hypervisor's /status or the host API without a credential",
    expected: '401,401',
    attempt: async (c) =>
      [
        (await fetch(`${c.sys.url.replace('ws://', 'http://')}status`)).status,
        await c.api('/guests', { token: null }),
      ].join(','),
  },
];

let ctx: Ctx;
let sys: System;

beforeAll(async () => {
  sys = await startSystem();
  const victim = await sys.guest('victim');
  const victimDomid = Number((await victim.waitFor((r) => r.event === 'ready')).domid);
  // the attacker: a guest like any other, booted through the API with its own guest token
  const myToken = deriveGuestToken(SECRETS.PVBLK_TOOLSTACK_TOKEN, 'attacker');
  const res = await fetch(`${sys.api}/guests`, {
    method: 'POST',
    headers: { authorization: `Bearer ${myToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'attacker' }),
  });
  expect(res.status).toBe(201);
  const { credential } = (await res.json()) as { credential: string };
  const me = await connectWs(sys.url, { credential, retryForMs: 0 });
  ctx = {
    sys,
    me,
    victimDomid,
    victimToken: deriveGuestToken(SECRETS.PVBLK_TOOLSTACK_TOKEN, 'victim'),
    myToken,
    api: async (path, init = {}) => {
      const token = init.token === undefined ? myToken : init.token;
      const r = await fetch(`${sys.api}${path}`, {
        method: init.method ?? 'GET',
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(init.body ? { 'content-type': 'application/json' } : {}),
        },
        body: init.body ? JSON.stringify(init.body) : undefined,
      });
      await r.body?.cancel();
      return r.status;
    },
  };
});
afterAll(async () => {
  ctx?.me.close();
  await sys?.stop();
});

describe('isolation: what one guest can reach of another domain', () => {
  it.each(ROWS.map((r) => [r.area, r.what, r] as const))('%s: %s', async (_a, _w, row) => {
    expect(await row.attempt(ctx)).toBe(row.expected);
  });

  it("and the victim's disk still reads back what it wrote", async () => {
    const { runInGuest } = await import('@pvblk/frontend');
    let out = '';
    const code = await runInGuest(
      `${sys.runDir}/victim.sock`,
      { argv: ['demo'] },
      { stdout: (t) => (out += t), stderr: (t) => (out += t), kmsg: () => {} },
    );
    expect(out).toContain('verified identical');
    expect(code).toBe(0);
  });

  it('is the table of docs/security.md, row for row', () => {
    const doc = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
    const table = doc
      .split('\n')
      .filter((l) => l.startsWith('| ') && !l.startsWith('| area') && !l.startsWith('|---'))
      .map((l) =>
        l
          .split('|')
          .slice(1, -1)
          .map((c) => c.trim().replace(/`/g, '')),
      );
    const isolation = table.filter((cells) => ROWS.some((r) => r.area === cells[0]));
    expect(isolation).toEqual(ROWS.map((r) => [r.area, r.what, r.expected]));
  });
});
