/**
 * An in-process stack for fast driver tests: the hypervisor (LocalHypervisor, no sockets), Dom0 with the
 * toolstack and blkback over an in-memory disk, and one or more guests with blkfront — the same driver
 * code the processes run.
 */
import { frontendPath, MemoryKernelLog, xvdDevid } from '@pvblk/shared';
import { LocalHypervisor } from '@pvblk/hypervisor';
import type { XenClient } from '@pvblk/client';
import {
  BlkbackDriver,
  MemoryBlockDevice,
  Toolstack,
  type BlkbackConfig,
  type MemoryDeviceOptions,
} from '@pvblk/backend';
import { Blkfront, DEFAULT_BLKFRONT_OPTIONS, type BlkfrontOptions, type BlockRequest } from '@pvblk/frontend';

export interface GuestHandle {
  domid: number;
  xc: XenClient;
  klog: MemoryKernelLog;
  front: Blkfront;
  disk: MemoryBlockDevice;
}

export interface Stack {
  lh: LocalHypervisor;
  dom0: XenClient;
  hostKlog: MemoryKernelLog;
  toolstack: Toolstack;
  blkback: BlkbackDriver;
  disks: Map<string, MemoryBlockDevice>;
  addGuest(o?: { front?: Partial<BlkfrontOptions>; disk?: MemoryDeviceOptions }): Promise<GuestHandle>;
  close(): Promise<void>;
}

export async function startStack(o: { blkback?: Partial<BlkbackConfig> } = {}): Promise<Stack> {
  const lh = new LocalHypervisor({ dom0Credential: 'dom0-local' });
  const dom0 = await lh.connectDom0();
  const hostKlog = new MemoryKernelLog();
  const toolstack = new Toolstack(dom0);
  await toolstack.start();
  const disks = new Map<string, MemoryBlockDevice>();
  const blkback = new BlkbackDriver({
    xc: dom0,
    klog: hostKlog,
    config: o.blkback,
    devices: {
      open: (params) => {
        const d = disks.get(params);
        return d ? { device: d, pdevice: (8 << 20) | 96 } : null;
      },
    },
  });
  await blkback.start();
  const guests: GuestHandle[] = [];
  return {
    lh,
    dom0,
    hostKlog,
    toolstack,
    blkback,
    disks,
    async addGuest(g = {}) {
      const n = guests.length;
      const params = `/dev/sd${String.fromCharCode(103 + n)}`;
      const disk = new MemoryBlockDevice({ name: params.slice(5), ...g.disk });
      disks.set(params, disk);
      const { domid, credential } = await toolstack.createDomain(`guest${n + 1}`);
      const devid = xvdDevid(0);
      await toolstack.addVbd(domid, {
        devid,
        params,
        major: 8,
        minor: 96 + 16 * n,
        mode: 'w',
        discard: true,
      });
      const xc = await lh.connect(credential);
      const klog = new MemoryKernelLog();
      const front = new Blkfront(xc, klog, frontendPath(domid, devid), 'xvda', {
        ...DEFAULT_BLKFRONT_OPTIONS,
        ...g.front,
      });
      await front.start();
      await front.whenConnected();
      const h = { domid, xc, klog, front, disk };
      guests.push(h);
      return h;
    },
    async close() {
      for (const g of guests) {
        await g.front.stop().catch(() => {});
        g.xc.close();
      }
      await blkback.stop();
      await toolstack.stop();
      dom0.close();
    },
  };
}

/** A read or write of `bytes` at `sector` through freshly allocated guest pages. */
export function rwRequest(xc: XenClient, op: 'read' | 'write', sector: number, data: Buffer): BlockRequest {
  const segments = [];
  for (let off = 0; off < data.length; off += 4096) {
    const page = xc.allocPage();
    const len = Math.min(4096, data.length - off);
    if (op === 'write') page.write(0, data.subarray(off, off + len));
    segments.push({ page, off: 0, len });
  }
  return { op, sector, segments };
}

export function gather(req: BlockRequest): Buffer {
  return Buffer.concat(req.segments.map((s) => s.page.buf.subarray(s.off, s.off + s.len)));
}

export function pattern(bytes: number, seed: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 4) b.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ seed) >>> 0, i);
  return b;
}

export async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
