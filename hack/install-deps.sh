#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use: nftables (the
# nft binary, only to check nftproxy's output against), iproute2 (network
# namespaces), conntrack, socat and iptables (the migration test). Go
# itself must already be installed.
set -euo pipefail
need=()
for pair in nft:nftables ip:iproute2 conntrack:conntrack socat:socat iptables:iptables capsh:libcap2-bin strace:strace; do
  bin=${pair%%:*} pkg=${pair##*:}
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then
  echo "deps: nftables, iproute2, conntrack, socat, iptables, libcap2-bin, strace already installed"
  exit 0
fi
echo "deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
