/**
 * A hostile backend against blkfront. The backend here is the test's own: it does the XenBus
 * handshake by hand (InitWait, maps the ring, binds the channel, Connected), then answers the real
 * blkfront's requests the way a fuzzed script says — honestly, with an error, or with a lie: an id
 * never used or outside the ring, an id answered twice, the wrong operation, a status blkif.h does not
 * define, a producer index far ahead, a producer index moved without a response, events with nothing
 * behind them.
 *
 * The oracle: blkfront never throws; every submitted request settles exactly once, with a status;
 * an honest OKAY read returns the backend's data; and once a lie is one Linux detects, the device is
 * failed ("disabled for further use") and every pending request ends with an I/O error — nothing hangs.
 */
import fc from 'fast-check';
import {
  BLKIF_OP_FLUSH_DISKCACHE,
  BLKIF_OP_INDIRECT,
  BLKIF_OP_READ,
  BLKIF_REQUEST_SIZE,
  BLKIF_RSP_OKAY,
  blkifRingSize,
  decodeRequest,
  MemoryKernelLog,
  writeResponse,
} from '@pvblk/shared';
import { LocalHypervisor } from '@pvblk/hypervisor';
import { PagesRingMemory, type Page, type XenClient } from '@pvblk/client';
import { Toolstack } from '@pvblk/backend';
import { Blkfront, DEFAULT_BLKFRONT_OPTIONS, type BlockRequest, type BlockResult } from '@pvblk/frontend';
import { DEVID, writeVbd } from '../unit/blkif-peers.ts';

/** What the backend does with one request. */
export type Answer =
  | { kind: 'honest'; status: 0 | -1 }
  | { kind: 'unknown-id' }
  | { kind: 'id-outside-ring' }
  | { kind: 'twice' }
  | { kind: 'wrong-op' }
  | { kind: 'odd-status'; status: number }
  | { kind: 'prod-ahead'; by: number }
  | { kind: 'prod-without-response' }
  | { kind: 'spurious-events'; n: number };

/** Lies Linux's blkif_interrupt detects: after one of them the device must be failed. */
const DETECTED = new Set(['unknown-id', 'id-outside-ring', 'twice', 'wrong-op', 'prod-ahead']);

export const answer: fc.Arbitrary<Answer> = fc.oneof(
  {
    weight: 400,
    arbitrary: fc
      .constantFrom(0 as const, -1 as const)
      .map((status) => ({ kind: 'honest' as const, status })),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'unknown-id' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'id-outside-ring' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'twice' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'wrong-op' as const }) },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: -32768, max: 32767 })
      .map((status) => ({ kind: 'odd-status' as const, status })),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 33, max: 0x7fffffff }).map((by) => ({ kind: 'prod-ahead' as const, by })),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'prod-without-response' as const }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 50 }).map((n) => ({ kind: 'spurious-events' as const, n })),
  },
);

export interface BlkfrontFuzzReport {
  seed: number;
  requests: number;
  settled: Record<string, number>;
  lies: number;
  violations: string[];
}

/** The fake backend: XenBus by hand, then answers from the script. */
class HostileBackend {
  ring!: PagesRingMemory;
  pages: Page[] = [];
  port = 0;
  reqCons = 0;
  rspProd = 0;
  size = 32;
  pattern = 0;
  /** A lie a real blkfront must detect has been told: from now on the device must be failed. */
  detectedLieTold = false;
  lies = 0;
  /** The answer given to each request that reached the ring, in order. */
  readonly served: Answer[] = [];
  private script: Answer[];

  constructor(
    private readonly dom0: XenClient,
    private readonly domid: number,
    private readonly fe: string,
    private readonly be: string,
    script: Answer[],
  ) {
    this.script = [...script];
  }

  async handshake(): Promise<void> {
    const xs = this.dom0.xs;
    await xs.write(`${this.be}/feature-flush-cache`, '1');
    await xs.write(`${this.be}/state`, '2');
    // wait for the frontend's Initialised, then map its ring and bind its channel
    await new Promise<void>((resolve) => {
      void xs.watch(`${this.fe}/state`, () => {
        void xs.tryRead(`${this.fe}/state`).then((s) => s === '3' && resolve());
      });
    });
    const ref = Number(await xs.read(`${this.fe}/ring-ref`));
    const port = Number(await xs.read(`${this.fe}/event-channel`));
    const [m] = await this.dom0.gnttab.map([{ dom: this.domid, ref, readonly: false }]);
    this.pages = [m.page!];
    this.ring = new PagesRingMemory(this.pages);
    this.size = blkifRingSize(0);
    this.port = await this.dom0.evtchn.bindInterdomain(this.domid, port);
    this.dom0.evtchn.onEvent(this.port, () => this.kick());
    await xs.write(`${this.be}/sectors`, '16384');
    await xs.write(`${this.be}/info`, '0');
    await xs.write(`${this.be}/sector-size`, '512');
    await xs.write(`${this.be}/state`, '4');
  }

  private serving = false;
  private again = false;

  /**
   * Runs serve, or has the one running look again, as blkback's kick does: an event and a final
   * check's wake can both come for one push, and two serves at once would interleave their writes
   * of rsp_prod (the second undoing a lie the first told).
   */
  private async kick(): Promise<void> {
    if (this.serving) {
      this.again = true;
      return;
    }
    this.serving = true;
    try {
      do {
        this.again = false;
        await this.serve();
      } while (this.again);
    } finally {
      this.serving = false;
    }
  }

  private async serve(): Promise<void> {
    const prod = this.ring.readU32(0);
    while (this.reqCons !== prod) {
      const slot = this.ring.read(
        64 + (this.reqCons & (this.size - 1)) * BLKIF_REQUEST_SIZE,
        BLKIF_REQUEST_SIZE,
      );
      this.reqCons = (this.reqCons + 1) >>> 0;
      const d = decodeRequest(slot, { maxIndirectSegments: 256 });
      const id = d.ok ? d.request.id : d.id;
      const op = d.ok
        ? d.request.operation === BLKIF_OP_INDIRECT
          ? d.request.indirectOp
          : d.request.operation
        : d.operation;
      const a = this.script.shift() ?? { kind: 'honest', status: 0 };
      this.served.push(a);
      if (a.kind !== 'honest' && a.kind !== 'spurious-events') this.lies++;
      if (DETECTED.has(a.kind)) this.detectedLieTold = true;
      // an honest read returns a pattern the test can check
      if (
        a.kind === 'honest' &&
        a.status === 0 &&
        d.ok &&
        op === BLKIF_OP_READ &&
        d.request.operation !== BLKIF_OP_INDIRECT
      ) {
        const segs = 'segments' in d.request ? d.request.segments : [];
        const mapped = await this.dom0.gnttab.map(
          segs.map((s) => ({ dom: this.domid, ref: s.gref, readonly: false })),
        );
        for (const mm of mapped) if (mm.page) mm.page.fill(0xa5);
        await this.dom0.gnttab.unmap(mapped.filter((x) => x.page).map((x) => x.page!));
      }
      const respond = (rid: bigint, rop: number, status: number) => {
        writeResponse(this.ring, 64 + (this.rspProd & (this.size - 1)) * BLKIF_REQUEST_SIZE, {
          id: rid,
          operation: rop,
          status,
        });
        this.rspProd = (this.rspProd + 1) >>> 0;
      };
      switch (a.kind) {
        case 'honest':
          respond(id, op, a.status);
          break;
        case 'unknown-id':
          respond(id === 0n ? 1n : 0n, op, BLKIF_RSP_OKAY);
          respond(id, op, BLKIF_RSP_OKAY);
          break;
        case 'id-outside-ring':
          respond(0xdead_beefn, op, BLKIF_RSP_OKAY);
          break;
        case 'twice':
          respond(id, op, BLKIF_RSP_OKAY);
          respond(id, op, BLKIF_RSP_OKAY);
          break;
        case 'wrong-op':
          respond(
            id,
            op === BLKIF_OP_FLUSH_DISKCACHE ? BLKIF_OP_READ : BLKIF_OP_FLUSH_DISKCACHE,
            BLKIF_RSP_OKAY,
          );
          break;
        case 'odd-status':
          respond(id, op, a.status);
          break;
        case 'prod-ahead':
          this.ring.writeU32(8, (this.rspProd + a.by) >>> 0);
          this.dom0.evtchn.send(this.port);
          return; // the ring is poisoned: nothing more from this backend
        case 'prod-without-response':
          // publish a response slot that still holds the request's own bytes: whatever blkfront makes
          // of them (an unknown id, or by chance this request's), the request must still settle
          this.rspProd = (this.rspProd + 1) >>> 0;
          break;
        case 'spurious-events':
          respond(id, op, BLKIF_RSP_OKAY);
          for (let i = 0; i < a.n; i++) this.dom0.evtchn.send(this.port);
          break;
      }
    }
    this.ring.writeU32(8, this.rspProd);
    this.dom0.evtchn.send(this.port);
    // RING_FINAL_CHECK_FOR_REQUESTS: ask to be woken for the next request (req_event), and look again
    // when req_prod next changes in our copy; a backend that skips this is never notified again, as on Xen
    this.ring.writeU32(4, (this.reqCons + 1) >>> 0);
    if (this.ring.readU32(0) !== this.reqCons) this.again = true;
    else this.pages[0].wakeOnWrite(0, () => queueMicrotask(() => void this.kick()));
  }
}

export interface BlkfrontFuzzOptions {
  seed: number;
  /** Requests per run. */
  requests: number;
}

export async function fuzzBlkfront(o: BlkfrontFuzzOptions): Promise<BlkfrontFuzzReport> {
  const report: BlkfrontFuzzReport = { seed: o.seed, requests: 0, settled: {}, lies: 0, violations: [] };
  const [script, kinds] = fc.sample(
    fc.tuple(
      fc.array(answer, { minLength: o.requests, maxLength: o.requests }),
      fc.array(fc.constantFrom('read', 'write', 'flush'), { minLength: o.requests, maxLength: o.requests }),
    ),
    { numRuns: 1, seed: o.seed },
  )[0];
  const thrown: unknown[] = [];
  const onRejection = (e: unknown) => thrown.push(e);
  process.on('unhandledRejection', onRejection);
  const lh = new LocalHypervisor({ dom0Credential: 'dom0-fuzz' });
  const dom0 = await lh.connect('dom0-fuzz');
  try {
    const toolstack = new Toolstack(dom0);
    const { domid, credential } = await toolstack.createDomain('target');
    await writeVbd(dom0, domid, '/dev/sdx', {});
    const fe = `/local/domain/${domid}/device/vbd/${DEVID}`;
    const be = `/local/domain/0/backend/vbd/${domid}/${DEVID}`;
    const backend = new HostileBackend(dom0, domid, fe, be, script);
    const xc = await lh.connect(credential);
    const klog = new MemoryKernelLog();
    const front = new Blkfront(xc, klog, fe, 'xvda', { ...DEFAULT_BLKFRONT_OPTIONS, maxIndirectSegments: 0 });
    const shaken = backend.handshake();
    await front.start();
    await shaken;
    await front.whenConnected();
    // one request at a time keeps the script aligned with the requests it answers
    for (let i = 0; i < o.requests; i++) {
      const page = xc.allocPage();
      const kind = kinds[i];
      const req: BlockRequest =
        kind === 'flush'
          ? { op: 'flush', sector: 0, segments: [] }
          : { op: kind as 'read' | 'write', sector: (i % 1000) * 8, segments: [{ page, off: 0, len: 4096 }] };
      const failedBefore = front.failed;
      const servedBefore = backend.served.length;
      let settledCount = 0;
      let result: BlockResult | null = null;
      const p = front.submit(req).then((r) => {
        settledCount++;
        result = r;
      });
      await Promise.race([p, new Promise((r) => setTimeout(r, 10_000))]);
      report.requests++;
      // the answer this request got, if it reached the ring at all (a flush the device gave up on does not)
      const got = backend.served.length > servedBefore ? backend.served[servedBefore] : null;
      const honest = got?.kind === 'honest' ? got.status : null;
      if (settledCount !== 1) {
        report.violations.push(`request ${i} (${kind}, answer ${got?.kind ?? 'none'}) did not settle`);
        break;
      }
      const r = result as unknown as BlockResult;
      report.settled[r.status] = (report.settled[r.status] ?? 0) + 1;
      if (failedBefore && r.status !== 'ioerr')
        report.violations.push(`request ${i} on a failed device ended ${r.status}`);
      if (
        !failedBefore &&
        honest === 0 &&
        kind === 'read' &&
        r.status === 'ok' &&
        !page.buf.every((b) => b === 0xa5)
      )
        report.violations.push(`request ${i}: an honest read returned other data`);
      if (!failedBefore && honest === 0 && r.status !== 'ok')
        report.violations.push(`request ${i} (${kind}) answered OKAY ended ${r.status}`);
      if (backend.detectedLieTold && !front.failed)
        report.violations.push(`request ${i}: the backend lied (${got?.kind}) and the device is not failed`);
      if (front.failed && !klog.messages.some((m) => m.text === 'xvda disabled for further use'))
        report.violations.push(`request ${i}: failed without saying so`);
    }
    report.lies = backend.lies;
    await front.stop().catch(() => {});
    xc.close();
  } finally {
    dom0.close();
    process.off('unhandledRejection', onRejection);
  }
  for (const e of thrown) report.violations.push(`unhandled rejection: ${String((e as Error)?.stack ?? e)}`);
  return report;
}
