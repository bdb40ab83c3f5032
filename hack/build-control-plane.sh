#!/usr/bin/env bash
# Builds kube-apiserver, etcd, kubectl and kube-proxy from Go modules into
# _output/bin (git-ignored), once. Later runs reuse what is there.
#
# k8s.io/kubernetes carries replace directives for its staging modules, so
# `go install` refuses it. A small wrapper module of our own requires it and
# replaces every staging module with its published version.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/_output}
BIN=$OUT/bin
WRAP=$OUT/cp-build
STAGING_VERSION=v0.${K8S_VERSION#v1.}

want=(kube-apiserver etcd kubectl kube-proxy)
missing=()
for b in "${want[@]}"; do
  if [ ! -x "$BIN/$b" ] || ! grep -qx "$K8S_VERSION" "$BIN/.version-$b" 2>/dev/null; then
    missing+=("$b")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "control plane: ${want[*]} $K8S_VERSION already built in $BIN"
  exit 0
fi

echo "control plane: building ${missing[*]} $K8S_VERSION into $BIN (first build takes several minutes)"
mkdir -p "$BIN" "$WRAP"

modfile=$(cd "$WRAP" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
[ -n "$modfile" ] || { echo "cannot download k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }

{
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
} > "$WRAP/go.mod"

cat > "$WRAP/tools.go" <<'GO'
//go:build tools

package controlplane

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO

cd "$WRAP"
echo "control plane: resolving modules"
go mod tidy >/dev/null 2>&1 || go mod tidy

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
LDF="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
LDF="$LDF -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

for b in "${missing[@]}"; do
  case $b in
    etcd) pkg=go.etcd.io/etcd/server/v3 ;;
    *) pkg=k8s.io/kubernetes/cmd/$b ;;
  esac
  start=$(date +%s)
  echo "control plane: go build $b"
  go build -trimpath -ldflags "-s -w $LDF" -o "$BIN/$b" "$pkg"
  echo "$K8S_VERSION" > "$BIN/.version-$b"
  echo "control plane: built $b in $(( $(date +%s) - start )) s"
done
