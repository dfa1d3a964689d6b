/**
 * Dom0's hypercall client and the broker's "this mapping aliases handle N" answer (a second mapping
 * of a frame Dom0 already maps shares its page): the page named must still be Dom0's, and a broker
 * naming one Dom0 does not map is refused loudly instead of handing out a page of zeros. The broker
 * here is a fake speaking the wire protocol, so it can say what a correct one never would.
 */
import { describe, expect, it } from 'vitest';
import { XenClient, type ClientTransport } from '@pvblk/client';
import {
  GNTST,
  decodeClientFrame,
  encodeFrame,
  type ClientMessage,
  type HypervisorMessage,
  type PvblkError,
} from '@pvblk/shared';

/** A broker that answers hello, and gnt_map / gnt_unmap with what `answer` says. */
function fakeBroker(answer: (m: ClientMessage) => unknown) {
  const seen: ClientMessage[] = [];
  let onFrame: (f: Uint8Array) => void = () => {};
  const transport: ClientTransport = {
    peer: 'fake',
    send(frame) {
      const d = decodeClientFrame(frame);
      if (!d.ok) throw new Error(d.error);
      const out: HypervisorMessage[] = [];
      for (const m of d.messages) {
        seen.push(m);
        if (!('id' in m)) continue;
        const r = m.t === 'hello' ? { domid: 0, name: 'Domain-0', privileged: true } : answer(m);
        out.push({ t: 'ok', id: m.id, r });
      }
      if (out.length) setImmediate(() => onFrame(encodeFrame(out)));
      return false;
    },
    close() {},
    onFrame(cb) {
      onFrame = cb;
    },
    onClose() {},
  };
  return { transport, seen };
}

describe('grant map aliases', () => {
  it('a mapping that aliases one Dom0 still holds shares its page, even with that page being unmapped', async () => {
    let handle = 0;
    const b = fakeBroker((m) => {
      if (m.t === 'gnt_map') {
        handle++;
        // the first mapping brings the frame's contents; the second aliases it
        return [
          handle === 1
            ? { status: GNTST.okay, handle, data: Buffer.alloc(4096, 0x5a) }
            : { status: GNTST.okay, handle, alias: 1 },
        ];
      }
      if (m.t === 'gnt_unmap') return m.handles.map(() => GNTST.okay);
      return undefined;
    });
    const c = await XenClient.connect(b.transport, 'x');
    const [a] = await c.gnttab.map([{ dom: 1, ref: 8, readonly: true }]);
    // the second mapping is asked for, then the first page is unmapped before the answer is back
    // (a guest page in two requests: the first finishes while the second is being mapped)
    const second = c.gnttab.map([{ dom: 1, ref: 9, readonly: true }]);
    const unmapped = c.gnttab.unmap([a.page!]);
    const [s] = await second;
    expect(await unmapped).toEqual([GNTST.okay]);
    expect(s.status).toBe(GNTST.okay);
    expect(s.page!.buf.equals(Buffer.alloc(4096, 0x5a))).toBe(true);
  });

  it('an alias of a handle Dom0 does not map fails the op, unmaps the handle and says why', async () => {
    const b = fakeBroker((m) => {
      if (m.t === 'gnt_map') return [{ status: GNTST.okay, handle: 7, alias: 99 }];
      if (m.t === 'gnt_unmap') return m.handles.map(() => GNTST.okay);
      return undefined;
    });
    const c = await XenClient.connect(b.transport, 'x');
    const errors: PvblkError[] = [];
    c.onError((e) => errors.push(e));
    expect(await c.gnttab.map([{ dom: 1, ref: 8, readonly: true }])).toEqual([
      { status: GNTST.general_error },
    ]);
    expect(errors.map((e) => e.message)).toEqual([
      'EFAULT: map of ref 8: handle 7 aliases 99, which is not mapped',
    ]);
    await new Promise((r) => setImmediate(r));
    expect(b.seen.filter((m) => m.t === 'gnt_unmap')).toEqual([expect.objectContaining({ handles: [7] })]);
  });
});
