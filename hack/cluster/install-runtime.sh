#!/usr/bin/env bash
# Installs the node's container runtime from Debian's packages into
# _output/runtime (git-ignored): containerd, runc and the CNI plugins.
# The packages are fetched with `apt-get download` and unpacked with
# `dpkg -x`, so nothing lands on the host's paths and no service starts.
# Idempotent: a runtime already unpacked at the wanted versions is kept.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNTIME=${RUNTIME:-$ROOT/_output/runtime}
# The versions this cluster was proven with (Debian 12's).
PACKAGES=(containerd runc containernetworking-plugins)

if [ -x "$RUNTIME/usr/bin/containerd" ] && [ -x "$RUNTIME/usr/bin/runc" ] &&
  [ -x "$RUNTIME/usr/lib/cni/bridge" ]; then
  echo "runtime: containerd, runc and the CNI plugins already in $RUNTIME"
  exit 0
fi

command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
  echo "runtime: apt-get and dpkg are needed to fetch containerd, runc and the CNI plugins (a Debian or Ubuntu machine)" >&2
  exit 1
}

debs=$RUNTIME/.debs
mkdir -p "$debs"
(
  cd "$debs"
  if ! apt-get download "${PACKAGES[@]}" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    apt-get download "${PACKAGES[@]}" >/dev/null
  fi
)
for deb in "$debs"/*.deb; do
  dpkg -x "$deb" "$RUNTIME"
done
rm -rf "$debs"
echo "runtime: $("$RUNTIME/usr/bin/containerd" --version | awk '{print $1, $3}'), $("$RUNTIME/usr/bin/runc" --version | head -1), CNI plugins in $RUNTIME"
