#!/usr/bin/env bash
# Builds a Node base image from this machine's own Node, for machines that cannot pull node:22-slim
# (no Docker Hub). Use it as the NODE_IMAGE build argument:
#
#   NODE_IMAGE=$(docker/local-base-image.sh | tail -1) docker-compose up --build
#
# The image (FROM scratch, one layer, made with `docker import`) holds: node and every library `ldd`
# lists (same paths), the machine's CA bundle, /etc/passwd and /etc/group with root and `node` (1000),
# /tmp (1777), busybox-static as /bin/sh with its applets, and the machine's npm and corepack (so the
# Dockerfile's `RUN npx pnpm install` works). Only this local image sets NODE_EXTRA_CA_CERTS (npm through
# an intercepting proxy) and COREPACK_INTEGRITY_KEYS=0 (corepack and unsigned registry metadata); the
# public Dockerfile keeps node:22-slim and sets neither.
#
# Prints progress on stderr and the image tag (pvblk-node-local:<node version>) as its LAST line.
# Reuses an existing image of that tag unless --force is given.
set -euo pipefail
force=0
[ "${1:-}" = "--force" ] && force=1
log() { printf 'local-base-image: %s\n' "$*" >&2; }

command -v docker >/dev/null || { log "docker is not installed"; exit 1; }
node_bin=$(readlink -f "$(command -v node)")
version=$(node -p 'process.versions.node')
tag="pvblk-node-local:${version}"

if [ $force -eq 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then
  log "$tag exists (use --force to rebuild)"
  echo "$tag"
  exit 0
fi

# a static busybox: the image's shell and tools
busybox=""
for b in /bin/busybox /usr/bin/busybox; do
  if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then busybox=$b; break; fi
done
if [ -z "$busybox" ]; then
  log "installing busybox-static"
  export DEBIAN_FRONTEND=noninteractive
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
  if ! timeout 300 $sudo apt-get install -y -qq busybox-static >&2; then
    timeout 300 $sudo apt-get update -qq >&2 || true
    timeout 300 $sudo apt-get install -y -qq busybox-static >&2
  fi
  busybox=/bin/busybox
fi

start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,usr/bin,usr/local/bin,usr/lib,etc/ssl/certs,root,home/node,tmp}
chmod 1777 "$root/tmp"
chmod 700 "$root/root"

# node and its libraries, at the same paths
cp -L "$node_bin" "$root/usr/bin/node"
ln -s ../../bin/node "$root/usr/local/bin/node" # where node:22-slim has it
for lib in $(ldd "$node_bin" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

# busybox as /bin/sh and its applets
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
ln -s ../../bin/busybox "$root/usr/bin/env"

# npm, npx and corepack from the machine
node_prefix=$(dirname "$(dirname "$node_bin")")
for pkg in npm corepack; do
  src="$node_prefix/lib/node_modules/$pkg"
  [ -d "$src" ] && cp -a "$src" "$root/usr/lib/node_modules-$pkg.tmp" && mkdir -p "$root/usr/lib/node_modules" &&
    mv "$root/usr/lib/node_modules-$pkg.tmp" "$root/usr/lib/node_modules/$pkg"
done
[ -d "$root/usr/lib/node_modules/npm" ] && {
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/bin/npx"
}
[ -d "$root/usr/lib/node_modules/corepack" ] &&
  ln -s ../lib/node_modules/corepack/dist/corepack.js "$root/usr/bin/corepack"

# CA bundle, users, name service
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
node:x:1000:1000::/home/node:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
node:x:1000:
nogroup:x:65534:
EOF
echo 'hosts: files dns' >"$root/etc/nsswitch.conf"

# one layer, ownership kept (home of node owned by 1000)
tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$work/rootfs.tar" --exclude=./home/node .
tar -C "$root" --numeric-owner --owner=1000 --group=1000 -rf "$work/rootfs.tar" ./home/node
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV COREPACK_INTEGRITY_KEYS=0' \
  --change 'CMD ["node"]' \
  --message "pvblk local Node $version base image (from $node_bin)" \
  "$work/rootfs.tar" "$tag" >/dev/null
log "built $tag in $(($(date +%s) - start)) s ($(docker image ls --format '{{.Size}}' "$tag"))"
echo "$tag"
