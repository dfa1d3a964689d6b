/**
 * Registered watches and the xenstored rules for matching an event against them (watch.c).
 */
import { domainPath, isSelfOrDescendant } from './path.ts';

/** XENSTORE_PAYLOAD_MAX: an event that does not fit one message is dropped, as xenstored does. */
const EVENT_PAYLOAD_MAX = 4096;

export interface Watch {
  readonly domid: number;
  /** Canonical (absolute or '@') path. */
  readonly path: string;
  readonly token: string;
  /** Characters to strip from event paths: a relative watch gets relative events. */
  readonly prefixLen: number;
}

export class WatchTable {
  // Registration order is delivery order, so events reach watchers deterministically.
  private readonly watches: Watch[] = [];

  get size(): number {
    return this.watches.length;
  }

  count(domid: number): number {
    let n = 0;
    for (const w of this.watches) if (w.domid === domid) n++;
    return n;
  }

  find(domid: number, path: string, token: string): Watch | undefined {
    return this.watches.find((w) => w.domid === domid && w.path === path && w.token === token);
  }

  add(domid: number, path: string, token: string, relative: boolean): Watch {
    const watch: Watch = {
      domid,
      path,
      token,
      prefixLen: relative ? domainPath(domid).length + 1 : 0,
    };
    this.watches.push(watch);
    return watch;
  }

  delete(watch: Watch): void {
    const i = this.watches.indexOf(watch);
    if (i >= 0) this.watches.splice(i, 1);
  }

  deleteDomain(domid: number): void {
    for (let i = this.watches.length - 1; i >= 0; i--)
      if (this.watches[i].domid === domid) this.watches.splice(i, 1);
  }

  /** Watches an event on `path` fires. Exact events (special names, nodes below a removed
   * subtree's root) only match a watch on that very path; others match the path and its ancestors. */
  matching(path: string, exact: boolean): Watch[] {
    return this.watches.filter((w) => (exact ? w.path === path : isSelfOrDescendant(path, w.path)));
  }
}

/** The path a watcher is told about, or undefined when the event is too long to send. */
export function eventPathFor(watch: Watch, path: string): string | undefined {
  const shown = path.slice(watch.prefixLen);
  const bytes = Buffer.byteLength(shown) + 1 + Buffer.byteLength(watch.token) + 1;
  return bytes > EVENT_PAYLOAD_MAX ? undefined : shown;
}
