/**
 * One domain's connection to the hypervisor, independent of the transport (a WebSocket, or an
 * in-process pipe in unit tests): the hello/credential handshake, frame decoding with clear errors for
 * malformed input, and the outbound queue that packs everything produced in one event-loop turn into
 * one frame.
 */
import {
  decodeClientFrame,
  encodeFrame,
  PvblkError,
  WIRE_VERSION,
  type HypervisorMessage,
} from '@pvblk/shared';
import type { Domain, Session } from './core/domain.ts';
import type { Hypervisor } from './core/hypervisor.ts';

export interface FrameTransport {
  readonly peer: string;
  sendFrame(frame: Buffer): void;
  close(code: number, reason: string): void;
  /** Bytes queued but not yet written to the socket; used to cut off a peer that never reads. */
  bufferedAmount(): number;
}

/** WebSocket close codes used by the hypervisor (4000-4999 are application codes). */
export const CLOSE_DOMAIN_DESTROYED = 4000;
export const CLOSE_AUTH_FAILED = 4401;
export const CLOSE_PROTOCOL = 4400;
export const CLOSE_SLOW_CONSUMER = 4429;

/** Frames in a row that fail to decode before the connection is dropped. */
const MAX_BAD_FRAMES = 100;
/** Bytes a peer may leave unread before we stop queueing for it. */
const MAX_BUFFERED = 64 * 1024 * 1024;
/** Flush a batch early once it carries this many payload bytes. */
const BATCH_BYTES = 4 * 1024 * 1024;

let nextSessionId = 1;

export class Connection implements Session {
  readonly id = nextSessionId++;
  domain: Domain | null = null;
  private queue: HypervisorMessage[] = [];
  private queuedBytes = 0;
  private flushScheduled = false;
  private badFrames = 0;
  private closed = false;
  private readonly helloTimer: NodeJS.Timeout;

  constructor(
    private readonly hv: Hypervisor,
    private readonly transport: FrameTransport,
    private readonly log: (
      level: 'info' | 'warn' | 'debug',
      obj: Record<string, unknown>,
      msg: string,
    ) => void,
    helloTimeoutMs = 10_000,
  ) {
    this.helloTimer = setTimeout(() => {
      if (!this.domain) this.close(CLOSE_AUTH_FAILED, 'no hello within the time limit');
    }, helloTimeoutMs);
    this.helloTimer.unref();
  }

  get peer(): string {
    return this.transport.peer;
  }

  send(msg: HypervisorMessage): void {
    if (this.closed) return;
    this.queue.push(msg);
    if ('data' in msg && msg.data instanceof Uint8Array) this.queuedBytes += msg.data.length;
    if (this.queuedBytes >= BATCH_BYTES) {
      this.flush();
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed || this.queue.length === 0) return;
    if (this.transport.bufferedAmount() > MAX_BUFFERED) {
      this.log(
        'warn',
        { peer: this.peer, domid: this.domain?.domid },
        'peer is not reading; dropping the connection',
      );
      this.close(CLOSE_SLOW_CONSUMER, 'too much unread data');
      return;
    }
    const msgs = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    this.transport.sendFrame(encodeFrame(msgs));
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    clearTimeout(this.helloTimer);
    this.transport.close(code, reason);
  }

  /** Called by the transport with every frame received. Never throws. */
  onFrame(frame: Uint8Array): void {
    if (this.closed) return;
    const decoded = decodeClientFrame(frame);
    if (!decoded.ok) {
      this.badFrames++;
      this.log(
        'warn',
        { peer: this.peer, domid: this.domain?.domid, error: decoded.error },
        'malformed frame',
      );
      this.sendNow({ t: 'err', id: 0, code: 'EPROTO', message: `malformed frame: ${decoded.error}` });
      if (!this.domain || this.badFrames >= MAX_BAD_FRAMES)
        this.close(CLOSE_PROTOCOL, decoded.error.slice(0, 120));
      return;
    }
    this.badFrames = 0;
    let msgs = decoded.messages;
    if (!this.domain) {
      const first = msgs[0];
      if (!first || first.t !== 'hello' || decoded.invalid.some((b) => b.index === 0)) {
        this.sendNow({
          t: 'err',
          id: 0,
          code: 'EACCES',
          message: 'the first message must be hello with a credential',
        });
        this.close(CLOSE_AUTH_FAILED, 'expected hello');
        return;
      }
      if (first.v !== WIRE_VERSION) {
        this.sendNow({
          t: 'err',
          id: first.id,
          code: 'EPROTO',
          message: `wire version ${first.v} is not supported (this hypervisor speaks ${WIRE_VERSION})`,
        });
        this.close(CLOSE_PROTOCOL, 'wire version mismatch');
        return;
      }
      try {
        this.domain = this.hv.attach(this, first.credential);
      } catch (e) {
        const err = e as PvblkError;
        this.log('warn', { peer: this.peer, code: err.code }, 'authentication refused');
        this.sendNow({ t: 'err', id: first.id, code: err.code ?? 'EACCES', message: err.message });
        this.close(
          CLOSE_AUTH_FAILED,
          err.code === 'EBUSY' ? 'domain already connected' : 'authentication failed',
        );
        return;
      }
      clearTimeout(this.helloTimer);
      const d = this.domain;
      this.send({ t: 'ok', id: first.id, r: { domid: d.domid, name: d.name, privileged: d.privileged } });
      msgs = msgs.slice(1);
    }
    const d = this.domain;
    for (const bad of decoded.invalid) this.hv.reject(d, bad.id, bad.error);
    for (const m of msgs) {
      if (this.closed || d.dying) return;
      this.hv.handle(d, m);
    }
  }

  private sendNow(msg: HypervisorMessage): void {
    this.queue.push(msg);
    this.flush();
  }

  /** Called by the transport when the connection is gone. */
  onClose(): void {
    const wasOpen = !this.closed;
    this.closed = true;
    clearTimeout(this.helloTimer);
    if (this.domain) this.hv.detach(this);
    if (wasOpen) this.log('debug', { peer: this.peer }, 'connection closed');
  }
}
