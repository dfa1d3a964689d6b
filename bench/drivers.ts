/**
 * What the drivers cost without the transport, beside what the whole stack and the relay cost, in the
 * same round. Each configuration runs twice:
 *
 * - **in one process**: the broker's logic (LocalHypervisor: frames still go through the wire codec,
 *   both ways, but no WebSocket and no socket), Dom0's blkback over the host's SCSI disk (scsi_debug
 *   in memory, under device-mapper and sd, as `pvblk host --memory` has it), and a guest's blkfront,
 *   block layer and fio — the code of pvblk's three processes, with nothing between them but a
 *   function call a turn later. Its CPU per I/O is what the data path's own code costs;
 * - **as `pvblk bench --baseline`**: pvblk's processes, then the relay (the transport alone, the same
 *   bytes over the same hops), as `bench/end-to-end.ts` runs them.
 *
 *   node --import tsx bench/drivers.ts [--quick] [--repeat N]   (≈ 2 min a round; --quick ≈ 1)
 *
 * The drivers' figure against the relay's says how far a goal set as a ratio to the relay can be
 * reached at all on a machine where both are CPU-bound: the stack cannot cost less than its code plus
 * a transport. The in-process runs are children of this script started as pvblk's processes are (the
 * loader of bin/register.mjs, the node flags of `pvblk up`), one per configuration and round.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHILD_NODE_FLAGS } from '../src/cli/stack.ts';
import {
  figures,
  GOAL_CONFIGS,
  goalJobArgs,
  intArg,
  machineInfo,
  median,
  points,
  printTable,
  pvblkBench,
  quick,
  writeResults,
  type GoalConfig,
} from './lib.ts';

const runtime = quick ? 2 : 5;

const configs = GOAL_CONFIGS;

/** One in-process run, as the child prints it. */
interface InProcess {
  ios: number;
  iops: number;
  userUsPerIo: number;
  systemUsPerIo: number;
}

const diskOf = (c: GoalConfig) => (c.pi ? 'delay=0 dif=1 dix=1' : 'delay=0');
const fioLine = (c: GoalConfig, seconds: number) =>
  `fio --name=${c.job} --filename=/dev/xvda --rw=${c.rw} --bs=${c.bs} --iodepth=${c.iodepth} ` +
  `--direct=1 --time_based --runtime=${seconds}s --output-format=json`;

/** The child: one stack in this process, a warm-up second, then the measured run. */
async function child(c: GoalConfig): Promise<InProcess> {
  const { MemoryKernelLog, xvdDevid } = await import('@pvblk/shared');
  const { LocalHypervisor } = await import('@pvblk/hypervisor');
  const { BlkbackDriver, Toolstack, HostDisks, DEFAULT_DISK_LAYOUT, DEFAULT_HOST_QUOTAS } =
    await import('@pvblk/backend');
  const { XenbusProbe, GuestUserland, DEFAULT_BLKFRONT_OPTIONS } = await import('@pvblk/frontend');
  const { DomainKernelLog } = await import('@pvblk/runtime');
  const lh = new LocalHypervisor();
  const dom0 = await lh.connectDom0();
  const hostKlog = new MemoryKernelLog();
  const toolstack = new Toolstack(dom0);
  await toolstack.start();
  const disks = new HostDisks({
    dataDir: null,
    klog: hostKlog,
    layout: { ...DEFAULT_DISK_LAYOUT },
    quotas: { ...DEFAULT_HOST_QUOTAS },
  });
  const blkback = new BlkbackDriver({ xc: dom0, klog: hostKlog, devices: disks });
  await blkback.start();
  const { disk: hd } = await disks.attach('guest', diskOf(c));
  const { domid, credential } = await toolstack.createDomain('guest');
  await toolstack.addVbd(domid, {
    devid: xvdDevid(0),
    params: hd.vbd.path,
    major: hd.major,
    minor: hd.minor + (hd.vbd.startSector > 0 ? 1 : 0),
    mode: 'w',
    discard: true,
  });
  const xc = await lh.connect(credential);
  const klog = new DomainKernelLog(null);
  const probe = new XenbusProbe(xc, klog, { ...DEFAULT_BLKFRONT_OPTIONS }, () => {});
  const guestDisks = await probe.probeAll();
  const root = await mkdtemp(join(tmpdir(), 'pvblk-drivers-'));
  try {
    const userland = new GuestUserland(klog, guestDisks, root);
    const fio = async (line: string) => {
      let out = '';
      let err = '';
      const signal = new AbortController().signal;
      const status = await userland.run(line, {
        stdout: (t) => (out += t),
        stderr: (t) => (err += t),
        signal,
      });
      if (status !== 0) throw new Error(`${line}: exit status ${status}: ${err.trim()}`);
      return out;
    };
    await fio(fioLine(c, 1));
    const cpu0 = process.cpuUsage();
    const out = await fio(fioLine(c, runtime));
    const cpu = process.cpuUsage(cpu0);
    const job = JSON.parse(out.slice(out.indexOf('{'))).jobs[0];
    const dir = job.write.total_ios > 0 ? job.write : job.read;
    const ios: number = dir.total_ios;
    return { ios, iops: dir.iops, userUsPerIo: cpu.user / ios, systemUsPerIo: cpu.system / ios };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

function runChild(c: GoalConfig): Promise<InProcess> {
  const self = fileURLToPath(import.meta.url);
  const register = fileURLToPath(new URL('../bin/register.mjs', import.meta.url));
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...CHILD_NODE_FLAGS, '--import', register, self, '--child', c.id], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`in-process run of ${c.id} exited with ${code}`));
      try {
        resolve(JSON.parse(out) as InProcess);
      } catch {
        reject(new Error(`in-process run of ${c.id} printed no result: ${out.slice(0, 200)}`));
      }
    });
  });
}

const childAt = process.argv.indexOf('--child');
if (childAt >= 0) {
  const c = configs.find((x) => x.id === process.argv[childAt + 1]);
  if (!c) throw new Error(`no configuration ${process.argv[childAt + 1]}`);
  process.stdout.write(JSON.stringify(await child(c)));
  // the stack's timers and the broker's connections are not torn down: the process is done
  process.exit(0);
}

const repeat = intArg('repeat', 1, 20);
type Figures = ReturnType<typeof figures>;
const inProcess: Record<string, InProcess[]> = {};
const stacks: Record<string, Figures[]> = {};
const load0 = loadavg();
for (let round = 1; round <= repeat; round++) {
  for (const c of configs) {
    process.stderr.write(`drivers: ${c.what}${repeat > 1 ? ` (round ${round} of ${repeat})` : ''} …\n`);
    (inProcess[c.id] ??= []).push(await runChild(c));
    const j = await pvblkBench([
      ...goalJobArgs(c),
      '--direct=1',
      '--time_based',
      `--runtime=${runtime}`,
      '--disk',
      'delay=0',
      '--baseline',
      '--warmup=1s',
    ]);
    (stacks[c.id] ??= []).push(figures(points(j)[0]));
  }
}
const load1 = loadavg();

const f1 = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '–');
const med = (xs: Array<number | null>) => median(xs.filter((x): x is number => x !== null));
printTable(
  [
    'CPU per I/O, medians (µs)',
    'drivers, one process',
    'pvblk, its processes',
    'relay',
    'drivers / relay',
    '(pvblk − drivers) / relay',
  ],
  configs.map((c) => {
    const d = med(inProcess[c.id].map((x) => x.userUsPerIo + x.systemUsPerIo));
    const p = med(stacks[c.id].map((x) => x.cpuPerIoUs));
    const r = med(stacks[c.id].map((x) => x.relayCpuPerIoUs));
    return [c.what, f1(d), f1(p), f1(r), `${(d / r).toFixed(2)}×`, `${((p - d) / r).toFixed(2)}×`];
  }),
);
console.log('');
printTable(
  ['in one process', 'IOPS', 'user (µs/I/O)', 'kernel (µs/I/O)'],
  configs.map((c) => [
    c.what,
    med(inProcess[c.id].map((x) => x.iops)).toFixed(0),
    f1(med(inProcess[c.id].map((x) => x.userUsPerIo))),
    f1(med(inProcess[c.id].map((x) => x.systemUsPerIo))),
  ]),
);
const machine = machineInfo();
console.log(
  `\n${machine.cores} cores (${machine.cpu}), Node ${machine.node}; ${runtime} s a run, ${repeat} round(s); load average ${load0[0].toFixed(2)} before, ${load1[0].toFixed(2)} after`,
);
console.log(
  `results: ${writeResults('drivers', { machine, runtimeSeconds: runtime, repeat, loadavg: { before: load0, after: load1 }, inProcess, stacks })}`,
);
