/**
 * The operator's XenStore, through Dom0: what `xenstore-read`, `-write`, `-rm`, `-list`, `-ls`,
 * `-chmod`, `-exists` and `-watch` do with libxenstore, performed by the host on its own connection
 * to the hypervisor. Xen allows one control domain, and the host holds its connection; the operator's
 * tools reach XenStore through the host API (operator only), so Dom0 stays one connection.
 *
 * Each request is one mode of xenstore_client.c, run as the real tool runs it: several keys in one
 * transaction (restarted on EAGAIN), `rm -t` tidying empty parents, `chmod -u/-r` up and down the
 * tree, `ls` walking the tree (nodes that vanish while walking are skipped). The answer carries what
 * the tool prints, as data: the CLI formats it as the tool does. A failure names the path and the
 * errno; what was done before it in the same transaction is undone (the transaction aborts).
 */
import { isPvblkError, PvblkError } from '@pvblk/shared';
import type { XenStoreOps } from '@pvblk/client';

/** XENSTORE_ABS_PATH_MAX: the longest path the hypervisor accepts; longer ones are refused here. */
const MAX_PATH = 3072;
/** Keys one request may name (a command line's worth). */
const MAX_KEYS = 1024;
/** Nodes `ls` walks before giving up: the whole tree of a full host is far below this. */
const MAX_LS_NODES = 200_000;

export type XsRequest =
  | { mode: 'read'; paths: string[] }
  | { mode: 'exists'; paths: string[] }
  | { mode: 'list'; paths: string[] }
  | { mode: 'write'; pairs: Array<[string, string]> }
  | { mode: 'rm'; paths: string[]; tidy?: boolean }
  | { mode: 'chmod'; path: string; perms: string[]; upto?: boolean; recurse?: boolean }
  | { mode: 'ls'; path: string; perms?: boolean };

export interface XsFailure {
  path: string;
  errno: string;
  message: string;
}

export interface LsNode {
  /** Full path of the node. */
  path: string;
  name: string;
  depth: number;
  /** null: the read failed (the tool prints `:`). */
  value: string | null;
  perms?: string[] | null;
}

export type XsResult =
  | { mode: 'read'; values: Array<{ path: string; value: string }>; failed?: XsFailure }
  | { mode: 'exists'; failed?: XsFailure }
  | { mode: 'list'; lists: Array<{ path: string; children: string[] }>; failed?: XsFailure }
  | { mode: 'write' | 'rm' | 'chmod'; failed?: XsFailure }
  | { mode: 'ls'; nodes: LsNode[]; failed?: XsFailure };

const bad = (msg: string) => new PvblkError('EINVAL', msg);

function checkPath(p: unknown, what: string): string {
  if (typeof p !== 'string') throw bad(`${what} must be a string`);
  // an empty path goes to XenStore like any other, which refuses it (EINVAL) for the tool to say as
  // xenstore-write says it ("could not write path "), not as a body this API could not read
  if (p.length > MAX_PATH) throw bad(`${what} is longer than ${MAX_PATH} bytes`);
  return p;
}

function checkPaths(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.length === 0) throw bad(`${what} must be a non-empty array of paths`);
  if (v.length > MAX_KEYS) throw bad(`${what}: at most ${MAX_KEYS} keys per request`);
  return v.map((p, i) => checkPath(p, `${what}[${i}]`));
}

/** Validates a request body (the operator's, but still checked: a bad one is a 400, never a throw). */
export function parseXsRequest(b: Record<string, unknown>): XsRequest {
  switch (b.mode) {
    case 'read':
    case 'exists':
    case 'list':
      return { mode: b.mode, paths: checkPaths(b.paths, 'paths') };
    case 'write': {
      if (!Array.isArray(b.pairs) || b.pairs.length === 0 || b.pairs.length > MAX_KEYS)
        throw bad(`pairs must be 1 to ${MAX_KEYS} [path, value] pairs`);
      const pairs = b.pairs.map((p: unknown, i): [string, string] => {
        if (!Array.isArray(p) || p.length !== 2 || typeof p[1] !== 'string')
          throw bad(`pairs[${i}] must be [path, value] with a string value`);
        return [checkPath(p[0], `pairs[${i}][0]`), p[1]];
      });
      return { mode: 'write', pairs };
    }
    case 'rm':
      return { mode: 'rm', paths: checkPaths(b.paths, 'paths'), tidy: b.tidy === true };
    case 'chmod': {
      if (!Array.isArray(b.perms) || b.perms.length === 0 || b.perms.some((p) => typeof p !== 'string'))
        throw bad('perms must be a non-empty array of strings like "n0", "r1"');
      return {
        mode: 'chmod',
        path: checkPath(b.path, 'path'),
        perms: b.perms as string[],
        upto: b.upto === true,
        recurse: b.recurse === true,
      };
    }
    case 'ls':
      return { mode: 'ls', path: checkPath(b.path ?? '/', 'path'), perms: b.perms === true };
    default:
      throw bad(
        `mode must be one of read, exists, list, write, rm, chmod, ls (got ${JSON.stringify(b.mode)})`,
      );
  }
}

/** A failure as the tool reports it; anything that is not a XenStore errno is a bug and rethrown. */
class OpFailed extends Error {
  constructor(readonly failure: XsFailure) {
    super(failure.message);
  }
}

function failure(path: string, e: unknown): OpFailed {
  if (!isPvblkError(e)) throw e;
  return new OpFailed({ path, errno: e.code, message: e.detail });
}

/** Runs one tool invocation against Dom0's XenStore. */
export async function runXsRequest(xs: XenStoreOps, r: XsRequest): Promise<XsResult> {
  const guard = async <T>(path: string, op: () => Promise<T>): Promise<T> => {
    try {
      return await op();
    } catch (e) {
      throw failure(path, e);
    }
  };
  /** The tool's transaction: everything or nothing; EAGAIN restarts it (xs.transaction does). */
  const inTransaction = async <T>(
    wanted: boolean,
    fn: (tx: number | undefined) => Promise<T>,
  ): Promise<{ value?: T; failed?: XsFailure }> => {
    try {
      return { value: wanted ? await xs.transaction((tx) => fn(tx)) : await fn(undefined) };
    } catch (e) {
      if (e instanceof OpFailed) return { failed: e.failure };
      throw e;
    }
  };
  switch (r.mode) {
    case 'read': {
      const values: Array<{ path: string; value: string }> = [];
      const out = await inTransaction(r.paths.length > 1, async (tx) => {
        values.length = 0;
        for (const p of r.paths) values.push({ path: p, value: await guard(p, () => xs.read(p, tx)) });
      });
      return { mode: 'read', values, ...(out.failed ? { failed: out.failed } : {}) };
    }
    case 'exists': {
      const out = await inTransaction(true, async (tx) => {
        for (const p of r.paths) await guard(p, () => xs.read(p, tx));
      });
      return { mode: 'exists', ...(out.failed ? { failed: out.failed } : {}) };
    }
    case 'list': {
      const lists: Array<{ path: string; children: string[] }> = [];
      const out = await inTransaction(true, async (tx) => {
        lists.length = 0;
        for (const p of r.paths) lists.push({ path: p, children: await guard(p, () => xs.directory(p, tx)) });
      });
      return { mode: 'list', lists, ...(out.failed ? { failed: out.failed } : {}) };
    }
    case 'write': {
      const out = await inTransaction(r.pairs.length > 1, async (tx) => {
        for (const [p, v] of r.pairs) await guard(p, () => xs.write(p, v, tx));
      });
      return { mode: 'write', ...(out.failed ? { failed: out.failed } : {}) };
    }
    case 'rm': {
      const out = await inTransaction(true, async (tx) => {
        for (const path of r.paths) {
          await guard(path, () => xs.rm(path, tx));
          if (!r.tidy) continue;
          // -t: remove parents that are left empty and have no value, up to the root
          let p = path;
          for (;;) {
            const slash = p.lastIndexOf('/');
            if (slash <= 0) break;
            p = p.slice(0, slash);
            const v = await xs.tryRead(p, tx).catch(() => null);
            if (v !== '') break;
            const children = await xs.directory(p, tx).catch(() => null);
            if (children === null || children.length > 0) break;
            await guard(p, () => xs.rm(p, tx));
          }
        }
      });
      return { mode: 'rm', ...(out.failed ? { failed: out.failed } : {}) };
    }
    case 'chmod': {
      const out = await inTransaction(true, async (tx) => {
        const set = (p: string) => guard(p, () => xs.setPerms(p, r.perms, tx));
        const down = async (p: string): Promise<void> => {
          await set(p);
          const children = await xs.directory(p, tx).catch(() => [] as string[]);
          for (const c of children) await down(p === '/' ? `/${c}` : `${p}/${c}`);
        };
        if (r.recurse) await down(r.path);
        else await set(r.path);
        if (r.upto) {
          // -u: the same permissions on every parent (the real tool stops at a relative path's top)
          let p = r.path;
          for (let slash = p.lastIndexOf('/'); slash > 0; slash = p.lastIndexOf('/')) {
            p = p.slice(0, slash);
            await set(p);
          }
        }
      });
      return { mode: 'chmod', ...(out.failed ? { failed: out.failed } : {}) };
    }
    case 'ls': {
      const nodes: LsNode[] = [];
      const walk = async (path: string, depth: number): Promise<void> => {
        let children: string[];
        try {
          children = await xs.directory(path);
        } catch (e) {
          // a node that disappears while walking is skipped; the top one must exist
          if (depth > 0 && isPvblkError(e) && e.code === 'ENOENT') return;
          throw failure(path, e);
        }
        for (const name of children) {
          if (nodes.length >= MAX_LS_NODES)
            throw new OpFailed({ path, errno: 'E2BIG', message: `more than ${MAX_LS_NODES} nodes` });
          const full = `${path}${path.endsWith('/') ? '' : '/'}${name}`;
          const value = await xs.tryRead(full).catch(() => null);
          const node: LsNode = { path: full, name, depth, value };
          if (r.perms) node.perms = await xs.getPerms(full).catch(() => null);
          nodes.push(node);
          await walk(full, depth + 1);
        }
      };
      try {
        await walk(r.path, 0);
      } catch (e) {
        if (e instanceof OpFailed) return { mode: 'ls', nodes, failed: e.failure };
        throw e;
      }
      return { mode: 'ls', nodes };
    }
  }
}

/** Watches that may stream at once (each is one Dom0 watch). */
export const MAX_WATCH_STREAMS = 16;
