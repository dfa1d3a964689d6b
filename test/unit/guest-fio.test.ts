/**
 * The guest's fio run whole, in one process (the stack of ./stack.ts with a guest booted by
 * XenbusProbe, as the guest process boots): what fio accounts and prints over a real run — ramp_time,
 * the synchronous engines, run time and CPU over a verify phase, group_reporting, the global section,
 * failed jobs — against fio's stat.c, backend.c and init.c, and a buffered job that must leave the
 * guest's event loop free for its signals.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { xvdDevid } from '@pvblk/shared';
import { DomainKernelLog } from '@pvblk/runtime';
import { MemoryBlockDevice } from '@pvblk/backend';
import { DEFAULT_BLKFRONT_OPTIONS, GuestUserland, jobDescription, XenbusProbe } from '@pvblk/frontend';
import { startStack, until, type Stack } from './stack.ts';

interface Ddir {
  runtime: number;
  total_ios: number;
  io_bytes: number;
  bw_samples: number;
  iops_samples: number;
  bw_min: number;
  iops_min: number;
  iops_max: number;
  slat_ns: { N: number };
  clat_ns: { N: number; percentile?: Record<string, number> };
  lat_ns: { N: number };
}
interface FioJson {
  'global options': Record<string, string>;
  jobs: Array<{
    jobname: string;
    groupid: number;
    error: number;
    elapsed: number;
    job_runtime: number;
    usr_cpu: number;
    latency_depth: number;
    latency_target: number;
    latency_window: number;
    latency_percentile: number;
    desc?: string;
    total_err?: number;
    first_error?: number;
    'job options': Record<string, string>;
    read: Ddir;
    write: Ddir;
    trim: Ddir;
    iodepth_level: Record<string, number>;
    iodepth_submit: Record<string, number>;
    iodepth_complete: Record<string, number>;
  }>;
}

let stack: Stack;
let probe: XenbusProbe;
let userland: GuestUserland;
let root: string;
let disks: Awaited<ReturnType<XenbusProbe['probeAll']>>;

beforeAll(async () => {
  stack = await startStack();
  stack.disks.set('/dev/sdg', new MemoryBlockDevice({ name: 'sdg', sectors: 16384 }));
  const { domid, credential } = await stack.toolstack.createDomain('guest');
  await stack.toolstack.addVbd(domid, {
    devid: xvdDevid(0),
    params: '/dev/sdg',
    major: 8,
    minor: 96,
    mode: 'w',
    discard: true,
  });
  const xc = await stack.lh.connect(credential);
  const klog = new DomainKernelLog(null);
  probe = new XenbusProbe(xc, klog, { ...DEFAULT_BLKFRONT_OPTIONS });
  disks = await probe.probeAll();
  root = await mkdtemp(join(tmpdir(), 'pvblk-guest-fio-'));
  userland = new GuestUserland(klog, disks, root);
});

afterAll(async () => {
  await probe?.stop();
  await stack?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

async function fio(args: string, signal = new AbortController().signal) {
  let stdout = '';
  let stderr = '';
  const status = await userland.run(`fio --filename=/dev/xvda ${args}`, {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    signal,
  });
  return { status, stdout, stderr };
}

const json = (out: string): FioJson => JSON.parse(out.slice(out.indexOf('{'))) as FioJson;
/** The first job of a run's JSON report. */
const jobJson = async (args: string) => json((await fio(`${args} --output-format=json`)).stdout).jobs[0];

/**
 * `fio <args>` in the guest, Ctrl-C'd once `ready` holds of its stdout and the requests its disk has
 * seen since: its status, its stdout and those requests.
 */
async function interruptedFio(args: string, ready: (out: string, requests: number) => boolean, what: string) {
  const dev = stack.disks.get('/dev/sdg')!;
  const at = dev.log.length;
  const stop = new AbortController();
  let out = '';
  const run = userland.run(`fio --filename=/dev/xvda ${args}`, {
    stdout: (x) => (out += x),
    stderr: () => {},
    signal: stop.signal,
  });
  await until(() => ready(out, dev.log.length - at), what, 10_000);
  stop.abort('SIGINT');
  const status = await run;
  return { status, out, requests: dev.log.length - at };
}
const total = (m: Record<string, number>) => Object.values(m).reduce((a, b) => a + b, 0);

/** The disk's requests of a run: reads and writes, in the order the disk took them. */
async function requestsOf(run: () => Promise<{ status: number; stdout: string; stderr: string }>) {
  const dev = stack.disks.get('/dev/sdg')!;
  const at = dev.log.length;
  const r = await run();
  const io = dev.log.slice(at).filter((e) => e.op === 'read' || e.op === 'write');
  return { ...r, ops: io.map((e) => e.op), io };
}

describe('the guest fio, run whole', () => {
  it('starts its distributions, run time and CPU again when ramp_time ends (reset_io_stats)', async () => {
    const r = await fio(
      '--name=r --rw=randread --bs=4k --direct=1 --iodepth=8 --ramp_time=300ms --runtime=300ms --time_based --output-format=json',
    );
    expect(r.status).toBe(0);
    const j = json(r.stdout).jobs[0];
    expect(j.read.total_ios).toBeGreaterThan(0);
    // every I/O counted once: the shares add up to 100 % (each at least 0.1 when any, as calc_dist)
    for (const m of [j.iodepth_level, j.iodepth_submit, j.iodepth_complete]) {
      expect(total(m)).toBeGreaterThan(99.5);
      expect(total(m)).toBeLessThan(101);
    }
    // each refill is counted at the depth it leaves the queue at, as fio's td_io_commit() counts a
    // commit: a queue kept full reads 8 for all but its first fill (counted at each I/O's own place it
    // read 12.5 %)
    expect(j.iodepth_level['8']).toBeGreaterThan(98);
    // total_run_time runs from the end of the ramp, as the direction's runtime does
    expect(j.job_runtime).toBeGreaterThanOrEqual(j.read.runtime);
    expect(j.job_runtime).toBeLessThanOrEqual(j.read.runtime + 1);
  });

  it("counts a size-bound job's ramp in its size: the size once, ramp included (io_issue_bytes outlives the ramp)", async () => {
    const dev = stack.disks.get('/dev/sdg')!;
    const reads = () => dev.log.filter((e) => e.op === 'read').length;
    // the job ends inside its ramp: fio 3.33 reported its I/O (4096KiB of 4 MiB) with no latencies
    let at = reads();
    const inRamp = await jobJson('--name=r --rw=randread --bs=4k --direct=1 --size=256k --ramp_time=30s');
    expect(reads() - at).toBe(64);
    expect(inRamp.read.total_ios).toBe(64);
    expect(inRamp.read.clat_ns.N).toBe(0);
    expect(inRamp.read.runtime).toBeGreaterThan(0);
    const normal = (await fio('--name=r --rw=randread --bs=4k --direct=1 --size=256k --ramp_time=30s'))
      .stdout;
    expect(normal).toMatch(/^ {2}read: IOPS=[\d.]+k?, BW=.*\(256KiB\/\d+msec\)\n {2}cpu {10}: /m);
    // the ramp ends first: the device still reads the size once, the report counts what followed
    at = reads();
    const after = json(
      (await fio('--name=r --rw=randread --bs=4k --direct=1 --size=8m --ramp_time=20ms --output-format=json'))
        .stdout,
    ).jobs[0];
    expect(reads() - at).toBe(2048);
    expect(after.read.total_ios).toBeLessThan(2048);
    expect(after.read.clat_ns.N).toBe(after.read.total_ios);
  });

  it("shows a job in its ramp_time as eta.c's TD_RAMP: '/', no file open, no percentage", async () => {
    const r = await fio(
      // the bench's lines (--pvblk_eta) are never bare, so the line at 1 s shows the ramp
      '--name=r --rw=randread --bs=4k --direct=1 --iodepth=2 --ramp_time=1200ms --runtime=200ms --time_based --eta=always --pvblk_eta',
    );
    expect(r.status).toBe(0);
    const lines = r.stdout
      .split('\r')
      .map((l) => l.slice(l.lastIndexOf('\n') + 1))
      .filter((l) => l.startsWith('Jobs: '));
    // the line drawn 1 s in, during the ramp
    expect(lines[0]).toMatch(/^Jobs: 1 \(f=0\): \[\/\(1\)\]\[-\.-%\]\[eta \d\dm:\d\ds\] *$/);
  });

  it('records no slat for a synchronous engine, and says its queue depth is capped', async () => {
    const r = await fio(
      '--name=s --rw=randwrite --bs=4k --direct=1 --ioengine=psync --iodepth=4 --size=256k --output-format=json',
    );
    expect(r.status).toBe(0);
    const notes = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('note: both iodepth >= 1 and synchronous I/O engine'));
    expect(notes).toEqual([
      'note: both iodepth >= 1 and synchronous I/O engine are selected, queue depth will be capped at 1',
    ]);
    const j = json(r.stdout).jobs[0];
    expect(j.write.total_ios).toBe(64);
    expect(j.write.slat_ns.N).toBe(0);
    expect(j.write.clat_ns.N).toBe(64);
    const normal = await fio('--name=s --rw=randwrite --bs=4k --direct=1 --ioengine=psync --size=256k');
    expect(normal.stdout).toMatch(/^ {4}clat \(/m);
    expect(normal.stdout).not.toMatch(/^ {4}slat /m);
    // an asynchronous engine does record it
    const a = json(
      (await fio('--name=a --rw=randwrite --bs=4k --direct=1 --iodepth=4 --size=256k --output-format=json'))
        .stdout,
    );
    expect(a.jobs[0].write.slat_ns.N).toBe(64);
  });

  it('measures a verify_only job over its verify phase: it ran for a time, and said when', async () => {
    expect(
      (await fio('--name=w --rw=write --bs=4k --direct=1 --size=512k --verify=crc32c --do_verify=0')).status,
    ).toBe(0);
    const r = await fio(
      '--name=v --rw=read --bs=4k --direct=1 --size=512k --verify=crc32c --verify_only --output-format=json',
    );
    expect(r.status).toBe(0);
    const j = json(r.stdout).jobs[0];
    // before, the run time of a job that never ran its workload was 0, and its CPU was divided by 1 ms
    expect(j.job_runtime).toBeGreaterThan(0);
    expect(j.elapsed).toBeGreaterThanOrEqual(1);
  });

  it('adds up the run times of a group (sum_thread_stats), and lists the global section apart', async () => {
    const r = await fio(
      '--name=global --rw=randread --bs=4k --direct=1 --iodepth=2 --runtime=200ms --time_based --name=g --numjobs=2 --group_reporting --output-format=json',
    );
    expect(r.status).toBe(0);
    const doc = json(r.stdout);
    expect(doc['global options']).toEqual({
      filename: '/dev/xvda',
      rw: 'randread',
      bs: '4k',
      direct: '1',
      iodepth: '2',
      runtime: '200ms',
    });
    const j = doc.jobs[0];
    expect(doc.jobs).toHaveLength(1);
    // a flag given bare is on fio's dump list with no value, which its JSON writer leaves out
    expect(j['job options']).toEqual({ name: 'g', numjobs: '2' });
    expect(j.latency_depth).toBe(2);
    // two jobs side by side, each running its 200 ms at least: added up, not the longer of the two (the
    // group's read runtime, just over 200 ms). Not twice that: jobs of 201 and 206 ms sum to 407
    expect(j.read.runtime).toBeGreaterThanOrEqual(200);
    expect(j.job_runtime).toBeGreaterThanOrEqual(2 * 200 - 2);
    expect(j.job_runtime).toBeLessThan(2 * j.read.runtime + 100);
  });

  it('takes group_reporting and percentile_list as job options, as fio: a job with group_reporting joins the report before it', async () => {
    const heads = (out: string) => out.split('\n').filter((l) => /^\w+: \(groupid=/.test(l));
    // fio 3.33: a's two clones in one report, b (no group_reporting) in its own
    const split = await fio(
      '--size=64k --direct=1 --name=a --rw=read --group_reporting --numjobs=2 --name=b --rw=write',
    );
    expect(heads(split.stdout)).toEqual([
      expect.stringMatching(/^a: \(groupid=0, jobs=2\): err= 0: /),
      expect.stringMatching(/^b: \(groupid=0, jobs=1\): err= 0: /),
    ]);
    // each job's own percentiles (fio 3.33: `50th` for a, `90th` and `99th` for b)
    const lists = json(
      (
        await fio(
          '--size=64k --direct=1 --name=a --percentile_list=50 --name=b --percentile_list=90:99 --output-format=json',
        )
      ).stdout,
    ).jobs.map((j) => Object.keys((j.read.clat_ns as unknown as { percentile: object }).percentile));
    expect(lists).toEqual([['50.000000'], ['90.000000', '99.000000']]);
    // a group has its last job's latency depth (fio 3.33: depth=8), its first job's name
    const depth = await fio(
      '--size=64k --direct=1 --group_reporting --name=a --iodepth=1 --name=b --iodepth=8',
    );
    expect(heads(depth.stdout)).toEqual([expect.stringMatching(/^a: \(groupid=0, jobs=2\)/)]);
    expect(depth.stdout).toMatch(/^ {5}latency {3}: target=0, window=0, percentile=100\.00%, depth=8$/m);
  });

  it('reports a group as one job whatever its sections, as __show_run_stats() merges a groupid', async () => {
    const r = await fio(
      '--group_reporting --name=a --rw=read --bs=4k --size=256k --direct=1 --name=b --rw=write --bs=64k --size=256k --direct=1 --numjobs=2',
    );
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n').filter((l) => /^\w+: \(groupid=/.test(l))).toEqual([
      expect.stringMatching(/^a: \(groupid=0, jobs=3\): err= 0: /),
    ]);
    // the one report holds both directions
    expect(r.stdout).toMatch(/^ {2}read: IOPS=/m);
    expect(r.stdout).toMatch(/^ {2}write: IOPS=/m);
    const terse = await fio(
      '--group_reporting --name=a --rw=read --size=64k --direct=1 --name=b --rw=read --size=64k --direct=1 --minimal',
    );
    // one terse line; before it a's job line, as fio 3.33 prints it: --minimal came after a was added
    expect(terse.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^a: \(g=0\): rw=read, /),
      expect.stringMatching(/^3;fio-[\d.]+;a;0;0;128;/),
    ]);
  });

  it("prints a job's description where stat.c does: under its job line, as JSON desc, last in terse", async () => {
    const job = '--name=d --rw=read --bs=4k --size=64k --direct=1 --description="warm read"';
    const normal = await fio(job);
    expect(normal.status).toBe(0);
    expect(normal.stdout).toMatch(
      /^d: \(groupid=0, jobs=1\): err= 0: .*\n {2}Description {2}: \[warm read\]\n {2}read: IOPS=/m,
    );
    const j = json((await fio(`${job} --output-format=json`)).stdout).jobs[0];
    expect(j.desc).toBe('warm read');
    // after the latency target's keys
    expect(Object.keys(j).indexOf('desc')).toBe(Object.keys(j).indexOf('latency_window') + 1);
    const terse = (await fio(`${job} --minimal`)).stdout.trim();
    expect(terse.split(';').at(-1)).toBe('warm read');
    // the field before it is the disk's utilisation, where a job without a description ends
    expect(terse.split(';').at(-2)).toMatch(/^\d+\.\d\d%$/);
    const plain = await fio('--name=n --rw=read --bs=4k --size=64k --direct=1 --output-format=terse,json');
    expect(plain.stdout).not.toContain('"desc"');
    expect(plain.stdout.split('\n').find((l) => l.startsWith('3;'))).toMatch(/;\d+\.\d\d%$/);
    // with group_reporting, the group is described as its first job
    const group = await fio(
      '--group_reporting --name=a --rw=read --size=64k --direct=1 --description=first --name=b --rw=read --size=64k --direct=1 --description=second --minimal',
    );
    expect(group.stdout.trim().split(';').at(-1)).toBe('first');
  });

  it("keeps a description's first 255 bytes, as fio's FIO_JOBDESC_SIZE does, never half a character", () => {
    expect(jobDescription('x'.repeat(300))).toBe('x'.repeat(255));
    expect(jobDescription('x'.repeat(255))).toBe('x'.repeat(255));
    // 254 bytes, then a two-byte character that would end at 256: left out whole
    expect(jobDescription('x'.repeat(254) + 'é' + 'y')).toBe('x'.repeat(254));
    expect(jobDescription('x'.repeat(253) + 'é' + 'y')).toBe('x'.repeat(253) + 'é');
  });

  it('samples bw and iops once per whole 500 ms window, none for the short last one (__add_samples)', async () => {
    const j = await jobJson(
      '--name=t --rw=randread --bs=4k --iodepth=4 --direct=1 --runtime=1300ms --time_based',
    );
    expect(j.read.runtime).toBeGreaterThanOrEqual(1300);
    expect(j.read.bw_samples).toBe(2);
    expect(j.read.iops_samples).toBe(2);
    expect(j.read.bw_min).toBeGreaterThan(0);
    // the first fill went in one I/O at a time, as fio's: its depths 1 and 2-3 show at fio's 0.1 % floor
    for (const d of ['1', '2']) {
      expect(j.iodepth_level[d]).toBeGreaterThanOrEqual(0.1);
      expect(j.iodepth_level[d]).toBeLessThan(1);
    }
    expect(j.iodepth_level['4']).toBeGreaterThan(99);
  });

  it('records slat for buffered I/O through an asynchronous engine, not through psync', async () => {
    const aio = json(
      (await fio('--name=b --rw=randwrite --bs=4k --iodepth=4 --size=64k --output-format=json')).stdout,
    );
    expect(aio.jobs[0].write.slat_ns.N).toBe(16);
    const psync = json(
      (await fio('--name=b --rw=randwrite --bs=4k --ioengine=psync --size=64k --output-format=json')).stdout,
    );
    expect(psync.jobs[0].write.slat_ns.N).toBe(0);
    expect(psync.jobs[0].write.clat_ns.N).toBe(16);
  });

  it('prints the ETA line with the normal output only (eta.c), unless the bench asks with --pvblk_eta', async () => {
    const job = '--name=e --rw=randread --bs=4k --direct=1 --runtime=1200ms --time_based --eta=always';
    const plain = await fio(`${job} --output-format=json`);
    expect(plain.stdout).not.toContain('Jobs: 1 (f=1)');
    const bench = await fio(`${job} --output-format=json --pvblk_eta`);
    expect(bench.stdout).toContain('Jobs: 1 (f=1)');
    expect(json(bench.stdout.slice(bench.stdout.indexOf('\n{'))).jobs[0].read.total_ios).toBeGreaterThan(0);
  });

  it('draws bare ETA lines until 3 s, then full ones, padded over the last full one; one new line ends them', async () => {
    const r = await fio(
      '--name=e --rw=randread --bs=4k --direct=1 --runtime=4600ms --time_based --eta=always',
    );
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\r');
    const etas = lines.slice(0, -1).map((l) => l.slice(l.lastIndexOf('\n') + 1));
    // lines at 1, 2 and 3 s at least: 0.6 s to spare for a loaded machine's late timers (4.6 s: a
    // runtime of 3.6 s is 3 whole seconds to eta.c, all gone at 3 s, and a first ETA of 0 is `-.-%`)
    expect(etas.length).toBeGreaterThanOrEqual(3);
    // eta.c has no estimate in its first whole seconds: the line at 1 s is the count alone, as fio
    // 3.33 draws it; the one at 3 s has one
    expect(etas[0]).toBe('Jobs: 1 (f=1)');
    expect(etas[etas.length - 1]).toMatch(
      /^Jobs: 1 \(f=1\): \[r\(1\)\]\[\d+\.\d%\]\[r=.*\]\[eta \d\dm:\d\ds\] *$/,
    );
    const full = etas.filter((l) => l !== 'Jobs: 1 (f=1)');
    expect(etas.slice(0, etas.length - full.length).every((l) => l === 'Jobs: 1 (f=1)')).toBe(true);
    // display_thread_status()'s percentage: whole seconds since the start over those and the ETA,
    // so every one shown is e / (e + eta) for the line's eta and some whole e of 3 or more
    for (const l of full) {
      const m = /\]\[(\d+\.\d)%\].*\[eta 00m:(\d\d)s\]/.exec(l)!;
      const [perc, eta] = [Number(m[1]), Number(m[2])];
      const whole = [3, 4, 5, 6].some((e) => Math.abs((100 * e) / (e + eta) - perc) <= 0.05);
      expect(whole, l).toBe(true);
    }
    // eta.c pads a shorter line over the tail of the full one before (linelen_last)
    for (let i = 1; i < full.length; i++) expect(full[i].length).toBeGreaterThanOrEqual(full[i - 1].length);
    // fio's run ends with one new line: the report follows the last ETA line at once, no blank line
    expect(lines[lines.length - 1]).toMatch(/^\ne: \(groupid=0, jobs=1\): err= 0/);
  });

  it("holds a job to its rate: rate_iops's count over a runtime, a mix's split, a ramp's reset", async () => {
    // 200 writes a second for 1 s: fio 3.33 issued 400 over 2 s with this job (rate × runtime)
    const w = await jobJson(
      '--name=w --rw=randwrite --bs=4k --direct=1 --iodepth=4 --rate_iops=200 --runtime=1s --time_based',
    );
    expect(w.write.total_ios).toBeGreaterThanOrEqual(196);
    expect(w.write.total_ios).toBeLessThanOrEqual(201);
    // a mix with a rate each way: the rates split it, not rwmixread (fio 3.33: 25 reads, 75 writes,
    // 247 ms for this job)
    const m = await jobJson('--name=m --rw=randrw --bs=4k --direct=1 --size=400k --rate_iops=100,300');
    expect(m.read.total_ios + m.write.total_ios).toBe(100);
    expect(Math.abs(m.read.total_ios - 25)).toBeLessThanOrEqual(3);
    expect(m.job_runtime).toBeGreaterThanOrEqual(230);
    // after a ramp the rate's clock starts again with the epoch: not a burst to catch up the ramp
    const r = await jobJson(
      '--name=r --rw=randread --bs=4k --direct=1 --rate_iops=100 --ramp_time=500ms --runtime=1s --time_based',
    );
    expect(r.read.total_ios).toBeGreaterThanOrEqual(97);
    expect(r.read.total_ios).toBeLessThanOrEqual(101);
  });

  it('thinks between I/Os (thinktime): stalls, spins, and ends at once when stopped mid-thought', async () => {
    // 100 ms of thought after each block, looked at once the full queue was reaped (do_io()): ten in
    // a second at most
    const t = await jobJson(
      '--name=t --rw=randread --bs=4k --direct=1 --thinktime=100ms --runtime=1s --time_based',
    );
    expect(t.read.total_ios).toBeGreaterThanOrEqual(5);
    expect(t.read.total_ios).toBeLessThanOrEqual(10);
    // the thought after the last I/O is the job's too: 2 blocks, 2 thoughts of 300 ms (fio 3.33 ran
    // 4001 ms for this job with thoughts of 2 s)
    const last = await jobJson('--name=l --rw=randread --bs=4k --direct=1 --size=8k --thinktime=300ms');
    expect(last.read.total_ios).toBe(2);
    expect(last.job_runtime).toBeGreaterThanOrEqual(600);
    // a job that ends in its ramp while thinking is still reported, beside one that runs on
    const two = json(
      (
        await fio(
          '--rw=randread --bs=4k --direct=1 --output-format=json --name=a --size=8k --ramp_time=200ms --thinktime=400ms --name=b --time_based --runtime=1s',
        )
      ).stdout,
    ).jobs;
    expect(two.map((j) => j.jobname)).toEqual(['a', 'b']);
    // half of each thought spun: the job's CPU shows it (a thought asleep costs none)
    const spin = (await jobJson(
      '--name=s --rw=randread --bs=4k --direct=1 --thinktime=100ms --thinktime_spin=50ms --runtime=1s --time_based',
    )) as unknown as { usr_cpu: number; read: { total_ios: number } };
    expect(spin.usr_cpu).toBeGreaterThan(30);
    expect(spin.read.total_ios).toBeLessThanOrEqual(10);
    // a thought of 10 minutes: Ctrl-C, once the first read has gone, ends the job during it, with
    // its report
    const interrupted = async (opts: string, afterMs = 0) => {
      const t0 = Date.now();
      const r = await interruptedFio(
        `--rw=randread --bs=4k --direct=1 --thinktime=600s ${opts}`,
        (_, reads) => reads >= 1 && Date.now() - t0 >= afterMs,
        'a read',
      );
      expect(r.status).toBe(128);
      return r.out;
    };
    expect(await interrupted('--name=z --runtime=1h --time_based')).toMatch(/issued rwts: total=1,0,0,0/);
    // stopped in a thought that outlasts ramp_time: the ramp's read is still the job's report (fio
    // ends a ramp when I/O goes on, and none does). The ramp is long enough for the read to complete
    // in it on a busy machine (a completion past the ramp's end ends the ramp), and the stop comes
    // after it
    const ramped = await interrupted('--name=r --ramp_time=50ms --runtime=1h', 150);
    expect(ramped).toMatch(/^r: \(groupid=0, jobs=1\)/m);
    expect(ramped).toMatch(/issued rwts: total=1,0,0,0/);
  });

  it('gives the percentiles of the latencies the job names (slat_percentiles, clat_percentiles, lat_percentiles), as stat.c does', async () => {
    const args =
      '--name=p --rw=randread --bs=4k --direct=1 --size=256k --slat_percentiles=1 --clat_percentiles=0 --lat_percentiles=1';
    const j = json((await fio(`${args} --output-format=json`)).stdout).jobs[0].read as unknown as Record<
      string,
      { percentile?: Record<string, number> }
    >;
    // fio 3.33's JSON for these options: slat's and lat's percentiles, not clat's
    expect(
      [j.slat_ns.percentile, j.clat_ns.percentile, j.lat_ns.percentile].map((p) => p !== undefined),
    ).toEqual([true, false, true]);
    // the normal output: the blocks in show_ddir_status()'s order, slat then lat
    const normal = (await fio(args)).stdout;
    const blocks = [...normal.matchAll(/^ {4}(\w+) percentiles \((?:nsec|usec|msec)\):$/gm)].map((m) => m[1]);
    expect(blocks).toEqual(['slat', 'lat']);
    // terse gives lat's percentiles when asked for them (show_ddir_status_terse())
    const both = await fio(`${args} --output-format=terse,json`);
    const terse = both.stdout.split('\n')[0].split(';');
    const read = json(both.stdout).jobs[0].read as unknown as {
      lat_ns: { percentile: Record<string, number> };
    };
    const lat = read.lat_ns;
    const p50 = terse.find((f) => f.startsWith('50.000000%='))!;
    expect(Number(p50.split('=')[1])).toBe(Math.floor(lat.percentile['50.000000'] / 1000));
  });

  it('samples bw and iops every 500 ms while the job runs, as many times as fio: not the window its runtime ends', async () => {
    const r = await fio(
      '--name=s --rw=randread --bs=4k --direct=1 --runtime=1000ms --time_based --output-format=json',
    );
    expect(r.status).toBe(0);
    const d = json(r.stdout).jobs[0].read as unknown as { bw_samples: number; iops_samples: number };
    // fio 3.33 took 1 sample of each over a 1 s job (2 were taken here before)
    expect([d.bw_samples, d.iops_samples]).toEqual([1, 1]);
  });

  it('issues a sequential pass until its bytes reach the size, with a position per direction (do_io(), last_pos[ddir])', async () => {
    // bs does not divide the size: fio 3.33 read 16 blocks of 64 KiB for 1000 KiB sequentially (the
    // last one past the size), and the 15 whole ones of its random map at random
    const seq = json((await fio('--name=s --rw=read --bs=64k --size=1000k --output-format=json')).stdout);
    expect(seq.jobs[0].read.total_ios).toBe(16);
    const rnd = json((await fio('--name=r --rw=randread --bs=64k --size=1000k --output-format=json')).stdout);
    expect(rnd.jobs[0].read.total_ios).toBe(15);
    // a sequential mix walks the region twice over, reads and writes each from its start (fio 3.33's
    // write_iolog of such a job: reads at 0, 4096, 8192, a write at 0, …)
    const dev = stack.disks.get('/dev/sdg')!;
    const logAt = dev.log.length;
    const mix = await jobJson('--name=m --rw=rw --bs=4k --size=64k --direct=1');
    expect(mix.read.total_ios + mix.write.total_ios).toBe(16);
    expect(mix.write.total_ios).toBeGreaterThan(0);
    const sectors = (op: string) => dev.log.slice(logAt).flatMap((e) => (e.op === op ? [e.sector] : []));
    const walk = (n: number) => Array.from({ length: n }, (_, b) => b * 8);
    expect(sectors('read')).toEqual(walk(mix.read.total_ios));
    expect(sectors('write')).toEqual(walk(mix.write.total_ios));
  });

  it('counts a failed I/O as issued, as fio counts total_io_u at queue time: shares add up to 100 %', async () => {
    const dev = stack.disks.get('/dev/sdg')!;
    // the 65th block of a sequential read fails (fio 3.33 over a file failing there: total=257 for
    // 256 good reads, slat N 257, clat N 256, IO depths 1=100.0%)
    dev.failWhen = (op, sector) => (op === 'read' && sector === 64 * 8 ? { kind: 'medium', sector } : null);
    try {
      const r = await fio('--name=e --rw=read --bs=4k --direct=1 --size=1m --output-format=json');
      expect(r.status).toBe(1);
      const j = json(r.stdout).jobs[0];
      expect(j.read.total_ios).toBe(65);
      expect(j.read.slat_ns.N).toBe(65);
      expect(j.read.clat_ns.N).toBe(64);
      expect(j.iodepth_level['1']).toBe(100);
    } finally {
      dev.failWhen = null;
    }
  });

  it('says each failed job on stdout as it ends, and exits with one more for each (backend.c)', async () => {
    // nothing was written at 4 MiB: every block fails its check
    const r = await fio(
      '--rw=read --bs=4k --size=64k --direct=1 --verify=crc32c --verify_only --offset=4m --name=a --name=b',
    );
    expect(r.status).toBe(2);
    const lines = r.stdout.split('\n').filter((l) => /^fio: pid=\d+, err=84\/file:io_u\.c/.test(l));
    expect(lines).toHaveLength(2);
    expect(r.stderr).not.toMatch(/^fio: pid=/m);
    // td_verror() names its file and line in fio 3.36: the check where an asynchronous engine's
    // completions are reaped, or, for a synchronous one, where its call returns
    expect(lines[0]).toMatch(
      /^fio: pid=\d+, err=84\/file:io_u\.c:2213, func=io_u_queued_complete, error=Invalid or incomplete multibyte or wide character$/,
    );
    const sync = await fio(
      '--name=a --rw=read --bs=4k --size=64k --direct=1 --verify=crc32c --verify_only --offset=4m --ioengine=psync',
    );
    expect(sync.stdout).toMatch(
      /^fio: pid=\d+, err=84\/file:io_u\.c:2175, func=io_u_sync_complete, error=Invalid or incomplete multibyte or wide character$/m,
    );
    // stat.c's JSON has the error's number only
    const j = await jobJson(
      '--name=a --rw=read --bs=4k --size=64k --direct=1 --verify=crc32c --verify_only --offset=4m',
    );
    expect(j.error).toBe(84);
    expect(Object.keys(j)).not.toContain('verror');
  });

  it('leaves the event loop to the guest while a buffered job reads from its page cache', async () => {
    // warm the cache: the job's reads then complete without ever waiting on a socket
    expect((await fio('--name=warm --rw=read --bs=64k --size=1m')).status).toBe(0);
    const stop = new AbortController();
    let out = '';
    const run = userland.run(
      // invalidate=0: fio would drop the cache it just warmed
      'fio --filename=/dev/xvda --name=b --rw=read --bs=4k --size=1m --runtime=60s --time_based --eta=always --invalidate=0',
      {
        stdout: (t) => (out += t),
        stderr: () => {},
        signal: stop.signal,
      },
    );
    // the ETA line is a timer's: it comes only if the loop turns
    await until(() => out.includes('Jobs: 1 (f=1)'), 'the ETA line', 10_000);
    stop.abort('SIGINT');
    expect(await run).toBe(128);
    expect(out).toContain('fio: terminating on signal 2');
    const m = /\(([\d.]+[KMG]?i?B)\/(\d+)msec\)/.exec(out);
    expect(Number(m?.[2])).toBeLessThan(60_000);
  });
});

describe("the guest fio's verify phases (backend.c's thread_main())", () => {
  interface Dir {
    total_ios: number;
    runtime: number;
  }
  const dirs = (out: string) => {
    const j = json(out).jobs[0] as unknown as { read: Dir; write: Dir; job_runtime: number };
    return { r: j.read, w: j.write, job: j.job_runtime };
  };

  it('accounts the read-back in the read direction, with its own run time', async () => {
    const r = await fio(
      '--name=v --rw=randwrite --bs=4k --direct=1 --iodepth=4 --size=256k --verify=crc32c --output-format=json',
    );
    expect(r.status).toBe(0);
    const { r: rd, w: wr, job } = dirs(r.stdout);
    // every block of the pass written once and read back once (before, the read direction was empty)
    expect(wr.total_ios).toBe(64);
    expect(rd.total_ios).toBe(64);
    expect(rd.runtime).toBeGreaterThan(0);
    // the two phases one after the other: each direction's time is its own phase's
    expect(rd.runtime + wr.runtime).toBeLessThanOrEqual(job + 2);
  });

  it('with time_based, says what fio says, and verifies each whole pass until the runtime is over', async () => {
    const r = await fio(
      '--name=v --rw=randwrite --bs=4k --direct=1 --iodepth=4 --size=64k --verify=crc32c --time_based --runtime=400ms --output-format=json',
    );
    expect(r.status).toBe(0);
    // init.c's words, before anything else
    expect(r.stdout.split('\n')[0]).toBe(
      'fio: verification read phase will never start because write phase uses all of runtime',
    );
    const { r: rd, w: wr } = dirs(r.stdout);
    // passes of 16 blocks, each read back after it: the last pass, or its read-back, cut by the runtime
    expect(rd.total_ios).toBeGreaterThanOrEqual(16);
    expect(wr.total_ios).toBeGreaterThanOrEqual(rd.total_ios);
    expect(wr.total_ios - rd.total_ios).toBeLessThanOrEqual(16);
    expect(Math.floor(wr.total_ios / 16)).toBeGreaterThanOrEqual(Math.floor(rd.total_ios / 16));
    // both phases share the runtime (update_runtime() per direction)
    expect(rd.runtime + wr.runtime).toBeGreaterThanOrEqual(398);
    expect(rd.runtime + wr.runtime).toBeLessThan(600);
  });

  it("writes and checks blocks by each of fio's methods, a pattern's too, and names a bad byte as fio does", async () => {
    // a mixed job's verify phase checks each block's seed against the log (td_rw()) as well
    for (const m of ['sha256', 'sha512', 'crc64', 'crc7', 'xxhash', 'sha3-384', 'sha1', 'meta', 'null']) {
      const r = await fio(
        `--name=v --rw=randrw --bs=4k --direct=1 --iodepth=4 --size=128k --verify=${m} --offset=2m`,
      );
      expect(r.stderr, m).toBe('');
      expect(r.status, m).toBe(0);
    }
    // the pattern with the block's offset in it, no header: read back by another job, then one block
    // overwritten under it
    const pattern = '--verify=pattern --verify_pattern=0xdeadbeef%o';
    const w = await fio(`--name=w --rw=write --bs=4k --direct=1 --size=64k --offset=3m ${pattern}`);
    expect(w.status).toBe(0);
    const rd = `--name=r --rw=read --bs=4k --direct=1 --size=64k --offset=3m ${pattern}`;
    expect((await fio(rd)).status).toBe(0);
    let out = '';
    const dd = await userland.run(
      'dd if=/dev/zero of=/dev/xvda bs=1 count=1 seek=3153925 conv=notrunc,fsync',
      {
        stdout: (t) => (out += t),
        stderr: (t) => (out += t),
        signal: new AbortController().signal,
      },
    );
    expect(dd, out).toBe(0);
    // the byte at 3153925 = 3 MiB + 2 blocks + 5: the %o's second byte (the block's offset, 0x302000,
    // little-endian: 00 20 30 00 …). With no header, fio reads the length and the type from the
    // block's bytes all the same: 00 00 30 00 and be ef.
    const bad = await fio(rd);
    expect(bad.status).toBe(1);
    expect(bad.stderr.split('\n').slice(0, 4)).toEqual([
      "fio: got pattern '00', wanted '20'. Bad bits 1",
      'fio: bad pattern block offset 5',
      'pattern: verify failed at file /dev/xvda offset 3153920, length 3145728 (requested block: offset=3153920, length=4096, flags=8)',
      'fio: verify type mismatch (61374 media, 18 given)',
    ]);
  });

  it('repeats the pass and its verify phase `loops` times; loops=0 is one pass, as keep_running() has it', async () => {
    // fio 3.33 with these jobs: 48 writes and 48 reads; 48 reads; 16 reads
    const v = await jobJson(
      '--name=l --rw=randwrite --bs=4k --direct=1 --size=64k --loops=3 --verify=crc32c',
    );
    expect([v.read.total_ios, v.write.total_ios, v.error]).toEqual([48, 48, 0]);
    const r = json((await fio('--name=l --rw=read --bs=4k --size=64k --loops=3 --output-format=json')).stdout)
      .jobs[0];
    expect(r.read.total_ios).toBe(48);
    const once = await jobJson('--name=l --rw=read --bs=4k --size=64k --loops=0');
    expect(once.read.total_ios).toBe(16);
  });

  /** A random writer's job with crc32c verify, direct, its JSON read. */
  const verifyJob = async (args: string) => {
    const r = await fio(
      `--name=v --rw=randwrite --bs=4k --direct=1 --verify=crc32c --output-format=json ${args}`,
    );
    expect(r.status).toBe(0);
    const disk = (json(r.stdout) as unknown as { disk_util: Array<{ read_ios: number }> }).disk_util[0];
    return { ...dirs(r.stdout), disk };
  };

  it('never verifies a time_based job of a synchronous engine: its pass never ends (bytes_issued)', async () => {
    const { r: rd, w: wr } = await verifyJob('--ioengine=psync --size=64k --time_based --runtime=200ms');
    expect(wr.total_ios).toBeGreaterThan(16);
    expect(rd.total_ios).toBe(0);
  });

  it('does not verify a pass the runtime cut short (td->terminate skips do_verify())', async () => {
    // 2048 blocks at queue depth 1 take far longer than 30 ms
    const { r: rd, w: wr, disk } = await verifyJob('--size=8m --runtime=30ms');
    expect(wr.total_ios).toBeGreaterThan(0);
    expect(wr.total_ios).toBeLessThan(2048);
    expect(rd.total_ios).toBe(0);
    // nor read anything back unaccounted (before, it verified after the runtime)
    expect(disk.read_ios).toBe(0);
  });

  it('reads a buffered job back from the disk, not from its page cache', async () => {
    const r = await fio(
      '--name=b --rw=write --bs=4k --direct=0 --size=128k --verify=md5 --output-format=json',
    );
    expect(r.status).toBe(0);
    const doc = json(r.stdout) as unknown as {
      jobs: Array<{ read: Dir }>;
      disk_util: Array<{ read_ios: number }>;
    };
    expect(doc.jobs[0].read.total_ios).toBe(32);
    // do_verify() synced and dropped the cache: the 128 KiB came from the device (kept, every read
    // was a page cache hit and the disk read nothing)
    expect(doc.disk_util[0].read_ios).toBeGreaterThan(0);
  });
});

describe("the guest fio's verify options (verify_interval, verify_offset, verify_fatal, verify_dump, verify_backlog)", () => {
  /** `dd` in the guest, its status 0 asserted. */
  const dd = async (args: string) => {
    let out = '';
    const st = await userland.run(`dd ${args}`, {
      stdout: (t) => (out += t),
      stderr: (t) => (out += t),
      signal: new AbortController().signal,
    });
    expect(st, out).toBe(0);
  };
  const sectorsOf = (io: Array<{ op: string; sector: number }>, op: string) =>
    io.flatMap((e) => (e.op === op ? [e.sector] : []));

  it("reads a random writer's blocks back in the order it wrote them (fio's io_piece list), a sequential one's by offset", async () => {
    // fio 3.33, --rw=randwrite --size=32k --verify=crc32c: the verify phase's offsets are the writes'
    const r = await requestsOf(() =>
      fio(
        '--name=v --rw=randwrite --bs=4k --direct=1 --size=64k --offset=1m --verify=crc32c --ioengine=psync',
      ),
    );
    expect(r.status, r.stderr).toBe(0);
    const writes = sectorsOf(r.io, 'write');
    expect(writes).toHaveLength(16);
    expect(writes).not.toEqual([...writes].sort((a, b) => a - b));
    expect(sectorsOf(r.io, 'read')).toEqual(writes);
    expect(r.ops.join('')).toBe('write'.repeat(16) + 'read'.repeat(16));
  });

  it('reads back batches of what it wrote as it goes, as check_get_verify() does, and the rest at the end', async () => {
    // fio 3.33, psync, --size=40k --verify_backlog=4 --verify_backlog_batch=3: four writes, three of
    // them read back, three writes, three reads, … and the one left read in the verify phase
    const r = await requestsOf(() =>
      fio(
        '--name=v --rw=randwrite --bs=4k --direct=1 --size=40k --offset=1m --verify=crc32c --verify_backlog=4 --verify_backlog_batch=3 --ioengine=psync --output-format=json',
      ),
    );
    expect(r.status, r.stderr).toBe(0);
    const seq = r.ops.map((o) => (o === 'write' ? 'w' : 'r')).join('');
    expect(seq).toBe('wwwwrrrwwwrrrwwwrrrr');
    // each read is of the oldest write not read back yet
    expect(sectorsOf(r.io, 'read')).toEqual(sectorsOf(r.io, 'write'));
    const j = json(r.stdout).jobs[0];
    expect([j.write.total_ios, j.read.total_ios, j.error]).toEqual([10, 10, 0]);
    // the backlog's reads give the writer's pass to its read run time too (fio 3.36's update_runtime()
    // with TD_F_VER_BACKLOG): a pass of 10 writes that think 20 ms each, against a verify phase of
    // a few ms
    const thinking = '--rw=write --bs=4k --direct=1 --size=40k --offset=1m --verify=crc32c --thinktime=20ms';
    const back = await jobJson(`--name=v ${thinking} --verify_backlog=3`);
    expect(back.write.runtime).toBeGreaterThanOrEqual(180);
    expect(back.read.runtime).toBeGreaterThanOrEqual(back.write.runtime);
    const none = await jobJson(`--name=v ${thinking}`);
    expect(none.read.runtime).toBeLessThan(none.write.runtime / 2);
    // … once the job has read anything (td->io_bytes: the first verify phase's reads count), so a
    // second pass whose backlog never filled gives its time to the reads too
    const two = await jobJson(
      '--name=v --rw=write --bs=4k --direct=1 --size=16k --offset=1m --verify=crc32c --thinktime=20ms --loops=2 --verify_backlog=100',
    );
    expect(two.write.runtime).toBeGreaterThanOrEqual(140);
    expect(two.read.runtime).toBeGreaterThanOrEqual(60);
    // the batch defaults to the backlog; a deeper queue reads each block back once all the same
    const deep = await requestsOf(() =>
      fio(
        '--name=v --rw=write --bs=4k --direct=1 --size=256k --offset=1m --verify=md5 --verify_backlog=8 --iodepth=8 --output-format=json',
      ),
    );
    expect(deep.status, deep.stderr).toBe(0);
    expect([...sectorsOf(deep.io, 'read')].sort((a, b) => a - b)).toEqual(sectorsOf(deep.io, 'write'));
    // and before the pass has ended: the first read comes before the last write
    expect(deep.ops.indexOf('read')).toBeLessThan(deep.ops.lastIndexOf('write'));
  });

  it('keeps a header every verify_interval bytes at verify_offset, and says each bad interval as fio 3.33 does', async () => {
    const opts =
      '--rw=write --bs=4k --direct=1 --size=16k --offset=5m --verify=crc32c --verify_interval=1024 --verify_offset=100';
    expect((await fio(`--name=w ${opts} --do_verify=0`)).status).toBe(0);
    const check = (more = '') => fio(`--name=c ${opts} --verify_only ${more}`);
    const good = await check();
    expect([good.status, good.stderr]).toEqual([0, '']);
    // two bytes zeroed in block 1 (5 MiB + 4 KiB): in its intervals 1 and 2
    await dd('if=/dev/zero of=/dev/xvda bs=1 count=1 seek=5248700 conv=notrunc,fsync');
    await dd('if=/dev/zero of=/dev/xvda bs=1 count=1 seek=5249524 conv=notrunc,fsync');
    const failures = (stderr: string) => stderr.split('\n').filter((l) => l.includes('verify failed'));
    // each said; the block's last interval is good, so verify_io_u() returns 0: no error, as fio's
    const said = await check('--output-format=json');
    expect(failures(said.stderr)).toEqual([
      'crc32c: verify failed at file /dev/xvda offset 5248000, length 1024 (requested block: offset=5246976, length=4096, flags=88)',
      'crc32c: verify failed at file /dev/xvda offset 5249024, length 1024 (requested block: offset=5246976, length=4096, flags=88)',
    ]);
    expect([said.status, json(said.stdout).jobs[0].error]).toEqual([0, 0]);
    // verify_fatal: the first bad interval fails the job
    const fatal = await check('--verify_fatal=1 --output-format=json');
    expect(failures(fatal.stderr)).toHaveLength(1);
    expect([fatal.status, json(fatal.stdout).jobs[0].error]).toEqual([1, 84]);
    // verify_dump: each bad interval as read, and as written, in fio's working directory
    const dumped = await check('--verify_dump=1 --verify_fatal=1');
    expect(dumped.stderr.split('\n').slice(3, 5)).toEqual([
      '       received data dumped as xvda.5248000.received',
      '       expected data dumped as xvda.5248000.expected',
    ]);
    const got = await readFile(join(root, 'xvda.5248000.received'));
    const want = await readFile(join(root, 'xvda.5248000.expected'));
    expect([got.length, want.length]).toEqual([1024, 1024]);
    // received has its header swapped back to the interval's start; expected is as written, the
    // header at verify_offset (fio's own dumps differ so too)
    expect(got.readUInt16LE(0)).toBe(0xacca);
    expect(want.readUInt16LE(100)).toBe(0xacca);
    expect(got.subarray(100, 144)).toEqual(want.subarray(0, 44));
    const differ = [...got.keys()].filter((i) => i >= 144 && got[i] !== want[i]);
    expect(differ).toEqual([700]);
  });

  it("leaves the verify list's reads out of a mixed job's pass and out of the bw and iops samples, as fio 3.33", async () => {
    // fio 3.33, psync, rw=rw size=40k verify_backlog=3: 10 I/Os of the job's own, each write read
    // back once — reads 10 in all, whatever the mix drew (before, the backlog's reads ended the pass)
    const r = await requestsOf(() =>
      fio(
        '--name=v --rw=rw --bs=4k --direct=1 --size=40k --offset=1m --verify=crc32c --verify_backlog=3 --ioengine=psync --output-format=json',
      ),
    );
    expect(r.status, r.stderr).toBe(0);
    const j = json(r.stdout).jobs[0];
    expect(j.read.total_ios).toBe(10);
    expect(j.write.total_ios).toBeGreaterThan(0);
    expect(r.io.filter((e) => e.op === 'read')).toHaveLength(10);
    // the verify phase's reads take no bw or iops sample (fio's this_io_bytes leaves them out)
    const v = await jobJson(
      '--name=v --rw=write --bs=4k --direct=1 --size=4m --offset=1m --verify=crc32c --bwavgtime=10 --iopsavgtime=10',
    );
    expect(v.read.total_ios).toBe(1024);
    expect([v.read.bw_samples, v.read.iops_samples]).toEqual([0, 0]);
    expect(v.write.bw_samples).toBeGreaterThan(0);
  });

  it("repeats a random job's offsets on every pass (clear_io_state() seeds again with randrepeat)", async () => {
    const passes = async (more: string) => {
      const r = await requestsOf(() =>
        fio(`--name=v --rw=randread --bs=4k --direct=1 --size=32k --offset=1m --loops=3 ${more}`),
      );
      expect(r.status, r.stderr).toBe(0);
      const s = sectorsOf(r.io, 'read');
      expect(s).toHaveLength(24);
      return [s.slice(0, 8), s.slice(8, 16), s.slice(16)];
    };
    // fio 3.33: the same eight offsets, in the same order, three times
    const [a, b, c] = await passes('');
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    const [x, y] = await passes('--randrepeat=0');
    expect(y).not.toEqual(x);
    // a randseed given overrides randrepeat (init.c): fio 3.33's second pass was another order, and
    // the same seed gives the same run again
    const [s1, s2] = await passes('--randseed=1234');
    expect(s2).not.toEqual(s1);
    expect((await passes('--randseed=1234'))[1]).toEqual(s2);
  });

  it("verify_only reads back what the job's pass would have written, in its order (do_dry_run())", async () => {
    const w = '--name=v --bs=4k --direct=1 --size=40k --offset=6m --verify=crc32c';
    const wrote = await requestsOf(() => fio(`--rw=randwrite ${w} --do_verify=0`));
    expect(wrote.status, wrote.stderr).toBe(0);
    const check = await requestsOf(() => fio(`--rw=randwrite ${w} --verify_only`));
    expect(check.status, check.stderr).toBe(0);
    // fio 3.33: the dry run's write order (before: the region by offset)
    expect(sectorsOf(check.io, 'read')).toEqual(sectorsOf(wrote.io, 'write'));
    // a mixed job: only the blocks it wrote, none it read (before: every block, and a false failure)
    const mixed = await requestsOf(() => fio(`--rw=rw ${w} --offset=7m --do_verify=0`));
    expect(mixed.status, mixed.stderr).toBe(0);
    const again = await requestsOf(() => fio(`--rw=rw ${w} --offset=7m --verify_only`));
    expect([again.status, again.stderr]).toEqual([0, '']);
    expect(sectorsOf(again.io, 'read')).toEqual(sectorsOf(mixed.io, 'write'));
    // with a backlog the dry run takes its reads with no I/O: fio 3.33 checks only what is left
    await dd('if=/dev/zero of=/dev/xvda bs=1 count=1 seek=6291556 conv=notrunc,fsync');
    const seq = '--rw=write --bs=4k --direct=1 --size=40k --offset=6m --verify=crc32c';
    expect((await fio(`--name=v ${seq} --do_verify=0`)).status).toBe(0);
    await dd('if=/dev/zero of=/dev/xvda bs=1 count=1 seek=6291556 conv=notrunc,fsync');
    expect((await fio(`--name=v ${seq} --verify_only`)).status).toBe(1);
    const backlog = await requestsOf(() => fio(`--name=v ${seq} --verify_only --verify_backlog=3`));
    expect([backlog.status, sectorsOf(backlog.io, 'read')]).toEqual([0, [12288 + 72]]);
  });

  it('starts a job offset=N% into the device, rounded up to the block size (get_start_offset())', async () => {
    // fio 3.33 on an 8 MiB file: size=1% offset=50% reads 20 blocks from 4 MiB
    const r = await requestsOf(() => fio('--name=v --rw=read --bs=4k --direct=1 --size=1% --offset=50%'));
    expect(r.status, r.stderr).toBe(0);
    const s = sectorsOf(r.io, 'read');
    expect([s.length, s[0], s[s.length - 1]]).toEqual([20, 8192, 8192 + 19 * 8]);
    // 33% of 8 MiB is 2768240.64 bytes: the next 4 KiB boundary
    const t = await requestsOf(() => fio('--name=v --rw=read --bs=4k --direct=1 --size=8k --offset=33%'));
    expect(sectorsOf(t.io, 'read')[0]).toBe(Math.ceil(Math.floor((8 << 20) * 0.33) / 4096) * 8);
    expect((await fio('--name=v --rw=read --offset=101%')).stderr).toMatch(
      /offset: value out of range: 101%/,
    );
  });

  it("writes 256 of verify_dump's files at most a job, and says so once", async () => {
    // a zeroed 64 KiB read as 0xab patterns of 128-byte intervals: 512 bad intervals, two files each
    await dd('if=/dev/zero of=/dev/xvda bs=64k count=1 seek=120 conv=notrunc,fsync');
    const before = new Set(await readdir(root));
    const r = await fio(
      '--name=v --rw=read --bs=64k --size=64k --offset=7680k --direct=1 --verify=pattern --verify_pattern=0xab --verify_interval=128 --verify_dump=1',
    );
    // the last interval is bad: the job failed (verify_io_u()'s last return)
    expect(r.status).toBe(1);
    const lines = r.stderr.split('\n');
    expect(lines.filter((l) => l.includes('verify failed'))).toHaveLength(512);
    expect(lines.filter((l) => l.includes(' data dumped as '))).toHaveLength(256);
    expect(lines.filter((l) => l.startsWith('fio: verify_dump: '))).toEqual([
      'fio: verify_dump: 256 files written, the job writes no more',
    ]);
    const made = (await readdir(root)).filter((f) => !before.has(f) && f.startsWith('xvda.'));
    expect(made).toHaveLength(256);
    // the first interval's pair, its expected file the pattern again
    expect(made).toContain('xvda.7864320.received');
    expect((await readFile(join(root, 'xvda.7864320.expected'))).equals(Buffer.alloc(128, 0xab))).toBe(true);
    await Promise.all(made.map((f) => rm(join(root, f))));
  });

  it('refuses verify options fio refuses, and what would swap a header out of its interval', async () => {
    const bad = async (args: string) => {
      const r = await fio(`--name=v --rw=write --bs=4k --size=64k --verify=crc32c ${args}`);
      expect(r.status).toBe(1);
      return r.stderr.trim().split('\n');
    };
    expect(await bad('--verify_interval=10')).toEqual([
      'verify_interval: min value out of range: 10 (80 min)',
      'fio: failed parsing verify_interval=10',
    ]);
    expect(await bad('--verify_offset=10')).toEqual([
      'verify_offset: min value out of range: 10 (40 min)',
      'fio: failed parsing verify_offset=10',
    ]);
    expect(await bad('--verify_backlog=abc')).toEqual(['fio: failed parsing verify_backlog=abc']);
    // an interval that does not divide the block is the block, as init.c leaves it: then too small
    // for no header
    expect((await bad('--verify_offset=4090'))[0]).toMatch(
      /^fio: v: verify_offset=4090 must be from 44 to 4052/,
    );
    expect((await bad('--verify=sha512 --verify_interval=256 --verify_offset=168'))[0]).toBe(
      "fio: v: verify_offset=168: an interval of 256 has no room to swap verify=sha512's 168-byte header with another 168 bytes (it needs 336)",
    );
    expect((await bad('--verify=sha512 --bs=4608 --verify_interval=96'))[0]).toBe(
      "fio: v: verify_interval=96 is too small for verify=sha512's 168-byte header",
    );
  });
});

describe("the guest fio's measurements turned off (disable_lat, disable_clat, disable_slat, gtod_reduce, stats)", () => {
  const job = '--name=a --rw=randwrite --bs=4k --direct=1 --size=256k --iodepth=4';
  /** The JSON report of a run that printed others after it. */
  const jsonPart = (out: string) => json(out.slice(0, out.indexOf('\n}\n') + 2));

  it('takes no sample of a latency it does not measure, and prints none (account_io_completion())', async () => {
    const r = await fio(`${job} --disable_lat=1 --disable_slat=1 --output-format=json,normal`);
    expect(r.status, r.stderr).toBe(0);
    const w = jsonPart(r.stdout).jobs[0].write;
    expect([w.lat_ns.N, w.slat_ns.N, w.clat_ns.N]).toEqual([0, 0, 64]);
    const normal = r.stdout.slice(r.stdout.lastIndexOf('}') + 1);
    expect(normal).toMatch(/^ {4}clat \(/m);
    expect(normal).not.toMatch(/^ {4}slat \(|^ {5}lat \(/m);
    // no clat: no percentiles though asked for (fixup_options()), no lat (usec) distribution
    const c = await fio(`${job} --disable_clat=1 --clat_percentiles=1 --output-format=json,normal`);
    expect(c.status, c.stderr).toBe(0);
    const cw = jsonPart(c.stdout).jobs[0].write;
    expect([cw.clat_ns.N, cw.lat_ns.N, cw.clat_ns.percentile]).toEqual([0, 64, undefined]);
    expect(c.stdout).not.toMatch(/clat percentiles|^ {2}lat \((usec|msec)\)/m);
    // gtod_reduce=1: all three
    const g = await jobJson(`${job} --gtod_reduce=1`);
    expect([g.write.lat_ns.N, g.write.slat_ns.N, g.write.clat_ns.N, g.write.total_ios]).toEqual([
      0, 0, 0, 64,
    ]);
    // a latency not measured is not held to max_latency
    expect((await fio(`${job} --max_latency=1 --disable_lat=1`)).status).toBe(0);
    expect((await fio(`${job} --max_latency=1`)).status).toBe(1);
  });

  it('leaves a job with stats=0 out of every report, its I/O done all the same', async () => {
    const dev = stack.disks.get('/dev/sdg')!;
    const at = dev.log.length;
    const r = await fio(
      '--rw=write --bs=4k --direct=1 --size=64k --name=bg --stats=0 --offset=1m --name=fg --offset=2m --output-format=json,normal,terse',
    );
    expect(r.status, r.stderr).toBe(0);
    const writes = dev.log.slice(at).filter((e) => e.op === 'write');
    expect(writes).toHaveLength(32);
    const doc = jsonPart(r.stdout);
    expect(doc.jobs.map((j) => j.jobname)).toEqual(['fg']);
    expect(r.stdout).toMatch(/^fg: \(groupid=0/m);
    expect(r.stdout).not.toMatch(/^bg: \(groupid/m);
    expect(
      r.stdout
        .split('\n')
        .filter((l) => l.startsWith('3;'))
        .map((l) => l.split(';')[2]),
    ).toEqual(['fg']);
    // the group's figures are fg's alone
    expect(r.stdout).toMatch(/WRITE: bw=.*io=64\.0KiB/);
    // failed, it says so and counts in the status as any job; for pvblk bench (--pvblk_raw) its error
    // is in the JSON apart from the jobs, which the bench says and counts
    const bad = await fio(
      '--name=bg --stats=0 --rw=read --bs=4k --size=16k --offset=1m --verify=meta --verify_pattern=0x1234 --direct=1 --name=fg --rw=read --size=16k --offset=2m --output-format=json --pvblk_raw',
    );
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/^fio: pid=\d+, err=84\//m);
    const doc2 = jsonPart(bad.stdout.slice(bad.stdout.indexOf('{'))) as unknown as {
      jobs: Array<{ jobname: string }>;
      pvblk: { unreported: Array<{ error: number }> };
    };
    expect(doc2.jobs.map((j) => j.jobname)).toEqual(['fg']);
    expect(doc2.pvblk.unreported.map((u) => u.error)).toEqual([84]);
    // nothing to report in terse is no line at all, as fio's
    const quiet = await fio('--name=bg --stats=0 --rw=read --bs=4k --size=16k --output-format=terse');
    expect([quiet.status, quiet.stdout]).toEqual([0, '']);
  });
});

describe("a buffered job's page cache: fio's invalidate and fadvise_hint, the guest's readahead", () => {
  interface Disk {
    read_ios: number;
    read_sectors: number;
  }
  const run = async (args: string) => {
    const r = await fio(`--bs=4k --size=1m --direct=0 --output-format=json ${args}`);
    expect(r.status).toBe(0);
    const doc = json(r.stdout) as unknown as {
      jobs: Array<{ read: { total_ios: number } }>;
      disk_util: Disk[];
    };
    return { ios: doc.jobs[0].read.total_ios, disk: doc.disk_util[0] };
  };

  it('reads a sequential job ahead: a few large requests for 256 reads of 4 KiB', async () => {
    const { ios, disk } = await run('--name=s --rw=read');
    expect(ios).toBe(256);
    // fadvise_hint=1 advised SEQUENTIAL: windows of 4, 8, 16, 32, 64, 64 … pages (before, one read
    // of the device for each 4 KiB: the cache had no readahead)
    expect(disk.read_ios).toBeGreaterThan(0);
    expect(disk.read_ios).toBeLessThan(32);
    expect(disk.read_sectors).toBeGreaterThanOrEqual(2048);
  });

  /**
   * Runs `body` while another opener holds the device: the jobs' last close then neither writes the
   * cache back nor drops it (kill_bdev).
   */
  const withDeviceHeld = async (body: () => Promise<void>) => {
    const holder = await userland.vfs.open('/dev/xvda', { read: true, write: false });
    if ('errno' in holder) throw new Error(holder.errno);
    try {
      await body();
    } finally {
      await holder.close();
    }
  };

  it('drops the cache first (invalidate=1), unless asked not to', async () => {
    await withDeviceHeld(async () => {
      await run('--name=s --rw=read');
      // the job before left the first 1 MiB cached: read again
      const cold = await run('--name=s --rw=read');
      expect(cold.disk.read_sectors).toBeGreaterThanOrEqual(2048);
      // or found there
      const warm = await run('--name=s --rw=read --invalidate=0');
      expect(warm.disk.read_ios).toBe(0);
    });
  });

  it('syncs a writer at the end of its pass with end_fsync, inside its run time', async () => {
    await withDeviceHeld(async () => {
      const writes = async (args: string) => {
        const r = await fio(
          `--name=w --rw=write --bs=4k --size=256k --direct=0 --output-format=json ${args}`,
        );
        expect(r.status).toBe(0);
        return (json(r.stdout) as unknown as { disk_util: Array<{ write_ios: number }> }).disk_util[0]
          .write_ios;
      };
      // left in the page cache
      expect(await writes('')).toBe(0);
      // written back (and the device flushed) before the job ended
      expect(await writes('--end_fsync=1')).toBeGreaterThan(0);
    });
  });

  it('advises a random job RANDOM: each read reads its page alone; without the hint, readahead reads more', async () => {
    const random = await run('--name=r --rw=randread');
    expect(random.ios).toBe(256);
    expect(random.disk.read_ios).toBe(256);
    expect(random.disk.read_sectors).toBe(2048);
    // fadvise_hint=0: the same offsets under the normal rules, whose windows read pages not asked for
    const normal = await run('--name=r --rw=randread --fadvise_hint=0');
    expect(normal.disk.read_sectors).toBeGreaterThan(2048);
  });
});

describe("the guest fio's logs (write_lat_log, write_bw_log, write_iops_log)", () => {
  /** A log file the guest's fio wrote under its `/`, as fields per line. */
  const logOf = async (name: string): Promise<number[][]> => {
    const text = await readFile(join(root, name), 'utf8');
    if (text === '') return [];
    expect(text.endsWith('\n')).toBe(true);
    return text
      .slice(0, -1)
      .split('\n')
      .map((l) => {
        expect(l).toMatch(/^\d+(, \d+)+$/);
        return l.split(', ').map(Number);
      });
  };

  it("writes an entry per I/O in fio's format, offsets with log_offset, and takes the report's bw and iops per I/O (add_bw_sample)", async () => {
    const r = await fio(
      '--name=l --rw=randwrite --bs=4k --direct=1 --size=64k --iodepth=4 --write_lat_log=l --write_bw_log=l --write_iops_log=l --log_offset=1 --output-format=json',
    );
    expect(r.status).toBe(0);
    const j = json(r.stdout).jobs[0];
    const [lat, slat, clat, bw, iops] = await Promise.all(
      ['lat', 'slat', 'clat', 'bw', 'iops'].map((k) => logOf(`l_${k}.1.log`)),
    );
    for (const log of [lat, slat, clat, bw, iops]) {
      expect(log).toHaveLength(16);
      for (const e of log) {
        // time, value, direction (write), block size, offset, priority
        expect(e).toHaveLength(6);
        expect(e.slice(2, 4)).toEqual([1, 4096]);
        expect(e[5]).toBe(0);
      }
      // each block of the random pass once, in the order they completed
      expect(log.map((e) => e[4]).sort((a, b) => a - b)).toEqual([...Array(16).keys()].map((i) => i * 4096));
    }
    // slat is logged as the I/O is queued (io_u_queued()), the others as it completes
    const queued = new Map(slat.map((e) => [e[4], e]));
    for (let i = 0; i < 16; i++) {
      // the same I/O on the same line of each completion's log: lat is slat and clat, to a
      // nanosecond of rounding
      expect(lat[i][4]).toBe(clat[i][4]);
      const q = queued.get(lat[i][4])!;
      expect(Math.abs(lat[i][1] - q[1] - clat[i][1])).toBeLessThanOrEqual(1);
      expect(q[0]).toBeLessThanOrEqual(lat[i][0]);
      expect(q[0]).toBeGreaterThanOrEqual(lat[i][0] - Math.ceil(lat[i][1] / 1e6) - 1);
      expect(bw[i][1]).toBe(Math.floor((4096 * 1e6) / clat[i][1]));
      expect(iops[i][1]).toBe(1);
    }
    // times are whole ms since the job's start, in completion order
    expect(lat.map((e) => e[0])).toEqual(lat.map((e) => e[0]).sort((a, b) => a - b));
    // a per-I/O bw or iops log makes the report's samples per I/O too, as fio 3.33 reported
    // (samples=16, iops min=max=1)
    expect([j.write.bw_samples, j.write.iops_samples]).toEqual([16, 16]);
    expect([j.write.iops_min, j.write.iops_max]).toEqual([1, 1]);
    expect(j['job options'].write_lat_log).toBe('l');
  });

  it('averages over log_avg_msec: per direction, the windows of the report and of the log the same (bw_avg_time = log_avg_msec)', async () => {
    const r = await fio(
      '--name=a --rw=randrw --bs=4k --direct=1 --iodepth=2 --rate_iops=400 --runtime=1250ms --time_based --log_avg_msec=300 --write_lat_log=a --write_iops_log=a --output-format=json',
    );
    expect(r.status).toBe(0);
    const j = json(r.stdout).jobs[0];
    const lat = await logOf('a_lat.1.log');
    const iops = await logOf('a_iops.1.log');
    for (const ddir of [0, 1]) {
      const l = lat.filter((e) => e[2] === ddir);
      // a window's entry when a sample finds it over: at 300, 600, 900, 1200 ms, and the rest at the
      // end (finalize_logs()); block size 0, as averaged entries have it
      expect(l.length).toBeGreaterThanOrEqual(4);
      expect(l.length).toBeLessThanOrEqual(6);
      expect(l.slice(0, 4).map((e) => Math.floor(e[0] / 300))).toEqual([1, 2, 3, 4]);
      for (const e of l) expect([e[3], e[4]]).toEqual([0, 0]);
      // the report's iops samples are the iops log's entries: one window each
      const i = iops.filter((e) => e[2] === ddir);
      const d = ddir ? j.write : j.read;
      expect(i.length).toBe(d.iops_samples);
      expect(d.iops_samples).toBe(4);
      // held to 400 a second, each window's rate close to it, taken at the window's tick (by fio's
      // helper thread), not at the next completion
      for (const e of i) expect(Math.abs(e[1] - 400)).toBeLessThan(80);
      i.forEach((e, k) => {
        expect(e[0]).toBeGreaterThanOrEqual(300 * (k + 1));
        expect(e[0]).toBeLessThan(300 * (k + 1) + 50);
      });
      // no bw log: the report's bw windows stay at 500 ms
      expect(d.bw_samples).toBe(2);
    }
    // bs column 0, and no offset column without log_offset
    expect(lat.every((e) => e.length === 5)).toBe(true);
  });

  it("writes a clat histogram a log_hist_msec window (write_hist_log), in fio's buckets, coarsened", async () => {
    const r = await fio(
      '--name=h --rw=randread --bs=4k --direct=1 --iodepth=2 --rate_iops=400 --runtime=1300ms --time_based --write_hist_log=h --log_hist_msec=300 --log_hist_coarseness=2 --output-format=json',
    );
    expect(r.status).toBe(0);
    const ios = json(r.stdout).jobs[0].read.total_ios;
    const hist = await logOf('h_clat_hist.1.log');
    // from the first completion, a window each 300 ms: four in 1.3 s, the last part written by none
    expect(hist).toHaveLength(4);
    let sum = 0;
    hist.forEach((e, k) => {
      // time, direction, block size, then fio's 1856 buckets four to a field
      expect(e).toHaveLength(3 + 1856 / 4);
      expect(e.slice(1, 3)).toEqual([0, 4096]);
      if (k) expect(Math.abs(e[0] - hist[k - 1][0] - 300)).toBeLessThanOrEqual(20);
      const n = e.slice(3).reduce((a, b) => a + b, 0);
      // 400 a second for 300 ms: about 120 completions a window
      expect(Math.abs(n - 120)).toBeLessThan(30);
      sum += n;
    });
    expect(sum).toBeLessThan(ios);
    // without log_hist_msec, an empty file, as fio's; with clat_percentiles=0, buckets fio never fills
    await fio('--name=e --rw=read --bs=4k --direct=1 --size=16k --write_hist_log=e');
    expect(await logOf('e_clat_hist.1.log')).toEqual([]);
    await fio(
      '--name=z --rw=read --bs=4k --direct=1 --size=1m --write_hist_log=z --log_hist_msec=1 --clat_percentiles=0',
    );
    const zero = await logOf('z_clat_hist.1.log');
    for (const e of zero) expect(e.slice(3).every((x) => x === 0)).toBe(true);
  });

  it('puts its times on the wall clock with log_unix_epoch, on the monotonic one with clock id 1 (log_alternate_epoch)', async () => {
    const wall = [Date.now()];
    const u = await fio(
      '--name=u --rw=read --bs=4k --direct=1 --size=16k --write_lat_log=u --log_unix_epoch=1',
    );
    expect(u.status).toBe(0);
    wall.push(Date.now());
    const mono = [Number(process.hrtime.bigint()) / 1e6];
    const m = await fio(
      '--name=m --rw=read --bs=4k --direct=1 --size=16k --write_lat_log=m --log_alternate_epoch=1 --log_alternate_epoch_clock_id=1',
    );
    expect(m.status).toBe(0);
    mono.push(Number(process.hrtime.bigint()) / 1e6);
    // averaged, the windows still run on the time since the job's start: a window each 100 ms, the
    // wall clock only added to the entries (they had lined up with the wall clock's hundreds)
    const t0 = Date.now();
    const avg = await fio(
      '--name=w --rw=randread --bs=4k --direct=1 --rate_iops=500 --runtime=450ms --time_based --write_lat_log=w --log_avg_msec=100 --log_unix_epoch=1',
    );
    expect(avg.status).toBe(0);
    const w = (await logOf('w_lat.1.log')).map((e) => e[0]);
    expect(w.length).toBeGreaterThanOrEqual(4);
    // (within 2 ms: the epoch is the wall clock read in whole ms, less the monotonic time since, and
    // the job may begin within a ms of t0)
    expect(w[0] - t0).toBeGreaterThanOrEqual(98);
    for (let k = 1; k < 4; k++) expect(Math.abs(w[k] - w[k - 1] - 100)).toBeLessThanOrEqual(15);
    for (const [file, [from, to]] of [
      ['u_lat.1.log', wall],
      ['m_clat.1.log', mono],
    ] as const) {
      const log = await logOf(file);
      expect(log).toHaveLength(4);
      // (the epoch is the wall clock read in whole ms, less the time since: within a ms of the truth)
      for (const e of log) {
        expect(e[0]).toBeGreaterThanOrEqual(Math.floor(from) - 1);
        expect(e[0]).toBeLessThanOrEqual(Math.ceil(to) + 1);
      }
    }
  });

  it("logs only after ramp_time, its times from the ramp's end (the epoch reset_all_stats() sets)", async () => {
    const r = await fio(
      '--name=r --rw=randread --bs=4k --direct=1 --iodepth=2 --rate_iops=200 --ramp_time=400ms --runtime=300ms --time_based --write_lat_log=r --output-format=json',
    );
    expect(r.status).toBe(0);
    const j = json(r.stdout).jobs[0];
    const clat = await logOf('r_clat.1.log');
    expect(clat).toHaveLength(j.read.total_ios);
    expect(clat[0][0]).toBeLessThan(50);
    expect(clat[clat.length - 1][0]).toBeLessThanOrEqual(j.read.runtime + 5);
  });

  it('with per_job_logs=0, the jobs append to one file named without a number; a file it cannot open is said and the run goes on', async () => {
    await rm(join(root, 'p_lat.log'), { force: true });
    const args =
      '--name=p --rw=randread --bs=4k --direct=1 --size=32k --numjobs=2 --per_job_logs=0 --write_lat_log=p';
    expect((await fio(args)).status).toBe(0);
    expect(await logOf('p_lat.log')).toHaveLength(16);
    // fio opens it "a": a second run adds to the first
    expect((await fio(args)).status).toBe(0);
    expect(await logOf('p_lat.log')).toHaveLength(32);
    const bad = await fio('--name=b --rw=read --bs=4k --direct=1 --size=16k --write_lat_log=/no/such/dir/b');
    expect(bad.status).toBe(0);
    expect(bad.stderr).toBe('fopen log: No such file or directory\n'.repeat(3));
    expect(bad.stdout).toMatch(/read: IOPS=/);
  });
});

describe("the guest fio's latency limits (max_latency, latency_target: io_u.c's lat_target_*)", () => {
  it('writes its output to the --output file (made or emptied first), the ETA line to the terminal', async () => {
    const r = await fio('--name=o --rw=read --bs=4k --direct=1 --size=16k --output=/o.txt --eta=always');
    expect(r.status).toBe(0);
    expect(r.stdout).not.toContain('o: (groupid=0');
    const text = await readFile(join(root, 'o.txt'), 'utf8');
    expect(text).toMatch(
      /^o: \(g=0\): rw=read, .*\nfio-3\.36\nStarting 1 process\n\no: \(groupid=0, jobs=1\): err= 0/,
    );
    expect(text).toContain('Run status group 0 (all jobs):');
    const bad = await fio('--name=o --rw=read --bs=4k --size=16k --output=/no/such/dir/o.txt');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toBe('fio: output file open error: No such file or directory\n');
    expect(bad.stdout).toBe('');
  });

  it('starts a job its startdelay after the command; a signal during it leaves the job out of the report', async () => {
    const t0 = performance.now();
    const r = await fio(
      '--name=a --rw=randread --bs=4k --direct=1 --size=16k --name=b --rw=randread --bs=4k --direct=1 --time_based --runtime=300ms --startdelay=700ms --output-format=json',
    );
    expect(r.status).toBe(0);
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(1000);
    const [a, b] = json(r.stdout).jobs;
    expect([a.jobname, b.jobname]).toEqual(['a', 'b']);
    expect(b.read.runtime).toBeGreaterThanOrEqual(300);
    // Ctrl-C while b waits: fio's run_threads() never starts b; its JSON has b with no I/O, its normal
    // report leaves it out (show_thread_status_normal() skips a job without I/O), as fio 3.33's
    const late = '--name=b --rw=read --bs=4k --direct=1 --size=16k --startdelay=10m';
    const both = await interruptedFio(
      `--output-format=json,normal --name=a --rw=randread --bs=4k --direct=1 --size=16k ${late}`,
      (_, reads) => reads >= 4,
      "a's reads",
    );
    expect(both.status).toBe(128);
    expect(both.requests).toBe(4);
    const out = both.out;
    const report = json(out.slice(0, out.indexOf('\n}\n') + 3));
    expect(report.jobs.map((j) => [j.jobname, j.read.total_ios])).toEqual([
      ['a', 4],
      ['b', 0],
    ]);
    const normal = out.slice(out.indexOf('\n}\n') + 3);
    expect(normal).toMatch(/^a: \(groupid=0/m);
    expect(normal).not.toMatch(/^b: \(groupid=0/m);
    // the delayed job alone: nothing began, so no disk's figures either (fio 3.36 prints none)
    const alone = await interruptedFio(late, (o) => o.includes('Starting 1 process'), 'the start');
    expect(alone.status).toBe(128);
    expect(alone.out).toContain('fio: terminating on signal 2');
    expect(alone.out).not.toContain('Disk stats');
  });

  it('catches up on its rate after a thought, unless rate_ignore_thinktime (fio 3.33: 120 I/Os against 100)', async () => {
    const args =
      '--name=j --rw=randread --bs=4k --direct=1 --rate_iops=100 --thinktime=500ms --thinktime_blocks=20 --runtime=3 --time_based';
    const catching = await jobJson(args);
    const ignoring = await jobJson(`${args} --rate_ignore_thinktime=1`);
    // 20 I/Os at the rate (200 ms), then 500 ms of thought, over 3 s: four thoughts; caught up
    // after each, the next 20 go at once
    expect(catching.read.total_ios).toBeGreaterThanOrEqual(115);
    expect(catching.read.total_ios).toBeLessThanOrEqual(125);
    expect(ignoring.read.total_ios).toBeGreaterThanOrEqual(95);
    expect(ignoring.read.total_ios).toBeLessThanOrEqual(105);
  });

  it('fails a job slower than rate_min over a rate_cycle, after 2 s to settle (check_min_rate()); one that keeps up runs on', async () => {
    const slow = await fio(
      '--name=k --rw=randread --bs=4k --direct=1 --thinktime=50ms --rate_min=400k --rate_cycle=500 --runtime=6s --time_based --output-format=json',
    );
    expect(slow.status).toBe(1);
    // about 80 KiB/s: 4 KiB every 50 ms
    expect(slow.stderr).toMatch(/^k: rate_min=409600B\/s not met, got \d+B\/s\n/);
    const j = json(slow.stdout).jobs[0];
    expect(j.error).toBe(5);
    // the first look after 2 s only notes where the job is; the next, a cycle later, fails it
    expect(j.read.runtime).toBeGreaterThanOrEqual(2500);
    expect(j.read.runtime).toBeLessThan(4000);
    const kept = await jobJson(
      '--name=j --rw=randread --bs=4k --direct=1 --rate_iops=200 --rate_iops_min=100 --runtime=2600ms --time_based',
    );
    expect(kept.error).toBe(0);
    expect(kept.read.runtime).toBeGreaterThanOrEqual(2600);
  });

  it("fails a job whose I/O takes longer than max_latency, with ETIMEDOUT and fio's line; per direction", async () => {
    const r = await fio('--name=m --rw=randread --bs=4k --direct=1 --iodepth=2 --size=64k --max_latency=1');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /^fio: latency of \d+ nsec exceeds specified max \(1000 nsec\): \/dev\/xvda read \d+ 4096\n/,
    );
    expect(r.stdout).toContain(
      'err=110/file:io_u.c:1449, func=max latency exceeded, error=Connection timed out',
    );
    // reads held to 10 s, writes to 1 µs: a write trips it
    const w = await fio(
      '--name=m --rw=randrw --bs=4k --direct=1 --size=64k --max_latency=10s,1 --output-format=json',
    );
    expect(w.status).toBe(1);
    expect(w.stderr).toMatch(/exceeds specified max \(1000 nsec\): \/dev\/xvda write \d+ 4096\n/);
    expect(json(w.stdout).jobs[0].error).toBe(110);
  });

  it('finds the deepest queue within a latency target, runs a final window at it, and ends the job there', async () => {
    const r = await fio(
      '--name=t --rw=randread --bs=4k --direct=1 --iodepth=4 --latency_target=10s --latency_window=100ms --runtime=20s --time_based --output-format=json,normal',
    );
    expect(r.status).toBe(0);
    const j = json(r.stdout.slice(0, r.stdout.lastIndexOf('}') + 1)).jobs[0];
    expect([j.latency_depth, j.latency_target, j.latency_window, j.latency_percentile]).toEqual([
      4, 10_000_000_000, 100_000, 100,
    ]);
    // 1, 2, 4, 4 again: the final window, whose figures alone are reported (its depth 4 throughout),
    // and then the job ends long before its runtime. The window began with the queue drained:
    // refilled one I/O a commit, as fio 3.36 shows it: a few I/Os at depths 1 and 2 (each at least
    // 0.1 %), every other one at 4 — counted in I/Os, as how many the window holds depends on the
    // machine's speed
    const n = j.read.total_ios;
    expect(n).toBeGreaterThan(8);
    for (const d of ['1', '2']) expect(j.iodepth_level[d]).toBeGreaterThanOrEqual(0.1);
    // each share at most two I/Os' (or stat_calc_dist()'s 0.1 % floor, once the window holds more
    // than a thousand), and depth 4 the rest
    const twoIos = Math.max(0.1, 200 / n);
    // (JSON's shares have six decimals)
    for (const d of ['1', '2']) expect(j.iodepth_level[d]).toBeLessThanOrEqual(twoIos + 1e-5);
    expect(j.iodepth_level['4']).toBeGreaterThanOrEqual((100 * (n - 4)) / n - 1e-5);
    expect(j.read.runtime).toBeGreaterThanOrEqual(100);
    expect(j.read.runtime).toBeLessThan(2000);
    expect(r.stdout).toContain(
      '     latency   : target=10000000000, window=100000, percentile=100.00%, depth=4\n',
    );
  });

  it('keeps adjusting with latency_run, to the end of the runtime', async () => {
    const j = await jobJson(
      '--name=t --rw=randread --bs=4k --direct=1 --iodepth=4 --latency_target=10s --latency_window=50ms --latency_run=1 --runtime=600ms --time_based',
    );
    expect(j.latency_depth).toBe(4);
    expect(j.read.runtime).toBeGreaterThanOrEqual(600);
  });

  it('at depth 1: an I/O over a 100 % target fails the job; under a lower percentile the depth stays 1', async () => {
    const r = await fio(
      '--name=t --rw=randread --bs=4k --direct=1 --iodepth=8 --latency_target=1 --runtime=2s --time_based',
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /^fio: latency of \d+ nsec exceeds specified max \(1000 nsec\): \/dev\/xvda read/,
    );
    const j = await jobJson(
      '--name=t --rw=randread --bs=4k --direct=1 --iodepth=8 --latency_target=1 --latency_percentile=50 --latency_window=50ms --runtime=400ms --time_based',
    );
    expect(j.error).toBe(0);
    expect(j.latency_depth).toBe(1);
    expect(j.iodepth_level['1']).toBe(100);
    expect(j.read.runtime).toBeGreaterThanOrEqual(400);
  });
});

describe("the guest fio's job files and the order of its jobs (stonewall, new_group, wait_for)", () => {
  /** Writes a job file into the guest's root. */
  const jobFile = (name: string, lines: string[]) => writeFile(join(root, name), lines.join('\n') + '\n');

  it('runs a job file, a stonewall job only after the jobs before it ended, in its own reporting group', async () => {
    await jobFile('walls.fio', [
      '; a writer, then a reader behind a stonewall',
      '[global]',
      'bs=4k',
      'direct=1',
      'size=512k',
      '[w]',
      'rw=randwrite',
      'iodepth=8',
      '[r]',
      'stonewall',
      'rw=read   # sequential',
      'iodepth=8',
    ]);
    const r = await requestsOf(() => fio('/walls.fio'));
    expect(r.status).toBe(0);
    // every write before the first read: the reader started when the writer had ended
    expect(r.ops.lastIndexOf('write')).toBeLessThan(r.ops.indexOf('read'));
    expect(r.ops.filter((op) => op === 'write')).toHaveLength(128);
    expect(r.stdout).toMatch(/^w: \(g=0\): rw=randwrite/m);
    expect(r.stdout).toMatch(/^r: \(g=1\): rw=read/m);
    expect(r.stdout).toMatch(/^w: \(groupid=0, jobs=1\)/m);
    expect(r.stdout).toMatch(/^r: \(groupid=1, jobs=1\)/m);
    // a run status a group: the writer's in 0, the reader's in 1
    expect(r.stdout).toMatch(/Run status group 0 \(all jobs\):\n {2}WRITE: bw=.*io=512KiB/);
    expect(r.stdout).toMatch(/Run status group 1 \(all jobs\):\n {3}READ: bw=.*io=512KiB/);
    const j = json((await fio('/walls.fio --output-format=json')).stdout);
    expect(j.jobs.map((x) => [x.jobname, x.groupid])).toEqual([
      ['w', 0],
      ['r', 1],
    ]);
    // the command line's global options and the file's global section's are the run's; a section's
    // header is no option
    expect(j['global options']).toEqual({ filename: '/dev/xvda', bs: '4k', direct: '1', size: '512k' });
    expect(j.jobs[1]['job options']).toEqual({ rw: 'read', iodepth: '8' });
  });

  it('runs only the --section sections; new_group starts a group; wait_for waits for its job', async () => {
    await jobFile('groups.fio', [
      '[global]',
      'bs=4k',
      'direct=1',
      'size=256k',
      '[a]',
      'rw=write',
      '[b]',
      'new_group',
      'rw=randwrite',
      'offset=4m',
      '[c]',
      'rw=read',
      'wait_for=a',
    ]);
    const only = json((await fio('--section=b /groups.fio --output-format=json')).stdout);
    // b alone: no job before it, so its new_group starts no group
    expect(only.jobs.map((x) => [x.jobname, x.groupid])).toEqual([['b', 0]]);
    const r = await requestsOf(() => fio('/groups.fio --output-format=json'));
    expect(r.status).toBe(0);
    expect(json(r.stdout).jobs.map((x) => [x.jobname, x.groupid])).toEqual([
      ['a', 0],
      ['b', 1],
      ['c', 1],
    ]);
    // c read only once a had written all it would: every write of a (below b's offset of 4 MiB)
    // before c's first read
    const firstRead = r.ops.indexOf('read');
    const aWrites = r.io.flatMap((e, i) => (e.op === 'write' && e.sector < 8192 ? [i] : []));
    expect(aWrites).toHaveLength(64);
    expect(Math.max(...aWrites)).toBeLessThan(firstRead);
  });

  it('exitall: a job that ends stops its group (exit_what=group), or everything (all); exitall_on_error on a failure', async () => {
    await jobFile('exit.fio', [
      '[global]',
      'bs=4k',
      'direct=1',
      '[short]',
      'rw=write',
      'size=64k',
      '[long]',
      'rw=randread',
      'time_based',
      'runtime=20',
      'exitall',
      '[later]',
      'stonewall',
      'rw=read',
      'size=64k',
    ]);
    const group = json((await fio('/exit.fio --output-format=json')).stdout);
    // long stopped when short ended, 20 s early; later, in the next group, ran whole
    expect(group.jobs[1].read.runtime).toBeLessThan(15_000);
    expect(group.jobs.map((x) => [x.jobname, x.groupid, x.error])).toEqual([
      ['short', 0, 0],
      ['long', 0, 0],
      ['later', 1, 0],
    ]);
    expect(group.jobs[2].read.total_ios).toBe(16);
    // exit_what=all: nothing starts after the first job to end, not even the next group
    const all = json((await fio('/exit.fio --exit_what=all --output-format=json')).stdout);
    expect(all.jobs[2].read.total_ios).toBe(0);
    expect(all.jobs[1].read.runtime).toBeLessThan(15_000);
    // exitall_on_error: only a failed job stops the others (a max_latency of 1 µs fails "fast")
    const onError = await fio(
      '--name=fast --rw=randread --bs=4k --direct=1 --max_latency=1 --exitall_on_error ' +
        '--name=slow --rw=randread --bs=4k --direct=1 --time_based --runtime=20 --output-format=json',
    );
    expect(onError.status).toBe(1);
    const e = json(onError.stdout);
    expect(e.jobs.map((x) => x.error)).toEqual([110, 0]);
    expect(e.jobs[1].read.runtime).toBeLessThan(15_000);
  });

  it('--showcmd prints the file as options and runs nothing; a job with no options has no "job options"', async () => {
    await jobFile('show.fio', ['[global]', 'bs=4k', 'size=64k', 'direct=1', '[bare]', '[w]', 'rw=write']);
    const shown = await requestsOf(() => fio('--showcmd /show.fio'));
    expect([shown.status, shown.stdout, shown.ops]).toEqual([
      0,
      'fio --filename=/dev/xvda --bs=4k --size=64k --direct=1 --name=bare --name=w --rw=write \n',
      [],
    ]);
    const j = json((await fio('/show.fio --output-format=json')).stdout);
    // stat.c leaves the key out for a job with none
    expect(j.jobs.map((x) => 'job options' in x)).toEqual([false, true]);
  });

  it("refuses a job file's mistakes in fio's words, and runs nothing", async () => {
    await jobFile('bad.fio', ['[j]', 'rw=randread', 'bogus=1', 'bs=abc']);
    const dev = stack.disks.get('/dev/sdg')!;
    const at = dev.log.length;
    const r = await fio('/bad.fio');
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      'fio: failed parsing bs=abc\nBad option <bogus=1>\nDid you mean bs?\nfio: job j dropped\n',
    );
    expect(dev.log.length).toBe(at);
    const missing = await fio('/nope.fio');
    expect([missing.status, missing.stderr]).toEqual([1, "fio: unable to open '/nope.fio' job file\n"]);
    // the command line's error first, as fio's parse_cmd_line() stops there before any file
    const first = await fio('--bs=abc /nope.fio');
    expect([first.status, first.stderr]).toEqual([1, 'fio: failed parsing bs=abc\n']);
  });
});

describe('what the guest fio says as it reads its jobs, in the order fio 3.33 says it (init.c, add_job())', () => {
  /** `fio <args>` in the guest: what it said on stdout (`out`) and stderr (`err`), line by line, in order. */
  async function said(args: string, until = /^Starting |^\{/) {
    const lines: string[] = [];
    const status = await userland.run(`fio --filename=/dev/xvda ${args}`, {
      stdout: (t) =>
        lines.push(
          ...t
            .split('\n')
            .filter(Boolean)
            .map((l) => `out ${l}`),
        ),
      stderr: (t) =>
        lines.push(
          ...t
            .split('\n')
            .filter(Boolean)
            .map((l) => `err ${l}`),
        ),
      signal: new AbortController().signal,
    });
    const end = lines.findIndex((l) => until.test(l.slice(4)));
    return { status, lines: end < 0 ? lines : lines.slice(0, end + 1) };
  }
  const line = (bs: string, rw = 'randread', wbs = '4096B-4096B') =>
    `(g=0): rw=${rw}, bs=(R) ${bs}, (W) ${wbs}, (T) ${wbs}, ioengine=libaio, iodepth=1`;

  // each expected run below is what fio 3.33 printed on a terminal for the same options (psync for
  // libaio, its version for this fio's)
  it("says each job's parse warnings, then its fixup messages and its line, job by job; a clone's after the line", async () => {
    const r = await said(
      '--name=a --rw=randread --bs=4k,0 --blockalign=512 --size=64k --numjobs=2 --name=b --bs=8k,0 --rw=randread --blockalign=512 --size=64k',
    );
    expect(r.status).toBe(0);
    expect(r.lines).toEqual([
      'err bs: min value out of range: 0 (1 min)',
      'err fio: Any use of blockalign= turns off randommap',
      `out a: ${line('4096B-4096B')}`,
      'out ...',
      'err bs: min value out of range: 0 (1 min)',
      'err fio: Any use of blockalign= turns off randommap',
      `out b: ${line('8192B-8192B')}`,
      'out fio-3.36',
      'out Starting 3 processes',
    ]);
    // each numjobs clone runs fixup_options() on a copy of its job: the time_based note again, the
    // note of several writers (numjobs=1 in a clone) not
    const notes = await said(
      '--name=a --rw=write --bs=4k --verify=crc32c --size=64k --numjobs=2 --time_based --runtime=100ms --name=b --rw=write --size=64k --time_based --runtime=100ms --verify=crc32c --verify_backlog=4 --numjobs=2',
    );
    const writers =
      'out fio: multiple writers may overwrite blocks that belong to other jobs. This can cause verification failures.';
    const never = 'out fio: verification read phase will never start because write phase uses all of runtime';
    expect(notes.lines).toEqual([
      writers,
      never,
      `out a: ${line('4096B-4096B', 'write')}`,
      never,
      'out ...',
      writers,
      `out b: ${line('4096B-4096B', 'write')}`,
      'out ...',
      'out fio-3.36',
      'out Starting 4 processes',
    ]);
  });

  it('shows the lines of the jobs added before an --output-format without normal, and before a failed option', async () => {
    // fio adds a job when the next one starts: a format given in the last job's section hides only its line
    const json = await said('--name=a --size=64k --numjobs=2 --name=b --size=64k --output-format=json');
    expect(json.lines).toEqual([`out a: ${line('4096B-4096B', 'read')}`, 'out ...', 'out {']);
    const first = await said('--output-format=json --name=a --size=64k --name=b --size=64k --bs=4k,0');
    expect(first.lines).toEqual(['err bs: min value out of range: 0 (1 min)', 'out {']);
    // job a was added, and its line said, before job b's bs=0 failed
    const bad = await said('--name=a --size=64k --name=b --bs=0');
    expect(bad).toEqual({
      status: 1,
      lines: [
        `out a: ${line('4096B-4096B', 'read')}`,
        'err bs: min value out of range: 0 (1 min)',
        'err fio: failed parsing bs=0',
      ],
    });
    // a job's own mistake found as fio adds it comes after the jobs before it
    const late = await said(
      '--name=a --size=64k --blockalign=512 --rw=randread --name=b --rate=1m --rate_iops=10',
    );
    expect(late).toEqual({
      status: 1,
      lines: [
        'err fio: Any use of blockalign= turns off randommap',
        `out a: ${line('4096B-4096B')}`,
        'err fio: rate and rate_iops are mutually exclusive',
      ],
    });
    // --parse-only adds no job: what the parse said, nothing more
    const parsed = await said(
      '--parse-only --name=a --rw=randread --blockalign=512 --bs=4k,0 --name=b --bs=8k,0',
    );
    expect(parsed).toEqual({
      status: 0,
      lines: ['err bs: min value out of range: 0 (1 min)', 'err bs: min value out of range: 0 (1 min)'],
    });
  });

  it("says a job file's sections in its order: a global section's warnings after the job before it", async () => {
    await writeFile(
      join(root, 'said.fio'),
      [
        '[global]',
        'size=64k',
        'bs=4k,0',
        '[a]',
        'rw=randread',
        'blockalign=512',
        'numjobs=2',
        '[global]',
        'bs=8k,0',
        '[b]',
        'rw=randread',
        'bs=0',
        '',
      ].join('\n'),
    );
    const r = await said('/said.fio');
    expect(r).toEqual({
      status: 1,
      lines: [
        'err bs: min value out of range: 0 (1 min)',
        'err fio: Any use of blockalign= turns off randommap',
        `out a: ${line('4096B-4096B')}`,
        'out ...',
        'err bs: min value out of range: 0 (1 min)',
        'err bs: min value out of range: 0 (1 min)',
        'err fio: failed parsing bs=0',
        'err fio: job b dropped',
      ],
    });
  });
});

describe("the guest fio's mixed jobs (rw, randrw): io_u.c's get_rw_ddir() with fio's own generator (lib/rand.c)", () => {
  // each job's `issued rwts` lines as fio 3.33 printed them for the same options on a loop device
  // (libaio unless named): the directions are drawn as fio draws them, from fio's seeds
  const cases: Array<[string, string[]]> = [
    ['--rw=randrw --bs=4k --size=256k --direct=1', ['29,35,0,0']],
    ['--rw=rw --bs=4k --size=256k --rwmixread=70 --direct=1', ['43,21,0,0']],
    // clones are fio's jobs 2 and 3: their own seeds
    [
      '--rw=randrw --bs=4k --size=256k --rwmixread=30 --numjobs=3 --direct=1 --group_reporting',
      ['52,140,0,0'],
    ],
    // randrepeat: the second pass draws the first's directions again, the runs counted on
    ['--rw=randrw --bs=4k --size=1m --rwmixread=60 --loops=2 --direct=1', ['312,200,0,0']],
    [
      '--name=a --rw=randrw --bs=4k --size=512k --numjobs=2 --direct=1 --name=b --rw=rw --bs=8k --size=512k --rwmixwrite=80 --direct=1',
      ['62,66,0,0', '59,69,0,0', '12,52,0,0'],
    ],
    ['--rw=randrw --bs=4k --size=256k --randrepeat=0 --randseed=7 --loops=2 --direct=1', ['62,66,0,0']],
    // the rate turns a run to the direction behind it (rate_ddir()), and the run goes on from there
    ['--rw=randrw --bs=4k --size=512k --rate_iops=200,50 --direct=1', ['102,26,0,0']],
    // a sync after every third write, again after each read while the count stands (last_was_sync)
    ['--rw=randrw --bs=4k --size=512k --ioengine=psync --direct=1 --fsync=3', ['62,66,0,38']],
    ['--rw=randrw --bs=4k --size=512k --ioengine=psync --direct=1 --verify=crc32c', ['128,66,0,0']],
  ];
  it.each(cases)('%s', async (args, issued) => {
    const r = await fio(`${args.startsWith('--name=') ? '' : '--name=m '}${args} --eta=never`);
    expect(r.status).toBe(0);
    expect([...r.stdout.matchAll(/issued rwts: total=([\d,]+) /g)].map((m) => m[1])).toEqual(issued);
  });
});

describe("the guest fio's numjobs clones apart (offset_increment, offset_align: filesetup.c's get_start_offset())", () => {
  /** Where each job's log says its first I/O went. */
  async function firstOffsets(prefix: string, n: number): Promise<number[]> {
    const out: number[] = [];
    for (let k = 1; k <= n; k++) {
      const line = (await readFile(join(root, `${prefix}_lat.${k}.log`), 'utf8')).split('\n')[0];
      out.push(Number(line.split(', ')[4]));
    }
    return out;
  }

  it('puts each clone its subjob number of increments on, the clones counting down as add_job() makes them (fio 3.33)', async () => {
    const r = await requestsOf(() =>
      fio(
        '--name=x --rw=write --bs=4k --size=64k --direct=1 --numjobs=3 --offset_increment=64k --write_lat_log=inc --log_offset=1',
      ),
    );
    expect(r.status).toBe(0);
    // fio 3.33 over a file: the second job at 128 KiB, the third at 64 KiB
    expect(await firstOffsets('inc', 3)).toEqual([0, 131072, 65536]);
    // together they wrote the first 192 KiB, each block once
    expect(r.io.map((e) => e.sector).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 48 }, (_, b) => b * 8),
    );
  });

  it('rounds a percentage up to offset_align, else to the block size; bytes alone are not rounded', async () => {
    const args = '--rw=write --bs=4k --size=16k --direct=1 --numjobs=3 --log_offset=1';
    // 10 % of the 8 MiB disk is 838860 bytes: subjob 2 at 1677720, subjob 1 at 838860, each rounded up
    expect((await fio(`--name=p ${args} --offset_increment=10% --write_lat_log=pct`)).status).toBe(0);
    expect(await firstOffsets('pct', 3)).toEqual([0, 1679360, 839680]);
    expect(
      (await fio(`--name=a ${args} --offset_increment=10% --offset_align=512 --write_lat_log=al`)).status,
    ).toBe(0);
    expect(await firstOffsets('al', 3)).toEqual([0, 1677824, 839168]);
    expect(
      (await fio(`--name=b ${args} --offset=4k --offset_increment=1m --offset_align=64k --write_lat_log=by`))
        .status,
    ).toBe(0);
    expect(await firstOffsets('by', 3)).toEqual([4096, 4096 + 2 * 1048576, 4096 + 1048576]);
  });

  it("refuses a clone's region past the device, and offset_align=0 with a percentage (fio 3.33 divides by it)", async () => {
    const past = await fio('--name=e --rw=read --bs=4k --size=64k --numjobs=2 --offset_increment=8m');
    expect([past.status, past.stderr]).toEqual([
      1,
      "fio: offset=8388608 (e's subjob 1, offset_increment) is at or past the end of /dev/xvda (8388608 bytes)\n",
    ]);
    // 0 is taken as fio takes it, and refused where fio divides by it
    const zero = await fio('--name=z --rw=read --bs=4k --size=64k --offset=10% --offset_align=0');
    expect([zero.status, zero.stderr]).toEqual([
      1,
      'fio: offset_align=0 with an offset given as a percentage: fio 3.33 divides by it (SIGFPE)\n',
    ]);
    expect((await fio('--name=z --rw=read --bs=4k --size=64k --offset_align=0')).status).toBe(0);
    // str_offset_cb(): bytes after a percentage leave the percentage in use
    expect(
      (
        await fio(
          '--name=k --rw=write --bs=4k --size=16k --direct=1 --offset=10% --offset=1m --write_lat_log=keep --log_offset=1',
        )
      ).status,
    ).toBe(0);
    expect(await firstOffsets('keep', 1)).toEqual([839680]);
  });
});

describe("the guest fio's io_size and number_ios (backend.c's keep_running() and io_bytes_exceeded())", () => {
  /** [reads, writes] a run did, from its JSON. */
  async function ios(args: string): Promise<[number, number]> {
    const r = await fio(`--name=n --bs=4k --size=64k --direct=1 ${args} --output-format=json`);
    expect(r.stderr).toBe('');
    const j = json(r.stdout).jobs[0];
    return [j.read.total_ios, j.write.total_ios];
  }

  it('does io_size over as many passes as it takes, the last cut where the issued bytes reach it (fio 3.33)', async () => {
    // each figure is fio 3.33's over a 64 KiB region of a file
    for (const rw of ['write', 'randwrite', 'read', 'randread'])
      for (const engine of ['psync', 'libaio --iodepth=4'])
        expect(await ios(`--rw=${rw} --ioengine=${engine} --io_size=256k`)).toEqual(
          rw.endsWith('read') ? [64, 0] : [0, 64],
        );
    expect(await ios('--rw=write --io_size=100k')).toEqual([0, 25]);
    expect(await ios('--rw=write --io_size=10k')).toEqual([0, 3]);
    expect((await ios('--rw=rw --io_size=96k')).reduce((a, b) => a + b)).toBe(24);
    // loops are passes before io_size is looked at; its verify reads count as done
    expect(await ios('--rw=write --io_size=256k --loops=2')).toEqual([0, 64]);
    expect(await ios('--rw=write --io_size=256k --verify=crc32c')).toEqual([32, 32]);
    // N % cuts the region
    expect(await ios('--rw=write --io_limit=50%')).toEqual([0, 8]);
    const over = await fio('--name=o --size=64k --io_size=150%');
    expect([over.status, over.stderr]).toEqual([
      1,
      "fio: io_size values greater than 100% aren't supported\nfio: failed parsing io_size=150%\n",
    ]);
  });

  it('repeats a random pass with randrepeat, each pass of io_size seeded again', async () => {
    expect(
      (
        await fio(
          '--name=r --rw=randwrite --bs=4k --size=64k --direct=1 --io_size=160k --write_lat_log=ios --log_offset=1',
        )
      ).status,
    ).toBe(0);
    const offsets = (await readFile(join(root, 'ios_lat.1.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => Number(l.split(', ')[4]));
    expect(offsets).toHaveLength(40);
    expect(offsets.slice(16, 32)).toEqual(offsets.slice(0, 16));
    expect(offsets.slice(32)).toEqual(offsets.slice(0, 8));
    expect(new Set(offsets.slice(0, 16)).size).toBe(16);
  });

  it('ends the job at number_ios, times loops, counting I/O in flight; a time_based job runs on', async () => {
    expect(await ios('--rw=write --number_ios=5')).toEqual([0, 5]);
    expect(await ios('--rw=write --number_ios=5 --loops=2')).toEqual([0, 10]);
    expect(await ios('--rw=randwrite --number_ios=5 --ioengine=libaio --iodepth=4')).toEqual([0, 5]);
    // the verify phase reads back what was written
    expect(await ios('--rw=write --number_ios=5 --verify=crc32c')).toEqual([5, 5]);
    const [, timed] = await ios('--rw=write --number_ios=5 --io_size=8k --time_based --runtime=200ms');
    expect(timed).toBeGreaterThan(16);
  });
});

describe("the guest fio's fsync and fdatasync every N writes (io_u.c's get_rw_ddir(), stat.c's sync figures)", () => {
  const flushesOf = async (args: string) => {
    const dev = stack.disks.get('/dev/sdg')!;
    const at = dev.log.length;
    const r = await fio(args);
    return { ...r, flushes: dev.log.slice(at).filter((e) => e.op === 'flush').length };
  };

  it('syncs after every N writes issued, each a cache flush down to the disk, reported as fio 3.33 reports it', async () => {
    const r = await flushesOf('--name=f --rw=write --bs=4k --size=64k --direct=1 --ioengine=psync --fsync=4');
    expect(r.status).toBe(0);
    // after the 4th, 8th and 12th writes; the pass ends at the 16th
    expect(r.flushes).toBe(3);
    expect(r.stdout).toContain('     issued rwts: total=0,16,0,3 short=0,0,0,0 dropped=0,0,0,0\n');
    // the syncs are counted at their depth over the writes alone, as fio's IO depths are
    expect(r.stdout).toContain('  IO depths    : 1=118.8%, 2=0.0%');
    expect(r.stdout).toMatch(
      /\n {2}lat \([num]sec\).*\n {2}fsync\/fdatasync\/sync_file_range:\n {4}sync \([num]sec\): min=/,
    );
    expect(r.stdout).toMatch(/\n {4}sync percentiles \([num]sec\):\n {5}\| {2}1\.00th=\[/);
    const j = json(
      (
        await fio(
          '--name=f --rw=write --bs=4k --size=64k --direct=1 --ioengine=psync --fsync=4 --output-format=json',
        )
      ).stdout,
    ).jobs[0] as unknown as {
      sync: { total_ios: number; lat_ns: { N: number; percentile?: Record<string, number> } };
    };
    expect([j.sync.total_ios, j.sync.lat_ns.N]).toEqual([3, 3]);
    expect(j.sync.lat_ns.percentile?.['50.000000']).toBeGreaterThan(0);
    // terse has no sync fields
    const fields = async (extra: string) =>
      (await fio(`--name=t --rw=write --bs=4k --size=64k --direct=1 --minimal ${extra}`)).stdout.split(';')
        .length;
    expect(await fields('--fsync=4')).toBe(await fields(''));
  });

  it('takes fdatasync the same way; a reader or a job without them never syncs', async () => {
    const d = await flushesOf('--name=d --rw=write --bs=4k --size=32k --direct=1 --fdatasync=2');
    expect([d.status, d.flushes]).toEqual([0, 3]);
    expect(d.stdout).toContain('issued rwts: total=0,8,0,3 short=0,0,0,0');
    expect((await flushesOf('--name=r --rw=read --bs=4k --size=32k --direct=1 --fsync=1')).flushes).toBe(0);
    const none = await flushesOf('--name=n --rw=write --bs=4k --size=32k --direct=1');
    expect(none.flushes).toBe(0);
    expect(none.stdout).not.toContain('fsync/fdatasync');
  });

  it('leaves the writes in flight while an asynchronous engine syncs, and only a completed write lets the next sync come', async () => {
    const r = await flushesOf(
      '--name=a --rw=write --bs=4k --size=256k --direct=1 --ioengine=libaio --iodepth=8 --fsync=4 --output-format=json',
    );
    expect(r.status).toBe(0);
    const j = json(r.stdout).jobs[0] as unknown as {
      write: { total_ios: number };
      sync: { total_ios: number };
    };
    expect(j.write.total_ios).toBe(64);
    expect(j.sync.total_ios).toBe(r.flushes);
    expect(r.flushes).toBeGreaterThan(0);
    expect(r.flushes).toBeLessThanOrEqual(15);
    // io_uring queues its syncs: one after another, until one has completed or the queue is full
    const u = await flushesOf(
      '--name=u --rw=write --bs=4k --size=64k --direct=1 --ioengine=io_uring --iodepth=8 --fsync=4 --output-format=json',
    );
    const ju = json(u.stdout).jobs[0] as unknown as {
      write: { total_ios: number };
      sync: { total_ios: number };
    };
    expect([u.status, ju.write.total_ios]).toEqual([0, 16]);
    expect(ju.sync.total_ios).toBe(u.flushes);
    expect(u.flushes).toBeGreaterThan(3);
  });

  it('looks again at each pass, and a synchronous engine at the end of a pass another follows (fio 3.33)', async () => {
    // strace of fio 3.33: 4 writes, fsync, fsync, 4 writes, fsync. A psync pass asks for one more I/O
    // when the job goes on (do_io() counts no bytes_issued for it): a sync, counted; no end_fsync
    // after it (should_fsync()); pass 2 forgets it (reset_io_counters()) and syncs before its first
    // write, counted; the job's last pass ends with end_fsync's
    const r = await flushesOf(
      '--name=l --rw=write --bs=4k --size=16k --direct=1 --ioengine=psync --fsync=4 --end_fsync=1 --loops=2',
    );
    expect(r.status).toBe(0);
    expect(r.flushes).toBe(3);
    expect(r.stdout).toContain('issued rwts: total=0,8,0,2');
    // fio 3.33 over 2 passes of 16 writes: 8 syncs, IO depths 1=125.0%
    const p = await flushesOf(
      '--name=l --rw=write --bs=4k --size=64k --direct=1 --ioengine=psync --fsync=4 --loops=2',
    );
    expect(p.stdout).toContain('issued rwts: total=0,32,0,8');
    expect(p.stdout).toContain('IO depths    : 1=125.0%');
    // libaio's pass ends on its bytes issued: no such sync
    const a = await flushesOf(
      '--name=l --rw=write --bs=4k --size=64k --direct=1 --iodepth=1 --fsync=4 --loops=2',
    );
    expect(a.stdout).toContain('issued rwts: total=0,32,0,7');
  });

  it("takes a direction the rate chose before its sleep as the next I/O's, with no sync before it (fio 3.33: 7 syncs)", async () => {
    const r = await fio(
      '--name=r --rw=write --bs=4k --size=64k --direct=1 --iodepth=4 --fsync=4 --time_based --runtime=300ms --rate_iops=100',
    );
    // (how many writes fit in the runtime is the rate's and the clock's: 30 under fio 3.33)
    const m = /issued rwts: total=0,(\d+),0,(\d+) /.exec(r.stdout)!;
    const [w, syncs] = [Number(m[1]), Number(m[2])];
    expect(w).toBeGreaterThan(20);
    // one sync each 4 writes, never two in a row (the guest once made 14 of them here)
    expect(syncs).toBeLessThanOrEqual(Math.floor(w / 4));
    expect(syncs).toBeGreaterThanOrEqual(Math.floor(w / 4) - 1);
  });
});

describe("the guest fio's random offsets without a map (norandommap, random_distribution: lib/zipf.c, lib/gauss.c)", () => {
  /** How often each offset of a job's lat log was hit, most hit first. */
  async function hits(prefix: string): Promise<Array<[number, number]>> {
    const count = new Map<number, number>();
    for (const l of (await readFile(join(root, `${prefix}_lat.1.log`), 'utf8')).trim().split('\n')) {
      const off = Number(l.split(', ')[4]);
      count.set(off, (count.get(off) ?? 0) + 1);
    }
    return [...count.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  }
  const run = async (prefix: string, args: string) =>
    expect(
      (
        await fio(
          `--name=${prefix} --rw=randread --bs=4k --direct=1 --write_lat_log=${prefix} --log_offset=1 ${args}`,
        )
      ).status,
    ).toBe(0);

  it("puts zipf's ranks where fio 3.33 puts them: from the center, scattered by the golden ratio", async () => {
    // fio 3.33 over an 8 MiB file, zipf:1.2:0.5, 1024 reads: 245 at 4 MiB, 97 at 8302592, 75 at 4022272
    await run('zc', '--random_distribution=zipf:1.2:0.5 --io_size=4m');
    const h = await hits('zc');
    expect(h.slice(0, 3).map(([o]) => o)).toEqual([4194304, 8302592, 4022272]);
    // rank 1 over rank 2 is 2^1.2 = 2.3 on average
    expect(h[0][1] / h[1][1]).toBeGreaterThan(1.5);
    expect(h[0][1] / 1024).toBeGreaterThan(0.15);
  });

  it('draws pareto and normal with replacement, in the shares fio 3.33 shows', async () => {
    // fio 3.33, 4096 reads over 2048 blocks: pareto:0.2 put 3500 of them on a fifth of the blocks
    // (989 blocks hit); normal:10 hit 846 blocks, none more than 15 times
    await run('pa', '--random_distribution=pareto:0.2 --io_size=16m');
    const p = await hits('pa');
    const top = p.slice(0, 410).reduce((a, [, c]) => a + c, 0);
    expect(top / 4096).toBeGreaterThan(0.8);
    expect(top / 4096).toBeLessThan(0.9);
    expect(p.length).toBeGreaterThan(850);
    expect(p.length).toBeLessThan(1150);
    await run('no', '--random_distribution=normal:10 --io_size=16m');
    const g = await hits('no');
    expect(g.length).toBeGreaterThan(700);
    expect(g.length).toBeLessThan(1000);
    expect(g[0][1]).toBeLessThan(40);
  });

  it('with norandommap, blocks repeat in a pass, and verify reads back each block once, its last write', async () => {
    const r = await fio(
      '--name=n --rw=randwrite --bs=4k --size=64k --direct=1 --norandommap --verify=crc32c --write_lat_log=nm --log_offset=1 --output-format=json',
    );
    expect(r.status).toBe(0);
    const j = json(r.stdout).jobs[0];
    const written = (await readFile(join(root, 'nm_lat.1.log'), 'utf8'))
      .trim()
      .split('\n')
      .filter((l) => l.split(', ')[2] === '1')
      .map((l) => Number(l.split(', ')[4]));
    expect(written).toHaveLength(16);
    const distinct = new Set(written).size;
    // 16 draws over 16 blocks repeat some (1 in 2 million do not)
    expect(distinct).toBeLessThan(16);
    expect(j.read.total_ios).toBe(distinct);
  });

  it("refuses what fio's random_distribution refuses, in its words", async () => {
    for (const [arg, err] of [
      ['zipf:1', 'fio: zipf theta must different than 1.0'],
      ['pareto:1.5', 'fio: pareto input out of range (0 < input < 1.0)'],
      ['normal:100', 'fio: normal deviation out of range (0 <= input < 100.0)'],
      ['zipf:1.2:2', 'fio: distribution center out of range (0 <= center <= 1.0)'],
      ['zipf:x', 'fio: random postfix parsing failed'],
    ]) {
      const bad = await fio(`--name=x --size=64k --rw=randread --random_distribution=${arg}`);
      expect([bad.status, bad.stderr]).toEqual([
        1,
        `${err}\nfio: failed parsing random_distribution=${arg}\n`,
      ]);
    }
  });
});

describe("the guest fio's non-fatal errors (continue_on_error, ignore_error, error_dump: td_error.c)", () => {
  /** `fio <args>` with the disk failing the requests `fails` picks, as a medium error. */
  async function failing(args: string, fails: (op: string, sector: number) => boolean) {
    const dev = stack.disks.get('/dev/sdg')!;
    dev.failWhen = (op, sector) => (fails(op, sector) ? { kind: 'medium', sector } : null);
    try {
      return await requestsOf(() => fio(args));
    } finally {
      dev.failWhen = null;
    }
  }
  const blocks =
    (...b: number[]) =>
    (op: string, sector: number) =>
      b.includes(sector / 8);
  const reads =
    (...b: number[]) =>
    (op: string, sector: number) =>
      op === 'read' && blocks(...b)(op, sector);
  const writes =
    (...b: number[]) =>
    (op: string, sector: number) =>
      op === 'write' && blocks(...b)(op, sector);

  it("counts cleanup_pending_aio()'s reap of none when an error ends the job (fio 3.33: 0=25.0%, 4=75.0%)", async () => {
    const r = await failing('--name=e --rw=read --bs=4k --size=64k --ioengine=psync --direct=1', reads(2));
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('issued rwts: total=3,0,0,0');
    expect(r.stdout).toContain('complete  : 0=25.0%, 4=75.0%, 8=0.0%');
  });

  it('counts the errors it continues on and goes on: the pass, the report, JSON and terse (fio 3.33)', async () => {
    const r = await failing(
      '--name=c --rw=read --bs=4k --size=256k --direct=1 --continue_on_error=read',
      reads(5, 9),
    );
    // the pass issues its 64 blocks, the failed two among them, and does not make them up
    expect(r.status).toBe(0);
    expect(r.io.filter((e) => e.op === 'read')).toHaveLength(64);
    expect(r.stderr).toBe('');
    expect(r.stdout).not.toMatch(/^fio: pid=/m);
    // the job's error is its first non-fatal one, and nothing set td->verror for an asynchronous engine
    expect(r.stdout).toMatch(/^c: \(groupid=0, jobs=1\): err= 5 \(\): pid=\d+: /m);
    expect(r.stdout).toContain('(248KiB/');
    expect(r.stdout).toContain('     issued rwts: total=64,0,0,0 short=0,0,0,0 dropped=0,0,0,0\n');
    expect(r.stdout).toContain('     errors    : total=2, first_error=5/<Input/output error>\n');
    const j = json(
      (
        await failing(
          '--name=c --rw=read --bs=4k --size=256k --direct=1 --continue_on_error=io --output-format=json',
          reads(1, 2, 3),
        )
      ).stdout,
    ).jobs[0];
    expect([j.error, j.total_err, j.first_error, j.read.total_ios, j.read.clat_ns.N]).toEqual([
      5, 3, 5, 64, 61,
    ]);
    // stat.c's keys come only with continue_on_error
    expect(Object.keys(await jobJson('--name=n --rw=read --bs=4k --size=16k --direct=1'))).not.toContain(
      'total_err',
    );
    const terse = (
      await failing(
        '--name=c --rw=read --bs=4k --size=64k --direct=1 --continue_on_error=all --minimal',
        reads(2),
      )
    ).stdout.trim();
    expect(terse.split(';').slice(-2)).toEqual(['1', '5']);
    expect(terse.split(';')[4]).toBe('5');
    // a group adds its members' counts up; its error is the first member's with one
    const g = json(
      (
        await failing(
          '--name=g --rw=read --bs=4k --size=64k --direct=1 --continue_on_error=read --numjobs=2 --group_reporting --output-format=json',
          reads(4),
        )
      ).stdout,
    ).jobs;
    expect(g.map((x) => [x.error, x.total_err, x.first_error, x.read.total_ios])).toEqual([[5, 2, 5, 32]]);
  });

  it("names the synchronous engine's call, or with error_dump says each error as __io_u_log_error() does", async () => {
    const sync = await failing(
      '--name=s --rw=write --bs=4k --size=64k --direct=1 --ioengine=psync --continue_on_error=all',
      writes(2, 3),
    );
    expect(sync.status).toBe(0);
    expect(sync.stderr).toBe('');
    expect(sync.stdout).toMatch(
      /^s: \(groupid=0, jobs=1\): err= 5 \(file:engines\/sync\.c:126, func=xfer, error=Input\/output error\): pid=/m,
    );
    expect(sync.stdout).toContain('errors    : total=2, first_error=5/<Input/output error>');
    const dump = await failing(
      '--name=d --rw=write --bs=4k --size=64k --direct=1 --continue_on_error=write --error_dump=1',
      writes(2, 3),
    );
    expect(dump.status).toBe(0);
    expect(dump.stderr).toBe(
      'fio: io_u error on file /dev/xvda: Input/output error: write offset=8192, buflen=4096\n' +
        'fio: io_u error on file /dev/xvda: Input/output error: write offset=12288, buflen=4096\n',
    );
    expect(dump.stdout).toMatch(/err= 5 \(file:io_u\.c:1896, func=io_u error, error=Input\/output error\)/);
  });

  it('stops on an error of a kind it does not continue on, and says every kind with no error as Success', async () => {
    const r = await failing(
      '--name=w --rw=read --bs=4k --size=64k --direct=1 --continue_on_error=write',
      reads(3),
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      'fio: io_u error on file /dev/xvda: Input/output error: read offset=12288, buflen=4096\n',
    );
    expect(r.stdout).toMatch(/^fio: pid=\d+, err=5\/file:io_u\.c:1896, func=io_u error/m);
    expect(r.stdout).toContain('errors    : total=0, first_error=0/<Success>');
  });

  it("takes ignore_error's lists by kind, and refuses what fio refuses", async () => {
    // reads: ENOSPC only, so EIO stays fatal; writes: EIO (by number) — which continues on writes
    const r = await failing(
      '--name=i --rw=write --bs=4k --size=64k --direct=1 --ignore_error=ENOSPC,5 --output-format=json',
      writes(0, 15),
    );
    expect(r.status).toBe(0);
    expect(json(r.stdout).jobs[0].total_err).toBe(2);
    const fatal = await failing(
      '--name=i --rw=read --bs=4k --size=64k --direct=1 --ignore_error=ENOSPC,5',
      reads(0),
    );
    expect(fatal.status).toBe(1);
    for (const [arg, err] of [
      [
        '--ignore_error=EFOO',
        'Unknown error EFOO, please use number value\nfio: failed parsing ignore_error=EFOO\n',
      ],
      [
        '--ignore_error=EIO,EIO,EIO,EIO',
        'Illegal error type\nfio: failed parsing ignore_error=EIO,EIO,EIO,EIO\n',
      ],
      [
        '--ignore_error=EILSEQ',
        'Unknown error EILSEQ, please use number value\nfio: failed parsing ignore_error=EILSEQ\n',
      ],
    ]) {
      const bad = await fio(`--name=x --size=64k ${arg}`);
      expect([bad.status, bad.stderr]).toEqual([1, err]);
    }
    // parse.c matches a choice up to its first ',' (else ':'): `io,verify` is `io`
    const first = await failing(
      '--name=i --rw=read --bs=4k --size=64k --direct=1 --continue_on_error=io,verify --output-format=json',
      reads(1),
    );
    expect([first.status, json(first.stdout).jobs[0]['job options'].continue_on_error]).toEqual([
      0,
      'io,verify',
    ]);
    const seq = await fio('--name=x --size=64k --rw=randread:8');
    expect([seq.status, seq.stderr]).toEqual([
      1,
      "rw: randread:8: the ':<n>' after the pattern is not supported by this fio\nfio: failed parsing rw=randread:8\n",
    ]);
    const choice = await fio('--name=x --size=64k --continue_on_error=bogus');
    expect([choice.status, choice.stderr]).toEqual([1, 'fio: failed parsing continue_on_error=bogus\n']);
    expect(choice.stdout).toContain("                    : 1          Alias for 'all'\n");
  });

  it('goes on past verify failures with continue_on_error=verify, and verify_fatal still ends the job', async () => {
    // nothing was written at 4 MiB: every block fails its check
    const args = '--name=v --rw=read --bs=4k --size=64k --direct=1 --verify=crc32c --verify_only --offset=4m';
    const all = await fio(`${args} --continue_on_error=verify --output-format=json`);
    expect(all.status).toBe(0);
    const j = json(all.stdout).jobs[0];
    expect([j.error, j.total_err, j.first_error, j.read.total_ios]).toEqual([84, 16, 84, 16]);
    expect(all.stderr.match(/verify failed|bad magic header/g)?.length).toBe(16);
    const normal = await fio(`${args} --continue_on_error=verify`);
    expect(normal.stdout).toMatch(/^v: \(groupid=0, jobs=1\): err=84 \(\): pid=/m);
    // verify_fatal ends the job at a bad checksum; a bad header returns before it looks (fio 3.33
    // reads all 16 blocks here)
    const headers = json(
      (await fio(`${args} --continue_on_error=verify --verify_fatal=1 --output-format=json`)).stdout,
    ).jobs[0];
    expect([headers.total_err, headers.read.total_ios]).toEqual([16, 16]);
    expect(
      (await fio('--name=w --rw=write --bs=4k --size=64k --direct=1 --verify=crc32c --do_verify=0')).status,
    ).toBe(0);
    const dev = stack.disks.get('/dev/sdg')!;
    for (const b of [3, 9]) dev.data[b * 4096 + 200] ^= 0xff;
    const fatal = json(
      (
        await fio(
          '--name=v --rw=read --bs=4k --size=64k --direct=1 --verify=crc32c --verify_only --continue_on_error=verify --verify_fatal=1 --output-format=json',
        )
      ).stdout,
    ).jobs[0];
    expect([fatal.error, fatal.total_err]).toEqual([84, 1]);
    expect(fatal.read.total_ios).toBeLessThan(16);
    // a read error is not a verify failure
    const io = await failing(
      `--name=r --rw=read --bs=4k --size=64k --direct=1 --continue_on_error=verify`,
      reads(1),
    );
    expect(io.status).toBe(1);
  });

  it("ends the job at a synchronous engine's read error in its verify phase, whatever continue_on_error says (fio 3.33)", async () => {
    // do_verify() stops on it: fio 3.33 over a file failing the third read back says the xfer error,
    // 3 reads, nothing counted, exit 1
    const r = await failing(
      '--name=p --rw=write --bs=4k --size=64k --direct=1 --ioengine=psync --verify=crc32c --continue_on_error=all',
      reads(2),
    );
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(
      /^fio: pid=\d+, err=5\/file:engines\/sync\.c:126, func=xfer, error=Input\/output error$/m,
    );
    expect(r.stdout).toContain('issued rwts: total=3,16,0,0');
    expect(r.stdout).toContain('errors    : total=0, first_error=0/<Success>');
    expect(r.stderr).toBe('');
    // an asynchronous engine's verify phase counts it and reads the rest
    const a = await failing(
      '--name=a --rw=write --bs=4k --size=64k --direct=1 --verify=crc32c --continue_on_error=all',
      reads(2),
    );
    expect(a.status).toBe(0);
    expect(a.stdout).toContain('issued rwts: total=16,16,0,0');
    expect(a.stdout).toContain('errors    : total=1, first_error=5/<Input/output error>');
  });

  it("counts a synchronous engine's error that ends the job when the job continues on its kind (break_on_this_error())", async () => {
    // not in its verify phase, whose errors return before it
    const phase = await failing(
      '--name=p --rw=write --bs=4k --size=64k --direct=1 --ioengine=psync --verify=crc32c --ignore_error=ENOSPC',
      reads(2),
    );
    expect(phase.status).toBe(1);
    expect(phase.stdout).toContain('errors    : total=0, first_error=0/<Success>');
    // reads continued on for ENOSPC only: the EIO ends the job, counted (fio 3.33: total=1, first_error=5)
    const r = await failing(
      '--name=p --rw=read --bs=4k --size=64k --direct=1 --ioengine=psync --ignore_error=ENOSPC',
      reads(2),
    );
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('errors    : total=1, first_error=5/<Input/output error>');
    // a verify failure reaches it as io_u_sync_complete()'s -1: errno 1, of the read's kind
    const v = await fio(
      '--name=v --rw=read --bs=4k --size=64k --direct=1 --verify=crc32c --verify_only --offset=4m --ioengine=psync --continue_on_error=io',
    );
    expect(v.status).toBe(1);
    expect(v.stdout).toContain('errors    : total=1, first_error=1/<Operation not permitted>');
    // an asynchronous engine's does not
    const a = await fio(
      '--name=v --rw=read --bs=4k --size=64k --direct=1 --verify=crc32c --verify_only --offset=4m --continue_on_error=io',
    );
    expect(a.stdout).toContain('errors    : total=0, first_error=0/<Success>');
  });

  it("says on stdout when a synchronous engine's first I/O fails with EIO, as td_io_queue() does", async () => {
    const note = 'fio: first I/O failed. If /dev/xvda is a zoned block device, consider --zonemode=zbd\n';
    const first = await failing(
      '--name=z --rw=write --bs=4k --size=16k --direct=1 --ioengine=psync',
      writes(0),
    );
    expect(first.stdout).toContain(note);
    const later = await failing(
      '--name=z --rw=write --bs=4k --size=16k --direct=1 --ioengine=psync',
      writes(1),
    );
    expect(later.stdout).not.toContain('first I/O failed');
    const aio = await failing('--name=z --rw=write --bs=4k --size=16k --direct=1', writes(0));
    expect(aio.stdout).not.toContain('first I/O failed');
  });

  it("leaves a synchronous engine's failed write in flight in its log: the verify phase stops there, as fio 3.33's does", async () => {
    // fio 3.33 over a file failing the third write: read 2 blocks back, 1 error, no verify failure
    const r = await failing(
      '--name=p --rw=write --bs=4k --size=64k --direct=1 --ioengine=psync --verify=crc32c --continue_on_error=all --output-format=json',
      writes(2),
    );
    expect(r.status).toBe(0);
    const j = json(r.stdout).jobs[0];
    expect([j.write.total_ios, j.read.total_ios, j.total_err]).toEqual([16, 2, 1]);
    expect(r.stderr).toBe('');
    // an asynchronous engine's failed write leaves the log: the rest is read back
    const a = await failing(
      '--name=a --rw=write --bs=4k --size=64k --direct=1 --verify=crc32c --continue_on_error=all --output-format=json',
      writes(2),
    );
    const ja = json(a.stdout).jobs[0];
    expect([ja.write.total_ios, ja.read.total_ios, ja.total_err]).toEqual([16, 15, 1]);
  });

  it('counts I/O over max_latency when ignore_error names ETIMEDOUT (110), saying each', async () => {
    const r = await fio(
      '--name=l --rw=read --bs=4k --size=32k --direct=1 --max_latency=1 --ignore_error=110,110',
    );
    expect(r.status).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('fio: latency of '));
    expect(lines).toHaveLength(8);
    expect(lines[7]).toMatch(
      /^fio: latency of \d+ nsec exceeds specified max \(1000 nsec\): \/dev\/xvda read 28672 4096$/,
    );
    expect(r.stdout).toMatch(
      /err=110 \(file:io_u\.c:\d+, func=max latency exceeded, error=Connection timed out\)/,
    );
    expect(r.stdout).toContain('errors    : total=8, first_error=110/<Connection timed out>');
  });
});

describe('trims: rw=trim, randtrim, trimwrite, randtrimwrite (BLKDISCARD down the ring)', () => {
  /** The disk's requests of a run: discards and writes, as [op, byte offset, bytes]. */
  async function discardsOf(args: string) {
    const dev = stack.disks.get('/dev/sdg')!;
    const at = dev.log.length;
    const r = await fio(args);
    const ops = dev.log
      .slice(at)
      .filter((e) => e.op === 'discard' || e.op === 'write')
      .map((e) => [e.op, e.sector * 512, e.count * 512] as const);
    return { ...r, ops };
  }
  /** A latency log's (ddir, offset) pairs, in its order. */
  const logged = async (prefix: string) =>
    (await readFile(join(root, `${prefix}_lat.1.log`), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => l.split(', '))
      .map((f) => [Number(f[2]), Number(f[4])]);

  it('trims each block of the region once, inline for libaio: depth 1, no slat, a trim section and a TRIM line', async () => {
    const r = await discardsOf(
      '--name=t --rw=randtrim --bs=4k --offset=1m --size=64k --ioengine=libaio --iodepth=4 --direct=1',
    );
    expect(r.status).toBe(0);
    expect(r.ops.every(([op, , n]) => op === 'discard' && n === 4096)).toBe(true);
    const offsets = r.ops.map(([, o]) => o);
    expect([...offsets].sort((a, b) => a - b)).toEqual(
      Array.from({ length: 16 }, (_, i) => 1048576 + i * 4096),
    );
    // in a random order
    expect(offsets).not.toEqual([...offsets].sort((a, b) => a - b));
    const lines = r.stdout.split('\n');
    const trim = lines.findIndex((l) => l.startsWith('  trim: IOPS='));
    expect(trim).toBeGreaterThan(0);
    expect(lines[trim]).toMatch(/\(64\.0KiB\/\d+msec\)$/);
    expect(lines[trim + 1]).toMatch(/^ {4}clat \(/);
    expect(r.stdout).not.toMatch(/slat| {2}read:| {2}write:/);
    expect(r.stdout).toContain('IO depths    : 1=100.0%, 2=0.0%, 4=0.0%');
    expect(r.stdout).toContain('issued rwts: total=0,0,16,0 short=0,0,0,0 dropped=0,0,0,0');
    expect(lines.find((l) => l.startsWith('   TRIM: bw='))).toMatch(
      /, io=64\.0KiB \(65\.5kB\), run=\d+-\d+msec$/,
    );
  });

  it('trimwrite: a trim, then a write of the range it trimmed, through the page cache; JSON has both', async () => {
    const dev = stack.disks.get('/dev/sdg')!;
    dev.data.fill(0, 2 * 1048576, 2 * 1048576 + 32768);
    const r = await fio(
      '--name=tw --rw=trimwrite --bs=4k --offset=2m --size=32k --ioengine=psync --direct=1 --write_lat_log=tw --log_offset=1 --output-format=json',
    );
    expect(r.status).toBe(0);
    const j = json(r.stdout).jobs[0];
    expect([j.read.total_ios, j.write.total_ios, j.trim.total_ios]).toEqual([0, 8, 8]);
    expect(j.trim.io_bytes).toBe(32768);
    // a trim has no submission latency, whatever the engine
    expect(j.trim.slat_ns.N).toBe(0);
    expect(j.trim.clat_ns.N).toBe(8);
    const want = Array.from({ length: 8 }, (_, i) => [
      [2, 2 * 1048576 + i * 4096],
      [1, 2 * 1048576 + i * 4096],
    ]).flat();
    expect(await logged('tw')).toEqual(want);
    // direct=1 does not apply to a job that trims (fio opens its file without O_DIRECT): the writes
    // reached the disk from the page cache, after the trims, as fio's buffered writes do
    expect(dev.data.subarray(2 * 1048576, 2 * 1048576 + 32768).some((b) => b !== 0)).toBe(true);
  });

  it('randtrimwrite writes where each trim went, trims every block once, and makes no fsync=N sync', async () => {
    const r = await fio(
      '--name=rtw --rw=randtrimwrite --bs=4k --offset=3m --size=32k --ioengine=psync --write_lat_log=rtw --log_offset=1 --fsync=3',
    );
    expect(r.status).toBe(0);
    // set_rw_ddir() turns the sync get_rw_ddir() chose into the next trim or write (fio 3.33: 0 syncs)
    expect(r.stdout).toContain('issued rwts: total=0,8,8,0');
    const pairs = await logged('rtw');
    expect(pairs).toHaveLength(16);
    for (let i = 0; i < 16; i += 2) {
      expect(pairs[i][0]).toBe(2);
      expect(pairs[i + 1]).toEqual([1, pairs[i][1]]);
    }
    const trimmed = pairs.filter(([d]) => d === 2).map(([, o]) => o);
    expect([...trimmed].sort((a, b) => a - b)).toEqual(
      Array.from({ length: 8 }, (_, i) => 3 * 1048576 + i * 4096),
    );
  });

  it("fails on a trim's error as td_io_queue() does, and counts it with continue_on_error=write", async () => {
    const dev = stack.disks.get('/dev/sdg')!;
    dev.failWhen = (op, sector) =>
      op === 'discard' && sector === 4 * 2048 + 3 * 8 ? { kind: 'medium', sector } : null;
    try {
      const args = '--name=e --rw=trim --bs=4k --offset=4m --size=32k --ioengine=psync';
      const fatal = await fio(args);
      expect(fatal.status).toBe(1);
      const message = 'err= 5 (file:ioengines.c:405, func=td_io_queue, error=Input/output error)';
      expect(fatal.stdout).toContain(`e: (groupid=0, jobs=1): ${message}`);
      expect(fatal.stdout + fatal.stderr).not.toContain('io_u error');
      expect(fatal.stdout).toContain('issued rwts: total=0,0,4,0');
      // each psync I/O a completion of one, and cleanup_pending_aio()'s reap of none at the end
      expect(fatal.stdout).toContain('complete  : 0=20.0%, 4=80.0%');
      const going = await fio(`${args} --continue_on_error=write`);
      expect(going.status).toBe(0);
      expect(going.stdout).toContain(`e: (groupid=0, jobs=1): ${message}`);
      expect(going.stdout).toContain('issued rwts: total=0,0,8,0');
      expect(going.stdout).toContain('errors    : total=1, first_error=5/<Input/output error>');
    } finally {
      dev.failWhen = null;
    }
  });

  it('lets the event loop turn between inline trims that fail at once: the ETA line is drawn and Ctrl-C ends the job', async () => {
    const quiet = { stdout: () => {}, stderr: () => {}, signal: new AbortController().signal };
    // a read-only device: each BLKDISCARD is refused (EPERM) without reaching the ring
    expect(await userland.run('blockdev --setro /dev/xvda', quiet)).toBe(0);
    try {
      const r = await interruptedFio(
        '--name=ro --rw=randtrim --bs=4k --size=64k --ioengine=libaio --iodepth=4 --time_based --runtime=20 --eta=always --continue_on_error=write --ignore_error=,EPERM',
        (out) => out.includes('Jobs: 1 (f=1)'),
        'the ETA line of a job whose trims all fail',
      );
      expect(r.status).toBe(128);
      expect(r.out).toMatch(/errors {4}: total=\d+, first_error=1\/<Operation not permitted>/);
    } finally {
      expect(await userland.run('blockdev --setrw /dev/xvda', quiet)).toBe(0);
    }
  });

  it("reads trimwrite's writes back with verify, and refuses verify on a job that only trims", async () => {
    const v = await fio('--name=v --rw=randtrim --bs=4k --size=64k --verify=crc32c');
    expect(v.status).toBe(1);
    expect(v.stderr).toContain(
      'fio: v: verify with rw=randtrim is not supported by this fio: a job that only trims writes nothing to verify',
    );
    // fio 3.33: total=16,16,16,0 over 64 KiB
    const tw = await fio(
      '--name=tw --rw=randtrimwrite --bs=4k --offset=5m --size=64k --ioengine=psync --verify=crc32c',
    );
    expect(tw.status).toBe(0);
    expect(tw.stdout).toContain('issued rwts: total=16,16,16,0');
    expect(tw.stdout + tw.stderr).not.toContain('verify failed');
  });
});

describe("block sizes that vary: bsrange, bssplit, a size per direction (io_u.c's get_next_buflen(), mark_random_map())", () => {
  /** The lat log a run wrote under the guest's `/`: [time, lat, direction, bs, offset] per I/O. */
  const latLog = async (prefix: string) =>
    (await readFile(join(root, `${prefix}_lat.1.log`), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => l.split(', ').map(Number));

  it('writes a random region once with a range of sizes, each cut where it meets a block done, and verifies each at its length', async () => {
    const r = await requestsOf(() =>
      fio(
        '--name=v --rw=randwrite --bsrange=4k-16k --direct=1 --size=256k --iodepth=4 --verify=crc32c --write_lat_log=vr --log_offset=1 --output-format=json',
      ),
    );
    expect(r.status).toBe(0);
    const j = json(r.stdout).jobs[0];
    expect([j.write.io_bytes, j.read.io_bytes]).toEqual([262144, 262144]);
    const log = await latLog('vr');
    const writes = log.filter((e) => e[2] === 1);
    const reads = log.filter((e) => e[2] === 0);
    expect(writes).toHaveLength(j.write.total_ios);
    // the region's 64 blocks each written once; lengths of 4k to 16k in 4k steps
    const done = new Uint8Array(64);
    for (const [, , , bs, offset] of writes) {
      expect([4096, 8192, 12288, 16384]).toContain(bs);
      for (let b = offset / 4096; b < (offset + bs) / 4096; b++) {
        expect(done[b]).toBe(0);
        done[b] = 1;
      }
    }
    expect(done.every((d) => d === 1)).toBe(true);
    expect(new Set(writes.map((e) => e[3])).size).toBeGreaterThan(1);
    // the verify phase reads back every write where it went, at its length
    const key = (e: number[]) => `${e[4]}+${e[3]}`;
    expect(reads.map(key).sort()).toEqual(writes.map(key).sort());
    // and the disk took what the log says
    const sectors = (op: string) => r.io.filter((e) => e.op === op).reduce((a, e) => a + e.count, 0);
    expect([sectors('write'), sectors('read')]).toEqual([512, 512]);
  });

  it('reads and writes each at its own size (bs=4k,16k), as the job line says', async () => {
    const r = await fio(
      '--name=d --rw=randrw --bs=4k,16k --direct=1 --size=512k --norandommap --write_lat_log=dr --log_offset=1',
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(
      'd: (g=0): rw=randrw, bs=(R) 4096B-4096B, (W) 16.0KiB-16.0KiB, (T) 16.0KiB-16.0KiB, ioengine=libaio, iodepth=1',
    );
    const log = await latLog('dr');
    // the pass is the size in bytes, reads and writes together (do_io()'s bytes_issued)
    const bytes = log.reduce((a, e) => a + e[3], 0);
    expect(bytes).toBeGreaterThanOrEqual(512 * 1024);
    expect(bytes).toBeLessThan(512 * 1024 + 16384);
    for (const [, , d, bs, offset] of log) {
      // each direction's offsets are in blocks of its own size (ba[ddir])
      const size = d === 0 ? 4096 : 16384;
      expect(bs).toBe(size);
      expect(offset % size).toBe(0);
      expect(offset + bs).toBeLessThanOrEqual(512 * 1024);
    }
    expect(new Set(log.map((e) => e[2]))).toEqual(new Set([0, 1]));
  });

  it('reads a region in order with the sizes of a split, to its end', async () => {
    const r = await fio(
      '--name=s --rw=read --bssplit=4k/50:32k/50 --direct=1 --size=1m --write_lat_log=sr --log_offset=1',
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('bs=(R) 4096B-32.0KiB, (W) 4096B-32.0KiB, (T) 4096B-32.0KiB');
    const log = await latLog('sr');
    let pos = 0;
    for (const [, , , bs, offset] of log) {
      expect(offset).toBe(pos);
      expect([4096, 32768]).toContain(bs);
      pos += bs;
    }
    expect(pos).toBe(1 << 20);
    expect(new Set(log.map((e) => e[3])).size).toBe(2);
  });

  it("writes what trimwrite trimmed, at the trim's length", async () => {
    const r = await fio(
      '--name=t --rw=trimwrite --bsrange=4k-12k --direct=1 --size=128k --write_lat_log=tw --log_offset=1',
    );
    expect(r.status).toBe(0);
    const log = await latLog('tw');
    expect(log.length % 2).toBe(0);
    let pos = 0;
    for (let i = 0; i < log.length; i += 2) {
      const [trim, write] = [log[i], log[i + 1]];
      expect([trim[2], write[2]]).toEqual([2, 1]);
      expect(write.slice(3, 5)).toEqual(trim.slice(3, 5));
      expect(trim[4]).toBe(pos);
      pos += trim[3];
    }
    expect(pos).toBe(128 * 1024);
  });

  it('starts a random I/O at any multiple of blockalign, with no map, as fio says on stderr', async () => {
    const r = await fio(
      '--name=a --rw=randread --bs=4k --blockalign=512 --direct=1 --size=64k --write_lat_log=ba --log_offset=1',
    );
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('fio: Any use of blockalign= turns off randommap\n');
    const log = await latLog('ba');
    // the size's bytes in blocks of 4 KiB drawn with replacement, each at a multiple of 512 below 60 KiB
    expect(log).toHaveLength(16);
    for (const [, , , bs, offset] of log) {
      expect(bs).toBe(4096);
      expect(offset % 512).toBe(0);
      expect(offset).toBeLessThanOrEqual(61440);
    }
    expect(log.some((e) => e[4] % 4096 !== 0)).toBe(true);
  });

  it("sizes sequential I/O with the reads' sizes and random I/O with the writes' (bs_is_seq_rand)", async () => {
    const r = await fio(
      '--name=q --rw=randread --bs=4k,16k --bs_is_seq_rand=1 --direct=1 --size=256k --write_lat_log=sq --log_offset=1',
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('bs=(R) 4096B-4096B, (W) 16.0KiB-16.0KiB, bs_is_seq_rand, ioengine=libaio');
    const log = await latLog('sq');
    // reads at offsets in the reads' 4 KiB, 16 KiB long but where the map cuts them
    expect(log.every((e) => e[2] === 0 && e[4] % 4096 === 0 && e[3] % 4096 === 0 && e[3] <= 16384)).toBe(
      true,
    );
    expect(log.filter((e) => e[3] === 16384).length).toBeGreaterThan(log.length / 2);
    expect(log.reduce((a, e) => a + e[3], 0)).toBe(256 * 1024);
    const seq = await fio(
      '--name=q --rw=read --bs=4k,16k --bs_is_seq_rand=1 --direct=1 --size=64k --write_lat_log=sr2',
    );
    expect(seq.status).toBe(0);
    expect((await latLog('sr2')).map((e) => e[3])).toEqual(Array(16).fill(4096));
  });

  it('writes lengths off the sector with bs_unaligned, through the page cache, and reads them back', async () => {
    const w = await fio(
      '--name=u --rw=write --bsrange=512-4k --bs_unaligned --size=64k --end_fsync=1 --write_lat_log=un --log_offset=1',
    );
    expect(w.status).toBe(0);
    const log = await latLog('un');
    let pos = 0;
    for (const [, , , bs, offset] of log) {
      expect(offset).toBe(pos);
      pos += bs;
    }
    expect(log.some((e) => e[3] % 512 !== 0)).toBe(true);
    expect(pos).toBeLessThanOrEqual(65536);
    expect(pos).toBeGreaterThan(65536 - 512);
  });

  it("trims and writes a sequential region at their own sizes (trimwrite's last starts)", async () => {
    // fio 3.33: trims of 16 KiB, each followed by writes of 4 KiB until one starts where it did
    const r = await fio(
      '--name=t --rw=trimwrite --bs=4k,4k,16k --size=256k --direct=1 --write_lat_log=ts --log_offset=1',
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('issued rwts: total=0,61,16,0');
    const log = await latLog('ts');
    const first = log.slice(0, 8).map((e) => `${e[2] === 2 ? 'T' : 'W'}${e[3] / 1024}k@${e[4] / 1024}k`);
    expect(first.sort()).toEqual(
      ['T16k@0k', 'W4k@0k', 'T16k@16k', 'W4k@4k', 'W4k@8k', 'W4k@12k', 'W4k@16k', 'T16k@32k'].sort(),
    );
    // writes of 16 KiB after trims of 4 KiB meet a trim's start once only
    const w = await fio('--name=t --rw=trimwrite --bs=4k,16k,4k --size=256k --direct=1');
    expect(w.stdout).toContain('issued rwts: total=0,16,2,0');
    // the pass ends on the writes' bytes, not the trims' (which pass the region here)
    const t12 = await fio('--name=t --rw=trimwrite --bs=4k,4k,12k --size=64k --direct=1');
    expect(t12.stdout).toContain('issued rwts: total=0,16,6,0');
  });

  it('ends the pass, and says so, when no size of a split that fits has a share', async () => {
    const r = await fio('--name=z --rw=write --bssplit=4k/0:64k/100 --size=68k --direct=1');
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(
      'fio: z: no size of the split of 4096 to 65536 fits in the 4096 bytes left of the region after 10000 draws (those that fit have a share of 0): the pass ends there\n',
    );
    expect(r.stdout).toContain('issued rwts: total=0,1,0,0');
  });

  it('reads the whole region with a wide range, to its last few bytes, and nothing past a blockalign larger than it', async () => {
    const wide = await jobJson('--name=w --rw=randread --bsrange=512-8m --direct=1 --randseed=7');
    expect(wide.error).toBe(0);
    expect(wide.read.io_bytes).toBe(8 << 20);
    const none = await fio('--name=n --rw=randread --bs=4k --ba=2m --size=1m --direct=1');
    expect(none.status).toBe(0);
    expect(none.stdout).not.toContain('issued rwts');
  });

  it('starts a time_based random region over once its map is full', async () => {
    const j = await jobJson(
      '--name=w --rw=randread --bsrange=4k-8k --direct=1 --size=64k --time_based --runtime=300ms',
    );
    expect(j.error).toBe(0);
    expect(j.read.io_bytes).toBeGreaterThan(2 * 65536);
  });
});

describe("fio's batches: iodepth_batch_submit, iodepth_batch_complete_min/max, iodepth_low (backend.c's wait_for_completions())", () => {
  /** The `IO depths`, `submit` and `complete` lines of a 4 KiB randread at QD32 over 4 MiB. */
  const lines = async (opts: string) => {
    const r = await fio(`--name=b --rw=randread --bs=4k --iodepth=32 --direct=1 --size=4m ${opts}`);
    expect(r.status).toBe(0);
    return r.stdout
      .split('\n')
      .filter((l) => /^\s+(IO depths|submit|complete)\s+:/.test(l))
      .map((l) => l.trim());
  };

  // fio 3.33 on a 64 MiB loop device of this machine, the same job (libaio, unless named), each run
  // once: what it printed. A wait of a fixed number of completions (complete_max not above
  // complete_min) makes the counts the same on any device, however fast.
  it.each([
    [
      '--iodepth_batch=-1',
      '1=0.0%, 2=0.0%, 4=0.0%, 8=0.0%, 16=0.0%, 32=100.0%, >=64=0.0%',
      '0=0.0%, 4=99.9%, 8=0.0%, 16=0.0%, 32=0.1%, 64=0.0%, >=64=0.0%',
      '0=0.0%, 4=99.9%, 8=0.0%, 16=0.0%, 32=0.1%, 64=0.0%, >=64=0.0%',
    ],
    [
      '--iodepth_low=-3',
      '1=0.1%, 2=0.2%, 4=0.4%, 8=0.8%, 16=1.6%, 32=97.0%, >=64=0.0%',
      '0=0.0%, 4=100.0%, 8=0.0%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
      '0=0.0%, 4=99.9%, 8=0.0%, 16=0.0%, 32=0.1%, 64=0.0%, >=64=0.0%',
    ],
    [
      '--iodepth_batch_complete_min=-1',
      '1=3.1%, 2=6.2%, 4=12.5%, 8=25.0%, 16=50.0%, 32=3.1%, >=64=0.0%',
      '0=0.0%, 4=100.0%, 8=0.0%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
      '0=0.0%, 4=0.0%, 8=0.0%, 16=0.0%, 32=100.0%, 64=0.0%, >=64=0.0%',
    ],
    [
      '--iodepth_batch_complete_min=0 --iodepth_batch_complete_max=0',
      '1=100.0%, 2=0.0%, 4=0.0%, 8=0.0%, 16=0.0%, 32=0.0%, >=64=0.0%',
      '0=0.0%, 4=100.0%, 8=0.0%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
      '0=0.0%, 4=100.0%, 8=0.0%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
    ],
    [
      '--iodepth_batch_complete=4',
      '1=0.1%, 2=0.2%, 4=0.4%, 8=0.8%, 16=74.2%, 32=24.3%, >=64=0.0%',
      '0=0.0%, 4=100.0%, 8=0.0%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
      '0=0.0%, 4=99.6%, 8=0.0%, 16=0.0%, 32=0.4%, 64=0.0%, >=64=0.0%',
    ],
    [
      '--iodepth_batch=8 --iodepth_batch_complete_min=8 --iodepth_low=16',
      '1=0.0%, 2=0.0%, 4=0.0%, 8=0.8%, 16=50.0%, 32=49.2%, >=64=0.0%',
      '0=0.0%, 4=0.0%, 8=100.0%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
      '0=0.0%, 4=0.0%, 8=99.2%, 16=0.8%, 32=0.0%, 64=0.0%, >=64=0.0%',
    ],
    [
      '--iodepth_batch=5 --iodepth_batch_complete=3 --iodepth_low=20',
      '1=0.0%, 2=0.0%, 4=0.5%, 8=1.0%, 16=90.3%, 32=7.8%, >=64=0.0%',
      // libaio's ring of 32 iocbs splits a commit of 5 where it wraps: more, smaller submits
      '0=0.0%, 4=58.0%, 8=42.0%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
      '0=0.0%, 4=99.7%, 8=0.0%, 16=0.0%, 32=0.3%, 64=0.0%, >=64=0.0%',
    ],
    [
      '--ioengine=io_uring --iodepth_batch=5 --iodepth_batch_complete=3 --iodepth_low=20',
      '1=0.0%, 2=0.0%, 4=0.5%, 8=1.0%, 16=90.3%, 32=7.8%, >=64=0.0%',
      '0=0.0%, 4=49.6%, 8=50.4%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
      '0=0.0%, 4=99.7%, 8=0.0%, 16=0.0%, 32=0.3%, 64=0.0%, >=64=0.0%',
    ],
    [
      '--iodepth_batch_submit=0 --iodepth_low=1',
      '1=0.0%, 2=6.2%, 4=12.5%, 8=25.0%, 16=50.0%, 32=6.2%, >=64=0.0%',
      '0=0.0%, 4=12.7%, 8=12.7%, 16=25.4%, 32=49.2%, 64=0.0%, >=64=0.0%',
      '0=0.0%, 4=100.0%, 8=0.0%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
    ],
  ])(
    '%s: IO depths, submit and complete as fio 3.33 printed them',
    async (opts, depths, submit, complete) => {
      expect(await lines(opts)).toEqual([
        `IO depths    : ${depths}`,
        `submit    : ${submit}`,
        `complete  : ${complete}`,
      ]);
    },
  );

  // fio 3.33, the same jobs on the loop device (libaio): a verify phase batched as the writes were, a
  // libaio sync between batches (what a getevents submitted is counted at the next batch's commit),
  // polling trims (each inline trim leaves the queue empty, and the wait after it is a getevents of
  // none, counted), and a backlog's reads in flight, which are not the pass's bytes
  it.each([
    [
      '--rw=randwrite --size=256k --iodepth=16 --verify=crc32c --iodepth_batch=4 --iodepth_batch_complete_min=4 --iodepth_low=8',
      '1=0.0%, 2=0.0%, 4=6.2%, 8=50.0%, 16=43.8%, 32=0.0%, >=64=0.0%',
      '0=0.0%, 4=100.0%, 8=0.0%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
      '0=0.0%, 4=93.3%, 8=6.7%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
      'total=64,64,0,0',
    ],
    [
      '--rw=write --size=512k --iodepth=8 --iodepth_batch=4 --iodepth_batch_complete_min=1 --fsync=5',
      '1=0.0%, 2=0.0%, 4=4.7%, 8=112.5%, 16=0.0%, 32=0.0%, >=64=0.0%',
      '0=0.0%, 4=100.0%, 8=0.0%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
      '0=0.0%, 4=99.2%, 8=0.8%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
      'total=0,128,0,25',
    ],
    [
      '--rw=trim --size=512k --iodepth=4 --iodepth_batch_complete_min=0',
      '1=100.0%, 2=0.0%, 4=0.0%, 8=0.0%, 16=0.0%, 32=0.0%, >=64=0.0%',
      '0=0.0%, 4=100.0%, 8=0.0%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
      '0=50.0%, 4=50.0%, 8=0.0%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
      'total=0,0,128,0',
    ],
    [
      '--rw=write --size=512k --iodepth=4 --iodepth_batch=2 --iodepth_batch_complete_min=2 --verify=md5 --verify_backlog=7',
      '1=0.0%, 2=1.6%, 4=98.4%, 8=0.0%, 16=0.0%, 32=0.0%, >=64=0.0%',
      '0=0.0%, 4=100.0%, 8=0.0%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
      '0=0.0%, 4=100.0%, 8=0.0%, 16=0.0%, 32=0.0%, 64=0.0%, >=64=0.0%',
      'total=128,128,0,0',
    ],
  ])('%s: as fio 3.33 counted it', async (opts, depths, submit, complete, issued) => {
    const r = await fio(`--name=s --bs=4k --direct=1 ${opts}`);
    expect(r.status).toBe(0);
    const out = r.stdout.split('\n').map((l) => l.trim());
    for (const l of [
      `IO depths    : ${depths}`,
      `submit    : ${submit}`,
      `complete  : ${complete}`,
      `issued rwts: ${issued} short=0,0,0,0 dropped=0,0,0,0`,
    ])
      expect(out).toContain(l);
  });

  it("puts a commit on the ring as one push: one I/O a push at fio's defaults, where its own loop pushes a burst", async () => {
    const front = disks[0].front;
    const pushes = async (opts: string) => {
      const [p, q] = [front.stats.pushes, front.stats.requests];
      const r = await fio(`--name=p --rw=randread --bs=4k --direct=1 ${opts}`);
      expect(r.status).toBe(0);
      return { pushes: front.stats.pushes - p, requests: front.stats.requests - q };
    };
    // any of the options given: fio's defaults for the rest, an io_submit() of one I/O, one push each
    expect(await pushes('--iodepth=4 --size=64k --iodepth_batch=1')).toEqual({ pushes: 16, requests: 16 });
    // commits of 8: the first fill's four, then two each time the queue has drained to 16
    expect(
      await pushes(
        '--iodepth=32 --size=1m --iodepth_batch=8 --iodepth_batch_complete_min=8 --iodepth_low=16',
      ),
    ).toEqual({
      pushes: 32,
      requests: 256,
    });
    // none given: a burst of completions refilled at once, in pushes of up to 16
    const own = await pushes('--iodepth=32 --size=1m');
    expect(own.requests).toBe(256);
    expect(own.pushes).toBeLessThan(own.requests / 2);
  });

  it("lists the options in the JSON under fio's names, and leaves a synchronous engine's loop alone", async () => {
    const j = await jobJson(
      '--name=s --rw=read --bs=4k --size=64k --ioengine=psync --iodepth=4 --iodepth_batch_submit=4 --iodepth_low=2',
    );
    expect(j['job options']).toMatchObject({ iodepth_batch: '4', iodepth_low: '2' });
    expect(j.iodepth_level['1']).toBe(100);
    expect(j.iodepth_submit['4']).toBe(100);
    expect(j.iodepth_complete['4']).toBe(100);
  });

  it('ends a job an error stops mid-batch, with what was held and in flight reaped, and goes on past one it continues on', async () => {
    const dev = stack.disks.get('/dev/sdg')!;
    dev.failWhen = (op, sector) => (op === 'read' && sector === 10 * 8 ? { kind: 'medium', sector } : null);
    try {
      const opts =
        '--rw=read --bs=4k --size=256k --direct=1 --iodepth=8 --iodepth_batch=4 --iodepth_batch_complete_min=4';
      const stopped = await fio(`--name=e ${opts}`);
      expect(stopped.status).toBe(1);
      expect(stopped.stdout).toMatch(/^e: \(groupid=0, jobs=1\): err= 5 /m);
      // the error ends the pass where the reads had got to: a batch or two past block 10
      const issued = Number(/issued rwts: total=(\d+),/.exec(stopped.stdout)![1]);
      expect(issued).toBeGreaterThan(10);
      expect(issued).toBeLessThan(64);
      const goesOn = await requestsOf(() => fio(`--name=c ${opts} --continue_on_error=read`));
      expect(goesOn.status).toBe(0);
      expect(goesOn.io).toHaveLength(64);
      expect(goesOn.stdout).toContain('errors    : total=1, first_error=5/<Input/output error>');
    } finally {
      dev.failWhen = null;
    }
  });

  it('stops on Ctrl-C with its report, whatever the loop was waiting for', async () => {
    const r = await interruptedFio(
      '--name=i --rw=randread --bs=4k --direct=1 --iodepth=16 --runtime=1h --time_based --iodepth_batch=4 --iodepth_batch_complete_min=4 --iodepth_low=8',
      (_, requests) => requests >= 200,
      '200 reads',
    );
    expect(r.status).toBe(128);
    expect(r.out).toMatch(/^i: \(groupid=0, jobs=1\)/m);
    const issued = Number(/issued rwts: total=(\d+),/.exec(r.out)![1]);
    // every read the disk took is in the report: none was left held or unreaped
    expect(issued).toBe(r.requests);
  });
});

describe('a value ending in z (parse.c: a count of zones for size, offset, io_size, offset_increment; refused for any other number)', () => {
  // each expected line below is what fio 3.33 said for the same option (its parse.c is 3.36's here)
  it("refuses it for a number, once for each round handle_option() reads, by the option's own name", async () => {
    const cases: Array<[string, string[]]> = [
      [
        '--bs=4k,8z',
        [
          "bs: 'z' suffix isn't applicable",
          "bs: 'z' suffix isn't applicable",
          'fio: failed parsing bs=4k,8z',
        ],
      ],
      [
        '--blocksize=4k,8z',
        [
          "bs: 'z' suffix isn't applicable",
          "bs: 'z' suffix isn't applicable",
          'fio: failed parsing blocksize=4k,8z',
        ],
      ],
      ['--runtime=1z', ["runtime: 'z' suffix isn't applicable", 'fio: failed parsing runtime=1z']],
      ['--iodepth=2z', ["iodepth: 'z' suffix isn't applicable", 'fio: failed parsing iodepth=2z']],
      ['--rate=1z', ["rate: 'z' suffix isn't applicable", 'fio: failed parsing rate=1z']],
      ['--thinktime=1z', ["thinktime: 'z' suffix isn't applicable", 'fio: failed parsing thinktime=1z']],
      ['--size=xz', ["size: unexpected zone value 'xz'", 'fio: failed parsing size=xz']],
    ];
    for (const [opt, lines] of cases) {
      const r = await fio(`--name=a ${opt} --rw=read --parse-only`);
      expect(r.status, opt).toBe(1);
      expect(r.stderr.split('\n').filter(Boolean), opt).toEqual(lines);
      expect(r.stdout, opt).toBe('');
    }
    // a z not at the end is read as fio reads it: `4z` is 4 (an unknown unit counts 1), as in fio
    expect((await fio('--name=a --bs=4z,8k --size=64k --rw=read --parse-only')).status).toBe(0);
    // handle_option() cuts a `,` that ends the value before it looks
    const comma = await fio('--name=a --bs=8z, --size=64k --rw=read --parse-only');
    expect([comma.status, comma.stderr]).toEqual([
      1,
      "bs: 'z' suffix isn't applicable\nfio: failed parsing bs=8z,\n",
    ]);
    expect((await fio('--name=a --size=2z, --rw=read --parse-only')).status).toBe(0);
    // a round that is no count is said; a later one that is makes the value a count (fio 3.33)
    const later = await fio('--name=a --size=1,2z --rw=read --parse-only');
    expect([later.status, later.stderr]).toEqual([0, "size: unexpected zone value '1,2z'\n"]);
    // a count of zones leaves no percentage behind: bytes after it are no conflict
    expect(
      (await fio('--name=a --size=64k --offset_increment=2z --offset_increment=4k --rw=read --parse-only'))
        .status,
    ).toBe(0);
  });

  it('takes a count of zones for size and offset, with no zones: the whole device, from 0, as fio 3.33 ran it', async () => {
    const whole = await jobJson('--name=a --rw=read --bs=64k --size=1z');
    expect(whole.read.io_bytes).toBe(8 * 1024 * 1024);
    // a count of zones clears a percentage given before (str_offset_cb()): the job starts at 0
    const r = await requestsOf(() =>
      fio('--name=a --rw=read --bs=64k --direct=1 --offset=50% --offset=2z --size=128k'),
    );
    expect(r.status).toBe(0);
    expect(r.io.map((e) => e.sector)).toEqual([0, 128]);
    // strtoul() stops at the first z: `1zz` is a count too; a sign is strtoul()'s
    for (const v of ['1zz', '+3z', '-1z'])
      expect((await fio(`--name=a --size=${v} --rw=read --bs=64k`)).status, v).toBe(0);
    expect((await fio('--name=a --size=99999999999999999999z --rw=read --parse-only')).stderr).toBe(
      "size: unexpected zone value '99999999999999999999z'\nfio: failed parsing size=99999999999999999999z\n",
    );
  });
});
