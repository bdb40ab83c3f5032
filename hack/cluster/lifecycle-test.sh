#!/usr/bin/env bash
# Proves that the cluster's life has no loose ends:
#   - make cluster-down with nothing up succeeds;
#   - make cluster interrupted half way leaves something that a second
#     make cluster refuses (naming make cluster-down), and that
#     make cluster-down removes entirely: no process, mount, network
#     namespace, cgroup or state folder is left.
# (A second make cluster while one is up is a cluster test.)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CLUSTER=$ROOT/hack/cluster/cluster.sh
STATE=${CLUSTER_STATE:-$ROOT/_output/cluster}

log() { printf '%s lifecycle: %s\n' "$(date +%T)" "$*"; }
fail() { printf 'lifecycle: FAIL: %s\n' "$*" >&2; exit 1; }

# leftovers prints whatever of a cluster is still on the machine.
leftovers() {
  ip netns list | awk '/^nftpc-/{print "network namespace " $1}'
  ls -d /sys/fs/cgroup/*/nftpc-node* 2>/dev/null | sed 's/^/cgroup /'
  grep " $STATE" /proc/self/mountinfo | awk '{print "mount " $5}'
  [ -e "$STATE" ] && echo "state folder $STATE"
  # Every process of the cluster names its state folder on its command
  # line: etcd's data, the API server's keys, containerd's configuration
  # and socket, the kubelet's, the shims' sockets.
  local d cmd
  for d in /proc/[0-9]*; do
    [ "${d#/proc/}" = $$ ] && continue
    # A process may end between the glob and the read.
    cmd=$({ tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null) || continue
    case $cmd in
      *"$STATE/"*) echo "process ${d#/proc/} ${cmd:0:100}" ;;
    esac
  done
  return 0
}

log "make cluster-down with nothing up"
bash "$CLUSTER" down >/dev/null || fail "cluster-down with nothing up failed"
[ -z "$(leftovers)" ] || fail "something was up before the test: $(leftovers)"

log "make cluster, interrupted once its kubelet has started"
setsid bash "$CLUSTER" up >"$ROOT/_output/lifecycle-up.log" 2>&1 &
up=$!
for _ in $(seq 1 600); do
  ls "$STATE"/pids/kubelet-* >/dev/null 2>&1 && break
  kill -0 "$up" 2>/dev/null || fail "make cluster ended before its kubelet started: $(tail -5 "$ROOT/_output/lifecycle-up.log")"
  sleep 0.5
done
sleep 2
kill -TERM -- -"$up" 2>/dev/null || true
wait "$up" 2>/dev/null || true
[ -n "$(leftovers)" ] || fail "the interrupted make cluster left nothing to clean up: the test proves nothing"

log "make cluster over the half-started one"
if out=$(bash "$CLUSTER" up 2>&1); then
  fail "make cluster over a half-started cluster succeeded: $out"
fi
grep -q "make cluster-down" <<<"$out" || fail "make cluster did not name make cluster-down: $out"

log "make cluster-down after the interruption"
bash "$CLUSTER" down >/dev/null || fail "cluster-down after an interrupted make cluster failed"
left=$(leftovers)
[ -z "$left" ] || fail "left behind: $left"
log "passed: nothing of the cluster is left"
