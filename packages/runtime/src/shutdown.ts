/**
 * How a pvblk process ends: on SIGINT/SIGTERM/SIGHUP (Ctrl-C, `docker compose down`), or when the
 * `pvblk up`/`run` process that started it goes away. Either way the process's own cleanup runs once
 * (the guest flushes and closes its vbds, the host stops blkback, the hypervisor closes its server),
 * then it exits; a deadline keeps a stuck cleanup from keeping the process alive.
 *
 * "Its supervisor went away" is the IPC channel Node opens between a parent and a child spawned with
 * an `ipc` stdio entry: the kernel closes it when the parent dies, however it dies (SIGKILL included),
 * and the child sees `disconnect` — no polling. The same channel carries the supervisor's one request,
 * `flush`: the process answers with a record `{event: "flushed", id}` on its stdout. Log records are
 * written to fd 1 through one sink (log-sink.ts), in order, so the answer follows every record the
 * process logged before it: once the supervisor reads it, it has read them all. It is written
 * whatever the log level, and never dropped.
 *
 * Without a supervisor (docker, a process started by hand) only the signals apply.
 */
import { flushStdoutSink, stdoutSink } from './log-sink.ts';

type Cleanup = (reason: string) => Promise<void>;

let cleanup: Cleanup | null = null;
let deadlineMs = 5000;
let installed = false;
let ending = false;

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function end(reason: string, signal: NodeJS.Signals | null): void {
  if (ending) return;
  ending = true;
  if (!cleanup) {
    // Nothing to clean up yet (still starting): end as the signal would have, or quietly when the
    // supervisor is gone.
    for (const s of SIGNALS) process.removeAllListeners(s);
    // a re-raised signal ends the process without 'exit': what the log holds goes first
    flushStdoutSink();
    if (signal) process.kill(process.pid, signal);
    else process.exit(1);
    return;
  }
  const timer = setTimeout(() => process.exit(1), deadlineMs);
  timer.unref();
  cleanup(reason).then(
    () => process.exit(0),
    () => process.exit(1),
  );
}

/**
 * True when this process was started with an IPC channel that is already closed: its supervisor
 * died before anyone listened for `disconnect` (Node emits it once, to whoever listens then), e.g.
 * while this process was still loading its modules. `process.send` stays defined; `connected` is
 * false.
 */
function supervisorGone(): boolean {
  return typeof process.send === 'function' && !process.connected;
}

/** Installs the signal handlers and, under a supervisor, the channel watch. Idempotent. */
export function watchForShutdown(): void {
  if (installed) return;
  installed = true;
  for (const s of SIGNALS) process.on(s, () => end(s, s));
  if (supervisorGone()) {
    // nobody is left to stop us, and the event that would have said so has come and gone
    setImmediate(() => end('supervisor-gone', null));
  } else if (process.channel) {
    process.on('disconnect', () => end('supervisor-gone', null));
    process.on('message', (m: unknown) => {
      const req = m as { type?: unknown; id?: unknown } | null;
      if (req?.type === 'flush' && typeof req.id === 'number') {
        // held past the bound if need be: the supervisor waits for it
        stdoutSink().writeKept(JSON.stringify({ time: Date.now(), event: 'flushed', id: req.id }) + '\n');
      }
    });
  }
}

/** True when this process was started by a supervisor (`pvblk up`/`run`) that it watches. */
export function supervised(): boolean {
  return process.channel !== undefined;
}

/** Registers the process's cleanup (once it has something to clean up) and starts watching. */
export function onShutdown(fn: Cleanup, deadline = 5000): void {
  cleanup = fn;
  deadlineMs = deadline;
  watchForShutdown();
}
