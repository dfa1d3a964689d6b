/**
 * Driver domains across real processes: `pvblk driver-domain` created by Dom0's toolstack with a
 * driver-domain group token, guests booted with a guest group token and placed by the host
 * (PVBLK_PLACEMENT=spread) on Dom0 or the driver domain; I/O through each; the driver domain killed
 * (its guest is destroyed and exits), started again under its name (same disks), the guest booted again
 * with its data; and what the group tokens may not do.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { deriveGroupToken } from '@pvblk/runtime';
import { pvblk, SECRETS, startProc, tempDir, type Proc } from './helpers.ts';

const GUEST_GROUP = deriveGroupToken(SECRETS.PVBLK_TOOLSTACK_TOKEN, 'guest', 'guest');
const DD_GROUP = deriveGroupToken(SECRETS.PVBLK_TOOLSTACK_TOKEN, 'driver-domain', 'dd');

let dir: ReturnType<typeof tempDir>;
let url = '';
let api = '';
const procs: Proc[] = [];

function start(name: string, args: string[], env: Record<string, string>): Proc {
  const p = startProc(name, args, env);
  procs.push(p);
  return p;
}

function driverDomain(name: string): Proc {
  // only its group token: no Dom0 secret, no operator token
  return start(
    name,
    [
      'driver-domain',
      '--name',
      name,
      '--hypervisor',
      url,
      '--toolstack',
      api,
      '--data-dir',
      join(dir.path, name),
    ],
    { PVBLK_DOM0_SECRET: '', PVBLK_TOOLSTACK_TOKEN: '', PVBLK_DRIVER_DOMAIN_TOKEN: DD_GROUP },
  );
}

function guest(name: string): Proc {
  return start(
    name,
    [
      'domu',
      '--name',
      name,
      '--hypervisor',
      url,
      '--toolstack',
      api,
      '--control',
      join(dir.path, `${name}.sock`),
    ],
    { PVBLK_DOM0_SECRET: '', PVBLK_TOOLSTACK_TOKEN: '', PVBLK_GUEST_TOKEN: GUEST_GROUP },
  );
}

async function inGuest(name: string, line: string) {
  // a simple command as separate arguments, as a user types it; a command line with ; && > as one
  const argv = /[;&|>]/.test(line) ? [line] : line.split(/\s+/);
  return pvblk(['guest', '--run-dir', dir.path, '--name', name, ...argv], { timeoutMs: 60_000 });
}

async function call(
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(new URL(path, api), {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  dir = tempDir('pvblk-dd-');
  const hv = start('hypervisor', ['hypervisor', '--port', '0'], SECRETS);
  url = String((await hv.waitFor((r) => r.event === 'ready')).url);
  const host = start(
    'host',
    [
      'host',
      '--hypervisor',
      url,
      '--api-port',
      '0',
      '--data-dir',
      join(dir.path, 'host'),
      '--disk',
      'dev_size_mb=8',
    ],
    { ...SECRETS, PVBLK_PLACEMENT: 'spread' },
  );
  api = String((await host.waitFor((r) => r.event === 'ready')).api);
}, 60_000);

afterAll(async () => {
  for (const p of [...procs].reverse()) await p.kill('SIGTERM');
  dir?.cleanup();
});

describe('driver domains across processes', () => {
  it('a driver domain is created by Dom0 and connects as an unprivileged domain with its own credential', async () => {
    const dd = driverDomain('dd1');
    const ready = await dd.waitFor((r) => r.event === 'ready');
    const connected = dd.records.find((r) => typeof r.privileged === 'boolean');
    expect(connected?.privileged).toBe(false);
    expect(ready.domid).toBeGreaterThan(0);
  });

  it('places guest1 on Dom0 and guest2 on the driver domain; both do I/O', async () => {
    await guest('guest1').waitFor((r) => r.event === 'ready');
    await guest('guest2').waitFor((r) => r.event === 'ready');
    const list = await call('/guests', SECRETS.PVBLK_TOOLSTACK_TOKEN);
    expect(list.body.placement).toEqual({ guest1: 'Domain-0', guest2: 'dd1' });
    for (const g of ['guest1', 'guest2']) {
      const r = await inGuest(g, 'dd if=/dev/urandom of=/dev/xvda bs=4096 count=64 seek=100 oflag=direct');
      expect(r.code, r.stderr).toBe(0);
    }
    const dd = procs.find((p) => p.name === 'dd1')!;
    await dd.waitFor((r) => /^vbd-\d+-51712 connected to sdg$/.test(String(r.msg)));
  });

  it('a killed driver domain takes guest2 down; started again, guest2 boots with its data', async () => {
    const sum = await inGuest(
      'guest2',
      'dd if=/dev/xvda of=/tmp/x bs=4096 count=64 skip=100 iflag=direct && md5sum /tmp/x',
    );
    expect(sum.code, sum.stderr).toBe(0);
    const md5 = /^([0-9a-f]{32})/m.exec(sum.stdout)?.[1];
    expect(md5).toBeDefined();
    const g2 = procs.find((p) => p.name === 'guest2')!;
    const g1 = procs.find((p) => p.name === 'guest1')!;
    await procs.find((p) => p.name === 'dd1')!.kill('SIGKILL');
    expect(await g2.exited).toBe(1);
    expect(g2.records.some((r) => r.code === 4000)).toBe(true);
    // guest1 (on Dom0) goes on
    expect((await inGuest('guest1', 'dd if=/dev/zero of=/dev/xvda bs=4096 count=1 oflag=direct')).code).toBe(
      0,
    );
    expect(g1.proc.exitCode).toBeNull();
    // while dd1 is away, guest2 cannot boot: its disk is there, so the host tells it to wait (EAGAIN)
    // rather than placing it anew, and the guest waits for the driver domain
    const early = guest('guest2');
    const told = await early.waitFor((r) =>
      String(r.err).includes('driver domain dd1, which is not running'),
    );
    expect(told.msg).toBe('the toolstack cannot create this domain yet; retrying');
    expect(early.records.some((r) => r.event === 'ready')).toBe(false);
    driverDomain('dd1');
    await procs
      .filter((p) => p.name === 'dd1')
      .at(-1)!
      .waitFor((r) => r.event === 'ready');
    // the guest that waited boots once its driver domain is back
    await early.waitFor((r) => r.event === 'ready');
    expect(early.proc.exitCode).toBeNull();
    const again = await inGuest(
      'guest2',
      'dd if=/dev/xvda of=/tmp/x bs=4096 count=64 skip=100 iflag=direct && md5sum /tmp/x',
    );
    expect(again.stdout).toContain(`${md5}  /tmp/x`);
  });

  it('group tokens do only what their group may', async () => {
    const g = await call('/guests', GUEST_GROUP, { name: 'other1' });
    expect(g.status).toBe(403);
    expect(String(g.body.message)).toContain('the guest group guest* may not create guest other1');
    expect((await call('/driver-domains', GUEST_GROUP, { name: 'dd2' })).status).toBe(403);
    expect((await call('/guests', DD_GROUP, { name: 'dd2' })).status).toBe(403);
    expect((await call('/driver-domains', DD_GROUP, { name: 'guest7' })).status).toBe(403);
    expect((await call('/guests', GUEST_GROUP)).status).toBe(403);
    // a running driver domain's name is not free, nor a guest's name for a driver domain
    expect((await call('/driver-domains', DD_GROUP, { name: 'dd1' })).status).toBe(409);
    expect((await call('/driver-domains', SECRETS.PVBLK_TOOLSTACK_TOKEN, { name: 'guest1' })).status).toBe(
      409,
    );
    // a forged group token (another operator's) is no token at all
    const forged = deriveGroupToken('another-operator-token', 'guest', 'guest');
    expect((await call('/guests', forged, { name: 'guest9' })).status).toBe(401);
  });
});
