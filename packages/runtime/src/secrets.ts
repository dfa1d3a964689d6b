/**
 * The two secrets of a pvblk system, read the same way by every process: from `<NAME>` in the
 * environment, or from the file named by `<NAME>_FILE` (compose secrets, a mounted volume). Neither is
 * ever taken from the command line, where `ps` would show it.
 */
import { readFileSync } from 'node:fs';
import { PvblkError } from '@pvblk/shared';

function readSecret(
  name: string,
  what: string,
  hint: string,
  env: NodeJS.ProcessEnv,
  value?: string,
  file?: string,
): string {
  const path = file ?? env[`${name}_FILE`];
  let secret = value ?? env[name];
  if (!secret && path) {
    try {
      secret = readFileSync(path, 'utf8').trim();
    } catch (e) {
      throw new PvblkError('EUSAGE', `cannot read the ${what} file ${path}: ${(e as Error).message}`);
    }
  }
  if (!secret) throw new PvblkError('EUSAGE', `no ${what}: set ${name} or ${name}_FILE${hint}`);
  return secret;
}

/** Dom0's credential (PVBLK_DOM0_SECRET[_FILE]), at least 16 characters. */
export function resolveDom0Secret(
  opts: { dom0Secret?: string; dom0SecretFile?: string } = {},
  env = process.env,
): string {
  const secret = readSecret(
    'PVBLK_DOM0_SECRET',
    'Dom0 credential',
    ' (pvblk up and docker compose generate one)',
    env,
    opts.dom0Secret,
    opts.dom0SecretFile,
  );
  if (secret.length < 16)
    throw new PvblkError('EUSAGE', 'the Dom0 credential must be at least 16 characters');
  return secret;
}

/** The provisioning token guests present to the host's management API (PVBLK_TOOLSTACK_TOKEN[_FILE]). */
export function resolveToolstackToken(env = process.env): string {
  return readSecret('PVBLK_TOOLSTACK_TOKEN', 'provisioning token', '', env);
}
