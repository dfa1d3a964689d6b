import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import {
  decodeClientFrame,
  decodeHypervisorFrame,
  encodeFrame,
  encodeFrames,
  FrameWriter,
  MAX_PAGE_RUN,
  forEachPageRecord,
  pageWriteMessage,
  WIRE_MAX_FRAME,
  WIRE_MAX_OBJECTS,
  WIRE_MAX_RECORDS,
  WIRE_VERSION,
  type ClientMessage,
  type HypervisorMessage,
  type PackedMessage,
  type PageRun,
  unpackClientMessage,
} from '../src/wire.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const clientOk = (f: Uint8Array): ClientMessage[] => {
  const d = decodeClientFrame(f);
  if (!d.ok) throw new Error(d.error);
  expect(d.invalid).toEqual([]);
  return d.messages;
};

describe('wire frames: one fixture per record kind', () => {
  it('PAGE_OWN and PAGE_MAP: kind, u32 gfn/handle, u16 off, u16 len, the bytes', () => {
    const f = encodeFrame([
      { t: 'mw', gfn: 0x1234, off: 8, data: Buffer.from([0xaa, 0xbb]) },
      { t: 'gw', handle: 7, off: 4094, data: Buffer.from([1, 2]) },
    ]);
    expect(hex(f)).toBe(
      '03' + '02 34120000 0800 0200 aabb'.replace(/ /g, '') + '03 07000000 fe0f 0200 0102'.replace(/ /g, ''),
    );
    expect(clientOk(f)).toEqual([
      { t: 'mw', gfn: 0x1234, off: 8, data: Buffer.from([0xaa, 0xbb]) },
      { t: 'gw', handle: 7, off: 4094, data: Buffer.from([1, 2]) },
    ]);
  });

  it('EVENT, EOI and NOTIFY_IF', () => {
    const msgs: ClientMessage[] = [
      { t: 'ev_send', port: 3 },
      { t: 'ev_eoi', port: 4 },
      {
        t: 'ev_notify_if',
        port: 5,
        mapped: false,
        page: 0x1000,
        eventOff: 4,
        oldProd: 0xffffffff,
        newProd: 1,
      },
    ];
    const f = encodeFrame(msgs);
    expect(hex(f)).toBe(
      ['03', '04 03000000', '05 04000000', '06 05000000 00 00100000 0400 ffffffff 01000000 00000000']
        .join('')
        .replace(/ /g, ''),
    );
    expect(clientOk(f)).toEqual(msgs);
  });

  it("version 2's FINAL record (0x07) is no longer a record kind", () => {
    const final = Buffer.from(
      '03' + '07 06000000 01 09000000 0800 02000000 00000000'.replace(/ /g, ''),
      'hex',
    );
    expect(decodeClientFrame(final)).toEqual({
      ok: false,
      error: 'record 0 at byte 1: unknown record kind 0x7',
    });
  });

  it('MSG: kind, u32 length, one MessagePack map', () => {
    const f = encodeFrame([{ t: 'fence', id: 5 }]);
    // 82 = map of 2; a1 74 = "t"; a5 "fence"; a2 "id"; 05
    expect(hex(f)).toBe('03' + '01 0d000000'.replace(/ /g, '') + '82a174a566656e6365a2696405');
    expect(clientOk(f)).toEqual([{ t: 'fence', id: 5 }]);
  });

  it('hypervisor frames: an upcall is an EVENT record; calls are MSG records', () => {
    const msgs: HypervisorMessage[] = [
      { t: 'ev', port: 9 },
      { t: 'ok', id: 2, r: { domid: 1 } },
      { t: 'xs_watch', path: '/local/domain/1/device', token: 'w1' },
    ];
    const d = decodeHypervisorFrame(encodeFrame(msgs));
    expect(
      d.ok && d.messages.map((m) => ({ ...m, r: m.t === 'ok' ? { ...(m.r as object) } : undefined })),
    ).toEqual(msgs.map((m) => ({ ...m, r: m.t === 'ok' ? m.r : undefined })));
  });
});

describe('frame limits', () => {
  it(`refuses a frame whose records build more than ${WIRE_MAX_OBJECTS} arrays, maps and binary values`, () => {
    // grant maps of 1024 ops: 1025 objects a record, each op ≈ 22 bytes (the smallest that build one)
    const map = (id: number): ClientMessage => ({
      t: 'gnt_map',
      id,
      ops: Array.from({ length: 1024 }, (_, k) => ({ dom: 1, ref: k, readonly: true })),
    });
    const fits = Math.floor(WIRE_MAX_OBJECTS / 1025);
    const ok = encodeFrame(Array.from({ length: fits }, (_, i) => map(i)));
    expect(clientOk(ok)).toHaveLength(fits);
    const over = decodeClientFrame(encodeFrame(Array.from({ length: fits + 1 }, (_, i) => map(i))));
    expect(over).toEqual({
      ok: false,
      error: `record ${fits}: the frame's records build more than ${WIRE_MAX_OBJECTS} arrays, maps and binary values`,
    });
    // what the budget is for: ≈ 1 MB of empty maps (0x80 each) in one record — 15 arrays of 65,535,
    // each under the item limit — refused before they are built (they took 180 MB of heap)
    const inner = Buffer.concat([Buffer.from([0xdc, 0xff, 0xff]), Buffer.alloc(0xffff, 0x80)]);
    const empties = Buffer.concat([
      Buffer.from([0x83, 0xa1, 0x74, 0xa5]),
      Buffer.from('fence'),
      Buffer.from([0xa2, 0x69, 0x64, 0x01, 0xa1, 0x6a, 0x9f]),
      ...Array.from({ length: 15 }, () => inner),
    ]);
    const rec = Buffer.alloc(5);
    rec[0] = 0x01;
    rec.writeUInt32LE(empties.length, 1);
    const flood = decodeClientFrame(Buffer.concat([Buffer.from([WIRE_VERSION]), rec, empties]));
    expect(flood.ok).toBe(false);
    expect(!flood.ok && flood.error).toContain('arrays, maps and binary values');
  });

  it('cuts frames between records below the target, in order, whatever is owed', () => {
    const page = Buffer.alloc(4096, 7);
    const msgs: ClientMessage[] = Array.from({ length: 600 }, (_, i) => ({
      t: 'mw',
      gfn: i,
      off: 0,
      data: page,
    }));
    const frames = encodeFrames(msgs, 1024 * 1024);
    expect(frames.length).toBe(3);
    for (const f of frames) expect(f.length).toBeLessThanOrEqual(1024 * 1024);
    const gfns = frames.flatMap((f) => clientOk(f).map((m) => (m as { gfn: number }).gfn));
    expect(gfns).toEqual(msgs.map((_, i) => i));
  });

  it(`cuts a frame at ${WIRE_MAX_RECORDS} records, and refuses a frame of more on both sides`, () => {
    const sends: ClientMessage[] = Array.from({ length: 2 * WIRE_MAX_RECORDS + 1 }, (_, i) => ({
      t: 'ev_send',
      port: i,
    }));
    const frames = encodeFrames(sends);
    expect(frames.map((f) => clientOk(f).length)).toEqual([WIRE_MAX_RECORDS, WIRE_MAX_RECORDS, 1]);
    expect(frames.flatMap((f) => clientOk(f).map((m) => (m as { port: number }).port))).toEqual(
      sends.map((_, i) => i),
    );
    // page writes that extend the one before are one record: 4096 one-byte writes of one page
    const w = new FrameWriter();
    for (let i = 0; i < 4096; i++) w.page(false, 1, i, Buffer.from([i & 0xff]), 0, 1);
    for (let i = 0; i < WIRE_MAX_RECORDS - 1; i++) w.add({ t: 'ev_send', port: i });
    expect(w.take().map((f) => clientOk(f).length)).toEqual([WIRE_MAX_RECORDS]);
    // a frame built past the bound (encodeFrame does not cut) is refused whole
    const over = encodeFrame(sends.slice(0, WIRE_MAX_RECORDS + 1));
    const error = `a frame of more than ${WIRE_MAX_RECORDS} records`;
    expect(decodeClientFrame(over)).toEqual({ ok: false, error });
    expect(decodeClientFrame(over, { pageRuns: true })).toEqual({ ok: false, error });
    const upcalls = encodeFrame(
      Array.from({ length: WIRE_MAX_RECORDS + 1 }, () => ({ t: 'ev' as const, port: 1 })),
    );
    expect(decodeHypervisorFrame(upcalls)).toEqual({ ok: false, error });
    expect(decodeClientFrame(encodeFrame(sends.slice(0, WIRE_MAX_RECORDS)))).toMatchObject({ ok: true });
  });

  it('refuses frames over the limit, of another version, and records that are truncated or out of the page', () => {
    expect(decodeClientFrame(Buffer.alloc(WIRE_MAX_FRAME + 1, WIRE_VERSION))).toEqual({
      ok: false,
      error: `frame of ${WIRE_MAX_FRAME + 1} bytes exceeds ${WIRE_MAX_FRAME}`,
    });
    // the frame that crashed the v1 broker, as it was sent
    expect(decodeClientFrame(bytes('01 91 81 a1 74 cf ff ff ff ff ff ff ff ff'))).toEqual({
      ok: false,
      error: `wire version 1 is not supported (want ${WIRE_VERSION})`,
    });
    // the same message in a MSG record
    expect(decodeClientFrame(bytes('03 01 0c000000 81 a1 74 cf ff ff ff ff ff ff ff ff'))).toEqual({
      ok: false,
      error: 'record 0: not valid MessagePack: the 64-bit integer at byte 3 is outside ±2^53',
    });
    expect(decodeClientFrame(bytes('03 02 00000000 0000 0500 aabb'))).toEqual({
      ok: false,
      error: 'record 0 (page write) at byte 1 is truncated',
    });
    expect(decodeClientFrame(bytes('03 02 00000000 ff0f 0200 aabb'))).toEqual({
      ok: false,
      error: 'record 0: a page write of 2 bytes at 4095 is outside the page',
    });
    expect(decodeClientFrame(bytes('03 02 00000000 0000 0000'))).toMatchObject({ ok: false });
    expect(decodeClientFrame(bytes('03 06 01000000 02 00000000 0400 00000000 01000000 00000000'))).toEqual({
      ok: false,
      error: 'record 0: a ring check names a bad page or offset',
    });
    // a ring check is something a domain sends, never the hypervisor
    expect(decodeHypervisorFrame(encodeFrame([{ t: 'ev_eoi', port: 1 }]))).toMatchObject({ ok: false });
  });

  it('answers a well-formed message of the wrong shape in the invalid list, naming the field, never echoing a peer string', () => {
    const secret = 'x'.repeat(3000);
    const d = decodeClientFrame(
      encodeFrame([
        { t: 'fence', id: 1 },
        { t: secret, id: 2 } as never,
        { t: 'xs', id: 3, op: 'read', tx: 0, path: 7 } as never,
      ]),
    );
    expect(d.ok && d.messages).toEqual([{ t: 'fence', id: 1 }]);
    expect(d.ok && d.invalid).toEqual([
      { index: 1, id: 2, error: 'message 1: unknown type a string of 3000 bytes' },
      { index: 2, id: 3, error: 'message 2 (xs): path must be a string of at most 4096 bytes' },
    ]);
  });

  it('never throws on random or mutated frames', () => {
    const valid = encodeFrame([
      { t: 'xs', id: 1, op: 'write', tx: 0, path: '/a', value: 'b' },
      { t: 'mw', gfn: 1, off: 0, data: Buffer.alloc(16, 1) },
      { t: 'ev_notify_if', port: 1, mapped: false, page: 1, eventOff: 4, oldProd: 0, newProd: 1 },
    ]);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.concat([Buffer.from([WIRE_VERSION]), b])),
          fc
            .array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 })
            .map((muts) => {
              const b = Buffer.from(valid);
              for (const [i, v] of muts) b[i] = v;
              return b;
            }),
          fc.nat(valid.length).map((n) => valid.subarray(0, n)),
        ),
        (f) => {
          expect(() => decodeClientFrame(f)).not.toThrow();
          expect(() => decodeHypervisorFrame(f)).not.toThrow();
        },
      ),
      { numRuns: 5000 },
    );
  });
});

/** A decoding with page runs, each run replaced by its records' messages (what decoding without gives). */
function expandRuns(d: ReturnType<typeof decodeClientFrame>): unknown {
  if (!d.ok) return d;
  const messages = d.messages.flatMap((m) => {
    if ((m as { t: string }).t !== 'page_run') return [m];
    const run = m as unknown as PageRun;
    const out: unknown[] = [];
    forEachPageRecord(run, (ref, off, start, len) => {
      out.push(pageWriteMessage(run.mapped, ref, off, run.frame.subarray(start, start + len)));
    });
    return out;
  });
  return { ...d, messages };
}

describe('page runs (decoding with pageRuns)', () => {
  const page = (t: 'mw' | 'gw', ref: number, off: number, n: number, fill: number): ClientMessage =>
    t === 'mw'
      ? { t, gfn: ref, off, data: Buffer.alloc(n, fill) }
      : { t, handle: ref, off, data: Buffer.alloc(n, fill) };

  it('groups page writes that follow each other, of one kind, and reads each record back', () => {
    const f = encodeFrame([
      page('mw', 1, 0, 4096, 1),
      page('mw', 2, 8, 16, 2),
      page('gw', 3, 0, 4, 3),
      { t: 'ev_send', port: 5 },
      page('mw', 4, 100, 1, 4),
    ]);
    const d = decodeClientFrame(f, { pageRuns: true });
    if (!d.ok) throw new Error(d.error);
    expect(
      d.messages.map((m) => (m.t === 'page_run' ? `${m.mapped ? 'gw' : 'mw'}×${m.count}` : m.t)),
    ).toEqual(['mw×2', 'gw×1', 'ev_send', 'mw×1']);
    const run = d.messages[0] as PageRun;
    expect(run.at).toBe(1);
    const records: unknown[] = [];
    forEachPageRecord(run, (ref, off, start, len) => void records.push({ ref, off, start, len }));
    expect(records).toEqual([
      { ref: 1, off: 0, start: 1 + 9, len: 4096 },
      { ref: 2, off: 8, start: 1 + 9 + 4096 + 9, len: 16 },
    ]);
    expect(run.end).toBe(1 + 9 + 4096 + 9 + 16);
    expect(expandRuns(d)).toEqual(decodeClientFrame(f));
  });

  it(`splits a longer stretch into runs of at most ${MAX_PAGE_RUN} records`, () => {
    const f = encodeFrame(Array.from({ length: MAX_PAGE_RUN + 6 }, (_, i) => page('gw', i, 0, 8, i)));
    const d = decodeHypervisorFrame(f, { pageRuns: true });
    if (!d.ok) throw new Error(d.error);
    expect(d.messages.map((m) => (m as PageRun).count)).toEqual([MAX_PAGE_RUN, 6]);
  });

  it('gives the same messages, invalid ones and errors as decoding without, on random and mutated frames', () => {
    const valid = encodeFrame([
      page('mw', 1, 0, 12, 1),
      page('mw', 2, 4, 12, 2),
      { t: 'xs', id: 1, op: 'write', tx: 0, path: '/a', value: 'b' },
      page('gw', 3, 0, 12, 3),
      { t: 'fence', id: 2 },
      page('gw', 4, 4090, 6, 4),
      page('mw', 5, 0, 3, 5),
    ]);
    fc.assert(
      fc.property(
        fc
          .array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 4 })
          .map((muts) => {
            const b = Buffer.from(valid);
            for (const [i, v] of muts) b[i] = v;
            return b;
          }),
        (f) => {
          expect(expandRuns(decodeClientFrame(f, { pageRuns: true }))).toEqual(decodeClientFrame(f));
        },
      ),
      { numRuns: 3000 },
    );
  });
});

const hypervisorOk = (f: Uint8Array): HypervisorMessage[] => {
  const d = decodeHypervisorFrame(f);
  if (!d.ok) throw new Error(d.error);
  return d.messages;
};

describe('FrameWriter', () => {
  it('writes no record for a page write of no bytes, so the frame it stands in still decodes', () => {
    const w = new FrameWriter();
    w.add({ t: 'ev', port: 3 });
    w.page(true, 9, 0, Buffer.alloc(0), 0, 0);
    w.add({ t: 'gw', handle: 9, off: 4096, data: Buffer.alloc(0) });
    w.add({ t: 'ev', port: 4 });
    const frames = w.take();
    expect(frames).toHaveLength(1);
    expect(hypervisorOk(frames[0])).toEqual([
      { t: 'ev', port: 3 },
      { t: 'ev', port: 4 },
    ]);
  });

  it("sizes each frame's buffer by the frame before it, not by the largest so far", () => {
    const w = new FrameWriter();
    const page = Buffer.alloc(4096, 7);
    for (let i = 0; i < 64; i++) w.page(false, i, 0, page, 0, 4096); // one frame of 256 KiB + records
    const [big] = w.take();
    expect(big.length).toBeGreaterThan(256 * 1024);
    w.add({ t: 'ev', port: 3 });
    const [small] = w.take();
    expect(hypervisorOk(small)).toEqual([{ t: 'ev', port: 3 }]);
    // the event's frame still had the big one's size to start from; the frame after it does not
    expect(small.buffer.byteLength).toBeGreaterThanOrEqual(512 * 1024);
    w.add({ t: 'ev', port: 4 });
    const [next] = w.take();
    expect(hypervisorOk(next)).toEqual([{ t: 'ev', port: 4 }]);
    expect(next.buffer.byteLength).toBe(8192);
  });

  it('builds a big frame that follows small ones in one growth, not by doubling from 8 KiB', () => {
    const w = new FrameWriter();
    const page = Buffer.alloc(4096, 9);
    const big = () => {
      for (let i = 0; i < 32; i++) w.page(true, i, 0, page, 0, 4096);
      w.add({ t: 'ev', port: 1 });
    };
    big(); // a request's frame …
    w.take();
    w.add({ t: 'ev', port: 2 }); // … an event's …
    w.take();
    // … and the next request's: the bytes copied to grow its buffer are what the 8 KiB one held
    const copy = vi.spyOn(Buffer.prototype, 'copy');
    try {
      big();
      const copied = copy.mock.calls.reduce(
        (a, c) => a + ((c[3] ?? 0) as number) - ((c[2] ?? 0) as number),
        0,
      );
      expect(copied).toBeGreaterThan(0);
      expect(copied).toBeLessThanOrEqual(8192);
    } finally {
      copy.mockRestore();
    }
    const [frame] = w.take();
    const msgs = hypervisorOk(frame);
    expect(msgs).toHaveLength(33);
    expect(msgs[31]).toEqual({ t: 'gw', handle: 31, off: 0, data: page });
    expect(msgs[32]).toEqual({ t: 'ev', port: 1 });
  });

  describe('recycle', () => {
    const page = Buffer.alloc(4096, 5);
    const frameOf = (w: FrameWriter, pages: number, port: number) => {
      for (let i = 0; i < pages; i++) w.page(false, i, 0, page, 0, 4096);
      w.add({ t: 'ev', port });
      const frames = w.take();
      expect(frames).toHaveLength(1);
      return frames[0];
    };

    it('builds a later frame in the buffer of one given back, and the frame reads back whole', () => {
      const w = new FrameWriter();
      const a = frameOf(w, 10, 1);
      w.recycle(a);
      const b = frameOf(w, 10, 2); // built in the buffer allocated when `a` was cut
      expect(b.buffer).not.toBe(a.buffer);
      const c = frameOf(w, 10, 3); // built in a's
      expect(c.buffer).toBe(a.buffer);
      const msgs = hypervisorOk(c);
      expect(msgs).toHaveLength(11);
      expect(msgs[9]).toEqual({ t: 'mw', gfn: 9, off: 0, data: page });
      expect(msgs[10]).toEqual({ t: 'ev', port: 3 });
    });

    it('keeps buffers up to its target, none bigger, none that a frame does not start, and two at most', () => {
      const w = new FrameWriter();
      const big = frameOf(w, 70, 1); // 280 KiB: a 512 KiB buffer, below the 1 MiB target
      w.recycle(big);
      const seen = new Set<ArrayBufferLike>();
      for (let i = 0; i < 4; i++) seen.add(frameOf(w, 70, 2 + i).buffer);
      expect(seen.has(big.buffer)).toBe(true);

      // a page record larger than a 2 KiB target gets a frame, and a buffer, of its own: not kept
      const s = new FrameWriter(2048);
      s.page(false, 1, 0, page, 0, 4096);
      const [own] = s.take();
      expect(own.length).toBe(1 + 9 + 4096);
      s.recycle(own);
      const small = Array.from({ length: 4 }, (_, i) => frameOf(s, 0, 30 + i).buffer);
      expect(small.includes(own.buffer)).toBe(false);

      const v = new FrameWriter();
      const x = frameOf(v, 10, 1);
      v.recycle(x.subarray(1)); // not a frame take returned
      const later = [frameOf(v, 10, 2), frameOf(v, 10, 3), frameOf(v, 10, 4)];
      expect(later.some((f) => f.buffer === x.buffer)).toBe(false);

      const u = new FrameWriter();
      const given = [frameOf(u, 10, 1), frameOf(u, 10, 2), frameOf(u, 10, 3)];
      for (const f of given) u.recycle(f);
      const next = Array.from({ length: 6 }, (_, i) => frameOf(u, 10, 10 + i).buffer);
      // the first two given back are used again; the third was not kept
      expect(next.includes(given[0].buffer)).toBe(true);
      expect(next.includes(given[1].buffer)).toBe(true);
      expect(next.includes(given[2].buffer)).toBe(false);

      // one given back twice carries one frame at a time
      const t = new FrameWriter();
      const once = frameOf(t, 10, 1);
      t.recycle(once);
      t.recycle(once);
      const after = Array.from({ length: 4 }, (_, i) => frameOf(t, 10, 20 + i));
      for (let i = 1; i < after.length; i++) expect(after[i].buffer).not.toBe(after[i - 1].buffer);
      expect(after.filter((f) => f.buffer === once.buffer)).toHaveLength(1);
    });
  });
});

describe('packed decoding (the broker decodes each message when it serves it)', () => {
  const unpackAll = (f: Uint8Array) => {
    const d = decodeClientFrame(f, { pageRuns: true, packed: true });
    if (!d.ok) throw new Error(d.error);
    expect(d.invalid).toEqual([]);
    return d.messages.map((m) => (m.t === 'packed' ? unpackClientMessage(m) : { ok: true, msg: m }));
  };

  it('leaves MSG records packed, checks the structure all the same, and unpacks them as decodeClientFrame decodes', () => {
    const msgs: ClientMessage[] = [
      { t: 'xs', id: 1, op: 'write', tx: 0, path: 'device/vbd/51712/state', value: '4' },
      { t: 'ev_send', port: 3 },
      { t: 'fence', id: 2 },
    ];
    const f = encodeFrame(msgs);
    const d = decodeClientFrame(f, { pageRuns: true, packed: true });
    expect(d.ok && d.messages.map((m) => m.t)).toEqual(['packed', 'ev_send', 'packed']);
    const packed = d.ok ? (d.messages[0] as PackedMessage) : null;
    expect(packed && { index: packed.index, frame: packed.frame === f }).toEqual({ index: 0, frame: true });
    expect(unpackAll(f)).toEqual(clientOk(f).map((msg) => ({ ok: true, msg })));
    // a structural fault anywhere still refuses the whole frame, before anything is served
    const cut = f.subarray(0, f.length - 1);
    expect(decodeClientFrame(cut, { pageRuns: true, packed: true })).toEqual(decodeClientFrame(cut));
    // an invalid message is found when served, with the error and id the eager decoder gives
    const bad = encodeFrame([{ t: 'no_such_call', id: 6 } as never]);
    const eager = decodeClientFrame(bad);
    expect(unpackAll(bad)).toEqual([{ ok: false, bad: eager.ok && eager.invalid[0] }]);
  });

  it('makes a record that is not valid MessagePack, or past the frame budget, invalid alone: the records before it stand', () => {
    const fence = encodeFrame([{ t: 'fence', id: 1 }]).subarray(1);
    const bad = bytes('01 0c000000 81 a1 74 cf ff ff ff ff ff ff ff ff');
    const f = Buffer.concat([Buffer.from([WIRE_VERSION]), fence, bad, fence]);
    // eagerly the whole frame is refused; packed, the fence before it was served already
    expect(decodeClientFrame(f).ok).toBe(false);
    expect(unpackAll(f)).toEqual([
      { ok: true, msg: { t: 'fence', id: 1 } },
      {
        ok: false,
        bad: {
          index: 1,
          error: 'record 1: not valid MessagePack: the 64-bit integer at byte 3 is outside ±2^53',
        },
      },
      { ok: true, msg: { t: 'fence', id: 1 } },
    ]);
    const map = (id: number): ClientMessage => ({
      t: 'gnt_map',
      id,
      ops: Array.from({ length: 1024 }, (_, k) => ({ dom: 1, ref: k, readonly: true })),
    });
    const fits = Math.floor(WIRE_MAX_OBJECTS / 1025);
    const out = unpackAll(encodeFrame(Array.from({ length: fits + 2 }, (_, i) => map(i))));
    expect(out.slice(0, fits).every((r) => r.ok)).toBe(true);
    const over = `the frame's records build more than ${WIRE_MAX_OBJECTS} arrays, maps and binary values`;
    expect(out.slice(fits)).toEqual([
      { ok: false, bad: { index: fits, error: `record ${fits}: ${over}` } },
      { ok: false, bad: { index: fits + 1, error: `record ${fits + 1}: ${over}` } },
    ]);
  });
});
