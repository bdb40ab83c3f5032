#!/usr/bin/env bash
# Runs every test, as root, on a fresh Linux machine: installs what the
# tests need (Debian packages, the container runtime, Kubernetes v1.37.2
# built from Go modules, helm, the images), then the whole suite, short
# fuzz runs, the cluster tests on two real nodes and Kubernetes' own Service
# tests. Kernel, API-server and cluster tests never skip: without root or
# what they need they fail.
#
# CONFORMANCE=ci (the default) runs the sig-network tests with nftproxy;
# CONFORMANCE=all runs kube-proxy's baseline too; CONFORMANCE=none skips
# them (for a quick local run, never in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "hack/test.sh: run as root (the tests create network namespaces and program nftables)" >&2
  exit 1
fi
CONFORMANCE=${CONFORMANCE:-ci}

timings=()
stage() {
  local name=$1 start=$SECONDS
  shift
  printf '\n== %s\n' "$name"
  "$@"
  timings+=("$(printf '%5d s  %s' $((SECONDS - start)) "$name")")
}
report() {
  printf '\n== time per stage\n'
  printf '%s\n' "${timings[@]}"
  printf '%5d s  total\n' "$SECONDS"
}
trap report EXIT

gotest() { go test -count=1 -timeout 40m $(go list ./... | grep -v /e2e/cluster); }
fuzz() {
  go test ./rules -run '^$' -fuzz '^FuzzBuild$' -fuzztime "${FUZZTIME:-20s}"
  go test ./loader -run '^$' -fuzz '^FuzzLoad$' -fuzztime "${FUZZTIME:-20s}"
}
lint() {
  go vet ./...
  local unformatted
  unformatted=$(gofmt -l $(git ls-files '*.go'))
  if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted" >&2; return 1; fi
}
cluster_tests() { go test -count=1 -timeout 30m -v ./e2e/cluster; }

stage "installing Debian packages and the container runtime" sh -c 'bash hack/install-deps.sh && bash hack/cluster/install-runtime.sh'
stage "building Kubernetes v1.37.2 (a cold build takes many minutes)" bash hack/build-control-plane.sh conformance
stage "installing helm" bash hack/install-tools.sh
stage "building the images" bash hack/cluster/build-images.sh
stage "go vet and gofmt" lint
stage "go test (everything but the cluster tests)" gotest
stage "fuzzing (bounded)" fuzz
stage "cluster lifecycle (interrupted make cluster, make cluster-down)" bash hack/cluster/lifecycle-test.sh
trap 'bash hack/cluster/cluster.sh down >/dev/null 2>&1 || true; report' EXIT
stage "make cluster (two nodes)" bash hack/cluster/cluster.sh up
stage "cluster tests (go test ./e2e/cluster)" cluster_tests
case $CONFORMANCE in
  ci) stage "Kubernetes' sig-network Service tests with nftproxy" bash hack/cluster/conformance.sh nftproxy ;;
  all) stage "Kubernetes' sig-network Service tests, kube-proxy then nftproxy" bash hack/cluster/conformance.sh all ;;
  none) echo "CONFORMANCE=none: Kubernetes' Service tests not run" ;;
  *) echo "CONFORMANCE must be ci, all or none" >&2; exit 2 ;;
esac
stage "make cluster-down" bash hack/cluster/cluster.sh down
printf '\n== all tests passed\n'
