/**
 * `pvblk hypervisor`: the broker process. Listens for domains on a WebSocket, serves /healthz and
 * /status, logs structured records, and stops cleanly on SIGINT/SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { PvblkError } from '@pvblk/shared';
import { startHypervisorServer } from './server.ts';
import { createLogger, onShutdown } from './runtime/index.ts';

export interface HypervisorProcessOptions {
  host: string;
  port: number;
  /** Dom0's credential; or read from `dom0SecretFile`. */
  dom0Secret?: string;
  dom0SecretFile?: string;
}

/** Reads Dom0's credential from the options or the environment (PVBLK_DOM0_SECRET, PVBLK_DOM0_SECRET_FILE). */
export function resolveDom0Secret(
  opts: { dom0Secret?: string; dom0SecretFile?: string },
  env = process.env,
): string {
  const file = opts.dom0SecretFile ?? env.PVBLK_DOM0_SECRET_FILE;
  const secret = opts.dom0Secret ?? env.PVBLK_DOM0_SECRET ?? (file ? readSecretFile(file) : undefined);
  if (!secret) {
    throw new PvblkError(
      'EUSAGE',
      'no Dom0 credential: set PVBLK_DOM0_SECRET or PVBLK_DOM0_SECRET_FILE (pvblk up and docker compose generate one)',
    );
  }
  if (secret.length < 16)
    throw new PvblkError('EUSAGE', 'the Dom0 credential must be at least 16 characters');
  return secret;
}

function readSecretFile(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new PvblkError('EUSAGE', `cannot read the Dom0 credential file ${file}: ${(e as Error).message}`);
  }
}

export async function runHypervisor(opts: HypervisorProcessOptions): Promise<void> {
  const log = createLogger('hypervisor');
  const dom0Credential = resolveDom0Secret(opts);
  const running = await startHypervisorServer({
    host: opts.host,
    port: opts.port,
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
