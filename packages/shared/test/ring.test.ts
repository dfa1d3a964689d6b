import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  BackRing,
  BufferRingMemory,
  FrontRing,
  notifyNeeded,
  ringSize,
  roundDownPow2,
  SRING_HEADER_SIZE,
} from '../src/ring.ts';
import {
  BLKIF_OP_FLUSH_DISKCACHE,
  BLKIF_OP_READ,
  BLKIF_OP_WRITE,
  BLKIF_REQUEST_SIZE,
  BLKIF_RSP_EOPNOTSUPP,
  BLKIF_RSP_ERROR,
  BLKIF_RSP_OKAY,
  blkifRingSize,
  decodeRequest,
  encodeRequest,
  writeResponse,
  type BlkifRequest,
} from '../src/blkif.ts';
import { hex, loadVectors } from './vectors.ts';

interface RingVectors {
  ring_size: Record<string, number>;
  sizes: Record<string, number>;
  vectors: Array<Record<string, unknown> & { name: string }>;
}
const V = loadVectors<RingVectors>('blkif-ring-vectors.json');
const vec = (name: string) => V.vectors.find((v) => v.name === name)!;

function page(): { buf: Buffer; mem: BufferRingMemory } {
  const buf = Buffer.alloc(4096);
  return { buf, mem: new BufferRingMemory(buf) };
}

/** Compares a page with a golden prefix; everything after the prefix must still be zero. */
function expectPage(buf: Buffer, golden: string): void {
  const g = hex(golden);
  expect(buf.subarray(0, g.length).toString('hex')).toBe(g.toString('hex'));
  expect(buf.subarray(g.length).every((b) => b === 0)).toBe(true);
}

function pushRequest(front: FrontRing, req: BlkifRequest): void {
  front.mem.write(front.slotOffset(front.reqProdPvt), encodeRequest(req));
  front.reqProdPvt = (front.reqProdPvt + 1) >>> 0;
}

describe('RING_SIZE', () => {
  it('rounds down to a power of two like __RD32', () => {
    expect([0, 1, 2, 3, 36, 63, 64, 65, 584].map(roundDownPow2)).toEqual([0, 1, 2, 2, 32, 32, 64, 64, 512]);
  });
  it('gives 32, 64, 128, 256, 512 blkif slots for ring page orders 0-4', () => {
    const got = [0, 1, 2, 3, 4].map(blkifRingSize);
    expect(got).toEqual([32, 64, 128, 256, 512]);
    expect(got).toEqual([0, 1, 2, 3, 4].map((o) => V.ring_size[`order${o}`]));
    expect(ringSize(4096, 108)).toBe(32); // the x86_32 layout gives the same count
    expect(SRING_HEADER_SIZE).toBe(V.sizes.sring_header);
    expect(BLKIF_REQUEST_SIZE).toBe(V.sizes.request);
  });
});

describe('notify rule (RING_PUSH_*_AND_CHECK_NOTIFY)', () => {
  const rows = vec('notify-rule').rows as Array<[number, number, number, boolean]>;
  it.each(rows)('old=%d new=%d event=%d → %s', (oldProd, newProd, event, want) => {
    expect(notifyNeeded(oldProd, newProd, event)).toBe(want);
  });
  it('notifies exactly when the event index lies in (old, new] modulo 2^32', () => {
    fc.assert(
      fc.property(fc.nat(0xffffffff), fc.nat(600), fc.nat(0xffffffff), (oldProd, n, event) => {
        const newProd = (oldProd + n) >>> 0;
        const inWindow = n > 0 && (event - oldProd) >>> 0 >= 1 && (event - oldProd) >>> 0 <= n;
        return notifyNeeded(oldProd, newProd, event) === inWindow;
      }),
    );
  });
});

describe('golden ring pages', () => {
  it('basic-front-push: front pushes READ, WRITE, FLUSH; back answers OKAY, ERROR, EOPNOTSUPP', () => {
    const v = vec('basic-front-push');
    const { buf, mem } = page();
    const front = FrontRing.init(mem, 32, BLKIF_REQUEST_SIZE);
    expectPage(buf, v.page_after_init as string);

    pushRequest(front, {
      operation: BLKIF_OP_READ,
      nrSegments: 2,
      handle: 0,
      id: 0x1111222233334444n,
      sectorNumber: 4656n,
      segments: [
        { gref: 8, firstSect: 0, lastSect: 7 },
        { gref: 9, firstSect: 0, lastSect: 3 },
      ],
    });
    pushRequest(front, {
      operation: BLKIF_OP_WRITE,
      nrSegments: 11,
      handle: 51712,
      id: 1n,
      sectorNumber: 0n,
      segments: Array.from({ length: 11 }, (_, i) => ({ gref: 100 + i, firstSect: 0, lastSect: 7 })),
    });
    pushRequest(front, {
      operation: BLKIF_OP_FLUSH_DISKCACHE,
      nrSegments: 0,
      handle: 0,
      id: 2n,
      sectorNumber: 0n,
      segments: [],
    });
    const push = front.pushRequestsAndCheckNotify();
    expect(push.notify).toBe(v.front_notify);
    expect(front.freeRequests()).toBe(29);
    expectPage(buf, v.page_after_front_push as string);

    const back = new BackRing(mem, 32, BLKIF_REQUEST_SIZE, mem.readU32(8));
    expect(back.unconsumedRequests()).toBe(3);
    const statuses = [BLKIF_RSP_OKAY, BLKIF_RSP_ERROR, BLKIF_RSP_EOPNOTSUPP];
    const rp = back.reqProd;
    while (back.reqCons !== rp) {
      expect(back.requestConsOverflow(back.reqCons)).toBe(false);
      const d = decodeRequest(mem.read(back.slotOffset(back.reqCons), BLKIF_REQUEST_SIZE), {
        maxIndirectSegments: 0,
      });
      back.reqCons = (back.reqCons + 1) >>> 0;
      expect(d.ok).toBe(true);
      if (!d.ok) return;
      writeResponse(mem, back.slotOffset(back.rspProdPvt), {
        id: d.request.id,
        operation: d.request.operation,
        status: statuses[back.rspProdPvt],
      });
      back.rspProdPvt = (back.rspProdPvt + 1) >>> 0;
    }
    expect(back.pushResponsesAndCheckNotify().notify).toBe(v.back_notify);
    expect(back.finalCheckForRequests()).toBe(v.back_more_after_final_check);
    expectPage(buf, v.page_after_back_push_and_final_check as string);

    expect(front.unconsumedResponses()).toBe(3);
  });

  it('discard-and-indirect: DISCARD secure and an INDIRECT write encode byte for byte', () => {
    const v = vec('discard-and-indirect');
    const { buf, mem } = page();
    const front = FrontRing.init(mem, 32, BLKIF_REQUEST_SIZE);
    pushRequest(front, { operation: 5, flag: 1, handle: 0, id: 7n, sectorNumber: 0x1000n, nrSectors: 256n });
    pushRequest(front, {
      operation: 6,
      indirectOp: BLKIF_OP_WRITE,
      nrSegments: 64,
      id: 9n,
      sectorNumber: 8192n,
      handle: 0,
      indirectGrefs: [500, 501],
    });
    expect(front.pushRequestsAndCheckNotify().notify).toBe(v.front_notify);
    expectPage(buf, v.page as string);

    const d0 = decodeRequest(mem.read(64, 112), { maxIndirectSegments: 256 });
    expect(d0).toEqual({
      ok: true,
      request: { operation: 5, flag: 1, handle: 0, id: 7n, sectorNumber: 4096n, nrSectors: 256n },
    });
    const d1 = decodeRequest(mem.read(64 + 112, 112), { maxIndirectSegments: 256 });
    // 64 segments need one indirect page: only the first gref is taken from the slot
    expect(d1).toEqual({
      ok: true,
      request: {
        operation: 6,
        indirectOp: 1,
        nrSegments: 64,
        id: 9n,
        sectorNumber: 8192n,
        handle: 0,
        indirectGrefs: [500],
      },
    });
  });

  it('wraparound: indices starting at 0xfffffffe cross 2^32 (slots 30, 31, 0, 1)', () => {
    const v = vec('wraparound');
    const { buf, mem } = page();
    const front = FrontRing.init(mem, 32, BLKIF_REQUEST_SIZE, 0xfffffffe);
    for (let i = 0; i < 4; i++) {
      pushRequest(front, {
        operation: BLKIF_OP_WRITE,
        nrSegments: 1,
        handle: 0,
        id: BigInt(100 + i),
        sectorNumber: BigInt(8 * i),
        segments: [{ gref: 40 + i, firstSect: 0, lastSect: 7 }],
      });
    }
    expect(front.pushRequestsAndCheckNotify().notify).toBe(v.front_notify);
    expect(front.freeRequests()).toBe(v.front_free_requests);
    expect(buf.subarray(0, 64).toString('hex')).toBe(v.header_after_front_push);
    expect(buf.subarray(64, 64 + 224).toString('hex')).toBe(v.slots_0_1);
    expect(buf.subarray(64 + 30 * 112, 64 + 32 * 112).toString('hex')).toBe(v.slots_30_31);

    const back = new BackRing(mem, 32, BLKIF_REQUEST_SIZE, mem.readU32(8));
    expect(back.unconsumedRequests()).toBe(v.back_unconsumed);
    while (back.reqCons !== back.reqProd) {
      const d = decodeRequest(mem.read(back.slotOffset(back.reqCons), 112), { maxIndirectSegments: 0 });
      back.reqCons = (back.reqCons + 1) >>> 0;
      if (!d.ok) throw new Error('decode failed');
      writeResponse(mem, back.slotOffset(back.rspProdPvt), {
        id: d.request.id,
        operation: d.request.operation,
        status: 0,
      });
      back.rspProdPvt = (back.rspProdPvt + 1) >>> 0;
    }
    expect(back.pushResponsesAndCheckNotify().notify).toBe(v.back_notify);
    expect(back.finalCheckForRequests()).toBe(v.back_more_after_final_check);
    expect(buf.subarray(0, 64).toString('hex')).toBe(v.header_after_back);
    expect(buf.subarray(64, 64 + 224).toString('hex')).toBe(v.slots_0_1_after_back);
    expect(buf.subarray(64 + 30 * 112, 64 + 32 * 112).toString('hex')).toBe(v.slots_30_31_after_back);
    expect(front.unconsumedResponses()).toBe(4);
  });
});

describe('ring arithmetic across the 2^32 wrap (properties)', () => {
  it('a front and a back exchanging random batches keep every invariant, from any start index', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0xffffff00, max: 0xffffffff }),
        fc.array(fc.tuple(fc.nat(40), fc.nat(40)), { minLength: 1, maxLength: 40 }),
        (start, steps) => {
          const { mem } = page();
          const front = FrontRing.init(mem, 32, BLKIF_REQUEST_SIZE, start);
          const back = new BackRing(mem, 32, BLKIF_REQUEST_SIZE, mem.readU32(8));
          let outstanding = 0;
          for (const [nreq, nrsp] of steps) {
            const canPush = Math.min(nreq, front.freeRequests());
            for (let i = 0; i < canPush; i++) front.reqProdPvt = (front.reqProdPvt + 1) >>> 0;
            front.pushRequests();
            outstanding += canPush;
            if (front.freeRequests() !== 32 - outstanding) return false;
            if (front.full() !== (outstanding === 32)) return false;
            const pending = back.unconsumedRequests();
            const take = Math.min(nrsp, pending);
            for (let i = 0; i < take; i++) {
              if (back.requestConsOverflow(back.reqCons)) return false;
              back.reqCons = (back.reqCons + 1) >>> 0;
              back.rspProdPvt = (back.rspProdPvt + 1) >>> 0;
            }
            back.pushResponses();
            if (back.requestProdOverflow(back.reqProd)) return false;
            if (front.responseProdOverflow(front.rspProd)) return false;
            const got = front.unconsumedResponses();
            front.rspCons = (front.rspCons + got) >>> 0;
            outstanding -= got;
          }
          return true;
        },
      ),
    );
  });

  it('detects a frontend that claims more requests than the ring holds', () => {
    const { mem } = page();
    const front = FrontRing.init(mem, 32, BLKIF_REQUEST_SIZE, 0xfffffff0);
    const back = new BackRing(mem, 32, BLKIF_REQUEST_SIZE, mem.readU32(8));
    mem.writeU32(0, (0xfffffff0 + 33) >>> 0); // req_prod 33 ahead of rsp_prod_pvt
    expect(back.requestProdOverflow(back.reqProd)).toBe(true);
    mem.writeU32(0, (0xfffffff0 + 32) >>> 0);
    expect(back.requestProdOverflow(back.reqProd)).toBe(false);
    expect(back.unconsumedRequests()).toBe(32);
    void front;
  });

  it('detects a backend that publishes more responses than requests outstanding', () => {
    const { mem } = page();
    const front = FrontRing.init(mem, 32, BLKIF_REQUEST_SIZE, 0xffffffff);
    mem.writeU32(8, (0xffffffff + 33) >>> 0);
    expect(front.responseProdOverflow(front.rspProd)).toBe(true);
  });
});

describe("private indices outside the contract: ring.h's unsigned arithmetic", () => {
  interface Rows {
    front: { rows: Array<[number, number, number, number, number, number, number]> };
    back: { rows: Array<[number, number, number, number, number]> };
  }
  const P = loadVectors<Rows>('ring-private-index-vectors.json');
  const pages = (size: number) => new BufferRingMemory(Buffer.alloc(SRING_HEADER_SIZE + size * 112));

  it.each(P.front.rows)(
    'front size %d req_prod_pvt %d rsp_cons %d rsp_prod %d: free %d, full %d, unconsumed %d',
    (size, reqProdPvt, rspCons, rspProd, free, full, unconsumed) => {
      const mem = pages(size);
      const front = new FrontRing(mem, size, BLKIF_REQUEST_SIZE);
      front.reqProdPvt = reqProdPvt;
      front.rspCons = rspCons;
      mem.writeU32(8, rspProd);
      expect(front.freeRequests()).toBe(free);
      expect(front.full()).toBe(full === 1);
      expect(front.unconsumedResponses()).toBe(unconsumed);
    },
  );

  it.each(P.back.rows)(
    'back size %d rsp_prod_pvt %d req_cons %d req_prod %d: unconsumed %d',
    (size, rspProdPvt, reqCons, reqProd, unconsumed) => {
      const mem = pages(size);
      const back = new BackRing(mem, size, BLKIF_REQUEST_SIZE);
      back.rspProdPvt = rspProdPvt;
      back.reqCons = reqCons;
      mem.writeU32(0, reqProd);
      expect(back.unconsumedRequests()).toBe(unconsumed);
    },
  );

  it('the in-contract counts of the golden wraparound page agree with the same helpers', () => {
    const v = vec('wraparound');
    const { mem } = page();
    const front = FrontRing.init(mem, 32, BLKIF_REQUEST_SIZE, 0xfffffffe);
    front.reqProdPvt = (0xfffffffe + 4) >>> 0;
    front.pushRequests();
    expect(front.freeRequests()).toBe(v.front_free_requests);
    const back = new BackRing(mem, 32, BLKIF_REQUEST_SIZE, mem.readU32(8));
    expect(back.unconsumedRequests()).toBe(v.back_unconsumed);
  });

  it('never returns a negative count for any private indices (property)', () => {
    fc.assert(
      fc.property(fc.nat(0xffffffff), fc.nat(0xffffffff), fc.nat(0xffffffff), (a, b, c) => {
        const mem = pages(32);
        const front = new FrontRing(mem, 32, BLKIF_REQUEST_SIZE);
        front.reqProdPvt = a;
        front.rspCons = b;
        mem.writeU32(8, c);
        const back = new BackRing(mem, 32, BLKIF_REQUEST_SIZE);
        back.rspProdPvt = a;
        back.reqCons = b;
        mem.writeU32(0, c);
        const counts = [front.freeRequests(), front.unconsumedResponses(), back.unconsumedRequests()];
        return counts.every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff);
      }),
    );
  });
});
