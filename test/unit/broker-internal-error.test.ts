/**
 * The broker's promise to its peers (docs/security.md): a bug reached by a peer's input closes that
 * peer's connection (4500), never the process. Input is served either at once, under the frame
 * handler's catch, or in a round the scheduler runs on a turn of its own (a domain past its slice, or
 * one that arrived while others waited): the second path keeps the promise too.
 */
import { describe, expect, it } from 'vitest';
import { encodeFrame, WIRE_VERSION } from '@pvblk/shared';
import { Connection, Hypervisor, type FrameTransport } from '@pvblk/hypervisor';
import { FairScheduler } from '../../packages/hypervisor/src/scheduler.ts';
import { until } from './stack.ts';

describe('a bug in the broker reached from its scheduler', () => {
  it('closes the connection whose message reached it (4500), not the process; other domains are served', async () => {
    const hv = new Hypervisor({ dom0Credential: 'x' });
    const sched = new FairScheduler();
    const a = hv.createDomain('a');
    const b = hv.createDomain('b');
    let closed: number | null = null;
    const tA: FrameTransport = {
      peer: 'a',
      sendFrame: (_f, written) => written(),
      close: (code) => void (closed = code),
      pause() {},
      resume() {},
    };
    let bFrames = 0;
    const tB: FrameTransport = {
      peer: 'b',
      sendFrame: (_f, written) => {
        bFrames++;
        written();
      },
      close() {},
      pause() {},
      resume() {},
    };
    const ca = new Connection(hv, sched, tA, () => {});
    const cb = new Connection(hv, sched, tB, () => {});
    ca.onFrame(encodeFrame([{ t: 'hello', id: 1, v: WIRE_VERSION, credential: a.credential }]));
    cb.onFrame(encodeFrame([{ t: 'hello', id: 1, v: WIRE_VERSION, credential: b.credential }]));
    // the 300th message of a's frame throws: past the first slice (256), so it is served in a round
    // the scheduler runs on a turn of its own (setImmediate), not under onFrame's catch
    const handle = hv.handle.bind(hv);
    let served = 0;
    hv.handle = (d, m) => {
      if (d.domid === a.domid && ++served === 300) throw new Error('a bug');
      handle(d, m);
    };
    ca.onFrame(
      encodeFrame(
        Array.from({ length: 400 }, (_, i) => ({
          t: 'gnt_grant' as const,
          id: 2 + i,
          ref: 10 + i,
          domid: b.domid,
          gfn: 5,
          readonly: true,
        })),
      ),
    );
    expect(served).toBe(256);
    await until(() => closed !== null, "a's connection closed");
    expect(closed).toBe(4500);
    expect(served).toBe(300);
    const before = bFrames;
    cb.onFrame(encodeFrame([{ t: 'gnt_grant', id: 2, ref: 10, domid: a.domid, gfn: 7, readonly: true }]));
    await until(() => bFrames > before, 'b answered');
  });
});
