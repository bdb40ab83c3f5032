#!/usr/bin/env bash
# A real Kubernetes cluster on this machine, with nftproxy as its only
# Service proxy, installed with Helm from its own image.
#
#   cluster.sh up      build what is missing, then start the cluster
#   cluster.sh down    stop it and remove every trace; fine with nothing up
#   cluster.sh status  say what is up
#   cluster.sh node-down N   node N fails: its kubelet stops and its link
#                            to the network goes down; its pods keep running
#   cluster.sh node-up N     node N comes back: link up, kubelet started
#
# NODES (default 2) is the number of nodes; node N is in the zone zone-N. Each node is a network
# namespace (nftpc-nodeN) with a mount namespace of its own, in which its
# containerd and kubelet run: /run, /var/lib and /var/log there are folders
# under _output/cluster/nodeN, and the kernel tunables the kubelet rewrites
# are bind-mounted fakes, so the host's network namespace, ruleset, mounts
# and tunables are never touched. The nodes plug into a bridge in the
# namespace nftpc-outside, like hosts on one network; that namespace is
# also where an outside client sits. etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler run in the first node's
# network namespace. The host reaches the API server at 127.0.0.1:36443
# through a socat bridge; _output/cluster/kubeconfig is the admin's.
#
#   outside 10.99.0.1/24 (br0)   node N 10.99.0.(10+N) (eth0)
#   pods on node N 10.244.N.0/24 (cni0)   Services 10.96.0.0/16
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/hack/cluster
OUT=$ROOT/_output
BIN=$OUT/bin
RUNTIME=$OUT/runtime
IMAGES=$OUT/images
STATE=${CLUSTER_STATE:-$OUT/cluster}
NODES=${NODES:-2}
K8S_VERSION=v1.37.2
# The image tag the chart is installed with; build-images.sh builds it.
NFTPROXY_TAG=${NFTPROXY_TAG:-0.1.0}
NFTPROXY_REPO=ghcr.io/nftproxy/nftproxy

OUTSIDE=nftpc-outside
SERVICE_CIDR=10.96.0.0/16
CLUSTER_CIDR=10.244.0.0/16
API_PORT=6443
HOST_API_PORT=${HOST_API_PORT:-36443}
ETCD_PORT=32379

node_name() { echo "nftpc-node$1"; }
node_ip() { echo "10.99.0.$((10 + $1))"; }
pod_cidr() { echo "10.244.$1.0/24"; }
API_IP=$(node_ip 1)

log() { printf '%s cluster: %s\n' "$(date +%T)" "$*"; }
die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }

# step NAME CMD...: run one step and say how long it took.
step() {
  local name=$1 start=$SECONDS
  shift
  log "$name"
  "$@"
  log "$name: done in $((SECONDS - start)) s"
}

# start NAME NETNS MOUNTNS CMD...: run CMD in the background, in its own
# session, in the given namespaces ("-" for the host's), with a pid file
# and a log.
start() {
  local name=$1 net=$2 mnt=$3
  shift 3
  local enter=()
  [ "$net" != - ] && enter+=(--net=/run/netns/"$net")
  [ "$mnt" != - ] && enter+=(--mount="$mnt")
  if [ ${#enter[@]} -gt 0 ]; then set -- nsenter "${enter[@]}" -- "$@"; fi
  setsid "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$name"
}

# wait_for WHAT SECONDS CMD...: poll CMD until it succeeds.
wait_for() {
  local what=$1 limit=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      die "$what did not happen within $limit s; logs are in $STATE/logs"
    fi
    sleep 0.5
  done
}

kubectl() { "$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" "$@"; }

# ---- preflight -----------------------------------------------------------

preflight() {
  [ "$(id -u)" = 0 ] || die "run as root: the cluster creates network and mount namespaces"
  local missing=()
  for pair in ip:iproute2 nsenter:util-linux unshare:util-linux setsid:util-linux mount:mount \
    socat:socat openssl:openssl nft:nftables iptables:iptables apt-get:apt dpkg:dpkg curl:curl; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair%%:*} (Debian package ${pair#*:})")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing commands: ${missing[*]}; install them with apt-get install, or run hack/install-deps.sh"
  grep -qw overlay /proc/filesystems || die "the kernel has no overlay filesystem, which containerd's snapshotter needs (CONFIG_OVERLAY_FS)"
  for c in cpu memory pids; do
    [ -d /sys/fs/cgroup/$c ] || [ -f /sys/fs/cgroup/cgroup.controllers ] ||
      die "no cgroup controller $c is mounted under /sys/fs/cgroup; the kubelet needs cpu, memory and pids"
  done
  unshare --net sh -c 'ip link add nftpc-probe type veth peer name nftpc-probe1 && ip link add nftpc-br type bridge' 2>/dev/null ||
    die "the kernel cannot make veth pairs and bridges (CONFIG_VETH, CONFIG_BRIDGE)"
  unshare --net nft -f - <<'NFT' 2>/dev/null || die "the kernel lacks nf_tables with NAT, numgen and ct (CONFIG_NF_TABLES, CONFIG_NFT_NAT, CONFIG_NFT_NUMGEN, CONFIG_NFT_CT)"
table ip probe {
  chain c {
    type nat hook prerouting priority -100;
    ct state new numgen random mod 2 vmap { 0 : accept, 1 : accept }
    meta l4proto tcp dnat to 10.0.0.1
  }
}
NFT
  unshare --net sh -c 'ip link add b0 type bridge && test -e /proc/sys/net/bridge/bridge-nf-call-iptables' 2>/dev/null ||
    die "the kernel lacks br_netfilter (CONFIG_BRIDGE_NETFILTER): replies between pods on one node would skip the Service NAT"
}

# ---- state ---------------------------------------------------------------

# traces lists what of a cluster exists on this machine.
traces() {
  local t=()
  ip netns list 2>/dev/null | grep -q '^nftpc-' && t+=("network namespaces $(ip netns list | awk '/^nftpc-/{print $1}' | tr '\n' ' ')")
  for f in "$STATE"/pids/*; do
    [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && t+=("process $(basename "$f")")
  done
  ls -d /sys/fs/cgroup/*/nftpc-node* >/dev/null 2>&1 && t+=("cgroups /sys/fs/cgroup/*/nftpc-node*")
  grep -q " $STATE" /proc/self/mountinfo && t+=("mounts under $STATE")
  printf '%s\n' "${t[@]}"
}

is_up() {
  [ -f "$STATE/up" ] && [ -f "$STATE/pids/kube-apiserver" ] && kill -0 "$(cat "$STATE/pids/kube-apiserver")" 2>/dev/null
}

# ---- build ---------------------------------------------------------------

build() {
  bash "$ROOT/hack/build-control-plane.sh" node
  bash "$HERE/install-runtime.sh"
  bash "$ROOT/hack/install-tools.sh"
  bash "$HERE/build-images.sh"
}

# ---- network -------------------------------------------------------------

network() {
  ip netns add "$OUTSIDE"
  ip -n "$OUTSIDE" link set lo up
  ip -n "$OUTSIDE" link add br0 type bridge
  ip -n "$OUTSIDE" addr add 10.99.0.1/24 dev br0
  ip -n "$OUTSIDE" link set br0 up
  local i j
  for i in $(seq 1 "$NODES"); do
    local n
    n=$(node_name "$i")
    ip netns add "$n"
    ip -n "$n" link set lo up
    # Both ends are made inside the namespaces, so no link ever appears
    # in the host's.
    ip -n "$n" link add eth0 type veth peer name "node$i" netns "$OUTSIDE"
    ip -n "$n" addr add "$(node_ip "$i")/24" dev eth0
    ip -n "$n" link set eth0 up
    ip -n "$OUTSIDE" link set "node$i" master br0 up
    ip -n "$n" route add default via 10.99.0.1
    # The outside reaches the pods, as a router of this network would.
    ip -n "$OUTSIDE" route add "$(pod_cidr "$i")" via "$(node_ip "$i")"
    ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 \
      net.bridge.bridge-nf-call-ip6tables=1
  done
  # Nodes reach each other's pods directly, as hosts on one network do.
  for i in $(seq 1 "$NODES"); do
    for j in $(seq 1 "$NODES"); do
      [ "$i" = "$j" ] || ip -n "$(node_name "$i")" route add "$(pod_cidr "$j")" via "$(node_ip "$j")"
    done
  done
  ip netns exec "$OUTSIDE" sysctl -qw net.ipv4.ip_forward=1
}

# mount_namespace N: a persistent private mount namespace for node N, in
# which /run, /var/lib and /var/log are the node's own folders and the
# kernel tunables the kubelet writes are files of its own.
mount_namespace() {
  local i=$1 s
  s=$STATE/node$i
  mkdir -p "$s/run" "$s/varlib" "$s/varlog" "$s/sysctl"
  # What the kubelet would set them to, so it finds nothing to change.
  printf '1\n' >"$s/sysctl/vm_overcommit_memory"
  printf '0\n' >"$s/sysctl/vm_panic_on_oom"
  printf '10\n' >"$s/sysctl/kernel_panic"
  printf '1\n' >"$s/sysctl/kernel_panic_on_oops"
  printf '1000000\n' >"$s/sysctl/kernel_keys_root_maxkeys"
  printf '25000000\n' >"$s/sysctl/kernel_keys_root_maxbytes"
  touch "$s/mnt"
  unshare --mount="$s/mnt" --propagation private true
  nsenter --mount="$s/mnt" sh -ec '
    s=$1
    mount --bind "$s/run" /run
    mount --bind "$s/varlib" /var/lib
    mount --bind "$s/varlog" /var/log
    for f in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes; do
      mount --bind "$s/sysctl/$(echo "$f" | tr / _)" "/proc/sys/$f"
    done' sh "$s"
  mkdir -p "$s/run/netns"
}

# ---- control plane -------------------------------------------------------

pki() {
  local p=$STATE/pki
  mkdir -p "$p"
  (
    cd "$p"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj "/CN=nftpc-ca" 2>/dev/null
    cert() { # cert NAME SUBJECT EXTENSIONS
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      printf '%s\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 30 -extfile "$1.ext" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    cert apiserver /CN=kube-apiserver "subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:10.96.0.1,IP:$API_IP,IP:127.0.0.1
extendedKeyUsage=serverAuth
keyUsage=digitalSignature,keyEncipherment"
    cert kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth
keyUsage=digitalSignature,keyEncipherment"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    local tok
    tok() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
    {
      echo "$(tok),admin,uid-admin,\"system:masters\""
      echo "$(tok),system:kube-controller-manager,uid-kcm"
      echo "$(tok),system:kube-scheduler,uid-scheduler"
      for i in $(seq 1 "$NODES"); do
        echo "$(tok),system:node:$(node_name "$i"),uid-node$i,\"system:nodes\""
      done
    } >tokens.csv
  )
}

# kubeconfig FILE USER SERVER: a kubeconfig for one of the tokens.
kubeconfig() {
  local token
  token=$(awk -F, -v u="$2" '$2 == u {print $1}' "$STATE/pki/tokens.csv")
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: nftpc
  cluster:
    server: $3
    certificate-authority: $STATE/pki/ca.crt
users:
- name: $2
  user:
    token: $token
contexts:
- name: nftpc
  context: {cluster: nftpc, user: "$2"}
current-context: nftpc
EOF
}

control_plane() {
  local n1 p=$STATE/pki
  n1=$(node_name 1)
  pki
  start etcd "$n1" - "$BIN/etcd" --name=nftpc --data-dir="$STATE/etcd" \
    --listen-client-urls=http://127.0.0.1:$ETCD_PORT --advertise-client-urls=http://127.0.0.1:$ETCD_PORT \
    --listen-peer-urls=http://127.0.0.1:$((ETCD_PORT + 1)) --initial-advertise-peer-urls=http://127.0.0.1:$((ETCD_PORT + 1)) \
    --initial-cluster=nftpc=http://127.0.0.1:$((ETCD_PORT + 1)) --unsafe-no-fsync
  start kube-apiserver "$n1" - "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:$ETCD_PORT \
    --bind-address=0.0.0.0 --secure-port=$API_PORT --advertise-address="$API_IP" \
    --service-cluster-ip-range=$SERVICE_CIDR --client-ca-file="$p/ca.crt" \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    --kubelet-client-certificate="$p/kubelet-client.crt" --kubelet-client-key="$p/kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --token-auth-file="$p/tokens.csv" --authorization-mode=Node,RBAC --allow-privileged=true \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-node-port-range=30000-32767
  # The host's door to the API server: a Unix socket between two socats,
  # since the host's loopback and the node's are different.
  start api-bridge-node "$n1" - socat "UNIX-LISTEN:$STATE/api.sock,fork,unlink-early" "TCP:127.0.0.1:$API_PORT"
  wait_for "the API bridge's socket" 10 test -S "$STATE/api.sock"
  start api-bridge-host - - socat "TCP-LISTEN:$HOST_API_PORT,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$STATE/api.sock"
  kubeconfig "$STATE/kubeconfig" admin "https://127.0.0.1:$HOST_API_PORT"
  # For clients inside the network: the e2e runner in the outside namespace.
  kubeconfig "$STATE/kubeconfig-inside" admin "https://$API_IP:$API_PORT"
  kubeconfig "$STATE/kcm.kubeconfig" system:kube-controller-manager "https://$API_IP:$API_PORT"
  kubeconfig "$STATE/scheduler.kubeconfig" system:kube-scheduler "https://$API_IP:$API_PORT"
  wait_for "kube-apiserver /readyz" 120 curl -fsS --cacert "$p/ca.crt" "https://127.0.0.1:$HOST_API_PORT/readyz" \
    -H "Authorization: Bearer $(awk -F, '$2 == "admin" {print $1}' "$p/tokens.csv")"
  start kube-controller-manager "$n1" - "$BIN/kube-controller-manager" \
    --kubeconfig="$STATE/kcm.kubeconfig" --authentication-kubeconfig="$STATE/kcm.kubeconfig" \
    --authorization-kubeconfig="$STATE/kcm.kubeconfig" --bind-address=127.0.0.1 --secure-port=30257 \
    --root-ca-file="$p/ca.crt" --service-account-private-key-file="$p/sa.key" --use-service-account-credentials=true \
    --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
    --service-cluster-ip-range=$SERVICE_CIDR --cluster-cidr=$CLUSTER_CIDR --allocate-node-cidrs=false \
    --leader-elect=false --node-monitor-grace-period=20s
  start kube-scheduler "$n1" - "$BIN/kube-scheduler" --kubeconfig="$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig="$STATE/scheduler.kubeconfig" --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=30259 --leader-elect=false
  wait_for "the kube-public namespace" 60 kubectl get namespace kube-public
  # As kubeadm does: where the API server is, for whoever asks (the
  # chart's apiServer.host: auto reads it).
  kubectl -n kube-public create configmap cluster-info \
    --from-literal=kubeconfig="$(kubectl config view --kubeconfig "$STATE/kubeconfig-inside" --raw --minify --flatten |
      sed -n '1,/^contexts:/p' | sed '$d')" >/dev/null
}

# ---- nodes ---------------------------------------------------------------

render() { # render TEMPLATE N > FILE
  sed -e "s#@STATE@#$STATE/node$2#g" -e "s#@RUNTIME@#$RUNTIME#g" -e "s#@NODE@#$(node_name "$2")#g" \
    -e "s#@CA@#$STATE/pki/ca.crt#g" -e "s#@PODCIDR@#$(pod_cidr "$2")#g" "$1"
}

node_up() {
  local i=$1 n s
  n=$(node_name "$i")
  s=$STATE/node$i
  mount_namespace "$i"
  mkdir -p "$s/cni"
  render "$HERE/containerd.toml" "$i" >"$s/containerd.toml"
  render "$HERE/kubelet.yaml" "$i" >"$s/kubelet.yaml"
  echo "nameserver 10.99.0.1" >"$s/resolv.conf"
  kubeconfig "$s/kubelet.kubeconfig" "system:node:$n" "https://$API_IP:$API_PORT"
  PATH=$RUNTIME/usr/bin:$PATH start "containerd-$n" "$n" "$s/mnt" "$RUNTIME/usr/bin/containerd" --config="$s/containerd.toml"
  wait_for "containerd on $n" 30 test -S "$s/run/containerd/containerd.sock"
  local t
  for t in "$IMAGES"/*.tar; do
    "$RUNTIME/usr/bin/ctr" --address "$s/run/containerd/containerd.sock" -n k8s.io images import "$t" >/dev/null ||
      die "importing $t into $n's containerd failed"
  done
  cgroup_root "$n"
  kubelet "$i"
}

kubelet() {
  local i=$1 n s
  n=$(node_name "$i")
  s=$STATE/node$i
  PATH=$RUNTIME/usr/bin:$PATH start "kubelet-$n" "$n" "$s/mnt" "$BIN/kubelet" --config="$s/kubelet.yaml" \
    --kubeconfig="$s/kubelet.kubeconfig" --root-dir="$s/varlib/kubelet" --node-ip="$(node_ip "$i")" \
    --hostname-override="$n" --node-labels="topology.kubernetes.io/zone=zone-$i" --v=1
}

# cgroup_root NAME: the node's own cgroup in every hierarchy, which the
# kubelet wants to exist before it puts kubepods under it.
cgroup_root() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [ -f "$h/cgroup.procs" ] || continue
    mkdir -p "$h$1"
    if [ -f "$h/cpuset.cpus" ]; then
      # A new cpuset is empty; a task cannot join it until it has CPUs.
      cat "$h/cpuset.cpus" >"$h$1/cpuset.cpus"
      cat "$h/cpuset.mems" >"$h$1/cpuset.mems"
    fi
  done
}

# pod_network N: once node N has registered, give it its pod CIDR and
# write its CNI configuration; it turns Ready on the next status update.
pod_network() {
  local i=$1 n
  n=$(node_name "$i")
  wait_for "node $n to register" 120 kubectl get node "$n"
  kubectl patch node "$n" --type merge -p "{\"spec\":{\"podCIDR\":\"$(pod_cidr "$i")\",\"podCIDRs\":[\"$(pod_cidr "$i")\"]}}" >/dev/null
  render "$HERE/cni.conflist" "$i" >"$STATE/node$i/cni/10-nftpc.conflist"
}

nodes_ready() {
  local i
  for i in $(seq 1 "$NODES"); do
    kubectl wait --for=condition=Ready "node/$(node_name "$i")" --timeout=1s >/dev/null 2>&1 || return 1
  done
}

nodes() {
  local i
  for i in $(seq 1 "$NODES"); do node_up "$i"; done
  for i in $(seq 1 "$NODES"); do pod_network "$i"; done
  wait_for "every node Ready" 180 nodes_ready
}

# ---- add-ons -------------------------------------------------------------

nftproxy() {
  "$BIN/helm" --kubeconfig "$STATE/kubeconfig" install nftproxy "$ROOT/charts/nftproxy" -n kube-system \
    --set image.repository=$NFTPROXY_REPO --set image.tag="$NFTPROXY_TAG" --wait --timeout 180s >/dev/null
  kubectl -n kube-system rollout status daemonset/nftproxy --timeout=180s >/dev/null
}

dns() {
  kubectl apply -f "$HERE/coredns.yaml" >/dev/null
  kubectl -n kube-system rollout status deployment/coredns --timeout=180s >/dev/null
}

# ---- up, down, status ----------------------------------------------------

up() {
  preflight
  if is_up; then
    log "a cluster is already up ($STATE/kubeconfig); it keeps running. make cluster-down removes it."
    exit 0
  fi
  local left
  left=$(traces)
  if [ -n "$left" ]; then
    die "a cluster is half up (an interrupted make cluster?): $(echo "$left" | paste -sd ';' -). Run make cluster-down first."
  fi
  local total=$SECONDS
  step "building what is missing (Kubernetes $K8S_VERSION, runtime, helm, images)" build
  rm -rf "$STATE"
  mkdir -p "$STATE/logs" "$STATE/pids"
  step "network: $OUTSIDE and $NODES node namespace(s)" network
  step "control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler" control_plane
  step "nodes: containerd, images, kubelet" nodes
  step "nftproxy: helm install from $NFTPROXY_REPO:$NFTPROXY_TAG" nftproxy
  step "cluster DNS: CoreDNS behind kube-dns (10.96.0.10)" dns
  touch "$STATE/up"
  log "up in $((SECONDS - total)) s. kubectl: $BIN/kubectl --kubeconfig $STATE/kubeconfig"
}

# stop NAME: SIGTERM the process of a pid file, then SIGKILL after 10 s.
stop() {
  local f=$STATE/pids/$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# kill_in_mount_namespace FILE: SIGKILL every process in that mount
# namespace: the node's containerd shims and whatever else it left.
kill_in_mount_namespace() {
  local ino d
  ino=$(stat -L -c %i "$1" 2>/dev/null) || return 0
  for d in /proc/[0-9]*; do
    [ "$(stat -L -c %i "$d/ns/mnt" 2>/dev/null)" = "$ino" ] && kill -9 "${d#/proc/}" 2>/dev/null
  done
  return 0
}

down() {
  local s f pid
  for f in "$STATE"/pids/kubelet-*; do [ -f "$f" ] && stop "$(basename "$f")"; done
  # Every process of every pod lives in the node's cgroups: kill them all.
  for f in /sys/fs/cgroup/*/nftpc-node*; do
    [ -d "$f" ] || continue
    for pid in $(find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  done
  for f in "$STATE"/pids/containerd-*; do [ -f "$f" ] && stop "$(basename "$f")"; done
  for s in "$STATE"/node*/; do
    [ -e "$s/mnt" ] && kill_in_mount_namespace "$s/mnt"
  done
  for f in kube-scheduler kube-controller-manager api-bridge-host api-bridge-node kube-apiserver etcd; do stop "$f"; done
  for f in "$STATE"/pids/*; do [ -f "$f" ] && stop "$(basename "$f")"; done
  # With no process left in a node's mount namespace, unmounting its
  # handle frees every mount made in it.
  for s in "$STATE"/node*/; do
    [ -e "$s/mnt" ] && { umount "$s/mnt" 2>/dev/null || true; }
  done
  # Anything still mounted under the state folder (from the host's view).
  awk -v s="$STATE" '$5 ~ "^"s {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  # The cgroups the kubelets and runc made, deepest first.
  for f in /sys/fs/cgroup/*/nftpc-node*; do
    [ -d "$f" ] && find "$f" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '/^nftpc-/{print $1}'); do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$STATE"
  local left
  left=$(traces)
  [ -z "$left" ] || die "could not remove: $(echo "$left" | paste -sd ';' -)"
  log "down: nothing of the cluster is left"
}

# node_down N: node N fails as a host does when it loses power or its
# network: its kubelet stops, and the link that joins it to the others
# goes down. Its containers keep running, cut off, until node_up.
node_down() {
  local i=$1 n
  n=$(node_name "$i")
  [ -f "$STATE/pids/kubelet-$n" ] || die "node $n is not up"
  stop "kubelet-$n"
  ip -n "$OUTSIDE" link set "node$i" down
  log "node $n is down: kubelet stopped, link node$i down"
}

# node_up_again N: node N comes back: its link goes up and its kubelet starts
# again, with the state it left.
node_up_again() {
  local i=$1 n
  n=$(node_name "$i")
  [ -d "$STATE/node$i" ] || die "node $n was never up"
  ip -n "$OUTSIDE" link set "node$i" up
  [ -f "$STATE/pids/kubelet-$n" ] || kubelet "$i"
  log "node $n is back: link node$i up, kubelet started"
}

status() {
  if is_up; then
    log "up: $(kubectl get nodes --no-headers 2>/dev/null | awk '{print $1 " " $2}' | paste -sd ',' -)"
    kubectl get pods -A -o wide 2>/dev/null || true
  else
    local left
    left=$(traces)
    if [ -n "$left" ]; then log "half up: $(echo "$left" | paste -sd ';' -)"; else log "not up"; fi
  fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  node-down) is_up || die "no cluster is up"; node_down "${2:?node-down N}" ;;
  node-up) is_up || die "no cluster is up"; node_up_again "${2:?node-up N}" ;;
  *) echo "usage: cluster.sh up|down|status|node-down N|node-up N (NODES=N for N nodes)" >&2; exit 2 ;;
esac
