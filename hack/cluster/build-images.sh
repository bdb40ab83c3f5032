#!/usr/bin/env bash
# Builds into _output/images every image the test cluster's nodes run, as
# `docker save` archives that cluster.sh imports with
# `ctr -n k8s.io images import`. No container engine and no registry: Go
# binaries from Go modules, shell tools from Debian packages fetched with
# `apt-get download` and unpacked with `dpkg -x` (nothing is installed on
# the host), put together by hack/mkimage.
#
#   pause     registry.k8s.io/pause:3.10.2            hack/pause
#   coredns   registry.k8s.io/coredns/coredns:v1.15.0 github.com/coredns/coredns
#   nginx     registry.k8s.io/e2e-test-images/nginx:1.27.0-2, agnhost serving
#             HTTP on port 80 in its place
#   agnhost   registry.k8s.io/e2e-test-images/agnhost:2.66.1
#             _output/bin/agnhost (waited for: build-control-plane.sh builds
#             it) on busybox, dash as /bin/sh, bash, OpenBSD nc, curl,
#             iproute2's ip and ss, dig, and /coredns as upstream has it
#   nftproxy  ghcr.io/nftproxy/nftproxy:<appVersion> and :<appVersion>-upgrade,
#             by hack/image.sh
#   prober    nftproxy.test/prober:0.1.0              e2e/cluster/prober
#
# Each image is rebuilt only when its inputs changed: a marker beside the
# archive (_output/images/.NAME.key) holds a hash of them. Each build says
# how long it took.
#
# A Go main package of this module as an image with busybox is one line in
# main, at the end of this file: go_image NAME REF PACKAGE --busybox.
set -euo pipefail
# Byte order for sort and join.
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=$ROOT/_output
IMAGES=${IMAGES_DIR:-$OUT/images}
# The root filesystems of the layers, kept between runs.
WORK=$OUT/image-build
DEBS=$OUT/debs
MKIMAGE=$OUT/tools/mkimage
AGNHOST_BIN=$OUT/bin/agnhost
# How long to wait for build-control-plane.sh to write the agnhost binary.
AGNHOST_WAIT=${AGNHOST_WAIT:-3600}

PAUSE_REF=registry.k8s.io/pause:3.10.2
COREDNS_VERSION=v1.15.0
COREDNS_REF=registry.k8s.io/coredns/coredns:$COREDNS_VERSION
AGNHOST_REF=registry.k8s.io/e2e-test-images/agnhost:2.66.1
NGINX_REF=registry.k8s.io/e2e-test-images/nginx:1.27.0-2
NFTPROXY_TAG=$(sed -n -E 's/^appVersion: *"?([^"]*)"?$/\1/p' charts/nftproxy/Chart.yaml)

# The Debian packages of the two tool layers. busybox is every small tool
# (wget, hostname, netstat, sleep...); the second layer adds the tools e2e
# tests call whose busybox versions behave differently: busybox's nc has
# no -v and busybox's sh would run it, hence dash as /bin/sh.
BUSYBOX_PACKAGES=(busybox-static netbase)
NETTOOLS_PACKAGES=(dash bash netcat-openbsd curl iproute2 bind9-dnsutils)
# NAME:PATH of the second layer's tools, PATH as the package has it. Each
# NAME also replaces busybox's applet of that name wherever busybox put
# it, so PATH order cannot pick busybox's.
NETTOOLS=(dash:bin/dash sh:bin/dash bash:bin/bash nc:bin/nc.openbsd curl:usr/bin/curl
  ip:bin/ip ss:bin/ss dig:usr/bin/dig)

log() { printf '%s images: %s\n' "$(date +%T)" "$*"; }
die() { printf 'images: %s\n' "$*" >&2; exit 1; }

# digest: a short digest of standard input.
digest() { sha256sum | cut -c1-16; }

# key_of FUNCTION... -- WORD...: the hash of the code of the functions that
# build a thing and of the words that name its inputs, so that editing the
# recipe rebuilds what it makes, and nothing else.
key_of() {
  {
    while [ $# -gt 0 ] && [ "$1" != -- ]; do declare -f "$1"; shift; done
    [ $# -gt 0 ] && shift
    printf '%s\n' "$@"
  } | digest
}

# file_hash FILE...: the hash of the files' contents.
file_hash() { cat "$@" | digest; }

# up_to_date MARKER KEY [FILE]: whether MARKER holds KEY and FILE exists.
up_to_date() {
  [ -f "$1" ] && [ "$(cat "$1")" = "$2" ] && { [ $# -lt 3 ] || [ -e "$3" ]; }
}

# ---- images ----------------------------------------------------------------

# image NAME KEY MKIMAGE_FLAG...: IMAGES/NAME.tar from mkimage, unless its
# marker says it was built from KEY.
image() {
  local name=$1 key=$2 start=$SECONDS
  shift 2
  local tar=$IMAGES/$name.tar marker=$IMAGES/.$name.key
  key=$(key_of image -- "$key" "$(file_hash hack/mkimage/*.go)" "$@")
  if up_to_date "$marker" "$key" "$tar"; then
    log "$name: up to date ($(du -h "$tar" | cut -f1))"
    return
  fi
  rm -f "$marker"
  "$MKIMAGE" --output "$tar" "$@"
  echo "$key" >"$marker"
  log "$name: built in $((SECONDS - start)) s ($(du -h "$tar" | cut -f1))"
}

# go_image NAME REF PACKAGE [--busybox] [MKIMAGE_FLAG...]: the static
# binary of PACKAGE (a main package of this module) as /NAME, its
# entrypoint; with --busybox, on the busybox layer (a shell and small
# tools, for kubectl exec and for debugging).
go_image() {
  local name=$1 ref=$2 pkg=$3 layers=()
  shift 3
  if [ "${1:-}" = --busybox ]; then
    layers=(--layer "$WORK/busybox")
    shift
  fi
  local dir=$WORK/$name
  rm -rf "$dir"
  mkdir -p "$dir"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/$name" "$pkg"
  bash hack/go-licenses.sh "$dir/$name" "$dir/licenses/$name"
  local base=""
  [ ${#layers[@]} -gt 0 ] && base=$(cat "$WORK/.busybox.key")
  image "$name" "$(key_of go_image -- "$base" "$(tar -C "$dir" -c --sort=name --mtime=@0 . | digest)")" \
    --ref "$ref" "${layers[@]}" --layer "$dir" --entrypoint "/$name" "$@"
}

# coredns: CoreDNS built from its module, as go install builds a released
# command: with the module's own go.mod and go.sum.
coredns() {
  local dir=$WORK/coredns key
  key=$(key_of coredns -- "$COREDNS_VERSION" "$(go env GOVERSION)" "$(file_hash hack/go-licenses.sh)")
  if ! up_to_date "$WORK/.coredns.key" "$key" "$dir/coredns"; then
    local start=$SECONDS
    rm -rf "$dir" "$WORK/.coredns.key"
    mkdir -p "$dir"
    log "coredns: building $COREDNS_VERSION from Go modules (the first time: several minutes)"
    (cd / && GOBIN=$dir CGO_ENABLED=0 go install -trimpath \
      -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
      "github.com/coredns/coredns@$COREDNS_VERSION")
    bash hack/go-licenses.sh "$dir/coredns" "$dir/licenses/coredns"
    echo "$key" >"$WORK/.coredns.key"
    log "coredns binary: built in $((SECONDS - start)) s"
  fi
  # Root, so that the NET_BIND_SERVICE capability a Deployment adds is
  # enough for port 53 (the binary has no file capabilities).
  image coredns "$key" --ref "$COREDNS_REF" --layer "$dir" --entrypoint /coredns --user 0
}

# nftproxy TAG: the agent's image as `make image` builds it.
nftproxy() {
  local tag=$1 start=$SECONDS key
  local tar=$IMAGES/nftproxy-$tag.tar marker=$IMAGES/.nftproxy-$tag.key
  # The source of the binary as it is, committed or not, and the commit
  # it is stamped with.
  local sources
  sources=$(go list -deps -f '{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{end}}{{end}}' .)
  key=$(key_of nftproxy -- "$tag" "$(git rev-parse HEAD 2>/dev/null)" \
    "$(cat $sources go.mod go.sum hack/image.sh hack/go-licenses.sh hack/mkimage/*.go | digest)")
  if up_to_date "$marker" "$key" "$tar"; then
    log "nftproxy:$tag: up to date ($(du -h "$tar" | cut -f1))"
    return
  fi
  rm -f "$marker"
  TAG=$tag IMAGES_DIR=$IMAGES bash hack/image.sh >/dev/null
  echo "$key" >"$marker"
  log "nftproxy:$tag: built in $((SECONDS - start)) s ($(du -h "$tar" | cut -f1))"
}

# agnhost: Kubernetes' e2e test binary on the two tool layers, with
# /coredns and /uploads as upstream's image has them.
agnhost() {
  local waited=0
  # The binary is complete once Go can read its build information.
  until [ -x "$AGNHOST_BIN" ] && go version -m "$AGNHOST_BIN" >/dev/null 2>&1; do
    [ "$waited" -ge "$AGNHOST_WAIT" ] && die "no $AGNHOST_BIN after $AGNHOST_WAIT s: hack/build-control-plane.sh builds it"
    [ $((waited % 300)) = 0 ] && log "agnhost: waiting for $AGNHOST_BIN (hack/build-control-plane.sh builds it)"
    sleep 10
    waited=$((waited + 10))
  done
  local dir=$WORK/agnhost
  rm -rf "$dir"
  mkdir -p "$dir/uploads"
  cp "$AGNHOST_BIN" "$dir/agnhost"
  # porter serves TLS with the test certificate upstream's image carries
  # at its root; the Proxy tests reach pods over https through it.
  local src
  src=$(cd "$ROOT/_output/cp-build" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/test/images/agnhost
  cp "$src/porter/localhost.crt" "$src/porter/localhost.key" "$dir/"
  chmod 0644 "$dir/localhost.crt" "$dir/localhost.key"
  chmod 0755 "$dir/agnhost" "$dir/uploads"
  bash hack/go-licenses.sh "$dir/agnhost" "$dir/licenses/agnhost"
  image agnhost "$(key_of agnhost -- "$(file_hash "$AGNHOST_BIN" hack/go-licenses.sh)" "$(cat "$WORK/.busybox.key" "$WORK/.nettools.key" "$WORK/.coredns.key")")" \
    --ref "$AGNHOST_REF" --layer "$WORK/busybox" --layer "$WORK/nettools" --layer "$WORK/coredns" --layer "$dir" \
    --entrypoint /agnhost
  # The EndpointSlice tests run nginx pods only to have endpoints that
  # serve port 80: agnhost serving HTTP there stands in for it.
  image nginx "$(key_of nginx -- "$(cat "$IMAGES/.agnhost.key")")" \
    --ref "$NGINX_REF" --layer "$WORK/busybox" --layer "$dir" \
    --entrypoint /agnhost --cmd netexec --cmd --http-port=80 --cmd --udp-port=-1
}

# ---- Debian packages ---------------------------------------------------------

# fetch_debs PACKAGE...: the packages and everything they depend on, in
# DEBS (kept between runs); prints the file names, sorted. When apt's lists
# are missing or name versions the mirror no longer has, they are updated
# once.
fetch_debs() {
  local files
  if ! files=$(deb_files "$@") || ! download_debs $files; then
    [ "$(id -u)" = 0 ] || die "apt cannot fetch $*: run apt-get update as root"
    log "apt-get update"
    apt-get update -qq >/dev/null
    files=$(deb_files "$@") || die "apt knows none of $*"
    download_debs $files || die "apt-get download failed for $*"
  fi
  echo "$files"
}

# deb_files PACKAGE...: the file names of the candidate versions of the
# packages and of everything they depend on, sorted. apt is asked from an
# empty directory: it leaves out the files it finds in the current one.
deb_files() {
  local closure
  closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "$@" 2>/dev/null | grep -v '^[ <]' | sort -u) || return 1
  [ -n "$closure" ] || return 1
  mkdir -p "$WORK/.empty"
  # shellcheck disable=SC2086
  (cd "$WORK/.empty" && apt-get download --print-uris $closure) | awk '{print $2}' | sort
}

# download_debs FILE...: the files missing from DEBS, downloaded.
download_debs() {
  local f missing=()
  for f in "$@"; do
    [ -f "$DEBS/$f" ] || missing+=("${f%%_*}")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  mkdir -p "$DEBS"
  # As root, apt fetches as itself rather than through its sandbox user,
  # who cannot write here.
  (cd "$DEBS" && apt-get download -q -o APT::Sandbox::User=root "${missing[@]}" >/dev/null)
}

# unpack DEST DEB...: the packages' files under DEST, and DEST.owners
# listing "PACKAGE PATH" for each, to find the copyright of a file.
unpack() {
  local dest=$1 deb
  shift
  rm -rf "$dest" "$dest.owners"
  mkdir -p "$dest"
  for deb in "$@"; do
    dpkg -x "$DEBS/$deb" "$dest"
    dpkg-deb --fsys-tarfile "$DEBS/$deb" | tar -t | sed -e 's|^\./||' -e "s|^|${deb%%_*} |" >>"$dest.owners"
  done
}

# copy_from DEBROOT ROOTFS PATH: PATH copied from DEBROOT into ROOTFS, and,
# for a symbolic link, what it points to, to the end of the chain.
copy_from() {
  local from=$1 to=$2 rel=$3 target
  while :; do
    mkdir -p "$to/$(dirname "$rel")"
    cp -a --remove-destination "$from/$rel" "$to/$rel"
    [ -L "$from/$rel" ] || return 0
    target=$(readlink "$from/$rel")
    case $target in
      /*) rel=${target#/} ;;
      *) rel=$(dirname "$rel")/$target ;;
    esac
    rel=$(realpath -m -s --relative-to=/ "/$rel")
  done
}

# copy_with_libraries DEBROOT ROOTFS PATH: an executable and the shared
# libraries it loads, found by the packages' own dynamic loader in the
# packages' own library directories, never the host's.
copy_with_libraries() {
  local from=$1 to=$2 rel=$3 line name lib out
  local loader=$from/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
  copy_from "$from" "$to" "$rel"
  # Lines: "libc.so.6 => PATH (ADDRESS)"; the loader's, named by the
  # absolute path the executable asks for, "/lib64/... => PATH (ADDRESS)";
  # the vDSO's, with no "=>".
  out=$("$loader" --library-path "$from/lib/x86_64-linux-gnu:$from/usr/lib/x86_64-linux-gnu" --list "$from/$rel") ||
    die "$rel: the packages' loader cannot list its libraries: $out"
  while read -r line; do
    case $line in
      *"=> not found"*) die "$rel: ${line%% *} is in none of the packages" ;;
      *"=> "*) ;;
      *) continue ;;
    esac
    name=${line%% =>*} lib=${line#*=> } lib=${lib%% (*}
    case $lib in
      "$from"/*) copy_from "$from" "$to" "${lib#"$from"/}" ;;
      *) die "$rel: $lib was found outside the packages" ;;
    esac
    # The loader where the executable looks for it.
    case $name in /*) copy_from "$from" "$to" "${name#/}" ;; esac
  done <<<"$out"
}

# copyrights DEBROOT ROOTFS: the Debian copyright file of every package
# that a file of ROOTFS came from.
copyrights() {
  local from=$1 to=$2 pkg
  for pkg in $(cd "$to" && find . -type f -printf '%P\n' | sort |
    join -1 1 -2 2 -o 2.1 - <(sort -k2,2 "$from.owners") | sort -u); do
    [ -f "$from/usr/share/doc/$pkg/copyright" ] && copy_from "$from" "$to" "usr/share/doc/$pkg/copyright"
  done
  return 0
}

# ---- tool layers --------------------------------------------------------------

# busybox_layer: busybox with its applets, the files a container's tools
# read in /etc, and a sticky /tmp.
busybox_layer() {
  local debs key
  debs=$(fetch_debs "${BUSYBOX_PACKAGES[@]}")
  key=$(key_of busybox_layer write_etc wget_wrapper unpack copy_from copyrights -- $debs)
  up_to_date "$WORK/.busybox.key" "$key" "$WORK/busybox" && return
  local start=$SECONDS root=$WORK/busybox debroot=$WORK/debs-busybox
  rm -rf "$root" "$WORK/.busybox.key"
  # shellcheck disable=SC2086
  unpack "$debroot" $debs
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,root,proc,sys,dev,var/tmp,tmp}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  chmod 0700 "$root/root"
  copy_from "$debroot" "$root" bin/busybox
  local applet
  for applet in $("$debroot/bin/busybox" --list-full); do
    case $applet in bin/* | sbin/* | usr/bin/* | usr/sbin/*) ;; *) continue ;; esac
    [ -e "$root/$applet" ] || [ -L "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
  done
  rm "$root/usr/bin/wget"
  wget_wrapper >"$root/usr/bin/wget"
  chmod 0755 "$root/usr/bin/wget"
  write_etc "$root"
  local f
  for f in services protocols rpc ethertypes; do
    [ -f "$debroot/etc/$f" ] && copy_from "$debroot" "$root" "etc/$f"
  done
  copyrights "$debroot" "$root"
  echo "$key" >"$WORK/.busybox.key"
  log "busybox layer: built in $((SECONDS - start)) s"
}

# write_etc ROOTFS: users, groups, name resolution. The kubelet mounts its
# own /etc/hosts, /etc/hostname and /etc/resolv.conf over these.
write_etc() {
  local etc=$1/etc
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$etc/passwd"
  printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$etc/group"
  printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' 'networks: files' \
    'protocols: files' 'services: files' >"$etc/nsswitch.conf"
  printf '%s\n' '127.0.0.1 localhost' '::1 localhost ip6-localhost ip6-loopback' >"$etc/hosts"
  : >"$etc/resolv.conf"
  echo localhost >"$etc/hostname"
}

# wget_wrapper: /usr/bin/wget. busybox 1.35's wget crashes (SIGSEGV) when
# given -T; the wrapper runs it without -T, under timeout for as many
# seconds. Tests call `wget -T 1 ...` to bound a request.
wget_wrapper() {
  cat <<'EOF'
#!/bin/sh
# busybox 1.35's wget crashes when given -T SECONDS: run it without -T,
# under timeout for that many seconds.
seconds=
n=$#
while [ "$n" -gt 0 ]; do
  arg=$1
  shift
  n=$((n - 1))
  case $arg in
    -T | --timeout) seconds=$1; shift; n=$((n - 1)) ;;
    -T*) seconds=${arg#-T} ;;
    --timeout=*) seconds=${arg#--timeout=} ;;
    *) set -- "$@" "$arg" ;;
  esac
done
if [ -n "$seconds" ]; then
  exec /bin/busybox timeout "$seconds" /bin/busybox wget "$@"
fi
exec /bin/busybox wget "$@"
EOF
}

# nettools_layer: the second tool layer, over busybox's.
nettools_layer() {
  local debs key
  debs=$(fetch_debs "${NETTOOLS_PACKAGES[@]}")
  key=$(key_of nettools_layer unpack copy_with_libraries copy_from copyrights -- $debs "${NETTOOLS[@]}" \
    "$(cat "$WORK/.busybox.key")")
  up_to_date "$WORK/.nettools.key" "$key" "$WORK/nettools" && return
  local start=$SECONDS root=$WORK/nettools debroot=$WORK/debs-nettools
  rm -rf "$root" "$WORK/.nettools.key"
  # shellcheck disable=SC2086
  unpack "$debroot" $debs
  mkdir -p "$root"
  local applets tool name path link
  applets=$("$WORK/busybox/bin/busybox" --list-full)
  for tool in "${NETTOOLS[@]}"; do
    name=${tool%%:*} path=${tool#*:}
    copy_with_libraries "$debroot" "$root" "$path"
    for link in $(grep -E "(^|/)$name\$" <<<"$applets") "bin/$name"; do
      [ "$link" = "$path" ] || { mkdir -p "$root/$(dirname "$link")" && ln -sfn "/$path" "$root/$link"; }
    done
  done
  # iproute2's tables of names (routing tables, protocols, scopes).
  mkdir -p "$root/etc"
  cp -a "$debroot/etc/iproute2" "$root/etc/iproute2"
  copyrights "$debroot" "$root"
  echo "$key" >"$WORK/.nettools.key"
  if [ "$(id -u)" = 0 ]; then
    verify_tools
  else
    log "nettools layer: not root, the tools were not tried in a chroot"
  fi
  log "nettools layer: built in $((SECONDS - start)) s"
}

# verify_tools: the two tool layers, merged as the runtime would, run the
# commands e2e tests run in agnhost, in a chroot. Nothing is mounted; the
# connections go to 127.0.0.1 port 1, where nothing listens.
verify_tools() {
  local root=$WORK/verify
  rm -rf "$root"
  mkdir -p "$root"
  cp -a --remove-destination "$WORK/busybox/." "$root/"
  cp -a --remove-destination "$WORK/nettools/." "$root/"
  local out
  # ok CMD: CMD succeeds. fails CMD: CMD fails as a program does, not by
  # a signal (exit status above 128), as busybox wget -T did.
  if ! out=$(chroot "$root" /bin/sh -c '
    ok() { eval "$1" || { echo "failed: $1"; exit 1; }; }
    fails() {
      eval "$1"; s=$?
      if [ $s -eq 0 ] || [ $s -gt 128 ]; then echo "exit status $s: $1"; exit 1; fi
    }
    ok "test \"\$(readlink /bin/sh)\" = /bin/dash"
    ok "nc -h; echo hi | nc -v -w 1 127.0.0.1 1; wget --help; hostname"
    ok "nc -h 2>&1 | grep -q OpenBSD"
    fails "echo hi | nc -v -w 1 127.0.0.1 1 2>/tmp/nc.err"
    ok "grep -q refused /tmp/nc.err"
    ok "echo hi | nc -u -w 1 127.0.0.1 1; [ \$? -lt 128 ]"
    fails "wget -T 2 -q -O - http://127.0.0.1:1/"
    fails "wget --timeout=2 -q -O - http://127.0.0.1:1/"
    ok "curl --version | grep -q ^curl"
    fails "curl -sS --max-time 2 http://127.0.0.1:1/"
    ok "dig -v 2>&1 | grep -q DiG"
    ok "ip -V | grep -q iproute2"
    ok "test -f /etc/iproute2/rt_tables"
    ok "test \"\$(id -un 2>&1):\$(id -gn 2>&1)\" = root:root"
    ok "ss -V | grep -q iproute2"
    ok "bash -c \"echo \\\$BASH_VERSION\" | grep -q ."
    ok "sleep 0 && cat /etc/passwd | grep -q ^root: && echo x | grep -q x"
    ok "netstat --help 2>&1 | grep -q netstat"
    echo tools ok
  ' 2>&1); then
    die "the tools fail in a chroot of the agnhost layers:
$out"
  fi
  rm -rf "$root"
  log "nettools layer: $(tail -1 <<<"$out") in a chroot (nc, wget, curl, dig, ip, ss, bash, busybox)"
}

# ---- all ----------------------------------------------------------------------

main() {
  local start=$SECONDS
  mkdir -p "$IMAGES" "$WORK" "$OUT/tools"
  go build -o "$MKIMAGE" ./hack/mkimage

  go_image pause "$PAUSE_REF" ./hack/pause --user 65535:65535
  nftproxy "$NFTPROXY_TAG"
  nftproxy "$NFTPROXY_TAG-upgrade"
  busybox_layer
  nettools_layer
  coredns
  # More images, one line each.
  go_image prober nftproxy.test/prober:0.1.0 ./e2e/cluster/prober --busybox
  # Last, as it may wait for the control plane's build.
  agnhost
  log "all images in $IMAGES in $((SECONDS - start)) s"
}

main "$@"
