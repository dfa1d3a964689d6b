/**
 * Page writes that follow each other in a frame reach the broker as one run (PageRun): the bound that
 * held per message holds per record — the input a domain may queue before its socket is paused is
 * counted in records, and in the bytes of the frames the queued records keep alive. (A paused domain
 * cut off in the middle of a run: nemesis.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { encodeFrame, REC_MSG, WIRE_VERSION } from '@pvblk/shared';
import { Connection, Hypervisor, IN_HIGH, IN_HIGH_BYTES, type FrameTransport } from '@pvblk/hypervisor';
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

  it('pauses reading a blocked domain whose few records hold many bytes (IN_HIGH_BYTES)', async () => {
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
      resume: () => void (paused = false),
    };
    const tB: FrameTransport = { peer: 'b', sendFrame: () => {}, close() {}, pause() {}, resume() {} };
    const ca = new Connection(hv, sched, tA, () => {});
    const cb = new Connection(hv, sched, tB, () => {});
    ca.onFrame(encodeFrame([{ t: 'hello', id: 1, v: WIRE_VERSION, credential: a.credential }]));
    cb.onFrame(encodeFrame([{ t: 'hello', id: 1, v: WIRE_VERSION, credential: b.credential }]));
    ca.onFrame(encodeFrame([{ t: 'gnt_grant', id: 2, ref: 10, domid: b.domid, gfn: 5, readonly: true }]));
    cb.onFrame(encodeFrame([{ t: 'gnt_map', id: 2, ops: [{ dom: a.domid, ref: 10, readonly: true }] }]));
    const page = Buffer.alloc(4096, 1);
    for (let i = 0; i < 11; i++)
      ca.onFrame(
        encodeFrame(Array.from({ length: 100 }, () => ({ t: 'mw' as const, gfn: 5, off: 0, data: page }))),
      );
    await until(() => ca.blocked, 'a held behind b');
    expect(paused).toBe(false);
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
    while (!paused && frames < 10) {
      ca.onFrame(Buffer.concat([Buffer.from([WIRE_VERSION]), fence(id++), fence(id++)]));
      frames++;
    }
    expect(paused).toBe(true);
    expect(ca.pendingInput).toBeLessThan(IN_HIGH);
    expect(ca.pendingInputBytes).toBeGreaterThan(IN_HIGH_BYTES);
    expect(frames).toBeLessThanOrEqual(Math.ceil(IN_HIGH_BYTES / (16 * 1024 * 1024)) + 1);
  });
});
