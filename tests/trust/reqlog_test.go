package trust_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/store"
)

// The request log's attacks: what an operator's queries and a program's
// calls could make the server read, keep or get wrong.

func init() { attackSets = append(attackSets, reqlogAttacks) }

const reqlogMgmtKey = "trust-reqlog-management-key-5d1e"

func withManagement(o *testutil.Options) { o.Management.Key = reqlogMgmtKey }

// mgmtCall makes one management API call and returns its status and body.
func mgmtCall(t *testing.T, fx *fixture, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(testutil.Ctx(t), method, fx.srv.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Management-Key", reqlogMgmtKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type logEntry struct {
	RequestID string `json:"request_id"`
	Event     string `json:"event"`
	URL       string `json:"url"`
}

type logPage struct {
	Entries []logEntry `json:"entries"`
	Next    string     `json:"next"`
}

func logQuery(t *testing.T, fx *fixture, q url.Values) (int, logPage, []byte) {
	t.Helper()
	status, body := mgmtCall(t, fx, "GET", "/v0/management/logs?"+q.Encode(), nil)
	var p logPage
	if status == 200 {
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("logs answer: %v: %s", err, body)
		}
	}
	return status, p, body
}

// programKey makes a program key for fx's conversation.
func programKey(t *testing.T, fx *fixture, name string) string {
	t.Helper()
	status, body := mgmtCall(t, fx, "POST", "/v0/management/keys", map[string]any{"name": name, "conversation": "ops"})
	var nk struct{ Key string }
	if status != 201 || json.Unmarshal(body, &nk) != nil {
		t.Fatalf("create key: %d %s", status, body)
	}
	return nk.Key
}

// proxyCall makes a proxied GET of path that answers at once (202 while
// the signers have not approved).
func proxyCall(t *testing.T, fx *fixture, key, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(testutil.Ctx(t), "GET", fx.srv.URL()+"/v1/proxy/ops/httpbin"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Prefer", "wait=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func reqlogAttacks() []attack {
	return []attack{
		{"an unbounded request-log query", "docs/operations.md (request logs): a query is one page of 1 to 1000 entries, newest first, " +
			"with a cursor for the next; limit=0 (\"all\") is refused; a page examines at most 10,000 entries; every text field of an entry is cut at 2 KiB",
			"server/operator_reqlog.go logsList; reqlog/reqlog.go Log.Query, Entry.bound", func(t *testing.T) {
				fx := newFixture(t, 2, 2, withManagement)
				key := programKey(t, fx, "bulk")
				// Entries made as large as a program can make them: paths
				// just under the proxy's 8 KiB bound.
				const calls = 40
				for i := 0; i < calls; i++ {
					if status, body := proxyCall(t, fx, key, fmt.Sprintf("/anything/%03d/%s", i, strings.Repeat("x", 8000))); status != 202 {
						t.Fatalf("call %d: %d %.300s", i, status, body)
					}
				}
				for _, limit := range []string{"0", "1001", "100000"} {
					if status, _, body := logQuery(t, fx, url.Values{"limit": {limit}}); status != 400 || !strings.Contains(string(body), "cursor") {
						t.Fatalf("limit=%s: %d %.300s, want 400 saying how to page", limit, status, body)
					}
				}
				status, p, body := logQuery(t, fx, url.Values{"limit": {"1"}})
				if status != 200 || len(p.Entries) != 1 || p.Next == "" || len(body) > 4<<10 {
					t.Fatalf("limit=1: %d, %d entries, next %q, %d bytes", status, len(p.Entries), p.Next, len(body))
				}
				// Paging finds every entry once.
				seen := map[string]bool{}
				q := url.Values{"limit": {"7"}}
				for {
					status, p, body := logQuery(t, fx, q)
					if status != 200 {
						t.Fatalf("page: %d %.300s", status, body)
					}
					for _, e := range p.Entries {
						if seen[e.RequestID] || len(e.URL) > 2<<10+32 {
							t.Fatalf("entry %s twice, or its URL of %d bytes kept whole", e.RequestID, len(e.URL))
						}
						seen[e.RequestID] = true
					}
					if p.Next == "" {
						break
					}
					q.Set("cursor", p.Next)
				}
				if len(seen) != calls {
					t.Fatalf("paging found %d of %d entries", len(seen), calls)
				}
				// What the store keeps per entry is bounded too.
				var biggest, stored int
				if err := fx.srv.Store().ForEach(store.ReqLog, func(_ string, v []byte) error {
					biggest = max(biggest, len(v))
					stored++
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if stored < calls || biggest > 3<<10 {
					t.Fatalf("%d entries stored for %d calls, the biggest %d bytes", stored, calls, biggest)
				}
			}},
		{"a huge proxy path", "docs/operations.md (proxy mode): a request target (path and query) over 8 KiB is refused with 414 before anything is stored",
			"server/operator_reqlog.go tooLongTarget, called first by server/operator.go proxy", func(t *testing.T) {
				fx := newFixture(t, 2, 2, withManagement)
				key := programKey(t, fx, "huge")
				before, _ := fx.srv.Store().LastSeq(fx.conv)
				for _, n := range []int{8200, 30000, 500000} {
					status, body := proxyCall(t, fx, key, "/anything/"+strings.Repeat("a", n))
					var eb struct{ Error struct{ Code string } }
					_ = json.Unmarshal(body, &eb)
					if status != 414 || eb.Error.Code != twokey.ETooLarge {
						t.Fatalf("a %d-byte path: %d %.300s, want 414 too_large", n, status, body)
					}
				}
				if status, body := proxyCall(t, fx, key, "/anything/"+strings.Repeat("a", 300)+"?"+strings.Repeat("q", 8000)); status != 414 {
					t.Fatalf("a long query: %d %.200s, want 414", status, body)
				}
				if after, _ := fx.srv.Store().LastSeq(fx.conv); after != before {
					t.Fatalf("a refused call changed the conversation (%d -> %d)", before, after)
				}
				if status, p, _ := logQuery(t, fx, nil); status != 200 || len(p.Entries) != 0 {
					t.Fatalf("a refused call is in the request log: %d entries", len(p.Entries))
				}
			}},
		{"time bounds before the epoch", "docs/operations.md (request logs): a time before 1970 counts as 1970, only an absent bound is unbounded, " +
			"a negative duration and a time after year 9999 are refused",
			"server/operator_reqlog.go bound; reqlog/reqlog.go Bound, timeKey", func(t *testing.T) {
				fx := newFixture(t, 2, 2, withManagement)
				for i := 0; i < 3; i++ {
					fx.submit(t, 0, "/get")
				}
				for q, want := range map[string]int{
					"since=1969-12-31T23:59:59Z": 3, "since=21000d": 3, "since=0001-01-01T00:00:00Z": 3,
					"until=0001-01-01T00:00:00Z": 0, "until=1969-12-31T23:59:59Z": 0, "since=2300-01-01T00:00:00Z": 0,
					"since=-24h": -1, "until=9999-12-31T23:59:59-01:00": -1,
				} {
					k, v, _ := strings.Cut(q, "=")
					status, p, body := logQuery(t, fx, url.Values{k: {v}})
					ustatus, ubody := mgmtCall(t, fx, "GET", "/v0/management/usage?by=service&"+url.Values{k: {v}}.Encode(), nil)
					if want < 0 {
						if status != 400 || ustatus != 400 {
							t.Fatalf("%s: logs %d, usage %d, want 400 both: %.300s", q, status, ustatus, body)
						}
						continue
					}
					var u struct{ Rows []struct{ Submitted int } }
					_ = json.Unmarshal(ubody, &u)
					n := 0
					for _, r := range u.Rows {
						n += r.Submitted
					}
					if status != 200 || len(p.Entries) != want || ustatus != 200 || n != want {
						t.Fatalf("%s: logs %d with %d entries, usage %d with %d submitted; want %d", q, status, len(p.Entries), ustatus, n, want)
					}
				}
			}},
	}
}
