#!/usr/bin/env bash
# Installs the developer tools that tests and scripts use into _output/bin
# (git-ignored): helm, built from its Go module. Idempotent: a tool already
# there at the wanted version is kept.
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/_output/bin
mkdir -p "$BIN"

# helm --version prints e.g. "v3.22.0+g<commit>" when built with version
# ldflags and "v3.22" (from the module's build info) otherwise, so the wanted
# version is recorded in a marker file next to the binary instead.
if [ -x "$BIN/helm" ] && grep -qx "$HELM_VERSION" "$BIN/.version-helm" 2>/dev/null; then
  echo "tools: helm $HELM_VERSION already installed in $BIN"
else
  echo "tools: installing helm $HELM_VERSION into $BIN (about a minute)"
  start=$(date +%s)
  GOBIN=$BIN go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" > "$BIN/.version-helm"
  echo "tools: installed helm $HELM_VERSION in $(( $(date +%s) - start )) s"
fi
