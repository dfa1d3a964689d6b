/**
 * Page writes that follow each other in a frame reach the broker as one run (PageRun): the bound that
 * held per message holds per record — the input a domain may queue before its socket is paused is
 * counted in records. (A paused domain cut off in the middle of a run: nemesis.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { encodeFrame, WIRE_VERSION } from '@pvblk/shared';
import { Connection, Hypervisor, IN_HIGH, type FrameTransport } from '@pvblk/hypervisor';
import { FairScheduler } from '../../packages/hypervisor/src/scheduler.ts';
import { until } from './stack.ts';

describe('page runs at the broker', () => {
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
