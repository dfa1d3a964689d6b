/**
 * The hypervisor in-process, without sockets: for fast unit tests of drivers. Frames still go through
 * the wire codec in both directions (so aliasing bugs and codec gaps show up here too) and are
 * delivered asynchronously and in order, as a socket would.
 */
import { Connection, type FrameTransport } from './connection.ts';
import { Hypervisor, type HypervisorOptions } from './core/hypervisor.ts';
import { FairScheduler } from './scheduler.ts';
import { XenClient, type ClientTransport } from '@pvblk/client';

class Pipe {
  private q: Array<Buffer | (() => void) | null> = [];
  private scheduled = false;
  constructor(
    private readonly deliver: (f: Buffer) => void,
    private readonly end: () => void,
  ) {}
  /** A frame, a callback to run when everything before it is delivered, or null (the end). */
  push(f: Buffer | (() => void) | null): void {
    this.q.push(f);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }
  private drain(): void {
    this.scheduled = false;
    const q = this.q;
    this.q = [];
    for (const f of q) {
      if (f === null) return this.end();
      if (typeof f === 'function') f();
      else this.deliver(f);
    }
  }
}

export class LocalHypervisor {
  readonly hv: Hypervisor;
  private readonly scheduler = new FairScheduler();
  private readonly connections = new Set<Connection>();

  constructor(opts: Partial<HypervisorOptions> & { dom0Credential?: string } = {}) {
    this.hv = new Hypervisor({ dom0Credential: opts.dom0Credential ?? 'dom0-local', ...opts });
  }

  /** A raw transport to the hypervisor, for tests that speak the wire protocol by hand. */
  rawTransport(peer = 'local'): ClientTransport {
    let frameCb: (f: Uint8Array) => void = () => {};
    let closeCb: (code: number, reason: string) => void = () => {};
    let closeInfo: [number, string] = [1000, ''];
    let open = true;
    const toClient = new Pipe(
      (f) => frameCb(f),
      () => closeCb(...closeInfo),
    );
    const transport: FrameTransport = {
      peer,
      sendFrame: (f, written) => {
        if (!open) return written();
        toClient.push(f);
        toClient.push(written);
      },
      close: (code, reason) => {
        if (!open) return;
        open = false;
        closeInfo = [code, reason];
        toClient.push(null);
        toServer.push(null);
      },
      // an in-process pipe has no socket to stop reading
      pause: () => {},
      resume: () => {},
    };
    const conn = new Connection(this.hv, this.scheduler, transport, () => {});
    this.connections.add(conn);
    const toServer = new Pipe(
      (f) => conn.onFrame(f),
      () => {
        this.connections.delete(conn);
        conn.onClose();
      },
    );
    return {
      peer,
      // the broker is handed the frame itself
      send: (f) => {
        if (open) toServer.push(f);
        return false;
      },
      close: () => transport.close(1000, 'client closed'),
      onFrame: (cb) => (frameCb = cb),
      onClose: (cb) => (closeCb = cb),
    };
  }

  connect(credential: string, peer?: string): Promise<XenClient> {
    return XenClient.connect(this.rawTransport(peer), credential);
  }

  /** Dom0's client. */
  connectDom0(): Promise<XenClient> {
    return this.connect('dom0-local', 'dom0');
  }
}
