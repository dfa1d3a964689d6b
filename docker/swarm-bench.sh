#!/usr/bin/env bash
# Aggregate IOPS of a pvblk swarm stack: every guest task runs the same O_DIRECT dd at once
# (`pvblk guest dd … bs=4096 oflag=direct`, one 4 KiB request at a time per guest), and the script
# prints each guest's IOPS (records / dd's own elapsed time), their sum, and where each guest's disk is
# served (Dom0 or a driver domain). docs/swarm.md has the recipe and the figures.
#
#   bash docker/swarm-bench.sh [--stack pvblk] [--count 2000] [--rw write|read] [--json out.json] [ENGINE…]
#
# ENGINE: a Docker endpoint holding guest tasks (unix:///…, tcp://…); default: this machine's. A guest
# task is reached on the node it runs on, so list one engine per node of the swarm.
set -euo pipefail
stack=pvblk
count=2000
rw=write
json=""
engines=()
while [ $# -gt 0 ]; do
  case "$1" in
    --stack) stack=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --rw) rw=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    -*) echo "swarm-bench: unknown option $1" >&2; exit 2 ;;
    *) engines+=("$1"); shift ;;
  esac
done
[ ${#engines[@]} -eq 0 ] && engines=("")
case "$rw" in
  write) cmd="dd if=/dev/zero of=/dev/xvda bs=4096 count=$count oflag=direct" ;;
  read) cmd="dd if=/dev/xvda of=/dev/null bs=4096 count=$count iflag=direct" ;;
  *) echo "swarm-bench: --rw must be write or read" >&2; exit 2 ;;
esac

dk() { local e=$1; shift; if [ -n "$e" ]; then docker -H "$e" "$@"; else docker "$@"; fi; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# the host API's placement, from the host's task (on whichever engine has it)
placement="{}"
for e in "${engines[@]}"; do
  h=$(dk "$e" ps -q -f "label=com.docker.swarm.service.name=${stack}_host" | head -1)
  [ -z "$h" ] && continue
  placement=$(dk "$e" exec "$h" node -e "const t = require('fs').readFileSync('/run/secrets/pvblk_operator_token', 'utf8').trim(); fetch('http://127.0.0.1:7481/guests', { headers: { authorization: 'Bearer ' + t } }).then(r => r.json()).then(j => console.log(JSON.stringify(j.placement)))")
done

# start every guest's dd at once
pids=()
n=0
for e in "${engines[@]}"; do
  node=$(dk "$e" info -f '{{.Name}}')
  for c in $(dk "$e" ps -q -f "label=com.docker.swarm.service.name=${stack}_guest"); do
    name=$(dk "$e" exec "$c" sh -c 'echo $PVBLK_GUEST_NAME')
    echo "$name $node" >"$out/$n.who"
    # shellcheck disable=SC2086
    (dk "$e" exec "$c" pvblk guest $cmd >"$out/$n.out" 2>&1 || true) &
    pids+=($!)
    n=$((n + 1))
  done
done
[ "$n" -eq 0 ] && { echo "swarm-bench: no ${stack}_guest task on ${engines[*]:-this engine}" >&2; exit 1; }
wait "${pids[@]}"

node - "$out" "$n" "$count" "$rw" "$placement" "$json" <<'EOF'
const fs = require('fs');
const [dir, n, count, rw, placementText, json] = process.argv.slice(2);
const placement = JSON.parse(placementText || '{}');
const rows = [];
for (let i = 0; i < Number(n); i++) {
  const [name, node] = fs.readFileSync(`${dir}/${i}.who`, 'utf8').trim().split(' ');
  const text = fs.readFileSync(`${dir}/${i}.out`, 'utf8');
  const m = /copied, ([0-9.]+) s/.exec(text);
  if (!m) { console.error(`${name}: no dd summary:\n${text}`); process.exit(1); }
  const secs = Number(m[1]);
  rows.push({ guest: name, node, backend: placement[name] ?? '?', seconds: secs, iops: Number(count) / secs });
}
rows.sort((a, b) => a.guest.localeCompare(b.guest, 'en', { numeric: true }));
const total = rows.reduce((s, r) => s + r.iops, 0);
for (const r of rows)
  console.log(`${r.guest.padEnd(8)} on ${r.node.padEnd(8)} backend ${r.backend.padEnd(10)} ${r.iops.toFixed(0).padStart(6)} IOPS (${count} × 4 KiB ${rw}s in ${r.seconds} s)`);
console.log(`aggregate: ${total.toFixed(0)} IOPS from ${rows.length} guest(s), ${new Set(rows.map((r) => r.backend)).size} backend domain(s)`);
if (json) fs.writeFileSync(json, JSON.stringify({ rw, count: Number(count), guests: rows, aggregateIops: total }, null, 2) + '\n');
EOF
