/**
 * One domain's connection to the hypervisor, independent of the transport (a WebSocket, or an
 * in-process pipe in unit tests): the hello/credential handshake, frame decoding with clear errors for
 * malformed input, the inbox the fair scheduler serves, and the outbox that packs everything owed to
 * the domain in one event-loop turn into as few frames as fit.
 *
 * Bounds, so that no peer — authenticated or not — can make the broker run out of memory or time:
 * - input: decoded messages wait in the inbox; past IN_HIGH the socket is paused (TCP backpressure
 *   on the sender) until the scheduler has served it below IN_LOW;
 * - output: frames are cut below BROKER_FRAME_TARGET whatever is owed (never one frame over the peer's
 *   limit); past OUT_HIGH bytes owed the connection is congested — its own input is not served, and
 *   senders whose messages produce output for it wait (see FairScheduler) — and past OUT_MAX it is cut
 *   off as a peer that does not read;
 * - watch events: an event already queued for the same watch and path is not queued twice (the
 *   receiver reads the node anyway); a guest's own writes queue at most MAX_PENDING_WATCH_EVENTS of
 *   its events a turn (beyond, they are dropped, counted and logged); events for Dom0, and events
 *   another domain caused, are bounded by the output bounds above (their cause is held), never dropped.
 */
import {
  decodeClientFrame,
  FrameWriter,
  PvblkError,
  RateLimit,
  WIRE_VERSION,
  type ClientMessage,
  type HypervisorMessage,
  type InvalidMessage,
  type PackedMessage,
  type PageRun,
  unpackClientMessage,
} from '@pvblk/shared';
import type { Domain, Session } from './core/domain.ts';
import type { Hypervisor } from './core/hypervisor.ts';
import type { FairScheduler, Schedulable } from './scheduler.ts';
import { brokerTrace } from './trace.ts';

export interface FrameTransport {
  readonly peer: string;
  /** Hands one frame to the socket; `written` runs once it has left this process (or the socket closed). */
  sendFrame(frame: Buffer, written: () => void): void;
  /**
   * True when, by the time `written` runs, nothing refers to the frame's bytes any more (a socket has
   * copied them into the kernel): its buffer may then carry a later frame. Not so in process, where
   * the receiver is handed the frame itself.
   */
  readonly releasesFrames?: boolean;
  /**
   * Holds what is sent until `uncork`, which hands it all to the kernel in one write: the frames of a
   * turn are cut for the receiver's reassembly, not to cost a system call each (see BROKER_FRAME_TARGET).
   */
  cork?(): void;
  uncork?(): void;
  close(code: number, reason: string): void;
  /** Stops reading from the peer (its frames wait in the kernel and then in its own process). */
  pause(): void;
  resume(): void;
}

/** WebSocket close codes used by the hypervisor (4000-4999 are application codes). */
export const CLOSE_DOMAIN_DESTROYED = 4000;
export const CLOSE_AUTH_FAILED = 4401;
export const CLOSE_PROTOCOL = 4400;
export const CLOSE_SLOW_CONSUMER = 4429;
export const CLOSE_INTERNAL = 4500;

/**
 * The size the broker cuts its frames below (between records). ws hands a message over as a view of
 * the socket's read buffer when the message lies within one read, and copies it into a buffer of its
 * own when it spans reads; Node reads 64 KiB at a time. A QD32 burst of 4 KiB writes arrives as
 * pushes of 16 (≈ 66 KiB with the slots), and forwarded as one frame each it spanned two reads every
 * time: Dom0 copied every byte of data once more into fresh memory, which glibc then gave back and
 * the kernel faulted in again (0.45-0.54 page faults a request). Cut below 16 KiB, a receiver that
 * reads 64 KiB at a time reassembles at most one frame a read. Measured on 2 cores, 4 KiB randwrite
 * QD32 with PI, six alternating runs: Dom0's CPU per I/O 21.1-29.6 µs against 30.1-46.8, 16-47 %
 * more IOPS (docs/performance.md). The frames of a turn leave in one write (FrameTransport.cork):
 * one frame a write, the cut had made the broker's socket writes six times as many, 0.37 a request.
 */
export const BROKER_FRAME_TARGET = 16 * 1024;

/** Frames in a row that fail to decode before the connection is dropped. */
const MAX_BAD_FRAMES = 100;
/**
 * The largest frame a connection may send before its hello is accepted: a hello and whatever a
 * client queues behind it in the same turn fit many times over. Every record of a frame is decoded
 * before the hello is looked at, and a frame may be WIRE_MAX_FRAME (16 MiB): an unauthenticated peer
 * made the broker build millions of messages (375 ms, 223 MB) before it was refused.
 */
export const PRE_HELLO_FRAME_MAX = 64 * 1024;
/** Bytes a connection may send before its hello is accepted: one such frame and its WebSocket header. */
export const PRE_HELLO_BYTES_MAX = PRE_HELLO_FRAME_MAX + 14;
/** Output backlog (bytes owed + bytes handed to the socket) at which a connection is congested … */
export const OUT_HIGH = 4 * 1024 * 1024;
/** … and at which it is not any more. */
export const OUT_LOW = 1024 * 1024;
/** A peer that leaves this much unread is not reading: it is disconnected. */
export const OUT_MAX = 64 * 1024 * 1024;
/** Inbox sizes (records: a page run counts as its writes) at which reading pauses and resumes. */
export const IN_HIGH = 16 * 1024;
const IN_LOW = 4 * 1024;
/**
 * Bytes of the frames the inbox holds (a queued message keeps its whole frame alive: page runs and
 * binary values are views of it) at which reading pauses and resumes. Counted in records alone, a
 * blocked domain sending frames of two 8 MiB records each was still being read after 100 MiB.
 */
export const IN_HIGH_BYTES = 32 * 1024 * 1024;
const IN_LOW_BYTES = 8 * 1024 * 1024;
/** A guest's own watch events waiting for it in one turn, beyond which they are dropped. */
export const MAX_PENDING_WATCH_EVENTS = 1024;

/** A message waiting in the inbox: MSG records stay packed until served (see PackedMessage). */
type Inbound = ClientMessage | PageRun | PackedMessage | { t: '__invalid'; bad: InvalidMessage };

/** The records of the frame one inbox entry stands for: a page run, its page writes; else one. */
function recordsIn(m: Inbound): number {
  return m.t === 'page_run' ? m.count : 1;
}

let nextSessionId = 1;

export type ConnectionLog = (
  level: 'info' | 'warn' | 'error' | 'debug',
  obj: Record<string, unknown>,
  msg: string,
) => void;

export class Connection implements Session, Schedulable {
  /** The connection whose message is being handled (the cause of any output produced meanwhile). */
  private static serving: Connection | null = null;
  readonly id = nextSessionId++;
  domain: Domain | null = null;
  private preHelloBytes = 0;
  closed = false;
  /** Counters for /status: what was coalesced or dropped to keep the output bounded. */
  readonly counters = { watchEventsCoalesced: 0, watchEventsDropped: 0, readPauses: 0 };

  private inbox: Inbound[] = [];
  private inHead = 0;
  /** Records waiting in the inbox: a page run counts as the page writes it holds. */
  private inRecords = 0;
  /**
   * Bytes of the frames with entries still in the inbox; beside each entry, the bytes it frees once
   * served (its frame's length on a frame's last entry, else 0).
   */
  private inBytes = 0;
  private inboxBytes: number[] = [];
  private readingPaused = false;
  /** What is owed to the peer this turn, already encoded (the frames go out at the end of the turn). */
  private readonly outbox = new FrameWriter(BROKER_FRAME_TARGET);
  private inflight = 0;
  private readonly pendingWatch = new Set<string>();
  private droppedThisTurn = 0;
  private badFrames = 0;
  /**
   * The warnings a peer can make the broker write (warnLimited): ten in five seconds per connection,
   * as printk_ratelimited; before a hello, ten for all strangers together, whose connections are new
   * every time.
   */
  private readonly warnings = new RateLimit();
  private static readonly strangerWarnings = new RateLimit();
  private congested = false;
  /** Receivers this connection waits for, and the senders that wait for this one. */
  private readonly waitingFor = new Set<Connection>();
  private readonly waiters = new Set<Connection>();
  private readonly helloTimer: NodeJS.Timeout;

  constructor(
    private readonly hv: Hypervisor,
    private readonly scheduler: FairScheduler,
    private readonly transport: FrameTransport,
    private readonly log: ConnectionLog,
    helloTimeoutMs = 5_000,
  ) {
    this.helloTimer = setTimeout(() => {
      if (!this.domain) this.close(CLOSE_AUTH_FAILED, 'no hello within the time limit');
    }, helloTimeoutMs);
    this.helloTimer.unref();
  }

  get peer(): string {
    return this.transport.peer;
  }

  get blocked(): boolean {
    return this.congested || this.waitingFor.size > 0;
  }

  /** Bytes owed to the peer that it has not read yet. */
  get backlog(): number {
    return this.outbox.size + this.inflight;
  }

  /** Records received and not yet served (the bounds on input count these, whatever their grouping). */
  get pendingInput(): number {
    return this.inRecords;
  }

  /** Bytes of the frames queued input keeps alive (see IN_HIGH_BYTES). */
  get pendingInputBytes(): number {
    return this.inBytes;
  }

  // ---------------------------------------------------------------------------------------------
  // output

  send(msg: HypervisorMessage): void {
    if (this.closed) return;
    if (msg.t === 'xs_watch') {
      const key = `${msg.token}\u0000${msg.path}`;
      if (this.pendingWatch.has(key)) {
        this.counters.watchEventsCoalesced++;
        return;
      }
      // Past the bound, only a guest's events of its own making are dropped (a guest flooding its own
      // watches). Dom0's events, and events another domain caused, are never dropped: that domain is
      // held instead once this receiver is owed too much (holdSender), as xenstored does — C xenstored
      // charges undelivered events to the domain that caused them and stops reading its requests,
      // oxenstored holds the source connection; neither drops a receiver's events. Dropping them let
      // a guest's two commits of 900 nodes each hide another guest's state change from blkback.
      if (
        this.pendingWatch.size >= MAX_PENDING_WATCH_EVENTS &&
        Connection.serving === this &&
        !this.domain?.privileged
      ) {
        this.counters.watchEventsDropped++;
        this.droppedThisTurn++;
        return;
      }
      this.pendingWatch.add(key);
    }
    this.outbox.add(msg);
    this.queued();
  }

  /**
   * A page write forwarded to this domain, written into the outbox as it comes (no message object:
   * a 128 KiB request forwards 33 of them). The same bounds as `send`.
   */
  sendPage(mapped: boolean, ref: number, off: number, data: Uint8Array): void {
    if (this.closed) return;
    this.outbox.page(mapped, ref, off, data, 0, data.length);
    this.queued();
  }

  /** After anything was queued: the backlog's bounds, and the flush at the end of the turn. */
  private queued(): void {
    if (this.domain) brokerTrace?.queued(this.domain.domid);
    if (this.backlog > OUT_MAX) {
      this.log(
        'warn',
        { peer: this.peer, domid: this.domain?.domid, backlog: this.backlog },
        'peer is not reading; dropping the connection',
      );
      this.close(CLOSE_SLOW_CONSUMER, 'too much unread data');
      return;
    }
    if (!this.congested && this.backlog > OUT_HIGH) this.congested = true;
    if (this.congested) this.holdSender();
    this.scheduler.flushSoon(this);
  }

  /** The domain being served produced output for us while we are congested: it waits for us to drain. */
  private holdSender(): void {
    const s = Connection.serving;
    if (!s || s === this || s.closed) return;
    // the control domain never waits on a guest: a guest that does not read is cut off at OUT_MAX
    if (s.domain?.privileged && !this.domain?.privileged) return;
    if (s.waitingFor.has(this)) return;
    s.waitingFor.add(this);
    this.waiters.add(s);
  }

  /** Hands everything owed to the socket: the end of this connection's turn (the scheduler calls it). */
  flush(): void {
    if (this.droppedThisTurn > 0) {
      this.log(
        'warn',
        { peer: this.peer, domid: this.domain?.domid, dropped: this.droppedThisTurn },
        `dropped watch events over the limit of ${MAX_PENDING_WATCH_EVENTS} per turn`,
      );
      this.droppedThisTurn = 0;
    }
    this.pendingWatch.clear();
    if (this.closed || this.outbox.empty) return;
    // trace: the time before the frames go out (a stamp taken after could be late by a preemption)
    if (this.domain) {
      brokerTrace?.frameOut(this.domain.domid);
      this.domain.stats.flushesOut++;
    }
    this.transport.cork?.();
    for (const f of this.outbox.take()) {
      const n = f.length;
      if (this.domain) {
        this.domain.stats.framesOut++;
        this.domain.stats.bytesOut += n;
      }
      this.inflight += n;
      this.transport.sendFrame(f, () => {
        this.inflight -= n;
        if (this.transport.releasesFrames) this.outbox.recycle(f);
        this.maybeDrained();
      });
    }
    this.transport.uncork?.();
    this.maybeDrained();
  }

  private maybeDrained(): void {
    if (!this.congested || this.backlog > OUT_LOW) return;
    this.congested = false;
    if (this.pendingInput > 0) this.scheduler.wake(this);
    this.releaseWaiters();
  }

  private releaseWaiters(): void {
    for (const w of this.waiters) {
      w.waitingFor.delete(this);
      if (w.waitingFor.size === 0 && !w.blocked && w.pendingInput > 0) this.scheduler.wake(w);
    }
    this.waiters.clear();
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    clearTimeout(this.helloTimer);
    this.transport.close(code, reason);
    this.forget();
  }

  /** Drops every tie to other connections and the queued input (on close). */
  private forget(): void {
    this.inbox = [];
    this.inHead = 0;
    this.inRecords = 0;
    this.inBytes = 0;
    this.inboxBytes = [];
    this.releaseWaiters();
    for (const r of this.waitingFor) r.waiters.delete(this);
    this.waitingFor.clear();
  }

  private sendNow(msg: HypervisorMessage): void {
    this.outbox.add(msg);
    this.flush();
  }

  // ---------------------------------------------------------------------------------------------
  // input

  /** Called by the transport with every frame received. Never throws. */
  onFrame(frame: Uint8Array): void {
    if (this.closed) return;
    try {
      this.receive(frame);
    } catch (e) {
      // a bug in the broker, reached by this peer's input: the peer loses its connection, nobody else
      this.log(
        'error',
        { peer: this.peer, domid: this.domain?.domid, err: String((e as Error)?.stack ?? e) },
        'internal error handling a frame; closing the connection',
      );
      this.close(CLOSE_INTERNAL, 'internal error');
    }
  }

  /**
   * Bytes the transport has read from the peer's socket, counted while there is no hello yet: the
   * transport buffers a whole frame (up to WIRE_MAX_FRAME) before `onFrame` sees its length, so a
   * stranger announcing 16 MiB frames made the broker hold 16 MiB for each of its sockets. False
   * when this call refuses the connection for them (the transport should then drop the socket at
   * once: the peer is not waiting for the close). Past the hello it costs nothing and says true.
   */
  readBeforeHello(bytes: number): boolean {
    if (this.domain || this.closed) return true;
    this.preHelloBytes += bytes;
    if (this.preHelloBytes <= PRE_HELLO_BYTES_MAX) return true;
    this.refuseBeforeHello(`${this.preHelloBytes} bytes before hello (at most ${PRE_HELLO_BYTES_MAX})`);
    return false;
  }

  /** A warning this connection's peer caused, rate-limited; what was left out is counted when it resumes. */
  private warnLimited(obj: Record<string, unknown>, msg: string): void {
    const limit = this.domain ? this.warnings : Connection.strangerWarnings;
    const who = { peer: this.peer, domid: this.domain?.domid };
    const say = (n: number) => this.log('warn', { ...who, suppressed: n }, `${n} warnings suppressed`);
    if (limit.allows(performance.now(), say)) this.log('warn', { ...who, ...obj }, msg);
  }

  private refuseBeforeHello(message: string): void {
    this.warnLimited({}, `refused before hello: ${message}`);
    this.sendNow({ t: 'err', id: 0, code: 'EPROTO', message });
    this.close(CLOSE_PROTOCOL, message);
  }

  private receive(frame: Uint8Array): void {
    if (!this.domain && frame.length > PRE_HELLO_FRAME_MAX) {
      this.refuseBeforeHello(
        `a frame of ${frame.length} bytes before hello (at most ${PRE_HELLO_FRAME_MAX})`,
      );
      return;
    }
    // MSG records are decoded as they are served (PackedMessage) — but before the hello, at once: a
    // stranger's frame is small (PRE_HELLO_FRAME_MAX), and one that is not MessagePack is a protocol
    // error (4400), not a refused hello
    const decoded = decodeClientFrame(frame, { pageRuns: true, packed: this.domain !== null });
    if (!decoded.ok) {
      this.badFrames++;
      this.warnLimited({ error: decoded.error }, 'malformed frame');
      this.sendNow({ t: 'err', id: 0, code: 'EPROTO', message: `malformed frame: ${decoded.error}` });
      if (!this.domain || this.badFrames >= MAX_BAD_FRAMES)
        this.close(CLOSE_PROTOCOL, decoded.error.slice(0, 120));
      return;
    }
    this.badFrames = 0;
    if (this.domain) {
      this.domain.stats.framesIn++;
      this.domain.stats.bytesIn += frame.length;
      brokerTrace?.frameIn(this.domain.domid, decoded.messages);
    }
    let msgs = decoded.messages;
    let invalid = decoded.invalid;
    if (!this.domain) {
      if (!this.hello(msgs[0], invalid)) return;
      msgs = msgs.slice(1);
      invalid = invalid.filter((b) => b.index !== 0);
    }
    // keep the frame's order: an invalid message is answered where it stood among the valid ones
    // (`pos` is the record index of the next valid message: a page run spans `count` records)
    let v = 0;
    let k = 0;
    let pos = decoded.messages.length - msgs.length; // the hello, when it was in this frame
    while (v < msgs.length || k < invalid.length) {
      if (k < invalid.length && invalid[k].index <= pos) {
        this.inbox.push({ t: '__invalid', bad: invalid[k++] });
        this.inboxBytes.push(0);
        pos++;
        this.inRecords++;
      } else {
        const m = msgs[v++];
        this.inbox.push(m);
        this.inboxBytes.push(0);
        const n = recordsIn(m);
        pos += n;
        this.inRecords += n;
      }
    }
    if (msgs.length + invalid.length > 0) {
      this.inboxBytes[this.inboxBytes.length - 1] = frame.length;
      this.inBytes += frame.length;
    }
    if (!this.readingPaused && (this.pendingInput > IN_HIGH || this.inBytes > IN_HIGH_BYTES)) {
      this.readingPaused = true;
      this.counters.readPauses++;
      this.transport.pause();
    }
    if (this.pendingInput > 0) this.scheduler.arrived(this);
  }

  /** The first message of a connection: hello with a credential. False when the connection is refused. */
  private hello(
    first: ClientMessage | PageRun | PackedMessage | undefined,
    invalid: InvalidMessage[],
  ): boolean {
    if (!first || first.t !== 'hello' || invalid.some((b) => b.index === 0)) {
      this.sendNow({
        t: 'err',
        id: 0,
        code: 'EACCES',
        message: 'the first message must be hello with a credential',
      });
      this.close(CLOSE_AUTH_FAILED, 'expected hello');
      return false;
    }
    if (first.v !== WIRE_VERSION) {
      this.sendNow({
        t: 'err',
        id: first.id,
        code: 'EPROTO',
        message: `wire version ${first.v} is not supported (this hypervisor speaks ${WIRE_VERSION})`,
      });
      this.close(CLOSE_PROTOCOL, 'wire version mismatch');
      return false;
    }
    try {
      this.domain = this.hv.attach(this, first.credential);
    } catch (e) {
      const err = e as PvblkError;
      this.warnLimited({ code: err.code }, 'authentication refused');
      this.sendNow({ t: 'err', id: first.id, code: err.code ?? 'EACCES', message: err.message });
      this.close(
        CLOSE_AUTH_FAILED,
        err.code === 'EBUSY' ? 'domain already connected' : 'authentication failed',
      );
      return false;
    }
    clearTimeout(this.helloTimer);
    const d = this.domain;
    this.send({ t: 'ok', id: first.id, r: { domid: d.domid, name: d.name, privileged: d.privileged } });
    return true;
  }

  /**
   * Serves up to `budget` messages of the inbox, for about `ms` at most (the scheduler calls this).
   * True when input remains.
   */
  runSlice(budget: number, ms = Infinity): boolean {
    const d = this.domain;
    if (!d || this.closed) return false;
    const prev = Connection.serving;
    Connection.serving = this;
    try {
      // the budget is in records: a page run counts as the page writes it holds (so a slice may end
      // up to MAX_PAGE_RUN - 1 records past it, and `blocked` is looked at between runs: a congested
      // receiver gets at most one run's writes, ≤ 64 pages, past its mark — far below OUT_MAX)
      // an arrival's slice has no time bound (ms = Infinity): it reads no clock
      const timed = ms !== Infinity;
      const deadline = timed ? performance.now() + ms : Infinity;
      for (let n = 0; n < budget && this.inHead < this.inbox.length;) {
        if (this.closed || d.dying) return false;
        const m = this.inbox[this.inHead];
        this.inBytes -= this.inboxBytes[this.inHead];
        this.inbox[this.inHead++] = undefined as unknown as Inbound;
        const records = recordsIn(m);
        this.inRecords -= records;
        if (m.t === 'packed') {
          const u = unpackClientMessage(m);
          if (u.ok) this.hv.handle(d, u.msg);
          else this.hv.reject(d, u.bad.id, u.bad.error);
        } else if (m.t === '__invalid') this.hv.reject(d, m.bad.id, m.bad.error);
        else this.hv.handle(d, m);
        n += records;
        if (this.blocked || (timed && performance.now() >= deadline)) break;
      }
    } catch (e) {
      // a bug in the broker, reached by this peer's input — here too when the slice runs from the
      // scheduler's own turn, where nothing above would catch it and the process would end
      this.log(
        'error',
        { peer: this.peer, domid: d.domid, err: String((e as Error)?.stack ?? e) },
        'internal error serving a message; closing the connection',
      );
      this.close(CLOSE_INTERNAL, 'internal error');
      return false;
    } finally {
      Connection.serving = prev;
    }
    if (this.inHead === this.inbox.length) {
      this.inbox = [];
      this.inboxBytes = [];
      this.inHead = 0;
    } else if (this.inHead > 4096 && this.inHead * 2 >= this.inbox.length) {
      // compacted once half of it is served: each entry is moved O(1) times (a compaction every 4096
      // entries of a 3-million entry inbox had copied the rest each time)
      this.inbox = this.inbox.slice(this.inHead);
      this.inboxBytes = this.inboxBytes.slice(this.inHead);
      this.inHead = 0;
    }
    if (this.readingPaused && this.pendingInput < IN_LOW && this.inBytes < IN_LOW_BYTES && !this.closed) {
      this.readingPaused = false;
      this.transport.resume();
    }
    return this.pendingInput > 0 && !this.closed;
  }

  /** Called by the transport when the connection is gone. */
  onClose(): void {
    const wasOpen = !this.closed;
    this.closed = true;
    clearTimeout(this.helloTimer);
    this.forget();
    if (this.domain) this.hv.detach(this);
    if (wasOpen) this.log('debug', { peer: this.peer }, 'connection closed');
  }
}
