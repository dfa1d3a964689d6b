#!/usr/bin/env bash
# Creates the credentials of a pvblk swarm stack as swarm secrets (run it on a manager, once, before
# `docker stack deploy`; docs/swarm.md):
#
#   pvblk_dom0_secret          Dom0's credential at the hypervisor (hypervisor, host)
#   pvblk_operator_token       the operator's token for the host API (host)
#   pvblk_guest_token          group token: boots any guest whose name starts with "guest" (guests)
#   pvblk_driver_domain_token  group token: has Dom0 create any driver domain "dd-…" (driver domains)
#
# The first two are 32 random bytes; the group tokens are derived from the operator token by
# `pvblk token` (docs/swarm.md), run in the pvblk image (PVBLK_IMAGE, default pvblk:local) so that the
# manager needs nothing but docker. The operator token never leaves this script except into the swarm;
# read it back on the node that runs the host with
#   docker exec $(docker ps -q -f label=com.docker.swarm.service.name=pvblk_host) cat /run/secrets/pvblk_operator_token
#
# Idempotent: existing secrets are kept when all four exist. Swarm secrets cannot be read back, so a
# partial set (some removed by hand) is refused: remove the rest (`docker secret rm …`, with the stack
# removed) and run this again. --prefix P names them P_dom0_secret … (default pvblk; deploy with
# PVBLK_SECRETS=P to use them).
set -euo pipefail
prefix=pvblk
[ "${1:-}" = "--prefix" ] && prefix=${2:?--prefix needs a name}
image=${PVBLK_IMAGE:-pvblk:local}
names=("${prefix}_dom0_secret" "${prefix}_operator_token" "${prefix}_guest_token" "${prefix}_driver_domain_token")
say() { printf 'swarm-secrets: %s\n' "$*" >&2; }

have=0
for n in "${names[@]}"; do docker secret inspect "$n" >/dev/null 2>&1 && have=$((have + 1)); done
if [ "$have" -eq 4 ]; then say "keeping the existing secrets ${names[*]}"; exit 0; fi
if [ "$have" -ne 0 ]; then
  say "only $have of the 4 secrets exist (${names[*]}); swarm secrets cannot be read back, so the rest cannot be derived: remove them (docker secret rm) and run this again"
  exit 1
fi
docker image inspect "$image" >/dev/null 2>&1 || { say "no image $image: build it first (docker compose build, or docker build -f docker/Dockerfile -t $image .)"; exit 1; }

random() { head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }
dom0=$(random)
op=$(random)
token() { printf '%s\n' "$op" | docker run --rm -i -e PVBLK_TOOLSTACK_TOKEN_FILE=/dev/stdin "$image" token "$@"; }
guests=$(token --guests guest)
dds=$(token --driver-domains dd-)
printf '%s\n' "$dom0" | docker secret create "${prefix}_dom0_secret" - >/dev/null
printf '%s\n' "$op" | docker secret create "${prefix}_operator_token" - >/dev/null
printf '%s\n' "$guests" | docker secret create "${prefix}_guest_token" - >/dev/null
printf '%s\n' "$dds" | docker secret create "${prefix}_driver_domain_token" - >/dev/null
say "created ${names[*]}"
