/**
 * End to end through docker compose: the image from docker/Dockerfile, the stack of docker-compose.yml
 * with its compose override (secrets, hypervisor, host, guest), the seed transcript from the guest's
 * boot workload, `exec` into a guest, scaling, guests that come back with their disks when `up` with
 * the publish override recreates the hypervisor and the host under them (and do not run the boot
 * workload again), and data that survives `down` + `up`.
 *
 * Skipped (and reported as skipped) when there is no working Docker engine or no compose; on CI,
 * docker/ci-prepare.sh installs and starts both first and picks the Node base image
 * (.ci/out/node-image). Every docker command is bounded by a timeout; the project is torn down with
 * `down -v` whatever happens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  composeProjects,
  detectCompose,
  expectInOrder,
  expectKernelFormat,
  GUEST_SEED,
  guestArgv,
  HOST_SEED,
  nodeImage,
  run,
  runHost,
  staleRuns,
  until,
  type Result,
} from './helpers.ts';

const PROJECT = `pvblk-test-${process.pid}-${runHost()}`;
const { compose, reason } = detectCompose();
if (reason) console.warn(`test/docker/compose.test.ts skipped: ${reason}`);

/** The same settings for every compose command of the test: one stack, the seed's disk and workload. */
const ENV: NodeJS.ProcessEnv = {
  PVBLK_DISK: 'dif=1 opts=34',
  PVBLK_WORKLOAD: 'dd if=/dev/zero of=/dev/xvda',
  PVBLK_GUEST_NAME: '@replica',
  COMPOSE_PROJECT_NAME: PROJECT,
  // the publish override on free ports of this machine's loopback
  PVBLK_HYPERVISOR_PUBLISH: '127.0.0.1:0',
  PVBLK_API_PUBLISH: '127.0.0.1:0',
};

/** The README's publish override, against the same project: base, compose override, publish. */
const PUBLISH = [
  '-f',
  'docker-compose.yml',
  '-f',
  'docker-compose.override.yml',
  '-f',
  'docker-compose.publish.yml',
];

/** A compose command against this test's project, or (for a killed run's leftovers) another one. */
function dc(args: string[], timeoutMs = 60_000, project = PROJECT): Promise<Result> {
  return run(compose![0], [...compose!.slice(1), '-p', project, ...args], timeoutMs, {
    ...ENV,
    COMPOSE_PROJECT_NAME: project,
  });
}

async function dcOk(args: string[], timeoutMs = 60_000): Promise<Result> {
  const r = await dc(args, timeoutMs);
  if (r.code !== 0) {
    throw new Error(
      `compose ${args.join(' ')} exited ${r.code}:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`,
    );
  }
  return r;
}

async function ids(service: string): Promise<string[]> {
  return (await dc(['ps', '-q', service], 30_000)).stdout.split('\n').filter(Boolean);
}

async function inspect(format: string, id: string): Promise<string> {
  return (await run('docker', ['inspect', '--format', format, id], 30_000)).stdout.trim();
}

/** Waits until `count` containers of a service report healthy. */
async function healthy(service: string, count: number, timeoutMs = 90_000): Promise<void> {
  await until(`${count} healthy ${service} container(s)`, timeoutMs, async () => {
    const all = await ids(service);
    if (all.length !== count) return undefined;
    const r = await run('docker', ['inspect', '--format', '{{.State.Health.Status}}', ...all], 30_000);
    const states = r.stdout.split('\n').filter(Boolean);
    return states.length === count && states.every((st) => st === 'healthy') ? true : undefined;
  });
}

async function logs(service: string): Promise<string> {
  return (await dcOk(['logs', '--no-color', service], 60_000)).stdout;
}

/** Runs a command in a guest through `pvblk guest`, as the README spells it. */
function guest(line: string, index = 1): Promise<Result> {
  return dc(['exec', '-T', `--index=${index}`, 'guest', 'pvblk', 'guest', ...guestArgv(line)], 60_000);
}

/** Writes 16 random blocks at `seek` (4 KiB blocks, O_DIRECT, fsync) and returns their md5. */
async function writeRandom(index: number, seek: number): Promise<string> {
  const w = await guest(
    `dd if=/dev/urandom of=/tmp/p bs=4096 count=16 && dd if=/tmp/p of=/dev/xvda bs=4096 count=16 seek=${seek} oflag=direct conv=fsync && md5sum /tmp/p`,
    index,
  );
  expect(w.code, w.stderr).toBe(0);
  const sum = /^([0-9a-f]{32}) {2}\/tmp\/p$/m.exec(w.stdout)?.[1];
  expect(sum, w.stdout).toBeDefined();
  return sum!;
}

async function readBack(index: number, skip: number): Promise<string> {
  const r = await guest(
    `dd if=/dev/xvda of=/tmp/q bs=4096 count=16 skip=${skip} iflag=direct && md5sum /tmp/q`,
    index,
  );
  expect(r.code, r.stderr).toBe(0);
  return /^([0-9a-f]{32}) {2}\/tmp\/q$/m.exec(r.stdout)?.[1] ?? r.stdout;
}

describe.skipIf(compose === null)('docker compose: the pvblk stack in containers', () => {
  let torn = false;

  beforeAll(async () => {
    const image = await nodeImage();
    ENV.NODE_IMAGE = image;
    await dc(['down', '-v', '--remove-orphans'], 60_000); // leftovers of a killed run with this pid
    // and of killed runs with other pids: their hypervisor would run (and be health-checked) beside ours
    for (const stale of staleRuns(await composeProjects(), /^pvblk-test-(\d+)-([0-9a-f]{8})$/)) {
      console.warn(`docker test: removing project ${stale}, left by a test run that no longer runs`);
      const r = await dc(['down', '-v', '--remove-orphans'], 90_000, stale);
      if (r.code !== 0) console.warn(`docker test: could not remove ${stale}: ${r.stderr.slice(-1000)}`);
    }
    const b = await dcOk(['build'], 600_000);
    console.warn(`docker test: built with NODE_IMAGE=${image} in ${(b.ms / 1000).toFixed(1)} s`);
  }, 900_000);

  afterAll(async () => {
    if (!torn && compose) {
      const r = await dc(['down', '-v', '--remove-orphans', '--timeout', '5'], 90_000);
      if (r.code !== 0) console.warn(`docker test: teardown failed: ${r.stderr.slice(-1000)}`);
    }
  }, 120_000);

  it("boots the stack; the guest's boot workload and the host print the seed transcript", async () => {
    await dcOk(['up', '-d'], 180_000);
    await healthy('guest', 1);
    const guestLog = await until('the guest workload to finish', 90_000, async () => {
      const l = await logs('guest');
      return l.includes('workload finished') ? l : undefined;
    });
    expectInOrder(guestLog, GUEST_SEED);
    // kernel messages are printed as dmesg would: [    t.tttttt] text
    expect(guestLog).toMatch(/\[\s*\d+\.\d{6}\] end_request: I\/O error, dev xvda, sector 4656/);
    const hostLog = await until('the host console lines', 30_000, async () => {
      const l = await logs('host');
      return l.includes(HOST_SEED.at(-1)!) ? l : undefined;
    });
    expectInOrder(hostLog, HOST_SEED);
    expectKernelFormat(hostLog, HOST_SEED);
    // the generated credentials: in their volumes, not in any log; a guest sees only its token
    const hv = await logs('hypervisor');
    expect(hv).toContain('hypervisor listening on ws://0.0.0.0:7480/');
    const secret = (await dcOk(['exec', '-T', 'host', 'cat', '/secrets/dom0/secret'])).stdout.trim();
    expect(secret.length).toBeGreaterThanOrEqual(16);
    for (const l of [hv, hostLog, guestLog]) expect(l).not.toContain(secret);
    const seen = await dc([
      'exec',
      '-T',
      'guest',
      'node',
      '-e',
      "process.exit(require('fs').existsSync('/secrets/dom0/secret') ? 1 : 0)",
    ]);
    expect(seen.code, 'a guest must not see the Dom0 secret').toBe(0);
  });

  it('`exec guest pvblk guest dd …` runs a command in the running guest', async () => {
    const r = await guest('dd if=/dev/zero of=/dev/xvda bs=4096 count=16 oflag=direct');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toContain('16+0 records out');
    expect(r.stdout + r.stderr).toContain('65536 bytes (66 kB) copied');
  });

  it('scales to two guests, each its own domain with its own disk', async () => {
    await dcOk(['up', '-d', '--scale', 'guest=2'], 180_000);
    await healthy('guest', 2);
    const r = await dcOk([
      'exec',
      '-T',
      'hypervisor',
      'node',
      '-e',
      "const t = require('fs').readFileSync('/secrets/dom0/secret', 'utf8').trim(); fetch('http://127.0.0.1:7480/status', { headers: { authorization: 'Bearer ' + t } }).then(r => r.json()).then(s => console.log(JSON.stringify(s.domains)))",
    ]);
    const domains = JSON.parse(r.stdout.trim()) as { domid: number; name: string; connected: boolean }[];
    expect(domains.length).toBeGreaterThanOrEqual(3);
    const guests = domains.filter((d) => d.domid !== 0 && d.connected);
    expect(guests.map((d) => d.name).sort()).toEqual(['guest1', 'guest2']);
    const second = await guest('dd if=/dev/zero of=/dev/xvda bs=4096 count=4 oflag=direct', 2);
    expect(second.code, second.stderr).toBe(0);
  });

  it('`up` with the publish override against the running stack brings every guest back with its disk; the boot workload does not run again', async () => {
    // in the first MiB, where the boot workload's dd writes: a second run would overwrite it
    const sums = [await writeRandom(1, 0), await writeRandom(2, 0)];
    const guests = await ids('guest');
    const restarts = await Promise.all(guests.map((id) => inspect('{{.RestartCount}}', id)));
    const hvBefore = (await ids('hypervisor'))[0];
    const up = await dcOk([...PUBLISH, 'up', '-d', '--scale', 'guest=2'], 180_000);
    // compose recreates the hypervisor and the host (they gain ports) and leaves the guests be …
    expect((await ids('hypervisor'))[0]).not.toBe(hvBefore);
    expect(await ids('guest')).toEqual(guests);
    // … which lose their hypervisor, exit, and are restarted by their policy
    await until('both guests restarted', 90_000, async () => {
      const now = await Promise.all(guests.map((id) => inspect('{{.RestartCount}}', id)));
      return now.every((n, i) => Number(n) > Number(restarts[i])) ? true : undefined;
    });
    await healthy('guest', 2);
    expect(await readBack(1, 0)).toBe(sums[0]);
    expect(await readBack(2, 0)).toBe(sums[1]);
    const guestLog = await logs('guest');
    expect(guestLog).toMatch(/the boot workload already ran on guest1 .*; not running it again/);
    expect(guestLog).toMatch(/the boot workload already ran on guest2 .*; not running it again/);
    // the published hypervisor answers on this machine, and knows both guests again
    const hv = (await ids('hypervisor'))[0];
    const port = /:(\d+)\s*$/m.exec((await run('docker', ['port', hv, '7480/tcp'], 30_000)).stdout)?.[1];
    expect(port, up.stderr).toBeDefined();
    const secret = (await dcOk(['exec', '-T', 'host', 'cat', '/secrets/dom0/secret'])).stdout.trim();
    const status = (await (
      await fetch(`http://127.0.0.1:${port}/status`, { headers: { authorization: `Bearer ${secret}` } })
    ).json()) as { domains: Array<{ name: string; connected: boolean; privileged: boolean }> };
    expect(
      status.domains
        .filter((d) => !d.privileged && d.connected)
        .map((d) => d.name)
        .sort(),
    ).toEqual(['guest1', 'guest2']);
  });

  it('keeps the disks across `down` and `up` (named volumes, stable guest names)', async () => {
    const sum = await writeRandom(1, 0);
    await dcOk(['down'], 90_000);
    await dcOk(['up', '-d'], 180_000);
    await healthy('guest', 1);
    expect(await readBack(1, 0)).toBe(sum);
  });

  it('`run --rm chaos` plays a seeded fault schedule against the stack: no violation of pvblk or the harness', async () => {
    // the stack's disk (dif=1 opts=34) has DIF but no DIX: no end-to-end PI, so the service's default
    // `chaos --attach --no-pi` fits it; process faults hit only the guest the chaos container starts
    // (chaos1), never the stack's own processes, and the disk's own opts=34 is turned off for it
    const r = await dc(['run', '--rm', '-e', 'PVBLK_CHAOS_SEED=2', 'chaos'], 300_000);
    expect(r.code, r.stdout.slice(-3000) + r.stderr.slice(-3000)).toBe(0);
    expect(r.stdout).toMatch(/^pvblk chaos: seed 2: 40 steps, 1 guest\(s\), PI off/m);
    expect(r.stdout).toMatch(/violations: 0 attributable to pvblk, 0 to the harness/);
    expect(r.stdout).toMatch(/^digest [0-9a-f]{16}/m);
    // the stack is untouched: its guest still reads back what it wrote
    await healthy('guest', 1);
  }, 360_000);

  it('`down -v` stops everything quickly', async () => {
    const r = await dcOk(['down', '-v', '--remove-orphans'], 90_000);
    torn = true;
    console.warn(`docker test: down -v took ${(r.ms / 1000).toFixed(1)} s`);
    expect(r.ms).toBeLessThan(15_000);
    const left = await dc(['ps', '-q'], 30_000);
    expect(left.stdout.trim()).toBe('');
  });
});
