/**
 * The broker's fair service (scheduler.ts) seen from two domains, one flooding it with XenStore writes
 * — the attack that slowed another guest's `dd` about fivefold. A domain with nothing waiting is
 * served on arrival, not behind a slice of the flood; and the flood's frame is decoded message by
 * message as it is served, not all at once on arrival (8,000 writes took 30-35 ms to decode: one
 * stall for everybody).
 */
import { describe, expect, it } from 'vitest';
import { encodeFrame, WIRE_VERSION, type ClientMessage } from '@pvblk/shared';
import type { Hypervisor } from '@pvblk/hypervisor';
import { brokerWith } from './broker-peers.ts';
import { until } from './stack.ts';

const FLOOD = 16_000;
/** An id after every write's. */
const LAST = 10 + FLOOD;

/** The domain's XenStore home, as the toolstack makes it: its own, so its writes under it succeed. */
function home(hv: Hypervisor, domid: number): void {
  const path = `/local/domain/${domid}`;
  hv.xenstore.mkdir(0, 0, path);
  hv.xenstore.setPerms(0, 0, path, [{ domid, perm: 'n' }]);
}

function writes(n: number): ClientMessage[] {
  return Array.from({ length: n }, (_, i) => ({
    t: 'xs' as const,
    id: 10 + i,
    op: 'write' as const,
    tx: 0,
    path: `data/k${i % 100}`,
    value: String(i),
  }));
}

describe('fair service in the broker, against a flood of XenStore writes', () => {
  it('serves a domain with nothing waiting on arrival, while a flooding domain waits for its turn', async () => {
    const {
      hv,
      peers: [a, b],
    } = brokerWith(['flood', 'quiet']);
    home(hv, a.domid);
    const handle = hv.handle.bind(hv);
    const served = new Map<number, number>();
    hv.handle = (d, m) => {
      served.set(d.domid, (served.get(d.domid) ?? 0) + 1);
      handle(d, m);
    };
    a.conn.onFrame(encodeFrame(writes(FLOOD)));
    const first = served.get(a.domid) ?? 0;
    expect(first).toBeGreaterThan(0); // a slice at once: it had nothing waiting either
    expect(first).toBeLessThan(FLOOD);
    // b's fence is served inside its own frame's arrival, before any more of a's writes
    b.conn.onFrame(encodeFrame([{ t: 'fence', id: 7 }]));
    expect(served.get(b.domid)).toBe(1);
    expect(served.get(a.domid)).toBe(first);
    // a's backlog does not jump ahead by sending more: its new frame queues behind the old
    a.conn.onFrame(encodeFrame([{ t: 'fence', id: LAST }]));
    expect(served.get(a.domid)).toBe(first);
    await until(
      () => a.got.some((m) => m.t === 'ok' && m.id === LAST),
      'the flood and its fence served',
      20_000,
    );
    const replies = a.got.filter((m) => m.t === 'ok').map((m) => (m as { id: number }).id);
    expect(replies).toHaveLength(FLOOD + 2); // the hello's, the writes', the fence's
    expect(replies.every((id, i) => i === 0 || id > replies[i - 1])).toBe(true); // in order
    await until(() => b.got.some((m) => m.t === 'ok' && m.id === 7), "b's fence answered");
  });

  it("decodes a frame's messages as it serves them: a record that is not MessagePack near the end is answered there, the writes before it stand", async () => {
    const {
      hv,
      peers: [a],
    } = brokerWith(['flood']);
    home(hv, a.domid);
    const body = encodeFrame(writes(FLOOD)).subarray(1);
    const bad = Buffer.from('010c00000081a174cfffffffffffffffff', 'hex');
    const fence = encodeFrame([{ t: 'fence', id: 5 }]).subarray(1);
    a.conn.onFrame(Buffer.concat([Buffer.from([WIRE_VERSION]), body, bad, fence]));
    await until(
      () => a.got.some((m) => m.t === 'ok' && m.id === 5),
      'the fence after the bad record',
      20_000,
    );
    expect(a.got.filter((m) => m.t === 'ok')).toHaveLength(FLOOD + 2); // hello, the writes, the fence
    expect(a.got.filter((m) => m.t === 'err')).toEqual([
      {
        t: 'err',
        id: 0,
        code: 'EPROTO',
        message: `record ${FLOOD}: not valid MessagePack: the 64-bit integer at byte 3 is outside ±2^53`,
      },
    ]);
    expect(hv.xenstore.read(0, 0, `/local/domain/${a.domid}/data/k99`)).toBe(String(FLOOD - 1));
  });
});
