/**
 * `pvblk host`: Dom0's process — the toolstack, blkback, and the host's SCSI disks — connected to the
 * hypervisor as the control domain, with the management API guests are provisioned through.
 */
import { PvblkError, xvdDevid } from '@pvblk/shared';
import { connectWs } from '@pvblk/client';
import {
  createLogger,
  DomainKernelLog,
  onShutdown,
  resolveDom0Secret,
  resolveToolstackToken,
} from '@pvblk/runtime';
import { startApi } from './api.ts';
import { BlkbackDriver } from './blkback/driver.ts';
import type { BlkbackConfig } from './blkback/config.ts';
import { HostDisks } from './disks.ts';
import { Toolstack } from './toolstack.ts';
import { parseScsiDebugParams } from './scsi/index.ts';
import { handleOperatorRoute, operatorCheck } from './operator-api.ts';

export interface HostProcessOptions {
  hypervisorUrl: string;
  /** Where disks live; null keeps them in memory. */
  dataDir: string | null;
  /** Default scsi_debug parameters of a new guest's disk, modprobe-style. */
  disk: string;
  apiHost: string;
  apiPort: number;
  blkback: Partial<BlkbackConfig>;
  /** Serve each guest the first partition of its disk, starting here (sectors); 0 = the whole disk. */
  partitionStart: number;
}

export async function runHost(opts: HostProcessOptions): Promise<void> {
  const log = createLogger('host');
  const klog = new DomainKernelLog(log);
  parseScsiDebugParams(opts.disk); // refuse bad parameters before anything starts
  const credential = resolveDom0Secret({});
  const token = resolveToolstackToken();
  const xc = await connectWs(opts.hypervisorUrl, {
    credential,
    onRetry: (attempt, delay, err) =>
      log.info({ attempt, delay, err: err.message }, 'hypervisor not reachable yet; retrying'),
  });
  log.info({ domid: xc.domid, url: opts.hypervisorUrl }, 'connected to the hypervisor as the control domain');
  const disks = new HostDisks(opts.dataDir, klog, opts.partitionStart);
  for (const d of await disks.restore())
    log.info({ disk: d.path, guest: d.guest, params: d.params }, `restored disk ${d.path} of ${d.guest}`);
  const toolstack = new Toolstack(xc, (l, o, m) => log[l](o, m));
  await toolstack.start();
  const blkback = new BlkbackDriver({
    xc,
    klog,
    devices: disks,
    config: opts.blkback,
    log: (l, o, m) => log[l](o, m),
  });
  await blkback.start();

  const api = await startApi(opts.apiHost, opts.apiPort, token, {
    createGuest: async ({ name, disk }) => {
      const live = (await xc.domctl.list()).filter((d) => d.name === name && !d.privileged);
      for (const d of live) {
        if (d.connected)
          throw new PvblkError('EEXIST', `a guest named ${name} is running as domain ${d.domid}`);
        await toolstack.destroyDomain(d.domid); // created but never booted: replace it
      }
      const hd = await disks.forGuest(name, disk ?? opts.disk);
      const { domid, credential: guestCredential } = await toolstack.createDomain(name);
      const devid = xvdDevid(0);
      await toolstack.addVbd(domid, {
        devid,
        params: hd.vbd.path,
        major: hd.major,
        minor: hd.minor + (hd.vbd.startSector > 0 ? 1 : 0),
        mode: 'w',
        discard: true,
      });
      return {
        domid,
        credential: guestCredential,
        vbds: [
          {
            dev: 'xvda',
            devid,
            backend: hd.vbd.path,
            startSector: hd.vbd.startSector,
            hctl: hd.hctl,
            params: hd.params,
          },
        ],
      };
    },
    destroyGuest: (domid) => toolstack.destroyDomain(domid),
    listGuests: async () => ({
      domains: await xc.domctl.list(),
      disks: disks.list().map((d) => ({
        guest: d.guest,
        path: d.path,
        hctl: d.hctl,
        params: d.params,
        scsi_debug: d.disk.target.stats(),
      })),
      vbds: blkback.stats(),
    }),
    setDiskParam: async (name, key, value) => {
      const d = disks.get(`/dev/${name}`);
      if (!d) throw new PvblkError('ENOENT', `no disk ${name}`);
      d.disk.target.applyRuntimeParam(key, value);
      log.info({ disk: name, key, value }, `scsi_debug ${name}: ${key}=${value}`);
      return { disk: name, [key]: value };
    },
    injectFault: async (domid, devid, fault) => {
      if (fault !== 'bad-response-id')
        throw new PvblkError('EINVAL', `unknown fault "${fault}" (known: bad-response-id)`);
      const vbd = blkback.vbds.get(`${domid}/${devid}`);
      if (!vbd || !vbd.injectFault({ badResponseId: true }))
        throw new PvblkError('ENOENT', `no connected vbd ${domid}/${devid}`);
      log.warn({ domid, devid, fault }, `fault armed on vbd-${domid}-${devid}: ${fault}`);
      return { armed: fault, vbd: `${domid}/${devid}` };
    },
    operatorRoutes: (req, res) =>
      handleOperatorRoute({ disks, blkback, operator: operatorCheck(credential) }, req, res),
  });
  log.info({ event: 'ready', api: api.url, domid: xc.domid }, `host ready; management API on ${api.url}`);

  let stopping = false;
  xc.onClose((code, reason) => {
    if (stopping) return;
    log.error({ code, reason }, 'lost the hypervisor; exiting');
    process.exit(1);
  });
  onShutdown(async (signal) => {
    stopping = true;
    log.info({ signal }, 'host shutting down');
    api.server.close();
    await blkback.stop();
    await toolstack.stop();
    await disks.closeAll();
    xc.close();
  });
}
