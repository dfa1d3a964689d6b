/**
 * The xenstore tools across processes: `pvblk xenstore-*` as one process, the host (Dom0) performing
 * the operations on its hypervisor connection as another, a guest whose nodes they read. Output
 * shapes and messages are xenstore_client.c's; the watch streams across the host API.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveGuestToken } from '@pvblk/runtime';
import { PVBLK, pvblk, SECRETS, startSystem, tempDir } from './helpers.ts';

type System = Awaited<ReturnType<typeof startSystem>>;
let sys: System;
let domid: number;
const run = tempDir('pvblk-xs-');
const env = () => ({ PVBLK_TOOLSTACK_URL: sys.api, PVBLK_TOOLSTACK_TOKEN: SECRETS.PVBLK_TOOLSTACK_TOKEN });
const xs = (tool: string, ...args: string[]) => pvblk([`xenstore-${tool}`, ...args], { env: env() });

beforeAll(async () => {
  sys = await startSystem();
  const g = await sys.guest('guest');
  domid = Number((await g.waitFor((r) => r.event === 'ready')).domid);
});
afterAll(async () => {
  await sys?.stop();
  run.cleanup();
});

describe('reading the tree as Dom0', () => {
  it('xenstore-ls of a guest\'s vbd: one space per level, name = "value"', async () => {
    const r = await xs('ls', `/local/domain/${domid}/device/vbd`);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('51712 = ""');
    expect(lines).toContain(` backend = "/local/domain/0/backend/vbd/${domid}/51712"`);
    expect(lines).toContain(' state = "4"');
    expect(lines).toContain(' protocol = "x86_64-abi"');
    expect(lines.every((l) => l === '' || /^ ?[a-z0-9-]+ = ".*"$/.test(l))).toBe(true);
  });
  it('-f prints full paths; -p pads with dots and shows the permissions libxl gave', async () => {
    const f = await xs('ls', '-f', `/local/domain/0/backend/vbd/${domid}/51712`);
    expect(f.stdout).toContain(`/local/domain/0/backend/vbd/${domid}/51712/params = "/dev/sdg"\n`);
    const p = await xs('ls', '-p', `/local/domain/${domid}/device/vbd/51712`);
    const state = p.stdout.split('\n').find((l) => l.startsWith('state = '))!;
    // the frontend's nodes are the guest's, readable by Dom0 (libxl's layout)
    // putchar(' ') at column 11, then ". " by column parity (odd columns get the dot) up to 59
    expect(state).toBe(`state = "4"  . . . . . . . . . . . . . . . . . . . . . . . .  (n${domid},r0)`);
    expect(state.indexOf('(')).toBe(62);
  });
  it('xenstore-read, -p, xenstore-list -p, xenstore-exists', async () => {
    const r = await xs('read', `/local/domain/${domid}/name`, `/local/domain/${domid}/domid`);
    expect(r.stdout).toBe(`guest\n${domid}\n`);
    const p = await xs('read', '-p', `/local/domain/${domid}/name`);
    expect(p.stdout).toBe(`/local/domain/${domid}/name: guest\n`);
    const l = await xs('list', '-p', `/local/domain/${domid}`);
    expect(l.stdout.split('\n')).toContain(`/local/domain/${domid}/device`);
    expect((await xs('exists', `/local/domain/${domid}/name`)).code).toBe(0);
    const no = await xs('exists', '/nope');
    expect(no.code).toBe(1);
    expect(no.stderr).toBe('');
  });
});

describe('changing it, and errors as the tools give them', () => {
  it('write with escapes, read them back escaped, chmod -r, rm -t', async () => {
    expect((await xs('write', '/tool/pvblk-test/a/b', 'tab\\there\\001')).code).toBe(0);
    expect((await xs('read', '/tool/pvblk-test/a/b')).stdout).toBe('tab\\there\\001\n');
    expect((await xs('read', '-R', '/tool/pvblk-test/a/b')).stdout).toBe('tab\there\u0001');
    expect((await xs('chmod', '-r', '/tool/pvblk-test', 'n0', `r${domid}`)).code).toBe(0);
    const ls = await xs('ls', '-p', '/tool/pvblk-test');
    expect(ls.stdout).toMatch(
      new RegExp(
        `^a = "" [. ]+ \\(n0,r${domid}\\)\\n b = "tab\\\\there\\\\001" [. ]+ \\(n0,r${domid}\\)\\n$`,
      ),
    );
    expect((await xs('rm', '-t', '/tool/pvblk-test/a/b')).code).toBe(0);
    expect((await xs('exists', '/tool/pvblk-test')).code).toBe(1);
  });
  it('a missing key, a path outside the namespace, a bad permission, usage: exit 1 and the messages', async () => {
    const missing = await xs('read', `/local/domain/${domid}/name`, '/nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("xenstore-read: couldn't read path /nope\n");
    // the tool prints what it read before the failure (its output buffer is written at the end)
    expect(missing.stdout).toBe('guest\n');
    const outside = await xs('write', '/local/../x', 'v');
    expect(outside.code).toBe(1);
    expect(outside.stderr).toMatch(
      /^xenstore-write: could not write path \/local\/\.\.\/x: Invalid argument \(.*only \[A-Za-z0-9-\/_@\] are allowed\)\n$/,
    );
    // an empty key is XenStore's to refuse, as any bad path (the API had said `pairs[0][0] is empty`)
    const empty = await xs('write', '', 'v');
    expect(empty.code).toBe(1);
    expect(empty.stderr).toMatch(
      /^xenstore-write: could not write path : Invalid argument \(.*empty path\)\n$/,
    );
    expect((await xs('exists', '/x')).code).toBe(1);
    const badperm = await xs('chmod', '/tool', 'q0');
    expect(badperm.stderr).toBe("xenstore-chmod: Invalid permission specification: 'q'\n");
    expect(badperm.code).toBe(1);
    const ls = await xs('ls', '/nope');
    expect(ls.stderr).toBe('xenstore-ls: xs_directory (/nope): No such file or directory\n');
    expect(ls.code).toBe(1);
    const usage = await xs('write', '/a');
    expect(usage.stderr).toBe('xenstore-write: Usage: xenstore-write [-h] [-R] key value [...]\n');
    expect(usage.code).toBe(1);
    const rm = await xs('rm', '/nope/x');
    expect(rm.stderr).toBe('xenstore-rm: could not remove path /nope/x\n');
  });
  it('a guest token is refused (403), no token at all too; nothing is written', async () => {
    const asGuest = await pvblk(['xenstore-write', '/tool/g', '1'], {
      env: {
        PVBLK_TOOLSTACK_URL: sys.api,
        PVBLK_TOOLSTACK_TOKEN: deriveGuestToken(SECRETS.PVBLK_TOOLSTACK_TOKEN, 'guest'),
      },
    });
    expect(asGuest.code).toBe(1);
    expect(asGuest.stderr).toContain('HTTP 403');
    const none = await pvblk(['xenstore-ls', '--run-dir', run.path], {
      env: { PVBLK_TOOLSTACK_URL: sys.api, PVBLK_TOOLSTACK_TOKEN: '', PVBLK_TOOLSTACK_TOKEN_FILE: '' },
    });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no operator credential');
    expect((await xs('exists', '/tool/g')).code).toBe(1);
  });
});

describe('xenstore-watch streams across the host', () => {
  it('prints the key at once, then every change below it; -n ends it', async () => {
    const p = spawn(process.execPath, [PVBLK, 'xenstore-watch', '-n', '3', '/tool/pvblk-watch'], {
      env: { ...process.env, ...env() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    const waiters: Array<() => void> = [];
    createInterface({ input: p.stdout }).on('line', (l) => {
      lines.push(l);
      for (const w of waiters.splice(0)) w();
    });
    const linesAtLeast = async (n: number) => {
      while (lines.length < n) await new Promise<void>((r) => waiters.push(r));
    };
    // 'close', not 'exit': every line the watch printed has been read by then
    const exited = new Promise<number | null>((r) => p.on('close', (c) => r(c)));
    await linesAtLeast(1);
    expect(lines[0]).toBe('/tool/pvblk-watch');
    await xs('write', '/tool/pvblk-watch/x', '1');
    await linesAtLeast(2);
    await xs('write', '/tool/pvblk-other', '1'); // not below the key: not reported
    await xs('rm', '/tool/pvblk-watch');
    expect(await exited).toBe(0);
    expect(lines).toEqual(['/tool/pvblk-watch', '/tool/pvblk-watch/x', '/tool/pvblk-watch']);
  });
});
