#!/usr/bin/env bash
# make-fixture.sh TWOKEY_BIN OUT_DIR
#
# Makes the data directory tests/migrate opens: a real 'twokey serve' (the
# binary given, built from the commit whose file layout the fixture pins)
# runs a short story like scripts/demo.sh's against a local upstream, then
# stops cleanly. OUT_DIR (e.g. tests/migrate/testdata/v1) must be missing
# or empty; it gets
#
#   data/         the server's data directory: twokey.db and master.key
#   alice.json    the three identities (test keys, of no value)
#   bob.json
#   carol.json
#   ops-export.json  'twokey audit export ops' as the old server gave it
#   README        the commit, the ids, the record counts, the clock
#
# The upstream listens on a fixed address (UPSTREAM_ADDR, default
# 127.0.0.1:28417, below every OS's ephemeral port range): the URL of each
# request is signed into the log, so a test that approves a pending request
# of the fixture must serve httpbin at the very same address.
#
# The only API key in it is the demo's made-up sk_demo_4f9c2a7e1b8d. The
# master key that opens the vault is data/master.key (the default place,
# <data_dir>/master.key); nothing comes from the environment.
#
# Example, from the repository's root:
#   git worktree add /tmp/oldtree HEAD
#   (cd /tmp/oldtree && go build -o bin/twokey ./cmd/twokey)
#   tests/migrate/testdata/make-fixture.sh /tmp/oldtree/bin/twokey tests/migrate/testdata/v1
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 TWOKEY_BIN OUT_DIR" >&2
  exit 2
fi
TK=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
OUT=$2
[ -x "$TK" ] || { echo "$TK is not an executable" >&2; exit 2; }
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then
  echo "$OUT is not empty; remove it first" >&2
  exit 2
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
UPSTREAM_ADDR=${UPSTREAM_ADDR:-127.0.0.1:28417}
# The commit the binary was built from: its checkout's HEAD, unless given.
COMMIT=${FIXTURE_COMMIT:-$(git -C "$(dirname "$TK")" rev-parse HEAD 2>/dev/null || echo unknown)}

# Nothing of the caller's twokey settings, and no ~/.twokey touched.
for v in $(compgen -e | grep '^TWOKEY_' || true); do unset "$v"; done
work=$(mktemp -d "${TMPDIR:-/tmp}/twokey-fixture.XXXXXX")
export HOME="$work/home"
mkdir -p "$HOME"

srv_pid=""
up_pid=""
cleanup() {
  for p in $srv_pid $up_pid; do kill "$p" 2>/dev/null || true; done
  for p in $srv_pid $up_pid; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# wait_listen FILE: the URL of the "listening on" line a server printed.
wait_listen() {
  for _ in $(seq 1 100); do
    if url=$(grep -m1 -o 'listening on http://[0-9.:]*' "$1" 2>/dev/null); then echo "${url#listening on }"; return 0; fi
    sleep 0.1
  done
  echo "server did not start; its output:" >&2; cat "$1" >&2; return 1
}
# field KEY TEXT: the value of a "key  value" line of 'request show'.
field() { sed -n "s/^$1 *//p" <<<"$2" | head -1; }
# rid OUTPUT: the id of "submitted request ID: ...".
rid() { sed -n 's/^submitted request \([0-9a-f-]*\).*/\1/p' <<<"$1"; }
# convid OUTPUT: the id of "created conversation NAME (ID) ...".
convid() { sed -n 's/^created conversation [^ ]* (\([0-9a-f-]*\)).*/\1/p' <<<"$1"; }
die() { echo "make-fixture: $*" >&2; exit 1; }

"$TK" fun-server --addr "$UPSTREAM_ADDR" --httpbin --log-requests >"$work/upstream.log" 2>&1 &
up_pid=$!
UP=$(wait_listen "$work/upstream.log")

DATA="$OUT/data"
"$TK" serve --addr 127.0.0.1:0 --data-dir "$DATA" \
  --service "httpbin=$UP/httpbin" --service "fun=$UP" >"$work/server.log" 2>"$work/server.err" &
srv_pid=$!
export TWOKEY_SERVER=$(wait_listen "$work/server.log")
GW=$(sed -n 's/.*(signing key \([A-Za-z0-9_-]*\)).*/\1/p' "$work/server.log")
[ -n "$GW" ] || die "no gateway key in the server's output"

for who in alice bob carol; do "$TK" id new --name "$who" --out "$OUT/$who.json" >/dev/null; done
as() { local who=$1; shift; TWOKEY_IDENTITY="$OUT/$who.json" "$@"; }
ALICE=$(as alice "$TK" id key); BOB=$(as bob "$TK" id key); CAROL=$(as carol "$TK" id key)

# ops: alice (admin), bob, carol; gate on at 2 of 3.
OPS=$(convid "$(as alice "$TK" conv create ops --member "bob=$BOB" --member "carol=$CAROL")")
[ -n "$OPS" ] || die "no id for ops"
as alice "$TK" say ops "I'd like to check what our httpbin integration sends." >/dev/null
as bob "$TK" say ops "Sure, put it through the gate." >/dev/null
as alice "$TK" gate enable ops --approvals 2 >/dev/null
printf 'sk_demo_4f9c2a7e1b8d' | as alice "$TK" secret add ops --service httpbin --ttl 720h >/dev/null

# One request approved and executed.
EXECUTED=$(rid "$(as alice "$TK" request ops httpbin.headers --expires 1h)")
as bob "$TK" approve ops "$EXECUTED" >/dev/null
show=$(as carol "$TK" request show ops "$EXECUTED" --wait)
[ "$(field state "$show")" = executed ] || die "request $EXECUTED: $show"
grep -q 'upstream received GET /httpbin/headers \[Authorization: Bearer sk_d' "$work/upstream.log" ||
  die "the upstream did not get the key: $(cat "$work/upstream.log")"

# One rejected: bob and carol say no, so 2 approvals are out of reach.
REJECTED=$(rid "$(as alice "$TK" request ops httpbin.echo data=drop-tables --expires 1h)")
as bob "$TK" reject ops "$REJECTED" --reason "not today" >/dev/null
as carol "$TK" reject ops "$REJECTED" --reason "agreed" >/dev/null
show=$(as alice "$TK" request show ops "$REJECTED")
[ "$(field state "$show")" = rejected ] || die "request $REJECTED: $show"

# Two left pending, for as long as a request may wait (168h): a test
# opens the fixture on a clock set to FIXTURE's "clock" below.
PENDING1=$(rid "$(as alice "$TK" request ops httpbin.headers --expires 168h)")
PENDING2=$(rid "$(as carol "$TK" request ops httpbin.echo data=ship-it --expires 168h)")
for r in "$PENDING1" "$PENDING2"; do
  show=$(as bob "$TK" request show ops "$r")
  [ "$(field state "$show")" = pending ] || die "request $r: $show"
done
as carol "$TK" say ops "Two more waiting for a second approval." >/dev/null

# A second conversation, chat only: alice and bob.
LUNCH=$(convid "$(as alice "$TK" conv create lunch --member "bob=$BOB")")
[ -n "$LUNCH" ] || die "no id for lunch"
as alice "$TK" say lunch "Noodles at noon?" >/dev/null
as bob "$TK" say lunch "Yes, the usual place." >/dev/null
as alice "$TK" say lunch "Booked for two." >/dev/null

as carol "$TK" audit export ops >"$OUT/ops-export.json" 2>"$work/export.err"
OPS_RECORDS=$(sed -n 's/^exported \([0-9]*\) records.*/\1/p' "$work/export.err")
"$TK" audit verify "$OUT/ops-export.json" --gateway "$GW" >/dev/null || die "the old server's export does not verify"
LUNCH_RECORDS=$(as bob "$TK" log lunch --short | sed -n 's/^-- \([0-9]*\) records.*/\1/p')
[ -n "$OPS_RECORDS" ] && [ -n "$LUNCH_RECORDS" ] || die "no record counts"
# A time at or after every record: the clock a test opens the fixture on.
sleep 1
CLOCK=$(date -u +%Y-%m-%dT%H:%M:%SZ)

kill -TERM "$srv_pid"
wait "$srv_pid" || die "twokey serve exited with $? on SIGTERM: $(tail -5 "$work/server.err")"
srv_pid=""
kill -TERM "$up_pid"
wait "$up_pid" 2>/dev/null || true
up_pid=""

cat >"$OUT/README" <<EOF
A data directory written by twokey at commit $COMMIT,
made by ../make-fixture.sh (read it for the story), opened by
tests/migrate with the current code. Do not edit it by hand: run the
script again with a binary of the old commit.

data/ is the server's data directory; its master key is data/master.key
(twokey serve's default, <data_dir>/master.key), which must be mode 0600
and the directory 0700 before a server opens it (git keeps neither).
alice.json, bob.json and carol.json are the identities (test keys). The
only API key in the vault is the demo's made-up sk_demo_4f9c2a7e1b8d
(service httpbin, header Authorization: Bearer {value}, TTL 720h).
ops-export.json is 'twokey audit export ops' as the old server answered.

The lines below are read by tests/migrate (key: value).

commit: $COMMIT
clock: $CLOCK
upstream: $UP
gateway: $GW
alice: $ALICE
bob: $BOB
carol: $CAROL
ops: $OPS
ops_members: alice bob carol
ops_required: 2
ops_records: $OPS_RECORDS
executed: $EXECUTED
rejected: $REJECTED
pending1: $PENDING1
pending1_template: httpbin.headers
pending2: $PENDING2
pending2_template: httpbin.echo
lunch: $LUNCH
lunch_members: alice bob
lunch_records: $LUNCH_RECORDS
secret: sk_demo_4f9c2a7e1b8d
EOF

echo "fixture in $OUT:"
ls -la "$OUT" "$DATA"
