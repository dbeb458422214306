#!/usr/bin/env bash
# make demo-ha: two twokey nodes sharing one etcd cluster, in a temp dir.
# A 3-member etcd runs in-process (bin/etcddev, development only; production
# runs etcd itself, docs/ha.md). Both nodes serve the whole API; one at a
# time, the executor, makes the upstream calls. The flow goes through both
# nodes, then the executor is killed and the other node takes over.
# Set KEEP=1 to keep the temp dir (the logs) at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
TK="$PWD/bin/twokey"
ETCD="$PWD/bin/etcddev"
go build -o "$TK" ./cmd/twokey
go build -o "$ETCD" ./internal/etcddev

work=$(mktemp -d "${TMPDIR:-/tmp}/twokey-demo-ha.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-}" = 1 ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" | sed "s#$TK#twokey#g; s#$work#\$DEMO#g"; "$@"; }
fail() { echo "demo-ha: FAILED: $*" >&2; exit 1; }

# wait_listen FILE: the URL of the "listening on" line a server printed.
wait_listen() {
  for _ in $(seq 1 100); do
    if url=$(grep -m1 -o 'http://[0-9.:]*' "$1" 2>/dev/null); then echo "$url"; return 0; fi
    sleep 0.1
  done
  echo "server did not start; its output:" >&2; cat "$1" "${1%.log}.err" >&2 2>/dev/null; return 1
}

# wait_grep SECONDS PATTERN FILE: wait until FILE has a line matching PATTERN.
wait_grep() {
  local n=$(($1 * 10))
  for _ in $(seq 1 "$n"); do grep -q "$2" "$3" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

# calls PATH: how many calls the upstream received for PATH.
calls() { grep -c "upstream received [A-Z]* $1 " "$work/upstream.log" || true; }

step "A local upstream (httpbin + the fun server), logging what it receives"
"$TK" fun-server --addr 127.0.0.1:0 --httpbin --log-requests >"$work/upstream.log" 2>&1 &
pids+=($!)
UP=$(wait_listen "$work/upstream.log")
echo "upstream at $UP"

step "A 3-member etcd cluster on loopback (bin/etcddev, development only)"
"$ETCD" --dir "$work/etcd" >"$work/etcd.log" 2>"$work/etcd.err" &
pids+=($!)
wait_grep 40 '^endpoints ' "$work/etcd.log" || { cat "$work/etcd.err" >&2; fail "etcd did not start"; }
EPS=$(sed -n 's/^endpoints //p' "$work/etcd.log")
echo "etcd at $EPS"

step "Two twokey nodes on the shared store, one master key for both"
export TWOKEY_MASTER_KEY=$(head -c32 /dev/urandom | base64)
# The management key lets 'twokey status' in; read from the environment.
export TWOKEY_MANAGEMENT_KEY="mk_demo_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
echo "TWOKEY_MASTER_KEY=... (32 random bytes, base64; the same on every node)"
# serve_node NAME: start node NAME on a fresh data dir; its pid in NODE_PID.
serve_node() {
  local name=$1
  printf '$ twokey serve --store etcd --etcd-endpoints %s --etcd-node node-%s --etcd-lease-ttl 2s --addr 127.0.0.1:0 --data-dir $DEMO/%s --service httpbin=%s/httpbin --service fun=%s &\n' \
    "$EPS" "$name" "$name" "$UP" "$UP"
  "$TK" serve --store etcd --etcd-endpoints "$EPS" --etcd-node "node-$name" --etcd-lease-ttl 2s \
    --addr 127.0.0.1:0 --data-dir "$work/$name" \
    --service "httpbin=$UP/httpbin" --service "fun=$UP" >"$work/$name.log" 2>"$work/$name.err" &
  NODE_PID=$!
  pids+=($NODE_PID)
}
# Node A starts first and takes the executor's lease before B campaigns,
# so that killing A below is a real failover.
serve_node a
PID_A=$NODE_PID
A=$(wait_listen "$work/a.log")
wait_grep 20 'this node is the executor now' "$work/a.err" || { cat "$work/a.err" >&2; fail "node A did not take the lead"; }
serve_node b
PID_B=$NODE_PID
B=$(wait_listen "$work/b.log")
echo "node A at $A (pid $PID_A), the executor"
echo "node B at $B (pid $PID_B)"

step "Three identities: alice, bob and carol"
for who in alice bob carol; do run "$TK" id new --name "$who" --out "$work/$who.json"; done
# on NODE WHO CMD...: run a CLI command as WHO against node A or B.
on() {
  local url=$1 who=$2; shift 2
  printf '$ [node %s, %s] %s\n' "$([ "$url" = "$A" ] && echo A || echo B)" "$who" "$*" | sed "s#$TK#twokey#g; s#$work#\$DEMO#g"
  TWOKEY_SERVER="$url" TWOKEY_IDENTITY="$work/$who.json" "$@"
}
BOB=$(TWOKEY_IDENTITY="$work/bob.json" "$TK" id key)
CAROL=$(TWOKEY_IDENTITY="$work/carol.json" "$TK" id key)

step "On node A: alice creates 'ops', enables the gate (2 of 3) and adds the httpbin key"
on "$A" alice "$TK" conv create ops --member "bob=$BOB" --member "carol=$CAROL"
on "$A" alice "$TK" gate enable ops --approvals 2
printf '$ [node A, alice] printf sk_demo_... | twokey secret add ops --service httpbin --ttl 720h\n'
printf 'sk_demo_4f9c2a7e1b8d' | TWOKEY_SERVER="$A" TWOKEY_IDENTITY="$work/alice.json" "$TK" secret add ops --service httpbin --ttl 720h
on "$B" carol "$TK" secret ls ops

# submit NODE WHO TEMPLATE: submit a request, print the CLI's answer, set RID.
submit() {
  local out
  out=$(on "$1" "$2" "$TK" request ops "$3" --expires 1h) || { echo "$out"; fail "request on $1 refused"; }
  echo "$out"
  RID=$(echo "$out" | sed -n 's/^submitted request \([0-9a-f-]*\).*/\1/p')
  [ -n "$RID" ] || fail "no request id in the answer"
}
# settle NODE WHO: wait (30 s at most) for request RID to settle and check it executed.
settle() {
  local out rc=0
  out=$(timeout 30 env TWOKEY_SERVER="$1" TWOKEY_IDENTITY="$work/$2.json" "$TK" request show ops "${RID:0:8}" --wait 2>&1) || rc=$?
  [ "$rc" != 124 ] || { echo "$out"; fail "request ${RID:0:8} did not settle within 30 s on $1"; }
  [ "$rc" = 0 ] || { echo "$out"; fail "twokey request show --wait exited $rc on $1"; }
  printf '$ [node %s, %s] twokey request show ops %s --wait\n' "$([ "$1" = "$A" ] && echo A || echo B)" "$2" "${RID:0:8}"
  echo "$out"
  echo "$out" | grep -qi 'executed' || fail "request ${RID:0:8} did not execute"
}

step "alice submits httpbin.headers on node A (1/2); bob approves on node B (2/2)"
before=$(calls /httpbin/headers)
submit "$A" alice httpbin.headers
on "$B" bob "$TK" approve ops "${RID:0:8}"
settle "$A" carol
n=$(( $(calls /httpbin/headers) - before ))
echo
echo "What the upstream received for /httpbin/headers: $n call(s)"
grep 'upstream received' "$work/upstream.log" | sed 's/^/  /'
[ "$n" = 1 ] || fail "the upstream got $n calls, not exactly 1"

step "Each node's status"
for node in A B; do
  url=$A; [ "$node" = B ] && url=$B
  on "$url" alice "$TK" status || fail "twokey status failed on node $node"
done
echo "the nodes' logs:"
grep -H 'executor' "$work/a.err" "$work/b.err" | sed "s#$work/##; s/^/  /"

step "Failover: kill -9 the executor (node A); node B takes over after the 2 s lease"
grep -q 'this node is the executor now' "$work/b.err" && fail "node B already leads; A is not the executor"
run kill -9 "$PID_A"
wait "$PID_A" 2>/dev/null || true
t0=$(date +%s%N)
before=$(calls /httpbin/headers)
submit "$B" alice httpbin.headers
on "$B" bob "$TK" approve ops "${RID:0:8}"
settle "$B" carol
wait_grep 30 'this node is the executor now' "$work/b.err" || fail "node B never took the lead"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
printf 'node B executes now (it took the lead within %d.%d s of the kill)\n' $((ms / 1000)) $((ms % 1000 / 100))
n=$(( $(calls /httpbin/headers) - before ))
echo "What the upstream received for /httpbin/headers since the kill: $n call(s)"
[ "$n" = 1 ] || fail "the upstream got $n calls, not exactly 1"
on "$B" carol "$TK" requests ops

echo
echo OK
