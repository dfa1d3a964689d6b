/**
 * Page writes that follow each other in a frame reach the broker as one run (PageRun): the bounds that
 * held per message hold per record — a paused domain cut off in the middle of a run is served no
 * further, and the input a domain may queue before its socket is paused is counted in records.
 */
import { describe, expect, it } from 'vitest';
import { encodeFrame, GNTST, WIRE_VERSION } from '@pvblk/shared';
import {
  Connection,
  Hypervisor,
  IN_HIGH,
  LocalHypervisor,
  MAX_HELD_INBOUND,
  Nemesis,
  type FrameTransport,
} from '@pvblk/hypervisor';
import { FairScheduler } from '../../packages/hypervisor/src/scheduler.ts';
import { until } from './stack.ts';

/** A guest with one page granted to Dom0 and mapped there. */
async function guestWithMappedPage() {
  const lh = new LocalHypervisor();
  const dom0 = await lh.connectDom0();
  const { credential } = await dom0.domctl.create('g');
  const guest = await lh.connect(credential);
  const page = guest.allocPage();
  const ref = guest.gnttab.grantAccess(page, 0, false);
  const [m] = await dom0.gnttab.map([{ dom: guest.domid, ref, readonly: false }]);
  expect(m.status).toBe(GNTST.okay);
  await guest.fence();
  return { lh, dom0, guest, page, mapped: m.page! };
}

describe('page runs at the broker', () => {
  it.each([
    { rules: 'no other rule', extraRule: false },
    { rules: 'another rule installed', extraRule: true },
  ])(
    'a paused guest cut off in the middle of a run ($rules): the broker carries on and applies nothing after the cut',
    async ({ extraRule }) => {
      const errors: unknown[] = [];
      const onErr = (e: unknown) => errors.push(e);
      process.on('uncaughtException', onErr);
      try {
        const { lh, dom0, guest, page, mapped } = await guestWithMappedPage();
        const nem = new Nemesis(lh.hv);
        // a rule that never fires keeps the seams installed after the pause is dropped
        if (extraRule) nem.addRule({ action: 'drop', kind: ['xs_watch'], domain: 0, probability: 0 });
        nem.pause(guest.domid);
        const closed = new Promise<number>((r) => guest.onClose((code) => r(code)));
        // one-byte writes two bytes apart: separate records, all in one run per frame
        for (let i = 0; i <= MAX_HELD_INBOUND + 10; i++)
          page.write((i * 2) % 4000, Buffer.from([(i & 0x7f) | 1]));
        expect(await closed).toBe(4600);
        await until(() => !lh.hv.domains.has(guest.domid), 'the guest destroyed');
        await dom0.fence();
        expect(mapped.buf.filter((b) => b !== 0).length).toBe(0);
        expect(errors).toEqual([]);
        // the broker still serves the others
        expect((await dom0.domctl.list()).map((d) => d.domid)).toEqual([0]);
      } finally {
        process.off('uncaughtException', onErr);
      }
    },
  );

  it('pauses reading a blocked domain after IN_HIGH records, however they are grouped', async () => {
    const hv = new Hypervisor({ dom0Credential: 'x' });
    const sched = new FairScheduler();
    const a = hv.createDomain('a');
    const b = hv.createDomain('b');
    let paused = false;
    const tA: FrameTransport = {
      peer: 'a',
      sendFrame: (_f, written) => written(),
      close() {},
      pause: () => void (paused = true),
      resume() {},
    };
    // b never reads: its backlog passes OUT_HIGH and a, whose writes it maps, must wait for it
    const tB: FrameTransport = { peer: 'b', sendFrame: () => {}, close() {}, pause() {}, resume() {} };
    const ca = new Connection(hv, sched, tA, () => {});
    const cb = new Connection(hv, sched, tB, () => {});
    ca.onFrame(encodeFrame([{ t: 'hello', id: 1, v: WIRE_VERSION, credential: a.credential }]));
    cb.onFrame(encodeFrame([{ t: 'hello', id: 1, v: WIRE_VERSION, credential: b.credential }]));
    ca.onFrame(encodeFrame([{ t: 'gnt_grant', id: 2, ref: 10, domid: b.domid, gfn: 5, readonly: true }]));
    cb.onFrame(encodeFrame([{ t: 'gnt_map', id: 2, ops: [{ dom: a.domid, ref: 10, readonly: true }] }]));
    const writes = (n: number, len: number) =>
      encodeFrame(
        Array.from({ length: n }, (_, i) => ({
          t: 'mw' as const,
          gfn: 5,
          off: len === 4096 ? 0 : (i * 2) % 4000,
          data: Buffer.alloc(len, 1),
        })),
      );
    for (let i = 0; i < 11; i++) ca.onFrame(writes(100, 4096));
    await until(() => ca.blocked, 'a held behind b');
    let records = 0;
    while (!paused && records < 1_000_000) {
      ca.onFrame(writes(64, 1));
      records += 64;
    }
    expect(paused).toBe(true);
    expect(ca.pendingInput).toBeGreaterThan(IN_HIGH);
    expect(records).toBeLessThanOrEqual(IN_HIGH + 64);
  });
});
