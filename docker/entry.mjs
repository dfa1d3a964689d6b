// Entry point of the container image's bundle (docker/bundle.mjs): the pvblk CLI, plus one thing only a
// container needs, guest names that are stable per replica.
//
// PVBLK_GUEST_NAME=@replica (what docker-compose.yml sets) names a guest after its compose replica
// number: guest1, guest2, … Compose names replicas <project>_guest_1 (v1) or <project>-guest-1 (v2) and
// Docker's DNS answers a container's own address with that name, so the name survives `down` + `up` and
// the guest gets its disk (and data) back. `@hostname` names it after the container id instead, which
// changes with every new container. Without a compose name (plain `docker run`) @replica falls back to
// the host name.
import { promises as dns } from 'node:dns';
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

const v = process.env.PVBLK_GUEST_NAME ?? '';
if (process.argv[2] === 'domu' && v.startsWith('@replica')) {
  // @replica → guest<N>; @replica:<base> → <base><N>
  process.env.PVBLK_GUEST_NAME = await replicaName(v.slice('@replica:'.length) || 'guest');
}
// PVBLK_GUEST_KEYS_DIR: where each guest keeps the guest token its enrolment returned, one file per
// name, so the name boots again after `down` + `up` (docs/security-host.md)
const keys = process.env.PVBLK_GUEST_KEYS_DIR;
if (process.argv[2] === 'domu' && keys && !process.env.PVBLK_GUEST_TOKEN_FILE) {
  const name =
    process.env.PVBLK_GUEST_NAME === '@hostname' ? hostname() : process.env.PVBLK_GUEST_NAME || 'guest';
  process.env.PVBLK_GUEST_TOKEN_FILE = `${keys}/${name}`;
}
await import('../src/cli/main.ts');
