/**
 * Domains connected to the broker's own classes (Hypervisor, Connection, FairScheduler) through
 * transports that record what the broker does to them — for tests of its bounds and its error paths
 * that need no socket. Each peer has said hello; `frames` holds what the broker sent it, decoded.
 */
import { decodeHypervisorFrame, encodeFrame, WIRE_VERSION, type HypervisorMessage } from '@pvblk/shared';
import { Connection, Hypervisor, type FrameTransport } from '@pvblk/hypervisor';
import { FairScheduler } from '../../packages/hypervisor/src/scheduler.ts';

export interface BrokerPeer {
  domid: number;
  conn: Connection;
  /** Messages of the frames the broker sent, in order (a frame that failed to decode: in `bad`). */
  got: HypervisorMessage[];
  bad: string[];
  paused: boolean;
  /** The close code the broker gave, once it has. */
  closed: number | null;
}

/**
 * Starts a broker and connects `names` to it, each a domain that said hello. `reads: false` for a peer
 * that never reads: the broker's writes to it are never completed, so its backlog only grows.
 */
export function brokerWith(names: Array<string | { name: string; reads: boolean }>): {
  hv: Hypervisor;
  peers: BrokerPeer[];
} {
  const hv = new Hypervisor({ dom0Credential: 'x' });
  const sched = new FairScheduler();
  const peers = names.map((n) => {
    const { name, reads } = typeof n === 'string' ? { name: n, reads: true } : n;
    const d = hv.createDomain(name);
    const p: BrokerPeer = { domid: d.domid, conn: null!, got: [], bad: [], paused: false, closed: null };
    const t: FrameTransport = {
      peer: name,
      sendFrame: (f, written) => {
        if (!reads) return;
        const m = decodeHypervisorFrame(f);
        if (m.ok) p.got.push(...m.messages);
        else p.bad.push(m.error);
        written();
      },
      close: (code) => void (p.closed = code),
      pause: () => void (p.paused = true),
      resume: () => void (p.paused = false),
    };
    p.conn = new Connection(hv, sched, t, () => {});
    p.conn.onFrame(encodeFrame([{ t: 'hello', id: 1, v: WIRE_VERSION, credential: d.credential }]));
    return p;
  });
  return { hv, peers };
}
