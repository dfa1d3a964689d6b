/**
 * GNTTABOP_copy of no bytes into a shared page: valid (Xen checks only that the copy ends within the
 * page) and a no-op. It must reach nobody as a page write: a record of no bytes is one every
 * receiver's decoder refuses, and with it the whole frame it stood in — events and replies of other
 * domains bound for the same receiver (a helper's finding: a third domain's event port stuck for good).
 */
import { describe, expect, it } from 'vitest';
import { encodeFrame } from '@pvblk/shared';
import { brokerWith } from './broker-peers.ts';
import { until } from './stack.ts';

describe('a grant copy of no bytes', () => {
  it("reaches no mapper: the mapper's frames all decode, and a write after it arrives", async () => {
    const {
      peers: [a, b],
    } = brokerWith(['a', 'b']);
    // a's page 5 granted to b (a ring page, say) and b maps it; a grants the same page to itself too
    a.conn.onFrame(
      encodeFrame([
        { t: 'gnt_grant', id: 2, ref: 10, domid: b.domid, gfn: 5, readonly: false },
        { t: 'gnt_grant', id: 3, ref: 11, domid: a.domid, gfn: 5, readonly: false },
      ]),
    );
    b.conn.onFrame(encodeFrame([{ t: 'gnt_map', id: 2, ops: [{ dom: a.domid, ref: 10, readonly: false }] }]));
    await until(() => b.got.some((m) => m.t === 'ok'), "b's map answered");
    a.conn.onFrame(
      encodeFrame([
        {
          t: 'gnt_copy',
          id: 4,
          ops: [{ dir: 'to', dom: a.domid, ref: 11, off: 4096, data: Buffer.alloc(0) }],
        },
        { t: 'gnt_copy', id: 5, ops: [{ dir: 'to', dom: a.domid, ref: 11, off: 0, data: Buffer.alloc(0) }] },
        { t: 'mw', gfn: 5, off: 0, data: Buffer.from([1, 2, 3, 4]) },
      ]),
    );
    await until(() => b.got.some((m) => m.t === 'gw'), "a's write at b");
    expect(b.bad).toEqual([]);
    const writes = b.got.filter((m) => m.t === 'gw') as Array<{ data: Uint8Array }>;
    expect(writes.map((w) => [...w.data])).toEqual([[1, 2, 3, 4]]);
  });
});
