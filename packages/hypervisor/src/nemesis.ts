/**
 * The nemesis: fault injection in the broker's delivery path. It is the hypervisor's `Interposer`
 * (every message to a domain passes it) and its inbound seam (every message from a domain), installed
 * only while it has something to do — with no rule, no paused domain and nothing held, the hypervisor
 * delivers directly and pays nothing.
 *
 * Rules (fault_attr knobs, see nemesis-attr.ts) decide per message, in rule order, the first that fires
 * winning:
 *   delay      hold this message AND everything after it to the same domain for `delay_ms`: pure
 *              latency, the order of the domain's stream is kept (a slow link);
 *   reorder    hold only this message for `delay_ms`; what follows overtakes it. On a page write this
 *              is a memory-ordering violation — the write becomes visible after the event that
 *              follows it — which ring.h's protocol cannot survive for data (a stale page is read);
 *              the checker attributes what follows to the fault;
 *   drop       the message is lost (an event: a lost interrupt, which hangs the ring for good — the
 *              broker thinks it delivered the upcall and waits for an EOI that never comes);
 *   duplicate  delivered twice (a spurious interrupt; an idempotent page write);
 *   corrupt    flip `bits` bits of page contents in a copy of what this one receiver gets — never in
 *              the sender's buffer nor in the broker's authoritative frame: the other parties see
 *              the right bytes. With the default role `data`, only bytes a blkif request moves, on
 *              their way (to the backend for a write, to the frontend for a read): a memory
 *              corruption that end-to-end PI must catch.
 * Filters: `domain` (the receiver), `port` (events), `ref` (the grant ref of the page a write, map or
 * copy belongs to, in its granter's table), `kind` (wire message types: ev, mw, gw, ok, err,
 * xs_watch, unmapped) and `role` (data, pi, indirect, ring — from the blkif tracer).
 *
 * Besides rules: `pause` holds a domain's traffic both ways, as if its vCPUs stopped (nothing it sends
 * is served, nothing for it is delivered) until `resume`; `cut` closes its connection (a guest is then
 * destroyed; Dom0 loses its session state and its process exits).
 *
 * To decide a corruption or a reorder on a backend-bound page write whose request is not published
 * yet (a frontend writes data into a persistent grant before the ring slot), everything for the
 * receiver is held to the end of the current turn while such a rule is armed: the slot and req_prod
 * written in the same turn are decoded by then, and the receiver's stream keeps its order.
 */
import { PvblkError, type HypervisorMessage, type ClientMessage } from '@pvblk/shared';
import type { Domain } from './core/domain.ts';
import type { Envelope, Hypervisor, HypervisorOptions } from './core/hypervisor.ts';
import { FaultAttr, parseFaultAttr, Prng, type FaultAttrSpec } from './nemesis-attr.ts';
import { BlkifTracer, type PageRole, type PageUse } from './nemesis-blkif.ts';

export const NEMESIS_ACTIONS = ['delay', 'reorder', 'drop', 'duplicate', 'corrupt'] as const;
export type NemesisAction = (typeof NEMESIS_ACTIONS)[number];
export const MESSAGE_KINDS = ['ev', 'mw', 'gw', 'ok', 'err', 'xs_watch', 'unmapped'] as const;
export type MessageKind = (typeof MESSAGE_KINDS)[number];
export const PAGE_ROLES: readonly PageRole[] = ['data', 'pi', 'indirect', 'ring'];
/** WebSocket close code of a connection the nemesis cut. */
export const CLOSE_NEMESIS_CUT = 4600;
/** Longest delay or pause a rule may ask for. */
export const MAX_DELAY_MS = 600_000;
/** Entries kept in the injection log. */
const LOG_KEEP = 1000;
/**
 * Messages a paused domain may send before its connection is cut: a paused domain's vCPUs would not
 * run at all, so a peer that keeps sending is not modelled, only bounded (the connection's own
 * input bound, as for a socket that is not read).
 */
export const MAX_HELD_INBOUND = 16_384;
/**
 * Messages held for one receiver (delay, pause) or reordered at once, in all: past it, what is held
 * for that receiver is delivered in order at once — the fault is cut short, memory stays bounded.
 */
export const MAX_HELD_OUTBOUND = 65_536;

export interface NemesisMatch {
  domain?: number;
  port?: number;
  ref?: number;
  kind?: MessageKind[];
  role?: PageRole;
}

export interface NemesisRuleSpec {
  action: NemesisAction;
  match: NemesisMatch;
  attr: FaultAttrSpec;
  delayMs: number;
  bits: number;
}

interface Rule extends NemesisRuleSpec {
  id: number;
  fa: FaultAttr;
  matched: number;
}

/** One injected fault, as the log keeps it (rule 0: a pause or a cut asked for directly). */
export interface Injection {
  seq: number;
  /** Milliseconds since the nemesis was created. */
  ms: number;
  rule: number;
  action: NemesisAction | 'pause' | 'cut';
  to: number;
  kind: string;
  port?: number;
  /** For page contents: the granter, the ref, the role of the page and where the bits were flipped. */
  granter?: number;
  ref?: number;
  role?: PageRole;
  op?: 'read' | 'write' | null;
  offset?: number;
  bits?: number[];
  delayMs?: number;
}

type Send = (env: Envelope) => void;
interface Held {
  env: Envelope;
  send: Send;
  judged: boolean;
}
interface Gate {
  queue: Held[];
  until: number;
  paused: boolean;
  timer: NodeJS.Timeout | null;
  immediate: NodeJS.Immediate | null;
  inbound: Array<[Domain, ClientMessage, (d: Domain, m: ClientMessage) => void]>;
}

const RULE_FIELDS = new Set([
  'action',
  'domain',
  'port',
  'ref',
  'kind',
  'role',
  'probability',
  'interval',
  'times',
  'space',
  'verbose',
  'delay_ms',
  'bits',
]);

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

/** A piece of page contents a message carries, with the request use of its page. */
interface PagePiece {
  granter: Domain;
  ref: number;
  /** Offset of `bytes` within the page. */
  off: number;
  bytes: Uint8Array;
  use: PageUse | undefined;
  /** The receiver is the page's granter (the frontend): data for a read travels this way. */
  toGranter: boolean;
  /** Replaces the bytes in a clone of the message. */
  patch(msg: HypervisorMessage, bytes: Buffer): HypervisorMessage;
}

export class Nemesis {
  readonly tracer: BlkifTracer;
  private rules: Rule[] = [];
  private nextRule = 1;
  private readonly gates = new Map<Domain, Gate>();
  /** Reordered messages in transit: their timers and what delivers them. */
  private readonly reordered = new Map<NodeJS.Timeout, () => void>();
  private rng: Prng;
  private seed: number;
  private seq = 0;
  private readonly log: Injection[] = [];
  private readonly started = Date.now();
  readonly counters = { delivered: 0, held: 0, dropped: 0, duplicated: 0, corrupted: 0, reordered: 0 };

  constructor(
    private readonly hv: Hypervisor,
    private readonly logFn: NonNullable<HypervisorOptions['log']> = () => {},
    seed = 1,
  ) {
    this.tracer = new BlkifTracer(hv);
    this.seed = seed >>> 0;
    this.rng = new Prng(this.seed);
  }

  // -------------------------------------------------------------------------------------------
  // control

  /** Reseeds the generator of rules added from now on (and of bit positions). */
  setSeed(seed: number): void {
    if (!isInt(seed, 0, 0xffffffff)) throw new PvblkError('EINVAL', `seed must be an integer 0-4294967295`);
    this.seed = seed;
    this.rng = new Prng(seed);
  }

  /** Checks a rule given as JSON (flat, debugfs-like keys); refuses anything wrong by name. */
  parseRule(raw: unknown): NemesisRuleSpec {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw new PvblkError('EINVAL', 'a rule is a JSON object');
    const r = raw as Record<string, unknown>;
    for (const k of Object.keys(r))
      if (!RULE_FIELDS.has(k))
        throw new PvblkError('EINVAL', `unknown rule field "${k}" (known: ${[...RULE_FIELDS].join(', ')})`);
    const action = r.action;
    if (typeof action !== 'string' || !(NEMESIS_ACTIONS as readonly string[]).includes(action))
      throw new PvblkError(
        'EINVAL',
        `unknown fault action ${JSON.stringify(action)} (known: ${NEMESIS_ACTIONS.join(', ')})`,
      );
    const match: NemesisMatch = {};
    let d: Domain | undefined;
    if (r.domain !== undefined) {
      if (!isInt(r.domain, 0, 0x7fef)) throw new PvblkError('EINVAL', 'domain must be a domid (0-32751)');
      d = this.hv.domains.get(r.domain);
      if (!d) throw new PvblkError('ESRCH', `the filter names no domain: domain ${r.domain} does not exist`);
      match.domain = r.domain;
    }
    if (r.port !== undefined) {
      if (!isInt(r.port, 1, 0xffff)) throw new PvblkError('EINVAL', 'port must be an integer 1-65535');
      if (d && !d.ports.has(r.port))
        throw new PvblkError('EINVAL', `domain ${d.domid} has no event-channel port ${r.port}`);
      match.port = r.port;
    }
    if (r.ref !== undefined) {
      if (!isInt(r.ref, 0, 0xffffffff)) throw new PvblkError('EINVAL', 'ref must be a grant ref');
      match.ref = r.ref;
    }
    if (r.kind !== undefined) {
      const kinds = typeof r.kind === 'string' ? r.kind.split(',') : r.kind;
      if (!Array.isArray(kinds) || kinds.length === 0)
        throw new PvblkError('EINVAL', 'kind must be a message kind or a list of them');
      for (const k of kinds)
        if (typeof k !== 'string' || !(MESSAGE_KINDS as readonly string[]).includes(k))
          throw new PvblkError(
            'EINVAL',
            `unknown message kind ${JSON.stringify(k)} (known: ${MESSAGE_KINDS.join(', ')})`,
          );
      match.kind = kinds as MessageKind[];
    }
    if (r.role !== undefined) {
      if (typeof r.role !== 'string' || !(PAGE_ROLES as readonly string[]).includes(r.role))
        throw new PvblkError(
          'EINVAL',
          `unknown page role ${JSON.stringify(r.role)} (known: ${PAGE_ROLES.join(', ')})`,
        );
      match.role = r.role as PageRole;
    }
    let delayMs = 0;
    if (action === 'delay' || action === 'reorder') {
      if (!isInt(r.delay_ms, 1, MAX_DELAY_MS))
        throw new PvblkError('EINVAL', `${action} needs delay_ms, an integer 1-${MAX_DELAY_MS}`);
      delayMs = r.delay_ms;
    } else if (r.delay_ms !== undefined) {
      throw new PvblkError('EINVAL', `delay_ms applies to delay and reorder, not ${action}`);
    }
    let bits = 0;
    if (action === 'corrupt') {
      const pageKinds: MessageKind[] = ['mw', 'gw', 'ok'];
      const bad = match.kind?.find((k) => !pageKinds.includes(k));
      if (bad)
        throw new PvblkError(
          'EINVAL',
          `corrupt changes page contents: kind ${bad} carries none (use mw, gw or ok)`,
        );
      if (r.bits !== undefined && !isInt(r.bits, 1, 64))
        throw new PvblkError('EINVAL', 'bits must be an integer 1-64');
      bits = (r.bits as number | undefined) ?? 1;
      match.role ??= 'data';
    } else if (r.bits !== undefined) {
      throw new PvblkError('EINVAL', `bits applies to corrupt, not ${action}`);
    }
    return { action: action as NemesisAction, match, attr: parseFaultAttr(r), delayMs, bits };
  }

  addRule(raw: unknown): number {
    const spec = this.parseRule(raw);
    const id = this.nextRule++;
    this.rules.push({
      ...spec,
      id,
      fa: new FaultAttr(spec.attr, this.rng.fork(`rule-${id}`), `nemesis/${id}-${spec.action}`),
      matched: 0,
    });
    this.update();
    return id;
  }

  removeRule(id: number): void {
    const i = this.rules.findIndex((r) => r.id === id);
    if (i < 0) throw new PvblkError('ENOENT', `no rule ${id}`);
    this.rules.splice(i, 1);
    this.update();
  }

  clearRules(): void {
    this.rules = [];
    this.update();
  }

  private domain(domid: number): Domain {
    const d = this.hv.domains.get(domid);
    if (!d) throw new PvblkError('ESRCH', `no domain ${domid}`);
    return d;
  }

  /** Stops a domain's traffic both ways (as if its vCPUs stopped) for `ms`, or until resume. */
  pause(domid: number, ms?: number): void {
    if (ms !== undefined && !isInt(ms, 1, MAX_DELAY_MS))
      throw new PvblkError('EINVAL', `pause ms must be an integer 1-${MAX_DELAY_MS}`);
    const d = this.domain(domid);
    const g = this.gate(d);
    g.paused = true;
    this.record({ rule: 0, action: 'pause', to: domid, kind: '*', delayMs: ms });
    this.logFn('warn', { domid, ms }, `nemesis: domain ${domid} paused`);
    if (ms !== undefined) {
      if (g.timer) clearTimeout(g.timer);
      g.until = Date.now() + ms;
      g.timer = setTimeout(() => {
        g.timer = null;
        this.resume(domid);
      }, ms);
    }
    this.update();
  }

  resume(domid: number): void {
    const d = this.hv.domains.get(domid);
    const g = d && this.gates.get(d);
    if (!d || !g || !g.paused) return;
    g.paused = false;
    g.until = 0;
    if (g.timer) clearTimeout(g.timer);
    g.timer = null;
    this.logFn('warn', { domid }, `nemesis: domain ${domid} resumed`);
    this.release(d, g);
    for (const [from, m, next] of g.inbound.splice(0)) next(from, m);
    this.update();
  }

  /** Closes a domain's connection, as a broken link would. */
  cut(domid: number): void {
    const d = this.domain(domid);
    if (!d.session) throw new PvblkError('ENOTCONN', `domain ${domid} is not connected`);
    this.record({ rule: 0, action: 'cut', to: domid, kind: '*' });
    this.logFn('warn', { domid }, `nemesis: cutting the connection of domain ${domid}`);
    const g = this.gates.get(d);
    if (g) this.dropGate(d, g);
    d.session.close(CLOSE_NEMESIS_CUT, 'connection cut by the nemesis');
    this.update();
  }

  /** Removes every rule, resumes every domain and delivers whatever is held, in order. */
  reset(): void {
    this.rules = [];
    // reordered messages still in transit arrive now
    for (const [t, deliver] of [...this.reordered]) {
      clearTimeout(t);
      this.reordered.delete(t);
      deliver();
    }
    for (const d of [...this.gates.keys()]) {
      if (this.gates.get(d)?.paused) this.resume(d.domid);
      // resume() may have retired the gate already
      const g = this.gates.get(d);
      if (!g) continue;
      g.paused = false;
      g.until = 0;
      if (g.timer) clearTimeout(g.timer);
      g.timer = null;
      this.release(d, g);
    }
    this.update();
  }

  status() {
    return {
      seed: this.seed,
      installed: this.hv.interposer !== null,
      rules: this.rules.map((r) => ({
        id: r.id,
        action: r.action,
        match: r.match,
        probability: r.attr.probability,
        interval: r.attr.interval,
        times: r.fa.times,
        space: r.fa.space,
        verbose: r.attr.verbose,
        ...(r.delayMs ? { delay_ms: r.delayMs } : {}),
        ...(r.bits ? { bits: r.bits } : {}),
        matched: r.matched,
        fired: r.fa.failures,
      })),
      paused: [...this.gates].filter(([, g]) => g.paused).map(([d]) => d.domid),
      held: Object.fromEntries(
        [...this.gates].map(([d, g]) => [d.domid, { out: g.queue.length, in: g.inbound.length }]),
      ),
      /** Timers the nemesis owns (delays, reorders, timed pauses): 0 when it is idle. */
      timers: this.timerCount(),
      counters: { ...this.counters },
      requestsDecoded: this.tracer.decoded,
      injections: this.seq,
    };
  }

  /** The injection log from sequence number `since` on (at most the last 1000 are kept). */
  injections(since = 0): Injection[] {
    return this.log.filter((e) => e.seq > since);
  }

  private timerCount(): number {
    let n = this.reordered.size;
    for (const g of this.gates.values()) n += (g.timer ? 1 : 0) + (g.immediate ? 1 : 0);
    return n;
  }

  /** Installs the seams while there is something to do; removes them (the direct path) when not. */
  private update(): void {
    for (const [d, g] of this.gates) {
      if (d.dying || !this.hv.domains.has(d.domid)) this.dropGate(d, g);
      else if (!g.paused && g.queue.length === 0 && !g.timer && !g.immediate && g.inbound.length === 0)
        this.gates.delete(d);
    }
    const active = this.rules.length > 0 || this.gates.size > 0 || this.reordered.size > 0;
    this.hv.interposer = active ? this.interpose : null;
    this.hv.inbound = active ? this.admit : null;
  }

  private dropGate(d: Domain, g: Gate): void {
    if (g.timer) clearTimeout(g.timer);
    if (g.immediate) clearImmediate(g.immediate);
    g.queue = [];
    g.inbound = [];
    this.gates.delete(d);
  }

  private gate(d: Domain): Gate {
    let g = this.gates.get(d);
    if (!g) {
      g = { queue: [], until: 0, paused: false, timer: null, immediate: null, inbound: [] };
      this.gates.set(d, g);
    }
    return g;
  }

  // -------------------------------------------------------------------------------------------
  // the seams

  private readonly admit = (
    from: Domain,
    m: ClientMessage,
    next: (d: Domain, m: ClientMessage) => void,
  ): void => {
    const g = this.gates.get(from);
    if (g?.paused) {
      if (g.inbound.length >= MAX_HELD_INBOUND) {
        this.logFn(
          'warn',
          { domid: from.domid, held: g.inbound.length },
          `nemesis: domain ${from.domid} sent more than ${MAX_HELD_INBOUND} messages while paused; cutting its connection`,
        );
        this.cut(from.domid);
        return;
      }
      g.inbound.push([from, m, next]);
      return;
    }
    next(from, m);
  };

  private readonly interpose = (env: Envelope, send: Send): void => {
    this.tracer.observe(env);
    const to = env.to;
    let g = this.gates.get(to);
    if (!g && this.holdsTurn(to)) g = this.gate(to);
    if (g) {
      g.queue.push({ env, send, judged: false });
      this.counters.held++;
      if (g.queue.length > MAX_HELD_OUTBOUND) return this.overflow(to, g);
      this.schedule(to, g);
      return;
    }
    this.judge(to, { env, send, judged: false }, null);
  };

  /** A corrupt or reorder rule that may hit this receiver: its stream waits for the turn's end. */
  private holdsTurn(to: Domain): boolean {
    for (const r of this.rules) {
      if ((r.action === 'corrupt' || r.action === 'reorder') && r.fa.times !== 0) {
        if (r.match.domain === undefined || r.match.domain === to.domid) return true;
      }
    }
    return false;
  }

  private schedule(d: Domain, g: Gate): void {
    if (g.paused || g.immediate) return;
    const wait = g.until - Date.now();
    if (wait > 0) {
      if (!g.timer)
        g.timer = setTimeout(() => {
          g.timer = null;
          this.release(d, g);
          this.update();
        }, wait);
      return;
    }
    g.immediate = setImmediate(() => {
      g.immediate = null;
      this.release(d, g);
      this.update();
    });
  }

  /** Too much held for one receiver: the delay or pause ends now and everything goes, in order. */
  private overflow(d: Domain, g: Gate): void {
    this.logFn(
      'warn',
      { domid: d.domid, held: g.queue.length },
      `nemesis: more than ${MAX_HELD_OUTBOUND} messages held for domain ${d.domid}; delivering them now`,
    );
    g.until = 0;
    if (g.timer) clearTimeout(g.timer);
    g.timer = null;
    const queue = g.queue.splice(0);
    for (const h of queue) this.pass(h.send, h.env);
    this.update();
  }

  /** Delivers what the gate holds, in order, until it closes again (a delay fired) or is empty. */
  private release(d: Domain, g: Gate): void {
    while (g.queue.length > 0 && !g.paused && g.until <= Date.now()) {
      const h = g.queue.shift()!;
      this.judge(d, h, g);
    }
    if (g.queue.length > 0) this.schedule(d, g);
  }

  /** Decides the fate of one message and carries it out. */
  private judge(to: Domain, h: Held, g: Gate | null): void {
    if (h.judged) return this.pass(h.send, h.env);
    h.judged = true;
    let pieces: PagePiece[] | null = null;
    const lazyPieces = () => (pieces ??= this.pieces(h.env));
    for (const r of this.rules) {
      const hits = this.matches(r, h.env, lazyPieces);
      if (!hits) continue;
      r.matched++;
      const size = h.env.msg.t === 'mw' || h.env.msg.t === 'gw' ? h.env.msg.data.length : 1;
      let dumped = '';
      if (!r.fa.shouldFail(size, (line) => (dumped = line))) continue;
      if (r.attr.verbose > 0) this.logFn('warn', { rule: r.id, domid: to.domid, kind: h.env.msg.t }, dumped);
      this.apply(r, to, h, g, hits);
      return;
    }
    this.pass(h.send, h.env);
  }

  private pass(send: Send, env: Envelope): void {
    this.counters.delivered++;
    send(env);
  }

  private apply(r: Rule, to: Domain, h: Held, g: Gate | null, hits: PagePiece[]): void {
    const base = { rule: r.id, action: r.action, to: to.domid, kind: h.env.msg.t as string };
    const port = h.env.msg.t === 'ev' ? h.env.msg.port : undefined;
    switch (r.action) {
      case 'drop':
        this.counters.dropped++;
        this.record({ ...base, port, ...this.pieceInfo(hits[0]) }, r);
        return;
      case 'duplicate':
        this.counters.duplicated++;
        this.record({ ...base, port, ...this.pieceInfo(hits[0]) }, r);
        this.pass(h.send, h.env);
        this.pass(h.send, h.env);
        return;
      case 'delay': {
        // this message and all behind it wait: the stream's order is kept
        this.record({ ...base, port, delayMs: r.delayMs, ...this.pieceInfo(hits[0]) }, r);
        const gate = g ?? this.gate(to);
        gate.until = Math.max(gate.until, Date.now() + r.delayMs);
        gate.queue.unshift(h);
        if (gate.immediate) {
          clearImmediate(gate.immediate);
          gate.immediate = null;
        }
        this.schedule(to, gate);
        return;
      }
      case 'reorder': {
        if (this.reordered.size >= MAX_HELD_OUTBOUND) return this.pass(h.send, h.env); // bounded
        this.counters.reordered++;
        this.record({ ...base, port, delayMs: r.delayMs, ...this.pieceInfo(hits[0]) }, r);
        const deliver = () => this.pass(h.send, h.env);
        const t = setTimeout(() => {
          this.reordered.delete(t);
          deliver();
          this.update();
        }, r.delayMs);
        this.reordered.set(t, deliver);
        return;
      }
      case 'corrupt': {
        const piece = hits[this.rng.below(hits.length)];
        const ranges = this.consumed(piece);
        // a byte in the part of the piece the request moves, then `bits` distinct bits of it or nearby bytes
        const candidates: number[] = [];
        for (const [a, b] of ranges) for (let i = a; i < b; i++) candidates.push(i);
        const flipped = new Set<number>();
        while (flipped.size < Math.min(r.bits, candidates.length * 8)) {
          const byte = candidates[this.rng.below(candidates.length)];
          flipped.add(byte * 8 + this.rng.below(8));
        }
        const copy = Buffer.from(piece.bytes);
        for (const bit of flipped) copy[(bit >> 3) - piece.off] ^= 1 << (bit & 7);
        const msg = piece.patch(h.env.msg, copy);
        this.counters.corrupted++;
        this.record({ ...base, ...this.pieceInfo(piece), bits: [...flipped].sort((a, b) => a - b) }, r);
        this.pass(h.send, { ...h.env, msg });
        return;
      }
    }
  }

  private pieceInfo(p: PagePiece | undefined): Partial<Injection> {
    if (!p) return {};
    return { granter: p.granter.domid, ref: p.ref, role: p.use?.role, op: p.use?.op, offset: p.off };
  }

  private record(e: Omit<Injection, 'seq' | 'ms'>, r?: Rule): void {
    const entry: Injection = { seq: ++this.seq, ms: Date.now() - this.started, ...e };
    this.log.push(entry);
    if (this.log.length > LOG_KEEP) this.log.splice(0, this.log.length - LOG_KEEP);
    if (r && r.attr.verbose > 1) this.logFn('warn', { injection: entry }, `nemesis: ${r.action}`);
  }

  // -------------------------------------------------------------------------------------------
  // matching

  /** The pieces of a rule's target a message carries: [] for a non-page message that matches. */
  private matches(r: Rule, env: Envelope, pieces: () => PagePiece[]): PagePiece[] | null {
    const m = r.match;
    const msg = env.msg;
    if (m.domain !== undefined && env.to.domid !== m.domain) return null;
    if (m.kind && !m.kind.includes(msg.t as MessageKind)) return null;
    if (m.port !== undefined && (msg.t !== 'ev' || msg.port !== m.port)) return null;
    const pageFilter = m.ref !== undefined || m.role !== undefined || r.action === 'corrupt';
    if (!pageFilter) return [];
    const hits = pieces().filter((p) => {
      if (m.ref !== undefined && p.ref !== m.ref) return false;
      if (m.role !== undefined) {
        if (p.use?.role !== m.role) return false;
        if ((m.role === 'data' || m.role === 'pi') && this.consumed(p).length === 0) return false;
      }
      return true;
    });
    return hits.length > 0 ? hits : null;
  }

  /**
   * The bytes of a piece the request moves, in page offsets: for data and PI, only on their way (to
   * the backend for a write, to the frontend for a read) and only within the request's ranges.
   */
  private consumed(p: PagePiece): Array<[number, number]> {
    const lo = p.off;
    const hi = p.off + p.bytes.length;
    const u = p.use;
    if (!u || u.role === 'ring' || u.role === 'indirect') return [[lo, hi]];
    if ((u.op === 'read') !== p.toGranter) return [];
    const out: Array<[number, number]> = [];
    for (const [a, b] of u.ranges) {
      const s = Math.max(a, lo);
      const e = Math.min(b, hi);
      if (s < e) out.push([s, e]);
    }
    return out;
  }

  /** Page contents a message carries, with the grant each belongs to. */
  private pieces(env: Envelope): PagePiece[] {
    const msg = env.msg;
    const to = env.to;
    const out: PagePiece[] = [];
    switch (msg.t) {
      case 'mw': {
        // a write to the receiver's own frame: it is the granter
        const f = to.frames.get(msg.gfn);
        if (!f) break;
        for (const ref of f.refs) {
          out.push({
            granter: to,
            ref,
            off: msg.off,
            bytes: msg.data,
            use: this.tracer.use(to, ref),
            toGranter: true,
            patch: (m, b) => ({ ...(m as typeof msg), data: b }),
          });
        }
        break;
      }
      case 'gw': {
        const mp = to.maptrack.get(msg.handle);
        if (!mp) break;
        out.push({
          granter: mp.granter,
          ref: mp.ref,
          off: msg.off,
          bytes: msg.data,
          use: this.tracer.use(mp.granter, mp.ref),
          toGranter: false,
          patch: (m, b) => ({ ...(m as typeof msg), data: b }),
        });
        break;
      }
      case 'ok': {
        const re = env.re;
        if (!re || (re.t !== 'gnt_map' && re.t !== 'gnt_copy') || !Array.isArray(msg.r)) break;
        const results = msg.r as Array<{ status: number; data?: Uint8Array }>;
        results.forEach((res, i) => {
          const op = re.ops[i] as { dom: number; ref: number; dir?: string; off?: number } | undefined;
          if (!op || !res.data || (re.t === 'gnt_copy' && op.dir !== 'from')) return;
          const granter = this.hv.domains.get(op.dom);
          if (!granter) return;
          out.push({
            granter,
            ref: op.ref,
            off: re.t === 'gnt_copy' ? (op.off ?? 0) : 0,
            bytes: res.data,
            use: this.tracer.use(granter, op.ref),
            toGranter: false,
            patch: (m, b) => {
              const rs = ((m as { r: unknown[] }).r as Array<Record<string, unknown>>).map((x, k) =>
                k === i ? { ...x, data: b } : x,
              );
              return { ...(m as { t: 'ok'; id: number }), r: rs };
            },
          });
        });
        break;
      }
    }
    return out;
  }
}
