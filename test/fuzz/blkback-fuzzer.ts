/**
 * A hostile frontend against blkback: batches of random request slots — every operation byte,
 * segment counts past the limits, sectors past the disk, first/last sectors out of order, grant refs
 * that were never granted, read-only grants for reads, indirect pages full of garbage descriptors,
 * integrity requests, then random byte flips on top — pushed on a real ring to the real blkback (the
 * in-process host: LocalHypervisor, toolstack, blkback, a memory disk).
 *
 * The ring contract is the oracle: every request gets exactly one response, in the ring, carrying the
 * id the frontend wrote and a status blkif.h defines, and nothing hangs. A victim guest with its own
 * blkfront keeps doing verified I/O throughout; at the end the attacker's domain is destroyed and Dom0
 * must hold none of its grants, mappings, ports or timers.
 *
 * Seeded (fast-check): the same seed sends the same slots. Used by the suite (a bounded number) and by
 * scripts/fuzz-campaign.ts (≥ 100k requests).
 */
import fc from 'fast-check';
import {
  BLKIF_OP_INDIRECT,
  BLKIF_REQUEST_SIZE,
  BLKIF_RSP_EOPNOTSUPP,
  BLKIF_RSP_ERROR,
  BLKIF_RSP_OKAY,
  encodeRequest,
  type BlkifSegment,
} from '@pvblk/shared';
import { attachBlkfront, RawFront, startHost, type Host } from '../unit/blkif-peers.ts';

export interface BlkbackFuzzReport {
  seed: number;
  batches: number;
  requests: number;
  byStatus: Record<string, number>;
  /** Broken promises of the ring contract: missing, duplicate or foreign responses, bad statuses, hangs. */
  violations: string[];
  victimFailures: number;
  /** What the attacker left in Dom0 after its domain was destroyed. */
  leaks: string[];
}

/** BLKIF_RSP_* and the integrity extension's EPROTECTION. */
const STATUSES = new Set([BLKIF_RSP_OKAY, BLKIF_RSP_ERROR, BLKIF_RSP_EOPNOTSUPP, -3]);

interface Pool {
  /** Refs of pages granted writable, read-only, and never granted. */
  rw: number[];
  ro: number[];
}

/** A segment naming one of our writable pages, whole or part of it, as a correct frontend writes it. */
const cleanSegment = (pool: Pool): fc.Arbitrary<BlkifSegment> =>
  fc
    .tuple(fc.constantFrom(...pool.rw), fc.nat(7), fc.nat(7))
    .map(([gref, a, b]) => ({ gref, firstSect: Math.min(a, b), lastSect: Math.max(a, b) }));

/** Anything in a segment: read-only or never-granted refs, sectors out of order or past the page. */
const messySegment = (pool: Pool): fc.Arbitrary<BlkifSegment> =>
  fc.record({
    gref: fc.oneof(
      { weight: 2, arbitrary: fc.constantFrom(...pool.rw) },
      { weight: 1, arbitrary: fc.constantFrom(...pool.ro) },
      { weight: 1, arbitrary: fc.oneof(fc.nat(40000), fc.constant(0), fc.constant(0xffffffff)) },
    ),
    firstSect: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(255) }),
    lastSect: fc.oneof({ weight: 2, arbitrary: fc.constant(7) }, { weight: 1, arbitrary: fc.nat(255) }),
  });

const segment = (pool: Pool): fc.Arbitrary<BlkifSegment> =>
  fc.oneof({ weight: 4, arbitrary: cleanSegment(pool) }, { weight: 1, arbitrary: messySegment(pool) });

const sector = fc.oneof(
  { weight: 6, arbitrary: fc.nat(2047).map((s) => BigInt(s * 8)) },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) },
  { weight: 1, arbitrary: fc.nat(16383).map(BigInt) },
);

/** One slot: a shaped request of any operation, then maybe some bytes changed at random. */
function slot(pool: Pool): fc.Arbitrary<Buffer> {
  const rw = fc
    .record({
      operation: fc.constantFrom(0, 1, 2, 3),
      segments: fc.oneof(
        { weight: 3, arbitrary: fc.array(cleanSegment(pool), { minLength: 1, maxLength: 11 }) },
        { weight: 1, arbitrary: fc.array(segment(pool), { minLength: 0, maxLength: 11 }) },
      ),
      // mostly the count of the segments written, sometimes a lie about it
      nrSegments: fc.oneof(
        { weight: 5, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.nat(255) },
      ),
      sectorNumber: sector,
      handle: fc.oneof(
        { weight: 5, arbitrary: fc.constant(51712) },
        { weight: 1, arbitrary: fc.nat(0xffff) },
      ),
    })
    .map((r) => ({ ...r, nrSegments: r.nrSegments ?? r.segments.length }));
  const discard = fc.record({
    operation: fc.constant(5),
    flag: fc.nat(255),
    sectorNumber: sector,
    nrSectors: fc.oneof(fc.nat(4096).map(BigInt), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
    handle: fc.oneof({ weight: 5, arbitrary: fc.constant(51712) }, { weight: 1, arbitrary: fc.nat(0xffff) }),
  });
  const indirect = fc.record({
    operation: fc.constant(BLKIF_OP_INDIRECT),
    indirectOp: fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(0, 1) },
      { weight: 1, arbitrary: fc.nat(255) },
    ),
    nrSegments: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.nat(0xffff)),
    indirectGrefs: fc.array(fc.oneof(fc.constantFrom(...pool.rw), fc.nat(40000)), {
      minLength: 0,
      maxLength: 8,
    }),
    sectorNumber: sector,
    handle: fc.oneof({ weight: 5, arbitrary: fc.constant(51712) }, { weight: 1, arbitrary: fc.nat(0xffff) }),
  });
  const shaped = fc.oneof(
    { weight: 6, arbitrary: rw.map((r) => encodeRequest({ ...r, id: 0n } as never)) },
    { weight: 1, arbitrary: discard.map((r) => encodeRequest({ ...r, id: 0n } as never)) },
    { weight: 2, arbitrary: indirect.map((r) => encodeRequest({ ...r, id: 0n } as never)) },
    {
      weight: 1,
      arbitrary: fc
        .uint8Array({ minLength: BLKIF_REQUEST_SIZE, maxLength: BLKIF_REQUEST_SIZE })
        .map((b) => Buffer.from(b)),
    },
  );
  return fc
    .tuple(
      shaped,
      fc.option(
        fc.array(fc.tuple(fc.nat(BLKIF_REQUEST_SIZE - 1), fc.nat(255)), { minLength: 1, maxLength: 3 }),
        {
          freq: 3,
        },
      ),
    )
    .map(([b, flips]) => {
      for (const [i, v] of flips ?? []) b[i] = v;
      return b;
    });
}

export interface BlkbackFuzzOptions {
  seed: number;
  /** Batches of 1-32 requests (a one-page ring holds 32). */
  batches: number;
  onProgress?: (requests: number) => void;
}

export async function fuzzBlkback(o: BlkbackFuzzOptions): Promise<BlkbackFuzzReport> {
  const report: BlkbackFuzzReport = {
    seed: o.seed,
    batches: 0,
    requests: 0,
    byStatus: {},
    violations: [],
    victimFailures: 0,
    leaks: [],
  };
  const host: Host = await startHost({ blkback: { persistentGrantUnusedMs: 50 } });
  try {
    const victimDomain = await host.domain();
    const victim = await attachBlkfront(host, victimDomain);
    const attackerDomain = await host.domain({ disk: { sectors: 16384 } });
    const front = await RawFront.connect(host, attackerDomain, { persistent: true });
    // pages to point at: writable grants, read-only grants, and indirect pages full of descriptors
    const rw: number[] = [];
    const ro: number[] = [];
    for (let i = 0; i < 24; i++) rw.push(front.grant(Buffer.alloc(4096, i)).ref);
    for (let i = 0; i < 4; i++) ro.push(front.grant(Buffer.alloc(4096, 0x80 + i), true).ref);
    for (let i = 0; i < 4; i++) {
      // an indirect page of random-looking descriptors naming the writable pages and garbage
      const page = Buffer.alloc(4096);
      for (let d = 0; d < 512; d++) {
        page.writeUInt32LE(d % 3 === 0 ? rw[d % rw.length] : (d * 2654435761) >>> 0, d * 8);
        page[d * 8 + 4] = d % 5 === 0 ? 9 : 0;
        page[d * 8 + 5] = d % 7 === 0 ? 3 : 7;
      }
      rw.push(front.grant(page).ref);
    }
    await front.xc.fence();
    const pool = { rw, ro };
    const batches = fc.sample(fc.array(slot(pool), { minLength: 1, maxLength: 32 }), {
      numRuns: o.batches,
      seed: o.seed,
    });
    let id = 1n;
    for (const batch of batches) {
      // ids of our own numbering, so that every response can be matched to its request
      const ids: bigint[] = [];
      for (const s of batch) {
        s.writeBigUInt64LE(id, 8);
        ids.push(id++);
      }
      front.push(batch);
      let rsps;
      try {
        rsps = await front.responses(batch.length, `responses to batch ${report.batches} (seed ${o.seed})`);
      } catch (e) {
        report.violations.push(`batch ${report.batches}: ${(e as Error).message}`);
        break; // a hung ring ends this run: what follows would only repeat it
      }
      const want = new Set(ids);
      for (const r of rsps) {
        if (!want.delete(r.id))
          report.violations.push(`batch ${report.batches}: response with id ${r.id} not asked for or twice`);
        if (!STATUSES.has(r.status))
          report.violations.push(`batch ${report.batches}: status ${r.status} for id ${r.id}`);
        report.byStatus[String(r.status)] = (report.byStatus[String(r.status)] ?? 0) + 1;
      }
      report.batches++;
      report.requests += batch.length;
      o.onProgress?.(report.requests);
      // the victim goes on: a write and a read-back of its own data
      if (report.batches % 20 === 0) {
        const data = Buffer.alloc(4096, report.batches & 0xff);
        const page = victim.xc.allocPage();
        page.write(0, data);
        const w = await victim.front.submit({
          op: 'write',
          sector: 64,
          segments: [{ page, off: 0, len: 4096 }],
        });
        const back = victim.xc.allocPage();
        const r = await victim.front.submit({
          op: 'read',
          sector: 64,
          segments: [{ page: back, off: 0, len: 4096 }],
        });
        if (w.status !== 'ok' || r.status !== 'ok' || !back.buf.equals(data)) report.victimFailures++;
      }
    }
    // the attacker goes away; Dom0 must let go of everything it held for it, and blkback must stop
    // every timer of the vbd once the toolstack has removed it
    const key = `${attackerDomain.domid}/51712`;
    const vbd = host.blkback.vbds.get(key);
    front.xc.close();
    const dom0 = host.lh.hv.domains.get(0)!;
    const held = () =>
      [...dom0.maptrack.values()].filter((m) => m.granter.domid === attackerDomain.domid).length;
    const gone = () =>
      !host.lh.hv.domains.has(attackerDomain.domid) && held() === 0 && !host.blkback.vbds.has(key);
    const end = Date.now() + 5000;
    while (!gone() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    if (host.lh.hv.domains.has(attackerDomain.domid))
      report.leaks.push('the attacker domain survived its connection');
    if (held() > 0) report.leaks.push(`Dom0 still maps ${held()} of the attacker's pages`);
    if (host.blkback.vbds.has(key)) report.leaks.push("blkback kept the dead domain's vbd");
    const timers = vbd ? vbd.stats().timers : 0;
    if (timers > 0) report.leaks.push(`blkback keeps ${timers} timers for the dead vbd`);
    victim.front.stop().catch(() => {});
    victim.xc.close();
  } finally {
    await host.close();
  }
  return report;
}
