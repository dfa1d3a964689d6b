// Entry point of the container image's bundle (docker/bundle.mjs): the pvblk CLI, plus what only a
// container needs: guest names that are stable per replica, a guest's key and own files kept on a
// volume by name, and a boot workload that runs once per guest.
//
// PVBLK_GUEST_NAME=@replica (what docker-compose.yml sets) names a guest after its compose replica
// number: guest1, guest2, … Compose names replicas <project>_guest_1 (v1) or <project>-guest-1 (v2) and
// Docker's DNS answers a container's own address with that name, so the name survives `down` + `up` and
// the guest gets its disk (and data) back. `@hostname` names it after the container id instead, which
// changes with every new container. Without a compose name (plain `docker run`) @replica falls back to
// the host name. On a swarm, docker-compose.swarm.yml names guests with the task slot instead
// (guest{{.Task.Slot}}), which swarm expands before the process starts.
import { promises as dns } from 'node:dns';
import { existsSync, mkdirSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';

async function replicaName(base) {
  const addrs = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && a.family === 'IPv4' && !a.internal)
    .map((a) => a.address);
  for (const addr of addrs) {
    try {
      const names = await Promise.race([
        // dns.reverse() consults /etc/hosts first (only the container id there): ask for the PTR record
        dns.resolve(`${addr.split('.').reverse().join('.')}.in-addr.arpa`, 'PTR'),
        new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), 3000).unref()),
      ]);
      for (const n of names) {
        const m = /[_-](\d+)$/.exec(n.split('.')[0]);
        if (m) return `${base}${Number(m[1])}`;
      }
    } catch {
      // no PTR record for this address: try the next one
    }
  }
  process.stderr.write(`pvblk: no compose replica name found; naming the guest after the host name\n`);
  return hostname();
}

const env = process.env;
const v = env.PVBLK_GUEST_NAME ?? '';
if (process.argv[2] === 'domu' && v.startsWith('@replica')) {
  // @replica → guest<N>; @replica:<base> → <base><N>
  env.PVBLK_GUEST_NAME = await replicaName(v.slice('@replica:'.length) || 'guest');
}
const guestName = () => (env.PVBLK_GUEST_NAME === '@hostname' ? hostname() : env.PVBLK_GUEST_NAME || 'guest');
// PVBLK_GUEST_KEYS_DIR: where each guest keeps the guest token its enrolment returned, one file per
// name, so the name boots again after `down` + `up` or a restart (docs/security-host.md)
const keys = env.PVBLK_GUEST_KEYS_DIR;
if (process.argv[2] === 'domu' && keys && !env.PVBLK_GUEST_TOKEN_FILE) {
  env.PVBLK_GUEST_TOKEN_FILE = `${keys}/${guestName()}`;
}
// PVBLK_GUEST_STATE_DIR: where each guest keeps its own files (its /), one directory per name, so that
// they survive restarts. The boot workload runs once per guest, as a first-boot script does: its run
// starts by leaving /var/lib/pvblk/boot-workload there, and a guest that finds the marker does not run
// it again (a restart after the hypervisor went away must not redo what the workload did to the disk).
const state = env.PVBLK_GUEST_STATE_DIR;
if (process.argv[2] === 'domu' && state && !env.PVBLK_GUEST_ROOT) {
  const root = `${state}/${guestName()}`;
  env.PVBLK_GUEST_ROOT = root;
  mkdirSync(`${root}/var/lib/pvblk`, { recursive: true });
  const marker = '/var/lib/pvblk/boot-workload';
  if (env.PVBLK_WORKLOAD && existsSync(`${root}${marker}`)) {
    process.stderr.write(
      `pvblk: the boot workload already ran on ${guestName()} (${root}${marker}); not running it again\n`,
    );
    delete env.PVBLK_WORKLOAD;
  } else if (env.PVBLK_WORKLOAD) {
    env.PVBLK_WORKLOAD = `echo first boot > ${marker}; ${env.PVBLK_WORKLOAD}`;
  }
}
await import('../src/cli/main.ts');
