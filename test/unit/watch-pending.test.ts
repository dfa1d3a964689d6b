import { describe, expect, it } from 'vitest';
import { oneEventPending } from '@pvblk/client';

const turn = () => new Promise<void>((r) => setImmediate(r));

describe("a watch's events, one pending at a time (xenbus nr_pending, frontend_will_handle)", () => {
  it('drops an event while one waits to be handled; one that comes while the handler runs is queued again', async () => {
    const runs: number[] = [];
    let release!: () => void;
    let gate = new Promise<void>((r) => (release = r));
    const w = oneEventPending(async () => {
      runs.push(runs.length);
      await gate;
    });
    for (let i = 0; i < 1000; i++) w.fire();
    expect(w.dropped()).toBe(999);
    await turn();
    // the first run has started and waits: the next event is pending again, the rest dropped
    expect(runs).toEqual([0]);
    for (let i = 0; i < 1000; i++) w.fire();
    expect(w.dropped()).toBe(999 + 999);
    const first = release;
    gate = new Promise<void>((r) => (release = r));
    first();
    await turn();
    expect(runs).toEqual([0, 1]);
    release();
    await turn();
    // nothing was pending after the second: no third run
    expect(runs).toEqual([0, 1]);
  });

  it("runs on the caller's queue when given one, after what is already there", async () => {
    const order: string[] = [];
    let chain = Promise.resolve();
    const queue = (run: () => Promise<void>) => {
      chain = chain.then(run);
    };
    queue(async () => void order.push('before'));
    const w = oneEventPending(async () => void order.push('event'), queue);
    w.fire();
    w.fire();
    queue(async () => void order.push('after'));
    await chain;
    expect(order).toEqual(['before', 'event', 'after']);
    expect(w.dropped()).toBe(1);
  });

  it('keeps going after a handler that throws, on its own queue', async () => {
    let n = 0;
    const w = oneEventPending(async () => {
      n++;
      if (n === 1) throw new Error('first');
    });
    w.fire();
    await turn();
    w.fire();
    await turn();
    expect(n).toBe(2);
  });
});
