/**
 * Clean shutdown on SIGINT/SIGTERM (Ctrl-C, `docker compose down`): run the cleanup once, exit with its
 * status, and give up after a deadline so a stuck cleanup cannot keep a container alive.
 */
export function onShutdown(cleanup: (signal: string) => Promise<void>, deadlineMs = 5000): void {
  let shuttingDown = false;
  const handler = (signal: NodeJS.Signals) => {
    if (shuttingDown) return;
    shuttingDown = true;
    const timer = setTimeout(() => process.exit(1), deadlineMs);
    timer.unref();
    cleanup(signal).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
