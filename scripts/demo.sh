#!/usr/bin/env bash
# make demo: the whole twokey story on the embedded defaults, in a temp dir.
# A local upstream (twokey fun-server --httpbin) stands in for the catalog's
# services, so nothing leaves this machine. Set KEEP=1 to leave the server
# running at the end (for 'twokey tui').
set -euo pipefail
cd "$(dirname "$0")/.."
TK="$PWD/bin/twokey"
[ -x "$TK" ] || go build -o "$TK" ./cmd/twokey
# The MCP client standing in for an AI agent (the SDK's own client).
AGENT="$PWD/bin/demoagent"
go build -o "$AGENT" ./internal/demoagent

work=$(mktemp -d "${TMPDIR:-/tmp}/twokey-demo.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ "${KEEP:-}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" | sed "s#$TK#twokey#g; s#$work#\$DEMO#g"; "$@"; }

# wait_listen FILE: the URL of the "listening on" line a server printed.
wait_listen() {
  for _ in $(seq 1 100); do
    if url=$(grep -m1 -o 'http://[0-9.:]*' "$1" 2>/dev/null); then echo "$url"; return 0; fi
    sleep 0.1
  done
  echo "server did not start; its output:" >&2; cat "$1" >&2; return 1
}

step "A local upstream (httpbin + the fun server), logging what it receives"
"$TK" fun-server --addr 127.0.0.1:0 --httpbin --log-requests >"$work/upstream.log" 2>&1 &
pids+=($!)
UP=$(wait_listen "$work/upstream.log")
echo "upstream at $UP"

# free_port: a loopback port nothing listens on, so that the server's
# public URL (the links in notifications and MCP answers) is known before
# it starts.
free_port() {
  for p in $(shuf -i 20000-60000 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  echo "no free port found" >&2; return 1
}

step "twokey serve, on a fresh data dir, with every service pointed at the upstream"
# The management key lets the operator's commands (keys, webhooks) in; it
# is read from the environment, never a flag.
export TWOKEY_MANAGEMENT_KEY="mk_demo_$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
PORT=$(free_port)
"$TK" serve --addr "127.0.0.1:$PORT" --public-url "http://127.0.0.1:$PORT" --data-dir "$work/server" \
  --service "httpbin=$UP/httpbin" --service "fun=$UP" >"$work/server.log" 2>"$work/server.err" &
pids+=($!)
export TWOKEY_SERVER=$(wait_listen "$work/server.log")
sed "s#$work#\$DEMO#g" "$work/server.log"

step "Three identities: alice, bob and carol share this machine"
for who in alice bob carol; do run "$TK" id new --name "$who" --out "$work/$who.json"; done
as() { local who=$1; shift; TWOKEY_IDENTITY="$work/$who.json" "$@"; }
BOB=$(as bob "$TK" id key); CAROL=$(as carol "$TK" id key)

step "alice creates the conversation 'ops' and chats"
run as alice "$TK" conv create ops --member "bob=$BOB" --member "carol=$CAROL"
run as alice "$TK" say ops "I'd like to check what our httpbin integration sends."
run as bob "$TK" say ops "Sure, put it through the gate."

step "alice enables the gateway: 2 of 3 signers must approve"
run as alice "$TK" gate enable ops --approvals 2

step "alice provisions the httpbin API key (read from stdin, sealed on this machine)"
printf '$ printf sk_demo_... | twokey secret add ops --service httpbin --ttl 720h\n'
printf 'sk_demo_4f9c2a7e1b8d' | as alice "$TK" secret add ops --service httpbin --ttl 720h
run as alice "$TK" secret ls ops

step "Notifications: a webhook receiver on this machine checks every signature"
"$TK" webhooks listen --addr 127.0.0.1:0 --secret-file "$work/hook.secret" >"$work/hook.log" 2>&1 &
pids+=($!)
HOOK=$(wait_listen "$work/hook.log")
echo "receiver at $HOOK (twokey webhooks listen)"
printf '$ twokey webhooks add ops-hook %s --conversation ops --secret-only > $DEMO/hook.secret\n' "$HOOK"
"$TK" webhooks add ops-hook "$HOOK" --conversation ops --secret-only >"$work/hook.secret"
run "$TK" webhooks ls

step "The catalog, and a preview (nothing is submitted)"
run "$TK" templates
run as alice "$TK" request ops httpbin.headers --preview

step "alice requests httpbin.headers; it counts as her approval (1/2)"
out=$(as alice "$TK" request ops httpbin.headers --expires 1h)
echo "$out"
RID=$(echo "$out" | sed -n 's/^submitted request \([0-9a-f-]*\).*/\1/p')

step "bob approves: 2/2, the gateway injects the key and calls the upstream once"
run as bob "$TK" approve ops "${RID:0:8}"
run as carol "$TK" request show ops "${RID:0:8}" --wait
echo
echo "What the upstream received (credential masked by the upstream's own log):"
grep 'upstream received' "$work/upstream.log" | sed 's/^/  /'

echo
echo "What the webhook receiver got (each signature checked with the target's secret):"
for _ in $(seq 1 50); do grep -q 'request.executed' "$work/hook.log" && break; sleep 0.1; done
grep -E '^(✓|✗)' "$work/hook.log" | sed 's/^/  /'

step "A request the signers reject: bob and carol say no, so 2 approvals are out of reach"
out=$(as alice "$TK" request ops httpbin.echo data=drop-tables)
RID2=$(echo "$out" | sed -n 's/^submitted request \([0-9a-f-]*\).*/\1/p')
echo "submitted ${RID2:0:8}"
run as bob "$TK" reject ops "${RID2:0:8}" --reason "not today"
run as carol "$TK" reject ops "${RID2:0:8}" --reason "agreed"

step "A request nobody approves in time expires"
out=$(as carol "$TK" request ops leet.translate text="two keys" --expires 2s)
RID3=$(echo "$out" | sed -n 's/^submitted request \([0-9a-f-]*\).*/\1/p')
echo "submitted ${RID3:0:8} with --expires 2s; waiting for it to settle"
run as carol "$TK" request show ops "${RID3:0:8}" --wait

step "An AI agent proposes a call through MCP (twokey mcp); only people approve it"
printf '$ twokey keys create --name demo-agent --conversation ops --templates %s --key-only\n' "'httpbin.*'"
PKEY=$("$TK" keys create --name demo-agent --conversation ops --templates 'httpbin.*' --key-only)
echo "tk_... (the program key, shown once; the agent gets it as TWOKEY_PROGRAM_KEY)"
TWOKEY_PROGRAM_KEY="$PKEY" "$AGENT" -twokey "$TK" -template httpbin.headers -id-file "$work/agent.rid" >"$work/agent.log" 2>&1 &
agent=$!
pids+=($agent)
for _ in $(seq 1 100); do [ -s "$work/agent.rid" ] && break; sleep 0.1; done
[ -s "$work/agent.rid" ] || { echo "the agent proposed nothing:"; cat "$work/agent.log"; exit 1; }
RID5=$(cat "$work/agent.rid")
for _ in $(seq 1 50); do grep -q 'waiting' "$work/agent.log" && break; sleep 0.1; done
sed 's/^/  /' "$work/agent.log"
shown=$(wc -l <"$work/agent.log")
run as alice "$TK" approve ops "${RID5:0:8}"
# The agent's get_request polls every 2 s: give it one poll to report
# alice's approval as progress before bob's.
for _ in $(seq 1 40); do grep -q '1 of 2' "$work/agent.log" && break; sleep 0.1; done
run as bob "$TK" approve ops "${RID5:0:8}"
wait "$agent"
tail -n +"$((shown + 1))" "$work/agent.log" | sed 's/^/  /'
run "$TK" webhooks deliveries ops-hook --limit 5

step "Policies beyond M of N: 'pay' needs one of finance and one of security, never the asker"
run as alice "$TK" conv create pay --member "bob=$BOB" --member "carol=$CAROL"
run as alice "$TK" gate enable pay --approvals 2 --group finance=alice --group security=bob \
  --rule service=httpbin,approvals=2 --require finance=1,security=1 \
  --no-self-approval --reason-required --delay 4s --veto 1
printf 'sk_demo_77aa01c3' | as alice "$TK" secret add pay --service httpbin --ttl 720h >/dev/null
run as alice "$TK" gate rule ls pay
echo
echo "Without a reason the request is refused, and the error says what to add:"
printf '$ twokey request pay httpbin.headers\n'
as carol "$TK" request pay httpbin.headers 2>&1 | sed 's/^/  /' || true
out=$(as carol "$TK" request pay httpbin.headers --reason "quarterly check of what the upstream sees")
echo "$out"
RID6=$(echo "$out" | sed -n 's/^submitted request \([0-9a-f-]*\).*/\1/p')
run as alice "$TK" approve pay "${RID6:0:8}"
run as bob "$TK" approve pay "${RID6:0:8}" --reason "security has looked"
echo "approved: a 4 s cool-off in which any signer may veto, then the call"
run as carol "$TK" request show pay "${RID6:0:8}" --wait

step "The same rule, vetoed during its cool-off: no call is made"
out=$(as carol "$TK" request pay httpbin.headers --reason "one more look")
RID7=$(echo "$out" | sed -n 's/^submitted request \([0-9a-f-]*\).*/\1/p')
echo "submitted ${RID7:0:8}"
run as alice "$TK" approve pay "${RID7:0:8}"
run as bob "$TK" approve pay "${RID7:0:8}"
run as carol "$TK" veto pay "${RID7:0:8}" --reason "wrong account: stop"
run as carol "$TK" request show pay "${RID7:0:8}"
run as carol "$TK" audit verify pay

step "The conversation is the audit trail (every signature and the chain verified)"
run as carol "$TK" log ops --short

step "An offline audit: export the log, then re-check it with no server"
printf '$ as carol twokey audit export ops > $DEMO/ops-audit.json\n'
as carol "$TK" audit export ops >"$work/ops-audit.json"
# Pin the gateway key the server printed at its first start: an export
# signed by any other gateway would fail.
GW=$(sed -n 's/.*(signing key \([A-Za-z0-9_-]*\)).*/\1/p' "$work/server.log")
run "$TK" audit verify "$work/ops-audit.json" --gateway "$GW"

if [ "${KEEP:-}" = 1 ]; then
  step "One more request from alice, left for bob to approve in the browser"
  out=$(as alice "$TK" request ops httpbin.headers --expires 4h)
  echo "$out"
  RID4=$(echo "$out" | sed -n 's/^submitted request \([0-9a-f-]*\).*/\1/p')
  CONV=$(as alice "$TK" conv ls | awk '$1=="ops"{print $2; exit}')

  step "Left running (KEEP=1): approve in a browser"
  echo "open:     $TWOKEY_SERVER/"
  [ -n "$CONV" ] && echo "request:  $TWOKEY_SERVER/#/c/$CONV/r/$RID4"
  for who in alice bob carol; do
    echo "import:   $who  $work/$who.json   (Identities, Import a twokey id file)"
  done
  echo "then:     as bob, open the request under 'Waiting for you' and click Approve"
  echo "try:      TWOKEY_SERVER=$TWOKEY_SERVER TWOKEY_IDENTITY=$work/bob.json $TK tui"
  echo "stop:     kill ${pids[*]}"
  trap - EXIT
  exit 0
fi
step "Done: the server stops, the temp dir is removed"
echo "KEEP=1 make demo leaves the server running and prints the URL to open in a"
echo "browser, with a line per identity (alice, bob, carol) to import there."
