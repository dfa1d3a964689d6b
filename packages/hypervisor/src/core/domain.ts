/**
 * Domains as the hypervisor knows them: identity, credential, and the per-domain tables (grant
 * table, maptrack, event-channel ports, the frames it shares). A domain's identity is the
 * authenticated connection it arrived on, never a field of a message.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { RateLimit, type DomainStats, type HypervisorMessage } from '@pvblk/shared';
import type { GrantEntry, Mapping, SharedFrame } from './gnttab.ts';
import type { Port } from './evtchn.ts';

/** Where the hypervisor delivers a domain's messages: one authenticated connection. */
export interface Session {
  readonly id: number;
  /** Human-readable peer address for logs. */
  readonly peer: string;
  /** True once the session was closed: what it still has queued is not served. */
  readonly closed?: boolean;
  send(msg: HypervisorMessage): void;
  /** A forwarded page write, without a message object (optional: `send` of an mw/gw otherwise). */
  sendPage?(mapped: boolean, ref: number, off: number, data: Uint8Array): void;
  close(code: number, reason: string): void;
  /** Bytes owed to the domain and not read yet, and records received and not served yet. */
  readonly backlog?: number;
  readonly pendingInput?: number;
}

export class Domain {
  session: Session | null = null;
  readonly createdAt = Date.now();
  /** This domain's grant table: ref → entry. */
  readonly grants = new Map<number, GrantEntry>();
  /** Frames of this domain that are shared (have grants or mappings), keyed by GFN. */
  readonly frames = new Map<number, SharedFrame>();
  /** Mappings this domain holds of other domains' frames: handle → mapping. */
  readonly maptrack = new Map<number, Mapping>();
  nextHandle = 1;
  readonly ports = new Map<number, Port>();
  readonly stats: DomainStats = {
    msgsIn: 0,
    msgsOut: 0,
    invalidMessages: 0,
    eventsSent: 0,
    eventsDelivered: 0,
    pageWrites: 0,
    grantMaps: 0,
    grantCopies: 0,
    ringChecks: 0,
    calls: 0,
    fences: 0,
    framesIn: 0,
    bytesIn: 0,
    framesOut: 0,
    bytesOut: 0,
    flushesOut: 0,
  };
  dying = false;
  /** The warnings this domain's invalid messages are logged with: rate-limited, as printk_ratelimited. */
  readonly invalidLog = new RateLimit();

  constructor(
    readonly domid: number,
    readonly name: string,
    readonly privileged: boolean,
    private readonly credentialHash: Buffer,
  ) {}

  /**
   * Constant-time credential check, given the credential's hash (`hashCredential`): it is hashed
   * once for all the domains it is checked against, not once for each.
   */
  accepts(credentialHash: Buffer): boolean {
    return timingSafeEqual(credentialHash, this.credentialHash);
  }
}

export function hashCredential(credential: string): Buffer {
  return createHash('sha256').update(credential, 'utf8').digest();
}

/** A fresh guest credential: 192 random bits, URL-safe. */
export function newCredential(): string {
  return randomBytes(24).toString('base64url');
}
