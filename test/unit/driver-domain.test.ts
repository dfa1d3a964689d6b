/**
 * Driver domains in-process (LocalHypervisor): Dom0's toolstack creates a driver domain, places a
 * guest's vbd on it with libxl's layout and permissions, the driver domain's hotplug opens its own
 * disk and its unchanged blkback serves the guest's grants; what the driver domain can reach of other
 * domains; a hotplug refusal; a dead driver domain takes the guests it served with it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { frontendPath, gntstName, MemoryKernelLog, xvdDevid } from '@pvblk/shared';
import { LocalHypervisor } from '@pvblk/hypervisor';
import type { XenClient } from '@pvblk/client';
import {
  BlkbackDriver,
  BlockHotplug,
  DriverDomains,
  HostDisks,
  MemoryBlockDevice,
  Toolstack,
} from '@pvblk/backend';
import { Blkfront, DEFAULT_BLKFRONT_OPTIONS } from '@pvblk/frontend';
import { gather, pattern, rwRequest, until } from './stack.ts';

const DEVID = xvdDevid(0);

/** "What a driver domain can reach" in docs/driver-domains.md: attempt → result. */
function docTable(): Record<string, string> {
  const doc = readFileSync(new URL('../../docs/driver-domains.md', import.meta.url), 'utf8');
  const at = doc.indexOf('| the driver domain tries to | result |');
  expect(at, 'the table in docs/driver-domains.md').toBeGreaterThan(0);
  const out: Record<string, string> = {};
  for (const line of doc.slice(at).split('\n').slice(2)) {
    const m = /^\| (.+?) \| (.+?) \|$/.exec(line);
    if (!m) break;
    out[m[1]] = m[2].replace(/, /g, ',');
  }
  return out;
}

async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'allowed';
  } catch (e) {
    return String((e as { code?: string }).code ?? e);
  }
}

interface World {
  lh: LocalHypervisor;
  dom0: XenClient;
  toolstack: Toolstack;
  dds: DriverDomains;
  dom0Blkback: BlkbackDriver;
  dd: { domid: number; xc: XenClient; disks: HostDisks; hotplug: BlockHotplug; blkback: BlkbackDriver };
  guests: Array<{ name: string; domid: number; xc: XenClient; front: Blkfront }>;
}

let w: World;
/** The guests whose disks Dom0 keeps (HostDisks' list in the host). */
let dom0Guests: string[] = [];

async function bootGuest(name: string, diskParams = 'dev_size_mb=8'): Promise<World['guests'][number]> {
  const backend = await w.dds.place(name);
  const { domid, credential } = await w.toolstack.createDomain(name);
  if (backend.domid === 0) {
    dom0Guests.push(name);
    await w.toolstack.addVbd(domid, {
      devid: DEVID,
      params: '/dev/sdg',
      major: 8,
      minor: 96,
      mode: 'w',
      discard: true,
    });
  } else {
    await w.dds.addVbd(domid, backend, name, { devid: DEVID, mode: 'w', discard: true }, diskParams);
  }
  await w.dds.remember(name, backend);
  const xc = await w.lh.connect(credential);
  const front = new Blkfront(
    xc,
    new MemoryKernelLog(),
    frontendPath(domid, DEVID),
    'xvda',
    DEFAULT_BLKFRONT_OPTIONS,
  );
  await front.start();
  await front.whenConnected();
  const g = { name, domid, xc, front };
  w.guests.push(g);
  return g;
}

beforeEach(async () => {
  dom0Guests = [];
  const lh = new LocalHypervisor({ dom0Credential: 'dom0-local' });
  const dom0 = await lh.connectDom0();
  const toolstack = new Toolstack(dom0);
  await toolstack.start();
  const dom0Disk = new MemoryBlockDevice({ name: 'sdg', sectors: 16384 });
  const dom0Blkback = new BlkbackDriver({
    xc: dom0,
    klog: new MemoryKernelLog(),
    devices: { open: (p) => (p === '/dev/sdg' ? { device: dom0Disk, pdevice: (8 << 20) | 96 } : null) },
  });
  await dom0Blkback.start();
  const dds = new DriverDomains({
    xc: dom0,
    toolstack,
    dataDir: null,
    placement: 'spread',
    hasDom0Disk: async (g) => dom0Guests.includes(g),
    dom0Guests: () => dom0Guests,
  });
  await dds.start();
  // the driver domain: created by Dom0's toolstack, connected with its own credential
  const { domid, credential } = await dds.create('dd1');
  const ddXc = await lh.connect(credential);
  const disks = new HostDisks({ dataDir: null, klog: new MemoryKernelLog() });
  const hotplug = new BlockHotplug(ddXc, disks);
  await hotplug.start();
  const blkback = new BlkbackDriver({ xc: ddXc, klog: new MemoryKernelLog(), devices: hotplug.resolver });
  await blkback.start();
  w = { lh, dom0, toolstack, dds, dom0Blkback, dd: { domid, xc: ddXc, disks, hotplug, blkback }, guests: [] };
});

afterEach(async () => {
  for (const g of w.guests) {
    await g.front.stop().catch(() => {});
    g.xc.close();
  }
  await w.dd.blkback.stop().catch(() => {});
  await w.dd.hotplug.stop().catch(() => {});
  w.dd.xc.close();
  await w.dds.stop();
  await w.dom0Blkback.stop();
  await w.toolstack.stop();
  w.dom0.close();
});

describe('a driver domain', () => {
  it('places guests whose names every object inherits like any other (the registry was a plain object)', async () => {
    await bootGuest('constructor'); // spread: a tie, Dom0 first
    await bootGuest('__proto__'); // then the driver domain
    expect(await w.dds.placements()).toEqual(
      new Map([
        ['constructor', 'Domain-0'],
        ['__proto__', 'dd1'],
      ]),
    );
    expect(await w.dds.place('__proto__')).toEqual({ name: 'dd1', domid: w.dd.domid });
    expect(await w.dds.place('constructor')).toEqual({ name: 'Domain-0', domid: 0 });
  });

  it("reaps a guest whose driver domain is gone, reading the guest's backend-id as a XenStore number", async () => {
    const g = await bootGuest('guest1'); // on Dom0
    const node = `${frontendPath(g.domid, DEVID)}/backend-id`;
    const alive = async () => (await w.dom0.domctl.list()).some((d) => d.domid === g.domid);
    // the guest owns its frontend directory; what it writes there that is no domid is not one
    for (const junk of [' 4242', '4242 ', '0x1092', '', '-1']) {
      await g.xc.xs.write(node, junk);
      await w.dds.reap();
      expect(await alive(), JSON.stringify(junk)).toBe(true);
    }
    // a domid that is not running: the vbd's backend is gone, and so is the guest (libxl's rule)
    await g.xc.xs.write(node, '4242');
    await w.dds.reap();
    expect(await alive()).toBe(false);
    w.guests.splice(w.guests.indexOf(g), 1);
    await g.front.stop().catch(() => {});
    g.xc.close();
  });

  it('is an unprivileged domain with the directories libxl gives driver_domain=1', async () => {
    expect(w.dd.xc.privileged).toBe(false);
    expect(w.dd.xc.domid).toBe(w.dd.domid);
    for (const dir of ['libxl', 'device-model', 'error', 'backend'])
      expect(await w.dom0.xs.getPerms(`/local/domain/${w.dd.domid}/${dir}`)).toEqual([`n${w.dd.domid}`]);
    expect(await w.dds.running()).toEqual([{ name: 'dd1', domid: w.dd.domid, connected: true }]);
  });

  it("serves a guest placed on it: libxl's layout and permissions, the guest's grants to the driver domain", async () => {
    const g1 = await bootGuest('guest1'); // spread: a tie, Dom0 first
    const g2 = await bootGuest('guest2'); // then the driver domain, which has fewer disks
    expect(Object.fromEntries(await w.dds.placements())).toEqual({ guest1: 'Domain-0', guest2: 'dd1' });
    const fe = frontendPath(g2.domid, DEVID);
    const be = `/local/domain/${w.dd.domid}/backend/vbd/${g2.domid}/${DEVID}`;
    expect(await w.dom0.xs.read(`${fe}/backend`)).toBe(be);
    expect(await w.dom0.xs.read(`${fe}/backend-id`)).toBe(String(w.dd.domid));
    expect(await w.dom0.xs.getPerms(fe)).toEqual([`n${g2.domid}`, `r${w.dd.domid}`]);
    expect(await w.dom0.xs.getPerms(be)).toEqual([`n${w.dd.domid}`, `r${g2.domid}`]);
    expect(await w.dom0.xs.read(`${be}/params`)).toBe('guest2');
    expect(await w.dom0.xs.read(`${be}/hotplug-status`)).toBe('connected');
    expect(await w.dom0.xs.read(`${be}/physical-device`)).toBe('8:60'); // the driver domain's own sdg
    expect(await w.dom0.xs.read(`${be}/state`)).toBe('4');
    // I/O through the driver domain's blkback lands on the driver domain's disk
    const data = pattern(64 * 1024, 7);
    expect((await g2.front.submit(rwRequest(g2.xc, 'write', 2048, data))).status).toBe('ok');
    const rd = rwRequest(g2.xc, 'read', 2048, Buffer.alloc(data.length));
    expect((await g2.front.submit(rd)).status).toBe('ok');
    expect(gather(rd).equals(data)).toBe(true);
    const disk = w.dd.disks.byGuest('guest2')!;
    const r = await disk.vbd.device.read(2048, data.length / 512);
    expect(r.ok && r.data.equals(data)).toBe(true);
    expect(w.dd.blkback.stats()[`${g2.domid}/${DEVID}`].wr_req).toBeGreaterThan(0);
    expect(w.dom0Blkback.stats()[`${g2.domid}/${DEVID}`]).toBeUndefined();
    expect(w.dom0Blkback.stats()[`${g1.domid}/${DEVID}`]).toBeDefined();
  });

  it('reaches nothing of the domains it does not serve', async () => {
    const g1 = await bootGuest('guest1'); // served by Dom0
    const g2 = await bootGuest('guest2'); // served by dd1
    const me = w.dd.xc;
    const fe1 = frontendPath(g1.domid, DEVID);
    const rows: Array<[string, string]> = [
      [
        "map guest1's ring page (granted to Dom0)",
        gntstName((await me.gnttab.map([{ dom: g1.domid, ref: 8, readonly: true }]))[0].status),
      ],
      [
        "copy out of guest1's ring page",
        gntstName((await me.gnttab.copyFrom([{ dom: g1.domid, ref: 8, off: 0, len: 64 }]))[0].status),
      ],
      ["read guest1's frontend directory", await outcome(me.xs.read(`${fe1}/ring-ref`))],
      [
        "read guest1's backend directory in Dom0's tree",
        await outcome(me.xs.read(`/local/domain/0/backend/vbd/${g1.domid}/${DEVID}/params`)),
      ],
      [
        "write the state of guest2's frontend (which it serves)",
        await outcome(me.xs.write(`${frontendPath(g2.domid, DEVID)}/state`, '6')),
      ],
      ['allocate a port in guest1', await outcome(me.evtchn.allocUnbound(0, g1.domid))],
      [
        'create, destroy or list domains',
        [
          await outcome(me.domctl.create('x')),
          await outcome(me.domctl.destroy(g1.domid)),
          await outcome(me.domctl.list()),
        ].join(','),
      ],
      [
        'write in its home outside its own directories',
        await outcome(me.xs.write(`/local/domain/${me.domid}/name`, 'dom0')),
      ],
    ];
    // the table of docs/driver-domains.md, row for row
    expect(Object.fromEntries(rows)).toEqual(docTable());
    // and guest1 still does I/O through Dom0
    expect((await g1.front.submit(rwRequest(g1.xc, 'write', 0, pattern(4096, 1)))).status).toBe('ok');
  });

  it("refuses a vbd its hotplug could not open, with the driver domain's errno and words", async () => {
    await bootGuest('guest1');
    const backend = await w.dds.place('guest2');
    expect(backend.name).toBe('dd1');
    const { domid } = await w.toolstack.createDomain('guest2');
    const err = (await outcome(
      w.dds.addVbd(
        domid,
        backend,
        'guest2',
        { devid: DEVID, mode: 'w', discard: true },
        'dev_size_mb=100000',
      ),
    )) as string;
    expect(err).toBe('E2BIG');
    const e = await w.dds
      .addVbd(domid, backend, 'guest2', { devid: DEVID, mode: 'w', discard: true }, 'dev_size_mb=100000')
      .catch((x: Error) => x);
    expect((e as Error).message).toMatch(/^E2BIG: driver domain dd1: .*1 GiB/);
    expect(await w.dom0.xs.tryRead(`/local/domain/${w.dd.domid}/backend/vbd/${domid}/${DEVID}`)).toBeNull();
  });

  it('a driver domain that dies takes the guests it served; the others go on', async () => {
    const g1 = await bootGuest('guest1');
    const g2 = await bootGuest('guest2');
    const closed = new Promise<number>((r) => g2.xc.onClose((code) => r(code)));
    w.dd.xc.close(); // its process went away: the hypervisor destroys the domain
    expect(await closed).toBe(4000); // guest2's domain destroyed by the toolstack
    await until(() => !w.lh.hv.domains.has(g2.domid), 'guest2 destroyed');
    expect(w.lh.hv.domains.has(g1.domid)).toBe(true);
    expect((await g1.front.submit(rwRequest(g1.xc, 'write', 0, pattern(4096, 2)))).status).toBe('ok');
    // guest2 stays placed on dd1, and waits for it
    expect(await outcome(w.dds.place('guest2'))).toBe('EAGAIN');
  });
});
