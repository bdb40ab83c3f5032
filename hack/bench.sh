#!/usr/bin/env bash
# The benchmarks (make bench): the micro-benchmarks of the rules engine,
# then hack/scalebench, which runs nftproxy and kube-proxy's nftables mode
# side by side at each size of BENCH_SIZES on a fresh local control plane
# (docs/performance.md explains what is measured and how).
#
#   BENCH_SIZES   numbers of Services (default "1000 10000 30000")
#   BENCH_SMALL   an extra small size run first, the data-plane baseline
#                 (default 100; empty to skip)
#   BENCH_MICRO   0 to skip the micro-benchmarks
#   BENCH_ARGS    more flags for scalebench (e.g. "-wait-idle 10m")
#
# Results: _output/bench/results.json, a table on stdout, a chart in
# _output/bench/performance.png, the processes' logs in _output/bench/logs.
# Needs root and the control plane of `make control-plane`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "hack/bench.sh: run as root (it creates network namespaces and programs nftables)" >&2
  exit 1
fi
out=_output/bench
bin=_output/bin
mkdir -p "$out"
for b in etcd kube-apiserver kube-proxy; do
  if [ ! -x "$bin/$b" ]; then
    echo "hack/bench.sh: $bin/$b is missing: run \`make control-plane\` first" >&2
    exit 1
  fi
done
for b in socat nft ip; do
  if ! command -v "$b" >/dev/null; then
    echo "hack/bench.sh: $b is missing: run hack/install-deps.sh first" >&2
    exit 1
  fi
done
step() { printf '\n== %s\n' "$*"; }
begin=$(date +%s)

step "machine"
echo "cores:      $(nproc)"
echo "memory:     $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "kernel:     $(uname -r)"
echo "go:         $(go version)"
echo "kube-proxy: $("$bin/kube-proxy" --version)"
echo "nft:        $(nft --version)"
echo "load:       $(cut -d' ' -f1-3 /proc/loadavg)"

step "building nftproxy and scalebench"
rev=$(git describe --always --dirty 2>/dev/null || echo dev)
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-X github.com/nftproxy/nftproxy/internal/version.Version=$rev -X github.com/nftproxy/nftproxy/internal/version.Commit=${rev%-dirty}" \
  -o "$bin/nftproxy" .
go build -o "$bin/scalebench" ./hack/scalebench
echo "nftproxy:   $("$bin/nftproxy" version)"

micro=()
if [ "${BENCH_MICRO:-1}" != 0 ]; then
  step "micro-benchmarks: go test ./rules ./applier -run '^\$' -bench . -benchmem"
  go test ./rules ./applier -run '^$' -bench . -benchmem | tee "$out/micro.txt"
  micro=(-micro "$out/micro.txt")
fi

sizes="${BENCH_SMALL-100} ${BENCH_SIZES:-1000 10000 30000}"
step "scale benchmark, Services: $sizes"
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
"$bin/scalebench" -sizes "$sizes" -nftproxy "$bin/nftproxy" \
  -out "$out/results.json" -logs "$out/logs" -plot "$out/performance.png" \
  "${micro[@]}" ${BENCH_ARGS:-}

step "done in $(( $(date +%s) - begin )) s"
