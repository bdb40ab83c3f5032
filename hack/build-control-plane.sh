#!/usr/bin/env bash
# Builds Kubernetes v1.37.2 components from Go modules into _output/bin
# (git-ignored), once. Later runs reuse what is there.
#
#   build-control-plane.sh [GROUP...]
#     test         kube-apiserver, etcd, kubectl, kube-proxy (the default:
#                  what go test needs)
#     node         test, plus kubelet, kube-controller-manager and
#                  kube-scheduler, and agnhost for the test image
#                  (make cluster)
#     conformance  node, plus e2e.test (the upstream runner linked with
#                  the sig-network suite only) and ginkgo (make conformance)
#
# k8s.io/kubernetes carries replace directives for its staging modules, so
# `go install` refuses it. A small wrapper module of our own requires it and
# replaces every staging module with its published version. Every missing
# command is built by one `go build`, so the packages they share compile
# once and both cores stay busy.
set -euo pipefail
export CGO_ENABLED=0

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/_output}
BIN=$OUT/bin
WRAP=$OUT/cp-build
STAGING_VERSION=v0.${K8S_VERSION#v1.}

want=(kube-apiserver etcd kubectl kube-proxy)
conformance=false
for group in "${@:-test}"; do
  case $group in
    test) ;;
    node) want+=(kubelet kube-controller-manager kube-scheduler agnhost) ;;
    conformance) want+=(kubelet kube-controller-manager kube-scheduler agnhost e2e.test ginkgo); conformance=true ;;
    *) echo "build-control-plane.sh: unknown group $group (test, node or conformance)" >&2; exit 2 ;;
  esac
done
mapfile -t want < <(printf '%s\n' "${want[@]}" | awk '!seen[$0]++')

missing=()
for b in "${want[@]}"; do
  if [ ! -x "$BIN/$b" ] || ! grep -qx "$K8S_VERSION" "$BIN/.version-$b" 2>/dev/null; then
    missing+=("$b")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "kubernetes: ${want[*]} $K8S_VERSION already built in $BIN"
  exit 0
fi

echo "kubernetes: building ${missing[*]} $K8S_VERSION into $BIN (a cold build takes many minutes)"
mkdir -p "$BIN" "$WRAP/e2enet"

modfile=$(cd "$WRAP" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
[ -n "$modfile" ] || { echo "cannot download k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }

# The wrapper always names every command, whatever this run builds, so its
# go.mod is written and tidied once and stays the same afterwards.
gomod=$(
  echo "module nftproxy.local/controlplane"
  echo
  echo "go 1.26"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  # The staging modules, from k8s.io/kubernetes's own replace block; the two
  # sample modules are not published at the staging version.
  sed -n '/^replace (/,/^)/p' "$modfile" |
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' |
    grep -v -e sample-cli-plugin -e sample-controller |
    while read -r m; do echo "	$m => $m $STAGING_VERSION"; done
  echo ")"
)
tools='//go:build tools

package controlplane

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/test/images/agnhost"
)'
# The upstream e2e runner, linked with the sig-network tests alone: it
# builds in a fraction of the time of the whole test/e2e and lists the
# same Service specs.
e2enet='package e2enet

import (
	"flag"
	"os"
	"testing"

	"k8s.io/kubernetes/test/e2e"
	"k8s.io/kubernetes/test/e2e/framework"
	"k8s.io/kubernetes/test/e2e/framework/config"
	_ "k8s.io/kubernetes/test/e2e/framework/debug/init"
	_ "k8s.io/kubernetes/test/e2e/framework/metrics/init"
	_ "k8s.io/kubernetes/test/e2e/framework/node/init"
	_ "k8s.io/kubernetes/test/e2e/network"
)

func TestMain(m *testing.M) {
	config.CopyFlags(config.Flags, flag.CommandLine)
	framework.RegisterCommonFlags(flag.CommandLine)
	framework.RegisterClusterFlags(flag.CommandLine)
	flag.Parse()
	framework.AfterReadingAllFlags(&framework.TestContext)
	os.Exit(m.Run())
}

func TestE2E(t *testing.T) { e2e.RunE2ETests(t) }'

if [ "$(cat "$WRAP/.inputs" 2>/dev/null)" != "$gomod$tools$e2enet" ]; then
  echo "kubernetes: resolving modules"
  printf '%s\n' "$gomod" > "$WRAP/go.mod"
  printf '%s\n' "$tools" > "$WRAP/tools.go"
  printf '%s\n' "$e2enet" > "$WRAP/e2enet/e2enet_test.go"
  (cd "$WRAP" && { go mod tidy >/dev/null 2>&1 || go mod tidy; })
  printf '%s' "$gomod$tools$e2enet" > "$WRAP/.inputs"
fi
cd "$WRAP"

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
LDF="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
LDF="$LDF -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

pkgs=()
for b in "${missing[@]}"; do
  case $b in
    etcd) pkgs+=(go.etcd.io/etcd/server/v3) ;;
    ginkgo) pkgs+=(github.com/onsi/ginkgo/v2/ginkgo) ;;
    agnhost) pkgs+=(k8s.io/kubernetes/test/images/agnhost) ;;
    e2e.test) ;;
    *) pkgs+=("k8s.io/kubernetes/cmd/$b") ;;
  esac
done
if [ ${#pkgs[@]} -gt 0 ]; then
  start=$(date +%s)
  tmp=$(mktemp -d "$OUT/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  go build -trimpath -ldflags "-s -w $LDF" -o "$tmp/" "${pkgs[@]}"
  [ -e "$tmp/server" ] && mv "$tmp/server" "$tmp/etcd"
  for b in "${missing[@]}"; do
    [ "$b" = e2e.test ] && continue
    mv "$tmp/$b" "$BIN/$b"
    echo "$K8S_VERSION" > "$BIN/.version-$b"
  done
  echo "kubernetes: built ${pkgs[*]##*/} in $(( $(date +%s) - start )) s"
fi
if $conformance && [[ " ${missing[*]} " == *" e2e.test "* ]]; then
  start=$(date +%s)
  go test -c -trimpath -ldflags "-s -w $LDF" -o "$BIN/e2e.test" ./e2enet
  echo "$K8S_VERSION" > "$BIN/.version-e2e.test"
  echo "kubernetes: built e2e.test (sig-network) in $(( $(date +%s) - start )) s"
fi
