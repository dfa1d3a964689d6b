/**
 * End to end on a single-node Docker Swarm: `docker stack deploy` of docker-compose.yml with its swarm
 * override (hypervisor, host, guests, a driver domain on the overlay network, credentials as swarm
 * secrets from docker/swarm-secrets.sh), the seed transcript from a guest, `docker service scale` to
 * three guests with one of them served by the driver domain, services restarted by the swarm that
 * rejoin without losing acknowledged writes, the stack removed and the swarm left.
 *
 * Skipped (and reported as skipped) when there is no working Docker engine. With an engine, a node
 * that is not in a swarm is made one (`docker swarm init --advertise-addr 127.0.0.1`) and leaves it at
 * the end; a node already in a swarm must be a manager, and stays. Node labels the test adds, the
 * stack, its secrets and its volumes are removed whatever happens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectInOrder,
  expectKernelFormat,
  GUEST_SEED,
  guestArgv,
  HOST_SEED,
  nodeImage,
  noEngine,
  run,
  runOk,
  runHost,
  staleRuns,
  until,
  type Result,
} from './helpers.ts';

const reason = noEngine();
if (reason) console.warn(`test/docker/swarm.test.ts skipped: ${reason}`);

const STACK = `pvblkt${process.pid}h${runHost()}`;
const IMAGE = 'pvblk:local';
const ENV: NodeJS.ProcessEnv = {
  PVBLK_SECRETS: STACK,
  PVBLK_IMAGE: IMAGE,
  PVBLK_DISK: 'dif=1 opts=34',
  PVBLK_GUESTS: '1',
  PVBLK_DRIVER_DOMAINS: '1',
};
const LABELS = ['pvblk.dom0', 'pvblk.storage'];
/** The filter that picks what belongs to this test's stack (services, containers, networks). */
const BY_STACK = byStack(STACK);

function byStack(stack: string): string[] {
  return ['-f', `label=com.docker.stack.namespace=${stack}`];
}

const docker = (args: string[], ms = 60_000) => run('docker', args, ms, ENV);
const dockerOk = (args: string[], ms = 60_000) => runOk('docker', args, ms, ENV);

/** Containers of one service of the stack (this node), healthy ones only if asked. */
async function containers(service: string, healthyOnly = false): Promise<string[]> {
  const r = await docker([
    'ps',
    '-q',
    '-f',
    `label=com.docker.swarm.service.name=${STACK}_${service}`,
    ...(healthyOnly ? ['-f', 'health=healthy'] : []),
  ]);
  return r.stdout.split('\n').filter(Boolean);
}

async function healthy(service: string, count: number, ms = 120_000): Promise<string[]> {
  return until(
    `${count} healthy ${service} task(s)`,
    ms,
    async () => {
      const all = await containers(service);
      const ok = await containers(service, true);
      return all.length === count && ok.length === count ? ok : undefined;
    },
    async () => (await docker(['service', 'ps', '--no-trunc', `${STACK}_${service}`])).stdout,
  );
}

async function serviceLogs(service: string): Promise<string> {
  return (await docker(['service', 'logs', '--raw', `${STACK}_${service}`], 60_000)).stdout;
}

/** guest name → its container. */
async function guestsByName(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const c of await containers('guest')) {
    const r = await docker(['exec', c, 'sh', '-c', 'echo $PVBLK_GUEST_NAME']);
    out.set(r.stdout.trim(), c);
  }
  return out;
}

function inGuest(container: string, line: string): Promise<Result> {
  return docker(['exec', container, 'pvblk', 'guest', ...guestArgv(line)], 90_000);
}

/** GET /guests on the host API as the operator, from inside the host's task. */
async function listGuests(): Promise<{
  placement: Record<string, string>;
  domains: Array<{ domid: number; name: string; connected: boolean }>;
}> {
  const [host] = await containers('host');
  const r = await dockerOk([
    'exec',
    host,
    'node',
    '-e',
    "const t = require('fs').readFileSync('/run/secrets/pvblk_operator_token', 'utf8').trim(); fetch('http://127.0.0.1:7481/guests', { headers: { authorization: 'Bearer ' + t } }).then(r => r.json()).then(j => console.log(JSON.stringify(j)))",
  ]);
  return JSON.parse(r.stdout) as Awaited<ReturnType<typeof listGuests>>;
}

async function writeRandom(container: string, seek: number): Promise<string> {
  const w = await inGuest(
    container,
    `dd if=/dev/urandom of=/tmp/p bs=4096 count=16 && dd if=/tmp/p of=/dev/xvda bs=4096 count=16 seek=${seek} oflag=direct conv=fsync && md5sum /tmp/p`,
  );
  expect(w.code, w.stderr).toBe(0);
  return /^([0-9a-f]{32}) {2}\/tmp\/p$/m.exec(w.stdout)![1];
}

async function readBack(container: string, skip: number): Promise<string> {
  const r = await inGuest(
    container,
    `dd if=/dev/xvda of=/tmp/q bs=4096 count=16 skip=${skip} iflag=direct && md5sum /tmp/q`,
  );
  expect(r.code, r.stderr).toBe(0);
  return /^([0-9a-f]{32}) {2}\/tmp\/q$/m.exec(r.stdout)?.[1] ?? r.stdout;
}

describe.skipIf(reason !== null)('docker swarm: the pvblk stack as services', () => {
  let initialised = false;
  let node = '';
  let hostname = '';
  const addedLabels: string[] = [];
  let removed = false;

  /** Removes a stack of this test (this run's, or one a killed run left) and what it created. */
  async function removeStack(stack = STACK): Promise<void> {
    const ofStack = byStack(stack);
    await docker(['stack', 'rm', stack], 60_000);
    /** IDs a listing found; undefined when the listing itself failed (which is not "none left"). */
    const listed = async (args: string[]): Promise<string[] | undefined> => {
      const r = await docker(args);
      return r.code === 0 ? r.stdout.split('\n').filter(Boolean) : undefined;
    };
    const said = (r: Result): string => r.stdout + r.stderr;
    await until(
      "the stack's containers to be gone",
      90_000,
      async () => ((await listed(['ps', '-aq', ...ofStack]))?.length === 0 ? true : undefined),
      async () =>
        said(await docker(['ps', '-a', '--format', '{{.Names}} {{.Status}}', ...ofStack])) +
        said(await docker(['stack', 'ps', '--no-trunc', stack])),
    );
    // `docker stack rm` can leave an overlay network behind once its containers are gone (moby/moby
    // #30064): what a user does then is remove it by hand, and so does this, until none is left.
    let lastError = '';
    await until(
      "the stack's networks to be gone",
      60_000,
      async () => {
        const nets = await listed(['network', 'ls', '-q', ...ofStack]);
        for (const n of nets ?? []) {
          const r = await docker(['network', 'rm', n]);
          if (r.code !== 0) lastError = r.stderr.trim();
        }
        return nets?.length === 0 ? true : undefined;
      },
      async () =>
        said(await docker(['network', 'ls', ...ofStack])) + `last docker network rm error: ${lastError}`,
    );
    for (const v of ['host-data', 'dd-data']) await docker(['volume', 'rm', '-f', `${stack}_${v}`]);
    for (const s of ['dom0_secret', 'operator_token', 'guest_token', 'driver_domain_token'])
      await docker(['secret', 'rm', `${stack}_${s}`]);
  }

  async function cleanup(): Promise<void> {
    if (!removed) await removeStack().catch((e: Error) => console.warn(`swarm test: ${e.message}`));
    removed = true;
    for (const l of addedLabels.splice(0)) await docker(['node', 'update', '--label-rm', l, node]);
    if (initialised) {
      await docker(['swarm', 'leave', '--force'], 60_000);
      initialised = false;
    }
  }

  beforeAll(async () => {
    const state = (await dockerOk(['info', '--format', '{{.Swarm.LocalNodeState}}'])).stdout.trim();
    if (state === 'inactive') {
      await dockerOk(['swarm', 'init', '--advertise-addr', '127.0.0.1'], 60_000);
      initialised = true;
    } else if (state !== 'active') {
      throw new Error(`the engine's swarm state is "${state}"; the test needs an active swarm or none`);
    }
    const info = (
      await dockerOk(['info', '--format', '{{.Swarm.NodeID}} {{.Swarm.ControlAvailable}} {{.Name}}'])
    ).stdout
      .trim()
      .split(' ');
    [node, , hostname] = info;
    if (info[1] !== 'true')
      throw new Error('this node is in a swarm but not a manager: it cannot deploy a stack');
    // what a killed run of this test left running: its services would run beside this run's
    const stacks = await docker(['stack', 'ls', '--format', '{{.Name}}']);
    for (const stale of staleRuns(stacks.stdout.split('\n'), /^pvblkt(\d+)h([0-9a-f]{8})$/)) {
      console.warn(`swarm test: removing ${stale}, left by a test run that no longer runs`);
      await removeStack(stale);
    }
    const labels = JSON.parse(
      (await dockerOk(['node', 'inspect', '--format', '{{json .Spec.Labels}}', node])).stdout,
    ) as Record<string, string> | null;
    for (const l of LABELS) {
      if (labels?.[l] === 'true') continue;
      await dockerOk(['node', 'update', '--label-add', `${l}=true`, node]);
      addedLabels.push(l);
    }
    const base = await nodeImage();
    const b = await dockerOk(
      ['build', '-q', '-f', 'docker/Dockerfile', '--build-arg', `NODE_IMAGE=${base}`, '-t', IMAGE, '.'],
      600_000,
    );
    console.warn(`swarm test: built ${IMAGE} on ${base} in ${(b.ms / 1000).toFixed(1)} s`);
    await runOk('bash', ['docker/swarm-secrets.sh', '--prefix', STACK], 120_000, ENV);
  }, 900_000);

  afterAll(cleanup, 300_000);

  it('`docker stack deploy` runs the stack; a guest prints the seed transcript, the host its console lines', async () => {
    const d = await dockerOk(
      [
        'stack',
        'deploy',
        '--resolve-image',
        'never',
        '-c',
        'docker-compose.yml',
        '-c',
        'docker-compose.swarm.yml',
        STACK,
      ],
      120_000,
    );
    console.warn(`swarm test: deployed in ${(d.ms / 1000).toFixed(1)} s`);
    const [g] = await healthy('guest', 1);
    const r = await inGuest(g, 'dd if=/dev/zero of=/dev/xvda');
    expect(r.code).toBe(1);
    expectInOrder(r.stdout + r.stderr, GUEST_SEED);
    const hostLog = await until('the host console lines', 30_000, async () => {
      const l = await serviceLogs('host');
      return l.includes(HOST_SEED.at(-1)!) ? l : undefined;
    });
    expectInOrder(hostLog, HOST_SEED);
    expectKernelFormat(hostLog, HOST_SEED);
    // credentials are swarm secrets: in /run/secrets of the services that need them, nowhere else
    expect((await docker(['exec', g, 'ls', '/run/secrets'])).stdout.split('\n').filter(Boolean)).toEqual([
      'pvblk_guest_token',
    ]);
    const hist = (await dockerOk(['image', 'history', '--no-trunc', IMAGE])).stdout;
    expect(hist).not.toMatch(/pvblk-group\.|run\/secrets\/pvblk_/);
  });

  it('`docker service scale` to three guests, each its own domain and vbd; the driver domain serves one', async () => {
    const ddName = `dd-${hostname}`;
    await until('the driver domain to be up', 90_000, async () =>
      (await serviceLogs('driver-domain')).includes(`driver domain ${ddName} ready`) ? true : undefined,
    );
    await dockerOk(['service', 'scale', '--detach', `${STACK}_guest=3`]);
    await healthy('guest', 3);
    const list = await listGuests();
    const connected = list.domains.filter((x) => x.connected).map((x) => x.name);
    expect(connected).toEqual(expect.arrayContaining(['guest1', 'guest2', 'guest3', ddName]));
    expect(list.placement.guest1).toBe('Domain-0');
    expect(Object.values(list.placement).sort()).toEqual(['Domain-0', 'Domain-0', ddName]);
    const onDd = Object.keys(list.placement).find((k) => list.placement[k] === ddName)!;
    const byName = await guestsByName();
    for (const [name, c] of byName) {
      const w = await inGuest(c, 'dd if=/dev/zero of=/dev/xvda bs=4096 count=8 seek=2000 oflag=direct');
      expect(w.code, `${name}: ${w.stderr}`).toBe(0);
    }
    const domid = list.domains.find((x) => x.name === onDd)!.domid;
    expect(await serviceLogs('driver-domain')).toContain(`vbd-${domid}-51712 connected to sdg`);
  });

  it('a host restarted by the swarm rejoins under running guests: no acknowledged write lost', async () => {
    const byName = await guestsByName();
    const sums = new Map<string, string>();
    for (const [name, c] of byName) sums.set(name, await writeRandom(c, 100));
    const [before] = await containers('host');
    await dockerOk(['service', 'update', '--force', '--detach', `${STACK}_host`]);
    await until(
      'a new host task, healthy',
      180_000,
      async () => {
        const now = await containers('host', true);
        return now.length === 1 && now[0] !== before ? true : undefined;
      },
      async () => (await docker(['service', 'ps', '--no-trunc', `${STACK}_host`])).stdout,
    );
    // the same guest tasks: they re-handshake where they are
    expect(new Set((await guestsByName()).values())).toEqual(new Set(byName.values()));
    for (const [name, c] of byName) expect(await readBack(c, 100), name).toBe(sums.get(name));
  });

  it('a driver domain restarted by the swarm: its guest is booted again and finds its data', async () => {
    const ddName = `dd-${hostname}`;
    const placed = (await listGuests()).placement;
    const onDd = Object.keys(placed).find((k) => placed[k] === ddName)!;
    const c = (await guestsByName()).get(onDd)!;
    const sum = await writeRandom(c, 300);
    await dockerOk(['service', 'update', '--force', '--detach', `${STACK}_driver-domain`]);
    const again = await until(`${onDd} on a new task`, 180_000, async () => {
      const now = await guestsByName();
      const n = now.get(onDd);
      return n && n !== c && (await containers('guest', true)).includes(n) ? n : undefined;
    });
    expect(await readBack(again, 300)).toBe(sum);
    expect((await listGuests()).placement[onDd]).toBe(ddName);
  });

  it('`docker stack rm`, and the clean-up a user does after it, leave no service, container, network, volume or secret of the stack', async () => {
    await removeStack();
    removed = true;
    expect((await docker(['service', 'ls', '-q', ...BY_STACK])).stdout.trim()).toBe('');
    expect((await docker(['secret', 'ls', '-q', '-f', `name=${STACK}_`])).stdout.trim()).toBe('');
    for (const what of ['ps -a', 'network ls']) {
      const r = await dockerOk([...what.split(' '), '-q', ...BY_STACK]);
      expect(r.stdout.trim(), `docker ${what}`).toBe('');
    }
    for (const v of ['host-data', 'dd-data']) {
      const r = await docker(['volume', 'inspect', `${STACK}_${v}`]);
      expect(r.code, `volume ${STACK}_${v} is still there`).not.toBe(0);
    }
    const left = initialised;
    await cleanup();
    // a swarm this test made is left; one that was there stays
    expect((await docker(['info', '--format', '{{.Swarm.LocalNodeState}}'])).stdout.trim()).toBe(
      left ? 'inactive' : 'active',
    );
  });
});
