/**
 * `pvblk hypervisor`: the broker process. Listens for domains on a WebSocket, serves /healthz and
 * /status, logs structured records, and stops cleanly on SIGINT/SIGTERM.
 */
import { startHypervisorServer, type HypervisorServerOptions } from './server.ts';
import { createLogger, onShutdown, resolveDom0Secret } from '@pvblk/runtime';

export interface HypervisorProcessOptions {
  host: string;
  port: number;
  /** Per-domain and per-address limits (see HypervisorOptions, HypervisorServerOptions). */
  limits?: Pick<
    HypervisorServerOptions,
    'maxDomains' | 'grants' | 'maxGuestEvtchnPort' | 'maxConnectionsPerAddress' | 'helloTimeoutMs'
  >;
  /** Dom0's credential; or read from `dom0SecretFile`. */
  dom0Secret?: string;
  dom0SecretFile?: string;
}

export async function runHypervisor(opts: HypervisorProcessOptions): Promise<void> {
  const log = createLogger('hypervisor');
  const dom0Credential = resolveDom0Secret(opts);
  const running = await startHypervisorServer({
    host: opts.host,
    port: opts.port,
    ...opts.limits,
    dom0Credential,
    log: (level, obj, msg) => log[level](obj, msg),
  });
  log.info(
    { event: 'ready', url: running.url, port: running.port, host: running.host },
    `hypervisor listening on ${running.url}`,
  );
  onShutdown(async (signal) => {
    log.info({ signal }, 'hypervisor shutting down');
    await running.close();
  });
}
