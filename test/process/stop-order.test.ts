/**
 * How a supervisor stops its processes: by tiers, highest first, each tier once the one before has
 * exited. Checked on the relay baseline's three real processes, whose tiers are not their roles'
 * (they are all `pvblk bench`): every SIGTERM and every exit is recorded in the order it happens, so
 * a supervisor that signalled a lower tier before the higher one had gone would be seen doing it.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { RelayClientSpec } from '../../src/cli/bench-relay.ts';
import type { StackChild } from '../../src/cli/stack.ts';

// A supervisor starts its children from the script its own process runs (`pvblk`, wherever it is
// installed); in this test that is vitest's worker, so it is told it runs bin/pvblk.mjs — before the
// modules that read it are loaded.
process.argv[1] = fileURLToPath(new URL('../../bin/pvblk.mjs', import.meta.url));
const { RELAY_TIER } = await import('../../src/cli/bench-baseline.ts');
const { baseEnv } = await import('../../src/cli/child-env.ts');
const { Supervisor } = await import('../../src/cli/stack.ts');

describe('Supervisor.stopAll', () => {
  it('stops the relay by its tiers: the client, then the server, then the router, each after the one before has exited', async () => {
    const events: string[] = [];
    let clientWarm!: () => void;
    const warm = new Promise<void>((res) => (clientWarm = res));
    const sup = new Supervisor({
      onRecord: (name, r) => {
        if (name === 'relay-client0' && r.event === 'warm') clientWarm();
      },
      onText: () => {},
    });
    const env = { ...baseEnv(null), PVBLK_TRACE: '' };
    const watched = (c: StackChild): StackChild => {
      const kill = c.proc.kill.bind(c.proc);
      c.proc.kill = (signal?: NodeJS.Signals | number) => {
        events.push(`${String(signal)} ${c.name}`);
        return kill(signal);
      };
      void c.exited.then((e) => events.push(`exit ${c.name}${e.signal ? ` (${e.signal})` : ''}`));
      return c;
    };
    const start = (name: string, args: string[], tier: number) =>
      watched(sup.start({ name, args: ['bench', ...args], env, tier }));
    try {
      const relay = start('relay', ['--relay-role=relay'], RELAY_TIER.router);
      const url = String((await relay.ready).url);
      const server = start('relay-server', ['--relay-role=server', `--relay-url=${url}`], RELAY_TIER.server);
      await server.ready;
      const spec: RelayClientSpec = {
        url,
        client: 0,
        bs: 4096,
        depth: 1,
        readPct: 0,
        runtimeMs: 1000,
        ios: null,
        warmupMs: 200,
        seed: 1,
        slices: 1,
      };
      start(
        'relay-client0',
        ['--relay-role=client', `--relay-spec=${JSON.stringify(spec)}`],
        RELAY_TIER.client,
      );
      // the client has run I/O through both and waits for its slice: all three are busy with each other
      await warm;
      expect(events).toEqual([]);
    } finally {
      await sup.stopAll();
    }
    // the client has nothing to close and dies of the signal; none needed the SIGKILL of the grace period
    expect(events).toEqual([
      'SIGTERM relay-client0',
      'exit relay-client0 (SIGTERM)',
      'SIGTERM relay-server',
      'exit relay-server',
      'SIGTERM relay',
      'exit relay',
    ]);
  });
});
