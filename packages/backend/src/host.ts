/**
 * `pvblk host`: Dom0's process — the toolstack, blkback, and the host's SCSI disks — connected to the
 * hypervisor as the control domain, with the management API guests are provisioned through.
 */
import { PvblkError, xvdDevid } from '@pvblk/shared';
import { connectWs, type Hypercalls } from '@pvblk/client';
import {
  createLogger,
  deriveGuestToken,
  DomainKernelLog,
  onShutdown,
  resolveDom0Secret,
  resolveEnrolToken,
  resolveOperatorToken,
} from '@pvblk/runtime';
import { describePrincipal, startApi, type Principal } from './api.ts';
import { BlkbackDriver } from './blkback/driver.ts';
import type { BlkbackConfig } from './blkback/config.ts';
import { DEFAULT_DISK_LAYOUT, HostDisks, type DiskLayout } from './disks.ts';
import { checkGuestCount, DEFAULT_HOST_QUOTAS, formatBytes, type HostQuotas } from './quota.ts';
import { Toolstack } from './toolstack.ts';
import { DriverDomains, placementFromEnv } from './driver-domains.ts';
import { parseScsiDebugParams, RUNTIME_WRITABLE_PARAMS } from './scsi/index.ts';
import { SD_TIMEOUT_MAX_S } from './scsi/sd.ts';
import { handleOperatorRoute, operatorCheck } from './operator-api.ts';
import { VbdAttach } from './vbd-attach.ts';
import { OneAtATime } from './one-at-a-time.ts';
import { runXsRequest } from './xenstore-ops.ts';
import { diskViews, domInfos, hypervisorStatusReader, vbdViews } from './observe.ts';
import { hostMetrics } from './metrics.ts';
import { startDashboard } from './dashboard.ts';
import { checkPvblkDisk, parseDiskSpec } from './xl-disk-spec.ts';

/**
 * The faults blkback can arm on a vbd (POST /vbds/<domid>/<devid>/fault), with what each does: the
 * API checks names against this list and the dashboard offers it as it is.
 */
export const VBD_FAULTS: ReadonlyArray<{ name: string; help: string }> = [
  {
    name: 'bad-response-id',
    help: "the next response carries an id the frontend never sent (blkfront fails the device: 'response has incorrect id')",
  },
];

export interface HostProcessOptions {
  hypervisorUrl: string;
  /** Where disks live; null keeps them in memory. */
  dataDir: string | null;
  /** Default scsi_debug parameters of a guest's disk, modprobe-style. */
  disk: string;
  apiHost: string;
  apiPort: number;
  blkback: Partial<BlkbackConfig>;
  /** Serve each guest the first partition of its disk, starting here (sectors); 0 = the whole disk. */
  partitionStart: number;
  quotas?: Partial<HostQuotas>;
  layout?: Partial<DiskLayout>;
}

/** Why the hypervisor connection closed, in words, from the WebSocket close code. */
export function explainClose(code: number, reason: string): string {
  const why: Record<number, string> = {
    1000: 'the hypervisor closed the connection (it is shutting down)',
    1001: 'the hypervisor is going away (shut down or restarted)',
    1006: 'the connection dropped without a close frame: the hypervisor process exited or was killed, or the network failed',
    1009: 'a frame was over the size limit',
    1011: 'the hypervisor hit an internal error',
    4000: 'the hypervisor destroyed this domain',
    4400: 'the hypervisor found a protocol error in what this host sent',
    4401: 'the hypervisor refused this host’s credential (is another Dom0 connected with the same secret?)',
    4429: 'the hypervisor dropped this host for reading its messages too slowly',
  };
  const text = why[code] ?? `the hypervisor closed the connection with code ${code}`;
  return reason ? `${text} (close code ${code}: ${reason})` : `${text} (close code ${code})`;
}

/**
 * A backend (Dom0's host, a driver domain) that loses its hypervisor has nothing left to serve: it
 * says why and exits. Then, on SIGINT/SIGTERM, `stop` runs — and a close it causes is not a loss.
 */
export function serveUntilStopped(
  xc: Pick<Hypercalls, 'onClose'>,
  log: ReturnType<typeof createLogger>,
  what: string,
  stop: () => Promise<void>,
): void {
  let stopping = false;
  xc.onClose((code, reason) => {
    if (stopping) return;
    log.error({ code, reason }, `lost the hypervisor: ${explainClose(code, reason)}; exiting`);
    process.exit(1);
  });
  onShutdown(async (signal) => {
    stopping = true;
    log.info({ signal }, `${what} shutting down`);
    await stop();
  });
}

export async function runHost(opts: HostProcessOptions): Promise<void> {
  const log = createLogger('host');
  const klog = new DomainKernelLog(log);
  parseScsiDebugParams(opts.disk); // refuse bad parameters before anything starts
  const quotas: HostQuotas = { ...DEFAULT_HOST_QUOTAS, ...opts.quotas };
  const credential = resolveDom0Secret({});
  const operatorToken = resolveOperatorToken();
  const enrolToken = resolveEnrolToken();
  const placement = placementFromEnv();
  const disks = new HostDisks({
    dataDir: opts.dataDir,
    klog,
    partitionStart: opts.partitionStart,
    layout: { ...DEFAULT_DISK_LAYOUT, ...opts.layout },
    quotas,
  });
  const xc = await connectWs(opts.hypervisorUrl, {
    credential,
    onRetry: (attempt, delay, err) =>
      log.info({ attempt, delay, err: err.message }, 'hypervisor not reachable yet; retrying'),
  });
  log.info({ domid: xc.domid, url: opts.hypervisorUrl }, 'connected to the hypervisor as the control domain');
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
  const driverDomains = new DriverDomains({
    xc,
    toolstack,
    dataDir: opts.dataDir,
    placement,
    hasDom0Disk: (guest) => disks.has(guest),
    dom0Guests: () => disks.list().map((d) => d.guest),
    log: (l, o, m) => log[l](o, m),
  });
  await driverDomains.start();
  const hotplug = new VbdAttach(xc, toolstack, disks, (l, o, m) => log[l](o, m));
  const readStatus = hypervisorStatusReader(opts.hypervisorUrl, credential);
  const metrics = hostMetrics({ vbds: () => vbdViews(blkback), disks: () => diskViews(disks) });
  /** Domains the operator created (xl create) that wait, paused, for their process: name → credential. */
  const pendingBoots = new Map<string, { domid: number; credential: string }>();

  // one management operation at a time: quotas and names are checked and taken atomically
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => {});
    return run;
  };
  // One request at a time for each principal but the operator: the queue above serves everyone in
  // turn, and 300 creates a guest's token sent at once made every other guest's boot wait behind all
  // of them (2.2 s against 36 ms). A guest acts on its own domain only, so its token has one place
  // whatever it names (keyed by its target, deletes of 3,140 domains not its own, each refused only
  // when served, went through the queue one by one); a group token has one for each name it acts on.
  // The operator is trusted with more.
  const inProgress = new OneAtATime();
  const serialFor = <T>(who: Principal, target: string | number, fn: () => Promise<T>): Promise<T> => {
    if (who.role === 'operator') return serial(fn);
    const of = who.role === 'guest' ? '' : ` for ${typeof target === 'number' ? `domain ${target}` : target}`;
    return inProgress.run(
      JSON.stringify(who) + of,
      `${describePrincipal(who)} has a request${of} in progress already: one at a time`,
      () => serial(fn),
    );
  };

  const listGuests = async (name?: string) => {
    const domains = (await xc.domctl.list()).filter((d) => name === undefined || d.name === name);
    const domids = new Set(domains.map((d) => String(d.domid)));
    const placed = await driverDomains.placements();
    return {
      domains,
      placement: Object.fromEntries([...placed].filter(([g]) => name === undefined || g === name)),
      disks: disks
        .list()
        .filter((d) => name === undefined || d.guest === name)
        .map((d) => ({
          guest: d.guest,
          path: d.path,
          hctl: d.hctl,
          params: d.params,
          scsi_debug: d.disk.target.stats(),
        })),
      vbds: Object.fromEntries(
        Object.entries(blkback.stats()).filter(([k]) => name === undefined || domids.has(k.split('/')[0])),
      ),
    };
  };

  const createGuest = async (
    who: Principal,
    name: string,
    diskParams: string | undefined,
    /** xl create's further disks; given (even empty), the domain waits paused for its process. */
    extraVbds?: string[][],
  ) => {
    /** The reply for a domain created here; enrolment hands out the name's guest token once, to keep. */
    const reply = (domid: number, credential: string, vbds: Array<Record<string, unknown>>) => ({
      domid,
      credential,
      ...(who.role === 'enrol' ? { guestToken: deriveGuestToken(operatorToken, name) } : {}),
      vbds,
    });
    const domains = await xc.domctl.list();
    if (await driverDomains.isDriverDomainName(name))
      throw new PvblkError('EEXIST', `${name} is a driver domain on this host, not a guest`);
    const same = domains.filter((d) => d.name === name && !d.privileged);
    // the process of a domain the operator created (xl create) boots into it, vbds and all
    const pending = pendingBoots.get(name);
    if (pending && who.role !== 'operator' && same.some((d) => d.domid === pending.domid && !d.connected)) {
      pendingBoots.delete(name);
      log.info({ domid: pending.domid, name }, `domain ${pending.domid} (${name}) boots`);
      return { domid: pending.domid, credential: pending.credential, vbds: [] };
    }
    const placed = (await driverDomains.placements()).has(name);
    if (who.role === 'enrol' && (same.length > 0 || placed || (await disks.has(name)))) {
      throw new PvblkError(
        'EEXIST',
        `the name ${name} is taken on this host: enrolment creates only new names; the guest that owns ${name} boots with its guest token (PVBLK_GUEST_TOKEN[_FILE])`,
      );
    }
    for (const d of same) {
      if (d.connected)
        throw new PvblkError('EEXIST', `a guest named ${name} is running as domain ${d.domid}`);
    }
    checkGuestCount(quotas, name, domains.filter((d) => !d.privileged && d.name !== name).length);
    const backend = await driverDomains.place(name);
    if (backend.domid !== 0) {
      // xl's backend=<driver domain>: the disk is the driver domain's, opened by its hotplug
      for (const d of same) await toolstack.destroyDomain(d.domid);
      const { domid, credential: guestCredential } = await toolstack.createDomain(name);
      const devid = xvdDevid(0);
      const vbd = await driverDomains
        .addVbd(domid, backend, name, { devid, mode: 'w', discard: true }, diskParams ?? opts.disk)
        .catch(async (e: unknown) => {
          await toolstack.destroyDomain(domid).catch(() => {});
          throw e;
        });
      await driverDomains.remember(name, backend);
      log.info(
        { guest: name, domid, driverDomain: backend.name, backendDomid: backend.domid, by: who.role },
        `guest ${name}'s disk is served by driver domain ${backend.name} (domain ${backend.domid}) as ${vbd.physicalDevicePath}`,
      );
      return reply(domid, guestCredential, [
        {
          dev: 'xvda',
          devid,
          backend: vbd.physicalDevicePath,
          backendDomain: backend.name,
          backendDomid: backend.domid,
        },
      ]);
    }
    // xl parses every disk of the config before it creates anything: a bad one leaves nothing behind
    for (const spec of extraVbds ?? []) checkPvblkDisk(parseDiskSpec(spec));
    const { disk: hd, created, changes } = await disks.attach(name, diskParams ?? opts.disk);
    try {
      await driverDomains.remember(name, backend);
      if (created) {
        log.info(
          { guest: name, disk: hd.path, params: hd.params, by: who.role },
          `created disk ${hd.path} of ${name} (${formatBytes(hd.disk.sectors * 512)}; ${formatBytes(disks.usedBytes())} of ${formatBytes(quotas.maxTotalDiskBytes)} allotted)`,
        );
      } else {
        log.info({ guest: name, disk: hd.path, params: hd.params }, `reusing disk ${hd.path} of ${name}`);
      }
      for (const c of changes) {
        log.info(
          { disk: hd.path, key: c.key, was: c.was, now: c.now },
          `scsi_debug ${hd.path.slice(5)}: ${c.key}=${c.now} (was ${c.was})`,
        );
      }
      await hotplug.checkBootDisk(hd, name);
      for (const d of same) await toolstack.destroyDomain(d.domid); // created but never booted: replace it
      pendingBoots.delete(name);
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
      // xl create's further disks; any refusal takes the new domain away again
      const attached = [];
      try {
        for (const spec of extraVbds ?? []) attached.push(await hotplug.attach(domid, spec));
      } catch (e) {
        await toolstack.destroyDomain(domid).catch(() => {});
        throw e;
      }
      if (who.role === 'operator' && extraVbds !== undefined)
        pendingBoots.set(name, { domid, credential: guestCredential });
      return reply(domid, guestCredential, [
        {
          dev: 'xvda',
          devid,
          backend: hd.vbd.path,
          startSector: hd.vbd.startSector,
          hctl: hd.hctl,
          params: hd.params,
        },
        ...attached.map((a) => ({ dev: a.vdev, devid: a.devid, backend: a.disk })),
      ]);
    } catch (e) {
      // a disk made for this call goes with it: a refused create keeps nothing
      if (created) await disks.remove(name).catch(() => {});
      throw e;
    }
  };

  const removeDisk = async (which: { disk: string } | { guest: string }) => {
    const hd = 'disk' in which ? disks.get(`/dev/${which.disk}`) : disks.byGuest(which.guest);
    const guest = 'guest' in which ? which.guest : hd?.guest;
    if (guest === undefined) throw new PvblkError('ENOENT', `no disk ${'disk' in which ? which.disk : ''}`);
    const live = (await xc.domctl.list()).filter((d) => d.name === guest && !d.privileged);
    if (live.length > 0) {
      throw new PvblkError(
        'EBUSY',
        `the disk of guest ${guest} is in use by domain ${live[0].domid}: stop the guest first (DELETE /guests/${live[0].domid})`,
      );
    }
    if (hd) {
      const users = await toolstack.vbdsUsing(hd.vbd.path);
      if (users.length > 0)
        throw new PvblkError(
          'EBUSY',
          `the disk of guest ${guest} is still attached to vbd ${users.join(', ')}`,
        );
      await blkback.settled();
    }
    const { path } = await disks.remove(guest);
    await driverDomains.forget(guest);
    log.warn(
      { guest, disk: path },
      `deleted disk ${path} of ${guest} and its data; the name ${guest} is free`,
    );
    return { removed: path, guest };
  };

  // what the dashboard offers to change, as data: each control names its route and fields
  const controls = [
    {
      id: 'vbd-fault',
      label: 'arm a backend fault',
      target: 'vbd',
      method: 'POST',
      path: '/vbds/{domid}/{devid}/fault',
      fields: [
        {
          name: 'fault',
          choices: VBD_FAULTS.map((f) => f.name),
          help: VBD_FAULTS.map((f) => `${f.name}: ${f.help}`),
        },
      ],
    },
    {
      id: 'disk-param',
      label: 'scsi_debug parameter (/sys/bus/pseudo/drivers/scsi_debug/…)',
      target: 'disk',
      method: 'POST',
      path: '/disks/{disk}/params',
      fields: [{ name: 'key', choices: [...RUNTIME_WRITABLE_PARAMS] }, { name: 'value' }],
    },
    {
      id: 'disk-timeout',
      label: 'command timeout in seconds (/sys/block/…/device/timeout)',
      target: 'disk',
      method: 'PUT',
      path: '/disks/{disk}/device/timeout',
      fields: [{ name: 'value' }],
    },
    // device-mapper under the disk (docs/faults.md): the routes are the operator's, as this page is
    {
      id: 'dm-create',
      label: 'dmsetup create: a layer on top (flakey, dust, delay, linear, error)',
      target: 'disk',
      method: 'POST',
      path: '/dm/{disk}',
      fields: [
        { name: 'name' },
        { name: 'table', placeholder: '0 <sectors> flakey /dev/<disk> 0 <up> <down> 1 error_writes' },
      ],
    },
    {
      id: 'dm-message',
      label: 'dmsetup message (dust: addbadblock N, enable, quiet, …)',
      target: 'disk',
      method: 'POST',
      path: '/dm/{disk}/{name}/message',
      fields: [{ name: 'name' }, { name: 'message' }],
    },
    {
      id: 'dm-remove-all',
      label: 'dmsetup remove every layer',
      target: 'disk',
      method: 'DELETE',
      path: '/dm/{disk}',
      fields: [],
    },
  ];
  const dashboard = startDashboard({
    creds: { operatorToken, enrolToken },
    snapshot: async () => {
      const status = await readStatus().catch(() => null);
      return {
        time: Date.now(),
        domains: status ? domInfos(status) : [],
        hypervisor: status,
        vbds: vbdViews(blkback),
        disks: diskViews(disks),
      };
    },
    xenstore: xc.xs,
    log: (l, o, m) => log[l](o, m),
  });
  const api = await startApi(
    opts.apiHost,
    opts.apiPort,
    { operatorToken, enrolToken },
    {
      createGuest: (who, { name, disk, vbds }) =>
        serialFor(who, name, () => createGuest(who, name, disk, vbds)),
      listGuests,
      destroyGuest: (who, domid) =>
        serialFor(who, domid, async () => {
          if (who.role !== 'operator') {
            const d = (await xc.domctl.list()).find((x) => x.domid === domid);
            if (!d || who.role !== 'guest' || d.name !== who.name || d.privileged)
              throw new PvblkError(
                'EACCES',
                `${describePrincipal(who)} may destroy only its own domain (domain ${domid} is not ${who.role === 'guest' ? who.name : 'its'})`,
              );
          }
          await toolstack.destroyDomain(domid);
        }),
      setDiskParam: (name, key, value) =>
        serial(async () => {
          const c = await disks.setParam(`/dev/${name}`, key, value);
          log.info(
            { disk: name, key, value: c.now, was: c.was },
            `scsi_debug ${name}: ${key}=${c.now} (was ${c.was})`,
          );
          return { disk: name, [key]: c.now };
        }),
      diskTimeout: async (name, value) => {
        const d = disks.get(`/dev/${name}`);
        if (!d) throw new PvblkError('ENOENT', `no disk ${name}`);
        const sd = d.disk;
        if (value !== undefined) {
          const was = sd.timeoutSeconds;
          if (!sd.setTimeoutSeconds(value))
            throw new PvblkError(
              'EINVAL',
              `/sys/block/${name}/device/timeout: "${value.slice(0, 32)}" is not a whole number of seconds up to ${SD_TIMEOUT_MAX_S}`,
            );
          log.info(
            { disk: name, timeout: sd.timeoutSeconds, was },
            `sd ${d.hctl} [${name}]: device/timeout ${sd.timeoutSeconds} s (was ${was} s)`,
          );
        }
        return { disk: name, timeout: sd.timeoutSeconds };
      },
      removeDisk: (which) => serial(() => removeDisk(which)),
      injectFault: async (domid, devid, fault) => {
        if (!VBD_FAULTS.some((f) => f.name === fault))
          throw new PvblkError(
            'EINVAL',
            `unknown fault "${fault}" (known: ${VBD_FAULTS.map((f) => f.name).join(', ')})`,
          );
        const vbd = blkback.vbds.get(`${domid}/${devid}`);
        if (!vbd || !vbd.injectFault({ badResponseId: true }))
          throw new PvblkError('ENOENT', `no connected vbd ${domid}/${devid}`);
        log.warn({ domid, devid, fault }, `fault armed on vbd-${domid}-${devid}: ${fault}`);
        return { armed: fault, vbd: `${domid}/${devid}` };
      },
      issueGuestToken: async (name) => ({ name, token: deriveGuestToken(operatorToken, name) }),
      createDriverDomain: (who, name) => serialFor(who, name, () => driverDomains.create(name, who.role)),
      listDomains: async () => domInfos(await readStatus()),
      listVbds: (domid) => hotplug.list(domid),
      attachVbd: (domid, spec) => serial(() => hotplug.attach(domid, spec)),
      detachVbd: (domid, vdev, force) => hotplug.detach(domid, vdev, force),
      xenstore: (req) => runXsRequest(xc.xs, req),
      watchXenstore: async (paths, onEvent) => {
        const watches: Array<{ unwatch(): Promise<void> }> = [];
        try {
          for (const p of paths) watches.push(await xc.xs.watch(p, (path) => onEvent(path)));
        } catch (e) {
          for (const w of watches) await w.unwatch().catch(() => {});
          throw e;
        }
        return async () => {
          for (const w of watches) await w.unwatch().catch(() => {});
        };
      },
      metrics: async () => ({ contentType: metrics.contentType, text: await metrics.metrics() }),
      controls: async () => controls,
      // the fault-injection routes take the Dom0 secret or the operator token, never a guest's
      operatorRoutes: (req, res) => {
        const dom0 = operatorCheck(credential);
        const op = operatorCheck(operatorToken);
        return handleOperatorRoute({ disks, blkback, operator: (t) => dom0(t) || op(t) }, req, res);
      },
    },
    (route, err) => log.error({ route, err }, `internal error on ${route}`),
    (req, res, url) => dashboard.serveStatic(req, res, url),
  );
  dashboard.attach(api.server);
  log.info(
    {
      event: 'ready',
      api: api.url,
      domid: xc.domid,
      quotas,
      enrolment: enrolToken !== null,
      placement,
    },
    `host ready; management API on ${api.url} (up to ${quotas.maxGuests} guests, ${formatBytes(quotas.maxDiskBytes)} per disk, ${formatBytes(quotas.maxTotalDiskBytes)} in all)`,
  );

  serveUntilStopped(xc, log, 'host', async () => {
    await dashboard.close();
    api.server.close();
    await blkback.stop();
    await driverDomains.stop();
    await toolstack.stop();
    await disks.closeAll();
    xc.close();
  });
}
