/**
 * fio's submit and reap under iodepth_batch_submit, iodepth_batch_complete_min/max and iodepth_low
 * (fio-reap.ts): the options as fixup_options() leaves them, and the loop's commits, submissions and
 * getevents — the counts fio's `IO depths`, `submit` and `complete` lines are made of.
 */
import { describe, expect, it } from 'vitest';
import { parseFioOptions, fioTakesValue, splitOptions } from '../src/guest/fio-cmdline.ts';
import { ReapLoop, reapOptions, type IodepthBatch } from '../src/guest/fio-reap.ts';
import { usage } from './fio-usage.ts';

const none: IodepthBatch = { submit: null, completeMin: null, completeMax: null, low: null };
const parse = (...args: string[]) =>
  parseFioOptions(splitOptions('fio', ['--name=j', ...args], fioTakesValue).options).jobs[0];

/** A worker for the loop: its depth, its maps, and what it was asked to submit, submission by submission. */
function worker(depth = 0) {
  const stats = {
    depthMap: new Array<number>(7).fill(0),
    submitMap: new Array<number>(7).fill(0),
    completeMap: new Array<number>(7).fill(0),
    totalSubmit: 0,
    totalComplete: 0,
  };
  const w = {
    cur: depth,
    stats,
    submitted: [] as number[][],
    depth: () => w.cur,
    submit: (ios: number[]) => w.submitted.push(ios),
  };
  return w;
}

describe("the options of fio's batches (init.c's fixup_options())", () => {
  it("are off when none is given, and take fio's defaults for those not given when one is", () => {
    expect(reapOptions(none, 32)).toBeNull();
    expect(reapOptions({ ...none, low: 32 }, 32)).toEqual({
      batch: 1,
      completeMin: 1,
      completeMax: 1,
      low: 32,
    });
  });

  it('take a batch or low mark of 0, or past the depth, down to the depth; a maximum below the minimum up to it', () => {
    expect(reapOptions({ ...none, submit: 0, low: 0 }, 16)).toMatchObject({ batch: 16, low: 16 });
    expect(reapOptions({ ...none, submit: 4294967295, low: 40 }, 16)).toMatchObject({ batch: 16, low: 16 });
    expect(reapOptions({ ...none, completeMin: 8, completeMax: 2 }, 16)).toMatchObject({
      completeMin: 8,
      completeMax: 8,
    });
    expect(reapOptions({ ...none, completeMin: 0, completeMax: 0 }, 16)).toMatchObject({
      completeMin: 0,
      completeMax: 0,
    });
  });

  it('are parsed as fio stores an int option: units, aliases, and the low 32 bits of a negative value', () => {
    expect(parse('--iodepth_batch=1k', '--iodepth_low=-3').iodepthBatch).toEqual({
      submit: 1024,
      completeMin: null,
      completeMax: null,
      low: 4294967293,
    });
    // iodepth_batch_submit is iodepth_batch's alias, iodepth_batch_complete iodepth_batch_complete_min's
    expect(
      parse('--iodepth_batch_submit=4', '--iodepth_batch_complete=2', '--iodepth_batch_complete_max=0x10')
        .iodepthBatch,
    ).toEqual({
      submit: 4,
      completeMin: 2,
      completeMax: 16,
      low: null,
    });
    expect(usage(() => parse('--iodepth_batch_complete_max=x'))).toEqual([
      'fio: failed parsing iodepth_batch_complete_max=x',
    ]);
  });
});

describe("fio's submit and reap loop (ReapLoop)", () => {
  it('commits once a batch is queued: counted at the depth, submitted as one', () => {
    const w = worker();
    const loop = new ReapLoop(reapOptions({ ...none, submit: 4 }, 32)!, w, 32);
    for (let i = 0; i < 6; i++) {
      w.cur++;
      loop.queue(i);
    }
    expect(w.submitted).toEqual([[0, 1, 2, 3]]);
    // td_io_commit() at cur_depth 4: 4 I/Os in the 4-7 bucket, one submit of 1-4
    expect(w.stats.depthMap).toEqual([0, 0, 4, 0, 0, 0, 0]);
    expect(w.stats.submitMap).toEqual([0, 1, 0, 0, 0, 0, 0]);
  });

  it('submits what it holds before a getevents waits, without counting it in the depths (the next commit does)', () => {
    const w = worker();
    const loop = new ReapLoop(reapOptions({ ...none, submit: 4 }, 2)!, w, 2);
    // a batch above the depth is the depth: two I/Os are a commit
    w.cur = 1;
    loop.queue(0);
    loop.afterIssue(false);
    expect(loop.waiting).toBe(false);
    w.cur = 2;
    loop.queue(1);
    expect(w.submitted).toEqual([[0, 1]]);
    const depthAfterCommit = [...w.stats.depthMap];
    // one completes and is reaped; one more is queued and the queue is full: the wait submits it
    loop.arrive(() => w.cur--);
    loop.afterIssue(true);
    expect(loop.resume(false)).toBe(true);
    expect(w.cur).toBe(1);
    w.cur = 2;
    loop.queue(2);
    loop.afterIssue(true);
    expect(loop.resume(false)).toBe(false);
    expect(w.submitted).toEqual([[0, 1], [2]]);
    expect(w.stats.depthMap).toEqual(depthAfterCommit);
    expect(w.stats.completeMap).toEqual([0, 1, 0, 0, 0, 0, 0]);
  });

  it("splits a commit where libaio's ring of iocbs wraps, into two submissions (io_uring's is one)", () => {
    for (const [ring, expected] of [
      [
        8,
        [
          [0, 1, 2, 3, 4],
          [5, 6, 7],
          [8, 9],
        ],
      ],
      [
        null,
        [
          [0, 1, 2, 3, 4],
          [5, 6, 7, 8, 9],
        ],
      ],
    ] as const) {
      const w = worker();
      const loop = new ReapLoop(reapOptions({ ...none, submit: 5 }, 8)!, w, ring);
      for (let i = 0; i < 10; i++) {
        w.cur = Math.min(8, w.cur + 1);
        loop.queue(i);
        if (i === 4) for (let k = 0; k < 5; k++) w.cur--;
      }
      expect(w.submitted).toEqual(expected);
    }
  });

  it('reaps at least complete_min and at most complete_max a getevents, again while the queue is deeper than iodepth_low', () => {
    const w = worker(16);
    const loop = new ReapLoop(reapOptions({ ...none, completeMin: 3, completeMax: 5, low: 8 }, 16)!, w, 16);
    let reaped = 0;
    const complete = () => {
      reaped++;
      w.cur--;
    };
    loop.afterIssue(true);
    // two completions are not enough for a getevents of three
    loop.arrive(complete);
    loop.arrive(complete);
    expect(loop.resume(false)).toBe(false);
    expect(reaped).toBe(0);
    for (let i = 0; i < 7; i++) loop.arrive(complete);
    // 9 arrived: a getevents of 5 (the most), then of 4 (at least 3): the depth is 7, not above 8
    expect(loop.resume(false)).toBe(true);
    expect(reaped).toBe(9);
    expect(w.stats.completeMap).toEqual([0, 1, 1, 0, 0, 0, 0]);
    expect(loop.unreaped).toBe(0);
  });

  it('with both complete options 0 waits for one completion after every I/O (io_in_polling())', () => {
    const w = worker(1);
    const loop = new ReapLoop(reapOptions({ ...none, completeMin: 0, completeMax: 0 }, 32)!, w, 32);
    loop.queue(0);
    loop.afterIssue(false);
    expect(loop.waiting).toBe(true);
    expect(loop.resume(false)).toBe(false);
    loop.arrive(() => w.cur--);
    expect(loop.resume(false)).toBe(true);
    expect(w.cur).toBe(0);
  });

  it('reaps everything in flight with one getevents at the end of a pass', () => {
    const w = worker(5);
    const loop = new ReapLoop(reapOptions({ ...none, completeMin: 1 }, 8)!, w, 8);
    loop.waitAll();
    for (let i = 0; i < 4; i++) loop.arrive(() => w.cur--);
    expect(loop.resume(false)).toBe(false);
    loop.arrive(() => w.cur--);
    expect(loop.resume(false)).toBe(true);
    expect(w.cur).toBe(0);
    // one getevents of five, where complete_max is 1
    expect(w.stats.completeMap).toEqual([0, 0, 1, 0, 0, 0, 0]);
  });

  it('before a stall commits what is queued and reaps what completed, a getevents at a time (io_u_quiesce())', () => {
    const w = worker();
    const loop = new ReapLoop(reapOptions({ ...none, submit: 8, completeMax: 2 }, 8)!, w, 8);
    for (let i = 0; i < 3; i++) {
      w.cur++;
      loop.queue(i);
    }
    for (let i = 0; i < 3; i++) loop.arrive(() => w.cur--);
    expect(loop.resume(true)).toBe(true);
    expect(w.submitted).toEqual([[0, 1, 2]]);
    expect(w.cur).toBe(0);
    expect(w.stats.completeMap).toEqual([0, 2, 0, 0, 0, 0, 0]);
    expect(w.stats.depthMap).toEqual([0, 3, 0, 0, 0, 0, 0]);
  });
});
