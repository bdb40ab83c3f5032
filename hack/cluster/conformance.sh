#!/usr/bin/env bash
# Runs Kubernetes' own sig-network Service tests (e2e.test v1.37.2) against
# the cluster of `make cluster`.
#
#   conformance.sh nftproxy     with nftproxy as the proxy (the cluster as
#                               make cluster leaves it)
#   conformance.sh kube-proxy   with kube-proxy v1.37.2 in nftables mode
#                               instead, the baseline; nftproxy is put
#                               back afterwards
#   conformance.sh all          both, then a comparison: every test that
#                               passes with kube-proxy must pass with
#                               nftproxy
#
# The runner sits in the outside namespace, as a client on the nodes'
# network. JUnit reports go to _output/conformance/PROXY/. With nftproxy, a
# failure that is not listed in conformance-known-failures.txt fails the
# run. FOCUS and SKIP override the regexes; PROCS the parallelism.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/hack/cluster
BIN=$ROOT/_output/bin
STATE=${CLUSTER_STATE:-$ROOT/_output/cluster}
REPORTS=$ROOT/_output/conformance
PROCS=${PROCS:-4}
# Every Service test of sig-network, and every conformance test of it.
FOCUS=${FOCUS:-'\[sig-network\] Services|\[sig-network\].*\[Conformance\]'}
SKIP=${SKIP:-$(grep -v -e '^#' -e '^[[:space:]]*$' "$HERE/conformance-skip.txt" | sed 's/[[:space:]]*#.*//' | paste -sd '|' -)}

log() { printf '%s conformance: %s\n' "$(date +%T)" "$*"; }
die() { printf 'conformance: %s\n' "$*" >&2; exit 1; }
kubectl() { "$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" "$@"; }

[ -f "$STATE/up" ] || die "no cluster is up: run make cluster first"
bash "$ROOT/hack/build-control-plane.sh" conformance >/dev/null

nodes() { kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'; }

# run PROXY: the suite, with whatever proxy the cluster has now.
# --num-nodes is needed with parallel processes: without it, only the
# first process counts the nodes, and on the others every test that needs
# two nodes skips itself ("Requires at least 2 nodes (not -1)").
run() {
  local proxy=$1 dir=$REPORTS/$1 start=$SECONDS rc=0
  rm -rf "$dir"
  mkdir -p "$dir"
  log "running the sig-network Service tests with $proxy ($PROCS in parallel)"
  ip netns exec nftpc-outside "$BIN/ginkgo" --procs="$PROCS" --timeout=2h --no-color --silence-skips \
    --focus="$FOCUS" --skip="$SKIP" --junit-report=junit.xml --output-dir="$dir" \
    "$BIN/e2e.test" -- --provider=local --kubeconfig="$STATE/kubeconfig-inside" \
    --kubectl-path="$BIN/kubectl" --dump-logs-on-failure=false --allowed-not-ready-nodes=0 \
    --num-nodes="$(nodes | wc -l)" \
    >"$dir/ginkgo.log" 2>&1 || rc=$?
  grep -E '^(Ran [0-9]+ of|FAIL!|SUCCESS!|PASS|FAIL)' "$dir/ginkgo.log" | tail -3 || true
  log "$proxy: done in $((SECONDS - start)) s (ginkgo exit $rc); log and report in $dir"
  go run "$HERE/junitdiff" -summary "$dir/junit.xml"
}

to_kube_proxy() {
  log "swapping nftproxy for kube-proxy $("$BIN/kube-proxy" --version 2>/dev/null | awk '{print $2}') in nftables mode"
  "$BIN/helm" --kubeconfig "$STATE/kubeconfig" uninstall nftproxy -n kube-system --wait >/dev/null
  # helm waits for the DaemonSet, not for its pods: an agent still shutting
  # down holds the health and metrics ports kube-proxy is about to take.
  kubectl -n kube-system wait --for=delete pod -l app.kubernetes.io/name=nftproxy --timeout=120s >/dev/null
  (cd "$ROOT" && CGO_ENABLED=0 go build -o "$BIN/nftproxy" .)
  local n
  for n in $(nodes); do
    ip netns exec "$n" "$BIN/nftproxy" cleanup >/dev/null
    setsid ip netns exec "$n" "$BIN/kube-proxy" --proxy-mode=nftables --kubeconfig="$STATE/kubeconfig-inside" \
      --hostname-override="$n" --cluster-cidr=10.244.0.0/16 --conntrack-max-per-core=0 \
      --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
      --healthz-bind-address=0.0.0.0:10256 --metrics-bind-address=127.0.0.1:10249 \
      >"$STATE/logs/kube-proxy-$n.log" 2>&1 </dev/null &
    echo $! >"$STATE/pids/kube-proxy-$n"
  done
  for n in $(nodes); do
    local i
    for i in $(seq 1 120); do
      ip netns exec "$n" nft list tables 2>/dev/null | grep -q 'table ip kube-proxy' && break
      sleep 1
    done
    if ! ip netns exec "$n" nft list tables | grep -q 'table ip kube-proxy'; then
      # The cluster and its logs may be gone by the time anyone looks.
      echo "kube-proxy on $n, $(kill -0 "$(cat "$STATE/pids/kube-proxy-$n")" 2>/dev/null && echo running || echo exited); its log ends:" >&2
      tail -n 40 "$STATE/logs/kube-proxy-$n.log" >&2 || true
      die "kube-proxy did not program $n within 120 s"
    fi
  done
}

to_nftproxy() {
  log "putting nftproxy back"
  local n f
  for n in $(nodes); do
    f=$STATE/pids/kube-proxy-$n
    if [ -f "$f" ]; then
      kill "$(cat "$f")" 2>/dev/null || true
      rm -f "$f"
    fi
  done
  sleep 1
  for n in $(nodes); do
    ip netns exec "$n" nft delete table ip kube-proxy 2>/dev/null || true
    ip netns exec "$n" nft delete table ip6 kube-proxy 2>/dev/null || true
  done
  "$BIN/helm" --kubeconfig "$STATE/kubeconfig" install nftproxy "$ROOT/charts/nftproxy" -n kube-system \
    --set image.repository=ghcr.io/nftproxy/nftproxy --set image.tag=0.1.0 --wait --timeout 180s >/dev/null
}

case ${1:-nftproxy} in
  nftproxy)
    run nftproxy
    go run "$HERE/junitdiff" -known "$HERE/conformance-known-failures.txt" "$REPORTS/nftproxy/junit.xml"
    ;;
  kube-proxy)
    to_kube_proxy
    trap to_nftproxy EXIT
    run kube-proxy
    ;;
  all)
    to_kube_proxy
    trap to_nftproxy EXIT
    run kube-proxy
    trap - EXIT
    to_nftproxy
    run nftproxy
    go run "$HERE/junitdiff" "$REPORTS/kube-proxy/junit.xml" "$REPORTS/nftproxy/junit.xml"
    ;;
  *) echo "usage: conformance.sh nftproxy|kube-proxy|all" >&2; exit 2 ;;
esac
