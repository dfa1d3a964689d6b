/**
 * Peers for the cross-process driver tests: a frontend driven by hand from the test process (a guest
 * domain of its own, provisioned through the host's API like any guest, on its own WebSocket), a Dom0
 * process of the test's choosing (fixtures/dom0.ts), and the host's API as a test reads it.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectWs } from '@pvblk/client';
import { backendPath, frontendPath, xvdDevid } from '@pvblk/shared';
import { runInGuest } from '@pvblk/frontend';
import type { BlkbackStats } from '@pvblk/backend';
import { RawFront, type RawHandshake, type VbdKeys } from '../unit/blkif-peers.ts';
import { SECRETS, startProc, startScript, tempDir, type Proc } from './helpers.ts';

const DOM0 = fileURLToPath(new URL('./fixtures/dom0.ts', import.meta.url));
const DEVID = xvdDevid(0);

/** The host's management API, with the provisioning token. */
export async function api<T = unknown>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${SECRETS.PVBLK_TOOLSTACK_TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const out = (await res.json()) as T;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(out)}`);
  return out;
}

/** blkback's counters for one guest's xvda, as GET /guests reports them. */
export async function vbdStats(base: string, domid: number): Promise<BlkbackStats | undefined> {
  const r = await api<{ vbds: Record<string, BlkbackStats> }>(base, 'GET', '/guests');
  return r.vbds[`${domid}/${DEVID}`];
}

/** Polls an asynchronous condition (a process's state seen from outside) until it holds. */
export async function eventually(cond: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A guest domain whose frontend is this test process: created through the host's API, connected to the
 * hypervisor on its own socket, with the handshake keys the test chooses.
 */
export async function rawGuest(
  hvUrl: string,
  apiUrl: string,
  name: string,
  hs: RawHandshake = {},
  connect = true,
): Promise<RawFront> {
  const { domid, credential } = await api<{ domid: number; credential: string }>(apiUrl, 'POST', '/guests', {
    name,
  });
  const xc = await connectWs(hvUrl, { credential, retryForMs: 5000 });
  const f = new RawFront(xc, { domid, fe: frontendPath(domid, DEVID), be: backendPath(0, domid, DEVID) }, hs);
  if (connect) await f.handshake();
  return f;
}

/** Runs one command line in a guest through its control socket. */
export async function sh(
  socket: string,
  line: string,
): Promise<{ code: number; out: string; kmsg: string[] }> {
  let out = '';
  const kmsg: string[] = [];
  const code = await runInGuest(
    socket,
    { line },
    { stdout: (t) => (out += t), stderr: (t) => (out += t), kmsg: (m) => kmsg.push(m.text) },
  );
  return { code, out, kmsg };
}

/** blkfront's state as the guest's `blkstat` prints it. */
export async function blkstat(socket: string): Promise<Record<string, unknown>> {
  const r = await sh(socket, 'blkstat /dev/xvda');
  if (r.code !== 0) throw new Error(`blkstat failed: ${r.out}`);
  return (JSON.parse(r.out) as { blkfront: Record<string, unknown> }).blkfront;
}

/** Options of the test's Dom0 (fixtures/dom0.ts). */
export interface Dom0Options {
  blkback?: Record<string, unknown>;
  vbd?: VbdKeys;
  disk?: string;
  hostile?: 'keep-grants';
}

/** The hypervisor process and a Dom0 process of the test's choosing; guests are real `pvblk domu`s. */
export async function startCustomSystem(o: Dom0Options = {}) {
  const run = tempDir('pvblk-proc-');
  const hv = startProc('hypervisor', ['hypervisor', '--port', '0'], SECRETS);
  const url = String((await hv.waitFor((r) => r.event === 'ready')).url);
  const dom0 = startScript('dom0', DOM0, [url, JSON.stringify(o)], SECRETS);
  const apiUrl = String((await dom0.waitFor((r) => r.event === 'ready')).api);
  const procs: Proc[] = [hv, dom0];
  return {
    url,
    api: apiUrl,
    host: dom0,
    async guest(name: string, args: string[] = []): Promise<Proc & { socket: string }> {
      const socket = join(run.path, `${name}.sock`);
      const g = startProc(
        name,
        ['domu', '--name', name, '--hypervisor', url, '--toolstack', apiUrl, '--control', socket, ...args],
        SECRETS,
      );
      procs.push(g);
      await g.waitFor((r) => r.event === 'ready');
      return Object.assign(g, { socket });
    },
    async stop() {
      for (const p of [...procs].reverse()) await p.kill('SIGTERM');
      run.cleanup();
    },
  };
}
