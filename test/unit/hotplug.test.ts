/**
 * Hot plug in one process, driver to driver: the guest's xenbus probe (a watch on device/vbd), the
 * toolstack's add and libxl-style removal, blkback and blkfront over the in-process hypervisor, on a
 * slow in-memory disk so that requests are on the ring when the device is taken away.
 */
import { describe, expect, it } from 'vitest';
import { backendPath, frontendPath, MemoryKernelLog } from '@pvblk/shared';
import { MemoryBlockDevice } from '@pvblk/backend';
import { DEFAULT_BLKFRONT_OPTIONS, XenbusProbe } from '@pvblk/frontend';
import { pattern, rwRequest, startStack, until } from './stack.ts';

const XVDB = 51728;

async function setup(delayMs: number) {
  const stack = await startStack();
  const { domid, credential } = await stack.toolstack.createDomain('hp');
  const xc = await stack.lh.connect(credential);
  const klog = new MemoryKernelLog();
  const probe = new XenbusProbe(xc, klog, DEFAULT_BLKFRONT_OPTIONS);
  expect(await probe.probeAll()).toEqual([]);
  const events: string[] = [];
  await probe.listen({ added: (d) => events.push(`+${d.name}`), removed: (d) => events.push(`-${d.name}`) });
  const disk = new MemoryBlockDevice({ name: 'sdz', sectors: 2048, delayMs });
  stack.disks.set('/dev/sdz', disk);
  const add = () =>
    stack.toolstack.addVbd(domid, {
      devid: XVDB,
      params: '/dev/sdz',
      major: 8,
      minor: 400,
      mode: 'w',
      discard: true,
    });
  return { stack, domid, xc, klog, probe, events, disk, add };
}

describe('hot plug through xenbus (device/vbd watch) and libxl-style removal', () => {
  it('a vbd added while the guest runs becomes a connected disk; removed, it goes', async () => {
    const s = await setup(0);
    await s.add();
    await until(() => s.events.includes('+xvdb'), 'xvdb added');
    const d = s.probe.disks[0];
    expect(d.name).toBe('xvdb');
    expect(await d.front.submit(rwRequest(s.xc, 'write', 8, pattern(4096, 1)))).toEqual({ status: 'ok' });
    expect(s.disk.data.subarray(8 * 512, 8 * 512 + 4096).equals(pattern(4096, 1))).toBe(true);
    expect(await s.stack.toolstack.removeVbd(s.domid, XVDB)).toEqual({ closed: true });
    await until(() => s.events.includes('-xvdb'), 'xvdb removed');
    expect(s.probe.disks).toEqual([]);
    expect(s.klog.messages.map((m) => m.text)).toContain('xvdb: detected capacity change from 2048 to 0');
    // both directories went; blkback dropped the device
    expect(await s.stack.dom0.xs.tryRead(frontendPath(s.domid, XVDB))).toBeNull();
    expect(await s.stack.dom0.xs.tryRead(backendPath(0, s.domid, XVDB))).toBeNull();
    await until(() => !s.stack.blkback.vbds.has(`${s.domid}/${XVDB}`), 'blkback dropped it');
    await s.probe.stop();
    await s.stack.close();
  });

  it('requests on the ring when the removal starts are answered and complete; later ones fail; none is lost', async () => {
    const s = await setup(20);
    await s.add();
    await until(() => s.events.includes('+xvdb'), 'xvdb added');
    const d = s.probe.disks[0];
    const early = Array.from({ length: 8 }, (_, i) =>
      d.front.submit(rwRequest(s.xc, 'write', i * 8, pattern(4096, i + 10))),
    );
    // on the ring, not answered yet (the disk takes 20 ms a request)
    await until(() => d.front.inflight === 8, 'eight requests in flight');
    const removal = s.stack.toolstack.removeVbd(s.domid, XVDB);
    await until(() => d.front.state === 6, 'the frontend Closed');
    const late = await d.front.submit(rwRequest(s.xc, 'write', 100, pattern(4096, 99)));
    expect(late).toEqual({ status: 'ioerr' });
    expect(await Promise.all(early)).toEqual(Array.from({ length: 8 }, () => ({ status: 'ok' })));
    expect(await removal).toEqual({ closed: true });
    await until(() => s.events.includes('-xvdb'), 'xvdb removed');
    for (let i = 0; i < 8; i++)
      expect(s.disk.data.subarray(i * 8 * 512, i * 8 * 512 + 4096).equals(pattern(4096, i + 10))).toBe(true);
    expect(s.disk.data.subarray(100 * 512, 100 * 512 + 4096).equals(Buffer.alloc(4096))).toBe(true);
    await s.probe.stop();
    await s.stack.close();
  });

  it('a restarted backend (online stays 1) is still survived: the frontend reconnects instead of closing', async () => {
    const s = await setup(0);
    await s.add();
    await until(() => s.events.includes('+xvdb'), 'xvdb added');
    const d = s.probe.disks[0];
    // Closing with online = 1, as a blkback that restarts asks for: the frontend closes, blkback
    // follows to Closed, the frontend comes back (Initialising) and the handshake runs again
    await s.stack.dom0.xs.write(`${backendPath(0, s.domid, XVDB)}/state`, '5');
    await until(() => d.front.stats.reconnects === 1 && d.front.state === 4, 'reconnected');
    expect(s.events).toEqual(['+xvdb']);
    expect(await d.front.submit(rwRequest(s.xc, 'write', 0, pattern(4096, 3)))).toEqual({ status: 'ok' });
    await s.probe.stop();
    await s.stack.close();
  });
});
