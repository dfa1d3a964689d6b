/**
 * `pvblk driver-domain`: a storage driver domain's process — a DomU that runs blkback and its own
 * disks, and no toolstack. It asks Dom0's toolstack to create its domain (POST /driver-domains, as
 * `xl create` of a domain with driver_domain=1 would), connects to the hypervisor with the domain
 * credential it got back (never Dom0's secret: it is unprivileged, and the hypervisor lets it do only
 * what any guest may), and serves the vbds the toolstack places on it: the hotplug opens each disk
 * (hotplug.ts), blkback — unchanged — maps what the guest grants it.
 */
import { connectWs } from '@pvblk/client';
import {
  createLogger,
  DomainKernelLog,
  resolveDriverDomainToken,
  requestDomain,
  type DomainRequest,
} from '@pvblk/runtime';
import { BlkbackDriver } from './blkback/driver.ts';
import type { BlkbackConfig } from './blkback/config.ts';
import { DEFAULT_DISK_LAYOUT, HostDisks, type DiskLayout } from './disks.ts';
import { BlockHotplug } from './hotplug.ts';
import { DEFAULT_HOST_QUOTAS, type HostQuotas } from './quota.ts';
import { serveUntilStopped } from './host.ts';

export interface DriverDomainOptions {
  name: string;
  hypervisorUrl: string;
  toolstackUrl: string;
  /** Where this driver domain's disks live; null keeps them in memory. */
  dataDir: string | null;
  blkback: Partial<BlkbackConfig>;
  partitionStart: number;
  quotas?: Partial<HostQuotas>;
  layout?: Partial<DiskLayout>;
}

/** Asks Dom0's toolstack for this driver domain; retries while the host is not up yet. */
async function createDomain(
  url: string,
  token: string,
  name: string,
  log: DomainRequest['log'],
): Promise<{ domid: number; credential: string }> {
  const r = await requestDomain({
    url,
    path: '/driver-domains',
    token,
    name,
    what: `driver domain ${name}`,
    log,
  });
  return { domid: r.domid, credential: r.credential };
}

export async function runDriverDomain(o: DriverDomainOptions): Promise<void> {
  const log = createLogger(o.name);
  const klog = new DomainKernelLog(log);
  const token = resolveDriverDomainToken();
  const quotas: HostQuotas = { ...DEFAULT_HOST_QUOTAS, ...o.quotas };
  const disks = new HostDisks({
    dataDir: o.dataDir,
    klog,
    partitionStart: o.partitionStart,
    layout: { ...DEFAULT_DISK_LAYOUT, ...o.layout },
    quotas,
  });
  for (const d of await disks.restore())
    log.info({ disk: d.path, guest: d.guest, params: d.params }, `restored disk ${d.path} of ${d.guest}`);
  const { domid, credential } = await createDomain(o.toolstackUrl, token, o.name, log);
  const xc = await connectWs(o.hypervisorUrl, { credential });
  log.info(
    { domid: xc.domid, privileged: xc.privileged, url: o.hypervisorUrl },
    `connected to the hypervisor as driver domain ${o.name} (domain ${domid})`,
  );
  const logFn = (l: 'info' | 'warn' | 'error' | 'debug', obj: Record<string, unknown>, msg: string) =>
    log[l](obj, msg);
  const hotplug = new BlockHotplug(xc, disks, logFn);
  await hotplug.start();
  const blkback = new BlkbackDriver({ xc, klog, devices: hotplug.resolver, config: o.blkback, log: logFn });
  await blkback.start();
  log.info(
    { event: 'ready', domid: xc.domid, disks: disks.list().map((d) => d.path) },
    `driver domain ${o.name} ready (domain ${xc.domid}); serving the vbds Dom0 places on it`,
  );

  serveUntilStopped(xc, log, 'driver domain', async () => {
    await blkback.stop();
    await hotplug.stop();
    await disks.closeAll();
    xc.close();
  });
}
