#!/usr/bin/env bash
# Builds nftproxy's container image with no container engine and no
# registry: the static binary and the licenses of everything linked into
# it, written by hack/mkimage as a `docker save` archive that
# `ctr -n k8s.io images import` and `docker load` accept. (The Dockerfile
# builds the same image for those who have Docker.)
#
#   make image                # _output/images/nftproxy-<appVersion>.tar
#   TAG=0.2.0 make image
#
# Environment:
#   TAG         image tag; default: the chart's appVersion
#   VERSION     version stamped into the binary; default: v$TAG
#   COMMIT      commit stamped into the binary; default: git HEAD, with
#               "-dirty" when tracked files have changes
#   REPOSITORY  image repository; default: the chart's, ghcr.io/nftproxy/nftproxy
#   IMAGES_DIR  where the archive goes; default: _output/images
set -euo pipefail
cd "$(dirname "$0")/.."

app_version=$(sed -n -E 's/^appVersion: *"?([^"]*)"?$/\1/p' charts/nftproxy/Chart.yaml)
tag=${TAG:-$app_version}
version=${VERSION:-v${tag#v}}
if [ -z "${COMMIT:-}" ]; then
  COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  if [ "$COMMIT" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    COMMIT=$COMMIT-dirty
  fi
fi
repository=${REPOSITORY:-ghcr.io/nftproxy/nftproxy}
images=${IMAGES_DIR:-_output/images}
output=$images/nftproxy-$tag.tar

mkdir -p "$images" _output/tools
work=$(mktemp -d "$images/.nftproxy-build-XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
mkdir -p "$rootfs"

# The same build as the Dockerfile's.
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X github.com/nftproxy/nftproxy/internal/version.Version=$version -X github.com/nftproxy/nftproxy/internal/version.Commit=$COMMIT" \
  -o "$rootfs/nftproxy" .
bash hack/go-licenses.sh "$rootfs/nftproxy" "$rootfs/licenses"
go build -o _output/tools/mkimage ./hack/mkimage

# Root: programming nftables needs NET_ADMIN, which the chart grants to
# root only.
_output/tools/mkimage \
  --ref "$repository:$tag" \
  --layer "$rootfs" \
  --entrypoint /nftproxy \
  --cmd run \
  --user 0 \
  --label org.opencontainers.image.title=nftproxy \
  --label "org.opencontainers.image.description=A Kubernetes Service proxy built on nftables" \
  --label org.opencontainers.image.source=https://github.com/nftproxy/nftproxy \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$COMMIT" \
  --output "$output"
echo "$output ($repository:$tag, $(du -h "$output" | cut -f1))"
