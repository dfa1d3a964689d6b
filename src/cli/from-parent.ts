/**
 * Option values a stack's supervisor gives its children after starting them. `pvblk up`, `run` and
 * `bench` start the hypervisor, Dom0 and the guests at once, so that each loads its code while the
 * others do (about 0.7 s of CPU each), rather than one after another. Dom0 needs the hypervisor's
 * address and a guest Dom0's API too, and neither is known until that process listens (port 0 picks a
 * free one). Such an option reads `@parent` on the child's command line (so `ps` still shows every
 * option), and the child asks for the value on its IPC channel once it is ready to hear it.
 *
 *   child → supervisor   {"type": "values?"}
 *   supervisor → child   {"type": "values", "values": {"--hypervisor": "ws://127.0.0.1:39313/", …}}
 *
 * The child asks first because a message that comes before anyone listens for it is lost. A child
 * whose supervisor goes away while it waits ends as any process still starting does (shutdown.ts).
 */
import { PvblkError } from '@pvblk/shared';

/** What an option given by the supervisor reads on the command line. */
export const FROM_PARENT = '@parent';

/**
 * Set in the environment of a child whose supervisor will answer: a process with an IPC channel to
 * something else (Node's `fork()`, a process manager) would otherwise ask and wait for ever.
 */
export const PARENT_GIVES_VALUES = 'PVBLK_PARENT_GIVES_VALUES';

let asked: Promise<Record<string, unknown>> | null = null;

function valuesOfParent(): Promise<Record<string, unknown>> {
  asked ??= new Promise((resolve) => {
    const on = (m: unknown) => {
      const msg = m as { type?: unknown; values?: unknown } | null;
      if (msg?.type !== 'values' || typeof msg.values !== 'object' || msg.values === null) return;
      process.off('message', on);
      resolve(msg.values as Record<string, unknown>);
    };
    process.on('message', on);
    // with a callback: a channel already closed is not an 'error' event (nobody listens for one);
    // its 'disconnect' ends the process (shutdown.ts)
    process.send!({ type: 'values?' }, undefined, undefined, () => {});
  });
  return asked;
}

/** `given`, or when it is `@parent` the value the supervisor gives for `option`. */
export async function fromParent(option: string, given: string): Promise<string> {
  if (given !== FROM_PARENT) return given;
  if (typeof process.send !== 'function' || process.env[PARENT_GIVES_VALUES] !== '1')
    throw new PvblkError(
      'EUSAGE',
      `${option} ${FROM_PARENT}: only the pvblk up, run or bench that started this process gives that value`,
    );
  const v = (await valuesOfParent())[option];
  if (typeof v !== 'string')
    throw new PvblkError('EINVAL', `${option} ${FROM_PARENT}: the supervisor gave no value for ${option}`);
  return v;
}
