/**
 * The guest's control socket: how `pvblk guest <command>` (from a second terminal, or through
 * `docker compose exec`) runs a command inside a running guest. A Unix socket speaking
 * newline-delimited JSON: the client sends one request, the guest streams the command's output and
 * the console's kernel messages in the order they happen, then the exit status.
 *
 *   → {"argv": ["dd", "if=/dev/zero", "of=/dev/xvda"]}   or   {"line": "echo 0 > /sys/…"}
 *   ← {"out": "…"} | {"err": "…"} | {"kmsg": {"ts": 107.298247, "level": 3, "text": "…"}} | {"exit": 1}
 *   → {"signal": "SIGINT"}   (Ctrl-C on the client)
 */
import { createConnection, createServer, type Socket } from 'node:net';
import { mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PvblkError, type KernelMessage } from '@pvblk/shared';
import { commandSignal, type CommandSignal } from './guest/vfs.ts';

export type ControlRequest = { argv: string[] } | { line: string };

export interface ControlSession {
  stdout(text: string): void;
  stderr(text: string): void;
  kmsg(m: KernelMessage): void;
  signal: AbortSignal;
  /**
   * Resolves once the output owed to the client is below CONTROL_OUTPUT_HIGH (or the client is
   * gone): commands that may write without end (dd, cat) wait on it after each write, as they would
   * on a full pipe, so a client that reads slowly or not at all slows the command instead of growing
   * the guest's memory.
   */
  drain(): Promise<void>;
  /** The same, for what a command says on stderr (it goes over the same socket). */
  stderrDrain(): Promise<void>;
}

/** Bytes owed to a control client beyond which a command's writes wait for it (`drain`). */
export const CONTROL_OUTPUT_HIGH = 1 << 20;
/**
 * Bytes owed beyond which the console's kernel messages are dropped and counted, as printk drops
 * what a slow console cannot take ("** N printk messages dropped **", printed once it can again).
 */
export const CONTROL_KMSG_DROP_AT = 4 << 20;
/**
 * Bytes owed beyond which the client is taken for one that does not read: its command is
 * interrupted and the connection closed. Only output that nothing waits on can get there (a command
 * that writes a lot without `drain`).
 */
export const CONTROL_OUTPUT_MAX = 64 << 20;
/** Sessions served at once; one more is told so and closed. */
export const CONTROL_MAX_SESSIONS = 64;
/** How long a connection may stay without sending its request. */
export const CONTROL_REQUEST_TIMEOUT_MS = 30_000;

export type ControlHandler = (req: ControlRequest, s: ControlSession) => Promise<number>;

function parseRequest(line: string): ControlRequest | string {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return 'request is not JSON';
  }
  if (typeof v !== 'object' || v === null) return 'request is not an object';
  const o = v as Record<string, unknown>;
  if (Array.isArray(o.argv) && o.argv.length > 0 && o.argv.every((a) => typeof a === 'string'))
    return { argv: o.argv as string[] };
  if (typeof o.line === 'string' && o.line.length > 0) return { line: o.line };
  return 'request needs argv (a non-empty array of strings) or line (a string)';
}

/** The signal a client's interrupt line names (`{"signal":"SIGTERM"}`); Ctrl-C's when it names none. */
function signalOfLine(line: string): CommandSignal {
  try {
    return commandSignal((JSON.parse(line) as { signal?: unknown }).signal);
  } catch {
    return 'SIGINT';
  }
}

/** True when a live guest serves `path` (a socket file nobody listens on is left by a dead guest). */
export function controlSocketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection(path);
    sock.on('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.on('error', () => resolve(false));
  });
}

export interface ControlServer {
  readonly path: string;
  /**
   * Stops accepting commands, interrupts the running ones as Ctrl-C would (dd prints its statistics,
   * the client gets the output and the exit status), waits up to `graceMs` for them, removes the socket.
   */
  close(graceMs?: number): Promise<void>;
}

export interface ControlServerOptions {
  /** Sessions served at once (CONTROL_MAX_SESSIONS). */
  maxSessions?: number;
  /** How long a connection may stay without its request, ms (CONTROL_REQUEST_TIMEOUT_MS). */
  requestTimeoutMs?: number;
}

export async function startControlServer(
  path: string,
  handler: ControlHandler,
  opts: ControlServerOptions = {},
): Promise<ControlServer> {
  const maxSessions = opts.maxSessions ?? CONTROL_MAX_SESSIONS;
  const requestTimeoutMs = opts.requestTimeoutMs ?? CONTROL_REQUEST_TIMEOUT_MS;
  await mkdir(dirname(path), { recursive: true });
  if (await controlSocketAnswers(path))
    throw new PvblkError('EBUSY', `another guest already serves the control socket ${path}`);
  await rm(path, { force: true }); // left by a guest that is gone
  const running = new Map<AbortController, Promise<void>>();
  let sessions = 0;
  const server = createServer((sock: Socket) => {
    let buf = '';
    let started = false;
    const ac = new AbortController();
    const send = (o: unknown) => {
      if (sock.destroyed) return;
      sock.write(JSON.stringify(o) + '\n');
      if (sock.writableLength > CONTROL_OUTPUT_MAX) {
        ac.abort();
        sock.destroy();
      }
    };
    /** The command did not run: why, and exit status 2; nothing the client sends after is read. */
    const refuse = (why: string) => {
      if (sock.writableEnded) return;
      send({ err: `control: ${why}\n` });
      send({ exit: 2 });
      sock.end();
    };
    let kmsgDropped = 0;
    const kmsg = (m: KernelMessage) => {
      if (sock.writableLength > CONTROL_KMSG_DROP_AT) {
        kmsgDropped++;
        return;
      }
      const ts = Number(m.ts.toFixed(6));
      if (kmsgDropped > 0)
        send({ kmsg: { ts, level: 4, text: `** ${kmsgDropped} printk messages dropped **` } });
      kmsgDropped = 0;
      send({ kmsg: { ts, level: m.level, text: m.text } });
    };
    const drain = () =>
      sock.destroyed || sock.writableLength < CONTROL_OUTPUT_HIGH
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            const done = () => {
              sock.off('drain', done);
              sock.off('close', done);
              resolve();
            };
            sock.on('drain', done);
            sock.on('close', done);
          });
    // a session ends when its command has answered, or when its client goes, whichever is first
    sessions++;
    let left = false;
    const leave = () => {
      if (!left) sessions--;
      left = true;
    };
    // before anything can fail: a socket error with no listener would take the guest down
    sock.on('error', () => ac.abort());
    sock.on('close', () => {
      ac.abort();
      leave();
    });
    if (sessions > maxSessions) return refuse(`the guest serves ${maxSessions} sessions already`);
    // a deadline, not an idle timeout: a client sending a byte now and then does not keep its place
    const deadline = setTimeout(
      () => refuse(`no request within ${requestTimeoutMs / 1000} s`),
      requestTimeoutMs,
    );
    sock.once('close', () => clearTimeout(deadline));
    sock.on('data', (chunk) => {
      if (sock.writableEnded && !started) return;
      buf += chunk.toString('utf8');
      if (buf.length > 1 << 20) return refuse('request too long');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (started) {
          if (line.includes('"signal"')) ac.abort(signalOfLine(line));
          continue;
        }
        started = true;
        clearTimeout(deadline);
        const req = parseRequest(line);
        if (typeof req === 'string') return refuse(req);
        const done = handler(req, {
          stdout: (text) => send({ out: text }),
          stderr: (text) => send({ err: text }),
          kmsg,
          signal: ac.signal,
          drain,
          // stdout and stderr share the socket
          stderrDrain: drain,
        })
          .then(
            (code) => {
              send({ exit: code });
              sock.end();
            },
            (e: Error) => {
              send({ err: `control: ${e.message}\n` });
              send({ exit: 1 });
              sock.end();
            },
          )
          .finally(() => {
            running.delete(ac);
            leave();
          });
        running.set(ac, done);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  return {
    path,
    async close(graceMs = 2000) {
      server.close();
      for (const ac of running.keys()) ac.abort();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(running.values()),
        new Promise((r) => (timer = setTimeout(r, graceMs))),
      ]);
      clearTimeout(timer);
      await rm(path, { force: true });
    },
  };
}

export interface GuestCommandStreams {
  stdout(text: string): void;
  stderr(text: string): void;
  kmsg(m: KernelMessage): void;
}

/** Runs a command in the guest listening on `path`; resolves to its exit status. */
export function runInGuest(
  path: string,
  req: ControlRequest,
  streams: GuestCommandStreams,
  signal?: AbortSignal,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    let exit: number | null = null;
    // the guest reads its first line as the command: an interrupt goes after it, never before
    let asked = false;
    const interrupt = () => {
      if (asked && !sock.destroyed)
        sock.write(JSON.stringify({ signal: commandSignal(signal?.reason) }) + '\n');
    };
    sock.on('connect', () => {
      sock.write(JSON.stringify(req) + '\n');
      asked = true;
      if (signal?.aborted) interrupt();
    });
    signal?.addEventListener('abort', interrupt);
    sock.on('error', (e: NodeJS.ErrnoException) => {
      const why: Record<string, string> = {
        ENOENT: 'no such socket (is the guest running? start one with `pvblk up`)',
        ECONNREFUSED: 'nobody listens on it (the guest that made it is gone)',
        EACCES: 'permission denied',
      };
      reject(
        new PvblkError(
          'ECONNREFUSED',
          `cannot reach the guest's control socket ${path}: ${why[e.code ?? ''] ?? e.code ?? e.message}`,
        ),
      );
    });
    sock.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let m: { out?: string; err?: string; kmsg?: KernelMessage; exit?: number };
        try {
          m = JSON.parse(line) as typeof m;
        } catch {
          continue; // not the guest's protocol: ignored, the exit status decides
        }
        if (m.out !== undefined) streams.stdout(m.out);
        else if (m.err !== undefined) streams.stderr(m.err);
        else if (m.kmsg !== undefined) streams.kmsg(m.kmsg);
        else if (m.exit !== undefined) exit = m.exit;
      }
    });
    sock.on('close', () => {
      // a signal lives longer than a command (a bench interrupts every run of its guests with one)
      signal?.removeEventListener('abort', interrupt);
      if (exit === null)
        reject(
          new PvblkError(
            'ECONNRESET',
            `the guest closed ${path} before the command finished (it stopped or was killed)`,
          ),
        );
      else resolve(exit);
    });
  });
}
