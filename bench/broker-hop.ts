/**
 * What the broker hop costs, across real processes. The hypervisor runs in its own process
 * (`pvblk hypervisor`); a sender domain (DomU, the blkfront side) and a receiver domain (Dom0, the
 * blkback side) run in two more (bench/broker-hop-peer.ts). The sender grants the receiver a ring
 * page and 32 data pages, which the receiver maps once (persistent grants); a request is payload
 * bytes written into a data page, req_prod written into the ring, and an event; the receiver's
 * handler reads the payload, writes a 16-byte response and rsp_prod, and sends an event back —
 * a blkif request/response through the hypervisor.
 *
 * The baseline, measured in the same run between the same two processes, is a bare `ws` connection
 * from the sender to a WebSocketServer in the receiver carrying the same messages, encoded the same
 * way (encodeFrame: a version byte and a msgpackr array, one frame per event-loop turn), run by the
 * same ring code. So broker/bare is the price of the hop: a second socket each way, the broker's
 * decode/validate/dispatch/re-encode, and XenClient on both ends.
 *
 *   node --import tsx bench/broker-hop.ts [--quick]
 *
 * For payloads of 64 B and 4 KiB: QD1 round trip (p50, p99), and throughput with 32 requests in
 * flight, (a) one request + event per turn (one frame each) and (b) batched (fill every free slot,
 * one event). Broker and bare rounds alternate so drift hits both; each figure is the median of the
 * rounds. Also: a fence round trip and a per-request grant map (what persistent grants avoid).
 * Results: a table on stdout and bench/results/broker-hop.json.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  cpuSnapshot,
  foreignCores,
  kilo,
  machineInfo,
  median,
  printTable,
  rpcPeer,
  sizeLabel,
  writeResults,
  type LatencySummary,
  type RpcPeer,
} from './lib.ts';

const QUICK = process.argv.includes('--quick');
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SIZES = [64, 4096];
const WINDOW = 32;

const CFG = QUICK
  ? { rounds: 3, rttN: 300, tputN: 1500, warmRttN: 150, warmTputN: 500, fenceN: 300, mapN: 300 }
  : { rounds: 9, rttN: 1000, tputN: 5000, warmRttN: 400, warmTputN: 2000, fenceN: 1000, mapN: 1000 };

type Path = 'broker' | 'bare';
const PATHS: Path[] = ['broker', 'bare'];

interface Throughput {
  msgsPerSec: number;
  seconds: number;
  perNotify: number;
  perFrameOut: number;
  perFrameIn: number;
}

const children: ChildProcess[] = [];
function stopChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
}
process.on('exit', stopChildren);
process.on('SIGINT', () => {
  stopChildren();
  process.exit(130);
});

/** Starts `pvblk hypervisor` on a free port and resolves with its URL from the `ready` log record. */
function startBroker(secret: string): Promise<string> {
  const proc = spawn(
    process.execPath,
    ['bin/pvblk.mjs', 'hypervisor', '--host', '127.0.0.1', '--port', '0'],
    {
      cwd: ROOT,
      env: { ...process.env, PVBLK_DOM0_SECRET: secret, PVBLK_LOG_FORMAT: 'json', PVBLK_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(proc);
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hypervisor not ready within 20 s\n${stderr}`)), 20_000);
    // keep reading stdout for the whole run so the broker never blocks on a full pipe
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let rec: { event?: string; url?: string };
      try {
        rec = JSON.parse(line) as typeof rec;
      } catch {
        return;
      }
      if (rec.event === 'ready' && rec.url) {
        clearTimeout(timer);
        resolve(rec.url);
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`hypervisor exited (${code ?? signal}) before it was ready\n${stderr}`));
    });
  });
}

function startPeer(role: 'sender' | 'receiver'): RpcPeer {
  const child = fork(fileURLToPath(new URL('./broker-hop-peer.ts', import.meta.url)), [role], {
    cwd: ROOT,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.push(child);
  return rpcPeer(child, role);
}

interface RttCase {
  size: number;
  p50: Record<Path, number>;
  p99: Record<Path, number>;
  rounds: Record<Path, LatencySummary[]>;
}
interface TputCase {
  size: number;
  batched: boolean;
  msgsPerSec: Record<Path, number>;
  perNotify: Record<Path, number>;
  perFrameOut: Record<Path, number>;
  perFrameIn: Record<Path, number>;
  rounds: Record<Path, Throughput[]>;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const secret = randomBytes(16).toString('hex');
  const url = await startBroker(secret);
  const receiver = startPeer('receiver');
  const recv = await receiver.call<{
    credential: string;
    domid: number;
    port: number;
    bareUrl: string;
    mask: string;
  }>('init', { url, secret });
  const sender = startPeer('sender');
  const send = await sender.call<{ ringRef: number; dataRefs: number[]; port: number; mask: string }>(
    'init',
    {
      url,
      credential: recv.credential,
      remotePort: recv.port,
    },
  );
  await receiver.call('attach', { ringRef: send.ringRef, dataRefs: send.dataRefs, port: recv.port });
  await sender.call('bareConnect', { url: recv.bareUrl });
  const setupSeconds = (Date.now() - t0) / 1000;

  console.log(
    `broker-hop${QUICK ? ' (quick)' : ''}: broker ${url}, sender domid ${recv.domid}; ` +
      `${CFG.rounds} rounds, medians; ws masking: sender ${send.mask}, receiver ${recv.mask}`,
  );
  // other work on the machine shows up directly in these figures: measure how much there was
  const pids = [process.pid, ...children.map((c) => c.pid ?? -1)];
  const cpu0 = cpuSnapshot(pids);

  const rtt = (path: Path, size: number, n: number) =>
    sender.call<LatencySummary>('rtt', { path, size, n }, 120_000);
  const tput = (path: Path, size: number, n: number, batched: boolean) =>
    sender.call<Throughput>('throughput', { path, size, n, batched }, 120_000);

  // warm-up: every code path on both sides, so V8 has optimised them before anything is timed
  for (const size of SIZES) {
    for (const path of PATHS) {
      await rtt(path, size, CFG.warmRttN);
      await tput(path, size, CFG.warmTputN, false);
      await tput(path, size, CFG.warmTputN, true);
    }
  }

  const order = (r: number): Path[] => (r % 2 === 0 ? ['broker', 'bare'] : ['bare', 'broker']);
  const rttCases: RttCase[] = [];
  const tputCases: TputCase[] = [];
  for (const size of SIZES) {
    const rounds: Record<Path, LatencySummary[]> = { broker: [], bare: [] };
    for (let r = 0; r < CFG.rounds; r++)
      for (const p of order(r)) rounds[p].push(await rtt(p, size, CFG.rttN));
    rttCases.push({
      size,
      p50: { broker: median(rounds.broker.map((x) => x.p50)), bare: median(rounds.bare.map((x) => x.p50)) },
      p99: { broker: median(rounds.broker.map((x) => x.p99)), bare: median(rounds.bare.map((x) => x.p99)) },
      rounds,
    });
    for (const batched of [false, true]) {
      const tr: Record<Path, Throughput[]> = { broker: [], bare: [] };
      for (let r = 0; r < CFG.rounds; r++)
        for (const p of order(r)) tr[p].push(await tput(p, size, CFG.tputN, batched));
      const med = (k: 'msgsPerSec' | 'perNotify' | 'perFrameOut' | 'perFrameIn') => ({
        broker: median(tr.broker.map((x) => x[k])),
        bare: median(tr.bare.map((x) => x[k])),
      });
      tputCases.push({
        size,
        batched,
        msgsPerSec: med('msgsPerSec'),
        perNotify: med('perNotify'),
        perFrameOut: med('perFrameOut'),
        perFrameIn: med('perFrameIn'),
        rounds: tr,
      });
    }
  }

  // single-hop costs the design has to budget for
  await sender.call('fence', { n: 100 });
  const fence = await sender.call<LatencySummary>('fence', { n: CFG.fenceN });
  await receiver.call('grantMap', { n: 100 });
  const grantMap = await receiver.call<LatencySummary>('grantMap', { n: CFG.mapN });

  const foreign = foreignCores(cpu0, cpuSnapshot(pids));
  const sStats = await sender.call<{ broker: { errors: number }; bare: { errors: number } }>('stats');
  const rStats = await receiver.call<{ broker: { errors: number }; bare: { errors: number } }>('stats');
  const errors = sStats.broker.errors + sStats.bare.errors + rStats.broker.errors + rStats.bare.errors;

  // ------------------------------------------------------------------------------------------
  const ratio = (b: number, a: number) => `${(b / a).toFixed(2)}x`;
  const us = (x: number) => x.toFixed(0);
  const rows: string[][] = [];
  for (const c of rttCases) {
    rows.push([
      `QD1 round trip p50 (µs)`,
      sizeLabel(c.size),
      us(c.p50.broker),
      us(c.p50.bare),
      ratio(c.p50.broker, c.p50.bare),
    ]);
    rows.push([
      `QD1 round trip p99 (µs)`,
      sizeLabel(c.size),
      us(c.p99.broker),
      us(c.p99.bare),
      ratio(c.p99.broker, c.p99.bare),
    ]);
    for (const t of tputCases.filter((x) => x.size === c.size)) {
      const label = t.batched ? 'window 32, batched (msg/s)' : 'window 32, 1 msg/frame (msg/s)';
      rows.push([
        label,
        sizeLabel(c.size),
        kilo(t.msgsPerSec.broker),
        kilo(t.msgsPerSec.bare),
        ratio(t.msgsPerSec.broker, t.msgsPerSec.bare),
      ]);
    }
  }
  console.log('');
  printTable(['measure', 'payload', 'broker', 'bare ws', 'broker/bare'], rows);
  const big = tputCases.find((t) => t.size === 4096 && t.batched);
  if (big) {
    const mib = (x: number) => ((x * 4096) / 1024 / 1024).toFixed(0);
    console.log(
      `4 KiB batched payload rate: broker ${mib(big.msgsPerSec.broker)} MiB/s, bare ${mib(big.msgsPerSec.bare)} MiB/s`,
    );
  }
  console.log(
    `fence round trip (domain → broker → domain): p50 ${us(fence.p50)} µs, p99 ${us(fence.p99)} µs; ` +
      `grant map of a 4 KiB page (per-request mapping): p50 ${us(grantMap.p50)} µs, p99 ${us(grantMap.p99)} µs`,
  );
  console.log(
    'sender side, window 32: requests per event sent, requests per frame sent / responses per frame received',
  );
  for (const t of tputCases) {
    const f = (p: Path) =>
      `${t.perNotify[p].toFixed(1)}, ${t.perFrameOut[p].toFixed(1)} / ${t.perFrameIn[p].toFixed(1)}`;
    const mode = t.batched ? 'batched' : '1 msg/frame';
    console.log(
      `  ${sizeLabel(t.size).padEnd(6)} ${mode.padEnd(12)} broker ${f('broker').padEnd(18)} bare ${f('bare')}`,
    );
  }
  if (foreign !== null) {
    const disturbed = foreign > 0.15 ? ' — the machine was not idle: figures are disturbed, run again' : '';
    console.log(`other processes used ${foreign.toFixed(2)} cores on average during the run${disturbed}`);
  }
  if (errors) console.log(`WARNING: ${errors} responses or requests arrived out of order or corrupted`);

  const totalSeconds = (Date.now() - t0) / 1000;
  const file = writeResults('broker-hop', {
    bench: 'broker-hop',
    date: new Date().toISOString(),
    ...machineInfo(),
    quick: QUICK,
    wsMasking: { sender: send.mask, receiver: recv.mask, broker: 'same ws install as the peers' },
    config: { ...CFG, window: WINDOW, sizes: SIZES },
    units: {
      latency: 'µs, median over rounds of each round’s percentile',
      throughput: 'messages/s, median of rounds',
    },
    rtt: rttCases.map((c) => ({
      ...c,
      ratioP50: c.p50.broker / c.p50.bare,
      ratioP99: c.p99.broker / c.p99.bare,
    })),
    throughput: tputCases.map((t) => ({
      ...t,
      mode: t.batched ? 'batched' : 'one-per-frame',
      ratio: t.msgsPerSec.broker / t.msgsPerSec.bare,
    })),
    fence,
    grantMap,
    errors,
    otherProcessesCores: foreign,
    setupSeconds,
    totalSeconds,
  });
  console.log(`wrote ${file} (${totalSeconds.toFixed(1)} s)`);
  if (errors) process.exitCode = 1;
}

main()
  .catch((e: Error) => {
    console.error(`broker-hop failed: ${e.stack ?? e}`);
    process.exitCode = 1;
  })
  .finally(stopChildren);
