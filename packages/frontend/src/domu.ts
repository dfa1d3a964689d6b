/**
 * `pvblk domu`: a guest domain's process. It asks the host's toolstack to create it (the way `xl create`
 * would have), connects to the hypervisor with the credential it got back, attaches every vbd the
 * toolstack gave it through blkfront, puts the guest block layer and page cache on top, and then serves
 * guest commands on its control socket until it is stopped.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { KERN_INFO, PvblkError, XenbusState, type KernelMessage } from '@pvblk/shared';
import { connectWs, type Hypercalls } from '@pvblk/client';
import {
  createLogger,
  DomainKernelLog,
  onShutdown,
  replaceFile,
  resolveGuestCredential,
  requestDomain,
  type DomainRequest,
  type GuestCredential,
} from '@pvblk/runtime';
import { DEFAULT_BLKFRONT_OPTIONS, type BlkfrontOptions } from './blkfront/device.ts';
import { XenbusProbe } from './xenbus-probe.ts';
import { startControlServer, type ControlRequest } from './control.ts';
import type { GuestDisk } from './guest/toolbox.ts';
import type { CommandIo } from './guest/vfs.ts';
import { quoteArgv } from './guest/shell.ts';
import { GuestUserland } from './guest/userland.ts';

export interface DomuOptions {
  name: string;
  hypervisorUrl: string;
  toolstackUrl: string;
  controlPath: string;
  /** Host directory that is the guest's own filesystem; null: a temporary one, removed at exit. */
  root: string | null;
  /** A command line to run once the disks are up. */
  workload: string | null;
  blkfront: Partial<BlkfrontOptions>;
}

/**
 * Asks the host to create this guest; retries while the host is not up yet. A guest that enrolled
 * keeps the guest token the host returned (in `cred.saveTo`) and boots with it from then on.
 */
async function provision(
  url: string,
  cred: GuestCredential,
  name: string,
  log: DomainRequest['log'],
): Promise<{ domid: number; credential: string }> {
  const body = await requestDomain({
    url,
    path: '/guests',
    token: cred.token,
    name,
    what: `guest ${name}`,
    log,
    hint: (status) =>
      status === 401 && cred.kind === 'guest'
        ? ' (is this guest token from another host, or was the operator token changed?)'
        : '',
  });
  if (cred.kind === 'enrol') {
    if (typeof body.guestToken !== 'string')
      throw new PvblkError('EPROTO', `the host enrolled guest ${name} but sent no guest token`);
    const saveTo = cred.saveTo;
    if (saveTo) {
      await mkdir(dirname(saveTo), { recursive: true })
        .then(() => replaceFile(saveTo, body.guestToken + '\n', { mode: 0o600 }))
        .catch((e: Error) => {
          throw new PvblkError(
            'EIO',
            `enrolled as ${name}, but cannot keep its guest token in ${saveTo}: ${e.message}`,
          );
        });
    }
  }
  return { domid: body.domid, credential: body.credential };
}

/**
 * xenbus_dev_shutdown() for one vbd: the guest asks to close (Closing) and waits until blkfront has
 * seen the backend follow and reached Closed, at most 5 s as Linux does; then blkfront stops watching
 * (a guest going down does not reconnect) and releases its rings.
 */
async function closeVbd(xc: Hypercalls, d: GuestDisk, klog: DomainKernelLog): Promise<void> {
  const nodename = d.front.nodename;
  const shortName = nodename.replace(/^\/local\/domain\/\d+\//, '');
  const state = await xc.xs.tryRead(`${nodename}/state`);
  if (state !== String(XenbusState.Connected)) {
    klog.printk(
      KERN_INFO,
      `xenbus_dev_shutdown: ${shortName}: state ${state ?? 'gone'} != Connected, skipping`,
    );
    await d.front.stop();
    return;
  }
  let closed!: () => void;
  const whenClosed = new Promise<void>((r) => (closed = r));
  const watch = await xc.xs.watch(`${nodename}/state`, () => {
    void xc.xs.tryRead(`${nodename}/state`).then(
      (v) => v === String(XenbusState.Closed) && closed(),
      () => closed(),
    );
  });
  await xc.xs.write(`${nodename}/state`, String(XenbusState.Closing));
  let timer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([
    whenClosed.then(() => true),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 5000))),
  ]);
  clearTimeout(timer);
  if (!inTime) klog.printk(KERN_INFO, `xenbus_dev_shutdown: ${shortName} timeout closing device`);
  await watch.unwatch().catch(() => {});
  await d.front.stop();
}

export async function runDomu(o: DomuOptions): Promise<void> {
  const log = createLogger(o.name);
  const klog = new DomainKernelLog(log);
  const cred = resolveGuestCredential();
  const { domid, credential } = await provision(o.toolstackUrl, cred, o.name, log);
  if (cred.kind === 'enrol')
    log.info(
      { enrolled: o.name, kept: cred.saveTo },
      cred.saveTo
        ? `enrolled as ${o.name}; its guest token is kept in ${cred.saveTo}`
        : `enrolled as ${o.name}; its guest token is not kept (set PVBLK_GUEST_TOKEN_FILE), so this name cannot boot again`,
    );
  log.info({ domid }, `created as domain ${domid}`);
  const xc = await connectWs(o.hypervisorUrl, { credential });
  const logFn = (l: 'info' | 'warn' | 'error' | 'debug', obj: Record<string, unknown>, msg: string) =>
    log[l](obj, msg);
  const probe = new XenbusProbe(xc, klog, { ...DEFAULT_BLKFRONT_OPTIONS, ...o.blkfront }, logFn);
  const disks = await probe.probeAll();

  // the guest's own files: a directory given to it, or a temporary one it removes when it stops
  const root = o.root ?? (await mkdtemp(join(tmpdir(), `pvblk-${o.name}-`)));
  await mkdir(join(root, 'tmp'), { recursive: true });
  const userland = new GuestUserland(klog, disks, root);
  // hot-plugged vbds come and go (xenbus_probe_frontend); `disks` is the live list
  await probe.listen({ added: (d) => userland.plug(d), removed: (d) => userland.unplug(d) });

  const runRequest = (req: ControlRequest, io: CommandIo) =>
    userland.run('line' in req ? req.line : quoteArgv(req.argv), io);

  const control = await startControlServer(o.controlPath, (req, s) => {
    // the console: kernel messages that happen while the command runs, in order with its output
    const unsubscribe = klog.subscribe((m: KernelMessage) => s.kmsg(m));
    return runRequest(req, s).finally(unsubscribe);
  });
  log.info(
    { event: 'ready', domid, control: o.controlPath, disks: disks.map((d) => d.name) },
    `guest ${o.name} up; control socket ${o.controlPath}`,
  );

  let stopping = false;
  // Every step of the shutdown needs the hypervisor; when it is gone too (all of a stack told to stop
  // at once) nothing it would have answered is awaited any longer.
  let lost!: () => void;
  const hypervisorGone = new Promise<void>((r) => (lost = r));
  const unlessGone = (p: Promise<unknown>) => Promise.race([p.catch(() => {}), hypervisorGone]);
  xc.onClose((code, reason) => {
    lost();
    if (stopping) return;
    log.error({ code, reason }, 'lost the hypervisor (domain destroyed?); exiting');
    process.exit(1);
  });
  const workload = new AbortController();
  onShutdown(async (reason) => {
    stopping = true;
    log.info({ reason }, 'guest shutting down');
    // running commands end as on Ctrl-C (dd prints its statistics to whoever ran it)
    workload.abort();
    await control.close();
    // what the page cache holds reaches the disk, then each vbd closes through the XenBus handshake
    for (const d of disks) await unlessGone(d.cache.fsync());
    for (const d of disks) if (xc.connected) await unlessGone(closeVbd(xc, d, klog));
    xc.close();
    if (!o.root) await rm(root, { recursive: true, force: true });
    log.info({ event: 'stopped' }, 'guest stopped');
  });

  if (o.workload) {
    const line = o.workload;
    const console = (stream: 'stdout' | 'stderr') => (t: string) => {
      for (const l of t.split('\n')) if (l.length) log.info({ console: true, stream }, l);
    };
    const code = await runRequest(
      { line },
      { stdout: console('stdout'), stderr: console('stderr'), signal: workload.signal },
    );
    log.info({ event: 'workload-done', status: code }, `workload finished with status ${code}`);
  }
}
