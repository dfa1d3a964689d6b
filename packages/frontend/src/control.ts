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
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PvblkError, type KernelMessage } from '@pvblk/shared';

export type ControlRequest = { argv: string[] } | { line: string };

export interface ControlSession {
  stdout(text: string): void;
  stderr(text: string): void;
  kmsg(m: KernelMessage): void;
  signal: AbortSignal;
}

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

export async function startControlServer(path: string, handler: ControlHandler): Promise<Server> {
  await mkdir(dirname(path), { recursive: true });
  await rm(path, { force: true });
  const server = createServer((sock: Socket) => {
    let buf = '';
    let started = false;
    const ac = new AbortController();
    const send = (o: unknown) => {
      if (!sock.destroyed) sock.write(JSON.stringify(o) + '\n');
    };
    sock.on('error', () => ac.abort());
    sock.on('close', () => ac.abort());
    sock.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      if (buf.length > 1 << 20) {
        send({ err: 'control: request too long\n' });
        send({ exit: 2 });
        sock.end();
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (started) {
          if (line.includes('"signal"')) ac.abort();
          continue;
        }
        started = true;
        const req = parseRequest(line);
        if (typeof req === 'string') {
          send({ err: `control: ${req}\n` });
          send({ exit: 2 });
          sock.end();
          return;
        }
        handler(req, {
          stdout: (text) => send({ out: text }),
          stderr: (text) => send({ err: text }),
          kmsg: (m) => send({ kmsg: { ts: Number(m.ts.toFixed(6)), level: m.level, text: m.text } }),
          signal: ac.signal,
        }).then(
          (code) => {
            send({ exit: code });
            sock.end();
          },
          (e: Error) => {
            send({ err: `control: ${e.message}\n` });
            send({ exit: 1 });
            sock.end();
          },
        );
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  return server;
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
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    signal?.addEventListener('abort', () => sock.write(JSON.stringify({ signal: 'SIGINT' }) + '\n'));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      const hint =
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? ' (is the guest running? see `pvblk up`)' : '';
      reject(
        new PvblkError(
          'ECONNREFUSED',
          `cannot reach the guest's control socket ${path}: ${e.message}${hint}`,
        ),
      );
    });
    sock.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = JSON.parse(line) as { out?: string; err?: string; kmsg?: KernelMessage; exit?: number };
        if (m.out !== undefined) streams.stdout(m.out);
        else if (m.err !== undefined) streams.stderr(m.err);
        else if (m.kmsg !== undefined) streams.kmsg(m.kmsg);
        else if (m.exit !== undefined) exit = m.exit;
      }
    });
    sock.on('close', () => {
      if (exit === null)
        reject(
          new PvblkError('ECONNRESET', 'the guest closed the control connection without an exit status'),
        );
      else resolve(exit);
    });
  });
}
