#!/usr/bin/env bash
# The demo: nftproxy's main job, end to end on this machine, as root.
# It builds what it needs, starts a real kube-apiserver and etcd on
# loopback, creates a node network namespace with a client pod and three
# backend pods, runs nftproxy for that node, applies examples/web.yaml,
# sends 300 connections to the ClusterIP and shows where they went and the
# ruleset that sent them there. Everything it creates is removed at the
# end, also when interrupted. The host's own ruleset is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=$ROOT/_output/bin
if [ "$(id -u)" != 0 ]; then echo "demo: run as root (it creates network namespaces)" >&2; exit 1; fi

N=7
step() { printf '\n[%s/%s] %s\n' "$1" "$N" "$2"; }
ID=demo$$
NODE=$ID-node CLIENT=$ID-client
WORK=$(mktemp -d)
pids=()

cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  for ns in $NODE $CLIENT $ID-ep1 $ID-ep2 $ID-ep3; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$WORK"
  echo "demo: removed everything it created"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step 1 "installing Debian packages (nftables, iproute2, socat)"
bash hack/install-deps.sh

step 2 "building kube-apiserver, etcd and kubectl from Go modules (first time: about 6 minutes)"
bash hack/build-control-plane.sh

step 3 "building nftproxy"
go build -o "$BIN/nftproxy" .
go build -o "$BIN/controlplane" ./hack/controlplane
"$BIN/nftproxy" version

step 4 "starting etcd and kube-apiserver on 127.0.0.1"
"$BIN/controlplane" > "$WORK/cp.out" 2> "$WORK/cp.err" &
pids+=($!)
for _ in $(seq 1 120); do grep -q '^kubeconfig:' "$WORK/cp.out" 2>/dev/null && break; sleep 0.5; done
KUBECONFIG=$(sed -n 's/^kubeconfig: //p' "$WORK/cp.out")
[ -n "$KUBECONFIG" ] || { cat "$WORK/cp.err"; exit 1; }
export KUBECONFIG
kubectl() { "$BIN/kubectl" "$@"; }
kubectl version 2>/dev/null | sed 's/^/  /'

step 5 "creating the node namespace $NODE, a client pod and three backend pods"
ip netns add "$NODE"
ip netns exec "$NODE" sysctl -qw net.ipv4.ip_forward=1
ip -n "$NODE" link set lo up
pod() { # pod NAME INDEX: a namespace on 10.244.INDEX.2 behind the node's 10.244.INDEX.1
  ip netns add "$1"
  ip link add eth0 netns "$1" type veth peer name "to-$2" netns "$NODE"
  ip -n "$1" link set lo up
  ip -n "$1" addr add "10.244.$2.2/24" dev eth0
  ip -n "$1" link set eth0 up
  ip -n "$1" route add default via "10.244.$2.1"
  ip -n "$NODE" addr add "10.244.$2.1/24" dev "to-$2"
  ip -n "$NODE" link set "to-$2" up
}
pod "$CLIENT" 1
for i in 1 2 3; do
  pod "$ID-ep$i" $((i + 1))
  ip netns exec "$ID-ep$i" socat TCP-LISTEN:8080,fork,reuseaddr SYSTEM:"echo ep$i" &
  pids+=($!)
done
kubectl create -f - >/dev/null <<NODEYAML
apiVersion: v1
kind: Node
metadata: {name: demo-node}
NODEYAML
echo "  namespaces: $(ip netns list | grep -c "^$ID") created; backends answer with their name on port 8080"

step 6 "running nftproxy for the node, and applying examples/web.yaml"
"$BIN/nftproxy" run --kubeconfig "$KUBECONFIG" --node-name demo-node --netns "/run/netns/$NODE" \
  --cluster-cidr 10.244.0.0/16 --ip-families IPv4 --metrics-bind-address 127.0.0.1:19249 \
  --healthz-bind-address 127.0.0.1:19256 > "$WORK/nftproxy.log" 2>&1 &
pids+=($!)
kubectl apply -f examples/web.yaml | sed 's/^/  /'
for _ in $(seq 1 50); do
  ip netns exec "$CLIENT" socat -T1 - TCP:10.96.0.80:80,connect-timeout=1 </dev/null >/dev/null 2>&1 && break
  sleep 0.1
done
echo "  /readyz: $(curl -s http://127.0.0.1:19256/readyz 2>/dev/null || echo unavailable)"

step 7 "sending 300 connections from the client pod to 10.96.0.80:80"
for _ in $(seq 1 300); do
  ip netns exec "$CLIENT" socat -T1 - TCP:10.96.0.80:80,connect-timeout=1 </dev/null 2>/dev/null || echo failed
done | sort | uniq -c | awk 'BEGIN { printf "  %-8s %s\n", "backend", "connections" } { printf "  %-8s %s\n", $2, $1 }'

printf '\nThe ruleset nftproxy programmed in the node namespace (nft list table ip nftproxy):\n\n'
ip netns exec "$NODE" nft list table ip nftproxy
