/**
 * One chaos run: a schedule played against real processes, step by step, with the invariant checker
 * watching every result.
 *
 * Per step: the faults whose window ends are taken away, the faults of this step are put in place,
 * every guest runs its batch (process faults strike while the batches run), and each result is held
 * against the shadow of acknowledged data (chaos-shadow.ts) and against the faults in place:
 *   - an I/O error is a violation unless a fault in place can cause it (dust, flakey, scsi_debug
 *     DIF/DIX, a corruption caught by PI) — a restarted backend, a paused domain, a reordered event
 *     must stay invisible to the guest;
 *   - data read back must be what was acknowledged (flush semantics for the page cache); a write lost
 *     to drop_writes is the fault's doing, not a violation of pvblk;
 *   - a batch not answered within the timeout is a hung request (the fault's doing after ev-drop);
 *   - every injected corruption: with PI on it must be detected, by the layer that caught it; with PI
 *     off it is counted as silent when the checker finds it;
 *   - at teardown nothing may be left: grants, mappings, ports, XenStore nodes, nemesis timers, held
 *     messages, device-mapper tables, held I/O; and every process exits cleanly.
 *
 * The digest hashes the schedule with everything recorded about its outcome that does not depend on
 * timing: the result class of every operation, the outcome of every fault, the violations and the
 * corruption counts. The same seed gives the same digest.
 */
import { createHash } from 'node:crypto';
import type { LogRecord } from './stack.ts';
import { renderRecord } from './stack.ts';
import { ChaosStack, until, type BatchOutcome } from './chaos-stack.ts';
import {
  FAULT_CLASSES,
  planSteps,
  regions,
  type FaultEvent,
  type FaultKind,
  type PlannedOp,
  type Schedule,
} from './chaos-schedule.ts';
import { Shadow, type BlockVerdict } from './chaos-shadow.ts';
import { domainPath, vbdBackendDir, type HypervisorStatus } from '@pvblk/shared';

export interface Violation {
  kind: string;
  /** `pvblk`, `harness` (the chaos tooling itself), or `fault:<kind>` when the injected fault did it. */
  cause: string;
  step: number | null;
  message: string;
}

export interface Corruptions {
  injected: number;
  detected: number;
  silent: number;
  /** Detected, by the layer that caught it. */
  by: { guest: number; backend: number; device: number };
}

export interface ScheduleResult {
  seed: number;
  digest: string;
  schedule: Schedule;
  faults: Partial<Record<FaultKind, number>>;
  violations: Violation[];
  corruptions: Corruptions;
  /** Timing-dependent figures (not in the digest): rules fired, operations, duration. */
  stats: { ops: number; seconds: number; nemesisInjections: number; writesLostToDrop: number };
}

export interface RunOptions {
  /** Per-step timeout: a batch not answered by then has hung requests. */
  timeoutMs: number;
  /** Full tracing: every step, every injection, the consoles. */
  trace: boolean;
  /** Event (status) lines are printed here; null: none. */
  print: ((line: string) => void) | null;
  attach?: { hypervisorUrl: string; apiUrl: string; dom0Secret: string; toolstackToken: string };
  signal?: AbortSignal;
}

interface ChaosOpResult {
  s: string;
  pi?: { check: string; by: string };
  blocks?: BlockVerdict[];
}

interface GuestState {
  index: number;
  name: string;
  shadow: Shadow;
  disk: { dm: string; scsi: string; sectors: number } | null;
  ring: Record<string, unknown> | null;
}

interface Active {
  ev: FaultEvent;
  idx: number;
  rule?: number;
  layer?: string;
  injSeq?: number;
  /** Bad blocks (dust). */
  bad?: Set<number>;
}

type CorruptionOutcome = { injected: boolean; result: 'detected' | 'silent' | 'unobserved'; layer?: string };

const CHAOS_BLOCK = 4096;
const BACKEND_ROOT = vbdBackendDir(0);
const wait = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The header byte N (1-based) of a chaos-io block's first sector: write id, sector number, seed. */
function headerByte(seed: number, block: number, wid: number, n: number): number {
  const h = Buffer.alloc(12);
  h.writeUInt32LE(wid >>> 0, 0);
  h.writeUInt32LE((block * 8) >>> 0, 4);
  h.writeUInt32LE(seed >>> 0, 8);
  return h[n - 1];
}

export async function runSchedule(s: Schedule, o: RunOptions): Promise<ScheduleResult> {
  return new ChaosRun(s, o).run();
}

class ChaosRun {
  private readonly plan: ReturnType<typeof planSteps>;
  private readonly stack: ChaosStack;
  private readonly guests: GuestState[];
  private readonly violations: Violation[] = [];
  private readonly active: Active[] = [];
  private readonly outcome: { steps: string[][][]; events: string[]; final: string[][] };
  private readonly corr = new Map<number, CorruptionOutcome>();
  private readonly t0 = Date.now();
  private ops = 0;
  /** Faults the nemesis injected, over every hypervisor of the run (a reboot starts a new one). */
  private injections = 0;
  private injBase = 0;
  private writesLostToDrop = 0;
  /** The disks offer discard (ours always do: lbpws=1). */
  private discardSupported = true;
  /** Per guest: blocks where a read showed that writes were lost to drop_writes. */
  private readonly lostBlocks = new Map<number, number>();
  private baseline: Dom0Counts | null = null;
  private step = -1;

  constructor(
    private readonly s: Schedule,
    private readonly o: RunOptions,
  ) {
    this.plan = planSteps(s);
    const names = Array.from({ length: s.guests }, (_, i) => (o.attach ? `chaos${i + 1}` : `g${i + 1}`));
    this.guests = names.map((name, index) => ({
      index,
      name,
      shadow: new Shadow(s.workload.blocks, o.attach ? 'unknown' : 'zeros'),
      disk: null,
      ring: null,
    }));
    this.outcome = { steps: [], events: s.events.map(() => 'pending'), final: [] };
    const persistent = s.backend.persistent ? [] : ['--no-persistent'];
    this.stack = new ChaosStack({
      guests: names,
      disk: s.pi ? 'dif=1 dix=1 lbpws=1' : 'lbpws=1',
      hostArgs: ['--data-path', s.backend.dataPath, ...persistent],
      guestArgs: persistent,
      attach: o.attach,
      onRecord: o.trace ? (c, r) => this.traceRecord(c, r) : undefined,
      onText: o.trace ? (c, l) => o.print?.(`${c.padEnd(10)} | ${l}`) : undefined,
    });
  }

  private traceRecord(child: string, r: LogRecord): void {
    if (r.kmsg !== true && (typeof r.level !== 'number' || r.level < 40)) return;
    const line = renderRecord(r);
    if (line !== null) this.o.print?.(`${child.padEnd(10)} | ${line}`);
  }

  private violate(kind: string, cause: string, message: string, step: number | null = this.step): void {
    this.violations.push({ kind, cause, step, message });
    if (this.o.print) this.o.print(`${this.stamp()} VIOLATION (${cause}) ${kind}: ${message}`);
  }

  private stamp(): string {
    return `${((Date.now() - this.t0) / 1000).toFixed(3).padStart(8)}s [${String(Math.max(this.step, 0)).padStart(3)}/${this.s.steps}]`;
  }

  /** The guest's process went away: its page cache, and what its rings said, with it. */
  private lost(g: GuestState): void {
    g.shadow.guestLost();
    g.ring = null;
  }

  private domid(g: GuestState): number {
    return this.stack.guests.get(g.name)?.domid ?? -1;
  }

  async run(): Promise<ScheduleResult> {
    try {
      await this.stack.start();
      if (!this.stack.attached) {
        this.baseline = await this.dom0Counts();
        // the directories every vbd's backend lives under are made with the first one and kept, as
        // xenstored keeps them: they are not a leak
        for (const p of [
          '/local',
          '/local/domain',
          '/local/domain/0',
          '/local/domain/0/backend',
          BACKEND_ROOT,
        ])
          if (!(await this.xsExists(p))) this.baseline.nodes++;
      }
      await this.stack.hvSend('POST', '/nemesis/seed', { seed: this.s.seed });
      this.injBase = ((await this.stack.hvGet('/nemesis')) as { injections: number }).injections;
      for (const g of this.guests) {
        const p = await this.stack.startGuest(g.name);
        if (!p) throw new Error(`guest ${g.name} did not come up`);
        const d = await this.stack.diskOf(g.name);
        g.disk = { dm: d.disk, scsi: d.disk.replace(/\d+$/, ''), sectors: d.sectors };
        if (this.stack.attached) await this.checkAttachedDisk(g, d.disk);
      }
      if (this.stack.attached) await this.fill();
      for (this.step = 0; this.step < this.s.steps; this.step++) {
        if (this.o.signal?.aborted) throw new Error('interrupted');
        await this.runStep(this.step);
      }
      for (const a of [...this.active]) await this.remove(a);
      await this.verifyAll();
      await this.teardown();
    } catch (e) {
      if (this.o.signal?.aborted) throw e;
      this.violate('run-aborted', 'harness', `the run could not go on: ${(e as Error).message}`);
    } finally {
      await this.stack.stop().catch(() => {});
    }
    return this.result();
  }

  // -------------------------------------------------------------------------------------------
  // steps

  private async runStep(step: number): Promise<void> {
    const lines: string[] = [];
    for (const a of [...this.active])
      if (a.ev.at + Math.max(a.ev.for, 1) === step) lines.push(await this.remove(a));
    const during: Array<() => Promise<string>> = [];
    for (const [idx, ev] of this.s.events.entries()) {
      if (ev.at !== step) continue;
      const r = await this.apply(ev, idx);
      if (typeof r === 'string') lines.push(r);
      else during.push(r);
    }
    const planned = this.plan[step];
    const victim = planned.victimOf !== undefined ? this.s.events[planned.victimOf] : null;
    const timeout = victim?.kind === 'ev-drop' ? Math.min(this.o.timeoutMs, 2500) : this.o.timeoutMs;
    const batches = this.guests.map((g) => this.batch(g, planned.ops[g.index], planned.seq, timeout));
    const interrupted = new Set<number>();
    for (const d of during) lines.push(await d());
    for (const [i, kind] of this.interruptions.entries()) if (kind) interrupted.add(i);
    this.interruptions = [];
    const outcomes = await Promise.all(batches);
    const classes: string[][] = [];
    for (const g of this.guests) {
      const ops = planned.ops[g.index];
      let out = outcomes[g.index];
      // a guest (or the whole host) that went away under a batch: whatever came back is not evidence
      if (interrupted.has(g.index) && out.kind === 'done')
        out = { kind: 'interrupted', why: 'the guest was restarted' };
      classes.push(await this.check(g, ops, out, step));
    }
    this.outcome.steps[step] = classes;
    if (victim) lines.push(await this.victimDone(planned.victimOf!, step));
    for (const a of [...this.active])
      if (FAULT_CLASSES[a.ev.kind].victim && a.ev.at === step) await this.remove(a);
    if (this.o.print && (lines.length > 0 || this.o.trace)) {
      if (this.o.trace) lines.push(`ops ${classes.map((c) => `[${c.join(' ')}]`).join(' ')}`);
      for (const l of lines) this.o.print(`${this.stamp()} ${l.padEnd(44)} ${await this.rings()}`);
    }
  }

  /** Guests whose batch was cut short by a process fault during this step. */
  private interruptions: boolean[] = [];

  private async batch(g: GuestState, ops: PlannedOp[], seq: boolean, timeout: number): Promise<BatchOutcome> {
    if (ops.length === 0) return { kind: 'done', out: { r: [] } };
    const withCandidates = ops.map((op) =>
      op.k === 'r'
        ? { ...op, c: Array.from({ length: op.n! }, (_, i) => g.shadow.candidates(op.b! + i)) }
        : op,
    );
    this.ops += ops.length;
    return this.stack.batch(
      g.name,
      [String(this.s.seed), JSON.stringify(withCandidates), ...(seq ? ['--seq'] : [])],
      timeout,
    );
  }

  // -------------------------------------------------------------------------------------------
  // the checker

  private activeOn(g: GuestState, kind: FaultKind): Active | undefined {
    return this.active.find((a) => a.ev.kind === kind && (a.ev.guest === g.index || kind === 'reboot'));
  }

  /** Can a fault in place make this operation fail with this status? */
  private explains(g: GuestState, op: PlannedOp, r: ChaosOpResult): string | null {
    const write = op.k === 'w' || op.k === 'f' || op.k === 't';
    const flakey = this.activeOn(g, 'flakey-error');
    if (op.k === 't' && r.s === 'notsupp' && !this.discardSupported) return 'no discard on this disk';
    const ioerr = r.s === 'ioerr' || r.s === 'EIO' || r.s === 'short';
    if (flakey && ioerr) {
      const f = String(flakey.ev.params.features);
      if (f === '' || (write ? f.includes('error_writes') : f.includes('error_reads'))) return 'flakey-error';
    }
    const dust = this.activeOn(g, 'dust');
    if (dust && !write && ioerr) {
      for (let i = 0; i < (op.n ?? 0); i++) if (dust.bad?.has(op.b! + i)) return 'dust';
    }
    const sd = this.activeOn(g, 'scsi-debug');
    if (sd && (Number(sd.ev.params.opts) & 0x60) !== 0 && (r.s === 'protection' || ioerr))
      return 'scsi-debug';
    for (const a of this.active) {
      if (a.ev.guest !== g.index || !FAULT_CLASSES[a.ev.kind].corrupts) continue;
      if (r.s === 'protection' && (FAULT_CLASSES[a.ev.kind].victim === 'write') === (op.k === 'w'))
        return a.ev.kind;
    }
    return null;
  }

  private dropping(g: GuestState): boolean {
    return this.activeOn(g, 'flakey-drop') !== undefined;
  }

  /** Holds one guest's results against its shadow; returns the result class of each operation. */
  private async check(g: GuestState, ops: PlannedOp[], out: BatchOutcome, step: number): Promise<string[]> {
    if (out.kind !== 'done') {
      const cls = out.kind === 'hung' ? 'hung' : 'interrupted';
      for (const op of ops) this.uncertain(g, op);
      if (out.kind === 'hung') await this.hung(g, ops, step);
      return ops.map(() => cls);
    }
    const res = (out.out.r as ChaosOpResult[]) ?? [];
    if (out.out.ring) g.ring = out.out.ring as Record<string, unknown>;
    // An fsync covers the writes acknowledged before it was called, not those running beside it in
    // the same batch (they may or may not be in its writeback): it is applied to the shadow first.
    const classes = new Array<string>(ops.length);
    for (const pass of [true, false])
      ops.forEach((op, i) => {
        if ((op.k === 'f') === pass) classes[i] = this.checkOp(g, op, res[i], step);
      });
    return classes;
  }

  private uncertain(g: GuestState, op: PlannedOp): void {
    if (op.k === 'w') for (let i = 0; i < op.n!; i++) g.shadow.writeUncertain(op.b! + i, op.w! + i);
    if (op.k === 't') for (let i = 0; i < op.n!; i++) g.shadow.discardAcked(op.b! + i, false);
  }

  private async hung(g: GuestState, ops: PlannedOp[], step: number): Promise<void> {
    const drop = this.active.find((a) => a.ev.kind === 'ev-drop' && a.ev.guest === g.index);
    const what = `${ops.length} operation(s) of ${g.name} not answered within the timeout`;
    if (drop)
      this.violate('hung-request', 'fault:ev-drop', `${what}: the event was dropped (a lost interrupt)`);
    else this.violate('hung-request', 'pvblk', what);
    // the ring is lost for good: the guest is restarted to go on
    const p = await this.stack.restartGuest(g.name);
    this.lost(g);
    if (!p) throw new Error(`guest ${g.name} did not come back after a hang at step ${step}`);
  }

  private checkOp(g: GuestState, op: PlannedOp, r: ChaosOpResult | undefined, step: number): string {
    if (!r) {
      this.violate('missing-result', 'harness', `no result for an operation of ${g.name}`);
      this.uncertain(g, op);
      return 'missing';
    }
    const cls = r.s === 'ok' ? 'ok' : `${r.s}${r.pi ? `@${r.pi.by}` : ''}`;
    const desc =
      op.k === 'f'
        ? 'fsync'
        : `${{ w: 'write', r: 'read', t: 'discard' }[op.k]} of blocks ${op.b}-${op.b! + op.n! - 1}${op.d === 0 ? ' (buffered)' : ''}`;
    if (r.s !== 'ok') {
      const why = this.explains(g, op, r);
      if (!why)
        this.violate(
          'unexpected-error',
          'pvblk',
          `${g.name}: ${desc} failed (${cls}) with no fault in place that can fail it`,
        );
      if (op.k === 'w' || op.k === 't') this.uncertain(g, op);
      if (op.k === 'f') g.shadow.syncFailed();
      return cls;
    }
    const drop = this.dropping(g);
    switch (op.k) {
      case 'w':
        for (let i = 0; i < op.n!; i++) g.shadow.writeAcked(op.b! + i, op.w! + i, op.d !== 0, drop);
        return drop && op.d !== 0 ? 'ok-dropped' : 'ok';
      case 't':
        for (let i = 0; i < op.n!; i++) g.shadow.discardAcked(op.b! + i, drop);
        return 'ok';
      case 'f':
        g.shadow.synced(drop);
        return 'ok';
      case 'r': {
        const verdicts: string[] = [];
        (r.blocks ?? []).forEach((v, i) => verdicts.push(this.checkBlock(g, op.b! + i, v, step, op.d === 0)));
        const bad = verdicts.filter((v) => v !== 'ok');
        return bad.length ? `ok:${bad.join(',')}` : 'ok';
      }
    }
  }

  /** One block read back: consistent, lost to drop_writes, corrupt (by a fault or not), or wrong. */
  private checkBlock(g: GuestState, b: number, v: BlockVerdict, step: number, viaCache: boolean): string {
    const m = g.shadow.read(b, v, viaCache);
    switch (m.kind) {
      case 'ok':
        return 'ok';
      case 'dropped':
        // reported once per guest at the end: how many acknowledged writes drop_writes threw away
        this.writesLostToDrop += m.wids.length;
        this.lostBlocks.set(g.index, (this.lostBlocks.get(g.index) ?? 0) + 1);
        return 'lost';
      case 'wrong':
        this.violate(
          'wrong-data',
          'pvblk',
          `${g.name} block ${b}: read back ${m.got}; expected ${m.expected}`,
        );
        return 'wrong';
      case 'corrupt': {
        if (m.known) return 'corrupt';
        const ev = this.corruptingEvent(g, b, step);
        if (ev !== null) {
          const e = this.s.events[ev];
          const c = this.corr.get(ev) ?? { injected: true, result: 'unobserved' as const };
          c.result = 'silent';
          this.corr.set(ev, c);
          if (this.s.pi)
            this.violate(
              'undetected-corruption',
              'pvblk',
              `${g.name} block ${b}: ${e.kind} corrupted it (${m.bits} bits) and PI did not catch it`,
            );
          if (FAULT_CLASSES[e.kind].victim === 'write') g.shadow.poison(b, m.near, m.bits, e.kind);
          return 'corrupt';
        }
        this.violate(
          'corrupt-data',
          'pvblk',
          `${g.name} block ${b}: differs by ${m.bits} bits from write ${m.near}, and no fault corrupts it`,
        );
        return 'corrupt';
      }
    }
  }

  /** The corrupting event whose victim is this read (the victim read, or the read-back of a victim write). */
  private corruptingEvent(g: GuestState, b: number, step: number): number | null {
    for (const [idx, e] of this.s.events.entries()) {
      const c = FAULT_CLASSES[e.kind];
      if (!c.corrupts || e.guest !== g.index || Number(e.params.block) !== b) continue;
      if ((c.victim === 'read' && step === e.at) || (c.victim === 'write' && step === e.at + 1)) return idx;
    }
    return null;
  }

  // -------------------------------------------------------------------------------------------
  // faults

  private target(ev: FaultEvent): number {
    return ev.params.target === 'host' ? 0 : this.domid(this.guests[ev.guest]);
  }

  private async rule(a: Active, body: Record<string, unknown>): Promise<void> {
    a.injSeq = ((await this.stack.hvGet('/nemesis')) as { injections: number }).injections;
    a.rule = ((await this.stack.hvSend('POST', '/nemesis/rules', body)) as { id: number }).id;
  }

  private async dm(a: Active, g: GuestState, name: string, table: string): Promise<void> {
    await this.stack.hostSend('POST', `/dm/${g.disk!.dm}`, { name, table: `0 ${g.disk!.sectors} ${table}` });
    a.layer = name;
  }

  /**
   * Puts a fault in place. Returns its status text, or — for a fault that strikes while the batches run
   * — a function the step calls once they are under way.
   */
  private async apply(ev: FaultEvent, idx: number): Promise<string | (() => Promise<string>)> {
    const g = this.guests[ev.guest];
    const a: Active = { ev, idx };
    const p = ev.params;
    const dev = `/dev/${g.disk!.dm}`;
    const name = (t: string) => `${ev.kind} on ${t === 'host' ? 'Dom0' : g.name}`;
    this.outcome.events[idx] = 'applied';
    switch (ev.kind) {
      case 'ev-delay':
        await this.rule(a, {
          action: 'reorder',
          domain: this.target(ev),
          kind: 'ev',
          delay_ms: p.delay_ms,
          probability: p.probability,
          times: -1,
        });
        this.active.push(a);
        return `${name(String(p.target))}: late upcalls ${p.delay_ms} ms, ${p.probability}%`;
      case 'ev-dup':
        await this.rule(a, {
          action: 'duplicate',
          domain: this.target(ev),
          kind: 'ev',
          probability: p.probability,
          times: -1,
        });
        this.active.push(a);
        return `${name(String(p.target))}: doubled upcalls, ${p.probability}%`;
      case 'pw-delay':
        await this.rule(a, {
          action: 'delay',
          domain: this.target(ev),
          kind: 'mw,gw',
          delay_ms: p.delay_ms,
          probability: p.probability,
          times: -1,
        });
        this.active.push(a);
        return `${name(String(p.target))}: page writes held ${p.delay_ms} ms, ${p.probability}%`;
      case 'ev-drop':
        await this.rule(a, { action: 'drop', domain: this.target(ev), kind: 'ev', times: 1 });
        this.active.push(a);
        return `${name(String(p.target))}: the next upcall is lost`;
      case 'pw-reorder':
        await this.rule(a, {
          action: 'reorder',
          domain: this.domid(g),
          kind: 'mw',
          role: 'data',
          delay_ms: p.delay_ms,
          times: 1,
        });
        this.active.push(a);
        return `${name('guest')}: block ${p.block}'s data arrives ${p.delay_ms} ms after its response`;
      case 'bitflip-write':
        await this.rule(a, { action: 'corrupt', domain: 0, role: 'data', bits: p.bits, times: 1 });
        this.active.push(a);
        return `${name('host')}: ${p.bits} bit(s) of block ${p.block} flipped on the way to Dom0`;
      case 'bitflip-read':
        await this.rule(a, {
          action: 'corrupt',
          domain: this.domid(g),
          role: 'data',
          bits: p.bits,
          times: 1,
        });
        this.active.push(a);
        return `${name('guest')}: ${p.bits} bit(s) of block ${p.block} flipped on the way to ${g.name}`;
      case 'pause-guest':
      case 'pause-host': {
        const domid = ev.kind === 'pause-host' ? 0 : this.domid(g);
        await this.stack.hvSend('POST', `/nemesis/domains/${domid}/pause`, { ms: p.ms });
        this.outcome.events[idx] = 'resumed';
        return `${ev.kind}: domain ${domid} paused ${p.ms} ms (vCPUs stopped)`;
      }
      case 'flakey-error':
        await this.dm(
          a,
          g,
          'chaos-flakey',
          `flakey ${dev} 0 0 86400${p.features ? ` ${String(p.features).split(' ').length} ${p.features}` : ''}`,
        );
        this.active.push(a);
        return `dm-flakey on ${g.disk!.dm}: down, ${p.features || 'all I/O fails'}`;
      case 'flakey-drop':
        await this.dm(a, g, 'chaos-flakey', `flakey ${dev} 0 0 86400 1 drop_writes`);
        this.active.push(a);
        return `dm-flakey on ${g.disk!.dm}: down, drop_writes`;
      case 'flakey-corrupt-write':
      case 'flakey-corrupt-read': {
        const dir = ev.kind.endsWith('write') ? 'w' : 'r';
        const block = Number(p.block);
        const wid = this.victimWid(ev);
        const orig = headerByte(this.s.seed, block, wid, Number(p.byte));
        const value = Number(p.value) === orig ? orig ^ 0xff : Number(p.value);
        await this.dm(
          a,
          g,
          'chaos-flakey',
          `flakey ${dev} 0 0 86400 5 corrupt_bio_byte ${p.byte} ${dir} ${value} 0`,
        );
        this.active.push(a);
        return `dm-flakey on ${g.disk!.dm}: corrupt_bio_byte ${p.byte} ${dir} ${value} (block ${block})`;
      }
      case 'dust': {
        await this.dm(a, g, 'chaos-dust', `dust ${dev} 0 ${CHAOS_BLOCK}`);
        a.bad = new Set(String(p.blocks).split(' ').map(Number));
        if (Number(p.quiet))
          await this.stack.hostSend('POST', `/dm/${g.disk!.dm}/chaos-dust/message`, { message: 'quiet' });
        for (const b of a.bad)
          await this.stack.hostSend('POST', `/dm/${g.disk!.dm}/chaos-dust/message`, {
            message: `addbadblock ${b}`,
          });
        await this.stack.hostSend('POST', `/dm/${g.disk!.dm}/chaos-dust/message`, { message: 'enable' });
        this.active.push(a);
        return `dm-dust on ${g.disk!.dm}: bad blocks ${p.blocks}${Number(p.quiet) ? ' (quiet)' : ''}`;
      }
      case 'delay':
        await this.dm(
          a,
          g,
          'chaos-delay',
          `delay ${dev} 0 ${p.read_ms} ${dev} 0 ${p.write_ms} ${dev} 0 ${p.flush_ms}`,
        );
        this.active.push(a);
        return `dm-delay on ${g.disk!.dm}: read ${p.read_ms} ms, write ${p.write_ms} ms, flush ${p.flush_ms} ms`;
      case 'scsi-debug':
        await this.stack.apiSend('POST', `/disks/${g.disk!.scsi}/params`, {
          key: 'every_nth',
          value: String(p.every_nth),
        });
        await this.stack.apiSend('POST', `/disks/${g.disk!.scsi}/params`, {
          key: 'opts',
          value: `0x${Number(p.opts).toString(16)}`,
        });
        this.active.push(a);
        return `scsi_debug ${g.disk!.scsi}: opts=0x${Number(p.opts).toString(16)} every_nth=${p.every_nth}`;
      case 'kill-host-handshake':
      case 'kill-guest-handshake':
        return this.handshake(ev, idx, g);
      default:
        return () => this.strike(ev, idx, g);
    }
  }

  /** The write id the victim sequence of `ev` writes into its block (the read victims' fresh write). */
  private victimWid(ev: FaultEvent): number {
    const step = FAULT_CLASSES[ev.kind].victim === 'write' ? ev.at : ev.at - 1;
    const op = this.plan[step].ops[ev.guest].find((o) => o.k === 'w' && o.b === Number(ev.params.block));
    return op?.w ?? 0;
  }

  /** A process or link fault, while the batches run. */
  private async strike(ev: FaultEvent, idx: number, g: GuestState): Promise<string> {
    await wait(Number(ev.params.after_ms ?? 0));
    const t = Date.now();
    const back = (ok: boolean, what: string) => {
      this.outcome.events[idx] = ok ? 'recovered' : 'not-recovered';
      if (!ok) this.violate('recovery', 'pvblk', `${ev.kind}: ${what} did not come back`);
      return `${ev.kind}: ${ok ? `back in ${((Date.now() - t) / 1000).toFixed(2)}s` : 'NOT back'}`;
    };
    const guestGone = async (signal: NodeJS.Signals | 'cut') => {
      this.interruptions[g.index] = true;
      if (signal === 'cut') {
        const p = this.stack.guests.get(g.name);
        if (p) this.stack.expectExit(p.child);
        await this.stack.hvSend('POST', `/nemesis/domains/${this.domid(g)}/cut`).catch(() => {});
        if (p) await p.child.exited;
      }
      const ok = (await this.stack.restartGuest(g.name, 'SIGKILL')) !== null;
      this.lost(g);
      return ok;
    };
    switch (ev.kind) {
      case 'kill-host':
        await this.stack.restartHost('SIGKILL');
        return back(true, 'the host');
      case 'cut-host': {
        if (this.stack.host) this.stack.expectExit(this.stack.host);
        await this.stack.hvSend('POST', '/nemesis/domains/0/cut');
        await this.stack.host?.exited;
        await this.stack.restartHost('SIGKILL');
        return back(true, 'the host');
      }
      case 'stop-host':
        await this.stack.freeze(this.stack.host!, Number(ev.params.ms));
        this.outcome.events[idx] = 'resumed';
        return `stop-host: SIGSTOP ${ev.params.ms} ms, SIGCONT`;
      case 'stop-guest': {
        const p = this.stack.guests.get(g.name);
        if (p) await this.stack.freeze(p.child, Number(ev.params.ms));
        this.outcome.events[idx] = 'resumed';
        return `stop-guest ${g.name}: SIGSTOP ${ev.params.ms} ms, SIGCONT`;
      }
      case 'kill-guest':
        return back(await guestGone('SIGKILL'), g.name);
      case 'cut-guest':
        return back(await guestGone('cut'), g.name);
      case 'reboot': {
        this.interruptions = this.guests.map(() => true);
        await this.countInjections();
        const ok = await this.stack.reboot();
        for (const x of this.guests) this.lost(x);
        return back(ok, 'the stack');
      }
      default:
        return `${ev.kind}: not a striking fault`;
    }
  }

  /** Restarts a guest and kills the host, or the new guest, in the middle of its handshake. */
  private async handshake(ev: FaultEvent, idx: number, g: GuestState): Promise<string> {
    const t = Date.now();
    const old = this.stack.guests.get(g.name);
    if (old) {
      await this.stack.kill(old.child, 'SIGKILL');
      this.stack.guests.delete(g.name);
      await this.stack.domainGone(old.domid);
    }
    this.lost(g);
    const start = this.stack.startGuest(g.name);
    await wait(Number(ev.params.after_ms));
    if (ev.kind === 'kill-host-handshake') {
      await this.stack.restartHost('SIGKILL');
    } else {
      const c = this.stack.sup.children[this.stack.sup.children.length - 1];
      await this.stack.kill(c, 'SIGKILL');
    }
    let p = await start;
    if (!p) p = await this.stack.restartGuest(g.name);
    const ok = p !== null;
    this.outcome.events[idx] = ok ? 'recovered' : 'not-recovered';
    if (!ok) this.violate('recovery', 'pvblk', `${ev.kind}: ${g.name} did not come up`);
    return `${ev.kind} (${ev.params.after_ms} ms in): ${g.name} ${ok ? `up in ${((Date.now() - t) / 1000).toFixed(2)}s` : 'NOT up'}`;
  }

  /** Takes a fault away; returns its status text. */
  private async remove(a: Active): Promise<string> {
    const i = this.active.indexOf(a);
    if (i >= 0) this.active.splice(i, 1);
    const g = this.guests[a.ev.guest];
    if (a.rule !== undefined) {
      await this.stack.hvSend('DELETE', `/nemesis/rules/${a.rule}`).catch(() => {});
      // what is still in transit arrives before the next step
      await until(
        async () => ((await this.stack.hvGet('/nemesis')) as { timers: number }).timers === 0,
        5000,
      );
    }
    if (a.layer) await this.stack.hostSend('DELETE', `/dm/${g.disk!.dm}/${a.layer}`).catch(() => {});
    if (a.ev.kind === 'scsi-debug') {
      await this.stack.apiSend('POST', `/disks/${g.disk!.scsi}/params`, { key: 'opts', value: '0' });
      await this.stack.apiSend('POST', `/disks/${g.disk!.scsi}/params`, { key: 'every_nth', value: '0' });
    }
    return `${a.ev.kind} removed`;
  }

  /** After a victim step: was the fault injected, and what became of it. */
  private async victimDone(idx: number, step: number): Promise<string> {
    const ev = this.s.events[idx];
    const a = this.active.find((x) => x.idx === idx);
    const g = this.guests[ev.guest];
    let injected = false;
    if (a?.rule !== undefined) {
      const log = (await this.stack.hvGet(`/nemesis/log?since=${a.injSeq ?? 0}`)) as {
        injections: Array<{ rule: number }>;
      };
      injected = log.injections.some((x) => x.rule === a.rule);
    } else if (a?.layer) {
      const dm = (await this.stack.hostSend('GET', '/dm')) as {
        disks: Array<{ disk: string; layers: Array<{ name: string; counters?: Record<string, number> }> }>;
      };
      const l = dm.disks.find((d) => d.disk === g.disk!.dm)?.layers.find((x) => x.name === a.layer);
      injected = (l?.counters?.corrupted ?? 0) > 0;
    }
    if (ev.kind === 'ev-drop') {
      const cls = this.outcome.steps[step]?.[ev.guest]?.[0] ?? '';
      this.outcome.events[idx] = injected ? (cls === 'hung' ? 'hung' : 'not-hung') : 'not-injected';
      if (!injected)
        this.violate('fault-not-injected', 'harness', `ev-drop at step ${step}: no upcall was dropped`);
      return `ev-drop: ${this.outcome.events[idx]}`;
    }
    const c = this.corr.get(idx) ?? { injected, result: 'unobserved' as const };
    c.injected = injected;
    const cls = this.outcome.steps[step]?.[ev.guest]?.[0] ?? '';
    const m = /^protection@(\w+)$/.exec(cls);
    if (m) {
      c.result = 'detected';
      c.layer = m[1];
    }
    this.corr.set(idx, c);
    if (!injected) {
      this.violate('fault-not-injected', 'harness', `${ev.kind} at step ${step}: nothing was corrupted`);
      this.outcome.events[idx] = 'not-injected';
    }
    // a write victim is judged on its read-back, one step later
    if (FAULT_CLASSES[ev.kind].victim === 'read') this.settleCorruption(idx);
    return `${ev.kind}: ${c.result}${c.layer ? ` by the ${c.layer}` : ''}`;
  }

  private settleCorruption(idx: number): void {
    const c = this.corr.get(idx);
    const ev = this.s.events[idx];
    if (!c || !c.injected) return;
    this.outcome.events[idx] = c.result === 'detected' ? `detected@${c.layer}` : c.result;
    if (c.result === 'unobserved')
      this.violate(
        'unobserved-corruption',
        this.s.pi ? 'pvblk' : 'harness',
        `${ev.kind} at step ${ev.at}: corrupted in transit, yet neither detected nor seen in the data`,
        ev.at,
      );
  }

  // -------------------------------------------------------------------------------------------
  // start, end

  /**
   * Attached to a stack this run did not start: its disks are what its host makes (PVBLK_DISK). A
   * schedule for PI on needs a PI disk (and the other way round); discards are expected to work only
   * where the disk offers them. Layers a previous run left are removed.
   */
  private async checkAttachedDisk(g: GuestState, dm: string): Promise<void> {
    const l = (await this.stack.apiSend('GET', '/guests')) as {
      disks: Array<{ guest: string; params: string }>;
    };
    const params = l.disks.find((x) => x.guest === g.name)?.params ?? '';
    const num = (k: string) => Number(new RegExp(`(?:^|\\s)${k}=(\\d+)`).exec(params)?.[1] ?? 0);
    // end-to-end PI needs both: DIX carries the guest's tuples to the HBA, DIF keeps them on the
    // medium. dif=1 alone protects only below the HBA (the host generates the tuples), so a corruption
    // on the way from the guest is not PI's to catch
    const pi = num('dif') > 0 && num('dix') > 0;
    if (pi !== this.s.pi)
      throw new Error(
        `the stack's disk for ${g.name} has ${pi ? '' : 'no '}end-to-end PI (${params}; that needs dif and dix): run with ${pi ? '--pi' : '--no-pi'}`,
      );
    this.discardSupported = num('lbpws') === 1 || (num('lbpu') === 1 && num('lbprz') === 0);
    // the disk is this run's guest's, but the stack's default parameters may inject errors of their
    // own (the seed's opts=34): faults are the schedule's to put, so its disk starts without them
    for (const key of ['opts', 'every_nth'])
      if (num(key) !== 0)
        await this.stack.apiSend('POST', `/disks/${dm.replace(/\d+$/, '')}/params`, { key, value: '0' });
    await this.stack.hostSend('DELETE', `/dm/${dm}`);
  }

  /** Attached to a disk this run did not make: write every block once, so the shadow knows it. */
  private async fill(): Promise<void> {
    const w = this.s.workload;
    for (const g of this.guests) {
      const ops: PlannedOp[] = [];
      for (let b = 0; b < w.blocks; b += 32)
        ops.push({ k: 'w', b, n: Math.min(32, w.blocks - b), w: 1_000_000 + b, d: 1 });
      const out = await this.stack.batch(
        g.name,
        [String(this.s.seed), JSON.stringify(ops), '--seq'],
        this.o.timeoutMs,
      );
      await this.check(g, ops, out, -1);
    }
  }

  /** Reads every block of every guest back (after the last step, every fault removed). */
  private async verifyAll(): Promise<void> {
    this.step = this.s.steps;
    // write victims are judged on their read-back
    for (const [idx, ev] of this.s.events.entries())
      if (FAULT_CLASSES[ev.kind].corrupts && FAULT_CLASSES[ev.kind].victim === 'write')
        this.settleCorruption(idx);
    const reg = regions(this.s.workload);
    for (const g of this.guests) {
      const ops: PlannedOp[] = [];
      for (const [lo, hi, d] of [
        [...reg.direct, 1],
        [...reg.buffered, 0],
      ] as Array<[number, number, 0 | 1]>)
        for (let b = lo; b < hi; b += 32) ops.push({ k: 'r', b, n: Math.min(32, hi - b), d });
      const out = await this.batch(g, ops, true, this.o.timeoutMs);
      this.outcome.final.push(await this.check(g, ops, out, this.s.steps));
    }
    const lost = [...this.lostBlocks.values()].reduce((a, b) => a + b, 0);
    if (lost)
      this.violate(
        'lost-write',
        'fault:flakey-drop',
        `${this.writesLostToDrop} acknowledged write(s) to ${lost} block(s) lost: thrown away by dm-flakey's drop_writes`,
        null,
      );
  }

  private async xsExists(path: string): Promise<boolean> {
    return this.stack.hvGet(`/nemesis/xenstore?path=${encodeURIComponent(path)}`).then(
      () => true,
      () => false,
    );
  }

  private async dom0Counts(): Promise<Dom0Counts> {
    const st = (await this.stack.hvGet('/status')) as HypervisorStatus;
    const d = st.domains.find((x) => x.domid === 0)!;
    return {
      grants: d.grants,
      mappings: d.mappings,
      sharedFrames: d.sharedFrames,
      ports: d.ports,
      nodes: d.xenstore.nodes,
      watches: d.xenstore.watches,
      transactions: d.xenstore.transactions,
    };
  }

  /** Nothing left behind: checked after the guests shut down, then every process stops cleanly. */
  /** Adds what the nemesis injected since `injBase` (a hypervisor we attached to counts from before us). */
  private async countInjections(): Promise<void> {
    const st = (await this.stack.hvGet('/nemesis').catch(() => null)) as { injections: number } | null;
    this.injections += (st?.injections ?? this.injBase) - this.injBase;
    this.injBase = 0;
  }

  private async teardown(): Promise<void> {
    this.step = this.s.steps;
    await this.countInjections();
    const nem = (await this.stack.hvSend('POST', '/nemesis/reset')) as {
      rules: unknown[];
      paused: number[];
      timers: number;
      held: Record<string, { out: number; in: number }>;
    };
    if (nem.rules.length || nem.paused.length || nem.timers || Object.keys(nem.held).length)
      this.violate(
        'leak',
        'pvblk',
        `the nemesis is not idle: ${JSON.stringify({ rules: nem.rules.length, paused: nem.paused, timers: nem.timers, held: nem.held })}`,
      );
    const dm = (await this.stack.hostSend('GET', '/dm')) as {
      disks: Array<{ disk: string; layers: Array<{ name: string; pending: number }> }>;
    };
    for (const g of this.guests) {
      const d = dm.disks.find((x) => x.disk === g.disk?.dm);
      if (d?.layers.length)
        this.violate(
          'leak',
          'pvblk',
          `${d.disk} still has device-mapper layers: ${d.layers.map((l) => l.name).join(', ')}`,
        );
    }
    const domids = this.guests.map((g) => this.domid(g));
    const bad = await this.stack.stopCleanly([...this.stack.guests.values()].map((p) => p.child));
    await this.leaks(domids);
    if (!this.stack.attached) bad.push(...(await this.stack.stopCleanly([this.stack.host, this.stack.hv])));
    for (const b of bad)
      this.violate('crash', 'pvblk', `${b.name} did not exit cleanly on SIGTERM (${b.code})`);
    for (const c of this.stack.crashes)
      this.violate('crash', 'pvblk', `${c.name} exited on its own (${c.code})`);
  }

  /**
   * After the guests shut down: their domains are gone, blkback let go of their vbds, and Dom0's
   * grants, mappings, ports, XenStore nodes and watches are back where they were before any guest
   * existed (a stack of ours; attached to someone else's, only what was ours is checked).
   */
  private async leaks(domids: number[]): Promise<void> {
    const base = this.baseline;
    const settled = await until(async () => {
      const st = (await this.stack.hvGet('/status')) as HypervisorStatus;
      if (st.domains.some((d) => domids.includes(d.domid))) return false;
      const be = (await this.stack.hostSend('GET', '/blkback/rings')) as { vbds: Array<{ vbd: string }> };
      if (be.vbds.some((v) => domids.includes(Number(v.vbd.split('/')[0])))) return false;
      for (const d of domids)
        if ((await this.xsExists(domainPath(d))) || (await this.xsExists(`${BACKEND_ROOT}/${d}`)))
          return false;
      if (!base) return true;
      const now = await this.dom0Counts();
      return (Object.keys(base) as Array<keyof Dom0Counts>).every((k) => now[k] === base[k]);
    }, 10_000);
    if (settled) return;
    const st = (await this.stack.hvGet('/status').catch(() => null)) as HypervisorStatus | null;
    const left = st?.domains.filter((d) => domids.includes(d.domid)).map((d) => d.domid) ?? [];
    const now = base ? await this.dom0Counts().catch(() => null) : null;
    this.violate(
      'leak',
      'pvblk',
      left.length
        ? `domains ${left.join(', ')} still exist after their guests shut down`
        : base
          ? `after the guests went away Dom0 holds ${JSON.stringify(now)}; before they came: ${JSON.stringify(base)}`
          : 'a vbd of a guest that shut down is still there',
    );
  }

  // -------------------------------------------------------------------------------------------
  // status line

  /** Per ring req_prod/req_cons rsp_prod/rsp_cons, in flight; grants and mappings (VOPR-style). */
  private async rings(): Promise<string> {
    try {
      const [hvRings, hostRings, st] = await Promise.all([
        this.stack.hvGet('/nemesis/rings') as Promise<{
          rings: Array<{ domid: number; queue: number; reqProd: number; rspProd: number }>;
        }>,
        this.stack.hostSend('GET', '/blkback/rings') as Promise<{
          vbds: Array<{ vbd: string; rings: Array<{ queue: number; req_cons: number }> }>;
        }>,
        this.stack.hvGet('/status') as Promise<HypervisorStatus>,
      ]);
      const parts: string[] = [];
      for (const g of this.guests) {
        const domid = this.domid(g);
        const front = (g.ring?.queues as Array<{ rspCons: number; inflight: number }> | undefined) ?? [];
        for (const r of hvRings.rings.filter((x) => x.domid === domid)) {
          const back = hostRings.vbds
            .find((v) => v.vbd.startsWith(`${domid}/`))
            ?.rings.find((x) => x.queue === r.queue);
          const f = front[r.queue];
          parts.push(
            `${g.name}/q${r.queue} req ${r.reqProd}/${back?.req_cons ?? '?'} rsp ${r.rspProd}/${f?.rspCons ?? '?'} inflight ${f?.inflight ?? '?'}`,
          );
        }
      }
      const dom0 = st.domains.find((d) => d.domid === 0);
      const grants = st.domains.filter((d) => d.domid !== 0).reduce((n, d) => n + d.grants, 0);
      return `${parts.join('  ') || 'no ring'} | grants ${grants} mapped ${dom0?.mappings ?? '?'}`;
    } catch (e) {
      return `(status unavailable: ${(e as Error).message.slice(0, 60)})`;
    }
  }

  // -------------------------------------------------------------------------------------------
  // result

  private result(): ScheduleResult {
    const faults: Partial<Record<FaultKind, number>> = {};
    for (const e of this.s.events) faults[e.kind] = (faults[e.kind] ?? 0) + 1;
    const corruptions: Corruptions = {
      injected: 0,
      detected: 0,
      silent: 0,
      by: { guest: 0, backend: 0, device: 0 },
    };
    for (const c of this.corr.values()) {
      if (!c.injected) continue;
      corruptions.injected++;
      if (c.result === 'detected') {
        corruptions.detected++;
        const l = c.layer as keyof Corruptions['by'];
        if (l in corruptions.by) corruptions.by[l]++;
      } else if (c.result === 'silent') corruptions.silent++;
    }
    const digestInput = JSON.stringify({
      schedule: this.s,
      outcome: this.outcome,
      violations: this.violations.map((v) => [v.kind, v.cause, v.step]),
      corruptions,
    });
    return {
      seed: this.s.seed,
      digest: createHash('sha256').update(digestInput).digest('hex').slice(0, 16),
      schedule: this.s,
      faults,
      violations: this.violations,
      corruptions,
      stats: {
        ops: this.ops,
        seconds: Math.round((Date.now() - this.t0) / 100) / 10,
        nemesisInjections: this.injections,
        writesLostToDrop: this.writesLostToDrop,
      },
    };
  }
}

interface Dom0Counts {
  grants: number;
  mappings: number;
  sharedFrames: number;
  ports: number;
  nodes: number;
  watches: number;
  transactions: number;
}
