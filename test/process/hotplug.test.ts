/**
 * Hot attach and detach across real processes, driven by `pvblk xl` as an operator would: the
 * hypervisor, the host and the guests are separate processes; the tool is another one, talking to
 * the host API with the operator token. The guest's side is seen through its control socket (lsblk,
 * dd, dmesg) and its log records (the xenbus probe's "disk added", "device removed").
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveGuestToken } from '@pvblk/runtime';
import { pvblk, SECRETS, startSystem, tempDir, type LogRecord } from './helpers.ts';
import type { BlkbackStats } from '@pvblk/backend';
import { api, eventually, sh } from './blkif-peers.ts';

/** blkback's counters of one vbd, as GET /guests reports them. */
async function vbdStats(base: string, domid: number, devid: number): Promise<BlkbackStats | undefined> {
  return (await api<{ vbds: Record<string, BlkbackStats> }>(base, 'GET', '/guests')).vbds[
    `${domid}/${devid}`
  ];
}

type System = Awaited<ReturnType<typeof startSystem>>;
let sys: System;
let guest: Awaited<ReturnType<System['guest']>>;
let guest2: Awaited<ReturnType<System['guest']>>;
let domid: number;
const run = tempDir('pvblk-xl-');

/** `pvblk xl …` as the operator of this system. */
const xl = (...args: string[]) =>
  pvblk(['xl', '--run-dir', run.path, ...args], {
    env: { PVBLK_TOOLSTACK_URL: sys.api, PVBLK_TOOLSTACK_TOKEN: SECRETS.PVBLK_TOOLSTACK_TOKEN },
  });

const added = (dev: string) => (r: LogRecord) => r.msg === `${dev}: disk added`;
const removedAfter = (dev: string, n: number) => {
  let seen = 0;
  return (r: LogRecord) => r.dev === dev && String(r.msg).startsWith(`${dev}: device removed`) && ++seen > n;
};

beforeAll(async () => {
  sys = await startSystem();
  guest = await sys.guest('guest');
  guest2 = await sys.guest('guest2');
  domid = Number((await guest.waitFor((r) => r.event === 'ready')).domid);
  await guest2.waitFor((r) => r.event === 'ready');
});
afterAll(async () => {
  await sys?.stop();
  run.cleanup();
});

describe('xl list and block-list against the running system', () => {
  it("lists Domain-0 and both guests in xl's columns; block-list shows each guest's xvda connected", async () => {
    const list = await xl('list');
    expect(list.code).toBe(0);
    const lines = list.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('Name                                        ID   Mem VCPUs\tState\tTime(s)');
    expect(lines[1]).toMatch(/^Domain-0 {33} {4}0 +\d+ +1 {5}r----- +\d+\.\d$/);
    const row = lines.find((l) => l.startsWith('guest '))!;
    expect(row.slice(41, 46)).toBe(String(domid).padStart(5));
    // a guest waiting for work is blocked; one whose calls the hypervisor is serving is running
    expect(row.slice(63, 69)).toMatch(/^(-b|r-)----$/);
    const bl = await xl('block-list', 'guest');
    expect(bl.code).toBe(0);
    expect(bl.stdout.split('\n')[1]).toMatch(
      new RegExp(
        `^51712 0   ${String(domid).padEnd(6)} 4     \\d+ +\\d+ +/local/domain/0/backend/vbd/${domid}/51712$`,
      ),
    );
  });
});

describe('hot attach, I/O, detach, re-attach', () => {
  it('a new scsi_debug disk appears in the running guest as xvdb; dd writes and reads it back', async () => {
    const r = await xl('block-attach', 'guest', 'vdev=xvdb, access=rw, target=scsi_debug:dev_size_mb=4');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    await guest.waitFor(added('xvdb'));
    const lsblk = await sh(guest.socket, 'lsblk');
    expect(lsblk.out).toMatch(/^xvdb +202:16 +0 +4M +0 disk/m);
    const w = await sh(
      guest.socket,
      'dd if=/dev/urandom of=/tmp/p bs=4096 count=64 status=none && dd if=/tmp/p of=/dev/xvdb bs=4096 oflag=direct status=none && dd if=/dev/xvdb of=/tmp/q bs=4096 count=64 iflag=direct status=none && cmp /tmp/p /tmp/q && echo same',
    );
    expect(w.out).toBe('same\n');
    const bl = await xl('block-list', String(domid));
    expect(bl.stdout).toMatch(new RegExp(`\\n51728 0   ${String(domid).padEnd(6)} 4 `));
    // the dmesg line of a new disk, as blkfront prints it (xlvbd_flush)
    expect((await sh(guest.socket, 'dmesg')).out).toMatch(/blkfront: xvdb: flush diskcache: enabled;/);
  });

  it('detach runs the close: the guest marks the disk dead, it leaves /dev; nothing was left unanswered', async () => {
    const before = guest.records.length;
    const r = await xl('block-detach', 'guest', 'xvdb');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const removed = await guest.waitFor(removedAfter('xvdb', 0));
    expect(removed.unanswered).toBe(0);
    expect(guest.records.slice(before).some((x) => x.msg === 'xvdb: closed by the toolstack')).toBe(true);
    expect((await sh(guest.socket, 'dmesg')).out).toMatch(
      /\] xvdb: detected capacity change from 8192 to 0\n/,
    );
    expect((await sh(guest.socket, 'lsblk')).out).not.toContain('xvdb');
    const dd = await sh(guest.socket, 'dd if=/dev/xvdb of=/dev/null bs=4096 count=1');
    expect(dd.code).toBe(1);
    expect(dd.out).toContain("dd: opening `/dev/xvdb': No such file or directory");
    // both directories are gone: block-list has xvda only
    const bl = await xl('block-list', 'guest');
    expect(bl.stdout.trimEnd().split('\n')).toHaveLength(2);
  });

  it('re-attach finds the same disk and its data (the disk belongs to guest-xvdb)', async () => {
    const r = await xl('block-attach', 'guest', 'vdev=xvdb, target=scsi_debug:');
    expect(r.code).toBe(0);
    await eventually(async () => (await sh(guest.socket, 'lsblk')).out.includes('xvdb'), 'xvdb back');
    const c = await sh(
      guest.socket,
      'dd if=/dev/xvdb of=/tmp/q2 bs=4096 count=64 iflag=direct status=none && cmp /tmp/p /tmp/q2 && echo same',
    );
    expect(c.out).toBe('same\n');
  });

  it('detach under I/O: in-flight requests are answered, the writer fails (ENOSPC or EIO), what it wrote is there', async () => {
    const seen = guest.records.filter(removedAfter('xvdb', -1)).length;
    const writer = sh(guest.socket, 'dd if=/dev/zero of=/dev/xvdb bs=4096 seek=100 count=900 oflag=direct');
    // the stream is under way: blkback has served writes of xvdb
    await eventually(
      async () => ((await vbdStats(sys.api, domid, 51728))?.wr_req ?? 0) >= 50,
      'writes reaching blkback',
    );
    const r = await xl('block-detach', 'guest', 'xvdb');
    expect(r.code).toBe(0);
    const w = await writer;
    expect(w.code).toBe(1);
    // the next write meets a dead disk: ENOSPC when it sees the capacity already 0 (blkdev_write_iter:
    // a write at or past the end), EIO when its request reached the closing blkfront first
    expect(w.out).toMatch(/dd: writing `\/dev\/xvdb': (No space left on device|Input\/output error)\n/);
    expect(w.out).toMatch(/^\d+\+0 records in\n\d+\+0 records out\n/m);
    const removed = await guest.waitFor(removedAfter('xvdb', seen));
    expect(removed.unanswered).toBe(0);
    // what dd says it wrote reached the disk: attach again and read it
    const out = /(\d+)\+0 records out/.exec(w.out)!;
    const written = Number(out[1]);
    expect((await xl('block-attach', 'guest', 'vdev=xvdb, target=scsi_debug:')).code).toBe(0);
    await eventually(async () => (await sh(guest.socket, 'lsblk')).out.includes('xvdb'), 'xvdb back');
    const z = await sh(
      guest.socket,
      `dd if=/dev/zero of=/tmp/z bs=4096 count=${written} status=none && dd if=/dev/xvdb of=/tmp/zz bs=4096 skip=100 count=${written} iflag=direct status=none && cmp /tmp/z /tmp/zz && echo zeros`,
    );
    expect(z.out).toBe('zeros\n');
    expect((await xl('block-detach', 'guest', 'xvdb')).code).toBe(0);
  });

  it("attaching a disk another running guest uses is refused with the block script's message; nothing changes", async () => {
    const before = await xl('block-list', 'guest2');
    const r = await xl('block-attach', 'guest2', 'vdev=xvdc, target=/dev/sdg');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'Device /dev/sdg is mounted in a guest domain,\nand so cannot be mounted now.',
    );
    expect(r.stderr).toMatch(/\nlibxl_device_disk_add failed\.\n$/);
    expect((await xl('block-list', 'guest2')).stdout).toBe(before.stdout);
    // read-only against a read-write user is refused too
    const ro = await xl('block-attach', 'guest2', 'vdev=xvdc, access=ro, target=/dev/sdg');
    expect(ro.stderr).toContain(
      'is mounted read-write in a guest domain,\nand so cannot be mounted read-only now.',
    );
  });
});

describe("a stopped guest's disk attached elsewhere", () => {
  it('the guest cannot boot on it until it is detached', async () => {
    const disk = (await api<{ disks: Array<{ path: string }> }>(sys.api, 'GET', '/guests?name=guest2'))
      .disks[0].path;
    await guest2.kill('SIGTERM');
    await eventually(async () => !(await xl('list')).stdout.includes('guest2 '), 'guest2 gone');
    expect((await xl('block-attach', 'guest', `vdev=xvdd, access=ro, target=${disk}`)).code).toBe(0);
    const refused = await sys.guest('guest2').then(
      () => null,
      (e: Error) => e.message,
    );
    expect(refused).toMatch(/exited \(1\)/);
    expect(refused).toContain(
      `the disk of guest guest2 (${disk}) is attached to domain ${domid} as vbd 51760: detach it first`,
    );
    expect((await xl('block-detach', 'guest', 'xvdd')).code).toBe(0);
    guest2 = await sys.guest('guest2');
    expect((await sh(guest2.socket, 'lsblk')).out).toContain('xvda');
  });
});

describe('bad input: xl messages, exit status 1, nothing changed', () => {
  it('a malformed spec, an unknown domain, an unknown vdev, a vdev already there', async () => {
    const before = await xl('block-list', 'guest', 'guest2');
    const bad = await xl('block-attach', 'guest', 'vdev=xvdc, access=sideways, target=scsi_debug:');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(
      "command line: config parsing error in disk specification: unknown value for access: near `sideways' in `vdev=xvdc, access=sideways, target=scsi_debug:'\n",
    );
    const nodom = await xl('block-attach', 'nosuch', 'vdev=xvdc, target=scsi_debug:');
    expect(nodom.code).toBe(1);
    expect(nodom.stderr).toBe('nosuch is an invalid domain identifier\n');
    const gone = await xl('block-detach', 'guest', 'xvdz');
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe('Error: Device xvdz not connected.\n');
    const dup = await xl('block-attach', 'guest', 'vdev=xvda, target=scsi_debug:');
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('device already exists in xenstore');
    const listUnknown = await xl('block-list', 'nosuch');
    expect(listUnknown.code).toBe(1);
    expect(listUnknown.stderr).toBe('nosuch is an invalid domain identifier\n');
    const missing = await xl('list', '77');
    expect(missing.stderr).toBe("Error: Domain '77' does not exist.\n");
    expect(missing.code).toBe(1);
    expect((await xl('block-list', 'guest', 'guest2')).stdout).toBe(before.stdout);
  });

  it('without the operator credential, or with a guest token, nothing is done', async () => {
    const none = await pvblk(['xl', '--run-dir', run.path, 'list'], {
      env: { PVBLK_TOOLSTACK_URL: sys.api, PVBLK_TOOLSTACK_TOKEN: '', PVBLK_TOOLSTACK_TOKEN_FILE: '' },
    });
    expect(none.code).toBe(1);
    expect(none.stderr).toBe(
      `pvblk: EACCES: no operator credential for ${sys.api}: set PVBLK_TOOLSTACK_TOKEN (or PVBLK_TOOLSTACK_TOKEN_FILE) to the host's operator token\n`,
    );
    const asGuest = await pvblk(['xl', 'block-attach', 'guest2', 'vdev=xvdc, target=scsi_debug:'], {
      env: {
        PVBLK_TOOLSTACK_URL: sys.api,
        PVBLK_TOOLSTACK_TOKEN: deriveGuestToken(SECRETS.PVBLK_TOOLSTACK_TOKEN, 'guest'),
      },
    });
    expect(asGuest.code).toBe(1);
    expect(asGuest.stderr).toContain('HTTP 403');
    const nostack = await pvblk(['xl', '--run-dir', run.path, 'list'], {
      env: { PVBLK_TOOLSTACK_URL: '', PVBLK_TOOLSTACK_TOKEN: SECRETS.PVBLK_TOOLSTACK_TOKEN },
    });
    expect(nostack.code).toBe(1);
    expect(nostack.stderr).toContain(`no running stack: ${run.path} has no toolstack.json`);
  });
});

describe('xl create and destroy', () => {
  it('creates a domain from a config (its own disk and a second one), starts its process; destroy ends it', async () => {
    const cfg = join(run.path, 'guest3.cfg');
    writeFileSync(
      cfg,
      [
        '# a pvblk guest',
        'name = "guest3"',
        'memory = 256',
        "disk = [ 'vdev=xvda, target=scsi_debug:dev_size_mb=4',",
        "         'vdev=xvdb, access=ro, target=scsi_debug:dev_size_mb=2' ]",
        '',
      ].join('\n'),
    );
    const env = {
      PVBLK_TOOLSTACK_URL: sys.api,
      PVBLK_TOOLSTACK_TOKEN: SECRETS.PVBLK_TOOLSTACK_TOKEN,
      PVBLK_HYPERVISOR_URL: sys.url,
    };
    const c = await pvblk(['xl', '--run-dir', run.path, 'create', cfg], { env });
    expect(c.stderr).toBe(`Parsing config from ${cfg}\n`);
    expect(c.code).toBe(0);
    const list = await xl('list', 'guest3');
    expect(list.code).toBe(0);
    const row = list.stdout.split('\n')[1];
    expect(row).toMatch(/^guest3 {35}/);
    expect(row.slice(63, 69)).toMatch(/^(-b|r-)----$/); // booted: not paused
    const sock = join(run.path, 'guest3.sock');
    await eventually(
      async () => (await sh(sock, 'lsblk').catch(() => ({ out: '' }))).out.includes('xvdb'),
      'guest3 up',
    );
    const lsblk = await sh(sock, 'lsblk');
    expect(lsblk.out).toMatch(/^xvda +202:0 +0 +4M +0 disk/m);
    expect(lsblk.out).toMatch(/^xvdb +202:16 +0 +2M +1 disk/m);
    const d = await xl('destroy', 'guest3');
    expect(d.code).toBe(0);
    expect((await xl('list', 'guest3')).stderr).toBe('guest3 is an invalid domain identifier (rc=-6)\n');
    expect((await xl('destroy', '0')).stderr).toContain('Not destroying domain 0; use -f to force.');
  });

  it('reads at most 1 MiB of a config: /dev/zero is refused, not read until memory runs out', async () => {
    const env = {
      PVBLK_TOOLSTACK_URL: sys.api,
      PVBLK_TOOLSTACK_TOKEN: SECRETS.PVBLK_TOOLSTACK_TOKEN,
      PVBLK_HYPERVISOR_URL: sys.url,
    };
    const c = await pvblk(['xl', '--run-dir', run.path, 'create', '/dev/zero'], { env });
    expect(c.stderr).toBe(
      'Parsing config from /dev/zero\nFailed to read config file: /dev/zero: more than 1048576 bytes\n',
    );
    expect(c.code).toBe(1);
  });
});
