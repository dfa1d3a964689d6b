#!/usr/bin/env bash
# Prepares a fresh CI machine for the Docker end-to-end tests (test/docker/compose.test.ts and
# swarm.test.ts, which makes the engine a single-node swarm itself and leaves it at the end):
#   1. installs Docker Engine and docker-compose with apt-get if they are missing;
#   2. starts dockerd in the background if `docker info` does not answer (no systemd on CI machines);
#   3. picks the Node base image: node:22-slim if it can be pulled, otherwise a local base image built
#      from this machine's own Node (docker/local-base-image.sh); writes the choice to .ci/out/node-image;
#   4. builds the pvblk image once, so the test only reuses it.
# Idempotent. Never fails: it prints what happened and exits 0; the test decides (it skips when there
# is no engine, and fails when the engine is there but the stack does not work).
set -u
cd "$(dirname "$0")/.."
mkdir -p .ci/out
OUT=.ci/out
say() { printf 'ci-prepare: %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi

have_compose() {
  command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1
}

# ---- 1. engine and compose -----------------------------------------------------------------------
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1 || ! have_compose; then
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    say "installing docker.io and docker-compose with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 $SUDO apt-get update -qq >"$OUT/apt.log" 2>&1 || say "apt-get update failed (see $OUT/apt.log)"
    pkgs="docker.io"
    have_compose || pkgs="$pkgs docker-compose"
    # shellcheck disable=SC2086
    if timeout 600 $SUDO apt-get install -y -qq --no-install-recommends $pkgs >>"$OUT/apt.log" 2>&1; then
      say "installed: $pkgs"
    else
      say "apt-get install $pkgs failed (see $OUT/apt.log)"
    fi
  else
    say "docker or docker-compose is missing and cannot be installed here (no apt-get or not root)"
  fi
fi

# ---- 2. the engine -------------------------------------------------------------------------------
if command -v docker >/dev/null 2>&1 && ! timeout 20 docker info >/dev/null 2>&1; then
  if command -v dockerd >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    say "starting dockerd (log: $OUT/dockerd.log)"
    (setsid $SUDO dockerd >"$OUT/dockerd.log" 2>&1 </dev/null &)
    for _ in $(seq 1 30); do
      timeout 5 docker info >/dev/null 2>&1 && break
      sleep 1
    done
  fi
fi
if ! timeout 20 docker info >/dev/null 2>&1; then
  say "no working Docker engine; the compose test will be skipped"
  [ -f "$OUT/dockerd.log" ] && tail -5 "$OUT/dockerd.log"
  exit 0
fi
say "engine: $(docker version --format '{{.Server.Version}}' 2>/dev/null), compose: $(docker-compose version --short 2>/dev/null || docker compose version --short 2>/dev/null)"

# ---- 3. the Node base image ----------------------------------------------------------------------
image=""
if docker image inspect node:22-slim >/dev/null 2>&1; then
  image=node:22-slim
elif timeout 120 docker pull -q node:22-slim >"$OUT/pull.log" 2>&1; then
  image=node:22-slim
  say "pulled node:22-slim"
else
  say "node:22-slim cannot be pulled ($(tail -1 "$OUT/pull.log" 2>/dev/null)); building a local base image"
  if tag=$(timeout 300 bash docker/local-base-image.sh 2>"$OUT/local-base-image.log" | tail -1) && [ -n "$tag" ] &&
    docker image inspect "$tag" >/dev/null 2>&1; then
    image=$tag
  else
    say "the local base image failed (see $OUT/local-base-image.log)"
    tail -5 "$OUT/local-base-image.log" 2>/dev/null
  fi
fi
if [ -n "$image" ]; then
  echo "$image" >"$OUT/node-image"
  say "Node base image: $image (written to $OUT/node-image)"
else
  rm -f "$OUT/node-image"
  exit 0
fi

# ---- 4. build the pvblk image once (the tests' own builds are then cache hits) ---------------------
if command -v docker-compose >/dev/null 2>&1; then compose="docker-compose"; else compose="docker compose"; fi
start=$(date +%s)
if NODE_IMAGE=$image timeout 600 $compose -p pvblk-ci-prepare build >"$OUT/build.log" 2>&1; then
  say "built the pvblk image in $(($(date +%s) - start)) s ($(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' pvblk | head -1))"
else
  say "building the pvblk image failed (see $OUT/build.log):"
  tail -15 "$OUT/build.log"
fi
exit 0
