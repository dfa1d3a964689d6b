/**
 * The control socket of a local stack (`<run dir>/stack.ctl`), served by the `pvblk up`/`run` process:
 * `pvblk status` asks it what runs, `pvblk down` asks it to stop and then waits for the connection to
 * close — the kernel closes it when that process exits, however it exits, so nothing is polled.
 *
 *   → {"op":"status"}   ← {"status": {...}}
 *   → {"op":"down"}     ← {"stopping": true}   … then the connection closes when the stack has stopped
 */
import { createConnection, createServer, type Server } from 'node:net';
import { rm } from 'node:fs/promises';
import { PvblkError } from '@pvblk/shared';

export interface StackControlHandlers {
  status(): unknown;
  down(): void;
}

export async function serveStackControl(path: string, h: StackControlHandlers): Promise<Server> {
  await rm(path, { force: true }); // the lock is ours: whatever socket is there belongs to a dead stack
  const server = createServer((sock) => {
    let buf = '';
    sock.on('error', () => {});
    sock.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      if (buf.length > 4096) return void sock.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let op: unknown;
      try {
        op = (JSON.parse(buf.slice(0, nl)) as { op?: unknown }).op;
      } catch {
        op = null;
      }
      buf = '';
      if (op === 'status') sock.end(JSON.stringify({ status: h.status() }) + '\n');
      else if (op === 'down') {
        // keep the connection open: it closes when this process exits
        sock.write(JSON.stringify({ stopping: true }) + '\n');
        h.down();
      } else sock.end(JSON.stringify({ error: 'unknown request (status or down)' }) + '\n');
    });
  });
  // no event loop hold: the stack's children keep the process alive, not this socket
  server.unref();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  return server;
}

/** Sends one request; for `down`, resolves once the stack's process has exited. */
export function askStack(path: string, op: 'status' | 'down'): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    let answer: Record<string, unknown> | null = null;
    sock.on('connect', () => sock.write(JSON.stringify({ op }) + '\n'));
    sock.on('error', (e: NodeJS.ErrnoException) =>
      reject(new PvblkError('ECONNREFUSED', `cannot reach the stack's control socket ${path}: ${e.code}`)),
    );
    sock.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl >= 0 && answer === null) {
        answer = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        if (op === 'status') sock.end();
      }
    });
    sock.on('close', () => {
      if (answer === null)
        reject(new PvblkError('ECONNRESET', `the stack closed its control socket ${path} without an answer`));
      else resolve(answer);
    });
  });
}
