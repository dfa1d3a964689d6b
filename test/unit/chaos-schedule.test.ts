/**
 * The chaos schedule and the checker's shadow, without processes: a schedule is a pure function of
 * the seed, victims are shaped so one fault meets one operation, bad input is refused by name, and the
 * shadow accepts exactly what flush semantics, failed writes and drop_writes allow.
 */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_WORKLOAD,
  FAULT_CLASSES,
  FAULT_KINDS,
  generateSchedule,
  parseFaultList,
  parseWorkload,
  planSteps,
  validateSchedule,
  type Schedule,
} from '../../src/cli/chaos-schedule.ts';
import { Shadow } from '../../src/cli/chaos-shadow.ts';

const opts = (seed: number, faults = FAULT_KINDS) => ({
  seed,
  pi: true,
  guests: 2,
  steps: 60,
  workload: { ...DEFAULT_WORKLOAD },
  faults,
});

describe('a schedule', () => {
  it('is a pure function of the seed: the same seed, the same faults and operations', () => {
    for (const seed of [1, 2, 99, 123456]) {
      const a = generateSchedule(opts(seed));
      const b = generateSchedule(opts(seed));
      expect(b).toEqual(a);
      expect(planSteps(b)).toEqual(planSteps(a));
    }
    // what the generator makes, the validator takes back unchanged (--print-schedule | --schedule)
    for (let seed = 1; seed <= 300; seed++) {
      const s = generateSchedule(opts(seed));
      expect(validateSchedule(JSON.parse(JSON.stringify(s)))).toEqual(s);
    }
    const seen = new Set([1, 2, 3, 4, 5, 6].map((s) => JSON.stringify(generateSchedule(opts(s)).events)));
    expect(seen.size).toBe(6);
  });

  it('keeps the last steps fault-free and exclusive faults apart', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const s = generateSchedule(opts(seed));
      const spans = s.events.map((e) => ({ e, from: e.at - 1, to: e.at + Math.max(e.for, 3) }));
      for (const x of s.events) expect(x.at + x.for).toBeLessThanOrEqual(s.steps - 3);
      for (const [i, a] of spans.entries())
        for (const b of spans.slice(i + 1)) {
          const ca = FAULT_CLASSES[a.e.kind];
          const cb = FAULT_CLASSES[b.e.kind];
          if ((ca.exclusive || cb.exclusive) && a.e.for + b.e.for > 0) {
            const overlap = a.e.at < b.e.at + Math.max(b.e.for, 1) && b.e.at < a.e.at + Math.max(a.e.for, 1);
            expect(overlap, `seed ${seed}: ${a.e.kind}@${a.e.at} and ${b.e.kind}@${b.e.at}`).toBe(false);
          }
        }
    }
  });

  it('gives a corrupting fault one operation of one guest to hit: a fresh write, or a read of one', () => {
    let victims = 0;
    for (let seed = 1; seed <= 100; seed++) {
      const s = generateSchedule(opts(seed, parseFaultList('bitflip-write,bitflip-read,pw-reorder')));
      const plan = planSteps(s);
      for (const [idx, e] of s.events.entries()) {
        victims++;
        const step = plan[e.at];
        expect(step.victimOf).toBe(idx);
        expect(step.seq).toBe(true);
        const b = Number(e.params.block);
        expect(step.ops[e.guest]).toEqual([
          FAULT_CLASSES[e.kind].victim === 'write'
            ? { k: 'w', b, n: 1, w: expect.any(Number), d: 1 }
            : { k: 'r', b, n: 1, d: 1 },
        ]);
        for (const [g, ops] of step.ops.entries()) if (g !== e.guest) expect(ops).toEqual([]);
        if (FAULT_CLASSES[e.kind].victim === 'read')
          expect(plan[e.at - 1].ops[e.guest][0]).toMatchObject({ k: 'w', b, n: 1, d: 1 });
        else expect(plan[e.at + 1].ops[e.guest]).toEqual([{ k: 'r', b, n: 1, d: 1 }]);
      }
    }
    expect(victims).toBeGreaterThan(50);
  });

  it('writes each block with a write id never used before', () => {
    const plan = planSteps(generateSchedule(opts(7)));
    for (let g = 0; g < 2; g++) {
      const ids = plan.flatMap((st) =>
        st.ops[g].filter((o) => o.k === 'w').flatMap((o) => Array.from({ length: o.n! }, (_, i) => o.w! + i)),
      );
      expect(new Set(ids).size).toBe(ids.length);
    }
  });
});

describe('bad input', () => {
  it('refuses an unknown fault kind, naming it; accepts kinds and groups', () => {
    expect(() => parseFaultList('kill-host,frobnicate')).toThrow(/unknown fault kind "frobnicate"/);
    expect(parseFaultList('disk')).toEqual([
      'scsi-debug',
      'dust',
      'flakey-error',
      'flakey-drop',
      'flakey-corrupt-write',
      'flakey-corrupt-read',
      'delay',
    ]);
    expect(parseFaultList('none')).toEqual([]);
    expect(parseFaultList('reboot,kill-host')).toEqual(['kill-host', 'reboot']);
  });

  it('refuses a workload out of range, naming the key', () => {
    expect(() => parseWorkload('qd=99')).toThrow(/qd must be 1-32 \(got 99\)/);
    expect(() => parseWorkload('colour=3')).toThrow(/unknown key "colour"/);
    expect(() => parseWorkload('read=0,write=0,buffered=0,flush=0,discard=0')).toThrow(
      /every operation weight is 0/,
    );
    expect(parseWorkload('qd=4,blocks=64').qd).toBe(4);
    expect(() => parseWorkload('read=1,read=2')).toThrow(/read is given twice/);
    expect(() => parseFaultList(',,')).toThrow(/the list is empty \(use "none"/);
  });

  it('refuses a malformed schedule, naming what is wrong', () => {
    const good = generateSchedule(opts(3));
    const bad = (patch: (s: Record<string, unknown>) => void) => {
      const s = JSON.parse(JSON.stringify(good)) as Record<string, unknown>;
      patch(s);
      try {
        validateSchedule(s);
        return 'accepted';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(validateSchedule(JSON.parse(JSON.stringify(good)))).toEqual(good);
    expect(bad((s) => (s.version = 2))).toMatch(/malformed schedule: version must be 1/);
    expect(bad((s) => (s.extra = 1))).toMatch(/unknown field "extra"/);
    expect(bad((s) => (s.events = [{ at: 5, kind: 'meteor', guest: 0, for: 0, params: {} }]))).toMatch(
      /event 0: unknown fault kind "meteor"/,
    );
    expect(bad((s) => (s.events = [{ at: 500, kind: 'kill-host', guest: 0, for: 0, params: {} }]))).toMatch(
      /event 0: at must be an integer 1-58/,
    );
    expect(bad((s) => (s.events = [{ at: 5, kind: 'dust', guest: 0, for: 0, params: {} }]))).toMatch(
      /event 0: dust needs for ≥ 1/,
    );
    expect(bad((s) => (s.events = [{ at: 5, kind: 'kill-host', guest: 7, for: 0, params: {} }]))).toMatch(
      /event 0: guest must be an integer 0-1/,
    );
    expect(bad((s) => (s.events = [{ at: 5, kind: 'bitflip-read', guest: 0, for: 0, params: {} }]))).toMatch(
      /bitflip-read needs params.block/,
    );
    expect(bad((s) => ((s.workload as Record<string, number>).maxlen = 999))).toMatch(
      /workload: maxlen must be 1-32/,
    );
    expect(bad((s) => ((s.backend as Record<string, string>).dataPath = 'dma'))).toMatch(/backend.dataPath/);
    expect(
      bad(
        (s) =>
          (s.events = [
            { at: 5, kind: 'ev-dup', guest: 0, for: 2, params: { target: 'host', probability: 101 } },
          ]),
      ),
    ).toMatch(/event 0: params.probability must be an integer 0-100/);
    expect(() => validateSchedule(good as Schedule, ['dust'])).toThrow(/is not available here/);
    // each kind's parameters: a pause with no length would be a pause for good, a dust with no blocks
    // would abort half-way
    const one = (kind: string, params: Record<string, unknown>, len = 2) =>
      bad((s) => (s.events = [{ at: 5, kind, guest: 0, for: len, params }]));
    expect(one('pause-host', {}, 0)).toMatch(/event 0: pause-host needs params.ms \(it takes ms\)/);
    expect(one('stop-guest', { after_ms: 5 }, 0)).toMatch(/stop-guest needs params.ms/);
    expect(one('dust', { quiet: 0 })).toMatch(/dust needs params.blocks/);
    expect(one('dust', { blocks: '3 x' })).toMatch(/params.blocks must be block numbers/);
    expect(one('kill-host', { after_ms: 5, colour: 1 }, 0)).toMatch(/kill-host takes no params.colour/);
    expect(one('ev-dup', { target: 'moon', probability: 5 })).toMatch(
      /params.target must be "guest" or "host"/,
    );
    expect(one('flakey-error', { features: 'explode' })).toMatch(/params.features must be empty or any of/);
  });
});

describe('the shadow of acknowledged data', () => {
  it('holds an acknowledged O_DIRECT write: the read must return it', () => {
    const s = new Shadow(8);
    s.writeAcked(1, 5, true, false);
    expect(s.read(1, 5)).toEqual({ kind: 'ok' });
    s.writeAcked(1, 6, true, false);
    expect(s.read(1, 5)).toMatchObject({ kind: 'wrong', got: 'write 5', expected: 'write 6' });
    expect(s.read(2, 0)).toEqual({ kind: 'ok' });
  });

  it('lets a failed write land or not, even torn, and then holds what was read', () => {
    const s = new Shadow(8);
    s.writeAcked(1, 5, true, false);
    s.writeUncertain(1, 6);
    expect(s.read(1, { t: [5, 5, 6, 6, 6, 6, 6, 6] })).toEqual({ kind: 'ok' });
    expect(s.read(1, { t: [5, 5, 6, 6, 6, 6, 6, 6] })).toEqual({ kind: 'ok' });
    expect(s.read(1, 6).kind).toBe('wrong');
  });

  it('keeps flush semantics for the page cache: only fsynced data must survive the guest', () => {
    const s = new Shadow(8);
    s.writeAcked(3, 7, false, false);
    expect(s.read(3, 7)).toEqual({ kind: 'ok' });
    s.guestLost();
    expect(s.read(3, 0)).toEqual({ kind: 'ok' }); // never synced: the old data is fine
    s.writeAcked(3, 8, false, false);
    s.synced(false);
    s.guestLost();
    expect(s.read(3, 0)).toMatchObject({ kind: 'wrong', expected: 'write 8' });
    expect(s.candidates(3)).toEqual([8]);
  });

  it('charges drop_writes with the writes it threw away, and a dropped write that shows up to pvblk', () => {
    const s = new Shadow(8);
    s.writeAcked(2, 4, true, false);
    s.writeAcked(2, 9, true, true);
    expect(s.candidates(2).sort()).toEqual([4, 9]);
    expect(s.read(2, 4)).toEqual({ kind: 'dropped', wids: [9] });
    const t = new Shadow(8);
    t.writeAcked(2, 9, true, true);
    expect(t.read(2, 9)).toMatchObject({ kind: 'wrong', got: 'write 9, which drop_writes threw away' });
  });

  it('does not take a read through the page cache for what the disk holds (seeds 458, 474)', () => {
    // drop_writes ate the writeback of write 9: the page is clean in the cache, the disk has write 4
    const s = new Shadow(8);
    s.writeAcked(1, 4, true, false);
    s.writeAcked(1, 9, false, false);
    s.synced(true);
    expect(s.read(1, 9, true)).toEqual({ kind: 'ok' });
    s.guestLost();
    expect(s.read(1, 4, false)).toEqual({ kind: 'ok' });
  });

  it('lets a discarded block read as zeros or as before; a failed fsync as written or not', () => {
    const s = new Shadow(8);
    s.writeAcked(4, 3, true, false);
    s.discardAcked(4, false);
    expect(s.read(4, 0)).toEqual({ kind: 'ok' });
    s.writeAcked(5, 11, false, false);
    s.syncFailed();
    expect(s.read(5, 0)).toEqual({ kind: 'ok' });
  });

  it('reports a corruption with its bits, and knows a poisoned block again', () => {
    const s = new Shadow(8);
    s.writeAcked(6, 2, true, false);
    expect(s.read(6, { x: 1, near: 2 })).toEqual({ kind: 'corrupt', bits: 1, near: 2, known: false });
    s.poison(6, 2, 1, 'bitflip-write');
    expect(s.read(6, { x: 1, near: 2 })).toMatchObject({ known: true });
  });
});
