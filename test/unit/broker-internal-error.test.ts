/**
 * The broker's promise to its peers (docs/security.md): a bug reached by a peer's input closes that
 * peer's connection (4500), never the process. Input is served either at once, under the frame
 * handler's catch, or in a round the scheduler runs on a turn of its own (a domain past its slice, or
 * one that arrived while others waited): the second path keeps the promise too.
 */
import { describe, expect, it } from 'vitest';
import { encodeFrame } from '@pvblk/shared';
import { brokerWith } from './broker-peers.ts';
import { until } from './stack.ts';

describe('a bug in the broker reached from its scheduler', () => {
  it('closes the connection whose message reached it (4500), not the process; other domains are served', async () => {
    const {
      hv,
      peers: [a, b],
    } = brokerWith(['a', 'b']);
    // the 300th message of a's frame throws: past the first slice (256), so it is served in a round
    // the scheduler runs on a turn of its own (setImmediate), not under onFrame's catch
    const handle = hv.handle.bind(hv);
    let served = 0;
    hv.handle = (d, m) => {
      if (d.domid === a.domid && ++served === 300) throw new Error('a bug');
      handle(d, m);
    };
    a.conn.onFrame(
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
    await until(() => a.closed !== null, "a's connection closed");
    expect(a.closed).toBe(4500);
    expect(served).toBe(300);
    const before = b.got.length;
    b.conn.onFrame(encodeFrame([{ t: 'gnt_grant', id: 2, ref: 10, domid: a.domid, gfn: 7, readonly: true }]));
    await until(() => b.got.length > before, 'b answered');
    expect(b.got.at(-1)).toMatchObject({ t: 'ok', id: 2 });
  });
});
