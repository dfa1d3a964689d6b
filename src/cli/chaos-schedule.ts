/**
 * A chaos schedule: which faults strike, where and when, and the workload they strike — a pure function
 * of the seed (and the options), so that a seed replays the same run. Times are workload progress, not
 * wall clock: the workload runs in steps (one batch of operations per guest, all answered before the
 * next), and every fault is anchored to a step: it is put in place before step `at` and taken away
 * before step `at + for`. What a fault does to the timing of a run changes nothing that is recorded.
 *
 * Faults that corrupt (a flipped bit, a reordered page write, dm-flakey's corrupt_bio_byte) and the
 * event drop get a *victim*: the steps around them are rewritten so that one guest does one operation
 * alone — a fresh write, or a read of a block just written — and the fault has exactly one thing to hit.
 * Their outcome is then as deterministic as the rest.
 */
import { Prng } from '@pvblk/hypervisor';
import { PvblkError } from '@pvblk/shared';

/** Every fault kind, by where it acts. */
export const FAULT_GROUPS = {
  nemesis: [
    'ev-delay',
    'ev-dup',
    'ev-drop',
    'pw-delay',
    'pw-reorder',
    'bitflip-write',
    'bitflip-read',
    'pause-guest',
    'pause-host',
    'cut-guest',
    'cut-host',
  ],
  process: [
    'kill-host',
    'stop-host',
    'kill-guest',
    'stop-guest',
    'kill-host-handshake',
    'kill-guest-handshake',
    'reboot',
  ],
  disk: [
    'scsi-debug',
    'dust',
    'flakey-error',
    'flakey-drop',
    'flakey-corrupt-write',
    'flakey-corrupt-read',
    'delay',
  ],
} as const;

export type FaultKind = (typeof FAULT_GROUPS)[keyof typeof FAULT_GROUPS][number];
export const FAULT_KINDS: readonly FaultKind[] = Object.values(FAULT_GROUPS).flat() as FaultKind[];

/** What a kind is, for the generator and the checker. */
export interface FaultClass {
  /** Needs the controller to own the processes (not available against a stack it did not start). */
  process: boolean;
  /** Has a victim: the steps around it are one operation by one guest. */
  victim: 'write' | 'read' | null;
  /** Corrupts data: counted in corruptions injected/detected/silent. */
  corrupts: boolean;
  /** Stays for a window of steps; others strike once. */
  window: boolean;
  /** Must not overlap another exclusive fault (it changes the stack the others act on). */
  exclusive: boolean;
  /** How often the generator draws it, relative to the others. */
  weight: number;
}

export const FAULT_CLASSES: Record<FaultKind, FaultClass> = {
  'ev-delay': { process: false, victim: null, corrupts: false, window: true, exclusive: false, weight: 6 },
  'ev-dup': { process: false, victim: null, corrupts: false, window: true, exclusive: false, weight: 6 },
  'ev-drop': { process: false, victim: 'write', corrupts: false, window: false, exclusive: true, weight: 2 },
  'pw-delay': { process: false, victim: null, corrupts: false, window: true, exclusive: false, weight: 6 },
  'pw-reorder': { process: false, victim: 'read', corrupts: true, window: false, exclusive: true, weight: 4 },
  'bitflip-write': {
    process: false,
    victim: 'write',
    corrupts: true,
    window: false,
    exclusive: true,
    weight: 6,
  },
  'bitflip-read': {
    process: false,
    victim: 'read',
    corrupts: true,
    window: false,
    exclusive: true,
    weight: 6,
  },
  'pause-guest': {
    process: false,
    victim: null,
    corrupts: false,
    window: false,
    exclusive: false,
    weight: 4,
  },
  'pause-host': { process: false, victim: null, corrupts: false, window: false, exclusive: false, weight: 4 },
  'cut-guest': { process: false, victim: null, corrupts: false, window: false, exclusive: true, weight: 3 },
  'cut-host': { process: true, victim: null, corrupts: false, window: false, exclusive: true, weight: 3 },
  'kill-host': { process: true, victim: null, corrupts: false, window: false, exclusive: true, weight: 5 },
  'stop-host': { process: true, victim: null, corrupts: false, window: false, exclusive: false, weight: 4 },
  'kill-guest': { process: true, victim: null, corrupts: false, window: false, exclusive: true, weight: 4 },
  'stop-guest': { process: true, victim: null, corrupts: false, window: false, exclusive: false, weight: 4 },
  'kill-host-handshake': {
    process: true,
    victim: null,
    corrupts: false,
    window: false,
    exclusive: true,
    weight: 2,
  },
  'kill-guest-handshake': {
    process: true,
    victim: null,
    corrupts: false,
    window: false,
    exclusive: true,
    weight: 2,
  },
  reboot: { process: true, victim: null, corrupts: false, window: false, exclusive: true, weight: 1 },
  'scsi-debug': { process: false, victim: null, corrupts: false, window: true, exclusive: true, weight: 4 },
  dust: { process: false, victim: null, corrupts: false, window: true, exclusive: true, weight: 4 },
  'flakey-error': { process: false, victim: null, corrupts: false, window: true, exclusive: true, weight: 4 },
  'flakey-drop': { process: false, victim: null, corrupts: false, window: true, exclusive: true, weight: 4 },
  'flakey-corrupt-write': {
    process: false,
    victim: 'write',
    corrupts: true,
    window: false,
    exclusive: true,
    weight: 4,
  },
  'flakey-corrupt-read': {
    process: false,
    victim: 'read',
    corrupts: true,
    window: false,
    exclusive: true,
    weight: 4,
  },
  delay: { process: false, victim: null, corrupts: false, window: true, exclusive: true, weight: 4 },
};

/** The workload's mix: weights of operation kinds, batch size, working set, largest operation. */
export interface WorkloadSpec {
  read: number;
  write: number;
  buffered: number;
  flush: number;
  discard: number;
  /** Operations per guest per step, at most (a step draws 1..qd). */
  qd: number;
  /** Working set in 4 KiB blocks: three quarters direct I/O, one quarter through the page cache. */
  blocks: number;
  /** Largest operation, in blocks. */
  maxlen: number;
}

export const DEFAULT_WORKLOAD: Readonly<WorkloadSpec> = Object.freeze({
  read: 35,
  write: 35,
  buffered: 15,
  flush: 8,
  discard: 7,
  qd: 8,
  blocks: 256,
  maxlen: 8,
});

const WORKLOAD_LIMITS: Record<keyof WorkloadSpec, [number, number]> = {
  read: [0, 1000],
  write: [0, 1000],
  buffered: [0, 1000],
  flush: [0, 1000],
  discard: [0, 1000],
  qd: [1, 32],
  blocks: [16, 2048],
  maxlen: [1, 32],
};

/** `--workload read=40,write=40,qd=4,…`: unknown keys and values out of range are refused by name. */
export function parseWorkload(s: string): WorkloadSpec {
  const w: WorkloadSpec = { ...DEFAULT_WORKLOAD };
  if (s.trim() === '' || s === 'default') return w;
  const seen = new Set<string>();
  for (const part of s.split(',')) {
    const m = /^([a-z]+)=(\d+)$/.exec(part.trim());
    if (!m) throw new PvblkError('EUSAGE', `--workload: "${part}" is not key=number`);
    const key = m[1] as keyof WorkloadSpec;
    if (!Object.hasOwn(WORKLOAD_LIMITS, key))
      throw new PvblkError(
        'EUSAGE',
        `--workload: unknown key "${m[1]}" (known: ${Object.keys(WORKLOAD_LIMITS).join(', ')})`,
      );
    if (seen.has(key)) throw new PvblkError('EUSAGE', `--workload: ${key} is given twice`);
    seen.add(key);
    const v = Number(m[2]);
    const [lo, hi] = WORKLOAD_LIMITS[key];
    if (v < lo || v > hi) throw new PvblkError('EUSAGE', `--workload: ${key} must be ${lo}-${hi} (got ${v})`);
    w[key] = v;
  }
  if (w.read + w.write + w.buffered + w.flush + w.discard === 0)
    throw new PvblkError('EUSAGE', '--workload: every operation weight is 0');
  if (w.maxlen > w.blocks / 4) throw new PvblkError('EUSAGE', '--workload: maxlen must be at most blocks/4');
  return w;
}

export function formatWorkload(w: WorkloadSpec): string {
  return (Object.keys(WORKLOAD_LIMITS) as Array<keyof WorkloadSpec>).map((k) => `${k}=${w[k]}`).join(',');
}

/** `--faults kill-host,dust,nemesis,…`: kinds and group names; unknown ones refused by name. */
export function parseFaultList(s: string): FaultKind[] {
  const out = new Set<FaultKind>();
  // an empty list is a mistake more often than a wish: "none" says it
  if (s.split(',').every((x) => x.trim() === ''))
    throw new PvblkError('EUSAGE', '--faults: the list is empty (use "none" for a run without faults)');
  for (const raw of s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    if (raw === 'all') FAULT_KINDS.forEach((k) => out.add(k));
    else if (raw === 'none') continue;
    else if (Object.hasOwn(FAULT_GROUPS, raw))
      FAULT_GROUPS[raw as keyof typeof FAULT_GROUPS].forEach((k) => out.add(k));
    else if ((FAULT_KINDS as readonly string[]).includes(raw)) out.add(raw as FaultKind);
    else
      throw new PvblkError(
        'EUSAGE',
        `--faults: unknown fault kind "${raw}" (kinds: ${FAULT_KINDS.join(', ')}; groups: all, none, ${Object.keys(FAULT_GROUPS).join(', ')})`,
      );
  }
  return FAULT_KINDS.filter((k) => out.has(k));
}

/** One fault of a schedule. */
export interface FaultEvent {
  /** Put in place before this step. */
  at: number;
  kind: FaultKind;
  /** Index of the guest it targets (guest-side faults), or of the guest whose disk it hits. */
  guest: number;
  /** Steps it stays (windows); 0 for a fault that strikes once. */
  for: number;
  /** Kind-specific knobs (delays, probabilities, blocks, opts bits…), drawn from the seed. */
  params: Record<string, number | string>;
}

/** How blkback moves data, drawn from the seed unless fixed: the faults meet every data path. */
export interface BackendSpec {
  dataPath: 'map' | 'copy';
  persistent: boolean;
}

export interface Schedule {
  version: 1;
  seed: number;
  pi: boolean;
  guests: number;
  steps: number;
  workload: WorkloadSpec;
  backend: BackendSpec;
  events: FaultEvent[];
}

/** One operation of a step, as planned (reads get their candidates from the shadow at run time). */
export interface PlannedOp {
  k: 'w' | 'r' | 'f' | 't';
  b?: number;
  n?: number;
  /** First write id (block i gets w + i). */
  w?: number;
  d?: 0 | 1;
}

export interface PlannedStep {
  /** Per guest: the operations of this step. */
  ops: PlannedOp[][];
  /** Run them one after the other (counting faults need a deterministic command order). */
  seq: boolean;
  /** The victim step of this event, if any. */
  victimOf?: number;
}

/** Steps per second of `--duration`: a nominal rate, so the same duration means the same steps everywhere. */
export const STEPS_PER_SECOND = 20;

export interface ScheduleOptions {
  seed: number;
  pi: boolean;
  guests: number;
  steps: number;
  workload: WorkloadSpec;
  faults: readonly FaultKind[];
  backend?: Partial<BackendSpec>;
}

/** Steps a victim sequence occupies around `at`: a prime (reads), the victim, a check read (writes). */
function victimSpan(c: FaultClass): { before: number; after: number } {
  if (c.victim === 'read') return { before: 1, after: 1 };
  if (c.victim === 'write') return { before: 0, after: 2 };
  return { before: 0, after: 0 };
}

/** Draws a schedule from the seed. */
export function generateSchedule(o: ScheduleOptions): Schedule {
  const rng = new Prng(o.seed).fork('schedule');
  const events: FaultEvent[] = [];
  const kinds = o.faults;
  if (kinds.length > 0 && o.steps >= 8) {
    const wanted = 1 + rng.below(Math.max(1, Math.floor(o.steps / 10)));
    const weights = Object.fromEntries(kinds.map((k) => [k, FAULT_CLASSES[k].weight])) as Record<
      FaultKind,
      number
    >;
    // the last steps stay fault-free: the run ends on a stack that has recovered
    const last = o.steps - 3;
    const busy: Array<{ from: number; to: number; exclusive: boolean; victim: boolean }> = [];
    for (let tries = 0; events.length < wanted && tries < wanted * 20; tries++) {
      const kind = rng.weighted(weights);
      const c = FAULT_CLASSES[kind];
      const span = victimSpan(c);
      const at = rng.between(2 + span.before, last - span.after - 1);
      const len = c.window ? rng.between(2, Math.max(2, Math.min(8, Math.floor(o.steps / 5)))) : 0;
      const from = at - span.before;
      const to = Math.max(at + len, at + span.after) + 1;
      const isVictim = c.victim !== null;
      const clash = busy.some(
        (b) =>
          from < b.to &&
          b.from < to &&
          (c.exclusive || b.exclusive || isVictim || b.victim || (c.window && b.exclusive)),
      );
      if (clash || to > last) continue;
      busy.push({ from, to, exclusive: c.exclusive, victim: isVictim });
      events.push({ at, kind, guest: rng.below(o.guests), for: len, params: drawParams(kind, rng, o) });
    }
    events.sort((a, b) => a.at - b.at || FAULT_KINDS.indexOf(a.kind) - FAULT_KINDS.indexOf(b.kind));
  }
  const b = new Prng(o.seed).fork('backend');
  const backend: BackendSpec = {
    dataPath: o.backend?.dataPath ?? (b.below(4) === 0 ? 'copy' : 'map'),
    persistent: o.backend?.persistent ?? b.below(4) !== 0,
  };
  return {
    version: 1,
    seed: o.seed,
    pi: o.pi,
    guests: o.guests,
    steps: o.steps,
    workload: { ...o.workload },
    backend,
    events,
  };
}

/** The direct-I/O region and the page-cache region of the working set, in blocks. */
export function regions(w: WorkloadSpec): { direct: [number, number]; buffered: [number, number] } {
  const d = Math.floor((w.blocks * 3) / 4);
  return { direct: [0, d], buffered: [d, w.blocks] };
}

function drawParams(kind: FaultKind, rng: Prng, o: ScheduleOptions): FaultEvent['params'] {
  const w = o.workload;
  const { direct } = regions(w);
  switch (kind) {
    case 'ev-delay':
      return {
        target: rng.pick(['guest', 'host']),
        delay_ms: rng.between(1, 30),
        probability: rng.between(10, 60),
      };
    case 'ev-dup':
      return { target: rng.pick(['guest', 'host']), probability: rng.between(10, 60) };
    case 'pw-delay':
      return {
        target: rng.pick(['guest', 'host']),
        delay_ms: rng.between(1, 20),
        probability: rng.between(10, 50),
      };
    case 'ev-drop':
      return { target: rng.pick(['guest', 'host']), block: rng.between(direct[0], direct[1] - 1) };
    case 'pw-reorder':
      return { delay_ms: rng.between(100, 250), block: rng.between(direct[0], direct[1] - 2) };
    case 'bitflip-write':
    case 'bitflip-read':
      return { block: rng.between(direct[0], direct[1] - 2), bits: rng.between(1, 3) };
    case 'pause-guest':
    case 'pause-host':
      return { ms: rng.between(20, 400) };
    case 'cut-guest':
    case 'cut-host':
    case 'kill-host':
    case 'kill-guest':
    case 'reboot':
      return { after_ms: rng.between(0, 40) };
    case 'stop-host':
    case 'stop-guest':
      return { after_ms: rng.between(0, 40), ms: rng.between(50, 600) };
    case 'kill-host-handshake':
    case 'kill-guest-handshake':
      return { after_ms: rng.between(0, 400) };
    case 'scsi-debug': {
      // opts bits whose effect does not depend on timing: recovered errors, transport errors and
      // host busy are retried by sd; DIF/DIX errors fail the command with a PI error (PI disks only)
      const choices = o.pi ? [0x8, 0x10, 0x8000, 0x20, 0x40] : [0x8, 0x10, 0x8000];
      return { opts: rng.pick(choices), every_nth: rng.between(2, 12) };
    }
    case 'dust': {
      const n = rng.between(1, 3);
      const blocks: number[] = [];
      while (blocks.length < n) {
        const b = rng.between(0, w.blocks - 1);
        if (!blocks.includes(b)) blocks.push(b);
      }
      return { blocks: blocks.join(' '), quiet: rng.below(2) };
    }
    case 'flakey-error':
      return { features: rng.pick(['error_reads', 'error_writes', 'error_reads error_writes', '']) };
    case 'flakey-drop':
      return {};
    case 'flakey-corrupt-write':
    case 'flakey-corrupt-read':
      // a byte of the first sector's header (write id, block, sector, seed), whose value the
      // controller knows: the replacement is chosen to differ from it at run time
      return {
        block: rng.between(direct[0], direct[1] - 2),
        byte: rng.between(1, 12),
        value: rng.between(0, 255),
      };
    case 'delay':
      return { read_ms: rng.between(0, 40), write_ms: rng.between(0, 40), flush_ms: rng.between(0, 40) };
  }
}

/**
 * The operations of every step, drawn from the seed and shaped around the events: victims, and
 * sequential steps while a counting fault (scsi_debug every_nth) is in place.
 */
export function planSteps(s: Schedule): PlannedStep[] {
  const rng = new Prng(s.seed).fork('workload');
  const w = s.workload;
  const reg = regions(w);
  const nextWid = Array.from({ length: s.guests }, () => 1);
  const steps: PlannedStep[] = [];
  const draw = (g: number): PlannedOp[] => {
    const ops: PlannedOp[] = [];
    const used = new Set<number>();
    const n = rng.between(1, w.qd);
    const take = (lo: number, hi: number): { b: number; n: number } | null => {
      for (let tries = 0; tries < 8; tries++) {
        const len = rng.between(1, w.maxlen);
        const b = rng.between(lo, hi - len);
        let free = true;
        for (let i = b; i < b + len; i++) if (used.has(i)) free = false;
        if (!free) continue;
        for (let i = b; i < b + len; i++) used.add(i);
        return { b, n: len };
      }
      return null;
    };
    for (let i = 0; i < n; i++) {
      const kind = rng.weighted({
        read: w.read,
        write: w.write,
        buffered: w.buffered,
        flush: w.flush,
        discard: w.discard,
      });
      if (kind === 'flush') {
        if (!ops.some((o) => o.k === 'f')) ops.push({ k: 'f' });
        continue;
      }
      const buffered = kind === 'buffered';
      const r = buffered ? reg.buffered : reg.direct;
      const at = take(r[0], r[1]);
      if (!at) continue;
      if (kind === 'discard') ops.push({ k: 't', ...at });
      else if (kind === 'read') ops.push({ k: 'r', ...at, d: 1 });
      else {
        // buffered: a write or a read through the page cache, as often
        const write = !buffered || rng.below(2) === 0;
        if (write) {
          ops.push({ k: 'w', ...at, w: nextWid[g], d: buffered ? 0 : 1 });
          nextWid[g] += at.n;
        } else ops.push({ k: 'r', ...at, d: 0 });
      }
    }
    return ops;
  };
  for (let i = 0; i < s.steps; i++)
    steps.push({ ops: Array.from({ length: s.guests }, (_, g) => draw(g)), seq: false });
  // shape the steps around the events
  s.events.forEach((e, idx) => {
    const c = FAULT_CLASSES[e.kind];
    if (e.kind === 'scsi-debug') for (let i = e.at; i < e.at + e.for; i++) steps[i].seq = true;
    if (!c.victim) return;
    const only = (at: number, ops: PlannedOp[]) => {
      steps[at] = { ops: Array.from({ length: s.guests }, (_, g) => (g === e.guest ? ops : [])), seq: true };
    };
    const b = Number(e.params.block);
    const wid = () => {
      const v = nextWid[e.guest];
      nextWid[e.guest] += 1;
      return v;
    };
    if (c.victim === 'write') {
      only(e.at, [{ k: 'w', b, n: 1, w: wid(), d: 1 }]);
      steps[e.at].victimOf = idx;
      // read it back (a corrupted write is only visible there)
      only(e.at + 1, [{ k: 'r', b, n: 1, d: 1 }]);
      only(e.at + 2, []);
    } else {
      // a fresh write, so the block carries PI; the victim read follows in the next step
      only(e.at - 1, [
        { k: 'w', b, n: 1, w: wid(), d: 1 },
        { k: 'r', b: b + 1, n: 1, d: 1 },
      ]);
      only(e.at, [{ k: 'r', b, n: 1, d: 1 }]);
      steps[e.at].victimOf = idx;
      only(e.at + 1, []);
    }
  });
  return steps;
}

const EVENT_FIELDS = ['at', 'kind', 'guest', 'for', 'params'];

/**
 * The parameters each fault kind reads (drawParams above writes exactly these): required ones must
 * be there, no other may be — a schedule that leaves one out would run a different fault (a pause
 * with no length is a pause for good) or abort half-way.
 */
const KIND_PARAMS: Record<FaultKind, { required: string[]; optional?: string[] }> = {
  'ev-delay': { required: ['target', 'delay_ms', 'probability'] },
  'ev-dup': { required: ['target', 'probability'] },
  'pw-delay': { required: ['target', 'delay_ms', 'probability'] },
  'ev-drop': { required: ['target', 'block'] },
  'pw-reorder': { required: ['delay_ms', 'block'] },
  'bitflip-write': { required: ['block', 'bits'] },
  'bitflip-read': { required: ['block', 'bits'] },
  'pause-guest': { required: ['ms'] },
  'pause-host': { required: ['ms'] },
  'cut-guest': { required: ['after_ms'] },
  'cut-host': { required: ['after_ms'] },
  'kill-host': { required: ['after_ms'] },
  'kill-guest': { required: ['after_ms'] },
  reboot: { required: ['after_ms'] },
  'stop-host': { required: ['after_ms', 'ms'] },
  'stop-guest': { required: ['after_ms', 'ms'] },
  'kill-host-handshake': { required: ['after_ms'] },
  'kill-guest-handshake': { required: ['after_ms'] },
  'scsi-debug': { required: ['opts', 'every_nth'] },
  dust: { required: ['blocks'], optional: ['quiet'] },
  'flakey-error': { required: ['features'] },
  'flakey-drop': { required: [] },
  'flakey-corrupt-write': { required: ['block', 'byte', 'value'] },
  'flakey-corrupt-read': { required: ['block', 'byte', 'value'] },
  delay: { required: ['read_ms', 'write_ms', 'flush_ms'] },
};

/** Checks a schedule read from a file (`--schedule`): anything malformed is refused by name. */
export function validateSchedule(raw: unknown, allowed: readonly FaultKind[] = FAULT_KINDS): Schedule {
  const bad = (what: string): never => {
    throw new PvblkError('EUSAGE', `malformed schedule: ${what}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('not a JSON object');
  const s = raw as Record<string, unknown>;
  for (const k of Object.keys(s))
    if (!['version', 'seed', 'pi', 'guests', 'steps', 'workload', 'backend', 'events'].includes(k))
      bad(`unknown field "${k}"`);
  if (s.version !== 1) bad(`version must be 1 (got ${JSON.stringify(s.version)})`);
  const int = (v: unknown, name: string, lo: number, hi: number): number =>
    typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi
      ? v
      : bad(`${name} must be an integer ${lo}-${hi}`);
  const seed = int(s.seed, 'seed', 0, 0xffffffff);
  if (typeof s.pi !== 'boolean') bad('pi must be true or false');
  const guests = int(s.guests, 'guests', 1, 8);
  const steps = int(s.steps, 'steps', 4, 100000);
  if (typeof s.workload !== 'object' || s.workload === null) bad('workload must be an object');
  let workload: WorkloadSpec;
  try {
    workload = parseWorkload(
      Object.entries(s.workload as Record<string, unknown>)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    );
  } catch (e) {
    return bad((e as Error).message.replace(/^EUSAGE: --workload: /, 'workload: '));
  }
  const be = s.backend as Record<string, unknown> | undefined;
  if (typeof be !== 'object' || be === null) bad('backend must be an object {dataPath, persistent}');
  if (be!.dataPath !== 'map' && be!.dataPath !== 'copy') bad('backend.dataPath must be "map" or "copy"');
  if (typeof be!.persistent !== 'boolean') bad('backend.persistent must be true or false');
  for (const k of Object.keys(be!))
    if (k !== 'dataPath' && k !== 'persistent') bad(`backend: unknown field "${k}"`);
  const backend = { dataPath: be!.dataPath as 'map' | 'copy', persistent: be!.persistent as boolean };
  if (!Array.isArray(s.events)) bad('events must be an array');
  const events = (s.events as unknown[]).map((e, i): FaultEvent => {
    if (typeof e !== 'object' || e === null) bad(`event ${i} is not an object`);
    const ev = e as Record<string, unknown>;
    for (const k of Object.keys(ev)) if (!EVENT_FIELDS.includes(k)) bad(`event ${i}: unknown field "${k}"`);
    if (typeof ev.kind !== 'string' || !(FAULT_KINDS as readonly string[]).includes(ev.kind))
      bad(`event ${i}: unknown fault kind ${JSON.stringify(ev.kind)}`);
    if (!allowed.includes(ev.kind as FaultKind))
      bad(`event ${i}: fault kind ${ev.kind} is not available here`);
    const at = int(ev.at, `event ${i}: at`, 1, steps - 2);
    const len = int(ev.for, `event ${i}: for`, 0, steps - at);
    if (FAULT_CLASSES[ev.kind as FaultKind].window && len === 0) bad(`event ${i}: ${ev.kind} needs for ≥ 1`);
    const guest = int(ev.guest, `event ${i}: guest`, 0, guests - 1);
    if (typeof ev.params !== 'object' || ev.params === null || Array.isArray(ev.params))
      bad(`event ${i}: params must be an object`);
    const params = ev.params as Record<string, unknown>;
    for (const [k, v] of Object.entries(params))
      if (typeof v !== 'number' && typeof v !== 'string')
        bad(`event ${i}: params.${k} must be a number or a string`);
    const spec = KIND_PARAMS[ev.kind as FaultKind];
    for (const k of spec.required)
      if (params[k] === undefined)
        bad(`event ${i}: ${ev.kind} needs params.${k} (it takes ${spec.required.join(', ') || 'none'})`);
    for (const k of Object.keys(params))
      if (!spec.required.includes(k) && !(spec.optional ?? []).includes(k))
        bad(`event ${i}: ${ev.kind} takes no params.${k}`);
    const ranges: Record<string, [number, number]> = {
      probability: [0, 100],
      delay_ms: [1, 600_000],
      ms: [1, 600_000],
      after_ms: [0, 60_000],
      bits: [1, 64],
      every_nth: [-1_000_000, 1_000_000],
      byte: [1, 12],
      value: [0, 255],
      block: [0, workload.blocks - 1],
      quiet: [0, 1],
      read_ms: [0, 600_000],
      write_ms: [0, 600_000],
      flush_ms: [0, 600_000],
      opts: [0, 0xffffff],
    };
    for (const [k, [lo, hi]] of Object.entries(ranges))
      if (params[k] !== undefined) int(params[k], `event ${i}: params.${k}`, lo, hi);
    if (params.target !== undefined && params.target !== 'guest' && params.target !== 'host')
      bad(`event ${i}: params.target must be "guest" or "host"`);
    if (params.blocks !== undefined) {
      const list = String(params.blocks).trim().split(/\s+/);
      if (!list.every((b) => /^\d+$/.test(b) && Number(b) < workload.blocks))
        bad(`event ${i}: params.blocks must be block numbers 0-${workload.blocks - 1} separated by spaces`);
    }
    if (params.features !== undefined) {
      const known = ['error_reads', 'error_writes'];
      const words = String(params.features).split(/\s+/).filter(Boolean);
      if (!words.every((f) => known.includes(f)))
        bad(`event ${i}: params.features must be empty or any of ${known.join(', ')}`);
    }
    const c = FAULT_CLASSES[ev.kind as FaultKind];
    const direct = regions(workload);
    if (
      c.victim &&
      (typeof params.block !== 'number' ||
        params.block < direct.direct[0] ||
        params.block > direct.direct[1] - 2)
    )
      bad(
        `event ${i}: ${ev.kind} needs params.block, a block of the direct region (0-${direct.direct[1] - 2})`,
      );
    return { at, kind: ev.kind as FaultKind, guest, for: len, params: params as FaultEvent['params'] };
  });
  return { version: 1, seed, pi: s.pi as boolean, guests, steps, workload, backend, events };
}
