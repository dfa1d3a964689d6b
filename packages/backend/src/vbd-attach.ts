/**
 * Hot attach and detach of vbds to a running guest, as `xl block-attach`/`block-detach` do through
 * libxl and the block hotplug script:
 *
 *   attach  parse the disk spec (xl's syntax), check the domain and that the vdev is free ("device
 *           already exists in xenstore"), find or create the host disk, refuse a disk another domain
 *           uses in an incompatible mode (check_sharing: "Device /dev/sdh is mounted in a guest
 *           domain, and so cannot be mounted now."), write both directories in one transaction, wait
 *           for the backend's InitWait (LIBXL_INIT_TIMEOUT). The guest's xenbus sees the new
 *           frontend directory and runs the handshake.
 *   detach  libxl's device removal: online = 0 and Closing, the frontend closes (in-flight requests
 *           are answered first: blkback drains before it disconnects), the backend goes Closed, both
 *           directories go; the guest's xenbus sees its directory go and drops the disk.
 *
 * A new disk (`target=scsi_debug:<params>`, pvblk's extension) belongs to the name
 * `<domain name>-<vdev>` in the host's disk registry, like a guest's own disk belongs to its name: it
 * survives detach and a later attach of the same vdev finds the same data.
 */
import { PvblkError } from '@pvblk/shared';
import type { Hypercalls } from '@pvblk/client';
import type { HostDisk, HostDisks } from './disks.ts';
import type { Toolstack, VbdInfo } from './toolstack.ts';
import { checkPvblkDisk, parseDiskSpec, vdevNumber, type PvblkDisk } from './xl-disk-spec.ts';

export interface AttachResult {
  domid: number;
  vdev: string;
  devid: number;
  disk: string;
  mode: 'w' | 'r';
  created: boolean;
  frontend: string;
  backend: string;
}

type Log = (level: 'info' | 'warn' | 'error', obj: Record<string, unknown>, msg: string) => void;

/** The name a new disk attached as `vdev` to domain `name` is registered under. */
export function attachedDiskOwner(domainName: string, vdev: string): string {
  return `${domainName}-${vdev}`;
}

export class VbdAttach {
  constructor(
    private readonly xc: Hypercalls,
    private readonly toolstack: Toolstack,
    private readonly disks: HostDisks,
    private readonly log: Log,
  ) {}

  /** The guest domain `domid` (not Dom0), or ESRCH. */
  private async guestDomain(domid: number): Promise<{ domid: number; name: string }> {
    const d = (await this.xc.domctl.list()).find((x) => x.domid === domid);
    if (!d) throw new PvblkError('ESRCH', `domain ${domid} does not exist`);
    if (d.privileged)
      throw new PvblkError('EINVAL', `domain ${domid} is the control domain: pvblk serves vbds to guests`);
    return d;
  }

  /**
   * check_sharing (tools/hotplug/Linux/block): a read-write attach needs the device unused by any
   * other domain; a read-only one needs it unused read-write. The same domain may use it again.
   */
  private async checkSharing(hd: HostDisk, domid: number, mode: 'w' | 'r'): Promise<void> {
    const users = (await this.toolstack.vbdUsers(hd.vbd.path)).filter((u) => u.domid !== domid);
    const clash = users.find((u) => mode === 'w' || u.mode.includes('w'));
    if (!clash) return;
    const m1 = mode === 'w' ? '' : 'read-write ';
    const m2 = mode === 'w' ? '' : 'read-only ';
    throw new PvblkError(
      'EBUSY',
      `Device ${hd.vbd.path} is mounted ${m1}in a guest domain,\nand so cannot be mounted ${m2}now. (it is vbd ${clash.devid} of domain ${clash.domid})`,
    );
  }

  /** xl block-attach <domid> <spec…> */
  async attach(domid: number, specs: string[]): Promise<AttachResult> {
    const disk: PvblkDisk = checkPvblkDisk(parseDiskSpec(specs));
    const dom = await this.guestDomain(domid);
    if (await this.toolstack.vbdExists(domid, disk.devid))
      throw new PvblkError('EEXIST', `device already exists in xenstore (${disk.vdev} of domain ${domid})`);
    let hd: HostDisk | undefined;
    let created = false;
    if (disk.target.kind === 'disk') {
      hd = this.disks.get(disk.target.path);
      if (!hd)
        throw new PvblkError(
          'ENOENT',
          `no host disk ${disk.target.path} (known: ${
            this.disks
              .list()
              .map((d) => d.path)
              .join(', ') || 'none'
          })`,
        );
    } else {
      const owner = attachedDiskOwner(dom.name, disk.vdev);
      const r = await this.disks.attach(owner, disk.target.params);
      hd = r.disk;
      created = r.created;
      if (created)
        this.log(
          'info',
          { disk: hd.path, owner, params: hd.params },
          `created disk ${hd.path} for ${disk.vdev} of ${dom.name}`,
        );
    }
    await this.checkSharing(hd, domid, disk.mode);
    const { frontend, backend } = await this.toolstack.addVbd(domid, {
      devid: disk.devid,
      params: hd.vbd.path,
      major: hd.major,
      minor: hd.minor + (hd.vbd.startSector > 0 ? 1 : 0),
      mode: disk.mode,
      discard: disk.discard,
      trusted: disk.trusted,
      deviceType: disk.cdrom ? 'cdrom' : 'disk',
    });
    await this.toolstack.waitBackendReady(domid, disk.devid);
    this.log(
      'info',
      { domid, vdev: disk.vdev, disk: hd.path },
      `attached ${hd.vbd.path} to domain ${domid} as ${disk.vdev}`,
    );
    return {
      domid,
      vdev: disk.vdev,
      devid: disk.devid,
      disk: hd.vbd.path,
      mode: disk.mode,
      created,
      frontend,
      backend,
    };
  }

  /** xl block-detach [-f] <domid> <vdev> */
  async detach(
    domid: number,
    vdev: string,
    force: boolean,
  ): Promise<{ domid: number; vdev: string; devid: number; closed: boolean }> {
    await this.guestDomain(domid);
    const n = vdevNumber(vdev);
    if (!n || !(await this.toolstack.vbdExists(domid, n.devid)))
      throw new PvblkError('ENOENT', `Device ${vdev} not connected.`);
    const { closed } = await this.toolstack.removeVbd(domid, n.devid, { force });
    return { domid, vdev, devid: n.devid, closed };
  }

  /** xl block-list <domid> */
  async list(domid: number): Promise<VbdInfo[]> {
    await this.guestDomain(domid).catch((e: unknown) => {
      // Dom0 has no vbds of its own; listing it is not an error
      if (!(e instanceof PvblkError && e.code === 'EINVAL')) throw e;
    });
    return this.toolstack.listVbds(domid);
  }

  /**
   * A guest booting on its own disk: refused while that disk is attached to another domain (an
   * operator attached it elsewhere while the guest was down).
   */
  async checkBootDisk(hd: HostDisk, name: string): Promise<void> {
    const users = await this.toolstack.vbdUsers(hd.vbd.path);
    const doms = await this.xc.domctl.list();
    const other = users.find((u) => doms.find((d) => d.domid === u.domid)?.name !== name);
    if (other)
      throw new PvblkError(
        'EBUSY',
        `the disk of guest ${name} (${hd.vbd.path}) is attached to domain ${other.domid} as vbd ${other.devid}: detach it first (pvblk xl block-detach ${other.domid} ${other.devid})`,
      );
  }
}
