/**
 * Page writes that follow each other in a frame reach the broker as one run (PageRun): the bound that
 * held per message holds per record — the input a domain may queue before its socket is paused is
 * counted in records, and in the bytes of the frames the queued records keep alive. (A paused domain
 * cut off in the middle of a run: nemesis.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { encodeFrame, REC_MSG, WIRE_VERSION } from '@pvblk/shared';
import { IN_HIGH, IN_HIGH_BYTES } from '@pvblk/hypervisor';
import { brokerWith, type BrokerPeer } from './broker-peers.ts';
import { until } from './stack.ts';

/** a writes a page b maps, b never reads: a's writes pile up for b, and a must wait for it. */
async function blockedBehindReader(): Promise<{ a: BrokerPeer; b: BrokerPeer }> {
  const {
    peers: [a, b],
  } = brokerWith(['a', { name: 'b', reads: false }]);
  a.conn.onFrame(encodeFrame([{ t: 'gnt_grant', id: 2, ref: 10, domid: b.domid, gfn: 5, readonly: true }]));
  b.conn.onFrame(encodeFrame([{ t: 'gnt_map', id: 2, ops: [{ dom: a.domid, ref: 10, readonly: true }] }]));
  const page = Buffer.alloc(4096, 1);
  for (let i = 0; i < 11; i++)
    a.conn.onFrame(
      encodeFrame(Array.from({ length: 100 }, () => ({ t: 'mw' as const, gfn: 5, off: 0, data: page }))),
    );
  await until(() => a.conn.blocked, 'a held behind b');
  return { a, b };
}

describe('page runs at the broker', () => {
  it('pauses reading a blocked domain after IN_HIGH records, however they are grouped', async () => {
    const { a } = await blockedBehindReader();
    const writes = (n: number) =>
      encodeFrame(
        Array.from({ length: n }, (_, i) => ({
          t: 'mw' as const,
          gfn: 5,
          off: (i * 2) % 4000,
          data: Buffer.alloc(1, 1),
        })),
      );
    let records = 0;
    while (!a.paused && records < 1_000_000) {
      a.conn.onFrame(writes(64));
      records += 64;
    }
    expect(a.paused).toBe(true);
    expect(a.conn.pendingInput).toBeGreaterThan(IN_HIGH);
    expect(records).toBeLessThanOrEqual(IN_HIGH + 64);
  });

  it('pauses reading a blocked domain whose few records hold many bytes (IN_HIGH_BYTES)', async () => {
    const { a } = await blockedBehindReader();
    expect(a.paused).toBe(false);
    // a fence with 8 MiB in a field the schema does not know (extra fields are ignored, the bytes are not)
    const fence = (id: number) => {
      const body = Buffer.concat([
        Buffer.from([0x83, 0xa1, 0x74, 0xa5]),
        Buffer.from('fence'),
        Buffer.from([0xa2, 0x69, 0x64, 0xcd, id >> 8, id & 0xff, 0xa1, 0x6a, 0xc6, 0x00, 0x7f, 0xff, 0x00]),
        Buffer.alloc(0x7fff00),
      ]);
      const head = Buffer.alloc(5);
      head[0] = REC_MSG;
      head.writeUInt32LE(body.length, 1);
      return Buffer.concat([head, body]);
    };
    let frames = 0;
    let id = 100;
    while (!a.paused && frames < 10) {
      a.conn.onFrame(Buffer.concat([Buffer.from([WIRE_VERSION]), fence(id++), fence(id++)]));
      frames++;
    }
    expect(a.paused).toBe(true);
    expect(a.conn.pendingInput).toBeLessThan(IN_HIGH);
    expect(a.conn.pendingInputBytes).toBeGreaterThan(IN_HIGH_BYTES);
    expect(frames).toBeLessThanOrEqual(Math.ceil(IN_HIGH_BYTES / (16 * 1024 * 1024)) + 1);
  });
});
