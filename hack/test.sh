#!/usr/bin/env bash
# Runs every test, as root, on a fresh Linux machine: installs what the
# tests need (Debian packages, a kube-apiserver and etcd built from Go
# modules, helm), then the whole suite, then short fuzz runs. Kernel and
# API-server tests never skip: without root or the binaries they fail.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "hack/test.sh: run as root (the tests create network namespaces and program nftables)" >&2
  exit 1
fi
step() { printf '\n== %s\n' "$*"; }

step "installing Debian packages"
bash hack/install-deps.sh
step "building the control plane (first time: several minutes)"
bash hack/build-control-plane.sh
step "installing helm"
bash hack/install-tools.sh
step "go vet"
go vet ./...
step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted" >&2; exit 1; fi
step "go test ./..."
go test -count=1 -timeout 30m ./...
step "fuzzing (bounded)"
go test ./rules -run '^$' -fuzz '^FuzzBuild$' -fuzztime "${FUZZTIME:-20s}"
go test ./loader -run '^$' -fuzz '^FuzzLoad$' -fuzztime "${FUZZTIME:-20s}"
step "all tests passed"
